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

use crate::display::DisplayConfig;
use crate::money::{Fiat, Msat, Price};
use crate::pump::{BridgePins, Channel, PourSettings};
use crate::secret::Secret;
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
    /// Hash of the operator PIN, made by `lnvend hash-pin` (operator menu disabled without).
    /// A secret like a key: a 4-digit PIN falls to an offline search of its hash in minutes,
    /// so it never prints (check-config shows `<redacted>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_pin_hash: Option<Secret>,
    /// Offer "refund to my wallet" on the fault screen (BTCPay only: it refunds by itself).
    #[serde(default)]
    pub refund_on_fault_screen: bool,
    /// How long an owed credit is offered on the idle screen as "tap to pour", in seconds.
    #[serde(default = "default_credit_window_s")]
    pub credit_window_s: u64,
    /// Currency of `price_fiat` prices (ISO 4217, e.g. "EUR"). Needed only for fiat prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The products on the idle screen, in order.
    #[serde(rename = "product", default)]
    pub products: Vec<ProductConfig>,
    #[serde(default)]
    pub gpio: GpioConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendConfig>,
    /// The touchscreen as mounted (kiosk build): see [`crate::display`].
    #[serde(default, skip_serializing_if = "DisplayConfig::is_default")]
    pub display: DisplayConfig,
    /// Whether to wait for a synchronised wall clock before selling: see [`crate::clock`].
    #[serde(default)]
    pub clock: ClockConfig,
}

/// `[clock]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ClockConfig {
    /// Sell nothing until the system clock is synchronised (systemd-timesyncd's flag file,
    /// or the kernel's NTP status). Default: true for `lnvend run` (a Pi 3B/4 has no
    /// real-time clock), false for `lnvend sim`. Set false on a machine with an RTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_sync: Option<bool>,
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
    /// How long the pump runs for one drink, in milliseconds.
    pub pour_ms: u64,
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
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BackendConfig {
    /// The built-in simulated Lightning backend (no real money).
    Sim(SimConfig),
    /// BTCPay Server, Greenfield API.
    Btcpay(BtcpayConfig),
    /// Core Lightning: the local `lightning-rpc` socket or a remote node's clnrest.
    Cln(ClnConfig),
    /// An LNbits wallet.
    Lnbits(LnbitsConfig),
}

/// The Lightning network a backend's invoices must be for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    #[default]
    Bitcoin,
    Testnet,
    Signet,
    Regtest,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Sats per whole unit of `currency` for fiat prices (a made-up rate).
    #[serde(default = "default_fiat_rate")]
    pub fiat_rate_sat: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            fiat_rate_sat: default_fiat_rate(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BtcpayConfig {
    /// Base URL of the server, e.g. "https://btcpay.example.com".
    pub url: String,
    pub store_id: String,
    /// Greenfield API key (`Authorization: token …`). Give this or `api_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// PEM file of a CA to trust (a LAN server with its own CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the server's certificate (hex): trust exactly that certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The network the store's Lightning node is on.
    #[serde(default)]
    pub network: Network,
    /// Listen for BTCPay webhooks on this address, e.g. "127.0.0.1:8089" (off when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_listen: Option<String>,
    /// The webhook's secret, to verify `BTCPay-Sig`. Or `webhook_secret_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Allow a plain `http://` URL to a host other than this machine. Off by default: over
    /// http anyone on the path reads the key and can answer "paid" to get a free drink.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClnConfig {
    /// Path of lightningd's `lightning-rpc` socket (a node on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_socket: Option<PathBuf>,
    /// Base URL of a remote node's clnrest, e.g. "https://node.lan:3010".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The rune for clnrest. Give this or `rune_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rune: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rune_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub network: Network,
    /// Allow a plain `http://` URL to a host other than this machine. Off by default: over
    /// http anyone on the path reads the key and can answer "paid" to get a free drink.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LnbitsConfig {
    /// Base URL of the LNbits server, e.g. "https://lnbits.example.com".
    pub url: String,
    /// The wallet's invoice/read key. Give this or `invoice_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub network: Network,
    /// Allow a plain `http://` URL to a host other than this machine. Off by default: over
    /// http anyone on the path reads the key and can answer "paid" to get a free drink.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Sim(_) => "sim",
            BackendConfig::Btcpay(_) => "btcpay",
            BackendConfig::Cln(_) => "cln",
            BackendConfig::Lnbits(_) => "lnbits",
        }
    }

    /// The network whose invoices the machine may show.
    pub fn network(&self) -> Network {
        match self {
            BackendConfig::Sim(_) => Network::Regtest,
            BackendConfig::Btcpay(c) => c.network,
            BackendConfig::Cln(c) => c.network,
            BackendConfig::Lnbits(c) => c.network,
        }
    }
}

fn default_machine_id() -> String {
    "lnvend".into()
}
fn default_invoice_expiry_s() -> u64 {
    600
}
fn default_credit_window_s() -> u64 {
    600
}
fn default_fiat_rate() -> u64 {
    crate::backend::sim::DEFAULT_FIAT_RATE_SAT
}
fn default_request_timeout_ms() -> u64 {
    10_000
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
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse_in(&text, &path.display().to_string(), mode, base)
    }

    /// The configuration `lnvend sim` uses when no file is given.
    pub fn simulator_default() -> Config {
        Config::parse(SIM_DEFAULT, "(built-in simulator config)", Mode::Sim)
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
        let spans = Spans::new(text);
        let mut cfg: Config = toml::from_str(text).map_err(|e| spans.locate_de(file, &e))?;
        cfg.apply_mode(mode).map_err(|i| spans.locate(file, i))?;
        cfg.validate(mode).map_err(|i| spans.locate(file, i))?;
        cfg.validate_backend().map_err(|i| spans.locate(file, i))?;
        cfg.resolve_paths(base);
        cfg.resolve_secrets().map_err(|i| spans.locate(file, i))?;
        Ok(cfg)
    }

    fn apply_mode(&mut self, mode: Mode) -> Result<(), Invalid> {
        match mode {
            Mode::Run => {
                self.gpio.backend.get_or_insert(GpioBackend::Rppal);
                self.clock.require_sync.get_or_insert(true);
                self.data_dir
                    .get_or_insert_with(|| PathBuf::from("/var/lib/lnvend"));
                match self.backend {
                    None => {
                        return Err(invalid(
                            "backend.kind",
                            "a payment backend is required for `lnvend run`",
                        ))
                    }
                    Some(BackendConfig::Sim(_)) => {
                        return Err(invalid(
                            "backend.kind",
                            "\"sim\" takes no real payments and would give drinks away; use `lnvend sim` for the simulator",
                        ))
                    }
                    Some(BackendConfig::Btcpay(_) | BackendConfig::Cln(_) | BackendConfig::Lnbits(_)) => {}
                }
            }
            Mode::Sim => {
                self.gpio.backend.get_or_insert(GpioBackend::Mock);
                self.clock.require_sync.get_or_insert(false);
                self.data_dir
                    .get_or_insert_with(|| PathBuf::from("lnvend-sim-data"));
                self.backend
                    .get_or_insert(BackendConfig::Sim(SimConfig::default()));
            }
        }
        Ok(())
    }

    fn validate_backend(&self) -> Result<(), Invalid> {
        let timeout = |ms: u64| {
            if (1_000..=120_000).contains(&ms) {
                Ok(())
            } else {
                Err(invalid(
                    "backend.request_timeout_ms",
                    "must be between 1000 and 120000",
                ))
            }
        };
        let pin = |p: &Option<String>| match p {
            Some(h) if parse_cert_sha256(h).is_none() => Err(invalid(
                "backend.cert_sha256",
                "must be 64 hex digits (colons allowed), the SHA-256 of the server certificate",
            )),
            Some(_) | None => Ok(()),
        };
        let one_secret =
            |inline: &Option<Secret>, file: &Option<PathBuf>, name: &str| match (inline, file) {
                (Some(_), Some(_)) => Err(invalid(
                    format!("backend.{name}_file"),
                    format!("give {name} or {name}_file, not both"),
                )),
                (None, None) => Err(invalid(
                    format!("backend.{name}"),
                    format!("missing {name} (or {name}_file)"),
                )),
                (Some(s), None) if s.is_empty() => {
                    Err(invalid(format!("backend.{name}"), "is empty"))
                }
                (Some(_), None) | (None, Some(_)) => Ok(()),
            };
        match &self.backend {
            None | Some(BackendConfig::Sim(_)) => Ok(()),
            Some(BackendConfig::Btcpay(c)) => {
                check_url(&c.url, "backend.url", c.allow_insecure_http)?;
                if c.store_id.trim().is_empty() {
                    return Err(invalid("backend.store_id", "is empty"));
                }
                one_secret(&c.api_key, &c.api_key_file, "api_key")?;
                timeout(c.request_timeout_ms)?;
                pin(&c.cert_sha256)?;
                if let Some(listen) = &c.webhook_listen {
                    if listen.parse::<std::net::SocketAddr>().is_err() {
                        return Err(invalid(
                            "backend.webhook_listen",
                            "must be an address like 127.0.0.1:8089",
                        ));
                    }
                    one_secret(&c.webhook_secret, &c.webhook_secret_file, "webhook_secret")?;
                }
                Ok(())
            }
            Some(BackendConfig::Cln(c)) => {
                match (&c.rpc_socket, &c.url) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "backend.url",
                            "give rpc_socket (local node) or url (clnrest), not both",
                        ))
                    }
                    (None, None) => {
                        return Err(invalid(
                            "backend.rpc_socket",
                            "missing rpc_socket (local node) or url (clnrest)",
                        ))
                    }
                    (None, Some(url)) => {
                        check_url(url, "backend.url", c.allow_insecure_http)?;
                        one_secret(&c.rune, &c.rune_file, "rune")?;
                    }
                    (Some(_), None) => {}
                }
                timeout(c.request_timeout_ms)?;
                pin(&c.cert_sha256)
            }
            Some(BackendConfig::Lnbits(c)) => {
                check_url(&c.url, "backend.url", c.allow_insecure_http)?;
                one_secret(&c.invoice_key, &c.invoice_key_file, "invoice_key")?;
                timeout(c.request_timeout_ms)?;
                pin(&c.cert_sha256)
            }
        }
    }

    /// Reads `*_file` secrets into their inline fields, so a missing or empty file is a
    /// config error at start and not a failed sale later.
    fn resolve_secrets(&mut self) -> Result<(), Invalid> {
        fn load(
            slot: &mut Option<Secret>,
            file: &Option<PathBuf>,
            field: &str,
        ) -> Result<(), Invalid> {
            if let Some(path) = file {
                let s = crate::secret::read_secret_file(path)
                    .map_err(|e| invalid(field, e.to_string()))?;
                *slot = Some(s);
            }
            Ok(())
        }
        match &mut self.backend {
            None | Some(BackendConfig::Sim(_)) => Ok(()),
            Some(BackendConfig::Btcpay(c)) => {
                load(&mut c.api_key, &c.api_key_file, "backend.api_key_file")?;
                load(
                    &mut c.webhook_secret,
                    &c.webhook_secret_file,
                    "backend.webhook_secret_file",
                )
            }
            Some(BackendConfig::Cln(c)) => load(&mut c.rune, &c.rune_file, "backend.rune_file"),
            Some(BackendConfig::Lnbits(c)) => load(
                &mut c.invoice_key,
                &c.invoice_key_file,
                "backend.invoice_key_file",
            ),
        }
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
        let mut files: Vec<&mut PathBuf> = Vec::new();
        match &mut self.backend {
            None | Some(BackendConfig::Sim(_)) => {}
            Some(BackendConfig::Btcpay(c)) => files.extend(
                [
                    &mut c.api_key_file,
                    &mut c.webhook_secret_file,
                    &mut c.ca_file,
                ]
                .into_iter()
                .flatten(),
            ),
            Some(BackendConfig::Cln(c)) => files.extend(
                [&mut c.rune_file, &mut c.ca_file, &mut c.rpc_socket]
                    .into_iter()
                    .flatten(),
            ),
            Some(BackendConfig::Lnbits(c)) => files.extend(
                [&mut c.invoice_key_file, &mut c.ca_file]
                    .into_iter()
                    .flatten(),
            ),
        }
        for f in files {
            if f.is_relative() {
                *f = base.join(&*f);
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
        if let Some(h) = &self.operator_pin_hash {
            if crate::operator::PinHash::parse(h.expose()).is_err() {
                return Err(invalid(
                    "operator_pin_hash",
                    "not a hash made by `lnvend hash-pin`",
                ));
            }
        }
        if self.refund_on_fault_screen && !matches!(self.backend, Some(BackendConfig::Btcpay(_))) {
            return Err(invalid(
                "refund_on_fault_screen",
                "only the BTCPay backend can refund by itself; refund other backends' credits from the operator menu",
            ));
        }
        if self.credit_window_s > 86_400 {
            return Err(invalid("credit_window_s", "must be at most 86400 (a day)"));
        }
        if let Some(problem) = self.display.problem() {
            return Err(invalid("display.rotation", problem));
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
            let price = self.product_price(i)?;
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
            p.pour_ms = po.pour_ms;
        }
        c.validate(Mode::Sim)
            .map_err(|i| format!("{}: {}", i.field, i.message))?;
        Ok(c)
    }

    pub fn credit_window(&self) -> Duration {
        Duration::from_secs(self.credit_window_s)
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
        self.backend
            .clone()
            .unwrap_or(BackendConfig::Sim(SimConfig::default()))
    }

    /// The checked price of product `i`.
    fn product_price(&self, i: usize) -> Result<Price, Invalid> {
        let p = &self.products[i];
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
                if let Some(BackendConfig::Cln(_)) = self.backend {
                    return Err(invalid(
                        f("price_fiat"),
                        "Core Lightning invoices are in sats only; use price_sat",
                    ));
                }
                let Some(currency) = &self.currency else {
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
                // Validated at load, so the fallback is never used.
                price: self.product_price(index).unwrap_or(Price::Sats(Msat::ZERO)),
                pour: Duration::from_millis(p.pour_ms),
                channel: p.channel,
                sat_bounds: match (&p.price_fiat, p.min_sat, p.max_sat) {
                    (Some(_), lo, hi) if lo.is_some() || hi.is_some() => Some((
                        Msat::from_sat(lo.unwrap_or(1)).unwrap_or(Msat::ZERO),
                        Msat::from_sat(hi.unwrap_or(MAX_PRICE_SAT)).unwrap_or(Msat::ZERO),
                    )),
                    _ => None,
                },
            })
            .collect()
    }

    /// Whether to sell only on a synchronised clock (set by the mode at load).
    pub fn require_clock_sync(&self) -> bool {
        self.clock.require_sync.unwrap_or(true)
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

    /// Only the `[gpio]` table of a config file, for `lnvend pump-off`. That command runs
    /// after every exit of the service (a SIGKILL included) and must drive the pins low even
    /// when the rest of the file (a missing key file, a broken `[backend]`) would stop
    /// `lnvend run`; so nothing outside the table is read, and no secret file is opened. The
    /// table itself is checked (types, unknown keys, pins, backend, trace) and located in
    /// the file as at a full load.
    pub fn load_gpio(path: &Path, mode: Mode) -> Result<GpioConfig, ConfigError> {
        // Not `deny_unknown_fields`: every other key of the file is skipped unread.
        #[derive(Deserialize)]
        struct GpioOnly {
            #[serde(default)]
            gpio: GpioConfig,
        }
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
        })?;
        let spans = Spans::new(&text);
        let mut g = toml::from_str::<GpioOnly>(&text)
            .map_err(|e| spans.locate_de(&file, &e))?
            .gpio;
        g.backend.get_or_insert(match mode {
            Mode::Run => GpioBackend::Rppal,
            Mode::Sim => GpioBackend::Mock,
        });
        Config::validate_gpio_outputs(&g).map_err(|i| spans.locate(&file, i))?;
        if let Some(t) = g.trace.as_mut() {
            if t.is_relative() {
                *t = path.parent().unwrap_or(Path::new(".")).join(&*t);
            }
        }
        Ok(g)
    }

    /// Things that load but will probably not work as meant, for `check-config` to print.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(BackendConfig::Cln(c)) = &self.backend {
            if let Some(socket) = &c.rpc_socket {
                if socket.starts_with("/home") || socket.starts_with("/root") {
                    out.push(format!(
                        "backend.rpc_socket {} is under /home or /root, which the service's \
                         ProtectHome=yes hides from lnvend; install the drop-in \
                         /usr/share/doc/lnvend/cln-socket-under-home.conf as \
                         /etc/systemd/system/lnvend.service.d/cln-socket-under-home.conf with \
                         this path, then `systemctl daemon-reload`",
                        socket.display()
                    ));
                }
            }
        }
        out.extend(self.insecure_http_warning());
        for (i, p) in self.products.iter().enumerate() {
            if p.price_fiat.is_some() && p.min_sat.is_none() && p.max_sat.is_none() {
                out.push(format!(
                    "product[{i}] ({}) is priced in fiat without min_sat/max_sat: a broken \
                     exchange rate at the backend would sell it at any price",
                    p.name.trim()
                ));
            }
        }
        out
    }

    /// What driving the pins needs to be right: the trace only with mock pins, every pin on
    /// the header and used once. (The same rules as in `validate`.)
    fn validate_gpio_outputs(g: &GpioConfig) -> Result<(), Invalid> {
        if g.trace.is_some() && g.backend != Some(GpioBackend::Mock) {
            return Err(invalid(
                "gpio.trace",
                "a pin trace is only written by the mock GPIO backend",
            ));
        }
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
        let mut used: HashMap<u8, &str> = HashMap::new();
        for (field, pin) in pins {
            if pin > MAX_BCM {
                return Err(invalid(
                    field,
                    format!("BCM {pin} is not on the 40-pin header (0..=27)"),
                ));
            }
            if let Some(other) = used.insert(pin, field) {
                return Err(invalid(
                    field,
                    format!("BCM {pin} is already used by {other}"),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    /// A warning for check-config when the backend is reached over plain http to another
    /// host (allowed only by `allow_insecure_http = true`); `None` when the link is https or
    /// stays on this machine.
    pub fn insecure_http_warning(&self) -> Option<String> {
        let (kind, url, allowed) = match self.backend.as_ref()? {
            BackendConfig::Btcpay(c) => ("BTCPay", c.url.as_str(), c.allow_insecure_http),
            BackendConfig::Cln(c) => ("clnrest", c.url.as_deref()?, c.allow_insecure_http),
            BackendConfig::Lnbits(c) => ("LNbits", c.url.as_str(), c.allow_insecure_http),
            BackendConfig::Sim(_) => return None,
        };
        let u = url::Url::parse(url).ok()?;
        (allowed && u.scheme() == "http" && !is_loopback(&u)).then(|| {
            format!(
                "warning: the {kind} backend is reached over plain http (allow_insecure_http = true): \
                 its key crosses the network in clear, and anyone on that network can answer \"paid\""
            )
        })
    }
}

/// A backend URL must be https, or http to this machine itself, unless the operator said
/// `allow_insecure_http = true`: the key (and the "paid" answer) would otherwise cross the
/// venue's network in clear.
fn check_url(url: &str, field: &str, allow_insecure_http: bool) -> Result<(), Invalid> {
    match url::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Ok(()),
        Ok(u) if u.scheme() == "http" && u.host().is_some() => {
            if allow_insecure_http || is_loopback(&u) {
                Ok(())
            } else {
                Err(invalid(
                    field,
                    "http:// to another host sends the key in clear and lets anyone on the network answer \"paid\"; use https:// (or set allow_insecure_http = true on a network you trust)",
                ))
            }
        }
        Ok(_) => Err(invalid(field, "must be an http:// or https:// URL")),
        Err(e) => Err(invalid(field, format!("not a URL: {e}"))),
    }
}

/// 127.0.0.0/8, ::1 or `localhost`: traffic that never leaves the machine.
fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The 32 bytes of a certificate pin written as hex, with or without colons.
pub fn parse_cert_sha256(text: &str) -> Option<[u8; 32]> {
    let clean: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(clean.trim()).ok()?;
    bytes.try_into().ok()
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
        assert_eq!(
            c.catalog()[1].price,
            Price::Sats(Msat::from_sat(3000).unwrap())
        );
        assert_eq!(c.catalog()[1].channel, Channel::B);
        assert_eq!(c.max_run(), Duration::from_secs(30));
        assert_eq!(c.backend().kind(), "sim");
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

    #[test]
    fn fiat_prices_need_a_currency_and_are_refused_for_core_lightning() {
        let fiat = GOOD.replace("price_sat = 3000", "price_fiat = \"2.50\"");
        let e = err(&fiat);
        assert_eq!(e.field, "product[1].price_fiat");
        assert!(e.message.contains("currency"), "{e}");
        let with_currency = format!("currency = \"EUR\"\n{fiat}");
        let c = Config::parse(&with_currency, "t", Mode::Sim).unwrap();
        assert_eq!(c.catalog()[1].price.display(), "2.50 EUR");
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
