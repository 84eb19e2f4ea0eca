//! A stop whose GPIO write fails (gpiochip's `set_value` can) leaves the run armed: the
//! watchdogs and the pour's own retries still drive the enable line low by the hard
//! maximum run time, with the runtime running or stuck.

use std::sync::atomic::{AtomicBool, Ordering};

use super::mock::{MockGpio, MockPins, PinValue};
use super::*;

const A: BridgePins = BridgePins {
    forward: 23,
    reverse: 24,
    enable: 18,
};

/// Mock pins whose next low write of the enable line fails, once it is set to.
struct FailingLow {
    pins: MockPins,
    fail_next: Arc<AtomicBool>,
}

impl Pins for FailingLow {
    fn set_level(&mut self, pin: u8, high: bool) -> Result<(), PumpError> {
        if pin == A.enable && !high && self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(PumpError::Fault("set_value: Input/output error".into()));
        }
        self.pins.set_level(pin, high)
    }

    fn set_duty(&mut self, pin: u8, duty: f64) -> Result<(), PumpError> {
        self.pins.set_duty(pin, duty)
    }

    fn check(&mut self) -> Result<(), PumpError> {
        self.pins.check()
    }
}

/// A pump on channel A whose enable line refuses its next low write when the flag is set.
fn pump(max: Duration) -> (Pump, MockGpio, Arc<AtomicBool>) {
    let gpio = MockGpio::new(None).unwrap();
    let fail_next = Arc::new(AtomicBool::new(false));
    let pins = FailingLow {
        pins: gpio.pins(),
        fail_next: fail_next.clone(),
    };
    let pump = Pump::new(L298n::new(Box::new(pins), A, None), max).unwrap();
    (pump, gpio, fail_next)
}

fn enable_high(gpio: &MockGpio) -> bool {
    gpio.level(A.enable) == Some(PinValue::Level(true))
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_leaves_the_watchdog_armed() {
    let (pump, gpio, fail_next) = pump(Duration::from_secs(2));
    pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    fail_next.store(true, Ordering::SeqCst);
    assert!(pump.stop().is_err());
    assert!(enable_high(&gpio), "the write failed: the motor runs on");
    assert!(
        pump.is_running(),
        "a pump whose stop failed is still running"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !enable_high(&gpio),
        "still pumping after the maximum run time"
    );
    let highs = gpio.high_intervals(A.enable);
    assert_eq!(highs[0].1 - highs[0].0, Duration::from_secs(2));
    assert!(!pump.is_running());
}

#[test]
fn a_failed_stop_is_caught_by_the_hard_stop_thread_without_a_runtime() {
    let (pump, gpio, fail_next) = pump(Duration::from_millis(300));
    pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    fail_next.store(true, Ordering::SeqCst);
    assert!(pump.stop().is_err());
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !enable_high(&gpio),
        "still pumping after the maximum run time"
    );
}

#[test]
fn a_watchdog_whose_own_stop_fails_tries_again() {
    let (pump, gpio, fail_next) = pump(Duration::from_millis(300));
    pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    // The hard stop's first write fails too.
    fail_next.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(800));
    assert!(!fail_next.load(Ordering::SeqCst), "the hard stop tried");
    assert!(
        !enable_high(&gpio),
        "the hard stop gave up after one failed write"
    );
    assert!(!pump.is_running());
}

/// The operator starts a test pour while an earlier run's stop is unconfirmed: nothing new
/// starts, and the earlier run's maximum run time still holds.
#[tokio::test(start_paused = true)]
async fn no_run_starts_while_a_failed_stop_is_unconfirmed() {
    let (pump, gpio, fail_next) = pump(Duration::from_secs(2));
    pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    fail_next.store(true, Ordering::SeqCst);
    assert!(pump.stop().is_err());
    tokio::time::sleep(Duration::from_secs(1)).await;
    fail_next.store(true, Ordering::SeqCst);
    assert!(
        pump.start(Channel::A, Direction::Reverse, 1.0).is_err(),
        "a new run over lines that cannot be driven low"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!enable_high(&gpio));
    let highs = gpio.high_intervals(A.enable);
    assert_eq!(
        highs[0].1 - highs[0].0,
        Duration::from_secs(2),
        "the first run's maximum run time holds"
    );
}
