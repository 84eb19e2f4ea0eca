use super::*;
use crate::backend::{Invoice, InvoiceId, InvoiceRequest};
use crate::money::{Msat, Price};

#[test]
fn a_preimage_never_prints_and_its_hash_is_its_sha256() {
    let p = Preimage::random();
    let hex = p.expose_hex();
    assert_eq!(hex.len(), 64);
    assert!(!format!("{p:?}").contains(&hex));
    assert!(!format!("{:?}", Some(p.clone())).contains(&hex[..16]));
    assert_eq!(Preimage::from_hex(&hex).unwrap(), p);
    // sha256 of 32 zero bytes, a known value.
    let zero = Preimage::from_hex(&"00".repeat(32)).unwrap();
    assert_eq!(
        zero.payment_hash().to_hex(),
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    );
    assert_ne!(Preimage::random(), p, "two preimages from the OS RNG");
    let err = Preimage::from_hex("zz").unwrap_err().to_string();
    assert!(err.contains("preimage") && !err.contains("zz"), "{err}");
    assert!(PaymentHash::from_hex(&"ab".repeat(31)).is_err());
}

#[test]
fn a_hold_invoice_whose_hash_is_not_the_preimages_is_refused_before_the_qr() {
    let pre = Preimage::random();
    let now = std::time::SystemTime::now();
    let secs = crate::clock::unix_of(now);
    let request = InvoiceRequest {
        sale_id: "S1".into(),
        machine_id: "m".into(),
        product: "Cola".into(),
        price: Price::Sats(Msat::from_sat(2100).unwrap()),
        description: "Cola".into(),
        expiry: std::time::Duration::from_secs(300),
    };
    let invoice_for = |hash: [u8; 32]| Invoice {
        id: InvoiceId("x".into()),
        bolt11: crate::bolt11::tests::handmade(2_100_000, hash, secs, Some(300), [7; 32], None),
        payment_hash: hex::encode(hash),
        amount: Msat::from_msat(2_100_000),
        expires_at_unix: secs + 300,
    };
    let good = invoice_for(pre.payment_hash().to_bytes());
    good.check_hold(&request, &pre, crate::config::Network::Regtest, now)
        .unwrap();
    // A valid invoice, but for a hash lnvend holds no preimage of.
    let swapped = invoice_for([9; 32]);
    swapped
        .check(&request, crate::config::Network::Regtest, now)
        .unwrap();
    assert!(matches!(
        swapped.check_hold(&request, &pre, crate::config::Network::Regtest, now),
        Err(crate::bolt11::Bolt11Error::PaymentHash)
    ));
}
