//! The payment backend boundary. Every backend (simulated, BTCPay, Core Lightning, LNbits)
//! implements [`PaymentBackend`]: create an invoice, report its *authenticated* state, and
//! offer a stream of wake-ups. A wake-up carries no data on purpose: it only makes the
//! watcher ask [`PaymentBackend::invoice_state`] again, so a spoofed or replayed push can
//! never pour a drink. [`watch`] holds the one loop that turns wake-ups and polls into
//! vend-cycle events for every backend.

pub mod btcpay;
pub mod cln;
pub mod clnrest;
pub mod hold;
pub mod http;
pub mod lnbits;
pub mod memo;
pub mod nwc;
pub mod sim;
pub mod watch;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::money::{Msat, Price};

pub use hold::{HoldState, HoldSupport, PaymentHash, Preimage};

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

    /// [`Invoice::check`] for a hold invoice, and its payment hash is sha256 of the preimage
    /// lnvend made: a backend that swapped the hash (or the preimage) would have the customer
    /// pay an invoice whose settle lnvend does not control.
    pub fn check_hold(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
        network: crate::config::Network,
        now: std::time::SystemTime,
    ) -> Result<(), crate::bolt11::Bolt11Error> {
        self.check(request, network, now)?;
        if !self
            .payment_hash
            .eq_ignore_ascii_case(&preimage.payment_hash().to_hex())
        {
            return Err(crate::bolt11::Bolt11Error::PaymentHash);
        }
        Ok(())
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

    /// Makes an unpaid plain invoice unpayable: the customer left it (Cancel on the screen,
    /// or the vending machine ended its session). `Ok(Cancelled)`: the backend refuses any
    /// payment of it from now on. An invoice paid meanwhile is not touched (an error says
    /// so) and its watch finds the payment, which is owed. The default is
    /// [`CancelOutcome::Unsupported`]: the invoice stays payable until it expires, and a
    /// payment that still arrives is owed. Never for a hold invoice (see
    /// [`PaymentBackend::cancel_hold`]).
    async fn cancel_invoice(&self, id: &InvoiceId) -> Result<CancelOutcome, BackendError> {
        let _ = id;
        Ok(CancelOutcome::Unsupported(format!(
            "the {} backend cannot withdraw an invoice",
            self.name()
        )))
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

    /// Whether this backend can take hold invoices right now (see [`hold`]). Asked at start
    /// and by check-config; the default is no (BTCPay has none; LNbits would need its admin
    /// key on the machine).
    async fn hold_support(&self) -> Result<HoldSupport, BackendError> {
        Ok(HoldSupport::No(format!(
            "the {} backend has no hold invoices",
            self.name()
        )))
    }

    /// A hold invoice for `request` whose payment hash is sha256 of `preimage`. Its id is
    /// the same kind of id [`PaymentBackend::create_invoice`] gives.
    async fn create_hold_invoice(
        &self,
        request: &InvoiceRequest,
        preimage: &Preimage,
    ) -> Result<Invoice, BackendError> {
        let _ = (request, preimage);
        Err(BackendError::Rejected(format!(
            "the {} backend has no hold invoices",
            self.name()
        )))
    }

    /// The authenticated state of a hold invoice: `Accepted` (or `Settled`) is the only thing
    /// that may authorise a pour of a held payment.
    async fn hold_state(&self, hash: &PaymentHash) -> Result<HoldState, BackendError> {
        let _ = hash;
        Err(BackendError::Rejected(format!(
            "the {} backend has no hold invoices",
            self.name()
        )))
    }

    /// Takes a held payment. Already settled: Ok. Use [`hold::resolve`], which checks what
    /// the backend did.
    async fn settle_hold(
        &self,
        hash: &PaymentHash,
        preimage: &Preimage,
    ) -> Result<(), BackendError> {
        let _ = (hash, preimage);
        Err(BackendError::Rejected(format!(
            "the {} backend has no hold invoices",
            self.name()
        )))
    }

    /// Gives a held payment back (or refuses an unpaid hold invoice for good). Already
    /// cancelled: Ok. Use [`hold::resolve`].
    async fn cancel_hold(&self, hash: &PaymentHash) -> Result<(), BackendError> {
        let _ = hash;
        Err(BackendError::Rejected(format!(
            "the {} backend has no hold invoices",
            self.name()
        )))
    }
}

/// What [`PaymentBackend::cancel_invoice`] did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CancelOutcome {
    /// The backend refuses any payment of the invoice from now on.
    Cancelled,
    /// The backend cannot (this one, or with these credentials), and says why: the invoice
    /// stays payable until it expires.
    Unsupported(String),
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
