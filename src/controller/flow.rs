//! Pouring by volume and keeping stock, for the controller: which pour a product gets (by
//! its channel's flow sensor, or timed), what a measured pour does to the ledger and the
//! stock, when a product is sold out, and the operator's refill and calibration.
//!
//! Sold out is the controller's own set, applied to a product whenever a tap or a credit
//! reaches the vend cycle (whose pure step refuses it): the operator's product edits copy
//! the catalog, so a flag kept in it would be lost on their save.

use super::*;
use crate::config::flow::FlowConfig;
use crate::pump::flow::{pour_volume, FlowSensor, VolumeOutcome, VolumeTarget};

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

/// The floor of pulses per no-flow window for `f`: its ml/s over the window, at least 1.
fn floor_pulses(f: &FlowConfig) -> u64 {
    let ml = f.min_flow_ml_per_s * f.no_flow_ms as f64 / 1000.0;
    ((ml * f.pulses_per_litre / 1000.0).floor() as u64).max(1)
}

impl Controller {
    pub(super) fn flow_of(&self, channel: Channel) -> Option<&FlowChannel> {
        self.settings.flow.iter().find(|f| f.channel == channel)
    }

    fn stock_spec(&self, index: usize) -> StockSpec {
        self.settings.stock.get(index).copied().unwrap_or_default()
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
            let spec = self.settings.stock.get(p.index).copied().unwrap_or_default();
            let Some(tank) = spec.tank_ml else { continue };
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
    }

    /// Runs the pour of `sale`: by volume when the product has one, else timed. A credit
    /// of a short pour pours only what is still owed (`owed_ml`).
    pub(super) fn spawn_pour(&mut self, sale: Sale, owed_ml: Option<u32>) {
        let tx = self.tx.clone();
        let pump = self.pump.clone();
        let settings = self.settings.pour;
        let index = sale.product.index;
        let Some(volume) = owed_ml.or(sale.product.volume_ml) else {
            let counted = self.stock_spec(index).pour_ml;
            self.pour_task = Some(tokio::spawn(async move {
                let result =
                    pump::pour(&pump, sale.product.channel, sale.product.pour, settings).await;
                let ev = match result {
                    Ok(()) => {
                        if let Some(ml) = counted {
                            let _ = tx.send(Input::PouredMl {
                                sale_id: sale.id.clone(),
                                index,
                                ml,
                            });
                        }
                        Event::PourFinished { sale_id: sale.id }
                    }
                    Err(e) => Event::PourFailed {
                        sale_id: sale.id,
                        failure: PourFailure::Pump(e.to_string()),
                    },
                };
                let _ = tx.send(Input::Event(ev));
            }));
            return;
        };
        let Some(flow) = self.flow_of(sale.product.channel).cloned() else {
            // The config refuses this; a volume is never poured blind.
            let _ = tx.send(Input::Event(Event::PourFailed {
                sale_id: sale.id,
                failure: PourFailure::Pump("no flow sensor on this channel".into()),
            }));
            return;
        };
        let target = VolumeTarget {
            pulses: flow.config.pulses_for(volume),
            no_flow: Duration::from_millis(flow.config.no_flow_ms),
            floor_pulses: floor_pulses(&flow.config),
            limit: sale.product.pour,
        };
        self.pour_task = Some(tokio::spawn(async move {
            let result = pour_volume(
                &pump,
                sale.product.channel,
                flow.sensor.as_ref(),
                target,
                settings,
            )
            .await;
            let measured = |pulses| flow.config.ml_of(pulses).min(volume);
            let ev = match result {
                Ok(VolumeOutcome::Reached { pulses }) => {
                    let _ = tx.send(Input::PouredMl {
                        sale_id: sale.id.clone(),
                        index,
                        ml: measured(pulses),
                    });
                    Event::PourFinished { sale_id: sale.id }
                }
                Ok(VolumeOutcome::Short { pulses }) => {
                    let ml = measured(pulses);
                    let _ = tx.send(Input::PouredMl {
                        sale_id: sale.id.clone(),
                        index,
                        ml,
                    });
                    Event::PourFailed {
                        sale_id: sale.id,
                        failure: PourFailure::Short {
                            poured_ml: ml,
                            target_ml: volume,
                        },
                    }
                }
                Ok(VolumeOutcome::NoFlow { pulses }) => Event::PourFailed {
                    sale_id: sale.id,
                    failure: PourFailure::NoFlow(format!(
                        "{} ml flowed, then no flow for {} ms: the tank is empty or the line blocked",
                        flow.config.ml_of(pulses),
                        flow.config.no_flow_ms
                    )),
                },
                Err(e) => Event::PourFailed {
                    sale_id: sale.id,
                    failure: PourFailure::Pump(e.to_string()),
                },
            };
            let _ = tx.send(Input::Event(ev));
        }));
    }

    /// A pour put `ml` into the cup: recorded with its sale, counted off the stock.
    pub(super) fn poured_ml(&mut self, sale_id: &SaleId, index: usize, ml: u32) {
        let Some(name) = self.settings.catalog.get(index).map(|p| p.name.clone()) else {
            return;
        };
        let Ok(l) = &mut self.ledger else { return };
        match l.record_pour_ml(sale_id, &name, ml) {
            Ok(Some(left)) => {
                self.stock_ml.insert(index, left);
                let spec = self.stock_spec(index);
                if left < spec.pour_ml.unwrap_or(1) {
                    tracing::warn!(product = %name, left_ml = left, "sold out: not enough left for a pour");
                    self.sold_out.insert(index);
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

    /// The tank of product `index` ran dry: sold out until the operator refills it.
    pub(super) fn mark_sold_out(&mut self, index: usize) {
        self.sold_out.insert(index);
        let Some(name) = self.settings.catalog.get(index).map(|p| p.name.clone()) else {
            return;
        };
        tracing::warn!(product = %name, "no flow: sold out until refilled");
        if let Ok(l) = &mut self.ledger {
            if let Err(e) = l.record_dry(&name) {
                tracing::error!(product = %name, error = %e, "could not record the dry tank");
            }
        }
        self.stock_ml.insert(index, 0);
    }

    /// The operator refilled product `index`: back to its tank size, on sale again.
    pub(super) fn refill(&mut self, index: usize) {
        let Some(name) = self.settings.catalog.get(index).map(|p| p.name.clone()) else {
            return;
        };
        let refilled = match &mut self.ledger {
            Ok(l) => l.record_refill(&name).map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        match refilled {
            Ok(left) => {
                if let Some(left) = left {
                    self.stock_ml.insert(index, left);
                }
                self.sold_out.remove(&index);
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
