//! The HAT link and the MDB dispenser against an in-memory serial line (the fake): what
//! lnvend writes to the HAT, and what it makes of what the HAT says, silence and floods.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::broadcast;

use super::*;
use crate::dispense::{Dispensed, MdbDispenser};
use crate::mdb::hat::{HatStatus, MachineAmount};

const SILENCE: Duration = Duration::from_secs(10);

struct Hat {
    /// What lnvend wrote, line by line.
    from_pi: tokio::io::Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    to_pi: tokio::io::WriteHalf<DuplexStream>,
}

impl Hat {
    async fn say(&mut self, text: &str) {
        self.to_pi.write_all(text.as_bytes()).await.unwrap();
    }
    /// The next line lnvend wrote that is not a probe.
    async fn heard(&mut self) -> String {
        loop {
            let line = self.from_pi.next_line().await.unwrap().expect("a line");
            if line != "V" {
                return line;
            }
        }
    }
}

fn start() -> (HatLink, broadcast::Receiver<HatEvent>, Hat) {
    start_with(false)
}

fn start_with(always_idle: bool) -> (HatLink, broadcast::Receiver<HatEvent>, Hat) {
    let (pi, hat) = tokio::io::duplex(4096);
    let (link, rx, _task) = spawn(pi, SILENCE, always_idle);
    let (r, w) = tokio::io::split(hat);
    (
        link,
        rx,
        Hat {
            from_pi: BufReader::new(r).lines(),
            to_pi: w,
        },
    )
}

async fn next(rx: &mut broadcast::Receiver<HatEvent>) -> HatEvent {
    rx.recv().await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_link_enables_the_device_and_reports_what_the_hat_says() {
    let (link, mut rx, mut hat) = start();
    assert_eq!(hat.heard().await, "C,1", "enabled first");
    hat.say("c,1\r\nc,STATUS,ENABLED\r\nnonsense\r\nc,STATUS,VEND,2.50,12\r\n")
        .await;
    assert_eq!(next(&mut rx).await, HatEvent::Up);
    assert_eq!(next(&mut rx).await, HatEvent::Line(HatLine::Switched(true)));
    assert_eq!(
        next(&mut rx).await,
        HatEvent::Line(HatLine::Status(HatStatus::Enabled))
    );
    // The nonsense line is skipped.
    assert_eq!(
        next(&mut rx).await,
        HatEvent::Line(HatLine::VendRequest {
            amount: MachineAmount::parse("2.50").unwrap(),
            item: 12
        })
    );
    assert!(link.send(HatCommand::Deny).await);
    assert_eq!(hat.heard().await, "C,VEND,-1");
}

#[tokio::test(start_paused = true)]
async fn a_silent_hat_is_down_and_its_next_line_brings_it_back() {
    let (link, mut rx, mut hat) = start();
    assert_eq!(hat.heard().await, "C,1");
    // Never a word from the start: down after the silence limit.
    let t0 = Instant::now();
    assert!(matches!(next(&mut rx).await, HatEvent::Down(ref why) if why.contains("nothing")));
    assert_eq!(t0.elapsed(), SILENCE);
    // The level, for a receiver that lost the edge.
    assert!(!link.is_up());
    hat.say("r,ACK\n").await;
    assert_eq!(next(&mut rx).await, HatEvent::Up);
    assert!(link.is_up());
    assert_eq!(next(&mut rx).await, HatEvent::Line(HatLine::Ack));
    // A HAT back from a silence may have reset: its device is enabled again.
    assert_eq!(hat.heard().await, "C,1", "enabled again after the Down");
    tokio::time::sleep(SILENCE - Duration::from_secs(1)).await;
    hat.say("r,ACK\n").await;
    assert_eq!(
        next(&mut rx).await,
        HatEvent::Line(HatLine::Ack),
        "still up"
    );
    assert!(
        matches!(next(&mut rx).await, HatEvent::Down(_)),
        "silent again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_flood_is_dropped_and_puts_the_hat_down_once_and_an_unplugged_hat_is_down() {
    let (_link, mut rx, mut hat) = start();
    assert_eq!(hat.heard().await, "C,1");
    let flood = "c,STATUS,VEND,1.00,1\n".repeat(1000);
    hat.say(&flood).await;
    // Up, then the rate's worth of lines, then one Down; the rest is dropped. (The test
    // reads slower than the link publishes: a lagged count is lines it published.)
    let mut published = 0;
    let mut downs = 0;
    loop {
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => published += n,
            Err(broadcast::error::RecvError::Closed) => panic!("closed"),
            Ok(HatEvent::Down(why)) => {
                assert!(why.contains("flooded"), "{why}");
                downs += 1;
                break;
            }
            Ok(HatEvent::Up | HatEvent::Line(_)) => published += 1,
        }
    }
    assert_eq!(
        published,
        1 + u64::from(MAX_LINES_PER_S),
        "only the rate's worth got through"
    );
    assert_eq!(downs, 1);
    drop(hat);
    assert!(matches!(next(&mut rx).await, HatEvent::Down(ref why) if why.contains("closed")));
}

#[tokio::test(start_paused = true)]
async fn an_mdb_vend_is_approved_once_for_its_amount_and_its_result_is_what_the_machine_says() {
    let (link, _rx, mut hat) = start();
    assert_eq!(hat.heard().await, "C,1");
    hat.say("r,ACK\n").await;
    let d = MdbDispenser::new(link.clone(), Duration::from_secs(60));
    let amount = MachineAmount::parse("15.19").unwrap();

    let vend = tokio::spawn({
        let d = d.clone();
        async move { d.run(amount).await }
    });
    assert_eq!(hat.heard().await, "C,VEND,15.19");
    hat.say("r,ACK\nc,STATUS,IDLE\nc,VEND,SUCCESS\n").await;
    assert!(matches!(vend.await.unwrap(), Dispensed::Delivered { .. }));

    let vend = tokio::spawn({
        let d = d.clone();
        async move { d.run(amount).await }
    });
    assert_eq!(hat.heard().await, "C,VEND,15.19");
    // An error about nothing sold (a `C,1` to a device already on) is not the result.
    hat.say("c,ERR,\"cashless is on\"\n").await;
    hat.say("c,ERR,VEND 3\n").await;
    assert!(
        matches!(vend.await.unwrap(), Dispensed::Failed(crate::dispense::DispenseError::Mdb(why)) if why.contains("VEND 3")),
        "Qibixx's failure line"
    );

    // No answer: failed at the vend time, not before.
    let t0 = Instant::now();
    let vend = tokio::spawn({
        let d = d.clone();
        async move { d.run(amount).await }
    });
    assert_eq!(hat.heard().await, "C,VEND,15.19");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        hat.say("r,ACK\n").await;
    }
    assert!(matches!(vend.await.unwrap(), Dispensed::Failed(_)));
    assert_eq!(t0.elapsed(), Duration::from_secs(60));

    // The HAT unplugged mid-vend.
    let vend = tokio::spawn(async move { d.run(amount).await });
    assert_eq!(hat.heard().await, "C,VEND,15.19");
    drop(hat);
    assert!(matches!(vend.await.unwrap(), Dispensed::Failed(_)));
}

#[tokio::test(start_paused = true)]
async fn always_idle_is_set_while_the_device_is_disabled_then_it_is_enabled() {
    let (_link, mut rx, mut hat) = start_with(true);
    for want in ["C,0", "C,SETCONF,mdb-always-idle=1", "C,1"] {
        assert_eq!(hat.heard().await, want);
    }
    // Silent: down. A HAT back from a silence may have reset (and forgotten its setting):
    // the whole sequence again.
    assert!(matches!(next(&mut rx).await, HatEvent::Down(_)));
    hat.say("r,ACK\n").await;
    assert_eq!(next(&mut rx).await, HatEvent::Up);
    for want in ["C,0", "C,SETCONF,mdb-always-idle=1", "C,1"] {
        assert_eq!(hat.heard().await, want, "again after the Down");
    }
}

/// A line of `buffer` bytes that the HAT side does not read until told.
fn start_small(buffer: usize) -> (HatLink, broadcast::Receiver<HatEvent>, Hat) {
    let (pi, hat) = tokio::io::duplex(buffer);
    let (link, rx, _task) = spawn(pi, SILENCE, false);
    let (r, w) = tokio::io::split(hat);
    (
        link,
        rx,
        Hat {
            from_pi: BufReader::new(r).lines(),
            to_pi: w,
        },
    )
}

#[tokio::test(start_paused = true)]
async fn a_line_that_takes_no_write_puts_the_hat_down_within_the_write_timeout() {
    let (link, mut rx, _hat) = start_small(8);
    // "C,1\n" fits; "C,VEND,-1\n" does not, and nobody reads the line.
    assert!(link.send(HatCommand::Deny).await);
    let t0 = tokio::time::Instant::now();
    let ev = tokio::time::timeout(Duration::from_secs(5), next(&mut rx))
        .await
        .expect("the HAT is put down, the link does not hang");
    assert!(
        matches!(&ev, HatEvent::Down(why) if why.contains("write")),
        "{ev:?}"
    );
    assert!(t0.elapsed() <= WRITE_TIMEOUT + Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn an_approval_still_queued_at_its_deadline_is_never_sent() {
    let (link, _rx, mut hat) = start_small(8);
    // The deny holds the writer (the line is full) while the approval waits behind it.
    assert!(link.send(HatCommand::Deny).await);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    assert!(
        link.send_by(
            HatCommand::Approve(MachineAmount::parse("2.50").unwrap()),
            deadline
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hat.heard().await, "C,1");
    assert_eq!(hat.heard().await, "C,VEND,-1");
    let more = tokio::time::timeout(Duration::from_secs(3), hat.heard()).await;
    assert!(more.is_err(), "the stale approval was written: {more:?}");
}

#[tokio::test(start_paused = true)]
async fn a_quiet_hat_that_answers_the_probe_stays_up() {
    let (link, mut rx, mut hat) = start();
    assert_eq!(hat.heard().await, "C,1");
    hat.say("c,1\r\n").await;
    assert_eq!(next(&mut rx).await, HatEvent::Up);
    assert_eq!(next(&mut rx).await, HatEvent::Line(HatLine::Switched(true)));
    // For three silence limits the HAT says nothing but its answers to the probe.
    let t0 = Instant::now();
    let mut probes = 0;
    while t0.elapsed() < SILENCE * 3 {
        let line = hat.from_pi.next_line().await.unwrap().expect("a line");
        assert_eq!(line, "V", "only probes");
        probes += 1;
        hat.say("v,3.1.4\r\n").await;
    }
    assert!(probes >= 8, "every third of the silence limit: {probes}");
    assert!(link.is_up(), "never taken for dead");
    assert!(
        rx.try_recv().is_err(),
        "no Down, no event for a version line"
    );
}
