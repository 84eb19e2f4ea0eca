//! Owed credits for the controller: the one a customer taps on the idle screen, and
//! refunds (from the operator's Credits tab or the fault screen) of what each is worth,
//! the whole price or a partly poured drink's undelivered share (`ledger::Owed::value`).
//! One refund at a time per sale, and only of a sale the ledger holds as owed.

use super::*;
use crate::backend::RefundAmount;

impl Controller {
    /// The sale behind a credit tile, if it is still owed, inside its window and its
    /// product can pour (a sold-out credit is shown, never poured).
    pub(super) fn credit_sale(&mut self, sale_id: &str) -> Option<(Sale, InvoiceId)> {
        let tile = self
            .idle_credits()
            .into_iter()
            .find(|c| c.sale_id == sale_id && !c.sold_out)?;
        let product = self.with_stock(self.product_named(&tile.product)?.clone());
        let id = SaleId(tile.sale_id);
        let invoice_id = self.ledger.as_ref().ok()?.invoice_of(&id).ok()??;
        tracing::info!(sale = %id, "customer tapped an owed credit");
        Some((Sale { id, product }, invoice_id))
    }
    /// Starts the refund of owed credit `id`; `Err` says why it was not started.
    pub(super) fn start_refund(&mut self, id: String) -> Result<(), String> {
        let sale = SaleId(id.clone());
        let found = match &self.ledger {
            Ok(l) => l
                .owed_sale(&sale)
                .ok()
                .flatten()
                .zip(l.invoice_of(&sale).ok().flatten()),
            Err(_) => None,
        };
        let Some((owed, invoice)) = found else {
            // Only what the ledger holds as owed is refunded: never a sale poured, settled
            // or refunded already, nor one whose debt the ledger could not record.
            let why = format!("{id} is not an owed credit in the ledger.");
            self.op.message = why.clone();
            return Err(why);
        };
        // A second tap on Refund while the first is under way would make a second refund
        // (a second pull payment) for one sale.
        if self.refunding.contains_key(&sale) {
            let why = format!("The refund of {id} is already under way.");
            self.op.message = why.clone();
            return Err(why);
        }
        if owed.nothing_owed() {
            let why =
                format!("{id}'s pours delivered the whole drink: nothing to refund; settle it.");
            self.op.message = why.clone();
            return Err(why);
        }
        // What the credit is worth: for a partly poured drink only the undelivered share.
        let value = owed.value();
        let amount = if owed.is_partial() {
            RefundAmount::Part(value)
        } else {
            RefundAmount::Whole
        };
        self.refunding.insert(sale, value);
        self.op.message = format!("Refunding {} of {id}…", value.display_sats());
        let (backend, tx) = (self.backend.clone(), self.tx.clone());
        self.tasks.spawn(async move {
            let result = backend
                .refund(&invoice, amount)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(Input::RefundDone {
                sale_id: id,
                result,
            });
        });
        Ok(())
    }
    pub(super) fn refund_from_fault_screen(&mut self) {
        let State::Fault { sale, failure, .. } = &self.state else {
            return;
        };
        let started = self
            .fault_refund
            .as_ref()
            .is_some_and(|(id, _)| *id == sale.id);
        if !self.settings.fault_refund || !fault_refundable(failure) || started {
            return;
        }
        tracing::info!(sale = %sale.id, "customer asked for a refund on the fault screen");
        let id = sale.id.clone();
        let started = self.start_refund(id.0.clone());
        self.fault_refund = Some((id, started.err().map(Err)));
    }
    pub(super) fn refund_done(&mut self, sale_id: String, result: Result<Option<String>, String>) {
        let sale = SaleId(sale_id.clone());
        let Some(amount) = self.refunding.remove(&sale) else {
            return;
        };
        if let Some((id, slot @ None)) = &mut self.fault_refund {
            if *id == sale {
                let shown = match &result {
                    Ok(Some(link)) => Ok(link.clone()),
                    Ok(None) => Err("this backend cannot refund by itself".to_string()),
                    Err(e) => Err(e.clone()),
                };
                if let (Ok(Some(link)), Ok(l)) = (&result, &mut self.ledger) {
                    if let Err(e) = l.record_refunded(&sale, amount, link) {
                        tracing::error!(sale = %sale_id, error = %e, "refund made but not recorded");
                    }
                }
                if let Err(e) = &shown {
                    tracing::error!(sale = %sale_id, error = %e, "refund from the fault screen failed");
                }
                *slot = Some(shown);
                return;
            }
        }
        let sats = amount.display_sats();
        match result {
            Ok(detail) => {
                let record = detail
                    .clone()
                    .unwrap_or_else(|| format!("by hand, receipt {sale_id}"));
                if let Ok(l) = &mut self.ledger {
                    match l.record_refunded(&sale, amount, &record) {
                        Ok(true) => {
                            tracing::info!(sale = %sale_id, %amount, "owed credit refunded")
                        }
                        Ok(false) => {
                            self.op.message = format!("{sale_id} is no longer owed.");
                            return;
                        }
                        Err(e) => {
                            self.op.message = format!("Refund made but NOT recorded: {e}");
                            return;
                        }
                    }
                }
                self.op.refund = Some(match detail {
                    Some(link) => (
                        Some(link),
                        format!("Scan to claim the refund of {sale_id}: {sats}"),
                    ),
                    None => (
                        None,
                        format!("Refund {sats} by hand; receipt code {sale_id}"),
                    ),
                });
                self.op.message.clear();
            }
            Err(e) => {
                tracing::error!(sale = %sale_id, error = %e, "refund failed");
                self.op.message = format!("Refund failed: {e}");
            }
        }
    }
}

/// Whether the fault screen may offer the customer a refund for this failure: every failure
/// of a paid drink. A partly poured one (a short pour, a tank that ran dry mid-pour) is
/// refunded its undelivered share only (see `ledger::Owed::value`).
pub(super) fn fault_refundable(failure: &PourFailure) -> bool {
    match failure {
        PourFailure::Pump(_)
        | PourFailure::Ledger(_)
        | PourFailure::NoFlow(_)
        | PourFailure::Short { .. } => true,
        PourFailure::AlreadyPoured => false,
    }
}
