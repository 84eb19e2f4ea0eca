//! Fakes beside the relay boundary, for the unit tests here and the scenarios in `tests/`:
//! [`FakeRelay`], an in-memory NIP-01 relay (REQ filters on kinds, authors, `#p`, `#e` and
//! `since`; ephemeral kinds forwarded, the replaceable info event stored; every published
//! event verified), which tests can take down, cut, or make say anything; and
//! [`FakeWallet`], a NIP-47 wallet service written from the spec that speaks NIP-44 or
//! NIP-04, sends notifications if asked, holds invoices if asked ([`hold`]), and can be
//! told to stay silent. The wallet talks to any [`Connector`], so it also runs against a
//! real relay.

mod hold;
mod relay;

pub use hold::HoldStatus;
pub use relay::FakeRelay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use url::Url;

use super::link::{Connector, Frame};
use crate::nostr::nip04::{self, SharedKey};
use crate::nostr::nip44::{self, ConversationKey};
use crate::nostr::nwc::{
    KIND_INFO, KIND_NOTIFICATION_NIP04, KIND_NOTIFICATION_NIP44, KIND_REQUEST, KIND_RESPONSE,
};
use crate::nostr::relay::{event_message, parse_relay_message, req_message, Filter, RelayMessage};
use crate::nostr::{Event, Keys, PublicKey, UnsignedEvent};
use crate::secret::Secret;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    crate::clock::unix_of(SystemTime::now())
}

// ---------------------------------------------------------------------------------------
// The wallet service

/// How the fake wallet behaves.
#[derive(Debug, Clone)]
pub struct WalletBehaviour {
    /// The info event's `encryption` tag; `None` leaves it out (a NIP-04 wallet).
    pub encryption: Option<String>,
    /// Lists and sends `payment_received` notifications.
    pub notifications: bool,
    /// Answers requests at all.
    pub answers: bool,
    /// Leaves `state` out of transactions, like LNbits' nwcprovider (then only
    /// `settled_at` tells a payment).
    pub omit_state: bool,
    /// Lists and answers the hold-invoice methods (and notifies `hold_invoice_accepted`).
    pub holds: bool,
    /// With `holds`: lists the hold methods but refuses them (`RESTRICTED`), as a wallet
    /// does that lists every method whatever the connection may use.
    pub holds_restricted: bool,
}

impl Default for WalletBehaviour {
    fn default() -> Self {
        WalletBehaviour {
            encryption: Some("nip44_v2 nip04".into()),
            notifications: true,
            answers: true,
            omit_state: false,
            holds: false,
            holds_restricted: false,
        }
    }
}

#[derive(Debug, Clone)]
struct FakeInvoice {
    bolt11: String,
    amount: u64,
    created_at: u64,
    expires_at: u64,
    /// The amount the wallet says was received, once paid.
    paid: Option<u64>,
    /// Expired unpaid and marked so (LNbits marks such an invoice failed when it next
    /// checks it, and anyone can make it check).
    failed: bool,
    /// A hold invoice's state (`None` for a plain invoice).
    hold: Option<HoldStatus>,
}

struct WalletState {
    keys: Keys,
    client: PublicKey,
    behaviour: WalletBehaviour,
    invoices: HashMap<String, FakeInvoice>,
    /// The payment hash of the invoice made last.
    latest: Option<String>,
    requests: u64,
    node_key: SecretKey,
}

/// A NIP-47 wallet service for one client key.
pub struct FakeWallet {
    state: Arc<Mutex<WalletState>>,
    relay: Url,
    client_secret: String,
    out: mpsc::Sender<Event>,
    task: JoinHandle<()>,
}

impl Drop for FakeWallet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeWallet {
    /// Starts the service on `relay` through `connector`.
    pub fn start(
        connector: Arc<dyn Connector>,
        relay: Url,
        behaviour: WalletBehaviour,
    ) -> FakeWallet {
        let keys = Keys::generate();
        let client_keys = Keys::generate();
        let client_secret = hex::encode(client_keys.secret_key().secret_bytes());
        let state = Arc::new(Mutex::new(WalletState {
            keys,
            client: client_keys.public_key(),
            behaviour,
            invoices: HashMap::new(),
            latest: None,
            requests: 0,
            node_key: SecretKey::from_slice(&[0x11; 32]).expect("a valid key"),
        }));
        let (out, rx) = mpsc::channel(256);
        let task = tokio::spawn(serve(state.clone(), connector, relay.clone(), rx));
        FakeWallet {
            state,
            relay,
            client_secret,
            out,
            task,
        }
    }

    /// The connection URI a user would paste.
    pub fn uri(&self) -> Secret {
        self.uri_with_secret(&self.client_secret)
    }

    /// A URI with another secret (a connection the wallet does not know).
    pub fn uri_with_secret(&self, secret: &str) -> Secret {
        Secret::new(format!(
            "nostr+walletconnect://{}?relay={}&secret={secret}",
            self.pubkey(),
            url::form_urlencoded::byte_serialize(self.relay.as_str().as_bytes())
                .collect::<String>()
        ))
    }

    pub fn pubkey(&self) -> PublicKey {
        lock(&self.state).keys.public_key()
    }

    /// The wallet's keys (for tests that build events only the wallet could sign).
    pub fn keys(&self) -> Keys {
        lock(&self.state).keys.clone()
    }

    /// The payment hash and amount (msat) of the invoice made last, and whether it is paid.
    pub fn latest(&self) -> Option<(String, u64, bool)> {
        let s = lock(&self.state);
        let hash = s.latest.clone()?;
        let inv = s.invoices.get(&hash)?;
        Some((hash, inv.amount, inv.paid.is_some()))
    }

    pub fn requests(&self) -> u64 {
        lock(&self.state).requests
    }

    pub fn set_answers(&self, answers: bool) {
        lock(&self.state).behaviour.answers = answers;
    }

    /// Pays the invoice `hash` in full (notifying if the wallet notifies).
    pub async fn pay(&self, hash: &str) -> bool {
        let amount = lock(&self.state).invoices.get(hash).map(|i| i.amount);
        match amount {
            Some(a) => self.pay_with(hash, a).await,
            None => false,
        }
    }

    /// Records `received` msat as paid to `hash` (less than asked: an underpayment the
    /// wallet reports as settled). A hold invoice is then held (accepted), not settled.
    pub async fn pay_with(&self, hash: &str, received: u64) -> bool {
        let (notify, held) = {
            let mut s = lock(&self.state);
            let Some(inv) = s.invoices.get_mut(hash) else {
                return false;
            };
            if matches!(inv.hold, Some(HoldStatus::Canceled | HoldStatus::Settled)) {
                return false;
            }
            inv.paid = Some(received);
            let held = inv.hold.is_some();
            if held {
                inv.hold = Some(HoldStatus::Accepted);
            }
            (s.behaviour.notifications, held)
        };
        if notify {
            let kind = if held {
                "hold_invoice_accepted"
            } else {
                "payment_received"
            };
            self.notify_as(hash, kind).await;
        }
        true
    }

    /// Marks the unpaid invoice `hash` expired, as LNbits does once its expiry has passed.
    pub fn expire(&self, hash: &str) -> bool {
        let mut s = lock(&self.state);
        match s.invoices.get_mut(hash) {
            Some(inv) if inv.paid.is_none() => {
                inv.failed = true;
                true
            }
            _ => false,
        }
    }

    /// Sends a `payment_received` notification for `hash`, paid or not.
    pub async fn notify(&self, hash: &str) {
        self.notify_as(hash, "payment_received").await;
    }

    /// Sends a notification of type `kind` for `hash`, paid or not.
    pub async fn notify_as(&self, hash: &str, kind: &str) {
        let event = {
            let s = lock(&self.state);
            let tx = s.invoices.get(hash).map(|i| tx_json(hash, i, false));
            let body = json!({"notification_type": kind,
                              "notification": tx.unwrap_or(json!({"payment_hash": hash}))});
            let nip44 = s.uses_nip44();
            let kind = if nip44 {
                KIND_NOTIFICATION_NIP44
            } else {
                KIND_NOTIFICATION_NIP04
            };
            s.sign(
                kind,
                vec![vec!["p".into(), s.client.to_hex()]],
                s.encrypt(nip44, &body.to_string()),
            )
        };
        let _ = self.out.send(event).await;
    }
}

impl WalletState {
    fn uses_nip44(&self) -> bool {
        self.behaviour
            .encryption
            .as_deref()
            .is_some_and(|e| e.split_whitespace().any(|w| w == "nip44_v2"))
    }

    fn encrypt(&self, nip44: bool, text: &str) -> String {
        if nip44 {
            nip44::encrypt(&ConversationKey::new(&self.keys, &self.client), text).expect("encrypts")
        } else {
            nip04::encrypt(&SharedKey::new(&self.keys, &self.client), text).expect("encrypts")
        }
    }

    fn sign(&self, kind: u16, tags: Vec<Vec<String>>, content: String) -> Event {
        UnsignedEvent {
            created_at: unix_now(),
            kind,
            tags,
            content,
        }
        .sign(&self.keys)
        .expect("signs")
    }

    fn info_event(&self) -> Event {
        let mut tags = Vec::new();
        if let Some(e) = &self.behaviour.encryption {
            tags.push(vec!["encryption".into(), e.clone()]);
        }
        let mut methods = "make_invoice lookup_invoice get_info".to_string();
        if self.behaviour.holds {
            methods += " make_hold_invoice settle_hold_invoice cancel_hold_invoice";
        }
        if self.behaviour.notifications {
            let kinds = if self.behaviour.holds {
                "payment_received hold_invoice_accepted"
            } else {
                "payment_received"
            };
            tags.push(vec!["notifications".into(), kinds.into()]);
            methods += " notifications";
        }
        self.sign(KIND_INFO, tags, methods)
    }

    /// The reply to a verified request event, if it is one this wallet answers.
    fn answer(&mut self, request: &Event) -> Option<Event> {
        if request.kind() != KIND_REQUEST || !self.behaviour.answers {
            return None;
        }
        self.requests += 1;
        let nip44 = request.tag_values("encryption").any(|e| e == "nip44_v2");
        let tags = vec![
            vec!["p".into(), request.pubkey().to_hex()],
            vec!["e".into(), request.id().to_hex()],
        ];
        // Any key can be decrypted for (ECDH); only then is the connection looked up.
        let from = request.pubkey();
        let plain = if nip44 {
            nip44::decrypt(&ConversationKey::new(&self.keys, &from), request.content()).ok()?
        } else {
            nip04::decrypt(&SharedKey::new(&self.keys, &from), request.content()).ok()?
        };
        let v: Value = serde_json::from_str(&plain).ok()?;
        let method = v
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        let body = match method.as_str() {
            _ if from != self.client => json!({"result_type": method,
                "error": {"code": "UNAUTHORIZED", "message": "no such connection"}}),
            "make_invoice" => self.make_invoice(&params),
            "lookup_invoice" => {
                let hash = params
                    .get("payment_hash")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match self.invoices.get(hash) {
                    Some(inv) => json!({"result_type": "lookup_invoice",
                                        "result": tx_json(hash, inv, self.behaviour.omit_state)}),
                    None => json!({"result_type": "lookup_invoice",
                                   "error": {"code": "NOT_FOUND", "message": "no such invoice"}}),
                }
            }
            "make_hold_invoice" | "settle_hold_invoice" | "cancel_hold_invoice"
                if self.behaviour.holds =>
            {
                if self.behaviour.holds_restricted {
                    json!({"result_type": method,
                           "error": {"code": "RESTRICTED", "message": "not for this connection"}})
                } else {
                    self.hold_call(&method, &params)
                }
            }
            other => json!({"result_type": other,
                            "error": {"code": "NOT_IMPLEMENTED", "message": "not here"}}),
        };
        let content = if nip44 {
            nip44::encrypt(&ConversationKey::new(&self.keys, &from), &body.to_string()).ok()?
        } else {
            nip04::encrypt(&SharedKey::new(&self.keys, &from), &body.to_string()).ok()?
        };
        Some(self.sign(KIND_RESPONSE, tags, content))
    }

    fn make_invoice(&mut self, params: &Value) -> Value {
        let amount = params.get("amount").and_then(Value::as_u64).unwrap_or(0);
        let expiry = params.get("expiry").and_then(Value::as_u64).unwrap_or(3600);
        let description = params
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("");
        let preimage: [u8; 32] = rand::random();
        let hash = sha256::Hash::hash(&preimage);
        match self.new_invoice(amount, expiry, description, hash, None) {
            Some(result) => json!({"result_type": "make_invoice", "result": result}),
            None => json!({"result_type": "make_invoice",
                           "error": {"code": "OTHER", "message": "cannot build"}}),
        }
    }

    /// Signs a BOLT11 for `hash`, keeps the invoice, and returns its transaction object.
    fn new_invoice(
        &mut self,
        amount: u64,
        expiry: u64,
        description: &str,
        hash: sha256::Hash,
        hold: Option<HoldStatus>,
    ) -> Option<Value> {
        let now = unix_now();
        let bolt11 = sign_bolt11(&self.node_key, hash, amount, now, expiry, description)?;
        let inv = FakeInvoice {
            bolt11,
            amount,
            created_at: now,
            expires_at: now + expiry,
            paid: None,
            failed: false,
            hold,
        };
        let hash = hash.to_string();
        let result = tx_json(&hash, &inv, self.behaviour.omit_state);
        self.latest = Some(hash.clone());
        self.invoices.insert(hash, inv);
        Some(result)
    }
}

/// A regtest BOLT11 for `hash`, signed by `node_key`, made at `created` (unix seconds).
pub fn sign_bolt11(
    node_key: &SecretKey,
    hash: sha256::Hash,
    amount_msat: u64,
    created: u64,
    expiry: u64,
    description: &str,
) -> Option<String> {
    InvoiceBuilder::new(Currency::Regtest)
        .description(description.to_string())
        .payment_hash(hash)
        .payment_secret(PaymentSecret(rand::random()))
        .duration_since_epoch(Duration::from_secs(created))
        .min_final_cltv_expiry_delta(144)
        .amount_milli_satoshis(amount_msat)
        .expiry_time(Duration::from_secs(expiry))
        .build_signed(|m| Secp256k1::new().sign_ecdsa_recoverable(m, node_key))
        .ok()
        .map(|b| b.to_string())
}

fn tx_json(hash: &str, inv: &FakeInvoice, omit_state: bool) -> Value {
    // Unpaid past its expiry: failed, as LNbits marks it when it next checks.
    let failed = inv.failed || (inv.paid.is_none() && unix_now() >= inv.expires_at);
    let mut v = json!({
        "type": "incoming",
        "invoice": inv.bolt11,
        "description": "",
        "payment_hash": hash,
        "amount": inv.paid.unwrap_or(inv.amount),
        "fees_paid": 0,
        "created_at": inv.created_at,
        "expires_at": inv.expires_at,
        "settled_at": inv.paid.map(|_| inv.created_at + 1),
    });
    if omit_state {
        // As LNbits' nwcprovider: `settled_at` is the payment's *creation* time whenever
        // LNbits no longer calls it pending, and LNbits marks an expired invoice failed.
        v["settled_at"] = json!((inv.paid.is_some() || failed).then_some(inv.created_at));
    }
    if let Some(h) = inv.hold {
        v["settled_at"] = json!((h == HoldStatus::Settled).then_some(inv.created_at + 1));
        v["state"] = json!(h.nip47_state());
    } else if !omit_state {
        v["state"] = json!(if inv.paid.is_some() {
            "settled"
        } else if failed {
            "expired"
        } else {
            "pending"
        });
    }
    v
}

async fn serve(
    state: Arc<Mutex<WalletState>>,
    connector: Arc<dyn Connector>,
    relay: Url,
    mut out: mpsc::Receiver<Event>,
) {
    loop {
        if let Ok(mut link) = connector.connect(&relay).await {
            let (sub, info) = {
                let s = lock(&state);
                let filter = Filter {
                    kinds: vec![KIND_REQUEST],
                    p_tags: vec![s.keys.public_key()],
                    since: Some(unix_now().saturating_sub(60)),
                    ..Filter::default()
                };
                (
                    req_message("wallet", &[filter]),
                    event_message(&s.info_event()),
                )
            };
            let mut ok = link.send(sub).await.is_ok() && link.send(info).await.is_ok();
            while ok {
                tokio::select! {
                    e = out.recv() => match e {
                        Some(e) => ok = link.send(event_message(&e)).await.is_ok(),
                        None => return,
                    },
                    m = link.recv() => {
                        let Some(frame) = m else { break };
                        let Frame::Text(text) = frame else { continue };
                        if let Ok(RelayMessage::Event { event, .. }) = parse_relay_message(&text) {
                            let reply = lock(&state).answer(&event);
                            if let Some(r) = reply {
                                ok = link.send(event_message(&r)).await.is_ok();
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
