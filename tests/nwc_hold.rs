//! Hold invoices over Nostr Wallet Connect on the whole machine (`kind = "nwc"`,
//! `hold = "always"`), against a REAL relay (PyPI nostr-relay) and lnvend's fake wallet
//! service with its hold methods (`make_hold_invoice`, `settle_hold_invoice`,
//! `cancel_hold_invoice`, the `hold_invoice_accepted` notification), as tests/hold.rs does
//! with the simulator. Time is real.
//!
//! What a customer notices: the payment is taken only once the drink is poured, and a pour
//! that cannot happen gives the money back by itself; what an operator notices: nothing
//! owed for a returned payment, and every held payment resolved, after a restart too.

mod common;
#[path = "support/nostr_relay.rs"]
mod nostr_relay;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use lnvend::backend::nwc::fake::{FakeWallet, HoldStatus, WalletBehaviour};
use lnvend::backend::nwc::link::WsConnector;
use lnvend::controller::{Input, Screen, RETURNED_TEXT};
use lnvend::ledger::Ledger;
use nostr_relay::{free_port, Relay};

const STEP: Duration = Duration::from_secs(30);

fn venv() -> PathBuf {
    nostr_relay::venv().unwrap_or_else(|| {
        panic!("no nostr-relay virtualenv: run ./scripts/nostr-relay-venv or set NOSTR_RELAY_VENV")
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

/// The machine on the wallet, every sale held; `short`: 300 ms pours, else 4 s.
fn machine_config(dir: &Path, wallet: &FakeWallet, short: bool) -> lnvend::config::Config {
    std::fs::create_dir_all(dir).unwrap();
    let uri_file = dir.join("nwc.uri");
    std::fs::write(&uri_file, wallet.uri().expose()).unwrap();
    let backend = format!(
        "\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"{}\"\nrequest_timeout_ms = 5000\nnetwork = \"regtest\"\nhold = \"always\"\n",
        uri_file.display()
    );
    if short {
        short_pour_config(dir, &backend)
    } else {
        config(dir, &backend)
    }
}

fn hash_on_screen(m: &TestMachine) -> String {
    let uri = m.views.borrow().payment_uri.clone();
    let bolt11 = uri
        .strip_prefix("LIGHTNING:")
        .unwrap_or_else(|| panic!("not a lightning URI: {uri}"))
        .to_ascii_lowercase();
    lnvend::bolt11::decode(&bolt11).unwrap().payment_hash
}

async fn start_all(short: bool) -> (tempfile::TempDir, Relay, FakeWallet, TestMachine) {
    log_to_test();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&venv(), &dir.path().join("relay"), free_port()).await;
    let url = url::Url::parse(&relay.url()).unwrap();
    let connector = Arc::new(WsConnector {
        tls: Default::default(),
        timeout: Duration::from_secs(5),
    });
    let wallet = FakeWallet::start(
        connector,
        url,
        WalletBehaviour {
            holds: true,
            ..WalletBehaviour::default()
        },
    );
    let mut m = TestMachine::start(&machine_config(&dir.path().join("m"), &wallet, short));
    m.wait_screen_within(Screen::Idle, STEP).await;
    (dir, relay, wallet, m)
}

/// Taps Cola and returns the payment hash of the hold invoice on screen.
async fn buy(m: &mut TestMachine, wallet: &FakeWallet) -> String {
    m.tap(0);
    let v = m.wait_screen_within(Screen::Payment, STEP).await;
    assert_eq!(v.amount, "2,100 sats");
    let hash = hash_on_screen(m);
    assert_eq!(
        wallet.hold_status(&hash),
        Some(HoldStatus::Open),
        "a hold invoice, for lnvend's own preimage"
    );
    hash
}

/// Waits until the wallet says `want` of the hold invoice.
async fn wait_hold(wallet: &FakeWallet, hash: &str, want: HoldStatus) {
    for _ in 0..300 {
        if wallet.hold_status(hash) == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the hold never got to {want:?}: {:?}",
        wallet.hold_status(hash)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_payment_over_nwc_is_poured_once_and_taken_only_after_the_pour() {
    let (dir, _relay, wallet, mut m) = start_all(true).await;
    let hash = buy(&mut m, &wallet).await;
    assert!(wallet.pay(&hash).await);
    m.wait_screen_within(Screen::Pouring, Duration::from_secs(10))
        .await;
    assert_eq!(
        wallet.hold_status(&hash),
        Some(HoldStatus::Accepted),
        "held, not taken, while the drink pours"
    );
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    wait_hold(&wallet, &hash, HoldStatus::Settled).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "poured once");
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("m")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pump_fault_over_nwc_gives_the_held_money_back_and_owes_nothing() {
    let (dir, _relay, wallet, mut m) = start_all(false).await;
    let hash = buy(&mut m, &wallet).await;
    assert!(wallet.pay(&hash).await);
    m.wait_screen_within(Screen::Pouring, Duration::from_secs(10))
        .await;
    m.gpio.inject_fault(true);
    let fault = m.wait_screen_within(Screen::Fault, STEP).await;
    assert_eq!(fault.message, RETURNED_TEXT);
    assert!(!fault.fault_refund, "nothing to claim");
    wait_hold(&wallet, &hash, HoldStatus::Canceled).await;
    m.gpio.inject_fault(false);
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("m")).unwrap();
    assert!(l.owed().unwrap().is_empty(), "no credit: the money is back");
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_over_nwc_with_the_payment_in_flight_returns_it_and_pours_nothing() {
    let (dir, _relay, wallet, mut m) = start_all(true).await;
    let hash = buy(&mut m, &wallet).await;
    // The payment is held at the wallet just as the customer taps Cancel.
    assert!(wallet.pay(&hash).await);
    m.send(Input::Cancel);
    m.wait_screen_within(Screen::Idle, STEP).await;
    wait_hold(&wallet, &hash, HoldStatus::Canceled).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never a pour on an idle screen");
    assert!(
        !wallet.pay(&hash).await,
        "a cancelled hold takes no payment"
    );
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("m")).unwrap();
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_held_over_nwc_while_lnvend_was_down_is_returned_at_start() {
    let (dir, _relay, wallet, mut m) = start_all(true).await;
    let hash = buy(&mut m, &wallet).await;
    m.crash().await;
    // Paid (held) at the wallet while the machine is off.
    assert!(wallet.pay(&hash).await);
    let m = TestMachine::start(&machine_config(&dir.path().join("m"), &wallet, true));
    wait_hold(&wallet, &hash, HoldStatus::Canceled).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never poured");
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("m")).unwrap();
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

/// The real binary (`lnvend sim --headless`, the machine's log at debug to a pipe) sells a
/// held drink through the relay: its log tells the sale, and never the connection's secret
/// nor the hold's preimage (whoever reads them could sign as the machine, or take the
/// payment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_secret_and_the_preimage_never_reach_the_log() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&venv(), &dir.path().join("relay"), free_port()).await;
    let connector = Arc::new(WsConnector {
        tls: Default::default(),
        timeout: Duration::from_secs(5),
    });
    let wallet = FakeWallet::start(
        connector,
        url::Url::parse(&relay.url()).unwrap(),
        WalletBehaviour {
            holds: true,
            ..WalletBehaviour::default()
        },
    );
    let data = dir.path().join("m");
    std::fs::create_dir_all(&data).unwrap();
    let uri = wallet.uri().expose().to_string();
    let uri_file = data.join("nwc.uri");
    std::fs::write(&uri_file, &uri).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&uri_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cfg = dir.path().join("machine.toml");
    let text = config_text(
        &data,
        &format!(
            "\n[backend]\nkind = \"nwc\"\nconnection_uri_file = \"{}\"\nnetwork = \"regtest\"\nhold = \"always\"\n",
            uri_file.display()
        ),
    )
    .replace("pour_ms = 4000", "pour_ms = 300");
    std::fs::write(&cfg, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lnvend"))
        .args(["sim", "--headless", "--config"])
        .arg(&cfg)
        .env("LNVEND_LOG", "debug")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    writeln!(stdin, "tap 0").unwrap();
    let mut hash = None;
    for _ in 0..200 {
        hash = wallet.latest().map(|(h, _, _)| h);
        if hash.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hash = hash.expect("the machine made a hold invoice");
    assert!(wallet.pay(&hash).await);
    wait_hold(&wallet, &hash, HoldStatus::Settled).await;
    // The machine looks the hold up once more after settling, then logs it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("held payment settled"),
        "the log tells the sale: {log}"
    );
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert_eq!(secret.len(), 64);
    assert!(!log.contains(secret), "the connection secret is in the log");
    let preimage: String = rusqlite::Connection::open(data.join("sales.db"))
        .unwrap()
        .query_row("SELECT preimage FROM holds", [], |r| r.get(0))
        .unwrap();
    assert_eq!(preimage.len(), 64);
    assert!(!log.contains(&preimage), "the preimage is in the log");
}
