//! Pouring by volume: a hall-effect flow sensor's pulses, counted lock-free, and the pour
//! that stops on them.
//!
//! The sensor's edges are counted on a thread of their own (rppal's interrupt thread on the
//! Pi, a tokio task in the mock), never on the UI thread or the controller loop. The count
//! is one [`PulseCounter`]: an atomic add per accepted edge and a wake-up of the pour, with
//! no lock and no allocation, so the sensor's top rate costs next to nothing.
//!
//! [`pour_volume`] runs the pump until the counted pulses reach the target, and stops it
//! early, as a failure, when the flow is missing or too weak (a dry tank ruins a pump). The
//! hard maximum run time of [`super::Pump`] holds beneath all of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{sleep_until, Instant};

use super::{Channel, Direction, PourSettings, Pump, PumpError, POUR_TICK};

/// A flow sensor as the pour sees it: a count of pulses that only goes up.
pub trait FlowSensor: Send + Sync {
    /// Pulses counted since the sensor was opened.
    fn pulses(&self) -> u64;
    /// Resolves at the next pulse (or soon after; callers re-read [`FlowSensor::pulses`]).
    fn pulsed(&self) -> tokio::sync::futures::Notified<'_>;
}

/// The fastest a YF-S201 flows, in litres per minute (its datasheet's top).
pub const YF_S201_MAX_L_PER_MIN: f64 = 30.0;

/// The debounce a sensor's top rate allows: a quarter of its shortest pulse period, so a
/// real pulse is never dropped while contact bounce and ringing on a long cable are. At
/// 450 pulses per litre and 30 l/min (225 Hz) that is about 1.1 ms.
pub fn debounce_for(pulses_per_litre: f64, max_l_per_min: f64) -> Duration {
    let hz = pulses_per_litre * max_l_per_min / 60.0;
    if hz <= 0.0 || !hz.is_finite() {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(0.25 / hz)
}

struct Counter {
    count: AtomicU64,
    /// The time of the last accepted edge, in µs of the edge source's clock (+1, so 0 is
    /// "none yet").
    last_us: AtomicU64,
    rejected: AtomicU64,
    debounce_us: u64,
    wake: Notify,
}

/// The shared pulse count an edge source feeds. Clone it freely.
#[derive(Clone)]
pub struct PulseCounter {
    inner: Arc<Counter>,
}

impl std::fmt::Debug for PulseCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseCounter")
            .field("pulses", &self.pulses())
            .finish_non_exhaustive()
    }
}

impl PulseCounter {
    pub fn new(debounce: Duration) -> PulseCounter {
        PulseCounter {
            inner: Arc::new(Counter {
                count: AtomicU64::new(0),
                last_us: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                debounce_us: debounce.as_micros() as u64,
                wake: Notify::new(),
            }),
        }
    }

    /// One edge from the sensor at `t_us` on a monotonic µs clock. It counts unless it came
    /// within the debounce of the last counted edge (then it was bounce, not flow). Called
    /// by one edge source only: no allocation, no lock.
    pub fn edge(&self, t_us: u64) -> bool {
        let c = &self.inner;
        let last = c.last_us.load(Ordering::Relaxed);
        if last != 0 && t_us.saturating_add(1).saturating_sub(last) < c.debounce_us {
            c.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        c.last_us.store(t_us.saturating_add(1), Ordering::Relaxed);
        c.count.fetch_add(1, Ordering::Release);
        c.wake.notify_one();
        true
    }

    /// How many clones of this counter exist (a simulated sensor stops when it is the last).
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Edges dropped by the debounce since start.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }
}

impl FlowSensor for PulseCounter {
    fn pulses(&self) -> u64 {
        self.inner.count.load(Ordering::Acquire)
    }

    fn pulsed(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.wake.notified()
    }
}

/// A flow sensor on a Pi input through rppal: edges arrive on rppal's interrupt thread,
/// which feeds the counter. Dropping it stops that thread.
pub struct RppalFlow {
    _pin: std::sync::Mutex<rppal::gpio::InputPin>,
    counter: PulseCounter,
}

impl FlowSensor for RppalFlow {
    fn pulses(&self) -> u64 {
        self.counter.pulses()
    }

    fn pulsed(&self) -> tokio::sync::futures::Notified<'_> {
        self.counter.pulsed()
    }
}

impl RppalFlow {
    /// Claims `pin` as an input with the given pull and counts its falling edges (the
    /// open-collector output pulls the line low once per pulse).
    pub fn open(pin: u8, pull_up: bool, debounce: Duration) -> Result<RppalFlow, PumpError> {
        let rppal_err = |what: String| move |source| PumpError::Rppal { what, source };
        let gpio = rppal::gpio::Gpio::new().map_err(rppal_err("cannot open GPIO".to_string()))?;
        let p = gpio.get(pin).map_err(rppal_err(format!(
            "cannot claim the flow sensor's BCM {pin}"
        )))?;
        let mut input = if pull_up {
            p.into_input_pullup()
        } else {
            p.into_input_pulldown()
        };
        let counter = PulseCounter::new(debounce);
        let feed = counter.clone();
        // The kernel debounces too; the counter's own check covers kernels without it.
        input
            .set_async_interrupt(
                rppal::gpio::Trigger::FallingEdge,
                (!debounce.is_zero()).then_some(debounce),
                move |ev| {
                    feed.edge(ev.timestamp.as_micros() as u64);
                },
            )
            .map_err(rppal_err(format!("cannot watch BCM {pin} for flow pulses")))?;
        Ok(RppalFlow {
            _pin: std::sync::Mutex::new(input),
            counter,
        })
    }

    pub fn counter(&self) -> PulseCounter {
        self.counter.clone()
    }
}

/// What a pour by volume is to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VolumeTarget {
    /// Stop at this many pulses.
    pub pulses: u64,
    /// Give up as "no flow" when a window this long passes with too few pulses.
    pub no_flow: Duration,
    /// The fewest pulses each window after the first must bring (at least 1); the first
    /// window, with the pump spinning up, needs only one.
    pub floor_pulses: u64,
    /// The longest the pour may take: reaching it first is a short pour.
    pub limit: Duration,
}

/// How a pour by volume ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeOutcome {
    /// The target was reached; `pulses` were counted during the forward run.
    Reached { pulses: u64 },
    /// The flow was missing or fell below the floor: the pump was stopped at once.
    NoFlow { pulses: u64 },
    /// The time limit came before the volume.
    Short { pulses: u64 },
}

impl VolumeOutcome {
    pub fn pulses(self) -> u64 {
        match self {
            VolumeOutcome::Reached { pulses }
            | VolumeOutcome::NoFlow { pulses }
            | VolumeOutcome::Short { pulses } => pulses,
        }
    }
}

/// How long before the pump's hard maximum run time a pour by volume ends by its own
/// timer. At exactly the maximum the watchdogs (an OS thread and a tokio task) race the
/// pour's timer and usually win: the pour would end as a pump fault, with its pulses lost
/// and the machine out of service, for what is only a short pour.
pub const WATCHDOG_MARGIN: Duration = Duration::from_millis(250);

/// Runs the pump forward until `target` is met or the flow fails, then (after a full pour)
/// the anti-drip reverse run. The pump is stopped on every path out of this function.
pub async fn pour_volume(
    pump: &Pump,
    channel: Channel,
    sensor: &dyn FlowSensor,
    target: VolumeTarget,
    settings: PourSettings,
) -> Result<VolumeOutcome, PumpError> {
    pour_volume_counted(pump, channel, sensor, target, settings)
        .await
        .0
}

/// [`pour_volume`], with the pulses counted in the forward run even when it ends in an
/// error: what flowed into the cup is owed to nobody, whatever stopped the pump.
pub async fn pour_volume_counted(
    pump: &Pump,
    channel: Channel,
    sensor: &dyn FlowSensor,
    target: VolumeTarget,
    settings: PourSettings,
) -> (Result<VolumeOutcome, PumpError>, u64) {
    // Dropped mid-run (its task aborted at shutdown), the future never reaches the stop
    // below: the guard stops the pump then, forward or in the anti-drip run, rather than
    // leaving it to the hard maximum run time.
    let guard = super::StopOnDrop::new(pump);
    let mut counted = 0;
    let result = pour_volume_inner(
        pump,
        channel,
        sensor,
        target,
        settings,
        &mut counted,
        &guard,
    )
    .await;
    let stopped = pump.stop();
    let result = match (result, stopped) {
        (Ok(o), Ok(())) => Ok(o),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    };
    (result, counted)
}

async fn pour_volume_inner(
    pump: &Pump,
    channel: Channel,
    sensor: &dyn FlowSensor,
    t: VolumeTarget,
    s: PourSettings,
    counted_out: &mut u64,
    guard: &super::StopOnDrop<'_>,
) -> Result<VolumeOutcome, PumpError> {
    let ramp = !s.soft_start.is_zero() && s.duty > 0.0;
    let floor = s.duty / 3.0;
    let base = sensor.pulses();
    let start = Instant::now();
    let end = start + t.limit.min(pump.max_run().saturating_sub(WATCHDOG_MARGIN));
    let run = pump.start(
        channel,
        Direction::Forward,
        if ramp { floor } else { s.duty },
    )?;
    guard.started(run);
    let mut window_end = start + t.no_flow;
    let mut window_start = 0;
    let mut first_window = true;
    // A tank that runs dry mid-pour is caught by the gap since the last pulse, not only at
    // the end of a window: a window's floor alone lets a dry pump run up to two windows.
    let mut last_count = 0;
    let mut last_pulse = start;
    // Kept apart from the pulses' wake-ups: at the sensor's top rate a pulse comes every
    // few ms, and the pump's check and ramp must still run on their own schedule.
    let mut next_check = start + POUR_TICK;
    let outcome = loop {
        // Armed before the count is read, so a pulse in between still wakes us.
        let pulsed = sensor.pulsed();
        let counted = sensor.pulses().saturating_sub(base);
        *counted_out = counted;
        if counted >= t.pulses {
            break VolumeOutcome::Reached { pulses: counted };
        }
        let now = Instant::now();
        if counted > last_count {
            last_count = counted;
            last_pulse = now;
        }
        if now >= last_pulse + t.no_flow {
            break VolumeOutcome::NoFlow { pulses: counted };
        }
        if now >= window_end {
            let need = if first_window {
                1
            } else {
                t.floor_pulses.max(1)
            };
            if counted - window_start < need {
                break VolumeOutcome::NoFlow { pulses: counted };
            }
            first_window = false;
            window_start = counted;
            window_end = now + t.no_flow;
        }
        if now >= end {
            break VolumeOutcome::Short { pulses: counted };
        }
        if now >= next_check {
            pump.check(run)?;
            if ramp {
                let frac = ((now - start).as_secs_f64() / s.soft_start.as_secs_f64()).min(1.0);
                pump.set_duty(channel, floor + (s.duty - floor) * frac)?;
            }
            next_check = now + POUR_TICK;
        }
        let wake = next_check
            .min(end)
            .min(window_end)
            .min(last_pulse + t.no_flow);
        tokio::select! {
            () = pulsed => {}
            () = sleep_until(wake) => {}
        }
    };
    pump.check(run)?;
    pump.stop()?;
    if matches!(outcome, VolumeOutcome::Reached { .. }) && !s.anti_drip.is_zero() {
        let run = pump.start(channel, Direction::Reverse, s.duty)?;
        guard.started(run);
        tokio::time::sleep(s.anti_drip).await;
        pump.check(run)?;
        pump.stop()?;
    }
    Ok(outcome)
}

#[cfg(test)]
#[path = "flow_tests.rs"]
mod tests;
