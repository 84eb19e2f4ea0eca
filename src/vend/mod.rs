//! The vend cycle as a pure state machine: `step(state, event, now) -> (state, effects)`.
//!
//! Nothing here does IO or reads a clock, so every rule about money can be tested
//! exhaustively: a pour happens only in `AwaitingPayment` on the backend's confirmation of
//! *that* invoice, a second confirmation is ignored, and a payment that arrives on any other
//! screen becomes an owed credit instead of a pour. The controller executes the effects.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Invoice, InvoiceId};
use crate::money::{Msat, Price};
use crate::pump::Channel;

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod hold_tests;
mod outcomes;
mod step;
#[cfg(test)]
mod tests;

pub use step::step;

/// How long the thank-you screen stays up.
pub const THANK_YOU: Duration = Duration::from_secs(5);
/// How long the fault screen stays up unless the customer dismisses it.
pub const FAULT_SCREEN: Duration = Duration::from_secs(120);
/// How long past its planned end a pour may go unreported before the machine gives up on it.
/// It covers the anti-drip pulse (up to 2 s), the ledger's fsync'd commit before the pump
/// starts (slow on an SD card), and scheduling: a pour that is merely late must never be
/// called failed, which would owe a credit for a drink already in the cup. The pump's own
/// hard stop bounds the motor meanwhile.
pub const POUR_GRACE: Duration = Duration::from_secs(10);

/// Our own id for one sale (one invoice). Unique across restarts.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SaleId(pub String);

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A product as the vend cycle sees it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Product {
    pub index: usize,
    pub name: String,
    pub price: Price,
    pub pour: Duration,
    pub channel: Channel,
    /// For a fiat price: the least and most sats an invoice may ask (a broken exchange rate
    /// must not sell a drink for 1 sat, nor for a fortune).
    pub sat_bounds: Option<(Msat, Msat)>,
    /// Poured by volume: this many ml on the channel's flow sensor, within `pour`.
    pub volume_ml: Option<u32>,
    /// Its stock is used up (or its tank ran dry): the tile shows "sold out" and a tap on
    /// it is refused.
    pub sold_out: bool,
}

impl From<&crate::config::ProductSpec> for Product {
    fn from(p: &crate::config::ProductSpec) -> Product {
        Product {
            index: p.index,
            name: p.name.clone(),
            price: p.price.clone(),
            pour: p.pour,
            channel: p.channel,
            sat_bounds: p.sat_bounds,
            volume_ml: p.volume_ml,
            sold_out: false,
        }
    }
}

/// The products a config sells, as the vend cycle sees them.
pub fn catalog(cfg: &crate::config::Config) -> Vec<Product> {
    cfg.product_specs().iter().map(Product::from).collect()
}

/// One customer's purchase in progress.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Sale {
    pub id: SaleId,
    pub product: Product,
}

/// Why the machine is not selling.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum OutOfService {
    /// The payment backend did not answer or refused us.
    Backend(String),
    /// The pump failed; an operator has to look at it.
    Pump(String),
    /// Sales cannot be recorded, so none are offered.
    Ledger(String),
    /// The wall clock is not known to be right (no time sync yet): invoice expiries, sale
    /// ids and the ledger's records would be wrong, so nothing is sold.
    Clock(String),
}

impl OutOfService {
    /// The reason in plain words for the customer.
    pub fn customer_text(&self) -> String {
        match self {
            OutOfService::Backend(_) => {
                "Payments are unavailable right now. Please try again in a few minutes.".into()
            }
            OutOfService::Pump(_) => {
                "The drink dispenser needs attention from the operator.".into()
            }
            OutOfService::Ledger(_) => "Sales cannot be recorded right now.".into(),
            OutOfService::Clock(_) => {
                "Waiting for the correct time before taking payments. This takes a minute after power-up."
                    .into()
            }
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            OutOfService::Backend(d)
            | OutOfService::Pump(d)
            | OutOfService::Ledger(d)
            | OutOfService::Clock(d) => d,
        }
    }
}

/// Why a paid pour did not complete.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PourFailure {
    /// The pump reported an error or stopped early.
    Pump(String),
    /// The sale could not be recorded durably, so the pump was never started.
    Ledger(String),
    /// The ledger already holds a pour for this payment: nothing was poured again.
    AlreadyPoured,
    /// The flow sensor saw no flow (or too little): the tank is empty or the line blocked.
    /// The pump is fine, so the machine sells on, but this product is sold out.
    NoFlow(String),
    /// The pour's time ran out before its volume: `poured_ml` of `target_ml` went into the
    /// cup and the rest is owed.
    Short { poured_ml: u32, target_ml: u32 },
}

/// The states of the vend cycle.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum State {
    Idle,
    CreatingInvoice {
        sale: Sale,
        /// When the machine stops waiting for the backend's invoice.
        give_up_at: Instant,
    },
    AwaitingPayment {
        sale: Sale,
        invoice: Invoice,
        expires_at: Instant,
        /// A hold invoice: its payment is held until lnvend settles or cancels it.
        held: bool,
    },
    Pouring {
        sale: Sale,
        invoice_id: InvoiceId,
        started: Instant,
        ends: Instant,
        /// The payment is held: settled when the drink is in the cup, cancelled when
        /// nothing could be poured (see [`step`]'s hold rules).
        held: bool,
    },
    ThankYou {
        sale: Sale,
        invoice_id: InvoiceId,
        until: Instant,
    },
    OutOfService {
        reason: OutOfService,
    },
    /// The operator menu is open: no sales.
    Service,
    /// Paid but not poured: the sale is an owed credit and the customer gets a code.
    Fault {
        sale: Sale,
        invoice_id: InvoiceId,
        failure: PourFailure,
        until: Instant,
        /// The payment was held and is being given back: nothing was charged, nothing is
        /// owed (the screen says so instead of offering a credit).
        returned: bool,
    },
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::CreatingInvoice { .. } => "CreatingInvoice",
            State::AwaitingPayment { .. } => "AwaitingPayment",
            State::Pouring { .. } => "Pouring",
            State::ThankYou { .. } => "ThankYou",
            State::OutOfService { .. } => "OutOfService",
            State::Service => "Service",
            State::Fault { .. } => "Fault",
        }
    }

    pub fn sale_id(&self) -> Option<&SaleId> {
        match self {
            State::Idle | State::OutOfService { .. } | State::Service => None,
            State::CreatingInvoice { sale, .. }
            | State::AwaitingPayment { sale, .. }
            | State::Pouring { sale, .. }
            | State::ThankYou { sale, .. }
            | State::Fault { sale, .. } => Some(&sale.id),
        }
    }

    /// When the state machine next wants a `Tick` without any other input.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            State::Idle | State::OutOfService { .. } | State::Service => None,
            State::CreatingInvoice { give_up_at, .. } => Some(*give_up_at),
            State::AwaitingPayment { expires_at, .. } => Some(*expires_at),
            State::Pouring { ends, .. } => Some(*ends + POUR_GRACE),
            State::ThankYou { until, .. } | State::Fault { until, .. } => Some(*until),
        }
    }
}

/// Why an invoice was given up on before it was paid.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Abandoned {
    Cancelled,
    Expired,
}

/// Everything that can happen to the machine.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Event {
    /// A customer tapped a product; the controller minted `sale_id` for it and says when
    /// to stop waiting for its invoice.
    ProductTapped {
        product: Product,
        sale_id: SaleId,
        give_up_at: Instant,
    },
    CancelTapped,
    /// The customer closed the fault screen.
    FaultDismissed,
    InvoiceCreated {
        sale_id: SaleId,
        invoice: Invoice,
        expires_at: Instant,
        /// A hold invoice (its preimage is in the ledger already).
        held: bool,
    },
    InvoiceFailed {
        sale_id: SaleId,
        reason: String,
    },
    /// The backend's authenticated state says this invoice is paid in full.
    PaymentConfirmed {
        invoice_id: InvoiceId,
    },
    /// The backend says this invoice expired or became invalid.
    InvoiceExpired {
        invoice_id: InvoiceId,
    },
    /// Time passed (the controller sends one at `State::deadline`).
    Tick,
    PourFinished {
        sale_id: SaleId,
        /// The drink is in the cup, but its pour ended on this (a tank that ran dry, a
        /// pump fault) a shortfall the flow sensor cannot tell from a full drink before
        /// the end. None: a clean end.
        trouble: Option<PourFailure>,
    },
    PourFailed {
        sale_id: SaleId,
        failure: PourFailure,
        /// The ml the flow sensor measured in the cup before the failure; 0 when nothing
        /// was, when it was too little to tell from nothing (under 3 pulses or 3 % of the
        /// drink), or when the pour is not measured (a timed pour). A held payment is
        /// returned only when this is 0: a drink partly in the cup is settled and owes the
        /// rest.
        delivered_ml: u32,
    },
    BackendDown {
        reason: String,
    },
    BackendUp,
    /// The operator cleared a fault that keeps the machine out of service.
    ServiceRestored,
    /// A customer tapped an owed credit to have it poured now.
    CreditTapped {
        sale: Sale,
        invoice_id: InvoiceId,
    },
    /// The operator menu opened (PIN accepted).
    ServiceEntered,
    /// The operator menu closed.
    ServiceLeft,
    /// The ledger cannot be written.
    LedgerDown {
        reason: String,
    },
    /// The wall clock is not (or no longer) known to be right.
    ClockWrong {
        reason: String,
    },
    /// The wall clock is synchronised.
    ClockRight,
}

impl Event {
    /// The event's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::ProductTapped { .. } => "ProductTapped",
            Event::CancelTapped => "CancelTapped",
            Event::FaultDismissed => "FaultDismissed",
            Event::InvoiceCreated { .. } => "InvoiceCreated",
            Event::InvoiceFailed { .. } => "InvoiceFailed",
            Event::PaymentConfirmed { .. } => "PaymentConfirmed",
            Event::InvoiceExpired { .. } => "InvoiceExpired",
            Event::Tick => "Tick",
            Event::PourFinished { .. } => "PourFinished",
            Event::PourFailed { .. } => "PourFailed",
            Event::BackendDown { .. } => "BackendDown",
            Event::BackendUp => "BackendUp",
            Event::ServiceRestored => "ServiceRestored",
            Event::LedgerDown { .. } => "LedgerDown",
            Event::CreditTapped { .. } => "CreditTapped",
            Event::ServiceEntered => "ServiceEntered",
            Event::ServiceLeft => "ServiceLeft",
            Event::ClockWrong { .. } => "ClockWrong",
            Event::ClockRight => "ClockRight",
        }
    }
}

/// What the controller must do after a step.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Ask the backend for an invoice; answer with `InvoiceCreated` or `InvoiceFailed`.
    CreateInvoice {
        sale: Sale,
    },
    /// Show the QR and start watching the invoice for payment.
    WatchInvoice {
        sale_id: SaleId,
        invoice: Invoice,
    },
    /// Record that the customer left the invoice. The watch goes on until the invoice expires,
    /// so a payment that still arrives becomes an owed credit.
    AbandonInvoice {
        sale_id: SaleId,
        invoice_id: InvoiceId,
        why: Abandoned,
    },
    /// Record the payment and the pour start durably, then run the pump. Answer with
    /// `PourFinished` or `PourFailed`.
    BeginPour {
        sale: Sale,
        invoice_id: InvoiceId,
        /// Pouring an owed credit rather than a fresh payment.
        credit: bool,
    },
    /// Stop the pump now.
    StopPump,
    RecordPoured {
        sale_id: SaleId,
    },
    /// The sale was paid but not poured: it becomes an owed credit.
    RecordOwed {
        sale_id: SaleId,
        failure: PourFailure,
    },
    /// The product's tank ran dry: it is sold out until the operator refills it.
    SoldOut {
        index: usize,
    },
    /// A payment arrived for an invoice that is not on screen. The ledger makes it an owed
    /// credit if it is one of ours and not yet poured, and ignores it otherwise; a held
    /// payment of an invoice not on screen is cancelled instead (given back, never poured).
    RecordLatePayment {
        invoice_id: InvoiceId,
    },
    /// Take the held payment of this sale (its drink is in the cup, or owed). Recorded
    /// before; the controller asks the backend until it answers, then records the outcome.
    SettleHold {
        sale_id: SaleId,
    },
    /// Give the held payment of this sale back (nothing was poured, or the customer left).
    /// The controller records the sale as returned first, then asks the backend until it
    /// answers; a backend that already took the payment makes it a paid sale, owed.
    CancelHold {
        sale_id: SaleId,
    },
}
