//! A product's dispenser: the L298N pump (the default) or a relay pulse, with the pulse's
//! keys and their rules. Kept out of `products` so that file stays about prices and pours.
//!
//! A pulse product drives one GPIO line high for `pulse_ms`, `pulses` times, `gap_ms`
//! apart: a coin-op machine's credit input, or a motor behind a relay. It keeps no stock
//! (stock is counted in ml of a pump's tank) and has no pump channel.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::gpio::MAX_BCM;
use super::locate::{invalid, Invalid};
use super::products::ProductConfig;
use super::{GpioBackend, GpioConfig};

/// Which dispenser serves a product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DispenserKind {
    /// The L298N pump, timed (`pour_ms`) or by volume (`volume_ml`).
    #[default]
    Pump,
    /// A GPIO line pulsed high (`pulse_pin`, `pulse_ms`, `pulses`, `gap_ms`).
    Pulse,
}

/// Default width of one pulse.
pub const DEFAULT_PULSE_MS: u64 = 100;
/// Default number of pulses for one sale.
pub const DEFAULT_PULSES: u32 = 1;
/// Default time between two pulses (low).
pub const DEFAULT_GAP_MS: u64 = 100;
/// Bounds: a pulse is a switch press, not a run; a sale is a handful of credits.
pub const MAX_PULSE_MS: u64 = 10_000;
pub const MAX_PULSES: u32 = 50;
pub const MAX_GAP_MS: u64 = 10_000;

/// A validated pulse pattern, in plain values (config knows no dispenser type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PulseSpec {
    /// BCM number (or chip line offset with `gpio.backend = "gpiochip"`).
    pub pin: u8,
    /// How long the line is held high, each time.
    pub width: Duration,
    /// How many times, for one sale.
    pub pulses: u32,
    /// How long the line stays low between two pulses.
    pub gap: Duration,
}

impl PulseSpec {
    /// From the first rise to the last fall: the sale's pour time.
    pub fn total(&self) -> Duration {
        let n = self.pulses.max(1);
        self.width * n + self.gap * (n - 1)
    }
}

/// The pulse pattern of a product (None: a pump product). Call after [`check`].
pub fn pulse_spec(p: &ProductConfig) -> Option<PulseSpec> {
    match p.dispenser.unwrap_or_default() {
        DispenserKind::Pump => None,
        DispenserKind::Pulse => Some(PulseSpec {
            pin: p.pulse_pin?,
            width: Duration::from_millis(p.pulse_ms.unwrap_or(DEFAULT_PULSE_MS)),
            pulses: p.pulses.unwrap_or(DEFAULT_PULSES),
            gap: Duration::from_millis(p.gap_ms.unwrap_or(DEFAULT_GAP_MS)),
        }),
    }
}

/// Whether product `p` is poured by the pump (its channel and tank rules apply).
pub fn is_pump(p: &ProductConfig) -> bool {
    p.dispenser.unwrap_or_default() == DispenserKind::Pump
}

/// The pulse keys of product `i`: only on a pulse product, in range, on a free pin.
pub(super) fn check(i: usize, p: &ProductConfig, g: &GpioConfig) -> Result<(), Invalid> {
    let f = |name: &str| format!("product[{i}].{name}");
    let pulse_keys = [
        ("pulse_pin", p.pulse_pin.is_some()),
        ("pulse_ms", p.pulse_ms.is_some()),
        ("pulses", p.pulses.is_some()),
        ("gap_ms", p.gap_ms.is_some()),
    ];
    if is_pump(p) {
        if let Some((key, _)) = pulse_keys.iter().find(|(_, set)| *set) {
            return Err(invalid(
                f(key),
                "only for a pulse product: add dispenser = \"pulse\"",
            ));
        }
        return Ok(());
    }
    if p.pour_ms.is_some() {
        return Err(invalid(
            f("pour_ms"),
            "a pulse product's time is its pattern (pulse_ms, pulses, gap_ms): remove pour_ms",
        ));
    }
    let stock_keys = [
        ("volume_ml", p.volume_ml.is_some()),
        ("timed_pour_ml", p.timed_pour_ml.is_some()),
        ("tank_ml", p.tank_ml.is_some()),
        ("stock_ml", p.stock_ml.is_some()),
        ("low_stock_ml", p.low_stock_ml.is_some()),
    ];
    if let Some((key, _)) = stock_keys.iter().find(|(_, set)| *set) {
        return Err(invalid(
            f(key),
            "a pulse product is not poured by the pump and keeps no stock in ml",
        ));
    }
    let Some(pin) = p.pulse_pin else {
        return Err(invalid(
            f("pulse_pin"),
            "a pulse product needs the GPIO line it pulses (pulse_pin)",
        ));
    };
    if g.backend != GpioBackend::Gpiochip && pin > MAX_BCM {
        return Err(invalid(
            f("pulse_pin"),
            format!("BCM {pin} is not on the 40-pin header (0..=27)"),
        ));
    }
    if let Some(other) = taken(g, pin) {
        return Err(invalid(
            f("pulse_pin"),
            format!("{pin} is already used by {other}"),
        ));
    }
    let ms = p.pulse_ms.unwrap_or(DEFAULT_PULSE_MS);
    if ms == 0 || ms > MAX_PULSE_MS {
        return Err(invalid(
            f("pulse_ms"),
            format!("must be 1 to {MAX_PULSE_MS} ms"),
        ));
    }
    let n = p.pulses.unwrap_or(DEFAULT_PULSES);
    if n == 0 || n > MAX_PULSES {
        return Err(invalid(f("pulses"), format!("must be 1 to {MAX_PULSES}")));
    }
    let gap = p.gap_ms.unwrap_or(DEFAULT_GAP_MS);
    if gap > MAX_GAP_MS || (n > 1 && gap == 0) {
        return Err(invalid(
            f("gap_ms"),
            format!("must be 1 to {MAX_GAP_MS} ms (two pulses without a gap are one)"),
        ));
    }
    Ok(())
}

/// A pulse line on a pin another device of the machine owns is refused: the header UART
/// (BCM 14, 15) when the MDB HAT is on it, or the PN532's I2C (BCM 2, 3) or SPI0 (BCM 7
/// to 11). Driving it would garble the HAT's line or the card reader's bus.
pub(super) fn check_shared_pins(
    products: &[ProductConfig],
    mdb: Option<&super::mdb::MdbConfig>,
    nfc: &super::NfcConfig,
) -> Result<(), Invalid> {
    let uart = mdb.is_some_and(super::mdb::on_header_uart);
    for (i, p) in products.iter().enumerate() {
        let Some(pin) = p.pulse_pin else { continue };
        let taken = match nfc.reader {
            super::NfcReaderKind::Pn532I2c if [2, 3].contains(&pin) => Some("the PN532's I2C"),
            super::NfcReaderKind::Pn532Spi if (7..=11).contains(&pin) => Some("the PN532's SPI"),
            super::NfcReaderKind::Pn532I2c
            | super::NfcReaderKind::Pn532Spi
            | super::NfcReaderKind::Off
            | super::NfcReaderKind::Pcsc
            | super::NfcReaderKind::Virtual => None,
        };
        let taken =
            taken.or((uart && [14, 15].contains(&pin)).then_some("the MDB HAT's serial line"));
        if let Some(what) = taken {
            return Err(invalid(
                format!("product[{i}].pulse_pin"),
                format!("BCM {pin} is {what}: choose another pin"),
            ));
        }
    }
    Ok(())
}

/// The bridge output or flow sensor that already uses `pin`, if any.
fn taken(g: &GpioConfig, pin: u8) -> Option<&'static str> {
    let a = g.channel_a;
    let mut used = vec![
        ("gpio.channel_a.in1", Some(a.in1)),
        ("gpio.channel_a.in2", Some(a.in2)),
        ("gpio.channel_a.ena", Some(a.ena)),
        ("gpio.channel_a.flow", a.flow.map(|f| f.pin)),
    ];
    if let Some(b) = g.channel_b {
        used.extend([
            ("gpio.channel_b.in3", Some(b.in3)),
            ("gpio.channel_b.in4", Some(b.in4)),
            ("gpio.channel_b.enb", Some(b.enb)),
            ("gpio.channel_b.flow", b.flow.map(|f| f.pin)),
        ]);
    }
    used.into_iter()
        .find(|(_, p)| *p == Some(pin))
        .map(|(name, _)| name)
}

/// Every line some pulse product drives, each once, in order.
pub fn pulse_lines(products: &[ProductConfig]) -> Vec<u8> {
    let mut lines: Vec<u8> = products
        .iter()
        .filter_map(|p| pulse_spec(p).map(|s| s.pin))
        .collect();
    lines.sort_unstable();
    lines.dedup();
    lines
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Mode};

    fn parse(product_extra: &str) -> Result<Config, crate::config::ConfigError> {
        let text = format!(
            "[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 4000\n\n\
             [[product]]\nname = \"Coin\"\nprice_sat = 500\n{product_extra}\n\
             [gpio]\nbackend = \"mock\"\n"
        );
        Config::parse(&text, "pulse.toml", Mode::Sim)
    }

    #[test]
    fn a_pulse_product_gets_the_documented_defaults_and_pours_for_its_pattern() {
        let c = parse("dispenser = \"pulse\"\npulse_pin = 26\n").unwrap();
        let s = c.product_specs()[1].pulse.expect("a pulse product");
        assert_eq!(s.pin, 26);
        assert_eq!(s.width.as_millis(), 100);
        assert_eq!(s.pulses, 1);
        assert_eq!(c.product_specs()[1].pour.as_millis(), 100);
        let c = parse(
            "dispenser = \"pulse\"\npulse_pin = 26\npulse_ms = 50\npulses = 3\ngap_ms = 200\n",
        )
        .unwrap();
        assert_eq!(c.product_specs()[1].pour.as_millis(), 3 * 50 + 2 * 200);
        assert_eq!(
            c.product_specs()[0].pulse,
            None,
            "the pump product stays a pump"
        );
    }

    #[test]
    fn bad_pulse_keys_name_their_field_and_line() {
        let cases = [
            ("dispenser = \"pulse\"\n", "product[1].pulse_pin", 6),
            (
                "dispenser = \"pulse\"\npulse_pin = 18\n",
                "product[1].pulse_pin",
                10,
            ),
            (
                "dispenser = \"pulse\"\npulse_pin = 40\n",
                "product[1].pulse_pin",
                10,
            ),
            (
                "dispenser = \"pulse\"\npulse_pin = 26\npulses = 0\n",
                "product[1].pulses",
                11,
            ),
            (
                "dispenser = \"pulse\"\npulse_pin = 26\npulse_ms = 0\n",
                "product[1].pulse_ms",
                11,
            ),
            (
                "dispenser = \"pulse\"\npulse_pin = 26\npulses = 2\ngap_ms = 0\n",
                "product[1].gap_ms",
                12,
            ),
            (
                "dispenser = \"pulse\"\npulse_pin = 26\ntank_ml = 500\n",
                "product[1].tank_ml",
                11,
            ),
            (
                "pour_ms = 1000\npulse_pin = 26\n",
                "product[1].pulse_pin",
                10,
            ),
        ];
        for (extra, field, line) in cases {
            let e = parse(extra).unwrap_err();
            assert_eq!((e.field.as_str(), e.line), (field, line), "{extra}: {e}");
            assert!(e.to_string().contains("pulse.toml"), "{e}");
        }
        let e = parse("dispenser = \"coin\"\npulse_pin = 26\n").unwrap_err();
        assert!(e.message.contains("pulse"), "{e}");
    }

    /// A pulse on the HAT's UART or the card reader's bus would garble it.
    #[test]
    fn a_pulse_pin_on_the_mdb_uart_or_the_pn532_s_bus_is_refused() {
        let with = |pin: u8, tail: &str| {
            parse(&format!("dispenser = \"pulse\"\npulse_pin = {pin}\n{tail}"))
        };
        let uart = "[mdb]\nport = \"/dev/ttyAMA0\"\nsat_per_unit = 1\n";
        let e = with(14, uart).unwrap_err();
        assert_eq!(e.field, "product[1].pulse_pin", "{e}");
        assert!(e.message.contains("MDB"), "{e}");
        assert!(with(14, "[mdb]\nport = \"/dev/ttyACM0\"\nsat_per_unit = 1\n").is_ok());
        let e = with(3, "[nfc]\nreader = \"pn532-i2c\"\n").unwrap_err();
        assert_eq!(e.field, "product[1].pulse_pin", "{e}");
        let e = with(10, "[nfc]\nreader = \"pn532-spi\"\n").unwrap_err();
        assert!(e.message.contains("PN532"), "{e}");
        assert!(with(26, "[nfc]\nreader = \"pn532-spi\"\n").is_ok());
    }
}
