//! The serial link to the Qibixx MDB Pi HAT: one task owns the line, sends commands, and
//! publishes what the HAT says (see [`super::hat`] for the words) and whether it is there.
//!
//! The line is anything that reads and writes bytes ([`SerialLine`]): the HAT's tty, a
//! pseudo-terminal in tests, an in-memory duplex as the fake. Every input is bounded: a
//! line by [`crate::mdb::hat::MAX_LINE`], the rate by [`MAX_LINES_PER_S`] (a flood is dropped
//! and puts the HAT down, it never reaches the controller), and a HAT that says nothing
//! for the silence limit is down. A HAT that is down puts the machine out of service; its
//! next good line brings it back.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::mdb::hat::{is_version, parse, HatCommand, HatLine, LineSplitter};

/// The serial line to the HAT (115200 8N1 on the Pi; the tty is set up by the system).
pub trait SerialLine: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> SerialLine for T {}

/// More lines than this in one second is a flood: the HAT's keep-alive is a few a second.
pub const MAX_LINES_PER_S: u32 = 200;

/// A write the line has not taken within this is a HAT that is down (a wedged UART, flow
/// control holding the line): the link must not hang with commands queued behind it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// A command not written within this of being queued (unless given its own deadline) is
/// dropped: a deny or an enable meant for a moment long past must not act on a later one.
pub const COMMAND_STALE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HatError {
    #[error("cannot open the MDB HAT's serial line {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the MDB HAT's serial line failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("the MDB HAT's serial line was closed (unplugged?)")]
    Closed,
    #[error("the MDB HAT said nothing for {0:?}")]
    Silent(Duration),
    #[error("the MDB HAT flooded the line ({0} lines in a second); ignoring it")]
    Flood(u32),
    #[error("the MDB HAT's serial line took no write within {0:?}")]
    WriteTimeout(Duration),
}

/// A command and the instant after which it is stale: never written then.
#[derive(Debug)]
struct Queued {
    command: HatCommand,
    stale_at: Instant,
    /// Told once the command was written.
    written: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What the link reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HatEvent {
    Line(HatLine),
    /// The HAT answers (again).
    Up,
    /// The HAT is silent, gone, or misbehaving: why, for the screen and the log.
    Down(String),
}

/// The handles on a running link; clone freely.
#[derive(Clone, Debug)]
pub struct HatLink {
    commands: mpsc::Sender<Queued>,
    events: broadcast::Sender<HatEvent>,
    /// Whether the HAT answers now: the level, where the events are its edges (an edge
    /// lost to a lagging receiver is read back here).
    level: watch::Receiver<bool>,
}

/// What the link's task tells: every event, and the level it sets.
struct Tell {
    events: broadcast::Sender<HatEvent>,
    level: watch::Sender<bool>,
}

impl Tell {
    fn send(&self, ev: HatEvent) {
        match &ev {
            HatEvent::Up => {
                self.level.send_replace(true);
            }
            HatEvent::Down(_) => {
                self.level.send_replace(false);
            }
            HatEvent::Line(_) => {}
        }
        let _ = self.events.send(ev);
    }
}

/// A new link's handles and its task's side.
fn channels() -> (
    HatLink,
    broadcast::Receiver<HatEvent>,
    Tell,
    mpsc::Receiver<Queued>,
) {
    let (commands, rx) = mpsc::channel(8);
    let (events, first) = broadcast::channel(64);
    let (level, up) = watch::channel(false);
    let link = HatLink {
        commands,
        events: events.clone(),
        level: up,
    };
    (link, first, Tell { events, level }, rx)
}

impl HatLink {
    /// Sends `c` to the HAT. False when the link has ended or `c` went stale in the queue.
    pub async fn send(&self, c: HatCommand) -> bool {
        self.send_by(c, Instant::now() + COMMAND_STALE).await
    }

    /// Sends `c` if it can be written before `stale_at`; false when it cannot be queued by
    /// then (or the link has ended). Queued, it is still dropped unwritten at `stale_at`:
    /// an approval must never reach the machine after its dispense has given up on it
    /// (it could approve a later request).
    pub async fn send_by(&self, c: HatCommand, stale_at: Instant) -> bool {
        let q = Queued {
            command: c,
            stale_at,
            written: None,
        };
        matches!(
            tokio::time::timeout_at(stale_at, self.commands.send(q)).await,
            Ok(Ok(()))
        )
    }

    /// Sends `c` without waiting (from sync code); false when the queue is full or closed.
    pub fn try_send(&self, c: HatCommand) -> bool {
        let q = Queued {
            command: c,
            stale_at: Instant::now() + COMMAND_STALE,
            written: None,
        };
        self.commands.try_send(q).is_ok()
    }

    /// Sends `c` and waits until it was written, within `within`: true when it was.
    pub async fn send_and_wait(&self, c: HatCommand, within: Duration) -> bool {
        let stale_at = Instant::now() + within;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let q = Queued {
            command: c,
            stale_at,
            written: Some(tx),
        };
        let sent = async {
            self.commands.send(q).await.ok()?;
            rx.await.ok()
        };
        matches!(tokio::time::timeout_at(stale_at, sent).await, Ok(Some(())))
    }

    /// Whether the HAT answers now.
    pub fn is_up(&self) -> bool {
        *self.level.borrow()
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HatEvent> {
        self.events.subscribe()
    }
}

/// Starts the link on `line`, once (no reopening: see [`spawn_reopening`]): enables the
/// cashless device (in always-idle mode first when `always_idle`, see [`enable`]), then
/// reads and writes until the line closes. `silence` is how long the HAT may say nothing before it is down (also
/// at the start: a HAT that never answers is down). The receiver gets every event from
/// the first.
pub fn spawn(
    line: impl SerialLine,
    silence: Duration,
    always_idle: bool,
) -> (HatLink, broadcast::Receiver<HatEvent>, JoinHandle<()>) {
    let (link, first, tell, mut rx) = channels();
    let task = tokio::spawn(async move {
        run(line, &mut rx, &tell, silence, always_idle).await;
    });
    (link, first, task)
}

/// How the link's run on one open line ended.
enum Ended {
    /// Every handle is gone: the machine is stopping (the device was disabled).
    Stopping,
    /// The line failed or closed (told as Down already).
    Lost,
}

/// The first wait before the port is opened again after it was lost; doubled up to
/// [`REOPEN_MAX`].
pub const REOPEN_FIRST: Duration = Duration::from_millis(500);
pub const REOPEN_MAX: Duration = Duration::from_secs(10);

/// Starts a link that opens its line with `open`, and opens it again (after a backoff)
/// whenever it fails, closes or cannot be opened: a HAT unplugged and plugged back, or a
/// serial driver reset, comes back into service by itself. The device is enabled on every
/// open. The receiver gets every event from the first.
pub fn spawn_reopening<L, F>(
    mut open: F,
    silence: Duration,
    always_idle: bool,
) -> (HatLink, broadcast::Receiver<HatEvent>, JoinHandle<()>)
where
    L: SerialLine,
    F: FnMut() -> Result<L, HatError> + Send + 'static,
{
    let (link, first, tell, mut rx) = channels();
    let task = tokio::spawn(async move {
        let mut wait = REOPEN_FIRST;
        // Down told for this outage already (an open failing again is not news).
        let mut told = false;
        loop {
            match open() {
                Ok(line) => {
                    wait = REOPEN_FIRST;
                    match run(line, &mut rx, &tell, silence, always_idle).await {
                        Ended::Stopping => return,
                        Ended::Lost => told = true,
                    }
                }
                Err(e) if !told => {
                    told = true;
                    tracing::error!(error = %e, "MDB HAT down");
                    tell.send(HatEvent::Down(e.to_string()));
                }
                Err(e) => tracing::debug!(error = %e, "MDB HAT: still cannot open its line"),
            }
            // Commands queued meanwhile go stale here rather than reach a later session.
            let until = Instant::now() + wait;
            loop {
                tokio::select! {
                    () = sleep_until(until) => break,
                    c = rx.recv() => match c {
                        Some(q) => tracing::warn!(command = %q.command.line(), "MDB HAT down: a command not sent"),
                        None => return,
                    },
                }
            }
            wait = (wait * 2).min(REOPEN_MAX);
        }
    });
    (link, first, task)
}

async fn run(
    mut line: impl SerialLine,
    commands: &mut mpsc::Receiver<Queued>,
    tell: &Tell,
    silence: Duration,
    always_idle: bool,
) -> Ended {
    let down = |e: HatError| {
        tracing::error!(error = %e, "MDB HAT down");
        tell.send(HatEvent::Down(e.to_string()));
        Ended::Lost
    };
    if let Err(e) = enable(&mut line, always_idle).await {
        return down(e);
    }
    let mut split = LineSplitter::default();
    let mut buf = [0u8; 256];
    let mut heard = Instant::now();
    let mut up = false;
    // Down already told (at the start, nothing is told until the silence limit).
    let mut told_down = false;
    let mut window = (Instant::now(), 0u32);
    // A HAT may send nothing while its machine is quiet: asked for its version every
    // third of the silence limit, a live one answers in time.
    let every = silence / 3;
    let mut probe = tokio::time::interval_at(Instant::now() + every, every);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = probe.tick() => {
                if let Err(e) = write(&mut line, HatCommand::Probe).await {
                    return down(e);
                }
            }
            n = line.read(&mut buf) => {
                let n = match n {
                    Ok(0) => return down(HatError::Closed),
                    Ok(n) => n,
                    Err(e) => return down(HatError::Io(e)),
                };
                let mut re_enable = false;
                for text in split.push(&buf[..n]) {
                    let now = Instant::now();
                    if now - window.0 >= Duration::from_secs(1) {
                        window = (now, 0);
                    }
                    window.1 += 1;
                    if window.1 > MAX_LINES_PER_S {
                        if window.1 == MAX_LINES_PER_S + 1 {
                            up = false;
                            told_down = true;
                            let _ = down(HatError::Flood(window.1));
                        }
                        continue;
                    }
                    let parsed = parse(&text);
                    if parsed.is_none() && !is_version(&text) {
                        tracing::debug!(len = text.len(), "MDB HAT: a line ignored");
                        continue;
                    }
                    heard = now;
                    if !up {
                        up = true;
                        // Back after a Down: a HAT that reset has its device disabled.
                        re_enable |= told_down;
                        told_down = false;
                        tell.send(HatEvent::Up);
                    }
                    if let Some(parsed) = parsed {
                        tell.send(HatEvent::Line(parsed));
                    }
                }
                if re_enable {
                    if let Err(e) = enable(&mut line, always_idle).await {
                        return down(e);
                    }
                }
            }
            c = commands.recv() => match c {
                Some(q) if Instant::now() >= q.stale_at => {
                    tracing::warn!(command = %q.command.line(), "MDB HAT: a command went stale in the queue; not sent");
                }
                Some(q) => {
                    if let Err(e) = write(&mut line, q.command).await {
                        return down(e);
                    }
                    if let Some(w) = q.written {
                        let _ = w.send(());
                    }
                }
                // Every handle is gone: the machine is stopping.
                None => {
                    let _ = write(&mut line, HatCommand::Disable).await;
                    return Ended::Stopping;
                }
            },
            () = sleep_until(heard + silence), if !told_down => {
                up = false;
                told_down = true;
                let _ = down(HatError::Silent(silence));
            }
        }
    }
}

/// Writes `c`, within [`WRITE_TIMEOUT`].
/// Enables the cashless device. With `always_idle`, first disabled and set to always-idle
/// (`C,0`, `C,SETCONF,mdb-always-idle=1`, `C,1`): the HAT takes its configuration only
/// while disabled and forgets it at power-off, so it is sent at every enable (a HAT that
/// reset comes back through here). An error line in answer (a device already off) is
/// harmless.
async fn enable(line: &mut impl SerialLine, always_idle: bool) -> Result<(), HatError> {
    if always_idle {
        write(line, HatCommand::Disable).await?;
        write(line, HatCommand::AlwaysIdle).await?;
    }
    write(line, HatCommand::Enable).await
}

async fn write(line: &mut impl SerialLine, c: HatCommand) -> Result<(), HatError> {
    let text = format!("{}\n", c.line());
    let io = async {
        line.write_all(text.as_bytes()).await?;
        line.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, io).await {
        Ok(r) => r.map_err(HatError::Io),
        Err(_) => Err(HatError::WriteTimeout(WRITE_TIMEOUT)),
    }
}

#[cfg(test)]
#[path = "hat_tests.rs"]
mod tests;
