//! The customer's screens: idle (tiles and owed credits, or the expiry notice), preparing, payment, pouring,
//! thank-you, out of service, fault (with its refund) and the PIN pad's line. `connect()`
//! turns the taps on these screens into controller inputs; `render()` fills their globals
//! from the [`View`]. A tap carries only an index or a sale id: what it costs and whether it
//! pours is for the controller to decide.

use slint::{Model, ModelRc, SharedString, VecModel};

use super::{CreditTile, MachineUi, ProductTile, RenderCache};
use crate::controller::{Input, Inputs, Screen as ViewScreen, View};

/// "Expires in 4:59"
pub fn countdown_text(seconds: u64) -> String {
    format!("Expires in {}:{:02}", seconds / 60, seconds % 60)
}

/// The expiry notice as the idle screen shows it: broken after the dash, so the line that
/// says nothing was charged is never split.
pub fn notice_text(message: &str) -> String {
    message.replacen(" — ", "\n— ", 1)
}

/// Sets the customer screens' callbacks: each tap becomes one controller input.
pub fn connect<W: MachineUi>(window: &W, inputs: &Inputs) {
    let i = inputs.clone();
    window.idle().on_tap_product(move |idx| {
        // A negative index cannot come from a tile; it is dropped rather than wrapped.
        if let Ok(idx) = usize::try_from(idx) {
            i.send(Input::Tap(idx));
        }
    });
    let i = inputs.clone();
    window.idle().on_redeem_credit(move |id| {
        i.send(Input::RedeemCredit(id.to_string()));
    });
    super::language::connect(window);
    let i = inputs.clone();
    window.creating().on_cancel(move || {
        i.send(Input::Cancel);
    });
    let i = inputs.clone();
    window.payment().on_cancel(move || {
        i.send(Input::Cancel);
    });
    let i = inputs.clone();
    window.fault().on_dismiss(move || {
        i.send(Input::DismissFault);
    });
    let i = inputs.clone();
    window.fault().on_refund(move || {
        i.send(Input::RefundFault);
    });
    let i = inputs.clone();
    window.machine().on_open_operator(move || {
        i.send(Input::OpenOperator);
    });
    let i = inputs.clone();
    window.pin_pad().on_submit(move |pin| {
        i.send(Input::OperatorPin(pin.to_string().into()));
    });
    let i = inputs.clone();
    window.card_pin().on_submit(move |pin| {
        i.send(Input::CardPin(Some(crate::secret::Secret::new(
            pin.as_str(),
        ))));
    });
    let i = inputs.clone();
    window.card_pin().on_cancel(move || {
        i.send(Input::CardPin(None));
    });
}

/// Fills the customer screens' globals from `view`.
pub fn render<W: MachineUi>(window: &W, view: &View, cache: &mut RenderCache) {
    let idle = window.idle();
    idle.set_default_language(view.language.as_str().into());
    idle.set_notice(if view.screen == ViewScreen::Expired {
        notice_text(&view.message).into()
    } else {
        SharedString::new()
    });
    let credits: Vec<CreditTile> = view
        .credits
        .iter()
        .map(|c| CreditTile {
            sale_id: c.sale_id.as_str().into(),
            product: c.product.as_str().into(),
            sold_out: c.sold_out,
        })
        .collect();
    // The controller lists the ones that can pour first.
    let pourable = view.credits.iter().filter(|c| !c.sold_out).count();
    idle.set_pourable_credits(i32::try_from(pourable).unwrap_or(i32::MAX));
    idle.set_credits(ModelRc::new(VecModel::from(credits)));
    let mut pics: Vec<_> = view.tiles.iter().map(|t| t.image.as_ref()).collect();
    pics.push(view.picture.as_ref());
    let mut images = cache.pictures(&pics);
    let payment_picture = images.pop().unwrap_or_default();
    let tiles: Vec<ProductTile> = view
        .tiles
        .iter()
        .zip(images)
        .map(|(t, image)| {
            // "€2.50 · ≈2,500 sats": the price tag, and its estimate in sats under it.
            let (price, approx) = t.price.split_once(" · ").unwrap_or((t.price.as_str(), ""));
            ProductTile {
                name: SharedString::from(t.name.as_str()),
                price: price.into(),
                approx: approx.into(),
                sold_out: t.sold_out,
                image,
                has_image: t.image.is_some(),
            }
        })
        .collect();
    // A new model would rebuild every tile (and drop a press in progress) at each tick.
    let current = idle.get_products();
    let same = current.row_count() == tiles.len()
        && tiles
            .iter()
            .enumerate()
            .all(|(i, t)| current.row_data(i).as_ref() == Some(t));
    if !same {
        idle.set_products(ModelRc::new(VecModel::from(tiles)));
    }

    let product = SharedString::from(view.product.as_str());
    window.creating().set_product(product.clone());

    let payment = window.payment();
    payment.set_product(product.clone());
    // "€2.50 · 3,000 sats": the fiat price large over its sats.
    let (fiat, sats) = view
        .amount
        .split_once(" · ")
        .unwrap_or(("", view.amount.as_str()));
    payment.set_fiat(fiat.into());
    payment.set_amount(sats.into());
    payment.set_wallet_hint(view.wallet_hint.as_str().into());
    payment.set_has_picture(view.picture.is_some());
    payment.set_picture(payment_picture);
    if let Some(img) = cache.qr(view.qr.as_ref()) {
        payment.set_qr(img);
    }
    payment.set_countdown(countdown_text(view.seconds_left).into());
    payment.set_seconds_left(i32::try_from(view.seconds_left).unwrap_or(i32::MAX));
    super::card::render(window, &view.card);

    let pouring = window.pouring();
    pouring.set_product(product.clone());
    pouring.set_amount(view.amount.as_str().into());
    pouring.set_progress(view.progress);
    pouring.set_vending(view.vending);

    window.thanks().set_product(product);

    let oos = window.out_of_service();
    oos.set_message(view.message.as_str().into());
    oos.set_detail(view.detail.as_str().into());

    let fault = window.fault();
    fault.set_message(view.message.as_str().into());
    fault.set_code(view.code.as_str().into());
    fault.set_offer_refund(view.fault_refund);
    fault.set_refund_text(view.refund_text.as_str().into());
    // Being made: the screen waits for it, with no QR yet and no Done.
    fault.set_refund_busy(view.refund_text == crate::controller::REFUND_PREPARING_TEXT);
    // Only a failed refund sets the fault screen's detail: the backend's reason.
    fault.set_refund_reason(view.detail.as_str().into());
    if let Some(img) = cache.refund_qr(view.refund_qr.as_ref()) {
        fault.set_refund_qr(img);
    }

    window
        .pin_pad()
        .set_message(view.pin_message.as_str().into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_countdown_shows_minutes_and_padded_seconds() {
        assert_eq!(countdown_text(299), "Expires in 4:59");
        assert_eq!(countdown_text(65), "Expires in 1:05");
        assert_eq!(countdown_text(0), "Expires in 0:00");
    }
}
