//! `[metrics]`: the opt-in Prometheus listener (see `crate::metrics`). Off unless an address
//! is given, because an open port on the venue's LAN is the operator's decision.

use serde::{Deserialize, Serialize};

use super::locate::{invalid, Invalid};

/// `[metrics]` as the file gives it and as the machine uses it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address, e.g. "127.0.0.1:9464" (off when absent). A LAN
    /// address exposes sales figures to the LAN: see docs/operator/fleet.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// True when nothing was configured (then `check-config` does not print the section).
    pub fn is_default(&self) -> bool {
        *self == MetricsConfig::default()
    }

    /// The address to listen on, when the listener is on.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    /// For check-config: a listener beyond loopback shows the sales to its network.
    pub(super) fn warning(&self) -> Option<String> {
        let addr = self.listen_addr()?;
        (!addr.ip().is_loopback()).then(|| {
            format!(
                "metrics.listen {addr} serves sales figures to the network without TLS or a \
                 login; allow only the Prometheus host in the firewall (see \"Watching many \
                 machines\" in the book, docs/operator/fleet.md)"
            )
        })
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        match &self.listen {
            Some(l) if l.parse::<std::net::SocketAddr>().is_err() => Err(invalid(
                "metrics.listen",
                "must be an address like 127.0.0.1:9464",
            )),
            Some(_) | None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Mode};

    const PRODUCT: &str = "[[product]]\nname = \"Cola\"\nprice_sat = 2100\npour_ms = 4000\n";

    #[test]
    fn metrics_are_off_by_default_and_on_with_an_address() {
        let off = Config::parse(PRODUCT, "t", Mode::Sim).unwrap();
        assert_eq!(off.metrics.listen_addr(), None);
        assert!(!off.to_redacted_toml().contains("[metrics]"));
        let on = Config::parse(
            &format!("{PRODUCT}[metrics]\nlisten = \"127.0.0.1:9464\"\n"),
            "t",
            Mode::Sim,
        )
        .unwrap();
        assert_eq!(
            on.metrics.listen_addr(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            Config::parse(&on.to_redacted_toml(), "t", Mode::Sim).unwrap(),
            on
        );
    }

    #[test]
    fn check_config_warns_about_metrics_beyond_loopback_only() {
        let lan = Config::parse(
            &format!("{PRODUCT}[metrics]\nlisten = \"0.0.0.0:9464\"\n"),
            "t",
            Mode::Sim,
        )
        .unwrap();
        assert!(
            lan.warnings()
                .iter()
                .any(|w| w.contains("metrics.listen 0.0.0.0:9464")),
            "{:?}",
            lan.warnings()
        );
        let local = Config::parse(
            &format!("{PRODUCT}[metrics]\nlisten = \"127.0.0.1:9464\"\n"),
            "t",
            Mode::Sim,
        )
        .unwrap();
        assert!(local.warnings().iter().all(|w| !w.contains("metrics")));
    }

    #[test]
    fn a_bad_metrics_address_is_refused_with_its_line() {
        let e = Config::parse(
            &format!("{PRODUCT}\n[metrics]\nlisten = \"9464\"\n"),
            "t",
            Mode::Sim,
        )
        .unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("metrics.listen", 7));
        let e =
            Config::parse(&format!("{PRODUCT}[metrics]\nport = 1\n"), "t", Mode::Sim).unwrap_err();
        assert!(e.message.contains("port"), "{e}");
    }
}
