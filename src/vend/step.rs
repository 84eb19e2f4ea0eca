//! The pure step of the vend cycle: one `match` over (state, event), exhaustive, with no
//! `_ =>` arm, so adding a state or an event is a compile error until every pair is decided.

use tokio::time::Instant;

use crate::backend::InvoiceId;

use super::outcomes::{abandon, after_fault, held_pour_failed, poured};
use super::{
    Abandoned, Effect, Event, OutOfService, PourFailure, Sale, SaleId, State, FAULT_SCREEN,
    POUR_GRACE,
};

/// The invoice whose payment a pouring, thank-you or fault screen is about.
fn paid_invoice(s: &State) -> Option<&InvoiceId> {
    match s {
        State::Pouring { invoice_id, .. }
        | State::ThankYou { invoice_id, .. }
        | State::Fault { invoice_id, .. } => Some(invoice_id),
        State::Idle
        | State::CreatingInvoice { .. }
        | State::AwaitingPayment { .. }
        | State::OutOfService { .. }
        | State::Service => None,
    }
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
        // --- a customer taps a product: never one that is sold out
        (s @ (S::Idle | S::ThankYou { .. }), Ev::ProductTapped { product, .. })
            if product.sold_out =>
        {
            (s, vec![])
        }
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
        (
            S::AwaitingPayment {
                sale,
                invoice,
                held,
                ..
            },
            Ev::CancelTapped,
        ) => (
            S::Idle,
            abandon(sale.id, invoice.id, Abandoned::Cancelled, held),
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
                held,
            },
        ) if is_current(&sale, &sale_id) => (
            S::AwaitingPayment {
                sale: sale.clone(),
                invoice: invoice.clone(),
                expires_at,
                held,
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
                sale_id,
                invoice,
                held,
                ..
            },
        ) => {
            let mut effects = vec![E::WatchInvoice {
                sale_id: sale_id.clone(),
                invoice: invoice.clone(),
            }];
            // A hold invoice never shown is cancelled at once: it can never be paid.
            effects.extend(abandon(sale_id, invoice.id, Abandoned::Cancelled, held));
            (s, effects)
        }
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
        // (For a hold invoice, "confirmed" is the backend's ACCEPTED: the payment is locked
        // in, and the pour is recorded with it before the pump starts, as for any payment.)
        (
            S::AwaitingPayment {
                sale,
                invoice,
                held,
                ..
            },
            Ev::PaymentConfirmed { invoice_id },
        ) if invoice.id == invoice_id => {
            let ends = now + sale.product.pour;
            (
                S::Pouring {
                    sale: sale.clone(),
                    invoice_id: invoice_id.clone(),
                    started: now,
                    ends,
                    held,
                },
                vec![E::BeginPour {
                    sale,
                    invoice_id,
                    credit: false,
                }],
            )
        }
        // The same payment reported again while (or after) it pours: nothing to do.
        (
            s @ (S::Pouring { .. } | S::ThankYou { .. } | S::Fault { .. }),
            Ev::PaymentConfirmed { invoice_id },
        ) if paid_invoice(&s) == Some(&invoice_id) => (s, vec![]),
        // A payment for an invoice that is not on screen: the ledger decides (an owed credit
        // if it is one of ours not yet poured).
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Service
            | S::Fault { .. }),
            Ev::PaymentConfirmed { invoice_id },
        ) => (s, vec![E::RecordLatePayment { invoice_id }]),

        // --- expiry
        (
            S::AwaitingPayment {
                sale,
                invoice,
                held,
                ..
            },
            Ev::InvoiceExpired { invoice_id },
        ) if invoice.id == invoice_id => (
            S::Idle,
            abandon(sale.id, invoice_id, Abandoned::Expired, held),
        ),
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
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
                held,
            },
            Ev::Tick,
        ) if now >= expires_at => (
            S::Idle,
            abandon(sale.id, invoice.id, Abandoned::Expired, held),
        ),
        (
            S::Pouring {
                sale,
                invoice_id,
                ends,
                held,
                ..
            },
            Ev::Tick,
        ) if now >= ends + POUR_GRACE => {
            // The pour never reported back: stop the pump and owe the customer. The pump
            // may have run, so a held payment is settled (after the owed credit is
            // recorded): interrupted is "settle and owe".
            let failure = PourFailure::Pump("the pour did not report completion".into());
            let mut effects = vec![
                E::StopPump,
                E::RecordOwed {
                    sale_id: sale.id.clone(),
                    failure: failure.clone(),
                },
            ];
            if held {
                effects.push(E::SettleHold {
                    sale_id: sale.id.clone(),
                });
            }
            (
                S::Fault {
                    sale,
                    invoice_id,
                    failure,
                    until: now + FAULT_SCREEN,
                    returned: false,
                },
                effects,
            )
        }
        (S::ThankYou { until, .. }, Ev::Tick) if now >= until => (S::Idle, vec![]),
        (S::Fault { failure, until, .. }, Ev::Tick) if now >= until => {
            (after_fault(failure), vec![])
        }
        (S::CreatingInvoice { give_up_at, .. }, Ev::Tick) if now >= give_up_at => {
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
        }
        // Not yet time for any of the above.
        (
            s @ (S::Idle
            | S::CreatingInvoice { .. }
            | S::AwaitingPayment { .. }
            | S::Pouring { .. }
            | S::ThankYou { .. }
            | S::OutOfService { .. }
            | S::Service
            | S::Fault { .. }),
            Ev::Tick,
        ) => (s, vec![]),

        // --- the pump reports
        (
            S::Pouring {
                sale,
                invoice_id,
                held,
                ..
            },
            Ev::PourFinished { sale_id, trouble },
        ) if is_current(&sale, &sale_id) => poured(sale, invoice_id, trouble, held, now),
        (
            S::Pouring {
                sale,
                invoice_id,
                held: true,
                ..
            },
            Ev::PourFailed {
                sale_id,
                failure,
                delivered_ml,
            },
        ) if is_current(&sale, &sale_id) => {
            held_pour_failed(sale, invoice_id, failure, delivered_ml, now)
        }
        (
            S::Pouring {
                sale,
                invoice_id,
                held: false,
                ..
            },
            Ev::PourFailed {
                sale_id, failure, ..
            },
        ) if is_current(&sale, &sale_id) => {
            let effects = match failure {
                // Nothing was poured twice; there is nothing owed for this one.
                PourFailure::AlreadyPoured => vec![],
                PourFailure::Pump(_) | PourFailure::Ledger(_) | PourFailure::Short { .. } => {
                    vec![
                        E::StopPump,
                        E::RecordOwed {
                            sale_id,
                            failure: failure.clone(),
                        },
                    ]
                }
                PourFailure::NoFlow(_) => vec![
                    E::StopPump,
                    E::RecordOwed {
                        sale_id,
                        failure: failure.clone(),
                    },
                    E::SoldOut {
                        index: sale.product.index,
                    },
                ],
            };
            (
                S::Fault {
                    sale,
                    invoice_id,
                    failure,
                    until: now + FAULT_SCREEN,
                    returned: false,
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

        // --- an owed credit is poured when its customer taps it (not from an empty tank)
        (s @ (S::Idle | S::ThankYou { .. }), Ev::CreditTapped { sale, .. })
            if sale.product.sold_out =>
        {
            (s, vec![])
        }
        // A credit's money was taken long ago: nothing is held.
        (S::Idle | S::ThankYou { .. }, Ev::CreditTapped { sale, invoice_id }) => {
            let ends = now + sale.product.pour;
            (
                S::Pouring {
                    sale: sale.clone(),
                    invoice_id: invoice_id.clone(),
                    started: now,
                    ends,
                    held: false,
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
