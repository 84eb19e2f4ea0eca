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

/// How long the thank-you screen stays up.
pub const THANK_YOU: Duration = Duration::from_secs(5);
/// How long the fault screen stays up unless the customer dismisses it.
pub const FAULT_SCREEN: Duration = Duration::from_secs(120);
/// How long past its planned end a pour may go unreported before the machine gives up on it.
pub const POUR_GRACE: Duration = Duration::from_secs(3);

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
    /// The operator menu is open: no sales.
    Service,
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
    },
    PourFailed {
        sale_id: SaleId,
        failure: PourFailure,
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
    /// A payment arrived for an invoice that is not on screen. The ledger makes it an owed
    /// credit if it is one of ours and not yet poured, and ignores it otherwise.
    RecordLatePayment {
        invoice_id: InvoiceId,
    },
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
        (
            S::Idle | S::ThankYou { .. },
            Ev::ProductTapped {
                product,
                sale_id,
                give_up_at,
            },
        ) => {
            let sale = Sale {
                id: sale_id,
                product,
            };
            (
                S::CreatingInvoice {
                    sale: sale.clone(),
                    give_up_at,
                },
                vec![E::CreateInvoice { sale }],
            )
        }
        (
            s @ (S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::OutOfService { .. }
            | S::Service
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
            | S::Service
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
            | S::OutOfService { .. }
            | S::Service),
            Ev::FaultDismissed,
        ) => (s, vec![]),

        // --- the backend answered the invoice request
        (
            S::CreatingInvoice { sale, .. },
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
            | S::Service
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
        (S::CreatingInvoice { sale, .. }, Ev::InvoiceFailed { sale_id, reason })
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
            | S::Service
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
                    vec![E::BeginPour {
                        sale,
                        invoice_id,
                        credit: false,
                    }],
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
                | S::OutOfService { .. }
                | S::Service => false,
            };
            if same {
                (s, vec![])
            } else {
                (s, vec![E::RecordLatePayment { invoice_id }])
            }
        }
        (
            s @ (S::Idle | S::CreatingInvoice { .. } | S::OutOfService { .. } | S::Service),
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
            | S::Service
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
        (S::CreatingInvoice { sale, give_up_at }, Ev::Tick) => {
            if now >= give_up_at {
                // The backend never answered: say so instead of "Preparing…" for ever. An
                // invoice that still arrives is recorded and watched, never shown.
                (
                    S::OutOfService {
                        reason: OutOfService::Backend(
                            "the payment backend did not make an invoice in time".into(),
                        ),
                    },
                    vec![],
                )
            } else {
                (S::CreatingInvoice { sale, give_up_at }, vec![])
            }
        }
        (s @ (S::Idle | S::OutOfService { .. } | S::Service), Ev::Tick) => (s, vec![]),

        // --- the pump reports
        (
            S::Pouring {
                sale, invoice_id, ..
            },
            Ev::PourFinished { sale_id },
        ) if is_current(&sale, &sale_id) => (
            S::ThankYou {
                sale,
                invoice_id,
                until: now + THANK_YOU,
            },
            vec![E::RecordPoured { sale_id }],
        ),
        (
            S::Pouring {
                sale, invoice_id, ..
            },
            Ev::PourFailed { sale_id, failure },
        ) if is_current(&sale, &sale_id) => {
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
            | S::Service
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
            | S::Fault { .. }
            | S::Service),
            Ev::BackendDown { .. },
        ) => (s, vec![]),
        (S::OutOfService { reason }, Ev::BackendDown { reason: new }) => match reason {
            OutOfService::Backend(_) => (
                S::OutOfService {
                    reason: OutOfService::Backend(new),
                },
                vec![],
            ),
            OutOfService::Pump(_) | OutOfService::Ledger(_) | OutOfService::Clock(_) => {
                (S::OutOfService { reason }, vec![])
            }
        },
        (S::OutOfService { reason }, Ev::BackendUp) => match reason {
            OutOfService::Backend(_) => (S::Idle, vec![]),
            OutOfService::Pump(_) | OutOfService::Ledger(_) | OutOfService::Clock(_) => {
                (S::OutOfService { reason }, vec![])
            }
        },
        (
            s @ (S::Service
            | S::Idle
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
            s @ (S::Service
            | S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }),
            Ev::ServiceRestored,
        ) => (s, vec![]),

        // --- the clock: nothing is sold on a wall clock not known to be right
        (S::Idle | S::CreatingInvoice { .. }, Ev::ClockWrong { reason }) => (
            S::OutOfService {
                reason: OutOfService::Clock(reason),
            },
            vec![],
        ),
        (S::OutOfService { reason }, Ev::ClockWrong { reason: new }) => match reason {
            // A backend that is down is second to the clock: the next health report after
            // the clock is right says so again.
            OutOfService::Backend(_) | OutOfService::Clock(_) => (
                S::OutOfService {
                    reason: OutOfService::Clock(new),
                },
                vec![],
            ),
            OutOfService::Pump(_) | OutOfService::Ledger(_) => (S::OutOfService { reason }, vec![]),
        },
        // A QR already on screen stays: its expiry runs on the monotonic clock.
        (
            s @ (S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }
            | S::Service),
            Ev::ClockWrong { .. },
        ) => (s, vec![]),
        (S::OutOfService { reason }, Ev::ClockRight) => match reason {
            OutOfService::Clock(_) => (S::Idle, vec![]),
            OutOfService::Backend(_) | OutOfService::Pump(_) | OutOfService::Ledger(_) => {
                (S::OutOfService { reason }, vec![])
            }
        },
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }
            | S::Service),
            Ev::ClockRight,
        ) => (s, vec![]),

        // --- the ledger cannot be written: stop offering sales
        (
            S::Idle | S::CreatingInvoice { .. } | S::OutOfService { .. },
            Ev::LedgerDown { reason },
        ) => (
            S::OutOfService {
                reason: OutOfService::Ledger(reason),
            },
            vec![],
        ),
        (
            s @ (S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Fault { .. }
            | S::Service),
            Ev::LedgerDown { .. },
        ) => (s, vec![]),

        // --- an owed credit is poured when its customer taps it
        (S::Idle | S::ThankYou { .. }, Ev::CreditTapped { sale, invoice_id }) => {
            let ends = now + sale.product.pour;
            (
                S::Pouring {
                    sale: sale.clone(),
                    invoice_id: invoice_id.clone(),
                    started: now,
                    ends,
                },
                vec![E::BeginPour {
                    sale,
                    invoice_id,
                    credit: true,
                }],
            )
        }
        (
            s @ (S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::OutOfService { .. }
            | S::Service
            | S::Fault { .. }),
            Ev::CreditTapped { .. },
        ) => (s, vec![]),

        // --- the operator menu: only from a machine that is not serving a customer
        (S::Idle | S::OutOfService { .. }, Ev::ServiceEntered) => (S::Service, vec![]),
        (
            s @ (S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::Service
            | S::Fault { .. }),
            Ev::ServiceEntered,
        ) => (s, vec![]),
        (S::Service, Ev::ServiceLeft) => (S::Idle, vec![]),
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Fault { .. }),
            Ev::ServiceLeft,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Invoice;
    use crate::money::Msat;

    fn product() -> Product {
        Product {
            index: 0,
            name: "Cola".into(),
            price: Price::Sats(Msat::from_sat(2100).unwrap()),
            pour: Duration::from_millis(4000),
            channel: Channel::A,
            sat_bounds: None,
        }
    }

    /// How long the tests' machine waits for an invoice.
    const GIVE_UP: Duration = Duration::from_secs(13);

    fn creating(now: Instant) -> State {
        State::CreatingInvoice {
            sale: sale("s1"),
            give_up_at: now + GIVE_UP,
        }
    }

    fn sale(id: &str) -> Sale {
        Sale {
            id: SaleId(id.into()),
            product: product(),
        }
    }

    fn invoice(id: &str) -> Invoice {
        Invoice {
            id: InvoiceId(id.into()),
            bolt11: format!("lnbcrt-{id}"),
            payment_hash: format!("hash-{id}"),
            amount: Msat::from_sat(2100).unwrap(),
            expires_at_unix: 0,
        }
    }

    fn t0() -> Instant {
        Instant::now()
    }

    fn awaiting(now: Instant) -> State {
        State::AwaitingPayment {
            sale: sale("s1"),
            invoice: invoice("i1"),
            expires_at: now + Duration::from_secs(600),
        }
    }

    fn pouring(now: Instant) -> State {
        State::Pouring {
            sale: sale("s1"),
            invoice_id: InvoiceId("i1".into()),
            started: now,
            ends: now + Duration::from_millis(4000),
        }
    }

    fn thank_you(now: Instant) -> State {
        State::ThankYou {
            sale: sale("s1"),
            invoice_id: InvoiceId("i1".into()),
            until: now + THANK_YOU,
        }
    }

    fn fault(now: Instant, failure: PourFailure) -> State {
        State::Fault {
            sale: sale("s1"),
            invoice_id: InvoiceId("i1".into()),
            failure,
            until: now + FAULT_SCREEN,
        }
    }

    fn oos_backend() -> State {
        State::OutOfService {
            reason: OutOfService::Backend("down".into()),
        }
    }

    /// One of each state.
    fn all_states(now: Instant) -> Vec<State> {
        vec![
            State::Idle,
            creating(now),
            awaiting(now),
            pouring(now),
            thank_you(now),
            oos_backend(),
            State::OutOfService {
                reason: OutOfService::Clock("not synchronised".into()),
            },
            fault(now, PourFailure::Pump("jam".into())),
            State::Service,
        ]
    }

    /// One of each event, aimed at sale s1 / invoice i1 where it has a target.
    fn all_events(now: Instant) -> Vec<Event> {
        vec![
            Event::ProductTapped {
                product: product(),
                sale_id: SaleId("s2".into()),
                give_up_at: now + GIVE_UP,
            },
            Event::CancelTapped,
            Event::FaultDismissed,
            Event::InvoiceCreated {
                sale_id: SaleId("s1".into()),
                invoice: invoice("i1"),
                expires_at: now + Duration::from_secs(600),
            },
            Event::InvoiceFailed {
                sale_id: SaleId("s1".into()),
                reason: "x".into(),
            },
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("i1".into()),
            },
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("other".into()),
            },
            Event::InvoiceExpired {
                invoice_id: InvoiceId("i1".into()),
            },
            Event::Tick,
            Event::PourFinished {
                sale_id: SaleId("s1".into()),
            },
            Event::PourFailed {
                sale_id: SaleId("s1".into()),
                failure: PourFailure::Pump("jam".into()),
            },
            Event::BackendDown { reason: "x".into() },
            Event::BackendUp,
            Event::ServiceRestored,
            Event::LedgerDown {
                reason: "disk".into(),
            },
            Event::CreditTapped {
                sale: sale("s1"),
                invoice_id: InvoiceId("i1".into()),
            },
            Event::ServiceEntered,
            Event::ServiceLeft,
            Event::ClockWrong {
                reason: "not synchronised".into(),
            },
            Event::ClockRight,
        ]
    }

    fn pours(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::BeginPour { .. }))
            .count()
    }

    #[test]
    fn the_only_pours_in_the_whole_table_are_a_confirmed_payment_on_screen_or_a_tapped_credit() {
        let now = t0();
        for s in all_states(now) {
            for e in all_events(now) {
                let (next, effects) = step(s.clone(), e.clone(), now);
                let expect = matches!(
                    (&s, &e),
                    (State::AwaitingPayment { .. }, Event::PaymentConfirmed { invoice_id })
                        if invoice_id.0 == "i1"
                ) || matches!(
                    (&s, &e),
                    (
                        State::Idle | State::ThankYou { .. },
                        Event::CreditTapped { .. }
                    )
                );
                assert_eq!(pours(&effects), usize::from(expect), "{} + {e:?}", s.name());
                if expect {
                    assert_eq!(next.name(), "Pouring");
                }
            }
        }
    }

    #[test]
    fn every_confirmed_payment_is_poured_ignored_as_a_repeat_or_sent_to_the_ledger() {
        let now = t0();
        for s in all_states(now) {
            for id in ["i1", "other"] {
                let e = Event::PaymentConfirmed {
                    invoice_id: InvoiceId(id.into()),
                };
                let (_, effects) = step(s.clone(), e, now);
                let poured = pours(&effects) == 1;
                let recorded = effects.iter().any(
                    |e| matches!(e, Effect::RecordLatePayment { invoice_id } if invoice_id.0 == id),
                );
                // The same payment seen again while it pours, after, or on its fault screen.
                let repeat = id == "i1"
                    && matches!(
                        s,
                        State::Pouring { .. } | State::ThankYou { .. } | State::Fault { .. }
                    );
                assert!(
                    poured || recorded || repeat,
                    "payment {id} lost in state {}",
                    s.name()
                );
            }
        }
    }

    #[test]
    fn a_tap_on_idle_asks_for_an_invoice_and_no_qr_yet() {
        let now = t0();
        let (s, e) = step(
            State::Idle,
            Event::ProductTapped {
                product: product(),
                sale_id: SaleId("s1".into()),
                give_up_at: now + GIVE_UP,
            },
            now,
        );
        assert_eq!(s, creating(now));
        assert_eq!(e, vec![Effect::CreateInvoice { sale: sale("s1") }]);
    }

    #[test]
    fn the_invoice_arrives_and_is_watched() {
        let now = t0();
        let exp = now + Duration::from_secs(600);
        let (s, e) = step(
            creating(now),
            Event::InvoiceCreated {
                sale_id: SaleId("s1".into()),
                invoice: invoice("i1"),
                expires_at: exp,
            },
            now,
        );
        assert_eq!(s, awaiting(now));
        assert_eq!(
            e,
            vec![Effect::WatchInvoice {
                sale_id: SaleId("s1".into()),
                invoice: invoice("i1")
            }]
        );
    }

    #[test]
    fn payment_pours_for_the_products_time_then_thanks_then_idle() {
        let now = t0();
        let (s, e) = step(
            awaiting(now),
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("i1".into()),
            },
            now,
        );
        assert_eq!(s, pouring(now));
        assert_eq!(
            e,
            vec![Effect::BeginPour {
                sale: sale("s1"),
                invoice_id: InvoiceId("i1".into()),
                credit: false,
            }]
        );
        let later = now + Duration::from_millis(4000);
        let (s, e) = step(
            s,
            Event::PourFinished {
                sale_id: SaleId("s1".into()),
            },
            later,
        );
        assert_eq!(s.name(), "ThankYou");
        assert_eq!(
            e,
            vec![Effect::RecordPoured {
                sale_id: SaleId("s1".into())
            }]
        );
        let (s, _) = step(s, Event::Tick, later + Duration::from_secs(1));
        assert_eq!(s.name(), "ThankYou", "thank-you stays a moment");
        let (s, _) = step(s, Event::Tick, later + THANK_YOU);
        assert_eq!(s, State::Idle);
    }

    #[test]
    fn the_same_payment_reported_twice_pours_once() {
        let now = t0();
        let confirm = Event::PaymentConfirmed {
            invoice_id: InvoiceId("i1".into()),
        };
        let (s, e1) = step(awaiting(now), confirm.clone(), now);
        let (s, e2) = step(s, confirm.clone(), now);
        let (s, _) = step(
            s,
            Event::PourFinished {
                sale_id: SaleId("s1".into()),
            },
            now,
        );
        let (_, e3) = step(s, confirm, now);
        assert_eq!(pours(&e1) + pours(&e2) + pours(&e3), 1);
        assert!(
            e2.is_empty() && e3.is_empty(),
            "a repeat is not even a late payment"
        );
    }

    #[test]
    fn a_payment_for_another_invoice_is_ignored_on_screen_and_left_to_the_ledger() {
        let now = t0();
        let (s, e) = step(
            awaiting(now),
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("other".into()),
            },
            now,
        );
        assert_eq!(s, awaiting(now), "the QR stays");
        assert_eq!(
            e,
            vec![Effect::RecordLatePayment {
                invoice_id: InvoiceId("other".into())
            }]
        );
    }

    #[test]
    fn payment_after_cancel_is_owed_not_poured() {
        let now = t0();
        let (s, e) = step(awaiting(now), Event::CancelTapped, now);
        assert_eq!(s, State::Idle);
        assert_eq!(
            e,
            vec![Effect::AbandonInvoice {
                sale_id: SaleId("s1".into()),
                invoice_id: InvoiceId("i1".into()),
                why: Abandoned::Cancelled
            }]
        );
        let (s, e) = step(
            s,
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("i1".into()),
            },
            now,
        );
        assert_eq!(s, State::Idle, "no pour on the idle screen");
        assert_eq!(
            e,
            vec![Effect::RecordLatePayment {
                invoice_id: InvoiceId("i1".into())
            }]
        );
    }

    #[test]
    fn payment_after_expiry_is_owed_not_poured_even_on_the_next_customers_screen() {
        let now = t0();
        let (s, e) = step(awaiting(now), Event::Tick, now + Duration::from_secs(599));
        assert_eq!(s.name(), "AwaitingPayment");
        assert!(e.is_empty());
        let (s, e) = step(s, Event::Tick, now + Duration::from_secs(600));
        assert_eq!(s, State::Idle);
        assert!(matches!(
            &e[..],
            [Effect::AbandonInvoice {
                why: Abandoned::Expired,
                ..
            }]
        ));
        // The next customer is paying their own invoice when the old one is paid.
        let next = State::AwaitingPayment {
            sale: sale("s2"),
            invoice: invoice("i2"),
            expires_at: now + Duration::from_secs(1200),
        };
        let (s, e) = step(
            next.clone(),
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("i1".into()),
            },
            now + Duration::from_secs(610),
        );
        assert_eq!(s, next);
        assert_eq!(
            e,
            vec![Effect::RecordLatePayment {
                invoice_id: InvoiceId("i1".into())
            }]
        );
    }

    #[test]
    fn backend_expiry_returns_to_idle_only_for_the_invoice_on_screen() {
        let now = t0();
        let (s, _) = step(
            awaiting(now),
            Event::InvoiceExpired {
                invoice_id: InvoiceId("old".into()),
            },
            now,
        );
        assert_eq!(s, awaiting(now));
        let (s, e) = step(
            s,
            Event::InvoiceExpired {
                invoice_id: InvoiceId("i1".into()),
            },
            now,
        );
        assert_eq!(s, State::Idle);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn backend_unreachable_means_out_of_service_and_no_qr() {
        let now = t0();
        let (s, e) = step(
            creating(now),
            Event::InvoiceFailed {
                sale_id: SaleId("s1".into()),
                reason: "unreachable".into(),
            },
            now,
        );
        assert_eq!(
            s,
            State::OutOfService {
                reason: OutOfService::Backend("unreachable".into())
            }
        );
        assert!(e.is_empty());
        let (s, e) = step(
            s,
            Event::ProductTapped {
                product: product(),
                sale_id: SaleId("s2".into()),
                give_up_at: now + GIVE_UP,
            },
            now,
        );
        assert_eq!(
            s.name(),
            "OutOfService",
            "taps do nothing while out of service"
        );
        assert!(e.is_empty());
        let (s, _) = step(State::Idle, Event::BackendDown { reason: "x".into() }, now);
        assert_eq!(s.name(), "OutOfService");
        let (s, _) = step(s, Event::BackendUp, now);
        assert_eq!(s, State::Idle);
    }

    #[test]
    fn a_qr_on_screen_stays_while_the_backend_blips() {
        let now = t0();
        let (s, _) = step(
            awaiting(now),
            Event::BackendDown { reason: "x".into() },
            now,
        );
        assert_eq!(s, awaiting(now));
    }

    #[test]
    fn an_invoice_arriving_after_cancel_is_recorded_and_watched_never_shown() {
        let now = t0();
        let (s, e) = step(creating(now), Event::CancelTapped, now);
        assert_eq!(s, State::Idle);
        assert!(e.is_empty());
        let (s, e) = step(
            s,
            Event::InvoiceCreated {
                sale_id: SaleId("s1".into()),
                invoice: invoice("i1"),
                expires_at: now,
            },
            now,
        );
        assert_eq!(s, State::Idle);
        assert!(matches!(
            &e[..],
            [Effect::WatchInvoice { .. }, Effect::AbandonInvoice { .. }]
        ));
    }

    #[test]
    fn a_pump_failure_owes_the_customer_and_shows_the_code_then_waits_for_the_operator() {
        let now = t0();
        let (s, e) = step(
            pouring(now),
            Event::PourFailed {
                sale_id: SaleId("s1".into()),
                failure: PourFailure::Pump("jam".into()),
            },
            now,
        );
        assert_eq!(s, fault(now, PourFailure::Pump("jam".into())));
        assert_eq!(
            e,
            vec![
                Effect::StopPump,
                Effect::RecordOwed {
                    sale_id: SaleId("s1".into()),
                    failure: PourFailure::Pump("jam".into())
                }
            ]
        );
        let (s, _) = step(s, Event::FaultDismissed, now);
        assert_eq!(
            s,
            State::OutOfService {
                reason: OutOfService::Pump("jam".into())
            }
        );
        let (s, _) = step(s, Event::BackendUp, now);
        assert_eq!(
            s.name(),
            "OutOfService",
            "backend health does not clear a pump fault"
        );
        let (s, _) = step(s, Event::ServiceRestored, now);
        assert_eq!(s, State::Idle);
    }

    #[test]
    fn a_pour_that_never_reports_is_stopped_and_owed() {
        let now = t0();
        let (s, e) = step(
            pouring(now),
            Event::Tick,
            now + Duration::from_millis(4000) + POUR_GRACE,
        );
        assert_eq!(s.name(), "Fault");
        assert!(e.contains(&Effect::StopPump));
        assert!(e.iter().any(|e| matches!(e, Effect::RecordOwed { .. })));
        let (s, e) = step(pouring(now), Event::Tick, now + Duration::from_millis(4100));
        assert_eq!(s, pouring(now));
        assert!(e.is_empty());
    }

    #[test]
    fn an_already_poured_refusal_owes_nothing_and_returns_to_idle() {
        let now = t0();
        let (s, e) = step(
            pouring(now),
            Event::PourFailed {
                sale_id: SaleId("s1".into()),
                failure: PourFailure::AlreadyPoured,
            },
            now,
        );
        assert!(e.is_empty());
        let (s, _) = step(s, Event::Tick, now + FAULT_SCREEN);
        assert_eq!(s, State::Idle);
    }

    #[test]
    fn reports_about_other_sales_change_nothing() {
        let now = t0();
        for s in all_states(now) {
            for e in [
                Event::PourFinished {
                    sale_id: SaleId("zz".into()),
                },
                Event::PourFailed {
                    sale_id: SaleId("zz".into()),
                    failure: PourFailure::Pump("x".into()),
                },
                Event::InvoiceFailed {
                    sale_id: SaleId("zz".into()),
                    reason: "x".into(),
                },
            ] {
                let (next, effects) = step(s.clone(), e.clone(), now);
                assert_eq!(next, s, "{e:?}");
                assert!(effects.is_empty());
            }
        }
    }

    #[test]
    fn the_ledger_going_down_stops_new_sales_but_not_a_pour_in_progress() {
        let now = t0();
        let down = Event::LedgerDown {
            reason: "disk full".into(),
        };
        let (s, _) = step(State::Idle, down.clone(), now);
        assert_eq!(
            s,
            State::OutOfService {
                reason: OutOfService::Ledger("disk full".into())
            }
        );
        let (s, _) = step(s, Event::BackendUp, now);
        assert_eq!(s.name(), "OutOfService");
        let (s, _) = step(pouring(now), down, now);
        assert_eq!(s, pouring(now));
    }

    #[test]
    fn cancel_works_only_where_there_is_something_to_cancel() {
        let now = t0();
        for s in all_states(now) {
            let (next, _) = step(s.clone(), Event::CancelTapped, now);
            match s {
                State::CreatingInvoice { .. } | State::AwaitingPayment { .. } => {
                    assert_eq!(next, State::Idle)
                }
                State::Idle
                | State::Pouring { .. }
                | State::ThankYou { .. }
                | State::OutOfService { .. }
                | State::Service
                | State::Fault { .. } => assert_eq!(next, s),
            }
        }
    }

    #[test]
    fn deadlines_drive_the_ticks() {
        let now = t0();
        assert_eq!(State::Idle.deadline(), None);
        assert_eq!(
            awaiting(now).deadline(),
            Some(now + Duration::from_secs(600))
        );
        assert_eq!(
            pouring(now).deadline(),
            Some(now + Duration::from_millis(4000) + POUR_GRACE)
        );
        assert_eq!(thank_you(now).deadline(), Some(now + THANK_YOU));
    }

    #[test]
    fn a_tapped_credit_pours_as_a_credit_and_only_when_nobody_else_is_served() {
        let now = t0();
        let tap = Event::CreditTapped {
            sale: sale("s9"),
            invoice_id: InvoiceId("i9".into()),
        };
        let (s, e) = step(State::Idle, tap.clone(), now);
        assert_eq!(s.name(), "Pouring");
        assert_eq!(
            e,
            vec![Effect::BeginPour {
                sale: sale("s9"),
                invoice_id: InvoiceId("i9".into()),
                credit: true
            }]
        );
        for busy in [awaiting(now), pouring(now), State::Service, oos_backend()] {
            let (s, e) = step(busy.clone(), tap.clone(), now);
            assert_eq!(s, busy);
            assert!(e.is_empty());
        }
    }

    #[test]
    fn the_operator_menu_opens_only_on_an_idle_or_stopped_machine_and_blocks_sales() {
        let now = t0();
        let (s, _) = step(State::Idle, Event::ServiceEntered, now);
        assert_eq!(s, State::Service);
        let (s2, e) = step(
            s.clone(),
            Event::ProductTapped {
                product: product(),
                sale_id: SaleId("s2".into()),
                give_up_at: now + GIVE_UP,
            },
            now,
        );
        assert_eq!(s2, State::Service, "no sale while the operator works");
        assert!(e.is_empty());
        let (s3, e) = step(
            s.clone(),
            Event::PaymentConfirmed {
                invoice_id: InvoiceId("late".into()),
            },
            now,
        );
        assert_eq!(s3, State::Service);
        assert_eq!(e.len(), 1, "a late payment is still recorded");
        let (s4, _) = step(s, Event::ServiceLeft, now);
        assert_eq!(s4, State::Idle);
        let (s5, _) = step(awaiting(now), Event::ServiceEntered, now);
        assert_eq!(s5, awaiting(now), "never in front of a paying customer");
        let stopped = State::OutOfService {
            reason: OutOfService::Pump("jam".into()),
        };
        let (s6, _) = step(stopped, Event::ServiceEntered, now);
        let (s7, _) = step(s6, Event::ServiceLeft, now);
        assert_eq!(
            s7,
            State::Idle,
            "the operator clears a pump fault by visiting the menu"
        );
    }

    #[test]
    fn a_backend_that_never_makes_the_invoice_is_given_up_with_a_plain_message() {
        let now = t0();
        let (s, _) = step(
            creating(now),
            Event::Tick,
            now + GIVE_UP - Duration::from_millis(1),
        );
        assert_eq!(s, creating(now), "still waiting just before the deadline");
        assert_eq!(creating(now).deadline(), Some(now + GIVE_UP));
        let (s, e) = step(s, Event::Tick, now + GIVE_UP);
        assert!(e.is_empty());
        let State::OutOfService { reason } = &s else {
            panic!("{s:?}")
        };
        assert!(matches!(reason, OutOfService::Backend(_)));
        assert!(reason.customer_text().contains("try again"));
        // The invoice that arrives after all is recorded and watched, never shown.
        let (s, e) = step(
            s,
            Event::InvoiceCreated {
                sale_id: SaleId("s1".into()),
                invoice: invoice("i1"),
                expires_at: now + Duration::from_secs(600),
            },
            now + GIVE_UP,
        );
        assert_eq!(s.name(), "OutOfService");
        assert!(e.iter().any(|e| matches!(e, Effect::WatchInvoice { .. })));
        assert!(e.iter().any(|e| matches!(e, Effect::AbandonInvoice { .. })));
    }

    #[test]
    fn nothing_is_sold_while_the_clock_is_wrong_and_sales_resume_when_it_is_right() {
        let now = t0();
        let wrong = || Event::ClockWrong {
            reason: "not synchronised".into(),
        };
        let (s, _) = step(State::Idle, wrong(), now);
        assert_eq!(
            s,
            State::OutOfService {
                reason: OutOfService::Clock("not synchronised".into())
            }
        );
        let (s2, e) = step(
            s.clone(),
            Event::ProductTapped {
                product: product(),
                sale_id: SaleId("s2".into()),
                give_up_at: now + GIVE_UP,
            },
            now,
        );
        assert_eq!(s2, s, "a tap sells nothing");
        assert!(e.is_empty());
        // The backend's health does not hide the clock.
        let (s3, _) = step(s.clone(), Event::BackendUp, now);
        assert_eq!(s3, s);
        let (s4, _) = step(s, Event::ClockRight, now);
        assert_eq!(s4, State::Idle);
        // A backend outage is second to the clock, and a pump fault first.
        let (s5, _) = step(oos_backend(), wrong(), now);
        assert_eq!(s5.name(), "OutOfService");
        assert!(matches!(
            s5,
            State::OutOfService {
                reason: OutOfService::Clock(_)
            }
        ));
        let pump = State::OutOfService {
            reason: OutOfService::Pump("jam".into()),
        };
        assert_eq!(step(pump.clone(), wrong(), now).0, pump);
        assert_eq!(step(pump.clone(), Event::ClockRight, now).0, pump);
        // A customer already paying keeps their QR.
        assert_eq!(step(awaiting(now), wrong(), now).0, awaiting(now));
        assert_eq!(step(pouring(now), wrong(), now).0, pouring(now));
    }
}
