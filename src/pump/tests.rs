//! Unit tests of the bridge and the pump handle: pour timing, direction, the watchdogs.

use super::mock::{MockGpio, PinValue};
use super::*;

const A: BridgePins = BridgePins {
    forward: 23,
    reverse: 24,
    enable: 18,
};
const B: BridgePins = BridgePins {
    forward: 5,
    reverse: 6,
    enable: 13,
};

fn pump(max: Duration) -> (Pump, MockGpio) {
    let gpio = MockGpio::new(None).unwrap();
    let bridge = L298n::new(Box::new(gpio.pins()), A, Some(B));
    (Pump::new(bridge, max).unwrap(), gpio)
}

const FULL: PourSettings = PourSettings {
    duty: 1.0,
    soft_start: Duration::ZERO,
    anti_drip: Duration::ZERO,
};

#[tokio::test(start_paused = true)]
async fn a_pour_holds_enable_high_for_exactly_the_pour_time() {
    let (pump, gpio) = pump(Duration::from_secs(30));
    pour(&pump, Channel::A, Duration::from_millis(3500), FULL)
        .await
        .unwrap();
    let highs = gpio.high_intervals(A.enable);
    assert_eq!(highs.len(), 1);
    assert_eq!(highs[0].1 - highs[0].0, Duration::from_millis(3500));
    assert_eq!(gpio.level(A.enable), Some(PinValue::Level(false)));
    assert_eq!(gpio.level(A.forward), Some(PinValue::Level(false)));
    assert!(
        gpio.high_intervals(B.enable).is_empty(),
        "channel B untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn direction_is_set_before_enable_and_never_both_inputs_high() {
    let (pump, gpio) = pump(Duration::from_secs(30));
    pour(&pump, Channel::B, Duration::from_millis(100), FULL)
        .await
        .unwrap();
    let changes = gpio.changes();
    let fwd_at = changes
        .iter()
        .position(|c| c.pin == B.forward && c.value == PinValue::Level(true))
        .unwrap();
    let en_at = changes
        .iter()
        .position(|c| c.pin == B.enable && c.value == PinValue::Level(true))
        .unwrap();
    assert!(fwd_at < en_at);
    assert!(gpio.high_intervals(B.reverse).is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_stops_a_pump_nobody_stops() {
    let (pump, gpio) = pump(Duration::from_secs(2));
    pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!pump.is_running());
    let highs = gpio.high_intervals(A.enable);
    assert_eq!(highs[0].1 - highs[0].0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_pour_longer_than_the_maximum_is_cut_and_reported() {
    let (pump, gpio) = pump(Duration::from_secs(1));
    let err = pour(&pump, Channel::A, Duration::from_secs(5), FULL)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PumpError::WatchdogTripped(d) if d == Duration::from_secs(1)),
        "{err}"
    );
    let highs = gpio.high_intervals(A.enable);
    assert_eq!(highs[0].1 - highs[0].0, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_fault_mid_pour_stops_the_pump_and_errors() {
    let (pump, gpio) = pump(Duration::from_secs(30));
    let g = gpio.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        g.inject_fault(true);
    });
    let err = pour(&pump, Channel::A, Duration::from_secs(4), FULL)
        .await
        .unwrap_err();
    assert!(matches!(err, PumpError::Fault(_)));
    let highs = gpio.high_intervals(A.enable);
    assert!(highs[0].1 - highs[0].0 <= Duration::from_millis(1050));
    assert!(!pump.is_running());
}

#[tokio::test(start_paused = true)]
async fn a_timed_pour_dropped_mid_run_stops_the_pump_at_once_forward_or_in_its_anti_drip() {
    // 2 s forward, then 300 ms of anti-drip reverse; the task is aborted 1 s in (forward)
    // or 2.1 s in (reverse), as a shutdown aborts it: the lines go low at once.
    for (at, pin) in [(1000, A.enable), (2100, A.reverse)] {
        let (pump, gpio) = pump(Duration::from_secs(30));
        let pump = std::sync::Arc::new(pump);
        let s = PourSettings {
            anti_drip: Duration::from_millis(300),
            ..FULL
        };
        let task = tokio::spawn({
            let pump = pump.clone();
            async move { pour(&pump, Channel::A, Duration::from_secs(2), s).await }
        });
        tokio::time::sleep(Duration::from_millis(at)).await;
        assert!(gpio.level(pin).is_some_and(PinValue::is_on), "{at} ms");
        task.abort();
        let _ = task.await;
        assert!(!pump.is_running(), "{at} ms");
        for p in [A.enable, A.forward, A.reverse] {
            assert_eq!(
                gpio.level(p),
                Some(PinValue::Level(false)),
                "pin {p} at {at} ms"
            );
        }
    }
}

#[test]
fn a_dropped_pour_stops_only_its_own_run() {
    // An aborted Test pour is dropped after the operator's Prime started: Prime runs on.
    let (pump, gpio) = pump(Duration::from_secs(30));
    let guard = StopOnDrop::new(&pump);
    let mine = pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    guard.started(mine);
    pump.stop().unwrap();
    let theirs = pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
    assert_ne!(mine, theirs);
    drop(guard);
    assert!(pump.is_running(), "the newer run is not the dropped pour's");
    assert!(gpio.level(A.enable).is_some_and(PinValue::is_on));
    // Its own run, still running, is stopped.
    let guard = StopOnDrop::new(&pump);
    guard.started(theirs);
    drop(guard);
    assert!(!pump.is_running());
    assert_eq!(gpio.level(A.enable), Some(PinValue::Level(false)));
}

#[tokio::test(start_paused = true)]
async fn soft_start_ramps_the_duty_and_anti_drip_reverses_briefly() {
    let (pump, gpio) = pump(Duration::from_secs(30));
    let s = PourSettings {
        duty: 0.9,
        soft_start: Duration::from_millis(500),
        anti_drip: Duration::from_millis(200),
    };
    pour(&pump, Channel::A, Duration::from_secs(2), s)
        .await
        .unwrap();
    let duties: Vec<f64> = gpio
        .changes()
        .iter()
        .filter(|c| c.pin == A.enable)
        .filter_map(|c| match c.value {
            PinValue::Duty(d) => Some(d),
            PinValue::Level(_) => None,
        })
        .collect();
    assert!((duties[0] - 0.3).abs() < 1e-9);
    assert!(duties.windows(2).take(9).all(|w| w[1] >= w[0]));
    assert!(duties.iter().any(|d| (d - 0.9).abs() < 1e-9));
    let rev = gpio.high_intervals(A.reverse);
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].1 - rev[0].0, Duration::from_millis(200));
    assert_eq!(gpio.level(A.enable), Some(PinValue::Level(false)));
}

#[test]
fn emergency_stop_works_without_a_runtime_and_on_a_poisoned_lock() {
    let (pump, gpio) = pump(Duration::from_secs(30));
    {
        let mut inner = pump.lock();
        inner
            .bridge
            .run(Channel::A, Direction::Forward, 1.0)
            .unwrap();
    }
    let p2 = pump.clone();
    let _ = std::thread::spawn(move || {
        let _g = p2.inner.lock().unwrap();
        panic!("poison the lock");
    })
    .join();
    assert!(pump.emergency_stop());
    assert_eq!(gpio.level(A.enable), Some(PinValue::Level(false)));
}

/// The hard stop must not depend on the async runtime: here both of its workers are
/// stuck (as fsync'd ledger commits and PIN hashing can make them) for three times the
/// maximum run time.
#[test]
fn the_hard_stop_holds_when_every_runtime_worker_is_blocked() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (pump, gpio) = pump(Duration::from_millis(1000));
    let blocked = Arc::new(AtomicUsize::new(0));
    let started = rt.block_on(async {
        let started = std::time::Instant::now();
        pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
        for _ in 0..2 {
            let blocked = blocked.clone();
            tokio::spawn(async move {
                blocked.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(3));
            });
        }
        started
    });
    while blocked.load(Ordering::SeqCst) < 2 {
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "workers never blocked"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(gpio.level(A.enable), Some(PinValue::Level(true)));
    std::thread::sleep(
        (started + Duration::from_millis(1050)).duration_since(std::time::Instant::now()),
    );
    assert_eq!(
        gpio.level(A.enable),
        Some(PinValue::Level(false)),
        "still pumping {:?} after the start with a maximum of 1 s",
        started.elapsed()
    );
    assert!(!pump.is_running());
    rt.shutdown_background();
}

/// Threads of this process named like the hard stop's.
fn hard_stop_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "pump-hard-stop")
        .count()
}

#[test]
fn dropping_the_last_handle_ends_the_hard_stop_thread() {
    // Other tests in this process make pumps too: the margin is for them.
    let before = hard_stop_threads();
    for _ in 0..300 {
        let (pump, _gpio) = pump(Duration::from_secs(30));
        pump.start(Channel::A, Direction::Forward, 1.0).unwrap();
        let clone = pump.clone();
        drop(pump);
        clone.stop().unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while hard_stop_threads() > before + 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} hard-stop threads left after 300 pumps were dropped",
            hard_stop_threads()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unwired_channel_is_an_error_not_a_silent_no_op() {
    let gpio = MockGpio::new(None).unwrap();
    let mut bridge = L298n::new(Box::new(gpio.pins()), A, None);
    assert!(matches!(
        bridge.run(Channel::B, Direction::Forward, 1.0),
        Err(PumpError::NoSuchChannel(Channel::B))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_pour_stopped_from_outside_ends_there_without_its_anti_drip_run() {
    let (pump, gpio) = pump(Duration::from_secs(30));
    let s = PourSettings {
        duty: 1.0,
        soft_start: Duration::ZERO,
        anti_drip: Duration::from_millis(500),
    };
    let p2 = pump.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // SIGTERM's emergency stop, in the middle of the pour.
        assert!(p2.emergency_stop());
    });
    let err = pour(&pump, Channel::A, Duration::from_secs(4), s)
        .await
        .unwrap_err();
    assert!(matches!(err, PumpError::Fault(_)), "{err}");
    assert!(
        gpio.high_intervals(A.reverse).is_empty(),
        "no reverse run after the stop"
    );
    assert_eq!(gpio.level(A.enable), Some(PinValue::Level(false)));
}
