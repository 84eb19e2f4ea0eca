//! `[mdb]`: the machine is a commercial vending machine, and lnvend its cashless payment
//! device through a Qibixx MDB Pi HAT. The customer selects on the machine's keypad; the
//! machine asks for its price; lnvend shows the invoice and, once it is paid and recorded,
//! approves the vend.
//!
//! The machine's prices are in its own currency. `sat_per_unit` turns one unit of that
//! amount into sats (rounded up to a whole sat); without it, the amount is a fiat price in
//! the file's `currency`, converted by the payment backend as `price_fiat` is.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::locate::{invalid, Invalid};
use super::BackendConfig;
use crate::money::{Fiat, Msat, Price};

pub const DEFAULT_PORT: &str = "/dev/ttyAMA0";
pub const DEFAULT_VEND_TIMEOUT_S: u64 = 60;
pub const DEFAULT_SILENCE_S: u64 = 10;
/// The most items a table may name (a big machine has a few dozen slots).
pub const MAX_ITEMS: usize = 100;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MdbConfig {
    /// The HAT's serial line (115200 8N1): /dev/ttyAMA0 on the GPIO header, or a USB
    /// /dev/ttyACM0.
    #[serde(default = "default_port")]
    pub port: PathBuf,
    /// Sats per unit of the machine's amount ("2.50" with 1000 is 2500 sats). Without it,
    /// the amount is a fiat price in the file's `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sat_per_unit: Option<u64>,
    /// How long the machine may take to vend after the approval, in seconds: no answer by
    /// then is a failed vend (an owed credit).
    #[serde(default = "default_vend_timeout_s")]
    pub vend_timeout_s: u64,
    /// How long the HAT may say nothing before the machine is out of service, in seconds.
    #[serde(default = "default_silence_s")]
    pub silence_s: u64,
    /// Set the HAT to always-idle (`C,SETCONF,mdb-always-idle=1`) at every enable, so the
    /// machine may ask for a vend without a session started first. `false` leaves the
    /// HAT's own setting alone.
    #[serde(default = "default_always_idle")]
    pub always_idle: bool,
    /// Names for the machine's items (else "Item N").
    #[serde(default, rename = "item", skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<MdbItem>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MdbItem {
    /// The item (slot) number the machine sends.
    pub number: u16,
    /// Shown on the payment screen and in the invoice.
    pub name: String,
    /// A picture for the payment screen: PNG, JPEG or SVG, relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
}

fn default_port() -> PathBuf {
    PathBuf::from(DEFAULT_PORT)
}
fn default_vend_timeout_s() -> u64 {
    DEFAULT_VEND_TIMEOUT_S
}
fn default_always_idle() -> bool {
    true
}
fn default_silence_s() -> u64 {
    DEFAULT_SILENCE_S
}

impl MdbConfig {
    pub fn vend_timeout(&self) -> Duration {
        Duration::from_secs(self.vend_timeout_s)
    }
    pub fn silence(&self) -> Duration {
        Duration::from_secs(self.silence_s)
    }

    /// The name of item `n` on the screen.
    pub fn item_name(&self, n: u16) -> String {
        self.items
            .iter()
            .find(|i| i.number == n)
            .map_or_else(|| format!("Item {n}"), |i| i.name.trim().to_string())
    }

    /// The price of an amount the machine asked, or why it cannot be sold (out of the
    /// sanity bounds).
    pub fn price(
        &self,
        amount: crate::mdb::hat::MachineAmount,
        currency: Option<&str>,
    ) -> Result<Price, String> {
        match (self.sat_per_unit, currency) {
            (Some(per), _) => {
                let scale = 10u128.pow(u32::from(amount.decimals));
                let sats = (u128::from(amount.units) * u128::from(per)).div_ceil(scale);
                let sats = u64::try_from(sats).map_err(|_| "too large".to_string())?;
                if sats == 0 || sats > super::products::MAX_PRICE_SAT {
                    return Err(format!(
                        "{sats} sats is outside 1..={}",
                        super::products::MAX_PRICE_SAT
                    ));
                }
                Msat::from_sat(sats)
                    .map(Price::Sats)
                    .ok_or_else(|| "too large".to_string())
            }
            (None, Some(c)) => {
                let fiat = Fiat::parse(&amount.to_string(), c)?;
                if fiat.minor() == 0 {
                    return Err("a price of 0".into());
                }
                Ok(Price::Fiat(fiat))
            }
            (None, None) => Err("no sat_per_unit and no currency".into()),
        }
    }
}

/// Loads each item's picture with `load`: (item number, picture), in file order.
pub(super) fn pictures(
    m: &MdbConfig,
    load: &dyn Fn(
        &std::path::Path,
    ) -> Result<crate::picture::Picture, crate::picture::PictureError>,
) -> Result<Vec<(u16, std::sync::Arc<crate::picture::Picture>)>, Invalid> {
    let mut out = Vec::new();
    for (i, item) in m.items.iter().enumerate() {
        if let Some(path) = &item.image {
            let pic =
                load(path).map_err(|e| invalid(format!("mdb.item[{i}].image"), e.to_string()))?;
            out.push((item.number, std::sync::Arc::new(pic)));
        }
    }
    Ok(out)
}

pub(super) fn check(
    m: &MdbConfig,
    backend: &BackendConfig,
    currency: &Option<String>,
) -> Result<(), Invalid> {
    match (m.sat_per_unit, currency) {
        (Some(0), _) => return Err(invalid("mdb.sat_per_unit", "must be at least 1")),
        (Some(_), _) => {}
        (None, None) => {
            return Err(invalid(
                "mdb.sat_per_unit",
                "give sat_per_unit, or `currency` at the top of the file for the machine's prices",
            ))
        }
        (None, Some(_)) => {
            if let BackendConfig::Cln(_) = backend {
                return Err(invalid(
                    "mdb.sat_per_unit",
                    "Core Lightning invoices are in sats only: give sat_per_unit",
                ));
            }
        }
    }
    if m.vend_timeout_s == 0 || m.vend_timeout_s > 600 {
        return Err(invalid("mdb.vend_timeout_s", "must be 1 to 600 seconds"));
    }
    if m.silence_s == 0 || m.silence_s > 600 {
        return Err(invalid("mdb.silence_s", "must be 1 to 600 seconds"));
    }
    if m.items.len() > MAX_ITEMS {
        return Err(invalid(
            format!("mdb.item[{MAX_ITEMS}]"),
            format!("at most {MAX_ITEMS} items"),
        ));
    }
    for (i, item) in m.items.iter().enumerate() {
        let chars = item.name.trim().chars().count();
        if chars == 0 || chars > super::products::MAX_NAME_CHARS {
            return Err(invalid(
                format!("mdb.item[{i}].name"),
                format!(
                    "must be 1 to {} characters",
                    super::products::MAX_NAME_CHARS
                ),
            ));
        }
        if m.items[..i].iter().any(|o| o.number == item.number) {
            return Err(invalid(
                format!("mdb.item[{i}].number"),
                format!("item {} is named twice", item.number),
            ));
        }
    }
    Ok(())
}

/// An item named as a product is refused: an owed credit is matched to what it buys by
/// name, and an MDB credit must never be poured as the product (or the reverse).
pub(super) fn check_names(
    m: &MdbConfig,
    products: &[super::products::ProductConfig],
) -> Result<(), Invalid> {
    for (i, item) in m.items.iter().enumerate() {
        let name = item.name.trim();
        if products.iter().any(|p| p.name.trim() == name) {
            return Err(invalid(
                format!("mdb.item[{i}].name"),
                format!("\"{name}\" is a product's name too: give the item another name"),
            ));
        }
    }
    Ok(())
}

/// Whether `port` is the Pi's header UART (BCM 14 TX, 15 RX).
pub(super) fn on_header_uart(m: &MdbConfig) -> bool {
    let p = m.port.to_string_lossy();
    p.contains("ttyAMA0") || p.contains("serial0") || p.contains("ttyS0")
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Mode};
    use crate::mdb::hat::MachineAmount;
    use crate::money::Price;

    fn parse(mdb: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!("[gpio]\nbackend = \"mock\"\n\n{mdb}"),
            "mdb.toml",
            Mode::Sim,
        )
    }

    #[test]
    fn an_mdb_machine_needs_no_product_tiles_and_prices_the_machine_s_amount() {
        let c = parse("[mdb]\nsat_per_unit = 1000\n[[mdb.item]]\nnumber = 17\nname = \"Crisps\"\n")
            .unwrap();
        let m = c.mdb.as_ref().unwrap();
        assert_eq!(m.port.to_str(), Some("/dev/ttyAMA0"));
        assert_eq!(m.vend_timeout_s, 60);
        assert_eq!(m.item_name(17), "Crisps");
        assert_eq!(m.item_name(3), "Item 3");
        let p = m
            .price(MachineAmount::parse("2.505").unwrap(), None)
            .unwrap();
        assert_eq!(p, Price::Sats(crate::money::Msat::from_sat(2505).unwrap()));
        let p = m
            .price(MachineAmount::parse("0.0001").unwrap(), None)
            .unwrap();
        assert_eq!(p.display(), "1 sat", "rounded up, never free");
        assert!(m.price(MachineAmount::parse("0").unwrap(), None).is_err());
    }

    #[test]
    fn bad_mdb_keys_name_their_field_and_line() {
        let e = parse("[mdb]\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("mdb.sat_per_unit", 4), "{e}");
        let e = parse("[mdb]\nsat_per_unit = 1\nvend_timeout_s = 0\n").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("mdb.vend_timeout_s", 6), "{e}");
        let e = parse("[mdb]\nsat_per_unit = 1\n[[mdb.item]]\nnumber = 1\nname = \"A\"\n[[mdb.item]]\nnumber = 1\nname = \"B\"\n")
            .unwrap_err();
        assert_eq!(e.field, "mdb.item[1].number", "{e}");
        let e = parse("[mdb]\nsat_per_unit = 1\n[[mdb.item]]\nnumber = 1\nname = \"A\"\nimage = \"/nonexistent/a.png\"\n")
            .unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("mdb.item[0].image", 9), "{e}");
        let e = parse("[mdb]\nsat_per_unit = 1\n[[mdb.item]]\nnumber = 1\nname = \"Cola\"\n\n[[product]]\nname = \"Cola\"\nprice_sat = 100\n")
            .unwrap_err();
        assert_eq!(e.field, "mdb.item[0].name", "a product's name: {e}");
        let e = parse("[mdb]\nsat_per_unit = 1\nbaud = 9600\n").unwrap_err();
        assert!(e.message.contains("unknown field `baud`"), "{e}");
    }
}
