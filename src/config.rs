//! The configuration file: one TOML file, every key documented in `config.example.toml`.
//!
//! Loading is strict: unknown keys are refused (`deny_unknown_fields`), and every value is
//! checked before the machine starts, so a typo never becomes a free drink or a pump that
//! runs dry. Every error names the file, the line and column, and the field.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::money::Msat;
use crate::pump::{BridgePins, Channel, PourSettings};
use crate::vend::Product;

/// How lnvend was started; it picks the defaults for the GPIO and payment backends.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// `lnvend run`: the real machine. GPIO defaults to rppal; a payment backend is required.
    Run,
    /// `lnvend sim`: mock GPIO and the simulated backend unless the file names others.
    Sim,
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of this machine, in logs and in every invoice's metadata.
    #[serde(default = "default_machine_id")]
    pub machine_id: String,
    /// Where the sales ledger lives. Default: /var/lib/lnvend (run), ./lnvend-sim-data (sim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// How long a customer has to pay, in seconds.
    #[serde(default = "default_invoice_expiry_s")]
    pub invoice_expiry_s: u64,
    /// The products on the idle screen, in order.
    #[serde(rename = "product", default)]
    pub products: Vec<ProductConfig>,
    #[serde(default)]
    pub gpio: GpioConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProductConfig {
    /// Shown on the tile and in the invoice description.
    pub name: String,
    /// Price in whole satoshis.
    pub price_sat: u64,
    /// How long the pump runs for one drink, in milliseconds.
    pub pour_ms: u64,
    /// Which L298N channel drives this product's pump: "A" or "B".
    #[serde(default = "default_channel")]
    pub channel: Channel,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GpioBackend {
    /// The Pi's GPIO through rppal.
    Rppal,
    /// In-memory pins that record every change (simulator, tests).
    Mock,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    /// "rppal" or "mock". Default: rppal (run), mock (sim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<GpioBackend>,
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChannelAPins {
    pub in1: u8,
    pub in2: u8,
    pub ena: u8,
}

/// BCM numbers for L298N channel B.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChannelBPins {
    pub in3: u8,
    pub in4: u8,
    pub enb: u8,
}

/// The payment backend.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendConfig {
    /// The built-in simulated Lightning backend (no real money).
    Sim,
}

fn default_machine_id() -> String {
    "lnvend".into()
}
fn default_invoice_expiry_s() -> u64 {
    600
}
fn default_channel() -> Channel {
    Channel::A
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
        }
    }
}

impl Default for ChannelBPins {
    fn default() -> Self {
        ChannelBPins {
            in3: 5,
            in4: 6,
            enb: 13,
        }
    }
}

impl Default for GpioConfig {
    fn default() -> Self {
        GpioConfig {
            backend: None,
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

/// A configuration error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, e.g. `product[1].price_sat`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// The limits a value is checked against.
pub const MAX_PRODUCTS: usize = 8;
pub const MAX_NAME_CHARS: usize = 24;
pub const MAX_PRICE_SAT: u64 = 10_000_000;
pub const MAX_RUN_MS_LIMIT: u64 = 300_000;
/// The highest BCM number on the 40-pin header.
pub const MAX_BCM: u8 = 27;

/// A validation failure before it is located in the file.
struct Invalid {
    field: String,
    message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
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
        let mut cfg = Config::parse(&text, &path.display().to_string(), mode)?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(cfg)
    }

    /// The configuration `lnvend sim` uses when no file is given.
    pub fn simulator_default() -> Config {
        Config::parse(SIM_DEFAULT, "(built-in simulator config)", Mode::Sim)
            .expect("the built-in simulator config is valid")
    }

    /// Parses and validates TOML text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, mode: Mode) -> Result<Config, ConfigError> {
        let spans = Spans::new(text);
        let mut cfg: Config = toml::from_str(text).map_err(|e| spans.locate_de(file, &e))?;
        cfg.apply_mode(mode).map_err(|i| spans.locate(file, i))?;
        cfg.validate(mode).map_err(|i| spans.locate(file, i))?;
        Ok(cfg)
    }

    fn apply_mode(&mut self, mode: Mode) -> Result<(), Invalid> {
        match mode {
            Mode::Run => {
                self.gpio.backend.get_or_insert(GpioBackend::Rppal);
                self.data_dir
                    .get_or_insert_with(|| PathBuf::from("/var/lib/lnvend"));
                match self.backend {
                    None => {
                        return Err(invalid(
                            "backend.kind",
                            "a payment backend is required for `lnvend run`",
                        ))
                    }
                    Some(BackendConfig::Sim) => {
                        return Err(invalid(
                            "backend.kind",
                            "\"sim\" takes no real payments and would give drinks away; use `lnvend sim` for the simulator",
                        ))
                    }
                }
            }
            Mode::Sim => {
                self.gpio.backend.get_or_insert(GpioBackend::Mock);
                self.data_dir
                    .get_or_insert_with(|| PathBuf::from("lnvend-sim-data"));
                self.backend.get_or_insert(BackendConfig::Sim);
            }
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(d) = self.data_dir.as_mut() {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        }
        if let Some(t) = self.gpio.trace.as_mut() {
            if t.is_relative() {
                *t = base.join(&*t);
            }
        }
    }

    fn validate(&self, _mode: Mode) -> Result<(), Invalid> {
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
        let g = &self.gpio;
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
        if g.trace.is_some() && g.backend != Some(GpioBackend::Mock) {
            return Err(invalid(
                "gpio.trace",
                "a pin trace is only written by the mock GPIO backend",
            ));
        }
        let mut used: HashMap<u8, String> = HashMap::new();
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
        for (field, pin) in pins {
            if pin > MAX_BCM {
                return Err(invalid(
                    field,
                    format!("BCM {pin} is not on the 40-pin header (0..=27)"),
                ));
            }
            if let Some(other) = used.insert(pin, field.to_string()) {
                return Err(invalid(
                    field,
                    format!("BCM {pin} is already used by {other}"),
                ));
            }
        }
        if self.products.is_empty() {
            return Err(invalid("product", "at least one [[product]] is required"));
        }
        if self.products.len() > MAX_PRODUCTS {
            return Err(invalid(
                format!("product[{}]", MAX_PRODUCTS),
                format!("at most {MAX_PRODUCTS} products fit on the screen"),
            ));
        }
        for (i, p) in self.products.iter().enumerate() {
            let f = |name: &str| format!("product[{i}].{name}");
            let chars = p.name.trim().chars().count();
            if chars == 0 || chars > MAX_NAME_CHARS {
                return Err(invalid(
                    f("name"),
                    format!("must be 1 to {MAX_NAME_CHARS} characters"),
                ));
            }
            if p.price_sat == 0 {
                return Err(invalid(
                    f("price_sat"),
                    "a price of 0 would give drinks away",
                ));
            }
            if p.price_sat > MAX_PRICE_SAT {
                return Err(invalid(
                    f("price_sat"),
                    format!(
                        "{} sats is above the sanity limit of {MAX_PRICE_SAT}",
                        p.price_sat
                    ),
                ));
            }
            if p.pour_ms == 0 {
                return Err(invalid(f("pour_ms"), "must be greater than 0"));
            }
            if p.pour_ms + g.anti_drip_ms > g.max_run_ms {
                return Err(invalid(
                    f("pour_ms"),
                    format!(
                        "{} ms (plus {} ms anti-drip) is longer than gpio.max_run_ms = {}",
                        p.pour_ms, g.anti_drip_ms, g.max_run_ms
                    ),
                ));
            }
            if p.channel == Channel::B && g.channel_b.is_none() {
                return Err(invalid(
                    f("channel"),
                    "channel B is used but [gpio.channel_b] is not configured",
                ));
            }
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("lnvend-data"))
    }

    pub fn gpio_backend(&self) -> GpioBackend {
        self.gpio.backend.unwrap_or(GpioBackend::Mock)
    }

    pub fn backend(&self) -> BackendConfig {
        self.backend.clone().unwrap_or(BackendConfig::Sim)
    }

    pub fn invoice_expiry(&self) -> Duration {
        Duration::from_secs(self.invoice_expiry_s)
    }

    pub fn max_run(&self) -> Duration {
        Duration::from_millis(self.gpio.max_run_ms)
    }

    /// The products as the vend cycle sees them.
    pub fn catalog(&self) -> Vec<Product> {
        self.products
            .iter()
            .enumerate()
            .map(|(index, p)| Product {
                index,
                name: p.name.trim().to_string(),
                // Validated at load: price_sat <= MAX_PRICE_SAT, so this cannot overflow.
                price: Msat::from_sat(p.price_sat).unwrap_or(Msat::ZERO),
                pour: Duration::from_millis(p.pour_ms),
                channel: p.channel,
            })
            .collect()
    }

    pub fn bridge_pins(&self) -> (BridgePins, Option<BridgePins>) {
        let a = self.gpio.channel_a;
        (
            BridgePins {
                forward: a.in1,
                reverse: a.in2,
                enable: a.ena,
            },
            self.gpio.channel_b.map(|b| BridgePins {
                forward: b.in3,
                reverse: b.in4,
                enable: b.enb,
            }),
        )
    }

    pub fn pour_settings(&self) -> PourSettings {
        PourSettings {
            duty: self.gpio.pwm_duty,
            soft_start: Duration::from_millis(self.gpio.soft_start_ms),
            anti_drip: Duration::from_millis(self.gpio.anti_drip_ms),
        }
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// The configuration of `lnvend sim` without `--config`.
pub const SIM_DEFAULT: &str = include_str!("../examples/sim.toml");

/// Where each key of the TOML text sits, to turn a field path into line and column.
struct Spans<'a> {
    text: &'a str,
    /// (dotted path, key span, whole entry span)
    entries: Vec<(String, Range<usize>, Range<usize>)>,
}

impl<'a> Spans<'a> {
    fn new(text: &'a str) -> Spans<'a> {
        let mut entries = Vec::new();
        if let Ok(doc) = toml_edit::Document::parse(text) {
            walk_table(doc.as_table(), "", &mut entries);
        }
        Spans { text, entries }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn locate(&self, file: &str, i: Invalid) -> ConfigError {
        // The field itself, else its nearest parent that is in the file.
        let mut path = i.field.as_str();
        let offset = loop {
            if let Some((_, key, _)) = self.entries.iter().find(|(p, _, _)| p == path) {
                break Some(key.start);
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => break None,
            }
        };
        let (line, column) = offset.map_or((1, 1), |o| self.line_col(o));
        ConfigError {
            file: file.into(),
            line,
            column,
            field: i.field,
            message: i.message,
        }
    }

    fn locate_de(&self, file: &str, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        let span = e.span().unwrap_or(0..0);
        // The innermost entry around the error is the field (or the table holding it).
        let inner = self
            .entries
            .iter()
            .filter(|(_, key, whole)| {
                (key.start <= span.start && span.start < key.end.max(key.start + 1))
                    || (whole.start <= span.start && span.end <= whole.end)
            })
            .max_by_key(|(p, _, _)| p.len());
        let mut field = inner.map_or(String::new(), |(p, _, _)| p.clone());
        // serde names the missing or unknown key in backticks.
        for pat in ["missing field `", "unknown field `", "unknown variant `"] {
            if let Some(rest) = message.split(pat).nth(1) {
                if let Some(name) = rest.split('`').next() {
                    if pat == "missing field `" {
                        field = if field.is_empty() {
                            name.to_string()
                        } else {
                            format!("{field}.{name}")
                        };
                    } else if field.is_empty() {
                        field = name.to_string();
                    }
                }
            }
        }
        if field.is_empty() {
            field = "(syntax)".into();
        }
        let (line, column) = self.line_col(span.start);
        ConfigError {
            file: file.into(),
            line,
            column,
            field,
            message,
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk_table(
    t: &dyn toml_edit::TableLike,
    prefix: &str,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    for (k, item) in t.iter() {
        let path = join(prefix, k);
        let key_span = t
            .get_key_value(k)
            .and_then(|(key, _)| key.span())
            .unwrap_or(0..0);
        let whole = item.span().unwrap_or_else(|| key_span.clone());
        out.push((
            path.clone(),
            key_span.clone(),
            key_span.start..whole.end.max(key_span.end),
        ));
        walk_item(item, &path, out);
    }
}

fn walk_item(
    item: &toml_edit::Item,
    path: &str,
    out: &mut Vec<(String, Range<usize>, Range<usize>)>,
) {
    match item {
        toml_edit::Item::Table(t) => walk_table(t, path, out),
        toml_edit::Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let p = format!("{path}[{i}]");
                let span = t.span().unwrap_or(0..0);
                out.push((p.clone(), span.clone(), span));
                walk_table(t, &p, out);
            }
        }
        toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => walk_table(t, path, out),
        toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
            for (i, v) in a.iter().enumerate() {
                let span = v.span().unwrap_or(0..0);
                out.push((format!("{path}[{i}]"), span.clone(), span));
            }
        }
        toml_edit::Item::Value(_) | toml_edit::Item::None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.catalog().len(), 2);
        assert_eq!(c.catalog()[1].price, Msat::from_sat(3000).unwrap());
        assert_eq!(c.catalog()[1].channel, Channel::B);
        assert_eq!(c.max_run(), Duration::from_secs(30));
        assert_eq!(c.backend(), BackendConfig::Sim);
        assert_eq!(c.invoice_expiry(), Duration::from_secs(600));
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
        let e = err(&GOOD.replace("price_sat = 2100\n", ""));
        assert!(e.field.ends_with("price_sat"), "{e}");
        assert!(e.message.contains("missing field"), "{e}");
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
    fn the_built_in_simulator_config_and_the_example_are_valid() {
        let c = Config::simulator_default();
        assert_eq!(c.gpio_backend(), GpioBackend::Mock);
        let example = include_str!("../config.example.toml");
        Config::parse(example, "config.example.toml", Mode::Sim).unwrap();
    }

    #[test]
    fn trace_needs_the_mock_backend() {
        let e = err(&GOOD.replace("backend = \"mock\"", "backend = \"rppal\"\ntrace = \"x\""));
        assert_eq!(e.field, "gpio.trace");
    }
}
