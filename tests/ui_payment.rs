//! The payment and pouring screens, headless through slint's testing backend: a fiat price
//! shows beside its sats, the wallet hint shows only when configured, and the pouring
//! screen opens with "Payment received" and the amount.
//!
//! The testing backend can be initialised once per process, so this file holds one test.

use i_slint_backend_testing::ElementHandle;
use lnvend::controller::Screen;
use lnvend::ui::{self, samples, MachineWindow};
use slint::ComponentHandle;

fn shown(window: &MachineWindow, label: &str) -> bool {
    ElementHandle::find_by_accessible_label(window, label).any(|e| {
        let (p, s) = (e.absolute_position(), e.size());
        s.width > 0.0
            && p.x >= 0.0
            && p.y >= 0.0
            && p.x + s.width <= 800.0
            && p.y + s.height <= 480.0
    })
}

#[test]
fn fiat_wallet_hint_and_payment_received_are_shown() {
    i_slint_backend_testing::init_integration_test_with_system_time();
    let window = MachineWindow::new().unwrap();
    window.show().unwrap();

    let mut v = samples::blank(Screen::Payment);
    v.product = "Cola".into();
    v.amount = "4,210 sats".into();
    ui::render_cached(&window, &v);
    assert!(shown(&window, "Amount 4,210 sats"));
    assert!(
        !shown(&window, "Price €2.50"),
        "no fiat for a price in sats"
    );
    assert!(
        !shown(&window, "No wallet? Ask at the bar."),
        "no hint by default"
    );

    v.amount = "€2.50 · 4,210 sats".into();
    v.wallet_hint = "No wallet? Ask at the bar.".into();
    ui::render_cached(&window, &v);
    assert!(shown(&window, "Price €2.50"), "the fiat price");
    assert!(shown(&window, "Amount 4,210 sats"), "beside its sats");
    assert!(shown(&window, "No wallet? Ask at the bar."));

    // Pictures: on each tile that has one, and beside the product being paid for.
    let idle = samples::customer_screens()[0].1.clone();
    assert!(idle.tiles[0].image.is_some() && idle.tiles[3].image.is_none());
    ui::render_cached(&window, &idle);
    let pictured = |label: &str| {
        ElementHandle::find_by_accessible_label(&window, label)
            .filter(|e| e.accessible_role() == Some(i_slint_backend_testing::AccessibleRole::Image))
            .count()
    };
    assert_eq!(pictured("Cola"), 1, "Cola's tile shows its picture");
    assert_eq!(pictured("Orange juice"), 0, "no picture, no empty frame");
    let mut v = samples::customer_screens()
        .into_iter()
        .find(|(n, _)| *n == "payment")
        .unwrap()
        .1;
    ui::render_cached(&window, &v);
    assert_eq!(pictured("Club-Mate"), 1, "the payment screen shows it too");
    v.picture = None;
    ui::render_cached(&window, &v);
    assert_eq!(pictured("Club-Mate"), 0);

    let mut v = samples::blank(Screen::Pouring);
    v.product = "Cola".into();
    v.amount = "€2.50 · 4,210 sats".into();
    ui::render_cached(&window, &v);
    assert!(shown(&window, "Payment received €2.50 · 4,210 sats"));
}
