//! `[backend]`: which payment backend takes the money, and how it is reached.
//!
//! Owns the backend sections, their checks (URLs, keys, pins, timeouts), the reading of
//! `*_file` secrets at load, and [`Transport`]: the TLS and timeout keys every HTTP
//! backend shares, read in one place so no backend builds them differently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::locate::{invalid, Invalid};
use crate::secret::Secret;

/// Sats per whole unit of fiat that the simulated backend uses unless `fiat_rate_sat` says
/// otherwise (a made-up rate: the simulator takes no real money).
pub const DEFAULT_FIAT_RATE_SAT: u64 = 1000;

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
    /// Any wallet through Nostr Wallet Connect (NIP-47).
    Nwc(NwcConfig),
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

/// `hold`: whether sales use hold invoices (the payment is held, and taken only once the
/// drink is poured; returned when it cannot be). Only the backends that can hold have the key
/// (`sim`, `cln`, `nwc`); BTCPay has no hold invoices, and LNbits would need its admin key on the
/// machine to settle or cancel one, so both keep today's flow and refuse the key.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum HoldMode {
    /// Hold whenever the backend can (Core Lightning: the holdinvoice plugin is running and
    /// the rune allows its methods); otherwise today's flow.
    #[default]
    Auto,
    /// Hold every sale; without a backend that can, no sale at all.
    Always,
    /// Never hold: the payment is taken before the pour, as before.
    Never,
}

impl HoldMode {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldMode::Auto => "auto",
            HoldMode::Always => "always",
            HoldMode::Never => "never",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    /// Sats per whole unit of `currency` for fiat prices (a made-up rate).
    #[serde(default = "default_fiat_rate")]
    pub fiat_rate_sat: u64,
    /// Hold invoices (see [`HoldMode`]).
    #[serde(default)]
    pub hold: HoldMode,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            fiat_rate_sat: default_fiat_rate(),
            hold: HoldMode::default(),
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
    /// Hold invoices through the node's holdinvoice plugin (see [`HoldMode`]).
    #[serde(default)]
    pub hold: HoldMode,
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

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NwcConfig {
    /// A file holding the wallet's connection URI (`nostr+walletconnect://…`). The URI
    /// holds the key that signs our requests, so it is only ever read from a file.
    pub connection_uri_file: PathBuf,
    /// Relays to use besides the ones the URI names (`ws://` or `wss://`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relays: Vec<String>,
    /// The longest the wallet may take to answer one request.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default)]
    pub network: Network,
    /// Hold invoices when the wallet offers them (see [`HoldMode`]).
    #[serde(default)]
    pub hold: HoldMode,
    /// The URI, read from `connection_uri_file` at load. Not a key of the file; never
    /// serialised (a [`Secret`] would print as redacted anyway).
    #[serde(skip)]
    pub connection_uri: Option<Secret>,
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Sim(_) => "sim",
            BackendConfig::Btcpay(_) => "btcpay",
            BackendConfig::Cln(_) => "cln",
            BackendConfig::Lnbits(_) => "lnbits",
            BackendConfig::Nwc(_) => "nwc",
        }
    }

    /// `hold` as configured; `never` for the backends without the key.
    pub fn hold(&self) -> HoldMode {
        match self {
            BackendConfig::Sim(c) => c.hold,
            BackendConfig::Cln(c) => c.hold,
            BackendConfig::Nwc(c) => c.hold,
            BackendConfig::Btcpay(_) | BackendConfig::Lnbits(_) => HoldMode::Never,
        }
    }

    /// What `lnvend check-config` says about hold invoices (it asks no backend: whether a
    /// node can hold is asked at start).
    pub fn hold_summary(&self) -> String {
        let before = "payments are taken before the pour, as without hold invoices";
        match (self, self.hold()) {
            (BackendConfig::Btcpay(_), _) => {
                format!("not available: BTCPay Server has no hold invoices; {before}")
            }
            (BackendConfig::Lnbits(_), _) => format!(
                "not available: LNbits would need the wallet's admin key on the machine to \
                 settle or cancel; {before}"
            ),
            (BackendConfig::Nwc(_), HoldMode::Auto) => format!(
                "auto: used if, at start, the wallet's info lists make_hold_invoice, \
                 settle_hold_invoice and cancel_hold_invoice and this connection may use them; \
                 otherwise {before}"
            ),
            (BackendConfig::Nwc(_), HoldMode::Always) => "always: every sale; lnvend does not \
                 start unless the wallet offers hold invoices to this connection"
                .into(),
            (
                BackendConfig::Sim(_) | BackendConfig::Cln(_) | BackendConfig::Nwc(_),
                HoldMode::Never,
            ) => {
                format!("never: {before}")
            }
            (BackendConfig::Sim(_), HoldMode::Auto) => {
                format!("auto: the simulator holds only with hold = \"always\"; {before}")
            }
            (BackendConfig::Sim(_), HoldMode::Always) => {
                "always: every sale is held by the simulated backend".into()
            }
            (BackendConfig::Cln(_), HoldMode::Auto) => format!(
                "auto: used if, at start, the node runs the holdinvoice plugin and the rune \
                 allows its methods; otherwise {before}"
            ),
            (BackendConfig::Cln(_), HoldMode::Always) => "always: every sale; lnvend does not \
                 start unless the node runs the holdinvoice plugin and the rune allows its \
                 methods"
                .into(),
        }
    }

    /// The network whose invoices the machine may show.
    pub fn network(&self) -> Network {
        match self {
            BackendConfig::Sim(_) => Network::Regtest,
            BackendConfig::Btcpay(c) => c.network,
            BackendConfig::Cln(c) => c.network,
            BackendConfig::Lnbits(c) => c.network,
            BackendConfig::Nwc(c) => c.network,
        }
    }
}

/// The TLS and timeout keys every HTTP backend shares, as one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    /// Extra CA certificates (PEM) to trust besides the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 (and nothing else).
    pub cert_sha256: Option<[u8; 32]>,
    /// The longest one request may take.
    pub request_timeout: Duration,
    /// Whether plain http to another host was allowed by the operator.
    pub allow_insecure_http: bool,
}

/// The shared keys as each section spells them.
fn transport(
    ca_file: &Option<PathBuf>,
    cert_sha256: &Option<String>,
    request_timeout_ms: u64,
    allow_insecure_http: bool,
) -> Result<Transport, String> {
    // A pin that does not parse must not quietly fall back to the public roots: that would
    // trust any certificate a public CA signs for the host.
    let cert_sha256 = match cert_sha256 {
        Some(text) => Some(parse_cert_sha256(text).ok_or_else(|| {
            "backend.cert_sha256 is not 32 bytes of hex (a configuration mistake)".to_string()
        })?),
        None => None,
    };
    Ok(Transport {
        ca_file: ca_file.clone(),
        cert_sha256,
        request_timeout: Duration::from_millis(request_timeout_ms),
        allow_insecure_http,
    })
}

impl BtcpayConfig {
    /// TLS trust and timeout; an error names the configuration mistake.
    pub fn transport(&self) -> Result<Transport, String> {
        transport(
            &self.ca_file,
            &self.cert_sha256,
            self.request_timeout_ms,
            self.allow_insecure_http,
        )
    }
}

impl ClnConfig {
    /// TLS trust (clnrest only) and timeout; an error names the configuration mistake.
    pub fn transport(&self) -> Result<Transport, String> {
        transport(
            &self.ca_file,
            &self.cert_sha256,
            self.request_timeout_ms,
            self.allow_insecure_http,
        )
    }
}

impl LnbitsConfig {
    /// TLS trust and timeout; an error names the configuration mistake.
    pub fn transport(&self) -> Result<Transport, String> {
        transport(
            &self.ca_file,
            &self.cert_sha256,
            self.request_timeout_ms,
            self.allow_insecure_http,
        )
    }
}

fn default_fiat_rate() -> u64 {
    DEFAULT_FIAT_RATE_SAT
}
fn default_request_timeout_ms() -> u64 {
    10_000
}

/// Checks the backend section as a whole.
pub(super) fn check(backend: &BackendConfig) -> Result<(), Invalid> {
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
            (Some(s), None) if s.is_empty() => Err(invalid(format!("backend.{name}"), "is empty")),
            (Some(_), None) | (None, Some(_)) => Ok(()),
        };
    match backend {
        BackendConfig::Sim(_) => Ok(()),
        BackendConfig::Btcpay(c) => {
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
        BackendConfig::Cln(c) => {
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
        BackendConfig::Lnbits(c) => {
            check_url(&c.url, "backend.url", c.allow_insecure_http)?;
            one_secret(&c.invoice_key, &c.invoice_key_file, "invoice_key")?;
            timeout(c.request_timeout_ms)?;
            pin(&c.cert_sha256)
        }
        BackendConfig::Nwc(c) => {
            if c.relays.len() > crate::nostr::nwc::MAX_RELAYS {
                return Err(invalid(
                    "backend.relays",
                    format!("at most {} relays", crate::nostr::nwc::MAX_RELAYS),
                ));
            }
            for r in &c.relays {
                let ok = url::Url::parse(r.trim())
                    .is_ok_and(|u| matches!(u.scheme(), "ws" | "wss") && u.has_host());
                if !ok {
                    return Err(invalid(
                        "backend.relays",
                        "each must be a ws:// or wss:// URL",
                    ));
                }
            }
            timeout(c.request_timeout_ms)
        }
    }
}

/// Reads `*_file` secrets into their inline fields, so a missing or empty file is a
/// config error at start and not a failed sale later.
pub(super) fn resolve_secrets(backend: &mut BackendConfig) -> Result<(), Invalid> {
    fn load(slot: &mut Option<Secret>, file: &Option<PathBuf>, field: &str) -> Result<(), Invalid> {
        if let Some(path) = file {
            let s =
                crate::secret::read_secret_file(path).map_err(|e| invalid(field, e.to_string()))?;
            *slot = Some(s);
        }
        Ok(())
    }
    match backend {
        BackendConfig::Sim(_) => Ok(()),
        BackendConfig::Btcpay(c) => {
            load(&mut c.api_key, &c.api_key_file, "backend.api_key_file")?;
            load(
                &mut c.webhook_secret,
                &c.webhook_secret_file,
                "backend.webhook_secret_file",
            )
        }
        BackendConfig::Cln(c) => load(&mut c.rune, &c.rune_file, "backend.rune_file"),
        BackendConfig::Lnbits(c) => load(
            &mut c.invoice_key,
            &c.invoice_key_file,
            "backend.invoice_key_file",
        ),
        BackendConfig::Nwc(c) => {
            let field = "backend.connection_uri_file";
            let uri = crate::secret::read_secret_file(&c.connection_uri_file)
                .map_err(|e| invalid(field, e.to_string()))?;
            // Refused here, with the field, rather than at the first sale. The error names
            // what is wrong, never the URI or its secret.
            crate::nostr::nwc::Connection::parse(uri.expose())
                .map_err(|e| invalid(field, e.to_string()))?;
            c.connection_uri = Some(uri);
            Ok(())
        }
    }
}

/// Takes the backend's relative paths (key files, CA, socket) from the config's folder.
pub(super) fn resolve_paths(backend: &mut BackendConfig, base: &Path) {
    let mut files: Vec<&mut PathBuf> = Vec::new();
    match backend {
        BackendConfig::Sim(_) => {}
        BackendConfig::Btcpay(c) => files.extend(
            [
                &mut c.api_key_file,
                &mut c.webhook_secret_file,
                &mut c.ca_file,
            ]
            .into_iter()
            .flatten(),
        ),
        BackendConfig::Cln(c) => files.extend(
            [&mut c.rune_file, &mut c.ca_file, &mut c.rpc_socket]
                .into_iter()
                .flatten(),
        ),
        BackendConfig::Lnbits(c) => files.extend(
            [&mut c.invoice_key_file, &mut c.ca_file]
                .into_iter()
                .flatten(),
        ),
        BackendConfig::Nwc(c) => files.push(&mut c.connection_uri_file),
    }
    for f in files {
        if f.is_relative() {
            *f = base.join(&*f);
        }
    }
}

/// A warning for check-config when the backend is reached over plain http to another
/// host (allowed only by `allow_insecure_http = true`); `None` when the link is https or
/// stays on this machine.
pub(super) fn insecure_http_warning(backend: &BackendConfig) -> Option<String> {
    let (kind, url, allowed) = match backend {
        BackendConfig::Btcpay(c) => ("BTCPay", c.url.as_str(), c.allow_insecure_http),
        BackendConfig::Cln(c) => ("clnrest", c.url.as_deref()?, c.allow_insecure_http),
        BackendConfig::Lnbits(c) => ("LNbits", c.url.as_str(), c.allow_insecure_http),
        BackendConfig::Sim(_) | BackendConfig::Nwc(_) => return None,
    };
    let u = url::Url::parse(url).ok()?;
    (allowed && u.scheme() == "http" && !is_loopback(&u)).then(|| {
        format!(
            "warning: the {kind} backend is reached over plain http (allow_insecure_http = true): \
             its key crosses the network in clear, and anyone on that network can answer \"paid\""
        )
    })
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

#[cfg(test)]
mod hold_tests;

#[cfg(test)]
mod nwc_tests;
