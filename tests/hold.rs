//! Hold invoices on the whole machine (issue 25): the controller with the simulated backend
//! holding payments (`hold = "always"`), the mock pump and a real ledger, under paused tokio
//! time. What a customer notices: a payment is taken only once the drink is poured, and a
//! pour that cannot happen gives the money back by itself ("Nothing was charged"); what an
//! operator notices: nothing owed for a returned payment, and every held payment resolved,
//! after a restart too.

mod common;

use std::time::Duration;

use common::*;
use lnvend::backend::{HoldState, InvoiceId};
use lnvend::controller::{Input, Screen, RETURNED_TEXT};
use lnvend::ledger::{Ledger, SaleState};
use lnvend::vend::SaleId;

const HOLD: &str = "[backend]\nkind = \"sim\"\nhold = \"always\"\n";

fn sale_of(l: &Ledger, invoice: &InvoiceId) -> SaleId {
    // The simulator's invoice id is its payment hash; the ledger keeps both.
    let held = l.is_held_invoice(invoice).unwrap();
    held.expect("a sale sold with a hold invoice")
}

/// Waits (in paused time) until the simulated node says `want` of the invoice.
async fn wait_hold(m: &TestMachine, id: &InvoiceId, want: fn(HoldState) -> bool) -> HoldState {
    for _ in 0..600 {
        if let Some(s) = m.sim().hold_of(id) {
            if want(s) {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hold never got there: {:?}", m.sim().hold_of(id));
}

#[tokio::test(start_paused = true)]
async fn a_held_payment_is_poured_once_and_taken_only_after_the_pour() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), HOLD));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.sim().pay(&inv.id).unwrap();
    m.wait_screen(Screen::Pouring).await;
    assert!(
        matches!(m.sim().hold_of(&inv.id), Some(HoldState::Accepted { .. })),
        "held, not taken, while the drink pours"
    );
    m.wait_screen(Screen::ThankYou).await;
    wait_hold(&m, &inv.id, |s| s == HoldState::Settled).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(4000), 1));
    assert_eq!(m.sim().hold_calls(), 1, "settled once");
    let metrics = m.metrics.encode();
    assert!(
        metrics.contains("lnvend_holds_total{outcome=\"held\"} 1")
            && metrics.contains("lnvend_holds_total{outcome=\"settled\"} 1"),
        "{metrics}"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pump_fault_gives_the_money_back_and_owes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), HOLD));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.sim().pay(&inv.id).unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.gpio.inject_fault(true);
    let fault = m.wait_screen(Screen::Fault).await;
    assert_eq!(fault.message, RETURNED_TEXT);
    assert!(!fault.fault_refund, "nothing to claim");
    wait_hold(&m, &inv.id, |s| s == HoldState::Canceled).await;
    m.gpio.inject_fault(false);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let sale = sale_of(&l, &inv.id);
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Returned));
    assert!(l.owed().unwrap().is_empty(), "no credit: the money is back");
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn cancel_on_screen_with_the_payment_in_flight_returns_it_and_pours_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), HOLD));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    // The payment is held at the node just as the customer taps Cancel.
    m.sim().pay(&inv.id).unwrap();
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    wait_hold(&m, &inv.id, |s| s == HoldState::Canceled).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never a pour on an idle screen");
    assert!(
        m.sim().pay(&inv.id).is_err(),
        "a cancelled hold takes no payment"
    );
    assert_eq!(
        m.sim().withdraw_asks(),
        0,
        "a hold invoice is cancelled, never withdrawn as a plain one"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hold_invoice_left_to_run_out_is_cancelled_not_left_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), HOLD));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.wait_screen_within(Screen::Idle, Duration::from_secs(400))
        .await;
    wait_hold(&m, &inv.id, |s| s == HoldState::Canceled).await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_payment_held_while_lnvend_was_down_is_returned_at_start_never_poured() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), HOLD);
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.shutdown().await;
    // Paid (held) at the node while the machine is off, as after a crash before the pump.
    let sim =
        lnvend::backend::sim::SimBackend::new().with_store(dir.path().join("sim-backend.json"));
    sim.pay(&inv.id).unwrap();
    drop(sim);
    let m = TestMachine::start(&cfg);
    wait_hold(&m, &inv.id, |s| s == HoldState::Canceled).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

/// Pays for Cola (held), lets it pour 1.5 s of its 4 s, and returns the machine and invoice.
async fn midway(cfg: &lnvend::config::Config) -> (TestMachine, InvoiceId) {
    let mut m = TestMachine::start(cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.sim().pay(&inv.id).unwrap();
    m.wait_screen(Screen::Pouring).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (m, inv.id)
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_pour_is_settled_at_the_next_start_and_owed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), HOLD);
    let (m, id) = midway(&cfg).await;
    // Killed mid-pour: the ledger still says "pouring", the payment is still held.
    m.crash().await;
    let m = TestMachine::start(&cfg);
    wait_hold(&m, &id, |s| s == HoldState::Settled).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let sale = sale_of(&l, &id);
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Owed));
    assert_eq!(l.owed().unwrap().len(), 1, "owed once");
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_pour_reports_a_pump_failure_and_returns_the_money() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), HOLD);
    let (m, id) = midway(&cfg).await;
    m.shutdown().await;
    // Whether the cancel went out before the stop or at the next start, it is returned.
    let m = TestMachine::start(&cfg);
    wait_hold(&m, &id, |s| s == HoldState::Canceled).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let sale = sale_of(&l, &id);
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Returned));
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_crash_after_the_pour_before_the_settle_is_settled_at_start_and_not_owed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), HOLD);
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.sim().pay(&inv.id).unwrap();
    // The node is unreachable as the pour ends: the settle cannot go out before the crash.
    m.wait_screen(Screen::Pouring).await;
    m.sim().set_down(true);
    m.wait_screen(Screen::ThankYou).await;
    assert!(matches!(
        m.sim().hold_of(&inv.id),
        Some(HoldState::Accepted { .. })
    ));
    m.crash().await;
    let m = TestMachine::start(&cfg);
    m.sim().set_down(false);
    wait_hold(&m, &inv.id, |s| s == HoldState::Settled).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty(), "poured: nothing owed");
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hold_the_node_settled_by_itself_while_lnvend_was_down_is_a_paid_sale_owed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), HOLD);
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.shutdown().await;
    let sim =
        lnvend::backend::sim::SimBackend::new().with_store(dir.path().join("sim-backend.json"));
    sim.pay(&inv.id).unwrap();
    sim.settle_by_itself(&inv.id).unwrap();
    drop(sim);
    let mut m = TestMachine::start(&cfg);
    let idle = m
        .wait_for(Duration::from_secs(30), "the credit offered", |v| {
            v.screen == Screen::Idle && !v.credits.is_empty()
        })
        .await;
    assert_eq!(idle.credits.len(), 1);
    assert_eq!(
        on_time(&m.gpio, ENA).1,
        0,
        "owed, not poured on an idle screen"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1);
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn auto_on_a_backend_that_cannot_hold_sells_exactly_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(
        dir.path(),
        "[backend]\nkind = \"sim\"\nhold = \"auto\"\n",
    ));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    assert_eq!(m.sim().hold_of(&inv.id), None, "an ordinary invoice");
    m.sim().pay(&inv.id).unwrap();
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(4000), 1));
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.is_held_invoice(&inv.id).unwrap(), None);
}

/// `hold = "auto"` on a node that says it can hold but refuses lnvend's hold invoices (its
/// plugin's margin is longer than the QR): the customer still gets a QR, a plain invoice,
/// and a drink for the payment, this sale and the next; nothing is held or owed.
#[tokio::test(start_paused = true)]
async fn auto_falls_back_to_plain_invoices_when_the_node_refuses_a_hold_invoice() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(
        dir.path(),
        "[backend]\nkind = \"sim\"\nhold = \"auto\"\n",
    ));
    // Before the controller's first poll (paused time): its probe at start hears "yes".
    m.sim().set_holds(true);
    m.sim().refuse_hold_invoices(true);
    let mut invoices = Vec::new();
    for _ in 0..2 {
        m.wait_screen(Screen::Idle).await;
        m.tap(0);
        m.wait_screen(Screen::Payment).await;
        let inv = m.sim().latest().unwrap();
        assert_eq!(m.sim().hold_of(&inv.id), None, "a plain invoice");
        m.sim().pay(&inv.id).unwrap();
        m.wait_screen(Screen::ThankYou).await;
        invoices.push(inv.id);
    }
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(8000), 2));
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    for id in &invoices {
        assert_eq!(l.is_held_invoice(id).unwrap(), None);
    }
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

/// A pulse cannot be taken back, and a failed pulse pattern is no proof that no pulse went
/// out: with `hold = "always"` a pulse product still gets a plain invoice, so its failure
/// is an owed credit, never a returned payment (which could give the goods away).
#[tokio::test(start_paused = true)]
async fn a_pulse_sale_gets_a_plain_invoice_with_holds_on_and_its_failure_is_owed() {
    const COIN: u8 = 26;
    let dir = tempfile::tempdir().unwrap();
    let pulse = format!(
        "[[product]]\nname = \"Snack\"\nprice_sat = 1000\ndispenser = \"pulse\"\n\
         pulse_pin = {COIN}\npulse_ms = 120\npulses = 3\ngap_ms = 300\n"
    );
    let mut m = TestMachine::start(&config(dir.path(), &format!("{HOLD}{pulse}")));
    m.wait_screen(Screen::Idle).await;
    m.tap(2);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    assert_eq!(m.sim().hold_of(&inv.id), None, "a plain invoice");
    m.sim().pay(&inv.id).unwrap();
    m.wait_screen(Screen::Pouring).await;
    // The first pulse went out; the line fails before the second.
    tokio::time::sleep(Duration::from_millis(200)).await;
    m.gpio.inject_fault(true);
    m.wait_screen(Screen::Fault).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        m.sim().hold_of(&inv.id),
        None,
        "nothing held, nothing returned"
    );
    assert_eq!(m.sim().hold_calls(), 0);
    m.gpio.inject_fault(false);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.is_held_invoice(&inv.id).unwrap(), None);
    assert_eq!(l.owed().unwrap().len(), 1, "the paid sale is owed");
    assert!(l.unresolved_holds().unwrap().is_empty());
}
