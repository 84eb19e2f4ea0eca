//! A fake BTCPay Server: just the Greenfield routes lnvend uses and the checkout status
//! websocket, behaving as the shared reference describes (1-byte binary frames on any
//! change, a text `ping` keep-alive, 404 on the upgrade once the invoice is final, abrupt
//! drops on request). Every JSON reply, and every invoice request lnvend sends, is checked
//! against the Greenfield OpenAPI schemas in `tests/data/btcpay`; violations are collected
//! and each test asserts there were none.

#![allow(dead_code)]

pub mod schema;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub const STORE: &str = "9CiNzKoANXxmk5ayZngSXrHTiVvvgCrwrpFQd4m2K776";
pub const KEY: &str = "test-greenfield-key-0123456789";
/// Sats per whole fiat unit.
pub const RATE_SAT: u64 = 1000;

#[derive(Clone, Debug)]
pub struct FakeInvoice {
    pub id: String,
    pub status: String,
    pub amount: String,
    pub currency: String,
    pub created: u64,
    pub expiration: u64,
    pub bolt11: String,
    pub msat: u64,
    /// The payment hash inside `bolt11`, lower-case hex.
    pub payment_hash: String,
    /// Greenfield's `additionalStatus` ("None", "PaidLate", "PaidOver", …).
    pub additional_status: String,
    /// What was paid over Lightning, in msat.
    pub paid_msat: u64,
    pub metadata: Value,
    pub checkout: Value,
}

/// Replies no honest server sends.
#[derive(Clone, Copy, Debug)]
pub enum Hostile {
    /// Invoice creation answers 200 with a body that is not JSON.
    Malformed,
    /// Invoice creation answers 200 with 2 MB of JSON.
    Huge,
    /// Invoice creation answers 422 with a field error.
    FieldError,
    /// The payment methods answer claims a BOLT11 for another amount than it contains.
    AmountMismatch,
    /// The payment methods answer names another payment hash than its BOLT11 carries.
    HashMismatch,
    /// The payment methods answer has no `additionalData.paymentHash` (older servers).
    NoHash,
}

enum WsCmd {
    Frame,
    /// One binary frame of this many bytes.
    Huge(usize),
    Drop,
}

#[derive(Default)]
struct Inner {
    invoices: HashMap<String, FakeInvoice>,
    order: Vec<String>,
    sockets: HashMap<String, Vec<mpsc::UnboundedSender<WsCmd>>>,
    fail_next: u32,
    /// How long a refund request waits before it is answered.
    refund_delay: Duration,
    wrong_amount: bool,
    ws_enabled: bool,
    missing_permission: Option<&'static str>,
    hostile: Option<Hostile>,
    schema_errors: Vec<String>,
    create_requests: Vec<Value>,
    api_calls: u64,
    ws_connects: u64,
    /// Status sockets the fake holds open right now.
    ws_live: u64,
    ping_every: Duration,
    /// Forget all but this many of the latest invoices (a long soak's memory).
    keep_last: Option<usize>,
    refunds: Vec<String>,
    /// Each refund request's body, with the msat the fake's pull payment then holds.
    refund_requests: Vec<(Value, u64)>,
}

#[derive(Clone)]
pub struct FakeBtcpay {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    schemas: Arc<schema::Schemas>,
    key: SecretKey,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl FakeBtcpay {
    pub async fn start() -> FakeBtcpay {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/btcpay");
        let fake = FakeBtcpay {
            addr: "127.0.0.1:0".parse().unwrap(),
            inner: Arc::new(Mutex::new(Inner {
                ws_enabled: true,
                ping_every: Duration::from_millis(500),
                ..Inner::default()
            })),
            schemas: Arc::new(schema::Schemas::load(&dir)),
            key: SecretKey::from_slice(&[0x42; 32]).unwrap(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fake = FakeBtcpay { addr, ..fake };
        let app = Router::new()
            .route("/api/v1/stores/{store}/invoices", get(list).post(create))
            .route("/api/v1/stores/{store}/invoices/{id}", get(get_invoice))
            .route(
                "/api/v1/stores/{store}/invoices/{id}/payment-methods",
                get(methods),
            )
            .route(
                "/api/v1/stores/{store}/invoices/{id}/refund",
                axum::routing::post(refund),
            )
            .route("/i/{id}/status/ws", get(status_ws))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub fn latest(&self) -> FakeInvoice {
        let inner = self.lock();
        let id = inner.order.last().expect("an invoice was created").clone();
        inner.invoices[&id].clone()
    }

    pub fn invoice_count(&self) -> usize {
        self.lock().invoices.len()
    }

    fn set_status(&self, id: &str, status: &str, notify: bool, drop: bool) {
        self.set_state(id, status, None, None, notify, drop);
    }

    /// `additional` sets `additionalStatus`, `paid` the msat paid (by default, in full when
    /// Settled, nothing otherwise).
    fn set_state(
        &self,
        id: &str,
        status: &str,
        additional: Option<&str>,
        paid: Option<u64>,
        notify: bool,
        drop: bool,
    ) {
        let mut inner = self.lock();
        let inv = inner.invoices.get_mut(id).expect("known invoice");
        inv.status = status.into();
        inv.additional_status = additional.unwrap_or("None").into();
        inv.paid_msat = paid.unwrap_or(if status == "Settled" { inv.msat } else { 0 });
        if let Some(socks) = inner.sockets.get_mut(id) {
            socks.retain(|s| !s.is_closed());
            for s in socks.iter() {
                if notify {
                    let _ = s.send(WsCmd::Frame);
                }
                if drop {
                    let _ = s.send(WsCmd::Drop);
                }
            }
            if drop {
                socks.clear();
            }
        }
    }

    /// The customer pays: Settled, and a frame on every status socket.
    pub fn settle(&self, id: &str) {
        self.set_status(id, "Settled", true, false);
    }

    /// Settled, with no frame: only a poll or a reconnect finds it.
    pub fn settle_silently(&self, id: &str) {
        self.set_status(id, "Settled", false, false);
    }

    /// Settled, and every socket for it drops at once, before any frame.
    pub fn settle_and_drop(&self, id: &str) {
        self.set_status(id, "Settled", false, true);
    }

    pub fn expire(&self, id: &str) {
        self.set_status(id, "Expired", true, false);
    }

    /// `msat` arrive after the invoice expired: Expired with PaidLate, as BTCPay reports it.
    pub fn pay_late(&self, id: &str, msat: u64) {
        self.set_state(id, "Expired", Some("PaidLate"), Some(msat), true, false);
    }

    /// Settled with more than asked: PaidOver.
    pub fn settle_over(&self, id: &str, msat: u64) {
        self.set_state(id, "Settled", Some("PaidOver"), Some(msat), true, false);
    }

    /// Sends one binary frame of `bytes` bytes on every status socket of the invoice.
    pub fn huge_frame(&self, id: &str, bytes: usize) {
        let inner = self.lock();
        for s in inner.sockets.get(id).into_iter().flatten() {
            let _ = s.send(WsCmd::Huge(bytes));
        }
    }

    /// How often an open status socket gets its text `ping`.
    pub fn ping_every(&self, every: Duration) {
        self.lock().ping_every = every;
    }

    /// Keeps only the latest `n` invoices (for a long soak in one process).
    pub fn keep_last(&self, n: usize) {
        self.lock().keep_last = Some(n);
    }

    /// Status sockets asked for an invoice and not yet closed.
    pub fn sockets_for(&self, id: &str) -> usize {
        let inner = self.lock();
        inner
            .sockets
            .get(id)
            .map_or(0, |s| s.iter().filter(|s| !s.is_closed()).count())
    }

    /// Status sockets still open on the fake's side.
    pub fn ws_live(&self) -> u64 {
        self.lock().ws_live
    }

    /// The next `n` Greenfield calls answer 500.
    pub fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }

    /// Refund requests are answered only after `delay` (a slow server).
    pub fn refund_delay(&self, delay: Duration) {
        self.lock().refund_delay = delay;
    }

    /// New invoices get a BOLT11 one sat off the invoice amount.
    pub fn wrong_amount(&self, on: bool) {
        self.lock().wrong_amount = on;
    }

    pub fn ws_enabled(&self, on: bool) {
        self.lock().ws_enabled = on;
    }

    pub fn missing_permission(&self, p: Option<&'static str>) {
        self.lock().missing_permission = p;
    }

    pub fn hostile(&self, mode: Option<Hostile>) {
        self.lock().hostile = mode;
    }

    pub fn drop_sockets(&self) {
        let mut inner = self.lock();
        for socks in inner.sockets.values_mut() {
            for s in socks.drain(..) {
                let _ = s.send(WsCmd::Drop);
            }
        }
    }

    /// Invoices refunded so far.
    pub fn refunds(&self) -> Vec<String> {
        self.lock().refunds.clone()
    }

    /// The body of each refund request, with the msat its pull payment holds.
    pub fn refund_requests(&self) -> Vec<(Value, u64)> {
        self.lock().refund_requests.clone()
    }

    pub fn create_requests(&self) -> Vec<Value> {
        self.lock().create_requests.clone()
    }

    pub fn ws_connects(&self) -> u64 {
        self.lock().ws_connects
    }

    /// Every schema violation seen so far, in replies and in lnvend's requests.
    pub fn schema_errors(&self) -> Vec<String> {
        self.lock().schema_errors.clone()
    }

    /// Checks a webhook body a test is about to send against Greenfield's payload schema.
    pub fn schema_check_webhook(&self, body: &[u8]) {
        let v: Value = serde_json::from_slice(body).unwrap();
        self.check("WebhookInvoiceSettledEvent", false, &v);
    }

    fn check(&self, name: &str, array: bool, v: &Value) {
        let errs = self.schemas.errors(name, array, v);
        if !errs.is_empty() {
            self.lock().schema_errors.extend(errs);
        }
    }

    fn invoice_json(&self, inv: &FakeInvoice) -> Value {
        let v = json!({
            "id": inv.id,
            "storeId": STORE,
            "amount": inv.amount,
            "paidAmount": if inv.paid_msat > 0 { inv.amount.clone() } else { "0".into() },
            "currency": inv.currency,
            "type": "Standard",
            "checkoutLink": format!("{}/i/{}", self.url(), inv.id),
            "createdTime": inv.created,
            "expirationTime": inv.expiration,
            "monitoringExpiration": inv.expiration + 86400,
            "status": inv.status,
            "additionalStatus": inv.additional_status,
            "availableStatusesForManualMarking": ["Settled", "Invalid"],
            "archived": false,
            "metadata": inv.metadata,
            "checkout": inv.checkout,
            "receipt": {"enabled": true, "showQR": null, "showPayments": null},
        });
        self.check("InvoiceData", false, &v);
        v
    }

    /// A signed BOLT11 and its payment hash (hex).
    fn bolt11(&self, msat: u64, expiry: Duration) -> (String, String) {
        let secp = Secp256k1::new();
        let preimage: [u8; 32] = rand::random();
        let hash = sha256::Hash::hash(&preimage);
        let bolt11 = InvoiceBuilder::new(Currency::Regtest)
            .description("lnvend test".into())
            .payment_hash(hash)
            .payment_secret(PaymentSecret(rand::random()))
            .duration_since_epoch(Duration::from_secs(now()))
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(msat)
            .expiry_time(expiry)
            .build_signed(|m| secp.sign_ecdsa_recoverable(m, &self.key))
            .unwrap()
            .to_string();
        (bolt11, hash.to_string())
    }

    /// Auth and storms, as Greenfield answers them. `None` means: go on.
    fn gate(&self, headers: &HeaderMap, store: &str, permission: &'static str) -> Option<Response> {
        let mut inner = self.lock();
        inner.api_calls += 1;
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(&format!("token {KEY}")) {
            return Some(StatusCode::UNAUTHORIZED.into_response());
        }
        if inner.missing_permission == Some(permission) {
            let body =
                json!({"code": "missing-permission", "message": format!("Missing {permission}")});
            drop(inner);
            self.check("ProblemDetails", false, &body);
            return Some((StatusCode::FORBIDDEN, Json(body)).into_response());
        }
        if store != STORE {
            let body = json!({"code": "store-not-found", "message": "Store not found"});
            drop(inner);
            self.check("ProblemDetails", false, &body);
            return Some((StatusCode::NOT_FOUND, Json(body)).into_response());
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        None
    }
}

async fn create(
    State(fake): State<FakeBtcpay>,
    Path(store): Path<String>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    if let Some(r) = fake.gate(&headers, &store, "btcpay.store.cancreateinvoice") {
        return r;
    }
    fake.check("CreateInvoiceRequest", false, &req);
    fake.lock().create_requests.push(req.clone());
    let hostile = fake.lock().hostile;
    match hostile {
        Some(Hostile::Malformed) => {
            return (StatusCode::OK, "{\"id\": \"Inv1\", \"status\": ").into_response()
        }
        Some(Hostile::Huge) => {
            let pad = " ".repeat(2 << 20);
            return (StatusCode::OK, format!("{pad}{{}}")).into_response();
        }
        Some(Hostile::FieldError) => {
            let body = json!([{"path": "checkout.expirationMinutes", "message": "Too long"}]);
            fake.check("ValidationProblemDetails", false, &body);
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
        }
        Some(Hostile::AmountMismatch | Hostile::HashMismatch | Hostile::NoHash) | None => {}
    }
    let amount = req["amount"].as_str().unwrap_or_default().to_string();
    let currency = req["currency"].as_str().unwrap_or("SATS").to_string();
    let sats: Option<u64> = if currency == "SATS" {
        amount.parse().ok()
    } else {
        amount
            .parse::<f64>()
            .ok()
            .map(|a| (a * 100.0).round() as u64 * RATE_SAT / 100)
    };
    let Some(sats) = sats.filter(|s| *s > 0) else {
        let body = json!([{"path": "amount", "message": "The amount should be more than 0"}]);
        fake.check("ValidationProblemDetails", false, &body);
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
    };
    let minutes = req["checkout"]["expirationMinutes"].as_u64().unwrap_or(15);
    let wrong = fake.lock().wrong_amount;
    let msat = sats * 1000 + if wrong { 1000 } else { 0 };
    let created = now();
    let (bolt11, payment_hash) = fake.bolt11(msat, Duration::from_secs(minutes * 60));
    let inv = FakeInvoice {
        id: format!("Inv{:016X}", rand::random::<u64>()),
        status: "New".into(),
        amount,
        currency,
        created,
        expiration: created + minutes * 60,
        bolt11,
        msat,
        payment_hash,
        additional_status: "None".into(),
        paid_msat: 0,
        metadata: req["metadata"].clone(),
        checkout: json!({
            "speedPolicy": "HighSpeed",
            "paymentMethods": req["checkout"]["paymentMethods"].clone(),
            "defaultPaymentMethod": null,
            "lazyPaymentMethods": false,
            "expirationMinutes": minutes,
            "monitoringMinutes": 1440,
            "paymentTolerance": 0,
            "redirectURL": null,
            "redirectAutomatically": false,
            "defaultLanguage": null,
        }),
    };
    let body = fake.invoice_json(&inv);
    let mut inner = fake.lock();
    inner.order.push(inv.id.clone());
    inner.invoices.insert(inv.id.clone(), inv);
    if let Some(keep) = inner.keep_last {
        while inner.order.len() > keep {
            let old = inner.order.remove(0);
            inner.invoices.remove(&old);
            inner.sockets.remove(&old);
        }
        let excess = inner.create_requests.len().saturating_sub(keep);
        inner.create_requests.drain(..excess);
    }
    drop(inner);
    Json(body).into_response()
}

async fn list(
    State(fake): State<FakeBtcpay>,
    Path(store): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = fake.gate(&headers, &store, "btcpay.store.canviewinvoices") {
        return r;
    }
    let take: usize = q.get("take").and_then(|t| t.parse().ok()).unwrap_or(50);
    let invoices: Vec<FakeInvoice> = {
        let inner = fake.lock();
        inner
            .order
            .iter()
            .rev()
            .take(take)
            .map(|id| inner.invoices[id].clone())
            .collect()
    };
    let body = Value::Array(invoices.iter().map(|i| fake.invoice_json(i)).collect());
    fake.check("InvoiceData", true, &body);
    Json(body).into_response()
}

async fn get_invoice(
    State(fake): State<FakeBtcpay>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = fake.gate(&headers, &store, "btcpay.store.canviewinvoices") {
        return r;
    }
    let inv = fake.lock().invoices.get(&id).cloned();
    match inv {
        Some(inv) => Json(fake.invoice_json(&inv)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn methods(
    State(fake): State<FakeBtcpay>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = fake.gate(&headers, &store, "btcpay.store.canviewinvoices") {
        return r;
    }
    let Some(inv) = fake.lock().invoices.get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let btc = btc_of(inv.msat);
    let paid = btc_of(inv.paid_msat);
    let due = if inv.paid_msat > inv.msat {
        format!("-{}", btc_of(inv.paid_msat - inv.msat))
    } else {
        btc_of(inv.msat - inv.paid_msat)
    };
    let hostile = fake.lock().hostile;
    let additional = match hostile {
        Some(Hostile::NoHash) => json!({}),
        Some(Hostile::HashMismatch) => json!({
            "paymentHash": sha256::Hash::hash(b"another invoice").to_string(),
            "preimage": null,
            "invoiceId": inv.payment_hash,
            "nodeInfo": NODE_INFO,
        }),
        _ => json!({
            "paymentHash": inv.payment_hash,
            "preimage": null,
            "invoiceId": inv.payment_hash,
            "nodeInfo": NODE_INFO,
        }),
    };
    let body = json!([{
        "paymentMethodId": "BTC-LN",
        "currency": "BTC",
        "destination": inv.bolt11,
        "paymentLink": format!("lightning:{}", inv.bolt11),
        "rate": "100000000",
        "paymentMethodPaid": paid,
        "totalPaid": paid,
        "due": due,
        "amount": if matches!(hostile, Some(Hostile::AmountMismatch)) { "0.00000001".to_string() } else { btc },
        "paymentMethodFee": "0",
        "payments": [],
        "activated": true,
        "additionalData": additional,
    }]);
    fake.check("InvoicePaymentMethodDataModel", true, &body);
    Json(body).into_response()
}

/// A node's connection string, as BTCPay shows it.
const NODE_INFO: &str =
    "02a8d2f3b2f2c4e8e5b0f1c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718@127.0.0.1:9735";

/// "0.00001260" BTC as msat (at most 8 decimals: whole sats), or None.
fn msat_of_btc(btc: &str) -> Option<u64> {
    let (whole, frac) = btc.split_once('.').unwrap_or((btc, ""));
    if whole.is_empty()
        || frac.len() > 8
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let sats = whole.parse::<u64>().ok()?.checked_mul(100_000_000)?
        + format!("{frac:0<8}").parse::<u64>().ok()?;
    sats.checked_mul(1000)
}

/// msat as a BTC decimal string, as Greenfield writes amounts ("0.000021", "0").
fn btc_of(msat: u64) -> String {
    let s = format!("{}.{:011}", msat / 100_000_000_000, msat % 100_000_000_000);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

async fn refund(
    State(fake): State<FakeBtcpay>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    if let Some(r) = fake.gate(&headers, &store, "btcpay.store.cancreatepullpayments") {
        return r;
    }
    fake.check("RefundInvoiceRequest", false, &req);
    let delay = fake.lock().refund_delay;
    tokio::time::sleep(delay).await;
    let Some(inv) = fake.lock().invoices.get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if inv.status != "Settled" {
        let body = json!([{"path": "invoiceId", "message": "Cannot refund an invoice that is not settled"}]);
        fake.check("ValidationProblemDetails", false, &body);
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    // What Greenfield would put in the pull payment: the paid amount at the rate then, or
    // the custom amount. The fake knows only BTC amounts and refuses what lnvend must never
    // ask for: more than was paid, a share left to the server's rounding.
    let refused = |message: &str| {
        let body = json!([{"path": "refundVariant", "message": message}]);
        fake.check("ValidationProblemDetails", false, &body);
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    };
    if req.get("subtractPercentage").is_some() {
        return refused("the fake refuses subtractPercentage: lnvend sends exact amounts");
    }
    let msat = match req["refundVariant"].as_str() {
        Some("RateThen") => inv.paid_msat.max(inv.msat),
        Some("Custom") => {
            if req["customCurrency"] != "BTC" {
                return refused("the fake refunds custom amounts in BTC only");
            }
            let Some(m) = req["customAmount"].as_str().and_then(msat_of_btc) else {
                return refused("customAmount is not a BTC amount");
            };
            if m == 0 || m > inv.paid_msat.max(inv.msat) || m % 1000 != 0 {
                return refused("customAmount must be whole sats, above 0, at most what was paid");
            }
            m
        }
        _ => return refused("a variant lnvend does not use"),
    };
    fake.lock().refund_requests.push((req.clone(), msat));
    let pp = format!("PP{:08X}", rand::random::<u32>());
    let body = json!({
        "id": pp,
        "name": req["name"],
        "description": req["description"],
        "currency": "BTC",
        "amount": format!("{}.{:08}", msat / 100_000_000_000, msat / 1000 % 100_000_000),
        "BOLT11Expiration": "30",
        "autoApproveClaims": false,
        "archived": false,
        "viewLink": format!("{}/pull-payments/{pp}", fake.url()),
    });
    fake.check("PullPaymentData", false, &body);
    fake.lock().refunds.push(id);
    Json(body).into_response()
}

async fn status_ws(
    State(fake): State<FakeBtcpay>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let (final_or_unknown, enabled, ping) = {
        let inner = fake.lock();
        let status = inner.invoices.get(&id).map(|i| i.status.clone());
        (
            !matches!(status.as_deref(), Some("New" | "Processing")),
            inner.ws_enabled,
            inner.ping_every,
        )
    };
    if !enabled {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if final_or_unknown {
        return StatusCode::NOT_FOUND.into_response();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut inner = fake.lock();
        inner.ws_connects += 1;
        let socks = inner.sockets.entry(id).or_default();
        socks.retain(|s| !s.is_closed());
        socks.push(tx);
    }
    ws.on_upgrade(move |socket| async move {
        fake.lock().ws_live += 1;
        serve_socket(socket, rx, ping).await;
        fake.lock().ws_live -= 1;
    })
}

async fn serve_socket(
    mut socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<WsCmd>,
    ping: Duration,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ping, ping);
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                // One meaningless byte, as BTCPay sends.
                Some(WsCmd::Frame) => {
                    if socket.send(Message::Binary(vec![0x01].into())).await.is_err() {
                        return;
                    }
                }
                Some(WsCmd::Huge(n)) => {
                    if socket.send(Message::Binary(vec![0x01; n].into())).await.is_err() {
                        return;
                    }
                }
                // Abrupt: no close frame.
                Some(WsCmd::Drop) | None => return,
            },
            _ = tick.tick() => {
                if socket.send(Message::Text("ping".into())).await.is_err() {
                    return;
                }
            }
            // The client went away (or broke the protocol): this socket is done.
            msg = socket.recv() => if !matches!(msg, Some(Ok(_))) { return },
        }
    }
}
