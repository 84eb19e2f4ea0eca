//! lnvend's performance figures, measured in real time (never paused tokio time).
//!
//! `cargo bench --bench vend` (or `./scripts/bench`) prints one table:
//!
//! * **pay → pump on**: from the moment the payment is made (simulated backend: `pay()`
//!   returned; LNbits: the payer wallet's `POST /api/v1/payments` returned) to the moment the
//!   mock GPIO set the enable pin high (the pin change's own timestamp). Next to it, on the
//!   same invoices and payments, a **2 s polling client** (what other vending projects do):
//!   it asks the backend's `invoice_state` when the QR appears and every 2 s after, and its
//!   figure is the time until it first sees `Paid` (a lower bound: it has not started a pump
//!   yet). Payments are made a random 0–2 s after the QR appears, as a customer would.
//! * **with a hold invoice** (simulated backend, `hold = "always"`, issue 25): **pay → pump
//!   on** from `pay()` returning (the payment held: ACCEPTED, not taken) to the enable pin
//!   high, beside the row without a hold; and **pour finished → settled**, from the enable
//!   pin going low at the pour's end to the simulated node saying SETTLED (the pour recorded,
//!   then the settle asked; polled every 0.1 ms).
//! * **tap → QR on screen**: from `Input::Tap` to a `View` carrying the QR bitmap (invoice
//!   creation, BOLT11 checks, ledger write, QR encode + rasterise, view publish), then
//!   `ui::render` into a `MachineWindow` (QR bitmap → slint image, every property) and one
//!   full 800x480 frame drawn by slint's software renderer into a memory buffer
//!   (`MinimalSoftwareWindow`, new buffer each frame: the whole screen is drawn).
//! * **pour timing error**: |time the enable pin was high − pour time| for every pour, from
//!   the mock pin record (tokio timer + thread scheduling; not the Pi's GPIO latency).
//! * **QR encode + rasterise**: `qr::render(payment_uri(bolt11), QR_PX)` alone.
//! * **BOLT11 decode + signature check**: `bolt11::decode` of a simulator invoice alone (the
//!   secp256k1 key recovery is most of it); `--crypto` prints only this row.
//! * **picture decode + scale**: `picture::decode` of an SVG, a PNG and a JPEG product
//!   picture (once per product at config load).
//!
//! `--cpu` prints only the CPU-bound rows, no machine (benches/cpu_figures): BOLT11, QR,
//! full frames of the product and payment screens, pictures. They are the figures a change of
//! the release profile (LTO, per-crate `opt-level`) is measured by.
//!
//! `cargo bench --bench vend -- --soak` runs the soak instead: 5,000 vend cycles against the
//! simulated backend, 500 against LNbits and 5,000 against the fake BTCPay server of the
//! tests (20 ms pours), each after a warm-up of a tenth as many, checking zero double pours,
//! zero missed payments and RSS growth ≤ 5 % over the measured cycles (RSS, glibc's heap in
//! use and SQLite's share are printed along the way), and open file descriptors. The fake
//! BTCPay keeps every status socket open and pings it every 200 ms, as BTCPay does (it
//! never closes a settled invoice's socket), so a socket a finished watch failed to close
//! shows as one more fd per sale: the BTCPay row fails unless the end count is ≤ the start
//! count + 5.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) a seconds-long smoke version runs
//! every measurement a few times, without LNbits, and checks the same invariants.
//!
//! The NWC rows (benches/nwc_pay) run the same cycles through Nostr Wallet Connect: a
//! loopback nostr-relay (`./scripts/nostr-relay-venv`) and LNbits' nwcprovider extension.
//!
//! LNbits comes from `LNBITS_VENV` or `target/lnbits-venv` (`./scripts/lnbits-venv`); without
//! it the LNbits rows say "not run" (the Bolt Card rows too: benches/card_tap). `--no-lnbits`
//! skips them; `--cycles N`, `--card-taps N` (25) and
//! `--soak-sim N` / `--soak-lnbits N` / `--soak-btcpay N` change the counts. `--ledger`
//! prints only the ledger-growth table (0 to 3M sales: benches/ledger_growth).

#[path = "../tests/fake_btcpay/mod.rs"]
mod fake_btcpay;
mod flow_figures;
// The ledger as it grows: 0 to 3M sales (benches/ledger_growth).
mod ledger_growth;
// Bolt Card tap → pump on against LNbits' Bolt Cards extension (benches/card_tap).
mod card_tap;
// The CPU-bound rows alone (`--cpu`): BOLT11, QR, frames, pictures (benches/cpu_figures).
mod cpu_figures;
#[path = "../tests/support/lnbits_boltcards.rs"]
mod lnbits_boltcards;
#[path = "../tests/support/lnbits_nwc.rs"]
mod lnbits_nwc;
#[path = "../tests/support/lnbits_server.rs"]
mod lnbits_server;
#[path = "../tests/support/nostr_relay.rs"]
mod nostr_relay;
// Pay → pump on through Nostr Wallet Connect (benches/nwc_pay).
mod nwc_pay;
#[path = "../tests/support/sun_card.rs"]
mod sun_card;

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_btcpay::FakeBtcpay;
use lnbits_server::{call, free_port, set_up_wallets, venv, Lnbits, Wallets};
use lnvend::backend::sim::SimBackend;
use lnvend::backend::{InvoiceId, InvoiceState, PaymentBackend};
use lnvend::config::{BackendConfig, Config, Mode};
use lnvend::controller::{Input, Inputs, Screen, View, QR_PX};
use lnvend::pump::mock::MockGpio;
use lnvend::ui::{MachineWindow, RenderCache};
use rand::Rng;
use serde_json::json;
use slint::platform::software_renderer::{
    MinimalSoftwareWindow, PremultipliedRgbaColor, RepaintBufferType,
};
use slint::platform::{Platform, WindowAdapter};
use slint::ComponentHandle;
use tokio::runtime::Runtime;
use tokio::sync::{oneshot, watch};

/// Enable pin of channel A in the bench config.
const ENA: u8 = 18;
const STEP: Duration = Duration::from_secs(15);
/// How often the comparison client polls.
const POLL_EVERY: Duration = Duration::from_secs(2);

struct Opts {
    full: bool,
    /// `--flow`: only the flow sensor's rows (no machine, no LNbits).
    flow_only: bool,
    /// `--ledger`: only the ledger-growth table (benches/ledger_growth).
    ledger_only: bool,
    /// `--crypto`: only the signature rows (BOLT11 check), no machine.
    crypto_only: bool,
    /// `--cpu`: only the CPU-bound rows (BOLT11, QR, frames, pictures), no machine.
    cpu_only: bool,
    soak: bool,
    lnbits: bool,
    cycles: usize,
    /// Bolt Card taps on the whole machine (and samples of each part alone).
    card_taps: usize,
    soak_sim: usize,
    soak_lnbits: usize,
    soak_btcpay: usize,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let num = |name: &str, full_default: usize, smoke: usize| -> usize {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(if full { full_default } else { smoke })
    };
    Opts {
        full,
        flow_only: args.iter().any(|a| a == "--flow"),
        ledger_only: args.iter().any(|a| a == "--ledger"),
        crypto_only: args.iter().any(|a| a == "--crypto"),
        cpu_only: args.iter().any(|a| a == "--cpu"),
        soak: args.iter().any(|a| a == "--soak"),
        lnbits: full
            && !args.iter().any(|a| {
                ["--no-lnbits", "--flow", "--ledger", "--crypto", "--cpu"].contains(&a.as_str())
            }),
        cycles: num("--cycles", 100, 3),
        card_taps: num("--card-taps", 25, 3),
        soak_sim: num("--soak-sim", 5000, 30),
        soak_lnbits: num("--soak-lnbits", 500, 0),
        soak_btcpay: num("--soak-btcpay", 5000, 30),
    }
}

fn main() {
    let o = opts();
    {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let setting = std::env::var("LNVEND_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::registry()
            .with(lnvend::logging::filter(Some(&setting)))
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init();
    }
    print_machine();
    if !o.full {
        println!("(smoke run: not given --bench; figures from a handful of samples)");
    }
    let venv = if o.lnbits || (o.soak && o.soak_lnbits > 0 && o.full) {
        match venv() {
            Some(v) => Some(v),
            None => {
                println!("LNbits: no virtualenv (run ./scripts/lnbits-venv or set LNBITS_VENV); LNbits rows not run");
                None
            }
        }
    } else {
        None
    };
    if o.ledger_only {
        ledger_growth::ledger_main(&o);
    } else if o.flow_only {
        let mut rows = Vec::new();
        flow_rows(&o, &mut rows);
        print_table(&rows);
    } else if o.cpu_only {
        print_table(&cpu_figures::cpu_main(&o));
    } else if o.crypto_only {
        let mut rows = Vec::new();
        crypto_rows(&o, &sim_bolt11(), &mut rows);
        print_table(&rows);
    } else if o.soak {
        soak_main(&o, venv.as_deref());
    } else {
        bench_main(&o, venv.as_deref());
        if !o.full {
            // The smoke run also exercises the soak loop.
            soak_main(&o, None);
        }
    }
}

fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!(
        "machine: {cpu}, {n} CPU(s) available, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    );
}

// ---------------------------------------------------------------------------------------
// Statistics

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Stats {
    n: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn stats(v: &[f64]) -> Stats {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Stats {
        n: s.len(),
        p50: pct(&s, 50.0),
        p95: pct(&s, 95.0),
        p99: pct(&s, 99.0),
        max: s.last().copied().unwrap_or(f64::NAN),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed milliseconds from `a` to `b`.
fn ms_between(a: Instant, b: Instant) -> f64 {
    if b >= a {
        ms(b - a)
    } else {
        -ms(a - b)
    }
}

struct Row {
    what: String,
    stats: Option<Stats>,
    target: String,
    /// Which percentile the target is on, and its limit in ms.
    check: Option<(&'static str, f64)>,
}

fn row(what: &str, v: &[f64], target: &str, check: Option<(&'static str, f64)>) -> Row {
    Row {
        what: what.into(),
        stats: if v.is_empty() { None } else { Some(stats(v)) },
        target: target.into(),
        check,
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| {:<52} | {:>5} | {:>9} | {:>9} | {:>9} | {:>9} | {:<22} |",
        "figure (ms)", "n", "p50", "p95", "p99", "max", "target"
    );
    println!(
        "|{:-<54}|{:->7}|{:->11}|{:->11}|{:->11}|{:->11}|{:-<24}|",
        "", "", "", "", "", "", ""
    );
    for r in rows {
        match &r.stats {
            Some(s) => {
                let verdict = match r.check {
                    Some((p, limit)) => {
                        let v = match p {
                            "p95" => s.p95,
                            _ => s.p99,
                        };
                        if v <= limit {
                            " met"
                        } else {
                            " MISSED"
                        }
                    }
                    None => "",
                };
                println!(
                    "| {:<52} | {:>5} | {:>9.2} | {:>9.2} | {:>9.2} | {:>9.2} | {:<22} |",
                    r.what,
                    s.n,
                    s.p50,
                    s.p95,
                    s.p99,
                    s.max,
                    format!("{}{}", r.target, verdict)
                )
            }
            None => println!(
                "| {:<52} | {:>5} | {:>9} | {:>9} | {:>9} | {:>9} | {:<22} |",
                r.what, 0, "not run", "", "", "", r.target
            ),
        }
    }
    println!();
}

// ---------------------------------------------------------------------------------------
// A machine under test

fn config(data_dir: &Path, pour_ms: u64, backend: &str) -> Config {
    let text = format!(
        r#"
machine_id = "bench"
data_dir = "{}"
invoice_expiry_s = 600

[[product]]
name = "Cola"
price_sat = 10
pour_ms = {pour_ms}
channel = "A"

[gpio]
backend = "mock"
{backend}
"#,
        data_dir.display()
    );
    Config::parse(&text, "bench.toml", Mode::Sim).expect("bench config")
}

/// How the bench pays an invoice.
enum Payer {
    Sim(Arc<SimBackend>),
    Lnbits {
        url: String,
        adminkey: String,
    },
    /// The tests' fake BTCPay server (and the runtime it runs on).
    Btcpay(FakeBtcpay),
}

/// The backend a rig runs against, beyond what its config says.
enum With {
    Sim,
    /// LNbits' URL and the paying wallet's admin key.
    Lnbits(String, String),
    Btcpay(FakeBtcpay),
    /// NWC to LNbits' nwcprovider: that LNbits' URL and the paying wallet's admin key.
    Nwc(String, String),
}

impl Payer {
    async fn pay(&self, id: &InvoiceId, bolt11: &str, http: &reqwest::Client) {
        match self {
            Payer::Sim(sim) => sim.pay(id).expect("sim pay"),
            Payer::Lnbits { url, adminkey } => {
                let paid = call(
                    http.post(format!("{url}/api/v1/payments"))
                        .header("X-Api-Key", adminkey)
                        .json(&json!({"out": true, "bolt11": bolt11})),
                    "pay",
                )
                .await;
                assert_eq!(paid["status"], "success", "{paid}");
            }
            Payer::Btcpay(fake) => {
                // As a customer's wallet takes a moment: the status socket is up by then
                // (it would be on any real machine), so its frame is what wakes lnvend.
                let end = Instant::now() + Duration::from_secs(2);
                while fake.sockets_for(&id.0) == 0 && Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                fake.settle(&id.0);
            }
        }
    }
}

struct Rig {
    rt: Runtime,
    inputs: Inputs,
    views: watch::Receiver<View>,
    gpio: MockGpio,
    /// The comparison client's own backend (same kind, same key, its own connections).
    poll_backend: Arc<dyn PaymentBackend>,
    payer: Payer,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pour: Duration,
}

impl Rig {
    fn start(cfg: &Config, with: With) -> Rig {
        // As `lnvend run` and the headless simulator: two tokio worker threads.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let m = lnvend::app::assemble(cfg).expect("assemble");
        let inputs = m.controller.inputs();
        let views = m.controller.views();
        let (poll_backend, payer): (Arc<dyn PaymentBackend>, Payer) = match with {
            With::Sim => {
                let sim = m.sim.clone().expect("sim backend");
                (sim.clone(), Payer::Sim(sim))
            }
            With::Btcpay(fake) => {
                let BackendConfig::Btcpay(c) = cfg.backend() else {
                    panic!("not a BTCPay config")
                };
                (
                    lnvend::backend::btcpay::BtcpayBackend::new(&c, "bench-poll").unwrap(),
                    Payer::Btcpay(fake),
                )
            }
            With::Nwc(url, adminkey) => {
                let BackendConfig::Nwc(c) = cfg.backend() else {
                    panic!("not an NWC config")
                };
                let clock = Arc::new(lnvend::clock::SystemClock::new(false));
                (
                    Arc::new(lnvend::backend::nwc::NwcBackend::from_config(&c, clock).unwrap()),
                    Payer::Lnbits { url, adminkey },
                )
            }
            With::Lnbits(url, adminkey) => {
                let BackendConfig::Lnbits(c) = cfg.backend() else {
                    panic!("not an LNbits config")
                };
                (
                    Arc::new(lnvend::backend::lnbits::LnbitsBackend::new(&c).unwrap()),
                    Payer::Lnbits { url, adminkey },
                )
            }
        };
        let (stop, rx) = oneshot::channel();
        let task = rt.spawn(m.controller.run(async {
            let _ = rx.await;
        }));
        let pour = cfg.product_specs()[0].pour;
        let mut rig = Rig {
            rt,
            inputs,
            views,
            gpio: m.gpio.expect("mock gpio"),
            poll_backend,
            payer,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            pour,
        };
        rig.wait(|v| v.screen == Screen::Idle, "idle");
        rig
    }

    /// Waits (real time) until the view matches; the view, or None after [`STEP`].
    fn try_wait(&mut self, pred: impl Fn(&View) -> bool) -> Option<View> {
        let views = &mut self.views;
        self.rt.block_on(async {
            tokio::time::timeout(STEP, async {
                loop {
                    {
                        let v = views.borrow_and_update();
                        if pred(&v) {
                            return v.clone();
                        }
                    }
                    views.changed().await.expect("controller alive");
                }
            })
            .await
            .ok()
        })
    }

    fn wait(&mut self, pred: impl Fn(&View) -> bool, what: &str) -> View {
        match self.try_wait(pred) {
            Some(v) => v,
            None => panic!(
                "timed out waiting for {what}; view {:?}",
                self.views.borrow()
            ),
        }
    }

    /// Taps product 0 and waits for the payment screen with its QR: (view, tap → QR).
    fn tap_to_qr(&mut self) -> (View, Duration) {
        let t = Instant::now();
        assert!(self.inputs.send(Input::Tap(0)));
        let v = self.wait(
            |v| v.screen == Screen::Payment && v.qr.is_some(),
            "the payment screen",
        );
        (v, t.elapsed())
    }

    fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(STEP, t).await });
        }
    }
}

fn bolt11_of(v: &View) -> String {
    v.payment_uri
        .strip_prefix("LIGHTNING:")
        .expect("lightning URI")
        .to_ascii_lowercase()
}

/// The backend's id for the invoice on screen: the simulator's latest, or LNbits' payment
/// hash.
fn invoice_id(payer: &Payer, bolt11: &str) -> InvoiceId {
    match payer {
        Payer::Sim(sim) => sim.latest().expect("an invoice").id,
        Payer::Btcpay(fake) => InvoiceId(fake.latest().id),
        Payer::Lnbits { .. } => {
            // Stock FakeWallet invoices lack feature bits: lnvend's own reader takes them.
            InvoiceId(lnvend::bolt11::decode(bolt11).expect("bolt11").payment_hash)
        }
    }
}

/// The first time the enable pin went on at or after `since` (waits up to [`STEP`]).
async fn pump_on_after(gpio: &MockGpio, since: tokio::time::Instant) -> Option<Instant> {
    let mut sub = gpio.subscribe();
    tokio::time::timeout(STEP, async {
        loop {
            let found = gpio
                .recent_changes(32)
                .iter()
                .filter(|c| c.pin == ENA && c.value.is_on() && c.at >= since)
                .map(|c| c.at)
                .min();
            if let Some(at) = found {
                return at.into_std();
            }
            if sub.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    })
    .await
    .ok()
}

/// The 2 s polling client: asks from now, every 2 s, until it sees `Paid` (or 30 s pass).
async fn poll_until_paid(backend: Arc<dyn PaymentBackend>, id: InvoiceId) -> Option<Instant> {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while start.elapsed() < Duration::from_secs(30) {
        tick.tick().await;
        if let Ok(InvoiceState::Paid { .. }) = backend.invoice_state(&id).await {
            return Some(Instant::now());
        }
    }
    None
}

#[derive(Default)]
struct Samples {
    tap_to_qr: Vec<f64>,
    tap_to_frame: Vec<f64>,
    frame: Vec<f64>,
    pay_to_pump: Vec<f64>,
    pay_call: Vec<f64>,
    poll_seen: Vec<f64>,
    pour_error: Vec<f64>,
    poll_missed: usize,
    /// One authenticated `invoice_state` call (what lnvend asks after each wake-up).
    state_call: Vec<f64>,
    /// LNbits only: when an observer on the invoice's websocket got the push, from the
    /// payer's call returning (negative: before it returned).
    push_after_pay: Vec<f64>,
    /// The backend's `create_invoice` alone, without the machine.
    create_call: Vec<f64>,
}

/// `n` full vend cycles with every measurement.
fn measure_cycles(
    rig: &mut Rig,
    screen: &mut Option<Screen2>,
    n: usize,
    max_delay: Duration,
) -> Samples {
    let mut s = Samples::default();
    let mut pollers = Vec::new();
    let mut rng = rand::thread_rng();
    for _ in 0..n {
        let cycle_start = tokio::time::Instant::now();
        let (v, tap_qr) = rig.tap_to_qr();
        s.tap_to_qr.push(ms(tap_qr));
        if let Some(scr) = screen.as_mut() {
            let frame = scr.show(&v);
            s.frame.push(ms(frame));
            s.tap_to_frame.push(ms(tap_qr + frame));
        }
        let bolt11 = bolt11_of(&v);
        let id = invoice_id(&rig.payer, &bolt11);
        let poller = rig
            .rt
            .spawn(poll_until_paid(rig.poll_backend.clone(), id.clone()));
        let delay = Duration::from_micros(rng.gen_range(0..=max_delay.as_micros() as u64));
        let observer = match &rig.payer {
            Payer::Lnbits { url, .. } => Some(rig.rt.block_on(observe_push(url, &id))),
            Payer::Sim(_) | Payer::Btcpay(_) => None,
        };
        let gpio = rig.gpio.clone();
        let (paid_at, call, on) = rig.rt.block_on(async {
            tokio::time::sleep(delay).await;
            let since = tokio::time::Instant::now();
            let pump = tokio::spawn(async move { pump_on_after(&gpio, since).await });
            let t0 = Instant::now();
            rig.payer.pay(&id, &bolt11, &rig.http).await;
            let t1 = Instant::now();
            (t1, t1 - t0, pump.await.unwrap())
        });
        let on = on.expect("the pump started after the payment");
        s.pay_to_pump.push(ms_between(paid_at, on));
        s.pay_call.push(ms(call));
        pollers.push((poller, paid_at));
        if let Some(h) = observer {
            if let Some(at) = rig.rt.block_on(h).unwrap() {
                s.push_after_pay.push(ms_between(paid_at, at));
            }
        }
        rig.wait(|v| v.screen == Screen::ThankYou, "thank you");
        s.pour_error
            .extend(pour_errors(&rig.gpio, rig.pour, cycle_start));
        let backend = rig.poll_backend.clone();
        let t = Instant::now();
        let _ = rig.rt.block_on(backend.invoice_state(&id));
        s.state_call.push(ms(t.elapsed()));
    }
    // The pollers see the payments within 2 s of them.
    for (h, paid_at) in pollers {
        match rig.rt.block_on(h).unwrap() {
            Some(seen) => s.poll_seen.push(ms_between(paid_at, seen)),
            None => s.poll_missed += 1,
        }
    }
    // The backend's invoice creation alone, as lnvend asks for it on a tap.
    let req = lnvend::backend::InvoiceRequest {
        sale_id: "bench-create".into(),
        machine_id: "bar-7".into(),
        product: "Cola".into(),
        price: lnvend::money::Price::Sats(lnvend::money::Msat::from_sat(10).unwrap()),
        description: "Cola (bench)".into(),
        expiry: Duration::from_secs(600),
    };
    for _ in 0..n {
        let t = Instant::now();
        rig.rt
            .block_on(rig.poll_backend.create_invoice(&req))
            .expect("create_invoice");
        s.create_call.push(ms(t.elapsed()));
    }
    s
}

/// What a hold invoice adds to the cycle (simulated backend, `hold = "always"`).
#[derive(Default)]
struct HoldSamples {
    /// The held payment (ACCEPTED) → the enable pin high.
    pay_to_pump: Vec<f64>,
    /// The enable pin low at the pour's end → the backend says SETTLED.
    poured_to_settled: Vec<f64>,
}

/// `n` vend cycles with a hold invoice on the simulated backend: when the payment is held
/// the pump starts; after the pour lnvend records it, then settles. The settle is seen by
/// polling the simulated node every 0.1 ms from the bench's own thread.
fn measure_hold_cycles(rig: &mut Rig, n: usize, max_delay: Duration) -> HoldSamples {
    use lnvend::backend::HoldState;
    let mut s = HoldSamples::default();
    let mut rng = rand::thread_rng();
    let Payer::Sim(sim) = &rig.payer else {
        panic!("the hold rows run on the simulated backend")
    };
    let sim = sim.clone();
    for _ in 0..n {
        let (v, _) = rig.tap_to_qr();
        let id = invoice_id(&rig.payer, &bolt11_of(&v));
        let delay = Duration::from_micros(rng.gen_range(0..=max_delay.as_micros() as u64));
        let gpio = rig.gpio.clone();
        let since = rig.rt.block_on(async {
            tokio::time::sleep(delay).await;
            tokio::time::Instant::now()
        });
        let pump = rig
            .rt
            .spawn(async move { pump_on_after(&gpio, since).await });
        sim.pay(&id).expect("sim pay");
        let paid_at = Instant::now();
        assert!(
            matches!(sim.hold_of(&id), Some(HoldState::Accepted { .. })),
            "held, not taken, before the pour"
        );
        let on = rig.rt.block_on(pump).unwrap().expect("the pump started");
        s.pay_to_pump.push(ms_between(paid_at, on));
        let end = Instant::now() + STEP;
        let settled_at = loop {
            if sim.hold_of(&id) == Some(HoldState::Settled) {
                break Instant::now();
            }
            assert!(Instant::now() < end, "never settled");
            std::thread::sleep(Duration::from_micros(100));
        };
        let poured = rig
            .gpio
            .high_intervals(ENA)
            .into_iter()
            .filter(|(a, _)| *a >= since)
            .map(|(_, b)| b.into_std())
            .next_back()
            .expect("the pour ended before its settle");
        s.poured_to_settled.push(ms_between(poured, settled_at));
        rig.wait(|v| v.screen == Screen::ThankYou, "thank you");
    }
    s
}

/// Connects an observer to LNbits' websocket for invoice `id` (its payment hash); the task
/// returns when the first message arrives.
async fn observe_push(url: &str, id: &InvoiceId) -> tokio::task::JoinHandle<Option<Instant>> {
    use futures_util::StreamExt;
    let ws_url = format!("{}/api/v1/ws/{}", url.replacen("http", "ws", 1), id.0);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .expect("observer websocket");
    tokio::spawn(async move {
        let first = tokio::time::timeout(STEP, async {
            loop {
                match ws.next().await {
                    Some(Ok(m)) if m.is_text() || m.is_binary() => return Some(Instant::now()),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return None,
                }
            }
        });
        first.await.ok().flatten()
    })
}

/// |high time − pour time| of the pours that started at or after `since`, in ms. Called
/// once the thank-you screen shows (the pump has stopped by then), cycle by cycle: the mock
/// keeps only recent pin changes.
fn pour_errors(gpio: &MockGpio, pour: Duration, since: tokio::time::Instant) -> Vec<f64> {
    gpio.high_intervals(ENA)
        .iter()
        .filter(|(a, _)| *a >= since)
        .map(|(a, b)| (ms(*b - *a) - ms(pour)).abs())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The screen: slint's software renderer into a memory buffer, no display.

struct BenchPlatform {
    window: Rc<MinimalSoftwareWindow>,
    start: Instant,
}

impl Platform for BenchPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, slint::PlatformError> {
        Ok(self.window.clone())
    }
    fn duration_since_start(&self) -> Duration {
        self.start.elapsed()
    }
}

struct Screen2 {
    window: Rc<MinimalSoftwareWindow>,
    ui: MachineWindow,
    cache: RenderCache,
    buffer: Vec<PremultipliedRgbaColor>,
    /// The window's creation and its first frame (the empty idle screen: fonts loaded, the
    /// heading's glyphs drawn for the first time).
    start: Duration,
}

const W: u32 = 800;
const H: u32 = 480;

impl Screen2 {
    /// Once per process, before any other slint use.
    fn new() -> Screen2 {
        let t = Instant::now();
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        slint::platform::set_platform(Box::new(BenchPlatform {
            window: window.clone(),
            start: Instant::now(),
        }))
        .expect("set the slint platform");
        let ui = MachineWindow::new().expect("machine window");
        window.set_size(slint::PhysicalSize::new(W, H));
        ui.show().expect("show");
        let mut s = Screen2 {
            window,
            ui,
            cache: RenderCache::default(),
            buffer: vec![PremultipliedRgbaColor::default(); (W * H) as usize],
            start: Duration::ZERO,
        };
        assert!(s.frame(), "the first frame was drawn");
        s.start = t.elapsed();
        s
    }

    fn frame(&mut self) -> bool {
        slint::platform::update_timers_and_animations();
        let buffer = &mut self.buffer;
        self.window.draw_if_needed(|r| {
            r.render(buffer, W as usize);
        })
    }

    /// Maps `view` onto the window and draws one full frame: the time it took.
    fn show(&mut self, view: &View) -> Duration {
        let t = Instant::now();
        lnvend::ui::render(&self.ui, view, &mut self.cache);
        // A new buffer each frame: the whole screen is drawn, as for a screen change.
        self.window.request_redraw();
        let drawn = self.frame();
        let d = t.elapsed();
        assert!(drawn, "a frame was drawn");
        d
    }
}

// ---------------------------------------------------------------------------------------
// LNbits, started from its virtualenv (tests/support/lnbits_server.rs, as tests/lnbits.rs)

/// Starts LNbits with a machine wallet and a funded payer wallet.
fn start_lnbits(venv: &Path, data: &Path) -> (Lnbits, Wallets) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = Lnbits::start(venv, data, free_port()).await;
        let wallets = set_up_wallets(&server, 1_000_000).await;
        (server, wallets)
    })
}

// ---------------------------------------------------------------------------------------
// The benchmark

/// A real simulator invoice's BOLT11 (signed with the simulated node's key).
fn sim_bolt11() -> String {
    let sim = SimBackend::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = lnvend::backend::InvoiceRequest {
        sale_id: "bench-sale-0001".into(),
        machine_id: "bar-7".into(),
        product: "Cola".into(),
        price: lnvend::money::Price::Sats(lnvend::money::Msat::from_sat(2100).unwrap()),
        description: "Cola (bench)".into(),
        expiry: Duration::from_secs(600),
    };
    rt.block_on(sim.create_invoice(&req)).unwrap().bolt11
}

/// The BOLT11 check every invoice gets before its QR is shown: the bech32 parse and the
/// secp256k1 signature (recovery of the payee's key). Its cost depends on libsecp256k1's
/// precomputed tables (the `lowmemory` build, see Cargo.toml).
fn crypto_rows(o: &Opts, bolt11: &str, rows: &mut Vec<Row>) {
    let mut times = Vec::new();
    for _ in 0..if o.full { 2000 } else { 20 } {
        let t = Instant::now();
        let d = lnvend::bolt11::decode(bolt11).unwrap();
        times.push(ms(t.elapsed()));
        std::hint::black_box(d);
    }
    rows.push(row(
        "BOLT11 decode + signature check (bolt11::decode)",
        &times,
        "",
        None,
    ));
}

fn bench_main(o: &Opts, venv: Option<&Path>) {
    let mut rows = Vec::new();

    // QR encode + rasterise, alone.
    let sample = sim_bolt11();
    let uri = lnvend::qr::payment_uri(&sample);
    let mut qr = Vec::new();
    for _ in 0..if o.full { 500 } else { 20 } {
        let t = Instant::now();
        let bmp = lnvend::qr::render(&uri, QR_PX).unwrap();
        qr.push(ms(t.elapsed()));
        std::hint::black_box(bmp);
    }

    let mut screen = Some(Screen2::new());
    let max_delay = if o.full {
        POLL_EVERY
    } else {
        Duration::from_millis(100)
    };

    // The simulated backend.
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start(&config(&dir.path().join("sim"), 50, ""), With::Sim);
    let sim = measure_cycles(&mut rig, &mut screen, o.cycles, max_delay);
    rig.shutdown();
    check_cycles("sim", &sim, o.cycles);

    // The simulated backend with hold invoices (issue 25).
    let held_cfg = config(
        &dir.path().join("hold"),
        50,
        "[backend]\nkind = \"sim\"\nhold = \"always\"\n",
    );
    let mut rig = Rig::start(&held_cfg, With::Sim);
    let held = measure_hold_cycles(&mut rig, o.cycles, max_delay);
    rig.shutdown();

    // A local real LNbits.
    let ln = venv.map(|venv| {
        let data = dir.path().join("lnbits");
        std::fs::create_dir_all(&data).unwrap();
        let (server, wallets) = start_lnbits(venv, &data);
        let cfg = config(
            &dir.path().join("ln"),
            50,
            &lnbits_server::backend_toml(&server, &wallets),
        );
        let mut rig = Rig::start(
            &cfg,
            With::Lnbits(server.url(), wallets.payer_adminkey.clone()),
        );
        let s = measure_cycles(&mut rig, &mut screen, o.cycles, max_delay);
        rig.shutdown();
        check_cycles("lnbits", &s, o.cycles);
        drop(server);
        s
    });
    let empty = Samples::default();
    let l = ln.as_ref().unwrap_or(&empty);
    // The card rows need LNbits' Bolt Cards extension, which is not in this repository.
    // Nostr Wallet Connect to LNbits' nwcprovider over a loopback relay (benches/nwc_pay).
    let nwc = venv.and_then(|v| nwc_pay::measure(dir.path(), v, o.cycles, &mut screen, max_delay));
    let cards = venv
        .filter(|_| lnbits_boltcards::available())
        .map(|venv| card_tap::measure(dir.path(), venv, o.card_taps))
        .unwrap_or_default();

    rows.push(row(
        "pay → pump on, sim backend (lnvend)",
        &sim.pay_to_pump,
        "",
        None,
    ));
    rows.push(row(
        "pay → pump on, sim, hold invoice (ACCEPTED → pump)",
        &held.pay_to_pump,
        "",
        None,
    ));
    rows.push(row(
        "pour finished → settled, sim, hold invoice",
        &held.poured_to_settled,
        "",
        None,
    ));
    rows.push(row(
        "pay → Paid seen, sim, 2 s polling client",
        &sim.poll_seen,
        "",
        None,
    ));
    rows.push(row(
        "pay → pump on, loopback LNbits (lnvend)",
        &l.pay_to_pump,
        "p99 ≤ 50",
        Some(("p99", 50.0)),
    ));
    rows.push(row(
        "pay → Paid seen, LNbits, 2 s polling client",
        &l.poll_seen,
        "",
        None,
    ));
    rows.push(row(
        "  (LNbits payer's pay call itself)",
        &l.pay_call,
        "",
        None,
    ));
    rows.push(row(
        "  (LNbits push to an observer socket, after pay)",
        &l.push_after_pay,
        "",
        None,
    ));
    rows.push(row(
        "  (one authenticated invoice_state, LNbits)",
        &l.state_call,
        "",
        None,
    ));
    if let Some(n) = &nwc {
        nwc_rows(n, &mut rows);
    }
    rows.push(row("tap → QR in view, sim", &sim.tap_to_qr, "", None));
    rows.push(row(
        "tap → QR on screen (view + render + frame), sim",
        &sim.tap_to_frame,
        "p95 ≤ 150",
        Some(("p95", 150.0)),
    ));
    rows.push(row("tap → QR in view, LNbits", &l.tap_to_qr, "", None));
    rows.push(row(
        "tap → QR on screen (view + render + frame), LNbits",
        &l.tap_to_frame,
        "p95 ≤ 150",
        Some(("p95", 150.0)),
    ));
    rows.push(row(
        "  (create_invoice alone, sim)",
        &sim.create_call,
        "",
        None,
    ));
    rows.push(row(
        "  (create_invoice alone, LNbits)",
        &l.create_call,
        "",
        None,
    ));
    let frames: Vec<f64> = sim.frame.iter().chain(l.frame.iter()).copied().collect();
    rows.push(row(
        "  ui::render + one full 800x480 software frame",
        &frames,
        "",
        None,
    ));
    let pours: Vec<f64> = sim
        .pour_error
        .iter()
        .chain(l.pour_error.iter())
        .copied()
        .collect();
    rows.push(row(
        "pour timing error |high − 50 ms pour|",
        &pours,
        "p99 ≤ 5",
        Some(("p99", 5.0)),
    ));
    rows.push(row("QR encode + rasterise (qr::render)", &qr, "", None));
    crypto_rows(o, &sample, &mut rows);
    if let Some(scr) = screen.as_mut() {
        cpu_figures::frame_rows(o, scr, &mut rows);
    }
    cpu_figures::picture_rows(o, &mut rows);
    card_rows(&cards, &mut rows);
    flow_rows(o, &mut rows);
    print_table(&rows);
    if ln.is_none() {
        println!("LNbits rows: not run");
    }
}

/// The NWC rows (loopback nostr-relay and LNbits' nwcprovider; see benches/nwc_pay).
fn nwc_rows(n: &Samples, rows: &mut Vec<Row>) {
    rows.push(row(
        "pay → pump on, NWC (relay + nwcprovider, polled)",
        &n.pay_to_pump,
        "",
        None,
    ));
    rows.push(row(
        "pay → Paid seen, NWC, 2 s polling client",
        &n.poll_seen,
        "",
        None,
    ));
    rows.push(row(
        "  (one authenticated lookup_invoice, NWC)",
        &n.state_call,
        "",
        None,
    ));
    rows.push(row("tap → QR in view, NWC", &n.tap_to_qr, "", None));
    rows.push(row(
        "  (create_invoice alone, NWC)",
        &n.create_call,
        "",
        None,
    ));
}

/// The Bolt Card rows (loopback LNbits with its Bolt Cards extension; see benches/card_tap):
/// the whole tap, then its parts from the same taps.
fn card_rows(c: &card_tap::CardSamples, rows: &mut Vec<Row>) {
    rows.push(row(
        "card tap → pump on, loopback LNbits Bolt Cards",
        &c.tap_to_pump,
        "p95 ≤ 1500",
        Some(("p95", 1500.0)),
    ));
    let parts: [(&str, &[f64]); 6] = [
        (
            "  (read: card in the field → URL on the reader thread)",
            &c.read,
        ),
        (
            "  (withdrawRequest: GET the card's URL → reply)",
            &c.withdraw_request,
        ),
        (
            "  (callback: GET with k1 + invoice → reply; LNbits pays inside)",
            &c.callback,
        ),
        (
            "  (LNbits' push of the payment, after the callback went out)",
            &c.push_in_callback,
        ),
        (
            "  (confirmation: push → authenticated state, ledger, pump on)",
            &c.confirmation,
        ),
        (
            "  (lnvend's own: the whole minus LNbits' share)",
            &c.lnvend_own,
        ),
    ];
    for (what, v) in parts {
        rows.push(row(what, v, "", None));
    }
}

/// The flow sensor's rows: in pulses, ml, µs and per cent, not ms.
fn flow_rows(o: &Opts, rows: &mut Vec<Row>) {
    let vol = flow_figures::volume_errors(if o.full { 500 } else { 20 });
    rows.push(row(
        "volume error at stop, pulses (trace, 10–500 ml/s)",
        &vol,
        "p99 ≤ 1 pulse",
        Some(("p99", 1.0)),
    ));
    let vol_ml: Vec<f64> = vol.iter().map(|p| p * 1000.0 / 450.0).collect();
    rows.push(row(
        "  the same in ml at 450 pulses/l",
        &vol_ml,
        "p99 ≤ 2.2 ml",
        Some(("p99", 2.3)),
    ));
    let cost = flow_figures::pulse_cost_us(if o.full { 200 } else { 10 });
    rows.push(row(
        "pulse handling, µs per pulse (counter)",
        &cost,
        "",
        None,
    ));
    let cpu: Vec<f64> = cost
        .iter()
        .map(|&c| flow_figures::cpu_percent_at_top_rate(c))
        .collect();
    rows.push(row(
        "  CPU % at the sensor's top rate (225 Hz)",
        &cpu,
        "p99 ≤ 0.1 %",
        Some(("p99", 0.1)),
    ));
}

fn check_cycles(what: &str, s: &Samples, n: usize) {
    assert_eq!(s.pour_error.len(), n, "{what}: one pour per payment");
    assert_eq!(
        s.poll_missed, 0,
        "{what}: the polling client saw every payment"
    );
}

// ---------------------------------------------------------------------------------------
// The soak

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// What the process's heap holds in use (glibc's count), in kB.
fn heap_kb() -> u64 {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64 / 1024
}

/// What SQLite has allocated in this process (its page caches and statements), in kB.
fn sqlite_kb() -> u64 {
    // SAFETY: a read-only statistics call, safe from any thread.
    let bytes = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    u64::try_from(bytes).unwrap_or(0) / 1024
}

struct SoakResult {
    cycles: usize,
    poured: usize,
    missed: usize,
    /// Taps that did not lead to a payment screen (the soak stops at the first).
    failed: usize,
    rss_start_kb: u64,
    rss_end_kb: u64,
    /// Open file descriptors after the warm-up and at the end.
    fds_start: usize,
    fds_end: usize,
    /// Bytes the allocator has handed out and not got back (no pools, no code pages).
    heap_start_kb: u64,
    heap_end_kb: u64,
    pour_error_p99: f64,
    elapsed: Duration,
}

fn soak(rig: &mut Rig, data: &Path, cycles: usize) -> SoakResult {
    // The first tenth faults in code and fills the allocator's pools and SQLite's page cache;
    // growth is measured after it.
    let warm = (cycles / 10).clamp(1, 500);
    let mut missed = 0;
    let mut failed = 0;
    let mut done: usize = 0;
    let mut rss_start_kb = 0;
    let mut fds_start = 0;
    let mut errors = Vec::with_capacity(warm + cycles);
    let mut trace = Vec::new();
    let started = Instant::now();
    for i in 0..warm + cycles {
        if i == warm {
            rss_start_kb = rss_kb();
            fds_start = fds();
        }
        if i >= warm && (i - warm) % (cycles / 10).max(1) == 0 {
            trace.push((i - warm, rss_kb(), heap_kb(), sqlite_kb()));
        }
        let cycle_start = tokio::time::Instant::now();
        assert!(rig.inputs.send(Input::Tap(0)));
        let Some(v) = rig.try_wait(|v| v.screen == Screen::Payment && v.qr.is_some()) else {
            println!(
                "soak: cycle {i}: no payment screen after a tap; view {:?}",
                rig.views.borrow()
            );
            failed += 1;
            break;
        };
        let bolt11 = bolt11_of(&v);
        let id = invoice_id(&rig.payer, &bolt11);
        rig.rt
            .block_on(async { rig.payer.pay(&id, &bolt11, &rig.http).await });
        if rig.try_wait(|v| v.screen == Screen::ThankYou).is_none() {
            missed += 1;
        }
        done += 1;
        errors.extend(pour_errors(&rig.gpio, rig.pour, cycle_start));
    }
    let elapsed = started.elapsed();
    let rss_end_kb = rss_kb();
    trace.push((
        done.saturating_sub(warm),
        rss_end_kb,
        heap_kb(),
        sqlite_kb(),
    ));
    let heap_start_kb = trace.first().map_or(0, |t| t.2);
    let heap_end_kb = trace.last().map_or(0, |t| t.2);
    let trace: Vec<String> = trace
        .iter()
        .map(|(c, rss, heap, sql)| format!("{c}: {rss}/{heap}/{sql}"))
        .collect();
    println!(
        "soak: after N cycles past the {warm}-cycle warm-up, RSS/heap in use/SQLite's share, kB: {}",
        trace.join(", ")
    );
    // Let the last pour end before counting.
    std::thread::sleep(Duration::from_millis(200));
    // The last watch closes its socket as it ends: a moment, not a leak.
    let fds_by = Instant::now() + Duration::from_secs(2);
    while fds() > fds_start + 5 && Instant::now() < fds_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    let fds_end = fds();
    let poured_pins = rig.gpio.on_count(ENA) as usize;
    let ledger = lnvend::ledger::Ledger::open(data).expect("ledger");
    let poured_ledger = ledger.pour_count().expect("pour count") as usize;
    assert_eq!(
        poured_pins, poured_ledger,
        "pin record and ledger agree on the number of pours"
    );
    let owed = ledger.owed().expect("owed").len();
    SoakResult {
        cycles: done,
        poured: poured_pins,
        missed: missed + owed,
        failed,
        rss_start_kb,
        rss_end_kb,
        fds_start,
        fds_end,
        heap_start_kb,
        heap_end_kb,
        pour_error_p99: stats(&errors).p99,
        elapsed,
    }
}

/// Prints the soak's line; (nothing lost or poured twice, RSS growth within 5 %).
fn report_soak(what: &str, r: &SoakResult) -> (bool, bool) {
    let double = r.poured.saturating_sub(r.cycles);
    let missed = r.missed + r.cycles.saturating_sub(r.poured);
    let growth = (r.rss_end_kb as f64 - r.rss_start_kb as f64) / r.rss_start_kb as f64 * 100.0;
    let sound = double == 0 && missed == 0 && r.failed == 0;
    let ok = sound && growth <= 5.0;
    println!(
        "soak {what}: {} cycles (incl. warm-up), {} failed taps, in {:.1} s: pours {}, double pours {double}, missed payments {missed}, RSS {} kB → {} kB ({growth:+.2} %, target ≤ 5 %), heap in use {} kB → {} kB, open fds {} → {}, pour error p99 {:.2} ms: {}",
        r.cycles,
        r.failed,
        r.elapsed.as_secs_f64(),
        r.poured,
        r.rss_start_kb,
        r.rss_end_kb,
        r.heap_start_kb,
        r.heap_end_kb,
        r.fds_start,
        r.fds_end,
        r.pour_error_p99,
        if ok { "PASS" } else { "FAIL" }
    );
    (sound, growth <= 5.0)
}

fn soak_main(o: &Opts, venv: Option<&Path>) {
    let dir = tempfile::tempdir().unwrap();
    let mut ok = true;
    {
        let data = dir.path().join("sim");
        let mut rig = Rig::start(&config(&data, 20, ""), With::Sim);
        let r = soak(&mut rig, &data, o.soak_sim);
        rig.shutdown();
        let (sound, light) = report_soak("sim backend", &r);
        ok &= sound && (light || !o.full);
    }
    if o.soak_lnbits > 0 {
        match venv {
            Some(venv) => {
                let ldata = dir.path().join("lnbits");
                std::fs::create_dir_all(&ldata).unwrap();
                let (server, wallets) = start_lnbits(venv, &ldata);
                let data = dir.path().join("ln");
                let cfg = config(&data, 20, &lnbits_server::backend_toml(&server, &wallets));
                let mut rig = Rig::start(
                    &cfg,
                    With::Lnbits(server.url(), wallets.payer_adminkey.clone()),
                );
                let r = soak(&mut rig, &data, o.soak_lnbits);
                rig.shutdown();
                let (sound, light) = report_soak("LNbits", &r);
                ok &= sound && (light || !o.full);
            }
            None => println!("soak LNbits: not run (no LNbits virtualenv)"),
        }
    }
    if o.soak_btcpay > 0 {
        ok &= soak_btcpay(o, dir.path());
    }
    // The smoke run only checks that nothing was lost or poured twice (and, for BTCPay, that
    // no socket was left open): its RSS figures come from too few cycles to mean anything.
    assert!(ok, "the soak failed");
}

/// The BTCPay row: the tests' fake Greenfield server on its own runtime, keeping every
/// status socket open and pinging it; whether the row passed.
fn soak_btcpay(o: &Opts, dir: &Path) -> bool {
    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = fake_rt.block_on(FakeBtcpay::start());
    fake.ping_every(Duration::from_millis(200));
    // 5,000 invoices' records would be the fake's growth, not lnvend's.
    fake.keep_last(50);
    let backend = format!(
        r#"
[backend]
kind = "btcpay"
url = "{}"
store_id = "{}"
api_key = "{}"
request_timeout_ms = 5000
network = "regtest"
"#,
        fake.url(),
        fake_btcpay::STORE,
        fake_btcpay::KEY
    );
    let data = dir.join("btcpay");
    let mut rig = Rig::start(&config(&data, 20, &backend), With::Btcpay(fake.clone()));
    let r = soak(&mut rig, &data, o.soak_btcpay);
    rig.shutdown();
    let (sound, light) = report_soak("BTCPay (fake)", &r);
    let closed = r.fds_end <= r.fds_start + 5;
    println!(
        "soak BTCPay (fake): open fds {} → {} (target ≤ start + 5), status sockets still open at the fake {}: {}",
        r.fds_start,
        r.fds_end,
        fake.ws_live(),
        if closed { "PASS" } else { "FAIL" }
    );
    let errors = fake.schema_errors();
    assert!(
        errors.is_empty(),
        "the fake or lnvend left the Greenfield schema: {errors:#?}"
    );
    sound && closed && (light || !o.full)
}
