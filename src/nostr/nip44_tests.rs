//! Every vector of the published nip44.vectors.json (read from /work/shared at run time),
//! plus the extended-prefix table of NIP-44.md.

use super::*;
use crate::secret::Secret;
use serde_json::Value;
use sha2::Digest;

/// The vectors live outside the repository, in the shared reference material beside the
/// checkout (`../shared`; `../../shared` from a worktree under `wt/`), or at
/// `LNVEND_NIP44_VECTORS`. Missing vectors fail the test: it must never pass untested.
fn vectors() -> Value {
    let rel = "shared/reference/nostr/nip44.vectors.json";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<std::path::PathBuf> = match std::env::var_os("LNVEND_NIP44_VECTORS") {
        Some(p) => vec![p.into()],
        None => vec![root.join("..").join(rel), root.join("../..").join(rel)],
    };
    let Some(text) = candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
    else {
        panic!(
            "the NIP-44 test vectors are missing (looked at {candidates:?}; set \
             LNVEND_NIP44_VECTORS): the shared reference material must be present"
        )
    };
    let all: Value = serde_json::from_str(&text).expect("vectors are JSON");
    all["v2"].clone()
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a Vec<Value> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    let items = cur.as_array().expect("a list of vectors");
    assert!(!items.is_empty(), "no vectors at {path:?}");
    items
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key}"))
}

fn bytes32(hex_str: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_str, &mut out).expect("32 hex bytes");
    out
}

fn keys(sec_hex: &str) -> Result<Keys, crate::nostr::KeyError> {
    Keys::from_secret(&Secret::new(sec_hex))
}

fn conv_key(sec_hex: &str, pub_hex: &str) -> Option<ConversationKey> {
    let k = keys(sec_hex).ok()?;
    let p = PublicKey::from_hex(pub_hex).ok()?;
    Some(ConversationKey::new(&k, &p))
}

#[test]
fn valid_get_conversation_key() {
    let v = vectors();
    for t in list(&v, &["valid", "get_conversation_key"]) {
        let got = conv_key(s(t, "sec1"), s(t, "pub2")).expect("valid keys");
        assert_eq!(hex::encode(got.as_bytes()), s(t, "conversation_key"));
    }
}

#[test]
fn valid_get_message_keys() {
    let v = vectors();
    let group = &v["valid"]["get_message_keys"];
    let ck = ConversationKey::from_bytes(bytes32(s(group, "conversation_key")));
    for t in list(&v, &["valid", "get_message_keys", "keys"]) {
        let mk = message_keys(&ck, &bytes32(s(t, "nonce")));
        assert_eq!(hex::encode(mk.chacha_key), s(t, "chacha_key"));
        assert_eq!(hex::encode(mk.chacha_nonce), s(t, "chacha_nonce"));
        assert_eq!(hex::encode(mk.hmac_key), s(t, "hmac_key"));
    }
}

#[test]
fn valid_calc_padded_len() {
    let v = vectors();
    for t in list(&v, &["valid", "calc_padded_len"]) {
        let pair = t.as_array().expect("pair");
        let (input, want) = (pair[0].as_u64().unwrap(), pair[1].as_u64().unwrap());
        assert_eq!(calc_padded_len(input), want, "calc_padded_len({input})");
    }
}

#[test]
fn valid_encrypt_decrypt() {
    let v = vectors();
    for t in list(&v, &["valid", "encrypt_decrypt"]) {
        let (sec1, sec2) = (keys(s(t, "sec1")).unwrap(), keys(s(t, "sec2")).unwrap());
        let ck = ConversationKey::new(&sec1, &sec2.public_key());
        assert_eq!(hex::encode(ck.as_bytes()), s(t, "conversation_key"));
        // The other side derives the same key.
        assert_eq!(ConversationKey::new(&sec2, &sec1.public_key()), ck);
        let nonce = bytes32(s(t, "nonce"));
        let payload = encrypt_with_nonce(&ck, s(t, "plaintext"), &nonce, MAX_PLAINTEXT).unwrap();
        assert_eq!(payload, s(t, "payload"));
        assert_eq!(decrypt(&ck, &payload).unwrap(), s(t, "plaintext"));
    }
}

#[test]
fn valid_encrypt_decrypt_long_msg() {
    let v = vectors();
    for t in list(&v, &["valid", "encrypt_decrypt_long_msg"]) {
        let ck = ConversationKey::from_bytes(bytes32(s(t, "conversation_key")));
        let plaintext = s(t, "pattern").repeat(t["repeat"].as_u64().unwrap() as usize);
        assert_eq!(
            hex::encode(Sha256::digest(plaintext.as_bytes())),
            s(t, "plaintext_sha256")
        );
        let payload =
            encrypt_with_nonce(&ck, &plaintext, &bytes32(s(t, "nonce")), MAX_PLAINTEXT).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(payload.as_bytes())),
            s(t, "payload_sha256")
        );
        assert_eq!(decrypt(&ck, &payload).unwrap(), plaintext);
    }
}

#[test]
fn invalid_encrypt_msg_lengths() {
    let v = vectors();
    let ck = ConversationKey::from_bytes([7; 32]);
    for t in list(&v, &["invalid", "encrypt_msg_lengths"]) {
        let len = t.as_u64().unwrap() as usize;
        let text = "a".repeat(len);
        assert_eq!(encrypt(&ck, &text), Err(Nip44Error::PlaintextLength(len)));
    }
}

#[test]
fn invalid_get_conversation_key() {
    let v = vectors();
    for t in list(&v, &["invalid", "get_conversation_key"]) {
        assert!(
            conv_key(s(t, "sec1"), s(t, "pub2")).is_none(),
            "{}",
            s(t, "note")
        );
    }
}

#[test]
fn invalid_decrypt() {
    let v = vectors();
    for t in list(&v, &["invalid", "decrypt"]) {
        let ck = ConversationKey::from_bytes(bytes32(s(t, "conversation_key")));
        let note = s(t, "note");
        let err = decrypt(&ck, s(t, "payload")).expect_err(note);
        let expected = if note.starts_with("unknown encryption version") {
            Nip44Error::UnknownVersion
        } else if note == "invalid base64" {
            Nip44Error::Base64
        } else if note == "invalid MAC" {
            Nip44Error::Mac
        } else if note == "invalid padding" {
            Nip44Error::Padding
        } else if note.starts_with("invalid payload length") {
            Nip44Error::PayloadSize
        } else {
            panic!("a vector this test does not know: {note}")
        };
        assert_eq!(err, expected, "{note}");
    }
}

/// NIP-44.md's table at the u16/extended-prefix boundary (conversation key and nonce of the
/// first encrypt_decrypt vector, plaintext "a" repeated).
#[test]
fn extended_prefix_table() {
    let ck = ConversationKey::from_bytes(bytes32(
        "c41c775356fd92eadc63ff5a0dc1da211b268cbea22316767095b2871ea1412d",
    ));
    let nonce = bytes32("0000000000000000000000000000000000000000000000000000000000000001");
    let table = [
        (
            65535,
            "6d8c2810d1e870fbaa1f0a0937126cca837a15f9260e27060c331d70a3c0bc84",
        ),
        (
            65536,
            "b7b4edb36ba92e267d322d56d9aebc22e7fa96ff52e3c12adc07f07a43cbc616",
        ),
        (
            65537,
            "eeb7c7c5373894ea2c1547cfd3ccb15d5a0b2d619da852e5c79df792dcc9e435",
        ),
    ];
    let big = 1 << 20;
    for (len, payload_sha) in table {
        let text = "a".repeat(len);
        let payload = encrypt_with_nonce(&ck, &text, &nonce, big).unwrap();
        assert_eq!(hex::encode(Sha256::digest(payload.as_bytes())), payload_sha);
        assert_eq!(decrypt_with_max(&ck, &payload, big).unwrap(), text);
        if len > MAX_PLAINTEXT {
            // lnvend's own limit refuses it, before decoding.
            assert_eq!(decrypt(&ck, &payload), Err(Nip44Error::PayloadSize));
        }
    }
}

#[test]
fn random_nonces_round_trip_and_differ() {
    let (a, b) = (Keys::generate(), Keys::generate());
    let ck = ConversationKey::new(&a, &b.public_key());
    let p1 = encrypt(&ck, r#"{"method":"get_info","params":{}}"#).unwrap();
    let p2 = encrypt(&ck, r#"{"method":"get_info","params":{}}"#).unwrap();
    assert_ne!(p1, p2);
    let back = ConversationKey::new(&b, &a.public_key());
    assert_eq!(
        decrypt(&back, &p1).unwrap(),
        r#"{"method":"get_info","params":{}}"#
    );
    // A third party's key fails the MAC.
    let eve = ConversationKey::new(&Keys::generate(), &a.public_key());
    assert_eq!(decrypt(&eve, &p1), Err(Nip44Error::Mac));
    assert!(!format!("{ck:?}").contains(&hex::encode(ck.as_bytes())));
}
