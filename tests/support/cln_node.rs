//! Real Core Lightning nodes for tests/cln_real.rs: `lightningd` v26.06.6 built by
//! `./scripts/lightningd` (cached outside the clone; this runs it, so a missing
//! `../shared/vendor/core-lightning` fails the tests loudly), on a regtest chain served by
//! the `lnvend-regtest-chain` plugin instead of bitcoind. Each node has its own temporary
//! lightning dir, loopback ports and process group; `stop` ends it cleanly and dropping it
//! kills the group. One chain directory is shared by the nodes of a test, and the test mines
//! on it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The four methods lnvend calls (src/backend/cln.rs); a rune for lnvend needs exactly these.
pub const LNVEND_METHODS: [&str; 4] = ["getinfo", "invoice", "listinvoices", "waitinvoice"];

/// The holdinvoice plugin's methods lnvend calls with hold invoices (src/backend/cln/hold.rs).
pub const HOLD_METHODS: [&str; 4] = [
    "holdinvoice",
    "holdinvoicelookup",
    "holdinvoicesettle",
    "holdinvoicecancel",
];

/// The holdinvoice plugin built by `./scripts/holdinvoice` (cached outside the clone).
pub fn holdinvoice_plugin() -> &'static Path {
    static PLUGIN: OnceLock<PathBuf> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/holdinvoice");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): the hold-invoice tests need the plugin; see its message above",
            script.display(),
            out.status
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let path = PathBuf::from(text.lines().last().expect("the plugin").trim());
        assert!(path.exists(), "{}", path.display());
        path
    })
}

const CHAIN_BIN: &str = env!("CARGO_BIN_EXE_lnvend-regtest-chain");

/// The install prefix of the cached Core Lightning build (built on first use).
pub fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lightningd");
        let out = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed ({}): the real Core Lightning tests need its build; see its message above",
            script.display(),
            out.status
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let dir = PathBuf::from(text.lines().last().expect("the prefix").trim());
        assert!(dir.join("bin/lightningd").exists(), "{}", dir.display());
        dir
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The regtest chain of one test, shared by its nodes.
pub struct Chain {
    pub dir: PathBuf,
}

impl Chain {
    pub fn new(dir: &Path) -> Chain {
        let chain = Chain {
            dir: dir.to_path_buf(),
        };
        chain.run(&["init", &dir.display().to_string()]);
        chain
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(CHAIN_BIN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("lnvend-regtest-chain");
        assert!(
            out.status.success(),
            "lnvend-regtest-chain {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Mines `n` blocks (the first takes the mempool; its coinbase pays `script` if given)
    /// and returns the new height.
    pub fn mine(&self, n: u32, script: Option<&[u8]>) -> u64 {
        let dir = self.dir.display().to_string();
        let n = n.to_string();
        let script = script.map(hex::encode);
        let mut args = vec!["mine", &dir, &n];
        if let Some(s) = &script {
            args.push(s);
        }
        self.run(&args).trim().parse().unwrap()
    }

    pub fn height(&self) -> u64 {
        let blocks = std::fs::read_to_string(self.dir.join("blocks")).unwrap();
        blocks.lines().count() as u64 - 1
    }

    /// Whether the raw transaction `tx` waits in the mempool.
    pub fn in_mempool(&self, tx: &str) -> bool {
        std::fs::read_to_string(self.dir.join("mempool"))
            .unwrap_or_default()
            .lines()
            .any(|l| l == tx)
    }
}

/// An error a node answered with.
#[derive(Debug, Clone)]
pub struct RpcError(pub Value);

/// One lightningd with its subdaemons and plugins, in its own process group.
pub struct ClnNode {
    child: Option<Child>,
    /// Its `--lightning-dir`.
    pub dir: PathBuf,
    chain: PathBuf,
    pub port: u16,
    /// clnrest's port, when it was started with clnrest.
    pub rest_port: Option<u16>,
    pub id: String,
    /// Runs the holdinvoice plugin with this `holdinvoice-cancel-before-invoice-expiry`
    /// (see [`ClnNode::start_holding`]).
    holding: Option<u64>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl ClnNode {
    /// Starts a node in `dir` on `chain` (with clnrest on a free port if `rest`) and waits
    /// until it answers and has caught up with the chain.
    pub async fn start(dir: &Path, chain: &Chain, rest: bool) -> ClnNode {
        let mut node = ClnNode {
            child: None,
            dir: dir.to_path_buf(),
            chain: chain.dir.clone(),
            port: free_port(),
            rest_port: rest.then(free_port),
            id: String::new(),
            holding: None,
        };
        node.spawn().await;
        node
    }

    /// [`ClnNode::start`] with the holdinvoice plugin as an important plugin, its invoice
    /// margin lowered to 60 s so that lnvend's 300 s QR is accepted (the operator's guide
    /// says the same).
    pub async fn start_holding(dir: &Path, chain: &Chain, rest: bool) -> ClnNode {
        ClnNode::start_holding_margin(dir, chain, rest, 60).await
    }

    /// [`ClnNode::start_holding`] with the plugin's invoice margin `margin_s`: it takes
    /// (settles) a held payment by itself once its invoice is within `margin_s` of expiry.
    pub async fn start_holding_margin(
        dir: &Path,
        chain: &Chain,
        rest: bool,
        margin_s: u64,
    ) -> ClnNode {
        let mut node = ClnNode {
            child: None,
            dir: dir.to_path_buf(),
            chain: chain.dir.clone(),
            port: free_port(),
            rest_port: rest.then(free_port),
            id: String::new(),
            holding: Some(margin_s),
        };
        node.spawn().await;
        node
    }

    async fn spawn(&mut self) {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdout.log"))
            .unwrap();
        let mut cmd = Command::new(prefix().join("bin/lightningd"));
        cmd.arg(format!("--lightning-dir={}", self.dir.display()))
            .arg("--network=regtest")
            .arg("--disable-plugin=bcli")
            .arg(format!("--plugin={CHAIN_BIN}"))
            .arg(format!("--regtest-chain-dir={}", self.chain.display()))
            .arg(format!("--addr=127.0.0.1:{}", self.port))
            .arg(format!("--log-file={}", self.dir.join("log").display()))
            .arg("--log-level=debug")
            // Dev options: ask the chain every second, not every 30 s.
            .arg("--developer")
            .arg("--dev-bitcoind-poll=1")
            .arg("--dev-fast-gossip");
        if let Some(margin_s) = self.holding {
            cmd.arg(format!(
                "--important-plugin={}",
                holdinvoice_plugin().display()
            ))
            .arg(format!(
                "--holdinvoice-cancel-before-invoice-expiry={margin_s}"
            ));
        }
        if let Some(port) = self.rest_port {
            // Not in lightningd's list of built-in plugins when it is built without Rust
            // (scripts/lightningd builds clnrest on its own): loaded by name.
            let clnrest = prefix().join("libexec/c-lightning/plugins/clnrest");
            cmd.arg(format!("--plugin={}", clnrest.display()))
                .arg(format!("--clnrest-port={port}"))
                .arg("--clnrest-host=127.0.0.1")
                .arg(format!("--clnrest-certs={}", self.rest_certs().display()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start lightningd");
        self.child = Some(child);
        self.wait_ready().await;
    }

    fn rest_certs(&self) -> PathBuf {
        self.dir.join("rest-certs")
    }

    pub fn rpc_path(&self) -> PathBuf {
        self.dir.join("regtest/lightning-rpc")
    }

    /// The end of its log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_ready(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "lightningd exited ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(info) = self.call("getinfo", json!({})).await {
                self.id = info["id"].as_str().unwrap().to_string();
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "lightningd did not answer within 60 s; its log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_synced().await;
        if let Some(port) = self.rest_port {
            // clnrest listens a moment after lightningd answers.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "clnrest did not listen within 30 s; the log:\n{}",
                    self.log_tail()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until the node has processed every block of the chain.
    pub async fn wait_synced(&self) {
        let want = std::fs::read_to_string(self.chain.join("blocks"))
            .unwrap()
            .lines()
            .count() as u64
            - 1;
        let deadline = self.deadline(Duration::from_secs(60));
        while self.rpc("getinfo", json!({})).await["blockheight"].as_u64() != Some(want) {
            self.check(deadline, "the chain tip").await;
        }
    }

    pub fn deadline(&self, limit: Duration) -> tokio::time::Instant {
        tokio::time::Instant::now() + limit
    }

    /// Panics past `deadline` naming `what`, with the node's log; else waits a moment.
    pub async fn check(&self, deadline: tokio::time::Instant, what: &str) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited too long for {what}; the node's log:\n{}",
            self.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// One JSON-RPC call over `lightning-rpc` (as lightning-cli makes it).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        call_at(self.rpc_path(), method.to_string(), params).await
    }

    /// [`ClnNode::call`] on a task of its own (a `pay` that waits for a held payment's end
    /// while the test goes on).
    pub fn spawn_call(
        &self,
        method: &str,
        params: Value,
    ) -> tokio::task::JoinHandle<Result<Value, RpcError>> {
        tokio::spawn(call_at(self.rpc_path(), method.to_string(), params))
    }

    /// A call that must succeed.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.call(method, params.clone())
            .await
            .unwrap_or_else(|e| panic!("{method} {params}: {:?}", e.0))
    }

    /// A rune allowing exactly `methods` (one restriction: any of them).
    pub async fn rune(&self, methods: &[&str]) -> String {
        let alternatives: Vec<String> = methods.iter().map(|m| format!("method={m}")).collect();
        let r = self
            .rpc("createrune", json!({"restrictions": [alternatives]}))
            .await;
        r["rune"].as_str().unwrap().to_string()
    }

    /// The rune docs/operator/cln.md tells the operator to make for machine `test-machine`:
    /// lnvend's four methods and `extra`, and `delinvoice` only of an unpaid invoice labelled
    /// by this machine (the Cancel button's withdrawal; never a paid invoice, never another
    /// machine's or app's).
    pub async fn lnvend_rune(&self, extra: &[&str]) -> String {
        let mut methods: Vec<String> = LNVEND_METHODS
            .iter()
            .chain(extra)
            .chain(&["delinvoice"])
            .map(|m| format!("method={m}"))
            .collect();
        methods.dedup();
        let r = self
            .rpc(
                "createrune",
                json!({"restrictions": [
                    methods,
                    ["method/delinvoice", "pnamestatus=unpaid"],
                    ["method/delinvoice", "pnamelabel^lnvend/test-machine/"],
                ]}),
            )
            .await;
        r["rune"].as_str().unwrap().to_string()
    }

    /// clnrest's URL (https, on loopback).
    pub fn rest_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.rest_port.expect("clnrest"))
    }

    /// The CA that signed clnrest's certificate (for `ca_file`).
    pub fn rest_ca_file(&self) -> PathBuf {
        self.rest_certs().join("ca.pem")
    }

    /// The SHA-256 of clnrest's own certificate, hex (for `cert_sha256`).
    pub fn rest_cert_sha256(&self) -> String {
        let pem = std::fs::read(self.rest_certs().join("server.pem")).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .expect("a certificate")
            .unwrap();
        hex::encode(Sha256::digest(der.as_ref()))
    }

    /// Kills the node as a power cut would (the group: subdaemons and plugins too).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pgid = child.id();
            if pgid > 1 {
                // bash's builtin with `--` (procps' kill(1) misreads a negative pid).
                let _ = Command::new("bash")
                    .args(["-c", &format!("kill -s KILL -- -{pgid}")])
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node cleanly (`stop`), killing it if it takes more than 20 s.
    pub async fn stop(&mut self) {
        let _ = self.call("stop", json!({})).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Some(child) = self.child.as_mut() {
            if child.try_wait().unwrap().is_some() {
                self.child = None;
                break;
            }
            if tokio::time::Instant::now() > deadline {
                self.kill();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Its subdaemons leave with it; anything left in the group goes now.
        self.kill();
    }

    /// Starts it again with the same data and ports.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Starts it again after [`ClnNode::stop`] or [`ClnNode::kill`].
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn().await;
    }

    /// Gives the node's wallet a mature 50 BTC coinbase output: a block paying its new
    /// address, then 100 more.
    pub async fn fund_onchain(&self, chain: &Chain) {
        let addr = self.rpc("newaddr", json!({"addresstype": "bech32"})).await["bech32"]
            .as_str()
            .unwrap()
            .to_string();
        let script = bitcoin::Address::from_str(&addr)
            .unwrap()
            .require_network(bitcoin::Network::Regtest)
            .unwrap()
            .script_pubkey();
        chain.mine(1, Some(script.as_bytes()));
        chain.mine(100, None);
        self.wait_synced().await;
        let deadline = self.deadline(Duration::from_secs(30));
        loop {
            let funds = self.rpc("listfunds", json!({})).await;
            if funds["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["status"] == "confirmed")
            {
                break;
            }
            self.check(deadline, "a confirmed output").await;
        }
    }

    /// The state of this node's channel with `peer`, if any.
    pub async fn channel_state(&self, peer: &str) -> Option<String> {
        let r = self.rpc("listpeerchannels", json!({"id": peer})).await;
        r["channels"]
            .as_array()
            .and_then(|c| c.first())
            .and_then(|c| c["state"].as_str())
            .map(str::to_owned)
    }
}

/// One JSON-RPC call over the socket at `path`.
async fn call_at(path: PathBuf, method: String, params: Value) -> Result<Value, RpcError> {
    let io = |e: std::io::Error| RpcError(json!({"message": e.to_string()}));
    let mut conn = tokio::net::UnixStream::connect(path).await.map_err(io)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    conn.write_all(req.to_string().as_bytes())
        .await
        .map_err(io)?;
    let mut buf = Vec::new();
    // On the heap: a 64 KiB array would make every future awaiting a call that much bigger
    // (a scenario awaiting many overflows a test thread's stack in a debug build).
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = conn.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return Err(RpcError(json!({"message": "connection closed"})));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut values = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        if let Some(Ok(reply)) = values.next() {
            return match reply.get("error") {
                Some(e) => Err(RpcError(e.clone())),
                None => Ok(reply["result"].clone()),
            };
        }
    }
}

impl Drop for ClnNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A channel of `sat` from `payer` (funded on chain here) to `payee`, confirmed and
/// CHANNELD_NORMAL on both sides: `payer` can then pay `payee`'s invoices over it.
pub async fn open_channel(chain: &Chain, payer: &ClnNode, payee: &ClnNode, sat: u64) {
    payer.fund_onchain(chain).await;
    payer
        .rpc(
            "connect",
            json!({"id": payee.id, "host": "127.0.0.1", "port": payee.port}),
        )
        .await;
    let funded = payer
        .rpc("fundchannel", json!({"id": payee.id, "amount": sat}))
        .await;
    let tx = funded["tx"].as_str().unwrap().to_string();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !chain.in_mempool(&tx) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the funding transaction was not broadcast"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    chain.mine(6, None);
    for (node, peer) in [(payer, &payee.id), (payee, &payer.id)] {
        let deadline = node.deadline(Duration::from_secs(60));
        while node.channel_state(peer).await.as_deref() != Some("CHANNELD_NORMAL") {
            node.check(deadline, "CHANNELD_NORMAL").await;
        }
    }
}
