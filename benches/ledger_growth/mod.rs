//! The ledger as the years fill it (`cargo bench --bench vend -- --ledger`): ledgers of 0,
//! 100k, 1M and 3M sales (3M is a year of README's prankster, one unpaid invoice every
//! 10 s), and at each what the customer and the machine feel: start-up (assemble, ledger
//! open and migration, recovery, the re-check listing, until the idle screen), the ledger
//! work of one heartbeat (`owed()`, as with metrics on), of one sweep (the newest sale, the
//! unsettled invoices of the late window, a retention step), of one operator view, tap →
//! QR on screen (the whole machine, simulated backend; the machines on every size tapped in
//! turn, round after round, so the shared build machine's load falls on all alike), and the
//! file's size.
//!
//! The ledgers are generated once, fast (one transaction, prepared statements, straight
//! into the current schema) and kept under `target/bench-ledgers/` (regenerated when the
//! schema version changes). The mix is a prankster's year: of every 1,000 sales 950 are
//! abandoned unpaid invoices (cancelled or expired), 40 poured, 5 owed, 3 refunded, 2
//! settled, one every 10 s ending now. Retention has run as on a machine: unpaid invoices
//! older than a week have no BOLT11 left; every other sale keeps its ~400-character BOLT11.
//! The goal: nothing the customer sees (tap → QR, the heartbeat that keeps the watchdog
//! fed) slows by more than 10 % between 0 and 3M.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lnvend::ledger::{schema, Ledger, SaleState};
use rusqlite::{params, Connection};

use super::{config, ms, stats, Input, Opts, Rig, Screen, With};

/// One invoice every 10 s: README's prankster, 8,640 a day.
const EVERY_US: i64 = 10_000_000;
const DAY_US: i64 = 86_400_000_000;
const WEEK_US: i64 = 7 * DAY_US;
const PRICE_MSAT: i64 = 2_100_000;
/// The generator's version: a change to the mix regenerates the cached ledgers.
const MIX: u32 = 2;

fn sizes(o: &Opts) -> Vec<usize> {
    if o.full {
        vec![0, 100_000, 1_000_000, 3_000_000]
    } else {
        vec![0, 2_000]
    }
}

/// What sale `i` of the generated ledger became (per mille of the mix above).
fn state_of(i: usize) -> SaleState {
    match i % 1000 {
        0..=39 => SaleState::Poured,
        40..=44 => SaleState::Owed,
        45..=47 => SaleState::Refunded,
        48..=49 => SaleState::Settled,
        50..=499 => SaleState::Expired,
        _ => SaleState::Cancelled,
    }
}

/// The ledger directory for `n` sales, generated if missing or of an older schema.
fn ledger_dir(n: usize) -> (PathBuf, Option<Duration>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-ledgers")
        .join(n.to_string());
    let marker = dir.join("generated");
    let want = format!("{n} sales, schema {}, mix {MIX}\n", schema::LATEST);
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        return (dir, None);
    }
    let t = Instant::now();
    generate(&dir, n);
    std::fs::write(&marker, want).unwrap();
    (dir, Some(t.elapsed()))
}

fn generate(dir: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(dir);
    // The current schema, made by lnvend itself.
    drop(Ledger::open(dir).expect("a new ledger"));
    let mut c = Connection::open(dir.join("sales.db")).unwrap();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    let now_us = lnvend::clock::unix_now_us();
    let first = now_us - n as i64 * EVERY_US;
    let payload = format!("lnbc21u1p{}", "x".repeat(390));
    let tx = c.transaction().unwrap();
    {
        let mut sale = tx
            .prepare(
                "INSERT INTO sales (id, product, price_msat, backend, invoice_id, payment_hash,
                     bolt11, expires_at, state, reason, created_us, pour_attempts, poured_ml)
                 VALUES (?1, ?2, ?3, 'sim', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .unwrap();
        let mut step = tx
            .prepare(
                "INSERT INTO transitions (sale_id, kind, at_us, detail) VALUES (?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut pour = tx
            .prepare("INSERT INTO pours (invoice_id, sale_id, started_us) VALUES (?1, ?2, ?3)")
            .unwrap();
        let mut days: HashMap<(i64, &str), (i64, i64)> = HashMap::new();
        let products = ["Cola", "Mate", "Water"];
        for i in 0..n {
            let at = first + i as i64 * EVERY_US;
            // An owed credit waits for its customer or the operator a day at most; older
            // ones were settled by then.
            let state = match state_of(i) {
                SaleState::Owed if at < now_us - DAY_US => SaleState::Settled,
                s => s,
            };
            let product = products[i % products.len()];
            let id = format!("S{}-{:04X}", at / 1_000_000, i & 0xffff);
            let invoice = format!("bench-{i:09}");
            let paid = !matches!(state, SaleState::Expired | SaleState::Cancelled);
            let stale = !paid && at < now_us - WEEK_US;
            let attempts = i64::from(paid && state != SaleState::Owed);
            sale.execute(params![
                id,
                product,
                PRICE_MSAT,
                invoice,
                format!("{i:064x}"),
                if stale { "" } else { payload.as_str() },
                at / 1_000_000 + 600,
                state.as_str(),
                (state == SaleState::Owed).then_some("pump: no flow"),
                at,
                attempts,
                (state == SaleState::Poured).then_some(300),
            ])
            .unwrap();
            step.execute(params![id, "created", at, None::<String>])
                .unwrap();
            let later = at + 30_000_000;
            let kinds: &[&str] = match state {
                SaleState::Expired => &["expired"],
                SaleState::Cancelled => &["cancelled"],
                SaleState::Poured => &["paid", "pour_started", "poured"],
                SaleState::Owed => &["paid", "credited"],
                SaleState::Refunded => &["paid", "credited", "refunded"],
                SaleState::Settled => &["paid", "credited", "settled"],
                SaleState::Returned => &["paid", "pour_started", "failed", "returning"],
                SaleState::Created | SaleState::Pouring => &[],
            };
            for k in kinds {
                let detail = (*k == "refunded").then(|| format!("{PRICE_MSAT} msat; by hand"));
                step.execute(params![id, k, later, detail]).unwrap();
            }
            if state == SaleState::Poured {
                pour.execute(params![invoice, id, later]).unwrap();
                let e = days.entry((at / DAY_US, product)).or_default();
                e.0 += 1;
                e.1 += PRICE_MSAT;
            }
        }
        // The running totals `record_poured` would have kept.
        let mut totals: HashMap<&str, (i64, i64)> = HashMap::new();
        for ((day, product), (count, msat)) in &days {
            tx.execute(
                "INSERT INTO poured_days (day, product, count, msat) VALUES (?1, ?2, ?3, ?4)",
                params![day, product, count, msat],
            )
            .unwrap();
            let t = totals.entry(product).or_default();
            t.0 += count;
            t.1 += msat;
        }
        for (product, (count, msat)) in totals {
            tx.execute(
                "INSERT INTO poured_totals (product, count, msat) VALUES (?1, ?2, ?3)",
                params![product, count, msat],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .unwrap();
}

/// Times `f` `n` times: milliseconds, one sample each.
fn times(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            ms(t.elapsed())
        })
        .collect()
}

fn p50(v: &[f64]) -> f64 {
    stats(v).p50
}

struct Figures {
    n: usize,
    generated: Option<Duration>,
    mb: f64,
    open_ms: f64,
    start_ms: f64,
    heartbeat: Vec<f64>,
    sweep: Vec<f64>,
    operator: Vec<f64>,
    tap_qr: Vec<f64>,
}

fn measure(o: &Opts, n: usize) -> Figures {
    let (dir, generated) = ledger_dir(n);
    let file = dir.join("sales.db");
    let mb = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    let reps = if o.full { 200 } else { 5 };
    let t = Instant::now();
    let mut l = Ledger::open(&dir).expect("open the ledger");
    let open_ms = ms(t.elapsed());
    let heartbeat = times(reps, || {
        std::hint::black_box(l.owed().unwrap());
    });
    let now = lnvend::clock::unix_now();
    let sweep = times(reps / 4 + 1, || {
        let newest = l.newest_sale_unix().unwrap().unwrap_or(now);
        std::hint::black_box(l.unsettled_ids_since(now - 24 * 3600 - 600).unwrap());
        l.drop_stale_payloads(now.min(newest) - 7 * 24 * 3600, 256)
            .unwrap();
    });
    let today = now as i64 / 86_400 * DAY_US;
    let operator = times(reps / 4 + 1, || {
        std::hint::black_box((
            l.totals_since(today).unwrap(),
            l.totals_since(0).unwrap(),
            l.sales_since(0, 20).unwrap(),
            l.owed().unwrap(),
            l.poured_per_day(today - 13 * DAY_US).unwrap(),
            l.poured_per_product(today - 13 * DAY_US).unwrap(),
        ));
    });
    drop(l);
    Figures {
        n,
        generated,
        mb,
        open_ms,
        start_ms: 0.0,
        heartbeat,
        sweep,
        operator,
        tap_qr: Vec::new(),
    }
}

/// The whole machine on each ledger at once: start-up (from assembling it to the first QR;
/// the idle screen shows before start-up's work, the first tap waits for all of it), then
/// rounds of one tap (cancelled) on every machine in turn, each round starting at the next
/// size, so a change in the shared machine's load during the run falls on every size alike
/// rather than on whichever ran last or first. Each machine may make one invoice per 10 s after its burst.
fn measure_machines(o: &Opts, figures: &mut [Figures]) {
    let rounds = if o.full { 30 } else { 1 };
    let mut rigs = Vec::new();
    for f in figures.iter_mut() {
        let (dir, _) = ledger_dir(f.n);
        let cfg = config(&dir, 50, "");
        let t = Instant::now();
        let mut rig = Rig::start(&cfg, With::Sim);
        let _ = rig.tap_to_qr();
        f.start_ms = ms(t.elapsed());
        assert!(rig.inputs.send(Input::Cancel));
        rig.wait(|v| v.screen == Screen::Idle, "idle after cancel");
        rigs.push(rig);
    }
    for round in 0..rounds {
        if round >= limits_burst() {
            std::thread::sleep(Duration::from_secs(10));
        }
        // Each round starts at the next size, so no size is always first after the pause.
        let n = rigs.len();
        for k in 0..n {
            let i = (round + k) % n;
            let (_, d) = rigs[i].tap_to_qr();
            figures[i].tap_qr.push(ms(d));
            assert!(rigs[i].inputs.send(Input::Cancel));
            rigs[i].wait(|v| v.screen == Screen::Idle, "idle after cancel");
        }
    }
    for rig in rigs {
        rig.shutdown();
    }
}

/// Taps a machine allows back to back (one went into the start-up figure).
fn limits_burst() -> usize {
    lnvend::controller::limits::INVOICE_BURST as usize - 1
}

pub fn ledger_main(o: &Opts) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average (1, 5, 15 min): {}", load.trim());
    let mut figures: Vec<Figures> = sizes(o).into_iter().map(|n| measure(o, n)).collect();
    measure_machines(o, &mut figures);
    println!();
    println!(
        "| {:>9} | {:>8} | {:>9} | {:>10} | {:>10} | {:>12} | {:>9} | {:>11} | {:>10} | {:>10} |",
        "sales",
        "file MB",
        "generated",
        "open (ms)",
        "start→QR ms",
        "heartbeat ms",
        "sweep ms",
        "operator ms",
        "tap→QR p50",
        "tap→QR max"
    );
    println!(
        "|{:->11}|{:->10}|{:->11}|{:->12}|{:->12}|{:->14}|{:->11}|{:->13}|{:->12}|{:->12}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    for f in &figures {
        println!(
            "| {:>9} | {:>8.1} | {:>9} | {:>10.1} | {:>10.0} | {:>12.3} | {:>9.2} | {:>11.2} | {:>10.1} | {:>10.1} |",
            f.n,
            f.mb,
            f.generated
                .map_or("cached".to_string(), |d| format!("{:.0} s", d.as_secs_f64())),
            f.open_ms,
            f.start_ms,
            p50(&f.heartbeat),
            p50(&f.sweep),
            p50(&f.operator),
            p50(&f.tap_qr),
            stats(&f.tap_qr).max,
        );
    }
    // What the customer sees, largest ledger against the empty one (p50s).
    if let (Some(a), Some(b)) = (figures.first(), figures.last()) {
        let change = |x: f64, y: f64| (y / x - 1.0) * 100.0;
        println!(
            "\n{} → {} sales: tap → QR {:+.0} %, heartbeat {:+.3} ms (goal: ≤ +10 % for what the customer sees)",
            a.n,
            b.n,
            change(p50(&a.tap_qr), p50(&b.tap_qr)),
            p50(&b.heartbeat) - p50(&a.heartbeat),
        );
    }
}
