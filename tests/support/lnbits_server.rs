//! A real LNbits server for the LNbits tests (tests/lnbits.rs) and the benchmarks
//! (benches/vend.rs): started from the virtualenv `./scripts/lnbits-venv` makes (or
//! `LNBITS_VENV`), with its FakeWallet funding source, a fresh data folder and a free loopback
//! port; killed with its children when dropped. A second wallet, funded by the super user,
//! pays the machine's invoices as a customer's wallet would.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The LNbits virtualenv, if one has been made.
pub fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("LNBITS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lnbits-venv"));
    dir.join("bin/lnbits").exists().then_some(dir)
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One gap between LNbits' FakeWallet and a real funding source (LND, CLN…), closed by this
/// hook, which Python loads at start through PYTHONPATH; nothing else about LNbits changes.
/// FakeWallet keeps its invoices in memory only, so after a restart it calls every pending
/// invoice failed and LNbits refuses to settle it; a real node remembers its invoices. The
/// hook answers "pending" for invoices it does not know.
///
/// FakeWallet's invoices themselves are left as they are: they lack the features field (9),
/// and lnvend's BOLT11 reader does not need it.
const RESTART_HOOK: &str = r#"
import lnbits.wallets.fake as _fake
from lnbits.wallets.base import PaymentPendingStatus, PaymentSuccessStatus


async def _invoice_status(self, checking_id):
    if checking_id in self.paid_invoices:
        return PaymentSuccessStatus()
    return PaymentPendingStatus()


_fake.FakeWallet.get_invoice_status = _invoice_status
"#;

/// One LNbits server process (and its children, in their own process group).
pub struct Lnbits {
    child: Option<Child>,
    venv: PathBuf,
    data: PathBuf,
    pub port: u16,
    log: PathBuf,
    /// The `LNBITS_EXTENSIONS_PATH` it was started with (kept for `restart`).
    extensions: Option<PathBuf>,
}

impl Lnbits {
    /// Starts LNbits from `venv` on `port` with its data in `data` and waits until it
    /// answers.
    pub async fn start(venv: &Path, data: &Path, port: u16) -> Lnbits {
        Lnbits::start_with_extensions(venv, data, port, None).await
    }

    /// As [`Lnbits::start`], registering every extension folder under
    /// `extensions/extensions/` (LNbits' `LNBITS_EXTENSIONS_PATH`).
    pub async fn start_with_extensions(
        venv: &Path,
        data: &Path,
        port: u16,
        extensions: Option<&Path>,
    ) -> Lnbits {
        use std::os::unix::process::CommandExt;
        let log = data.join("lnbits.log");
        let hook = data.join("pyhook");
        std::fs::create_dir_all(&hook).unwrap();
        std::fs::write(hook.join("sitecustomize.py"), RESTART_HOOK).unwrap();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut command = Command::new(venv.join("bin/lnbits"));
        if let Some(dir) = extensions {
            command.env("LNBITS_EXTENSIONS_PATH", dir);
        }
        let child = command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(site_packages(venv))
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
            venv: venv.to_path_buf(),
            data: data.to_path_buf(),
            port,
            log,
            extensions: extensions.map(Path::to_path_buf),
        };
        server.wait_ready().await;
        server
    }

    pub fn url(&self) -> String {
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
    pub fn kill(&mut self) {
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
    pub async fn restart(&mut self) {
        self.kill();
        let again = Lnbits::start_with_extensions(
            &self.venv.clone(),
            &self.data.clone(),
            self.port,
            self.extensions.clone().as_deref(),
        )
        .await;
        *self = again;
    }
}

impl Drop for Lnbits {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The wallets of one run.
pub struct Wallets {
    /// The machine's wallet: its invoice/read key goes into the config.
    pub machine_inkey: String,
    /// The customer's wallet, funded: its admin key pays.
    pub payer_adminkey: String,
}

/// Sends `req` and returns its JSON reply; panics (naming `what`) on any failure.
pub async fn call(req: reqwest::RequestBuilder, what: &str) -> Value {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"))
}

/// Makes the super user, the machine's wallet and a payer wallet holding `fund_sat`.
pub async fn set_up_wallets(lnbits: &Lnbits, fund_sat: u64) -> Wallets {
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
            .json(&json!({"id": payer["id"], "amount": fund_sat})),
        "fund payer",
    )
    .await;
    assert_eq!(funded["success"], true, "{funded}");
    Wallets {
        machine_inkey: machine["inkey"].as_str().expect("inkey").to_string(),
        payer_adminkey: payer["adminkey"].as_str().expect("adminkey").to_string(),
    }
}

/// The `[backend]` table of a machine config using the machine's wallet.
pub fn backend_toml(lnbits: &Lnbits, wallets: &Wallets) -> String {
    format!(
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
    )
}
