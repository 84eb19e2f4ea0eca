use super::super::flow_mock::{MockFlow, PulseTrain};
use super::super::mock::{MockGpio, PinValue};
use super::super::{BridgePins, L298n};
use super::*;

const A: BridgePins = BridgePins {
    forward: 23,
    reverse: 24,
    enable: 18,
};
const SENSOR: u8 = 17;
/// 25 ml/s through a 450 pulses/l sensor: 11.25 Hz.
const PPL: f64 = 450.0;

fn rig(max: Duration, train: PulseTrain) -> (Pump, MockGpio, MockFlow) {
    let gpio = MockGpio::new(None).unwrap();
    let bridge = L298n::new(Box::new(gpio.pins()), A, None);
    let pump = Pump::new(bridge, max).unwrap();
    let counter = PulseCounter::new(debounce_for(PPL, YF_S201_MAX_L_PER_MIN));
    let flow = MockFlow::start(&gpio, SENSOR, A, train, counter);
    (pump, gpio, flow)
}

const FULL: PourSettings = PourSettings {
    duty: 1.0,
    soft_start: Duration::ZERO,
    anti_drip: Duration::ZERO,
};

fn target(pulses: u64) -> VolumeTarget {
    VolumeTarget {
        pulses,
        no_flow: Duration::from_millis(1500),
        floor_pulses: 2,
        limit: Duration::from_secs(25),
    }
}

fn on_for(gpio: &MockGpio, pin: u8) -> Duration {
    gpio.high_intervals(pin).iter().map(|(a, b)| *b - *a).sum()
}

#[tokio::test(start_paused = true)]
async fn the_pour_stops_at_the_target_pulse_not_one_later() {
    for seed in 0..20 {
        let mut train = PulseTrain::flowing(25.0, PPL);
        train.seed = seed;
        let (pump, gpio, flow) = rig(Duration::from_secs(30), train);
        // 300 ml at 450 pulses per litre.
        let out = pour_volume(&pump, Channel::A, &flow.counter(), target(135), FULL)
            .await
            .unwrap();
        assert_eq!(out, VolumeOutcome::Reached { pulses: 135 }, "seed {seed}");
        // Nothing flows once the pump is off: the sensor saw exactly the target.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(gpio.edge_count(SENSOR), 135, "seed {seed}");
        assert_eq!(gpio.level(A.enable), Some(PinValue::Level(false)));
        // A jittered train at 11.25 Hz: 135 pulses in about 12 s, not exactly.
        let ran = on_for(&gpio, A.enable);
        assert!(
            ran > Duration::from_secs(10) && ran < Duration::from_secs(14),
            "{ran:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn at_the_sensors_top_rate_the_pour_still_stops_at_the_target_pulse() {
    // 30 l/min: 225 Hz, a pulse every 4.4 ms, far inside one 50 ms check of the pump.
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(500.0, PPL));
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(450), FULL)
        .await
        .unwrap();
    assert_eq!(out, VolumeOutcome::Reached { pulses: 450 });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gpio.edge_count(SENSOR), 450);
}

#[tokio::test(start_paused = true)]
async fn a_pump_fault_is_caught_mid_pour_even_while_pulses_keep_coming() {
    // At 225 Hz a pulse wakes the pour every 4.4 ms; the pump's own check must still run.
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(500.0, PPL));
    let g = gpio.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        g.inject_fault(true);
    });
    let err = pour_volume(&pump, Channel::A, &flow.counter(), target(450), FULL)
        .await
        .unwrap_err();
    assert!(matches!(err, PumpError::Fault(_)), "{err}");
    let ran = on_for(&gpio, A.enable);
    assert!(ran <= Duration::from_millis(560), "{ran:?}");
}

#[tokio::test(start_paused = true)]
async fn no_pulse_after_the_start_stops_the_pump_at_the_no_flow_time() {
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(25.0, PPL));
    flow.set_tank_empty(true);
    let s = PourSettings {
        anti_drip: Duration::from_millis(300),
        ..FULL
    };
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(135), s)
        .await
        .unwrap();
    assert_eq!(out, VolumeOutcome::NoFlow { pulses: 0 });
    assert_eq!(on_for(&gpio, A.enable), Duration::from_millis(1500));
    // A dry pump is not run backwards as well.
    assert!(gpio.high_intervals(A.reverse).is_empty());
}

#[tokio::test(start_paused = true)]
async fn flow_that_stops_mid_pour_stops_the_pump_at_the_no_flow_time_after_the_last_pulse() {
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(25.0, PPL));
    let f = flow.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        f.set_tank_empty(true);
    });
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(135), FULL)
        .await
        .unwrap();
    let VolumeOutcome::NoFlow { pulses } = out else {
        panic!("{out:?}")
    };
    assert!((40..=50).contains(&pulses), "{pulses}");
    let ran = on_for(&gpio, A.enable);
    assert!(
        ran > Duration::from_secs(4) && ran <= Duration::from_millis(4000 + 1500 + 50),
        "{ran:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_trickle_below_the_floor_is_no_flow() {
    // 1 ml/s: about 0.45 pulses a second, below a floor of 2 pulses per 1.5 s window.
    let (pump, _gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(1.0, PPL));
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(135), FULL)
        .await
        .unwrap();
    assert!(matches!(out, VolumeOutcome::NoFlow { .. }), "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn the_time_limit_before_the_volume_is_a_short_pour_with_the_pulses_counted() {
    // 10 ml/s (4.5 Hz) for at most 8 s: about 36 of 135 pulses.
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(10.0, PPL));
    let t = VolumeTarget {
        limit: Duration::from_secs(8),
        ..target(135)
    };
    let out = pour_volume(&pump, Channel::A, &flow.counter(), t, FULL)
        .await
        .unwrap();
    let VolumeOutcome::Short { pulses } = out else {
        panic!("{out:?}")
    };
    assert!((31..=41).contains(&pulses), "{pulses}");
    assert_eq!(on_for(&gpio, A.enable), Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn a_limit_over_the_hard_maximum_ends_as_a_short_pour_just_before_it() {
    let (pump, gpio, flow) = rig(Duration::from_secs(3), PulseTrain::flowing(10.0, PPL));
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(1000), FULL)
        .await
        .unwrap();
    assert!(
        matches!(out, VolumeOutcome::Short { pulses } if pulses > 5),
        "{out:?}"
    );
    assert_eq!(
        on_for(&gpio, A.enable),
        Duration::from_secs(3) - WATCHDOG_MARGIN
    );
}

#[tokio::test(start_paused = true)]
async fn a_limit_equal_to_the_hard_maximum_is_a_short_pour_not_a_watchdog_trip() {
    // The config allows pour_ms + anti_drip_ms == max_run_ms; with no anti-drip the pour's
    // own limit is the watchdogs' deadline, and the pour must not lose that race.
    let (pump, gpio, flow) = rig(Duration::from_secs(8), PulseTrain::flowing(10.0, PPL));
    let t = VolumeTarget {
        limit: Duration::from_secs(8),
        ..target(1000)
    };
    let out = pour_volume(&pump, Channel::A, &flow.counter(), t, FULL)
        .await
        .unwrap();
    assert!(
        matches!(out, VolumeOutcome::Short { pulses } if pulses > 20),
        "{out:?}"
    );
    assert!(on_for(&gpio, A.enable) < Duration::from_secs(8));
}

#[tokio::test(start_paused = true)]
async fn a_pour_ended_by_a_fault_still_reports_the_pulses_that_flowed() {
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(25.0, PPL));
    let g = gpio.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(4)).await;
        g.inject_fault(true);
    });
    let (r, pulses) =
        pour_volume_counted(&pump, Channel::A, &flow.counter(), target(135), FULL).await;
    assert!(matches!(r, Err(PumpError::Fault(_))), "{r:?}");
    // 4 s at 11.25 Hz: about 45 pulses went into the cup.
    assert!((40..=50).contains(&pulses), "{pulses}");
}

#[tokio::test(start_paused = true)]
async fn a_full_pour_runs_the_anti_drip_reverse_after_the_volume() {
    let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(25.0, PPL));
    let s = PourSettings {
        anti_drip: Duration::from_millis(300),
        ..FULL
    };
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(45), s)
        .await
        .unwrap();
    assert_eq!(out, VolumeOutcome::Reached { pulses: 45 });
    let rev = gpio.high_intervals(A.reverse);
    assert_eq!(rev.len(), 1);
    assert_eq!(rev[0].1 - rev[0].0, Duration::from_millis(300));
    // The reverse run does not move the forward count on.
    assert_eq!(flow.counter().pulses(), 45);
}

#[tokio::test(start_paused = true)]
async fn a_pour_dropped_mid_run_stops_the_pump_at_once_forward_or_in_its_anti_drip() {
    // A task aborted at shutdown drops its pour wherever it is: the lines go low then, not
    // only when the hard maximum run time ends the run.
    for pin in [A.enable, A.reverse] {
        let (pump, gpio, flow) = rig(Duration::from_secs(30), PulseTrain::flowing(25.0, PPL));
        let pump = std::sync::Arc::new(pump);
        let s = PourSettings {
            anti_drip: Duration::from_millis(300),
            ..FULL
        };
        let counter = flow.counter();
        let task = tokio::spawn({
            let pump = pump.clone();
            async move { pour_volume(&pump, Channel::A, &counter, target(45), s).await }
        });
        // Forward: the enable line is high from the start; the reverse line only in the
        // anti-drip run after the 45th pulse (about 4 s).
        let mut waited = Duration::ZERO;
        while !gpio.level(pin).is_some_and(PinValue::is_on) {
            assert!(
                waited < Duration::from_secs(10),
                "pin {pin} never went high"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += Duration::from_millis(10);
        }
        task.abort();
        let _ = task.await;
        assert!(!pump.is_running(), "pin {pin}");
        assert_eq!(
            gpio.level(A.enable),
            Some(PinValue::Level(false)),
            "pin {pin}"
        );
        assert_eq!(
            gpio.level(A.reverse),
            Some(PinValue::Level(false)),
            "pin {pin}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn bounces_faster_than_the_debounce_are_not_counted() {
    // Every pulse rings once 200 µs later; the debounce for 30 l/min is about 1.1 ms.
    let mut train = PulseTrain::flowing(25.0, PPL);
    train.bounce_every = 1;
    train.bounce = Duration::from_micros(200);
    let (pump, gpio, flow) = rig(Duration::from_secs(30), train);
    let out = pour_volume(&pump, Channel::A, &flow.counter(), target(90), FULL)
        .await
        .unwrap();
    assert_eq!(out, VolumeOutcome::Reached { pulses: 90 });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Twice as many edges reached the pin as pulses were counted.
    assert_eq!(gpio.edge_count(SENSOR), 180);
    assert_eq!(flow.counter().rejected(), 90);
}

#[test]
fn the_debounce_is_a_quarter_of_the_fastest_pulse_period() {
    let d = debounce_for(450.0, 30.0);
    assert!(
        d > Duration::from_micros(1100) && d < Duration::from_micros(1120),
        "{d:?}"
    );
    let c = PulseCounter::new(d);
    assert!(c.edge(10_000));
    assert!(!c.edge(10_500), "500 µs later is bounce");
    assert!(c.edge(14_444), "the next real pulse at 225 Hz");
    assert_eq!(c.pulses(), 2);
    assert_eq!(c.rejected(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_mock_traces_every_pulse_as_a_json_edge_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pins.jsonl");
    let gpio = MockGpio::new(Some(&path)).unwrap();
    let bridge = L298n::new(Box::new(gpio.pins()), A, None);
    let pump = Pump::new(bridge, Duration::from_secs(30)).unwrap();
    let flow = MockFlow::start(
        &gpio,
        SENSOR,
        A,
        PulseTrain::flowing(25.0, PPL),
        PulseCounter::new(Duration::ZERO),
    );
    pour_volume(&pump, Channel::A, &flow.counter(), target(20), FULL)
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let edges: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("edge").is_some())
        .collect();
    assert_eq!(edges.len(), 20);
    assert!(edges
        .iter()
        .all(|e| e["pin"] == SENSOR && e["edge"] == "falling" && e["ts_us"].is_u64()));
    // Jittered, not a square wave: the gaps differ.
    let gaps: Vec<u64> = edges
        .windows(2)
        .map(|w| w[1]["ts_us"].as_u64().unwrap() - w[0]["ts_us"].as_u64().unwrap())
        .collect();
    assert!(gaps.iter().min() != gaps.iter().max(), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_simulated_sensor_nobody_holds_ends_its_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let gpio = MockGpio::new(None).unwrap();
    for _ in 0..50 {
        let flow = MockFlow::start(
            &gpio,
            SENSOR,
            A,
            PulseTrain::flowing(25.0, PPL),
            PulseCounter::new(Duration::ZERO),
        );
        drop(flow);
    }
    assert!(metrics.num_alive_tasks() >= before + 50);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        before,
        "pulse tasks left running"
    );
}
