//! BTCPay Server through its Greenfield API.
//!
//! An invoice is a Greenfield invoice restricted to Lightning (`BTC-LN`); the BOLT11 shown is
//! the `destination` of its `BTC-LN` payment method, checked against what we asked before it
//! can reach the screen. A pour is authorised only by Greenfield's authenticated
//! `status == "Settled"`. Wake-ups come from the checkout page's status websocket
//! (`/i/{id}/status/ws`, unauthenticated, so a frame only means "look again") and,
//! optionally, from signed webhooks; both only make the watcher ask Greenfield again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lightning_invoice::Bolt11Invoice;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::http::{self, TlsSettings};
use super::memo::{unix_now, InvoiceMemo};
use super::{
    BackendError, Invoice, InvoiceId, InvoiceRequest, InvoiceState, PaymentBackend, WakeUps,
};
use crate::config::{parse_cert_sha256, BtcpayConfig};
use crate::money::{Msat, Price};
use crate::secret::Secret;

/// Greenfield's Lightning payment method id (v2); older servers call it `BTC-LightningNetwork`.
const LN_METHODS: [&str; 2] = ["BTC-LN", "BTC-LightningNetwork"];

/// Wake-up senders per invoice id, held weakly so that a closed websocket still closes the
/// watcher's channel (which is how it learns to poll).
type Wakers = Arc<Mutex<HashMap<String, Vec<mpsc::WeakSender<()>>>>>;

pub struct BtcpayBackend {
    client: reqwest::Client,
    base: Url,
    store_id: String,
    api_key: Secret,
    machine_id: String,
    tls: TlsSettings,
    wakers: Wakers,
    /// BOLT11 amounts of the invoices we made, to report what a settled invoice was for.
    amounts: InvoiceMemo<Msat>,
}

impl std::fmt::Debug for BtcpayBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtcpayBackend")
            .field("base", &self.base.as_str())
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct InvoiceData {
    id: String,
    status: String,
    #[serde(default)]
    expiration_time: Option<f64>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct PaymentMethod {
    payment_method_id: String,
    #[serde(default)]
    destination: Option<String>,
    /// The invoice amount in this method's currency (BTC), as a decimal string.
    #[serde(default)]
    amount: Option<String>,
}

#[derive(Deserialize, Debug)]
struct FieldError {
    #[serde(default)]
    path: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct WebhookEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    invoice_id: Option<String>,
    #[serde(default)]
    store_id: Option<String>,
}

impl BtcpayBackend {
    /// Builds the client; with `webhook_listen` set, also starts the webhook listener (so
    /// it must be called inside a tokio runtime).
    pub fn new(
        config: &BtcpayConfig,
        machine_id: &str,
    ) -> Result<Arc<BtcpayBackend>, BackendError> {
        let mut base = Url::parse(&config.url)
            .map_err(|e| BackendError::Rejected(format!("backend.url: {e}")))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let tls = TlsSettings {
            ca_file: config.ca_file.clone(),
            cert_sha256: config.cert_sha256.as_deref().and_then(parse_cert_sha256),
        };
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let api_key = config
            .api_key
            .clone()
            .ok_or_else(|| BackendError::Unauthorized("no API key configured".into()))?;
        let backend = Arc::new(BtcpayBackend {
            client: http::client(&tls, timeout)?,
            base,
            store_id: config.store_id.clone(),
            api_key,
            machine_id: machine_id.to_string(),
            tls,
            wakers: Arc::default(),
            amounts: InvoiceMemo::default(),
        });
        if let Some(listen) = &config.webhook_listen {
            let addr: SocketAddr = listen
                .parse()
                .map_err(|e| BackendError::Rejected(format!("backend.webhook_listen: {e}")))?;
            let secret = config.webhook_secret.clone().ok_or_else(|| {
                BackendError::Rejected("backend.webhook_secret is missing".into())
            })?;
            let bound = spawn_webhook_listener(
                addr,
                secret,
                config.store_id.clone(),
                backend.wakers.clone(),
            )?;
            tracing::info!(%bound, "listening for BTCPay webhooks");
        }
        Ok(backend)
    }

    fn url(&self, path: &str) -> Result<Url, BackendError> {
        self.base
            .join(path)
            .map_err(|e| BackendError::Rejected(format!("bad URL path {path}: {e}")))
    }

    fn store_path(&self, rest: &str) -> String {
        format!("api/v1/stores/{}/{rest}", urlencode(&self.store_id))
    }

    /// One Greenfield call; `permission` names what a 403 means.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        permission: &str,
    ) -> Result<Vec<u8>, BackendError> {
        let mut req = self
            .client
            .request(method, self.url(path)?)
            .header("Authorization", format!("token {}", self.api_key.expose()))
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(http::transport_error)?;
        let (status, body) = http::read_body(resp).await?;
        if status.is_success() {
            return Ok(body);
        }
        Err(self.error_for(status, &body, permission))
    }

    fn error_for(&self, status: StatusCode, body: &[u8], permission: &str) -> BackendError {
        match status.as_u16() {
            401 => BackendError::Unauthorized("BTCPay rejected the API key (401)".into()),
            403 => BackendError::Unauthorized(format!(
                "the BTCPay API key lacks the permission {permission} (403)"
            )),
            404 => BackendError::Rejected(format!(
                "BTCPay store {} or invoice not found (404)",
                self.store_id
            )),
            422 => {
                let fields: Vec<FieldError> = serde_json::from_slice(body).unwrap_or_default();
                for f in &fields {
                    tracing::error!(path = %f.path, message = %f.message, "BTCPay refused a field");
                }
                let list: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.path, f.message))
                    .collect();
                BackendError::Rejected(format!(
                    "BTCPay refused the request (422): {}",
                    list.join("; ")
                ))
            }
            _ => http::status_error(status, body, "BTCPay"),
        }
    }

    /// Retries server errors (5xx) twice with a short backoff; other errors return at once.
    async fn call_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        permission: &str,
    ) -> Result<Vec<u8>, BackendError> {
        let mut delay = Duration::from_millis(300);
        let mut attempt = 0;
        loop {
            match self
                .call(method.clone(), path, body.clone(), permission)
                .await
            {
                Err(BackendError::Unreachable(e)) if attempt < 2 && e.contains("server error") => {
                    tracing::warn!(error = %e, attempt, "BTCPay server error; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn invoice_data(&self, id: &str) -> Result<InvoiceData, BackendError> {
        let body = self
            .call_retrying(
                Method::GET,
                &self.store_path(&format!("invoices/{}", urlencode(id))),
                None,
                "btcpay.store.canviewinvoices",
            )
            .await?;
        let data: InvoiceData = http::parse_json(&body)?;
        if data.id != id {
            return Err(BackendError::BadReply(format!(
                "asked for invoice {id}, got {}",
                data.id
            )));
        }
        Ok(data)
    }

    /// The BTC-LN payment method's BOLT11 and its amount in msat.
    async fn lightning_method(&self, id: &str) -> Result<(String, Msat), BackendError> {
        let body = self
            .call_retrying(
                Method::GET,
                &self.store_path(&format!("invoices/{}/payment-methods", urlencode(id))),
                None,
                "btcpay.store.canviewinvoices",
            )
            .await?;
        let methods: Vec<PaymentMethod> = http::parse_json(&body)?;
        let ln = methods
            .iter()
            .find(|m| LN_METHODS.contains(&m.payment_method_id.as_str()))
            .ok_or_else(|| {
                BackendError::Rejected("the BTCPay invoice has no Lightning payment method; is Lightning enabled for the store?".into())
            })?;
        let bolt11 = ln
            .destination
            .clone()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| {
                BackendError::BadReply("BTC-LN payment method without a destination".into())
            })?;
        let parsed = Bolt11Invoice::from_str(bolt11.trim()).map_err(|e| {
            BackendError::BadReply(format!("BTC-LN destination is not a BOLT11 invoice: {e}"))
        })?;
        let msat = parsed
            .amount_milli_satoshis()
            .ok_or_else(|| BackendError::BadReply("the BOLT11 invoice has no amount".into()))?;
        if let Some(btc) = &ln.amount {
            let stated = btc_to_msat(btc).ok_or_else(|| {
                BackendError::BadReply(format!("BTC-LN amount {btc:?} is not a BTC amount"))
            })?;
            if stated != msat {
                return Err(BackendError::BadReply(format!(
                    "the BOLT11 asks for {msat} msat but BTCPay says the invoice is {stated} msat"
                )));
            }
        }
        Ok((bolt11.trim().to_string(), Msat::from_msat(msat)))
    }

    fn ws_url(&self, id: &str) -> Result<Url, BackendError> {
        let mut url = self.url(&format!("i/{}/status/ws", urlencode(id)))?;
        let scheme = match url.scheme() {
            "https" => "wss",
            "http" => "ws",
            other => {
                return Err(BackendError::Rejected(format!(
                    "unsupported URL scheme {other}"
                )))
            }
        };
        url.set_scheme(scheme)
            .map_err(|()| BackendError::Rejected("cannot build the websocket URL".into()))?;
        Ok(url)
    }
}

#[async_trait]
impl PaymentBackend for BtcpayBackend {
    fn name(&self) -> &'static str {
        "btcpay"
    }

    async fn check_health(&self) -> Result<(), BackendError> {
        // Listing one invoice proves the server answers, the key is valid, the store exists
        // and the key may view invoices.
        let body = self
            .call_retrying(
                Method::GET,
                &format!("{}?take=1", self.store_path("invoices")),
                None,
                "btcpay.store.canviewinvoices",
            )
            .await?;
        let _: Vec<serde_json::Value> = http::parse_json(&body)?;
        Ok(())
    }

    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, BackendError> {
        let (amount, currency) = match &request.price {
            Price::Sats(m) => {
                let sats = m.as_whole_sat().ok_or_else(|| {
                    BackendError::Rejected("BTCPay prices are in whole sats".into())
                })?;
                (sats.to_string(), "SATS".to_string())
            }
            Price::Fiat(f) => (f.amount_str(), f.currency().to_string()),
        };
        let minutes = request.expiry.as_secs().div_ceil(60).max(1);
        let body = json!({
            "amount": amount,
            "currency": currency,
            "metadata": {
                "orderId": request.sale_id,
                "itemDesc": request.description,
                "machineId": self.machine_id,
            },
            "checkout": {
                "expirationMinutes": minutes,
                "paymentMethods": ["BTC-LN"],
            },
        });
        let reply = self
            .call_retrying(
                Method::POST,
                &self.store_path("invoices"),
                Some(body),
                "btcpay.store.cancreateinvoice",
            )
            .await?;
        let data: InvoiceData = http::parse_json(&reply)?;
        if data.status != "New" {
            return Err(BackendError::BadReply(format!(
                "a new BTCPay invoice has status {:?}",
                data.status
            )));
        }
        let (bolt11, amount) = self.lightning_method(&data.id).await?;
        let parsed = Bolt11Invoice::from_str(&bolt11)
            .map_err(|e| BackendError::BadReply(format!("BOLT11: {e}")))?;
        let bolt11_expiry = parsed.expires_at().map_or(u64::MAX, |d| d.as_secs());
        // The QR must not outlive the Greenfield invoice, nor the other way round.
        let expires_at_unix = match data.expiration_time {
            Some(t) if t.is_finite() && t > 0.0 => (t as u64).min(bolt11_expiry),
            Some(_) | None => bolt11_expiry,
        };
        let id = InvoiceId(data.id);
        self.amounts
            .insert(id.0.clone(), expires_at_unix, amount, unix_now());
        Ok(Invoice {
            id,
            payment_hash: parsed.payment_hash().to_string(),
            bolt11,
            amount,
            expires_at_unix,
        })
    }

    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
        let data = self.invoice_data(&id.0).await?;
        match data.status.as_str() {
            "New" | "Processing" => Ok(InvoiceState::Pending),
            "Expired" => Ok(InvoiceState::Expired),
            "Invalid" => Ok(InvoiceState::Invalid),
            "Settled" => {
                // Greenfield's Settled means paid in full; report the invoice's own amount.
                let known = self.amounts.get(&id.0);
                let received = match known {
                    Some(m) => m,
                    None => self.lightning_method(&id.0).await?.1,
                };
                Ok(InvoiceState::Paid { received })
            }
            other => Err(BackendError::BadReply(format!(
                "unknown invoice status {other:?}"
            ))),
        }
    }

    async fn refund(&self, id: &InvoiceId) -> Result<Option<String>, BackendError> {
        // At the rate the invoice was paid, claimable over Lightning.
        let body = json!({
            "name": format!("Refund {}", id.0),
            "description": format!("Refund from vending machine {}", self.machine_id),
            "refundVariant": "RateThen",
            "payoutMethods": ["BTC-LN"],
        });
        let reply = self
            .call(
                Method::POST,
                &self.store_path(&format!("invoices/{}/refund", urlencode(&id.0))),
                Some(body),
                "btcpay.store.cancreatepullpayments",
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PullPayment {
            view_link: String,
        }
        let pp: PullPayment = http::parse_json(&reply)?;
        let link = Url::parse(&pp.view_link)
            .map_err(|e| BackendError::BadReply(format!("refund link is not a URL: {e}")))?;
        if link.scheme() != "https" && link.scheme() != "http" {
            return Err(BackendError::BadReply(
                "refund link is not a web link".into(),
            ));
        }
        Ok(Some(link.to_string()))
    }

    async fn wake_ups(&self, id: &InvoiceId) -> Result<WakeUps, BackendError> {
        let url = self.ws_url(&id.0)?;
        let connector = http::ws_connector(&self.tls)?;
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            false,
            Some(connector),
        );
        let (socket, _) = match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Err(_) => {
                return Err(BackendError::Unreachable(
                    "status websocket: timed out".into(),
                ))
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) if resp.status() == 404 => {
                // BTCPay answers 404 once the invoice is final: the watcher re-checks it.
                return Err(BackendError::Rejected(
                    "status websocket: invoice already final (404)".into(),
                ));
            }
            Ok(Err(e)) => return Err(BackendError::Unreachable(format!("status websocket: {e}"))),
            Ok(Ok(s)) => s,
        };
        let (tx, rx) = mpsc::channel(1);
        {
            let mut wakers = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            // Watches that ended without a webhook (expired, or no webhook set up) leave
            // dead entries behind: clear them here so the map stays small.
            wakers.retain(|_, list| {
                list.retain(|w| w.strong_count() > 0);
                !list.is_empty()
            });
            wakers.entry(id.0.clone()).or_default().push(tx.downgrade());
        }
        let invoice = id.0.clone();
        tokio::spawn(async move {
            let (_write, mut read) = socket.split();
            while let Some(msg) = read.next().await {
                match msg {
                    // The checkout page's keep-alive; it says nothing about the invoice.
                    Ok(Message::Text(t)) if t.as_str() == "ping" => {}
                    // Any other frame means "something changed": look again. Its content is
                    // meaningless by design, so it is never parsed.
                    Ok(Message::Text(_) | Message::Binary(_)) => {
                        let _ = tx.try_send(());
                    }
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                    Ok(Message::Close(_)) | Err(_) => break,
                }
            }
            tracing::debug!(%invoice, "BTCPay status websocket closed");
            // Dropping `tx` tells the watcher the stream is gone.
        });
        Ok(rx)
    }
}

/// Percent-encodes a path segment (ids are alphanumeric in practice; this keeps a hostile
/// reply from steering a request elsewhere).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// "0.00002100" BTC → 2_100_000 msat, exactly (no floating point).
fn btc_to_msat(btc: &str) -> Option<u64> {
    let (whole, frac) = btc.trim().split_once('.').unwrap_or((btc.trim(), ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    if frac.len() > 11 {
        // Below a millisatoshi: only zeros are acceptable.
        if !frac[11..].bytes().all(|b| b == b'0') {
            return None;
        }
    }
    let frac11: String = format!("{:0<11}", &frac[..frac.len().min(11)]);
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = frac11.parse().ok()?;
    whole.checked_mul(100_000_000_000)?.checked_add(frac)
}

/// Verifies `BTCPay-Sig: sha256=<hex>` over the raw body, in constant time.
pub fn signature_valid(secret: &Secret, body: &[u8], header: Option<&str>) -> bool {
    use hmac::{Hmac, Mac};
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Starts the webhook listener on `addr`; returns the bound address.
pub fn spawn_webhook_listener(
    addr: SocketAddr,
    secret: Secret,
    store_id: String,
    wakers: Wakers,
) -> Result<SocketAddr, BackendError> {
    use axum::body::Bytes;
    use axum::extract::DefaultBodyLimit;
    use axum::http::HeaderMap;

    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        BackendError::Rejected(format!("cannot listen for webhooks on {addr}: {e}"))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| BackendError::Rejected(format!("webhook listener: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| BackendError::Rejected(format!("webhook listener: {e}")))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| BackendError::Rejected(format!("webhook listener: {e}")))?;
    let handler = move |headers: HeaderMap, body: Bytes| {
        let secret = secret.clone();
        let store_id = store_id.clone();
        let wakers = wakers.clone();
        async move {
            let sig = headers.get("btcpay-sig").and_then(|v| v.to_str().ok());
            if !signature_valid(&secret, &body, sig) {
                tracing::warn!("webhook with a bad or missing BTCPay-Sig refused");
                return StatusCode::UNAUTHORIZED;
            }
            let event: WebhookEvent = match serde_json::from_slice(&body) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "signed webhook with a malformed body");
                    return StatusCode::BAD_REQUEST;
                }
            };
            if event.store_id.as_deref().is_some_and(|s| s != store_id) {
                tracing::warn!(kind = %event.kind, "webhook for another store ignored");
                return StatusCode::OK;
            }
            if let Some(id) = event.invoice_id {
                tracing::debug!(kind = %event.kind, invoice = %id, "webhook: re-checking the invoice");
                wake(&wakers, &id);
            }
            StatusCode::OK
        }
    };
    let app = axum::Router::new()
        .fallback(axum::routing::post(handler))
        .layer(DefaultBodyLimit::max(http::MAX_BODY));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "webhook listener stopped");
        }
    });
    Ok(bound)
}

fn wake(wakers: &Wakers, invoice: &str) {
    let mut map = wakers.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(list) = map.get_mut(invoice) {
        list.retain(|w| match w.upgrade() {
            Some(tx) => {
                let _ = tx.try_send(());
                true
            }
            None => false,
        });
        if list.is_empty() {
            map.remove(invoice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btc_amounts_convert_exactly() {
        assert_eq!(btc_to_msat("0.00002100"), Some(2_100_000));
        assert_eq!(btc_to_msat("1"), Some(100_000_000_000));
        assert_eq!(btc_to_msat("0.00000000001"), Some(1));
        assert_eq!(btc_to_msat("0.000000000010"), Some(1));
        assert_eq!(btc_to_msat("0.000000000001"), None, "below a msat");
        assert_eq!(btc_to_msat("-1"), None);
        assert_eq!(btc_to_msat("1e-5"), None);
        assert_eq!(btc_to_msat(""), None);
    }

    #[test]
    fn webhook_signatures_are_checked() {
        use hmac::{Hmac, Mac};
        let secret = Secret::new("whsec");
        let body = br#"{"type":"InvoiceSettled","invoiceId":"abc"}"#;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_valid(&secret, body, Some(&good)));
        assert!(!signature_valid(&secret, b"{}", Some(&good)), "other body");
        assert!(
            !signature_valid(&Secret::new("other"), body, Some(&good)),
            "other secret"
        );
        assert!(!signature_valid(&secret, body, None));
        assert!(!signature_valid(&secret, body, Some("sha256=zz")));
        assert!(!signature_valid(
            &secret,
            body,
            Some(&good.replace("sha256=", "sha1="))
        ));
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(urlencode("AbC-12_x"), "AbC-12_x");
        assert_eq!(urlencode("../x?y"), "..%2Fx%3Fy");
    }
}
