//! Dispensers: whatever turns a paid sale into goods, behind one trait, so that the vend
//! cycle, the ledger, credits and refunds never know which machine they serve.
//!
//! The controller owns one [`Dispenser`] and hands it a [`Plan`] per sale (or credit, or
//! operator test). [`MachineDispenser`] routes each plan: the L298N pump (timed, or by
//! volume on a flow sensor, as `pump` does it) or a relay pulse ([`pulse`]). Every
//! implementation keeps the pump's guarantees: its outputs are off when the dispense's
//! future is dropped, and a hard stop on an OS thread holds when the runtime is stuck.
//!
//! What a dispense reports is what a customer got: [`Dispensed::Delivered`] (the whole
//! plan), [`Dispensed::Partial`] (some of it, with the measured units) or
//! [`Dispensed::Failed`] (nothing). The controller turns that into the vend cycle's event
//! and the ledger's record.

pub mod fake;
pub mod hat;
pub mod mdb;
pub mod pulse;
pub mod tty;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::pump::flow::{pour_volume_counted, FlowSensor, VolumeOutcome, VolumeTarget};
use crate::pump::{self, Channel, PourSettings, Pump, PumpError};

pub use crate::config::dispenser::PulseSpec;
pub use mdb::MdbDispenser;
pub use pulse::{PulseDispenser, PulseError};

/// One dispense, as the controller plans it from the product and what is owed.
#[derive(Clone)]
pub enum Plan {
    /// The pump forward on `channel` for `duration` (then its anti-drip run).
    Timed {
        channel: Channel,
        duration: Duration,
    },
    /// The pump on `channel` until `sensor` counts `target.pulses`, within `target.limit`.
    Volume {
        channel: Channel,
        sensor: Arc<dyn FlowSensor>,
        target: VolumeTarget,
    },
    /// A GPIO line pulsed high in the product's pattern.
    Pulse(PulseSpec),
    /// Approve the MDB vend the machine asked for, of this amount, and await its result.
    Mdb(crate::mdb::hat::MachineAmount),
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plan::Timed { channel, duration } => f
                .debug_struct("Timed")
                .field("channel", channel)
                .field("duration", duration)
                .finish(),
            Plan::Volume {
                channel, target, ..
            } => f
                .debug_struct("Volume")
                .field("channel", channel)
                .field("target", target)
                .finish_non_exhaustive(),
            Plan::Pulse(s) => f.debug_tuple("Pulse").field(s).finish(),
            Plan::Mdb(a) => f.debug_tuple("Mdb").field(a).finish(),
        }
    }
}

/// What went wrong in a dispense, with its source kept.
#[derive(Debug, thiserror::Error)]
pub enum DispenseError {
    /// Shown as the pump's own error: the vend cycle's failure already says "pump".
    #[error(transparent)]
    Pump(#[from] PumpError),
    /// A pour by volume saw its flow stop (a dry tank, a blocked line).
    #[error("no flow")]
    NoFlow,
    #[error("pulse line: {0}")]
    Pulse(#[from] PulseError),
    /// The MDB vend failed or was not answered (the HAT says why, or nothing in time).
    #[error("MDB vend: {0}")]
    Mdb(String),
    /// The plan needs hardware this machine does not have (a config that slipped through).
    #[error("no {0} is wired on this machine")]
    NotWired(&'static str),
}

/// How a dispense ended. `units` are what was measured: flow-sensor pulses for a pour by
/// volume, pulses sent for a pulse product, 0 for a timed pour (nothing is measured).
#[derive(Debug)]
pub enum Dispensed {
    /// The whole plan was delivered.
    Delivered { units: u64 },
    /// Part of it: `units` measured, then `trouble` (None: a pour by volume reached its
    /// time limit first).
    Partial {
        units: u64,
        trouble: Option<DispenseError>,
    },
    /// Nothing was delivered.
    Failed(DispenseError),
}

/// Anything that delivers a sale. Implementations stop their outputs when the returned
/// future is dropped, and bound every run by a hard stop that needs no runtime.
#[async_trait]
pub trait Dispenser: Send + Sync {
    async fn dispense(&self, plan: Plan) -> Dispensed;
    /// Every output off now (shutdown). An error is told; the hard stops still hold.
    fn stop(&self) -> Result<(), DispenseError>;
}

/// The L298N pump, timed or by volume, exactly as `pump` pours.
#[derive(Clone, Debug)]
pub struct PumpDispenser {
    pump: Pump,
    settings: PourSettings,
}

impl PumpDispenser {
    pub fn new(pump: Pump, settings: PourSettings) -> PumpDispenser {
        PumpDispenser { pump, settings }
    }

    async fn timed(&self, channel: Channel, duration: Duration) -> Dispensed {
        match pump::pour(&self.pump, channel, duration, self.settings).await {
            Ok(()) => Dispensed::Delivered { units: 0 },
            Err(e) => Dispensed::Failed(e.into()),
        }
    }

    async fn volume(
        &self,
        channel: Channel,
        sensor: &dyn FlowSensor,
        target: VolumeTarget,
    ) -> Dispensed {
        let (result, units) =
            pour_volume_counted(&self.pump, channel, sensor, target, self.settings).await;
        match result {
            Ok(VolumeOutcome::Reached { .. }) => Dispensed::Delivered { units },
            Ok(VolumeOutcome::Short { .. }) => Dispensed::Partial {
                units,
                trouble: None,
            },
            Ok(VolumeOutcome::NoFlow { .. }) => Dispensed::Partial {
                units,
                trouble: Some(DispenseError::NoFlow),
            },
            // Pulses counted before the fault are kept: that much is in the cup.
            Err(e) => Dispensed::Partial {
                units,
                trouble: Some(e.into()),
            },
        }
    }
}

/// The machine's dispensers, one plan routed to the one that serves it.
pub struct MachineDispenser {
    pump: PumpDispenser,
    pulse: Option<PulseDispenser>,
    mdb: Option<MdbDispenser>,
}

impl MachineDispenser {
    pub fn new(pump: PumpDispenser, pulse: Option<PulseDispenser>) -> MachineDispenser {
        MachineDispenser {
            pump,
            pulse,
            mdb: None,
        }
    }

    /// The machine sells through an MDB HAT too.
    pub fn with_mdb(mut self, mdb: MdbDispenser) -> MachineDispenser {
        self.mdb = Some(mdb);
        self
    }
}

#[async_trait]
impl Dispenser for MachineDispenser {
    async fn dispense(&self, plan: Plan) -> Dispensed {
        match plan {
            Plan::Timed { channel, duration } => self.pump.timed(channel, duration).await,
            Plan::Volume {
                channel,
                sensor,
                target,
            } => self.pump.volume(channel, sensor.as_ref(), target).await,
            Plan::Pulse(spec) => match &self.pulse {
                Some(p) => p.run(&spec).await,
                None => Dispensed::Failed(DispenseError::NotWired("pulse line")),
            },
            Plan::Mdb(amount) => match &self.mdb {
                Some(m) => m.run(amount).await,
                None => Dispensed::Failed(DispenseError::NotWired("MDB HAT")),
            },
        }
    }

    fn stop(&self) -> Result<(), DispenseError> {
        // Both are tried; the first error is told.
        let pump = self.pump.pump.stop().map_err(DispenseError::from);
        let pulse = self.pulse.as_ref().map_or(Ok(()), |p| p.stop());
        pump.and(pulse)
    }
}
