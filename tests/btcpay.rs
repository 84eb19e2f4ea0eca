//! The BTCPay backend against a fake Greenfield server (see `fake_btcpay`), whole machine:
//! controller, mock pump, ledger. Real sockets, so real time: pours are short (300 ms) and
//! every wait is bounded. Every test ends by checking the fake saw no schema violation.
//! Tests that count the process's open file descriptors run alone (see [`GATE`]).

mod common;
mod fake_btcpay;

use std::time::{Duration, Instant};

use common::*;
use fake_btcpay::{FakeBtcpay, KEY, STORE};
use lnvend::backend::btcpay::BtcpayBackend;
use lnvend::backend::{InvoiceRequest, InvoiceState, PaymentBackend};
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, Screen};
use lnvend::ledger::Ledger;
use lnvend::money::Msat;

const POUR: Duration = Duration::from_millis(300);

/// Every test holds it: shared by default, exclusively by a test that counts the process's
/// file descriptors, so no other test's sockets come and go during its count.
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn config(dir: &std::path::Path, fake: &FakeBtcpay, extra_backend: &str, product: &str) -> Config {
    let text = format!(
        r#"
machine_id = "bar-7"
data_dir = "{}"
invoice_expiry_s = 300
currency = "EUR"

[[product]]
name = "Cola"
{product}
pour_ms = 300

# This test host's clock need not be NTP-synchronised.
[clock]
require_sync = false

[gpio]
backend = "mock"

[backend]
kind = "btcpay"
url = "{}"
store_id = "{STORE}"
api_key = "{KEY}"
request_timeout_ms = 2000
network = "regtest"
{extra_backend}
"#,
        dir.display(),
        fake.url()
    );
    Config::parse(&text, "btcpay-test.toml", Mode::Run).expect("config")
}

fn sats_config(dir: &std::path::Path, fake: &FakeBtcpay) -> Config {
    config(dir, fake, "", "price_sat = 2100")
}

async fn wait(m: &mut TestMachine, screen: Screen, within: Duration) -> lnvend::controller::View {
    m.wait_for(within, &format!("{screen:?}"), |v| v.screen == screen)
        .await
}

fn assert_clean(fake: &FakeBtcpay) {
    let errs = fake.schema_errors();
    assert!(
        errs.is_empty(),
        "the fake or lnvend left the Greenfield schema: {errs:#?}"
    );
}

fn assert_poured_once(m: &TestMachine) {
    let (total, times) = on_time(&m.gpio, ENA);
    assert_eq!(times, 1, "the pump ran once");
    let err = total.abs_diff(POUR);
    // Real time on a busy machine: the exact timing is proven under paused time elsewhere.
    assert!(
        err < Duration::from_millis(100),
        "poured {total:?} for a {POUR:?} pour"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_with_the_socket_up_pours_within_a_blink() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    m.tap(0);
    let v = wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    let inv = fake.latest();
    assert_eq!(
        v.payment_uri,
        format!("LIGHTNING:{}", inv.bolt11.to_uppercase())
    );
    assert_eq!(v.amount, "2,100 sats");
    // What lnvend asked BTCPay for.
    let req = &fake.create_requests()[0];
    assert_eq!(req["amount"], "2100");
    assert_eq!(req["currency"], "SATS");
    assert_eq!(
        req["checkout"]["paymentMethods"],
        serde_json::json!(["BTC-LN"])
    );
    assert_eq!(req["checkout"]["expirationMinutes"], 5);
    assert_eq!(req["metadata"]["machineId"], "bar-7");
    let sale_id = req["metadata"]["orderId"].as_str().unwrap().to_string();
    assert!(sale_id.starts_with('S'));
    assert_eq!(
        req["metadata"]["itemDesc"],
        format!("Cola - bar-7 - {sale_id}")
    );
    assert_eq!(fake.latest().metadata["orderId"], sale_id.as_str());
    // Let the socket connect and a keep-alive ping or two pass: they must not pour.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(fake.ws_connects() >= 1);
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    let t0 = Instant::now();
    fake.settle(&inv.id);
    wait(&mut m, Screen::Pouring, Duration::from_secs(2)).await;
    let latency = t0.elapsed();
    // With the socket up the safety poll is 15 s away: only the wake-up can be this fast.
    assert!(
        latency < Duration::from_millis(1500),
        "pay → pour took {latency:?}"
    );
    wait(&mut m, Screen::ThankYou, Duration::from_secs(10)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert_eq!(
        l.sale_state(&lnvend::vend::SaleId(sale_id)).unwrap(),
        Some(lnvend::ledger::SaleState::Poured)
    );
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_while_the_socket_is_down_is_found_by_the_poll() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    fake.ws_enabled(false);
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    fake.settle(&fake.latest().id);
    wait(&mut m, Screen::Pouring, Duration::from_secs(4)).await;
    assert!(
        t0.elapsed() < Duration::from_millis(2600),
        "found within one 2 s poll: {:?}",
        t0.elapsed()
    );
    wait(&mut m, Screen::ThankYou, Duration::from_secs(10)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_dropping_right_after_settlement_loses_nothing() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.settle_and_drop(&fake.latest().id);
    wait(&mut m, Screen::Pouring, Duration::from_secs(4)).await;
    wait(&mut m, Screen::ThankYou, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_invoice_returns_to_idle_without_pouring() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.expire(&fake.latest().id);
    // Said for a few seconds, then the tiles again.
    let v = wait(&mut m, Screen::Expired, Duration::from_secs(3)).await;
    assert!(v.message.contains("nothing was charged"), "{}", v.message);
    wait(&mut m, Screen::Idle, Duration::from_secs(10)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
    assert_clean(&fake);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_wake_the_machine_only_when_signed_and_pour_once_however_often() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    fake.ws_enabled(false);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("webhook_listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"whsec-1\"");
    let mut m = TestMachine::start(&config(dir.path(), &fake, &extra, "price_sat = 2100"));
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    let inv = fake.latest();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/btcpay");
    let event = |kind: &str, delivery: &str| {
        serde_json::json!({
            "deliveryId": delivery, "webhookId": "wh1", "originalDeliveryId": delivery,
            "isRedelivery": false, "type": kind, "timestamp": 1_795_000_000,
            "storeId": STORE, "invoiceId": inv.id, "metadata": {},
            "manuallyMarked": false, "overPaid": false
        })
    };
    // A forged "settled" with a wrong signature, and one with none: refused, no pour.
    let forged = serde_json::to_vec(&event("InvoiceSettled", "d0")).unwrap();
    let r = client
        .post(&url)
        .header("BTCPay-Sig", sign("wrong", &forged))
        .body(forged.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client.post(&url).body(forged).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A correctly signed webhook is still only a wake-up: the invoice is not settled.
    let early = serde_json::to_vec(&event("InvoiceSettled", "d1")).unwrap();
    let r = client
        .post(&url)
        .header("BTCPay-Sig", sign("whsec-1", &early))
        .body(early)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.views.borrow().screen, Screen::Payment);
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    // Settled without any socket frame; the signed webhook wakes the machine at once,
    // well before the 2 s poll, and its redeliveries change nothing.
    fake.settle_silently(&inv.id);
    let body = serde_json::to_vec(&event("InvoiceSettled", "d2")).unwrap();
    let sig = sign("whsec-1", &body);
    fake.schema_check_webhook(&body);
    let t0 = Instant::now();
    for _ in 0..3 {
        let r = client
            .post(&url)
            .header("BTCPay-Sig", &sig)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    wait(&mut m, Screen::Pouring, Duration::from_secs(3)).await;
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "webhook wake-up took {:?}",
        t0.elapsed()
    );
    wait(&mut m, Screen::ThankYou, Duration::from_secs(10)).await;
    for _ in 0..3 {
        let r = client
            .post(&url)
            .header("BTCPay-Sig", &sig)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    assert_eq!(Ledger::open(dir.path()).unwrap().pour_count().unwrap(), 1);
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_a_missing_permission_or_a_wrong_store_means_out_of_service() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sats_config(dir.path(), &fake);
    if let lnvend::config::BackendConfig::Btcpay(b) = &mut cfg.backend {
        b.api_key = Some(lnvend::secret::Secret::new("not-the-key"));
    }
    let mut m = TestMachine::start(&cfg);
    let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(5)).await;
    assert!(v.detail.contains("rejected the API key"), "{}", v.detail);
    assert!(!v.detail.contains("not-the-key"), "the key is never shown");
    m.tap(0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.invoice_count(), 0, "no invoice, no QR");
    m.shutdown().await;

    fake.missing_permission(Some("btcpay.store.canviewinvoices"));
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(5)).await;
    assert!(
        v.detail.contains("btcpay.store.canviewinvoices"),
        "{}",
        v.detail
    );
    m.shutdown().await;
    fake.missing_permission(None);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sats_config(dir.path(), &fake);
    if let lnvend::config::BackendConfig::Btcpay(b) = &mut cfg.backend {
        b.store_id = "NoSuchStore".into();
    }
    let mut m = TestMachine::start(&cfg);
    let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(5)).await;
    assert!(v.detail.contains("not found"), "{}", v.detail);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_storm_is_retried_then_out_of_service_then_recovers() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    // One failure during invoice creation is retried: the customer still gets a QR.
    fake.fail_next(1);
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    m.send(Input::Cancel);
    wait(&mut m, Screen::Idle, Duration::from_secs(2)).await;
    // A storm: out of service, no QR.
    fake.fail_next(1000);
    let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(8)).await;
    assert!(v.detail.contains("server error 500"), "{}", v.detail);
    m.tap(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService);
    // The storm passes: back in service by itself.
    fake.fail_next(0);
    wait(&mut m, Screen::Idle, Duration::from_secs(8)).await;
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fiat_price_is_converted_by_btcpay() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), &fake, "", "price_fiat = \"2.50\""));
    let idle = wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    assert_eq!(idle.tiles[0].price, "€2.50");
    m.tap(0);
    let v = wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    let req = &fake.create_requests()[0];
    assert_eq!(req["amount"], "2.50");
    assert_eq!(req["currency"], "EUR");
    assert_eq!(v.amount, "€2.50 · 2,500 sats");
    let inv = fake.latest();
    assert_eq!(inv.msat, 2_500_000);
    fake.settle(&inv.id);
    wait(&mut m, Screen::ThankYou, Duration::from_secs(10)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bolt11_whose_amount_disagrees_is_never_shown() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    fake.wrong_amount(true);
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    m.tap(0);
    let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(5)).await;
    assert!(v.qr.is_none());
    assert!(
        v.detail.contains("2101000") || v.detail.contains("msat"),
        "{}",
        v.detail
    );
    assert_eq!(fake.invoice_count(), 1, "asked once");
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_or_malformed_replies_mean_out_of_service_never_a_crash_or_a_qr() {
    let _gate = GATE.read().await;
    use fake_btcpay::Hostile;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    for (mode, expect) in [
        (Hostile::Malformed, "malformed JSON"),
        (Hostile::Huge, "over 1048576 bytes"),
        (Hostile::FieldError, "checkout.expirationMinutes: Too long"),
        (
            Hostile::AmountMismatch,
            "BTCPay says the invoice is 1000 msat",
        ),
    ] {
        wait(&mut m, Screen::Idle, Duration::from_secs(8)).await;
        fake.hostile(Some(mode));
        m.tap(0);
        let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(5)).await;
        assert!(v.detail.contains(expect), "{mode:?}: {}", v.detail);
        assert!(v.qr.is_none());
        fake.hostile(None);
    }
    // The machine is still alive and sells again once the server behaves.
    wait(&mut m, Screen::Idle, Duration::from_secs(8)).await;
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owed_sale_is_refunded_as_a_pull_payment_the_customer_scans() {
    let _gate = GATE.read().await;
    use lnvend::controller::OpAction;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pin = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .unwrap()
        .to_string();
    let mut cfg = sats_config(dir.path(), &fake);
    cfg.operator_pin_hash = Some(lnvend::secret::Secret::new(pin.split('"').nth(1).unwrap()));
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    let inv = fake.latest();
    m.gpio.inject_fault(true);
    fake.settle(&inv.id);
    let fault = wait(&mut m, Screen::Fault, Duration::from_secs(5)).await;
    m.gpio.inject_fault(false);
    m.send(Input::DismissFault);
    wait(&mut m, Screen::OutOfService, Duration::from_secs(3)).await;
    m.send(Input::OpenOperator);
    wait(&mut m, Screen::Pin, Duration::from_secs(3)).await;
    m.send(Input::OperatorPin("1234".into()));
    wait(&mut m, Screen::Operator, Duration::from_secs(3)).await;
    m.send(Input::Operator(OpAction::Refund(fault.code.clone())));
    let v = m
        .wait_for(Duration::from_secs(5), "refund QR", |v| {
            v.operator.as_ref().is_some_and(|o| o.refund_qr.is_some())
        })
        .await;
    let op = v.operator.unwrap();
    let bmp = op.refund_qr.unwrap();
    let s = bmp.size as usize;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(s, s, |x, y| bmp.pixels[y * s + x]);
    let link = img.detect_grids()[0].decode().unwrap().1;
    assert!(
        link.starts_with(&format!("{}/pull-payments/PP", fake.url())),
        "{link}"
    );
    assert_eq!(fake.refunds(), vec![inv.id.clone()]);
    // Nothing was measured into the cup: all of it, at the rate it was paid.
    let asked = fake.refund_requests();
    assert_eq!(asked[0].0["refundVariant"], "RateThen");
    assert_eq!(asked[0].1, 2_100_000);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let sale = lnvend::vend::SaleId(fault.code);
    assert_eq!(
        l.sale_state(&sale).unwrap(),
        Some(lnvend::ledger::SaleState::Refunded)
    );
    assert_eq!(l.refunded(&sale).unwrap().unwrap().0, Msat::from_sat(2100));
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_screen_can_refund_the_customer_directly_when_configured() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = sats_config(dir.path(), &fake);
    cfg.refund_on_fault_screen = true;
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    let inv = fake.latest();
    m.gpio.inject_fault(true);
    fake.settle(&inv.id);
    let fault = wait(&mut m, Screen::Fault, Duration::from_secs(5)).await;
    assert!(fault.fault_refund, "the refund is offered");
    m.send(Input::RefundFault);
    m.send(Input::RefundFault);
    let v = m
        .wait_for(Duration::from_secs(5), "refund QR", |v| {
            v.refund_qr.is_some()
        })
        .await;
    let bmp = v.refund_qr.unwrap();
    let s = bmp.size as usize;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(s, s, |x, y| bmp.pixels[y * s + x]);
    let link = img.detect_grids()[0].decode().unwrap().1;
    assert!(link.contains("/pull-payments/PP"), "{link}");
    assert_eq!(
        fake.refunds(),
        vec![inv.id.clone()],
        "refunded once, however often tapped"
    );
    m.send(Input::DismissFault);
    let idle = wait(&mut m, Screen::OutOfService, Duration::from_secs(3)).await;
    assert!(idle.credits.is_empty());
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.sale_state(&lnvend::vend::SaleId(fault.code)).unwrap(),
        Some(lnvend::ledger::SaleState::Refunded)
    );
    assert_clean(&fake);
}

/// The BTCPay backend alone, from the same config as the machines.
fn backend_of(
    dir: &std::path::Path,
    fake: &FakeBtcpay,
    extra: &str,
) -> std::sync::Arc<BtcpayBackend> {
    let cfg = config(dir, fake, extra, "price_sat = 2100");
    let lnvend::config::BackendConfig::Btcpay(b) = &cfg.backend else {
        panic!("not a BTCPay config")
    };
    BtcpayBackend::new(b, "bar-7").expect("backend")
}

fn request(sale: &str) -> InvoiceRequest {
    InvoiceRequest {
        sale_id: sale.into(),
        machine_id: "bar-7".into(),
        product: "Cola".into(),
        price: lnvend::money::Price::Sats(lnvend::money::Msat::from_sat(2100).unwrap()),
        description: "Cola".into(),
        expiry: Duration::from_secs(300),
    }
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; whether it held.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One sale with its status socket connected when the customer pays.
async fn sell(m: &mut TestMachine, fake: &FakeBtcpay) {
    let connects = fake.ws_connects();
    m.tap(0);
    wait(m, Screen::Payment, Duration::from_secs(5)).await;
    assert!(
        eventually(Duration::from_secs(3), || fake.ws_connects() > connects).await,
        "the status socket connected"
    );
    fake.settle(&fake.latest().id);
    wait(m, Screen::ThankYou, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_sales_with_pinged_sockets_leave_no_socket_open() {
    let _gate = GATE.write().await;
    let fake = FakeBtcpay::start().await;
    // BTCPay keeps a settled invoice's socket open and pings it; so does the fake.
    fake.ping_every(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    // One sale first, so that connection pools and the ledger are open before the count.
    let mut sales = 0;
    sell(&mut m, &fake).await;
    sales += 1;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = fds();
    for _ in 0..30 {
        sell(&mut m, &fake).await;
        sales += 1;
    }
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    let closed = eventually(Duration::from_secs(5), || {
        fake.ws_live() == 0 && fds() <= before + 5
    })
    .await;
    assert!(
        closed,
        "after 30 sales: {} fds (before: {before}), {} status sockets still open at the fake",
        fds(),
        fake.ws_live()
    );
    assert_eq!(on_time(&m.gpio, ENA).1, sales, "one pour per sale");
    m.shutdown().await;
    assert_eq!(
        Ledger::open(dir.path()).unwrap().pour_count().unwrap(),
        sales as u64
    );
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_watch_leaves_no_waker_and_no_socket_behind() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    fake.ping_every(Duration::from_millis(100));
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "webhook_listen = \"127.0.0.1:{}\"\nwebhook_secret = \"whsec-1\"",
        free_port()
    );
    let backend = backend_of(dir.path(), &fake, &extra);
    for i in 0..5 {
        let inv = backend
            .create_invoice(&request(&format!("S{i}")))
            .await
            .unwrap();
        let mut rx = backend.wake_ups(&inv.id).await.unwrap();
        assert_eq!(
            backend.webhook_wakers(),
            1,
            "the watch can be woken by a webhook"
        );
        fake.settle(&inv.id.0);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(3), rx.recv()).await,
            Ok(Some(())),
            "the settlement woke the watch"
        );
        // The watch ends: BTCPay keeps the socket open and pings it.
        drop(rx);
        assert!(
            eventually(Duration::from_secs(3), || fake.ws_live() == 0
                && backend.webhook_wakers() == 0)
            .await,
            "sale {i}: {} sockets open, {} wakers left",
            fake.ws_live(),
            backend.webhook_wakers()
        );
    }
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_after_expiry_is_a_payment_and_an_underpaid_one_is_not() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let backend = backend_of(dir.path(), &fake, "");
    let inv = backend.create_invoice(&request("S1")).await.unwrap();
    fake.expire(&inv.id.0);
    assert_eq!(
        backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Expired
    );
    fake.pay_late(&inv.id.0, 2_100_000);
    assert_eq!(
        backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Paid {
            received: Msat::from_msat(2_100_000)
        },
        "paid in full, late"
    );
    // More than asked, late: what was paid.
    let over = backend.create_invoice(&request("S2")).await.unwrap();
    fake.pay_late(&over.id.0, 2_500_000);
    assert_eq!(
        backend.invoice_state(&over.id).await.unwrap(),
        InvoiceState::Paid {
            received: Msat::from_msat(2_500_000)
        }
    );
    // Part of it, late: not a payment (BTCPay still says PaidLate).
    let part = backend.create_invoice(&request("S3")).await.unwrap();
    fake.pay_late(&part.id.0, 2_099_000);
    assert_eq!(
        backend.invoice_state(&part.id).await.unwrap(),
        InvoiceState::Expired
    );
    // Settled and overpaid in time: paid, as before.
    let settled = backend.create_invoice(&request("S4")).await.unwrap();
    fake.settle_over(&settled.id.0, 3_000_000);
    assert!(matches!(
        backend.invoice_state(&settled.id).await.unwrap(),
        InvoiceState::Paid { received } if received >= settled.amount
    ));
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bolt11_for_another_payment_hash_is_never_shown() {
    use fake_btcpay::Hostile;
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    fake.hostile(Some(Hostile::HashMismatch));
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    m.tap(0);
    let v = wait(&mut m, Screen::OutOfService, Duration::from_secs(5)).await;
    assert!(v.qr.is_none(), "no QR");
    assert!(v.detail.contains("payment hash"), "{}", v.detail);
    // Whatever happens to that invoice, nothing pours.
    fake.settle(&fake.latest().id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    // An older server that does not send the hash: accepted, as before.
    fake.hostile(Some(Hostile::NoHash));
    wait(&mut m, Screen::Idle, Duration::from_secs(8)).await;
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_websocket_frame_ends_the_stream_and_the_sale_still_pours_once() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&sats_config(dir.path(), &fake));
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    let inv = fake.latest();
    assert!(eventually(Duration::from_secs(3), || fake.ws_live() == 1).await);
    fake.huge_frame(&inv.id, 1 << 20);
    // lnvend drops that socket (and the watcher reconnects).
    assert!(
        eventually(Duration::from_secs(5), || fake.ws_connects() >= 2).await,
        "the oversized frame ended the stream"
    );
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "a frame is no payment");
    fake.settle(&inv.id);
    wait(&mut m, Screen::ThankYou, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_listener_ends_with_its_backend() {
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let extra = format!("webhook_listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"whsec-1\"");
    let backend = backend_of(dir.path(), &fake, &extra);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok());
    drop(backend);
    assert!(
        eventually(Duration::from_secs(3), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_err())
        .await,
        "nothing listens once the backend is gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_flood_neither_stops_a_sale_nor_keeps_sockets() {
    use tokio::io::AsyncWriteExt;
    let _gate = GATE.write().await;
    let fake = FakeBtcpay::start().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("webhook_listen = \"127.0.0.1:{port}\"\nwebhook_secret = \"whsec-1\"");
    let mut m = TestMachine::start(&config(dir.path(), &fake, &extra, "price_sat = 2100"));
    wait(&mut m, Screen::Idle, Duration::from_secs(15)).await;
    let before = fds();
    let t0 = Instant::now();
    // 1,000 connections that send nothing, or half a header, and stay open.
    let mut conns = tokio::task::JoinSet::new();
    for i in 0..1000 {
        conns.spawn(async move {
            let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
            let mut s = tokio::time::timeout(Duration::from_secs(3), connect)
                .await
                .ok()?
                .ok()?;
            if i % 2 == 1 {
                let _ = s.write_all(b"POST /btcpay HTTP/1.1\r\nHost: mach").await;
            }
            Some(s)
        });
    }
    let mut held = Vec::new();
    while let Some(r) = conns.join_next().await {
        held.extend(r.unwrap());
    }
    // The listener serves at most 32 of them; the rest are closed as they are accepted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        fds() <= before + held.len() + 32 + 20,
        "{} fds with {} flood sockets held (before: {before}): the listener kept more than 32",
        fds(),
        held.len()
    );
    // 200 parallel 1 MiB bodies, unsigned.
    let client = reqwest::Client::new();
    let body = axum::body::Bytes::from(vec![b'{'; 1 << 20]);
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (client, body) = (client.clone(), body.clone());
        let url = format!("http://127.0.0.1:{port}/btcpay");
        posts.spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(15), client.post(url).body(body).send())
                    .await;
        });
    }
    // A customer buys meanwhile.
    m.tap(0);
    wait(&mut m, Screen::Payment, Duration::from_secs(5)).await;
    fake.settle(&fake.latest().id);
    wait(&mut m, Screen::ThankYou, Duration::from_secs(5)).await;
    while posts.join_next().await.is_some() {}
    // Once the header timeout has passed, the listener holds none of the flood's sockets,
    // although the flood still holds its own ends.
    let drained = eventually(Duration::from_secs(12), || {
        fds() <= before + held.len() + 10
    })
    .await;
    assert!(
        drained,
        "{} fds with {} flood sockets held (before: {before})",
        fds(),
        held.len()
    );
    drop(held);
    drop(client);
    assert!(
        eventually(Duration::from_secs(5), || fds() <= before + 10).await,
        "{} fds after the flood (before: {before})",
        fds()
    );
    // The listener still answers a genuine delivery.
    let event = serde_json::to_vec(&serde_json::json!({
        "type": "InvoiceSettled", "storeId": STORE, "invoiceId": fake.latest().id
    }))
    .unwrap();
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/btcpay"))
        .header("BTCPay-Sig", sign("whsec-1", &event))
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t0.elapsed() < Duration::from_secs(45), "{:?}", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_poured_once(&m);
    m.shutdown().await;
    assert_clean(&fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_webhook_is_refused_without_waiting_for_its_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "webhook_listen = \"127.0.0.1:{}\"\nwebhook_secret = \"whsec-1\"",
        free_port()
    );
    let backend = backend_of(dir.path(), &fake, &extra);
    let addr = backend.webhook_addr().unwrap();
    // Announces a 1 MiB body and never sends it.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /btcpay HTTP/1.1\r\nHost: m\r\nContent-Length: 1048576\r\n\r\n{")
        .await
        .unwrap();
    let mut reply = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut reply))
        .await
        .expect("an answer before the body timeout")
        .unwrap();
    let head = String::from_utf8_lossy(&reply[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_body_that_trickles_is_cut_off_after_ten_seconds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _gate = GATE.read().await;
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "webhook_listen = \"127.0.0.1:{}\"\nwebhook_secret = \"whsec-1\"",
        free_port()
    );
    let backend = backend_of(dir.path(), &fake, &extra);
    let addr = backend.webhook_addr().unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /btcpay HTTP/1.1\r\nHost: m\r\nBTCPay-Sig: {}\r\nContent-Length: 100\r\n\r\n",
        sign("whsec-1", b"x")
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    // A byte a second: never idle, never done.
    let trickle = async {
        for _ in 0..30 {
            if s.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), trickle).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(16),
        "cut off after {took:?}"
    );
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );
}
