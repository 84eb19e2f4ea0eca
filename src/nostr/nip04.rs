//! NIP-04 payloads, `base64(AES-256-CBC(text)) + "?iv=" + base64(iv)` with the unhashed ECDH
//! x-coordinate as the key. Deprecated, and unauthenticated (only the event signature vouches
//! for the sender), but a wallet whose info event names no `encryption` speaks only this, and
//! kind 23196 notifications use it. Malformed payloads are errors, never panics; sizes are
//! bounded before decoding.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::event::{Keys, PublicKey};

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// The largest plaintext lnvend encrypts or accepts (as for NIP-44).
pub const MAX_PLAINTEXT: usize = 65535;
/// Base64 of the largest ciphertext (MAX_PLAINTEXT rounded up to a block, plus a block).
const MAX_CIPHERTEXT_B64: usize = (MAX_PLAINTEXT / 16 + 1) * 16 / 3 * 4 + 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Nip04Error {
    #[error("payload has no \"?iv=\" part")]
    NoIv,
    #[error("payload is longer than lnvend accepts")]
    TooLong,
    #[error("payload is not valid base64")]
    Base64,
    #[error("iv is not 16 bytes")]
    IvLength,
    #[error("ciphertext is not a non-empty whole number of AES blocks")]
    CiphertextLength,
    #[error("padding is invalid (wrong key or damaged payload)")]
    Padding,
    #[error("plaintext is not UTF-8")]
    Utf8,
    #[error("plaintext length {0} is outside 1..={max}", max = MAX_PLAINTEXT)]
    PlaintextLength(usize),
}

/// The shared AES key of two parties. Secret: its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedKey([u8; 32]);

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey(<redacted>)")
    }
}

impl SharedKey {
    pub fn new(ours: &Keys, theirs: &PublicKey) -> SharedKey {
        SharedKey(super::shared_x(ours, theirs))
    }
}

/// Encrypts with a fresh random iv.
pub fn encrypt(key: &SharedKey, plaintext: &str) -> Result<String, Nip04Error> {
    let mut iv = [0u8; 16];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut iv);
    encrypt_with_iv(key, plaintext, &iv)
}

fn encrypt_with_iv(key: &SharedKey, plaintext: &str, iv: &[u8; 16]) -> Result<String, Nip04Error> {
    if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
        return Err(Nip04Error::PlaintextLength(plaintext.len()));
    }
    let ct = Encryptor::new(&key.0.into(), iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext.as_bytes());
    Ok(format!(
        "{}?iv={}",
        STANDARD.encode(ct),
        STANDARD.encode(iv)
    ))
}

pub fn decrypt(key: &SharedKey, payload: &str) -> Result<String, Nip04Error> {
    let (ct_b64, iv_b64) = payload.split_once("?iv=").ok_or(Nip04Error::NoIv)?;
    if ct_b64.len() > MAX_CIPHERTEXT_B64 || iv_b64.len() > 64 {
        return Err(Nip04Error::TooLong);
    }
    let iv = STANDARD.decode(iv_b64).map_err(|_| Nip04Error::Base64)?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| Nip04Error::IvLength)?;
    let ct = STANDARD.decode(ct_b64).map_err(|_| Nip04Error::Base64)?;
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(Nip04Error::CiphertextLength);
    }
    let text = Decryptor::new(&key.0.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ct)
        .map_err(|_| Nip04Error::Padding)?;
    if text.is_empty() || text.len() > MAX_PLAINTEXT {
        return Err(Nip04Error::PlaintextLength(text.len()));
    }
    String::from_utf8(text).map_err(|_| Nip04Error::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn key(n: u8) -> Keys {
        Keys::from_secret(&Secret::new(format!("{:064x}", n))).unwrap()
    }

    fn pair() -> (SharedKey, SharedKey) {
        let (a, b) = (key(1), key(2));
        (
            SharedKey::new(&a, &b.public_key()),
            SharedKey::new(&b, &a.public_key()),
        )
    }

    #[test]
    fn both_sides_share_the_key_and_round_trip() {
        let (ab, ba) = pair();
        assert_eq!(ab, ba);
        for text in [
            "x",
            "exactly sixteen!",
            r#"{"method":"lookup_invoice"}"#,
            "ü💧",
        ] {
            let p = encrypt(&ab, text).unwrap();
            assert!(p.contains("?iv="));
            assert_eq!(decrypt(&ba, &p).unwrap(), text);
        }
        let long = "a".repeat(MAX_PLAINTEXT);
        assert_eq!(decrypt(&ba, &encrypt(&ab, &long).unwrap()).unwrap(), long);
        assert_eq!(
            encrypt(&ab, &"a".repeat(MAX_PLAINTEXT + 1)),
            Err(Nip04Error::PlaintextLength(MAX_PLAINTEXT + 1))
        );
        assert_eq!(encrypt(&ab, ""), Err(Nip04Error::PlaintextLength(0)));
        assert!(!format!("{ab:?}").contains(&hex::encode(ab.0)));
    }

    /// The key is the unhashed x-coordinate: for secret keys 1 and 2 it is the x of 2G.
    #[test]
    fn the_key_is_the_raw_x_coordinate() {
        let (ab, _) = pair();
        assert_eq!(
            hex::encode(ab.0),
            "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
        );
        // AES-256-CBC of "hello" (PKCS#7) under that key and a zero iv, as
        // `openssl enc -aes-256-cbc -K <key> -iv 0` computes it.
        let p = encrypt_with_iv(&ab, "hello", &[0; 16]).unwrap();
        assert_eq!(p, "yy/agLFwsDCsUGQAvO9GNw==?iv=AAAAAAAAAAAAAAAAAAAAAA==");
        assert_eq!(decrypt(&ab, &p).unwrap(), "hello");
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let (ab, ba) = pair();
        let good = encrypt(&ab, "hello").unwrap();
        let (ct, iv) = good.split_once("?iv=").unwrap();
        let cases: Vec<(String, Nip04Error)> = vec![
            (ct.to_string(), Nip04Error::NoIv),
            (format!("{ct}?iv=!!!!"), Nip04Error::Base64),
            (format!("$$$$?iv={iv}"), Nip04Error::Base64),
            (format!("{ct}?iv=AAAA"), Nip04Error::IvLength),
            (format!("?iv={iv}"), Nip04Error::CiphertextLength),
            (format!("AAAA?iv={iv}"), Nip04Error::CiphertextLength),
            (
                format!("{}?iv={iv}", "A".repeat(MAX_CIPHERTEXT_B64 + 4)),
                Nip04Error::TooLong,
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(decrypt(&ba, &payload), Err(want), "{payload:.40}");
        }
        // Another key: the padding check fails (or, rarely, yields garbage that is refused).
        let eve = SharedKey::new(&key(3), &key(1).public_key());
        let mut refused = 0;
        for _ in 0..20 {
            let p = encrypt(&ab, "hello there").unwrap();
            match decrypt(&eve, &p) {
                Err(Nip04Error::Padding | Nip04Error::Utf8) => refused += 1,
                Ok(t) => assert_ne!(t, "hello there"),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(refused >= 15);
    }
}
