//! NIP-47, Nostr Wallet Connect, from the client's side: the connection URI ([`Connection`]),
//! the wallet's info event ([`WalletInfo`]), signed and encrypted requests
//! ([`Connection::request`]), and the checks a response or notification passes before lnvend
//! believes a word of it: kind, author is the wallet, `p` tag is us, (`e` tag is our request),
//! it decrypts, and its JSON is what the method returns.
//!
//! A notification is only a wake-up. [`WakeUp`] carries the payment hash to look up and
//! nothing else (no amount, no state, no preimage): the backend must ask `lookup_invoice`
//! and act on that reply, so a forged or replayed notification can at most cause a lookup.

mod types;
mod uri;

pub use types::{
    Direction, InvoiceState, Method, PaymentHash, Preimage, Reply, Request, Transaction,
    WalletError, WalletErrorCode,
};
pub use uri::{Connection, UriError, MAX_RELAYS, MAX_URI};

use serde_json::Value;

use super::event::{Event, EventError, EventId, PublicKey, UnsignedEvent};
use super::nip04::{self, Nip04Error, SharedKey};
use super::nip44::{self, ConversationKey, Nip44Error};

pub const KIND_INFO: u16 = 13194;
pub const KIND_REQUEST: u16 = 23194;
pub const KIND_RESPONSE: u16 = 23195;
pub const KIND_NOTIFICATION_NIP04: u16 = 23196;
pub const KIND_NOTIFICATION_NIP44: u16 = 23197;
/// Wallet-chosen text kept in errors is cut to this many characters.
const MAX_WALLET_TEXT: usize = 256;
/// Method and notification names read from an info event.
const MAX_INFO_WORDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    Nip44V2,
    /// Deprecated; for wallets whose info event has no `encryption` tag.
    Nip04,
}

impl Encryption {
    pub fn tag_value(self) -> &'static str {
        match self {
            Encryption::Nip44V2 => "nip44_v2",
            Encryption::Nip04 => "nip04",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NwcError {
    #[error("event kind {got}, expected {expected}")]
    Kind { expected: u16, got: u16 },
    #[error("event is not from the wallet service of the connection")]
    NotFromWallet,
    #[error("event is not addressed to this client (p tag)")]
    NotForUs,
    #[error("event does not answer this request (e tag)")]
    NotOurRequest,
    #[error("the wallet offers no encryption this client speaks")]
    NoCommonEncryption,
    #[error("the reply is not in the encryption of our request ({})", .0.tag_value())]
    WrongEncryption(Encryption),
    #[error("NIP-44 payload refused: {0}")]
    Nip44(#[from] Nip44Error),
    #[error("NIP-04 payload refused: {0}")]
    Nip04(#[from] Nip04Error),
    /// Only the position is kept: serde's message could quote the (secret-bearing) content.
    #[error("content is not the JSON NIP-47 describes (line {line}, column {column})")]
    Json { line: usize, column: usize },
    #[error("reply is for {got:?}, not {expected}")]
    ResultType { expected: &'static str, got: String },
    #[error("reply has neither result nor error")]
    NoResult,
    #[error("reply result is invalid: {0}")]
    InvalidResult(&'static str),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error("request could not be signed: {0}")]
    Sign(#[from] EventError),
}

fn json_error(e: serde_json::Error) -> NwcError {
    NwcError::Json {
        line: e.line(),
        column: e.column(),
    }
}

fn short(s: &str) -> String {
    s.chars().take(MAX_WALLET_TEXT).collect()
}

/// What a wallet service says it can do (its kind 13194 event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletInfo {
    pub methods: Vec<String>,
    /// Schemes named in the `encryption` tag; NIP-04 alone when the tag is absent.
    pub encryptions: Vec<Encryption>,
    pub notifications: Vec<String>,
}

impl WalletInfo {
    pub fn from_event(conn: &Connection, event: &Event) -> Result<WalletInfo, NwcError> {
        expect_kind(event, KIND_INFO)?;
        if event.pubkey() != conn.wallet() {
            return Err(NwcError::NotFromWallet);
        }
        let words = |s: &str| -> Vec<String> {
            s.split_whitespace()
                .take(MAX_INFO_WORDS)
                .map(short)
                .collect()
        };
        let encryptions = match event.tag_values("encryption").next() {
            None => vec![Encryption::Nip04],
            Some(list) => list
                .split_whitespace()
                .filter_map(|w| match w {
                    "nip44_v2" => Some(Encryption::Nip44V2),
                    "nip04" => Some(Encryption::Nip04),
                    _ => None,
                })
                .collect(),
        };
        Ok(WalletInfo {
            methods: words(event.content()),
            encryptions,
            notifications: event
                .tag_values("notifications")
                .next()
                .map(words)
                .unwrap_or_default(),
        })
    }

    pub fn supports(&self, method: Method) -> bool {
        self.methods.iter().any(|m| m == method.as_str())
    }

    pub fn notifies(&self, notification: &str) -> bool {
        self.notifications.iter().any(|n| n == notification)
    }

    /// NIP-44 when offered, else NIP-04.
    pub fn encryption(&self) -> Result<Encryption, NwcError> {
        [Encryption::Nip44V2, Encryption::Nip04]
            .into_iter()
            .find(|e| self.encryptions.contains(e))
            .ok_or(NwcError::NoCommonEncryption)
    }
}

/// A request as sent: the signed event to publish, and what its reply must match.
#[derive(Debug, Clone)]
pub struct SentRequest {
    pub event: Event,
    pub method: Method,
    pub encryption: Encryption,
}

impl SentRequest {
    pub fn id(&self) -> EventId {
        self.event.id()
    }
}

/// The request a response names in its (first) `e` tag: which [`SentRequest`] to open it
/// with. Routing only; [`Connection::open_response`] checks it again.
pub fn answered_request(event: &Event) -> Option<EventId> {
    event.tag_values("e").next().and_then(EventId::from_hex)
}

/// A wake-up from a notification: look `payment_hash` up; this says nothing about payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WakeUp {
    pub reason: WakeReason,
    pub payment_hash: PaymentHash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeReason {
    PaymentReceived,
    HoldInvoiceAccepted,
}

impl Connection {
    /// Builds the kind 23194 event for `request`: content encrypted to the wallet, tagged
    /// `p` (the wallet) and `encryption` (for NIP-44), optionally `expiration`, signed with
    /// the connection's key.
    pub fn request(
        &self,
        request: &Request,
        encryption: Encryption,
        created_at: u64,
        expiration: Option<u64>,
    ) -> Result<SentRequest, NwcError> {
        let content = request.to_content();
        let content = match encryption {
            Encryption::Nip44V2 => nip44::encrypt(&self.conversation_key(), &content)?,
            Encryption::Nip04 => nip04::encrypt(&self.shared_key(), &content)?,
        };
        let mut tags = vec![vec!["p".to_string(), self.wallet().to_hex()]];
        if encryption == Encryption::Nip44V2 {
            tags.push(vec!["encryption".into(), "nip44_v2".into()]);
        }
        if let Some(at) = expiration {
            tags.push(vec!["expiration".into(), at.to_string()]);
        }
        let event = UnsignedEvent {
            created_at,
            kind: KIND_REQUEST,
            tags,
            content,
        }
        .sign(self.keys())?;
        Ok(SentRequest {
            event,
            method: request.method(),
            encryption,
        })
    }

    /// Checks and opens the wallet's reply to `sent`. A wallet error is `Err(Wallet(…))`.
    pub fn open_response(&self, sent: &SentRequest, event: &Event) -> Result<Reply, NwcError> {
        expect_kind(event, KIND_RESPONSE)?;
        self.check_author_and_p(event)?;
        let mut e_tags = event.tag_values("e").peekable();
        if e_tags.peek().is_none() || e_tags.any(|e| EventId::from_hex(e) != Some(sent.id())) {
            return Err(NwcError::NotOurRequest);
        }
        let plain = self.decrypt_as(sent.encryption, event.content())?;
        let mut v: Value = serde_json::from_str(&plain).map_err(json_error)?;
        let got = v.get("result_type").and_then(Value::as_str).unwrap_or("");
        let expected = sent.method.as_str();
        if got != expected {
            return Err(NwcError::ResultType {
                expected,
                got: short(got),
            });
        }
        match v.get("error") {
            None | Some(Value::Null) => {}
            Some(err) => {
                let text = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("");
                return Err(NwcError::Wallet(WalletError {
                    code: WalletErrorCode::parse(text("code")),
                    message: short(text("message")),
                }));
            }
        }
        let result = match v.get_mut("result").map(Value::take) {
            None | Some(Value::Null) => return Err(NwcError::NoResult),
            Some(r) => r,
        };
        let tx = |r| Transaction::from_value(r).map_err(NwcError::InvalidResult);
        Ok(match sent.method {
            Method::MakeInvoice => Reply::MakeInvoice(tx(result)?),
            Method::LookupInvoice => Reply::LookupInvoice(tx(result)?),
            Method::MakeHoldInvoice => Reply::MakeHoldInvoice(tx(result)?),
            Method::SettleHoldInvoice => Reply::SettleHoldInvoice,
            Method::CancelHoldInvoice => Reply::CancelHoldInvoice,
        })
    }

    /// Checks and opens a notification (kind 23196 with NIP-04, 23197 with NIP-44). `None`
    /// for a notification type lnvend does not act on (`payment_sent`, anything new).
    pub fn open_notification(&self, event: &Event) -> Result<Option<WakeUp>, NwcError> {
        let plain = match event.kind() {
            KIND_NOTIFICATION_NIP44 => {
                self.check_author_and_p(event)?;
                nip44::decrypt(&self.conversation_key(), event.content())?
            }
            KIND_NOTIFICATION_NIP04 => {
                self.check_author_and_p(event)?;
                nip04::decrypt(&self.shared_key(), event.content())?
            }
            got => {
                return Err(NwcError::Kind {
                    expected: KIND_NOTIFICATION_NIP44,
                    got,
                })
            }
        };
        let v: Value = serde_json::from_str(&plain).map_err(json_error)?;
        let reason = match v.get("notification_type").and_then(Value::as_str) {
            Some("payment_received") => WakeReason::PaymentReceived,
            Some("hold_invoice_accepted") => WakeReason::HoldInvoiceAccepted,
            _ => return Ok(None),
        };
        let payment_hash = v
            .get("notification")
            .and_then(|n| n.get("payment_hash"))
            .and_then(Value::as_str)
            .and_then(PaymentHash::from_hex)
            .ok_or(NwcError::InvalidResult(
                "notification has no valid payment_hash",
            ))?;
        Ok(Some(WakeUp {
            reason,
            payment_hash,
        }))
    }

    fn check_author_and_p(&self, event: &Event) -> Result<(), NwcError> {
        if event.pubkey() != self.wallet() {
            return Err(NwcError::NotFromWallet);
        }
        let us = self.client();
        let mut p = event.tag_values("p").peekable();
        if p.peek().is_none() || p.any(|k| PublicKey::from_hex(k).ok() != Some(us)) {
            return Err(NwcError::NotForUs);
        }
        Ok(())
    }

    /// Opens a reply with the encryption of our request, and only that: a wallet answers
    /// in the scheme it was asked in (NIP-47), so a reply in the other (say the deprecated
    /// NIP-04 to a NIP-44 request) is not taken. A NIP-04 payload always contains "?iv=";
    /// a NIP-44 one (base64) never contains '?'.
    fn decrypt_as(&self, encryption: Encryption, content: &str) -> Result<String, NwcError> {
        let is_nip04 = content.contains("?iv=");
        match encryption {
            Encryption::Nip04 if is_nip04 => Ok(nip04::decrypt(&self.shared_key(), content)?),
            Encryption::Nip44V2 if !is_nip04 => {
                Ok(nip44::decrypt(&self.conversation_key(), content)?)
            }
            Encryption::Nip04 | Encryption::Nip44V2 => Err(NwcError::WrongEncryption(encryption)),
        }
    }

    fn conversation_key(&self) -> ConversationKey {
        ConversationKey::new(self.keys(), &self.wallet())
    }

    fn shared_key(&self) -> SharedKey {
        SharedKey::new(self.keys(), &self.wallet())
    }
}

fn expect_kind(event: &Event, expected: u16) -> Result<(), NwcError> {
    if event.kind() == expected {
        Ok(())
    } else {
        Err(NwcError::Kind {
            expected,
            got: event.kind(),
        })
    }
}

#[cfg(test)]
mod tests;
