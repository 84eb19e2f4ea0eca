//! `[gpio]`: which pins drive the L298N and how the pump is driven, with its checks.
//!
//! Kept apart from the rest of the file because `lnvend pump-off` reads only this table
//! (see [`super::Config::load_gpio`]): the pins must be driven low even when the rest of
//! the config is broken, so these checks stand on their own.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::flow::FlowConfig;
use super::locate::{invalid, Invalid};
use crate::pump::gpiochip::ChipSelector;
use crate::pump::{BridgePins, PourSettings};

/// The longest `gpio.max_run_ms` accepted.
pub const MAX_RUN_MS_LIMIT: u64 = 300_000;
/// The highest BCM number on the 40-pin header.
pub const MAX_BCM: u8 = 27;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GpioBackend {
    /// The Pi's GPIO through rppal.
    Rppal,
    /// In-memory pins that record every change (simulator, tests).
    Mock,
    /// The Linux GPIO character device (`/dev/gpiochipN`): any board the kernel supports,
    /// and gpio-sim in the appliance VM test. Pin numbers are the chip's line offsets.
    Gpiochip,
}

/// `[gpio]`. As read from the file (`RawGpio`) the backend may be absent; after loading
/// the mode has chosen it, so a loaded `GpioConfig` always names one.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig<B = GpioBackend> {
    /// "rppal", "gpiochip" or "mock". Default: rppal (run), mock (sim).
    #[serde(default)]
    pub backend: B,
    /// gpiochip only: the chip's device, `/dev/gpiochip0` or just `gpiochip0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// gpiochip only, instead of `chip`: the chip's label as the kernel reports it (stays
    /// right when chips are numbered differently on another board or kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip_label: Option<String>,
    /// Mock only: append every pin change to this file as JSON lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<PathBuf>,
    /// PWM duty on the enable pin while pouring, 0 < duty <= 1. 1 drives it plainly high.
    #[serde(default = "default_duty")]
    pub pwm_duty: f64,
    /// Software PWM frequency in Hz (used when pwm_duty < 1 or soft_start_ms > 0).
    #[serde(default = "default_pwm_hz")]
    pub pwm_frequency_hz: f64,
    /// Ramp the motor up over this many ms at the start of a pour (0: off).
    #[serde(default)]
    pub soft_start_ms: u64,
    /// Reverse the pump for this many ms after a pour to stop drips (0: off).
    #[serde(default)]
    pub anti_drip_ms: u64,
    /// The pump is stopped after this many ms whatever else happens.
    #[serde(default = "default_max_run_ms")]
    pub max_run_ms: u64,
    #[serde(default)]
    pub channel_a: ChannelAPins,
    /// Only needed when a product uses channel B.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_b: Option<ChannelBPins>,
}

/// BCM numbers for L298N channel A.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelAPins {
    pub in1: u8,
    pub in2: u8,
    pub ena: u8,
    /// A flow sensor in this channel's line (see `super::flow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowConfig>,
}

/// BCM numbers for L298N channel B.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelBPins {
    pub in3: u8,
    pub in4: u8,
    pub enb: u8,
    /// A flow sensor in this channel's line (see `super::flow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowConfig>,
}

fn default_duty() -> f64 {
    1.0
}
fn default_pwm_hz() -> f64 {
    1000.0
}
fn default_max_run_ms() -> u64 {
    30_000
}

impl Default for ChannelAPins {
    fn default() -> Self {
        ChannelAPins {
            in1: 23,
            in2: 24,
            ena: 18,
            flow: None,
        }
    }
}

impl Default for ChannelBPins {
    fn default() -> Self {
        ChannelBPins {
            in3: 5,
            in4: 6,
            enb: 13,
            flow: None,
        }
    }
}

/// `[gpio]` as the file gives it, before the mode picks the backend.
pub(super) type RawGpio = GpioConfig<Option<GpioBackend>>;

impl Default for RawGpio {
    fn default() -> Self {
        GpioConfig {
            backend: None,
            chip: None,
            chip_label: None,
            trace: None,
            pwm_duty: default_duty(),
            pwm_frequency_hz: default_pwm_hz(),
            soft_start_ms: 0,
            anti_drip_ms: 0,
            max_run_ms: default_max_run_ms(),
            channel_a: ChannelAPins::default(),
            channel_b: None,
        }
    }
}

impl RawGpio {
    /// The table with its backend chosen: the file's, else `default`.
    pub(super) fn settle(self, default: GpioBackend) -> GpioConfig {
        GpioConfig {
            backend: self.backend.unwrap_or(default),
            chip: self.chip,
            chip_label: self.chip_label,
            trace: self.trace,
            pwm_duty: self.pwm_duty,
            pwm_frequency_hz: self.pwm_frequency_hz,
            soft_start_ms: self.soft_start_ms,
            anti_drip_ms: self.anti_drip_ms,
            max_run_ms: self.max_run_ms,
            channel_a: self.channel_a,
            channel_b: self.channel_b,
        }
    }
}

impl GpioConfig {
    /// The L298N pins of channel A and, when wired, channel B.
    pub fn bridge_pins(&self) -> (BridgePins, Option<BridgePins>) {
        let a = self.channel_a;
        (
            BridgePins {
                forward: a.in1,
                reverse: a.in2,
                enable: a.ena,
            },
            self.channel_b.map(|b| BridgePins {
                forward: b.in3,
                reverse: b.in4,
                enable: b.enb,
            }),
        )
    }

    /// The chip of the gpiochip backend (check_outputs made sure there is exactly one).
    pub fn chip_selector(&self) -> Option<ChipSelector> {
        match (&self.chip, &self.chip_label) {
            (Some(c), _) => Some(ChipSelector::path(c)),
            (None, Some(l)) => Some(ChipSelector::Label(l.clone())),
            (None, None) => None,
        }
    }

    pub fn pour_settings(&self) -> PourSettings {
        PourSettings {
            duty: self.pwm_duty,
            soft_start: Duration::from_millis(self.soft_start_ms),
            anti_drip: Duration::from_millis(self.anti_drip_ms),
        }
    }
}

/// Every rule of the `[gpio]` table, in the order a full load reports them.
pub(super) fn check(g: &GpioConfig) -> Result<(), Invalid> {
    if !(1_000..=MAX_RUN_MS_LIMIT).contains(&g.max_run_ms) {
        return Err(invalid(
            "gpio.max_run_ms",
            format!("{} is out of range 1000..={MAX_RUN_MS_LIMIT}", g.max_run_ms),
        ));
    }
    if !(g.pwm_duty > 0.0 && g.pwm_duty <= 1.0) {
        return Err(invalid(
            "gpio.pwm_duty",
            "must be greater than 0 and at most 1",
        ));
    }
    if !(10.0..=20_000.0).contains(&g.pwm_frequency_hz) {
        return Err(invalid(
            "gpio.pwm_frequency_hz",
            "must be between 10 and 20000 Hz",
        ));
    }
    if g.soft_start_ms > 5_000 {
        return Err(invalid("gpio.soft_start_ms", "must be at most 5000"));
    }
    if g.anti_drip_ms > 2_000 {
        return Err(invalid("gpio.anti_drip_ms", "must be at most 2000"));
    }
    if g.backend == GpioBackend::Gpiochip {
        // The character device drives a line high or low, nothing in between.
        if g.pwm_duty < 1.0 {
            return Err(invalid(
                "gpio.pwm_duty",
                "the gpiochip backend has no PWM: leave it at 1",
            ));
        }
        if g.soft_start_ms > 0 {
            return Err(invalid(
                "gpio.soft_start_ms",
                "the gpiochip backend has no PWM to ramp with: leave it at 0",
            ));
        }
    }
    check_outputs(g)
}

/// What driving the pins needs to be right: the trace only with mock pins, every pin on
/// the header and used once. `pump-off` checks only this much.
pub(super) fn check_outputs(g: &GpioConfig) -> Result<(), Invalid> {
    if g.trace.is_some() && g.backend != GpioBackend::Mock {
        return Err(invalid(
            "gpio.trace",
            "a pin trace is only written by the mock GPIO backend",
        ));
    }
    check_chip(g)?;
    let a = g.channel_a;
    let mut pins = vec![
        ("gpio.channel_a.in1", a.in1),
        ("gpio.channel_a.in2", a.in2),
        ("gpio.channel_a.ena", a.ena),
    ];
    if let Some(b) = g.channel_b {
        pins.extend([
            ("gpio.channel_b.in3", b.in3),
            ("gpio.channel_b.in4", b.in4),
            ("gpio.channel_b.enb", b.enb),
        ]);
    }
    // A chip's line offsets are not BCM numbers: the chip itself refuses one it lacks.
    let header = g.backend != GpioBackend::Gpiochip;
    let what = if header { "BCM" } else { "line" };
    let mut used: HashMap<u8, &str> = HashMap::new();
    for &(field, pin) in &pins {
        if header && pin > MAX_BCM {
            return Err(invalid(
                field,
                format!("BCM {pin} is not on the 40-pin header (0..=27)"),
            ));
        }
        if let Some(other) = used.insert(pin, field) {
            return Err(invalid(
                field,
                format!("{what} {pin} is already used by {other}"),
            ));
        }
    }
    super::flow::check_sensors(g, &pins)
}

/// The gpiochip backend names its chip once (a device or a label); the others name none.
fn check_chip(g: &GpioConfig) -> Result<(), Invalid> {
    match (g.backend, &g.chip, &g.chip_label) {
        (GpioBackend::Gpiochip, Some(_), Some(_)) => Err(invalid(
            "gpio.chip_label",
            "give either gpio.chip or gpio.chip_label, not both",
        )),
        (GpioBackend::Gpiochip, None, None) => Err(invalid(
            "gpio.chip",
            "the gpiochip backend needs gpio.chip (e.g. \"gpiochip0\") or gpio.chip_label",
        )),
        (GpioBackend::Gpiochip, Some(c), None) if c.trim().is_empty() => {
            Err(invalid("gpio.chip", "must not be empty"))
        }
        (GpioBackend::Gpiochip, None, Some(l)) if l.trim().is_empty() => {
            Err(invalid("gpio.chip_label", "must not be empty"))
        }
        (GpioBackend::Gpiochip, _, _) => Ok(()),
        (GpioBackend::Rppal | GpioBackend::Mock, Some(_), _) => Err(invalid(
            "gpio.chip",
            "only the gpiochip backend opens a chip",
        )),
        (GpioBackend::Rppal | GpioBackend::Mock, None, Some(_)) => Err(invalid(
            "gpio.chip_label",
            "only the gpiochip backend opens a chip",
        )),
        (GpioBackend::Rppal | GpioBackend::Mock, None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, ConfigError, Mode};
    use super::*;

    const BASE: &str = "[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 4000\n\n[gpio]\n";

    fn parse(gpio: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!("{BASE}{gpio}"), "t.toml", Mode::Sim)
    }

    #[test]
    fn gpiochip_by_device_or_by_label_opens_that_chip_with_offsets_past_the_header() {
        let c = parse("backend = \"gpiochip\"\nchip = \"gpiochip1\"\n[gpio.channel_a]\nin1 = 40\nin2 = 41\nena = 42\n")
            .unwrap();
        assert_eq!(c.gpio.backend, GpioBackend::Gpiochip);
        assert_eq!(
            c.gpio.chip_selector(),
            Some(ChipSelector::Path("/dev/gpiochip1".into()))
        );
        assert_eq!(c.gpio.bridge_pins().0.enable, 42);
        let c = parse("backend = \"gpiochip\"\nchip_label = \"gpio-sim.0-node0\"\n").unwrap();
        assert_eq!(
            c.gpio.chip_selector(),
            Some(ChipSelector::Label("gpio-sim.0-node0".into()))
        );
        // check-config prints it, and the printed file loads the same again.
        let printed = c.to_redacted_toml();
        assert!(
            printed.contains("chip_label = \"gpio-sim.0-node0\""),
            "{printed}"
        );
        assert_eq!(Config::parse(&printed, "t", Mode::Sim).unwrap(), c);
    }

    #[test]
    fn gpiochip_needs_exactly_one_chip_and_the_others_take_none() {
        let e = parse("backend = \"gpiochip\"\n").unwrap_err();
        assert_eq!(e.field, "gpio.chip");
        assert!(e.message.contains("chip_label"), "{e}");
        let e = parse("backend = \"gpiochip\"\nchip = \"gpiochip0\"\nchip_label = \"x\"\n")
            .unwrap_err();
        assert_eq!(e.field, "gpio.chip_label");
        let e = parse("backend = \"gpiochip\"\nchip = \" \"\n").unwrap_err();
        assert_eq!(e.field, "gpio.chip");
        let e = parse("backend = \"rppal\"\nchip = \"gpiochip0\"\n").unwrap_err();
        assert_eq!(e.field, "gpio.chip");
        assert!(e.message.contains("only the gpiochip backend"), "{e}");
        let e = parse("backend = \"mock\"\nchip_label = \"pinctrl-rp1\"\n").unwrap_err();
        assert_eq!(e.field, "gpio.chip_label");
    }

    #[test]
    fn gpiochip_refuses_pwm_and_soft_start_but_keeps_the_other_pin_rules() {
        let chip = "backend = \"gpiochip\"\nchip = \"gpiochip0\"\n";
        let e = parse(&format!("{chip}pwm_duty = 0.5\n")).unwrap_err();
        assert_eq!(e.field, "gpio.pwm_duty");
        assert!(e.message.contains("no PWM"), "{e}");
        let e = parse(&format!("{chip}soft_start_ms = 300\n")).unwrap_err();
        assert_eq!(e.field, "gpio.soft_start_ms");
        // Anti-drip is a plain reverse run: allowed.
        parse(&format!("{chip}anti_drip_ms = 200\n")).unwrap();
        let e = parse(&format!(
            "{chip}[gpio.channel_a]\nin1 = 30\nin2 = 30\nena = 31\n"
        ))
        .unwrap_err();
        assert_eq!(e.field, "gpio.channel_a.in2");
        assert!(e.message.contains("line 30 is already used"), "{e}");
        // The header's limit still holds for rppal.
        let e = parse("[gpio.channel_a]\nin1 = 30\nin2 = 24\nena = 18\n").unwrap_err();
        assert_eq!(e.field, "gpio.channel_a.in1");
        assert!(e.message.contains("40-pin header"), "{e}");
    }

    #[test]
    fn pump_off_refuses_a_gpiochip_table_without_a_chip_with_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("{BASE}backend = \"gpiochip\"\n")).unwrap();
        let e = Config::load_gpio(&path, Mode::Run).unwrap_err();
        assert_eq!(e.field, "gpio.chip");
        assert!(e.to_string().contains("c.toml:"), "{e}");
        std::fs::write(
            &path,
            format!("{BASE}backend = \"gpiochip\"\nchip = \"gpiochip0\"\n"),
        )
        .unwrap();
        let g = Config::load_gpio(&path, Mode::Run).unwrap();
        assert_eq!(g.chip_selector(), Some(ChipSelector::path("gpiochip0")));
    }
}
