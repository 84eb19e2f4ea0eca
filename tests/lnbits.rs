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

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lightning_invoice::Bolt11Invoice;
use lnvend::controller::Screen;
use lnvend::ledger::Ledger;
use lnvend::pump::mock::PinValue;
use serde_json::{json, Value};

const POUR: Duration = Duration::from_millis(300);
/// Real time on a busy machine: how much longer than asked a pour may measure.
const POUR_SLACK: Duration = Duration::from_millis(40);
const STEP: Duration = Duration::from_secs(30);

fn venv() -> PathBuf {
    let dir = std::env::var_os("LNBITS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lnbits-venv"));
    if !dir.join("bin/lnbits").exists() {
        panic!(
            "no LNbits virtualenv at {}: run ./scripts/lnbits-venv (./scripts/test does it)",
            dir.display()
        );
    }
    dir
}

/// LNbits is started from inside its site-packages directory, where it finds its static
/// files and templates.
fn site_packages(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e}", lib.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.join("lnbits").is_dir())
        .unwrap_or_else(|| panic!("no lnbits package under {}", lib.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two gaps between LNbits' FakeWallet and a real funding source (LND, CLN…), closed by this
/// hook, which Python loads at start through PYTHONPATH; nothing else about LNbits changes.
/// 1. FakeWallet signs invoices without the `9` (features) field, which BOLT11 obliges writers
///    to set (var_onion_optin and payment_secret) and which lightning-invoice, like lnvend's
///    own BOLT11 check, rightly insists on. The hook adds the two features.
/// 2. FakeWallet keeps its invoices in memory only, so after a restart it calls every pending
///    invoice failed and LNbits refuses to settle it; a real node remembers its invoices. The
///    hook answers "pending" for invoices it does not know.
const FEATURES_HOOK: &str = r#"
import bolt11
from bolt11 import Feature, Features, FeatureState, TagChar

_encode = bolt11.encode


def _encode_with_features(invoice, privkey):
    if not invoice.tags.has(TagChar.features):
        invoice.tags.add(
            TagChar.features,
            Features.from_feature_list(
                {
                    Feature.var_onion_optin: FeatureState.required,
                    Feature.payment_secret: FeatureState.required,
                }
            ),
        )
    return _encode(invoice, privkey)


bolt11.encode = _encode_with_features

import lnbits.wallets.fake as _fake
from lnbits.wallets.base import PaymentPendingStatus, PaymentSuccessStatus


async def _invoice_status(self, checking_id):
    if checking_id in self.paid_invoices:
        return PaymentSuccessStatus()
    return PaymentPendingStatus()


_fake.FakeWallet.get_invoice_status = _invoice_status
"#;

/// One LNbits server process (and its children, in their own process group).
struct Lnbits {
    child: Option<Child>,
    data: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Lnbits {
    /// Starts LNbits on `port` with its data in `data` and waits until it answers.
    async fn start(data: &Path, port: u16) -> Lnbits {
        use std::os::unix::process::CommandExt;
        let venv = venv();
        let log = data.join("lnbits.log");
        let hook = data.join("pyhook");
        std::fs::create_dir_all(&hook).unwrap();
        std::fs::write(hook.join("sitecustomize.py"), FEATURES_HOOK).unwrap();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(venv.join("bin/lnbits"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(site_packages(&venv))
            .env("LNBITS_DATA_FOLDER", data)
            .env("LNBITS_BACKEND_WALLET_CLASS", "FakeWallet")
            .env("LNBITS_ADMIN_UI", "true")
            .env("PYTHONPATH", &hook)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own group, so the whole server can be killed at once.
            .process_group(0)
            .spawn()
            .expect("start lnbits");
        let server = Lnbits {
            child: Some(child),
            data: data.to_path_buf(),
            port,
            log,
        };
        server.wait_ready().await;
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            // Any HTTP answer will do: before the first install LNbits redirects everything.
            if client
                .get(format!("{}/api/v1/health", self.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("LNbits did not answer within 90 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the server as a power cut would.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            // bash's builtin with `--`: procps-ng 4.0.2's kill(1) misreads "-KILL -<pgid>"
            // and signals every process it may (as `kill -9 -1` would).
            if pgid > 1 {
                let _ = Command::new("bash")
                    .args(["-c", &format!("kill -s KILL -- -{pgid}")])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same data.
    async fn restart(&mut self) {
        self.kill();
        let again = Lnbits::start(&self.data.clone(), self.port).await;
        *self = again;
    }
}

impl Drop for Lnbits {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The wallets of one test.
struct Wallets {
    /// The machine's wallet: its invoice/read key goes into the config.
    machine_inkey: String,
    /// The customer's wallet, funded: its admin key pays.
    payer_adminkey: String,
}

async fn call(req: reqwest::RequestBuilder, what: &str) -> Value {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
}

async fn set_up_wallets(lnbits: &Lnbits) -> Wallets {
    let http = reqwest::Client::new();
    let url = lnbits.url();
    // The first install makes the super user; until then LNbits redirects every call.
    let admin = call(
        http.put(format!("{url}/api/v1/auth/first_install"))
            .json(&json!({"username": "operator", "password": "secret1234", "password_repeat": "secret1234"})),
        "first install",
    )
    .await;
    let token = admin["access_token"]
        .as_str()
        .expect("access_token")
        .to_string();
    let machine = call(
        http.post(format!("{url}/api/v1/account"))
            .json(&json!({"name": "machine"})),
        "machine wallet",
    )
    .await;
    let payer = call(
        http.post(format!("{url}/api/v1/account"))
            .json(&json!({"name": "customer"})),
        "payer wallet",
    )
    .await;
    let funded = call(
        http.put(format!("{url}/users/api/v1/balance"))
            .bearer_auth(&token)
            .json(&json!({"id": payer["id"], "amount": 100_000})),
        "fund payer",
    )
    .await;
    assert_eq!(funded["success"], true, "{funded}");
    Wallets {
        machine_inkey: machine["inkey"].as_str().expect("inkey").to_string(),
        payer_adminkey: payer["adminkey"].as_str().expect("adminkey").to_string(),
    }
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
    short_pour_config(
        dir,
        &format!(
            r#"
[backend]
kind = "lnbits"
url = "{}"
invoice_key = "{}"
request_timeout_ms = 5000
network = "bitcoin"
"#,
            lnbits.url(),
            wallets.machine_inkey
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
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("lnvend=debug")
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lnbits");
    std::fs::create_dir_all(&data).unwrap();
    let lnbits = Lnbits::start(&data, free_port()).await;
    let wallets = set_up_wallets(&lnbits).await;
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
    let parsed = Bolt11Invoice::from_str(&bolt11).unwrap();
    assert_eq!(parsed.amount_milli_satoshis(), Some(2_100_000));
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
    let hash = Bolt11Invoice::from_str(&bolt11)
        .unwrap()
        .payment_hash()
        .to_string();

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
    let lnbits = Lnbits::start(&data, free_port()).await;
    let mut wallets = set_up_wallets(&lnbits).await;
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
