//! The payment backend boundary. Every backend (simulated, BTCPay, Core Lightning, LNbits)
//! implements [`PaymentBackend`]: create an invoice, report its *authenticated* state, and
//! offer a stream of wake-ups. A wake-up carries no data on purpose: it only makes the
//! watcher ask [`PaymentBackend::invoice_state`] again, so a spoofed or replayed push can
//! never pour a drink. [`watch`] holds the one loop that turns wake-ups and polls into
//! vend-cycle events for every backend.

pub mod btcpay;
pub mod cln;
pub mod clnrest;
pub mod http;
pub mod lnbits;
pub mod memo;
pub mod sim;
pub mod watch;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::money::{Msat, Price};

/// The backend's id for an invoice (BTCPay invoice id, CLN label, payment hash…).
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct InvoiceId(pub String);

impl fmt::Display for InvoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the machine asks for.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InvoiceRequest {
    /// Our sale id, so the invoice can be found from the backend's side too.
    pub sale_id: String,
    /// The machine and the product, so the payment server's own records say which
    /// machine sold what (see docs/operator/fleet.md).
    pub machine_id: String,
    pub product: String,
    /// In sats, or in fiat for the backend to convert.
    pub price: Price,
    pub description: String,
    pub expiry: Duration,
}

/// An invoice as the backend issued it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Invoice {
    pub id: InvoiceId,
    pub bolt11: String,
    pub payment_hash: String,
    pub amount: Msat,
    /// Seconds since the UNIX epoch at which the invoice stops being payable.
    pub expires_at_unix: u64,
}

impl Invoice {
    /// Whether this invoice, as the backend reported it, is the one `request` asked for on
    /// `network`: a validly signed BOLT11 for exactly that amount and payment hash, payable
    /// for about as long as asked (see [`crate::bolt11::check`]). Checked before any QR.
    pub fn check(
        &self,
        request: &InvoiceRequest,
        network: crate::config::Network,
        now: std::time::SystemTime,
    ) -> Result<(), crate::bolt11::Bolt11Error> {
        let claimed = crate::bolt11::Claimed {
            bolt11: &self.bolt11,
            payment_hash: &self.payment_hash,
            amount: self.amount,
            expires_at_unix: self.expires_at_unix,
            asked: request.price.msat(),
            asked_expiry: request.expiry,
        };
        crate::bolt11::check(&claimed, network, now)
    }
}

/// The backend's authenticated view of an invoice.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InvoiceState {
    Pending,
    Paid { received: Msat },
    Expired,
    Invalid,
}

/// Wake-ups for one invoice. The channel closing means the connection dropped.
pub type WakeUps = mpsc::Receiver<()>;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BackendError {
    #[error("payment backend unreachable: {0}")]
    Unreachable(String),
    #[error("payment backend refused our credentials: {0}")]
    Unauthorized(String),
    #[error("payment backend sent a reply we cannot trust: {0}")]
    BadReply(String),
    #[error("payment backend rejected the request: {0}")]
    Rejected(String),
    /// A mistake in the configuration found while building the backend (a URL, a key, a pin,
    /// a webhook address): nothing was sent, and no server refused anything.
    #[error("payment backend configuration problem: {0}")]
    Config(String),
}

#[async_trait]
pub trait PaymentBackend: Send + Sync + 'static {
    /// A short name for logs and the ledger ("sim", "btcpay", …).
    fn name(&self) -> &'static str;

    /// Succeeds only if the backend answered just now and accepts our credentials.
    async fn check_health(&self) -> Result<(), BackendError>;

    async fn create_invoice(&self, request: &InvoiceRequest) -> Result<Invoice, BackendError>;

    /// The authenticated state of an invoice: the only thing that may authorise a pour.
    async fn invoice_state(&self, id: &InvoiceId) -> Result<InvoiceState, BackendError>;

    /// Opens a wake-up stream for one invoice (websocket, long-poll, …).
    async fn wake_ups(&self, id: &InvoiceId) -> Result<WakeUps, BackendError>;

    /// At start: invoices the backend saw paid while lnvend was not running, found by the
    /// backend's own cursor (Core Lightning's `pay_index`). Each is then confirmed through
    /// [`PaymentBackend::invoice_state`] like any other payment. Backends without such a
    /// cursor rely on the controller re-checking its unsettled invoices.
    async fn paid_while_away(&self) -> Result<Vec<InvoiceId>, BackendError> {
        Ok(Vec::new())
    }

    /// Refunds a paid invoice that was not (fully) poured: all of it, or only the share of
    /// the drink that was not poured. `Some(link)`: the customer claims the refund with
    /// their wallet from this link (BTCPay pull payment). `None`: this backend cannot
    /// refund by itself; the operator refunds `amount` by hand against the receipt code.
    async fn refund(
        &self,
        id: &InvoiceId,
        amount: RefundAmount,
    ) -> Result<Option<String>, BackendError> {
        let _ = (id, amount);
        Ok(None)
    }
}

/// How much of a paid invoice a refund gives back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefundAmount {
    /// All of it: nothing of the drink was poured.
    Whole,
    /// Only this much: the undelivered share of a drink that was partly poured, already
    /// rounded up to a whole sat in the customer's favour (see `ledger::Owed::value`).
    Part(Msat),
}
