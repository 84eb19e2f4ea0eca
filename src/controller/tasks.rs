//! The background work the controller starts: invoice creation (behind the rate limit),
//! the watch of each invoice, the periodic sweep of unwatched ones, and the backend's
//! health loop. One-shot work lives in the controller's `JoinSet` and every long-lived
//! task has a handle, so shutdown ends them all.

use super::*;

/// The most BOLT11s one sweep empties: far more than a prankster creates per sweep (about
/// 12 at one every 10 s), so the retention keeps up, yet a short write even on a Pi. A file
/// from before retention loses its backlog over days, a little each sweep.
pub const PAYLOADS_PER_SWEEP: usize = 256;

impl Controller {
    /// Starts the invoice a tap is waiting for, once the rate limit allows.
    pub(super) fn start_deferred_invoice(&mut self) {
        let Some((sale, at)) = self.deferred.take() else {
            return;
        };
        let still_wanted =
            matches!(&self.state, State::CreatingInvoice { sale: s, .. } if s.id == sale.id);
        if !still_wanted {
            // Cancelled (or given up) before it was asked for: no invoice at all.
            self.creating.remove(&sale.id);
            return;
        }
        let now = Instant::now();
        if now < at || !self.invoices.take(now) {
            let at = self.invoices.ready_at(now);
            self.deferred = Some((sale, at));
            return;
        }
        self.spawn_create(sale);
    }
    /// The periodic look at unsettled invoices no watch covers (see [`late`]).
    pub(super) fn sweep(&mut self) {
        if self.sweep_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.watches.retain(|_, (_, h)| !h.is_finished());
        self.drop_stale_payloads();
        // From the newest sale when the clock is not trusted (see `recheck_anchor`).
        let Some((now_unix, _)) = self.recheck_anchor() else {
            return;
        };
        let Ok(ledger) = &self.ledger else {
            return;
        };
        let since =
            now_unix.saturating_sub((late::LATE_WINDOW + self.settings.invoice_expiry).as_secs());
        let open = match ledger.unsettled_ids_since(since) {
            Ok(open) => open,
            Err(e) => {
                tracing::error!(error = %e, "could not list unsettled invoices");
                return;
            }
        };
        let mut candidates: Vec<(Option<Instant>, InvoiceId)> = open
            .into_iter()
            .filter(|id| !self.watches.contains_key(id))
            .map(|id| (self.swept.get(&id).copied(), id))
            .collect();
        // Forget what is no longer a candidate, so the map stays as small as the window
        // (a set: a day of a prankster's invoices is thousands).
        let current: std::collections::HashSet<&InvoiceId> =
            candidates.iter().map(|(_, id)| id).collect();
        self.swept.retain(|id, _| current.contains(id));
        // Never asked first, then the longest ago.
        candidates.sort();
        let now = Instant::now();
        let batch: Vec<InvoiceId> = candidates
            .into_iter()
            .take(late::SWEEP_BATCH)
            .map(|(_, id)| id)
            .collect();
        if batch.is_empty() {
            return;
        }
        for id in &batch {
            self.swept.insert(id.clone(), now);
        }
        tracing::debug!(count = batch.len(), "checking unwatched unsettled invoices");
        self.sweep_task = Some(tokio::spawn(late::check_invoices(
            self.backend.clone(),
            batch,
            self.settings.request_timeout,
            late::Attempts::ONCE,
            self.tx.clone(),
        )));
    }
    /// Retention, a few rows per sweep: never-paid invoices that expired more than
    /// [`RECHECK_WINDOW`] before both the trusted clock and the newest sale lose their BOLT11
    /// (see [`Ledger::drop_stale_payloads`]); no look-back of the sweep or the start-up
    /// reaches them any more. Nothing on a clock that is not trusted.
    fn drop_stale_payloads(&mut self) {
        let clock = &self.settings.clock;
        if clock.sync_problem().is_some() {
            return;
        }
        let Ok(ledger) = &mut self.ledger else {
            return;
        };
        let newest = match ledger.newest_sale_unix() {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "could not read the newest sale's time");
                return;
            }
        };
        let before = clock
            .unix()
            .min(newest)
            .saturating_sub(RECHECK_WINDOW.as_secs());
        match ledger.drop_stale_payloads(before, PAYLOADS_PER_SWEEP) {
            Ok(0) => {}
            Ok(n) => tracing::debug!(count = n, "dropped the BOLT11 of old unpaid invoices"),
            Err(e) => tracing::warn!(error = %e, "could not drop old invoices' BOLT11"),
        }
    }
    /// Asks the backend to withdraw an invoice the customer left before it ran out (a hold
    /// invoice has its own cancel). Best effort, once: a backend that cannot, or a payment
    /// that came first, leaves the invoice to its watch, and a payment it finds is owed.
    pub(super) fn spawn_withdraw(&mut self, sale_id: SaleId, invoice_id: InvoiceId) {
        let plain = match &self.ledger {
            Ok(l) => matches!(l.is_held_invoice(&invoice_id), Ok(None)),
            Err(_) => false,
        };
        if !plain {
            return;
        }
        let backend = self.backend.clone();
        let timeout = self.settings.request_timeout;
        self.tasks.spawn(async move {
            match tokio::time::timeout(timeout, backend.cancel_invoice(&invoice_id)).await {
                Ok(Ok(CancelOutcome::Cancelled)) => {
                    tracing::info!(sale = %sale_id, invoice = %invoice_id, "invoice withdrawn: the backend takes no payment for it now")
                }
                Ok(Ok(CancelOutcome::Unsupported(why))) => {
                    tracing::debug!(sale = %sale_id, invoice = %invoice_id, %why, "invoice not withdrawn: payable until it expires, and a payment is owed")
                }
                Ok(Err(e)) => {
                    tracing::info!(sale = %sale_id, invoice = %invoice_id, error = %e, "invoice not withdrawn: payable until it expires, and a payment is owed")
                }
                Err(_) => {
                    tracing::info!(sale = %sale_id, invoice = %invoice_id, "withdrawing the invoice timed out: payable until it expires, and a payment is owed")
                }
            }
        });
    }

    /// Asks the backend for the sale's invoice (the rate limit already let it through).
    pub(super) fn spawn_create(&mut self, sale: Sale) {
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        let request = InvoiceRequest {
            sale_id: sale.id.0.clone(),
            machine_id: self.settings.machine_id.clone(),
            product: sale.product.name.clone(),
            price: sale.product.price.clone(),
            // What the payer's wallet and the payment server's list show: the receipt code
            // on the screen finds the payment there.
            description: format!(
                "{} - {} - {}",
                sale.product.name, self.settings.machine_id, sale.id.0
            ),
            expiry: self.settings.invoice_expiry,
        };
        let timeout = self.settings.request_timeout;
        let network = self.settings.network;
        let clock = self.settings.clock.clone();
        let pump = self.is_pump_product(sale.product.index);
        let preimage = match self.preimage_for(&sale.id, pump) {
            Ok(p) => p,
            Err(reason) => {
                tracing::error!(sale = %sale.id, %reason, "no invoice");
                let _ = tx.send(Input::Event(Event::InvoiceFailed {
                    sale_id: sale.id,
                    reason,
                }));
                return;
            }
        };
        let fall_back = self.settings.hold == crate::config::HoldMode::Auto;
        self.tasks.spawn(async move {
            let hold = preimage.as_ref().map(|preimage| HoldAsk {
                preimage,
                fall_back,
            });
            let ev = create_invoice(
                backend.as_ref(),
                &request,
                hold,
                sale.product.sat_bounds,
                network,
                timeout,
                clock.as_ref(),
            )
            .await;
            let ev = match ev {
                Ok(Created {
                    invoice,
                    expires_at,
                    held,
                    refused,
                }) => {
                    // Before the invoice's event: the next sale asks for a plain one.
                    if let Some(why) = refused {
                        let _ = tx.send(Input::HoldSupport(crate::backend::HoldSupport::No(why)));
                    }
                    Event::InvoiceCreated {
                        sale_id: sale.id,
                        invoice,
                        expires_at,
                        held,
                    }
                }
                Err(reason) => {
                    tracing::error!(sale = %sale.id, %reason, "could not get an invoice");
                    Event::InvoiceFailed {
                        sale_id: sale.id,
                        reason,
                    }
                }
            };
            let _ = tx.send(Input::Event(ev));
        });
    }
    pub(super) fn spawn_watch(&mut self, invoice: Invoice) {
        self.watches.retain(|_, (_, h)| !h.is_finished());
        if self.watches.len() >= MAX_WATCHES && !self.watches.contains_key(&invoice.id) {
            // The oldest watch of an invoice nobody is looking at goes; the sweep covers it.
            let on_screen = match &self.state {
                State::AwaitingPayment { invoice, .. } => Some(invoice.id.clone()),
                _ => None,
            };
            let oldest = self
                .watches
                .iter()
                .filter(|(id, _)| Some(*id) != on_screen.as_ref())
                .min_by_key(|(_, (seq, _))| *seq)
                .map(|(id, _)| id.clone());
            if let Some(id) = oldest {
                if let Some((_, h)) = self.watches.remove(&id) {
                    h.abort();
                }
                tracing::info!(invoice = %id, "too many invoices watched; the late-payment sweep checks this one instead");
            }
        }
        let expires_at = instant_of_unix(self.settings.clock.as_ref(), invoice.expires_at_unix);
        // A hold invoice is watched through its hold state: its node says "unpaid" while the
        // payment is held, and sends no wake-up for it.
        let hold = match &self.ledger {
            Ok(l) => match l.is_held_invoice(&invoice.id) {
                Ok(Some(_)) => crate::backend::PaymentHash::from_hex(&invoice.payment_hash).ok(),
                Ok(None) | Err(_) => None,
            },
            Err(_) => None,
        };
        let id = invoice.id.clone();
        let backend = self.backend.clone();
        let timing = self.settings.watch;
        let tx = self.tx.clone();
        let handle = tokio::spawn(async move {
            let invoice_id = invoice.id.clone();
            let event = match watch_payment(backend, invoice, hold, expires_at, timing).await {
                WatchOutcome::Paid => Event::PaymentConfirmed { invoice_id },
                WatchOutcome::Expired => Event::InvoiceExpired { invoice_id },
                // The late-payment sweep looks at it from now on.
                WatchOutcome::GaveUp => return,
            };
            let _ = tx.send(Input::Event(event));
        });
        self.watch_seq += 1;
        if let Some((_, old)) = self.watches.insert(id, (self.watch_seq, handle)) {
            old.abort();
        }
    }
}

/// A sale's hold invoice as asked for: its preimage, and whether a node that refuses it
/// gets asked for a plain invoice instead (`hold = "auto"`).
struct HoldAsk<'a> {
    preimage: &'a crate::backend::Preimage,
    fall_back: bool,
}

/// An invoice fit to be shown.
struct Created {
    invoice: Invoice,
    expires_at: Instant,
    /// A hold invoice.
    held: bool,
    /// Why the node refused the hold invoice this plain one replaces (`hold = "auto"`).
    refused: Option<String>,
}

/// Asks for an invoice and checks the BOLT11 against the request before it can be shown.
///
/// With `hold = "auto"`, a node that answers a hold invoice with a refusal (its plugin's
/// margin longer than the QR's expiry, a rune without `holdinvoice`) gets asked for a plain
/// invoice: no hold invoice exists then, so no payment can be held for it. Anything short
/// of an answer (no reply, a reply we cannot trust) is a failed invoice, as before.
async fn create_invoice(
    backend: &dyn PaymentBackend,
    request: &InvoiceRequest,
    hold: Option<HoldAsk<'_>>,
    bounds: Option<(Msat, Msat)>,
    network: Network,
    timeout: Duration,
    clock: &dyn Clock,
) -> Result<Created, String> {
    let mut refused = None;
    let asked = async {
        match &hold {
            Some(h) => match backend.create_hold_invoice(request, h.preimage).await {
                Err(
                    e @ (crate::backend::BackendError::Rejected(_)
                    | crate::backend::BackendError::Unauthorized(_)),
                ) if h.fall_back => {
                    tracing::warn!(error = %e, "the node refused a hold invoice (hold = \"auto\"): payments are taken before the pour, as without holds");
                    refused = Some(format!("the node refused a hold invoice: {e}"));
                    backend.create_invoice(request).await
                }
                other => other,
            },
            None => backend.create_invoice(request).await,
        }
    };
    let invoice = match tokio::time::timeout(timeout, asked).await {
        Err(_) => {
            return Err(format!(
                "the payment backend did not answer within {timeout:?}"
            ))
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(i)) => i,
    };
    let preimage = match (&hold, &refused) {
        (Some(h), None) => Some(h.preimage),
        (Some(_), Some(_)) | (None, _) => None,
    };
    let checked = match preimage {
        Some(p) => invoice.check_hold(request, p, network, clock.wall()),
        None => invoice.check(request, network, clock.wall()),
    };
    checked.map_err(|e| {
        tracing::error!(invoice = %invoice.id, error = %e, "refusing to show an invoice that does not match the request");
        e.to_string()
    })?;
    if let Some((lo, hi)) = bounds {
        if invoice.amount < lo || invoice.amount > hi {
            let reason = format!(
                "the backend priced {} at {}, outside this product's min_sat..max_sat ({}..{}); is its exchange rate broken?",
                request.price.display(),
                invoice.amount.display_sats(),
                lo.display_sats(),
                hi.display_sats()
            );
            tracing::error!(invoice = %invoice.id, %reason, "refusing to show the invoice");
            return Err(reason);
        }
    }
    let expires_at = instant_of_unix(clock, invoice.expires_at_unix);
    Ok(Created {
        invoice,
        expires_at,
        held: preimage.is_some(),
        refused,
    })
}

pub(super) async fn health_loop(
    backend: Arc<dyn PaymentBackend>,
    every: Duration,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Input>,
) {
    let mut last_ok: Option<bool> = None;
    loop {
        let ev = match tokio::time::timeout(timeout, backend.check_health()).await {
            Ok(Ok(())) => Event::BackendUp,
            Ok(Err(e)) => Event::BackendDown {
                reason: e.to_string(),
            },
            Err(_) => Event::BackendDown {
                reason: format!("no answer within {timeout:?}"),
            },
        };
        let ok = ev == Event::BackendUp;
        if last_ok != Some(ok) {
            match &ev {
                Event::BackendDown { reason } => tracing::warn!(%reason, "payment backend down"),
                _ => tracing::info!(backend = backend.name(), "payment backend up"),
            }
            last_ok = Some(ok);
        }
        if tx.send(Input::Event(ev)).is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}
