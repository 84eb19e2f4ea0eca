//! The LNbits backend: invoices from one LNbits wallet, through its REST API with the
//! wallet's invoice/read key.
//!
//! It owns three things. Creating an invoice (`POST /api/v1/payments` with `"out": false`,
//! so the key can never be used to pay), where the amount and expiry are taken from the
//! signed BOLT11 and cross-checked against LNbits' own reply rather than trusted from the
//! JSON alone. Judging an invoice's state (`GET /api/v1/payments/{payment_hash}`): LNbits
//! answers `"paid": true` to anyone who knows a payment hash, even without a key, so a pour
//! needs the `details` that LNbits only shows to the wallet owning the payment, with an
//! incoming amount at least what was asked. And wake-ups from the per-invoice websocket
//! (`/api/v1/ws/{payment_hash}`): that socket is unauthenticated and anyone can push text to
//! it (`POST /api/v1/ws/{id}`), so a message only makes the watcher ask again, and a message
//! over [`http::MAX_WS_MESSAGE`] ends the stream (the watcher then polls). An invoice of
//! this run expires on the monotonic clock (an NTP step of the wall clock does not end a
//! live QR); only one from before a restart is judged on the wall clock.
//!
//! The key goes into the `X-Api-Key` header and nowhere else: not in a URL (LNbits would
//! accept `?api-key=`, which ends up in proxy logs), not in an error, not in `Debug`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::http::{self, TlsSettings};
use super::memo::InvoiceMemo;
use super::{
    BackendError, Invoice, InvoiceId, InvoiceRequest, InvoiceState, PaymentBackend, WakeUps,
};
use crate::clock::Clock;
use crate::config::LnbitsConfig;
use crate::money::{Msat, Price};
use crate::secret::Secret;

/// What we know about an invoice we issued in this run: enough to judge LNbits' answers
/// without trusting them for the amount or the expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Issued {
    amount: Msat,
    expires_at_unix: u64,
    /// The same moment on the monotonic clock, which decides while this run lasts: an NTP
    /// step of the wall clock must not end a QR that is still payable.
    expires: tokio::time::Instant,
    /// The wallet LNbits said the invoice belongs to; later `details` must name the same one.
    wallet_id: Option<String>,
}

pub struct LnbitsBackend {
    /// The server's base URL, always ending in '/', so joining keeps any path prefix.
    base: Url,
    key: Secret,
    http: reqwest::Client,
    tls: TlsSettings,
    timeout: Duration,
    issued: InvoiceMemo<Issued>,
    clock: std::sync::Arc<dyn Clock>,
}

impl std::fmt::Debug for LnbitsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is left out on purpose (it is a `Secret` anyway).
        f.debug_struct("LnbitsBackend")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LnbitsBackend {
    pub fn new(config: &LnbitsConfig) -> Result<LnbitsBackend, BackendError> {
        let mut base = Url::parse(config.url.trim())
            .map_err(|e| BackendError::Config(format!("LNbits URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(BackendError::Config(
                "LNbits URL must be http:// or https://".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let key = config
            .invoice_key
            .clone()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                BackendError::Unauthorized("no LNbits invoice key is configured".into())
            })?;
        let transport = config.transport().map_err(BackendError::Config)?;
        let tls = TlsSettings::from(&transport);
        let timeout = transport.request_timeout;
        Ok(LnbitsBackend {
            base,
            key,
            http: http::client(&tls, timeout)?,
            tls,
            timeout,
            issued: InvoiceMemo::default(),
            clock: std::sync::Arc::new(crate::clock::SystemClock::new(false)),
        })
    }

    /// Reads the clocks from `clock` (the machine's own; tests move it).
    pub fn with_clock(mut self, clock: std::sync::Arc<dyn Clock>) -> LnbitsBackend {
        self.clock = clock;
        self
    }

    fn endpoint(&self, path: &str) -> Result<Url, BackendError> {
        self.base
            .join(path)
            .map_err(|e| BackendError::Rejected(format!("LNbits URL for {path}: {e}")))
    }

    /// Sends a request with the key and reads the (capped) reply.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, Vec<u8>), BackendError> {
        let mut key = HeaderValue::from_str(self.key.expose()).map_err(|_| {
            BackendError::Unauthorized(
                "the LNbits invoice key has characters a header cannot hold".into(),
            )
        })?;
        // Keeps the key out of reqwest's own Debug output.
        key.set_sensitive(true);
        let mut req = self
            .http
            .request(method, self.endpoint(path)?)
            .header("X-Api-Key", key);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(http::transport_error)?;
        http::read_body(resp).await
    }
}

/// The JSON body asking LNbits for an incoming invoice.
fn create_body(request: &InvoiceRequest) -> Result<serde_json::Value, BackendError> {
    let (amount, unit) = match &request.price {
        Price::Sats(m) => {
            // LNbits' "sat" unit takes whole sats; rounding would change the price.
            let sat = m.as_whole_sat().ok_or_else(|| {
                BackendError::Rejected(format!("LNbits takes whole sats, the price is {m}"))
            })?;
            (serde_json::Value::from(sat), "sat".to_string())
        }
        Price::Fiat(f) => {
            let number = serde_json::Number::from_str(&f.amount_str()).map_err(|e| {
                BackendError::Rejected(format!("fiat amount {}: {e}", f.amount_str()))
            })?;
            (serde_json::Value::Number(number), f.currency().to_string())
        }
    };
    Ok(serde_json::json!({
        // LNbits defaults `out` to true: without this an admin key would try to *pay*.
        "out": false,
        "amount": amount,
        "unit": unit,
        "memo": request.description,
        "expiry": request.expiry.as_secs(),
        "extra": {
            "lnvend_sale_id": request.sale_id,
            "lnvend_machine_id": request.machine_id,
            "lnvend_product": request.product,
        },
    }))
}

#[derive(Deserialize)]
struct CreatedReply {
    payment_hash: String,
    /// LNbits ≥ 1.0; older servers only send `payment_request`.
    #[serde(default)]
    bolt11: Option<String>,
    #[serde(default)]
    payment_request: Option<String>,
    /// msat; older servers leave it out.
    #[serde(default)]
    amount: Option<i64>,
    #[serde(default)]
    wallet_id: Option<String>,
}

/// Turns LNbits' reply to an invoice creation into an [`Invoice`], refusing any reply whose
/// BOLT11 disagrees with the JSON around it.
fn parse_created(body: &[u8], clock: &dyn Clock) -> Result<(Invoice, Issued), BackendError> {
    let reply: CreatedReply = http::parse_json(body)?;
    let hash = checked_hash(&reply.payment_hash)
        .ok_or_else(|| BackendError::BadReply("payment_hash is not 32 bytes of hex".into()))?;
    let bolt11 = reply
        .bolt11
        .filter(|b| !b.trim().is_empty())
        .or(reply.payment_request)
        .ok_or_else(|| BackendError::BadReply("no bolt11 in the reply".into()))?;
    let bolt11 = bolt11.trim().to_string();
    let parsed = crate::bolt11::decode(&bolt11)
        .map_err(|e| BackendError::BadReply(format!("bolt11 does not parse: {e}")))?;
    let amount = parsed
        .amount_msat
        .filter(|a| *a > 0)
        .map(Msat::from_msat)
        .ok_or_else(|| BackendError::BadReply("the bolt11 has no amount".into()))?;
    if let Some(said) = reply.amount {
        if u64::try_from(said).ok() != Some(amount.as_msat()) {
            return Err(BackendError::BadReply(format!(
                "reply says {said} msat, its bolt11 asks for {amount}"
            )));
        }
    }
    if !parsed.payment_hash.eq_ignore_ascii_case(&hash) {
        return Err(BackendError::BadReply(
            "the bolt11's payment hash is not the reply's payment_hash".into(),
        ));
    }
    let expires_at_unix = parsed.expires_at_unix;
    let issued = Issued {
        amount,
        expires_at_unix,
        expires: crate::clock::instant_of_unix(clock, expires_at_unix),
        wallet_id: reply.wallet_id,
    };
    Ok((
        Invoice {
            id: InvoiceId(hash.clone()),
            bolt11,
            payment_hash: hash,
            amount,
            expires_at_unix,
        },
        issued,
    ))
}

#[derive(Deserialize)]
struct StatusReply {
    paid: bool,
    /// Present only when the key's wallet owns the payment.
    #[serde(default)]
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    payment_hash: String,
    /// msat, negative for outgoing payments.
    amount: i64,
    /// "pending", "success" or "failed" (LNbits ≥ 1.0).
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    bolt11: Option<String>,
    #[serde(default)]
    wallet_id: Option<String>,
}

/// What LNbits' answer about `hash` means, given what we issued (unknown after a restart)
/// and the time now: `now` on the monotonic clock for an invoice of this run, `now_unix` on
/// the wall clock for one from before a restart (the only clock its expiry can be read on).
fn judge(
    hash: &str,
    body: &[u8],
    issued: Option<&Issued>,
    now_unix: u64,
    now: tokio::time::Instant,
) -> Result<InvoiceState, BackendError> {
    let reply: StatusReply = http::parse_json(body)?;
    // After a restart the map is empty; the signed BOLT11 in `details` still tells what was
    // asked and until when.
    let from_details = reply
        .details
        .as_ref()
        .and_then(|d| d.bolt11.as_deref())
        .and_then(|b| crate::bolt11::decode(b).ok())
        .filter(|b| b.payment_hash.eq_ignore_ascii_case(hash));
    let asked = issued.map(|i| i.amount).or_else(|| {
        from_details
            .as_ref()
            .and_then(|b| b.amount_msat)
            .map(Msat::from_msat)
    });

    let ours = reply.details.as_ref().filter(|d| {
        let same_wallet = match (issued.and_then(|i| i.wallet_id.as_deref()), &d.wallet_id) {
            (Some(want), Some(got)) => want == got,
            // Nothing to compare: LNbits only shows `details` to the owning wallet anyway.
            (None, _) | (_, None) => true,
        };
        same_wallet && d.payment_hash.eq_ignore_ascii_case(hash)
    });

    if reply.paid {
        let Some(d) = ours else {
            tracing::warn!(invoice = %hash, "LNbits says paid but not to the wallet of our key; not pouring");
            return Ok(InvoiceState::Pending);
        };
        // Incoming payments are positive; a negative amount is the payer's side.
        let received = u64::try_from(d.amount).ok().map(Msat::from_msat);
        return Ok(match (received, asked) {
            (Some(r), Some(a)) if r >= a && r > Msat::ZERO => InvoiceState::Paid { received: r },
            // Nothing known to compare against (no record, no readable bolt11): the caller
            // compares with the amount in its own ledger.
            (Some(r), None) if r > Msat::ZERO => InvoiceState::Paid { received: r },
            (received, asked) => {
                tracing::error!(invoice = %hash, ?received, ?asked, "LNbits reports a payment below the price; not pouring");
                InvoiceState::Pending
            }
        });
    }
    let failed = ours
        .and_then(|d| d.status.as_deref())
        .is_some_and(|s| matches!(s, "failed" | "expired"));
    let past_expiry = match issued {
        Some(i) => now >= i.expires,
        None => from_details
            .as_ref()
            .is_some_and(|b| now_unix >= b.expires_at_unix),
    };
    Ok(if failed || past_expiry {
        InvoiceState::Expired
    } else {
        InvoiceState::Pending
    })
}

/// The payment hash in lowercase if `text` is one; anything else must not reach a URL path.
fn checked_hash(text: &str) -> Option<String> {
    let t = text.trim();
    (t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

#[derive(Deserialize)]
struct WalletReply {
    #[allow(dead_code)]
    balance: i64,
}

#[async_trait]
impl PaymentBackend for LnbitsBackend {
    fn name(&self) -> &'static str {
        "lnbits"
    }

    async fn check_health(&self) -> Result<(), BackendError> {
        // One retry on a transport error: a pooled keep-alive connection the server closed
        // at the same moment must not put the machine out of service (seen in the soak).
        let (status, body) = match self.call(Method::GET, "api/v1/wallet", None).await {
            Err(BackendError::Unreachable(first)) => {
                tracing::debug!(error = %first, "LNbits health check failed once; retrying");
                self.call(Method::GET, "api/v1/wallet", None).await?
            }
            other => other?,
        };
        match status.as_u16() {
            // A 200 page from a proxy is not LNbits: the body must be a wallet.
            200 => http::parse_json::<WalletReply>(&body).map(|_| ()),
            401 | 403 => Err(BackendError::Unauthorized(format!(
                "LNbits refused the invoice key ({}); use the wallet's invoice/read key",
                status.as_u16()
            ))),
            // LNbits answers an unknown key with 404 "Wallet not found."
            404 if body.windows(16).any(|w| w == b"Wallet not found") => {
                Err(BackendError::Unauthorized(
                    "no LNbits wallet has this invoice key; copy the wallet's invoice/read key"
                        .into(),
                ))
            }
            _ => Err(http::status_error(status, &body, "LNbits wallet")),
        }
    }

    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, BackendError> {
        let body = create_body(request)?;
        let (status, reply) = self
            .call(Method::POST, "api/v1/payments", Some(&body))
            .await?;
        if !status.is_success() {
            return Err(http::status_error(status, &reply, "LNbits create invoice"));
        }
        let (invoice, issued) = parse_created(&reply, self.clock.as_ref())?;
        self.issued.insert(
            invoice.payment_hash.clone(),
            issued.expires_at_unix,
            issued,
            self.clock.unix(),
        );
        Ok(invoice)
    }

    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
        let hash = checked_hash(&id.0)
            .ok_or_else(|| BackendError::Rejected(format!("{id} is not a payment hash")))?;
        let (status, body) = self
            .call(Method::GET, &format!("api/v1/payments/{hash}"), None)
            .await?;
        if status != StatusCode::OK {
            return Err(http::status_error(status, &body, "LNbits payment status"));
        }
        let issued = self.issued.get(&hash);
        judge(
            &hash,
            &body,
            issued.as_ref(),
            self.clock.unix(),
            self.clock.now(),
        )
    }

    async fn wake_ups(&self, id: &InvoiceId) -> Result<WakeUps, BackendError> {
        let hash = checked_hash(&id.0)
            .ok_or_else(|| BackendError::Rejected(format!("{id} is not a payment hash")))?;
        let mut url = self.endpoint(&format!("api/v1/ws/{hash}"))?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| BackendError::Rejected("cannot make a websocket URL".into()))?;
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            Some(http::ws_config()),
            false,
            Some(http::ws_connector(&self.tls)?),
        );
        let (mut socket, _) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| BackendError::Unreachable("websocket: timed out".into()))?
            .map_err(|e| BackendError::Unreachable(format!("websocket: {e}")))?;
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // The watcher is gone: nobody to wake.
                    _ = tx.closed() => break,
                    msg = socket.next() => match msg {
                        // Whatever it says (it may be spoofed), it only means "ask again". A
                        // full channel already holds a wake-up.
                        Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                            if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                                break;
                            }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    }
                }
            }
            // Dropping `tx` closes the channel: the watcher polls and reconnects.
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Fiat;
    use bitcoin::hashes::{sha256, Hash};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};

    const NOW: u64 = 1_800_000_000;

    /// A signed mainnet BOLT11 like LNbits' FakeWallet makes, created at NOW for 300 s.
    fn bolt11(msat: u64) -> (String, String) {
        let key = SecretKey::from_slice(&[7; 32]).unwrap();
        let hash = sha256::Hash::hash(&msat.to_be_bytes());
        let inv = InvoiceBuilder::new(Currency::Bitcoin)
            .description("Cola".into())
            .payment_hash(hash)
            .payment_secret(PaymentSecret([1; 32]))
            .duration_since_epoch(Duration::from_secs(NOW))
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(msat)
            .expiry_time(Duration::from_secs(300))
            .build_signed(|m| Secp256k1::new().sign_ecdsa_recoverable(m, &key))
            .unwrap();
        (inv.to_string(), hash.to_string())
    }

    fn created(msat: u64, amount_field: &str) -> Vec<u8> {
        let (b, h) = bolt11(msat);
        format!(
            r#"{{"checking_id":"{h}","payment_hash":"{h}","wallet_id":"w1","amount":{amount_field},
            "fee":0,"bolt11":"{b}","payment_request":"{b}","status":"pending","memo":"Cola",
            "expiry":"2027-01-15T08:05:00","extra":{{}}}}"#
        )
        .into_bytes()
    }

    fn status(paid: bool, details: Option<(&str, i64, &str, &str)>) -> Vec<u8> {
        let details = match details {
            Some((hash, amount, st, wallet)) => format!(
                r#","details":{{"payment_hash":"{hash}","amount":{amount},"status":"{st}","wallet_id":"{wallet}","fee":0}}"#
            ),
            None => String::new(),
        };
        format!(r#"{{"paid":{paid},"preimage":null{details}}}"#).into_bytes()
    }

    /// The monotonic instant of the wall-clock time `unix`, for tests whose two clocks
    /// agree.
    fn mono(unix: u64) -> tokio::time::Instant {
        static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(tokio::time::Instant::now);
        base + Duration::from_secs(unix.saturating_sub(NOW).min(1 << 32))
    }

    /// [`judge`] at the wall-clock time `unix`, the monotonic clock agreeing.
    fn judge_at(
        hash: &str,
        body: &[u8],
        issued: Option<&Issued>,
        unix: u64,
    ) -> Result<InvoiceState, BackendError> {
        judge(hash, body, issued, unix, mono(unix))
    }

    /// A 2,100 sat Cola, for 300 s.
    fn request() -> InvoiceRequest {
        InvoiceRequest {
            sale_id: "S7".into(),
            machine_id: "bar-7".into(),
            product: "Cola".into(),
            price: Price::Sats(Msat::from_sat(2100).unwrap()),
            description: "Cola".into(),
            expiry: Duration::from_secs(300),
        }
    }

    fn parse_created_now(body: &[u8]) -> Result<(Invoice, Issued), BackendError> {
        parse_created(body, &crate::clock::FakeClock::new(NOW))
    }

    fn issued(msat: u64) -> Issued {
        Issued {
            amount: Msat::from_msat(msat),
            expires_at_unix: NOW + 300,
            expires: mono(NOW + 300),
            wallet_id: Some("w1".into()),
        }
    }

    #[test]
    fn a_good_creation_reply_gives_the_bolt11_amount_and_expiry() {
        let (inv, rec) = parse_created_now(&created(2_100_000, "2100000")).unwrap();
        let (b, h) = bolt11(2_100_000);
        assert_eq!(inv.id.0, h);
        assert_eq!(inv.payment_hash, h);
        assert_eq!(inv.bolt11, b);
        assert_eq!(inv.amount, Msat::from_sat(2100).unwrap());
        assert_eq!(inv.expires_at_unix, NOW + 300);
        assert_eq!(
            rec,
            Issued {
                expires: rec.expires,
                ..issued(2_100_000)
            }
        );
    }

    #[test]
    fn an_older_reply_with_only_payment_request_is_understood() {
        let (b, h) = bolt11(21_000);
        let body = format!(r#"{{"payment_hash":"{h}","payment_request":"{b}","checking_id":"x"}}"#);
        let (inv, _) = parse_created_now(body.as_bytes()).unwrap();
        assert_eq!(inv.amount, Msat::from_msat(21_000));
        assert_eq!(inv.bolt11, b);
    }

    #[test]
    fn a_reply_whose_amount_disagrees_with_its_bolt11_is_refused() {
        let err = parse_created_now(&created(2_100_000, "21000")).unwrap_err();
        assert!(
            matches!(&err, BackendError::BadReply(m) if m.contains("21000")),
            "{err}"
        );
        let err = parse_created_now(&created(2_100_000, "-2100000")).unwrap_err();
        assert!(matches!(err, BackendError::BadReply(_)), "{err}");
    }

    #[test]
    fn a_reply_whose_hash_is_not_its_bolt11s_is_refused() {
        let (b, _) = bolt11(2_100_000);
        let other = "ab".repeat(32);
        let body = format!(r#"{{"payment_hash":"{other}","bolt11":"{b}","amount":2100000}}"#);
        assert!(matches!(
            parse_created_now(body.as_bytes()),
            Err(BackendError::BadReply(m)) if m.contains("payment hash")
        ));
        let body = format!(r#"{{"payment_hash":"../wallet","bolt11":"{b}"}}"#);
        assert!(matches!(
            parse_created_now(body.as_bytes()),
            Err(BackendError::BadReply(_))
        ));
    }

    #[test]
    fn malformed_or_incomplete_creation_replies_are_errors_not_panics() {
        for body in [
            &b"{not json"[..],
            b"",
            b"[]",
            b"{\"payment_hash\":5}",
            b"<html>502 Bad Gateway</html>",
        ] {
            assert!(
                matches!(parse_created_now(body), Err(BackendError::BadReply(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let (_, h) = bolt11(1000);
        let garbage = format!(r#"{{"payment_hash":"{h}","bolt11":"lnbc1garbage"}}"#);
        assert!(matches!(
            parse_created_now(garbage.as_bytes()),
            Err(BackendError::BadReply(m)) if m.contains("parse")
        ));
    }

    #[test]
    fn a_stock_fakewallet_invoice_without_feature_bits_is_understood() {
        use crate::bolt11::tests::handmade;
        let b = handmade(2_100_000, [5; 32], NOW, Some(300), [7; 32], None);
        let h = hex::encode([5; 32]);
        let body = format!(r#"{{"payment_hash":"{h}","bolt11":"{b}","amount":2100000}}"#);
        let (inv, rec) = parse_created_now(body.as_bytes()).unwrap();
        assert_eq!(inv.amount, Msat::from_msat(2_100_000));
        assert_eq!(inv.expires_at_unix, NOW + 300);
        assert_eq!(rec.expires_at_unix, NOW + 300);
        // After a restart its bolt11 in `details` still gives the price.
        let paid = |amount: i64| {
            format!(
                r#"{{"paid":true,"details":{{"payment_hash":"{h}","amount":{amount},"bolt11":"{b}"}}}}"#
            )
        };
        assert_eq!(
            judge_at(&h, paid(2_100_000).as_bytes(), None, NOW + 10).unwrap(),
            InvoiceState::Paid {
                received: Msat::from_msat(2_100_000)
            }
        );
        assert_eq!(
            judge_at(&h, paid(2_000_000).as_bytes(), None, NOW + 10).unwrap(),
            InvoiceState::Pending
        );
    }

    #[test]
    fn an_expiry_that_overflows_is_a_bad_reply_not_a_panic() {
        use crate::bolt11::tests::handmade;
        let b = handmade(2_100_000, [5; 32], NOW, Some(u64::MAX), [7; 32], None);
        let h = hex::encode([5; 32]);
        let body = format!(r#"{{"payment_hash":"{h}","bolt11":"{b}"}}"#);
        assert!(matches!(
            parse_created_now(body.as_bytes()),
            Err(BackendError::BadReply(m)) if m.contains("overflow")
        ));
        let unpaid = format!(
            r#"{{"paid":false,"details":{{"payment_hash":"{h}","amount":2100000,"status":"pending","bolt11":"{b}"}}}}"#
        );
        assert_eq!(
            judge(&h, unpaid.as_bytes(), None, u64::MAX, mono(NOW)).unwrap(),
            InvoiceState::Pending
        );
    }

    #[test]
    fn paid_with_our_details_and_the_full_amount_is_paid() {
        let (_, h) = bolt11(2_100_000);
        let body = status(true, Some((&h, 2_100_000, "success", "w1")));
        assert_eq!(
            judge_at(&h, &body, Some(&issued(2_100_000)), NOW + 10).unwrap(),
            InvoiceState::Paid {
                received: Msat::from_msat(2_100_000)
            }
        );
    }

    #[test]
    fn paid_without_details_is_not_a_payment_to_us() {
        // What LNbits tells anyone who knows the hash but not our key.
        let (_, h) = bolt11(2_100_000);
        let body = status(true, None);
        assert_eq!(
            judge_at(&h, &body, Some(&issued(2_100_000)), NOW + 10).unwrap(),
            InvoiceState::Pending
        );
        // Even past the expiry it is never reported as paid.
        assert_ne!(
            judge_at(&h, &body, Some(&issued(2_100_000)), NOW + 900).unwrap(),
            InvoiceState::Paid {
                received: Msat::from_msat(2_100_000)
            }
        );
    }

    #[test]
    fn details_of_another_wallet_or_payment_or_an_underpayment_do_not_pay() {
        let (_, h) = bolt11(2_100_000);
        let rec = issued(2_100_000);
        for details in [
            (h.as_str(), 2_100_000, "success", "someone-else"),
            (h.as_str(), -2_100_000, "success", "w1"),
            (h.as_str(), 2_099_999, "success", "w1"),
            (&"cd".repeat(32), 2_100_000, "success", "w1"),
        ] {
            let body = status(true, Some(details));
            assert_eq!(
                judge_at(&h, &body, Some(&rec), NOW + 10).unwrap(),
                InvoiceState::Pending,
                "{details:?}"
            );
        }
    }

    #[test]
    fn after_a_restart_the_bolt11_in_details_gives_the_price() {
        let (b, h) = bolt11(2_100_000);
        let paid = |amount: i64| {
            format!(
                r#"{{"paid":true,"details":{{"payment_hash":"{h}","amount":{amount},"status":"success","bolt11":"{b}","wallet_id":"w1"}}}}"#
            )
        };
        assert_eq!(
            judge_at(&h, paid(2_100_000).as_bytes(), None, NOW + 10).unwrap(),
            InvoiceState::Paid {
                received: Msat::from_msat(2_100_000)
            }
        );
        assert_eq!(
            judge_at(&h, paid(1_000).as_bytes(), None, NOW + 10).unwrap(),
            InvoiceState::Pending
        );
        let unpaid = format!(
            r#"{{"paid":false,"status":"pending","details":{{"payment_hash":"{h}","amount":2100000,"status":"pending","bolt11":"{b}"}}}}"#
        );
        assert_eq!(
            judge_at(&h, unpaid.as_bytes(), None, NOW + 10).unwrap(),
            InvoiceState::Pending
        );
        assert_eq!(
            judge_at(&h, unpaid.as_bytes(), None, NOW + 301).unwrap(),
            InvoiceState::Expired
        );
    }

    #[test]
    fn unpaid_invoices_expire_by_status_or_by_the_clock() {
        let (_, h) = bolt11(2_100_000);
        let rec = issued(2_100_000);
        let pending = status(false, Some((&h, 2_100_000, "pending", "w1")));
        assert_eq!(
            judge_at(&h, &pending, Some(&rec), NOW + 299).unwrap(),
            InvoiceState::Pending
        );
        assert_eq!(
            judge_at(&h, &pending, Some(&rec), NOW + 300).unwrap(),
            InvoiceState::Expired
        );
        let failed = status(false, Some((&h, 2_100_000, "failed", "w1")));
        assert_eq!(
            judge_at(&h, &failed, Some(&rec), NOW + 10).unwrap(),
            InvoiceState::Expired
        );
    }

    #[test]
    fn malformed_status_replies_are_errors_not_panics() {
        let h = "ab".repeat(32);
        for body in [
            &b"{not json"[..],
            b"",
            b"{\"paid\":\"yes\"}",
            b"{\"details\":{}}",
            b"{\"paid\":true,\"details\":{\"amount\":\"lots\"}}",
        ] {
            assert!(
                matches!(
                    judge_at(&h, body, None, NOW),
                    Err(BackendError::BadReply(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn requests_ask_for_an_incoming_invoice_in_sats_or_fiat() {
        let mut req = request();
        let body = create_body(&req).unwrap();
        assert_eq!(body["out"], false);
        assert_eq!(body["amount"], 2100);
        assert_eq!(body["unit"], "sat");
        assert_eq!(body["expiry"], 300);
        assert_eq!(body["memo"], "Cola");
        assert_eq!(
            body["extra"],
            serde_json::json!({"lnvend_sale_id": "S7", "lnvend_machine_id": "bar-7", "lnvend_product": "Cola"})
        );
        req.price = Price::Fiat(Fiat::parse("2.50", "eur").unwrap());
        let body = create_body(&req).unwrap();
        assert_eq!(body["amount"], 2.5);
        assert!(body["amount"].is_number());
        assert_eq!(body["unit"], "EUR");
        req.price = Price::Sats(Msat::from_msat(1500));
        assert!(matches!(create_body(&req), Err(BackendError::Rejected(_))));
    }

    fn config(url: &str) -> LnbitsConfig {
        LnbitsConfig {
            url: url.into(),
            invoice_key: Some(Secret::new("s3cr3t-invoice-key")),
            invoice_key_file: None,
            ca_file: None,
            cert_sha256: None,
            request_timeout_ms: 1000,
            network: crate::config::Network::Bitcoin,
            allow_insecure_http: false,
        }
    }

    #[test]
    fn construction_mistakes_are_configuration_errors_not_server_refusals() {
        for (c, what) in [
            (config("not a url"), "url"),
            (config("ftp://lnbits.example"), "scheme"),
            (
                LnbitsConfig {
                    cert_sha256: Some("abcd".into()),
                    ..config("https://lnbits.example")
                },
                "cert_sha256",
            ),
        ] {
            match LnbitsBackend::new(&c) {
                Err(e @ BackendError::Config(_)) => {
                    assert!(e.to_string().contains("configuration"), "{what}: {e}");
                    assert!(!e.to_string().contains("s3cr3t"), "{what}: {e}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_and_the_key_never_reaches_the_other_host() {
        use crate::backend::http::test_server;
        let (elsewhere, elsewhere_saw) = test_server::start(
            "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{\"balance\":0}\n".into(),
        )
        .await;
        let (server, server_saw) =
            test_server::start(test_server::redirect_to(elsewhere, "/api/v1/wallet")).await;
        let backend = LnbitsBackend::new(&config(&format!("http://{server}"))).unwrap();
        let err = backend.check_health().await.unwrap_err();
        assert!(err.to_string().contains("redirect"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        let hash = "ab".repeat(32);
        let err = backend
            .invoice_state(&InvoiceId(hash.clone()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("redirect"), "{err}");
        assert!(server_saw.lock().unwrap()[0].contains("s3cr3t-invoice-key"));
        assert_eq!(
            elsewhere_saw.lock().unwrap().len(),
            0,
            "the other host got a request: {:?}",
            elsewhere_saw.lock().unwrap()
        );
    }

    /// A local stand-in for LNbits' per-invoice websocket: on each connection it sends
    /// `pushes` (text messages, in order), then keeps the socket open until the client goes.
    /// The returned counter is the number of sockets open right now.
    async fn ws_server(
        pushes: Vec<String>,
    ) -> (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let open = Arc::new(AtomicUsize::new(0));
        let counter = open.clone();
        let app = axum::Router::new().route(
            "/api/v1/ws/{hash}",
            axum::routing::get(move |ws: WebSocketUpgrade| {
                let pushes = pushes.clone();
                let open = counter.clone();
                async move {
                    ws.max_message_size(8 << 20)
                        .max_frame_size(8 << 20)
                        .on_upgrade(move |mut socket| async move {
                            open.fetch_add(1, Ordering::SeqCst);
                            for p in pushes {
                                if socket.send(AxMessage::Text(p.into())).await.is_err() {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            // Until the client closes or drops the connection.
                            while let Some(Ok(_)) = socket.recv().await {}
                            open.fetch_sub(1, Ordering::SeqCst);
                        })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, open)
    }

    #[tokio::test]
    async fn an_oversized_websocket_frame_ends_the_wake_up_stream() {
        let (addr, _) = ws_server(vec!["{}".into(), "x".repeat(1 << 20)]).await;
        let backend = LnbitsBackend::new(&config(&format!("http://{addr}"))).unwrap();
        let mut rx = backend.wake_ups(&InvoiceId("ab".repeat(32))).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(first, Ok(Some(())), "a normal push still wakes the watcher");
        // The 1 MiB push is refused and the stream ends, so the watcher polls instead.
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(next, Ok(None), "the stream ended");
    }

    #[tokio::test]
    async fn a_dropped_wake_up_stream_closes_its_websocket() {
        use std::sync::atomic::Ordering;
        let (addr, open) = ws_server(vec![]).await;
        let backend = LnbitsBackend::new(&config(&format!("http://{addr}"))).unwrap();
        let mut streams = Vec::new();
        for i in 0..5u8 {
            let hash = hex::encode([i; 32]);
            streams.push(backend.wake_ups(&InvoiceId(hash)).await.unwrap());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while open.load(Ordering::SeqCst) != 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(open.load(Ordering::SeqCst), 5);
        // The watches end.
        drop(streams);
        while open.load(Ordering::SeqCst) != 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(open.load(Ordering::SeqCst), 0, "every socket was closed");
    }

    /// NTP stepping the wall clock forward while a QR is on screen does not end it as
    /// "expired, nothing was charged": the invoice lives its 300 s on the monotonic clock,
    /// and ends when they are really over.
    #[tokio::test]
    async fn a_forward_wall_clock_step_does_not_expire_a_live_invoice() {
        use crate::backend::http::test_server;
        let (_, hash) = bolt11(2_100_000);
        let made = String::from_utf8(created(2_100_000, "2100000")).unwrap();
        let pending =
            String::from_utf8(status(false, Some((&hash, 2_100_000, "pending", "w1")))).unwrap();
        let (server, _) = test_server::start_with(move |head| {
            let (code, body) = if head.starts_with("POST") {
                ("201 Created", &made)
            } else {
                ("200 OK", &pending)
            };
            format!(
                "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        })
        .await;
        let clock = std::sync::Arc::new(crate::clock::FakeClock::new(NOW));
        let backend = LnbitsBackend::new(&config(&format!("http://{server}")))
            .unwrap()
            .with_clock(clock.clone());
        let request = request();
        let inv = backend.create_invoice(&request).await.unwrap();
        assert_eq!(
            backend.invoice_state(&inv.id).await.unwrap(),
            InvoiceState::Pending
        );
        clock.jump(3600);
        assert_eq!(
            backend.invoice_state(&inv.id).await.unwrap(),
            InvoiceState::Pending,
            "an hour's step of the wall clock ended a QR that had 300 s to live"
        );
        // Its 300 s pass (paused only for the jump: the requests run on real sockets).
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(301)).await;
        tokio::time::resume();
        assert_eq!(
            backend.invoice_state(&inv.id).await.unwrap(),
            InvoiceState::Expired
        );
    }

    #[test]
    fn the_key_never_shows_in_debug_output() {
        let backend = LnbitsBackend::new(&LnbitsConfig {
            url: "http://127.0.0.1:5000/lnbits".into(),
            invoice_key: Some(Secret::new("s3cr3t-invoice-key")),
            invoice_key_file: None,
            ca_file: None,
            cert_sha256: None,
            request_timeout_ms: 1000,
            network: crate::config::Network::Bitcoin,
            allow_insecure_http: false,
        })
        .unwrap();
        let shown = format!("{backend:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        // A path prefix survives joining.
        assert_eq!(
            backend.endpoint("api/v1/wallet").unwrap().as_str(),
            "http://127.0.0.1:5000/lnbits/api/v1/wallet"
        );
    }
}
