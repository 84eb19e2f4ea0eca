//! `[gpio.channel_a.flow]` / `[gpio.channel_b.flow]`: a hall-effect flow sensor on a pump
//! channel: its pin and calibration, the no-flow rules that protect a pump running dry, and
//! the bounds of the volumes a product may ask of it. The product keys that use them
//! (`volume_ml`, `tank_ml`, `stock_ml`, `low_stock_ml`, `timed_pour_ml`) are checked in
//! `products`, which imports this room and not the other way round.

use serde::{Deserialize, Serialize};

use super::locate::{invalid, Invalid};
use super::GpioConfig;
use crate::pump::Channel;

/// The most a single pour may be set to, in ml (a slipped digit must not empty a tank).
pub const MAX_VOLUME_ML: u32 = 5_000;
/// The largest tank lnvend counts, in ml.
pub const MAX_TANK_ML: u32 = 1_000_000;

/// The highest flow floor accepted, in ml/s (3 l/min): more than a 12 V drink pump
/// delivers, so a higher floor (a slipped digit) would call every pour a dry tank and sell
/// every product out on its first pour.
pub const MAX_MIN_FLOW_ML_PER_S: f64 = 50.0;

/// Which way the input is biased when the sensor's open-collector output is off.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// The Pi's internal pull-up to 3.3 V (the YF-S201's open-collector output needs one).
    Up,
    /// Pull-down, for a sensor with a push-pull output (through a divider to 3.3 V).
    Down,
}

/// One flow sensor.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// The BCM input pin the sensor's signal is on.
    pub pin: u8,
    /// "up" (default) or "down".
    #[serde(default = "default_pull")]
    pub pull: Pull,
    /// Pulses per litre of this unit, from calibration. Default 450 (a YF-S201's datasheet
    /// figure; units differ by about 10 %, so calibrate each one).
    #[serde(default = "default_pulses_per_litre")]
    pub pulses_per_litre: f64,
    /// The pour is a failure (the tank is empty, the line is blocked) when no pulse came
    /// this many ms after the pump started. Default 1500.
    #[serde(default = "default_no_flow_ms")]
    pub no_flow_ms: u64,
    /// The pour is a failure when the flow falls below this many ml per second mid-pour
    /// (measured over `no_flow_ms`). Default 2.
    #[serde(default = "default_min_flow")]
    pub min_flow_ml_per_s: f64,
    /// Mock GPIO only: how many ml per second the simulated sensor reports while the pump
    /// runs forward (with jitter). Default 25.
    #[serde(default = "default_mock_flow")]
    pub mock_ml_per_s: f64,
}

fn default_pull() -> Pull {
    Pull::Up
}
fn default_pulses_per_litre() -> f64 {
    450.0
}
fn default_no_flow_ms() -> u64 {
    1_500
}
fn default_min_flow() -> f64 {
    2.0
}
fn default_mock_flow() -> f64 {
    25.0
}

impl FlowConfig {
    /// The pulses that make `ml` at this calibration, rounded to the nearest (at least 1).
    pub fn pulses_for(&self, ml: u32) -> u64 {
        ((f64::from(ml) * self.pulses_per_litre / 1000.0).round() as u64).max(1)
    }

    /// The ml that `pulses` stand for at this calibration.
    pub fn ml_of(&self, pulses: u64) -> u32 {
        (pulses as f64 * 1000.0 / self.pulses_per_litre).round() as u32
    }
}

/// The calibration a test pour gives: `pulses` counted while the jug received
/// `measured_ml`. None when either is zero or the result is out of any sensor's range.
pub fn calibrate(pulses: u64, measured_ml: u32) -> Option<f64> {
    if pulses == 0 || measured_ml == 0 {
        return None;
    }
    let ppl = pulses as f64 * 1000.0 / f64::from(measured_ml);
    (PULSES_PER_LITRE_RANGE.0..=PULSES_PER_LITRE_RANGE.1)
        .contains(&ppl)
        .then_some(ppl)
}

/// The calibrations accepted: every common hall sensor from 1/2" to 1/8" lies inside.
pub const PULSES_PER_LITRE_RANGE: (f64, f64) = (50.0, 20_000.0);

/// The flow sensor of `channel`, if it has one.
pub fn sensor(g: &GpioConfig, channel: Channel) -> Option<FlowConfig> {
    match channel {
        Channel::A => g.channel_a.flow,
        Channel::B => g.channel_b.and_then(|b| b.flow),
    }
}

/// The sensors' own rules, and that their pins are inputs no output uses.
pub(super) fn check_sensors(g: &GpioConfig, outputs: &[(&str, u8)]) -> Result<(), Invalid> {
    let sensors = [
        ("gpio.channel_a.flow", g.channel_a.flow),
        ("gpio.channel_b.flow", g.channel_b.and_then(|b| b.flow)),
    ];
    let mut seen: Vec<(&str, u8)> = outputs.to_vec();
    for (table, f) in sensors {
        let Some(f) = f else { continue };
        let field = |k: &str| format!("{table}.{k}");
        if f.pin > super::MAX_BCM {
            return Err(invalid(
                field("pin"),
                format!("BCM {} is not on the 40-pin header (0..=27)", f.pin),
            ));
        }
        if let Some((other, _)) = seen.iter().find(|(_, p)| *p == f.pin) {
            return Err(invalid(
                field("pin"),
                format!("BCM {} is already used by {other}", f.pin),
            ));
        }
        seen.push((table, f.pin));
        let (lo, hi) = PULSES_PER_LITRE_RANGE;
        if !(lo..=hi).contains(&f.pulses_per_litre) {
            return Err(invalid(
                field("pulses_per_litre"),
                format!("must be between {lo} and {hi}"),
            ));
        }
        if !(200..=10_000).contains(&f.no_flow_ms) {
            return Err(invalid(
                field("no_flow_ms"),
                "must be between 200 and 10000 ms",
            ));
        }
        if !(f.min_flow_ml_per_s >= 0.0 && f.min_flow_ml_per_s <= MAX_MIN_FLOW_ML_PER_S) {
            return Err(invalid(
                field("min_flow_ml_per_s"),
                format!("must be between 0 and {MAX_MIN_FLOW_ML_PER_S}"),
            ));
        }
        if !(f.mock_ml_per_s >= 0.0 && f.mock_ml_per_s <= 500.0) {
            return Err(invalid(field("mock_ml_per_s"), "must be between 0 and 500"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_is_pulses_over_the_measured_litres() {
        // 225 pulses into a jug that shows 500 ml: 450 pulses per litre.
        assert_eq!(calibrate(225, 500), Some(450.0));
        // A unit 10 % fast: 248 pulses for 500 ml.
        assert_eq!(calibrate(248, 500), Some(496.0));
        assert_eq!(calibrate(0, 500), None);
        assert_eq!(calibrate(225, 0), None);
        // 2 pulses for a litre is no sensor: a typo on the keypad.
        assert_eq!(calibrate(2, 1000), None);
    }

    #[test]
    fn volumes_and_pulses_convert_at_the_calibration() {
        let f = FlowConfig {
            pin: 17,
            pull: Pull::Up,
            pulses_per_litre: 450.0,
            no_flow_ms: 1500,
            min_flow_ml_per_s: 2.0,
            mock_ml_per_s: 25.0,
        };
        assert_eq!(f.pulses_for(300), 135);
        assert_eq!(f.pulses_for(1), 1);
        assert_eq!(f.ml_of(135), 300);
        assert_eq!(f.ml_of(45), 100);
    }

    use crate::config::{Config, Mode};

    const BASE: &str = r#"
[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 20000
volume_ml = 300
tank_ml = 10000
low_stock_ml = 1000

[gpio]
backend = "mock"

[gpio.channel_a]
in1 = 23
in2 = 24
ena = 18

[gpio.channel_a.flow]
pin = 17
pulses_per_litre = 465.5
"#;

    #[test]
    fn a_product_poured_by_volume_loads_with_its_sensor() {
        let c = Config::parse(BASE, "t.toml", Mode::Sim).unwrap();
        let p = &c.product_specs()[0];
        assert_eq!(p.volume_ml, Some(300));
        assert_eq!(p.tank_ml, Some(10_000));
        let f = sensor(&c.gpio, Channel::A).unwrap();
        assert_eq!(f.pulses_per_litre, 465.5);
        assert_eq!(f.pull, Pull::Up);
        assert_eq!(f.no_flow_ms, 1500);
        // check-config prints it, and the printed file loads the same again.
        let printed = c.to_redacted_toml();
        assert_eq!(Config::parse(&printed, "t", Mode::Sim).unwrap(), c);
    }

    #[test]
    fn volume_without_a_flow_sensor_is_refused_at_its_line() {
        let text = BASE.replace(
            "[gpio.channel_a.flow]\npin = 17\npulses_per_litre = 465.5\n",
            "",
        );
        let e = Config::parse(&text, "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "product[0].volume_ml");
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("[gpio.channel_a.flow]"), "{e}");
    }

    #[test]
    fn a_sensor_on_an_output_pin_or_off_the_header_is_refused() {
        let e =
            Config::parse(&BASE.replace("pin = 17", "pin = 18"), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "gpio.channel_a.flow.pin");
        assert!(e.message.contains("gpio.channel_a.ena"), "{e}");
        let e =
            Config::parse(&BASE.replace("pin = 17", "pin = 40"), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "gpio.channel_a.flow.pin");
        let e = Config::parse(&BASE.replace("465.5", "2"), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "gpio.channel_a.flow.pulses_per_litre");
        let e = Config::parse(
            &BASE.replace("pin = 17", "pin = 17\npull = \"sideways\""),
            "t.toml",
            Mode::Sim,
        )
        .unwrap_err();
        assert!(e.field.contains("pull"), "{e}");
    }

    #[test]
    fn a_volume_time_limit_within_the_no_flow_time_or_a_floor_no_pump_meets_is_refused() {
        let e = Config::parse(
            &BASE.replace("pour_ms = 20000", "pour_ms = 1500"),
            "t.toml",
            Mode::Sim,
        )
        .unwrap_err();
        assert_eq!(e.field, "product[0].pour_ms");
        assert!(e.line > 0, "{e}");
        assert!(e.message.contains("no_flow_ms = 1500"), "{e}");
        assert!(Config::parse(
            &BASE.replace("pour_ms = 20000", "pour_ms = 1501"),
            "t.toml",
            Mode::Sim
        )
        .is_ok());
        let floor = |ml: &str| {
            BASE.replace(
                "pulses_per_litre = 465.5",
                &format!("pulses_per_litre = 465.5\nmin_flow_ml_per_s = {ml}"),
            )
        };
        let e = Config::parse(&floor("200"), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "gpio.channel_a.flow.min_flow_ml_per_s");
        assert!(Config::parse(&floor("50"), "t.toml", Mode::Sim).is_ok());
    }

    #[test]
    fn stock_keys_need_a_tank_and_fit_in_it() {
        let e = Config::parse(
            &BASE.replace("low_stock_ml = 1000", "stock_ml = 20000"),
            "t.toml",
            Mode::Sim,
        )
        .unwrap_err();
        assert_eq!(e.field, "product[0].stock_ml");
        let e =
            Config::parse(&BASE.replace("tank_ml = 10000\n", ""), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "product[0].low_stock_ml");
        // A timed product keeps stock only with the ml one pour gives.
        let timed = BASE.replace("volume_ml = 300", "channel = \"A\"");
        let e = Config::parse(&timed, "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "product[0].tank_ml");
        let timed = BASE.replace("volume_ml = 300", "timed_pour_ml = 250");
        let c = Config::parse(&timed, "t.toml", Mode::Sim).unwrap();
        assert_eq!(c.product_specs()[0].timed_pour_ml, Some(250));
    }
}
