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

/// Feeds systemd's watchdog every quarter `period` while every beat is fresh (moved within
/// half the period). Before each check `nudge` runs, so a beat that needs asking (the UI
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
    let every = (period / 4).max(Duration::from_millis(500));
    let stale_after = (period / 2).max(Duration::from_secs(5));
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

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_is_fed_while_beats_move_and_not_after_one_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let (tx, rx) = watch::channel(Instant::now());
        let hung = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h = hung.clone();
        let period = Duration::from_secs(20);
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
        // Alive for 30 s: the beat moves every 2 s, as the controller's does.
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send_replace(Instant::now());
        }
        let mut fed = 0;
        let mut buf = [0u8; 64];
        while let Ok(len) = server.recv(&mut buf) {
            assert_eq!(&buf[..len], b"WATCHDOG=1\n");
            fed += 1;
        }
        assert!(fed >= 5, "fed {fed} times in 30 s");
        assert!(!hung.load(std::sync::atomic::Ordering::SeqCst));
        // Then the beat stops: within the period the feeding ends and the pump is stopped.
        tokio::time::sleep(period).await;
        assert!(task.is_finished());
        assert!(hung.load(std::sync::atomic::Ordering::SeqCst));
        let mut after = Vec::new();
        while let Ok(len) = server.recv(&mut buf) {
            after.push(String::from_utf8_lossy(&buf[..len]).to_string());
        }
        assert_eq!(
            after.last().map(String::as_str),
            Some("STATUS=hung: controller stopped\n")
        );
        assert!(after.iter().filter(|m| *m == "WATCHDOG=1\n").count() <= 3);
    }
}
