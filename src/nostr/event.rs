//! NIP-01 events: keys, the canonical serialization that an event id hashes, BIP-340 Schnorr
//! signatures, and the check that turns untrusted JSON into an [`Event`]. An `Event` value
//! only exists once its id and signature have verified (the fields are private and the only
//! constructors check or sign), so code that holds one never needs to wonder.

use std::fmt;
use std::sync::OnceLock;

use bitcoin::secp256k1::{self, schnorr, All, Keypair, Message, Secp256k1, XOnlyPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// One secp256k1 context for the process: creating one allocates, verifying does not.
pub(crate) fn secp() -> &'static Secp256k1<All> {
    static CTX: OnceLock<Secp256k1<All>> = OnceLock::new();
    CTX.get_or_init(Secp256k1::new)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event is not valid JSON of the NIP-01 shape: {0}")]
    Shape(String),
    #[error("event field {field} is not {expected}")]
    Field {
        field: &'static str,
        expected: &'static str,
    },
    #[error("event id does not match its content")]
    IdMismatch,
    #[error("event signature does not verify")]
    BadSignature,
    #[error("event could not be serialized: {0}")]
    Serialize(String),
}

/// Why a secret key was refused. Never carries the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("secret key is not 64 hex characters")]
    SecretFormat,
    #[error("secret key is not a valid secp256k1 scalar (zero or not below the curve order)")]
    SecretRange,
    #[error("public key is not 64 lowercase hex characters")]
    PublicFormat,
    #[error("public key is not a point on secp256k1")]
    PublicPoint,
}

/// A Nostr public key: the x-only BIP-340 key, shown as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(XOnlyPublicKey);

impl PublicKey {
    /// Parses 64 lowercase hex characters that name a point on the curve.
    pub fn from_hex(s: &str) -> Result<PublicKey, KeyError> {
        let bytes = lower_hex::<32>(s).ok_or(KeyError::PublicFormat)?;
        XOnlyPublicKey::from_slice(&bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::PublicPoint)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.serialize())
    }

    pub(crate) fn xonly(&self) -> &XOnlyPublicKey {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

/// A key pair we sign and decrypt with. Its `Debug` shows the public key only.
#[derive(Clone)]
pub struct Keys {
    keypair: Keypair,
}

impl Keys {
    /// From the hex secret of a connection URI (64 hex characters, either case).
    pub fn from_secret(secret: &Secret) -> Result<Keys, KeyError> {
        let s = secret.expose();
        if s.len() != 64 {
            return Err(KeyError::SecretFormat);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| KeyError::SecretFormat)?;
        let keypair =
            Keypair::from_seckey_slice(secp(), &bytes).map_err(|_| KeyError::SecretRange)?;
        bytes.fill(0);
        Ok(Keys { keypair })
    }

    /// A fresh random key pair (tests, and a client key nobody else needs to know).
    pub fn generate() -> Keys {
        let mut bytes = [0u8; 32];
        loop {
            rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes);
            if let Ok(keypair) = Keypair::from_seckey_slice(secp(), &bytes) {
                bytes.fill(0);
                return Keys { keypair };
            }
        }
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.keypair.x_only_public_key().0)
    }

    pub(crate) fn secret_key(&self) -> secp256k1::SecretKey {
        self.keypair.secret_key()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keys {{ public: {}, secret: <redacted> }}",
            self.public_key()
        )
    }
}

/// An event id: the SHA-256 of the canonical serialization.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId([u8; 32]);

impl EventId {
    pub fn from_hex(s: &str) -> Option<EventId> {
        lower_hex::<32>(s).map(EventId)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.to_hex())
    }
}

/// An event before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedEvent {
    pub created_at: u64,
    pub kind: u16,
    pub tags: Vec<Vec<String>>,
    pub content: String,
}

impl UnsignedEvent {
    /// Signs with fresh auxiliary randomness (BIP-340's recommendation).
    pub fn sign(self, keys: &Keys) -> Result<Event, EventError> {
        let mut aux = [0u8; 32];
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut aux);
        self.sign_with_aux(keys, &aux)
    }

    pub(crate) fn sign_with_aux(self, keys: &Keys, aux: &[u8; 32]) -> Result<Event, EventError> {
        let pubkey = keys.public_key();
        let id = event_id(
            &pubkey,
            self.created_at,
            self.kind,
            &self.tags,
            &self.content,
        )?;
        let sig =
            secp().sign_schnorr_with_aux_rand(&Message::from_digest(id.0), &keys.keypair, aux);
        Ok(Event {
            id,
            pubkey,
            created_at: self.created_at,
            kind: self.kind,
            tags: self.tags,
            content: self.content,
            sig,
        })
    }
}

/// A verified event: its id is the hash of its fields and `pubkey` signed that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    id: EventId,
    pubkey: PublicKey,
    created_at: u64,
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
    sig: schnorr::Signature,
}

/// The wire shape, before any check. Fields outside NIP-01 are not signed and are dropped.
#[derive(Deserialize)]
struct RawEvent {
    id: String,
    pubkey: String,
    created_at: u64,
    kind: u16,
    tags: Vec<Vec<String>>,
    content: String,
    sig: String,
}

/// The most of serde's message kept in an error: it can quote the relay's text (a field's
/// whole string), and errors end up in logs.
const MAX_SHAPE_TEXT: usize = 200;

/// serde's message about the relay's text, cut to [`MAX_SHAPE_TEXT`] characters.
pub(crate) fn short_serde_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.char_indices().nth(MAX_SHAPE_TEXT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn shape(e: serde_json::Error) -> EventError {
    EventError::Shape(short_serde_error(&e))
}

impl Event {
    /// Checks an event from the wire: shape, lowercase hex, id, then signature.
    pub fn from_value(value: serde_json::Value) -> Result<Event, EventError> {
        let raw: RawEvent = serde_json::from_value(value).map_err(shape)?;
        let id = EventId::from_hex(&raw.id).ok_or(EventError::Field {
            field: "id",
            expected: "64 lowercase hex characters",
        })?;
        let pubkey = PublicKey::from_hex(&raw.pubkey).map_err(|_| EventError::Field {
            field: "pubkey",
            expected: "a lowercase hex x-only public key",
        })?;
        let sig_bytes = lower_hex::<64>(&raw.sig).ok_or(EventError::Field {
            field: "sig",
            expected: "128 lowercase hex characters",
        })?;
        let sig = schnorr::Signature::from_slice(&sig_bytes).map_err(|_| EventError::Field {
            field: "sig",
            expected: "a BIP-340 signature",
        })?;
        let computed = event_id(&pubkey, raw.created_at, raw.kind, &raw.tags, &raw.content)?;
        if computed != id {
            return Err(EventError::IdMismatch);
        }
        secp()
            .verify_schnorr(&sig, &Message::from_digest(id.0), &pubkey.0)
            .map_err(|_| EventError::BadSignature)?;
        Ok(Event {
            id,
            pubkey,
            created_at: raw.created_at,
            kind: raw.kind,
            tags: raw.tags,
            content: raw.content,
            sig,
        })
    }

    /// Parses and checks one event object given as JSON text.
    pub fn from_json(text: &str) -> Result<Event, EventError> {
        let value = serde_json::from_str(text).map_err(shape)?;
        Event::from_value(value)
    }

    /// The JSON object that goes on the wire.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_hex(),
            "pubkey": self.pubkey.to_hex(),
            "created_at": self.created_at,
            "kind": self.kind,
            "tags": self.tags,
            "content": self.content,
            "sig": hex::encode(self.sig.as_ref()),
        })
    }

    pub fn id(&self) -> EventId {
        self.id
    }
    pub fn pubkey(&self) -> PublicKey {
        self.pubkey
    }
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
    pub fn kind(&self) -> u16 {
        self.kind
    }
    pub fn tags(&self) -> &[Vec<String>] {
        &self.tags
    }
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The values of every tag named `name` (its second element).
    pub fn tag_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.tags
            .iter()
            .filter(move |t| t.first().is_some_and(|n| n == name))
            .filter_map(|t| t.get(1).map(String::as_str))
    }
}

/// NIP-01's serialization, `[0,<pubkey>,<created_at>,<kind>,<tags>,<content>]` with no
/// whitespace. serde_json's compact writer escapes exactly as NIP-01 asks (`\n \" \\ \r \t
/// \b \f`, other control characters as `\u00XX`, everything else verbatim, `/` included).
pub fn serialize_for_id(
    pubkey: &PublicKey,
    created_at: u64,
    kind: u16,
    tags: &[Vec<String>],
    content: &str,
) -> Result<String, EventError> {
    serde_json::to_string(&(0u8, pubkey.to_hex(), created_at, kind, tags, content))
        .map_err(|e| EventError::Serialize(e.to_string()))
}

fn event_id(
    pubkey: &PublicKey,
    created_at: u64,
    kind: u16,
    tags: &[Vec<String>],
    content: &str,
) -> Result<EventId, EventError> {
    let text = serialize_for_id(pubkey, created_at, kind, tags, content)?;
    Ok(EventId(Sha256::digest(text.as_bytes()).into()))
}

/// `N` bytes from exactly `2N` lowercase hex characters (NIP-01 asks for lowercase, and a
/// second spelling of the same key would be a second identity for a filter).
pub(crate) fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The info event in NIP-47's appendix, signed by a real wallet service.
    pub(crate) const NIP47_INFO_EVENT: &str = r#"{
      "id": "df467db0a9f9ec77ffe6f561811714ccaa2e26051c20f58f33c3d66d6c2b4d1c",
      "pubkey": "c04ccd5c82fc1ea3499b9c6a5c0a7ab627fbe00a0116110d4c750faeaecba1e2",
      "created_at": 1713883677,
      "kind": 13194,
      "tags": [
        [ "encryption", "nip44_v2 nip04" ],
        [ "notifications", "payment_received payment_sent" ]
      ],
      "content": "pay_invoice pay_keysend get_balance get_info make_invoice lookup_invoice list_transactions multi_pay_invoice multi_pay_keysend sign_message notifications",
      "sig": "31f57b369459b5306a5353aa9e03be7fbde169bc881c3233625605dd12f53548179def16b9fe1137e6465d7e4d5bb27ce81fd6e75908c46b06269f4233c845d8"
    }"#;

    fn keys(n: u8) -> Keys {
        Keys::from_secret(&Secret::new(format!("{:064x}", n))).unwrap()
    }

    /// NIP-47's appendix prints a real wallet's info event whose content and tags were
    /// edited after it was signed: the signature is genuine for the printed id, but the id is
    /// not the hash of the printed fields. A client that trusted the `id` field would accept
    /// it; this one computes the id and refuses it.
    #[test]
    fn the_nip47_example_event_is_refused_because_it_was_edited_after_signing() {
        let v: serde_json::Value = serde_json::from_str(NIP47_INFO_EVENT).unwrap();
        let id = lower_hex::<32>(v["id"].as_str().unwrap()).unwrap();
        let pk = PublicKey::from_hex(v["pubkey"].as_str().unwrap()).unwrap();
        let sig = lower_hex::<64>(v["sig"].as_str().unwrap()).unwrap();
        let sig = schnorr::Signature::from_slice(&sig).unwrap();
        secp()
            .verify_schnorr(&sig, &Message::from_digest(id), pk.xonly())
            .expect("the printed signature is genuine for the printed id");
        assert_eq!(
            Event::from_json(NIP47_INFO_EVENT),
            Err(EventError::IdMismatch)
        );
    }

    #[test]
    fn an_event_signed_here_verifies_and_any_change_is_refused() {
        let k = keys(7);
        let ev = UnsignedEvent {
            created_at: 1713883677,
            kind: 13194,
            tags: vec![vec!["encryption".into(), "nip44_v2 nip04".into()]],
            content: "make_invoice lookup_invoice".into(),
        }
        .sign(&k)
        .unwrap();
        let text = ev.to_value().to_string();
        assert_eq!(Event::from_json(&text).unwrap(), ev);
        assert_eq!(
            ev.tag_values("encryption").collect::<Vec<_>>(),
            ["nip44_v2 nip04"]
        );
        let tampered = text.replace("1713883677", "1713883678");
        assert_eq!(Event::from_json(&tampered), Err(EventError::IdMismatch));
        let tampered = text.replace("make_invoice lookup", "make_invoice  lookup");
        assert_eq!(Event::from_json(&tampered), Err(EventError::IdMismatch));
        // Same id and fields, another signature (by the right key, over another message).
        let other = UnsignedEvent {
            created_at: 1,
            kind: 1,
            tags: vec![],
            content: String::new(),
        }
        .sign(&k)
        .unwrap();
        let mut v = ev.to_value();
        v["sig"] = other.to_value()["sig"].clone();
        assert_eq!(Event::from_value(v), Err(EventError::BadSignature));
        let upper = text.replace(&ev.id().to_hex(), &ev.id().to_hex().to_uppercase());
        assert!(matches!(
            Event::from_json(&upper),
            Err(EventError::Field { field: "id", .. })
        ));
        let extra = text.replacen('{', r#"{"seen_on":"relay","#, 1);
        assert_eq!(Event::from_json(&extra).unwrap(), ev);
        assert!(matches!(
            Event::from_json("[1,2]"),
            Err(EventError::Shape(_))
        ));
        let mut v = ev.to_value();
        v["kind"] = 70000.into();
        assert!(matches!(Event::from_value(v), Err(EventError::Shape(_))));
    }

    #[test]
    fn a_shape_error_quotes_at_most_a_little_of_the_relays_text() {
        let ev = UnsignedEvent {
            created_at: 1,
            kind: 1,
            tags: vec![],
            content: String::new(),
        }
        .sign(&Keys::generate())
        .unwrap();
        let mut v = ev.to_value();
        v["kind"] = "k".repeat(100_000).into();
        let e = Event::from_value(v).unwrap_err().to_string();
        assert!(e.len() < 300, "{} bytes: {e}", e.len());
    }

    #[test]
    fn the_id_serialization_escapes_as_nip01_says() {
        let pk = keys(1).public_key();
        let content = "a\nb\"c\\d\re\tf\u{8}g\u{c}h/é💧\u{1}\u{7f}";
        let tags = vec![vec!["p".to_string(), "x\ny".to_string()]];
        let s = serialize_for_id(&pk, 7, 1, &tags, content).unwrap();
        let expected = format!(
            "[0,\"{}\",7,1,[[\"p\",\"x\\ny\"]],\"a\\nb\\\"c\\\\d\\re\\tf\\bg\\fh/é💧\\u0001\u{7f}\"]",
            pk.to_hex()
        );
        assert_eq!(s, expected);
    }

    #[test]
    fn signed_events_round_trip_through_the_wire_form() {
        let k = keys(3);
        let ev = UnsignedEvent {
            created_at: 1_700_000_000,
            kind: 23194,
            tags: vec![vec!["p".into(), keys(4).public_key().to_hex()]],
            content: "line\none \"quoted\" ünïcode".into(),
        }
        .sign(&k)
        .unwrap();
        assert_eq!(ev.pubkey(), k.public_key());
        let back = Event::from_json(&ev.to_value().to_string()).unwrap();
        assert_eq!(back, ev);
        // A different key cannot claim the event.
        let mut v = ev.to_value();
        v["pubkey"] = keys(5).public_key().to_hex().into();
        assert_eq!(Event::from_value(v), Err(EventError::IdMismatch));
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["", "zz", &"0".repeat(64), &"f".repeat(64), &"1".repeat(63)] {
            let err = Keys::from_secret(&Secret::new(bad)).unwrap_err();
            if bad.len() > 4 {
                assert!(!err.to_string().contains(bad));
            }
        }
        let k = keys(9);
        let shown = format!("{k:?}");
        assert!(shown.contains(&k.public_key().to_hex()));
        assert!(!shown.contains(&format!("{:064x}", 9)));
        assert_eq!(
            PublicKey::from_hex(&"f".repeat(64)),
            Err(KeyError::PublicPoint)
        );
        assert_eq!(PublicKey::from_hex("ab"), Err(KeyError::PublicFormat));
    }
}
