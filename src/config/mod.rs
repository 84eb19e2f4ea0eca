//! The configuration file: one TOML file, every key documented in `config.example.toml`.
//!
//! Loading is strict: unknown keys are refused (`deny_unknown_fields`), and every value is
//! checked before the machine starts, so a typo never becomes a free drink or a pump that
//! runs dry. Every error names the file, the line and column, and the field.

//!
//! Layout: `backend` (the `[backend]` sections and their transport), `gpio` (the pins and
//! pump drive), `pump_off` (what `lnvend pump-off` reads of a file, leniently), `warnings`
//! (what check-config warns of), `locate` (file:line:column of every error).
//! This module owns the top-level keys, the products and the one-pass load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pump::{BridgePins, PourSettings};
use crate::secret::Secret;

mod backend;
pub mod dispenser;
mod display;
pub mod flow;
mod gpio;
mod locate;
pub mod mdb;
mod metrics;
mod nfc;
mod products;
mod pump_off;
mod warnings;

pub use backend::{
    parse_cert_sha256, BackendConfig, BtcpayConfig, ClnConfig, HoldMode, LnbitsConfig, Network,
    NwcConfig, SimConfig, Transport, DEFAULT_FIAT_RATE_SAT,
};
pub use display::{DisplayConfig, LANGUAGES, MAX_WALLET_HINT_CHARS};
use gpio::RawGpio;
pub use gpio::{ChannelAPins, ChannelBPins, GpioBackend, GpioConfig, MAX_BCM, MAX_RUN_MS_LIMIT};
pub use locate::ConfigError;
use locate::{invalid, Invalid, Spans};
pub use metrics::MetricsConfig;
pub use nfc::{NfcConfig, NfcReaderKind};
pub use products::{ProductConfig, ProductSpec, MAX_NAME_CHARS, MAX_PRICE_SAT, MAX_PRODUCTS};

/// How lnvend was started; it picks the defaults for the GPIO and payment backends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// `lnvend run`: the real machine. GPIO defaults to rppal; a payment backend is required.
    Run,
    /// `lnvend sim`: mock GPIO and the simulated backend unless the file names others.
    Sim,
}

impl Mode {
    /// The GPIO backend when `[gpio] backend` is not given.
    fn gpio_backend(self) -> GpioBackend {
        match self {
            Mode::Run => GpioBackend::Rppal,
            Mode::Sim => GpioBackend::Mock,
        }
    }
}

/// The file as serde reads it: every key, with the defaults that do not depend on the
/// mode. What the mode decides (data dir, GPIO and payment backend, clock sync) is left
/// `None` here and settled in one place, [`RawConfig::settle`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Name of this machine, in logs and in every invoice's metadata.
    #[serde(default = "default_machine_id")]
    machine_id: String,
    /// Where the sales ledger lives. Default: /var/lib/lnvend (run), ./lnvend-sim-data (sim).
    #[serde(default)]
    data_dir: Option<PathBuf>,
    /// How long a customer has to pay, in seconds.
    #[serde(default = "default_invoice_expiry_s")]
    invoice_expiry_s: u64,
    /// Hash of the operator PIN, made by `lnvend hash-pin` (operator menu disabled without).
    /// A secret like a key: a 4-digit PIN falls to an offline search of its hash in minutes,
    /// so it never prints (check-config shows `<redacted>`).
    #[serde(default)]
    operator_pin_hash: Option<Secret>,
    /// Offer "refund to my wallet" on the fault screen (BTCPay only: it refunds by itself).
    #[serde(default)]
    refund_on_fault_screen: bool,
    /// How long an owed credit is offered on the idle screen as "tap to pour", in seconds.
    #[serde(default = "default_credit_window_s")]
    credit_window_s: u64,
    /// Currency of `price_fiat` prices (ISO 4217, e.g. "EUR"). Needed only for fiat prices.
    #[serde(default)]
    currency: Option<String>,
    /// The products on the idle screen, in order.
    #[serde(rename = "product", default)]
    products: Vec<ProductConfig>,
    #[serde(default)]
    gpio: RawGpio,
    #[serde(default)]
    backend: Option<BackendConfig>,
    /// The touchscreen as mounted (kiosk build): see `crate::display`.
    #[serde(default)]
    display: DisplayConfig,
    /// Whether to wait for a synchronised wall clock before selling: see [`crate::clock`].
    #[serde(default)]
    clock: RawClock,
    /// The opt-in Prometheus listener: see [`MetricsConfig`].
    #[serde(default)]
    metrics: MetricsConfig,
    /// The Bolt Card reader: see [`NfcConfig`].
    #[serde(default)]
    nfc: NfcConfig,
    /// A commercial machine sold through an MDB HAT: see [`mdb::MdbConfig`].
    #[serde(default)]
    mdb: Option<mdb::MdbConfig>,
}

/// `[clock]` as the file gives it.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClock {
    /// Sell nothing until the system clock is synchronised (systemd-timesyncd's flag file,
    /// or the kernel's NTP status). Default: true for `lnvend run` (a Pi 3B/4 has no
    /// real-time clock), false for `lnvend sim`. Set false on a machine with an RTC.
    #[serde(default)]
    require_sync: Option<bool>,
}

/// The whole configuration, loaded and checked: what the mode decides is decided, every
/// path is absolute (relative to the file), and `*_file` secrets are read.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Config {
    pub machine_id: String,
    /// Where the sales ledger lives.
    pub data_dir: PathBuf,
    pub invoice_expiry_s: u64,
    /// Never printed: see the key in [`RawConfig`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_pin_hash: Option<Secret>,
    pub refund_on_fault_screen: bool,
    pub credit_window_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(rename = "product")]
    pub products: Vec<ProductConfig>,
    pub gpio: GpioConfig,
    /// `sim` only in `lnvend sim`.
    pub backend: BackendConfig,
    #[serde(skip_serializing_if = "DisplayConfig::is_default")]
    pub display: DisplayConfig,
    pub clock: ClockConfig,
    #[serde(skip_serializing_if = "MetricsConfig::is_default")]
    pub metrics: MetricsConfig,
    /// Each product's picture, decoded and scaled at load (by index; `None`: no `image`).
    #[serde(skip)]
    pub pictures: Vec<Option<std::sync::Arc<crate::picture::Picture>>>,
    /// `[[mdb.item]]` pictures by item number, decoded once at load.
    #[serde(skip)]
    pub mdb_pictures: Vec<(u16, std::sync::Arc<crate::picture::Picture>)>,
    #[serde(skip_serializing_if = "NfcConfig::is_default")]
    pub nfc: NfcConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdb: Option<mdb::MdbConfig>,
}

/// `[clock]`, settled by the mode.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ClockConfig {
    /// Sell only on a synchronised clock.
    pub require_sync: bool,
}

fn default_machine_id() -> String {
    "lnvend".into()
}
fn default_invoice_expiry_s() -> u64 {
    600
}
/// Two minutes: the customer whose pour failed is usually still at the machine, while a
/// longer public window lets anyone who walks up take the drink; later it is the operator's.
fn default_credit_window_s() -> u64 {
    120
}

impl RawConfig {
    /// Applies the mode: the one place where a default depends on how lnvend was started.
    fn settle(self, mode: Mode) -> Result<Config, Invalid> {
        // Run: a Pi 3B/4 has no real-time clock, so it waits for NTP; the simulator does not.
        let (require_sync, data_dir) = match mode {
            Mode::Run => (true, "/var/lib/lnvend"),
            Mode::Sim => (false, "lnvend-sim-data"),
        };
        let backend = match (mode, self.backend) {
            (Mode::Run, None) => {
                return Err(invalid(
                    "backend.kind",
                    "a payment backend is required for `lnvend run`",
                ))
            }
            (Mode::Run, Some(BackendConfig::Sim(_))) => {
                return Err(invalid(
                    "backend.kind",
                    "\"sim\" takes no real payments and would give drinks away; use `lnvend sim` for the simulator",
                ))
            }
            (Mode::Sim, None) => BackendConfig::Sim(SimConfig::default()),
            (_, Some(b)) => b,
        };
        Ok(Config {
            machine_id: self.machine_id,
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from(data_dir)),
            invoice_expiry_s: self.invoice_expiry_s,
            operator_pin_hash: self.operator_pin_hash,
            refund_on_fault_screen: self.refund_on_fault_screen,
            credit_window_s: self.credit_window_s,
            currency: self.currency,
            products: self.products,
            gpio: self.gpio.settle(mode.gpio_backend()),
            backend,
            display: self.display,
            clock: ClockConfig {
                require_sync: self.clock.require_sync.unwrap_or(require_sync),
            },
            metrics: self.metrics,
            pictures: Vec::new(),
            mdb_pictures: Vec::new(),
            nfc: self.nfc,
            mdb: self.mdb,
        })
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path, mode: Mode) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_in(&text, &path.display().to_string(), mode, base)
    }

    /// The configuration `lnvend sim` uses when no file is given; its pictures are built
    /// into the binary (examples/pictures/), so it runs from any directory, and its
    /// relative paths (the data in `lnvend-sim-data`, the pin trace) are of the current
    /// directory, as `lnvend sim --help` says.
    pub fn simulator_default() -> Config {
        let builtin = |path: &Path| {
            let bytes: &[u8] = match path.file_name().and_then(|n| n.to_str()) {
                Some("cola.svg") => include_bytes!("../../examples/pictures/cola.svg"),
                Some("mate.svg") => include_bytes!("../../examples/pictures/mate.svg"),
                Some("water.svg") => include_bytes!("../../examples/pictures/water.svg"),
                _ => &[],
            };
            crate::picture::decode(bytes, true).map_err(|reason| {
                crate::picture::PictureError::Decode {
                    path: path.display().to_string(),
                    reason,
                }
            })
        };
        Config::parse_in_with(
            SIM_DEFAULT,
            "(built-in simulator config)",
            Mode::Sim,
            Path::new("."),
            &builtin,
        )
        .expect("the built-in simulator config is valid")
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, mode: Mode) -> Result<Config, ConfigError> {
        Config::parse_in(text, file, mode, Path::new("."))
    }

    /// Like [`Config::parse`], with relative paths taken from `base`.
    pub fn parse_in(
        text: &str,
        file: &str,
        mode: Mode,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        Config::parse_in_with(text, file, mode, base, &crate::picture::load)
    }

    /// Like [`Config::parse_in`], reading product pictures with `load_picture`.
    fn parse_in_with(
        text: &str,
        file: &str,
        mode: Mode,
        base: &Path,
        load_picture: &dyn Fn(
            &Path,
        )
            -> Result<crate::picture::Picture, crate::picture::PictureError>,
    ) -> Result<Config, ConfigError> {
        let spans = Spans::new(text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| spans.locate_de(file, &e))?;
        let mut cfg = raw.settle(mode).map_err(|i| spans.locate(file, i))?;
        cfg.validate().map_err(|i| spans.locate(file, i))?;
        cfg.metrics.check().map_err(|i| spans.locate(file, i))?;
        backend::check(&cfg.backend).map_err(|i| spans.locate(file, i))?;
        cfg.resolve_paths(base);
        cfg.pictures =
            products::pictures(&cfg.products, load_picture).map_err(|i| spans.locate(file, i))?;
        if let Some(m) = &cfg.mdb {
            cfg.mdb_pictures = mdb::pictures(m, load_picture).map_err(|i| spans.locate(file, i))?;
        }
        backend::resolve_secrets(&mut cfg.backend).map_err(|i| spans.locate(file, i))?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        if self.data_dir.is_relative() {
            self.data_dir = base.join(&self.data_dir);
        }
        if let Some(t) = self.gpio.trace.as_mut() {
            if t.is_relative() {
                *t = base.join(&*t);
            }
        }
        let items = self.mdb.iter_mut().flat_map(|m| m.items.iter_mut());
        for img in items.filter_map(|i| i.image.as_mut()) {
            if img.is_relative() {
                *img = base.join(&*img);
            }
        }
        for p in &mut self.products {
            if let Some(img) = p.image.as_mut() {
                if img.is_relative() {
                    *img = base.join(&*img);
                }
            }
        }
        backend::resolve_paths(&mut self.backend, base);
    }

    fn validate(&self) -> Result<(), Invalid> {
        let id = &self.machine_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "machine_id",
                "must be 1 to 64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if !(60..=86_400).contains(&self.invoice_expiry_s) {
            return Err(invalid(
                "invoice_expiry_s",
                format!(
                    "{} is out of range 60..=86400 seconds",
                    self.invoice_expiry_s
                ),
            ));
        }
        if let Some(h) = &self.operator_pin_hash {
            match crate::operator::PinHash::parse(h.expose()) {
                Ok(_) => {}
                Err(e @ crate::operator::PinHashError::TooManyRounds { .. }) => {
                    return Err(invalid("operator_pin_hash", e.to_string()))
                }
                Err(_) => {
                    return Err(invalid(
                        "operator_pin_hash",
                        "not a hash made by `lnvend hash-pin`",
                    ))
                }
            }
        }
        if self.refund_on_fault_screen && !matches!(self.backend, BackendConfig::Btcpay(_)) {
            return Err(invalid(
                "refund_on_fault_screen",
                "only the BTCPay backend can refund by itself; refund other backends' credits from the operator menu",
            ));
        }
        if self.credit_window_s > 86_400 {
            return Err(invalid("credit_window_s", "must be at most 86400 (a day)"));
        }
        if let Some(problem) = self.display.language_problem() {
            return Err(invalid("display.language", problem));
        }
        if let Some(problem) = self.display.wallet_hint_problem() {
            return Err(invalid("display.wallet_hint", problem));
        }
        if let Some(problem) = self.display.problem() {
            return Err(invalid("display.rotation", problem));
        }
        if let Some((field, problem)) = self.nfc.problem() {
            return Err(invalid(field, problem));
        }
        let g = &self.gpio;
        gpio::check(g)?;
        dispenser::check_shared_pins(&self.products, self.mdb.as_ref(), &self.nfc)?;
        if let Some(m) = &self.mdb {
            mdb::check(m, &self.backend, &self.currency)?;
            mdb::check_names(m, &self.products)?;
            if self.products.is_empty() {
                // The machine's keypad sells; no tiles are needed.
                return Ok(());
            }
        }
        products::check(&self.products, g, &self.backend, &self.currency)
    }

    /// Applies the operator's saved overrides (prices, pour times), re-validating the result:
    /// an override that would make the config invalid is refused as a whole.
    pub fn with_overrides(&self, o: &crate::operator::Overrides) -> Result<Config, String> {
        let mut c = self.clone();
        for po in &o.products {
            let Some(p) = c.products.get_mut(po.index) else {
                continue;
            };
            if p.name.trim() != po.name.trim() {
                continue;
            }
            if po.price_sat.is_some() || po.price_fiat.is_some() {
                p.price_sat = po.price_sat;
                p.price_fiat = po.price_fiat.clone();
            }
            if p.pour_ms.is_some() {
                // A pulse product's time is its pattern's: the operator's pour time is not.
                p.pour_ms = Some(po.pour_ms);
            }
        }
        for fo in &o.flow {
            let sensor = match fo.channel {
                crate::pump::Channel::A => c.gpio.channel_a.flow.as_mut(),
                crate::pump::Channel::B => c.gpio.channel_b.as_mut().and_then(|b| b.flow.as_mut()),
            };
            if let Some(f) = sensor {
                f.pulses_per_litre = fo.pulses_per_litre;
            }
        }
        c.validate()
            .map_err(|i| format!("{}: {}", i.field, i.message))?;
        Ok(c)
    }

    pub fn credit_window(&self) -> Duration {
        Duration::from_secs(self.credit_window_s)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone()
    }

    pub fn gpio_backend(&self) -> GpioBackend {
        self.gpio.backend
    }

    pub fn backend(&self) -> BackendConfig {
        self.backend.clone()
    }

    pub fn invoice_expiry(&self) -> Duration {
        Duration::from_secs(self.invoice_expiry_s)
    }

    pub fn max_run(&self) -> Duration {
        Duration::from_millis(self.gpio.max_run_ms)
    }

    /// The products with their checked prices, in screen order; `vend::catalog` turns them
    /// into what the vend cycle sells.
    pub fn product_specs(&self) -> Vec<ProductSpec> {
        products::specs(&self.products, &self.backend, &self.currency)
    }

    /// Whether to sell only on a synchronised clock (set by the mode at load).
    pub fn require_clock_sync(&self) -> bool {
        self.clock.require_sync
    }

    pub fn bridge_pins(&self) -> (BridgePins, Option<BridgePins>) {
        self.gpio.bridge_pins()
    }

    pub fn pour_settings(&self) -> PourSettings {
        self.gpio.pour_settings()
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// The configuration of `lnvend sim` without `--config`.
pub const SIM_DEFAULT: &str = include_str!("../../examples/sim.toml");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Msat, Price};
    use crate::pump::Channel;

    const GOOD: &str = r#"
machine_id = "bar-1"

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 4000

[[product]]
name = "Mate"
price_sat = 3000
pour_ms = 5000
channel = "B"

[gpio]
backend = "mock"

[gpio.channel_b]
in3 = 5
in4 = 6
enb = 13
"#;

    fn err(text: &str) -> ConfigError {
        Config::parse(text, "test.toml", Mode::Sim).unwrap_err()
    }

    #[test]
    fn a_good_config_loads_with_defaults() {
        let c = Config::parse(GOOD, "test.toml", Mode::Sim).unwrap();
        assert_eq!(c.product_specs().len(), 2);
        assert_eq!(
            c.product_specs()[1].price,
            Price::Sats(Msat::from_sat(3000).unwrap())
        );
        assert_eq!(c.product_specs()[1].channel, Channel::B);
        assert_eq!(c.max_run(), Duration::from_secs(30));
        assert_eq!(c.backend().kind(), "sim");
        assert_eq!(c.invoice_expiry(), Duration::from_secs(600));
        // Anyone at the screen may take a public credit: by default only for two minutes.
        assert_eq!(c.credit_window(), Duration::from_secs(120));
    }

    #[test]
    fn the_wallet_hint_and_language_are_off_and_english_by_default_and_checked_at_their_line() {
        let c = Config::parse(GOOD, "test.toml", Mode::Sim).unwrap();
        assert_eq!(
            c.display.wallet_hint, None,
            "no wallet hint unless configured"
        );
        assert_eq!(c.display.language(), "en");
        let with = |s: &str| format!("{GOOD}\n[display]\n{s}\n");
        let c = Config::parse(
            &with("wallet_hint = \"No wallet? Ask at the bar.\"\nlanguage = \"de\""),
            "test.toml",
            Mode::Sim,
        )
        .unwrap();
        assert_eq!(
            c.display.wallet_hint.as_deref(),
            Some("No wallet? Ask at the bar.")
        );
        assert_eq!(c.display.language(), "de");
        let e = err(&with(&format!("wallet_hint = \"{}\"", "x".repeat(61))));
        assert_eq!(e.field, "display.wallet_hint");
        assert_eq!(e.line, 24, "{e}");
        assert!(e.message.contains("at most 60"), "{e}");
        let e = err(&with("language = \"nl\""));
        assert_eq!((e.field.as_str(), e.line), ("display.language", 24), "{e}");
        assert!(e.message.contains("en, fr, pt, es, de"), "{e}");
    }

    #[test]
    fn price_zero_is_refused_with_line_and_field() {
        let e = err(&GOOD.replace("price_sat = 3000", "price_sat = 0"));
        assert_eq!(e.field, "product[1].price_sat");
        assert_eq!(e.line, 11);
        assert!(e.message.contains("give drinks away"), "{e}");
        assert!(
            e.to_string()
                .starts_with("test.toml:11:1: product[1].price_sat:"),
            "{e}"
        );
    }

    #[test]
    fn a_pour_longer_than_the_maximum_run_time_is_refused() {
        let e = err(&GOOD.replace("pour_ms = 4000", "pour_ms = 40000"));
        assert_eq!(e.field, "product[0].pour_ms");
        assert_eq!(e.line, 7);
        assert!(e.message.contains("max_run_ms"), "{e}");
    }

    #[test]
    fn a_pin_used_twice_is_refused() {
        let e = err(&GOOD.replace("enb = 13", "enb = 18"));
        assert_eq!(e.field, "gpio.channel_b.enb");
        assert_eq!(e.line, 21);
        assert!(
            e.message.contains("already used by gpio.channel_a.ena"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_channel_is_refused_at_its_line() {
        let e = err(&GOOD.replace("channel = \"B\"", "channel = \"C\""));
        assert_eq!(e.line, 13, "{e}");
        assert!(e.field.contains("product[1]"), "{e}");
        assert!(e.message.contains("unknown variant"), "{e}");
    }

    #[test]
    fn an_unwired_channel_b_is_refused() {
        let text = GOOD.replace("[gpio.channel_b]\nin3 = 5\nin4 = 6\nenb = 13\n", "");
        let e = err(&text);
        assert_eq!(e.field, "product[1].channel");
        assert_eq!(e.line, 13);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = err(&GOOD.replace("pour_ms = 5000", "pour_ms = 5000\npour_time = 3"));
        assert_eq!(e.line, 13, "{e}");
        assert!(e.message.contains("unknown field `pour_time`"), "{e}");
        assert!(e.field.contains("pour_time"), "{e}");
    }

    #[test]
    fn a_missing_field_names_it() {
        let e = err(&GOOD.replace("pour_ms = 4000\n", ""));
        assert!(e.field.ends_with("pour_ms"), "{e}");
        assert!(e.message.contains("missing field"), "{e}");
        let e = err(&GOOD.replace("price_sat = 2100\n", ""));
        assert_eq!(e.field, "product[0].price_sat");
        assert!(e.message.contains("missing"), "{e}");
        assert!(e.line >= 4 && e.line <= 6, "{e}");
    }

    #[test]
    fn a_wrong_type_is_located() {
        let e = err(&GOOD.replace("pour_ms = 4000", "pour_ms = \"long\""));
        assert_eq!(e.line, 7, "{e}");
        assert_eq!(e.field, "product[0].pour_ms");
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = err("machine_id = \"x\"\n[[product]\n");
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn no_products_is_refused() {
        let e = err("machine_id = \"x\"\n");
        assert_eq!(e.field, "product");
    }

    #[test]
    fn run_mode_requires_a_real_backend() {
        let e = Config::parse(GOOD, "test.toml", Mode::Run).unwrap_err();
        assert_eq!(e.field, "backend.kind");
        let e = Config::parse(
            &format!("{GOOD}\n[backend]\nkind = \"sim\"\n"),
            "t",
            Mode::Run,
        )
        .unwrap_err();
        assert!(e.message.contains("give drinks away"), "{e}");
    }

    #[test]
    fn the_mode_decides_every_default_it_owns_and_the_file_wins() {
        let minimal = "[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 4000\n";
        let sim = Config::parse_in(minimal, "t", Mode::Sim, Path::new("/etc/lnvend")).unwrap();
        assert_eq!(sim.data_dir, PathBuf::from("/etc/lnvend/lnvend-sim-data"));
        assert_eq!(sim.gpio.backend, GpioBackend::Mock);
        assert_eq!(sim.backend, BackendConfig::Sim(SimConfig::default()));
        assert!(!sim.require_clock_sync());
        let btcpay = "[backend]\nkind = \"btcpay\"\nurl = \"https://pay.example\"\n\
                      store_id = \"s\"\napi_key = \"k\"\n";
        let run = Config::parse(&format!("{minimal}{btcpay}"), "t", Mode::Run).unwrap();
        assert_eq!(run.data_dir, PathBuf::from("/var/lib/lnvend"));
        assert_eq!(run.gpio.backend, GpioBackend::Rppal);
        assert_eq!(run.backend.kind(), "btcpay");
        assert!(run.require_clock_sync());
        let chosen = format!(
            "data_dir = \"/srv/v\"\n{minimal}[gpio]\nbackend = \"mock\"\n\
             [clock]\nrequire_sync = false\n{btcpay}"
        );
        let run = Config::parse(&chosen, "t", Mode::Run).unwrap();
        assert_eq!(run.data_dir, PathBuf::from("/srv/v"));
        assert_eq!(run.gpio.backend, GpioBackend::Mock);
        assert!(!run.require_clock_sync());
        // check-config prints what was decided, so the printed file loads the same again.
        assert!(!run.to_redacted_toml().contains("api_key = \"k\""));
        let printed = sim.to_redacted_toml();
        assert!(printed.contains("lnvend-sim-data") && printed.contains("backend = \"mock\""));
        assert_eq!(Config::parse(&printed, "t", Mode::Sim).unwrap(), sim);
    }

    #[test]
    fn the_built_in_simulator_config_and_the_example_are_valid() {
        let c = Config::simulator_default();
        assert_eq!(c.gpio_backend(), GpioBackend::Mock);
        let example = include_str!("../../config.example.toml");
        Config::parse(example, "config.example.toml", Mode::Sim).unwrap();
    }

    #[test]
    fn trace_needs_the_mock_backend() {
        let e = err(&GOOD.replace("backend = \"mock\"", "backend = \"rppal\"\ntrace = \"x\""));
        assert_eq!(e.field, "gpio.trace");
    }

    #[test]
    fn fiat_prices_need_a_currency_and_are_refused_for_core_lightning() {
        let fiat = GOOD.replace("price_sat = 3000", "price_fiat = \"2.50\"");
        let e = err(&fiat);
        assert_eq!(e.field, "product[1].price_fiat");
        assert!(e.message.contains("currency"), "{e}");
        let with_currency = format!("currency = \"EUR\"\n{fiat}");
        let c = Config::parse(&with_currency, "t", Mode::Sim).unwrap();
        assert_eq!(c.product_specs()[1].price.display(), "2.50 EUR");
        let cln = format!(
            "{with_currency}\n[backend]\nkind = \"cln\"\nrpc_socket = \"/run/lightning-rpc\"\n"
        );
        let e = Config::parse(&cln, "t", Mode::Run).unwrap_err();
        assert_eq!(e.field, "product[1].price_fiat");
        assert!(e.message.contains("sats only"), "{e}");
        let both = GOOD.replace("price_sat = 3000", "price_sat = 3000\nprice_fiat = \"1\"");
        assert_eq!(
            err(&format!("currency = \"EUR\"\n{both}")).field,
            "product[1].price_fiat"
        );
    }

    #[test]
    fn backend_sections_are_checked_and_keys_never_printed() {
        let btcpay = format!(
            "{GOOD}\n[backend]\nkind = \"btcpay\"\nurl = \"https://pay.example\"\nstore_id = \"S1\"\napi_key = \"sekrit-key-123\"\n"
        );
        let c = Config::parse(&btcpay, "t", Mode::Run).unwrap();
        let printed = c.to_redacted_toml();
        assert!(!printed.contains("sekrit"), "{printed}");
        assert!(printed.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("sekrit"));
        let no_key = btcpay.replace("api_key = \"sekrit-key-123\"\n", "");
        let e = Config::parse(&no_key, "t", Mode::Run).unwrap_err();
        assert_eq!(e.field, "backend.api_key");
        let bad_url = btcpay.replace("https://pay.example", "pay.example");
        assert_eq!(
            Config::parse(&bad_url, "t", Mode::Run).unwrap_err().field,
            "backend.url"
        );
        let typo = btcpay.replace("store_id", "storeid");
        let e = Config::parse(&typo, "t", Mode::Run).unwrap_err();
        assert!(
            e.message.contains("storeid") || e.message.contains("store_id"),
            "{e}"
        );
        let pin = btcpay.replace("api_key =", "cert_sha256 = \"abc\"\napi_key =");
        assert_eq!(
            Config::parse(&pin, "t", Mode::Run).unwrap_err().field,
            "backend.cert_sha256"
        );
    }

    #[test]
    fn secret_files_are_read_at_load_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key"), "filekey\n").unwrap();
        let text = format!(
            "{GOOD}\n[backend]\nkind = \"lnbits\"\nurl = \"http://127.0.0.1:5000\"\ninvoice_key_file = \"key\"\n"
        );
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let c = Config::load(&path, Mode::Run).unwrap();
        match c.backend() {
            BackendConfig::Lnbits(l) => assert_eq!(l.invoice_key.unwrap().expose(), "filekey"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(dir.path().join("key")).unwrap();
        let e = Config::load(&path, Mode::Run).unwrap_err();
        assert_eq!(e.field, "backend.invoice_key_file");
    }

    /// GOOD plus a `[backend]` table with `lines`, which start on line 24.
    fn with_backend(lines: &str) -> String {
        format!("{GOOD}\n[backend]\n{lines}")
    }

    #[test]
    fn plain_http_to_another_host_is_refused_at_its_line_for_every_backend() {
        for (kind, rest) in [
            ("lnbits", "invoice_key = \"k\"\n"),
            ("cln", "rune = \"r\"\n"),
            ("btcpay", "store_id = \"s\"\napi_key = \"k\"\n"),
        ] {
            let text = with_backend(&format!(
                "kind = \"{kind}\"\nurl = \"http://lnbits.lan:5000\"\n{rest}"
            ));
            let e = Config::parse(&text, "t.toml", Mode::Run).unwrap_err();
            assert_eq!(e.field, "backend.url", "{kind}: {e}");
            assert_eq!(e.line, 25, "{kind}: {e}");
            assert!(e.message.contains("https://"), "{kind}: {e}");
            assert!(e.message.contains("allow_insecure_http"), "{kind}: {e}");
            // A private address is no better than a name.
            let lan_ip = text.replace("lnbits.lan", "192.168.1.20");
            assert_eq!(
                Config::parse(&lan_ip, "t.toml", Mode::Run)
                    .unwrap_err()
                    .field,
                "backend.url"
            );
        }
    }

    #[test]
    fn plain_http_to_this_machine_or_with_the_switch_is_accepted() {
        for host in ["127.0.0.1", "127.3.4.5", "[::1]", "localhost", "LocalHost"] {
            let text = with_backend(&format!(
                "kind = \"lnbits\"\nurl = \"http://{host}:5000\"\ninvoice_key = \"k\"\n"
            ));
            let c =
                Config::parse(&text, "t.toml", Mode::Run).unwrap_or_else(|e| panic!("{host}: {e}"));
            assert_eq!(c.insecure_http_warning(), None, "{host}");
        }
        let https =
            with_backend("kind = \"lnbits\"\nurl = \"https://lnbits.lan\"\ninvoice_key = \"k\"\n");
        let c = Config::parse(&https, "t.toml", Mode::Run).unwrap();
        assert_eq!(c.insecure_http_warning(), None);

        let lan = with_backend(
            "kind = \"cln\"\nurl = \"http://node.lan:3010\"\nrune = \"r\"\nallow_insecure_http = true\n",
        );
        let c = Config::parse(&lan, "t.toml", Mode::Run).unwrap();
        let warning = c
            .insecure_http_warning()
            .expect("a warning for check-config");
        assert!(
            warning.contains("clnrest") && warning.contains("clear"),
            "{warning}"
        );
        assert!(
            !warning.contains("\"r\""),
            "no rune in the warning: {warning}"
        );
        // The switch is written back only when set, and still no unknown key is accepted.
        assert!(c.to_redacted_toml().contains("allow_insecure_http = true"));
        let typo = lan.replace("allow_insecure_http", "allow_insecure");
        assert!(Config::parse(&typo, "t.toml", Mode::Run)
            .unwrap_err()
            .message
            .contains("unknown field"));
    }
}
