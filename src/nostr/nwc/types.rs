//! NIP-47's typed vocabulary for the methods lnvend uses: requests with their params,
//! replies with their results, and the wallet's error codes. Amounts are [`Msat`]; a preimage
//! is a [`Preimage`], which never prints.

use std::fmt;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::money::Msat;
use crate::nostr::event::lower_hex;

/// The methods this client calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    MakeInvoice,
    LookupInvoice,
    MakeHoldInvoice,
    SettleHoldInvoice,
    CancelHoldInvoice,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::MakeInvoice => "make_invoice",
            Method::LookupInvoice => "lookup_invoice",
            Method::MakeHoldInvoice => "make_hold_invoice",
            Method::SettleHoldInvoice => "settle_hold_invoice",
            Method::CancelHoldInvoice => "cancel_hold_invoice",
        }
    }
}

/// A payment hash (not secret).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentHash(pub [u8; 32]);

impl PaymentHash {
    pub fn from_hex(s: &str) -> Option<PaymentHash> {
        lower_hex::<32>(&s.to_ascii_lowercase()).map(PaymentHash)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({})", self.to_hex())
    }
}

/// A payment preimage: whoever holds it can claim the payment. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Preimage([u8; 32]);

impl Preimage {
    pub fn new(bytes: [u8; 32]) -> Preimage {
        Preimage(bytes)
    }
    pub fn from_hex(s: &str) -> Option<Preimage> {
        lower_hex::<32>(&s.to_ascii_lowercase()).map(Preimage)
    }
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(Sha256::digest(self.0).into())
    }
    /// The hex that goes into an encrypted request. Never log it.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

/// A request, with its params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    MakeInvoice {
        amount: Msat,
        description: Option<String>,
        expiry_secs: Option<u32>,
    },
    LookupInvoice {
        payment_hash: PaymentHash,
    },
    /// A hold invoice for a hash whose preimage only we know.
    MakeHoldInvoice {
        amount: Msat,
        description: Option<String>,
        expiry_secs: Option<u32>,
        payment_hash: PaymentHash,
        min_cltv_expiry_delta: Option<u16>,
    },
    SettleHoldInvoice {
        preimage: Preimage,
    },
    CancelHoldInvoice {
        payment_hash: PaymentHash,
    },
}

impl Request {
    pub fn method(&self) -> Method {
        match self {
            Request::MakeInvoice { .. } => Method::MakeInvoice,
            Request::LookupInvoice { .. } => Method::LookupInvoice,
            Request::MakeHoldInvoice { .. } => Method::MakeHoldInvoice,
            Request::SettleHoldInvoice { .. } => Method::SettleHoldInvoice,
            Request::CancelHoldInvoice { .. } => Method::CancelHoldInvoice,
        }
    }

    /// The plaintext content, `{"method": …, "params": {…}}`.
    pub(crate) fn to_content(&self) -> String {
        let mut p = Map::new();
        let opt = |p: &mut Map<String, Value>, k: &str, v: Option<Value>| {
            if let Some(v) = v {
                p.insert(k.to_string(), v);
            }
        };
        match self {
            Request::MakeInvoice {
                amount,
                description,
                expiry_secs,
            } => {
                p.insert("amount".into(), json!(amount.as_msat()));
                opt(
                    &mut p,
                    "description",
                    description.as_ref().map(|d| json!(d)),
                );
                opt(&mut p, "expiry", expiry_secs.map(|e| json!(e)));
            }
            Request::LookupInvoice { payment_hash }
            | Request::CancelHoldInvoice { payment_hash } => {
                p.insert("payment_hash".into(), json!(payment_hash.to_hex()));
            }
            Request::MakeHoldInvoice {
                amount,
                description,
                expiry_secs,
                payment_hash,
                min_cltv_expiry_delta,
            } => {
                p.insert("amount".into(), json!(amount.as_msat()));
                opt(
                    &mut p,
                    "description",
                    description.as_ref().map(|d| json!(d)),
                );
                opt(&mut p, "expiry", expiry_secs.map(|e| json!(e)));
                p.insert("payment_hash".into(), json!(payment_hash.to_hex()));
                opt(
                    &mut p,
                    "min_cltv_expiry_delta",
                    min_cltv_expiry_delta.map(|d| json!(d)),
                );
            }
            Request::SettleHoldInvoice { preimage } => {
                p.insert("preimage".into(), json!(preimage.expose_hex()));
            }
        }
        json!({"method": self.method().as_str(), "params": p}).to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// The wallet's word on an invoice. Only `Settled` (or `Accepted`, for a hold invoice the
/// machine then settles) may lead to a pour, and only from a `lookup_invoice` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceState {
    Pending,
    Settled,
    Accepted,
    Expired,
    Failed,
    /// A state NIP-47 does not define: never treat it as paid.
    Unknown,
}

/// An invoice or payment, as make_invoice, make_hold_invoice and lookup_invoice return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub direction: Option<Direction>,
    /// `None` when the wallet did not say (make_invoice often does not).
    pub state: Option<InvoiceState>,
    pub invoice: Option<String>,
    pub payment_hash: PaymentHash,
    pub amount: Msat,
    pub fees_paid: Option<Msat>,
    pub created_at: Option<u64>,
    pub expires_at: Option<u64>,
    pub settled_at: Option<u64>,
    /// Kept only if it hashes to `payment_hash` (checked when parsed; else dropped).
    pub preimage: Option<Preimage>,
}

#[derive(Deserialize)]
struct RawTransaction {
    #[serde(rename = "type")]
    direction: Option<String>,
    state: Option<String>,
    invoice: Option<String>,
    payment_hash: String,
    amount: u64,
    fees_paid: Option<u64>,
    created_at: Option<u64>,
    expires_at: Option<u64>,
    settled_at: Option<u64>,
    preimage: Option<String>,
}

impl Transaction {
    pub(crate) fn from_value(v: Value) -> Result<Transaction, &'static str> {
        let raw: RawTransaction =
            serde_json::from_value(v).map_err(|_| "not a NIP-47 transaction object")?;
        let payment_hash = PaymentHash::from_hex(&raw.payment_hash)
            .ok_or("payment_hash is not 32 bytes of hex")?;
        let preimage = match raw.preimage.as_deref() {
            None | Some("") => None,
            Some(p) => {
                let p = Preimage::from_hex(p).ok_or("preimage is not 32 bytes of hex")?;
                // Proof of nothing unless it is the hash's, and no reason to refuse the
                // reply: LNbits' nwcprovider sends 32 zero bytes when its funding source
                // gives no preimage. Nothing here pours on a preimage anyway.
                (p.payment_hash() == payment_hash).then_some(p)
            }
        };
        let direction = match raw.direction.as_deref() {
            Some("incoming") => Some(Direction::Incoming),
            Some("outgoing") => Some(Direction::Outgoing),
            _ => None,
        };
        let state = raw.state.as_deref().map(|s| match s {
            "pending" => InvoiceState::Pending,
            "settled" => InvoiceState::Settled,
            "accepted" => InvoiceState::Accepted,
            "expired" => InvoiceState::Expired,
            "failed" => InvoiceState::Failed,
            _ => InvoiceState::Unknown,
        });
        Ok(Transaction {
            direction,
            state,
            invoice: raw.invoice,
            payment_hash,
            amount: Msat::from_msat(raw.amount),
            fees_paid: raw.fees_paid.map(Msat::from_msat),
            created_at: raw.created_at,
            expires_at: raw.expires_at,
            settled_at: raw.settled_at,
            preimage,
        })
    }
}

/// A successful reply, by method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    MakeInvoice(Transaction),
    LookupInvoice(Transaction),
    MakeHoldInvoice(Transaction),
    SettleHoldInvoice,
    CancelHoldInvoice,
}

/// NIP-47's error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletErrorCode {
    RateLimited,
    NotImplemented,
    InsufficientBalance,
    QuotaExceeded,
    Restricted,
    Unauthorized,
    Internal,
    UnsupportedEncryption,
    PaymentFailed,
    NotFound,
    Other,
    /// A code NIP-47 does not define (shortened).
    Unknown(String),
}

impl WalletErrorCode {
    pub(crate) fn parse(code: &str) -> WalletErrorCode {
        match code {
            "RATE_LIMITED" => WalletErrorCode::RateLimited,
            "NOT_IMPLEMENTED" => WalletErrorCode::NotImplemented,
            "INSUFFICIENT_BALANCE" => WalletErrorCode::InsufficientBalance,
            "QUOTA_EXCEEDED" => WalletErrorCode::QuotaExceeded,
            "RESTRICTED" => WalletErrorCode::Restricted,
            "UNAUTHORIZED" => WalletErrorCode::Unauthorized,
            "INTERNAL" => WalletErrorCode::Internal,
            "UNSUPPORTED_ENCRYPTION" => WalletErrorCode::UnsupportedEncryption,
            "PAYMENT_FAILED" => WalletErrorCode::PaymentFailed,
            "NOT_FOUND" => WalletErrorCode::NotFound,
            "OTHER" => WalletErrorCode::Other,
            other => WalletErrorCode::Unknown(other.chars().take(64).collect()),
        }
    }
}

/// The wallet said no. `message` is the wallet's text, shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("wallet error {code:?}: {message}")]
pub struct WalletError {
    pub code: WalletErrorCode,
    pub message: String,
}
