//! GPIO through the Linux GPIO character device (`/dev/gpiochipN`, uAPI v2) with gpiocdev:
//! the backend for boards other than the Pi's BCM/RP1 registers that rppal drives, and for
//! the appliance VM test, where the kernel's gpio-sim provides the chip.
//!
//! Every bridge line is requested once, as an output driven low, in one request held for the
//! life of the pins. The kernel releases the lines when that request's file descriptor
//! closes (the process exits or is killed); what a released line then does is up to the
//! chip's driver (gpio-sim falls back to its pull, many SoC drivers keep the last level),
//! which is why the pump is stopped before any exit, `lnvend pump-off` runs after every
//! one, and the L298N enable input has its pull-down resistor (docs/operator/hardware.md).
//!
//! The character device has no PWM: the config refuses `pwm_duty` < 1 and a soft start
//! with this backend, and [`Pins::set_duty`] refuses too, so nothing can half-drive a line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gpiocdev::line::Value;
use gpiocdev::Request;

use super::{Pins, PumpError};

/// Which chip: a device path (`/dev/gpiochip0`, or the bare name `gpiochip0`), or the
/// chip's label as the kernel reports it (gpio-sim's, `pinctrl-rp1` on a Pi 5…), which
/// stays right when chips are numbered differently from one boot or board to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChipSelector {
    Path(PathBuf),
    Label(String),
}

impl std::fmt::Display for ChipSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChipSelector::Path(p) => write!(f, "{}", p.display()),
            ChipSelector::Label(l) => write!(f, "the chip labelled {l:?}"),
        }
    }
}

impl ChipSelector {
    /// `gpiochip0` means `/dev/gpiochip0`; a path stays as it is.
    pub fn path(name_or_path: &str) -> ChipSelector {
        let p = Path::new(name_or_path);
        if p.is_absolute() {
            ChipSelector::Path(p.to_path_buf())
        } else {
            ChipSelector::Path(Path::new("/dev").join(p))
        }
    }

    /// The chip's device path: looked up among the system's chips for a label.
    fn resolve(&self) -> Result<PathBuf, PumpError> {
        match self {
            ChipSelector::Path(p) => Ok(p.clone()),
            ChipSelector::Label(label) => {
                let chips = gpiocdev::chip::chips().map_err(|e| {
                    gpio_error(format!("cannot list the GPIO chips to find {label:?}"), e)
                })?;
                for path in chips {
                    let Ok(chip) = gpiocdev::Chip::from_path(&path) else {
                        continue;
                    };
                    if chip.info().is_ok_and(|i| i.label == *label) {
                        return Ok(path);
                    }
                }
                Err(PumpError::Fault(format!(
                    "no GPIO chip labelled {label:?} (see `gpiodetect` or /sys/bus/gpio/devices)"
                )))
            }
        }
    }
}

fn gpio_error(what: String, source: gpiocdev::Error) -> PumpError {
    PumpError::Gpiochip { what, source }
}

pub struct GpiochipPins {
    request: Request,
    chip: PathBuf,
    /// What each line was last set to, for the read-back check.
    expected: HashMap<u8, bool>,
}

impl GpiochipPins {
    /// Requests `lines` of the chip as outputs, driven low.
    pub fn new(chip: &ChipSelector, lines: &[u8]) -> Result<GpiochipPins, PumpError> {
        let path = chip.resolve()?;
        let offsets: Vec<u32> = lines.iter().map(|&l| u32::from(l)).collect();
        let request = Request::builder()
            .on_chip(&path)
            .with_consumer("lnvend")
            .with_lines(&offsets)
            .as_output(Value::Inactive)
            .request()
            .map_err(|e| {
                gpio_error(
                    format!("cannot request lines {lines:?} of {}", path.display()),
                    e,
                )
            })?;
        Ok(GpiochipPins {
            request,
            chip: path,
            expected: lines.iter().map(|&l| (l, false)).collect(),
        })
    }

    fn claimed(&self, line: u8) -> Result<(), PumpError> {
        if self.expected.contains_key(&line) {
            Ok(())
        } else {
            Err(PumpError::NotClaimed(line))
        }
    }
}

impl Pins for GpiochipPins {
    fn set_level(&mut self, pin: u8, high: bool) -> Result<(), PumpError> {
        self.claimed(pin)?;
        let value = if high { Value::Active } else { Value::Inactive };
        self.request
            .set_value(u32::from(pin), value)
            .map_err(|e| gpio_error(format!("{} line {pin}", self.chip.display()), e))?;
        self.expected.insert(pin, high);
        Ok(())
    }

    fn set_duty(&mut self, pin: u8, duty: f64) -> Result<(), PumpError> {
        // The config refuses PWM with this backend; a caller asking anyway gets no half-way
        // drive. Full duty is plain high, as the bridge would drive it.
        if duty >= 1.0 {
            return self.set_level(pin, true);
        }
        Err(PumpError::Fault(format!(
            "line {pin}: the gpiochip backend has no PWM (duty {duty})"
        )))
    }

    fn check(&mut self) -> Result<(), PumpError> {
        for (&line, &want) in &self.expected {
            let got = self
                .request
                .value(u32::from(line))
                .map_err(|e| gpio_error(format!("{} line {line}", self.chip.display()), e))?;
            if (got == Value::Active) != want {
                return Err(PumpError::Fault(format!(
                    "{} line {line} reads back {} but was set {}",
                    self.chip.display(),
                    u8::from(got == Value::Active),
                    u8::from(want)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_chip_name_is_a_device_under_dev_and_a_path_stays() {
        assert_eq!(
            ChipSelector::path("gpiochip4"),
            ChipSelector::Path("/dev/gpiochip4".into())
        );
        assert_eq!(
            ChipSelector::path("/dev/gpiochip0"),
            ChipSelector::Path("/dev/gpiochip0".into())
        );
    }

    #[test]
    fn a_chip_that_is_not_there_is_an_error_naming_it_not_a_panic() {
        let missing = ChipSelector::path("/nonexistent/gpiochip9");
        let err = GpiochipPins::new(&missing, &[23, 24, 18])
            .err()
            .expect("no such chip");
        assert!(err.to_string().contains("/nonexistent/gpiochip9"), "{err}");
        let nolabel = ChipSelector::Label("no-such-label-lnvend".into());
        let err = GpiochipPins::new(&nolabel, &[1])
            .err()
            .expect("no such label");
        assert!(err.to_string().contains("no-such-label-lnvend"), "{err}");
    }
}
