//! The operator menu's adapter: `connect()` maps each typed callback of the `Operator`
//! global (ui/operator.slint) one to one onto a controller [`OpAction`], and `render()`
//! fills the global from the [`OperatorView`]. The slint enums are matched exhaustively, so
//! a new tab or channel cannot be forgotten here, and no button is decoded from a string.

use slint::{ModelRc, SharedString, VecModel};

use super::{OpCreditRow, OpNumber, OpProductRow, OpTab, Operator, PumpChannel, RenderCache};
use crate::controller::{Input, Inputs, OpAction, OpEntry, OpTab as Tab, OperatorView};
use crate::pump::Channel;

fn tab(t: OpTab) -> Tab {
    match t {
        OpTab::Products => Tab::Products,
        OpTab::Pump => Tab::Pump,
        OpTab::Sales => Tab::Sales,
        OpTab::Credits => Tab::Credits,
        OpTab::Status => Tab::Status,
    }
}

fn slint_tab(t: Tab) -> OpTab {
    match t {
        Tab::Products => OpTab::Products,
        Tab::Pump => OpTab::Pump,
        Tab::Sales => OpTab::Sales,
        Tab::Credits => OpTab::Credits,
        Tab::Status => OpTab::Status,
    }
}

fn channel(c: PumpChannel) -> Channel {
    match c {
        PumpChannel::A => Channel::A,
        PumpChannel::B => Channel::B,
    }
}

/// A row index from the UI; a negative one (impossible from a row) names no product, so
/// the controller ignores it.
fn index(i: i32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// A number typed on the keypad; a negative one (the keypad types none) is out of every
/// range, so the controller refuses it.
fn typed(v: i32) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// A keypad entry for slint, whose numbers are `i32`: every range the controller gives
/// fits, and a value past `i32::MAX` shows as the largest the keypad can hold.
fn number(e: &OpEntry) -> OpNumber {
    let int = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    OpNumber {
        value: int(e.value),
        min: int(e.min),
        max: int(e.max),
        unit: e.unit.as_str().into(),
    }
}

/// Sets the `Operator` global's callbacks: each one sends exactly one [`OpAction`].
pub fn connect(op: &Operator<'_>, inputs: &Inputs) {
    let send = {
        let inputs = inputs.clone();
        move |a: OpAction| {
            inputs.send(Input::Operator(a));
        }
    };
    let s = send.clone();
    op.on_tab(move |t| s(OpAction::Tab(tab(t))));
    let s = send.clone();
    op.on_set_price(move |i, v| {
        s(OpAction::SetPrice {
            index: index(i),
            value: typed(v),
        })
    });
    let s = send.clone();
    op.on_set_pour(move |i, v| {
        s(OpAction::SetPour {
            index: index(i),
            ms: typed(v),
        })
    });
    let s = send.clone();
    op.on_save(move || s(OpAction::Save));
    let s = send.clone();
    op.on_test_pour(move |i| s(OpAction::TestPour { index: index(i) }));
    let s = send.clone();
    op.on_prime(move |c, on| {
        s(OpAction::Prime {
            channel: channel(c),
            on,
        })
    });
    let s = send.clone();
    op.on_reverse(move |c| {
        s(OpAction::Reverse {
            channel: channel(c),
        })
    });
    let s = send.clone();
    op.on_settle(move |id| s(OpAction::Settle(id.to_string())));
    let s = send.clone();
    op.on_refund(move |id| s(OpAction::Refund(id.to_string())));
    let s = send.clone();
    op.on_close_refund(move || s(OpAction::CloseRefund));
    let s = send.clone();
    op.on_exit(move || s(OpAction::Exit));
    op.on_cancel_pin(move || send(OpAction::CancelPin));
}

fn strings(v: &[String]) -> ModelRc<SharedString> {
    ModelRc::new(VecModel::from(
        v.iter()
            .map(|s| SharedString::from(s.as_str()))
            .collect::<Vec<_>>(),
    ))
}

/// Fills the `Operator` global from the menu's view.
pub fn render(m: &Operator<'_>, op: &OperatorView, cache: &mut RenderCache) {
    m.set_current_tab(slint_tab(op.tab));
    let products: Vec<OpProductRow> = op
        .products
        .iter()
        .map(|p| OpProductRow {
            name: p.name.as_str().into(),
            price: p.price.as_str().into(),
            pour: p.pour.as_str().into(),
            price_entry: number(&p.price_entry),
            pour_entry: number(&p.pour_entry),
        })
        .collect();
    m.set_products(ModelRc::new(VecModel::from(products)));
    m.set_unsaved(op.unsaved);
    m.set_today(op.today.as_str().into());
    m.set_total(op.total.as_str().into());
    m.set_recent(strings(&op.recent));
    let credits: Vec<OpCreditRow> = op
        .credits
        .iter()
        .map(|c| OpCreditRow {
            sale_id: c.sale_id.as_str().into(),
            text: c.text.as_str().into(),
        })
        .collect();
    m.set_credits(ModelRc::new(VecModel::from(credits)));
    m.set_status(strings(&op.status));
    m.set_message(op.message.as_str().into());
    m.set_refund_text(op.refund_text.as_str().into());
    if let Some(img) = cache.op_refund_qr(op.refund_qr.as_ref()) {
        m.set_refund_qr(img);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tab_maps_to_the_same_tab_both_ways() {
        for t in [
            Tab::Products,
            Tab::Pump,
            Tab::Sales,
            Tab::Credits,
            Tab::Status,
        ] {
            assert_eq!(tab(slint_tab(t)), t);
        }
    }

    #[test]
    fn each_pump_button_drives_its_own_channel() {
        assert_eq!(channel(PumpChannel::A), Channel::A);
        assert_eq!(channel(PumpChannel::B), Channel::B);
    }

    #[test]
    fn a_negative_keypad_number_is_out_of_every_range() {
        assert_eq!(typed(21), 21);
        assert_eq!(typed(-21), u64::MAX);
    }

    #[test]
    fn a_negative_row_names_no_product() {
        assert_eq!(index(1), 1);
        assert_eq!(index(-1), usize::MAX);
    }
}
