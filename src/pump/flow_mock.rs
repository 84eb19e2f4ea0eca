//! The simulated flow sensor of the mock GPIO: while a channel's pump runs forward it
//! pulses at a configurable rate with jitter (a real sensor's pulses are never a perfect
//! square wave), scaled by the PWM duty; a "tank empty" switch stops the pulses while the
//! pump keeps running, as a dry tank would. Every pulse is traced by [`MockGpio`] and fed
//! to a [`PulseCounter`], exactly as rppal's interrupt thread feeds it on the Pi.
//!
//! The pulse train runs as a tokio task, so under paused time a test's pour is exact and
//! repeatable (the jitter comes from a seeded generator).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::flow::PulseCounter;
use super::mock::MockGpio;
use super::BridgePins;

/// How one simulated sensor pulses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PulseTrain {
    /// Pulses per second at full duty.
    pub hz: f64,
    /// Each period is the mean times a factor drawn from 1 ± `jitter` (0.15: ±15 %).
    pub jitter: f64,
    /// Every this many pulses one comes with a bounce edge `bounce` later (0: none), for
    /// the debounce to drop.
    pub bounce_every: u64,
    pub bounce: Duration,
    pub seed: u64,
}

impl PulseTrain {
    /// A sensor of `pulses_per_litre` in a line flowing `ml_per_s`, with ±15 % jitter.
    pub fn flowing(ml_per_s: f64, pulses_per_litre: f64) -> PulseTrain {
        PulseTrain {
            hz: ml_per_s * pulses_per_litre / 1000.0,
            jitter: 0.15,
            bounce_every: 0,
            bounce: Duration::ZERO,
            seed: 15,
        }
    }
}

struct Shared {
    empty: AtomicBool,
    /// The rate in pulses per second, as f64 bits, so the simulator can change it live.
    hz_bits: AtomicU64,
}

/// The handle to one simulated sensor.
#[derive(Clone)]
pub struct MockFlow {
    shared: Arc<Shared>,
    counter: PulseCounter,
    pin: u8,
}

impl std::fmt::Debug for MockFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockFlow").field("pin", &self.pin).finish()
    }
}

impl MockFlow {
    /// Starts the pulse train of the sensor on input `pin`, which flows while `bridge`
    /// runs forward. Needs a tokio runtime; the task ends once nobody else holds the
    /// counter (the handle holds one too).
    pub fn start(
        gpio: &MockGpio,
        pin: u8,
        bridge: BridgePins,
        train: PulseTrain,
        counter: PulseCounter,
    ) -> MockFlow {
        let shared = Arc::new(Shared {
            empty: AtomicBool::new(false),
            hz_bits: AtomicU64::new(train.hz.to_bits()),
        });
        tokio::spawn(pulse_task(
            gpio.clone(),
            pin,
            bridge,
            train,
            shared.clone(),
            counter.clone(),
        ));
        MockFlow {
            shared,
            counter,
            pin,
        }
    }

    /// The tank runs dry (true) or is refilled (false).
    pub fn set_tank_empty(&self, empty: bool) {
        self.shared.empty.store(empty, Ordering::Relaxed);
    }

    pub fn tank_empty(&self) -> bool {
        self.shared.empty.load(Ordering::Relaxed)
    }

    /// Changes the flow (pulses per second at full duty).
    pub fn set_hz(&self, hz: f64) {
        self.shared.hz_bits.store(hz.to_bits(), Ordering::Relaxed);
    }

    pub fn counter(&self) -> PulseCounter {
        self.counter.clone()
    }

    pub fn pin(&self) -> u8 {
        self.pin
    }
}

/// Whether the pump of `bridge` runs forward, and at what duty.
fn forward_duty(gpio: &MockGpio, b: BridgePins) -> f64 {
    use super::mock::PinValue;
    let fwd = gpio.level(b.forward).is_some_and(PinValue::is_on);
    let rev = gpio.level(b.reverse).is_some_and(PinValue::is_on);
    match gpio.level(b.enable) {
        Some(PinValue::Level(true)) if fwd && !rev => 1.0,
        Some(PinValue::Duty(d)) if fwd && !rev => d,
        Some(PinValue::Level(_) | PinValue::Duty(_)) | None => 0.0,
    }
}

async fn pulse_task(
    gpio: MockGpio,
    pin: u8,
    bridge: BridgePins,
    train: PulseTrain,
    shared: Arc<Shared>,
    counter: PulseCounter,
) {
    let mut changes = gpio.subscribe();
    let mut rng = rand::rngs::StdRng::seed_from_u64(train.seed);
    let epoch = Instant::now();
    let mut n: u64 = 0;
    // The phase of the current period: a change of duty keeps it.
    let mut next: Option<Instant> = None;
    loop {
        if counter.holders() == 1 {
            return;
        }
        let empty = shared.empty.load(Ordering::Relaxed);
        let hz = f64::from_bits(shared.hz_bits.load(Ordering::Relaxed));
        let duty = forward_duty(&gpio, bridge);
        let rate = hz * duty;
        if empty || rate <= 0.0 {
            next = None;
            // Checked again at every pin change, and now and then for the switch.
            let _ = tokio::time::timeout(Duration::from_millis(100), changes.changed()).await;
            continue;
        }
        let at = *next.get_or_insert_with(|| {
            let j = 1.0 + train.jitter * rng.gen_range(-1.0..=1.0);
            Instant::now() + Duration::from_secs_f64(j.max(0.05) / rate)
        });
        tokio::select! {
            () = tokio::time::sleep_until(at) => {
                next = None;
                if forward_duty(&gpio, bridge) <= 0.0 {
                    continue;
                }
                n += 1;
                gpio.record_edge(pin, false);
                counter.edge((Instant::now() - epoch).as_micros() as u64);
                if train.bounce_every > 0 && n % train.bounce_every == 0 {
                    tokio::time::sleep(train.bounce).await;
                    gpio.record_edge(pin, false);
                    counter.edge((Instant::now() - epoch).as_micros() as u64);
                }
            }
            r = changes.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
    }
}
