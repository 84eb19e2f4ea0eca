//! Payments that arrive where nobody is watching: after the customer cancelled and the
//! watch ended, after the invoice expired (BTCPay's `PaidLate`, a wallet that paid at the
//! last second), while lnvend was down, or for an invoice whose live watch was dropped to
//! keep the watched set bounded.
//!
//! The controller asks for these in three ways, all through [`check_invoices`]: once at
//! start for every unsettled invoice of the last week; from the backend's own cursor of
//! payments made while it was away (Core Lightning); and by a periodic sweep
//! ([`SWEEP_EVERY`]) over the unsettled invoices of the last [`LATE_WINDOW`] that no watch
//! covers, at most [`SWEEP_BATCH`] per sweep, least recently checked first, one request at
//! a time. A payment found this way is reported to the controller, which checks it against
//! the amount in its own ledger before it becomes an owed credit; it is never poured on an
//! idle screen. That check, `Controller::paid_out_of_band`, lives here too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Input;
use crate::backend::{InvoiceId, InvoiceState, PaymentBackend};
use crate::money::Msat;
use crate::vend::Event;

/// How often unwatched unsettled invoices are looked at again.
pub const SWEEP_EVERY: Duration = Duration::from_secs(120);
/// How far back the sweep looks: BTCPay keeps monitoring an expired invoice for a day by
/// default, so a late payment can arrive that long after.
pub const LATE_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The most invoices one sweep asks about (a bound on the load a prankster's abandoned
/// invoices can put on the backend: at most this many requests per [`SWEEP_EVERY`]).
pub const SWEEP_BATCH: usize = 20;
/// The pause between two requests of one check: at most 120 requests a minute, under
/// LNbits' default rate limit of 200 a minute per address with room for the sale's own
/// requests and the health check (a 429 would put the machine out of service). A
/// start-up check of a prankster's week (about 60,000 invoices) then takes hours, newest
/// first, in the background; selling goes on.
pub const PACE: Duration = Duration::from_millis(500);

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct Attempts {
    /// Passes over the invoices that could not be checked.
    pub passes: u32,
    /// Pause before the second pass; doubles after each.
    pub backoff: Duration,
}

impl Attempts {
    /// One look (the periodic sweep: the next sweep is the retry).
    pub const ONCE: Attempts = Attempts {
        passes: 1,
        backoff: Duration::ZERO,
    };
    /// At start: a backend that is still coming up gets a few more chances.
    pub const AT_START: Attempts = Attempts {
        passes: 5,
        backoff: Duration::from_secs(5),
    };
}

/// Asks the backend about each invoice, one at a time, and reports every one it says is
/// paid as [`Input::PaidOutOfBand`] (the controller compares the amount with its ledger).
pub async fn check_invoices(
    backend: Arc<dyn PaymentBackend>,
    mut ids: Vec<InvoiceId>,
    timeout: Duration,
    attempts: Attempts,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut backoff = attempts.backoff;
    for pass in 0..attempts.passes.max(1) {
        if pass > 0 {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        let mut failed = Vec::new();
        for id in ids {
            match tokio::time::timeout(timeout, backend.invoice_state(&id)).await {
                Ok(Ok(InvoiceState::Paid { received })) => {
                    let paid = Input::PaidOutOfBand {
                        invoice_id: id,
                        received,
                    };
                    if tx.send(paid).is_err() {
                        return;
                    }
                }
                Ok(Ok(InvoiceState::Pending | InvoiceState::Expired | InvoiceState::Invalid)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(invoice = %id, error = %e, "could not check an unsettled invoice");
                    failed.push(id);
                }
                Err(_) => {
                    tracing::debug!(invoice = %id, "checking an unsettled invoice timed out");
                    failed.push(id);
                }
            }
            tokio::time::sleep(PACE).await;
        }
        if failed.is_empty() {
            return;
        }
        ids = failed;
    }
    if attempts.passes > 1 {
        tracing::error!(
            count = ids.len(),
            "could not check some unsettled invoices; the periodic sweep tries again"
        );
    }
}

/// Asks the backend for the payments it saw while lnvend was not running (its own cursor),
/// then checks each like any other.
pub async fn catch_up(
    backend: Arc<dyn PaymentBackend>,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Input>,
) {
    match backend.paid_while_away().await {
        Ok(ids) if ids.is_empty() => {}
        Ok(ids) => check_invoices(backend, ids, timeout, Attempts::AT_START, tx).await,
        Err(e) => {
            tracing::error!(error = %e, "could not ask the backend for payments made while lnvend was down")
        }
    }
}

impl super::Controller {
    /// A payment a background check found: believed only for one of our invoices and for at
    /// least its amount, then handled like any confirmation (a late one becomes owed).
    pub(super) fn paid_out_of_band(
        &mut self,
        invoice_id: InvoiceId,
        received: Msat,
    ) -> Option<Event> {
        let recorded = match &self.ledger {
            Ok(l) => l.invoice_by_id(&invoice_id),
            Err(_) => return None,
        };
        match recorded {
            Ok(Some(open)) if received >= open.invoice.amount => {
                Some(Event::PaymentConfirmed { invoice_id })
            }
            Ok(Some(open)) => {
                tracing::error!(invoice = %invoice_id, %received, expected = %open.invoice.amount, "an invoice was paid with less than its price; not owed automatically, refund by hand");
                None
            }
            Ok(None) => {
                tracing::info!(invoice = %invoice_id, "a paid invoice that is not one of ours; ignored");
                None
            }
            Err(e) => {
                tracing::error!(invoice = %invoice_id, error = %e, "could not look up a paid invoice");
                None
            }
        }
    }
}
