//! Hold invoices in the controller (issue 25): which sales get one, and carrying out the
//! vend cycle's `SettleHold` / `CancelHold` until the backend answers.
//!
//! - Whether a hold is used: `[backend] hold` ([`HoldMode`]) and what the backend says it can
//!   do, asked once at start (`auto` sells as before until, and unless, it says yes).
//! - The preimage is made here from the OS's random source when the invoice is asked for, and
//!   written to the ledger with the sale before the QR is shown (`record_before_showing`).
//! - A settle or cancel is recorded first (the pour, the owed credit, or the sale as
//!   `returned`), then asked of the backend in a background task that retries, backing off
//!   up to a minute, until the backend answers; the answer is recorded
//!   ([`Ledger::record_hold_outcome`](crate::ledger::Ledger)). A held payment is never left:
//!   the task runs until the backend says settled or cancelled.
//! - A payment for a hold invoice not on screen (a late one) is cancelled, never poured;
//!   one the backend took by itself is a paid sale, owed.
//! - At start, before the first input, every unresolved hold in the ledger is resolved from
//!   its sale's state (see `crate::ledger::HeldSale::resolution`).

use super::*;
use crate::backend::hold::{resolve, HoldSupport, Outcome, Resolution};
use crate::backend::Preimage;
use crate::config::HoldMode;

/// The longest wait between two tries of a settle or cancel.
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The first wait.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// The pause before a held payment whose ledger row could not be read is tried again.
const RETRY_LEDGER: Duration = Duration::from_secs(5);

/// Whether sales get hold invoices now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum HoldUse {
    /// Not asked yet (or `never`): today's flow.
    #[default]
    Off,
    On,
    /// `always`, and the backend said it cannot: no invoice at all, and why.
    Refused(String),
}

impl Controller {
    /// At start: asks the backend whether it can hold (unless `never`), and resolves every
    /// held payment the ledger has not seen resolved.
    pub(super) fn start_holds(&mut self) {
        if self.settings.hold != HoldMode::Never {
            let backend = self.backend.clone();
            let tx = self.tx.clone();
            let timeout = self.settings.request_timeout;
            self.tasks.spawn(async move {
                let mut wait = RETRY_MIN;
                loop {
                    match tokio::time::timeout(timeout * 4, backend.hold_support()).await {
                        Ok(Ok(support)) => {
                            let _ = tx.send(Input::HoldSupport(support));
                            return;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(error = %e, "cannot ask the backend about hold invoices yet")
                        }
                        Err(_) => tracing::info!("no answer about hold invoices yet"),
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            });
        }
        let held = match &self.ledger {
            Ok(l) => l.unresolved_holds(),
            Err(_) => return,
        };
        match held {
            Ok(held) => {
                for h in held {
                    let want = h.resolution();
                    tracing::warn!(sale = %h.sale_id, ?want, state = %h.state, "a held payment from before the start is being resolved");
                    self.spawn_resolve(h.sale_id.clone(), want);
                }
            }
            Err(e) => tracing::error!(error = %e, "could not list held payments"),
        }
    }

    /// The backend's answer to "can you hold?".
    pub(super) fn hold_support(&mut self, support: HoldSupport) {
        self.holds = match (support, self.settings.hold) {
            (_, HoldMode::Never) => HoldUse::Off,
            (HoldSupport::Yes, HoldMode::Auto | HoldMode::Always) => {
                tracing::info!(
                    backend = self.backend.name(),
                    "hold invoices in use: a payment is taken only after its drink is poured"
                );
                HoldUse::On
            }
            (HoldSupport::No(why), HoldMode::Auto) => {
                tracing::info!(%why, "no hold invoices (hold = \"auto\"): payments are taken before the pour");
                HoldUse::Off
            }
            (HoldSupport::No(why), HoldMode::Always) => {
                tracing::error!(%why, "hold = \"always\" and the backend cannot hold: no sales");
                HoldUse::Refused(why)
            }
        };
    }

    /// The preimage for a new sale's invoice, if it is to be a hold invoice; `Err` when
    /// `always` cannot be honoured.
    ///
    /// Only a pump product is ever held: a pour's failure is proof of what was not poured
    /// (the flow sensor, or a pump that never started), but a relay pulse or an MDB vend
    /// cannot be taken back, and its failure is no proof that nothing left the machine
    /// (pulses may have gone out before the fault; a machine may vend and its SUCCESS be
    /// lost). Returning such a payment could give the goods away; a plain invoice makes
    /// the failure an owed credit instead, whatever `hold` says.
    pub(super) fn preimage_for(
        &mut self,
        sale: &SaleId,
        pump: bool,
    ) -> Result<Option<Preimage>, String> {
        if !pump {
            if self.settings.hold != HoldMode::Never {
                tracing::info!(sale = %sale, "a pulse or MDB sale: a plain invoice, never a hold");
            }
            return Ok(None);
        }
        let hold = match (self.settings.hold, &self.holds) {
            (HoldMode::Never, _) | (HoldMode::Auto, HoldUse::Off | HoldUse::Refused(_)) => false,
            (HoldMode::Auto, HoldUse::On) => true,
            (HoldMode::Always, HoldUse::Refused(why)) => {
                return Err(format!(
                    "hold = \"always\" and the backend cannot hold invoices: {why}"
                ))
            }
            // `always` was checked before the start: every sale is held, and a backend that
            // cannot refuses the invoice (no QR) rather than taking the payment first.
            (HoldMode::Always, HoldUse::Off | HoldUse::On) => true,
        };
        if !hold {
            return Ok(None);
        }
        let p = Preimage::random();
        self.preimages.insert(sale.clone(), p.clone());
        Ok(Some(p))
    }

    /// The vend cycle's `SettleHold`: the pour (or the owed credit) is recorded already.
    pub(super) fn settle_hold(&mut self, sale_id: SaleId) {
        tracing::info!(sale = %sale_id, "settling the held payment");
        self.spawn_resolve(sale_id, Resolution::Settle);
    }

    /// The vend cycle's `CancelHold`: the sale is recorded as returned first (if its pour had
    /// begun), so a crash before the backend answers still cancels at the next start.
    pub(super) fn cancel_hold(&mut self, sale_id: SaleId) {
        tracing::info!(sale = %sale_id, "cancelling the held payment: nothing is charged");
        if let Ok(l) = &mut self.ledger {
            if let Err(e) = l.mark_returned(&sale_id, "nothing was poured; the payment is returned")
            {
                tracing::error!(sale = %sale_id, error = %e, "could not record the returned sale; cancelling anyway");
            }
        }
        self.spawn_resolve(sale_id, Resolution::Cancel);
    }

    /// A confirmed payment of an invoice not on screen: if it is a hold, it is resolved by
    /// its sale's state (never poured: cancelled) and true is returned.
    pub(super) fn late_hold(&mut self, invoice_id: &InvoiceId) -> bool {
        let Ok(l) = &self.ledger else {
            return false;
        };
        let sale = match l.is_held_invoice(invoice_id) {
            Ok(Some(sale)) => sale,
            Ok(None) => return false,
            // Handled as a hold, doing nothing now: read as a plain payment it could be
            // owed while its hold is being returned. The watch, the sweep or the next start
            // report it again.
            Err(e) => {
                tracing::error!(invoice = %invoice_id, error = %e, "could not look the late payment up; it is asked again later");
                return true;
            }
        };
        match l.unresolved_hold(&sale) {
            Ok(Some(h)) => {
                let want = h.resolution();
                tracing::warn!(sale = %sale, ?want, "a held payment for an invoice not on screen");
                self.spawn_resolve(sale, want);
            }
            // Resolved already: its settle or cancel was recorded.
            Ok(None) => {}
            Err(e) => tracing::error!(sale = %sale, error = %e, "could not read the hold"),
        }
        true
    }

    /// Settles or cancels in the background until the backend answers.
    pub(super) fn spawn_resolve(&mut self, sale_id: SaleId, want: Resolution) {
        if !self.resolving.insert(sale_id.clone()) {
            return;
        }
        let held = match &self.ledger {
            Ok(l) => l.unresolved_hold(&sale_id),
            Err(reason) => Err(LedgerError::UnknownSale(reason.clone())),
        };
        let h = match held {
            Ok(Some(h)) => h,
            Ok(None) => {
                self.resolving.remove(&sale_id);
                return;
            }
            Err(e) => {
                // Without the ledger's row the hash is unknown: read it again shortly, for as
                // long as it takes (the plugin would otherwise settle the payment by itself
                // near its expiry, for a drink that was not poured).
                tracing::error!(sale = %sale_id, error = %e, "cannot read the held payment to resolve it; trying again");
                self.resolving.remove(&sale_id);
                let tx = self.tx.clone();
                self.tasks.spawn(async move {
                    tokio::time::sleep(RETRY_LEDGER).await;
                    let _ = tx.send(Input::ResolveHold { sale_id, want });
                });
                return;
            }
        };
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        let timeout = self.settings.request_timeout;
        let accepted_us = h.accepted_us;
        self.tasks.spawn(async move {
            let mut wait = RETRY_MIN;
            loop {
                // The plugin may take 20 s to confirm a settle or cancel in its look-up.
                let asked = tokio::time::timeout(
                    timeout * 2 + Duration::from_secs(25),
                    resolve(backend.as_ref(), &h.payment_hash, &h.preimage, want),
                )
                .await;
                match asked {
                    Ok(Ok(outcome @ (Outcome::Settled | Outcome::Canceled))) => {
                        let _ = tx.send(Input::HoldResolved {
                            sale_id: h.sale_id.clone(),
                            outcome,
                            accepted_us,
                        });
                        return;
                    }
                    // Not paid yet while asked to settle: a node replaying its held HTLCs
                    // after a restart says OPEN for a moment. Asked again.
                    Ok(Ok(Outcome::NotPaid)) => {
                        tracing::warn!(sale = %h.sale_id, "the held payment is not (yet) held again; asking again")
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(sale = %h.sale_id, error = %e, ?want, "the held payment is not resolved yet; trying again")
                    }
                    Err(_) => {
                        tracing::warn!(sale = %h.sale_id, ?want, "no answer resolving the held payment; trying again")
                    }
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        });
    }

    /// The backend's final word on a held payment.
    pub(super) fn hold_resolved(
        &mut self,
        sale_id: SaleId,
        outcome: Outcome,
        accepted_us: Option<i64>,
    ) {
        self.resolving.remove(&sale_id);
        let held_for = accepted_us.map(|at| {
            Duration::from_micros(self.settings.clock.unix_us().saturating_sub(at).max(0) as u64)
        });
        self.metrics.hold_resolved(outcome, held_for);
        match outcome {
            Outcome::Settled => tracing::info!(sale = %sale_id, "held payment settled"),
            Outcome::Canceled | Outcome::NotPaid => {
                tracing::info!(sale = %sale_id, "held payment returned to the customer")
            }
        }
        let Ok(l) = &mut self.ledger else {
            tracing::error!(sale = %sale_id, ?outcome, "no ledger to record the held payment's end; the next start asks again");
            return;
        };
        match l.record_hold_outcome(&sale_id, outcome) {
            Ok(Some(owed)) => {
                tracing::warn!(sale = %owed, "the backend took a held payment for a drink not poured: owed credit");
                self.observe_late_payment(&owed);
                let until = Instant::now() + self.settings.credit_window;
                self.offers.offer(owed, until);
                self.owed_changed = true;
            }
            Ok(None) => self.owed_changed = true,
            Err(e) => {
                tracing::error!(sale = %sale_id, error = %e, "could not record the held payment's end; the next start asks again")
            }
        }
        self.observe_after();
    }
}
