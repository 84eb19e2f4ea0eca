//! Reading and checking a BOLT11 invoice before it is shown: whatever a backend says, the
//! string the customer's wallet will pay must be a validly signed invoice for exactly the
//! amount we asked, with the payment hash the backend reported, payable for about as long as
//! we asked (not already expired, and not for years).
//!
//! [`decode`] reads only what lnvend needs (network, amount, payment hash, timestamp, expiry)
//! from lightning-invoice's raw signed form. It does not insist on the feature bits (field 9)
//! or a payment secret as `Bolt11Invoice::from_str` does: LNbits' FakeWallet, for one, signs
//! invoices without them, and whether the customer's wallet accepts the invoice is the
//! wallet's business; a pour still needs the backend's authenticated "paid".

use std::time::{Duration, SystemTime};

use bitcoin::secp256k1::PublicKey;
use lightning_invoice::{Currency, SignedRawBolt11Invoice};

use crate::config::Network;
use crate::money::Msat;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Bolt11Error {
    #[error("the invoice does not parse as BOLT11: {0}")]
    Parse(String),
    #[error("the invoice is for {got}, this machine sells on {want:?}")]
    Network { got: String, want: Network },
    #[error("the invoice signature does not verify")]
    Signature,
    #[error("the invoice asks for {got:?} msat, we asked for {want} msat")]
    Amount { got: Option<u64>, want: u64 },
    #[error("the invoice's payment hash is not the one the backend reported")]
    PaymentHash,
    #[error("the invoice expires in {0:?}, too soon to pay")]
    ExpiresTooSoon(Duration),
    #[error("the invoice expires in {left} s, more than the {max} s we allow for it")]
    ExpiresTooLate { left: u64, max: u64 },
    #[error("the invoice expiry disagrees with the backend's by {0} s")]
    ExpiryMismatch(u64),
}

/// The least time a customer must have to pay.
pub const MIN_TIME_TO_PAY: Duration = Duration::from_secs(30);

/// BOLT11's expiry when the invoice has no `x` field.
pub const DEFAULT_EXPIRY_S: u64 = 3600;

/// How much later than asked an invoice may expire: clock skew between the backend and
/// this machine, and BTCPay's whole minutes.
const EXPIRY_SLACK_S: u64 = 60;

/// What lnvend reads from a BOLT11.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub currency: Currency,
    /// `None` for an invoice without an amount.
    pub amount_msat: Option<u64>,
    /// Lowercase hex.
    pub payment_hash: String,
    pub timestamp_unix: u64,
    pub expiry_secs: u64,
    /// `timestamp_unix + expiry_secs` (an invoice where that overflows is refused).
    pub expires_at_unix: u64,
    /// The `n` field, or the key recovered from the signature.
    pub payee: PublicKey,
}

/// Decodes a BOLT11 and verifies its signature (against the `n` field when there is one,
/// else by recovering the payee's key), without requiring feature bits or a payment secret.
/// Never panics, whatever the text.
pub fn decode(text: &str) -> Result<Decoded, Bolt11Error> {
    let signed: SignedRawBolt11Invoice = text
        .trim()
        .parse()
        .map_err(|e: lightning_invoice::Bolt11ParseError| Bolt11Error::Parse(e.to_string()))?;
    if !signed.check_signature() {
        return Err(Bolt11Error::Signature);
    }
    let payee = match signed.raw_invoice().payee_pub_key() {
        Some(pk) => pk.0,
        None => {
            signed
                .recover_payee_pub_key()
                .map_err(|_| Bolt11Error::Signature)?
                .0
        }
    };
    let raw = signed.raw_invoice();
    let amount_msat = match raw.hrp.raw_amount {
        None => None,
        Some(_) => {
            let pico = raw
                .amount_pico_btc()
                .ok_or_else(|| Bolt11Error::Parse("the amount overflows".into()))?;
            if pico % 10 != 0 {
                return Err(Bolt11Error::Parse("the amount is not whole msat".into()));
            }
            Some(pico / 10)
        }
    };
    // Exactly one payment hash: with two, the wallet and lnvend might not mean the same one.
    let mut hashes = raw.known_tagged_fields().filter_map(|f| match f {
        lightning_invoice::TaggedField::PaymentHash(h) => Some(h),
        _ => None,
    });
    let payment_hash = match (hashes.next(), hashes.next()) {
        (Some(h), None) => h.0.to_string(),
        (None, _) => return Err(Bolt11Error::Parse("no payment hash".into())),
        (Some(_), Some(_)) => return Err(Bolt11Error::Parse("two payment hashes".into())),
    };
    if raw.features().is_some_and(|f| f.requires_unknown_bits()) {
        return Err(Bolt11Error::Parse(
            "the invoice requires a feature no wallet knows".into(),
        ));
    }
    let timestamp_unix = raw.data.timestamp.as_unix_timestamp();
    let expiry_secs = raw
        .expiry_time()
        .map_or(DEFAULT_EXPIRY_S, |e| e.as_seconds());
    let expires_at_unix = timestamp_unix
        .checked_add(expiry_secs)
        .ok_or_else(|| Bolt11Error::Parse("the expiry overflows".into()))?;
    Ok(Decoded {
        currency: raw.currency(),
        amount_msat,
        payment_hash,
        timestamp_unix,
        expiry_secs,
        expires_at_unix,
        payee,
    })
}

/// What a payment backend says of an invoice it made, and what lnvend asked of it: all
/// that [`check`] reads (the backend layer fills it from its own types, so this room
/// imports nothing from above it).
#[derive(Clone, Debug)]
pub struct Claimed<'a> {
    /// The BOLT11 the customer's wallet will pay.
    pub bolt11: &'a str,
    /// The payment hash the backend reported.
    pub payment_hash: &'a str,
    /// The amount the backend says the invoice asks for.
    pub amount: Msat,
    /// When the backend says it stops being payable (UNIX seconds).
    pub expires_at_unix: u64,
    /// The price asked in sats; `None` for a fiat price the backend converted.
    pub asked: Option<Msat>,
    /// The expiry asked for.
    pub asked_expiry: Duration,
}

pub fn check(invoice: &Claimed, network: Network, now: SystemTime) -> Result<(), Bolt11Error> {
    let parsed = decode(invoice.bolt11)?;
    let want_net = match network {
        Network::Bitcoin => Currency::Bitcoin,
        Network::Testnet => Currency::BitcoinTestnet,
        Network::Signet => Currency::Signet,
        Network::Regtest => Currency::Regtest,
    };
    if parsed.currency != want_net {
        return Err(Bolt11Error::Network {
            got: format!("{:?}", parsed.currency),
            want: network,
        });
    }
    // A sats price must be met exactly; a fiat price was converted by the backend, so the
    // BOLT11 must at least ask for what the backend says it asks for.
    let want = invoice.asked.unwrap_or(invoice.amount).as_msat();
    let got = parsed.amount_msat;
    if got != Some(want) || invoice.amount.as_msat() != want || want == 0 {
        return Err(Bolt11Error::Amount { got, want });
    }
    if !parsed
        .payment_hash
        .eq_ignore_ascii_case(invoice.payment_hash)
    {
        return Err(Bolt11Error::PaymentHash);
    }
    let expires = parsed.expires_at_unix;
    let now_s = crate::clock::unix_of(now);
    let left = Duration::from_secs(expires.saturating_sub(now_s));
    if left < MIN_TIME_TO_PAY {
        return Err(Bolt11Error::ExpiresTooSoon(left));
    }
    // An expiry years away (or u64::MAX) would overflow the controller's clock arithmetic
    // and keep a watch going for ever; the backend's figure is checked as well as the BOLT11's.
    let max = invoice
        .asked_expiry
        .as_secs()
        .div_ceil(60)
        .saturating_mul(60)
        .saturating_add(EXPIRY_SLACK_S);
    for at in [expires, invoice.expires_at_unix] {
        let left = at.saturating_sub(now_s);
        if left > max {
            return Err(Bolt11Error::ExpiresTooLate { left, max });
        }
    }
    let diff = expires.abs_diff(invoice.expires_at_unix);
    if diff > 5 {
        return Err(Bolt11Error::ExpiryMismatch(diff));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::unix_now;
    use std::str::FromStr;

    /// What a backend reported of an invoice it made (the test's own copy of the fields
    /// [`Claimed`] borrows).
    #[derive(Clone)]
    struct Inv {
        bolt11: String,
        payment_hash: String,
        amount: Msat,
        expires_at_unix: u64,
    }

    /// A sats price asked with a 600 s expiry.
    struct Req(u64);

    fn req(sat: u64) -> Req {
        Req(sat)
    }

    fn check(inv: &Inv, req: &Req, network: Network, now: SystemTime) -> Result<(), Bolt11Error> {
        super::check(
            &Claimed {
                bolt11: &inv.bolt11,
                payment_hash: &inv.payment_hash,
                amount: inv.amount,
                expires_at_unix: inv.expires_at_unix,
                asked: Some(Msat::from_sat(req.0).unwrap()),
                asked_expiry: Duration::from_secs(600),
            },
            network,
            now,
        )
    }

    /// A fresh, honest invoice for 2,100 sats payable for 600 s, as a backend makes one.
    fn made_now() -> Inv {
        let now = unix_now();
        let text = handmade(2_100_000, [3; 32], now, Some(600), [7; 32], None);
        invoice_for(text, 2_100_000, [3; 32], now + 600)
    }

    #[test]
    fn a_matching_invoice_passes_and_a_wrong_amount_is_refused() {
        let inv = made_now();
        assert_eq!(
            check(&inv, &req(2100), Network::Regtest, SystemTime::now()),
            Ok(())
        );
        assert!(matches!(
            check(&inv, &req(21), Network::Regtest, SystemTime::now()),
            Err(Bolt11Error::Amount { .. })
        ));
    }

    #[test]
    fn an_invoice_for_another_network_is_refused() {
        let inv = made_now();
        assert!(matches!(
            check(&inv, &req(2100), Network::Bitcoin, SystemTime::now()),
            Err(Bolt11Error::Network { .. })
        ));
    }

    #[test]
    fn an_expired_or_tampered_invoice_is_refused() {
        let inv = made_now();
        let late = SystemTime::now() + Duration::from_secs(590);
        assert!(matches!(
            check(&inv, &req(2100), Network::Regtest, late),
            Err(Bolt11Error::ExpiresTooSoon(_))
        ));
        let mut other = inv.clone();
        other.payment_hash = "00".repeat(32);
        assert_eq!(
            check(&other, &req(2100), Network::Regtest, SystemTime::now()),
            Err(Bolt11Error::PaymentHash)
        );
        let mut garbled = inv.clone();
        // Another bech32 character than the one there (the invoice is random: a fixed "q"
        // was the same one time in 32, and the test then checked an untouched invoice).
        let was = garbled.bolt11.as_bytes()[20];
        garbled
            .bolt11
            .replace_range(20..21, if was == b'q' { "p" } else { "q" });
        assert_ne!(garbled.bolt11, inv.bolt11);
        assert!(check(&garbled, &req(2100), Network::Regtest, SystemTime::now()).is_err());
        let mut wrong_expiry = inv;
        wrong_expiry.expires_at_unix += 30;
        assert!(matches!(
            check(
                &wrong_expiry,
                &req(2100),
                Network::Regtest,
                SystemTime::now()
            ),
            Err(Bolt11Error::ExpiryMismatch(_))
        ));
    }

    /// A BOLT11 written by hand, the way LNbits' FakeWallet writes one: payment hash,
    /// description and expiry only (no features, no payment secret), signed by `key`, with an
    /// `n` field naming `payee` when given.
    pub(crate) fn handmade(
        msat: u64,
        hash: [u8; 32],
        timestamp: u64,
        expiry: Option<u64>,
        key: [u8; 32],
        payee: Option<PublicKey>,
    ) -> String {
        use bitcoin::hashes::{sha256, Hash};
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        use lightning_invoice::{
            Description, ExpiryTime, PayeePubKey, PositiveTimestamp, RawBolt11Invoice, RawDataPart,
            RawHrp, RawTaggedField, Sha256, SiPrefix, TaggedField,
        };
        let mut fields = vec![
            TaggedField::PaymentHash(Sha256(sha256::Hash::from_byte_array(hash))),
            TaggedField::Description(Description::new("Cola".into()).unwrap()),
        ];
        if let Some(x) = expiry {
            fields.push(TaggedField::ExpiryTime(ExpiryTime::from_seconds(x)));
        }
        if let Some(pk) = payee {
            fields.push(TaggedField::PayeePubKey(PayeePubKey(pk)));
        }
        let raw = RawBolt11Invoice {
            hrp: RawHrp {
                currency: Currency::Regtest,
                // Pico-BTC: 10 per msat.
                raw_amount: Some(msat * 10),
                si_prefix: Some(SiPrefix::Pico),
            },
            data: RawDataPart {
                timestamp: PositiveTimestamp::from_unix_timestamp(timestamp).unwrap(),
                tagged_fields: fields
                    .into_iter()
                    .map(RawTaggedField::KnownSemantics)
                    .collect(),
            },
        };
        let key = SecretKey::from_slice(&key).unwrap();
        raw.sign::<_, ()>(|m| Ok(Secp256k1::new().sign_ecdsa_recoverable(m, &key)))
            .unwrap()
            .to_string()
    }

    fn invoice_for(bolt11: String, msat: u64, hash: [u8; 32], expires_at_unix: u64) -> Inv {
        Inv {
            bolt11,
            payment_hash: hex::encode(hash),
            amount: Msat::from_msat(msat),
            expires_at_unix,
        }
    }

    #[test]
    fn an_invoice_without_feature_bits_decodes_and_passes_the_check() {
        let now = unix_now();
        let text = handmade(2_100_000, [3; 32], now, Some(600), [7; 32], None);
        assert!(
            lightning_invoice::Bolt11Invoice::from_str(&text).is_err(),
            "lightning-invoice's full parse refuses it (no field 9)"
        );
        let d = decode(&text).unwrap();
        assert_eq!(d.currency, Currency::Regtest);
        assert_eq!(d.amount_msat, Some(2_100_000));
        assert_eq!(d.payment_hash, hex::encode([3; 32]));
        assert_eq!(d.timestamp_unix, now);
        assert_eq!(d.expiry_secs, 600);
        assert_eq!(d.expires_at_unix, now + 600);
        let key = bitcoin::secp256k1::SecretKey::from_slice(&[7; 32]).unwrap();
        assert_eq!(
            d.payee,
            key.public_key(&bitcoin::secp256k1::Secp256k1::new())
        );
        let inv = invoice_for(text, 2_100_000, [3; 32], now + 600);
        assert_eq!(
            check(&inv, &req(2100), Network::Regtest, SystemTime::now()),
            Ok(())
        );
        // No `x` field: BOLT11's one hour.
        let text = handmade(1000, [3; 32], now, None, [7; 32], None);
        assert_eq!(decode(&text).unwrap().expiry_secs, 3600);
    }

    #[test]
    fn a_tampered_or_wrongly_signed_invoice_is_refused() {
        let now = unix_now();
        let text = handmade(2_100_000, [3; 32], now, Some(600), [7; 32], None);
        // Any changed character breaks the checksum.
        let mut garbled = text.clone();
        let i = garbled.len() - 20;
        let c = if &garbled[i..=i] == "q" { "p" } else { "q" };
        garbled.replace_range(i..=i, c);
        assert!(matches!(decode(&garbled), Err(Bolt11Error::Parse(_))));
        // A payee field naming one node, signed by another.
        let named = bitcoin::secp256k1::SecretKey::from_slice(&[7; 32])
            .unwrap()
            .public_key(&bitcoin::secp256k1::Secp256k1::new());
        let forged = handmade(2_100_000, [3; 32], now, Some(600), [9; 32], Some(named));
        assert_eq!(decode(&forged), Err(Bolt11Error::Signature));
        let honest = handmade(2_100_000, [3; 32], now, Some(600), [7; 32], Some(named));
        assert_eq!(decode(&honest).unwrap().payee, named);
        for junk in [
            "",
            "lnbc",
            "lnbcrt1",
            &"q".repeat(5000),
            "lnbcrt1\u{0}\u{1F600}",
        ] {
            assert!(decode(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn absurd_expiries_are_refused_without_a_panic() {
        let now = unix_now();
        // The BOLT11 itself: ten years, or so far that timestamp + expiry overflows.
        let years = handmade(
            2_100_000,
            [3; 32],
            now,
            Some(10 * 365 * 86_400),
            [7; 32],
            None,
        );
        let inv = invoice_for(years, 2_100_000, [3; 32], now + 10 * 365 * 86_400);
        assert!(matches!(
            check(&inv, &req(2100), Network::Regtest, SystemTime::now()),
            Err(Bolt11Error::ExpiresTooLate { .. })
        ));
        let overflow = handmade(2_100_000, [3; 32], now, Some(u64::MAX), [7; 32], None);
        assert!(matches!(decode(&overflow), Err(Bolt11Error::Parse(_))));
        let inv = invoice_for(overflow, 2_100_000, [3; 32], u64::MAX);
        assert!(check(&inv, &req(2100), Network::Regtest, SystemTime::now()).is_err());
        // A sane BOLT11, but the backend claims it is payable for ever.
        let sane = handmade(2_100_000, [3; 32], now, Some(600), [7; 32], None);
        let inv = invoice_for(sane.clone(), 2_100_000, [3; 32], u64::MAX);
        assert!(matches!(
            check(&inv, &req(2100), Network::Regtest, SystemTime::now()),
            Err(Bolt11Error::ExpiresTooLate { .. })
        ));
        // Just inside the slack (a backend clock a little ahead) is still fine.
        let ahead = handmade(2_100_000, [3; 32], now + 50, Some(600), [7; 32], None);
        let inv = invoice_for(ahead, 2_100_000, [3; 32], now + 650);
        assert_eq!(
            check(&inv, &req(2100), Network::Regtest, SystemTime::now()),
            Ok(())
        );
    }
}
