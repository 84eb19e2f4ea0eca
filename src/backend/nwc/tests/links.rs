//! Relays that stop reading, go silent (a half-open connection) or flood: the connection
//! is dropped and made again (later each time for a flood), and the machine says it is out
//! of service instead of hanging.

use std::sync::atomic::AtomicBool;

use super::*;

/// The fake relay behind two switches: `stuck`, sends and pings never complete (a relay
/// that stopped reading); `deaf`, nothing arrives, not even a pong (a half-open link).
#[derive(Clone)]
struct Switched {
    relay: FakeRelay,
    stuck: Arc<AtomicBool>,
    deaf: Arc<AtomicBool>,
}

struct SwitchedLink {
    inner: Box<dyn link::Link>,
    stuck: Arc<AtomicBool>,
    deaf: Arc<AtomicBool>,
}

async fn maybe_stuck(stuck: bool) {
    if stuck {
        std::future::pending::<()>().await;
    }
}

#[async_trait]
impl link::Link for SwitchedLink {
    async fn send(&mut self, text: String) -> Result<(), link::LinkError> {
        maybe_stuck(self.stuck.load(Ordering::SeqCst)).await;
        self.inner.send(text).await
    }
    async fn ping(&mut self) -> Result<(), link::LinkError> {
        maybe_stuck(self.stuck.load(Ordering::SeqCst)).await;
        self.inner.ping().await
    }
    async fn recv(&mut self) -> Option<link::Frame> {
        loop {
            let frame = self.inner.recv().await?;
            if !self.deaf.load(Ordering::SeqCst) {
                return Some(frame);
            }
        }
    }
}

#[async_trait]
impl Connector for Switched {
    async fn connect(&self, relay: &Url) -> Result<Box<dyn link::Link>, link::LinkError> {
        Ok(Box::new(SwitchedLink {
            inner: self.relay.connect(relay).await?,
            stuck: self.stuck.clone(),
            deaf: self.deaf.clone(),
        }))
    }
}

fn switched_rig() -> (Rig, Switched) {
    let relay = FakeRelay::new();
    let wallet = FakeWallet::start(
        Arc::new(relay.clone()),
        relay_url(),
        WalletBehaviour::default(),
    );
    let conn = Connection::parse(wallet.uri().expose()).unwrap();
    let relays = relay_list(&conn, &[]).unwrap();
    let switched = Switched {
        relay: relay.clone(),
        stuck: Arc::default(),
        deaf: Arc::default(),
    };
    let backend = Arc::new(NwcBackend::start(
        conn.clone(),
        relays,
        Arc::new(switched.clone()),
        TIMEOUT,
        Arc::new(crate::clock::SystemClock::new(false)),
        timing(),
    ));
    let rig = Rig {
        relay,
        wallet,
        backend,
        conn,
    };
    (rig, switched)
}

#[tokio::test(start_paused = true)]
async fn a_relay_that_stops_reading_is_dropped_and_the_machine_is_out_of_service_not_hung() {
    let (r, sw) = switched_rig();
    settle().await;
    assert!(r.backend.check_health().await.is_ok());
    let connects = r.relay.connects();
    sw.stuck.store(true, Ordering::SeqCst);
    let t0 = tokio::time::Instant::now();
    assert!(r.backend.create_invoice(&request(21)).await.is_err());
    assert!(t0.elapsed() <= TIMEOUT + Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        r.relay.connects() > connects,
        "the stuck connection was dropped and made again"
    );
    assert!(matches!(
        r.backend.check_health().await,
        Err(BackendError::Unreachable(_))
    ));
    // The relay reads again: back in service on its own.
    sw.stuck.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(r.backend.check_health().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_silent_relay_is_pinged_then_dropped_but_a_quiet_live_one_is_kept() {
    let (r, sw) = switched_rig();
    settle().await;
    let connects = r.relay.connects();
    // Ten quiet minutes: the pings are answered, the connection stays.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(r.relay.connects(), connects, "an idle live relay is kept");
    assert!(r.backend.pool().any_up());
    // Half-open: nothing arrives any more, not even a pong.
    sw.deaf.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(80)).await;
    assert!(
        r.relay.connects() > connects,
        "the silent connection was dropped and made again"
    );
    assert!(!r.backend.pool().any_up(), "no EOSE from a deaf relay");
    assert!(r.backend.check_health().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_relay_flooding_by_bytes_under_the_message_count_is_dropped() {
    let r = rig();
    settle().await;
    let connects = r.relay.connects();
    // 25 notices of 200 KiB in one window: far under the message count, over 4 MiB.
    let big = format!("[\"NOTICE\",\"{}\"]", "x".repeat(200 * 1024));
    for _ in 0..25 {
        r.relay.inject(&big).await;
    }
    settle().await;
    let counters = r.backend.pool().counters();
    assert_eq!(counters.floods.load(Ordering::Relaxed), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(r.relay.connects() > connects, "reconnected");
}

#[tokio::test(start_paused = true)]
async fn a_relay_dropped_for_flooding_waits_longer_each_time_even_after_a_stable_spell() {
    let r = rig();
    settle().await;
    let flood = "[\"NOTICE\",\"x\"]";
    // Backoff 0.5 s, then 1 s, then 2 s: each connection lasted past `stable` (10 s),
    // which for any other end would earn the quick reconnect again.
    for round in 0..3 {
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(r.relay.connections(), 2, "round {round}: we and the wallet");
        let connects = r.relay.connects();
        for _ in 0..200 {
            r.relay.inject(flood).await;
        }
        settle().await;
        if round == 2 {
            // Two seconds (and jitter) before the third reconnect, not half a second.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(r.relay.connects(), connects, "still backing off");
        }
    }
    assert_eq!(
        r.backend.pool().counters().floods.load(Ordering::Relaxed),
        3
    );
}

/// A relay URL can carry credentials or a token (`wss://user:pass@host/?token=…`): logs,
/// errors and Debug show its scheme, host and port only.
#[tokio::test(start_paused = true)]
async fn relay_urls_show_only_scheme_host_and_port() {
    let relay = FakeRelay::new();
    let wallet = FakeWallet::start(
        Arc::new(relay.clone()),
        relay_url(),
        WalletBehaviour::default(),
    );
    let private = "wss://user:hunter2@private.test:4443/nostr?token=s3cr3t";
    let encoded: String = url::form_urlencoded::byte_serialize(private.as_bytes()).collect();
    let uri = format!("{}&relay={encoded}", wallet.uri().expose());
    let conn = Connection::parse(&uri).unwrap();
    let conn_debug = format!("{conn:?}");
    let relays = relay_list(&conn, &[private.into()]).unwrap();
    relay.set_down(true);
    let backend = NwcBackend::start(
        conn,
        relays,
        Arc::new(relay.clone()),
        TIMEOUT,
        Arc::new(crate::clock::SystemClock::new(false)),
        timing(),
    );
    settle().await;
    let err = backend.check_health().await.unwrap_err().to_string();
    let debug = format!("{backend:?}");
    let link_err = relay
        .connect(&Url::parse(private).unwrap())
        .await
        .err()
        .unwrap()
        .to_string();
    for shown in [&err, &debug, &link_err, &conn_debug] {
        assert!(shown.contains("wss://private.test:4443"), "{shown}");
        for secret in ["user", "hunter2", "nostr", "token", "s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert!(err.contains("wss://relay.test"), "{err}");
}
