//! A commercial machine sold through the Qibixx MDB Pi HAT, end to end: the test plays the
//! HAT (and the machine behind it) on one end of a pseudo-terminal pair made by `socat`;
//! lnvend opens the other end as its serial line, as it opens /dev/ttyAMA0 on a Pi.
//!
//! Real time (a pseudo-terminal's bytes cross another process; paused time would jump
//! past them), with short limits: the HAT is silent after 2 s, the machine vends within 3.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::TestMachine;
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, Screen};
use lnvend::dispense::tty::Tty;
use lnvend::ledger::Ledger;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The VMC behind the HAT, speaking the HAT's lines as a logged real HAT does: it keeps
/// the link alive with `r,ACK`, answers `C,1` (`c,STATUS,INACTIVE`, `c,1`,
/// `c,STATUS,DISABLED`, `c,STATUS,ENABLED`), `C,0` (`c,0`) and `C,SETCONF` (`c,SET,OK`), and
/// records every line lnvend sends.
struct Vmc {
    socat: Child,
    say: mpsc::UnboundedSender<String>,
    heard: mpsc::UnboundedReceiver<String>,
    /// How many `C,VEND,<amount>` approvals it has received (a deny, `C,VEND,-1`, is none).
    approvals: Arc<AtomicUsize>,
    /// While set, the HAT sends no keep-alive (a HAT gone silent).
    quiet: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Vmc {
    /// Makes the pair; returns the VMC and the path lnvend opens.
    async fn start(dir: &Path, name: &str) -> (Vmc, PathBuf) {
        let hat = dir.join(format!("{name}-hat"));
        let vmc = dir.join(format!("{name}-vmc"));
        let socat = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", hat.display()))
            .arg(format!("pty,raw,echo=0,link={}", vmc.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat (apt-get install socat)");
        for _ in 0..500 {
            if hat.exists() && vmc.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let tty = Tty::open(&vmc).expect("the VMC end");
        let (r, mut w) = tokio::io::split(tty);
        let (say, mut to_say) = mpsc::unbounded_channel::<String>();
        let (tell, heard) = mpsc::unbounded_channel();
        let approvals = Arc::new(AtomicUsize::new(0));
        let quiet = Arc::new(AtomicBool::new(false));
        let hush = quiet.clone();
        let writer = tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_millis(300));
            loop {
                let line = tokio::select! {
                    l = to_say.recv() => match l { Some(l) => l, None => return },
                    _ = beat.tick() => {
                        if hush.load(Ordering::SeqCst) {
                            continue;
                        }
                        "r,ACK".to_string()
                    }
                };
                if w.write_all(format!("{line}\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        let reader = {
            let say = say.clone();
            let approvals = approvals.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let answer: &[&str] = match line.as_str() {
                        "C,1" => &[
                            "c,STATUS,INACTIVE",
                            "c,1",
                            "c,STATUS,DISABLED",
                            "c,STATUS,ENABLED",
                        ],
                        "C,0" => &["c,0"],
                        l if l.starts_with("C,SETCONF,") => &["c,SET,OK"],
                        _ => &[],
                    };
                    for a in answer {
                        let _ = say.send(a.to_string());
                    }
                    if line.starts_with("C,VEND,") && line != "C,VEND,-1" {
                        approvals.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = tell.send(line);
                }
            })
        };
        let me = Vmc {
            socat,
            say,
            heard,
            approvals,
            quiet,
            tasks: vec![writer, reader],
        };
        (me, hat)
    }

    fn say(&self, line: &str) {
        self.say.send(line.to_string()).unwrap();
    }

    /// The next line lnvend sends that is not the enable, its configuration or a probe.
    async fn heard(&mut self) -> String {
        loop {
            let line = self.next_line().await;
            if !matches!(line.as_str(), "C,1" | "V" | "C,SETCONF,mdb-always-idle=1") {
                return line;
            }
        }
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.heard.recv())
            .await
            .expect("lnvend said nothing")
            .expect("the line ended")
    }

    /// Waits for lnvend's enable (the device disabled, set to always-idle, enabled: the
    /// HAT takes its configuration only while disabled), and a moment for the answer.
    async fn enabled(&mut self) {
        for want in ["C,0", "C,SETCONF,mdb-always-idle=1", "C,1"] {
            assert_eq!(self.next_line().await, want, "the enable, in order");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    /// The HAT stops (or starts again) sending its keep-alive.
    fn go_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::SeqCst);
    }

    fn approvals(&self) -> usize {
        self.approvals.load(Ordering::SeqCst)
    }

    /// Unplugs the HAT: the pseudo-terminal pair goes away.
    fn unplug(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Vmc {
    fn drop(&mut self) {
        self.unplug();
    }
}

fn config(dir: &Path, port: &Path) -> Config {
    config_with(dir, port, "")
}

fn config_with(dir: &Path, port: &Path, extra: &str) -> Config {
    let text = format!(
        r#"
machine_id = "mdb-test"
data_dir = "{}"
invoice_expiry_s = 300
{extra}

[gpio]
backend = "mock"

[mdb]
port = "{}"
sat_per_unit = 1000
vend_timeout_s = 3
silence_s = 2

[[mdb.item]]
number = 17
name = "Crisps"
image = "{}"
"#,
        dir.display(),
        port.display(),
        dir.join("crisps.svg").display()
    );
    std::fs::write(
        dir.join("crisps.svg"),
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="#f80"/></svg>"##,
    )
    .unwrap();
    Config::parse(&text, "mdb.toml", Mode::Sim).expect("mdb config")
}

/// A machine and its VMC, the HAT answering and the machine selling.
async fn start(dir: &Path) -> (TestMachine, Vmc) {
    start_with(dir, "").await
}

async fn start_with(dir: &Path, extra: &str) -> (TestMachine, Vmc) {
    let (mut vmc, port) = Vmc::start(dir, "a").await;
    let mut m = TestMachine::start(&config_with(dir, &port, extra));
    vmc.enabled().await;
    m.wait_screen(Screen::Idle).await;
    (m, vmc)
}

/// The customer picks item 17 (2.50 on the machine) on the keypad: the QR shows.
async fn select(m: &mut TestMachine, vmc: &Vmc) -> lnvend::backend::InvoiceId {
    // Always-idle: the machine asks for the vend without a session started first.
    vmc.say("c,STATUS,VEND,2.50,17");
    let v = m.wait_screen(Screen::Payment).await;
    assert_eq!(v.product, "Crisps");
    assert_eq!(v.amount, "2,500 sats");
    assert!(v.qr.is_some());
    assert!(v.picture.is_some(), "the item's picture from [[mdb.item]]");
    m.sim().latest().unwrap().id
}

#[tokio::test]
async fn select_pay_approve_success_is_one_poured_sale_recorded_before_the_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(vmc.approvals(), 0, "nothing approved before the payment");
    m.sim().pay(&inv).unwrap();
    assert_eq!(
        vmc.heard().await,
        "C,VEND,2.50",
        "the machine's own amount, approved"
    );
    let v = m.views.borrow().clone();
    assert_eq!(v.screen, Screen::Pouring);
    assert!(v.vending, "\"Dispensing your Crisps…\", not pouring");
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.pour_count().unwrap(),
        1,
        "the paid sale was recorded before the approval"
    );
    drop(l);
    vmc.say("c,VEND,SUCCESS");
    vmc.say("c,STATUS,IDLE");
    vmc.say("c,STATUS,ENABLED");
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(vmc.approvals(), 1, "one approval for one payment");
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty(), "poured, nothing owed");
}

#[tokio::test]
async fn a_failed_vend_is_an_owed_credit_and_the_dispenser_needs_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50");
    // Qibixx's failure line.
    vmc.say("c,ERR,VEND 3");
    let v = m.wait_screen(Screen::Fault).await;
    assert_eq!(v.product, "Crisps");
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the failed vend is owed");
    drop(l);
    // A machine that failed to vend may be jammed: as after a pump fault, no next sale
    // until the operator has looked.
    m.send(Input::DismissFault);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.detail.contains("failed vend"), "{}", v.detail);
    assert_eq!(vmc.approvals(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn a_vend_the_machine_never_answers_is_an_owed_credit_at_its_vend_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50");
    let t0 = std::time::Instant::now();
    m.wait_screen(Screen::Fault).await;
    assert!(
        t0.elapsed() >= Duration::from_millis(2500),
        "not before the vend time"
    );
    assert_eq!(vmc.approvals(), 1, "approved once, never again");
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the unanswered vend is owed");
}

/// An approved vend cannot be taken back, and a vend left unanswered may have happened:
/// with `hold = "always"` an MDB sale still gets a plain invoice, and the unanswered vend
/// is owed, never returned (which could give the item away).
#[tokio::test]
async fn an_mdb_sale_gets_a_plain_invoice_with_holds_on_and_an_unanswered_vend_is_owed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) =
        start_with(dir.path(), "[backend]\nkind = \"sim\"\nhold = \"always\"\n").await;
    let inv = select(&mut m, &vmc).await;
    assert_eq!(m.sim().hold_of(&inv), None, "a plain invoice");
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50");
    m.wait_screen(Screen::Fault).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        m.sim().hold_of(&inv),
        None,
        "nothing held, nothing returned"
    );
    assert_eq!(m.sim().hold_calls(), 0);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.is_held_invoice(&inv).unwrap(), None);
    assert_eq!(l.owed().unwrap().len(), 1, "the unanswered vend is owed");
}

/// Waits until the simulated backend has withdrawn `n` invoices.
async fn withdrawn(m: &TestMachine, n: u64) {
    for _ in 0..100 {
        if m.sim().invoices_withdrawn() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} invoices withdrawn, not {n}",
        m.sim().invoices_withdrawn()
    );
}

#[tokio::test]
async fn the_machine_ending_the_session_cancels_the_invoice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    // The machine's keypad cancel, or its own timeout: the session ends.
    vmc.say("c,STATUS,ENABLED");
    m.wait_screen(Screen::Idle).await;
    withdrawn(&m, 1).await;
    assert!(
        m.sim().pay(&inv).is_err(),
        "the customer's wallet cannot pay it any more"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(vmc.approvals(), 0);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(
        l.owed().unwrap().is_empty(),
        "nothing was paid, nothing owed"
    );
}

/// A backend that cannot withdraw an invoice (BTCPay, LNbits, NWC), or a payment that beat
/// the withdrawal: the late payment is owed, never vended.
#[tokio::test]
async fn a_payment_after_the_machine_ended_the_session_is_owed_when_the_invoice_stays_payable() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, vmc) = start(dir.path()).await;
    m.sim().set_cancels(false);
    let inv = select(&mut m, &vmc).await;
    vmc.say("c,STATUS,ENABLED");
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.sim().pay(&inv).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        vmc.approvals(),
        0,
        "nothing vended for a session the machine ended"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the late payment is owed");
}

#[tokio::test]
async fn a_cancel_on_the_screen_denies_the_machine_s_request() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    select(&mut m, &vmc).await;
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    assert_eq!(vmc.heard().await, "C,VEND,-1", "the machine is told no");
    withdrawn(&m, 1).await;
    assert_eq!(vmc.approvals(), 0);
    m.shutdown().await;
}

#[tokio::test]
async fn a_hat_that_disappears_mid_session_puts_the_machine_out_of_service_and_owes_the_payment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    vmc.unplug();
    m.sim().pay(&inv).unwrap();
    // The payment is kept (the payment screen outlives a backend or HAT going down); its
    // vend cannot be approved: the fault screen, then out of service.
    m.wait_screen(Screen::Fault).await;
    m.send(Input::DismissFault);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(v.detail.contains("MDB"), "{}", v.detail);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.owed().unwrap().len(),
        1,
        "the paid sale is owed, not lost"
    );
    assert_eq!(vmc.approvals(), 0);
}

#[tokio::test]
async fn a_crash_between_approval_and_success_never_vends_twice_for_one_payment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50");
    m.crash().await;
    // The machine vends and says so; nobody is listening.
    vmc.say("c,VEND,SUCCESS");
    drop(vmc);
    let (mut vmc, port) = Vmc::start(dir.path(), "b").await;
    let mut m = TestMachine::start(&config(dir.path(), &port));
    vmc.enabled().await;
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1, "unknown outcome: a visible credit, once");
    drop(l);
    // The customer taps the credit: without the machine asking, nothing is approved.
    m.send(Input::RedeemCredit(owed[0].sale_id.0.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    vmc.say("c,VEND,SUCCESS");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(vmc.approvals(), 0, "no second approval for the payment");
    while let Ok(line) = vmc.heard.try_recv() {
        assert!(!line.starts_with("C,VEND"), "{line}");
    }
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "still owed once, for a refund");
}

#[tokio::test]
async fn the_same_request_again_is_ignored_and_the_sale_is_vended_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    // The machine repeats its request: nothing changes for the customer.
    vmc.say("c,STATUS,VEND,2.50,17");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.screen(), Screen::Payment, "the QR stays");
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50", "no deny before it");
    vmc.say("c,VEND,SUCCESS");
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(vmc.approvals(), 1);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test]
async fn another_selection_mid_session_ends_the_sale_and_its_late_payment_is_owed_not_vended() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    // A payment that gets through anyway (a backend that cannot withdraw invoices).
    m.sim().set_cancels(false);
    let inv = select(&mut m, &vmc).await;
    // The customer picks another item on the keypad before paying.
    vmc.say("c,STATUS,VEND,1.00,3");
    assert_eq!(
        vmc.heard().await,
        "C,VEND,-1",
        "the machine's session is ended"
    );
    m.wait_screen(Screen::Idle).await;
    m.sim().pay(&inv).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        vmc.approvals(),
        0,
        "a payment for item 17 never approves another request"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the late payment is owed");
}

#[tokio::test]
async fn a_hat_unplugged_and_plugged_back_is_reopened_and_sells_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    vmc.unplug();
    m.wait_screen(Screen::OutOfService).await;
    drop(vmc);
    // socat killed leaves its links behind; a new one makes them again at the same path.
    for end in ["a-hat", "a-vmc"] {
        let _ = std::fs::remove_file(dir.path().join(end));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut vmc, _) = Vmc::start(dir.path(), "a").await;
    vmc.enabled().await;
    m.wait_screen(Screen::Idle).await;
    let inv = select(&mut m, &vmc).await;
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50", "back in service");
    vmc.say("c,VEND,SUCCESS");
    m.wait_screen(Screen::ThankYou).await;
    m.shutdown().await;
}

#[tokio::test]
async fn at_shutdown_the_cashless_device_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let (m, mut vmc) = start(dir.path()).await;
    m.shutdown().await;
    assert_eq!(
        vmc.heard().await,
        "C,0",
        "the machine stops offering cashless payment"
    );
}

/// The customer cancels on the machine's keypad (`c,ERR,VEND 1`) while the QR is up: the
/// sale ends and its invoice is withdrawn.
#[tokio::test]
async fn a_keypad_cancel_ends_the_sale_and_withdraws_its_invoice() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    vmc.say("c,ERR,VEND 1");
    m.wait_screen(Screen::Idle).await;
    withdrawn(&m, 1).await;
    assert!(m.sim().pay(&inv).is_err(), "nobody can pay it now");
    assert_eq!(vmc.approvals(), 0);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.owed().unwrap().is_empty());
}

/// An error line about nothing sold (`c,ERR,"cashless is on"`, the answer to a `C,1` the
/// device did not need) neither ends the sale on screen nor fails its vend.
#[tokio::test]
async fn an_error_line_about_nothing_sold_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    vmc.say("c,ERR,\"cashless is on\"");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.screen(), Screen::Payment, "the QR stays");
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50");
    vmc.say("c,ERR,\"cashless is on\"");
    vmc.say("c,VEND,SUCCESS");
    m.wait_screen(Screen::ThankYou).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.owed().unwrap().is_empty(), "vended, nothing owed");
    assert_eq!(l.pour_count().unwrap(), 1);
}

/// The HAT goes silent with the QR up (lines may have been missed: the machine's request is
/// no longer known to be open); the customer pays; the HAT speaks again. Nothing is
/// approved on the old request: the payment is owed.
#[tokio::test]
async fn a_payment_while_the_hat_was_silent_is_owed_never_approved() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    vmc.go_quiet(true);
    // Down after `silence_s` (2 s here) without a line; the QR stays up meanwhile.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    m.sim().pay(&inv).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    vmc.go_quiet(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        vmc.approvals(),
        0,
        "nothing approved on a request that may be gone"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "the payment is owed");
}

/// The machine repeats its request while the approved vend runs: lnvend sends nothing into
/// the vend (a deny could cross the approval), and the vend's result decides.
#[tokio::test]
async fn a_request_during_a_vend_sends_nothing_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let (mut m, mut vmc) = start(dir.path()).await;
    let inv = select(&mut m, &vmc).await;
    m.sim().pay(&inv).unwrap();
    assert_eq!(vmc.heard().await, "C,VEND,2.50");
    vmc.say("c,STATUS,VEND,2.50,17");
    tokio::time::sleep(Duration::from_millis(500)).await;
    vmc.say("c,VEND,SUCCESS");
    m.wait_screen(Screen::ThankYou).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(line) = vmc.heard.try_recv() {
        assert!(
            matches!(line.as_str(), "V" | "C,1"),
            "nothing sent during the vend: {line}"
        );
    }
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert!(l.owed().unwrap().is_empty(), "vended once, nothing owed");
    assert_eq!(l.pour_count().unwrap(), 1);
}
