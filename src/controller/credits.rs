//! Owed credits for the controller: the one a customer taps on the idle screen, and
//! refunds (from the operator's Credits tab or the fault screen) of what each is worth,
//! the whole price or a partly poured drink's undelivered share (`ledger::Owed::value`).
//! One refund at a time per sale, and only of a sale the ledger holds as owed; its link is
//! shown only once the ledger recorded it (on the fault screen that asked, which waits for
//! the answer, or else to the operator), and a refund the ledger could not record keeps
//! its sale blocked and the machine out of service until it is.

use super::*;
use crate::backend::RefundAmount;

/// How long the fault screen keeps a refund's answer (its claim QR, or why there is none)
/// in front of the customer, even past the screen's own time: long enough to scan it.
pub(super) const REFUND_ANSWER_SHOWN: Duration = Duration::from_secs(60);

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
        // (a second pull payment) for one sale; so would one whose refund was made but
        // not recorded.
        if self.refunding.contains_key(&sale) {
            let why = format!("The refund of {id} is already under way.");
            self.op.message = why.clone();
            return Err(why);
        }
        if self.refund_unrecorded(&sale) {
            let why = format!("{id} was refunded, but the ledger could not record it yet.");
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
        // A returned hold has nothing to refund: the node gives the payment back.
        let State::Fault {
            sale,
            failure,
            returned: false,
            ..
        } = &self.state
        else {
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
    /// Keeps a recorded refund's claim link for the operator (the Credits tab, `lnvend
    /// sales`) until dismissed: the menu may be left before the answer comes. A failure
    /// here loses only this list's copy; the link is in the refund's transition too.
    fn keep_refund_link(&mut self, sale: &SaleId, link: &str) {
        if let Ok(l) = &mut self.ledger {
            if let Err(e) = l.keep_refund_link(sale, link) {
                tracing::error!(sale = %sale, error = %e, "could not keep the refund link for the operator");
            }
        }
    }
    /// The Credits tab's kept refund links, each with what it refunds.
    pub(super) fn refund_link_rows(&self) -> Vec<OpCredit> {
        let Ok(l) = &self.ledger else {
            return Vec::new();
        };
        l.refund_links()
            .unwrap_or_default()
            .into_iter()
            .map(|r| OpCredit {
                text: r.text(),
                sale_id: r.sale_id.0,
            })
            .collect()
    }
    /// The operator's Show (the QR again) or Dismiss of a kept refund link.
    pub(super) fn refund_link_action(&mut self, id: String, dismiss: bool) {
        let sale = SaleId(id);
        let Ok(l) = &mut self.ledger else { return };
        if dismiss {
            match l.dismiss_refund_link(&sale) {
                Ok(_) => self.op.message = format!("Refund link of {sale} dismissed."),
                Err(e) => self.op.message = format!("Could not dismiss {sale}'s link: {e}"),
            }
            return;
        }
        let found = l.refund_links().unwrap_or_default();
        if let Some(r) = found.into_iter().find(|r| r.sale_id == sale) {
            let text = format!("Scan to claim the refund of {}", r.text());
            self.op.refund = Some((Some(r.link), text));
        }
    }
    /// Whether the backend refunded `sale` and the ledger could not record it yet.
    pub(super) fn refund_unrecorded(&self, sale: &SaleId) -> bool {
        self.unrecorded_refunds.iter().any(|(id, ..)| id == sale)
    }
    /// Whether the fault screen on show asked for a refund whose answer has not come yet.
    pub(super) fn fault_refund_pending(&self) -> bool {
        let State::Fault { sale, .. } = &self.state else {
            return false;
        };
        matches!(&self.fault_refund, Some((id, None)) if *id == sale.id)
            && self.refunding.contains_key(&sale.id)
    }
    /// Whether `event` (Done, or the timer) must wait: the fault screen waits for the refund
    /// it asked for, so its answer (a claim link or why not) is shown there, not to whoever
    /// is at the machine next. The backend's request timeout bounds the wait. Once the
    /// answer is shown, the timer waits [`REFUND_ANSWER_SHOWN`] more (Done does not): an
    /// answer that came just before the screen's own time ran out must not vanish unread.
    pub(super) fn fault_screen_waits(&self, event: &Event) -> bool {
        let pending = self.fault_refund_pending();
        if matches!(event, Event::Tick) {
            pending
                || self
                    .fault_answer_until()
                    .is_some_and(|t| Instant::now() < t)
        } else {
            matches!(event, Event::FaultDismissed) && pending
        }
    }
    /// Until when the fault screen on show keeps the refund answer it shows.
    fn fault_answer_until(&self) -> Option<Instant> {
        let State::Fault { sale, .. } = &self.state else {
            return None;
        };
        match &self.fault_answer_shown {
            Some((id, at)) if *id == sale.id => Some(*at + REFUND_ANSWER_SHOWN),
            Some(_) | None => None,
        }
    }
    /// The fault screen's deadline for the controller loop's wake-up: none while it waits
    /// for its refund (the answer is an input; a passed deadline would wake the loop again
    /// and again), and no sooner than its answer's time once shown.
    pub(super) fn fault_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        if self.fault_refund_pending() {
            return None;
        }
        match (deadline, self.fault_answer_until()) {
            (Some(d), Some(t)) => Some(d.max(t)),
            (d, _) => d,
        }
    }
    /// The backend's answer to a refund. Its link is shown (on the fault screen that asked,
    /// or else to the operator) only once the ledger recorded the sale as refunded: a link
    /// shown for a sale the ledger still holds as owed would let it be claimed and poured,
    /// or refunded twice.
    pub(super) fn refund_done(&mut self, sale_id: String, result: Result<Option<String>, String>) {
        let sale = SaleId(sale_id.clone());
        let Some(amount) = self.refunding.remove(&sale) else {
            return;
        };
        // A refund made but not recorded (below) stays in `unrecorded_refunds`: still owed
        // in the ledger, so never offered, refunded or settled again in this run, and the
        // machine out of service until `retry_unrecorded_pours` records it.
        let asked_on_fault_screen = matches!(&self.fault_refund, Some((id, None)) if *id == sale);
        let on_show = asked_on_fault_screen
            && matches!(&self.state, State::Fault { sale: s, .. } if s.id == sale);
        // The fault screen that asked is gone: its answer goes to the operator instead
        // (the operator's message, the Credits tab and `lnvend sales`).
        if asked_on_fault_screen && !on_show {
            self.fault_refund = None;
        }
        let sats = amount.display_sats();
        let outcome: Result<(Option<String>, String), String> = match result {
            Err(e) => {
                tracing::error!(sale = %sale_id, error = %e, "refund failed");
                Err(format!("Refund failed: {e}"))
            }
            // Only a refund the customer claims themselves is offered on the fault screen.
            Ok(None) if asked_on_fault_screen => {
                tracing::error!(sale = %sale_id, "this backend cannot refund by itself");
                Err("Refund failed: this backend cannot refund by itself".to_string())
            }
            Ok(detail) => {
                let record = detail
                    .clone()
                    .unwrap_or_else(|| format!("by hand, receipt {sale_id}"));
                let recorded = match &mut self.ledger {
                    Ok(l) => l
                        .record_refunded(&sale, amount, &record)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.clone()),
                };
                match recorded {
                    Ok(true) => {
                        tracing::info!(sale = %sale_id, %amount, "owed credit refunded");
                        self.owed_changed = true;
                        if let Some(link) = &detail {
                            self.keep_refund_link(&sale, link);
                        }
                        Ok(match detail {
                            Some(link) => (
                                Some(link),
                                format!("Scan to claim the refund of {sale_id}: {sats}"),
                            ),
                            None => (
                                None,
                                format!("Refund {sats} by hand; receipt code {sale_id}"),
                            ),
                        })
                    }
                    Ok(false) => {
                        tracing::warn!(sale = %sale_id, "refund made for a sale no longer owed");
                        Err(format!(
                            "{sale_id} is no longer owed (settled or refunded meanwhile): \
                             its refund link is not shown."
                        ))
                    }
                    Err(e) => {
                        // The money went back but the ledger still holds the sale owed: it
                        // stays blocked, and the machine sells nothing until it records.
                        tracing::error!(sale = %sale_id, error = %e, "refund made but not recorded");
                        self.unrecorded_refunds.push((sale.clone(), amount, record));
                        self.ledger_fault = Some(format!("cannot record a refund: {e}"));
                        Err(format!("Refund made but NOT recorded: {e}"))
                    }
                }
            }
        };
        if on_show {
            self.fault_answer_shown = Some((sale.clone(), Instant::now()));
        }
        match outcome {
            Ok((link, text)) if on_show => {
                self.fault_refund = Some((sale, Some(link.ok_or(text))));
            }
            Ok(shown) => {
                self.op.refund = Some(shown);
                self.op.message.clear();
            }
            Err(why) => {
                if on_show {
                    // The screen already says the refund failed; the reason is under it.
                    let reason = why.strip_prefix("Refund failed: ").unwrap_or(&why);
                    self.fault_refund = Some((sale, Some(Err(reason.to_string()))));
                }
                self.op.message = why;
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
