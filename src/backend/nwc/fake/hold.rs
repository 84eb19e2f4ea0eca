//! The fake wallet's hold invoices (NIP-47 `make_hold_invoice`, `settle_hold_invoice`,
//! `cancel_hold_invoice`, and the `hold_invoice_accepted` notification that
//! [`FakeWallet::pay`] sends for one): an invoice for the client's payment hash, held once
//! paid, taken only with the preimage that hashes to it, given back on cancel. Its
//! `lookup_invoice` says `pending`, `accepted`, `settled`, or `failed` once cancelled.

use bitcoin::hashes::{sha256, Hash};
use serde_json::{json, Value};

use super::{lock, FakeWallet, WalletState};

/// Where a hold invoice of the fake wallet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    /// Not paid yet.
    Open,
    /// Paid and held: the payer's money is locked in, not taken.
    Accepted,
    /// Taken with the preimage.
    Settled,
    /// Given back (or refused for good before payment).
    Canceled,
}

impl HoldStatus {
    /// The `state` a `lookup_invoice` reply gives.
    pub(super) fn nip47_state(self) -> &'static str {
        match self {
            HoldStatus::Open => "pending",
            HoldStatus::Accepted => "accepted",
            HoldStatus::Settled => "settled",
            HoldStatus::Canceled => "failed",
        }
    }
}

impl FakeWallet {
    /// The hold invoice `hash`'s state (`None`: no such hold invoice).
    pub fn hold_status(&self, hash: &str) -> Option<HoldStatus> {
        lock(&self.state).invoices.get(hash).and_then(|i| i.hold)
    }
}

fn error(method: &str, code: &str, message: &str) -> Value {
    json!({"result_type": method, "error": {"code": code, "message": message}})
}

impl WalletState {
    /// The reply to one of the three hold methods.
    pub(super) fn hold_call(&mut self, method: &str, params: &Value) -> Value {
        let text = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("");
        match method {
            "make_hold_invoice" => {
                let Ok(hash) = text("payment_hash").parse::<sha256::Hash>() else {
                    return error(method, "OTHER", "payment_hash is not 32 bytes of hex");
                };
                if self.invoices.contains_key(&hash.to_string()) {
                    return error(method, "OTHER", "an invoice with this hash exists");
                }
                let amount = params.get("amount").and_then(Value::as_u64).unwrap_or(0);
                let expiry = params.get("expiry").and_then(Value::as_u64).unwrap_or(3600);
                match self.new_invoice(
                    amount,
                    expiry,
                    text("description"),
                    hash,
                    Some(HoldStatus::Open),
                ) {
                    Some(result) => json!({"result_type": method, "result": result}),
                    None => error(method, "OTHER", "cannot build"),
                }
            }
            "settle_hold_invoice" => {
                let Ok(preimage) = hex::decode(text("preimage")) else {
                    return error(method, "OTHER", "preimage is not hex");
                };
                let hash = sha256::Hash::hash(&preimage).to_string();
                match self.invoices.get_mut(&hash) {
                    Some(inv) => match inv.hold {
                        Some(HoldStatus::Accepted | HoldStatus::Settled) => {
                            inv.hold = Some(HoldStatus::Settled);
                            json!({"result_type": method, "result": {}})
                        }
                        Some(HoldStatus::Open | HoldStatus::Canceled) => {
                            error(method, "OTHER", "the invoice is not held")
                        }
                        None => error(method, "NOT_FOUND", "not a hold invoice"),
                    },
                    None => error(method, "NOT_FOUND", "no such invoice"),
                }
            }
            "cancel_hold_invoice" => match self.invoices.get_mut(text("payment_hash")) {
                Some(inv) => match inv.hold {
                    Some(HoldStatus::Open | HoldStatus::Accepted | HoldStatus::Canceled) => {
                        inv.hold = Some(HoldStatus::Canceled);
                        inv.paid = None;
                        json!({"result_type": method, "result": {}})
                    }
                    Some(HoldStatus::Settled) => error(method, "OTHER", "already settled"),
                    None => error(method, "NOT_FOUND", "not a hold invoice"),
                },
                None => error(method, "NOT_FOUND", "no such invoice"),
            },
            other => error(other, "NOT_IMPLEMENTED", "not here"),
        }
    }
}
