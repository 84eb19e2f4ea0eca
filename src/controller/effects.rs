//! Carrying out the vend cycle's effects, in order: the ledger before the screen (no QR
//! without a record) and before the pump (no pour without a committed payment).

use super::*;
use crate::vend::Abandoned;

impl Controller {
    /// No QR without a record: an invoice the ledger cannot store is treated as failed.
    pub(super) fn record_before_showing(&mut self, event: Event) -> Event {
        let Event::InvoiceCreated {
            sale_id,
            invoice,
            expires_at,
            held,
        } = event
        else {
            return event;
        };
        let Some(sale) = self.creating.remove(&sale_id) else {
            tracing::error!(sale = %sale_id, "an invoice arrived for a sale we did not start");
            return Event::InvoiceFailed {
                sale_id,
                reason: "unexpected invoice".into(),
            };
        };
        let backend = self.backend.name();
        let preimage = self.preimages.remove(&sale_id);
        let result = match (&mut self.ledger, held, &preimage) {
            (Ok(l), false, _) => l
                .record_created(&sale, backend, &invoice)
                .map_err(|e| e.to_string()),
            // The preimage is durable with the sale before anyone can pay.
            (Ok(l), true, Some(p)) => l
                .record_created_held(&sale, backend, &invoice, p)
                .map_err(|e| e.to_string()),
            (Ok(_), true, None) => Err("a hold invoice without its preimage".into()),
            (Err(reason), _, _) => Err(reason.clone()),
        };
        match result {
            Ok(()) => Event::InvoiceCreated {
                sale_id,
                invoice,
                expires_at,
                held,
            },
            Err(reason) => {
                tracing::error!(sale = %sale_id, %reason, "cannot record the sale; not showing its QR");
                let _ = self.tx.send(Input::Event(Event::LedgerDown {
                    reason: reason.clone(),
                }));
                Event::InvoiceFailed {
                    sale_id,
                    reason: format!("cannot record the sale: {reason}"),
                }
            }
        }
    }
    pub(super) fn apply(&mut self, event: Event) {
        let now = Instant::now();
        let quiet = matches!(
            event,
            Event::Tick | Event::BackendUp | Event::ClockWrong { .. }
        );
        let event_name = event.name();
        let before = self.state.name();
        let old = std::mem::replace(&mut self.state, State::Idle);
        let before_step = observe::Before::of(&old);
        let (state, effects) = vend::step(old, event, now);
        self.state = state;
        self.observe(&before_step, &effects, now);
        let after = self.state.name();
        if before != after || !quiet {
            // The sale of the new state, or of the one just left (back to idle): journald
            // gets SALE_ID, PRODUCT and STATE fields from these (see `crate::logging`).
            let (sale, product) = match self.state.sale_id() {
                Some(id) => (id.to_string(), self.state_product()),
                None => (
                    before_step.sale_id().to_string(),
                    before_step.product().to_string(),
                ),
            };
            if before != after {
                tracing::info!(sale_id = %sale, product = %product, event = event_name, from = before, state = after, "transition");
            } else {
                tracing::debug!(sale_id = %sale, product = %product, event = event_name, state = after, "event");
            }
        }
        if let State::OutOfService { reason } = &self.state {
            if before != after {
                tracing::warn!(reason = reason.detail(), "out of service");
            }
        }
        for effect in effects {
            self.execute(effect);
        }
        self.observe_after();
        // A ledger that failed after a pour: no next sale until it records again.
        if let (Some(reason), State::Idle) = (&self.ledger_fault, &self.state) {
            let reason = reason.clone();
            self.apply(Event::LedgerDown { reason });
        }
        // Back on the idle screen (the operator left the menu, or "back in service") while
        // the wall clock is still not trusted: out of service at once, not at the next look.
        if let (Some(Some(reason)), State::Idle) = (&self.clock_problem, &self.state) {
            let reason = reason.clone();
            self.apply(Event::ClockWrong { reason });
        }
    }

    /// Tries again to record pours and refunds the ledger refused; once all are recorded
    /// the fault is gone (the operator's "back in service" then works again).
    pub(super) fn retry_unrecorded_pours(&mut self) {
        if self.unrecorded_pours.is_empty() && self.unrecorded_refunds.is_empty() {
            return;
        }
        let Ok(l) = &mut self.ledger else {
            return;
        };
        self.unrecorded_pours
            .retain(|sale| match l.record_poured(sale) {
                Ok(()) => {
                    tracing::info!(sale = %sale, "the finished pour is recorded after all");
                    false
                }
                Err(_) => true,
            });
        let mut recorded = false;
        self.unrecorded_refunds
            .retain(|(sale, amount, detail)| match l.record_refunded(sale, *amount, detail) {
                Ok(owed) => {
                    tracing::info!(sale = %sale, was_owed = owed, "the refund is recorded after all");
                    recorded = true;
                    false
                }
                Err(_) => true,
            });
        self.owed_changed |= recorded;
        if self.unrecorded_pours.is_empty() && self.unrecorded_refunds.is_empty() {
            self.ledger_fault = None;
        }
    }
    pub(super) fn execute(&mut self, effect: Effect) {
        match effect {
            Effect::CreateInvoice { sale } => {
                self.creating.insert(sale.id.clone(), sale.clone());
                let now = Instant::now();
                if self.invoices.take(now) {
                    self.spawn_create(sale);
                } else {
                    tracing::info!(sale = %sale.id, "invoices asked for too quickly; this one waits its turn");
                    // Only the newest tap waits; an older waiting one was left already.
                    if let Some((old, _)) = self.deferred.take() {
                        self.creating.remove(&old.id);
                    }
                    let at = self.invoices.ready_at(now);
                    self.deferred = Some((sale, at));
                }
            }
            Effect::WatchInvoice { sale_id, invoice } => {
                tracing::info!(sale = %sale_id, invoice = %invoice.id, amount = %invoice.amount, "invoice shown; watching for payment");
                self.spawn_watch(invoice);
            }
            Effect::AbandonInvoice {
                sale_id,
                invoice_id,
                why,
            } => {
                tracing::info!(sale = %sale_id, invoice = %invoice_id, ?why, "invoice left; still watching it until it expires");
                if let Ok(l) = &mut self.ledger {
                    if let Err(e) = l.record_abandoned(&sale_id, why) {
                        tracing::error!(sale = %sale_id, error = %e, "could not record the abandoned invoice");
                    }
                }
                match why {
                    // Left before it ran out: the backend withdraws it where it can.
                    Abandoned::Cancelled => self.spawn_withdraw(sale_id, invoice_id),
                    // It stopped being payable by itself.
                    Abandoned::Expired => {}
                }
            }
            Effect::BeginPour {
                sale,
                invoice_id,
                credit,
            } => self.begin_pour(sale, invoice_id, credit),
            Effect::StopPump => {
                if let Some(p) = self.pour_task.take() {
                    p.abort();
                }
                if let Err(e) = self.pump.stop() {
                    tracing::error!(error = %e, "could not stop the pump");
                }
            }
            Effect::RecordPoured { sale_id } => {
                tracing::info!(sale = %sale_id, "poured");
                self.offers.withdraw(&sale_id);
                if let Ok(l) = &mut self.ledger {
                    // Once more on a failure (a busy disk). If it still fails, the machine
                    // stops selling as soon as the customer has their drink, and keeps
                    // trying to record it (see `retry_unrecorded_pours`): a pour left
                    // "pouring" would come back as an owed credit at the next start.
                    let recorded = l
                        .record_poured(&sale_id)
                        .or_else(|_| l.record_poured(&sale_id));
                    if let Err(e) = recorded {
                        tracing::error!(sale = %sale_id, error = %e, "could not record the finished pour; out of service until it is");
                        self.ledger_fault = Some(format!("cannot record a finished pour: {e}"));
                        self.unrecorded_pours.push(sale_id);
                    }
                }
            }
            Effect::SoldOut { index } => self.mark_sold_out(index),
            Effect::RecordOwed { sale_id, failure } => {
                // A measured pour's owed ml came before this, with its `PouredMl`.
                let reason = failure_text(&failure);
                tracing::error!(sale = %sale_id, %reason, "paid but not poured: owed credit");
                match &mut self.ledger {
                    Ok(l) => match l.record_owed(&sale_id, &reason) {
                        Ok(true) => {
                            let until = Instant::now() + self.settings.credit_window;
                            self.offers.offer(sale_id, until);
                        }
                        Ok(false) => {
                            // Its credit pour was interrupted too: the operator decides.
                            self.offers.withdraw(&sale_id);
                            tracing::warn!(sale = %sale_id, "a second interrupted pour of one sale: only the operator can settle or refund it now");
                        }
                        Err(e) => {
                            tracing::error!(sale = %sale_id, error = %e, "COULD NOT RECORD AN OWED CREDIT; the fault screen shows the code");
                        }
                    },
                    Err(_) => {
                        tracing::error!(sale = %sale_id, "no ledger: the owed credit exists only on the fault screen and in this log")
                    }
                }
            }
            Effect::SettleHold { sale_id } => self.settle_hold(sale_id),
            Effect::CancelHold { sale_id } => self.cancel_hold(sale_id),
            // A held payment is given back (or, if the backend took it, owed), never poured.
            Effect::RecordLatePayment { invoice_id } if self.late_hold(&invoice_id) => {}
            Effect::RecordLatePayment { invoice_id } => match &mut self.ledger {
                Ok(l) => match l.record_late_payment(&invoice_id) {
                    Ok(Some(sale)) => {
                        tracing::warn!(sale = %sale, invoice = %invoice_id, "a payment arrived after the customer left; recorded as an owed credit");
                        self.observe_late_payment(&sale);
                        let until = Instant::now() + self.settings.credit_window;
                        self.offers.offer(sale, until);
                    }
                    Ok(None) => {
                        tracing::info!(invoice = %invoice_id, "payment report for an invoice already settled or not ours; ignored")
                    }
                    Err(e) => {
                        tracing::error!(invoice = %invoice_id, error = %e, "could not record a late payment")
                    }
                },
                Err(_) => {
                    tracing::error!(invoice = %invoice_id, "a late payment arrived and there is no ledger to record it")
                }
            },
        }
    }
    pub(super) fn begin_pour(&mut self, sale: Sale, invoice_id: InvoiceId, credit: bool) {
        // The tile goes when its pour is accepted, not when it was tapped: a tap the vend
        // cycle ignores (the machine just went out of service) leaves the offer standing.
        if credit {
            self.offers.withdraw(&sale.id);
        }
        if !credit {
            self.invoices.give_back();
        }
        let recorded = match &mut self.ledger {
            Ok(l) if credit => l.begin_credit_pour(&sale.id),
            Ok(l) => l.begin_pour(&sale.id, &invoice_id),
            Err(reason) => Err(LedgerError::UnknownSale(reason.clone())),
        };
        let tx = self.tx.clone();
        if let Err(e) = recorded {
            let failure = match e {
                LedgerError::AlreadyPoured => PourFailure::AlreadyPoured,
                other => PourFailure::Ledger(other.to_string()),
            };
            tracing::error!(sale = %sale.id, failure = ?failure, "pour not started");
            self.metrics
                .payment_refused(&sale.id.0, matches!(failure, PourFailure::AlreadyPoured));
            let _ = tx.send(Input::Event(Event::PourFailed {
                sale_id: sale.id,
                failure,
                delivered_ml: 0,
            }));
            return;
        }
        if let (false, Ok(l)) = (credit, &mut self.ledger) {
            match l.unresolved_hold(&sale.id) {
                Ok(Some(_)) => {
                    self.metrics.held();
                    if let Err(e) = l.hold_accepted(&sale.id) {
                        tracing::warn!(sale = %sale.id, error = %e, "could not note when the payment was held");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(sale = %sale.id, error = %e, "could not read the hold"),
            }
        }
        if self.is_pump_product(sale.product.index) {
            tracing::info!(sale = %sale.id, invoice = %invoice_id, channel = %sale.product.channel, ms = sale.product.pour.as_millis() as u64, ml = sale.product.volume_ml, "payment recorded; pouring");
        } else {
            // A pulse product or an MDB item: no pump runs, so no channel or pour time.
            tracing::info!(sale = %sale.id, invoice = %invoice_id, product = %sale.product.name, "payment recorded; dispensing");
        }
        let owed_ml = if credit {
            self.owed_ml_of(&sale.id)
        } else {
            None
        };
        self.metrics.pump_started(&sale.id.0, Instant::now());
        self.spawn_pour(sale, owed_ml);
    }
}

fn failure_text(f: &PourFailure) -> String {
    match f {
        PourFailure::Pump(r) => format!("pump: {r}"),
        PourFailure::Ledger(r) => format!("ledger: {r}"),
        PourFailure::AlreadyPoured => "already poured".into(),
        PourFailure::NoFlow(r) => format!("no flow: {r}"),
        PourFailure::Short {
            poured_ml,
            target_ml,
        } => format!("short pour: {poured_ml} of {target_ml} ml"),
    }
}
