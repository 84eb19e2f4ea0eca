//! BTCPay Server through its Greenfield API.
//!
//! An invoice is a Greenfield invoice restricted to Lightning (`BTC-LN`); the BOLT11 shown is
//! the `destination` of its `BTC-LN` payment method, checked against what we asked before it
//! can reach the screen. A pour is authorised only by Greenfield's authenticated
//! `status == "Settled"`. Wake-ups come from the checkout page's status websocket
//! (`/i/{id}/status/ws`, unauthenticated, so a frame only means "look again") and,
//! optionally, from signed webhooks (see [`super::webhook`]); both only make the watcher ask
//! Greenfield again. A wake-up task lives exactly as long as its watch: BTCPay keeps a
//! settled invoice's socket open (and pings it), so the task ends when the watcher drops
//! its receiver, not when the server closes.
//!
//! A payment that arrives after expiry is Greenfield's `Expired` with `additionalStatus`
//! `PaidLate`: it is reported as paid with what the Lightning method actually received, so
//! the caller credits it; a partial late payment is not a payment.
//!
//! Greenfield's replies and requests are read and built in [`greenfield`] (pure, tested
//! there); the webhook listener lives apart in [`super::webhook`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

mod greenfield;

use greenfield::{
    late_payment, lightning_method, refund_request, reported, urlencode, FieldError, InvoiceData,
    LnMethod, PaymentMethod, Reported,
};

use super::http::{self, TlsSettings};
use super::memo::InvoiceMemo;
use super::webhook::{Limits, Wakers, WebhookListener};
use super::{
    BackendError, Invoice, InvoiceId, InvoiceRequest, InvoiceState, PaymentBackend, RefundAmount,
    WakeUps,
};
use crate::clock::unix_now;
use crate::config::BtcpayConfig;
use crate::money::{Msat, Price};
use crate::secret::Secret;

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
    /// The webhook listener, when configured; it stops when the backend is dropped.
    webhook: Option<WebhookListener>,
}

impl std::fmt::Debug for BtcpayBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtcpayBackend")
            .field("base", &self.base.as_str())
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

impl BtcpayBackend {
    /// Builds the client; with `webhook_listen` set, also starts the webhook listener (so
    /// it must be called inside a tokio runtime).
    pub fn new(
        config: &BtcpayConfig,
        machine_id: &str,
    ) -> Result<Arc<BtcpayBackend>, BackendError> {
        let mut base = Url::parse(&config.url)
            .map_err(|e| BackendError::Config(format!("backend.url: {e}")))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let transport = config.transport().map_err(BackendError::Config)?;
        let tls = TlsSettings::from(&transport);
        let timeout = transport.request_timeout;
        let api_key = config
            .api_key
            .clone()
            .ok_or_else(|| BackendError::Unauthorized("no API key configured".into()))?;
        let wakers = Wakers::default();
        let webhook = match &config.webhook_listen {
            Some(listen) => {
                let addr: SocketAddr = listen
                    .parse()
                    .map_err(|e| BackendError::Config(format!("backend.webhook_listen: {e}")))?;
                let secret = config.webhook_secret.clone().ok_or_else(|| {
                    BackendError::Config("backend.webhook_secret is missing".into())
                })?;
                let listener = WebhookListener::start(
                    addr,
                    secret,
                    config.store_id.clone(),
                    wakers.clone(),
                    Limits::default(),
                )?;
                tracing::info!(bound = %listener.bound(), "listening for BTCPay webhooks");
                Some(listener)
            }
            None => None,
        };
        Ok(Arc::new(BtcpayBackend {
            client: http::client(&tls, timeout)?,
            base,
            store_id: config.store_id.clone(),
            api_key,
            machine_id: machine_id.to_string(),
            tls,
            wakers,
            amounts: InvoiceMemo::default(),
            webhook,
        }))
    }

    /// Where the webhook listener listens, when there is one.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook.as_ref().map(WebhookListener::bound)
    }

    /// Invoices a webhook could wake a watch for right now (watches still running).
    pub fn webhook_wakers(&self) -> usize {
        self.wakers.len()
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

    /// The BTC-LN payment method: its BOLT11 (checked against what BTCPay says of it), the
    /// BOLT11's amount, and what was paid through it.
    async fn lightning_method(&self, id: &str) -> Result<LnMethod, BackendError> {
        let body = self
            .call_retrying(
                Method::GET,
                &self.store_path(&format!("invoices/{}/payment-methods", urlencode(id))),
                None,
                "btcpay.store.canviewinvoices",
            )
            .await?;
        let methods: Vec<PaymentMethod> = http::parse_json(&body)?;
        lightning_method(&methods)
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
        let LnMethod { bolt11, amount, .. } = self.lightning_method(&data.id).await?;
        let parsed = crate::bolt11::decode(&bolt11)
            .map_err(|e| BackendError::BadReply(format!("BOLT11: {e}")))?;
        let bolt11_expiry = parsed.expires_at_unix;
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
            payment_hash: parsed.payment_hash.clone(),
            bolt11,
            amount,
            expires_at_unix,
        })
    }

    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
        let data = self.invoice_data(&id.0).await?;
        match reported(&data.status, data.additional_status.as_deref())? {
            Reported::Pending => Ok(InvoiceState::Pending),
            Reported::Expired => Ok(InvoiceState::Expired),
            Reported::Invalid => Ok(InvoiceState::Invalid),
            Reported::Settled => {
                // Greenfield's Settled means paid in full; report the invoice's own amount.
                let known = self.amounts.get(&id.0);
                let received = match known {
                    Some(m) => m,
                    None => self.lightning_method(&id.0).await?.amount,
                };
                Ok(InvoiceState::Paid { received })
            }
            Reported::PaidLate => {
                // Greenfield does not settle a late payment: what the Lightning method
                // received decides.
                let ln = self.lightning_method(&id.0).await?;
                let paid = ln.paid.ok_or_else(|| {
                    BackendError::BadReply(
                        "a PaidLate invoice without BTC-LN paymentMethodPaid".into(),
                    )
                })?;
                Ok(late_payment(&id.0, paid, ln.amount))
            }
        }
    }

    async fn refund(
        &self,
        id: &InvoiceId,
        amount: RefundAmount,
    ) -> Result<Option<String>, BackendError> {
        let body = refund_request(id, &self.machine_id, amount);
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
            Some(http::ws_config()),
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
        self.wakers.register(&id.0, &tx);
        let invoice = id.0.clone();
        let wakers = self.wakers.clone();
        tokio::spawn(async move {
            let mut socket = socket;
            loop {
                tokio::select! {
                    // The watch is over (paid, expired, gave up): BTCPay would keep this
                    // socket open for ever, so it is closed here.
                    () = tx.closed() => break,
                    msg = socket.next() => match msg {
                        // The checkout page's keep-alive; it says nothing about the invoice.
                        Some(Ok(Message::Text(t))) if t.as_str() == "ping" => {}
                        // Any other frame means "something changed": look again. Its
                        // content is meaningless by design, so it is never parsed.
                        Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                            let _ = tx.try_send(());
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        // Closed, broken, or over the size limits.
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    },
                }
            }
            tracing::debug!(%invoice, "BTCPay status websocket closed");
            drop(socket);
            // Dropping `tx` tells a still-running watcher that the stream is gone (it polls
            // and reconnects); the webhook map forgets it.
            drop(tx);
            wakers.forget_closed(&invoice);
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BtcpayConfig {
        BtcpayConfig {
            url: "https://btcpay.example".into(),
            store_id: "store".into(),
            api_key: Some(Secret::new("greenfield-key")),
            api_key_file: None,
            ca_file: None,
            cert_sha256: None,
            request_timeout_ms: 1000,
            network: crate::config::Network::Bitcoin,
            webhook_listen: None,
            webhook_secret: None,
            webhook_secret_file: None,
            allow_insecure_http: false,
        }
    }

    #[tokio::test]
    async fn construction_mistakes_are_configuration_errors_not_server_refusals() {
        let is_config = |c: BtcpayConfig, what: &str| match BtcpayBackend::new(&c, "m") {
            Err(BackendError::Config(m)) => {
                assert!(!m.contains("greenfield-key"), "{what}: {m}");
                let shown = BackendError::Config(m).to_string();
                assert!(shown.contains("configuration"), "{what}: {shown}");
            }
            other => panic!("{what}: {other:?}"),
        };
        is_config(
            BtcpayConfig {
                url: "not a url".into(),
                ..config()
            },
            "url",
        );
        is_config(
            BtcpayConfig {
                webhook_listen: Some("nowhere".into()),
                webhook_secret: Some(Secret::new("whsec")),
                ..config()
            },
            "webhook_listen",
        );
        is_config(
            BtcpayConfig {
                webhook_listen: Some("127.0.0.1:0".into()),
                ..config()
            },
            "webhook_secret",
        );
        // A pin that does not parse must not quietly trust the public roots instead.
        is_config(
            BtcpayConfig {
                cert_sha256: Some("abcd".into()),
                ..config()
            },
            "cert_sha256",
        );
    }
}
