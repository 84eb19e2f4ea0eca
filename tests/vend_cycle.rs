//! Whole-machine scenarios: the controller with the simulated backend, the mock pump and a
//! real ledger, under paused tokio time. What is checked is what a customer or an operator
//! would notice: the screen, the pin record (did the pump run, how long, how often) and the
//! ledger (is every paid sale poured or owed).

mod common;

use std::time::Duration;

use common::*;
use lnvend::controller::{Input, Screen};
use lnvend::ledger::Ledger;
use lnvend::pump::mock::PinValue;
use lnvend::vend::Event;

#[tokio::test(start_paused = true)]
async fn a_paid_sale_pours_exactly_the_pour_time_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let v = m.wait_screen(Screen::Payment).await;
    assert_eq!(v.amount, "2,100 sats");
    assert!(v.payment_uri.starts_with("LIGHTNING:LNBCRT21U1"));
    assert!(v.qr.is_some());
    let inv = m.sim().latest().unwrap();
    assert_eq!(
        v.payment_uri,
        format!("LIGHTNING:{}", inv.bolt11.to_uppercase())
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    m.sim().pay(&inv.id).unwrap();
    let v = m.wait_screen(Screen::Pouring).await;
    assert!(!v.vending, "the pump pours: \"Pouring your Cola…\"");
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    // Wait long enough that any second pour would have shown up.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (total, times) = on_time(&m.gpio, ENA);
    assert_eq!(times, 1, "the enable pin went high once");
    assert_eq!(
        total,
        Duration::from_millis(4000),
        "for exactly the pour time"
    );
    assert_eq!(
        on_time(&m.gpio, ENB),
        (Duration::ZERO, 0),
        "the other pump never ran"
    );
    assert_eq!(m.gpio.level(ENA), Some(PinValue::Level(false)));
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_second_product_pours_on_its_own_channel_for_its_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(1);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(on_time(&m.gpio, ENB), (Duration::from_millis(2500), 1));
    assert_eq!(on_time(&m.gpio, ENA), (Duration::ZERO, 0));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn spoofed_and_repeated_wakeups_pour_once_and_only_after_payment() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    for _ in 0..10 {
        m.sim().spoof_wakeup(&inv.id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        m.views.borrow().screen,
        Screen::Payment,
        "a push alone does not pour"
    );
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.sim().pay(&inv.id).unwrap();
    for _ in 0..10 {
        m.sim().spoof_wakeup(&inv.id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A duplicate confirmation straight into the controller, as a buggy backend might send.
    m.send(Input::Event(Event::PaymentConfirmed {
        invoice_id: inv.id.clone(),
    }));
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(4000), 1));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_payment_while_the_connection_is_down_is_found_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.sim().drop_connections();
    m.sim().pay_silently(&inv.id).unwrap();
    let t0 = tokio::time::Instant::now();
    m.wait_screen(Screen::Pouring).await;
    assert!(
        t0.elapsed() <= Duration::from_secs(3),
        "found within one poll: {:?}",
        t0.elapsed()
    );
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(4000), 1));
    m.shutdown().await;
}

/// With a backend that cannot withdraw the invoice Cancel left (BTCPay, LNbits, NWC).
#[tokio::test(start_paused = true)]
async fn a_payment_after_cancel_is_owed_and_never_poured() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.sim().set_cancels(false);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    m.sim().pay(&inv.id).unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(m.views.borrow().screen, Screen::Idle);
    assert_eq!(
        on_time(&m.gpio, ENA).1,
        0,
        "nothing poured on the idle screen"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1, "the late payment is an owed credit");
    assert_eq!(owed[0].price_msat, 2_100_000);
}

#[tokio::test(start_paused = true)]
async fn an_unpaid_invoice_expires_back_to_idle_without_pouring() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    let v = m.wait_screen(Screen::Payment).await;
    assert!(
        v.seconds_left >= 298 && v.seconds_left <= 300,
        "{}",
        v.seconds_left
    );
    let later = m
        .wait_for(Duration::from_secs(120), "countdown", |v| {
            v.seconds_left <= 200
        })
        .await;
    assert_eq!(later.screen, Screen::Payment);
    m.wait_for(Duration::from_secs(400), "idle", |v| {
        v.screen == Screen::Idle
    })
    .await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_sim_expire_button_ends_the_payment_screen() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().expire_latest().unwrap();
    m.wait_for(Duration::from_secs(30), "idle", |v| {
        v.screen == Screen::Idle
    })
    .await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn backend_down_means_out_of_service_with_no_qr_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.sim().set_down(true);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(
        v.message.contains("Payments are unavailable"),
        "{}",
        v.message
    );
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService);
    assert_eq!(m.sim().invoices_created(), 0, "no invoice, no QR");
    m.sim().set_down(false);
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_tap_while_the_backend_just_died_goes_out_of_service_not_to_a_qr() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.sim().set_down(true);
    m.tap(0);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.qr.is_none());
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pump_fault_mid_pour_stops_the_pump_shows_a_code_and_owes_the_customer() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    m.gpio.inject_fault(true);
    let fault = m.wait_screen(Screen::Fault).await;
    assert!(
        fault.message.contains("payment is recorded"),
        "{}",
        fault.message
    );
    assert!(fault.code.starts_with('S'), "{}", fault.code);
    assert!(!m.pump.is_running());
    assert_eq!(m.gpio.level(ENA), Some(PinValue::Level(false)));
    let (total, _) = on_time(&m.gpio, ENA);
    assert!(
        total < Duration::from_millis(1600),
        "stopped promptly: {total:?}"
    );
    m.send(Input::DismissFault);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.message.contains("operator"), "{}", v.message);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1);
    assert_eq!(
        owed[0].sale_id.0, fault.code,
        "the code on screen finds the credit"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_writable_ledger_the_machine_is_out_of_service_and_shows_no_qr() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the data directory should be: the ledger cannot be created.
    let blocked = dir.path().join("not-a-dir");
    std::fs::write(&blocked, b"x").unwrap();
    let mut m = TestMachine::start(&config(&blocked, ""));
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.message.contains("cannot be recorded"), "{}", v.message);
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService);
    assert_eq!(m.sim().invoices_created(), 0);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_pump_is_off_after_shutdown_even_mid_pour() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(m.pump.is_running());
    let gpio = m.gpio.clone();
    let pump = m.pump.clone();
    m.shutdown().await;
    assert!(!pump.is_running());
    assert_eq!(gpio.level(ENA), Some(PinValue::Level(false)));
    assert_eq!(gpio.level(IN1), Some(PinValue::Level(false)));
    // The stop made the interrupted pour an owed credit at once: `lnvend sales` shows it
    // owed, not "pouring" (neither poured nor owed) until some later start.
    let mut l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1);
    assert!(
        owed[0].reason.contains("stopped during the pour"),
        "{}",
        owed[0].reason
    );
    assert!(owed[0].public, "its customer may still pour it once");
    assert!(l.recover_interrupted().unwrap().is_empty());
    let report = lnvend::cli::sales_report(&config(dir.path(), ""), 0, false).unwrap();
    assert!(report.contains("owed credits: 1"), "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_payment_made_while_the_machine_was_down_becomes_an_owed_credit_at_restart() {
    use lnvend::controller::Controller;
    use lnvend::pump::{L298n, Pump};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let sim = Arc::new(lnvend::backend::sim::SimBackend::new());
    let start = |sim: Arc<lnvend::backend::sim::SimBackend>| {
        let gpio = lnvend::pump::mock::MockGpio::new(None).unwrap();
        let (a, b) = cfg.bridge_pins();
        let pump = Pump::new(L298n::new(Box::new(gpio.pins()), a, b), cfg.max_run()).unwrap();
        let ctl = Controller::new(
            lnvend::app::settings(&cfg),
            sim,
            pump,
            Ledger::open(dir.path()),
        );
        (ctl.inputs(), ctl.views(), gpio, ctl)
    };
    // First run: a QR is shown, then the machine goes down.
    let (inputs, mut views, _gpio, ctl) = start(sim.clone());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ctl.run(async {
        let _ = rx.await;
    }));
    inputs.send(Input::Tap(0));
    while views.borrow_and_update().screen != Screen::Payment {
        views.changed().await.unwrap();
    }
    stop.send(()).unwrap();
    task.await.unwrap();
    // The customer pays while it is down; the invoice then expires.
    let inv = sim.latest().unwrap();
    sim.pay_silently(&inv.id).unwrap();
    tokio::time::advance(Duration::from_secs(400)).await;
    // Second run: no pour, but the payment is found and owed.
    let (_inputs, _views, gpio, ctl) = start(sim.clone());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ctl.run(async {
        let _ = rx.await;
    }));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(on_time(&gpio, ENA).1, 0);
    let owed = Ledger::open(dir.path()).unwrap().owed().unwrap();
    assert_eq!(owed.len(), 1, "the payment made while down is owed");
}
