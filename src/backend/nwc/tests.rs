//! The NWC backend against the in-memory relay and the fake wallet service: what pours,
//! what never does (forged, replayed, misdirected, underpaid), and how it fails (silent
//! wallet, relay down, wrong secret, flood, oversized messages).

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::fake::{FakeRelay, FakeWallet, WalletBehaviour};
use super::*;
use crate::backend::watch::{watch_invoice, WatchOutcome, WatchTiming};
use crate::config::Network;
use crate::nostr::nip44::{self, ConversationKey};
use crate::nostr::nwc::{KIND_NOTIFICATION_NIP44, KIND_REQUEST, KIND_RESPONSE};
use crate::nostr::relay::MAX_RELAY_MESSAGE;
use crate::nostr::{Event, Keys, UnsignedEvent};

mod hold;
mod judge;
mod links;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Rig {
    relay: FakeRelay,
    wallet: FakeWallet,
    backend: Arc<NwcBackend>,
    conn: Connection,
}

fn relay_url() -> Url {
    Url::parse("wss://relay.test/").unwrap()
}

fn timing() -> Timing {
    Timing {
        max_messages: 100,
        ..Timing::default()
    }
}

fn rig_with(behaviour: WalletBehaviour, secret: Option<&str>) -> Rig {
    let relay = FakeRelay::new();
    let wallet = FakeWallet::start(Arc::new(relay.clone()), relay_url(), behaviour);
    let uri = match secret {
        Some(s) => wallet.uri_with_secret(s),
        None => wallet.uri(),
    };
    let conn = Connection::parse(uri.expose()).unwrap();
    let relays = relay_list(&conn, &[]).unwrap();
    let backend = Arc::new(NwcBackend::start(
        conn.clone(),
        relays,
        Arc::new(relay.clone()),
        TIMEOUT,
        Arc::new(crate::clock::SystemClock::new(false)),
        timing(),
    ));
    Rig {
        relay,
        wallet,
        backend,
        conn,
    }
}

fn rig() -> Rig {
    rig_with(WalletBehaviour::default(), None)
}

fn request(sat: u64) -> InvoiceRequest {
    InvoiceRequest {
        sale_id: "s1".into(),
        machine_id: "bar-1".into(),
        product: "Cola".into(),
        price: Price::Sats(Msat::from_sat(sat).unwrap()),
        description: "Cola at bar-1".into(),
        expiry: Duration::from_secs(300),
    }
}

/// Lets the tasks run until the relay connection and the info event are through.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn wallet_event(keys: &Keys, kind: u16, tags: Vec<Vec<String>>, content: String) -> Event {
    UnsignedEvent {
        created_at: crate::clock::unix_of(SystemTime::now()),
        kind,
        tags,
        content,
    }
    .sign(keys)
    .unwrap()
}

fn notification(keys: &Keys, conn: &Connection, hash: &str, n: u32) -> Event {
    let body = serde_json::json!({"notification_type": "payment_received",
        "notification": {"type": "incoming", "payment_hash": hash, "amount": 21000, "n": n}});
    let content = nip44::encrypt(
        &ConversationKey::new(keys, &conn.client()),
        &body.to_string(),
    )
    .unwrap();
    wallet_event(
        keys,
        KIND_NOTIFICATION_NIP44,
        vec![vec!["p".into(), conn.client().to_hex()]],
        content,
    )
}

fn frame(event: &Event) -> String {
    serde_json::json!(["EVENT", "lnvend-nwc", event.to_value()]).to_string()
}

#[tokio::test(start_paused = true)]
async fn a_paid_invoice_is_paid_only_once_a_signed_lookup_says_settled() {
    let r = rig();
    settle().await;
    let req = request(21);
    let inv = r.backend.create_invoice(&req).await.unwrap();
    inv.check(&req, Network::Regtest, SystemTime::now())
        .expect("the BOLT11 is what was asked");
    assert_eq!(inv.amount, Msat::from_sat(21).unwrap());
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Pending
    );
    assert!(r.wallet.pay(&inv.payment_hash).await);
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Paid {
            received: Msat::from_sat(21).unwrap()
        }
    );
    // The wallet listed NIP-44: every request used it.
    let requests: Vec<Event> = r
        .relay
        .published()
        .into_iter()
        .filter(|e| e.kind() == KIND_REQUEST)
        .collect();
    assert_eq!(requests.len(), 3);
    assert!(requests
        .iter()
        .all(|e| e.tag_values("encryption").any(|v| v == "nip44_v2")
            && !e.content().contains("?iv=")));
    assert!(r.backend.check_health().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_nip04_wallet_without_state_or_notifications_is_polled_and_read_by_settled_at() {
    let r = rig_with(
        WalletBehaviour {
            encryption: None,
            notifications: false,
            omit_state: true,
            ..WalletBehaviour::default()
        },
        None,
    );
    settle().await;
    let inv = r.backend.create_invoice(&request(5)).await.unwrap();
    assert!(matches!(
        r.backend.wake_ups(&inv.id).await,
        Err(BackendError::Unreachable(_))
    ));
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Pending
    );
    r.wallet.pay(&inv.payment_hash).await;
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Paid {
            received: Msat::from_sat(5).unwrap()
        }
    );
    let req = r
        .relay
        .published()
        .into_iter()
        .find(|e| e.kind() == KIND_REQUEST)
        .unwrap();
    assert!(
        req.content().contains("?iv="),
        "NIP-04 without an encryption tag"
    );
    assert_eq!(req.tag_values("encryption").count(), 0);
}

/// LNbits marks an expired invoice failed (anyone can make it check, after the expiry, and
/// it checks abandoned ones itself), and nwcprovider then sends `settled_at` with no
/// `state`, like a payment. The watch's grace and the late sweep both ask `invoice_state`.
#[tokio::test(start_paused = true)]
async fn an_expired_unpaid_invoice_lnbits_marked_failed_is_not_paid() {
    let r = rig_with(
        WalletBehaviour {
            encryption: None,
            notifications: false,
            omit_state: true,
            ..WalletBehaviour::default()
        },
        None,
    );
    settle().await;
    let inv = r.backend.create_invoice(&request(5)).await.unwrap();
    tokio::time::advance(Duration::from_secs(301)).await;
    assert!(r.wallet.expire(&inv.payment_hash));
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Expired
    );
}

#[tokio::test(start_paused = true)]
async fn a_notification_only_wakes_and_the_watch_pours_on_the_lookup() {
    let r = rig();
    settle().await;
    let inv = r.backend.create_invoice(&request(21)).await.unwrap();
    let mut wake = r.backend.wake_ups(&inv.id).await.unwrap();
    // A genuine notification for an unpaid invoice: a wake-up, and still not paid.
    r.wallet.notify(&inv.payment_hash).await;
    settle().await;
    assert_eq!(wake.try_recv(), Ok(()));
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Pending
    );
    drop(wake);

    let expires = tokio::time::Instant::now() + Duration::from_secs(300);
    let watch = tokio::spawn(watch_invoice(
        r.backend.clone(),
        inv.clone(),
        expires,
        WatchTiming::default(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!watch.is_finished());
    let t0 = tokio::time::Instant::now();
    r.wallet.pay(&inv.payment_hash).await;
    assert_eq!(watch.await.unwrap(), WatchOutcome::Paid);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "the notification made the watcher ask at once, not at the next poll"
    );
}

#[tokio::test(start_paused = true)]
async fn forged_replayed_and_misdirected_events_pour_nothing() {
    let r = rig();
    settle().await;
    let inv = r.backend.create_invoice(&request(21)).await.unwrap();
    let hash = inv.payment_hash.clone();
    let mut wake = r.backend.wake_ups(&inv.id).await.unwrap();

    // A notification signed by someone else, and one whose content was edited after the
    // wallet signed it: refused, no wake-up.
    let stranger = Keys::generate();
    r.relay
        .inject(&frame(&notification(&stranger, &r.conn, &hash, 1)))
        .await;
    let genuine = notification(&r.wallet.keys(), &r.conn, &hash, 2);
    let mut edited = genuine.to_value();
    edited["content"] = "AAAA".into();
    r.relay
        .inject(&serde_json::json!(["EVENT", "lnvend-nwc", edited]).to_string())
        .await;
    settle().await;
    assert!(wake.try_recv().is_err(), "no wake-up from a forgery");
    let counters = r.backend.pool().counters();
    assert_eq!(counters.refused.load(Ordering::Relaxed), 1);
    assert_eq!(counters.malformed.load(Ordering::Relaxed), 1);

    // The genuine one wakes once; its replay is a duplicate.
    r.relay.inject(&frame(&genuine)).await;
    r.relay.inject(&frame(&genuine)).await;
    settle().await;
    assert_eq!(wake.try_recv(), Ok(()));
    assert!(wake.try_recv().is_err());
    assert!(counters.duplicates.load(Ordering::Relaxed) >= 1);

    // While the wallet is silent, a lookup gets forged answers only: signed by a stranger,
    // p-tagged to another client, or a replay of the wallet's earlier reply (another
    // request). None is taken; the lookup times out.
    let earlier_reply = r
        .relay
        .published()
        .into_iter()
        .find(|e| e.kind() == KIND_RESPONSE)
        .unwrap();
    r.wallet.set_answers(false);
    let backend = r.backend.clone();
    let id = inv.id.clone();
    let lookup = tokio::spawn(async move { backend.invoice_state(&id).await });
    settle().await;
    let ours = r
        .relay
        .published()
        .into_iter()
        .rev()
        .find(|e| e.kind() == KIND_REQUEST)
        .unwrap();
    let settled = serde_json::json!({"result_type": "lookup_invoice", "result": {
        "type": "incoming", "state": "settled", "payment_hash": hash,
        "amount": 21000, "created_at": 1, "settled_at": 2}});
    let reply = |keys: &Keys, p: &str| {
        let content = nip44::encrypt(
            &ConversationKey::new(keys, &r.conn.client()),
            &settled.to_string(),
        )
        .unwrap();
        wallet_event(
            keys,
            KIND_RESPONSE,
            vec![
                vec!["p".into(), p.to_string()],
                vec!["e".into(), ours.id().to_hex()],
            ],
            content,
        )
    };
    let us = r.conn.client().to_hex();
    let other = Keys::generate().public_key().to_hex();
    for forged in [
        reply(&stranger, &us),
        reply(&r.wallet.keys(), &other),
        earlier_reply,
    ] {
        r.relay.inject(&frame(&forged)).await;
    }
    let state = lookup.await.unwrap();
    assert!(
        matches!(state, Err(BackendError::Unreachable(_))),
        "{state:?}"
    );
    // The wallet speaks again: the invoice is still unpaid.
    r.wallet.set_answers(true);
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Pending
    );
}

/// The wallet's genuine, signed "settled" `lookup_invoice` reply for invoice A, replayed
/// while B is looked up: it answers another request (and another hash), so B stays unpaid.
#[tokio::test(start_paused = true)]
async fn a_settled_lookup_reply_for_one_invoice_replayed_to_anothers_lookup_pours_nothing() {
    let r = rig();
    settle().await;
    let a = r.backend.create_invoice(&request(21)).await.unwrap();
    let b = r.backend.create_invoice(&request(21)).await.unwrap();
    r.wallet.pay(&a.payment_hash).await;
    assert!(matches!(
        r.backend.invoice_state(&a.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
    let a_settled = r
        .relay
        .published()
        .into_iter()
        .rev()
        .find(|e| e.kind() == KIND_RESPONSE)
        .unwrap();
    r.wallet.set_answers(false);
    let backend = r.backend.clone();
    let id = b.id.clone();
    let lookup = tokio::spawn(async move { backend.invoice_state(&id).await });
    settle().await;
    r.relay.inject(&frame(&a_settled)).await;
    let state = lookup.await.unwrap();
    assert!(
        matches!(state, Err(BackendError::Unreachable(_))),
        "{state:?}"
    );
    r.wallet.set_answers(true);
    assert_eq!(
        r.backend.invoice_state(&b.id).await.unwrap(),
        InvoiceState::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_notifications_is_one_wake_up_and_a_flooding_relay_is_dropped() {
    let r = rig();
    settle().await;
    let inv = r.backend.create_invoice(&request(21)).await.unwrap();
    let mut wake = r.backend.wake_ups(&inv.id).await.unwrap();
    let keys = r.wallet.keys();
    for n in 0..50 {
        r.relay
            .inject(&frame(&notification(&keys, &r.conn, &inv.payment_hash, n)))
            .await;
    }
    settle().await;
    assert_eq!(wake.try_recv(), Ok(()));
    assert!(wake.try_recv().is_err(), "50 notifications, one wake-up");

    // Past the per-window limit the relay is dropped; the client reconnects.
    let connects = r.relay.connects();
    let one = frame(&notification(&keys, &r.conn, &inv.payment_hash, 99));
    for _ in 0..200 {
        r.relay.inject(&one).await;
    }
    settle().await;
    let counters = r.backend.pool().counters();
    assert!(counters.floods.load(Ordering::Relaxed) >= 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(r.relay.connects() > connects, "reconnected");
    // And the machine still sells.
    r.wallet.pay(&inv.payment_hash).await;
    assert!(matches!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn an_oversized_or_malformed_message_is_ignored() {
    let r = rig();
    settle().await;
    let big = format!("[\"NOTICE\",\"{}\"]", "x".repeat(MAX_RELAY_MESSAGE));
    r.relay.inject(&big).await;
    r.relay.inject("not json").await;
    r.relay.inject("[\"EVENT\",\"lnvend-nwc\",{}]").await;
    settle().await;
    let counters = r.backend.pool().counters();
    assert_eq!(counters.malformed.load(Ordering::Relaxed), 3);
    let inv = r.backend.create_invoice(&request(1)).await.unwrap();
    assert_eq!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn a_wallet_that_never_answers_is_out_of_service_not_a_hang() {
    let r = rig();
    settle().await;
    r.wallet.set_answers(false);
    let t0 = tokio::time::Instant::now();
    assert!(matches!(
        r.backend.check_health().await,
        Err(BackendError::Unreachable(_))
    ));
    assert!(t0.elapsed() <= TIMEOUT + Duration::from_millis(100));
    assert!(matches!(
        r.backend.create_invoice(&request(1)).await,
        Err(BackendError::Unreachable(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_wrong_secret_is_unauthorized_and_never_shown() {
    let wrong = "00000000000000000000000000000000000000000000000000000000000000c1";
    let r = rig_with(WalletBehaviour::default(), Some(wrong));
    settle().await;
    let e = r.backend.check_health().await.unwrap_err();
    assert!(matches!(e, BackendError::Unauthorized(_)), "{e}");
    assert!(!e.to_string().contains(wrong));
    assert!(!format!("{:?}", r.backend).contains(wrong));
    assert!(r.backend.create_invoice(&request(1)).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_relay_outage_closes_the_wake_ups_and_a_payment_during_it_is_found_after() {
    let r = rig();
    settle().await;
    let inv = r.backend.create_invoice(&request(21)).await.unwrap();
    let mut wake = r.backend.wake_ups(&inv.id).await.unwrap();
    r.relay.set_down(true);
    settle().await;
    assert_eq!(wake.recv().await, None, "the watcher is told to poll");
    assert!(matches!(
        r.backend.check_health().await,
        Err(BackendError::Unreachable(_))
    ));
    assert!(r.backend.wake_ups(&inv.id).await.is_err());
    // Paid while the relay is down (the wallet's notification is lost).
    r.wallet.pay(&inv.payment_hash).await;
    r.relay.set_down(false);
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert!(r.backend.pool().any_up());
    assert!(matches!(
        r.backend.invoice_state(&inv.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
}

/// A relay that records what the client sends and never answers.
#[derive(Clone, Default)]
struct Recording {
    sent: Arc<std::sync::Mutex<Vec<String>>>,
}

struct RecordingLink(Arc<std::sync::Mutex<Vec<String>>>);

#[async_trait]
impl link::Link for RecordingLink {
    async fn send(&mut self, text: String) -> Result<(), link::LinkError> {
        self.0.lock().unwrap().push(text);
        Ok(())
    }
    async fn ping(&mut self) -> Result<(), link::LinkError> {
        Ok(())
    }
    async fn recv(&mut self) -> Option<link::Frame> {
        std::future::pending().await
    }
}

#[async_trait]
impl Connector for Recording {
    async fn connect(&self, _: &Url) -> Result<Box<dyn link::Link>, link::LinkError> {
        Ok(Box::new(RecordingLink(self.sent.clone())))
    }
}

#[tokio::test(start_paused = true)]
async fn the_subscription_asks_for_our_replies_and_notifications_since_just_before_now() {
    let wallet = Keys::generate().public_key();
    let conn = Connection::parse(&format!(
        "nostr+walletconnect://{wallet}?relay=wss://a.example&secret={}",
        "2".repeat(64)
    ))
    .unwrap();
    let rec = Recording::default();
    let clock = Arc::new(crate::clock::SystemClock::new(false));
    let now = clock.unix();
    let _pool = RelayPool::start(
        conn.clone(),
        conn.relays().to_vec(),
        Arc::new(rec.clone()),
        clock,
        Timing::default(),
    );
    settle().await;
    let sent = rec.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let req: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
    assert_eq!(req[0], "REQ");
    let f = &req[2];
    assert_eq!(f["kinds"], serde_json::json!([23195, 23196, 23197]));
    assert_eq!(f["authors"], serde_json::json!([wallet.to_hex()]));
    assert_eq!(f["#p"], serde_json::json!([conn.client().to_hex()]));
    let since = f["since"].as_u64().unwrap();
    assert!(
        since <= now && since + 180 >= now,
        "since {since}, now {now}"
    );
    let info: serde_json::Value = serde_json::from_str(&sent[1]).unwrap();
    assert_eq!(info[2]["kinds"], serde_json::json!([13194]));
    assert_eq!(info[2]["authors"], serde_json::json!([wallet.to_hex()]));
}

#[test]
fn extra_relays_are_checked_and_merged_without_repeats() {
    let w = Keys::generate().public_key();
    let conn = Connection::parse(&format!(
        "nostr+walletconnect://{w}?relay=wss://a.example&secret={}",
        "1".repeat(64)
    ))
    .unwrap();
    let list = relay_list(
        &conn,
        &["wss://a.example".into(), "ws://127.0.0.1:6969".into()],
    )
    .unwrap();
    let list: Vec<&str> = list.iter().map(Url::as_str).collect();
    assert_eq!(list, ["wss://a.example/", "ws://127.0.0.1:6969/"]);
    assert!(matches!(
        relay_list(&conn, &["https://a.example".into()]),
        Err(BackendError::Config(_))
    ));
    let many: Vec<String> = (0..MAX_RELAYS)
        .map(|i| format!("wss://r{i}.example"))
        .collect();
    assert!(relay_list(&conn, &many).is_err());
}
