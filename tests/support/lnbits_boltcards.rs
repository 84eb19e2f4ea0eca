//! LNbits' Bolt Cards extension (v1.1.0, vendored outside this repository at
//! `../shared/vendor/lnbits-boltcards`, or `LNBITS_BOLTCARDS`) on a real LNbits for the card
//! tests: registered through `LNBITS_EXTENSIONS_PATH`, enabled for the super user, and cards
//! created with known keys in the super user's funded wallet. That wallet pays the machine's
//! invoices from the same LNbits, since FakeWallet pays only internal invoices.
//!
//! The extension is not in this repository (it is another project's code). Where its
//! folder is absent, [`available`] says so loudly and the card tests return without a
//! verdict; `LNVEND_REQUIRE_BOLTCARDS=1` turns that into a failure. An extension that is
//! there but does not answer always fails the test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::lnbits_server::{call, free_port, Lnbits};

fn extension_dir() -> PathBuf {
    std::env::var_os("LNBITS_BOLTCARDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vendor/lnbits-boltcards")
        })
}

/// Whether the extension is at hand. When it is not, says so on stderr (the test then
/// proves nothing and must not pass silently as if it had), or fails the test when
/// `LNVEND_REQUIRE_BOLTCARDS=1`.
pub fn available() -> bool {
    let dir = extension_dir();
    let there = dir.join("manifest.json").exists() || dir.join("config.json").exists();
    if !there {
        let required = std::env::var("LNVEND_REQUIRE_BOLTCARDS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "no Bolt Cards extension at {} (set LNBITS_BOLTCARDS)",
            dir.display()
        );
        eprintln!(
            "NOT RUN: no LNbits Bolt Cards extension at {} (set LNBITS_BOLTCARDS to its \
             folder); this card test checked nothing",
            dir.display()
        );
    }
    there
}

/// The vendored extension's folder.
pub fn extension_source() -> PathBuf {
    let dir = extension_dir();
    assert!(
        dir.join("manifest.json").exists() || dir.join("config.json").exists(),
        "no Bolt Cards extension at {} (set LNBITS_BOLTCARDS to its folder)",
        dir.display()
    );
    dir
}

/// An LNbits with the extension enabled, the machine's wallet and a funded card wallet.
pub struct BoltLnbits {
    pub lnbits: Lnbits,
    /// The machine's wallet: its invoice key goes into the machine's config.
    pub machine_inkey: String,
    /// The wallet the cards spend from.
    pub card_wallet_adminkey: String,
}

/// A card as the extension holds it.
pub struct IssuedCard {
    pub id: String,
    /// The tap URL before `?p=`, as the card is programmed.
    pub base_url: String,
}

/// The keys and limits of a card to issue.
pub struct CardSpec<'a> {
    pub uid: &'a str,
    pub k1: &'a str,
    pub k2: &'a str,
    pub tx_limit_sat: u64,
    pub daily_limit_sat: u64,
}

impl BoltLnbits {
    /// Starts LNbits with the extension in `data`, and funds the card wallet with `fund_sat`.
    pub async fn start(venv: &Path, data: &Path, fund_sat: u64) -> BoltLnbits {
        // LNbits registers every folder under `<path>/extensions/` at start and runs its
        // migrations; a copy keeps the vendored folder clean of LNbits' caches.
        let ext_root = data.join("ext");
        copy_dir(&extension_source(), &ext_root.join("extensions/boltcards"));
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
            http.put(format!("{url}/api/v1/extension/boltcards/enable"))
                .bearer_auth(&token),
            "enable the Bolt Cards extension (is it registered? see lnbits.log)",
        )
        .await;
        assert_eq!(enabled["success"], true, "{enabled}");
        let wallets = call(
            http.get(format!("{url}/api/v1/wallets"))
                .bearer_auth(&token),
            "the super user's wallets",
        )
        .await;
        let card_wallet = &wallets[0];
        let funded = call(
            http.put(format!("{url}/users/api/v1/balance"))
                .bearer_auth(&token)
                .json(&json!({"id": card_wallet["id"], "amount": fund_sat})),
            "fund the card wallet",
        )
        .await;
        assert_eq!(funded["success"], true, "{funded}");
        let machine = call(
            http.post(format!("{url}/api/v1/account"))
                .json(&json!({"name": "machine"})),
            "machine wallet",
        )
        .await;
        BoltLnbits {
            machine_inkey: machine["inkey"].as_str().expect("inkey").to_string(),
            card_wallet_adminkey: card_wallet["adminkey"]
                .as_str()
                .expect("adminkey")
                .to_string(),
            lnbits,
        }
    }

    /// The machine's `[backend]`: the machine's wallet in this LNbits.
    pub fn backend_toml(&self) -> String {
        format!(
            "\n[backend]\nkind = \"lnbits\"\nurl = \"{}\"\ninvoice_key = \"{}\"\nrequest_timeout_ms = 5000\nnetwork = \"bitcoin\"\n",
            self.lnbits.url(),
            self.machine_inkey
        )
    }

    /// Issues a card in the card wallet, as the operator does in the extension's page.
    pub async fn issue(&self, spec: &CardSpec<'_>) -> IssuedCard {
        let card = call(
            reqwest::Client::new()
                .post(format!("{}/boltcards/api/v1/cards", self.lnbits.url()))
                .header("X-Api-Key", &self.card_wallet_adminkey)
                .json(&json!({
                    "card_name": format!("test {}", spec.uid),
                    "uid": spec.uid,
                    "k0": "00000000000000000000000000000000",
                    "k1": spec.k1,
                    "k2": spec.k2,
                    "counter": 0,
                    "tx_limit": spec.tx_limit_sat,
                    "daily_limit": spec.daily_limit_sat,
                })),
            "create card",
        )
        .await;
        let external = card["external_id"].as_str().expect("external_id");
        IssuedCard {
            id: card["id"].as_str().expect("id").to_string(),
            base_url: format!(
                "lnurlw://127.0.0.1:{}/boltcards/api/v1/scan/{external}",
                self.lnbits.port
            ),
        }
    }

    /// Disables (or enables) a card, as the operator's switch in the extension does.
    pub async fn set_enabled(&self, card: &IssuedCard, enable: bool) {
        let c: Value = call(
            reqwest::Client::new()
                .get(format!(
                    "{}/boltcards/api/v1/cards/enable/{}/{enable}",
                    self.lnbits.url(),
                    card.id
                ))
                .header("X-Api-Key", &self.card_wallet_adminkey),
            "enable/disable card",
        )
        .await;
        assert_eq!(c["enable"], enable, "{c}");
    }

    /// The taps the extension accepted (one withdrawRequest each), with whether each was
    /// spent by a callback: (taps, spent).
    pub async fn hits(&self) -> (usize, usize) {
        let hits = call(
            reqwest::Client::new()
                .get(format!("{}/boltcards/api/v1/hits", self.lnbits.url()))
                .header("X-Api-Key", &self.card_wallet_adminkey),
            "hits",
        )
        .await;
        let hits = hits.as_array().expect("a list of hits");
        let spent = hits.iter().filter(|h| h["spent"] == true).count();
        (hits.len(), spent)
    }

    /// The card wallet's balance in sats.
    pub async fn card_wallet_sat(&self) -> i64 {
        self.balance_sat(&self.card_wallet_adminkey).await
    }

    /// The machine wallet's balance in sats.
    pub async fn machine_sat(&self) -> i64 {
        self.balance_sat(&self.machine_inkey).await
    }

    async fn balance_sat(&self, key: &str) -> i64 {
        let w = call(
            reqwest::Client::new()
                .get(format!("{}/api/v1/wallet", self.lnbits.url()))
                .header("X-Api-Key", key),
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
