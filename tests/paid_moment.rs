//! The moment of payment and the wallet hint, whole machine under paused time: once the
//! payment is confirmed the screen says "Payment received" with the amount the payment
//! screen asked for, and the pump is already running (the confirmation delays nothing);
//! the payment screen carries the configured wallet hint, and none by default.

mod common;

use std::time::Duration;

use common::*;
use lnvend::controller::Screen;

#[tokio::test(start_paused = true)]
async fn payment_received_shows_the_amount_while_the_pump_already_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let pay = m.wait_screen(Screen::Payment).await;
    assert_eq!(pay.amount, "2,100 sats");
    assert_eq!(pay.wallet_hint, "", "no wallet hint unless configured");
    m.sim().pay_latest().unwrap();
    let paid = m.wait_screen(Screen::Pouring).await;
    assert_eq!(
        paid.amount, "2,100 sats",
        "Payment received, with what was paid"
    );
    assert_eq!(
        paid.progress, 0.0,
        "the first thing shown after the payment"
    );
    // The pump started with that screen, not after it.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        m.gpio.level(ENA).is_some_and(|l| l.is_on()),
        "the pump runs while Payment received shows"
    );
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(
        on_time(&m.gpio, ENA),
        (Duration::from_millis(4000), 1),
        "one full pour, not shortened by the confirmation"
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_configured_wallet_hint_is_on_the_payment_screen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[display]\nwallet_hint = \"No wallet? Ask at the bar.\"\n",
    );
    let mut m = TestMachine::start(&cfg);
    let idle = m.wait_screen(Screen::Idle).await;
    assert_eq!(idle.wallet_hint, "", "only on the payment screen");
    m.tap(1);
    let pay = m.wait_screen(Screen::Payment).await;
    assert_eq!(pay.wallet_hint, "No wallet? Ask at the bar.");
    m.shutdown().await;
}
