//! The pump: an RS385-class 12 V pump behind an L298N H-bridge.
//!
//! Three layers, each small: [`Pins`] is raw GPIO (rppal on the Pi, [`gpiochip`] through the
//! kernel's GPIO character device on other boards, [`mock`] elsewhere);
//! [`L298n`] knows the bridge (IN1/IN2 pick the direction, EN gates the motor, stop is EN low
//! and both inputs low); [`Pump`] is the shared handle everyone uses. `Pump` arms a watchdog
//! on every start that stops the motor at the hard maximum run time whatever the rest of the
//! program is doing, and [`Pump::emergency_stop`] is safe to call from a signal task or a
//! panic hook.
//!
//! The hard stop is armed twice. A tokio task keeps virtual time exact in paused-time tests;
//! a plain OS thread per pump, sleeping on std's monotonic clock, holds when every runtime
//! worker is stuck (fsync'd ledger commits, PIN hashing, a bug). Whichever fires first stops
//! that run; the other finds it already stopped.

pub mod flow;
pub mod flow_mock;
pub mod gpiochip;
pub mod mock;
pub mod rpi;

use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::{sleep_until, Instant};

/// An L298N channel: A (IN1/IN2/ENA) or B (IN3/IN4/ENB).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Channel {
    A,
    B,
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Channel::A => "A",
            Channel::B => "B",
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Direction {
    /// Pumping the drink out.
    Forward,
    /// Pulling the line back (anti-drip, cleaning).
    Reverse,
}

/// BCM pin numbers of one bridge channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BridgePins {
    /// IN1 (channel A) or IN3 (channel B): high for forward.
    pub forward: u8,
    /// IN2 or IN4: high for reverse.
    pub reverse: u8,
    /// ENA or ENB: the motor runs only while this is high (or PWM).
    pub enable: u8,
}

/// What can go wrong with the pump, with the underlying error kept as the source (so it is
/// neither `Clone` nor `PartialEq`: rppal's and std's errors are not).
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    /// rppal refused: the GPIO chip cannot be opened, a pin is taken, PWM failed.
    #[error("GPIO error: {what}: {source}")]
    Rppal {
        what: String,
        #[source]
        source: rppal::gpio::Error,
    },
    /// The Linux GPIO character device refused (gpio.backend = "gpiochip").
    #[error("GPIO error: {what}: {source}")]
    Gpiochip {
        what: String,
        #[source]
        source: gpiocdev::Error,
    },
    /// A pin the bridge drives was never claimed (a wiring table and a claim disagree).
    #[error("GPIO error: BCM {0} was not claimed")]
    NotClaimed(u8),
    /// The mock pins' trace file cannot be opened.
    #[error("GPIO error: cannot open the pin trace file {path}: {source}")]
    Trace {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A GPIO problem told in words only. Kept for callers outside this module that still
    /// build one by hand (hwtest's trace file); prefer a variant that keeps its source.
    #[error("pump fault: {0}")]
    Fault(String),
    #[error("the watchdog stopped the pump at the maximum run time of {0:?}")]
    WatchdogTripped(Duration),
    #[error("pump channel {0} is not wired in the configuration")]
    NoSuchChannel(Channel),
    #[error("cannot start the pump's hard-stop thread: {0}")]
    HardStop(#[source] std::io::Error),
}

/// Raw GPIO outputs, by BCM number.
pub trait Pins: Send {
    fn set_level(&mut self, pin: u8, high: bool) -> Result<(), PumpError>;
    /// PWM with `duty` in 0.0..=1.0 on `pin`.
    fn set_duty(&mut self, pin: u8, duty: f64) -> Result<(), PumpError>;
    /// A sanity check during a pour (read-back of the outputs); an error aborts the pour.
    fn check(&mut self) -> Result<(), PumpError>;
}

/// The L298N dual H-bridge.
pub struct L298n {
    pins: Box<dyn Pins>,
    a: BridgePins,
    b: Option<BridgePins>,
}

impl L298n {
    pub fn new(pins: Box<dyn Pins>, a: BridgePins, b: Option<BridgePins>) -> L298n {
        L298n { pins, a, b }
    }

    fn channel(&self, channel: Channel) -> Result<BridgePins, PumpError> {
        match channel {
            Channel::A => Ok(self.a),
            Channel::B => self.b.ok_or(PumpError::NoSuchChannel(channel)),
        }
    }

    /// Sets the direction first, then enables, so the motor never starts the wrong way.
    pub fn run(&mut self, channel: Channel, dir: Direction, duty: f64) -> Result<(), PumpError> {
        let p = self.channel(channel)?;
        // Never both high: the input that goes low is dropped first.
        if dir == Direction::Forward {
            self.pins.set_level(p.reverse, false)?;
            self.pins.set_level(p.forward, true)?;
        } else {
            self.pins.set_level(p.forward, false)?;
            self.pins.set_level(p.reverse, true)?;
        }
        self.set_enable(p.enable, duty)
    }

    fn set_enable(&mut self, pin: u8, duty: f64) -> Result<(), PumpError> {
        if duty >= 1.0 {
            self.pins.set_level(pin, true)
        } else {
            self.pins.set_duty(pin, duty.max(0.0))
        }
    }

    pub fn set_duty(&mut self, channel: Channel, duty: f64) -> Result<(), PumpError> {
        let p = self.channel(channel)?;
        self.set_enable(p.enable, duty)
    }

    /// Enable low, then both inputs low, on every channel. Tries every pin even if one fails.
    pub fn stop_all(&mut self) -> Result<(), PumpError> {
        let mut first_err = None;
        for p in std::iter::once(self.a).chain(self.b) {
            for (pin, _) in [(p.enable, ()), (p.forward, ()), (p.reverse, ())] {
                if let Err(e) = self.pins.set_level(pin, false) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    pub fn check(&mut self) -> Result<(), PumpError> {
        self.pins.check()
    }
}

struct Inner {
    bridge: L298n,
    run_id: u64,
    running: bool,
    tripped: Option<u64>,
}

/// The shared pump handle.
#[derive(Clone)]
pub struct Pump {
    inner: Arc<Mutex<Inner>>,
    max_run: Duration,
    hard_stop: Arc<HardStop>,
}

/// The run the hard-stop thread is waiting on, if any.
#[derive(Default)]
struct Armed {
    /// (run id, when it must be stopped), on std's monotonic clock.
    run: Option<(u64, std::time::Instant)>,
    /// Set when the last [`Pump`] handle is gone: the thread ends.
    closed: bool,
}

type ArmedCell = (Mutex<Armed>, Condvar);

/// The handles' side of the hard-stop thread. Shared by every clone of one [`Pump`]; its
/// drop (with the last clone) ends the thread.
struct HardStop {
    armed: Arc<ArmedCell>,
}

impl HardStop {
    fn start(inner: Weak<Mutex<Inner>>, max_run: Duration) -> Result<HardStop, PumpError> {
        let armed: Arc<ArmedCell> = Arc::default();
        let theirs = armed.clone();
        std::thread::Builder::new()
            .name("pump-hard-stop".into())
            .spawn(move || hard_stop_thread(&theirs, &inner, max_run))
            .map_err(PumpError::HardStop)?;
        Ok(HardStop { armed })
    }

    fn lock(&self) -> MutexGuard<'_, Armed> {
        self.armed.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn arm(&self, run_id: u64, deadline: std::time::Instant) {
        self.lock().run = Some((run_id, deadline));
        self.armed.1.notify_one();
    }
}

impl Drop for HardStop {
    fn drop(&mut self) {
        self.lock().closed = true;
        self.armed.1.notify_one();
    }
}

/// Waits for each armed run's deadline and stops that run if it is still going. It holds
/// only a weak reference to the pump, and never the pump's lock while it waits.
fn hard_stop_thread(armed: &ArmedCell, inner: &Weak<Mutex<Inner>>, max_run: Duration) {
    let (cell, wake) = armed;
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if guard.closed {
            return;
        }
        let Some((run_id, deadline)) = guard.run else {
            guard = wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let now = std::time::Instant::now();
        if now < deadline {
            guard = wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        guard.run = None;
        drop(guard);
        let Some(inner) = inner.upgrade() else { return };
        let mut locked = inner.lock().unwrap_or_else(|e| e.into_inner());
        let failed = stop_if_still_running(&mut locked, run_id, max_run);
        drop(locked);
        drop(inner);
        guard = cell.lock().unwrap_or_else(|e| e.into_inner());
        // A stop that failed is tried again, unless a newer run was armed meanwhile (its
        // start drove the pins, and its own deadline holds).
        if failed && guard.run.is_none() {
            guard.run = Some((run_id, std::time::Instant::now() + STOP_RETRY));
        }
    }
}

/// How soon a watchdog whose stop failed (a GPIO write refused) tries again.
const STOP_RETRY: Duration = Duration::from_millis(100);

/// The hard stop itself, from either watchdog. True when the run is still to be stopped
/// (the pins could not all be driven low): the watchdog tries again after [`STOP_RETRY`].
fn stop_if_still_running(inner: &mut Inner, run_id: u64, max_run: Duration) -> bool {
    if !inner.running || inner.run_id != run_id {
        return false;
    }
    // Told once per run, not at every retry of a GPIO that stays broken.
    let first = inner.tripped != Some(run_id);
    if first {
        tracing::error!(
            ?max_run,
            "watchdog: pump ran for the maximum time, stopping it"
        );
    }
    inner.tripped = Some(run_id);
    let failed = inner.stop_bridge().is_err();
    if failed && first {
        tracing::error!("watchdog could not stop the pump; trying again");
    }
    failed
}

impl Inner {
    /// Drives every pin low. The run stays armed (`running`) until that succeeds, so a
    /// failed write leaves both watchdogs and the next stop to try again.
    fn stop_bridge(&mut self) -> Result<(), PumpError> {
        let stopped = self.bridge.stop_all();
        self.running &= stopped.is_err();
        stopped
    }
}

impl std::fmt::Debug for Pump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pump")
            .field("max_run", &self.max_run)
            .finish_non_exhaustive()
    }
}

impl Pump {
    /// Wraps the bridge; every output is driven low first.
    pub fn new(bridge: L298n, max_run: Duration) -> Result<Pump, PumpError> {
        let inner = Arc::new(Mutex::new(Inner {
            bridge,
            run_id: 0,
            running: false,
            tripped: None,
        }));
        // Driven low before anything else can fail.
        let stopped = inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bridge
            .stop_all();
        let hard_stop = Arc::new(HardStop::start(Arc::downgrade(&inner), max_run)?);
        stopped?;
        Ok(Pump {
            inner,
            max_run,
            hard_stop,
        })
    }

    pub fn max_run(&self) -> Duration {
        self.max_run
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock still guards valid pins; stopping the pump matters more.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the motor and arms both watchdogs for this run. The hard-stop thread needs no
    /// runtime; the tokio watchdog is armed when called inside one.
    pub fn start(&self, channel: Channel, dir: Direction, duty: f64) -> Result<u64, PumpError> {
        let run_id = {
            let mut inner = self.lock();
            // A run whose stop was not confirmed (a failed GPIO write) is still guarded by
            // its watchdogs, which a new run would replace: its lines are driven low first,
            // and if they cannot be, nothing starts and its watchdogs keep trying.
            if inner.running {
                inner.stop_bridge()?;
            }
            inner.run_id += 1;
            inner.running = true;
            inner.tripped = None;
            let id = inner.run_id;
            // Armed before the motor can turn, and with the lock held so that no later run
            // can be armed in between.
            self.hard_stop
                .arm(id, std::time::Instant::now() + self.max_run);
            if let Err(e) = inner.bridge.run(channel, dir, duty) {
                // The hard stop is armed: if the pins cannot be driven low now, it tries.
                let _ = inner.stop_bridge();
                return Err(e);
            }
            id
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = self.clone();
            let deadline = Instant::now() + self.max_run;
            rt.spawn(async move {
                let mut at = deadline;
                loop {
                    sleep_until(at).await;
                    if !stop_if_still_running(&mut me.lock(), run_id, me.max_run) {
                        break;
                    }
                    at = Instant::now() + STOP_RETRY;
                }
            });
        }
        Ok(run_id)
    }

    pub fn set_duty(&self, channel: Channel, duty: f64) -> Result<(), PumpError> {
        let mut inner = self.lock();
        if !inner.running {
            return Ok(());
        }
        inner.bridge.set_duty(channel, duty)
    }

    /// Stops every channel. A failed stop leaves the run armed: its watchdogs still stop
    /// it at the maximum run time, and the next stop tries again.
    pub fn stop(&self) -> Result<(), PumpError> {
        self.lock().stop_bridge()
    }

    /// Stops run `run_id` if it is the one running (another run is left alone).
    pub fn stop_run(&self, run_id: u64) -> Result<(), PumpError> {
        let mut inner = self.lock();
        if inner.running && inner.run_id == run_id {
            inner.stop_bridge()
        } else {
            Ok(())
        }
    }

    /// Checks a run in progress: a GPIO fault, the watchdog having stopped it, or anyone
    /// else having stopped it (a stop signal's emergency stop), is an error, so the pour
    /// that owns the run ends there and never goes on to its anti-drip reverse run.
    pub fn check(&self, run_id: u64) -> Result<(), PumpError> {
        let mut inner = self.lock();
        if inner.tripped == Some(run_id) {
            return Err(PumpError::WatchdogTripped(self.max_run));
        }
        if !inner.running || inner.run_id != run_id {
            return Err(PumpError::Fault(
                "the pump was stopped during the pour".into(),
            ));
        }
        inner.bridge.check()
    }

    pub fn is_running(&self) -> bool {
        self.lock().running
    }

    /// Stops the pump from a signal handler or panic hook. Never blocks for long: if the lock
    /// stays held (the panicking thread may hold it) it gives up after about 200 ms.
    pub fn emergency_stop(&self) -> bool {
        for _ in 0..200 {
            let guard = match self.inner.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            };
            let mut inner = guard;
            return inner.stop_bridge().is_ok();
        }
        false
    }
}

/// How a pour drives the motor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PourSettings {
    /// Target PWM duty, 0.0..=1.0; 1.0 drives the enable pin plainly high.
    pub duty: f64,
    /// Ramp from a third of the duty to the full duty over this time (0: no ramp).
    pub soft_start: Duration,
    /// A reverse pulse after the pour, to pull the last drop back (0: none).
    pub anti_drip: Duration,
}

/// How often a running pour is checked and its ramp advanced.
const POUR_TICK: Duration = Duration::from_millis(50);

/// Runs the pump forward for exactly `duration` (plus the anti-drip pulse), checking it as it
/// goes. The pump is stopped on every path out of this function, error or not.
pub async fn pour(
    pump: &Pump,
    channel: Channel,
    duration: Duration,
    settings: PourSettings,
) -> Result<(), PumpError> {
    // Dropped mid-run (its task aborted at shutdown), the future never reaches the stop
    // below: the guard stops the pump then.
    let guard = StopOnDrop::new(pump);
    let result = pour_inner(pump, channel, duration, settings, &guard).await;
    let stopped = pump.stop();
    result.and(stopped)
}

/// Stops the pour's own run when dropped, if it still runs: held by a pour for its whole
/// length, so a pour whose future is dropped mid-run (forward or in its anti-drip run) stops
/// the pump at once rather than at the hard maximum run time. Only the run the pour started
/// last: a run someone else started since (the operator's Prime after an aborted Test pour)
/// is not theirs to stop.
pub(crate) struct StopOnDrop<'a> {
    pump: &'a Pump,
    /// The pour's latest run id; `u64::MAX` before its first.
    run: std::sync::atomic::AtomicU64,
}

impl<'a> StopOnDrop<'a> {
    pub(crate) fn new(pump: &'a Pump) -> StopOnDrop<'a> {
        StopOnDrop {
            pump,
            run: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    /// The pour started run `run_id`.
    pub(crate) fn started(&self, run_id: u64) {
        self.run.store(run_id, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let run = self.run.load(std::sync::atomic::Ordering::Relaxed);
        if run == u64::MAX {
            return;
        }
        if let Err(e) = self.pump.stop_run(run) {
            tracing::error!(error = %e, "could not stop the pump after a dropped pour; the watchdogs retry");
        }
    }
}

async fn pour_inner(
    pump: &Pump,
    channel: Channel,
    duration: Duration,
    s: PourSettings,
    guard: &StopOnDrop<'_>,
) -> Result<(), PumpError> {
    let ramp = !s.soft_start.is_zero() && s.duty > 0.0;
    let floor = s.duty / 3.0;
    let start = Instant::now();
    let end = start + duration;
    let run = pump.start(
        channel,
        Direction::Forward,
        if ramp { floor } else { s.duty },
    )?;
    guard.started(run);
    loop {
        let next = (Instant::now() + POUR_TICK).min(end);
        sleep_until(next).await;
        pump.check(run)?;
        if next >= end {
            break;
        }
        if ramp {
            let elapsed = Instant::now() - start;
            let frac = (elapsed.as_secs_f64() / s.soft_start.as_secs_f64()).min(1.0);
            pump.set_duty(channel, floor + (s.duty - floor) * frac)?;
        }
    }
    pump.stop()?;
    if !s.anti_drip.is_zero() {
        let run = pump.start(channel, Direction::Reverse, s.duty)?;
        guard.started(run);
        tokio::time::sleep(s.anti_drip).await;
        pump.check(run)?;
        pump.stop()?;
    }
    Ok(())
}

#[cfg(test)]
mod stop_tests;

#[cfg(test)]
mod tests;
