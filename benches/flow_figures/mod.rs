//! The flow sensor's figures for the bench table: the volume error at the stop, read back
//! from the mock GPIO's JSON-lines trace (pulses traced while the enable pin was high,
//! against the target), and the CPU the pulse counter costs at the sensor's top rate.

use std::time::{Duration, Instant};

use lnvend::pump::flow::{
    debounce_for, pour_volume, FlowSensor, PulseCounter, VolumeTarget, YF_S201_MAX_L_PER_MIN,
};
use lnvend::pump::flow_mock::{MockFlow, PulseTrain};
use lnvend::pump::mock::MockGpio;
use lnvend::pump::{BridgePins, Channel, L298n, PourSettings, Pump};

const PPL: f64 = 450.0;
const SENSOR: u8 = 17;
const A: BridgePins = BridgePins {
    forward: 23,
    reverse: 24,
    enable: 18,
};

/// |pulses traced during the pour − target| per pour, in pulses, for `pours` pours of
/// 300 ml at flows from 10 to 500 ml/s (30 l/min, the sensor's top), each with its own
/// jitter seed and a bounce on every fifth pulse.
pub fn volume_errors(pours: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("pins.jsonl");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let target = (300.0 * PPL / 1000.0_f64).round() as u64;
    rt.block_on(async {
        let gpio = MockGpio::new(Some(&trace)).unwrap();
        let pump = Pump::new(
            L298n::new(Box::new(gpio.pins()), A, None),
            Duration::from_secs(60),
        )
        .unwrap();
        for i in 0..pours {
            let ml_per_s = 10.0 + 490.0 * i as f64 / pours.saturating_sub(1).max(1) as f64;
            let mut train = PulseTrain::flowing(ml_per_s, PPL);
            train.seed = i as u64;
            train.bounce_every = 5;
            train.bounce = Duration::from_micros(300);
            let flow = MockFlow::start(
                &gpio,
                SENSOR,
                A,
                train,
                PulseCounter::new(debounce_for(PPL, YF_S201_MAX_L_PER_MIN)),
            );
            let t = VolumeTarget {
                pulses: target,
                no_flow: Duration::from_millis(1500),
                floor_pulses: 1,
                limit: Duration::from_secs(59),
            };
            let s = PourSettings {
                duty: 1.0,
                soft_start: Duration::ZERO,
                anti_drip: Duration::ZERO,
            };
            let out = pour_volume(&pump, Channel::A, &flow.counter(), t, s)
                .await
                .unwrap();
            // A short pour would be a figure of the flow, not of the stop.
            assert!(
                matches!(out, lnvend::pump::flow::VolumeOutcome::Reached { .. }),
                "{out:?}"
            );
            // Anything still in flight lands in the trace before the next pour.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    errors_from_trace(&std::fs::read_to_string(&trace).unwrap(), target)
}

/// Walks the trace: between each enable-high and enable-low line, counts the sensor's
/// edges (a bounce within the debounce counts as one), and gives |count − target|.
fn errors_from_trace(text: &str, target: u64) -> Vec<f64> {
    let debounce_us = debounce_for(PPL, YF_S201_MAX_L_PER_MIN).as_micros() as u64;
    let mut out = Vec::new();
    let mut on = false;
    let mut count = 0u64;
    let mut last_edge: Option<u64> = None;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let pin = v["pin"].as_u64().unwrap();
        let ts = v["ts_us"].as_u64().unwrap();
        if pin == u64::from(A.enable) && v.get("level").is_some() {
            let high = v["level"] == 1;
            if high && !on {
                count = 0;
                last_edge = None;
            } else if !high && on {
                out.push(count.abs_diff(target) as f64);
            }
            on = high;
        } else if pin == u64::from(SENSOR) && v.get("edge").is_some() {
            let bounce = last_edge.is_some_and(|l| ts - l < debounce_us);
            if !bounce {
                last_edge = Some(ts);
                if on {
                    count += 1;
                }
            }
        }
    }
    out
}

/// µs of CPU per pulse in the counter (the work rppal's interrupt thread does per edge),
/// one sample per batch of 100,000 edges spaced as at 225 Hz.
pub fn pulse_cost_us(batches: usize) -> Vec<f64> {
    let counter = PulseCounter::new(debounce_for(PPL, YF_S201_MAX_L_PER_MIN));
    let period_us = (1e6 / (PPL * YF_S201_MAX_L_PER_MIN / 60.0)) as u64;
    let mut t_us = 1;
    let mut out = Vec::new();
    for _ in 0..batches {
        let n = 100_000;
        let start = Instant::now();
        for _ in 0..n {
            t_us += period_us;
            std::hint::black_box(counter.edge(std::hint::black_box(t_us)));
        }
        out.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    assert_eq!(counter.pulses(), (batches * 100_000) as u64);
    out
}

/// The CPU share that cost is at the sensor's top rate, in per cent.
pub fn cpu_percent_at_top_rate(us_per_pulse: f64) -> f64 {
    let hz = PPL * YF_S201_MAX_L_PER_MIN / 60.0;
    us_per_pulse * hz / 1e6 * 100.0
}
