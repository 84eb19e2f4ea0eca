//! How a sale's end turns into effects, for [`super::step`]: a drink in the cup, a failed
//! pour with a held payment (the hold policy), an invoice the customer left, and where the
//! machine goes after a fault. Pure functions, kept out of `step.rs` so that file stays the
//! one exhaustive match.

use tokio::time::Instant;

use crate::backend::InvoiceId;

use super::{
    Abandoned, Effect, OutOfService, PourFailure, Sale, SaleId, State, FAULT_SCREEN, THANK_YOU,
};

/// A drink in the cup: thanks, and the sale is poured, whatever ended its pour. A tank
/// found dry still sells its product out; a pump fault still puts the machine out of
/// service at once (the pump is not trusted with the next sale).
///
/// A held payment is settled after the pour is recorded, whatever the trouble: the drink
/// is in the cup (a short one also owes its undelivered share, by its own `PouredMl` record).
pub(super) fn poured(
    sale: Sale,
    invoice_id: InvoiceId,
    trouble: Option<PourFailure>,
    held: bool,
    now: Instant,
) -> (State, Vec<Effect>) {
    let index = sale.product.index;
    let mut effects = vec![Effect::RecordPoured {
        sale_id: sale.id.clone(),
    }];
    if held {
        effects.push(Effect::SettleHold {
            sale_id: sale.id.clone(),
        });
    }
    let thanks = State::ThankYou {
        sale,
        invoice_id,
        until: now + THANK_YOU,
    };
    match trouble {
        None | Some(PourFailure::AlreadyPoured | PourFailure::Short { .. }) => (thanks, effects),
        Some(PourFailure::NoFlow(_)) => {
            effects.extend([Effect::StopPump, Effect::SoldOut { index }]);
            (thanks, effects)
        }
        Some(failure @ (PourFailure::Pump(_) | PourFailure::Ledger(_))) => {
            effects.push(Effect::StopPump);
            (after_fault(failure), effects)
        }
    }
}

/// The hold policy for a pour that failed (see docs/operator/cln.md, "Hold invoices"),
/// customer first: when nothing measurable reached the cup (`delivered_ml` 0: the ledger
/// refused before the pump, a pump fault or no flow from the start, or a timed pour, which
/// is not measured and which today's flow would owe in full), the held payment is cancelled:
/// the money goes back by itself and nothing is owed. When some of the drink is in the cup
/// (a short pour, or a pump fault or dry tank after measured flow), the payment is settled
/// and the undelivered rest owed, as today, by its own `PouredMl` record: the customer never
/// keeps part of a drink and the whole payment. A second report of a pour already made
/// (`AlreadyPoured`) neither settles nor cancels: that payment's first pour decides.
pub(super) fn held_pour_failed(
    sale: Sale,
    invoice_id: InvoiceId,
    failure: PourFailure,
    delivered_ml: u32,
    now: Instant,
) -> (State, Vec<Effect>) {
    let sale_id = sale.id.clone();
    let index = sale.product.index;
    let settle_and_owe = |sale_id: SaleId, failure: &PourFailure| {
        vec![
            Effect::StopPump,
            Effect::RecordOwed {
                sale_id: sale_id.clone(),
                failure: failure.clone(),
            },
            Effect::SettleHold { sale_id },
        ]
    };
    let (effects, returned) = match &failure {
        PourFailure::AlreadyPoured => (vec![], false),
        PourFailure::Ledger(_) => (vec![Effect::StopPump, Effect::CancelHold { sale_id }], true),
        PourFailure::Pump(_) if delivered_ml == 0 => {
            (vec![Effect::StopPump, Effect::CancelHold { sale_id }], true)
        }
        PourFailure::Pump(_) => (settle_and_owe(sale_id, &failure), false),
        PourFailure::NoFlow(_) if delivered_ml == 0 => (
            vec![
                Effect::StopPump,
                Effect::CancelHold { sale_id },
                Effect::SoldOut { index },
            ],
            true,
        ),
        PourFailure::NoFlow(_) => {
            let mut effects = settle_and_owe(sale_id, &failure);
            effects.push(Effect::SoldOut { index });
            (effects, false)
        }
        PourFailure::Short { .. } => (settle_and_owe(sale_id, &failure), false),
    };
    (
        State::Fault {
            sale,
            invoice_id,
            failure,
            until: now + FAULT_SCREEN,
            returned,
        },
        effects,
    )
}

/// The customer left an invoice (Cancel, or it ran out): recorded, and a hold invoice is
/// cancelled so that no payment can be held (or stay held) for a drink nobody waits for.
pub(super) fn abandon(
    sale_id: SaleId,
    invoice_id: InvoiceId,
    why: Abandoned,
    held: bool,
) -> Vec<Effect> {
    let mut effects = vec![Effect::AbandonInvoice {
        sale_id: sale_id.clone(),
        invoice_id,
        why,
    }];
    if held {
        effects.push(Effect::CancelHold { sale_id });
    }
    effects
}

pub(super) fn after_fault(failure: PourFailure) -> State {
    match failure {
        PourFailure::Pump(reason) => State::OutOfService {
            reason: OutOfService::Pump(reason),
        },
        PourFailure::Ledger(reason) => State::OutOfService {
            reason: OutOfService::Ledger(reason),
        },
        // The pump works: the other products sell on (this one is sold out or owed).
        PourFailure::AlreadyPoured | PourFailure::NoFlow(_) | PourFailure::Short { .. } => {
            State::Idle
        }
    }
}
