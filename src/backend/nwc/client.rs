//! The relay client of the NWC backend: one task per relay that connects, subscribes (our
//! responses and notifications since a little before now, and the wallet's info event),
//! publishes requests (each send bounded in time), keeps the connection honest (a ping
//! after a quiet spell, dropped after a long silence), and reconnects with backoff and
//! jitter. The routing of what the relays send is in [`route`].
//!
//! Every relay is untrusted. A message is parsed only under the size limit, and an event is
//! read only after its id and signature verified (`parse_relay_message`). The same event
//! from two relays, or replayed by one, is handled once (a bounded set of recent ids). A
//! response goes only to the request its `e` tag names, and only once
//! `Connection::open_response` accepted it (author, `p`, `e`, decryption, result type);
//! anything else is dropped and counted, so a forged reply cannot even end the wait for the
//! real one. A notification becomes at most one queued wake-up per watched invoice: the
//! watcher then asks `lookup_invoice`, so neither a forged nor a replayed notification can
//! pour. A relay that sends more than [`Timing::max_messages`] or [`Timing::max_bytes`] in a
//! window is dropped, and reconnected to later each time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use super::link::{relay_label, Connector, Frame, Link, LinkError};
use crate::clock::Clock;
use crate::nostr::nwc::{
    Connection, NwcError, PaymentHash, Reply, Request, SentRequest, WalletInfo, KIND_INFO,
    KIND_NOTIFICATION_NIP04, KIND_NOTIFICATION_NIP44, KIND_RESPONSE,
};
use crate::nostr::relay::{event_message, req_message, Filter};
use crate::nostr::{Event, EventId};
use route::{handle, Seen};

mod route;

const SUB_NWC: &str = "lnvend-nwc";
const SUB_INFO: &str = "lnvend-info";
/// Frames waiting to go out to one relay; a relay that cannot take them is skipped.
const OUTBOX: usize = 16;
/// Requests waiting for their answer at once.
const MAX_PENDING: usize = 32;
/// Event ids remembered to drop duplicates and replays.
const SEEN: usize = 4096;
/// Invoices watched at once (a vending machine shows one QR; the sweep checks by polling).
const MAX_WATCHED: usize = 64;

/// How the relay client paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A connection that lasted this long earns a quick reconnect after it drops.
    pub stable: Duration,
    /// The subscription's `since` reaches this far back (a reply published just before a
    /// reconnect, clocks a little apart).
    pub since_slack: Duration,
    /// More messages than this from one relay within `window` drops that relay.
    pub max_messages: u32,
    /// More text than this (bytes) from one relay within `window` drops that relay: big
    /// messages under the size limit add up to a lot of parsing and signature checks.
    pub max_bytes: usize,
    pub window: Duration,
    /// A send (or ping) that has not gone out by then drops the connection: a relay that
    /// stops reading would otherwise hold the connection task, and every request, forever.
    pub send_timeout: Duration,
    /// After this long without a frame from the relay, a websocket ping asks if it is there.
    pub ping_after: Duration,
    /// After this long without a frame (the ping unanswered), the connection is taken as
    /// dead: a half-open TCP connection would otherwise look up for many minutes.
    pub silence_limit: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stable: Duration::from_secs(10),
            since_slack: Duration::from_secs(120),
            max_messages: 600,
            max_bytes: 4 << 20,
            window: Duration::from_secs(10),
            send_timeout: Duration::from_secs(10),
            ping_after: Duration::from_secs(30),
            silence_limit: Duration::from_secs(75),
        }
    }
}

/// Why a request got no usable answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no relay is connected")]
    NoRelay,
    #[error("the wallet service's info event (kind 13194) was not found on any relay")]
    NoInfo,
    #[error("the wallet service did not answer within {0:?}")]
    Timeout(Duration),
    #[error("too many requests to the wallet are waiting")]
    Busy,
    #[error(transparent)]
    Nwc(#[from] NwcError),
}

/// What was refused or dropped, for the health line and the tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events that failed NIP-01 checks or NIP-47 checks (signature, author, tags, payload).
    pub refused: AtomicU64,
    /// Events seen before (another relay, or a replay).
    pub duplicates: AtomicU64,
    /// Messages that were not valid relay messages (or over the size limit).
    pub malformed: AtomicU64,
    /// Connections dropped for flooding.
    pub floods: AtomicU64,
    /// Valid notifications about a watched invoice.
    pub notifications: AtomicU64,
}

struct RelayState {
    url: Url,
    /// Our subscription's stored events were all sent (EOSE): the relay answers.
    up: AtomicBool,
    outbox: Mutex<Option<mpsc::Sender<String>>>,
}

struct Pending {
    sent: SentRequest,
    reply: oneshot::Sender<Result<Reply, NwcError>>,
}

struct Shared {
    conn: Connection,
    clock: Arc<dyn Clock>,
    timing: Timing,
    relays: Vec<RelayState>,
    info: watch::Sender<Option<(u64, WalletInfo)>>,
    pending: Mutex<HashMap<EventId, Pending>>,
    watchers: Mutex<HashMap<[u8; 32], Vec<mpsc::Sender<()>>>>,
    seen: Mutex<Seen>,
    /// When the wallet last answered a request of ours (any valid reply, errors included).
    last_answer: Mutex<Option<Instant>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The relays of one wallet connection. Dropping it stops every relay task.
pub struct RelayPool {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RelayPool {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RelayPool {
    /// Starts one task per relay (call inside a tokio runtime).
    pub fn start(
        conn: Connection,
        relays: Vec<Url>,
        connector: Arc<dyn Connector>,
        clock: Arc<dyn Clock>,
        timing: Timing,
    ) -> RelayPool {
        let (info, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            conn,
            clock,
            timing,
            relays: relays
                .into_iter()
                .map(|url| RelayState {
                    url,
                    up: AtomicBool::new(false),
                    outbox: Mutex::new(None),
                })
                .collect(),
            info,
            pending: Mutex::new(HashMap::new()),
            watchers: Mutex::new(HashMap::new()),
            seen: Mutex::new(Seen::default()),
            last_answer: Mutex::new(None),
            counters: Counters::default(),
        });
        let tasks = (0..shared.relays.len())
            .map(|i| tokio::spawn(relay_task(shared.clone(), connector.clone(), i)))
            .collect();
        RelayPool { shared, tasks }
    }

    /// Each relay and whether it answers now.
    pub fn status(&self) -> Vec<(Url, bool)> {
        self.shared
            .relays
            .iter()
            .map(|r| (r.url.clone(), r.up.load(Ordering::SeqCst)))
            .collect()
    }

    pub fn any_up(&self) -> bool {
        self.shared
            .relays
            .iter()
            .any(|r| r.up.load(Ordering::SeqCst))
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// When the wallet last answered one of our requests.
    pub fn last_answer(&self) -> Option<Instant> {
        *lock(&self.shared.last_answer)
    }

    /// The wallet's info, waiting up to `wait` for its event.
    pub async fn info(&self, wait: Duration) -> Result<WalletInfo, RequestError> {
        let mut rx = self.shared.info.subscribe();
        let got = tokio::time::timeout(wait, rx.wait_for(|i| i.is_some())).await;
        match got {
            Ok(Ok(v)) => v
                .as_ref()
                .map(|(_, i)| i.clone())
                .ok_or(RequestError::NoInfo),
            Ok(Err(_)) | Err(_) => Err(RequestError::NoInfo),
        }
    }

    /// Sends `request` to the wallet and waits up to `timeout` for its checked reply.
    pub async fn request(
        &self,
        request: &Request,
        timeout: Duration,
    ) -> Result<Reply, RequestError> {
        let started = Instant::now();
        let info = self.info(timeout).await?;
        let encryption = info.encryption()?;
        let now = self.shared.clock.unix();
        // The wallet ignores a request it reads after this (NIP-47 `expiration`).
        let expiration = now + timeout.as_secs() + 1;
        let sent = self
            .shared
            .conn
            .request(request, encryption, now, Some(expiration))?;
        let (tx, rx) = oneshot::channel();
        let id = sent.id();
        let event = sent.event.clone();
        {
            let mut pending = lock(&self.shared.pending);
            if pending.len() >= MAX_PENDING {
                return Err(RequestError::Busy);
            }
            pending.insert(id, Pending { sent, reply: tx });
        }
        // Removes the entry however this future ends (answered, timed out, or dropped).
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        if self.publish(&event) == 0 {
            return Err(RequestError::NoRelay);
        }
        let left = timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, rx).await {
            Ok(Ok(result)) => Ok(result?),
            Ok(Err(_)) | Err(_) => Err(RequestError::Timeout(timeout)),
        }
    }

    /// Puts `event` in the outbox of every connected relay; how many took it.
    fn publish(&self, event: &Event) -> usize {
        let text = event_message(event);
        self.shared
            .relays
            .iter()
            .filter(|r| {
                lock(&r.outbox)
                    .as_ref()
                    .is_some_and(|tx| tx.try_send(text.clone()).is_ok())
            })
            .count()
    }

    /// Wake-ups for the invoice `hash` from the wallet's notifications; `None` while no
    /// relay is up. The channel closes when the last relay drops.
    pub fn wake_ups(&self, hash: &PaymentHash) -> Option<mpsc::Receiver<()>> {
        if !self.any_up() {
            return None;
        }
        let (tx, rx) = mpsc::channel(1);
        let mut watchers = lock(&self.shared.watchers);
        watchers.retain(|_, v| {
            v.retain(|s| !s.is_closed());
            !v.is_empty()
        });
        if watchers.len() >= MAX_WATCHED && !watchers.contains_key(&hash.0) {
            return None;
        }
        watchers.entry(hash.0).or_default().push(tx);
        Some(rx)
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    id: EventId,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

/// Up to a quarter more, so machines behind one relay do not reconnect in lockstep.
fn jitter(d: Duration) -> Duration {
    d + d.mul_f64(rand::random::<f64>() * 0.25)
}

async fn relay_task(shared: Arc<Shared>, connector: Arc<dyn Connector>, index: usize) {
    let url = shared.relays[index].url.clone();
    let label = relay_label(&url);
    let mut backoff = shared.timing.backoff_min;
    loop {
        match connector.connect(&url).await {
            Ok(link) => {
                tracing::info!(relay = %label, "NWC relay connected");
                let since = Instant::now();
                let why = run_link(&shared, index, link).await;
                set_down(&shared, index);
                tracing::warn!(relay = %label, reason = why, "NWC relay connection ended");
                // A relay dropped for flooding earns no quick reconnect, however long it
                // behaved first: it would flood again at once, every half second.
                if why != FLOODED && since.elapsed() >= shared.timing.stable {
                    backoff = shared.timing.backoff_min;
                }
            }
            Err(e) => tracing::warn!(relay = %label, error = %e, "NWC relay unreachable"),
        }
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(shared.timing.backoff_max);
    }
}

fn set_down(shared: &Shared, index: usize) {
    let relay = &shared.relays[index];
    relay.up.store(false, Ordering::SeqCst);
    *lock(&relay.outbox) = None;
    if !shared.relays.iter().any(|r| r.up.load(Ordering::SeqCst)) {
        // Closing every wake-up stream tells the watchers to poll.
        lock(&shared.watchers).clear();
    }
}

/// Runs one connection until it ends; returns why.
async fn run_link(shared: &Shared, index: usize, mut link: Box<dyn Link>) -> &'static str {
    let conn = &shared.conn;
    let since = shared
        .clock
        .unix()
        .saturating_sub(shared.timing.since_slack.as_secs());
    let nwc = Filter {
        kinds: vec![
            KIND_RESPONSE,
            KIND_NOTIFICATION_NIP04,
            KIND_NOTIFICATION_NIP44,
        ],
        authors: vec![conn.wallet()],
        p_tags: vec![conn.client()],
        since: Some(since),
        ..Filter::default()
    };
    let info = Filter {
        kinds: vec![KIND_INFO],
        authors: vec![conn.wallet()],
        limit: Some(1),
        ..Filter::default()
    };
    let timing = &shared.timing;
    for text in [req_message(SUB_NWC, &[nwc]), req_message(SUB_INFO, &[info])] {
        if let Err(why) = bounded(timing, link.send(text)).await {
            return why;
        }
    }
    let (tx, mut outbox) = mpsc::channel::<String>(OUTBOX);
    *lock(&shared.relays[index].outbox) = Some(tx);
    let mut window_start = Instant::now();
    let mut in_window = 0u32;
    let mut bytes_in_window = 0usize;
    // Quiet until `quiet_until`: a ping then, and the connection dropped if still nothing
    // comes by `silence_limit` after the last frame (counted from the ping, so a clock
    // jump past both does not drop a connection whose pong is on its way).
    let mut quiet_until = Instant::now() + timing.ping_after;
    let mut pinged = false;
    loop {
        tokio::select! {
            out = outbox.recv() => {
                let Some(out) = out else { return "outbox closed" };
                if let Err(why) = bounded(timing, link.send(out)).await {
                    return why;
                }
            }
            () = tokio::time::sleep_until(quiet_until) => {
                if pinged {
                    return "silent for too long (no answer to a ping)";
                }
                pinged = true;
                quiet_until = Instant::now() + timing.silence_limit.saturating_sub(timing.ping_after);
                if let Err(why) = bounded(timing, link.ping()).await {
                    return why;
                }
            }
            msg = link.recv() => {
                let Some(frame) = msg else { return "closed by the relay or over the size limit" };
                quiet_until = Instant::now() + timing.ping_after;
                pinged = false;
                if window_start.elapsed() >= timing.window {
                    window_start = Instant::now();
                    in_window = 0;
                    bytes_in_window = 0;
                }
                in_window += 1;
                if let Frame::Text(text) = &frame {
                    bytes_in_window = bytes_in_window.saturating_add(text.len());
                }
                if in_window > timing.max_messages || bytes_in_window > timing.max_bytes {
                    shared.counters.floods.fetch_add(1, Ordering::Relaxed);
                    return FLOODED;
                }
                let Frame::Text(text) = frame else { continue };
                if let Some(end) = handle(shared, index, &text) {
                    return end;
                }
            }
        }
    }
}

/// Why a connection dropped for flooding (no quick reconnect after it).
const FLOODED: &str = "flooded";

/// A send or ping, given at most [`Timing::send_timeout`].
async fn bounded(
    timing: &Timing,
    io: impl std::future::Future<Output = Result<(), LinkError>>,
) -> Result<(), &'static str> {
    match tokio::time::timeout(timing.send_timeout, io).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("send failed"),
        Err(_) => Err("send timed out"),
    }
}
