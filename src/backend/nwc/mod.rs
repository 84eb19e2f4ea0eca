//! The Nostr Wallet Connect backend (NIP-47): invoices from any wallet that gives out a
//! connection URI, through Nostr relays ([`client::RelayPool`]).
//!
//! It owns three things, as every backend does. Making an invoice (`make_invoice`, with the
//! amount, description and expiry), where the BOLT11 in the signed reply is decoded and must
//! agree with the reply around it (the controller then checks it against the request, as
//! for every backend). Judging an invoice ([`judge`]) from a `lookup_invoice` reply that the
//! relay client accepted only if the wallet's key signed it, it is `p`-tagged to us,
//! `e`-tagged to that very request, and it decrypts: settled (the `state`, or, for wallets
//! that send none such as LNbits' nwcprovider, `settled_at`) for at least what we asked.
//! And wake-ups from `payment_received` notifications, which only make the watcher ask
//! again; a wallet without notifications gets no stream, so the watcher polls.
//! Hold invoices, where the wallet offers them to this connection, are in [`hold`].
//!
//! The connection URI's secret is the key that signs our requests: it lives in the
//! [`Connection`] and never prints. The machine never asks for `pay_invoice`.

pub mod client;
pub mod fake;
mod hold;
pub mod link;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use super::hold::{HoldState, HoldSupport, PaymentHash as HoldHash, Preimage};
use super::memo::InvoiceMemo;
use super::{
    BackendError, Invoice, InvoiceId, InvoiceRequest, InvoiceState, PaymentBackend, WakeUps,
};
use crate::clock::Clock;
use crate::money::{Msat, Price};
use crate::nostr::nwc::{
    Connection, Direction, InvoiceState as NwcState, NwcError, PaymentHash, Reply, Request,
    Transaction, WalletErrorCode, MAX_RELAYS,
};
use client::{RelayPool, RequestError, Timing};
use link::Connector;

/// How long an answer from the wallet keeps the health check from asking again: the
/// machine checks health every few seconds, and a wallet may rate-limit its clients.
const HEALTH_FRESH: Duration = Duration::from_secs(60);
/// How long the health check waits for a relay that is still connecting.
const RELAY_GRACE: Duration = Duration::from_secs(3);

/// What we asked for an invoice of this run.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Issued {
    amount: Msat,
    /// The expiry on the monotonic clock (an NTP step must not end a live QR).
    expires: tokio::time::Instant,
}

pub struct NwcBackend {
    pool: RelayPool,
    timeout: Duration,
    issued: InvoiceMemo<Issued>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for NwcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NwcBackend")
            .field("relays", &self.relay_summary())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The relays to use: the URI's, then the extra ones, without repeats, at most
/// [`MAX_RELAYS`].
pub fn relay_list(conn: &Connection, extra: &[String]) -> Result<Vec<Url>, BackendError> {
    let mut relays: Vec<Url> = conn.relays().to_vec();
    for (i, r) in extra.iter().enumerate() {
        let url = Url::parse(r.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "ws" | "wss") && u.has_host())
            .ok_or_else(|| {
                BackendError::Config(format!("backend.relays[{i}] is not a ws:// or wss:// URL"))
            })?;
        if !relays.contains(&url) {
            relays.push(url);
        }
    }
    if relays.len() > MAX_RELAYS {
        return Err(BackendError::Config(format!(
            "more than {MAX_RELAYS} relays in the connection URI and backend.relays together"
        )));
    }
    Ok(relays)
}

impl NwcBackend {
    /// Connects to the relays through `connector` (call inside a tokio runtime).
    pub fn start(
        conn: Connection,
        relays: Vec<Url>,
        connector: Arc<dyn Connector>,
        timeout: Duration,
        clock: Arc<dyn Clock>,
        timing: Timing,
    ) -> NwcBackend {
        NwcBackend {
            pool: RelayPool::start(conn, relays, connector, clock.clone(), timing),
            timeout,
            issued: InvoiceMemo::default(),
            clock,
        }
    }

    /// The backend `[backend] kind = "nwc"` describes, over websockets.
    pub fn from_config(
        config: &crate::config::NwcConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<NwcBackend, BackendError> {
        let uri = config.connection_uri.as_ref().ok_or_else(|| {
            BackendError::Config(
                "the connection URI was not read (backend.connection_uri_file)".into(),
            )
        })?;
        let conn = Connection::parse(uri.expose())
            .map_err(|e| BackendError::Config(format!("backend.connection_uri_file: {e}")))?;
        let relays = relay_list(&conn, &config.relays)?;
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let connector = link::WsConnector {
            tls: super::http::TlsSettings::default(),
            timeout,
        };
        Ok(NwcBackend::start(
            conn,
            relays,
            Arc::new(connector),
            timeout,
            clock,
            Timing::default(),
        ))
    }

    pub fn pool(&self) -> &RelayPool {
        &self.pool
    }

    /// Which relays answer, for logs and errors: "wss://a up, wss://b:4443 down" (no
    /// credentials, path or query: see [`link::relay_label`]).
    fn relay_summary(&self) -> String {
        let list: Vec<String> = self
            .pool
            .status()
            .iter()
            .map(|(u, up)| {
                let state = if *up { "up" } else { "down" };
                format!("{} {state}", link::relay_label(u))
            })
            .collect();
        list.join(", ")
    }

    async fn call(&self, request: &Request) -> Result<Reply, BackendError> {
        self.pool
            .request(request, self.timeout)
            .await
            .map_err(|e| self.backend_error(e))
    }

    fn backend_error(&self, e: RequestError) -> BackendError {
        match e {
            RequestError::NoRelay | RequestError::NoInfo | RequestError::Timeout(_) => {
                BackendError::Unreachable(format!("{e} (relays: {})", self.relay_summary()))
            }
            RequestError::Busy => BackendError::Unreachable(e.to_string()),
            RequestError::Nwc(NwcError::Wallet(w)) => match w.code {
                WalletErrorCode::Unauthorized | WalletErrorCode::Restricted => {
                    BackendError::Unauthorized(format!(
                        "the wallet refused this connection: {w}; make a new connection \
                         with make_invoice and lookup_invoice"
                    ))
                }
                _ => BackendError::Rejected(w.to_string()),
            },
            RequestError::Nwc(NwcError::NoCommonEncryption) => {
                BackendError::Rejected(NwcError::NoCommonEncryption.to_string())
            }
            RequestError::Nwc(other) => BackendError::BadReply(other.to_string()),
        }
    }
}

/// Turns a `make_invoice` result into an [`Invoice`], refusing a reply whose BOLT11
/// disagrees with the JSON around it or with what we `asked`.
fn parse_made(tx: &Transaction, asked: Msat) -> Result<Invoice, BackendError> {
    let bad = |m: &str| BackendError::BadReply(m.to_string());
    let bolt11 = tx
        .invoice
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| bad("the wallet's make_invoice reply has no invoice"))?;
    let parsed = crate::bolt11::decode(bolt11)
        .map_err(|e| BackendError::BadReply(format!("bolt11 does not parse: {e}")))?;
    let amount = parsed
        .amount_msat
        .filter(|a| *a > 0)
        .map(Msat::from_msat)
        .ok_or_else(|| bad("the bolt11 has no amount"))?;
    if tx.amount != amount {
        return Err(BackendError::BadReply(format!(
            "the reply says {}, its bolt11 asks for {amount}",
            tx.amount
        )));
    }
    // The watch later compares payments with this invoice's amount: a cheaper invoice
    // would sell the drink for less.
    if amount != asked {
        return Err(BackendError::BadReply(format!(
            "we asked for {asked}, the wallet's invoice asks for {amount}"
        )));
    }
    let hash = tx.payment_hash.to_hex();
    if !parsed.payment_hash.eq_ignore_ascii_case(&hash) {
        return Err(bad(
            "the bolt11's payment hash is not the reply's payment_hash",
        ));
    }
    Ok(Invoice {
        id: InvoiceId(hash.clone()),
        bolt11: bolt11.to_string(),
        payment_hash: hash,
        amount,
        expires_at_unix: parsed.expires_at_unix,
    })
}

/// What a checked `lookup_invoice` result means for the invoice `hash`, given what we
/// asked (unknown after a restart) and the time: `now` on the monotonic clock for an
/// invoice of this run, `now_unix` on the wall clock for one from before.
fn judge(
    hash: &PaymentHash,
    tx: &Transaction,
    issued: Option<&Issued>,
    now_unix: u64,
    now: tokio::time::Instant,
) -> Result<InvoiceState, BackendError> {
    if tx.payment_hash != *hash {
        return Err(BackendError::BadReply(
            "lookup_invoice answered about another payment hash".into(),
        ));
    }
    if tx.direction == Some(Direction::Outgoing) {
        tracing::error!(invoice = %hash.to_hex(), "the wallet reports an outgoing payment for our invoice; not pouring");
        return Ok(InvoiceState::Pending);
    }
    // After a restart, the signed BOLT11 still tells what was asked (if it is this hash's).
    let from_bolt11 = tx
        .invoice
        .as_deref()
        .and_then(|b| crate::bolt11::decode(b).ok())
        .filter(|b| b.payment_hash.eq_ignore_ascii_case(&hash.to_hex()));
    let expires_unix = expiry_unix(tx, from_bolt11.as_ref());
    let before_expiry = match issued {
        Some(i) => now < i.expires,
        None => expires_unix.is_some_and(|at| now_unix < at),
    };
    let settled = match tx.state {
        Some(NwcState::Settled) => true,
        // LNbits' nwcprovider sends no `state`, and `settled_at` (the payment's creation
        // time) whenever LNbits no longer calls it pending, which an expired invoice LNbits
        // marked failed is too: anyone can make LNbits check it after the expiry, and LNbits
        // checks abandoned ones itself. Nothing else in the reply tells the two apart (the
        // preimage of an incoming invoice is sent paid or not), so only a reading taken
        // before the expiry is a payment. A payment read only after the expiry (lnvend down
        // past it) is then not seen: reported, for the operator to check in the wallet.
        None => {
            let says_settled = settled_at_in_time(tx, expires_unix);
            if says_settled && !before_expiry {
                tracing::warn!(invoice = %hash.to_hex(), "the wallet says settled but sends no state and the invoice has expired: paid or expired cannot be told apart; not counted as paid (check the wallet)");
            }
            says_settled && before_expiry
        }
        Some(
            NwcState::Pending
            | NwcState::Accepted
            | NwcState::Expired
            | NwcState::Failed
            | NwcState::Unknown,
        ) => false,
    };
    let asked = issued.map(|i| i.amount).or_else(|| {
        from_bolt11
            .as_ref()
            .and_then(|b| b.amount_msat)
            .map(Msat::from_msat)
    });
    if settled {
        let received = tx.amount;
        return Ok(match asked {
            Some(a) if received >= a && received > Msat::ZERO => InvoiceState::Paid { received },
            // Nothing to compare with: the caller compares with its ledger.
            None if received > Msat::ZERO => InvoiceState::Paid { received },
            _ => {
                tracing::error!(invoice = %hash.to_hex(), %received, ?asked, "the wallet reports a payment below the price; not pouring");
                InvoiceState::Pending
            }
        });
    }
    let failed = matches!(tx.state, Some(NwcState::Expired | NwcState::Failed));
    let past_expiry = match issued {
        Some(i) => now >= i.expires,
        None => expires_unix.is_some_and(|at| now_unix >= at),
    };
    Ok(if failed || past_expiry {
        InvoiceState::Expired
    } else {
        InvoiceState::Pending
    })
}

/// The invoice's expiry in unix seconds: the earlier of the reply's `expires_at` and the
/// signed BOLT11's (when it is this hash's); `None` when neither says.
fn expiry_unix(tx: &Transaction, bolt11: Option<&crate::bolt11::Decoded>) -> Option<u64> {
    let reply = tx.expires_at.filter(|at| *at > 0);
    let signed = bolt11.map(|b| b.expires_at_unix);
    match (reply, signed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a reply's `settled_at` (read when it sends no `state`) is a time at which a
/// payment could have arrived: not zero, and not after the invoice's expiry (unknown
/// expiry: it cannot be told from an expired invoice, so no).
fn settled_at_in_time(tx: &Transaction, expires_unix: Option<u64>) -> bool {
    matches!((tx.settled_at, expires_unix), (Some(at), Some(exp)) if at > 0 && at <= exp)
}

/// Whether a settled or held amount is at least what was asked: the price this run asked,
/// else (after a restart) the signed BOLT11's amount if it is this hash's; with neither,
/// anything above zero (the caller compares with its ledger).
fn judge_amount(hash: &PaymentHash, tx: &Transaction, asked: Option<Msat>) -> bool {
    let asked = asked.or_else(|| {
        tx.invoice
            .as_deref()
            .and_then(|b| crate::bolt11::decode(b).ok())
            .filter(|b| b.payment_hash.eq_ignore_ascii_case(&hash.to_hex()))
            .and_then(|b| b.amount_msat)
            .map(Msat::from_msat)
    });
    let enough = tx.amount > Msat::ZERO && asked.is_none_or(|a| tx.amount >= a);
    if !enough {
        tracing::error!(invoice = %hash.to_hex(), received = %tx.amount, ?asked, "the wallet reports a payment below the price; not pouring");
    }
    enough
}

fn hash_of_bytes(bytes: [u8; 32]) -> PaymentHash {
    PaymentHash(bytes)
}

fn hash_of(id: &InvoiceId) -> Result<PaymentHash, BackendError> {
    PaymentHash::from_hex(id.0.trim())
        .ok_or_else(|| BackendError::Rejected(format!("{id} is not a payment hash")))
}

#[async_trait]
impl PaymentBackend for NwcBackend {
    fn name(&self) -> &'static str {
        "nwc"
    }

    /// Healthy when a relay answers and the wallet answered within [`HEALTH_FRESH`]; else
    /// asks `lookup_invoice` about a hash nobody has, which a wallet that knows this
    /// connection answers (with NOT_FOUND).
    async fn check_health(&self) -> Result<(), BackendError> {
        // Just after start (or a relay restart) the subscription may still be on its way:
        // give it a moment rather than reporting the machine down for the first seconds.
        let deadline = tokio::time::Instant::now() + (self.timeout / 2).min(RELAY_GRACE);
        while !self.pool.any_up() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !self.pool.any_up() {
            return Err(BackendError::Unreachable(format!(
                "no relay of the wallet connection answers ({})",
                self.relay_summary()
            )));
        }
        if self
            .pool
            .last_answer()
            .is_some_and(|t| t.elapsed() < HEALTH_FRESH)
        {
            return Ok(());
        }
        let probe = Request::LookupInvoice {
            payment_hash: PaymentHash(rand::random()),
        };
        match self.pool.request(&probe, self.timeout).await {
            Ok(_) => Ok(()),
            // NOT_FOUND (or any refusal that is not about this connection): the wallet
            // read our request and answered it.
            Err(RequestError::Nwc(NwcError::Wallet(w)))
                if !matches!(
                    w.code,
                    WalletErrorCode::Unauthorized
                        | WalletErrorCode::Restricted
                        | WalletErrorCode::UnsupportedEncryption
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(self.backend_error(e)),
        }
    }

    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, BackendError> {
        let amount = match &request.price {
            Price::Sats(m) => *m,
            Price::Fiat(_) => {
                return Err(BackendError::Rejected(
                    "a wallet connection takes prices in sats; fiat prices need a backend \
                     with an exchange rate (BTCPay Server, LNbits)"
                        .into(),
                ))
            }
        };
        let expiry_secs = u32::try_from(request.expiry.as_secs()).unwrap_or(u32::MAX);
        let ask = Request::MakeInvoice {
            amount,
            description: Some(request.description.clone()),
            expiry_secs: Some(expiry_secs),
        };
        let tx = match self.call(&ask).await? {
            Reply::MakeInvoice(tx) => tx,
            _ => return Err(BackendError::BadReply("not a make_invoice reply".into())),
        };
        self.remember(parse_made(&tx, amount)?)
    }

    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError> {
        let hash = hash_of(id)?;
        let reply = self
            .call(&Request::LookupInvoice { payment_hash: hash })
            .await;
        let tx = match reply {
            Ok(Reply::LookupInvoice(tx)) => tx,
            Ok(_) => return Err(BackendError::BadReply("not a lookup_invoice reply".into())),
            Err(e) => return Err(e),
        };
        let issued = self.issued.get(&hash.to_hex());
        judge(
            &hash,
            &tx,
            issued.as_ref(),
            self.clock.unix(),
            self.clock.now(),
        )
    }

    async fn wake_ups(&self, id: &InvoiceId) -> Result<WakeUps, BackendError> {
        let hash = hash_of(id)?;
        let info = self
            .pool
            .info(Duration::ZERO)
            .await
            .map_err(|e| self.backend_error(e))?;
        // Either notification wakes the watcher of its hash (a hold invoice's payment is
        // `hold_invoice_accepted`); only the lookup after it can pour.
        if !info.notifies("payment_received") && !info.notifies("hold_invoice_accepted") {
            return Err(BackendError::Unreachable(
                "the wallet sends no payment notifications; polling lookup_invoice".into(),
            ));
        }
        self.pool.wake_ups(&hash).ok_or_else(|| {
            BackendError::Unreachable(format!("no relay answers ({})", self.relay_summary()))
        })
    }

    async fn hold_support(&self) -> Result<HoldSupport, BackendError> {
        hold::hold_support(self).await
    }

    async fn create_hold_invoice(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
    ) -> Result<Invoice, BackendError> {
        hold::create(self, request, preimage).await
    }

    async fn hold_state(&self, hash: &HoldHash) -> Result<HoldState, BackendError> {
        hold::state(self, hash).await
    }

    async fn settle_hold(&self, hash: &HoldHash, preimage: &Preimage) -> Result<(), BackendError> {
        hold::settle(self, hash, preimage).await
    }

    async fn cancel_hold(&self, hash: &HoldHash) -> Result<(), BackendError> {
        hold::cancel(self, hash).await
    }
}

impl NwcBackend {
    /// Keeps what was asked for an invoice this run made, and hands it back.
    fn remember(&self, invoice: Invoice) -> Result<Invoice, BackendError> {
        self.issued.insert(
            invoice.payment_hash.clone(),
            invoice.expires_at_unix,
            Issued {
                amount: invoice.amount,
                expires: crate::clock::instant_of_unix(
                    self.clock.as_ref(),
                    invoice.expires_at_unix,
                ),
            },
            self.clock.unix(),
        );
        Ok(invoice)
    }
}

#[cfg(test)]
mod tests;
