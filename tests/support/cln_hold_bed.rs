//! The two-node bed of the hold-invoice tests against a real Core Lightning
//! (tests/cln_real_hold.rs, tests/cln_real_hold_crash.rs): a merchant running the holdinvoice
//! plugin, a customer with a channel to it, lnvend's `[backend]` over the unix socket or
//! clnrest, and what the customer's wallet sees. [`Link`] is a way between lnvend and the
//! merchant that the test can cut, so that a settle provably never reaches the node.
//!
//! Included by `#[path]` beside `mod cln_node; mod common;` in each test file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::task::AbortHandle;

use super::cln_node::{self, open_channel, Chain, ClnNode, HOLD_METHODS, LNVEND_METHODS};
use super::common::TestMachine;
use lnvend::controller::{Screen, View};
use lnvend::ledger::Ledger;

pub const STEP: Duration = Duration::from_secs(60);
pub const PRICE_MSAT: u64 = 2_100_000;

#[derive(Clone, Copy)]
pub enum Transport {
    Socket,
    Rest,
}

pub async fn backend_for(node: &ClnNode, t: Transport) -> String {
    match t {
        Transport::Socket => format!(
            "[backend]\nkind = \"cln\"\nrpc_socket = \"{}\"\nnetwork = \"regtest\"\nrequest_timeout_ms = 5000\nhold = \"always\"\n",
            node.rpc_path().display()
        ),
        Transport::Rest => {
            let methods: Vec<&str> = LNVEND_METHODS.iter().chain(&HOLD_METHODS).copied().collect();
            let rune = node.rune(&methods).await;
            format!(
                "[backend]\nkind = \"cln\"\nurl = \"{}\"\nrune = \"{rune}\"\nnetwork = \"regtest\"\nrequest_timeout_ms = 5000\ncert_sha256 = \"{}\"\nhold = \"always\"\n",
                node.rest_url(),
                node.rest_cert_sha256()
            )
        }
    }
}

/// A merchant with the plugin (and clnrest for `t`), a customer with a channel to it, and
/// the machine on the merchant.
pub struct Bed {
    pub _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub merchant: ClnNode,
    pub customer: ClnNode,
    pub backend: String,
}

/// The bed with the plugin's 60 s invoice margin (lnvend's 300 s QR is accepted).
pub async fn bed(t: Transport) -> Bed {
    bed_margin(t, 60).await
}

/// The bed with the plugin taking a held payment by itself `margin_s` before its invoice
/// expires.
pub async fn bed_margin(t: Transport, margin_s: u64) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let merchant = ClnNode::start_holding_margin(
        &dir.path().join("merchant"),
        &chain,
        matches!(t, Transport::Rest),
        margin_s,
    )
    .await;
    let customer = ClnNode::start(&dir.path().join("customer"), &chain, false).await;
    open_channel(&chain, &customer, &merchant, 1_000_000).await;
    let backend = backend_for(&merchant, t).await;
    Bed {
        data: dir.path().join("data"),
        _dir: dir,
        merchant,
        customer,
        backend,
    }
}

/// The customer's side of the channel, in msat.
pub async fn customer_balance(b: &Bed) -> u64 {
    let ch = b
        .customer
        .rpc("listpeerchannels", json!({"id": b.merchant.id}))
        .await;
    ch["channels"][0]["to_us_msat"].as_u64().unwrap()
}

/// What the customer's balance dropped by since `before`, once the channel shows a drop
/// (the payer's `pay` can return a moment before its channel balance moves), or 0 after
/// 20 s.
pub async fn balance_drop(b: &Bed, before: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = customer_balance(b).await;
        if now != before || tokio::time::Instant::now() > deadline {
            // Settled for a moment more: a second payment would show by then.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return before - customer_balance(b).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Taps the first product and returns the QR's invoice.
pub async fn buy(m: &mut TestMachine) -> String {
    m.wait_screen_within(Screen::Idle, STEP).await;
    m.tap(0);
    let v: View = m.wait_screen_within(Screen::Payment, STEP).await;
    v.payment_uri
        .strip_prefix("LIGHTNING:")
        .unwrap()
        .to_ascii_lowercase()
}

/// The merchant node's holdstate of `bolt11`'s invoice.
pub async fn holdstate(b: &Bed, bolt11: &str) -> String {
    let hash = b.customer.rpc("decode", json!({"string": bolt11})).await["payment_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b
        .merchant
        .rpc("holdinvoicelookup", json!({"payment_hash": hash}))
        .await;
    r["state"].as_str().unwrap_or_default().to_string()
}

/// Waits (up to [`STEP`]) until the merchant says `state` for `bolt11`.
pub async fn until_holdstate(b: &Bed, bolt11: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + STEP;
    while holdstate(b, bolt11).await != state {
        assert!(tokio::time::Instant::now() < deadline, "never {state}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits (up to [`STEP`]) until lnvend has recorded the end of every held payment.
pub async fn until_holds_recorded(data: &Path) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !Ledger::open(data)
        .unwrap()
        .unresolved_holds()
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The customer's wallet pays on its own task: `pay` returns only when the held payment is
/// settled (complete) or cancelled (failed).
pub fn pay(b: &Bed, bolt11: &str) -> tokio::task::JoinHandle<Result<Value, cln_node::RpcError>> {
    b.customer.spawn_call("pay", json!({"bolt11": bolt11}))
}

/// A way from lnvend to the merchant (a unix socket or a TCP port forwarding to the node's
/// RPC socket or clnrest) that the test can cut: while cut, every connection is dropped
/// and new ones are closed at once, so no request gets through (none waits in a buffer to
/// be served later, as it would with a stopped node).
pub struct Link {
    cut: Arc<Mutex<bool>>,
    open: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
    /// `backend` with lnvend's address replaced by the link's.
    pub backend: String,
    _dir: tempfile::TempDir,
}

impl Link {
    pub async fn new(b: &Bed, t: Transport) -> Link {
        let cut = Arc::new(Mutex::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let dir = tempfile::tempdir().unwrap();
        let (accept, backend) = match t {
            Transport::Socket => {
                let path = dir.path().join("lightning-rpc");
                let listener = tokio::net::UnixListener::bind(&path).unwrap();
                let to = b.merchant.rpc_path();
                let (c, o) = (cut.clone(), open.clone());
                let task = tokio::spawn(async move {
                    while let Ok((conn, _)) = listener.accept().await {
                        let to = to.clone();
                        forward(&c, &o, conn, async move {
                            tokio::net::UnixStream::connect(to).await
                        });
                    }
                });
                let backend = b.backend.replace(
                    &b.merchant.rpc_path().display().to_string(),
                    &path.display().to_string(),
                );
                (task.abort_handle(), backend)
            }
            Transport::Rest => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = listener.local_addr().unwrap().port();
                let to = b.merchant.rest_port.expect("clnrest");
                let (c, o) = (cut.clone(), open.clone());
                let task = tokio::spawn(async move {
                    while let Ok((conn, _)) = listener.accept().await {
                        forward(&c, &o, conn, async move {
                            tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                        });
                    }
                });
                // Same host, other port: clnrest's certificate is pinned by its hash.
                let backend = b
                    .backend
                    .replace(&b.merchant.rest_url(), &format!("https://127.0.0.1:{port}"));
                (task.abort_handle(), backend)
            }
        };
        assert_ne!(backend, b.backend, "lnvend goes through the link");
        Link {
            cut,
            open,
            accept,
            backend,
            _dir: dir,
        }
    }

    /// Cuts the link (drops every open connection) or mends it.
    pub fn set_cut(&self, cut: bool) {
        *self.cut.lock().unwrap() = cut;
        if cut {
            for conn in self.open.lock().unwrap().drain(..) {
                conn.abort();
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_cut(true);
    }
}

/// Serves one accepted connection: closed at once while the link is cut, else piped to the
/// node until either side ends (or the link is cut).
fn forward<A, B, F>(cut: &Arc<Mutex<bool>>, open: &Arc<Mutex<Vec<AbortHandle>>>, mut a: A, to: F)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: std::future::Future<Output = std::io::Result<B>> + Send + 'static,
{
    // Held across the check and the push: a cut in between drains this one too.
    let mut open = open.lock().unwrap();
    if *cut.lock().unwrap() {
        return; // `a` dropped: closed before a byte is read.
    }
    let task = tokio::spawn(async move {
        if let Ok(mut b) = to.await {
            let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
        }
    });
    open.retain(|h| !h.is_finished());
    open.push(task.abort_handle());
}

/// One scenario as two tests: over the unix socket and over clnrest.
macro_rules! over_both {
    ($scenario:ident, $socket:ident, $rest:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $socket() {
            Box::pin($scenario(Transport::Socket)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $rest() {
            Box::pin($scenario(Transport::Rest)).await;
        }
    };
}
