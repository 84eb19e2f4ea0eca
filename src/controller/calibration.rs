//! The operator's flow-sensor tools, for the controller: the calibration pour and the
//! measured ml that set a channel's pulses per litre, the test pour by volume, and the flow
//! lines and saved calibrations of the operator menu. Apart from `flow`, which owns what a
//! customer's pour does, so that each room stays one job.

use super::flow::floor_pulses;
use super::*;
use crate::pump::flow::{pour_volume, VolumeOutcome, VolumeTarget};

/// What the calibration pour pours, by the channel's current calibration: enough for a
/// kitchen measuring jug to read to about 1 %.
pub const CALIBRATION_ML: u32 = 200;

/// A calibration pour counting fewer pulses than this measures nothing: one pulse either
/// way would move the figure by 2 % or more.
pub const MIN_CALIBRATION_PULSES: u64 = 50;

/// The most a calibration may move the figure in use (a share of it): sensors of one type
/// differ by about 10 %, so more is a misread jug or a slipped digit, and every later
/// drink would be wrong by as much.
pub const MAX_CALIBRATION_CHANGE: f64 = 0.5;

impl Controller {
    /// "Calibrate": pours about [`CALIBRATION_ML`] into a jug and keeps the pulses counted.
    pub(super) fn calibration_pour(&mut self, channel: Channel) {
        let Some(flow) = self.flow_of(channel).cloned() else {
            self.op.message = format!("Channel {channel} has no flow sensor.");
            return;
        };
        let target = VolumeTarget {
            pulses: flow.config.pulses_for(CALIBRATION_ML),
            no_flow: Duration::from_millis(flow.config.no_flow_ms),
            floor_pulses: floor_pulses(&flow.config),
            limit: self.settings.max_pour,
        };
        self.op.calibration = None;
        self.op.message = format!(
            "Calibrating channel {channel}: pouring about {CALIBRATION_ML} ml into a measuring jug…"
        );
        let (pump, settings, tx) = (self.pump.clone(), self.settings.pour, self.tx.clone());
        self.run_worn(channel, async move {
            let r = pour_volume(&pump, channel, flow.sensor.as_ref(), target, settings).await;
            let pulses = match r {
                Ok(VolumeOutcome::Reached { pulses } | VolumeOutcome::Short { pulses }) => {
                    Ok(pulses)
                }
                Ok(VolumeOutcome::NoFlow { .. }) => {
                    Err("no flow: fill the tank and prime the line first".to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(Input::CalibrationPoured { channel, pulses });
        });
    }

    pub(super) fn calibration_poured(&mut self, channel: Channel, pulses: Result<u64, String>) {
        if self.state != State::Service {
            return;
        }
        match pulses {
            Ok(n) if n < MIN_CALIBRATION_PULSES => {
                self.op.calibration = None;
                self.op.message = format!(
                    "Calibration of channel {channel} failed: only {n} pulses counted, too few to measure by (at least {MIN_CALIBRATION_PULSES}). Check the flow and pour again."
                );
            }
            Err(e) => {
                self.op.calibration = None;
                self.op.message = format!("Calibration of channel {channel} failed: {e}");
            }
            Ok(n) => {
                self.op.calibration = Some((channel, n));
                self.op.message =
                    format!("Counted {n} pulses. Read the jug and enter the ml it holds.");
            }
        }
    }

    /// The measured ml of the calibration pour: the new pulses per litre, in use and saved.
    pub(super) fn calibrate(&mut self, channel: Channel, measured_ml: u32) {
        if measured_ml == 0 {
            self.op.calibration = None;
            self.op.message = "Calibration cancelled; nothing changed.".into();
            return;
        }
        let Some((poured_on, pulses)) = self.op.calibration else {
            self.op.message = "Pour the calibration amount first.".into();
            return;
        };
        if poured_on != channel {
            self.op.message = format!("The calibration pour was on channel {poured_on}.");
            return;
        }
        let Some(ppl) = crate::config::flow::calibrate(pulses, measured_ml) else {
            self.op.message = format!(
                "{pulses} pulses for {measured_ml} ml is no flow sensor's figure; pour again."
            );
            return;
        };
        let Some(flow) = self.settings.flow.iter_mut().find(|f| f.channel == channel) else {
            return;
        };
        let old = flow.config.pulses_per_litre;
        if (ppl / old - 1.0).abs() > MAX_CALIBRATION_CHANGE {
            // Kept pending: the operator reads the jug again and types the right figure.
            self.op.message = format!(
                "{measured_ml} ml gives {ppl:.1} pulses per litre, more than {:.0} % from the {old:.1} in use: a slip of the keypad? Nothing changed; enter the ml again.",
                MAX_CALIBRATION_CHANGE * 100.0
            );
            return;
        }
        flow.config.pulses_per_litre = ppl;
        self.op.calibration = None;
        let saved = match &self.settings.overrides_path {
            Some(path) => crate::operator::load_overrides(path)
                .and_then(|mut o| {
                    o.flow.retain(|f| f.channel != channel);
                    o.flow.push(crate::operator::FlowOverride {
                        channel,
                        pulses_per_litre: ppl,
                    });
                    crate::operator::save_overrides(path, &o)
                })
                .map_err(|e| e.to_string()),
            None => Ok(()),
        };
        tracing::info!(%channel, pulses, measured_ml, old, new = ppl, "flow sensor calibrated");
        self.op.message = match saved {
            Ok(()) => format!(
                "Channel {channel}: {ppl:.1} pulses per litre (was {old:.1}). Saved and in use."
            ),
            Err(e) => {
                format!("Channel {channel}: {ppl:.1} pulses per litre, in use but NOT saved: {e}")
            }
        };
    }

    /// The operator's test pour of a product poured by volume: by volume too (a timed run
    /// of its time limit would overfill the glass). Not counted off the stock.
    pub(super) fn test_pour_volume(&mut self, p: Product, ml: u32) {
        let Some(flow) = self.flow_of(p.channel).cloned() else {
            self.op.message = format!("Channel {} has no flow sensor.", p.channel);
            return;
        };
        let target = VolumeTarget {
            pulses: flow.config.pulses_for(ml),
            no_flow: Duration::from_millis(flow.config.no_flow_ms),
            floor_pulses: floor_pulses(&flow.config),
            limit: p.pour,
        };
        self.op.message = format!("Test pour: {} ml of {}…", ml, p.name);
        let (pump, settings, tx) = (self.pump.clone(), self.settings.pour, self.tx.clone());
        self.run_worn(p.channel, async move {
            let r = pour_volume(&pump, p.channel, flow.sensor.as_ref(), target, settings).await;
            let note = match r {
                Ok(VolumeOutcome::Reached { pulses }) => format!(
                    "Test pour of {} done: {} ml ({pulses} pulses).",
                    p.name,
                    flow.config.ml_of(pulses)
                ),
                Ok(VolumeOutcome::Short { pulses }) => format!(
                    "Test pour of {}: only {} of {ml} ml in the time allowed.",
                    p.name,
                    flow.config.ml_of(pulses)
                ),
                Ok(VolumeOutcome::NoFlow { .. }) => {
                    format!("Test pour of {}: no flow. Is the tank empty?", p.name)
                }
                Err(e) => format!("Test pour failed: {e}"),
            };
            let _ = tx.send(Input::OperatorNote(note));
        });
    }

    /// An operator's pour on `channel`, counted as pump wear until it ends or is cut short.
    fn run_worn(
        &mut self,
        channel: Channel,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let wear = self.metrics.wear(&channel.to_string());
        self.run_op_pump(async move {
            let _wear = wear;
            task.await;
        });
    }

    /// The calibrations already in the overrides file, kept when the products are saved.
    pub(super) fn saved_flow_overrides(&self) -> Vec<crate::operator::FlowOverride> {
        self.settings
            .overrides_path
            .as_deref()
            .and_then(|p| crate::operator::load_overrides(p).ok())
            .map(|o| o.flow)
            .unwrap_or_default()
    }

    /// The operator menu's flow lines: each sensor's calibration and its live pulse rate
    /// (the dry-run test: prime the pump and watch it).
    pub(super) fn flow_lines(&mut self) -> Vec<OpFlow> {
        let now = Instant::now();
        let mut out = Vec::new();
        for f in &self.settings.flow {
            let pulses = f.sensor.pulses();
            let rate = match self.flow_rate.get(&f.channel).copied() {
                Some((at, _, rate)) if now.duration_since(at) < FLOW_RATE_EVERY => rate,
                Some((at, before, _)) => {
                    let dt = now.duration_since(at).as_secs_f64();
                    let r = pulses.saturating_sub(before) as f64 / dt;
                    self.flow_rate.insert(f.channel, (now, pulses, r));
                    r
                }
                None => {
                    self.flow_rate.insert(f.channel, (now, pulses, 0.0));
                    0.0
                }
            };
            out.push(OpFlow {
                channel: f.channel,
                text: format!(
                    "Channel {}: {:.1} pulses per litre; now {:.1} pulses/s ({:.0} ml/s)",
                    f.channel,
                    f.config.pulses_per_litre,
                    rate,
                    rate * 1000.0 / f.config.pulses_per_litre
                ),
            });
        }
        out
    }
}

/// How often the live pulse rate is recomputed.
const FLOW_RATE_EVERY: Duration = Duration::from_millis(500);
