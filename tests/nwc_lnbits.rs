//! The machine with `kind = "nwc"` against a REAL wallet service: LNbits 1.6.2 (FakeWallet)
//! with its nwcprovider extension (NIP-04 only, no notifications, so the machine polls
//! `lookup_invoice`), over a REAL relay (PyPI nostr-relay). Each test starts its own relay
//! and LNbits on free loopback ports, each in its own process group. The operator's side is
//! done as in the extension's page: a receive-only connection (make_invoice and
//! lookup_invoice), its URI pasted into a file. A second LNbits wallet pays as a
//! customer's wallet would. Time is real, so pours are short (300 ms).
//!
//! What is checked is what a customer or an operator would notice: the screen, the pin
//! record of the mock pump, the sales ledger and the machine wallet's balance.
//!
//! Needs `./scripts/lnbits-venv`, `./scripts/nostr-relay-venv` (or `LNBITS_VENV`,
//! `NOSTR_RELAY_VENV`) and the vendored extension (`LNBITS_NWCPROVIDER`; see
//! tests/support/lnbits_nwc.rs for when its absence fails the test).

mod common;
#[path = "support/lnbits_nwc.rs"]
mod lnbits_nwc;
#[path = "support/lnbits_server.rs"]
mod lnbits_server;
#[path = "support/nostr_relay.rs"]
mod nostr_relay;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use lnbits_nwc::NwcLnbits;
use lnvend::controller::{Input, Screen};
use lnvend::ledger::Ledger;
use nostr_relay::{free_port, Relay};

const STEP: Duration = Duration::from_secs(30);
/// The relay and the wallet service both reconnect with backoff (the service waits 5 s and
/// more after a failed attempt).
const RECONNECT: Duration = Duration::from_secs(90);

fn venvs() -> (PathBuf, PathBuf) {
    let lnbits = lnbits_server::venv().unwrap_or_else(|| {
        panic!("no LNbits virtualenv: run ./scripts/lnbits-venv or set LNBITS_VENV")
    });
    let relay = nostr_relay::venv().unwrap_or_else(|| {
        panic!("no nostr-relay virtualenv: run ./scripts/nostr-relay-venv or set NOSTR_RELAY_VENV")
    });
    (lnbits, relay)
}

fn log_to_test() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(lnvend::logging::filter(Some("lnvend=debug")))
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .try_init();
}

/// The machine's config with the connection URI in a file, as the operator leaves it.
fn machine_config(dir: &Path, uri: &str) -> lnvend::config::Config {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let uri_file = dir.join("nwc.uri");
    std::fs::write(&uri_file, format!("{uri}\n")).unwrap();
    std::fs::set_permissions(&uri_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    short_pour_config(
        dir,
        &format!(
            "\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"{}\"\nrequest_timeout_ms = 5000\nnetwork = \"bitcoin\"\n",
            uri_file.display()
        ),
    )
}

/// The BOLT11 on screen, as the customer's wallet would scan it.
fn bolt11_on_screen(m: &TestMachine) -> String {
    let uri = m.views.borrow().payment_uri.clone();
    uri.strip_prefix("LIGHTNING:")
        .unwrap_or_else(|| panic!("not a lightning URI: {uri}"))
        .to_ascii_lowercase()
}

struct Rig {
    dir: tempfile::TempDir,
    relay: Relay,
    wallet: NwcLnbits,
}

impl Rig {
    /// The relay and LNbits with its NWC service; `None` (the test checks nothing, and says
    /// so) when the extension is not at hand outside CI.
    async fn start() -> Option<Rig> {
        if !lnbits_nwc::available() {
            return None;
        }
        log_to_test();
        let (lnbits_venv, relay_venv) = venvs();
        let dir = tempfile::tempdir().unwrap();
        let relay = Relay::start(&relay_venv, &dir.path().join("relay"), free_port()).await;
        let wallet = NwcLnbits::start(&lnbits_venv, &dir.path().join("lnbits"), &relay.url()).await;
        Some(Rig { dir, relay, wallet })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("machine")
    }

    fn config(&self) -> lnvend::config::Config {
        machine_config(&self.data(), &self.wallet.uri)
    }

    async fn machine(&self) -> TestMachine {
        let mut m = TestMachine::start(&self.config());
        m.wait_screen_within(Screen::Idle, STEP).await;
        m
    }
}

/// Taps Cola and returns the BOLT11 on screen.
async fn buy(m: &mut TestMachine) -> String {
    m.tap(0);
    let v = m.wait_screen_within(Screen::Payment, STEP).await;
    assert_eq!(v.amount, "2,100 sats");
    bolt11_on_screen(m)
}

/// Waits past the end of a pour, then checks the pump ran once.
async fn assert_poured_once(m: &TestMachine) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "the pump ran exactly once");
    assert_eq!(on_time(&m.gpio, ENB).1, 0, "the other pump never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_invoice_from_the_lnbits_nwc_service_pours_once() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let mut m = rig.machine().await;
    let bolt11 = buy(&mut m).await;
    let parsed = lnvend::bolt11::decode(&bolt11).unwrap();
    assert_eq!(parsed.amount_msat, Some(2_100_000), "the price, in the QR");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(m.screen(), Screen::Payment, "unpaid: the QR stays up");
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing before payment");

    rig.wallet.pay(&bolt11).await;
    m.wait_screen_within(Screen::Pouring, STEP).await;
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    assert_poured_once(&m).await;
    assert_eq!(rig.wallet.machine_sat().await, 2100, "the wallet got paid");
    m.shutdown().await;
    let l = Ledger::open(&rig.data()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_then_pay_over_lnbits_nwc_is_an_owed_credit_not_a_pour() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let mut m = rig.machine().await;
    let bolt11 = buy(&mut m).await;
    m.send(Input::Cancel);
    m.wait_screen_within(Screen::Idle, STEP).await;
    // The customer's wallet pays the QR they walked away from.
    rig.wallet.pay(&bolt11).await;
    let v = m
        .wait_for(
            Duration::from_secs(60),
            "the credit on the idle screen",
            |v| v.screen == Screen::Idle && !v.credits.is_empty(),
        )
        .await;
    assert_eq!(v.credits[0].product, "Cola");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured on idle");
    m.shutdown().await;
    let owed = Ledger::open(&rig.data()).unwrap().owed().unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0].price_msat, 2_100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_while_the_relay_restarts_with_the_qr_up_pours_once() {
    let Some(mut rig) = Rig::start().await else {
        return;
    };
    let mut m = rig.machine().await;
    let bolt11 = buy(&mut m).await;
    rig.relay.kill();
    // Paid while the relay is down: the machine cannot ask, the service cannot answer.
    rig.wallet.pay(&bolt11).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        m.screen(),
        Screen::Payment,
        "the QR stays up while the relay is away"
    );
    assert_eq!(
        on_time(&m.gpio, ENA).1,
        0,
        "no pour without the wallet's word"
    );
    rig.relay.restart().await;
    m.wait_screen_within(Screen::ThankYou, RECONNECT).await;
    assert_poured_once(&m).await;
    m.shutdown().await;
    let l = Ledger::open(&rig.data()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_while_lnvend_restarts_is_owed_once_not_lost() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    let mut m = rig.machine().await;
    let bolt11 = buy(&mut m).await;
    // Killed with the QR up; the customer's wallet pays while the machine is down.
    m.crash().await;
    rig.wallet.pay(&bolt11).await;
    let mut m = TestMachine::start(&rig.config());
    let v = m
        .wait_for(
            Duration::from_secs(60),
            "the credit on the idle screen",
            |v| v.screen == Screen::Idle && !v.credits.is_empty(),
        )
        .await;
    assert_eq!(v.credits.len(), 1, "owed once");
    assert_eq!(v.credits[0].product, "Cola");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "no pour on the idle screen");
    m.shutdown().await;
    let owed = Ledger::open(&rig.data()).unwrap().owed().unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(owed[0].price_msat, 2_100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_keeps_the_machine_out_of_service_without_a_qr() {
    let Some(rig) = Rig::start().await else {
        return;
    };
    // A secret the wallet never paired: a mistyped or revoked connection.
    let stranger = hex::encode(rand::random::<[u8; 32]>());
    let (base, _) = rig.wallet.uri.split_once("&secret=").expect("a secret");
    let uri = format!("{base}&secret={stranger}");
    let mut m = TestMachine::start(&machine_config(&rig.data(), &uri));
    let v = m.wait_screen_within(Screen::OutOfService, STEP).await;
    assert!(
        v.message.contains("Payments are unavailable"),
        "{}",
        v.message
    );
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(m.screen(), Screen::OutOfService);
    assert!(
        m.views.borrow().qr.is_none(),
        "no QR without a working connection"
    );
    m.shutdown().await;
    assert_eq!(rig.wallet.machine_sat().await, 0);
}
