//! A fake Core Lightning node for the whole-machine tests: it speaks JSON-RPC 2.0 on a unix
//! socket the way lightningd does (a stream of JSON requests in, each reply followed by a
//! blank line), and the same methods as clnrest over HTTP (`POST /v1/<method>`, `Rune`
//! header, 201 on success). Its behaviour is scripted from the test (pay, pay silently,
//! close the waiting connections, fail the next `invoice`, report another network, send
//! replies over 2 MiB), and it counts the socket connections open, so a test can see that
//! finished watches leave none behind.
//!
//! Every successful reply is checked against the `response` schema of CLN's own method
//! file (copied into `tests/data/cln/`) before it is sent, so the fake cannot drift from the
//! real API; tests call [`FakeNode::assert_replies_valid`]. CLN's custom types (`msat`,
//! `hash`, `u64`…) are mapped to standard JSON Schema when the schemas are loaded.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where the copied CLN schemas are.
fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cln")
}

/// A standard JSON Schema for each of CLN's custom types. Every custom type the meta-schema
/// `rpc-schema-draft.json` lists must have an entry (checked when the schemas load).
fn custom_type(name: &str) -> Option<Value> {
    let hex64 = json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"});
    let uint = |max: u64| json!({"type": "integer", "minimum": 0, "maximum": max});
    Some(match name {
        "hex" | "signature" | "bip340sig" => {
            json!({"type": "string", "pattern": "^([0-9a-fA-F]{2})*$"})
        }
        "hash" | "secret" | "txid" => hex64,
        "pubkey" => json!({"type": "string", "pattern": "^0[23][0-9a-fA-F]{64}$"}),
        "u64" => json!({"type": "integer", "minimum": 0}),
        "u32" => uint(u32::MAX as u64),
        "u16" => uint(u16::MAX as u64),
        "u8" => uint(u8::MAX as u64),
        // Since v23 amounts are plain integers of msat (or sat) in JSON output.
        "msat" | "sat" => json!({"type": "integer", "minimum": 0}),
        "msat_or_all" | "msat_or_any" | "sat_or_all" => {
            json!({"type": ["integer", "string"]})
        }
        "short_channel_id" => json!({"type": "string", "pattern": "^[0-9]+x[0-9]+x[0-9]+$"}),
        "short_channel_id_dir" => {
            json!({"type": "string", "pattern": "^[0-9]+x[0-9]+x[0-9]+/[01]$"})
        }
        "outpoint" => json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}:[0-9]+$"}),
        "currency" | "feerate" | "outputdesc" => json!({"type": "string"}),
        _ => return None,
    })
}

const STANDARD: &[&str] = &[
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// Replaces custom types with standard ones and drops CLN's annotation keys.
fn standardise(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in [
                "description",
                "added",
                "deprecated",
                "hidden",
                "untyped",
                "comment",
            ] {
                // Only annotations: a property *named* "description" is a map value, kept.
                if map.get(key).is_some_and(|d| !d.is_object()) {
                    map.remove(key);
                }
            }
            if let Some(Value::String(t)) = map.get("type").cloned() {
                if !STANDARD.contains(&t.as_str()) {
                    let std = custom_type(&t).unwrap_or_else(|| panic!("unmapped CLN type {t}"));
                    map.remove("type");
                    for (k, val) in std.as_object().unwrap() {
                        map.insert(k.clone(), val.clone());
                    }
                }
            }
            for (_, child) in map.iter_mut() {
                standardise(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(standardise),
        _ => {}
    }
}

/// The `request` and `response` validators of the methods the fake answers.
pub struct Schemas {
    by_method: HashMap<String, jsonschema::Validator>,
    requests: HashMap<String, jsonschema::Validator>,
}

impl Schemas {
    pub fn load() -> Schemas {
        let draft: Value = serde_json::from_slice(
            &std::fs::read(schema_dir().join("rpc-schema-draft.json")).unwrap(),
        )
        .unwrap();
        for t in draft["definitions"]["simpleTypes"]["enum"]
            .as_array()
            .unwrap()
        {
            let t = t.as_str().unwrap();
            assert!(
                STANDARD.contains(&t) || custom_type(t).is_some(),
                "CLN type {t} has no mapping"
            );
        }
        let mut by_method = HashMap::new();
        let mut requests = HashMap::new();
        for m in [
            "getinfo",
            "invoice",
            "listinvoices",
            "waitinvoice",
            "waitanyinvoice",
            "delinvoice",
        ] {
            let file: Value = serde_json::from_slice(
                &std::fs::read(schema_dir().join(format!("{m}.json"))).unwrap(),
            )
            .unwrap();
            for (part, into) in [("response", &mut by_method), ("request", &mut requests)] {
                let mut schema = file[part].clone();
                standardise(&mut schema);
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft7)
                    .should_validate_formats(false)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("{part} schema of {m}: {e}"));
                into.insert(m.to_string(), v);
            }
        }
        Schemas {
            by_method,
            requests,
        }
    }

    /// The schema violations of `params` as the params of `method` (lightningd refuses
    /// such a call; the fake records it as lnvend's mistake).
    pub fn check_request(&self, method: &str, params: &Value) -> Vec<String> {
        violations(&self.requests, method, params, "params")
    }

    /// The schema violations of `reply` as a result of `method`.
    pub fn check(&self, method: &str, reply: &Value) -> Vec<String> {
        violations(&self.by_method, method, reply, "reply")
    }
}

fn violations(
    validators: &HashMap<String, jsonschema::Validator>,
    method: &str,
    value: &Value,
    what: &str,
) -> Vec<String> {
    // A method the fake has no schema for is a violation to report, not a panic inside a
    // connection's task (which would only look like a dropped connection to lnvend).
    let Some(v) = validators.get(method) else {
        return vec![format!("no {what} schema for {method}")];
    };
    v.iter_errors(value)
        .map(|e| format!("{method} {what}: {e} at {}", e.instance_path))
        .collect()
}

/// The label of lnvend's harmless permission probes (see `PERMISSION_PROBES` in
/// src/backend/cln.rs).
const PROBE_LABEL: &str = "lnvend/permission-probe";

#[derive(Clone, Debug)]
struct FakeInvoice {
    label: String,
    bolt11: String,
    payment_hash: String,
    payment_secret: String,
    preimage: String,
    description: String,
    amount_msat: u64,
    expires_at: u64,
    expires: Instant,
    created_index: u64,
    /// Set when the invoice changed after its creation (here: when it was paid).
    updated_index: Option<u64>,
    paid: Option<(u64, u64)>, // (pay_index, paid_at)
}

impl FakeInvoice {
    fn status(&self) -> &'static str {
        if self.paid.is_some() {
            "paid"
        } else if Instant::now() >= self.expires {
            "expired"
        } else {
            "unpaid"
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "label": self.label,
            "bolt11": self.bolt11,
            "payment_hash": self.payment_hash,
            "description": self.description,
            "amount_msat": self.amount_msat,
            "status": self.status(),
            "expires_at": self.expires_at,
            "created_index": self.created_index,
        });
        if let Some((pay_index, paid_at)) = self.paid {
            let m = v.as_object_mut().unwrap();
            m.insert("pay_index".into(), json!(pay_index));
            m.insert("amount_received_msat".into(), json!(self.amount_msat));
            m.insert("paid_at".into(), json!(paid_at));
            m.insert("payment_preimage".into(), json!(self.preimage));
        }
        if let Some(u) = self.updated_index {
            v["updated_index"] = json!(u);
        }
        v
    }
}

#[derive(Default)]
struct State {
    network: String,
    invoices: Vec<FakeInvoice>,
    last_pay_index: u64,
    /// The node's `updated` index of invoices (CLN's `wait invoices updated`).
    last_updated_index: u64,
    /// `listinvoices` calls that asked for a page (`index`/`start`/`limit`).
    pages: usize,
    /// While set, every page asked for by index fails (a node whose catch-up keeps failing
    /// while the rest of it works).
    fail_pages: bool,
    /// clnrest refuses the rune for this method (a rune without the permission).
    refused_method: Option<String>,
    fail_next_invoice: Option<(i64, String)>,
    /// While set, the daemon hangs up on every `waitinvoice` (open or new).
    close_waits: bool,
    validated: usize,
    violations: Vec<String>,
    calls: Vec<String>,
    /// While set, every reply to this method is padded past 2 MiB (a hostile daemon).
    oversize: Option<String>,
    /// Socket connections open right now.
    open_conns: usize,
}

/// What the fake answers to one request.
enum Answer {
    Result(Value),
    Error(i64, String),
    /// Hang up without answering (the daemon going away mid-call).
    HangUp,
}

#[derive(Clone)]
pub struct FakeNode {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    schemas: Arc<Schemas>,
    key: SecretKey,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hex32() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl FakeNode {
    pub fn new(network: &str) -> FakeNode {
        FakeNode {
            state: Arc::new(Mutex::new(State {
                network: network.into(),
                ..State::default()
            })),
            changed: Arc::new(Notify::new()),
            schemas: Arc::new(Schemas::load()),
            key: SecretKey::from_slice(&[0x42; 32]).unwrap(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves lightningd's JSON-RPC on a unix socket at `path`.
    pub fn serve_socket(&self, path: &Path) -> tokio::task::JoinHandle<()> {
        let listener = UnixListener::bind(path).expect("bind fake lightning-rpc");
        let node = self.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(node.clone().serve_conn(conn));
            }
        })
    }

    async fn serve_conn(self, conn: UnixStream) {
        self.lock().open_conns += 1;
        self.serve_conn_inner(conn).await;
        self.lock().open_conns -= 1;
    }

    async fn serve_conn_inner(&self, mut conn: UnixStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // lightningd reads a stream of JSON values; it needs no separator.
            let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            match stream.next() {
                Some(Ok(req)) => {
                    let used = stream.byte_offset();
                    buf.drain(..used);
                    let id = req["id"].clone();
                    let method = req["method"].as_str().unwrap_or("").to_string();
                    let params = req["params"].clone();
                    // Like lightningd, notice a client that hangs up mid-call.
                    let answer = self.answer(&method, params);
                    tokio::pin!(answer);
                    let answer = loop {
                        tokio::select! {
                            a = &mut answer => break a,
                            r = conn.read(&mut chunk) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            },
                        }
                    };
                    let oversize = self.lock().oversize.as_deref() == Some(method.as_str());
                    let answer = match answer {
                        Answer::Result(mut r) if oversize => {
                            r["padding"] = json!("x".repeat(2 << 20));
                            Answer::Result(r)
                        }
                        other => other,
                    };
                    let out = match answer {
                        Answer::Result(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
                        Answer::Error(code, message) => json!({"jsonrpc": "2.0", "id": id,
                            "error": {"code": code, "message": message}}),
                        Answer::HangUp => return,
                    };
                    let mut text = out.to_string();
                    text.push_str("\n\n");
                    if conn.write_all(text.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) if e.is_eof() => match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
                None => match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
                Some(Err(e)) => panic!("lnvend sent malformed JSON-RPC: {e}"),
            }
        }
    }

    /// Serves clnrest on `listener`, accepting only `rune`.
    pub fn serve_rest<L>(&self, listener: L, rune: &str) -> tokio::task::JoinHandle<()>
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        use axum::extract::{Path as UrlPath, State as AxState};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::{IntoResponse, Response};
        use axum::routing::post;
        #[derive(Clone)]
        struct Ctx {
            node: FakeNode,
            rune: String,
        }
        async fn call(
            AxState(ctx): AxState<Ctx>,
            UrlPath(method): UrlPath<String>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> Response {
            let Some(given) = headers.get("rune").and_then(|v| v.to_str().ok()) else {
                return (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"code": 1501, "message": "Not authorized: Missing rune"})),
                )
                    .into_response();
            };
            if given != ctx.rune {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"code": 1502, "message": "Not authorized: Invalid rune"})),
                )
                    .into_response();
            }
            if ctx.node.lock().refused_method.as_deref() == Some(method.as_str()) {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"code": 1502,
                        "message": format!("Not authorized: method is not equal to getinfo (rune refused for {method})")})),
                )
                    .into_response();
            }
            let params: Value = if body.is_empty() {
                json!({})
            } else {
                match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(_) => return StatusCode::BAD_REQUEST.into_response(),
                }
            };
            match ctx.node.answer(&method, params).await {
                Answer::Result(r) => (StatusCode::CREATED, axum::Json(r)).into_response(),
                Answer::Error(code, message) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(json!({"code": code, "message": message})),
                )
                    .into_response(),
                Answer::HangUp => StatusCode::BAD_GATEWAY.into_response(),
            }
        }
        let app = axum::Router::new()
            .route("/v1/{method}", post(call))
            .with_state(Ctx {
                node: self.clone(),
                rune: rune.to_string(),
            });
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        })
    }

    async fn answer(&self, method: &str, params: Value) -> Answer {
        let wrong = match self.schemas.requests.contains_key(method) {
            true => self.schemas.check_request(method, &params),
            false => Vec::new(),
        };
        // lnvend's permission probes (backend/cln.rs) are counted apart from its real calls,
        // as "probe:<method>", so a test counting e.g. `waitinvoice` counts only wake-ups.
        // One with no params at all is refused for its params after the rune let it
        // through, with -32602, as real lightningd does, and is no request lnvend got wrong.
        let probe = params == json!({}) || params["label"] == PROBE_LABEL;
        if probe && params == json!({}) && !wrong.is_empty() {
            self.lock().calls.push(format!("probe:{method}"));
            return Answer::Error(-32602, format!("missing required parameter ({method})"));
        }
        {
            let mut st = self.lock();
            st.calls.push(match probe {
                true => format!("probe:{method}"),
                false => method.to_string(),
            });
            st.violations.extend(wrong);
        }
        let answer = match method {
            "getinfo" => Answer::Result(self.getinfo()),
            "invoice" => self.invoice(&params),
            "listinvoices" => self.listinvoices(&params),
            "waitinvoice" => self.waitinvoice(&params).await,
            "waitanyinvoice" => self.waitanyinvoice(&params),
            "delinvoice" => self.delinvoice(&params),
            _ => Answer::Error(-32601, format!("Unknown command '{method}'")),
        };
        if let Answer::Result(r) = &answer {
            let errors = self.schemas.check(method, r);
            let mut st = self.lock();
            st.validated += 1;
            st.violations.extend(errors);
        }
        answer
    }

    /// By `label`, or a page of invoices in the order of the `created` or `updated` index
    /// from `start`, at most `limit` of them (CLN orders by `created` without `index`).
    fn listinvoices(&self, params: &Value) -> Answer {
        let mut st = self.lock();
        if let Some(label) = params.get("label") {
            let label = label.as_str().unwrap_or_default();
            let list: Vec<Value> = st
                .invoices
                .iter()
                .filter(|i| i.label == label)
                .map(FakeInvoice::to_json)
                .collect();
            return Answer::Result(json!({ "invoices": list }));
        }
        let Some(index) = params["index"].as_str() else {
            let list: Vec<Value> = st.invoices.iter().map(FakeInvoice::to_json).collect();
            return Answer::Result(json!({ "invoices": list }));
        };
        st.pages += 1;
        if st.fail_pages {
            return Answer::Error(-1, "listinvoices: index temporarily unavailable".into());
        }
        let start = params["start"].as_u64().unwrap_or(0);
        let limit = params["limit"].as_u64().unwrap_or(u64::MAX) as usize;
        let key = |i: &FakeInvoice| match index {
            "updated" => i.updated_index,
            _ => Some(i.created_index),
        };
        let mut page: Vec<&FakeInvoice> = st
            .invoices
            .iter()
            .filter(|i| key(i).is_some_and(|k| k >= start))
            .collect();
        page.sort_by_key(|i| key(i));
        let list: Vec<Value> = page
            .into_iter()
            .take(limit)
            .map(FakeInvoice::to_json)
            .collect();
        Answer::Result(json!({ "invoices": list }))
    }

    fn getinfo(&self) -> Value {
        let secp = Secp256k1::new();
        let id = PublicKey::from_secret_key(&secp, &self.key).to_string();
        let st = self.lock();
        json!({
            "id": id,
            "alias": "FAKENODE",
            "color": "0266e4",
            "num_peers": 0,
            "num_pending_channels": 0,
            "num_active_channels": 0,
            "num_inactive_channels": 0,
            "address": [],
            "binding": [],
            "version": "v25.09",
            "blockheight": 110,
            "network": st.network,
            "fees_collected_msat": 0,
            "lightning-dir": "/tmp/fake-lightningd/regtest",
            "our_features": {"init": "08a0000a0a69a2", "node": "88a0000a0a69a2", "channel": "", "invoice": "02000002024100"},
        })
    }

    fn invoice(&self, params: &Value) -> Answer {
        if let Some((code, message)) = self.lock().fail_next_invoice.take() {
            return Answer::Error(code, message);
        }
        let label = params["label"].as_str().expect("label").to_string();
        if self.lock().invoices.iter().any(|i| i.label == label) {
            return Answer::Error(900, "Duplicate label".into());
        }
        let amount_msat = params["amount_msat"].as_u64().expect("amount_msat in msat");
        let description = params["description"]
            .as_str()
            .expect("description")
            .to_string();
        let expiry = params["expiry"].as_u64().unwrap_or(604_800);
        let preimage: [u8; 32] = rand::random();
        let hash = sha256::Hash::hash(&preimage);
        let secret: [u8; 32] = rand::random();
        let currency = match self.lock().network.as_str() {
            "bitcoin" => Currency::Bitcoin,
            "testnet" | "testnet4" => Currency::BitcoinTestnet,
            "signet" => Currency::Signet,
            _ => Currency::Regtest,
        };
        let now = unix_now();
        let secp = Secp256k1::new();
        let bolt11 = InvoiceBuilder::new(currency)
            .description(description.clone())
            .payment_hash(hash)
            .payment_secret(PaymentSecret(secret))
            .duration_since_epoch(Duration::from_secs(now))
            .min_final_cltv_expiry_delta(18)
            .amount_milli_satoshis(amount_msat)
            .expiry_time(Duration::from_secs(expiry))
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &self.key))
            .unwrap()
            .to_string();
        let mut st = self.lock();
        let inv = FakeInvoice {
            label,
            bolt11: bolt11.clone(),
            payment_hash: hash.to_string(),
            payment_secret: hex::encode(secret),
            preimage: hex::encode(preimage),
            description,
            amount_msat,
            expires_at: now + expiry,
            expires: Instant::now() + Duration::from_secs(expiry),
            created_index: st.invoices.len() as u64 + 1,
            updated_index: None,
            paid: None,
        };
        st.invoices.push(inv.clone());
        Answer::Result(json!({
            "bolt11": bolt11,
            "payment_hash": inv.payment_hash,
            "payment_secret": inv.payment_secret,
            "expires_at": inv.expires_at,
            "created_index": inv.created_index,
        }))
    }

    async fn waitinvoice(&self, params: &Value) -> Answer {
        let label = params["label"].as_str().unwrap_or_default().to_string();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let expires = {
                let st = self.lock();
                if st.close_waits {
                    return Answer::HangUp;
                }
                let Some(inv) = st.invoices.iter().find(|i| i.label == label) else {
                    return Answer::Error(-1, "Invoice does not exist".into());
                };
                match inv.status() {
                    "paid" => return Answer::Result(inv.to_json()),
                    "expired" => return Answer::Error(903, "Invoice expired".into()),
                    _ => inv.expires,
                }
            };
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(expires) => {}
            }
        }
    }

    /// Deletes invoice `label` only if its status is `status`: 905 for a label it does not
    /// have, 906 for another status, as lightningd does. Its waiters are told.
    fn delinvoice(&self, params: &Value) -> Answer {
        let label = params["label"].as_str().unwrap_or_default();
        let want = params["status"].as_str().unwrap_or_default();
        let answer = {
            let mut st = self.lock();
            match st.invoices.iter().position(|i| i.label == label) {
                None => Answer::Error(905, "Unknown invoice".into()),
                Some(at) if st.invoices[at].status() != want => Answer::Error(
                    906,
                    format!("Invoice status is {} not {want}", st.invoices[at].status()),
                ),
                Some(at) => Answer::Result(st.invoices.remove(at).to_json()),
            }
        };
        self.changed.notify_waiters();
        answer
    }

    fn waitanyinvoice(&self, params: &Value) -> Answer {
        let last = params["lastpay_index"].as_u64().unwrap_or(0);
        assert_eq!(params["timeout"], 0, "lnvend only polls waitanyinvoice");
        let st = self.lock();
        let next = st
            .invoices
            .iter()
            .filter(|i| i.paid.is_some_and(|(p, _)| p > last))
            .min_by_key(|i| i.paid.unwrap().0);
        match next {
            Some(inv) => Answer::Result(inv.to_json()),
            None => Answer::Error(904, "Timed out".into()),
        }
    }

    // --- scripting ---

    fn settle(&self, label: &str) {
        let mut st = self.lock();
        st.last_pay_index += 1;
        let idx = st.last_pay_index;
        let inv = st
            .invoices
            .iter_mut()
            .find(|i| i.label == label)
            .expect("no such invoice");
        assert_eq!(inv.status(), "unpaid", "only an unpaid invoice can be paid");
        inv.paid = Some((idx, unix_now()));
        st.last_updated_index += 1;
        let updated = st.last_updated_index;
        let inv = st.invoices.iter_mut().find(|i| i.label == label).unwrap();
        inv.updated_index = Some(updated);
    }

    /// Whether the node still has invoice `label` (lnvend may withdraw one).
    pub fn has_invoice(&self, label: &str) -> bool {
        self.lock().invoices.iter().any(|i| i.label == label)
    }

    /// A wallet pays invoice `label`; waiting `waitinvoice` calls return.
    pub fn pay(&self, label: &str) {
        self.settle(label);
        self.changed.notify_waiters();
    }

    /// Pays and lets nobody know (the waiters were already hung up on).
    pub fn pay_silently(&self, label: &str) {
        self.settle(label);
    }

    /// A payment not made through this fake's API: an invoice paid by another app on the
    /// same node (moves the node's pay_index).
    pub fn foreign_payment(&self) {
        self.foreign_payments(1);
    }

    /// `n` of [`FakeNode::foreign_payment`]: a node with a history.
    pub fn foreign_payments(&self, n: usize) {
        for _ in 0..n {
            self.one_foreign_payment();
        }
    }

    fn one_foreign_payment(&self) {
        let mut st = self.lock();
        st.last_pay_index += 1;
        st.last_updated_index += 1;
        let idx = st.last_pay_index;
        let updated = st.last_updated_index;
        let n = st.invoices.len() as u64 + 1;
        st.invoices.push(FakeInvoice {
            label: format!("other-app-{n}"),
            bolt11: String::new(),
            payment_hash: hex32(),
            payment_secret: hex32(),
            preimage: hex32(),
            description: "not ours".into(),
            amount_msat: 5000,
            expires_at: unix_now() + 3600,
            expires: Instant::now() + Duration::from_secs(3600),
            created_index: n,
            updated_index: Some(updated),
            paid: Some((idx, unix_now())),
        });
    }

    /// The daemon hangs up on every waiting `waitinvoice`, and on new ones while `on`.
    pub fn set_waits_closed(&self, on: bool) {
        self.lock().close_waits = on;
        self.changed.notify_waiters();
    }

    /// While `Some(method)`, every reply to `method` is over 2 MiB.
    pub fn set_oversized_replies(&self, method: Option<&str>) {
        self.lock().oversize = method.map(str::to_string);
    }

    /// Socket connections open right now (a `waitinvoice` in flight holds one).
    pub fn open_connections(&self) -> usize {
        self.lock().open_conns
    }

    /// The next `invoice` call fails with `code`.
    pub fn fail_next_invoice(&self, code: i64, message: &str) {
        self.lock().fail_next_invoice = Some((code, message.into()));
    }

    /// The label of the newest invoice.
    pub fn latest_label(&self) -> Option<String> {
        self.lock().invoices.last().map(|i| i.label.clone())
    }

    /// The description (the BOLT11's too) of the newest invoice.
    pub fn latest_description(&self) -> Option<String> {
        self.lock().invoices.last().map(|i| i.description.clone())
    }

    pub fn invoice_count(&self) -> usize {
        self.lock().invoices.len()
    }

    /// While `on`, every `listinvoices` page asked for by index fails.
    pub fn fail_pages(&self, on: bool) {
        self.lock().fail_pages = on;
    }

    /// `listinvoices` calls that asked for a page of invoices by index.
    pub fn pages(&self) -> usize {
        self.lock().pages
    }

    /// While `Some(method)`, clnrest refuses the rune for `method` as lightningd's
    /// `checkrune` does for a rune without that permission (401, code 1502).
    pub fn refuse_rune_for(&self, method: Option<&str>) {
        self.lock().refused_method = method.map(str::to_string);
    }

    pub fn calls(&self, method: &str) -> usize {
        self.lock().calls.iter().filter(|c| *c == method).count()
    }

    /// Every reply sent so far matched CLN's schema, and there were some.
    pub fn assert_replies_valid(&self) {
        let st = self.lock();
        assert!(st.validated > 0, "the fake sent no reply at all");
        assert!(
            st.violations.is_empty(),
            "replies that real lightningd would not send: {:#?}",
            st.violations
        );
    }
}
