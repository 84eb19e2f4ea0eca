//! `[[product]]`: what the machine sells, and the checks that keep a typo from giving a
//! drink away (a zero or missing price, a pour longer than the pump may run, an unwired
//! channel).
//!
//! Config hands products out as plain [`ProductSpec`] values; the vend cycle builds its own
//! type from them, so config knows nothing of the vend cycle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dispenser::{self, DispenserKind, PulseSpec};
use super::flow::{self, MAX_TANK_ML, MAX_VOLUME_ML};
use super::locate::{invalid, Invalid};
use super::{BackendConfig, GpioConfig};
use crate::money::{Fiat, Msat, Price};
use crate::picture::{Picture, PictureError};
use crate::pump::Channel;

/// The most products that fit on the idle screen.
pub const MAX_PRODUCTS: usize = 8;
pub const MAX_NAME_CHARS: usize = 24;
/// No drink costs more than this many sats (a sanity bound against a slipped digit).
pub const MAX_PRICE_SAT: u64 = 10_000_000;

/// One product as validated: what the vend cycle needs, in plain values (config does not
/// know the vend cycle's types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductSpec {
    /// Its place on the idle screen (and in the file).
    pub index: usize,
    pub name: String,
    pub price: Price,
    pub pour: Duration,
    pub channel: Channel,
    /// For a fiat price with `min_sat`/`max_sat`: the least and most sats an invoice may ask.
    pub sat_bounds: Option<(Msat, Msat)>,
    /// Poured by volume: this many ml, measured by the channel's flow sensor.
    pub volume_ml: Option<u32>,
    /// The ml one timed pour counts off the stock.
    pub timed_pour_ml: Option<u32>,
    /// The tank's size when stock is kept (refill sets the stock back to it).
    pub tank_ml: Option<u32>,
    /// The stock a fresh ledger starts with (default: a full tank).
    pub stock_ml: Option<u32>,
    /// At or below this the operator menu flags the product as low.
    pub low_stock_ml: Option<u32>,
    /// A pulse product's pattern (None: poured by the pump).
    pub pulse: Option<PulseSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// Shown on the tile and in the invoice description.
    pub name: String,
    /// Price in whole satoshis. Give this or `price_fiat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_sat: Option<u64>,
    /// Price in the machine's `currency`, as a decimal string ("2.50"); the payment backend
    /// converts it when the invoice is made. Not with Core Lightning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_fiat: Option<String>,
    /// How long the pump runs for one drink, in milliseconds. Required for a pump product;
    /// a pulse product's time is its pulse pattern's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pour_ms: Option<u64>,
    /// Which L298N channel drives this product's pump: "A" or "B".
    #[serde(default = "default_channel")]
    pub channel: Channel,
    /// With `price_fiat`: the least sats an invoice for it may ask. An invoice outside
    /// `min_sat..=max_sat` puts the machine out of service, so a broken exchange rate cannot
    /// sell drinks for 1 sat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_sat: Option<u64>,
    /// With `price_fiat`: the most sats an invoice for it may ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sat: Option<u64>,
    /// Pour this many ml, measured by the channel's flow sensor (which it needs). `pour_ms`
    /// is then the longest the pour may take: reaching it first is a short pour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_ml: Option<u32>,
    /// Without a flow sensor, for stock only: the ml one timed pour gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_pour_ml: Option<u32>,
    /// The tank's size in ml: keeps stock, and Refill in the operator menu sets it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tank_ml: Option<u32>,
    /// The stock a new ledger starts with, in ml (default: tank_ml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_ml: Option<u32>,
    /// The operator menu flags the product at or below this stock, in ml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_stock_ml: Option<u32>,
    /// A picture for the tile and the payment screen: PNG, JPEG or SVG, relative to the
    /// config file. Read and scaled once at load; a file that cannot be shown is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
    /// "pump" (the default) or "pulse" (see `config::dispenser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispenser: Option<DispenserKind>,
    /// A pulse product: the GPIO line (BCM) it drives high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse_pin: Option<u8>,
    /// A pulse product: how long each pulse holds the line high, in ms (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse_ms: Option<u64>,
    /// A pulse product: how many pulses one sale gives (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulses: Option<u32>,
    /// A pulse product: the low time between two pulses, in ms (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<u64>,
}

/// Loads each product's picture with `load`, in screen order (`None`: no `image`).
pub(super) fn pictures(
    products: &[ProductConfig],
    load: &dyn Fn(&Path) -> Result<Picture, PictureError>,
) -> Result<Vec<Option<Arc<Picture>>>, Invalid> {
    products
        .iter()
        .enumerate()
        .map(|(i, p)| match &p.image {
            None => Ok(None),
            Some(path) => load(path)
                .map(|pic| Some(Arc::new(pic)))
                .map_err(|e| invalid(format!("product[{i}].image"), e.to_string())),
        })
        .collect()
}

fn default_channel() -> Channel {
    Channel::A
}

/// Every rule of the products, in the order a full load reports them.
pub(super) fn check(
    products: &[ProductConfig],
    g: &GpioConfig,
    backend: &BackendConfig,
    currency: &Option<String>,
) -> Result<(), Invalid> {
    if products.is_empty() {
        return Err(invalid("product", "at least one [[product]] is required"));
    }
    if products.len() > MAX_PRODUCTS {
        return Err(invalid(
            format!("product[{}]", MAX_PRODUCTS),
            format!("at most {MAX_PRODUCTS} products fit on the screen"),
        ));
    }
    for (i, p) in products.iter().enumerate() {
        let f = |name: &str| format!("product[{i}].{name}");
        let chars = p.name.trim().chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            return Err(invalid(
                f("name"),
                format!("must be 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
        let price = price(p, i, backend, currency)?;
        match (&price, p.min_sat, p.max_sat) {
            (_, None, None) => {}
            (Price::Sats(_), _, _) => {
                return Err(invalid(
                    f(if p.min_sat.is_some() {
                        "min_sat"
                    } else {
                        "max_sat"
                    }),
                    "min_sat and max_sat bound a fiat price (price_fiat); a price_sat is exact",
                ))
            }
            (Price::Fiat(_), min, max) => {
                let (lo, hi) = (min.unwrap_or(1), max.unwrap_or(MAX_PRICE_SAT));
                if lo == 0 || hi > MAX_PRICE_SAT || lo > hi {
                    return Err(invalid(
                        f(if min.is_some() && (lo == 0 || lo > hi) {
                            "min_sat"
                        } else {
                            "max_sat"
                        }),
                        format!("need 1 <= min_sat <= max_sat <= {MAX_PRICE_SAT}"),
                    ));
                }
            }
        }
        dispenser::check(i, p, g)?;
        if !dispenser::is_pump(p) {
            continue;
        }
        let Some(pour_ms) = p.pour_ms else {
            return Err(invalid(
                f("pour_ms"),
                "missing field `pour_ms`: how long the pump runs for one drink, in ms",
            ));
        };
        if pour_ms == 0 {
            return Err(invalid(f("pour_ms"), "must be greater than 0"));
        }
        if pour_ms + g.anti_drip_ms > g.max_run_ms {
            return Err(invalid(
                f("pour_ms"),
                format!(
                    "{} ms (plus {} ms anti-drip) is longer than gpio.max_run_ms = {}",
                    pour_ms, g.anti_drip_ms, g.max_run_ms
                ),
            ));
        }
        if p.channel == Channel::B && g.channel_b.is_none() {
            return Err(invalid(
                f("channel"),
                "channel B is used but [gpio.channel_b] is not configured",
            ));
        }
        check_product(i, p, g)?;
    }
    check_names(products)?;
    check_tanks(products)
}

/// A name as a customer tells products apart: case and runs of whitespace do not count.
fn name_key(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Names are unique (credits, stock and the dry mark are kept by name; two products of one
/// name would share them). "Cola" and "cola " are the same name: a customer cannot tell
/// them apart on a tile or a receipt, and the ledger would keep one of them under both.
fn check_names(products: &[ProductConfig]) -> Result<(), Invalid> {
    for (i, p) in products.iter().enumerate() {
        let key = name_key(&p.name);
        if let Some(first) = products[..i].iter().position(|q| name_key(&q.name) == key) {
            return Err(invalid(
                format!("product[{i}].name"),
                format!(
                    "{:?} is already the name of product[{first}] ({:?}); product names must differ (not only in case or spaces)",
                    p.name, products[first].name
                ),
            ));
        }
    }
    Ok(())
}

/// The products on one channel share its tank (one pump, one tank). If one keeps stock, all
/// do, with the same `tank_ml`, since a refill of one is a refill of all and a pour of any
/// lowers the one count. (Their `stock_ml` may differ: the tank starts from the lowest.)
fn check_tanks(products: &[ProductConfig]) -> Result<(), Invalid> {
    for (i, p) in products.iter().enumerate() {
        if !dispenser::is_pump(p) {
            continue; // no channel, no tank
        }
        let counted_here = |q: &ProductConfig| q.channel == p.channel && q.tank_ml.is_some();
        if p.tank_ml.is_none() {
            if let Some(j) = products.iter().position(counted_here) {
                return Err(invalid(
                    format!("product[{i}].tank_ml"),
                    format!(
                        "shares channel {}'s tank with product[{j}] ({:?}), which keeps stock: give this product tank_ml too (and volume_ml or timed_pour_ml), or its pours would not lower the count",
                        p.channel, products[j].name
                    ),
                ));
            }
        }
        let Some(mine) = p.tank_ml else { continue };
        let counted = |q: &ProductConfig| q.channel == p.channel && q.tank_ml.is_some();
        let Some(first) = products[..i].iter().position(counted) else {
            continue;
        };
        let q = &products[first];
        if q.tank_ml != Some(mine) {
            return Err(invalid(
                format!("product[{i}].tank_ml"),
                format!(
                    "shares channel {}'s tank with product[{first}] ({:?}): tank_ml must be the same ({} there, {mine} here)",
                    p.channel,
                    q.name,
                    q.tank_ml.unwrap_or(0)
                ),
            ));
        }
    }
    Ok(())
}

/// The volume and stock keys of product `i`.
fn check_product(i: usize, p: &ProductConfig, g: &GpioConfig) -> Result<(), Invalid> {
    let f = |name: &str| format!("product[{i}].{name}");
    if let Some(v) = p.volume_ml {
        if v == 0 || v > MAX_VOLUME_ML {
            return Err(invalid(
                f("volume_ml"),
                format!("must be 1 to {MAX_VOLUME_ML} ml"),
            ));
        }
        let Some(sensor) = flow::sensor(g, p.channel) else {
            return Err(invalid(
                f("volume_ml"),
                format!(
                    "pouring by volume needs a flow sensor: add [gpio.channel_{}.flow]",
                    p.channel.to_string().to_lowercase()
                ),
            ));
        };
        if p.pour_ms.unwrap_or(0) <= sensor.no_flow_ms {
            return Err(invalid(
                f("pour_ms"),
                format!(
                    "poured by volume, its time limit must be longer than the channel's no_flow_ms = {}, or every pour ends short before a dry tank can show",
                    sensor.no_flow_ms
                ),
            ));
        }
        if p.timed_pour_ml.is_some() {
            return Err(invalid(
                f("timed_pour_ml"),
                "a product poured by volume counts its measured ml; timed_pour_ml is for timed pours",
            ));
        }
    }
    if let Some(t) = p.timed_pour_ml {
        if t == 0 || t > MAX_VOLUME_ML {
            return Err(invalid(
                f("timed_pour_ml"),
                format!("must be 1 to {MAX_VOLUME_ML} ml"),
            ));
        }
    }
    if let Some(t) = p.tank_ml {
        if t == 0 || t > MAX_TANK_ML {
            return Err(invalid(
                f("tank_ml"),
                format!("must be 1 to {MAX_TANK_ML} ml"),
            ));
        }
        if p.volume_ml.is_none() && p.timed_pour_ml.is_none() {
            return Err(invalid(
                f("tank_ml"),
                "stock is counted in ml: give volume_ml (with a flow sensor) or timed_pour_ml",
            ));
        }
    }
    let tank = p.tank_ml;
    for (key, value) in [("stock_ml", p.stock_ml), ("low_stock_ml", p.low_stock_ml)] {
        match (value, tank) {
            (None, _) => {}
            (Some(_), None) => return Err(invalid(f(key), "needs tank_ml")),
            (Some(v), Some(t)) if v > t => {
                return Err(invalid(
                    f(key),
                    format!("{v} ml is more than tank_ml = {t}"),
                ))
            }
            (Some(_), Some(_)) => {}
        }
    }
    Ok(())
}

/// The checked price of product `i`.
fn price(
    p: &ProductConfig,
    i: usize,
    backend: &BackendConfig,
    currency: &Option<String>,
) -> Result<Price, Invalid> {
    let f = |name: &str| format!("product[{i}].{name}");
    match (p.price_sat, &p.price_fiat) {
        (Some(_), Some(_)) => Err(invalid(
            f("price_fiat"),
            "give price_sat or price_fiat, not both",
        )),
        (None, None) => Err(invalid(f("price_sat"), "missing price_sat (or price_fiat)")),
        (Some(0), None) => Err(invalid(
            f("price_sat"),
            "a price of 0 would give drinks away",
        )),
        (Some(sat), None) if sat > MAX_PRICE_SAT => Err(invalid(
            f("price_sat"),
            format!("{sat} sats is above the sanity limit of {MAX_PRICE_SAT}"),
        )),
        (Some(sat), None) => Msat::from_sat(sat)
            .map(Price::Sats)
            .ok_or_else(|| invalid(f("price_sat"), "too large")),
        (None, Some(amount)) => {
            // Neither has an exchange rate: the backend would refuse every sale at the QR.
            match backend {
                BackendConfig::Cln(_) => {
                    return Err(invalid(
                        f("price_fiat"),
                        "Core Lightning invoices are in sats only; use price_sat",
                    ))
                }
                BackendConfig::Nwc(_) => {
                    return Err(invalid(
                        f("price_fiat"),
                        "a wallet connection (NWC) takes sats only; use price_sat",
                    ))
                }
                BackendConfig::Sim(_) | BackendConfig::Btcpay(_) | BackendConfig::Lnbits(_) => {}
            }
            let Some(currency) = currency else {
                return Err(invalid(
                    f("price_fiat"),
                    "a fiat price needs `currency` at the top of the file",
                ));
            };
            let fiat = Fiat::parse(amount, currency).map_err(|e| {
                let field = if e.contains("currency code") {
                    "currency".to_string()
                } else {
                    f("price_fiat")
                };
                invalid(field, e)
            })?;
            if fiat.minor() == 0 {
                return Err(invalid(
                    f("price_fiat"),
                    "a price of 0 would give drinks away",
                ));
            }
            Ok(Price::Fiat(fiat))
        }
    }
}

/// The products with their checked prices, in screen order.
pub(super) fn specs(
    products: &[ProductConfig],
    backend: &BackendConfig,
    currency: &Option<String>,
) -> Vec<ProductSpec> {
    products
        .iter()
        .enumerate()
        .filter_map(|(index, p)| {
            // Checked at load (and by `with_overrides`), so every product has a price.
            let price = price(p, index, backend, currency).ok()?;
            Some(ProductSpec {
                index,
                name: p.name.trim().to_string(),
                price,
                pour: dispenser::pulse_spec(p)
                    .map_or(Duration::from_millis(p.pour_ms.unwrap_or(0)), |s| s.total()),
                channel: p.channel,
                sat_bounds: match (&p.price_fiat, p.min_sat, p.max_sat) {
                    (Some(_), lo, hi) if lo.is_some() || hi.is_some() => Some((
                        Msat::from_sat(lo.unwrap_or(1))?,
                        Msat::from_sat(hi.unwrap_or(MAX_PRICE_SAT))?,
                    )),
                    _ => None,
                },
                volume_ml: p.volume_ml,
                timed_pour_ml: p.timed_pour_ml,
                tank_ml: p.tank_ml,
                stock_ml: p.stock_ml,
                low_stock_ml: p.low_stock_ml,
                pulse: dispenser::pulse_spec(p),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Mode};

    const CONFIG: &str = r#"
[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000
image = "pics/cola.svg"

[[product]]
name = "Water"
price_sat = 500
pour_ms = 3000
image = "WATER"

[gpio]
backend = "mock"
"#;

    const SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="20"><rect width="10" height="20" fill="#00ff00"/></svg>"##;

    #[test]
    fn pictures_load_relative_to_the_config_file_once_and_a_bad_one_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pics")).unwrap();
        std::fs::write(dir.path().join("pics/cola.svg"), SVG).unwrap();
        let file = dir.path().join("lnvend.toml");

        // Missing: the error names the field, its line and the file it looked for.
        std::fs::write(&file, CONFIG.replace("WATER", "water.png")).unwrap();
        let e = Config::load(&file, Mode::Sim).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("product[1].image", 12), "{e}");
        assert!(e.message.contains("water.png"), "{e}");

        // Unreadable: a text file named .png.
        std::fs::write(dir.path().join("water.png"), "not a picture").unwrap();
        std::fs::write(&file, CONFIG.replace("WATER", "water.png")).unwrap();
        let e = Config::load(&file, Mode::Sim).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("product[1].image", 12), "{e}");

        // Both good (the second without a picture): decoded at load, scaled to fit.
        std::fs::write(&file, CONFIG.replace("image = \"WATER\"\n", "")).unwrap();
        let c = Config::load(&file, Mode::Sim).unwrap();
        assert_eq!(c.pictures.len(), 2);
        let cola = c.pictures[0].as_ref().expect("Cola's picture");
        assert_eq!(
            (cola.width, cola.height),
            (crate::picture::MAX_PX / 2, crate::picture::MAX_PX)
        );
        assert!(c.pictures[1].is_none());
    }

    /// Two products whose second is given by `second` (its lines after `[[product]]`).
    fn two(second: &str) -> String {
        format!(
            "[[product]]\nname = \"Cola\"\nprice_sat = 1000\npour_ms = 4000\ntimed_pour_ml = 330\ntank_ml = 5000\n\n[[product]]\n{second}\n[gpio]\nbackend = \"mock\"\n[gpio.channel_b]\nin3 = 5\nin4 = 6\nenb = 13\n"
        )
    }

    #[test]
    fn a_product_name_used_twice_is_refused_with_its_line_even_in_another_case_or_spacing() {
        for name in ["Cola", "cola ", " COLA", "Cola"] {
            let text = two(&format!(
                "name = \"{name}\"\nprice_sat = 3000\npour_ms = 4000\nchannel = \"B\"\n"
            ));
            let e = Config::parse(&text, "t.toml", Mode::Sim).unwrap_err();
            assert_eq!((e.field.as_str(), e.line), ("product[1].name", 9), "{e}");
            assert!(e.message.contains("product[0]"), "{e}");
        }
        // Different names on two channels are fine, so are names that merely contain another.
        let text = two("name = \"Cola Zero\"\nprice_sat = 3000\npour_ms = 4000\nchannel = \"B\"\n");
        Config::parse(&text, "t.toml", Mode::Sim).unwrap();
    }

    #[test]
    fn products_on_one_channel_must_agree_on_their_shared_tank() {
        let big = |tank: &str| {
            two(&format!(
                "name = \"Cola large\"\nprice_sat = 3000\npour_ms = 8000\ntimed_pour_ml = 500\n{tank}"
            ))
        };
        let e = Config::parse(&big("tank_ml = 4000\n"), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.line),
            ("product[1].tank_ml", 13),
            "{e}"
        );
        assert!(e.message.contains("channel A"), "{e}");
        // The same tank is fine (each size keeps its own low mark and starting stock).
        let c = Config::parse(
            &big("tank_ml = 5000\nlow_stock_ml = 1000\nstock_ml = 2000\n"),
            "t.toml",
            Mode::Sim,
        )
        .unwrap();
        assert_eq!(c.products.len(), 2);
    }

    #[test]
    fn a_product_that_keeps_no_stock_may_not_pour_from_a_counted_tank() {
        // Its pours would not lower the shared count, and the counted size would sell from
        // a tank emptier than the count says: refused at the uncounted product, either order.
        let uncounted = "name = \"Cola large\"\nprice_sat = 3000\npour_ms = 8000\n";
        let e = Config::parse(&two(uncounted), "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "product[1].tank_ml", "{e}");
        assert_eq!(e.line, 8, "the uncounted product's table: {e}");
        assert!(e.message.contains("product[0]"), "{e}");
        assert!(e.message.contains("channel A"), "{e}");
        let first_uncounted = format!(
            "[[product]]\n{uncounted}\n[[product]]\nname = \"Cola\"\nprice_sat = 1000\npour_ms = 4000\ntimed_pour_ml = 330\ntank_ml = 5000\n[gpio]\nbackend = \"mock\"\n"
        );
        let e = Config::parse(&first_uncounted, "t.toml", Mode::Sim).unwrap_err();
        assert_eq!(e.field, "product[0].tank_ml", "{e}");
        assert!(e.message.contains("product[1]"), "{e}");
        // On a channel of its own, a product without stock is fine.
        let own = format!("{uncounted}channel = \"B\"\n");
        Config::parse(&two(&own), "t.toml", Mode::Sim).unwrap();
    }

    #[test]
    fn the_simulator_brings_its_own_pictures() {
        let c = Config::simulator_default();
        assert_eq!(c.pictures.len(), 4);
        assert!(
            c.pictures[..3].iter().all(Option::is_some),
            "Cola, Club-Mate, Water"
        );
        assert!(c.pictures[3].is_none(), "the pulse product has none");
        assert!(
            c.product_specs()[3].pulse.is_some(),
            "the simulator shows a pulse product"
        );
    }
}
