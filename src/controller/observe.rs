//! What the controller tells the metrics ([`crate::metrics`]): sales, pours, the state, the
//! backend's health, the owed credits and the stock, read off each step of the vend cycle. Only
//! atomics are touched here (and, for owed credits, one ledger query), never an await, so
//! watching the machine never slows a sale.

use super::*;

/// What a step's effects need to know about the state before it.
pub(super) struct Before {
    sale_id: Option<String>,
    product: Option<String>,
    /// The invoice on screen, when a payment was awaited.
    amount: Option<Msat>,
    /// When the pour under way started, and on which channel.
    pouring: Option<(Instant, Channel)>,
}

impl Before {
    pub(super) fn of(state: &State) -> Before {
        let product = match state {
            State::Idle | State::OutOfService { .. } | State::Service => None,
            State::CreatingInvoice { sale, .. }
            | State::AwaitingPayment { sale, .. }
            | State::Pouring { sale, .. }
            | State::ThankYou { sale, .. }
            | State::Fault { sale, .. } => Some(sale.product.name.clone()),
        };
        let sale_id = state.sale_id().map(|s| s.to_string());
        let amount = match state {
            State::AwaitingPayment { invoice, .. } => Some(invoice.amount),
            State::Idle
            | State::CreatingInvoice { .. }
            | State::Pouring { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Service
            | State::Fault { .. } => None,
        };
        let pouring = match state {
            State::Pouring { sale, started, .. } => Some((*started, sale.product.channel)),
            State::Idle
            | State::CreatingInvoice { .. }
            | State::AwaitingPayment { .. }
            | State::ThankYou { .. }
            | State::OutOfService { .. }
            | State::Service
            | State::Fault { .. } => None,
        };
        Before {
            sale_id,
            product,
            amount,
            pouring,
        }
    }
}

impl Before {
    /// The sale of the state before the step ("" for none).
    pub(super) fn sale_id(&self) -> &str {
        self.sale_id.as_deref().unwrap_or("")
    }
    /// Its product ("" for none).
    pub(super) fn product(&self) -> &str {
        self.product.as_deref().unwrap_or("")
    }
}

impl Controller {
    /// The product of the sale under way ("" for none).
    pub(super) fn state_product(&self) -> String {
        Before::of(&self.state).product().to_string()
    }

    /// The metrics this machine updates (served by `crate::metrics::server` when enabled).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        self.metrics.clone()
    }

    /// Counts what one step of the vend cycle did, before its effects are carried out.
    pub(super) fn observe(&mut self, before: &Before, effects: &[Effect], now: Instant) {
        let m = &self.metrics;
        let product = before.product.as_deref().unwrap_or("");
        let mut owed_changed = false;
        for effect in effects {
            match effect {
                Effect::BeginPour {
                    credit: false,
                    sale,
                    ..
                } => {
                    // Counted as paid when the ledger takes it (`begin_pour`).
                    let sats = before.amount.map_or(0, |a| a.as_msat() / 1000);
                    m.payment_seen(&sale.id.0, product, sats, now);
                }
                Effect::BeginPour { credit: true, .. } => owed_changed = true,
                Effect::AbandonInvoice { why, .. } => m.abandoned(product, *why),
                Effect::RecordPoured { .. } | Effect::RecordOwed { .. } => {
                    let poured = matches!(effect, Effect::RecordPoured { .. });
                    owed_changed |= !poured;
                    if let Some((started, channel)) = before.pouring {
                        let secs = now.saturating_duration_since(started).as_secs_f64();
                        m.pour_ended(product, &channel.to_string(), secs, poured);
                    }
                }
                Effect::RecordLatePayment { .. } => owed_changed = true,
                // Counted when the backend confirms them (`controller::hold`).
                Effect::SettleHold { .. } | Effect::CancelHold { .. } => {}
                Effect::CreateInvoice { .. }
                | Effect::WatchInvoice { .. }
                | Effect::StopPump
                | Effect::SoldOut { .. } => {}
            }
        }
        if owed_changed {
            self.owed_changed = true;
        }
    }

    /// After a step: the state gauge, and the owed credits if they may have changed.
    pub(super) fn observe_after(&mut self) {
        self.metrics.state(&self.state);
        if std::mem::take(&mut self.owed_changed) {
            self.refresh_owed_metrics();
        }
    }

    /// A late payment the ledger recorded as owed.
    pub(super) fn observe_late_payment(&self, sale: &SaleId) {
        if let Ok(Ok(Some(o))) = self.ledger.as_ref().map(|l| l.owed_sale(sale)) {
            self.metrics.paid(&o.product, o.price_msat / 1000, true);
        }
    }

    /// On every heartbeat, while a listener serves the metrics: changes to the owed credits
    /// the vend cycle does not see (the operator's settle and refund).
    pub(super) fn refresh_served_metrics(&self) {
        if self.metrics.served() {
            self.refresh_owed_metrics();
        }
    }

    /// The owed credits, from the ledger.
    pub(super) fn refresh_owed_metrics(&self) {
        if let Ok(Ok(owed)) = self.ledger.as_ref().map(|l| l.owed()) {
            // What they are worth: a partly poured drink owes only its undelivered share.
            let msat: u64 = owed.iter().map(|o| o.value().as_msat()).sum();
            self.metrics.owed(owed.len(), msat / 1000);
        }
    }

    /// The stock of every product that keeps one, as the controller counts it; called
    /// whenever that count changes (start, a pour, a dry tank, a refill).
    pub(super) fn observe_stock(&self) {
        let levels: Vec<crate::metrics::StockLevel> = self
            .settings
            .catalog
            .iter()
            .filter_map(|p| {
                let ml = *self.stock_ml.get(&p.index)?;
                // A dry line on a sensor without `tank_ml` is sold out, not a stock level.
                let spec = self.settings.stock.get(p.index)?;
                spec.tank_ml?;
                let low_ml = spec.low_ml;
                Some(crate::metrics::StockLevel {
                    product: p.name.clone(),
                    ml,
                    low_ml,
                })
            })
            .collect();
        self.metrics.stock(&levels);
    }

    /// A health report from the backend.
    pub(super) fn observe_health(&self, up: bool) {
        self.metrics.backend(up, self.settings.clock.unix());
    }
}
