//! `[nfc]`: the Bolt Card reader beside the screen, and how far lnvend trusts the URL a card
//! carries. The URL comes from a card anyone can program, so by default lnvend talks only
//! https to public addresses; the operator's own LNbits on the LAN needs an explicit opt-in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which reader, if any, reads Bolt Cards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NfcReaderKind {
    /// No reader: the payment screen shows only the QR.
    #[default]
    #[serde(rename = "off")]
    Off,
    /// A USB reader of the ACR122U class through pcscd.
    #[serde(rename = "pcsc")]
    Pcsc,
    /// A PN532 module on the Pi's I2C bus.
    #[serde(rename = "pn532-i2c")]
    Pn532I2c,
    /// A PN532 module on the Pi's SPI bus.
    #[serde(rename = "pn532-spi")]
    Pn532Spi,
    /// No hardware: cards come from the simulator's panel ("Tap card") or a test.
    #[serde(rename = "virtual")]
    Virtual,
}

/// `[nfc]` as the file gives it, and as the machine uses it (nothing depends on the mode).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfcConfig {
    /// `"off"` (default), `"pcsc"`, `"pn532-i2c"` or `"pn532-spi"`.
    #[serde(default)]
    pub reader: NfcReaderKind,
    /// Let a card's URL reach loopback, link-local and private (LAN) addresses. Off by
    /// default so a stranger's card cannot make the machine probe the venue's network; on
    /// for an operator whose own LNbits lives on the LAN. `allow_hosts` is narrower.
    #[serde(default)]
    pub allow_private_hosts: bool,
    /// Host names (exactly as in the card's URL) that may resolve to private addresses.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Test switch: accept `lnurlw://` mapped to plain `http://`. Never for a real machine.
    #[serde(default)]
    pub allow_insecure_http: bool,
    /// Each request to the card's service (withdrawRequest, callback), in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// `pn532-i2c`: the I2C bus number (`/dev/i2c-1` on a Pi's header pins 3 and 5).
    #[serde(default = "default_i2c_bus")]
    pub i2c_bus: u8,
    /// `pn532-i2c`: the module's 7-bit address; a PN532 answers at 0x24 (36).
    #[serde(default = "default_i2c_address")]
    pub i2c_address: u16,
    /// `pn532-spi`: the SPI bus (0 is the header's SPI0).
    #[serde(default)]
    pub spi_bus: u8,
    /// `pn532-spi`: the chip select (0 is CE0, header pin 24).
    #[serde(default)]
    pub spi_chip_select: u8,
}

fn default_i2c_bus() -> u8 {
    1
}

fn default_i2c_address() -> u16 {
    0x24
}

/// Short: the customer is standing at the machine, and the QR stays payable meanwhile.
fn default_request_timeout_ms() -> u64 {
    4000
}

impl Default for NfcConfig {
    fn default() -> NfcConfig {
        NfcConfig {
            reader: NfcReaderKind::Off,
            allow_private_hosts: false,
            allow_hosts: Vec::new(),
            allow_insecure_http: false,
            request_timeout_ms: default_request_timeout_ms(),
            i2c_bus: default_i2c_bus(),
            i2c_address: default_i2c_address(),
            spi_bus: 0,
            spi_chip_select: 0,
        }
    }
}

impl NfcConfig {
    /// True when nothing was configured (then `check-config` does not print the section).
    pub fn is_default(&self) -> bool {
        *self == NfcConfig::default()
    }

    pub fn enabled(&self) -> bool {
        self.reader != NfcReaderKind::Off
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// Why the section is wrong, if it is: (field, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(500..=15_000).contains(&self.request_timeout_ms) {
            return Some((
                "nfc.request_timeout_ms",
                format!(
                    "{} is out of range 500..=15000 milliseconds",
                    self.request_timeout_ms
                ),
            ));
        }
        // 7-bit addresses outside 0x08..=0x77 are reserved by the I2C bus itself.
        if !(0x08..=0x77).contains(&self.i2c_address) {
            return Some((
                "nfc.i2c_address",
                format!(
                    "{:#04x} is not a 7-bit I2C device address (0x08..=0x77; a PN532 is 0x24)",
                    self.i2c_address
                ),
            ));
        }
        if self.spi_bus > 6 {
            return Some((
                "nfc.spi_bus",
                format!("{} is out of range 0..=6", self.spi_bus),
            ));
        }
        if self.spi_chip_select > 2 {
            return Some((
                "nfc.spi_chip_select",
                format!("{} is out of range 0..=2", self.spi_chip_select),
            ));
        }
        for h in &self.allow_hosts {
            if h.is_empty() || h.len() > 253 || h.contains(['/', ':', '@', ' ']) {
                return Some((
                    "nfc.allow_hosts",
                    format!("{h:?} is not a host name (no scheme, port or path)"),
                ));
            }
        }
        None
    }

    /// `check-config` warnings for risky settings.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.allow_insecure_http {
            w.push(
                "nfc.allow_insecure_http = true: a card's service is reached over plain http, \
                 for tests only"
                    .to_string(),
            );
        }
        if self.allow_private_hosts {
            w.push(
                "nfc.allow_private_hosts = true: any card can make the machine send requests \
                 into this network; prefer nfc.allow_hosts"
                    .to_string(),
            );
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Mode, NfcReaderKind};

    const BASE: &str = "[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 4000\n";

    fn parse(extra: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(&format!("{BASE}{extra}"), "t.toml", Mode::Sim)
    }

    #[test]
    fn the_reader_is_off_unless_configured() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.nfc.reader, NfcReaderKind::Off);
        assert!(!cfg.nfc.enabled());
        assert!(!cfg.nfc.allow_insecure_http && !cfg.nfc.allow_private_hosts);
        assert!(!toml::to_string(&cfg).unwrap().contains("[nfc]"));
        for (text, kind) in [
            ("pcsc", NfcReaderKind::Pcsc),
            ("pn532-i2c", NfcReaderKind::Pn532I2c),
            ("pn532-spi", NfcReaderKind::Pn532Spi),
            ("off", NfcReaderKind::Off),
        ] {
            let cfg = parse(&format!("[nfc]\nreader = \"{text}\"\n")).unwrap();
            assert_eq!(cfg.nfc.reader, kind);
        }
    }

    #[test]
    fn bad_nfc_keys_are_refused_with_their_place() {
        let e = parse("[nfc]\nreader = \"usb\"\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("t.toml", 6), "{e}");
        let e = parse("[nfc]\nreadr = \"pcsc\"\n").unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        let e = parse("[nfc]\nrequest_timeout_ms = 60000\n").unwrap_err();
        assert_eq!(e.field, "nfc.request_timeout_ms", "{e}");
        let e = parse("[nfc]\nallow_hosts = [\"https://lnbits.lan\"]\n").unwrap_err();
        assert_eq!(e.field, "nfc.allow_hosts", "{e}");
        let e = parse("[nfc]\nreader = \"pn532-i2c\"\ni2c_address = 0x7f\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("nfc.i2c_address", 7), "{e}");
        let e = parse("[nfc]\nreader = \"pn532-spi\"\nspi_chip_select = 3\n").unwrap_err();
        assert_eq!(e.field, "nfc.spi_chip_select", "{e}");
        let e = parse("[nfc]\nreader = \"pn532-spi\"\nspi_bus = 9\n").unwrap_err();
        assert_eq!(e.field, "nfc.spi_bus", "{e}");
    }

    #[test]
    fn a_pn532_defaults_to_i2c_bus_1_at_0x24_and_spi0_ce0() {
        let cfg = parse("[nfc]\nreader = \"pn532-i2c\"\n").unwrap();
        assert_eq!((cfg.nfc.i2c_bus, cfg.nfc.i2c_address), (1, 0x24));
        assert_eq!((cfg.nfc.spi_bus, cfg.nfc.spi_chip_select), (0, 0));
        let cfg =
            parse("[nfc]\nreader = \"pn532-spi\"\nspi_bus = 1\nspi_chip_select = 2\n").unwrap();
        assert_eq!((cfg.nfc.spi_bus, cfg.nfc.spi_chip_select), (1, 2));
    }

    #[test]
    fn risky_switches_are_warned_about() {
        let cfg = parse(
            "[nfc]\nreader = \"pcsc\"\nallow_insecure_http = true\nallow_private_hosts = true\n",
        )
        .unwrap();
        let w = cfg.warnings().join("\n");
        assert!(w.contains("nfc.allow_insecure_http"), "{w}");
        assert!(w.contains("nfc.allow_private_hosts"), "{w}");
        let cfg = parse("[nfc]\nreader = \"pcsc\"\nallow_hosts = [\"lnbits.lan\"]\n").unwrap();
        assert!(cfg.warnings().iter().all(|w| !w.contains("nfc.")));
    }
}
