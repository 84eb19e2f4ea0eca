//! The machine with `kind = "nwc"` against a REAL Nostr relay (PyPI nostr-relay, each test
//! its own process on a free loopback port) and lnvend's own NIP-47 wallet service fake
//! (`lnvend::backend::nwc::fake::FakeWallet`: NIP-44, notifications), both speaking over real
//! websockets. Time is real, so pours are short (300 ms).
//!
//! What is checked is what a customer or an operator would notice: the screen, the pin
//! record of the mock pump, and the sales ledger.
//!
//! The relay's virtualenv comes from `./scripts/nostr-relay-venv`; set `NOSTR_RELAY_VENV` to
//! use another one.

mod common;
#[path = "support/nostr_relay.rs"]
mod nostr_relay;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lnvend::backend::nwc::fake::{FakeWallet, WalletBehaviour};
use lnvend::backend::nwc::link::{Connector, WsConnector};
use lnvend::controller::Screen;
use lnvend::ledger::Ledger;
use lnvend::nostr::nip44::{self, ConversationKey};
use lnvend::nostr::nwc::{Connection, KIND_NOTIFICATION_NIP44};
use lnvend::nostr::relay::event_message;
use lnvend::nostr::{Keys, UnsignedEvent};
use nostr_relay::{free_port, Relay};

const STEP: Duration = Duration::from_secs(30);

fn venv() -> PathBuf {
    nostr_relay::venv().unwrap_or_else(|| {
        panic!("no nostr-relay virtualenv: run ./scripts/nostr-relay-venv or set NOSTR_RELAY_VENV")
    })
}

fn ws() -> Arc<dyn Connector> {
    Arc::new(WsConnector {
        tls: Default::default(),
        timeout: Duration::from_secs(5),
    })
}

fn log_to_test() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(lnvend::logging::filter(Some("lnvend=debug")))
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .try_init();
}

fn machine_config(dir: &Path, wallet: &FakeWallet) -> lnvend::config::Config {
    std::fs::create_dir_all(dir).unwrap();
    let uri_file = dir.join("nwc.uri");
    std::fs::write(&uri_file, wallet.uri().expose()).unwrap();
    short_pour_config(
        dir,
        &format!(
            "\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"{}\"\nrequest_timeout_ms = 5000\nnetwork = \"regtest\"\n",
            uri_file.display()
        ),
    )
}

/// The payment hash of the BOLT11 on screen.
fn hash_on_screen(m: &TestMachine) -> String {
    let uri = m.views.borrow().payment_uri.clone();
    let bolt11 = uri
        .strip_prefix("LIGHTNING:")
        .unwrap_or_else(|| panic!("not a lightning URI: {uri}"))
        .to_ascii_lowercase();
    lnvend::bolt11::decode(&bolt11).unwrap().payment_hash
}

async fn start_all() -> (tempfile::TempDir, Relay, FakeWallet, TestMachine) {
    log_to_test();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&venv(), &dir.path().join("relay"), free_port()).await;
    let url = url::Url::parse(&relay.url()).unwrap();
    let wallet = FakeWallet::start(ws(), url, WalletBehaviour::default());
    let mut m = TestMachine::start(&machine_config(&dir.path().join("machine"), &wallet));
    m.wait_screen_within(Screen::Idle, STEP).await;
    (dir, relay, wallet, m)
}

async fn assert_poured_once(m: &TestMachine) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "the pump ran exactly once");
    assert_eq!(on_time(&m.gpio, ENB).1, 0, "the other pump never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_invoice_pours_once_over_a_real_relay() {
    let (dir, _relay, wallet, mut m) = start_all().await;
    m.tap(0);
    let v = m.wait_screen_within(Screen::Payment, STEP).await;
    assert_eq!(v.amount, "2,100 sats");
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing before payment");
    assert!(wallet.pay(&hash_on_screen(&m)).await);
    m.wait_screen_within(Screen::Pouring, Duration::from_secs(10))
        .await;
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    assert_poured_once(&m).await;
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("machine")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_notifications_through_a_real_relay_pour_nothing() {
    let (_dir, relay, wallet, mut m) = start_all().await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, STEP).await;
    let hash = hash_on_screen(&m);
    let conn = Connection::parse(wallet.uri().expose()).unwrap();
    // Anyone can publish to a relay: a stranger's "payment_received", and the wallet's own
    // (genuinely signed) notification for an invoice nobody paid, many times over.
    let stranger = Keys::generate();
    let body = serde_json::json!({"notification_type": "payment_received",
        "notification": {"type": "incoming", "payment_hash": hash, "amount": 2_100_000,
                         "state": "settled", "settled_at": 1}});
    let forge = |keys: &Keys| {
        let content = nip44::encrypt(
            &ConversationKey::new(keys, &conn.client()),
            &body.to_string(),
        )
        .unwrap();
        UnsignedEvent {
            created_at: lnvend::clock::unix_of(std::time::SystemTime::now()),
            kind: KIND_NOTIFICATION_NIP44,
            tags: vec![vec!["p".into(), conn.client().to_hex()]],
            content,
        }
        .sign(keys)
        .unwrap()
    };
    let url = url::Url::parse(&relay.url()).unwrap();
    let mut link = ws().connect(&url).await.unwrap();
    link.send(event_message(&forge(&stranger))).await.unwrap();
    for _ in 0..5 {
        wallet.notify(&hash).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.screen(), Screen::Payment, "still waiting for a payment");
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured");
    // The real payment still pours.
    assert!(wallet.pay(&hash).await);
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    assert_poured_once(&m).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_while_the_relay_restarts_is_found_and_poured_once() {
    let (_dir, mut relay, wallet, mut m) = start_all().await;
    m.tap(0);
    m.wait_screen_within(Screen::Payment, STEP).await;
    let hash = hash_on_screen(&m);
    relay.kill();
    // Paid while the relay is down: the notification is lost on the way.
    assert!(wallet.pay(&hash).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    relay.restart().await;
    m.wait_screen_within(Screen::ThankYou, Duration::from_secs(60))
        .await;
    assert_poured_once(&m).await;
    m.shutdown().await;
}
