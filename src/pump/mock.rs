//! Mock GPIO for the simulator and tests: records every pin change with its time, shows the
//! live levels to the simulator panel, and with `trace = "FILE"` appends one JSON object per
//! change (`{"ts_us","pin","level"}` or `{"ts_us","pin","duty"}`) so a run can be checked
//! afterwards. Times come from the tokio clock, so under paused time a recorded pour is exact.
//!
//! Inputs (a flow sensor's pulses, see [`super::flow_mock`]) are traced as
//! `{"ts_us","pin","edge":"falling"|"rising"}` and counted, but not kept in memory.
//!
//! Memory holds only the last [`HISTORY`] changes (a simulator left running for days must
//! not grow); the trace file has all of them, and [`MockGpio::on_count`] counts every
//! switch-on since start.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Pins, PumpError};

/// A pin's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PinValue {
    Level(bool),
    Duty(f64),
}

impl PinValue {
    pub fn is_on(self) -> bool {
        match self {
            PinValue::Level(l) => l,
            PinValue::Duty(d) => d > 0.0,
        }
    }
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq)]
pub struct PinChange {
    pub at: Instant,
    /// Microseconds since the UNIX epoch.
    pub ts_us: u64,
    pub pin: u8,
    pub value: PinValue,
}

/// How many recent changes are kept in memory: hundreds of pours, far more than a test or
/// the panel looks at.
pub const HISTORY: usize = 1024;

struct Log {
    changes: VecDeque<PinChange>,
    /// Switch-ons (off or unset -> on) per pin since start.
    on_counts: BTreeMap<u8, u64>,
    levels: BTreeMap<u8, PinValue>,
    /// Input edges per pin since start.
    edges: BTreeMap<u8, u64>,
    trace: Option<File>,
    trace_failed: bool,
    fault: bool,
    epoch: (SystemTime, Instant),
}

/// The shared record; clone it freely.
#[derive(Clone)]
pub struct MockGpio {
    log: Arc<Mutex<Log>>,
    changed: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for MockGpio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockGpio").finish_non_exhaustive()
    }
}

impl MockGpio {
    /// `trace`: a file to append JSON lines to.
    pub fn new(trace: Option<&Path>) -> std::io::Result<MockGpio> {
        let trace = match trace {
            Some(p) => Some(OpenOptions::new().create(true).append(true).open(p)?),
            None => None,
        };
        Ok(MockGpio {
            log: Arc::new(Mutex::new(Log {
                changes: VecDeque::new(),
                on_counts: BTreeMap::new(),
                levels: BTreeMap::new(),
                edges: BTreeMap::new(),
                trace,
                trace_failed: false,
                fault: false,
                epoch: (SystemTime::now(), Instant::now()),
            })),
            changed: Arc::new(watch::channel(0).0),
        })
    }

    /// [`MockGpio::new`] with the trace file's failure as a [`PumpError`] naming the file.
    pub fn open(trace: Option<&Path>) -> Result<MockGpio, PumpError> {
        MockGpio::new(trace).map_err(|e| PumpError::Trace {
            path: trace.map(|p| p.display().to_string()).unwrap_or_default(),
            source: e,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A [`Pins`] implementation writing to this record.
    pub fn pins(&self) -> MockPins {
        MockPins { gpio: self.clone() }
    }

    /// The recorded changes, oldest first (the last [`HISTORY`]).
    pub fn changes(&self) -> Vec<PinChange> {
        self.lock().changes.iter().cloned().collect()
    }

    /// The last `n` changes, oldest first, without copying the whole history.
    pub fn recent_changes(&self, n: usize) -> Vec<PinChange> {
        let log = self.lock();
        let skip = log.changes.len().saturating_sub(n);
        log.changes.iter().skip(skip).cloned().collect()
    }

    /// How many times `pin` was switched on since start, including changes no longer kept.
    pub fn on_count(&self, pin: u8) -> u64 {
        self.lock().on_counts.get(&pin).copied().unwrap_or(0)
    }

    pub fn level(&self, pin: u8) -> Option<PinValue> {
        self.lock().levels.get(&pin).copied()
    }

    pub fn levels(&self) -> BTreeMap<u8, PinValue> {
        self.lock().levels.clone()
    }

    /// Notified on every change (the value counts changes).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Makes the next pour check fail, as a jammed or disconnected pump would.
    pub fn inject_fault(&self, on: bool) {
        self.lock().fault = on;
    }

    pub fn fault_injected(&self) -> bool {
        self.lock().fault
    }

    /// Every span during which `pin` was on (high or PWM > 0), as (from, to), within the
    /// kept history. A span still open ends at "now".
    pub fn high_intervals(&self, pin: u8) -> Vec<(Instant, Instant)> {
        let log = self.lock();
        let mut out = Vec::new();
        let mut since: Option<Instant> = None;
        for c in log.changes.iter().filter(|c| c.pin == pin) {
            match (since, c.value.is_on()) {
                (None, true) => since = Some(c.at),
                (Some(s), false) => {
                    out.push((s, c.at));
                    since = None;
                }
                (None, false) | (Some(_), true) => {}
            }
        }
        if let Some(s) = since {
            out.push((s, Instant::now()));
        }
        out
    }

    /// An edge on input `pin` (a flow sensor's pulse): counted and traced, not kept in the
    /// history (a pour has hundreds). Returns its time in µs since the UNIX epoch.
    pub fn record_edge(&self, pin: u8, rising: bool) -> u64 {
        let mut log = self.lock();
        *log.edges.entry(pin).or_insert(0) += 1;
        let at = Instant::now();
        let wall = log.epoch.0 + at.saturating_duration_since(log.epoch.1);
        let ts_us = crate::clock::unix_us_of(wall) as u64;
        if let Some(file) = log.trace.as_mut() {
            let edge = if rising { "rising" } else { "falling" };
            let line = serde_json::json!({"ts_us": ts_us, "pin": pin, "edge": edge});
            let res = writeln!(file, "{line}").and_then(|_| file.flush());
            if let Err(e) = res {
                if !log.trace_failed {
                    tracing::warn!(error = %e, "cannot write the pin trace file");
                    log.trace_failed = true;
                }
            }
        }
        ts_us
    }

    /// Edges seen on input `pin` since start.
    pub fn edge_count(&self, pin: u8) -> u64 {
        self.lock().edges.get(&pin).copied().unwrap_or(0)
    }

    fn record(&self, pin: u8, value: PinValue) {
        let mut log = self.lock();
        let before = log.levels.get(&pin).copied();
        if before == Some(value) {
            return;
        }
        if value.is_on() && !before.is_some_and(PinValue::is_on) {
            *log.on_counts.entry(pin).or_insert(0) += 1;
        }
        let at = Instant::now();
        let wall = log.epoch.0 + at.saturating_duration_since(log.epoch.1);
        let ts_us = crate::clock::unix_us_of(wall) as u64;
        log.levels.insert(pin, value);
        let change = PinChange {
            at,
            ts_us,
            pin,
            value,
        };
        if let Some(file) = log.trace.as_mut() {
            let line = match value {
                PinValue::Level(l) => {
                    serde_json::json!({"ts_us": ts_us, "pin": pin, "level": u8::from(l)})
                }
                PinValue::Duty(d) => serde_json::json!({"ts_us": ts_us, "pin": pin, "duty": d}),
            };
            let res = writeln!(file, "{line}").and_then(|_| file.flush());
            if let Err(e) = res {
                if !log.trace_failed {
                    tracing::warn!(error = %e, "cannot write the pin trace file");
                    log.trace_failed = true;
                }
            }
        }
        if log.changes.len() == HISTORY {
            log.changes.pop_front();
        }
        log.changes.push_back(change);
        drop(log);
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The mock's [`Pins`].
pub struct MockPins {
    gpio: MockGpio,
}

impl Pins for MockPins {
    fn set_level(&mut self, pin: u8, high: bool) -> Result<(), PumpError> {
        self.gpio.record(pin, PinValue::Level(high));
        Ok(())
    }

    fn set_duty(&mut self, pin: u8, duty: f64) -> Result<(), PumpError> {
        self.gpio.record(pin, PinValue::Duty(duty.clamp(0.0, 1.0)));
        Ok(())
    }

    fn check(&mut self) -> Result<(), PumpError> {
        if self.gpio.fault_injected() {
            return Err(PumpError::Fault("simulated pump fault".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_trace_file_that_cannot_be_opened_names_the_file_and_keeps_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("pins.jsonl");
        let Err(e) = MockGpio::open(Some(&path)) else {
            panic!("opened a trace in a missing directory");
        };
        assert!(e.to_string().contains("pins.jsonl"), "{e}");
        let io = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the io::Error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        assert!(MockGpio::open(None).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_trace_file_has_one_json_object_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pins.jsonl");
        let gpio = MockGpio::new(Some(&path)).unwrap();
        let mut pins = gpio.pins();
        pins.set_level(18, true).unwrap();
        tokio::time::advance(Duration::from_millis(1500)).await;
        pins.set_level(18, false).unwrap();
        pins.set_duty(13, 0.5).unwrap();
        pins.set_level(18, false).unwrap(); // unchanged: not recorded
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["pin"], 18);
        assert_eq!(lines[0]["level"], 1);
        assert_eq!(lines[1]["level"], 0);
        assert_eq!(lines[2]["duty"], 0.5);
        let dt = lines[1]["ts_us"].as_u64().unwrap() - lines[0]["ts_us"].as_u64().unwrap();
        assert_eq!(dt, 1_500_000);
        let now_us = crate::clock::unix_now_us() as u64;
        assert!(lines[0]["ts_us"].as_u64().unwrap() <= now_us);
        assert!(lines[0]["ts_us"].as_u64().unwrap() > now_us - 60_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_run_keeps_recent_history_and_counts_every_switch_on() {
        let gpio = MockGpio::new(None).unwrap();
        let mut pins = gpio.pins();
        let pours = HISTORY; // two changes each: twice what memory keeps
        for _ in 0..pours {
            pins.set_duty(18, 0.3).unwrap();
            pins.set_duty(18, 1.0).unwrap(); // still on: not a new switch-on
            tokio::time::advance(Duration::from_millis(10)).await;
            pins.set_level(18, false).unwrap();
        }
        assert_eq!(gpio.on_count(18), pours as u64);
        assert_eq!(gpio.on_count(19), 0);
        let kept = gpio.changes();
        assert_eq!(kept.len(), HISTORY);
        assert_eq!(kept.last().unwrap().value, PinValue::Level(false));
        assert_eq!(gpio.recent_changes(2), kept[HISTORY - 2..].to_vec());
        // The pours still in memory each lasted exactly 10 ms.
        let spans = gpio.high_intervals(18);
        assert!(spans.len() >= HISTORY / 3 - 1);
        assert!(spans
            .iter()
            .all(|(a, b)| *b - *a == Duration::from_millis(10)));
    }
}
