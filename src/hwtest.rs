//! The hardware test commands a maker runs at the bench: `lnvend pour` (run one channel
//! for a given time) and `lnvend pump-off` (drive every bridge pin low, also the service's
//! `ExecStopPost=` after a crash or a watchdog kill).
//!
//! `pour` reads the same config file as the service and drives the pump through the same
//! [`Pump`] and [`pour`] as a sale, with its watchdog: what works here works when a customer
//! pays. `pump-off` reads only the file's `[gpio]` table ([`Config::load_gpio`]), so that
//! nothing else in the file can keep it from driving the pins low. Both claim the pins through
//! [`crate::assemble::open_bridge`], the one place that does, and stop on the same signals as
//! the service ([`crate::app::signals`]). A pour is refused up front when it is longer than
//! the configured maximum run time, instead of being cut short by the watchdog with liquid in
//! the line.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::assemble::{bridge_pins, open_bridge, open_pump, OpenPumpError};
use crate::config::{Config, GpioConfig};
use crate::dispense::PulseDispenser;
use crate::pump::{pour, Channel, Pump, PumpError};

#[derive(Debug, thiserror::Error)]
pub enum HwError {
    #[error(
        "refusing to pour {ms} ms: the maximum run time is {max_ms} ms \
         (gpio.max_run_ms {max_run_ms}{anti_drip}); pour less or raise gpio.max_run_ms"
    )]
    TooLong {
        ms: u64,
        max_ms: u64,
        max_run_ms: u64,
        anti_drip: String,
    },
    #[error("refusing to pour 0 ms")]
    Zero,
    #[error("channel {0} is not wired: add [gpio.channel_b] to the config")]
    NotWired(Channel),
    #[error(transparent)]
    Pump(#[from] PumpError),
    #[error(transparent)]
    Open(#[from] OpenPumpError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// How a test pour ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Poured(Duration),
    /// Ctrl-C (or SIGTERM/SIGHUP) arrived; the pump was stopped.
    Interrupted,
}

/// The pour time to use for a request of `ms` on `channel`, or why it is refused. The
/// anti-drip pulse runs after the pour and counts against the same maximum, as it does for
/// a product.
pub fn checked_pour_time(config: &Config, channel: Channel, ms: u64) -> Result<Duration, HwError> {
    match channel {
        Channel::A => {}
        Channel::B if config.gpio.channel_b.is_some() => {}
        Channel::B => return Err(HwError::NotWired(channel)),
    }
    let max_run_ms = config.gpio.max_run_ms;
    let anti_drip_ms = config.gpio.anti_drip_ms;
    let max_ms = max_run_ms.saturating_sub(anti_drip_ms);
    if ms == 0 {
        return Err(HwError::Zero);
    }
    if ms > max_ms {
        return Err(HwError::TooLong {
            ms,
            max_ms,
            max_run_ms,
            anti_drip: if anti_drip_ms > 0 {
                format!(" minus gpio.anti_drip_ms {anti_drip_ms}")
            } else {
                String::new()
            },
        });
    }
    Ok(Duration::from_millis(ms))
}

/// Pours `duration` on `channel` unless `interrupt` completes first; then the pump is
/// stopped at once. Must run inside a tokio runtime.
pub async fn pour_until(
    pump: &Pump,
    config: &Config,
    channel: Channel,
    duration: Duration,
    interrupt: impl Future<Output = ()>,
) -> Result<Outcome, HwError> {
    let settings = config.pour_settings();
    tokio::select! {
        result = pour(pump, channel, duration, settings) => {
            result?;
            Ok(Outcome::Poured(duration))
        }
        () = interrupt => {
            // The pour future is dropped mid-way, so its own stop never runs: stop here.
            pump.stop()?;
            Ok(Outcome::Interrupted)
        }
    }
}

/// `lnvend pour`: checks the request, then pours, stopping on Ctrl-C, SIGTERM or SIGHUP.
pub fn pour_command(config: &Config, channel: Channel, ms: u64) -> Result<Outcome, HwError> {
    let duration = checked_pour_time(config, channel, ms)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HwError::Runtime)?;
    let (pump, _gpio) = open_pump(config)?;
    crate::app::signals::install_panic_hook(pump.clone(), None);
    eprintln!(
        "pouring on channel {channel} for {} ms (Ctrl-C stops the pump)",
        duration.as_millis()
    );
    let outcome = rt.block_on(pour_until(&pump, config, channel, duration, stop_signal()));
    // Whatever happened, the pins are left low.
    let stopped = pump.stop();
    let outcome = outcome?;
    stopped?;
    Ok(outcome)
}

/// `lnvend pump-off`: claims every bridge pin of the `[gpio]` table and every pulse
/// product's line (`pulse`), and drives them low: after a panic or a kill, a relay line
/// left high would hold a coin input or run a motor. The pins stay low after lnvend exits
/// (see `pump::rpi`).
pub fn pump_off_command(g: &GpioConfig, pulse: &[u8]) -> Result<Vec<u8>, HwError> {
    pump_off_on(g, pulse).map(|(pins, _)| pins)
}

/// [`pump_off_command`], with the mock pins it drove when they are mocked.
fn pump_off_on(
    g: &GpioConfig,
    pulse: &[u8],
) -> Result<(Vec<u8>, Option<crate::pump::mock::MockGpio>), HwError> {
    let (mut bridge, gpio) = open_bridge(g)?;
    // The bridge first, and whatever the pulse lines do, it is off.
    let bridge_off = bridge.stop_all();
    let (a, b) = bridge_pins(g);
    let mut pins: Vec<u8> = [a]
        .into_iter()
        .chain(b)
        .flat_map(|p| [p.enable, p.forward, p.reverse])
        .collect();
    // A line shared with the bridge (a config the service refuses) is driven by it.
    let lines: Vec<u8> = pulse
        .iter()
        .copied()
        .filter(|p| !pins.contains(p))
        .collect();
    let pulse_off = if lines.is_empty() {
        Ok(())
    } else {
        crate::assemble::pulse_pins(g, &lines, gpio.as_ref())
            .and_then(|p| PulseDispenser::new(p, &lines).map_err(OpenPumpError::from))
            .map(drop)
    };
    bridge_off?;
    pulse_off?;
    pins.extend(lines);
    pins.sort_unstable();
    Ok((pins, gpio))
}

/// `lnvend pour` for the command line: 0 poured, 1 refused, 2 pump or GPIO failure,
/// 130 interrupted (the shell's code for Ctrl-C).
pub fn main_pour(config: &Config, channel: Channel, ms: u64) -> ExitCode {
    match pour_command(config, channel, ms) {
        Ok(Outcome::Poured(d)) => {
            eprintln!("poured {} ms; pump off", d.as_millis());
            ExitCode::SUCCESS
        }
        Ok(Outcome::Interrupted) => {
            eprintln!("interrupted; pump off");
            ExitCode::from(130)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                HwError::TooLong { .. } | HwError::Zero => 1,
                HwError::NotWired(_) => 1,
                HwError::Pump(_) | HwError::Open(_) | HwError::Runtime(_) => 2,
            })
        }
    }
}

/// `lnvend pump-off` for the command line: 0 when every pin is low, 2 otherwise.
pub fn main_pump_off(g: &GpioConfig, pulse: &[u8]) -> ExitCode {
    match pump_off_command(g, pulse) {
        Ok(pins) => {
            let list: Vec<String> = pins.iter().map(|p| format!("BCM {p}")).collect();
            eprintln!("pump off: {} low", list.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot turn the pump off: {e}");
            ExitCode::from(2)
        }
    }
}

/// Completes on the first SIGINT, SIGTERM or SIGHUP; never if none can be caught.
async fn stop_signal() {
    crate::app::signals::stop_signal(|_, e| eprintln!("warning: cannot catch a stop signal: {e}"))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::pump::mock::PinValue;

    const CONFIG: &str = r#"
[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000

[gpio]
backend = "mock"
max_run_ms = 10000
"#;

    fn config(extra: &str) -> Config {
        Config::parse(&format!("{CONFIG}{extra}"), "test.toml", Mode::Sim).unwrap()
    }

    #[test]
    fn a_pour_above_the_maximum_run_time_is_refused_with_the_numbers() {
        let c = config("");
        assert_eq!(
            checked_pour_time(&c, Channel::A, 10_000).unwrap(),
            Duration::from_secs(10)
        );
        let e = checked_pour_time(&c, Channel::A, 10_001).unwrap_err();
        assert!(matches!(
            e,
            HwError::TooLong {
                ms: 10_001,
                max_ms: 10_000,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "refusing to pour 10001 ms: the maximum run time is 10000 ms \
             (gpio.max_run_ms 10000); pour less or raise gpio.max_run_ms"
        );
    }

    #[test]
    fn the_anti_drip_pulse_counts_against_the_maximum() {
        let c = config("anti_drip_ms = 500\n");
        assert!(checked_pour_time(&c, Channel::A, 9_500).is_ok());
        let e = checked_pour_time(&c, Channel::A, 9_501).unwrap_err();
        assert!(e.to_string().contains("minus gpio.anti_drip_ms 500"), "{e}");
    }

    #[test]
    fn zero_and_an_unwired_channel_are_refused() {
        let c = config("");
        assert!(matches!(
            checked_pour_time(&c, Channel::A, 0),
            Err(HwError::Zero)
        ));
        assert!(matches!(
            checked_pour_time(&c, Channel::B, 100),
            Err(HwError::NotWired(Channel::B))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_test_pour_runs_for_exactly_its_time() {
        let c = config("");
        let (pump, gpio) = open_pump(&c).unwrap();
        let gpio = gpio.unwrap();
        let d = checked_pour_time(&c, Channel::A, 1500).unwrap();
        let outcome = pour_until(&pump, &c, Channel::A, d, std::future::pending())
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Poured(d));
        let ena = c.bridge_pins().0.enable;
        let highs = gpio.high_intervals(ena);
        assert_eq!(highs.len(), 1);
        assert_eq!(highs[0].1 - highs[0].0, d);
        assert_eq!(gpio.level(ena), Some(PinValue::Level(false)));
    }

    #[tokio::test(start_paused = true)]
    async fn ctrl_c_stops_the_pump_at_once() {
        let c = config("");
        let (pump, gpio) = open_pump(&c).unwrap();
        let gpio = gpio.unwrap();
        let interrupt = tokio::time::sleep(Duration::from_millis(700));
        let outcome = pour_until(&pump, &c, Channel::A, Duration::from_secs(5), interrupt)
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::Interrupted);
        let (a, _) = c.bridge_pins();
        let highs = gpio.high_intervals(a.enable);
        assert_eq!(highs[0].1 - highs[0].0, Duration::from_millis(700));
        for pin in [a.enable, a.forward, a.reverse] {
            assert_eq!(gpio.level(pin), Some(PinValue::Level(false)), "BCM {pin}");
        }
        assert!(!pump.is_running());
    }

    #[test]
    fn pump_off_drives_every_configured_pin_low() {
        let c = config("\n[gpio.channel_b]\nin3 = 5\nin4 = 6\nenb = 13\n");
        assert_eq!(
            pump_off_command(&c.gpio, &[]).unwrap(),
            vec![5, 6, 13, 18, 23, 24]
        );
    }

    /// The unit's `ExecStopPost=` after a panic or a kill: a relay line left high would
    /// keep a coin input held or a motor running.
    #[test]
    fn pump_off_drives_every_pulse_product_s_line_low_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lnvend.toml");
        let text = format!(
            "{CONFIG}\n[[product]]\nname = \"Snack\"\nprice_sat = 1000\ndispenser = \"pulse\"\n\
             pulse_pin = 26\n\n[[product]]\nname = \"Gum\"\nprice_sat = 500\n\
             dispenser = \"pulse\"\npulse_pin = 19\n"
        );
        std::fs::write(&path, text).unwrap();
        let g = Config::load_gpio(&path, Mode::Run).unwrap();
        let lines = Config::pulse_pins_of(&path);
        assert_eq!(lines, vec![19, 26]);
        let (pins, gpio) = pump_off_on(&g, &lines).unwrap();
        assert_eq!(pins, vec![18, 19, 23, 24, 26]);
        let gpio = gpio.unwrap();
        for pin in [19, 26] {
            assert_eq!(gpio.level(pin), Some(PinValue::Level(false)), "BCM {pin}");
        }
    }
}
