//! The relay-pulse dispenser: a GPIO line held high for a pulse's width, a few times with a
//! gap, for a coin-op machine's credit input or a motor behind a relay.
//!
//! Its lines are claimed apart from the pump's bridge (they are other pins) and driven low
//! when it is made. A pulse is bounded three ways, as the pump's runs are: the pulse's own
//! task drives the line low after its width (exact under paused time); a guard drives it
//! low when the dispense's future is dropped (its task aborted at shutdown); and an OS
//! thread drives it low at the width plus [`HARD_STOP_SLACK`] whatever the runtime is doing
//! (the runtime stuck must not leave a motor running or a coin input held).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::sleep;

use super::{DispenseError, Dispensed, PulseSpec};
use crate::pump::{Pins, PumpError};

/// How long past its width the hard stop lets a pulse run. Generous: it fires only when
/// the runtime is stuck, and a pulse cut short there is a credit the machine never gave.
pub const HARD_STOP_SLACK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PulseError {
    #[error("GPIO: {0}")]
    Gpio(#[source] PumpError),
    #[error("line {0} is not one the pulse dispenser claimed")]
    NotClaimed(u8),
    /// The hard stop ended the pulse: the runtime did not, in time.
    #[error("the hard stop ended a pulse on line {0}")]
    HardStop(u8),
    #[error("cannot start the pulse's hard-stop thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The dispenser was stopped (shutdown): no pulse starts after it, and one it cut
    /// short is not counted as sent.
    #[error("the pulse lines were stopped")]
    Stopped,
}

struct Lines {
    pins: Box<dyn Pins>,
    claimed: Vec<u8>,
    /// The pulse now high: (line, id).
    high: Option<(u8, u64)>,
    next_id: u64,
    /// The id of the last pulse the hard stop ended.
    tripped: Option<u64>,
    /// Set by [`PulseDispenser::stop`], for good: a pattern in progress must not raise a
    /// line again after its gap once the machine is shutting down.
    stopped: bool,
}

impl Lines {
    /// Drives the pulse `id` low if it is still the one high. False when it was not.
    fn end(&mut self, id: u64) -> Result<bool, PumpError> {
        match self.high {
            Some((line, now)) if now == id => {
                self.pins.set_level(line, false)?;
                self.high = None;
                Ok(true)
            }
            Some(_) | None => Ok(false),
        }
    }

    fn all_low(&mut self) -> Result<(), PumpError> {
        let mut first = None;
        for line in self.claimed.clone() {
            if let Err(e) = self.pins.set_level(line, false) {
                first.get_or_insert(e);
            }
        }
        match first {
            None => {
                self.high = None;
                Ok(())
            }
            Some(e) => Err(e),
        }
    }
}

/// The pulse lines; clone freely (one set of pins behind them).
#[derive(Clone)]
pub struct PulseDispenser {
    lines: Arc<Mutex<Lines>>,
}

impl std::fmt::Debug for PulseDispenser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulseDispenser")
            .field("lines", &self.lock().claimed)
            .finish_non_exhaustive()
    }
}

/// Drives the dispense's pulse low when dropped, if it is still high.
struct LowOnDrop<'a> {
    d: &'a PulseDispenser,
    id: u64,
}

impl Drop for LowOnDrop<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.d.lock().end(self.id) {
            tracing::error!(error = %e, "could not drive a dropped pulse low; the hard stop retries");
        }
    }
}

impl PulseDispenser {
    /// Claims `lines` on `pins` and drives every one low.
    pub fn new(pins: Box<dyn Pins>, lines: &[u8]) -> Result<PulseDispenser, PulseError> {
        let mut inner = Lines {
            pins,
            claimed: lines.to_vec(),
            high: None,
            next_id: 0,
            tripped: None,
            stopped: false,
        };
        inner.all_low().map_err(PulseError::Gpio)?;
        Ok(PulseDispenser {
            lines: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Lines> {
        // A poisoned lock still guards valid pins; driving them low matters more.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every line low now, and for good: no pulse starts after this.
    pub fn stop(&self) -> Result<(), DispenseError> {
        let mut l = self.lock();
        l.stopped = true;
        l.all_low().map_err(|e| PulseError::Gpio(e).into())
    }

    /// [`Self::stop`] from a panic hook: never blocks for long. If the lock stays held (the
    /// panicking thread may hold it) it gives up after about 200 ms; false then, or when a
    /// line refused.
    pub fn emergency_stop(&self) -> bool {
        for _ in 0..200 {
            let mut l = match self.lines.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
            };
            l.stopped = true;
            return l.all_low().is_ok();
        }
        false
    }

    /// Sends `spec`'s pattern. Stops at the first pulse that fails: the pulses before it
    /// were sent (a tripped pulse was, too long), those after it were not.
    pub async fn run(&self, spec: &PulseSpec) -> Dispensed {
        let mut sent = 0u64;
        for k in 0..spec.pulses {
            if k > 0 {
                sleep(spec.gap).await;
            }
            match self.pulse(spec.pin, spec.width).await {
                Ok(()) => sent += 1,
                Err(e) => {
                    if let PulseError::HardStop(_) = e {
                        sent += 1;
                    }
                    let trouble = DispenseError::Pulse(e);
                    return if sent == 0 {
                        Dispensed::Failed(trouble)
                    } else {
                        Dispensed::Partial {
                            units: sent,
                            trouble: Some(trouble),
                        }
                    };
                }
            }
        }
        Dispensed::Delivered { units: sent }
    }

    /// One pulse: high, `width`, low; the hard stop armed before the line goes high.
    async fn pulse(&self, line: u8, width: Duration) -> Result<(), PulseError> {
        let id = {
            let mut l = self.lock();
            if l.stopped {
                return Err(PulseError::Stopped);
            }
            if !l.claimed.contains(&line) {
                return Err(PulseError::NotClaimed(line));
            }
            l.next_id += 1;
            let id = l.next_id;
            self.arm_hard_stop(id, width + HARD_STOP_SLACK)?;
            l.high = Some((line, id));
            if let Err(e) = l.pins.set_level(line, true).and_then(|()| l.pins.check()) {
                let _ = l.end(id);
                return Err(PulseError::Gpio(e));
            }
            id
        };
        let guard = LowOnDrop { d: self, id };
        sleep(width).await;
        let mut l = self.lock();
        let ended = l.end(id).map_err(PulseError::Gpio)?;
        let tripped = l.tripped == Some(id);
        let stopped = l.stopped;
        drop(l);
        drop(guard);
        match (ended, tripped, stopped) {
            (true, _, _) => Ok(()),
            (false, true, _) => Err(PulseError::HardStop(line)),
            // Cut short by the stop: whatever the machine made of a short pulse, it is
            // not the credit meant, so it is not counted as sent.
            (false, false, true) => Err(PulseError::Stopped),
            // Driven low by someone else without a stop (cannot happen: only the stop,
            // the hard stop and this pulse end it); counted as sent, as before.
            (false, false, false) => Ok(()),
        }
    }

    /// An OS thread that drives pulse `id` low after `after`, if it is still high. It holds
    /// the lines weakly: a dispenser gone is nothing to stop.
    fn arm_hard_stop(&self, id: u64, after: Duration) -> Result<(), PulseError> {
        let lines = Arc::downgrade(&self.lines);
        std::thread::Builder::new()
            .name("pulse-hard-stop".into())
            .spawn(move || {
                std::thread::sleep(after);
                loop {
                    let Some(lines) = lines.upgrade() else { return };
                    let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                    if l.high.map(|(_, now)| now) != Some(id) {
                        return;
                    }
                    if l.end(id).is_ok() {
                        l.tripped = Some(id);
                        tracing::error!("hard stop: a pulse ran past its width; line driven low");
                        return;
                    }
                    // A write refused: try again soon.
                    drop(l);
                    drop(lines);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .map(drop)
            .map_err(PulseError::Thread)
    }
}

#[cfg(test)]
#[path = "pulse_tests.rs"]
mod tests;
