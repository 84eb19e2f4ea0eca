//! A partly poured drink is refunded only its undelivered share, whole machine: a short pour
//! by volume (the time limit came before the volume), then the refund by hand from the
//! operator's Credits tab (the simulated backend cannot refund by itself, like LNbits and
//! Core Lightning) in paused time, and the refund from the fault screen through BTCPay's
//! Greenfield API (a fake server, so real time) as a pull payment of exactly that share.

mod common;
mod fake_btcpay;

use std::time::Duration;

use common::{TestMachine, ENA};
use fake_btcpay::{FakeBtcpay, KEY, STORE};
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, OpTab, Screen};
use lnvend::ledger::{Ledger, SaleState};
use lnvend::money::Msat;
use lnvend::vend::SaleId;

const PRICE_SAT: u64 = 600;
const DRINK_ML: u32 = 300;

/// Water: 600 sats for 300 ml by volume through a 450 pulses/l sensor whose line flows
/// `ml_per_s`, at most `limit_ms` per pour; `backend` is the `[backend]` table (empty: the
/// simulator), `top` more top-level keys.
fn config_text(
    dir: &std::path::Path,
    ml_per_s: f64,
    limit_ms: u64,
    flow: &str,
    top: &str,
    backend: &str,
) -> String {
    let pin_line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    format!(
        r#"
{pin_line}
machine_id = "share-test"
data_dir = "{}"
{top}

[[product]]
name = "Water"
price_sat = {PRICE_SAT}
pour_ms = {limit_ms}
volume_ml = {DRINK_ML}

[clock]
require_sync = false

[gpio]
backend = "mock"

[gpio.channel_a]
in1 = 23
in2 = 24
ena = 18

[gpio.channel_a.flow]
pin = 17
pulses_per_litre = 450
mock_ml_per_s = {ml_per_s}
{flow}

{backend}
"#,
        dir.display()
    )
}

/// The undelivered share of the price, rounded up to a whole sat (the customer's favour).
fn share_sat(poured_ml: u32, owed_ml: u32) -> u64 {
    let drink = u64::from(poured_ml + owed_ml);
    (PRICE_SAT * u64::from(owed_ml)).div_ceil(drink)
}

/// The ml the ledger holds for a sale: (poured, owed).
fn ml_of(dir: &std::path::Path, sale: &SaleId) -> (u32, u32) {
    let l = Ledger::open(dir).unwrap();
    (
        l.poured_ml(sale).unwrap().unwrap(),
        l.owed_ml(sale)
            .unwrap()
            .expect("a short pour owes the rest"),
    )
}

#[tokio::test(start_paused = true)]
async fn a_short_pours_refund_by_hand_is_the_undelivered_share_shown_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // 10 ml/s for at most 12 s: about 120 of 300 ml.
    let text = config_text(dir.path(), 10.0, 12_000, "", "", "");
    let cfg = Config::parse(&text, "share.toml", Mode::Sim).unwrap();
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    let fault = m.wait_screen(Screen::Fault).await;
    let sale = SaleId(fault.code.clone());
    let (poured, owed) = ml_of(dir.path(), &sale);
    assert!((100..=140).contains(&poured), "{poured} ml");
    assert_eq!(poured + owed, DRINK_ML);
    let share = share_sat(poured, owed);
    assert!(share < PRICE_SAT && share > PRICE_SAT / 2, "{share} sats");
    m.send(Input::DismissFault);
    m.wait_screen(Screen::Idle).await;

    // `lnvend sales` tells the operator what to refund: the share, not the price.
    let report = lnvend::cli::sales_report(&cfg, 0, false).unwrap();
    assert!(
        report.contains(&format!("owed credits: 1 ({share} sats)")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{share} sats of {PRICE_SAT} sats ({owed} of {DRINK_ML} ml owed)"
        )),
        "{report}"
    );

    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await;
    m.send(Input::Operator(OpAction::Tab(OpTab::Credits)));
    let v = m
        .wait_for(Duration::from_secs(5), "the Credits tab", |v| {
            v.operator.as_ref().is_some_and(|o| o.tab == OpTab::Credits)
        })
        .await;
    let credits = v.operator.unwrap().credits;
    assert_eq!(credits.len(), 1);
    assert!(
        credits[0]
            .text
            .contains(&format!("{share} sats of {PRICE_SAT} sats")),
        "{}",
        credits[0].text
    );
    m.send(Input::Operator(OpAction::Refund(fault.code.clone())));
    let v = m
        .wait_for(Duration::from_secs(5), "the refund", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| !o.refund_text.is_empty())
        })
        .await;
    let op = v.operator.unwrap();
    assert_eq!(
        op.refund_text,
        format!("Refund {share} sats by hand; receipt code {}", fault.code)
    );
    assert!(op.refund_qr.is_none());
    // A second tap refunds nothing more.
    m.send(Input::Operator(OpAction::Refund(fault.code.clone())));
    let v = m
        .wait_for(Duration::from_secs(5), "the refusal", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| o.message.contains("not an owed credit"))
        })
        .await;
    assert!(v.operator.unwrap().credits.is_empty());
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Refunded));
    assert_eq!(
        l.refunded(&sale).unwrap(),
        Some((
            Msat::from_sat(share),
            format!("by hand, receipt {}", fault.code)
        ))
    );
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_pours_refund_from_btcpay_is_a_pull_payment_of_exactly_the_undelivered_share() {
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backend = format!(
        r#"[backend]
kind = "btcpay"
url = "{}"
store_id = "{STORE}"
api_key = "{KEY}"
request_timeout_ms = 2000
network = "regtest""#,
        fake.url()
    );
    // 100 ml/s for at most 700 ms: about 70 of 300 ml, in real time.
    let text = config_text(
        dir.path(),
        100.0,
        700,
        "no_flow_ms = 300",
        "refund_on_fault_screen = true",
        &backend,
    );
    let cfg = Config::parse(&text, "share-btcpay.toml", Mode::Run).unwrap();
    let mut m = TestMachine::start(&cfg);
    m.wait_screen_within(Screen::Idle, Duration::from_secs(15))
        .await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, Duration::from_secs(5))
        .await;
    let inv = fake.latest();
    fake.settle(&inv.id);
    let fault = m
        .wait_screen_within(Screen::Fault, Duration::from_secs(10))
        .await;
    assert!(
        fault.message.contains("Only part of your drink"),
        "{}",
        fault.message
    );
    assert!(
        fault.fault_refund,
        "the share is offered back on the fault screen"
    );
    let sale = SaleId(fault.code.clone());
    let (poured, owed) = ml_of(dir.path(), &sale);
    assert!(poured > 0 && poured < DRINK_ML / 2, "{poured} ml");
    let share = share_sat(poured, owed);
    m.send(Input::RefundFault);
    m.send(Input::RefundFault);
    let v = m
        .wait_for(Duration::from_secs(5), "the refund QR", |v| {
            v.refund_qr.is_some()
        })
        .await;
    assert!(v.detail.is_empty(), "{}", v.detail);
    let asked = fake.refund_requests();
    assert_eq!(asked.len(), 1, "one refund, however often tapped");
    let (body, msat) = &asked[0];
    assert_eq!(body["refundVariant"], "Custom");
    assert_eq!(body["customCurrency"], "BTC");
    assert_eq!(body["customAmount"], format!("0.{share:08}"));
    assert_eq!(*msat, share * 1000, "the pull payment holds the share");
    assert_eq!(common::on_time(&m.gpio, ENA).1, 1, "poured once");
    m.send(Input::DismissFault);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Refunded));
    assert_eq!(l.refunded(&sale).unwrap().unwrap().0, Msat::from_sat(share));
    let errs = fake.schema_errors();
    assert!(errs.is_empty(), "{errs:#?}");
}

/// A short pour of Water paid through the fake BTCPay (real time), whose refunds are
/// answered only after `refund_delay`: the machine on its fault screen, and its sale.
async fn btcpay_fault(
    fake: &FakeBtcpay,
    dir: &std::path::Path,
    refund_delay: Duration,
) -> (TestMachine, SaleId) {
    fake.refund_delay(refund_delay);
    let backend = format!(
        r#"[backend]
kind = "btcpay"
url = "{}"
store_id = "{STORE}"
api_key = "{KEY}"
request_timeout_ms = 5000
network = "regtest""#,
        fake.url()
    );
    let text = config_text(
        dir,
        100.0,
        700,
        "no_flow_ms = 300",
        "refund_on_fault_screen = true",
        &backend,
    );
    let cfg = Config::parse(&text, "share-btcpay.toml", Mode::Run).unwrap();
    let mut m = TestMachine::start(&cfg);
    m.wait_screen_within(Screen::Idle, Duration::from_secs(15))
        .await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, Duration::from_secs(5))
        .await;
    fake.settle(&fake.latest().id);
    let fault = m
        .wait_screen_within(Screen::Fault, Duration::from_secs(10))
        .await;
    assert!(fault.fault_refund);
    (m, SaleId(fault.code))
}

/// Asks for the refund on the fault screen and waits for "Preparing your refund…".
async fn ask_refund(m: &mut TestMachine) {
    m.send(Input::RefundFault);
    let v = m
        .wait_for(Duration::from_secs(5), "the refund being prepared", |v| {
            v.refund_text == "Preparing your refund…"
        })
        .await;
    assert!(v.refund_qr.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_screen_waits_for_its_refund_and_shows_the_link_there() {
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut m, sale) = btcpay_fault(&fake, dir.path(), Duration::from_millis(1500)).await;
    ask_refund(&mut m).await;
    // Done while nothing visible happened yet: the screen stays, for the answer.
    m.send(Input::DismissFault);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.screen(), Screen::Fault);
    let v = m
        .wait_for(Duration::from_secs(5), "the refund QR", |v| {
            v.refund_qr.is_some()
        })
        .await;
    assert_eq!(v.screen, Screen::Fault);
    m.send(Input::DismissFault);
    m.wait_screen_within(Screen::Idle, Duration::from_secs(5))
        .await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Refunded));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_for_a_sale_settled_meanwhile_shows_no_claim_link() {
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut m, sale) = btcpay_fault(&fake, dir.path(), Duration::from_millis(1500)).await;
    ask_refund(&mut m).await;
    // Settled by other means while the backend made the refund.
    assert!(Ledger::open(dir.path())
        .unwrap()
        .mark_settled(&sale)
        .unwrap());
    let v = m
        .wait_for(Duration::from_secs(5), "the refund's answer", |v| {
            v.refund_text != "Preparing your refund…"
        })
        .await;
    assert!(v.refund_qr.is_none(), "no link for a sale no longer owed");
    assert_eq!(
        v.refund_text,
        "The refund failed. Show the code to the operator."
    );
    assert!(v.detail.contains("no longer owed"), "{}", v.detail);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Settled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_the_ledger_cannot_record_shows_no_link_and_stops_sales() {
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut m, sale) = btcpay_fault(&fake, dir.path(), Duration::from_millis(1500)).await;
    ask_refund(&mut m).await;
    // Another writer holds the ledger while the answer comes: it cannot be recorded.
    let lock = rusqlite::Connection::open(dir.path().join("sales.db")).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let v = m
        .wait_for(Duration::from_secs(10), "the refund's answer", |v| {
            v.refund_text != "Preparing your refund…"
        })
        .await;
    assert!(v.refund_qr.is_none(), "no link for a refund not recorded");
    assert!(v.detail.contains("NOT recorded"), "{}", v.detail);
    m.send(Input::DismissFault);
    // Out of service, as after a pour the ledger could not record: no credit to pour.
    m.wait_screen_within(Screen::OutOfService, Duration::from_secs(5))
        .await;
    assert!(m.views.borrow().credits.is_empty());
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    // Recorded once the ledger can, with the link the backend made.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let state = Ledger::open(dir.path()).unwrap().sale_state(&sale).unwrap();
        if state == Some(SaleState::Refunded) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{state:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(fake.refund_requests().len(), 1);
    m.shutdown().await;
}

/// A refund asked for just before the fault screen's own 120 s run out, answered after them
/// (BTCPay slow): the screen waits for the answer, then keeps it up for the customer to scan
/// instead of letting it vanish with the timer. Real time (the fake BTCPay), so ~2 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_answer_that_comes_after_the_fault_screens_time_stays_to_be_scanned() {
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut m, _sale) = btcpay_fault(&fake, dir.path(), Duration::from_secs(4)).await;
    // 118 s into the fault screen's 120 (it came up a moment before `btcpay_fault` returned).
    tokio::time::sleep(Duration::from_secs(118)).await;
    assert_eq!(m.screen(), Screen::Fault);
    ask_refund(&mut m).await;
    let v = m
        .wait_for(Duration::from_secs(10), "the refund QR", |v| {
            v.refund_qr.is_some()
        })
        .await;
    assert_eq!(v.screen, Screen::Fault);
    // Past the screen's own time, the claim QR stays up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    m.wait_for(Duration::from_millis(1), "the claim QR still shown", |v| {
        v.screen == Screen::Fault && v.refund_qr.is_some()
    })
    .await;
    m.shutdown().await;
}
