//! Power cuts and crashes: the real `lnvend` binary (headless simulator) is killed with
//! SIGKILL at each phase of a sale and started again on the same data directory. Afterwards
//! the ledger and the mock pin trace must show no double pour and no paid sale that was
//! neither poured nor owed. A bug (a panic) and a stop signal mid-pour must end the process
//! by themselves with the pump off, as systemd expects.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lnvend::ledger::{Ledger, SaleState};

#[path = "support/headless.rs"]
mod headless;
use headless::Headless;

const ENA: u64 = 18;

fn config(dir: &Path) -> PathBuf {
    config_pouring(dir, 1500)
}

fn config_pouring(dir: &Path, pour_ms: u64) -> PathBuf {
    let text = format!(
        r#"
machine_id = "crash-test"
data_dir = "{d}"
invoice_expiry_s = 300

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = {pour_ms}

[gpio]
backend = "mock"
trace = "{d}/pins.jsonl"
"#,
        d = dir.display()
    );
    let path = dir.join("machine.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(cfg: &Path) -> Headless {
    Headless::start(cfg)
}

/// (rising edges of ENA, total on-time) from the pin trace.
fn enable_record(dir: &Path) -> (usize, Vec<Duration>) {
    let text = std::fs::read_to_string(dir.join("pins.jsonl")).unwrap_or_default();
    let mut on: Option<u64> = None;
    let mut edges = 0;
    let mut spans = Vec::new();
    for line in text.lines() {
        // The last line may be half written while lnvend runs.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["pin"] != ENA {
            continue;
        }
        let high = v["level"] == 1 || v["duty"].as_f64().is_some_and(|d| d > 0.0);
        let ts = v["ts_us"].as_u64().unwrap();
        match (on, high) {
            (None, true) => {
                edges += 1;
                on = Some(ts);
            }
            (Some(t), false) => {
                spans.push(Duration::from_micros(ts - t));
                on = None;
            }
            (None, false) | (Some(_), true) => {}
        }
    }
    (edges, spans)
}

/// The last level the trace shows for ENA (PWM counts as on).
fn last_enable_on(dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(dir.join("pins.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["pin"] == ENA)
        .map(|v| v["level"] == 1 || v["duty"].as_f64().is_some_and(|d| d > 0.0))
        .next_back()
}

/// Starts a 5 s pour and returns as soon as the pump is on.
fn pouring(dir: &Path) -> Headless {
    let cfg = config_pouring(dir, 5000);
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    run.send("tap 0");
    run.wait_for("screen Payment");
    run.send("pay");
    run.wait_for("screen Pouring");
    // The screen changes when the pour is recorded, just before the motor starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while last_enable_on(dir) != Some(true) {
        assert!(Instant::now() < deadline, "the pump never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    run
}

/// Every paid invoice (per the simulated server's own records) is poured or owed, and the
/// pump started no more often than sales were paid.
fn check_invariants(dir: &Path) -> Vec<(String, SaleState)> {
    let store: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sim-backend.json")).unwrap())
            .unwrap();
    let ledger = Ledger::open(dir).unwrap();
    let rows = ledger.sales_since(0, 100).unwrap();
    let mut paid = 0;
    let mut states = Vec::new();
    for inv in store.as_array().unwrap() {
        let id = inv["id"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r.invoice_id == id)
            .expect("every invoice is in the ledger");
        states.push((row.sale_id.0.clone(), row.state));
        if inv["paid"] == true {
            paid += 1;
            assert!(
                row.state == SaleState::Poured || row.state == SaleState::Owed,
                "paid sale {} is {:?}: neither poured nor owed",
                row.sale_id,
                row.state
            );
        }
    }
    let (edges, _) = enable_record(dir);
    assert!(edges <= paid, "{edges} pump starts for {paid} paid sales");
    let pours = ledger.pour_count().unwrap() as usize;
    assert!(
        pours <= paid,
        "{pours} pours recorded for {paid} paid sales"
    );
    states
}

#[test]
fn killed_with_the_qr_on_screen_then_paid_after_the_restart_it_is_owed_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    run.send("tap 0");
    run.wait_for("screen Payment");
    run.kill9();
    // The customer's wallet pays the QR it already scanned, while the machine restarts.
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    run.send("pay");
    run.wait_for("ok");
    std::thread::sleep(Duration::from_secs(3));
    run.quit();
    let states = check_invariants(dir.path());
    assert_eq!(states.len(), 1);
    assert_eq!(
        states[0].1,
        SaleState::Owed,
        "paid after the screen was gone: an owed credit"
    );
    assert_eq!(enable_record(dir.path()).0, 0, "no pour on the idle screen");
}

#[test]
fn killed_right_as_the_payment_arrives_it_is_poured_or_owed_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    run.send("tap 0");
    run.wait_for("screen Payment");
    run.send("pay");
    run.wait_for("ok");
    run.kill9();
    let run = start(&cfg);
    run.wait_for("screen Idle");
    std::thread::sleep(Duration::from_secs(3));
    run.quit();
    let states = check_invariants(dir.path());
    assert!(
        states[0].1 == SaleState::Poured || states[0].1 == SaleState::Owed,
        "{states:?}"
    );
    assert!(enable_record(dir.path()).0 <= 1);
}

#[test]
fn killed_mid_pour_the_pump_is_off_at_restart_and_the_sale_is_owed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    run.send("tap 0");
    run.wait_for("screen Payment");
    run.send("pay");
    run.wait_for("screen Pouring");
    std::thread::sleep(Duration::from_millis(400));
    run.kill9();
    let (edges, spans) = enable_record(dir.path());
    assert_eq!((edges, spans.len()), (1, 0), "killed with the pump on");
    let run = start(&cfg);
    run.wait_for("screen Idle");
    // The restart drove the enable pin low before anything else.
    let (edges, spans) = enable_record(dir.path());
    assert_eq!(edges, 1, "not poured again");
    assert_eq!(spans.len(), 1, "the enable pin went low at restart");
    std::thread::sleep(Duration::from_secs(1));
    run.quit();
    let states = check_invariants(dir.path());
    assert_eq!(states[0].1, SaleState::Owed);
}

#[test]
fn killed_on_the_thank_you_screen_the_sale_stays_poured_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    run.send("tap 0");
    run.wait_for("screen Payment");
    run.send("pay");
    run.wait_for("screen ThankYou");
    run.kill9();
    let run = start(&cfg);
    run.wait_for("screen Idle");
    std::thread::sleep(Duration::from_secs(2));
    run.quit();
    let states = check_invariants(dir.path());
    assert_eq!(states[0].1, SaleState::Poured);
    let (edges, spans) = enable_record(dir.path());
    assert_eq!(edges, 1);
    let err = spans[0].abs_diff(Duration::from_millis(1500));
    assert!(err < Duration::from_millis(100), "poured {:?}", spans[0]);
}

#[test]
fn a_panic_mid_pour_stops_the_pump_and_ends_the_process_for_systemd_to_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = pouring(dir.path());
    run.send("crash");
    let status = run
        .exit_within(Duration::from_secs(5))
        .expect("a panicking lnvend must end by itself");
    assert!(!status.success(), "exited with {status}");
    assert_eq!(
        last_enable_on(dir.path()),
        Some(false),
        "the pump was left on"
    );
    let (edges, spans) = enable_record(dir.path());
    assert_eq!(edges, 1);
    assert!(
        spans[0] < Duration::from_millis(4000),
        "stopped by the panic, not by the end of the pour: {:?}",
        spans[0]
    );
}

fn a_stop_signal_mid_pour_ends_the_process_with_stdin_open(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    let run = pouring(dir.path());
    let pid = libc::pid_t::try_from(run.pid()).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    // Standard input stays open: `run` (and its stdin pipe) lives until exit_within.
    let status = run
        .exit_within(Duration::from_secs(5))
        .expect("lnvend must exit on a stop signal without waiting for end-of-file");
    assert!(status.success(), "exited with {status}");
    assert_eq!(
        last_enable_on(dir.path()),
        Some(false),
        "the pump was left on"
    );
    let (_, spans) = enable_record(dir.path());
    assert!(spans[0] < Duration::from_millis(4000), "{:?}", spans[0]);
    // The stop recorded the cut-short pour as owed at once, not "pouring".
    let ledger = Ledger::open(dir.path()).unwrap();
    let rows = ledger.sales_since(0, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, SaleState::Owed, "{rows:?}");
}

/// Waits until the trace shows `edges` switch-ons of the enable pin and it is on.
fn wait_pump_on(dir: &Path, edges: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while enable_record(dir).0 < edges || last_enable_on(dir) != Some(true) {
        assert!(Instant::now() < deadline, "the pump never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killed_twice_during_a_credit_pour_the_sale_goes_to_the_operator_never_back_to_the_public() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_pouring(dir.path(), 5000);
    // The paid pour is cut by a power cut...
    pouring(dir.path()).kill9();
    // ...so after the restart the customer is offered it once, and taps it.
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    let credits = run.wait_line("credits ");
    let code = credits.trim_start_matches("credits ").trim().to_string();
    assert!(code.starts_with('S'), "{credits}");
    run.send(&format!("redeem {code}"));
    run.wait_for("screen Pouring");
    wait_pump_on(dir.path(), 2);
    // The credit pour is cut too.
    run.kill9();
    let mut run = start(&cfg);
    run.wait_for("screen Idle");
    let lines = run.lines_for(Duration::from_secs(2));
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("credits") && l.contains(&code)),
        "offered on the public screen again: {lines:?}"
    );
    // The receipt code typed in by hand pours nothing either.
    run.send(&format!("redeem {code}"));
    let lines = run.lines_for(Duration::from_secs(2));
    assert!(
        !lines.iter().any(|l| l.starts_with("screen Pouring")),
        "{lines:?}"
    );
    run.quit();
    assert_eq!(
        enable_record(dir.path()).0,
        2,
        "the paid pour and one credit pour"
    );
    let ledger = Ledger::open(dir.path()).unwrap();
    let owed = ledger.owed().unwrap();
    assert_eq!(owed.len(), 1, "owed, for the operator's Credits tab");
    assert!(!owed[0].public);
}

#[test]
fn sigterm_mid_pour_ends_the_headless_simulator_with_the_pump_off() {
    a_stop_signal_mid_pour_ends_the_process_with_stdin_open(libc::SIGTERM);
}

#[test]
fn sigint_mid_pour_ends_the_headless_simulator_with_the_pump_off() {
    a_stop_signal_mid_pour_ends_the_process_with_stdin_open(libc::SIGINT);
}
