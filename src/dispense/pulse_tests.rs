//! The pulse pattern as the pins saw it: how many pulses, how wide, how far apart, and the
//! line low at the end, on a fault and when the dispense is dropped.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::pump::mock::{MockGpio, PinValue};

const LINE: u8 = 26;

fn spec(pulses: u32, width_ms: u64, gap_ms: u64) -> PulseSpec {
    PulseSpec {
        pin: LINE,
        width: Duration::from_millis(width_ms),
        pulses,
        gap: Duration::from_millis(gap_ms),
    }
}

fn dispenser() -> (PulseDispenser, MockGpio) {
    let gpio = MockGpio::new(None).unwrap();
    let d = PulseDispenser::new(Box::new(gpio.pins()), &[LINE]).unwrap();
    (d, gpio)
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test(start_paused = true)]
async fn the_pattern_is_exactly_its_count_widths_and_gaps_and_ends_low() {
    let (d, gpio) = dispenser();
    assert_eq!(
        gpio.level(LINE),
        Some(PinValue::Level(false)),
        "low from the start"
    );
    let t0 = Instant::now();
    let r = d.run(&spec(3, 150, 400)).await;
    assert!(matches!(r, Dispensed::Delivered { units: 3 }), "{r:?}");
    let highs = gpio.high_intervals(LINE);
    assert_eq!(highs.len(), 3, "three pulses: {highs:?}");
    for (i, (on, off)) in highs.iter().enumerate() {
        assert_eq!(ms(*off - *on), 150, "pulse {i} is 150 ms wide");
        assert_eq!(
            ms(*on - t0),
            i as u128 * 550,
            "pulse {i} starts after the gaps"
        );
    }
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(false)));
    assert_eq!(gpio.on_count(LINE), 3);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_dispense_drives_the_line_low_at_once() {
    let (d, gpio) = dispenser();
    let task = {
        let d = d.clone();
        tokio::spawn(async move { d.run(&spec(2, 5000, 100)).await })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(true)), "mid-pulse");
    task.abort();
    let _ = task.await;
    assert_eq!(
        gpio.level(LINE),
        Some(PinValue::Level(false)),
        "low on drop"
    );
    let highs = gpio.high_intervals(LINE);
    assert_eq!(highs.len(), 1);
    assert_eq!(
        ms(highs[0].1 - highs[0].0),
        1000,
        "cut at the drop, not at 5 s"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(gpio.on_count(LINE), 1, "no second pulse after the drop");
}

#[tokio::test(start_paused = true)]
async fn a_gpio_fault_mid_pattern_reports_the_pulses_sent_and_leaves_the_line_low() {
    let (d, gpio) = dispenser();
    let task = {
        let d = d.clone();
        tokio::spawn(async move { d.run(&spec(3, 100, 100)).await })
    };
    // After the first pulse (0..100 ms), during the gap before the second.
    tokio::time::sleep(Duration::from_millis(150)).await;
    gpio.inject_fault(true);
    let r = task.await.unwrap();
    assert!(
        matches!(
            r,
            Dispensed::Partial {
                units: 1,
                trouble: Some(_)
            }
        ),
        "{r:?}"
    );
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(false)));
    // A fault before any pulse: nothing was sent.
    let r = d.run(&spec(1, 100, 100)).await;
    assert!(matches!(r, Dispensed::Failed(_)), "{r:?}");
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(false)));
}

#[tokio::test(start_paused = true)]
async fn a_line_it_did_not_claim_is_never_driven() {
    let (d, gpio) = dispenser();
    let r = d
        .run(&PulseSpec {
            pin: 5,
            ..spec(1, 100, 100)
        })
        .await;
    assert!(matches!(r, Dispensed::Failed(_)), "{r:?}");
    assert_eq!(gpio.on_count(5), 0);
}

#[test]
fn the_hard_stop_ends_a_pulse_when_no_runtime_ends_it() {
    // A runtime that polls the pulse up to its sleep and then never again: as stuck as
    // one can be. The OS thread must drive the line low at width + slack.
    let (d, gpio) = dispenser();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let fut = d.pulse(LINE, Duration::from_millis(50));
    let mut fut = Box::pin(fut);
    rt.block_on(async {
        // One poll: the line goes high and the pulse waits on its timer.
        std::future::poll_fn(|cx| {
            let _ = fut.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
    });
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(true)));
    while gpio.level(LINE) == Some(PinValue::Level(true)) {
        assert!(started.elapsed() < Duration::from_secs(5), "never stopped");
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(1050),
        "not before width + slack: {held:?}"
    );
    // Resumed late, the pulse reports the hard stop.
    let r = rt.block_on(fut);
    assert!(matches!(r, Err(PulseError::HardStop(LINE))), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_pattern_sticks_the_cut_pulse_is_not_sent_and_no_later_pulse_starts() {
    let (d, gpio) = dispenser();
    let task = {
        let d = d.clone();
        tokio::spawn(async move { d.run(&spec(4, 1000, 500)).await })
    };
    // Pulse 1: 0..1000 ms, the gap, pulse 2 from 1500 ms: stopped mid-way through it.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(true)), "mid-pulse 2");
    d.stop().unwrap();
    assert_eq!(
        gpio.level(LINE),
        Some(PinValue::Level(false)),
        "low at once"
    );
    let r = task.await.unwrap();
    assert!(
        matches!(r, Dispensed::Partial { units: 1, .. }),
        "one whole pulse sent, the cut one not: {r:?}"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(false)), "stays low");
    assert_eq!(gpio.on_count(LINE), 2, "no pulse after the stop");
    let r = d.run(&spec(1, 100, 0)).await;
    assert!(matches!(r, Dispensed::Failed(_)), "{r:?}");
    assert_eq!(gpio.on_count(LINE), 2, "not even a new pattern");
}

#[tokio::test(start_paused = true)]
async fn the_panic_hook_s_emergency_stop_drives_a_high_line_low_and_sticks() {
    let (d, gpio) = dispenser();
    let task = {
        let d = d.clone();
        tokio::spawn(async move { d.run(&spec(3, 5000, 100)).await })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(true)), "mid-pulse");
    assert!(d.emergency_stop());
    assert_eq!(gpio.level(LINE), Some(PinValue::Level(false)));
    let _ = task.await;
    assert_eq!(gpio.on_count(LINE), 1, "no pulse after it");
}
