//! GPIO on the Raspberry Pi through rppal. Outputs start low. PWM on an enable pin is rppal's
//! software PWM (any pin). Pins are not reset when dropped: they keep the level lnvend last
//! drove, which is low on every way out (the pump is stopped first). A signal that kills the
//! process skips every destructor, which is why [`super::Pump::emergency_stop`] is wired to
//! SIGINT/SIGTERM and the panic hook, and why the service runs `lnvend pump-off` after any
//! exit (a watchdog kill included).

use std::collections::HashMap;

use rppal::gpio::{Gpio, OutputPin};

use super::{Pins, PumpError};

/// rppal's error with what lnvend was doing, its source kept for `{:#}` and `source()`.
fn rppal_error(what: String, source: rppal::gpio::Error) -> PumpError {
    PumpError::Rppal { what, source }
}

pub struct RppalPins {
    pins: HashMap<u8, OutputPin>,
    pwm_hz: f64,
    /// What each pin was last set to, for the read-back check (None while PWM).
    expected: HashMap<u8, Option<bool>>,
}

impl RppalPins {
    /// Claims `pins` as outputs, driven low.
    pub fn new(pins: &[u8], pwm_hz: f64) -> Result<RppalPins, PumpError> {
        let gpio = Gpio::new().map_err(|e| rppal_error("cannot open GPIO".into(), e))?;
        let mut out = HashMap::new();
        let mut expected = HashMap::new();
        for &p in pins {
            let mut pin = gpio
                .get(p)
                .map_err(|e| rppal_error(format!("cannot claim BCM {p}"), e))?
                .into_output_low();
            // Left as driven when lnvend exits (always low: every way out stops the pump
            // first). rppal's default would turn the pin back into a floating input, which
            // an L298N enable input may read as high.
            pin.set_reset_on_drop(false);
            out.insert(p, pin);
            expected.insert(p, Some(false));
        }
        Ok(RppalPins {
            pins: out,
            pwm_hz,
            expected,
        })
    }

    fn pin(&mut self, pin: u8) -> Result<&mut OutputPin, PumpError> {
        self.pins.get_mut(&pin).ok_or(PumpError::NotClaimed(pin))
    }
}

impl Pins for RppalPins {
    fn set_level(&mut self, pin: u8, high: bool) -> Result<(), PumpError> {
        let p = self.pin(pin)?;
        // Clearing PWM first: a software-PWM thread would otherwise keep toggling the pin.
        // A failure to clear it must not keep a stop from driving the pin low.
        let cleared = p.clear_pwm();
        if high {
            if let Err(e) = cleared {
                return Err(rppal_error(format!("BCM {pin}"), e));
            }
            p.set_high();
        } else {
            p.set_low();
        }
        self.expected.insert(pin, Some(high));
        cleared.map_err(|e| rppal_error(format!("BCM {pin}"), e))
    }

    fn set_duty(&mut self, pin: u8, duty: f64) -> Result<(), PumpError> {
        let hz = self.pwm_hz;
        let p = self.pin(pin)?;
        p.set_pwm_frequency(hz, duty.clamp(0.0, 1.0))
            .map_err(|e| rppal_error(format!("BCM {pin}"), e))?;
        self.expected.insert(pin, None);
        Ok(())
    }

    fn check(&mut self) -> Result<(), PumpError> {
        for (pin, want) in &self.expected {
            let Some(want) = want else { continue };
            if let Some(p) = self.pins.get(pin) {
                if p.is_set_high() != *want {
                    return Err(PumpError::Fault(format!(
                        "BCM {pin} reads back {} but was set {}",
                        u8::from(p.is_set_high()),
                        u8::from(*want)
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_rppal_error_keeps_its_source_and_its_old_message() {
        let e = rppal_error(
            "cannot claim BCM 18".into(),
            rppal::gpio::Error::PinUsed(18),
        );
        let source = e.source().expect("rppal's error is the source");
        assert!(source.downcast_ref::<rppal::gpio::Error>().is_some());
        assert_eq!(
            e.to_string(),
            format!(
                "GPIO error: cannot claim BCM 18: {}",
                rppal::gpio::Error::PinUsed(18)
            )
        );
    }
}
