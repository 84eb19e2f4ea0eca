//! LNbits' NWC Service Provider extension (nwcprovider 1.1.2, vendored outside this
//! repository at `../shared/vendor/lnbits-nwcprovider`, or `LNBITS_NWCPROVIDER`) on a real
//! LNbits, speaking NIP-47 over a real relay, for tests/nwc_lnbits.rs: registered through
//! `LNBITS_EXTENSIONS_PATH`, enabled for the super user, pointed at the test's relay, and a
//! receive-only connection (`invoice` and `lookup` permissions) made for the machine's
//! wallet, as an operator does in the extension's page. A second wallet, funded by the
//! super user, pays the machine's invoices (FakeWallet pays only internal invoices).
//!
//! The extension is another project's code, kept outside this repository. Where its folder
//! is absent, [`available`] says so loudly and the test returns without a verdict; under CI
//! (`CI=true`) or with `LNVEND_REQUIRE_NWCPROVIDER=1` that is a failure instead.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::lnbits_server::{call, free_port, Lnbits};

fn extension_dir() -> PathBuf {
    std::env::var_os("LNBITS_NWCPROVIDER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vendor/lnbits-nwcprovider")
        })
}

/// Whether the extension is at hand; when it is not, says so on stderr (the test then
/// proves nothing), or fails the test under CI or `LNVEND_REQUIRE_NWCPROVIDER=1`.
pub fn available() -> bool {
    let dir = extension_dir();
    let there = dir.join("config.json").exists() && dir.join("nwcp.py").exists();
    if !there {
        let required = std::env::var("LNVEND_REQUIRE_NWCPROVIDER").is_ok_and(|v| v == "1")
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !required,
            "no LNbits nwcprovider extension at {} (set LNBITS_NWCPROVIDER)",
            dir.display()
        );
        eprintln!(
            "NOT RUN: no LNbits nwcprovider extension at {} (set LNBITS_NWCPROVIDER to its \
             folder); this NWC test checked nothing",
            dir.display()
        );
    }
    there
}

/// An LNbits whose nwcprovider serves the machine's wallet over `relay`.
pub struct NwcLnbits {
    pub lnbits: Lnbits,
    /// The connection URI the operator pastes into the machine's file (holds a secret).
    pub uri: String,
    /// The machine's wallet (its invoice key, to read the balance).
    pub machine_inkey: String,
    /// The customer's funded wallet.
    pub payer_adminkey: String,
    /// The wallet service's public key (hex).
    pub service_pubkey: String,
}

impl NwcLnbits {
    /// Starts LNbits with the extension in `data`, its service on `relay` (a ws:// URL), and
    /// waits until the service has announced itself there.
    pub async fn start(venv: &Path, data: &Path, relay: &str) -> NwcLnbits {
        // A copy keeps the vendored folder clean of LNbits' caches.
        let ext_root = data.join("ext");
        copy_dir(&extension_dir(), &ext_root.join("extensions/nwcprovider"));
        let data_dir = data.join("lnbits");
        std::fs::create_dir_all(&data_dir).unwrap();
        let lnbits =
            Lnbits::start_with_extensions(venv, &data_dir, free_port(), Some(&ext_root)).await;
        let http = reqwest::Client::new();
        let url = lnbits.url();
        let admin = call(
            http.put(format!("{url}/api/v1/auth/first_install")).json(
                &json!({"username": "operator", "password": "secret1234", "password_repeat": "secret1234"}),
            ),
            "first install",
        )
        .await;
        let token = admin["access_token"]
            .as_str()
            .expect("access_token")
            .to_string();
        let enabled = call(
            http.put(format!("{url}/api/v1/extension/nwcprovider/enable"))
                .bearer_auth(&token),
            "enable nwcprovider (is it registered? see lnbits.log)",
        )
        .await;
        assert_eq!(enabled["success"], true, "{enabled}");
        call(
            http.post(format!("{url}/nwcprovider/api/v1/config"))
                .bearer_auth(&token)
                .json(&json!({"relay": relay})),
            "point nwcprovider at the relay",
        )
        .await;
        // The service reads its relay only when its task starts.
        for step in ["deactivate", "activate"] {
            call(
                http.put(format!("{url}/api/v1/extension/nwcprovider/{step}"))
                    .bearer_auth(&token),
                step,
            )
            .await;
        }
        // The machine's wallet is the super user's, for whom the extension is enabled.
        let wallets = call(
            http.get(format!("{url}/api/v1/wallets"))
                .bearer_auth(&token),
            "the super user's wallets",
        )
        .await;
        let machine = wallets[0].clone();
        let payer = call(
            http.post(format!("{url}/api/v1/account"))
                .json(&json!({"name": "customer"})),
            "payer wallet",
        )
        .await;
        for w in [&machine, &payer] {
            // A new wallet's currency (USD) makes every invoice look up a rate: offline,
            // a delay and an error line.
            call(
                http.patch(format!("{url}/api/v1/wallet"))
                    .header("X-Api-Key", w["adminkey"].as_str().expect("adminkey"))
                    .json(&json!({"currency": ""})),
                "wallet currency",
            )
            .await;
        }
        let funded = call(
            http.put(format!("{url}/users/api/v1/balance"))
                .bearer_auth(&token)
                .json(&json!({"id": payer["id"], "amount": 100_000})),
            "fund payer",
        )
        .await;
        assert_eq!(funded["success"], true, "{funded}");
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let client = lnvend::nostr::Keys::from_secret(&lnvend::secret::Secret::new(secret.clone()))
            .unwrap()
            .public_key()
            .to_hex();
        call(
            http.put(format!("{url}/nwcprovider/api/v1/nwc/{client}"))
                .header("X-Api-Key", machine["adminkey"].as_str().unwrap())
                .json(&json!({"permissions": ["invoice", "lookup"],
                    "description": "vending machine", "expires_at": 0, "budgets": []})),
            "a receive-only connection",
        )
        .await;
        let uri = call(
            http.get(format!("{url}/nwcprovider/api/v1/pairing/{secret}")),
            "pairing URI",
        )
        .await
        .as_str()
        .expect("the pairing URI")
        .to_string();
        let service_pubkey = uri
            .strip_prefix("nostr+walletconnect://")
            .and_then(|r| r.split('?').next())
            .expect("a NWC URI")
            .to_string();
        let me = NwcLnbits {
            lnbits,
            uri,
            machine_inkey: machine["inkey"].as_str().expect("inkey").to_string(),
            payer_adminkey: payer["adminkey"].as_str().expect("adminkey").to_string(),
            service_pubkey,
        };
        me.wait_for_info(relay).await;
        me
    }

    /// Waits until the service's info event is on the relay: a request sent before the
    /// service subscribed would be lost.
    pub async fn wait_for_info(&self, relay: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let filter = json!({"kinds": [13194], "authors": [self.service_pubkey]});
        loop {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(relay).await {
                let req = json!(["REQ", "info", filter]).to_string();
                if ws.send(req.into()).await.is_ok() {
                    let seen = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(msg)) = ws.next().await {
                            let v: Value = serde_json::from_str(msg.to_text().unwrap_or(""))
                                .unwrap_or_default();
                            match v[0].as_str() {
                                Some("EVENT") => return true,
                                Some("EOSE") => return false,
                                _ => {}
                            }
                        }
                        false
                    })
                    .await;
                    if seen == Ok(true) {
                        // Its subscription to requests follows the info event at once.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        return;
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nwcprovider published no info event on {relay} within 60 s; see lnbits.log"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The customer's wallet pays `bolt11`.
    pub async fn pay(&self, bolt11: &str) {
        let paid = call(
            reqwest::Client::new()
                .post(format!("{}/api/v1/payments", self.lnbits.url()))
                .header("X-Api-Key", &self.payer_adminkey)
                .json(&json!({"out": true, "bolt11": bolt11})),
            "pay",
        )
        .await;
        assert_eq!(paid["status"], "success", "{paid}");
    }

    /// The machine wallet's balance in sats, as the operator sees it in LNbits.
    pub async fn machine_sat(&self) -> i64 {
        let w = call(
            reqwest::Client::new()
                .get(format!("{}/api/v1/wallet", self.lnbits.url()))
                .header("X-Api-Key", &self.machine_inkey),
            "wallet",
        )
        .await;
        w["balance"].as_i64().expect("balance") / 1000
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
