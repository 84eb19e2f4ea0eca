//! systemd's service notification protocol (`sd_notify`), written out because it is one
//! datagram: `READY=1` once the touchscreen is up, `STOPPING=1` on the way out, and
//! `WATCHDOG=1` only while the machine proves it is alive.
//!
//! The watchdog is fed from liveness beats, not from a timer of its own: a timer would keep
//! ticking on a runtime whose controller loop is stuck, and systemd would never restart a
//! machine that has stopped serving customers. Each beat is a `watch` channel somebody
//! else moves (the controller's [`crate::controller::Controller::heartbeat`], the UI
//! thread's); when any of them stops moving, lnvend stops the pump and stops feeding, and
//! systemd kills and restarts it (`WatchdogSec=` in `systemd/lnvend.service`).
//!
//! Two limits, on purpose not one: how often systemd is fed follows `WatchdogSec=` (a
//! quarter of it), but how long a beat may stand still before lnvend calls itself hung
//! never drops below [`MIN_HANG_LIMIT`], however short `WatchdogSec=` is. A short
//! `WatchdogSec=` bounds how long a frozen process (which feeds nothing) keeps the pump
//! running; a short hang limit would instead restart a merely slow machine, a Pi whose SD
//! card stalls a ledger commit for seconds, in the middle of a pour.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// One assignment of the notification protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Start-up is finished: the UI is on the screen.
    Ready,
    /// A clean shutdown has begun.
    Stopping,
    /// Still alive: resets systemd's watchdog timer.
    Watchdog,
    /// Free text shown by `systemctl status`.
    Status(String),
    /// The start takes longer than `TimeoutStartSec` (a ledger migration): systemd waits this
    /// much longer, from now, for `READY=1`.
    ExtendTimeout(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("NOTIFY_SOCKET={0:?} is neither an absolute path nor an abstract name (@…)")]
    BadAddress(String),
    #[error("cannot send to the systemd notification socket: {0}")]
    Io(#[from] io::Error),
}

/// The datagram for `messages`: one `KEY=VALUE` per line.
pub fn format(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        match m {
            Message::Ready => out.push_str("READY=1"),
            Message::Stopping => out.push_str("STOPPING=1"),
            Message::Watchdog => out.push_str("WATCHDOG=1"),
            Message::ExtendTimeout(d) => {
                out.push_str(&format!("EXTEND_TIMEOUT_USEC={}", d.as_micros()))
            }
            Message::Status(text) => {
                // A newline would start a new assignment: status text must stay one line.
                out.push_str("STATUS=");
                out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
            }
        }
        out.push('\n');
    }
    out
}

/// Where notifications go: systemd's socket, or nowhere when lnvend was not started by
/// systemd with `Type=notify` (a developer's shell, the simulator).
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`.
    pub fn from_env() -> Result<Notifier, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(addr) if !addr.is_empty() => Notifier::to(&addr),
            Ok(_) | Err(_) => Ok(Notifier::disabled()),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// To the socket at `addr`: a filesystem path, or `@name` for the abstract namespace.
    pub fn to(addr: &str) -> Result<Notifier, NotifyError> {
        let address = if let Some(name) = addr.strip_prefix('@') {
            abstract_address(name)?
        } else if addr.starts_with('/') {
            SocketAddr::from_pathname(addr)?
        } else {
            return Err(NotifyError::BadAddress(addr.to_string()));
        };
        Ok(Notifier {
            target: Some((UnixDatagram::unbound()?, address)),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `messages` in one datagram; a no-op when disabled.
    pub fn send(&self, messages: &[Message]) -> Result<(), NotifyError> {
        if let Some((socket, addr)) = &self.target {
            socket.send_to_addr(format(messages).as_bytes(), addr)?;
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn abstract_address(name: &str) -> Result<SocketAddr, NotifyError> {
    use std::os::linux::net::SocketAddrExt;
    Ok(SocketAddr::from_abstract_name(name.as_bytes())?)
}

#[cfg(not(target_os = "linux"))]
fn abstract_address(name: &str) -> Result<SocketAddr, NotifyError> {
    Err(NotifyError::BadAddress(format!("@{name}")))
}

/// The watchdog period systemd asked for (`$WATCHDOG_USEC`), if it is meant for this
/// process (`$WATCHDOG_PID`, when set, must be ours).
pub fn watchdog_period() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid {
        Some(p) if p.trim().parse::<u32>().ok() != Some(me) => None,
        Some(_) | None => Some(Duration::from_micros(usec)),
    }
}

/// Something that must keep moving for the machine to count as alive.
pub struct Beat {
    pub name: &'static str,
    pub last: watch::Receiver<Instant>,
}

/// The first beat that has not moved within `stale_after` of `now`, and how long ago it did.
pub fn stale_beat(beats: &[Beat], now: Instant, stale_after: Duration) -> Option<(&str, Duration)> {
    beats.iter().find_map(|b| {
        let age = now.saturating_duration_since(*b.last.borrow());
        (age > stale_after).then_some((b.name, age))
    })
}

/// The shortest time a beat may stand still before lnvend counts itself hung. The
/// controller beats every 2 s; 10 s leaves room for a ledger commit that an SD card holds
/// up for several seconds, which is slow, not hung.
pub const MIN_HANG_LIMIT: Duration = Duration::from_secs(10);

/// How often systemd's watchdog is fed for a `WatchdogSec=` of `period`: a quarter of it,
/// so a feed or two may come late without a kill.
pub fn feed_interval(period: Duration) -> Duration {
    (period / 4).max(Duration::from_millis(500))
}

/// How long a beat may stand still before lnvend counts itself hung: half the period, but
/// never under [`MIN_HANG_LIMIT`] (see the module header for why they are decoupled).
pub fn hang_limit(period: Duration) -> Duration {
    (period / 2).max(MIN_HANG_LIMIT)
}

/// Feeds systemd's watchdog every [`feed_interval`] while every beat is fresh (moved within
/// [`hang_limit`]). Before each check `nudge` runs, so a beat that needs asking (the UI
/// thread's) can move. When a beat goes stale, `on_hung` runs once (it stops the pump) and
/// the feeding stops for good: systemd then kills the process and `ExecStopPost=` drives the
/// pins low again.
pub async fn feed_watchdog(
    notifier: Notifier,
    period: Duration,
    beats: Vec<Beat>,
    nudge: impl Fn(),
    on_hung: impl FnOnce(),
) {
    let every = feed_interval(period);
    let stale_after = hang_limit(period);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some((name, age)) = stale_beat(&beats, Instant::now(), stale_after) {
            tracing::error!(
                beat = name,
                stale_for = ?age,
                "the machine has hung; stopping the pump and letting systemd's watchdog restart lnvend"
            );
            on_hung();
            let _ = notifier.send(&[Message::Status(format!("hung: {name} stopped"))]);
            return;
        }
        if let Err(e) = notifier.send(&[Message::Watchdog]) {
            tracing::warn!(error = %e, "cannot feed the systemd watchdog");
        }
        nudge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_assignment_per_line() {
        assert_eq!(format(&[Message::Ready]), "READY=1\n");
        assert_eq!(
            format(&[Message::ExtendTimeout(Duration::from_secs(600))]),
            "EXTEND_TIMEOUT_USEC=600000000\n"
        );
        assert_eq!(format(&[Message::Watchdog]), "WATCHDOG=1\n");
        assert_eq!(
            format(&[Message::Stopping, Message::Status("bye".into())]),
            "STOPPING=1\nSTATUS=bye\n"
        );
    }

    #[test]
    fn status_text_cannot_inject_another_assignment() {
        assert_eq!(
            format(&[Message::Status("ok\nREADY=1".into())]),
            "STATUS=ok READY=1\n"
        );
    }

    #[test]
    fn the_datagram_reaches_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::to(path.to_str().unwrap()).unwrap();
        assert!(n.is_enabled());
        n.send(&[Message::Ready, Message::Status("serving".into())])
            .unwrap();
        let mut buf = [0u8; 128];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving\n");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_datagram_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("lnvend-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::to(&format!("@{name}"))
            .unwrap()
            .send(&[Message::Watchdog])
            .unwrap();
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
    }

    #[test]
    fn a_relative_socket_address_is_refused_and_no_socket_is_a_no_op() {
        assert!(matches!(
            Notifier::to("run/notify"),
            Err(NotifyError::BadAddress(_))
        ));
        let off = Notifier::disabled();
        assert!(!off.is_enabled());
        off.send(&[Message::Ready]).unwrap();
    }

    #[test]
    fn the_watchdog_period_is_ours_only_for_our_pid() {
        let p = Some(Duration::from_secs(20));
        assert_eq!(parse_watchdog(Some("20000000"), None, 7), p);
        assert_eq!(parse_watchdog(Some("20000000"), Some("7"), 7), p);
        assert_eq!(parse_watchdog(Some("20000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("soon"), None, 7), None);
        assert_eq!(parse_watchdog(None, None, 7), None);
    }

    /// A watchdog feeder for `period` on one beat, "controller", talking to a socket of
    /// its own: the socket (to read what systemd would get), the beat, whether `on_hung`
    /// ran, and the task. The socket is read every second of the test's time: a datagram
    /// socket holds only a few unread messages, and a full one would block the feeder's
    /// send (and with it the test's one-thread runtime).
    struct Fed {
        _dir: tempfile::TempDir,
        server: UnixDatagram,
        inbox: std::cell::RefCell<Vec<String>>,
        beat: watch::Sender<Instant>,
        hung: std::sync::Arc<std::sync::atomic::AtomicBool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Fed {
        fn start(period: Duration) -> Fed {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("notify.sock");
            let server = UnixDatagram::bind(&path).unwrap();
            server.set_nonblocking(true).unwrap();
            let (beat, rx) = watch::channel(Instant::now());
            let hung = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let h = hung.clone();
            let task = tokio::spawn(feed_watchdog(
                Notifier::to(path.to_str().unwrap()).unwrap(),
                period,
                vec![Beat {
                    name: "controller",
                    last: rx,
                }],
                || {},
                move || h.store(true, std::sync::atomic::Ordering::SeqCst),
            ));
            Fed {
                _dir: dir,
                server,
                inbox: Default::default(),
                beat,
                hung,
                task,
            }
        }

        fn drain(&self) {
            let mut buf = [0u8; 128];
            while let Ok(len) = self.server.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..len]).to_string();
                self.inbox.borrow_mut().push(m);
            }
        }

        /// Every datagram systemd would have received since the last call.
        fn received(&self) -> Vec<String> {
            self.drain();
            self.inbox.take()
        }

        fn feeds(&self) -> usize {
            self.received()
                .iter()
                .filter(|m| *m == "WATCHDOG=1\n")
                .count()
        }

        fn hung(&self) -> bool {
            self.hung.load(std::sync::atomic::Ordering::SeqCst)
        }

        /// `seconds` of a controller beating every 2 s, as the real one does.
        async fn beat_for(&self, seconds: u64) {
            for _ in 0..seconds / 2 {
                self.stall_for(2).await;
                self.beat.send_replace(Instant::now());
            }
        }

        /// `seconds` of a controller that does not beat.
        async fn stall_for(&self, seconds: u64) {
            for _ in 0..seconds {
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.drain();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_fed_while_beats_move_and_not_after_one_stops() {
        let fed = Fed::start(Duration::from_secs(10));
        fed.beat_for(30).await;
        let feeds = fed.feeds();
        // Every 2.5 s for WatchdogSec=10: 12 or 13 in 30 s, never fewer than one per 5 s.
        assert!(feeds >= 12, "fed {feeds} times in 30 s");
        assert!(!fed.hung());
        // Then the beat stops: past the hang limit (10 s) and one feed interval, the
        // feeding has ended and the pump was stopped.
        fed.stall_for(13).await;
        assert!(fed.task.is_finished());
        assert!(fed.hung());
        let after = fed.received();
        assert_eq!(
            after.last().map(String::as_str),
            Some("STATUS=hung: controller stopped\n")
        );
        // Fed while the beat was still young enough (up to 10 s), then never again.
        assert!(after.iter().filter(|m| *m == "WATCHDOG=1\n").count() <= 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_watchdog_still_lets_the_controller_stall_nine_seconds() {
        // WatchdogSec=10 and even 4: a commit that holds the controller 9 s (an SD card's
        // stall) is slow, not hung. The pump is not stopped and systemd is fed throughout,
        // every quarter period, so it does not kill the machine mid-pour.
        for period in [Duration::from_secs(10), Duration::from_secs(4)] {
            let fed = Fed::start(period);
            fed.beat_for(6).await;
            fed.feeds();
            fed.stall_for(9).await;
            let during = fed.feeds();
            // One tick may fall either side of the stall's ends.
            let want = (9_000 / feed_interval(period).as_millis()) as usize - 1;
            assert!(
                during >= want,
                "WatchdogSec={period:?}: fed {during} times in a 9 s stall, want {want}"
            );
            assert!(
                !fed.hung(),
                "WatchdogSec={period:?}: a 9 s stall was a hang"
            );
            // The controller moves again: it carries on as if nothing had happened.
            fed.beat.send_replace(Instant::now());
            fed.beat_for(20).await;
            assert!(!fed.hung() && !fed.task.is_finished());
            assert!(fed.feeds() >= (20_000 / feed_interval(period).as_millis()) as usize);
        }
    }

    /// The unit's `Key=` value in whole seconds (`WatchdogSec=10`).
    fn unit_seconds(unit: &str, key: &str) -> Duration {
        let value = unit
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in systemd/lnvend.service"));
        Duration::from_secs(value.trim().parse().unwrap_or_else(|_| {
            panic!("{key}={value} in systemd/lnvend.service is not whole seconds")
        }))
    }

    #[test]
    fn the_units_watchdog_settings_agree_with_the_code() {
        let unit = include_str!("../systemd/lnvend.service");
        let watchdog = unit_seconds(unit, "WatchdogSec");
        let abort = unit_seconds(unit, "TimeoutAbortSec");
        // Fed at least twice per WatchdogSec: one late feed is not a kill.
        assert!(feed_interval(watchdog) * 2 < watchdog, "{watchdog:?}");
        // A frozen lnvend (SIGSTOP, a stuck kernel call) cannot stop its own pump: systemd's
        // SIGABRT after WatchdogSec and SIGKILL after TimeoutAbortSec are what end the pour.
        // The book (docs/operator/install.md, "The service") promises 12 s; the appliance
        // test allows 2 s more for sampling (scripts/appliance-test, prove_watchdog).
        assert!(
            watchdog + abort <= Duration::from_secs(12),
            "WatchdogSec={watchdog:?} + TimeoutAbortSec={abort:?} beyond the book's 12 s"
        );
        // And the short WatchdogSec did not shorten the hang limit.
        assert_eq!(hang_limit(watchdog), MIN_HANG_LIMIT);
    }
}
