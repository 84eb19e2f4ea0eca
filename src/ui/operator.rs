//! The operator menu's adapter: `connect()` maps each typed callback of the `Operator`
//! global (ui/operator.slint) one to one onto a controller [`OpAction`], and `render()`
//! fills the global from the [`OperatorView`]. The slint enums are matched exhaustively, so
//! a new tab or channel cannot be forgotten here, and no button is decoded from a string.

use slint::{ModelRc, SharedString, VecModel};

use super::{
    OpCreditRow, OpFlowRow, OpNumber, OpProductRow, OpStockRow, OpTab, Operator, PumpChannel,
    RenderCache, SalesDay,
};
use crate::controller::{
    ChartDay, Input, Inputs, OpAction, OpCredit, OpEntry, OpTab as Tab, OperatorView,
};
use crate::money::Msat;
use crate::pump::Channel;

fn tab(t: OpTab) -> Tab {
    match t {
        OpTab::Products => Tab::Products,
        OpTab::Pump => Tab::Pump,
        OpTab::Stock => Tab::Stock,
        OpTab::Sales => Tab::Sales,
        OpTab::Credits => Tab::Credits,
        OpTab::Status => Tab::Status,
    }
}

fn slint_tab(t: Tab) -> OpTab {
    match t {
        Tab::Products => OpTab::Products,
        Tab::Pump => OpTab::Pump,
        Tab::Stock => OpTab::Stock,
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

fn slint_channel(c: Channel) -> PumpChannel {
    match c {
        Channel::A => PumpChannel::A,
        Channel::B => PumpChannel::B,
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
    op.on_refill(move |i| s(OpAction::Refill { index: index(i) }));
    let s = send.clone();
    op.on_calibrate_pour(move |c| {
        s(OpAction::CalibratePour {
            channel: channel(c),
        })
    });
    let s = send.clone();
    op.on_calibrate(move |c, ml| {
        s(OpAction::Calibrate {
            channel: channel(c),
            // A negative number cannot come from the keypad; it cancels.
            measured_ml: u32::try_from(ml).unwrap_or(0),
        })
    });
    let s = send.clone();
    op.on_settle(move |id| s(OpAction::Settle(id.to_string())));
    let s = send.clone();
    op.on_refund(move |id| s(OpAction::Refund(id.to_string())));
    let s = send.clone();
    op.on_close_refund(move || s(OpAction::CloseRefund));
    let s = send.clone();
    op.on_show_refund_link(move |id| s(OpAction::ShowRefundLink(id.to_string())));
    let s = send.clone();
    op.on_dismiss_refund_link(move |id| s(OpAction::DismissRefundLink(id.to_string())));
    let s = send.clone();
    op.on_exit(move || s(OpAction::Exit));
    op.on_cancel_pin(move || send(OpAction::CancelPin));
}

fn credit_rows(v: &[OpCredit]) -> ModelRc<OpCreditRow> {
    ModelRc::new(VecModel::from(
        v.iter()
            .map(|c| OpCreditRow {
                sale_id: c.sale_id.as_str().into(),
                text: c.text.as_str().into(),
            })
            .collect::<Vec<_>>(),
    ))
}

fn strings(v: &[String]) -> ModelRc<SharedString> {
    ModelRc::new(VecModel::from(
        v.iter()
            .map(|s| SharedString::from(s.as_str()))
            .collect::<Vec<_>>(),
    ))
}

/// The chart's columns, each bar a fraction of the busiest day's, and what a full bar means.
fn chart(days: &[ChartDay]) -> (Vec<SalesDay>, String) {
    let most_count = days.iter().map(|d| d.count).max().unwrap_or(0);
    let most_msat = days.iter().map(|d| d.msat).max().unwrap_or(0);
    let frac = |v: u64, most: u64| {
        if most == 0 {
            0.0
        } else {
            v as f32 / most as f32
        }
    };
    let columns = days
        .iter()
        .map(|d| SalesDay {
            day: d.date.rsplit('-').next().unwrap_or("").into(),
            count_frac: frac(d.count, most_count),
            sats_frac: frac(d.msat, most_msat),
            label: format!(
                "{}: {} sales, {}",
                d.date,
                d.count,
                Msat::from_msat(d.msat).display_sats()
            )
            .into(),
            date: d.date.as_str().into(),
        })
        .collect();
    let scale = if most_count == 0 {
        "no sales yet".to_string()
    } else {
        format!(
            "most: {most_count} sales, {}",
            Msat::from_msat(most_msat).display_sats()
        )
    };
    (columns, scale)
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
    let stock: Vec<OpStockRow> = op
        .products
        .iter()
        .map(|p| OpStockRow {
            name: p.name.as_str().into(),
            stock: p.stock.as_str().into(),
        })
        .collect();
    m.set_stock(ModelRc::new(VecModel::from(stock)));
    let flow: Vec<OpFlowRow> = op
        .flow
        .iter()
        .map(|f| OpFlowRow {
            channel: slint_channel(f.channel),
            name: f.channel.to_string().into(),
            text: f.text.as_str().into(),
        })
        .collect();
    m.set_flow(ModelRc::new(VecModel::from(flow)));
    m.set_calibrating(op.calibrating.is_some());
    if let Some(c) = op.calibrating {
        m.set_calibrating_channel(slint_channel(c));
    }
    m.set_unsaved(op.unsaved);
    m.set_today(op.today.as_str().into());
    m.set_total(op.total.as_str().into());
    m.set_recent(strings(&op.recent));
    let (days, scale) = chart(&op.chart);
    m.set_chart_days(ModelRc::new(VecModel::from(days)));
    m.set_chart_scale(scale.into());
    m.set_chart_products(strings(&op.chart_products));
    m.set_credits(credit_rows(&op.credits));
    m.set_refund_links(credit_rows(&op.refund_links));
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
            Tab::Stock,
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
