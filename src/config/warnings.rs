//! What `lnvend check-config` warns of: a config that loads but will probably not work as
//! meant (a socket the service cannot see, plain http to another host, fiat without bounds,
//! holds that do not apply to pulse or MDB sales).

use super::{backend, BackendConfig, Config, HoldMode};

impl Config {
    /// Things that load but will probably not work as meant, for `check-config` to print.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let BackendConfig::Cln(c) = &self.backend {
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
        out.extend(self.nfc.warnings());
        for (i, p) in self.products.iter().enumerate() {
            if p.price_fiat.is_some() && p.min_sat.is_none() && p.max_sat.is_none() {
                out.push(format!(
                    "product[{i}] ({}) is priced in fiat without min_sat/max_sat: a broken \
                     exchange rate at the backend would sell it at any price",
                    p.name.trim()
                ));
            }
        }
        out.extend(self.metrics.warning());
        let sells_otherwise =
            self.mdb.is_some() || self.products.iter().any(|p| p.pulse_pin.is_some());
        if self.backend.hold() != HoldMode::Never && sells_otherwise {
            out.push(
                "hold invoices are used only for pump products: a pulse or MDB sale gets a \
                 plain invoice (a pulse or a vend cannot be taken back), and its failure is \
                 an owed credit"
                    .into(),
            );
        }
        out
    }

    /// A warning for check-config when the backend is reached over plain http to another
    /// host (allowed only by `allow_insecure_http = true`); `None` when the link is https or
    /// stays on this machine.
    pub fn insecure_http_warning(&self) -> Option<String> {
        backend::insecure_http_warning(&self.backend)
    }
}
