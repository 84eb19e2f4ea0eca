//! The pure parts: what a `lookup_invoice` or `make_invoice` reply means, without a relay.

use super::*;

pub(super) fn tx(state: Option<NwcState>, amount: u64, settled_at: Option<u64>) -> Transaction {
    Transaction {
        direction: Some(Direction::Incoming),
        state,
        invoice: None,
        payment_hash: PaymentHash([7; 32]),
        amount: Msat::from_msat(amount),
        fees_paid: None,
        created_at: Some(1),
        expires_at: Some(2_000_000_000),
        settled_at,
        preimage: None,
    }
}

#[test]
fn judge_pays_only_a_settled_incoming_invoice_for_at_least_the_price() {
    let now = tokio::time::Instant::now();
    let issued = Issued {
        amount: Msat::from_msat(21_000),
        expires: now + Duration::from_secs(60),
    };
    let hash = PaymentHash([7; 32]);
    let j = |t: &Transaction| judge(&hash, t, Some(&issued), 1_800_000_000, now).unwrap();
    let paid = InvoiceState::Paid {
        received: Msat::from_msat(21_000),
    };
    assert_eq!(j(&tx(Some(NwcState::Settled), 21_000, Some(5))), paid);
    // LNbits' nwcprovider: no state; settled_at once LNbits no longer calls it pending,
    // which is paid only while the invoice has not expired (see the test below).
    assert_eq!(j(&tx(None, 21_000, Some(5))), paid);
    assert_eq!(j(&tx(None, 21_000, None)), InvoiceState::Pending);
    // A state that says otherwise wins over settled_at.
    assert_eq!(
        j(&tx(Some(NwcState::Pending), 21_000, Some(5))),
        InvoiceState::Pending
    );
    assert_eq!(
        j(&tx(Some(NwcState::Unknown), 21_000, Some(5))),
        InvoiceState::Pending
    );
    assert_eq!(
        j(&tx(Some(NwcState::Accepted), 21_000, Some(5))),
        InvoiceState::Pending
    );
    // Underpaid.
    assert_eq!(
        j(&tx(Some(NwcState::Settled), 20_999, Some(5))),
        InvoiceState::Pending
    );
    // An outgoing payment with our hash is not a payment to us.
    let mut out = tx(Some(NwcState::Settled), 21_000, Some(5));
    out.direction = Some(Direction::Outgoing);
    assert_eq!(j(&out), InvoiceState::Pending);
    assert_eq!(
        j(&tx(Some(NwcState::Expired), 0, None)),
        InvoiceState::Expired
    );
    assert_eq!(
        j(&tx(Some(NwcState::Failed), 0, None)),
        InvoiceState::Expired
    );
    // Past our expiry on the monotonic clock, unpaid: expired.
    let later = now + Duration::from_secs(61);
    assert_eq!(
        judge(&hash, &tx(None, 21_000, None), Some(&issued), 0, later).unwrap(),
        InvoiceState::Expired
    );
    // About another hash: not an answer.
    let other = PaymentHash([8; 32]);
    assert!(judge(
        &other,
        &tx(Some(NwcState::Settled), 21_000, Some(5)),
        None,
        0,
        now
    )
    .is_err());
    // After a restart (nothing issued), paid for the amount the wallet reports.
    assert_eq!(
        judge(
            &hash,
            &tx(Some(NwcState::Settled), 21_000, Some(5)),
            None,
            0,
            now
        )
        .unwrap(),
        paid
    );
}

/// A regtest BOLT11 for the hash `[7; 32]` (or `hash`), made at `created`, for `msat`.
fn bolt11(hash: [u8; 32], msat: u64, created: u64, expiry: u64) -> String {
    use bitcoin::hashes::Hash;
    let key = bitcoin::secp256k1::SecretKey::from_slice(&[1; 32]).unwrap();
    let hash = bitcoin::hashes::sha256::Hash::from_byte_array(hash);
    super::fake::sign_bolt11(&key, hash, msat, created, expiry, "Cola").unwrap()
}

#[test]
fn a_make_invoice_reply_whose_bolt11_disagrees_is_refused() {
    let asked = Msat::from_msat(21_000);
    let mut t = tx(None, 21_000, None);
    assert!(parse_made(&t, asked).is_err(), "no invoice");
    t.invoice = Some("lnbcrt1garbage".into());
    assert!(parse_made(&t, asked).is_err(), "not a bolt11");
    t.invoice = Some(bolt11([7; 32], 21_000, 1_800_000_000, 300));
    assert!(parse_made(&t, asked).is_ok(), "the genuine one is taken");
    // 20 sats when 21 were asked, the JSON agreeing with the bolt11 or not.
    t.invoice = Some(bolt11([7; 32], 20_000, 1_800_000_000, 300));
    assert!(parse_made(&t, asked).is_err(), "the bolt11 asks less");
    t.amount = Msat::from_msat(20_000);
    assert!(
        parse_made(&t, asked).is_err(),
        "the wallet made a cheaper invoice"
    );
    t.amount = Msat::from_msat(21_000);
    // Another payment hash: a payment to it would never be ours to look up.
    t.invoice = Some(bolt11([9; 32], 21_000, 1_800_000_000, 300));
    assert!(parse_made(&t, asked).is_err(), "another payment hash");
}

/// LNbits' nwcprovider sends no `state`, and `settled_at` (the payment's *creation* time)
/// whenever LNbits no longer calls the payment pending, which includes an expired invoice
/// LNbits marked failed: anyone can make LNbits check it after expiry, and LNbits checks
/// every abandoned one itself. So without `state`, `settled_at` tells a payment only when
/// it is a time before the expiry and we read it before the expiry.
#[test]
fn without_state_settled_at_is_a_payment_only_before_the_expiry() {
    let now = tokio::time::Instant::now();
    let issued = Issued {
        amount: Msat::from_msat(21_000),
        expires: now + Duration::from_secs(60),
    };
    let hash = PaymentHash([7; 32]);
    let paid = InvoiceState::Paid {
        received: Msat::from_msat(21_000),
    };
    let live = |t: &Transaction| judge(&hash, t, Some(&issued), 1_800_000_000, now).unwrap();
    assert_eq!(live(&tx(None, 21_000, Some(1_800_000_000))), paid);
    // Settled after its expiry (2_000_000_000): no payment can have arrived then.
    assert_ne!(live(&tx(None, 21_000, Some(2_000_000_001))), paid);
    // Zero is no time.
    assert_ne!(live(&tx(None, 21_000, Some(0))), paid);
    // No expiry in the reply nor a bolt11: nothing to tell a payment from an expiry.
    let mut no_expiry = tx(None, 21_000, Some(5));
    no_expiry.expires_at = None;
    assert_ne!(live(&no_expiry), paid);
    // Read after our expiry (the watch's grace): an expired invoice LNbits marked failed
    // looks exactly like this, so it is not a payment.
    let later = now + Duration::from_secs(61);
    assert_eq!(
        judge(&hash, &tx(None, 21_000, Some(5)), Some(&issued), 0, later).unwrap(),
        InvoiceState::Expired
    );
    // After a restart (nothing issued): by the wall clock against the reply's expiry...
    let restarted = |t: &Transaction, unix| judge(&hash, t, None, unix, now).unwrap();
    assert_eq!(restarted(&tx(None, 21_000, Some(5)), 1_999_999_999), paid);
    assert_eq!(
        restarted(&tx(None, 21_000, Some(5)), 2_000_000_000),
        InvoiceState::Expired
    );
    // ...or the bolt11's when the reply has none (an hour after 1_800_000_000 here).
    let mut signed = tx(None, 21_000, Some(1_800_000_000));
    signed.expires_at = None;
    signed.invoice = Some(bolt11([7; 32], 21_000, 1_800_000_000, 3600));
    assert_eq!(restarted(&signed, 1_800_003_599), paid);
    assert_eq!(restarted(&signed, 1_800_003_600), InvoiceState::Expired);
    // A state, when sent, is believed: settled is settled whatever settled_at says.
    assert_eq!(live(&tx(Some(NwcState::Settled), 21_000, Some(0))), paid);
}

#[test]
fn after_a_restart_the_signed_bolt11_tells_the_price() {
    let now = tokio::time::Instant::now();
    let hash = PaymentHash([7; 32]);
    let restarted = |t: &Transaction| judge(&hash, t, None, 1_800_000_010, now).unwrap();
    let mut t = tx(Some(NwcState::Settled), 21_000, Some(1_800_000_005));
    t.invoice = Some(bolt11([7; 32], 21_000, 1_800_000_000, 300));
    assert_eq!(
        restarted(&t),
        InvoiceState::Paid {
            received: Msat::from_msat(21_000)
        }
    );
    // Underpaid against the bolt11 after a restart: not paid.
    t.amount = Msat::from_msat(20_999);
    assert_eq!(restarted(&t), InvoiceState::Pending);
    // A bolt11 for another hash tells nothing; the amount is then left to the ledger.
    t.invoice = Some(bolt11([9; 32], 50_000, 1_800_000_000, 300));
    assert_eq!(
        restarted(&t),
        InvoiceState::Paid {
            received: Msat::from_msat(20_999)
        }
    );
}
