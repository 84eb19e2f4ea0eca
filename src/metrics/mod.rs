//! The machine's Prometheus metrics: the registry and the cheap handles the controller
//! updates (atomics behind `prometheus-client`, never an await), and the opt-in `/metrics`
//! listener ([`server`]) that reads them on its own task, so a scrape never waits on the
//! controller loop nor the loop on a scrape.
//!
//! Label values are bounded: products come from the config (at most 8), outcomes and states
//! are fixed words, and an out-of-service reason is its kind (backend, pump, ledger,
//! clock), never the free-text detail, so a hostile backend's error text cannot grow the
//! series without bound nor reach a dashboard.

pub mod server;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::vend::{Abandoned, OutOfService, State};

/// What the build-info series says about this machine.
#[derive(Clone, Debug)]
pub struct BuildInfo {
    pub version: String,
    /// `sim`, `btcpay`, `cln` or `lnbits`.
    pub backend: String,
    pub machine_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProductOutcome {
    product: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProductLabel {
    product: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HoldOutcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabel {
    channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    backend: String,
    machine_id: String,
}

/// Every (state, reason) pair the state gauge has: exactly one of them is 1 at a time.
const STATES: [(&str, &str); 8] = [
    ("idle", ""),
    ("selling", ""),
    ("fault", ""),
    ("service", ""),
    ("out_of_service", "backend"),
    ("out_of_service", "pump"),
    ("out_of_service", "ledger"),
    ("out_of_service", "clock"),
];

/// The state gauge's labels for a vend state.
pub fn state_labels(state: &State) -> (&'static str, &'static str) {
    match state {
        State::Idle => ("idle", ""),
        State::CreatingInvoice { .. }
        | State::AwaitingPayment { .. }
        | State::Pouring { .. }
        | State::ThankYou { .. } => ("selling", ""),
        State::Fault { .. } => ("fault", ""),
        State::Service => ("service", ""),
        State::OutOfService { reason } => (
            "out_of_service",
            match reason {
                OutOfService::Backend(_) => "backend",
                OutOfService::Pump(_) => "pump",
                OutOfService::Ledger(_) => "ledger",
                OutOfService::Clock(_) => "clock",
            },
        ),
    }
}

/// A label value that cannot break the text format whatever the config holds.
fn label(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' => '_',
            c => c,
        })
        .collect()
}

/// The registry and its handles; shared (`Arc`) between the controller and the listener.
pub struct Metrics {
    registry: Registry,
    sales: Family<ProductOutcome, Counter>,
    pours: Family<ProductOutcome, Counter>,
    received_sats: Family<ProductLabel, Counter>,
    pay_to_pump: Histogram,
    pour_duration: Histogram,
    state: Family<StateLabels, Gauge>,
    backend_up: Gauge,
    backend_last_ok: Gauge,
    owed_count: Gauge,
    owed_sats: Gauge,
    stock: Family<ProductLabel, Gauge<f64, AtomicU64>>,
    stock_low: Family<ProductLabel, Gauge<f64, AtomicU64>>,
    pump_seconds: Family<ChannelLabel, Counter<f64, AtomicU64>>,
    /// Hold invoices: payments held, settled, cancelled (see `controller::hold`).
    holds: Family<HoldOutcome, Counter>,
    held_seconds: Histogram,
    /// The sale whose payment the controller learnt of, and when (for pay-to-pump): counted
    /// as paid only once the ledger takes it (see [`Metrics::pump_started`]).
    paid_at: Mutex<Option<Seen>>,
    /// Whether a listener serves these (else the periodic ledger look-ups are skipped).
    served: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every series, for a machine started at `start_unix`.
    pub fn new(build: &BuildInfo, products: &[String], start_unix: u64) -> Metrics {
        let mut registry = Registry::default();
        let sales = Family::<ProductOutcome, Counter>::default();
        registry.register(
            "lnvend_sales",
            "Sales by product and outcome: paid, late_paid (paid after the customer left; owed), cancelled, expired",
            sales.clone(),
        );
        let pours = Family::<ProductOutcome, Counter>::default();
        registry.register(
            "lnvend_pours",
            "Pours by product and outcome: poured or failed (the sale became an owed credit)",
            pours.clone(),
        );
        let received_sats = Family::<ProductLabel, Counter>::default();
        registry.register(
            "lnvend_received_sats",
            "Sats received for paid sales, by product (late payments included)",
            received_sats.clone(),
        );
        let pay_to_pump = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "lnvend_pay_to_pump_seconds",
            "From the controller learning of a payment to the pump starting (the ledger commit included)",
            pay_to_pump.clone(),
        );
        let pour_duration = Histogram::new([
            1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0, 30.0, 60.0, 120.0, 300.0,
        ]);
        registry.register(
            "lnvend_pour_duration_seconds",
            "How long each pour ran, finished or failed",
            pour_duration.clone(),
        );
        let state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "lnvend_state",
            "1 for the machine's current state (idle, selling, fault, service, out_of_service with its reason), 0 for the others",
            state.clone(),
        );
        for (s, r) in STATES {
            let _ = state.get_or_create(&StateLabels {
                state: s,
                reason: r,
            });
        }
        let backend_up = Gauge::default();
        registry.register(
            "lnvend_backend_up",
            "1 while the payment backend answers its health check",
            backend_up.clone(),
        );
        let backend_last_ok = Gauge::default();
        registry.register(
            "lnvend_backend_last_ok_timestamp_seconds",
            "Unix time of the payment backend's last good answer (0: none yet)",
            backend_last_ok.clone(),
        );
        let owed_count = Gauge::default();
        registry.register(
            "lnvend_owed_credits",
            "Owed credits waiting (paid, not poured, not settled or refunded)",
            owed_count.clone(),
        );
        let owed_sats = Gauge::default();
        registry.register(
            "lnvend_owed_sats",
            "Value of the owed credits waiting, in sats",
            owed_sats.clone(),
        );
        let stock = Family::<ProductLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "lnvend_stock_remaining_ml",
            "Stock left per product, where the machine measures it",
            stock.clone(),
        );
        let stock_low = Family::<ProductLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "lnvend_stock_low_ml",
            "The configured low-stock mark per product (low_stock_ml, 0 when unset)",
            stock_low.clone(),
        );
        let pump_seconds = Family::<ChannelLabel, Counter<f64, AtomicU64>>::default();
        registry.register(
            "lnvend_pump_run_seconds",
            "Seconds the pump ran, for sales and the operator's runs, per channel (pump wear)",
            pump_seconds.clone(),
        );
        for c in ["A", "B"] {
            let _ = pump_seconds.get_or_create(&ChannelLabel { channel: c.into() });
        }
        let holds = Family::<HoldOutcome, Counter>::default();
        registry.register(
            "lnvend_holds",
            "Held payments (hold invoices) by outcome: held (accepted, pour recorded), settled (taken), cancelled (returned to the customer)",
            holds.clone(),
        );
        for outcome in ["held", "settled", "cancelled"] {
            let _ = holds.get_or_create(&HoldOutcome { outcome });
        }
        let held_seconds = Histogram::new([
            1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
        ]);
        registry.register(
            "lnvend_held_seconds",
            "How long a payment was held, from its acceptance (the pour's start) to the backend's settle or cancel",
            held_seconds.clone(),
        );
        let start: Gauge = Gauge::default();
        start.set(i64::try_from(start_unix).unwrap_or(i64::MAX));
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the unix epoch in seconds",
            start,
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: label(&build.version),
                backend: label(&build.backend),
                machine_id: label(&build.machine_id),
            })
            .set(1);
        registry.register(
            "lnvend_build_info",
            "Always 1: the version, payment backend kind and machine id",
            build_info,
        );
        // Every product's counters exist from the start, so a rate over a product that has
        // not sold yet is 0, not absent.
        for p in products {
            let product = label(p);
            for outcome in ["paid", "cancelled", "expired"] {
                let _ = sales.get_or_create(&ProductOutcome {
                    product: product.clone(),
                    outcome,
                });
            }
            for outcome in ["poured", "failed"] {
                let _ = pours.get_or_create(&ProductOutcome {
                    product: product.clone(),
                    outcome,
                });
            }
            let _ = received_sats.get_or_create(&ProductLabel { product });
        }
        Metrics {
            registry,
            sales,
            pours,
            received_sats,
            pay_to_pump,
            pour_duration,
            state,
            backend_up,
            backend_last_ok,
            owed_count,
            owed_sats,
            stock,
            stock_low,
            pump_seconds,
            holds,
            held_seconds,
            paid_at: Mutex::new(None),
            served: AtomicBool::new(false),
        }
    }

    /// The text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }

    /// A paid sale (on time or late) of `product` for `sats`.
    pub fn paid(&self, product: &str, sats: u64, late: bool) {
        let product = label(product);
        self.sales
            .get_or_create(&ProductOutcome {
                product: product.clone(),
                outcome: if late { "late_paid" } else { "paid" },
            })
            .inc();
        self.received_sats
            .get_or_create(&ProductLabel { product })
            .inc_by(sats);
    }

    /// A held payment was accepted and its pour recorded.
    pub fn held(&self) {
        self.holds
            .get_or_create(&HoldOutcome { outcome: "held" })
            .inc();
    }

    /// The backend confirmed a held payment's end, held for `held_for` (if it was accepted).
    pub fn hold_resolved(
        &self,
        outcome: crate::backend::hold::Outcome,
        held_for: Option<std::time::Duration>,
    ) {
        use crate::backend::hold::Outcome;
        let outcome = match outcome {
            Outcome::Settled => "settled",
            Outcome::Canceled | Outcome::NotPaid => "cancelled",
        };
        self.holds.get_or_create(&HoldOutcome { outcome }).inc();
        if let Some(d) = held_for {
            self.held_seconds.observe(d.as_secs_f64());
        }
    }

    /// An unpaid invoice left.
    pub fn abandoned(&self, product: &str, why: Abandoned) {
        let outcome = match why {
            Abandoned::Cancelled => "cancelled",
            Abandoned::Expired => "expired",
        };
        self.sales
            .get_or_create(&ProductOutcome {
                product: label(product),
                outcome,
            })
            .inc();
    }

    /// A listener serves these metrics from now on.
    pub fn set_served(&self) {
        self.served.store(true, Ordering::Relaxed);
    }

    /// Whether a listener serves these metrics.
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// The controller learnt at `at` that `sale` of `product` is paid `sats`. It counts as
    /// a paid sale when the ledger takes it: [`Metrics::pump_started`], or
    /// [`Metrics::payment_refused`] for any reason but "already poured" (a payment the
    /// ledger already counted, seen again).
    pub fn payment_seen(&self, sale: &str, product: &str, sats: u64, at: Instant) {
        *self.paid_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
            sale: sale.to_string(),
            product: product.to_string(),
            sats,
            at,
        });
    }

    /// The payment seen for `sale`, if it is the one waiting.
    fn take_seen(&self, sale: &str) -> Option<Seen> {
        let seen = self
            .paid_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        seen.filter(|s| s.sale == sale)
    }

    /// The pump was started for `sale`, its payment recorded (a credit pour measures and
    /// counts nothing).
    pub fn pump_started(&self, sale: &str, now: Instant) {
        if let Some(s) = self.take_seen(sale) {
            self.paid(&s.product, s.sats, false);
            self.pay_to_pump
                .observe(now.saturating_duration_since(s.at).as_secs_f64());
        }
    }

    /// The ledger refused the pour of `sale`: as already poured (counted when it was), or
    /// for a fault of its own (a paid sale all the same, owed to the customer).
    pub fn payment_refused(&self, sale: &str, already_poured: bool) {
        if let Some(s) = self.take_seen(sale) {
            if !already_poured {
                self.paid(&s.product, s.sats, false);
            }
        }
    }

    /// A pour ended after `secs` on `channel`, finished or not.
    pub fn pour_ended(&self, product: &str, channel: &str, secs: f64, poured: bool) {
        self.pours
            .get_or_create(&ProductOutcome {
                product: label(product),
                outcome: if poured { "poured" } else { "failed" },
            })
            .inc();
        self.pour_duration.observe(secs);
        self.pump_seconds
            .get_or_create(&ChannelLabel {
                channel: label(channel),
            })
            .inc_by(secs);
    }

    /// Counts the pump's time on `channel` for an operator's run (prime, reverse, test
    /// pour) until the guard drops, which it does also when the run is cut short.
    pub fn wear(self: &Arc<Self>, channel: &str) -> Wear {
        Wear {
            metrics: self.clone(),
            channel: label(channel),
            since: Instant::now(),
        }
    }

    /// The machine is now in `state`.
    pub fn state(&self, state: &State) {
        let (now_s, now_r) = state_labels(state);
        for (s, r) in STATES {
            self.state
                .get_or_create(&StateLabels {
                    state: s,
                    reason: r,
                })
                .set(i64::from(s == now_s && r == now_r));
        }
    }

    /// The backend's health check answered (`up`) or not, at `unix`.
    pub fn backend(&self, up: bool, unix: u64) {
        self.backend_up.set(i64::from(up));
        if up {
            self.backend_last_ok
                .set(i64::try_from(unix).unwrap_or(i64::MAX));
        }
    }

    /// The owed credits waiting now.
    pub fn owed(&self, count: usize, sats: u64) {
        self.owed_count
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        self.owed_sats.set(i64::try_from(sats).unwrap_or(i64::MAX));
    }

    /// Stock left of each product that keeps stock, with its low-stock mark.
    pub fn stock(&self, levels: &[StockLevel]) {
        for l in levels {
            let key = ProductLabel {
                product: label(&l.product),
            };
            self.stock.get_or_create(&key).set(f64::from(l.ml));
            self.stock_low.get_or_create(&key).set(f64::from(l.low_ml));
        }
    }
}

/// See [`Metrics::wear`].
pub struct Wear {
    metrics: Arc<Metrics>,
    channel: String,
    since: Instant,
}

impl Drop for Wear {
    fn drop(&mut self) {
        let secs = self.since.elapsed().as_secs_f64();
        self.metrics
            .pump_seconds
            .get_or_create(&ChannelLabel {
                channel: std::mem::take(&mut self.channel),
            })
            .inc_by(secs);
    }
}

/// A payment seen, not yet taken by the ledger.
#[derive(Debug)]
struct Seen {
    sale: String,
    product: String,
    sats: u64,
    at: Instant,
}

/// One product's stock as the controller counts it (`lnvend_stock_remaining_ml` and
/// `lnvend_stock_low_ml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockLevel {
    pub product: String,
    pub ml: u32,
    pub low_ml: u32,
}

#[cfg(test)]
mod tests;
