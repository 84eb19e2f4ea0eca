//! Hold invoices over NWC against the in-memory relay and the fake wallet (with its hold
//! methods): held only on a signed lookup that says `accepted` for the price, taken or given
//! back as lnvend says, never used on a wallet or connection that does not offer them, and
//! never woken into a pour by a notification alone.

use super::judge::tx;
use super::*;
use crate::backend::hold::{resolve, Outcome, Resolution};
use crate::backend::{HoldState, HoldSupport, PaymentHash as HoldHash, Preimage};
use crate::nostr::nwc::KIND_NOTIFICATION_NIP44;
use fake::HoldStatus;

fn holding() -> WalletBehaviour {
    WalletBehaviour {
        holds: true,
        ..WalletBehaviour::default()
    }
}

/// A hold invoice for 21 sat, checked as the controller checks it.
async fn held_invoice(r: &Rig) -> (Invoice, Preimage, HoldHash) {
    let pre = Preimage::random();
    let req = request(21);
    let inv = r.backend.create_hold_invoice(&req, &pre).await.unwrap();
    inv.check_hold(&req, &pre, Network::Regtest, SystemTime::now())
        .expect("the BOLT11 is for lnvend's preimage and the price");
    let hash = pre.payment_hash();
    (inv, pre, hash)
}

#[tokio::test(start_paused = true)]
async fn a_held_payment_is_taken_on_settle_and_given_back_on_cancel_as_the_wallet_confirms() {
    let r = rig_with(holding(), None);
    settle().await;
    assert_eq!(r.backend.hold_support().await.unwrap(), HoldSupport::Yes);

    let (inv, pre, hash) = held_invoice(&r).await;
    assert_eq!(r.backend.hold_state(&hash).await.unwrap(), HoldState::Open);
    // Settling an unpaid hold takes nothing.
    assert_eq!(
        resolve(r.backend.as_ref(), &hash, &pre, Resolution::Settle)
            .await
            .unwrap(),
        Outcome::NotPaid
    );
    assert!(r.wallet.pay(&inv.payment_hash).await);
    assert_eq!(
        r.backend.hold_state(&hash).await.unwrap(),
        HoldState::Accepted { htlc_expiry: None }
    );
    assert_eq!(
        r.wallet.hold_status(&inv.payment_hash),
        Some(HoldStatus::Accepted),
        "held, not taken, before lnvend settles"
    );
    assert_eq!(
        resolve(r.backend.as_ref(), &hash, &pre, Resolution::Settle)
            .await
            .unwrap(),
        Outcome::Settled
    );
    assert_eq!(
        r.wallet.hold_status(&inv.payment_hash),
        Some(HoldStatus::Settled)
    );

    // Another sale whose pour cannot happen: the money goes back.
    let (inv2, pre2, hash2) = held_invoice(&r).await;
    assert!(r.wallet.pay(&inv2.payment_hash).await);
    assert_eq!(
        resolve(r.backend.as_ref(), &hash2, &pre2, Resolution::Cancel)
            .await
            .unwrap(),
        Outcome::Canceled
    );
    assert_eq!(
        r.wallet.hold_status(&inv2.payment_hash),
        Some(HoldStatus::Canceled)
    );
    assert!(
        !r.wallet.pay(&inv2.payment_hash).await,
        "a cancelled hold takes no payment"
    );
    // A settle asked after the cancel ends as what the wallet did: returned.
    assert_eq!(
        resolve(r.backend.as_ref(), &hash2, &pre2, Resolution::Settle)
            .await
            .unwrap(),
        Outcome::Canceled
    );
    // The wrong preimage is never sent.
    assert!(matches!(
        r.backend.settle_hold(&hash2, &pre).await,
        Err(BackendError::Rejected(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn holds_are_not_used_where_the_wallet_does_not_list_them_or_refuses_this_connection() {
    let plain = rig();
    settle().await;
    match plain.backend.hold_support().await.unwrap() {
        HoldSupport::No(why) => assert!(why.contains("make_hold_invoice"), "{why}"),
        HoldSupport::Yes => panic!("a wallet without hold methods"),
    }
    // Listed (as LNbits' nwcprovider lists every method), but refused for this connection:
    // the machine keeps selling the plain way rather than failing at the first tap.
    let restricted = rig_with(
        WalletBehaviour {
            holds_restricted: true,
            ..holding()
        },
        None,
    );
    settle().await;
    match restricted.backend.hold_support().await.unwrap() {
        HoldSupport::No(why) => assert!(why.contains("Restricted"), "{why}"),
        HoldSupport::Yes => panic!("a connection that may not hold"),
    }
    assert!(restricted
        .backend
        .create_invoice(&request(21))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_accepted_notification_only_wakes_and_a_forged_one_wakes_nothing() {
    let r = rig_with(holding(), None);
    settle().await;
    let (inv, _pre, hash) = held_invoice(&r).await;
    let mut wake = r.backend.wake_ups(&inv.id).await.unwrap();
    // A stranger's "hold_invoice_accepted": refused, no wake-up.
    let stranger = Keys::generate();
    let body = serde_json::json!({"notification_type": "hold_invoice_accepted",
        "notification": {"type": "incoming", "state": "accepted",
                         "payment_hash": inv.payment_hash, "amount": 21000}});
    let forged = wallet_event(
        &stranger,
        KIND_NOTIFICATION_NIP44,
        vec![vec!["p".into(), r.conn.client().to_hex()]],
        nip44::encrypt(
            &ConversationKey::new(&stranger, &r.conn.client()),
            &body.to_string(),
        )
        .unwrap(),
    );
    r.relay.inject(&frame(&forged)).await;
    settle().await;
    assert!(wake.try_recv().is_err(), "no wake-up from a forgery");
    // The wallet's own notification for an unpaid hold wakes; the lookup says open.
    r.wallet
        .notify_as(&inv.payment_hash, "hold_invoice_accepted")
        .await;
    settle().await;
    assert_eq!(wake.try_recv(), Ok(()));
    assert_eq!(r.backend.hold_state(&hash).await.unwrap(), HoldState::Open);
    // The real payment: woken, and the lookup says held.
    assert!(r.wallet.pay(&inv.payment_hash).await);
    settle().await;
    assert_eq!(wake.try_recv(), Ok(()));
    assert!(matches!(
        r.backend.hold_state(&hash).await.unwrap(),
        HoldState::Accepted { .. }
    ));
}

#[test]
fn a_lookup_says_held_only_for_an_incoming_invoice_accepted_for_the_price() {
    let h = PaymentHash([7; 32]);
    let price = Some(Msat::from_msat(21_000));
    let judge = |t: &Transaction| crate::backend::nwc::hold::judge_hold(&h, t, price);
    assert_eq!(
        judge(&tx(Some(NwcState::Accepted), 21_000, None)).unwrap(),
        HoldState::Accepted { htlc_expiry: None }
    );
    // Held for less than the price: not a pour (left open, so a cancel returns it).
    assert_eq!(
        judge(&tx(Some(NwcState::Accepted), 20_999, None)).unwrap(),
        HoldState::Open
    );
    assert_eq!(
        judge(&tx(Some(NwcState::Settled), 21_000, Some(5))).unwrap(),
        HoldState::Settled
    );
    assert!(judge(&tx(Some(NwcState::Settled), 1, Some(5))).is_err());
    // A wallet without `state`: only settled_at tells (it cannot say "held").
    assert_eq!(
        judge(&tx(None, 21_000, Some(5))).unwrap(),
        HoldState::Settled
    );
    assert_eq!(judge(&tx(None, 21_000, None)).unwrap(), HoldState::Open);
    // ...and not a zero one nor one after the expiry (an expired invoice's, see judge).
    assert_eq!(judge(&tx(None, 21_000, Some(0))).unwrap(), HoldState::Open);
    assert_eq!(
        judge(&tx(None, 21_000, Some(2_000_000_001))).unwrap(),
        HoldState::Open
    );
    assert_eq!(
        judge(&tx(Some(NwcState::Pending), 21_000, None)).unwrap(),
        HoldState::Open
    );
    for gone in [NwcState::Failed, NwcState::Expired] {
        assert_eq!(
            judge(&tx(Some(gone), 21_000, None)).unwrap(),
            HoldState::Canceled
        );
    }
    assert!(judge(&tx(Some(NwcState::Unknown), 21_000, None)).is_err());
    let mut outgoing = tx(Some(NwcState::Accepted), 21_000, None);
    outgoing.direction = Some(Direction::Outgoing);
    assert!(judge(&outgoing).is_err());
    let other = crate::backend::nwc::hold::judge_hold(
        &PaymentHash([8; 32]),
        &tx(Some(NwcState::Accepted), 21_000, None),
        price,
    );
    assert!(matches!(other, Err(BackendError::BadReply(_))));
}
