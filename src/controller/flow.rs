//! Pouring by volume and keeping stock, for the controller: which pour a product gets (by
//! its channel's flow sensor, or timed), what a measured pour does to the ledger and the
//! stock, when a product is sold out, and the operator's refill (calibration and test pours
//! are `calibration`'s).
//!
//! Sold out is the controller's own set, applied to a product whenever a tap or a credit
//! reaches the vend cycle (whose pure step refuses it): the operator's product edits copy
//! the catalog, so a flag kept in it would be lost on their save.
//!
//! The products on one channel share its tank (see `ledger::stock`): a pour, a dry run or
//! a refill of one is the tank's, and a dry tank sells out every product on it.

use super::*;
use crate::config::flow::FlowConfig;
use crate::dispense::DispenseError;
use crate::pump::flow::{FlowSensor, VolumeTarget};

/// A channel's flow sensor with its calibration.
#[derive(Clone)]
pub struct FlowChannel {
    pub channel: Channel,
    pub sensor: Arc<dyn FlowSensor>,
    pub config: FlowConfig,
}

impl std::fmt::Debug for FlowChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowChannel")
            .field("channel", &self.channel)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A product's stock keeping, from the config (by product index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StockSpec {
    /// None: no stock is kept for it.
    pub tank_ml: Option<u32>,
    /// The first count in a new ledger.
    pub start_ml: u32,
    pub low_ml: u32,
    /// The ml one pour counts off: the volume, or a timed pour's configured ml.
    pub pour_ml: Option<u32>,
}

impl StockSpec {
    pub fn of(p: &crate::config::ProductSpec) -> StockSpec {
        StockSpec {
            tank_ml: p.tank_ml,
            start_ml: p.stock_ml.or(p.tank_ml).unwrap_or(0),
            low_ml: p.low_stock_ml.unwrap_or(0),
            pour_ml: p.volume_ml.or(p.timed_pour_ml),
        }
    }
}

/// Owed less than this share of a drink (in %), or than [`NEGLIGIBLE_PULSES`], is no
/// credit: the sensor cannot tell it from a full drink.
const NEGLIGIBLE_PERCENT: u32 = 3;
const NEGLIGIBLE_PULSES: u64 = 3;

/// What a sale still owes after a pour delivered `ml`: what it owed before (the whole
/// `full_ml` drink for a first pour) less those ml. Not the product's volume today less
/// them: an operator who shortened the drink since the sale would short-change the
/// credit; the volume only caps one pour, and the rest stays owed (see `ledger::Owed`).
fn owed_after(owed_before: Option<u32>, full_ml: u32, ml: u32) -> u32 {
    owed_before.unwrap_or(full_ml).saturating_sub(ml)
}

/// Whether `owed_ml` (or any other share) of a `full_ml` drink is below what the sensor can
/// measure.
fn negligible_owed(f: &FlowConfig, full_ml: u32, owed_ml: u32) -> bool {
    let pulses = (f64::from(owed_ml) * f.pulses_per_litre / 1000.0).round() as u64;
    u64::from(owed_ml) * 100 < u64::from(full_ml) * u64::from(NEGLIGIBLE_PERCENT)
        || pulses < NEGLIGIBLE_PULSES
}

/// How a pour by volume that measured `ml` and left `owed` ml of the drink ended, for the
/// sale's record and the vend cycle: the ml its credit owes (None: nothing) and the event.
/// Every end keeps what was measured: a `settled` sale (nothing owed the sensor can tell)
/// is poured whatever stopped the pump, with that trouble told; any other owes `owed`.
/// `delivered_ml` is `ml` when the sensor can tell it from nothing, else 0.
fn volume_end(
    sale_id: SaleId,
    trouble: Option<DispenseError>,
    ml: u32,
    owed: u32,
    settled: bool,
    delivered_ml: u32,
    no_flow_ms: u64,
) -> (Option<u32>, Event) {
    let trouble = trouble.map(|t| match t {
        DispenseError::NoFlow => PourFailure::NoFlow(format!(
            "{ml} ml flowed, then no flow for {} ms: the tank is empty or the line blocked",
            no_flow_ms
        )),
        e @ (DispenseError::Pump(_)
        | DispenseError::Pulse(_)
        | DispenseError::Mdb(_)
        | DispenseError::NotWired(_)) => PourFailure::Pump(e.to_string()),
    });
    if settled {
        return (None, Event::PourFinished { sale_id, trouble });
    }
    // A short pour, or a credit pour capped by a volume shortened since the sale (it
    // reaches its target and still owes the rest): the sale stays a credit, for the rest.
    let failure = trouble.unwrap_or(PourFailure::Short {
        poured_ml: ml,
        target_ml: ml + owed,
    });
    (
        Some(owed),
        Event::PourFailed {
            sale_id,
            failure,
            delivered_ml,
        },
    )
}

/// How a pulse product's dispense ends for the vend cycle. All pulses sent is a poured
/// sale. Fewer is owed whole: the ledger counts what is owed in ml of a drink, not in
/// pulses, and a machine that missed its credit pulses gave nothing it can be trusted on.
fn pulse_end(sale_id: SaleId, spec: &crate::dispense::PulseSpec, d: Dispensed) -> Event {
    match d {
        Dispensed::Delivered { .. } => Event::PourFinished {
            sale_id,
            trouble: None,
        },
        Dispensed::Partial { units, trouble } => Event::PourFailed {
            sale_id,
            failure: PourFailure::Pump(format!(
                "{units} of {} pulses sent, then: {}",
                spec.pulses,
                trouble.map_or_else(|| "stopped".to_string(), |e| e.to_string())
            )),
            delivered_ml: 0,
        },
        Dispensed::Failed(e) => Event::PourFailed {
            sale_id,
            failure: PourFailure::Pump(e.to_string()),
            delivered_ml: 0,
        },
    }
}

/// The end of a dispense that measures nothing (a timed pour, an MDB vend) and did not
/// finish: none of it is counted as delivered, so the vend cycle owes it whole.
fn not_delivered(sale_id: SaleId, trouble: Option<DispenseError>, what: &str) -> Event {
    Event::PourFailed {
        sale_id,
        failure: PourFailure::Pump(
            trouble.map_or_else(|| format!("the {what} was cut short"), |e| e.to_string()),
        ),
        delivered_ml: 0,
    }
}

/// The floor of pulses per no-flow window for `f`: its ml/s over the window, at least 1.
pub(super) fn floor_pulses(f: &FlowConfig) -> u64 {
    let ml = f.min_flow_ml_per_s * f.no_flow_ms as f64 / 1000.0;
    ((ml * f.pulses_per_litre / 1000.0).floor() as u64).max(1)
}

impl Controller {
    /// Product `index`'s pulse pattern, when it is a pulse product.
    pub(super) fn pulse_of(&self, index: usize) -> Option<crate::dispense::PulseSpec> {
        self.settings.pulses.get(index).copied().flatten()
    }

    fn is_pulse(&self, index: usize) -> bool {
        self.pulse_of(index).is_some()
    }

    /// Whether product `index` is poured by the pump (not a pulse product, not an MDB item,
    /// whose index lies past the catalog).
    pub(super) fn is_pump_product(&self, index: usize) -> bool {
        index < self.settings.catalog.len() && !self.is_pulse(index)
    }

    pub(super) fn flow_of(&self, channel: Channel) -> Option<&FlowChannel> {
        self.settings.flow.iter().find(|f| f.channel == channel)
    }

    fn stock_spec(&self, index: usize) -> StockSpec {
        self.settings.stock.get(index).copied().unwrap_or_default()
    }

    /// The products sharing product `index`'s tank (its channel's), `index` first.
    fn tank_of(&self, index: usize) -> Vec<usize> {
        if self.is_pulse(index) {
            return vec![index]; // no tank: not poured by a pump
        }
        let Some(channel) = self.settings.catalog.get(index).map(|p| p.channel) else {
            return Vec::new();
        };
        let others = self
            .settings
            .catalog
            .iter()
            .filter(|p| p.channel == channel && p.index != index && !self.is_pulse(p.index))
            .map(|p| p.index);
        std::iter::once(index).chain(others).collect()
    }

    /// The names of product `index`'s tank, as the ledger keeps its stock.
    fn tank_names(&self, index: usize) -> Vec<String> {
        self.tank_of(index)
            .into_iter()
            .filter_map(|i| self.settings.catalog.get(i).map(|p| p.name.clone()))
            .collect()
    }

    /// The tank of product `index` holds `left` ml: every product of it that keeps stock
    /// counts that, and each one without enough left for its own pour is sold out.
    fn tank_left(&mut self, index: usize, left: u32) {
        for i in self.tank_of(index) {
            if self.stock_spec(i).tank_ml.is_some() {
                self.stock_ml.insert(i, left);
            }
            if left < self.stock_spec(i).pour_ml.unwrap_or(1) {
                self.sold_out.insert(i);
            }
        }
    }

    /// The shortest time limit product `p` may be given: by volume, longer than its
    /// channel's no-flow time (else every pour ends short before a dry tank can show).
    pub(super) fn min_pour(&self, p: &Product) -> Duration {
        match (p.volume_ml, self.flow_of(p.channel)) {
            (Some(_), Some(f)) => Duration::from_millis(f.config.no_flow_ms + 1),
            (Some(_) | None, _) => Duration::from_millis(1),
        }
    }

    pub(super) fn is_sold_out(&self, index: usize) -> bool {
        self.sold_out.contains(&index)
    }

    /// The product as the vend cycle must see it now (sold out or not).
    pub(super) fn with_stock(&self, mut p: Product) -> Product {
        p.sold_out = self.is_sold_out(p.index);
        p
    }

    /// At start: every product that keeps stock is counted (from the config the first
    /// time), and one without enough left for a pour is sold out.
    pub(super) fn load_stock(&mut self) {
        let Ok(l) = &mut self.ledger else { return };
        for p in &self.settings.catalog {
            let spec = self
                .settings
                .stock
                .get(p.index)
                .copied()
                .unwrap_or_default();
            let Some(tank) = spec.tank_ml else {
                match l.is_dry(&p.name) {
                    Ok(true) => {
                        self.sold_out.insert(p.index);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(product = %p.name, error = %e, "cannot read the dry mark")
                    }
                }
                continue;
            };
            match l.stock_or_start(&p.name, tank, spec.start_ml) {
                Ok(s) => {
                    if s.ml < spec.pour_ml.unwrap_or(1) {
                        self.sold_out.insert(p.index);
                    }
                    self.stock_ml.insert(p.index, s.ml);
                }
                Err(e) => tracing::error!(product = %p.name, error = %e, "cannot read the stock"),
            }
        }
        self.load_shared_tanks();
        self.observe_stock();
    }

    /// Products sharing a tank start from one count (an older ledger counted them apart),
    /// and one found dry (uncounted: its mark in the ledger) sells out the whole tank.
    fn load_shared_tanks(&mut self) {
        for p in self.settings.catalog.clone() {
            let tank = self.tank_of(p.index);
            if tank.len() < 2 || tank.iter().any(|&i| i < p.index) {
                continue; // alone on its channel, or its tank was done with a product before
            }
            let names = self.tank_names(p.index);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let Ok(l) = &mut self.ledger else { return };
            let dry = names.iter().any(|n| l.is_dry(n).unwrap_or(false));
            match l.share_tank(&names) {
                Ok(Some(left)) => self.tank_left(p.index, left),
                Ok(None) if dry => self.sold_out.extend(tank.iter().copied()),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(product = %p.name, error = %e, "cannot share the tank's stock")
                }
            }
        }
    }

    /// Runs the pour of `sale`: by volume when the product has one, else timed. A credit
    /// of a short pour pours only what is still owed (`owed_ml`); when the product is no
    /// longer poured by volume (its config changed), the credit is a whole timed pour.
    pub(super) fn spawn_pour(&mut self, sale: Sale, owed_ml: Option<u32>) {
        let tx = self.tx.clone();
        let dispenser = self.dispenser.clone();
        let index = sale.product.index;
        if let Some(plan) = self.mdb_plan(&sale) {
            self.pour_task = Some(tokio::spawn(async move {
                let d = match plan {
                    Ok(plan) => dispenser.dispense(plan).await,
                    Err(why) => Dispensed::Failed(DispenseError::Mdb(why)),
                };
                let ev = match d {
                    Dispensed::Delivered { .. } => Event::PourFinished {
                        sale_id: sale.id,
                        trouble: None,
                    },
                    Dispensed::Partial { trouble, .. } => not_delivered(sale.id, trouble, "vend"),
                    Dispensed::Failed(e) => not_delivered(sale.id, Some(e), "vend"),
                };
                let _ = tx.send(Input::Event(ev));
            }));
            return;
        }
        if let Some(spec) = self.pulse_of(index) {
            self.pour_task = Some(tokio::spawn(async move {
                let ev = pulse_end(sale.id, &spec, dispenser.dispense(Plan::Pulse(spec)).await);
                let _ = tx.send(Input::Event(ev));
            }));
            return;
        }
        let flow = self.flow_of(sale.product.channel).cloned();
        let (Some(full), Some(flow)) = (sale.product.volume_ml, flow) else {
            if sale.product.volume_ml.is_some() {
                // The config refuses this; a volume is never poured blind.
                let _ = tx.send(Input::Event(Event::PourFailed {
                    sale_id: sale.id,
                    failure: PourFailure::Pump("no flow sensor on this channel".into()),
                    delivered_ml: 0,
                }));
                return;
            }
            let counted = self.stock_spec(index).pour_ml;
            // A short credit of a product no longer poured by volume: the timed pour is a
            // whole drink, so nothing is owed after it. Its ml count only if configured
            // (`timed_pour_ml`); unmeasured ml are never guessed into the ledger.
            let clears_owed = owed_ml.is_some();
            let plan = Plan::Timed {
                channel: sale.product.channel,
                duration: sale.product.pour,
            };
            self.pour_task = Some(tokio::spawn(async move {
                let ev = match dispenser.dispense(plan).await {
                    Dispensed::Delivered { .. } => {
                        if counted.is_some() || clears_owed {
                            let _ = tx.send(Input::PouredMl {
                                sale_id: sale.id.clone(),
                                index,
                                ml: counted.unwrap_or(0),
                                owed_ml: None,
                            });
                        }
                        Event::PourFinished {
                            sale_id: sale.id,
                            trouble: None,
                        }
                    }
                    // A timed pour measures nothing: cut short, it is owed whole.
                    Dispensed::Partial { trouble, .. } => not_delivered(sale.id, trouble, "pour"),
                    Dispensed::Failed(e) => not_delivered(sale.id, Some(e), "pour"),
                };
                let _ = tx.send(Input::Event(ev));
            }));
            return;
        };
        let volume = owed_ml.map_or(full, |o| o.min(full));
        let plan = Plan::Volume {
            channel: sale.product.channel,
            sensor: flow.sensor.clone(),
            target: VolumeTarget {
                pulses: flow.config.pulses_for(volume),
                no_flow: Duration::from_millis(flow.config.no_flow_ms),
                floor_pulses: floor_pulses(&flow.config),
                limit: sale.product.pour,
            },
        };
        self.pour_task = Some(tokio::spawn(async move {
            let (pulses, trouble) = match dispenser.dispense(plan).await {
                Dispensed::Delivered { units } => (units, None),
                Dispensed::Partial { units, trouble } => (units, trouble),
                Dispensed::Failed(e) => (0, Some(e)),
            };
            let ml = flow.config.ml_of(pulses).min(volume);
            let owed = owed_after(owed_ml, full, ml);
            // What the counted pulses cannot tell from a full drink is a full drink: no
            // credit for a rounding's few ml, whatever stopped the pump.
            let settled = negligible_owed(&flow.config, full, owed);
            // The same measure for what reached the cup: a few pulses are not a drink.
            let delivered_ml = if negligible_owed(&flow.config, full, ml) {
                0
            } else {
                ml
            };
            let (owed_ml, ev) = volume_end(
                sale.id.clone(),
                trouble,
                ml,
                owed,
                settled,
                delivered_ml,
                flow.config.no_flow_ms,
            );
            let _ = tx.send(Input::PouredMl {
                sale_id: sale.id,
                index,
                ml,
                owed_ml,
            });
            let _ = tx.send(Input::Event(ev));
        }));
    }

    /// At a stop of the program, after the pump's stop: the pour under way sees that stop
    /// (within a check of the pump) and reports what it measured, and a pour that ended
    /// just before has its report in the queue. Both are recorded as any end of a pour:
    /// the drink in the cup is not owed again, and a pour cut short owes only the rest.
    pub(super) async fn take_pour_report(&mut self) {
        if let Some(mut task) = self.pour_task.take() {
            let wait = self.settings.pour.anti_drip + Duration::from_secs(1);
            if tokio::time::timeout(wait, &mut task).await.is_err() {
                tracing::error!("the pour did not report its end at the stop");
                task.abort();
            }
        }
        while let Ok(input) = self.rx.try_recv() {
            if matches!(
                input,
                Input::Event(Event::PourFinished { .. } | Event::PourFailed { .. })
                    | Input::PouredMl { .. }
            ) {
                self.handle(input);
            }
        }
    }

    /// A pour put `ml` into the cup: recorded with its sale, counted off the stock.
    /// `owed_ml` is what the sale still owes after it (None: nothing), which its credit
    /// pours.
    pub(super) fn poured_ml(
        &mut self,
        sale_id: &SaleId,
        index: usize,
        ml: u32,
        owed_ml: Option<u32>,
    ) {
        let Some(name) = self.settings.catalog.get(index).map(|p| p.name.clone()) else {
            return;
        };
        let tank = self.tank_names(index);
        let tank: Vec<&str> = tank.iter().map(String::as_str).collect();
        let Ok(l) = &mut self.ledger else { return };
        if let Err(e) = l.set_owed_ml(sale_id, owed_ml) {
            tracing::error!(sale = %sale_id, error = %e, "could not record the owed ml; a credit pours the whole drink");
        }
        if ml == 0 {
            return;
        }
        match l.record_pour_ml(sale_id, &tank, ml) {
            Ok(Some(left)) => {
                self.tank_left(index, left);
                self.observe_stock();
                let spec = self.stock_spec(index);
                if left < spec.pour_ml.unwrap_or(1) {
                    tracing::warn!(product = %name, left_ml = left, "sold out: not enough left for a pour");
                } else if left <= spec.low_ml {
                    tracing::warn!(product = %name, left_ml = left, "stock is low");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(sale = %sale_id, error = %e, "could not record the poured ml")
            }
        }
    }

    /// The tank of product `index` ran dry: it and every product sharing its tank are
    /// sold out until the operator refills it.
    pub(super) fn mark_sold_out(&mut self, index: usize) {
        let tank = self.tank_of(index);
        self.sold_out.extend(tank.iter().copied());
        let Some(name) = self.settings.catalog.get(index).map(|p| p.name.clone()) else {
            return;
        };
        tracing::warn!(product = %name, "no flow: sold out until refilled");
        let names = self.tank_names(index);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        if let Ok(l) = &mut self.ledger {
            if let Err(e) = l.record_dry(&names) {
                tracing::error!(product = %name, error = %e, "could not record the dry tank");
            }
        }
        for i in tank {
            self.stock_ml.insert(i, 0);
        }
        self.observe_stock();
    }

    /// The operator refilled product `index`: back to its tank size, on sale again.
    pub(super) fn refill(&mut self, index: usize) {
        let Some(name) = self.settings.catalog.get(index).map(|p| p.name.clone()) else {
            return;
        };
        let names = self.tank_names(index);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let refilled = match &mut self.ledger {
            Ok(l) => l.record_refill(&names).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match refilled {
            Ok(left) => {
                for i in self.tank_of(index) {
                    self.sold_out.remove(&i);
                }
                if let Some(left) = left {
                    self.tank_left(index, left);
                    self.observe_stock();
                }
                tracing::info!(product = %name, ?left, "refilled");
                self.op.message = match left {
                    Some(ml) => format!("{name} refilled: {ml} ml."),
                    None => format!("{name} is on sale again."),
                };
            }
            Err(e) => self.op.message = format!("Refill of {name} NOT recorded: {e}"),
        }
    }

    /// What a short pour's credit still owes, if the sale was one.
    pub(super) fn owed_ml_of(&self, sale_id: &SaleId) -> Option<u32> {
        self.ledger.as_ref().ok()?.owed_ml(sale_id).ok()?
    }

    /// The operator menu's stock of product `index`: "4200 of 10000 ml (low)", "SOLD
    /// OUT", or empty when no stock is kept.
    pub(super) fn stock_text(&self, index: usize) -> String {
        let spec = self.stock_spec(index);
        if self.is_sold_out(index) {
            return match (spec.tank_ml, self.stock_ml.get(&index)) {
                (Some(tank), Some(ml)) => format!("SOLD OUT ({ml} of {tank} ml)"),
                (Some(_) | None, _) => "SOLD OUT".into(),
            };
        }
        match (spec.tank_ml, self.stock_ml.get(&index)) {
            (Some(tank), Some(&ml)) if ml <= spec.low_ml => format!("{ml} of {tank} ml (low)"),
            (Some(tank), Some(&ml)) => format!("{ml} of {tank} ml"),
            (Some(_) | None, _) => String::new(),
        }
    }
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
