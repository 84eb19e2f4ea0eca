//! The machine against a real LNbits (1.6.2, FakeWallet funding source) that each test starts
//! on its own: a fresh data folder, a free loopback port, killed when the test ends. A second
//! LNbits wallet, funded by the super user, pays the machine's invoices the way a customer's
//! wallet would. Time is real, so pours are short (300 ms).
//!
//! What is checked is what a customer or an operator would notice: the screen, the pin record
//! of the mock pump, the sales ledger and the machine wallet's balance.
//!
//! The LNbits virtualenv comes from `./scripts/lnbits-venv` (`./scripts/test` runs it); set
//! `LNBITS_VENV` to use another one.

mod common;
#[path = "support/lnbits_server.rs"]
mod lnbits_server;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lightning_invoice::Bolt11Invoice;
use lnbits_server::{call, free_port, set_up_wallets, Lnbits, Wallets};
use lnvend::controller::Screen;
use lnvend::ledger::Ledger;
use lnvend::pump::mock::PinValue;
use serde_json::json;

const POUR: Duration = Duration::from_millis(300);
/// Real time on a busy machine: how much longer than asked a pour may measure.
const POUR_SLACK: Duration = Duration::from_millis(40);
const STEP: Duration = Duration::from_secs(30);

fn venv() -> PathBuf {
    lnbits_server::venv().unwrap_or_else(|| {
        panic!("no LNbits virtualenv: run ./scripts/lnbits-venv (./scripts/test does it) or set LNBITS_VENV")
    })
}

async fn start_lnbits(data: &Path) -> Lnbits {
    Lnbits::start(&venv(), data, free_port()).await
}

/// The customer's wallet pays `bolt11`.
async fn pay(lnbits: &Lnbits, wallets: &Wallets, bolt11: &str) {
    let paid = call(
        reqwest::Client::new()
            .post(format!("{}/api/v1/payments", lnbits.url()))
            .header("X-Api-Key", &wallets.payer_adminkey)
            .json(&json!({"out": true, "bolt11": bolt11})),
        "pay",
    )
    .await;
    assert_eq!(paid["status"], "success", "{paid}");
}

/// The machine wallet's balance in sats, as the operator sees it in LNbits.
async fn machine_balance_sat(lnbits: &Lnbits, wallets: &Wallets) -> i64 {
    let w = call(
        reqwest::Client::new()
            .get(format!("{}/api/v1/wallet", lnbits.url()))
            .header("X-Api-Key", &wallets.machine_inkey),
        "wallet",
    )
    .await;
    w["balance"].as_i64().expect("balance") / 1000
}

fn machine_config(dir: &Path, lnbits: &Lnbits, wallets: &Wallets) -> lnvend::config::Config {
    short_pour_config(dir, &lnbits_server::backend_toml(lnbits, wallets))
}

/// The BOLT11 on screen, as the customer's wallet would scan it.
fn bolt11_on_screen(m: &TestMachine) -> String {
    let uri = m.views.borrow().payment_uri.clone();
    uri.strip_prefix("LIGHTNING:")
        .unwrap_or_else(|| panic!("not a lightning URI: {uri}"))
        .to_ascii_lowercase()
}

/// Waits past the end of a pour, then checks the pump ran once for the pour time.
async fn assert_poured_once(m: &TestMachine) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (total, times) = on_time(&m.gpio, ENA);
    assert_eq!(times, 1, "the enable pin went high exactly once");
    assert!(
        total >= POUR && total <= POUR + POUR_SLACK,
        "pumped for the pour time: {total:?}"
    );
    assert_eq!(on_time(&m.gpio, ENB).1, 0, "the other pump never ran");
    assert_eq!(m.gpio.level(ENA), Some(PinValue::Level(false)));
}

async fn start_all() -> (tempfile::TempDir, Lnbits, Wallets, TestMachine) {
    // The machine's log, shown only for a failing test.
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry()
            .with(lnvend::logging::filter(Some("lnvend=debug")))
            .with(tracing_subscriber::fmt::layer().with_test_writer())
            .try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lnbits");
    std::fs::create_dir_all(&data).unwrap();
    let lnbits = start_lnbits(&data).await;
    let wallets = set_up_wallets(&lnbits, 100_000).await;
    let mut m = TestMachine::start(&machine_config(
        &dir.path().join("machine"),
        &lnbits,
        &wallets,
    ));
    m.wait_screen_within(Screen::Idle, STEP).await;
    (dir, lnbits, wallets, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_invoice_pours_once_for_the_pour_time() {
    let (dir, lnbits, wallets, mut m) = start_all().await;
    m.tap(0);
    let v = m.wait_screen_within(Screen::Payment, STEP).await;
    assert_eq!(v.amount, "2,100 sats");
    let bolt11 = bolt11_on_screen(&m);
    // A stock FakeWallet invoice: no feature bits, which lightning-invoice's full parse
    // refuses and lnvend's reader does not need.
    assert!(Bolt11Invoice::from_str(&bolt11).is_err());
    let parsed = lnvend::bolt11::decode(&bolt11).unwrap();
    assert_eq!(parsed.amount_msat, Some(2_100_000));
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing before payment");

    pay(&lnbits, &wallets, &bolt11).await;
    m.wait_screen_within(Screen::Pouring, Duration::from_secs(10))
        .await;
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    assert_poured_once(&m).await;
    assert_eq!(machine_balance_sat(&lnbits, &wallets).await, 2100);
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("machine")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_paid_push_on_the_websocket_pours_nothing() {
    let (dir, lnbits, wallets, mut m) = start_all().await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, STEP).await;
    let bolt11 = bolt11_on_screen(&m);
    let hash = lnvend::bolt11::decode(&bolt11).unwrap().payment_hash;

    // Listen on the same socket as the machine, to prove the fake pushes really arrive.
    let ws_url = format!("ws://127.0.0.1:{}/api/v1/ws/{hash}", lnbits.port);
    let (mut listener, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    // Let the machine's watcher connect too.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let fake = r#"{"pending": false, "status": "success"}"#;
    let http = reqwest::Client::new();
    let sent = call(
        http.post(format!("{}/api/v1/ws/{hash}", lnbits.url()))
            .query(&[("data", fake)])
            .body(fake),
        "spoof by POST",
    )
    .await;
    assert_eq!(sent["sent"], true, "{sent}");
    let sent = call(
        http.get(format!(
            "{}/api/v1/ws/{hash}/{}",
            lnbits.url(),
            url::form_urlencoded::byte_serialize(fake.as_bytes()).collect::<String>()
        )),
        "spoof by GET",
    )
    .await;
    assert_eq!(sent["sent"], true, "{sent}");
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(5), listener.next())
            .await
            .expect("the spoofed push reaches the websocket")
            .unwrap()
            .unwrap();
        assert!(msg.to_text().unwrap().contains("success"), "{msg:?}");
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(m.screen(), Screen::Payment, "the QR stays up");
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "the pump never ran");
    assert_eq!(machine_balance_sat(&lnbits, &wallets).await, 0);

    // The real payment still pours, once.
    pay(&lnbits, &wallets, &bolt11).await;
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    assert_poured_once(&m).await;
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("machine")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_made_after_lnbits_restarts_is_found_and_poured_once() {
    let (dir, mut lnbits, wallets, mut m) = start_all().await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, STEP).await;
    let bolt11 = bolt11_on_screen(&m);
    tokio::time::sleep(Duration::from_millis(500)).await;

    lnbits.kill();
    // Long enough for a failed health check and failed polls.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        m.screen(),
        Screen::Payment,
        "the QR stays up while LNbits is away"
    );
    assert_eq!(on_time(&m.gpio, ENA).1, 0);

    lnbits.restart().await;
    pay(&lnbits, &wallets, &bolt11).await;
    m.wait_screen_within(Screen::Pouring, STEP).await;
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    assert_poured_once(&m).await;
    assert_eq!(machine_balance_sat(&lnbits, &wallets).await, 2100);
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("machine")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_invoice_key_keeps_the_machine_out_of_service_without_a_qr() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lnbits");
    std::fs::create_dir_all(&data).unwrap();
    let lnbits = start_lnbits(&data).await;
    let mut wallets = set_up_wallets(&lnbits, 100_000).await;
    wallets.machine_inkey = "0".repeat(32);
    let mut m = TestMachine::start(&machine_config(
        &dir.path().join("machine"),
        &lnbits,
        &wallets,
    ));
    let v = m.wait_screen_within(Screen::OutOfService, STEP).await;
    assert!(
        v.message.contains("Payments are unavailable"),
        "{}",
        v.message
    );
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(m.screen(), Screen::OutOfService);
    assert!(m.views.borrow().qr.is_none(), "no QR without a working key");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_in_lnbits_names_the_machine_the_product_and_the_sale() {
    let (dir, lnbits, wallets, mut m) = start_all().await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, STEP).await;
    let sale = Ledger::open(&dir.path().join("machine"))
        .unwrap()
        .sales_since(0, 10)
        .unwrap()
        .remove(0)
        .sale_id;
    // The operator's view: the machine wallet's payments, as LNbits lists them.
    let payments = call(
        reqwest::Client::new()
            .get(format!("{}/api/v1/payments", lnbits.url()))
            .header("X-Api-Key", &wallets.machine_inkey),
        "payments",
    )
    .await;
    let ours: Vec<&serde_json::Value> = payments
        .as_array()
        .expect("a list of payments")
        .iter()
        .filter(|p| p["extra"]["lnvend_sale_id"] == sale.0.as_str())
        .collect();
    assert_eq!(ours.len(), 1, "{payments}");
    assert_eq!(
        ours[0]["memo"],
        format!("Cola - test-machine - {}", sale.0).as_str()
    );
    assert_eq!(ours[0]["extra"]["lnvend_machine_id"], "test-machine");
    assert_eq!(ours[0]["extra"]["lnvend_product"], "Cola");
    m.shutdown().await;
}
