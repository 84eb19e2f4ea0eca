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
use crate::money::Msat;
use crate::pump::Channel;

/// How long the thank-you screen stays up.
pub const THANK_YOU: Duration = Duration::from_secs(5);
/// How long the fault screen stays up unless the customer dismisses it.
pub const FAULT_SCREEN: Duration = Duration::from_secs(120);
/// How long past its planned end a pour may go unreported before the machine gives up on it.
pub const POUR_GRACE: Duration = Duration::from_secs(3);

/// Our own id for one sale (one invoice). Unique across restarts.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
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
    pub price: Msat,
    pub pour: Duration,
    pub channel: Channel,
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
}

impl OutOfService {
    /// The reason in plain words for the customer.
    pub fn customer_text(&self) -> String {
        match self {
            OutOfService::Backend(_) => {
                "Payments are unavailable right now. Please try again in a few minutes.".into()
            }
            OutOfService::Pump(_) => "The drink dispenser needs attention from the operator.".into(),
            OutOfService::Ledger(_) => "Sales cannot be recorded right now.".into(),
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            OutOfService::Backend(d) | OutOfService::Pump(d) | OutOfService::Ledger(d) => d,
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
}

/// The states of the vend cycle.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum State {
    Idle,
    CreatingInvoice {
        sale: Sale,
    },
    AwaitingPayment {
        sale: Sale,
        invoice: Invoice,
        expires_at: Instant,
    },
    Pouring {
        sale: Sale,
        invoice_id: InvoiceId,
        started: Instant,
        ends: Instant,
    },
    ThankYou {
        sale: Sale,
        invoice_id: InvoiceId,
        until: Instant,
    },
    OutOfService {
        reason: OutOfService,
    },
    /// Paid but not poured: the sale is an owed credit and the customer gets a code.
    Fault {
        sale: Sale,
        invoice_id: InvoiceId,
        failure: PourFailure,
        until: Instant,
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
            State::Fault { .. } => "Fault",
        }
    }

    pub fn sale_id(&self) -> Option<&SaleId> {
        match self {
            State::Idle | State::OutOfService { .. } => None,
            State::CreatingInvoice { sale }
            | State::AwaitingPayment { sale, .. }
            | State::Pouring { sale, .. }
            | State::ThankYou { sale, .. }
            | State::Fault { sale, .. } => Some(&sale.id),
        }
    }

    /// When the state machine next wants a `Tick` without any other input.
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            State::Idle | State::CreatingInvoice { .. } | State::OutOfService { .. } => None,
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
    /// A customer tapped a product; the controller minted `sale_id` for it.
    ProductTapped { product: Product, sale_id: SaleId },
    CancelTapped,
    /// The customer closed the fault screen.
    FaultDismissed,
    InvoiceCreated {
        sale_id: SaleId,
        invoice: Invoice,
        expires_at: Instant,
    },
    InvoiceFailed { sale_id: SaleId, reason: String },
    /// The backend's authenticated state says this invoice is paid in full.
    PaymentConfirmed { invoice_id: InvoiceId },
    /// The backend says this invoice expired or became invalid.
    InvoiceExpired { invoice_id: InvoiceId },
    /// Time passed (the controller sends one at `State::deadline`).
    Tick,
    PourFinished { sale_id: SaleId },
    PourFailed { sale_id: SaleId, failure: PourFailure },
    BackendDown { reason: String },
    BackendUp,
    /// The operator cleared a fault that keeps the machine out of service.
    ServiceRestored,
    /// The ledger cannot be written.
    LedgerDown { reason: String },
}

/// What the controller must do after a step.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Ask the backend for an invoice; answer with `InvoiceCreated` or `InvoiceFailed`.
    CreateInvoice { sale: Sale },
    /// Show the QR and start watching the invoice for payment.
    WatchInvoice { sale_id: SaleId, invoice: Invoice },
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
    },
    /// Stop the pump now.
    StopPump,
    RecordPoured { sale_id: SaleId },
    /// The sale was paid but not poured: it becomes an owed credit.
    RecordOwed {
        sale_id: SaleId,
        failure: PourFailure,
    },
    /// A payment arrived for an invoice that is not on screen. The ledger makes it an owed
    /// credit if it is one of ours and not yet poured, and ignores it otherwise.
    RecordLatePayment { invoice_id: InvoiceId },
}

fn is_current(sale: &Sale, id: &SaleId) -> bool {
    &sale.id == id
}

/// Advances the vend cycle by one event.
pub fn step(state: State, event: Event, now: Instant) -> (State, Vec<Effect>) {
    use Effect as E;
    use Event as Ev;
    use State as S;

    match (state, event) {
        // --- a customer taps a product
        (S::Idle | S::ThankYou { .. }, Ev::ProductTapped { product, sale_id }) => {
            let sale = Sale { id: sale_id, product };
            (S::CreatingInvoice { sale: sale.clone() }, vec![E::CreateInvoice { sale }])
        }
        (
            s @ (S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::ProductTapped { .. },
        ) => (s, vec![]),

        // --- cancel
        (S::CreatingInvoice { .. }, Ev::CancelTapped) => (S::Idle, vec![]),
        (S::AwaitingPayment { sale, invoice, .. }, Ev::CancelTapped) => (
            S::Idle,
            vec![E::AbandonInvoice {
                sale_id: sale.id,
                invoice_id: invoice.id,
                why: Abandoned::Cancelled,
            }],
        ),
        (
            s @ (S::Idle
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::CancelTapped,
        ) => (s, vec![]),

        // --- the fault screen is closed
        (S::Fault { failure, .. }, Ev::FaultDismissed) => (after_fault(failure), vec![]),
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }),
            Ev::FaultDismissed,
        ) => (s, vec![]),

        // --- the backend answered the invoice request
        (
            S::CreatingInvoice { sale },
            Ev::InvoiceCreated {
                sale_id,
                invoice,
                expires_at,
            },
        ) if is_current(&sale, &sale_id) => (
            S::AwaitingPayment {
                sale: sale.clone(),
                invoice: invoice.clone(),
                expires_at,
            },
            vec![E::WatchInvoice {
                sale_id: sale.id,
                invoice,
            }],
        ),
        // An invoice for a sale the customer already left was never shown, but it is ours:
        // record it and keep watching it until it expires.
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::InvoiceCreated {
                sale_id, invoice, ..
            },
        ) => (
            s,
            vec![
                E::WatchInvoice {
                    sale_id: sale_id.clone(),
                    invoice: invoice.clone(),
                },
                E::AbandonInvoice {
                    sale_id,
                    invoice_id: invoice.id,
                    why: Abandoned::Cancelled,
                },
            ],
        ),
        (S::CreatingInvoice { sale }, Ev::InvoiceFailed { sale_id, reason })
            if is_current(&sale, &sale_id) =>
        {
            (
                S::OutOfService {
                    reason: OutOfService::Backend(reason),
                },
                vec![],
            )
        }
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::InvoiceFailed { .. },
        ) => (s, vec![]),

        // --- payment
        (
            S::AwaitingPayment {
                sale,
                invoice,
                expires_at,
            },
            Ev::PaymentConfirmed { invoice_id },
        ) => {
            if invoice.id == invoice_id {
                let ends = now + sale.product.pour;
                (
                    S::Pouring {
                        sale: sale.clone(),
                        invoice_id: invoice_id.clone(),
                        started: now,
                        ends,
                    },
                    vec![E::BeginPour { sale, invoice_id }],
                )
            } else {
                (
                    S::AwaitingPayment {
                        sale,
                        invoice,
                        expires_at,
                    },
                    vec![E::RecordLatePayment { invoice_id }],
                )
            }
        }
        // The same payment reported again while (or after) it pours: nothing to do.
        (
            s @ (S::Pouring { .. } | S::ThankYou { .. } | S::Fault { .. }),
            Ev::PaymentConfirmed { invoice_id },
        ) => {
            let same = match &s {
                S::Pouring { invoice_id: i, .. }
                | S::ThankYou { invoice_id: i, .. }
                | S::Fault { invoice_id: i, .. } => *i == invoice_id,
                S::Idle
                | S::CreatingInvoice { .. }
                | S::AwaitingPayment { .. }
                | S::OutOfService { .. } => false,
            };
            if same {
                (s, vec![])
            } else {
                (s, vec![E::RecordLatePayment { invoice_id }])
            }
        }
        (
            s @ (S::Idle | S::CreatingInvoice { .. } | S::OutOfService { .. }),
            Ev::PaymentConfirmed { invoice_id },
        ) => (s, vec![E::RecordLatePayment { invoice_id }]),

        // --- expiry
        (
            S::AwaitingPayment {
                sale,
                invoice,
                expires_at,
            },
            Ev::InvoiceExpired { invoice_id },
        ) => {
            if invoice.id == invoice_id {
                (
                    S::Idle,
                    vec![E::AbandonInvoice {
                        sale_id: sale.id,
                        invoice_id,
                        why: Abandoned::Expired,
                    }],
                )
            } else {
                (
                    S::AwaitingPayment {
                        sale,
                        invoice,
                        expires_at,
                    },
                    vec![],
                )
            }
        }
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::InvoiceExpired { .. },
        ) => (s, vec![]),

        // --- time
        (
            S::AwaitingPayment {
                sale,
                invoice,
                expires_at,
            },
            Ev::Tick,
        ) => {
            if now >= expires_at {
                (
                    S::Idle,
                    vec![E::AbandonInvoice {
                        sale_id: sale.id,
                        invoice_id: invoice.id,
                        why: Abandoned::Expired,
                    }],
                )
            } else {
                (
                    S::AwaitingPayment {
                        sale,
                        invoice,
                        expires_at,
                    },
                    vec![],
                )
            }
        }
        (
            S::Pouring {
                sale,
                invoice_id,
                started,
                ends,
            },
            Ev::Tick,
        ) => {
            if now >= ends + POUR_GRACE {
                // The pour never reported back: stop the pump and owe the customer.
                let failure = PourFailure::Pump("the pour did not report completion".into());
                (
                    S::Fault {
                        sale: sale.clone(),
                        invoice_id,
                        failure: failure.clone(),
                        until: now + FAULT_SCREEN,
                    },
                    vec![
                        E::StopPump,
                        E::RecordOwed {
                            sale_id: sale.id,
                            failure,
                        },
                    ],
                )
            } else {
                (
                    S::Pouring {
                        sale,
                        invoice_id,
                        started,
                        ends,
                    },
                    vec![],
                )
            }
        }
        (
            S::ThankYou {
                sale,
                invoice_id,
                until,
            },
            Ev::Tick,
        ) => {
            if now >= until {
                (S::Idle, vec![])
            } else {
                (
                    S::ThankYou {
                        sale,
                        invoice_id,
                        until,
                    },
                    vec![],
                )
            }
        }
        (
            S::Fault {
                sale,
                invoice_id,
                failure,
                until,
            },
            Ev::Tick,
        ) => {
            if now >= until {
                (after_fault(failure), vec![])
            } else {
                (
                    S::Fault {
                        sale,
                        invoice_id,
                        failure,
                        until,
                    },
                    vec![],
                )
            }
        }
        (s @ (S::Idle | S::CreatingInvoice { .. } | S::OutOfService { .. }), Ev::Tick) => {
            (s, vec![])
        }

        // --- the pump reports
        (S::Pouring {
            sale, invoice_id, ..
        }, Ev::PourFinished { sale_id })
            if is_current(&sale, &sale_id) =>
        {
            (
                S::ThankYou {
                    sale,
                    invoice_id,
                    until: now + THANK_YOU,
                },
                vec![E::RecordPoured { sale_id }],
            )
        }
        (S::Pouring {
            sale, invoice_id, ..
        }, Ev::PourFailed { sale_id, failure })
            if is_current(&sale, &sale_id) =>
        {
            let effects = match failure {
                // Nothing was poured twice; there is nothing owed for this one.
                PourFailure::AlreadyPoured => vec![],
                PourFailure::Pump(_) | PourFailure::Ledger(_) => vec![
                    E::StopPump,
                    E::RecordOwed {
                        sale_id,
                        failure: failure.clone(),
                    },
                ],
            };
            (
                S::Fault {
                    sale,
                    invoice_id,
                    failure,
                    until: now + FAULT_SCREEN,
                },
                effects,
            )
        }
        // A report for a pour that is no longer on screen (it was already given up as owed).
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::PourFinished { .. } | Ev::PourFailed { .. },
        ) => (s, vec![]),

        // --- backend health
        (S::Idle | S::CreatingInvoice { .. }, Ev::BackendDown { reason }) => (
            S::OutOfService {
                reason: OutOfService::Backend(reason),
            },
            vec![],
        ),
        // A QR on screen stays: the payment may still complete and the watch goes on.
        (
            s @ (S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }),
            Ev::BackendDown { .. },
        ) => (s, vec![]),
        (S::OutOfService { reason }, Ev::BackendDown { reason: new }) => match reason {
            OutOfService::Backend(_) => (
                S::OutOfService {
                    reason: OutOfService::Backend(new),
                },
                vec![],
            ),
            OutOfService::Pump(_) | OutOfService::Ledger(_) => (S::OutOfService { reason }, vec![]),
        },
        (S::OutOfService { reason }, Ev::BackendUp) => match reason {
            OutOfService::Backend(_) => (S::Idle, vec![]),
            OutOfService::Pump(_) | OutOfService::Ledger(_) => (S::OutOfService { reason }, vec![]),
        },
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }),
            Ev::BackendUp,
        ) => (s, vec![]),

        // --- operator
        (S::OutOfService { .. }, Ev::ServiceRestored) => (S::Idle, vec![]),
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }),
            Ev::ServiceRestored,
        ) => (s, vec![]),

        // --- the ledger cannot be written: stop offering sales
        (S::Idle | S::CreatingInvoice { .. } | S::OutOfService { .. }, Ev::LedgerDown { reason }) => (
            S::OutOfService {
                reason: OutOfService::Ledger(reason),
            },
            vec![],
        ),
        (
            s @ (S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }),
            Ev::LedgerDown { .. },
        ) => (s, vec![]),
    }
}

fn after_fault(failure: PourFailure) -> State {
    match failure {
        PourFailure::Pump(reason) => State::OutOfService {
            reason: OutOfService::Pump(reason),
        },
        PourFailure::Ledger(reason) => State::OutOfService {
            reason: OutOfService::Ledger(reason),
        },
        PourFailure::AlreadyPoured => State::Idle,
    }
}
