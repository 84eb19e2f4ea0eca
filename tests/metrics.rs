//! The Prometheus side: what the metrics say after known sales (a whole machine under paused
//! time), a real Prometheus (Debian's `prometheus`) scraping the real binary's headless
//! simulator and answering its HTTP API, and `promtool` checking and unit-testing the alert
//! rules shipped in contrib/prometheus. A missing `prometheus`/`promtool` fails these tests
//! (./scripts/deps installs the package).

mod common;
#[path = "support/headless.rs"]
mod headless;
#[path = "support/lnbits_server.rs"]
mod lnbits_server;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{config, failed_pour, TestMachine};
use headless::Headless;
use lnvend::controller::{Input, Screen};

/// The value of one sample line, by its name and labels as printed.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[tokio::test(start_paused = true)]
async fn known_sales_show_in_the_metrics_by_product_and_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    // A Cola paid and poured (4 s on channel A).
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    // A Mate left unpaid.
    m.tap(1);
    m.wait_screen(Screen::Payment).await;
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    let text = m.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"lnvend_sales_total{product="Cola",outcome="paid"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"lnvend_sales_total{product="Mate",outcome="cancelled"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"lnvend_sales_total{product="Mate",outcome="paid"}"#
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            r#"lnvend_pours_total{product="Cola",outcome="poured"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&text, r#"lnvend_received_sats_total{product="Cola"}"#),
        2100.0
    );
    let pumped = sample(&text, r#"lnvend_pump_run_seconds_total{channel="A"}"#);
    assert!((4.0..4.5).contains(&pumped), "{pumped} s for a 4 s pour");
    assert_eq!(sample(&text, "lnvend_pay_to_pump_seconds_count"), 1.0);
    assert_eq!(
        sample(&text, r#"lnvend_state{state="idle",reason=""}"#),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"lnvend_build_info{version="0.1.0",backend="sim",machine_id="test-machine"}"#
        ),
        1.0
    );

    // A pour that fails half-way: a failed pour and an owed credit of its price.
    let _code = failed_pour(&mut m).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = m.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"lnvend_pours_total{product="Cola",outcome="failed"}"#
        ),
        1.0
    );
    assert_eq!(sample(&text, "lnvend_owed_credits"), 1.0);
    assert_eq!(sample(&text, "lnvend_owed_sats"), 2100.0);
    assert_eq!(
        sample(
            &text,
            r#"lnvend_sales_total{product="Cola",outcome="paid"}"#
        ),
        2.0
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_payment_the_ledger_refuses_as_already_poured_is_not_counted_as_a_sale() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    // The ledger already holds a pour of this invoice (as after a pour it counted once).
    let mut l = lnvend::ledger::Ledger::open(dir.path()).unwrap();
    let sale = l.newest_sale_id().unwrap().unwrap();
    let invoice: String = rusqlite::Connection::open(dir.path().join("sales.db"))
        .unwrap()
        .query_row("SELECT invoice_id FROM sales WHERE id = ?1", [&sale], |r| {
            r.get(0)
        })
        .unwrap();
    let sale = lnvend::vend::SaleId(sale);
    l.begin_pour(&sale, &lnvend::backend::InvoiceId(invoice))
        .unwrap();
    l.record_poured(&sale).unwrap();
    drop(l);
    m.sim().pay_latest().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        m.gpio.high_intervals(common::ENA).len(),
        0,
        "no second pour"
    );
    let text = m.metrics.encode();
    assert_eq!(
        sample(
            &text,
            r#"lnvend_sales_total{product="Cola",outcome="paid"}"#
        ),
        0.0,
        "the refused payment is no second sale"
    );
    assert_eq!(
        sample(&text, r#"lnvend_received_sats_total{product="Cola"}"#),
        0.0
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_settled_credit_leaves_the_owed_gauges_and_priming_counts_as_pump_wear() {
    let sim_toml = include_str!("../examples/sim.toml");
    let pin = sim_toml
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{pin}\n{}", common::config_text(dir.path(), ""));
    let cfg = lnvend::config::Config::parse(&text, "t.toml", lnvend::config::Mode::Sim).unwrap();
    let mut m = TestMachine::start(&cfg);
    // As when a listener serves them.
    m.metrics.set_served();
    m.wait_screen(Screen::Idle).await;
    let code = failed_pour(&mut m).await;
    assert_eq!(sample(&m.metrics.encode(), "lnvend_owed_credits"), 1.0);
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await;
    m.send(Input::Operator(lnvend::controller::OpAction::Settle(code)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = m.metrics.encode();
    assert_eq!(sample(&text, "lnvend_owed_credits"), 0.0);
    // Priming channel B for 3 s wears the pump too.
    let before = sample(&text, r#"lnvend_pump_run_seconds_total{channel="B"}"#);
    m.send(Input::Operator(lnvend::controller::OpAction::Prime {
        channel: lnvend::pump::Channel::B,
        on: true,
    }));
    tokio::time::sleep(Duration::from_secs(3)).await;
    m.send(Input::Operator(lnvend::controller::OpAction::Prime {
        channel: lnvend::pump::Channel::B,
        on: false,
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let primed = sample(
        &m.metrics.encode(),
        r#"lnvend_pump_run_seconds_total{channel="B"}"#,
    ) - before;
    assert!((2.9..3.2).contains(&primed), "{primed} s of priming");
    assert_eq!(sample(&text, "lnvend_owed_sats"), 0.0);
    assert_eq!(
        sample(&text, r#"lnvend_state{state="service",reason=""}"#),
        1.0
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_backend_down_shows_in_the_state_and_backend_series() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let up = m.metrics.encode();
    assert_eq!(sample(&up, "lnvend_backend_up"), 1.0);
    let last_ok = sample(&up, "lnvend_backend_last_ok_timestamp_seconds");
    m.sim().set_down(true);
    m.wait_screen(Screen::OutOfService).await;
    let down = m.metrics.encode();
    assert_eq!(sample(&down, "lnvend_backend_up"), 0.0);
    assert_eq!(
        sample(&down, "lnvend_backend_last_ok_timestamp_seconds"),
        last_ok,
        "the time of the last GOOD answer stays"
    );
    assert_eq!(
        sample(
            &down,
            r#"lnvend_state{state="out_of_service",reason="backend"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&down, r#"lnvend_state{state="idle",reason=""}"#),
        0.0
    );
    m.shutdown().await;
}

fn contrib() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus")
}

fn run_promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(contrib())
        .output()
        .expect("promtool (Debian package prometheus; ./scripts/deps installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_alert_rules_and_their_unit_tests_pass() {
    run_promtool(&["check", "rules", "lnvend.rules.yml"]);
    run_promtool(&["test", "rules", "lnvend.rules.test.yml"]);
}

/// A process killed (with its children) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus scraping `127.0.0.1:<metrics_port>` every second as job `lnvend`,
/// its data in `dir`; killed when the handle drops. Returns the handle and its API's URL.
fn start_prometheus(dir: &Path, metrics_port: u16) -> (Killed, String) {
    let prom_port = free_port();
    let prom_cfg = dir.join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: lnvend\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", prom_cfg.display()))
        .arg(format!("--storage.tsdb.path={}/tsdb", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus; ./scripts/deps installs it)");
    (Killed(prometheus), format!("http://127.0.0.1:{prom_port}"))
}

/// Asks Prometheus for an instant query until it has exactly one series equal to `want`.
async fn query_until(api: &str, query: &str, want: impl Fn(f64) -> bool, what: &str) -> f64 {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    loop {
        let answer = client
            .get(format!("{api}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await;
        if let Ok(r) = answer {
            if let Ok(body) = r.json::<serde_json::Value>().await {
                let result = &body["data"]["result"];
                if let Some([one]) = result.as_array().map(Vec::as_slice) {
                    if let Some(v) = one["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()) {
                        if want(v) {
                            return v;
                        }
                    }
                }
                last = body.to_string();
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never answered {query} with {what}; last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_headless_simulator_after_known_sales() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let cfg = dir.path().join("machine.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
machine_id = "bar-7"
data_dir = "{d}/data"

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 1000

[[product]]
name = "Mate"
price_sat = 3000
pour_ms = 1000

[gpio]
backend = "mock"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"#,
            d = dir.path().display()
        ),
    )
    .unwrap();
    let mut sim = Headless::start(&cfg);
    sim.wait_for("screen Idle");
    sim.send("tap 0");
    sim.wait_for("screen Payment");
    sim.send("pay");
    sim.wait_for("screen Pouring");
    sim.wait_for("screen ThankYou");
    sim.send("tap 1");
    sim.wait_for("screen Payment");
    sim.send("cancel");
    sim.wait_for("screen Idle");

    let (_prometheus, api) = start_prometheus(dir.path(), metrics_port);

    let eq = |want: f64| move |v: f64| v == want;
    query_until(&api, r#"up{job="lnvend"}"#, eq(1.0), "1").await;
    for (query, want) in [
        (r#"lnvend_sales_total{product="Cola",outcome="paid"}"#, 1.0),
        (
            r#"lnvend_sales_total{product="Mate",outcome="cancelled"}"#,
            1.0,
        ),
        (r#"lnvend_sales_total{product="Mate",outcome="paid"}"#, 0.0),
        (
            r#"lnvend_pours_total{product="Cola",outcome="poured"}"#,
            1.0,
        ),
        (r#"lnvend_received_sats_total{product="Cola"}"#, 2100.0),
        ("lnvend_pay_to_pump_seconds_count", 1.0),
        (r#"lnvend_state{state="idle"}"#, 1.0),
        ("lnvend_backend_up", 1.0),
        ("lnvend_owed_credits", 0.0),
        (
            r#"lnvend_build_info{machine_id="bar-7",backend="sim",version="0.1.0"}"#,
            1.0,
        ),
    ] {
        query_until(&api, query, eq(want), &want.to_string()).await;
    }
    let pumped = query_until(
        &api,
        r#"lnvend_pump_run_seconds_total{channel="A"}"#,
        |v| v > 0.0,
        "> 0",
    )
    .await;
    assert!((1.0..3.0).contains(&pumped), "{pumped} s for a 1 s pour");
    let started = query_until(
        &api,
        "time() - process_start_time_seconds",
        |_| true,
        "a value",
    )
    .await;
    assert!((0.0..600.0).contains(&started), "started {started} s ago");
    // Every query of the Grafana dashboard is one this Prometheus accepts.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/grafana/lnvend.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__range", "1h");
            let body: serde_json::Value = client
                .get(format!("{api}/api/v1/query"))
                .query(&[("query", expr.as_str())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(body["status"], "success", "{expr}: {body}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} dashboard queries");
    // A sale after Prometheus started: the sales-per-hour panel counts it (one before the
    // first scrape is in the total only, as with any Prometheus counter).
    sim.send("tap 0");
    sim.wait_for("screen Payment");
    sim.send("pay");
    sim.wait_for("screen ThankYou");
    query_until(
        &api,
        r#"lnvend_sales_total{product="Cola",outcome="paid"}"#,
        eq(2.0),
        "2",
    )
    .await;
    query_until(
        &api,
        r#"sum by (instance) (increase(lnvend_sales_total{outcome=~"paid|late_paid"}[1h]))"#,
        |v| v > 0.0,
        "> 0",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_a_sale_paid_through_a_real_lnbits() {
    let venv = lnbits_server::venv().unwrap_or_else(|| {
        panic!("no LNbits virtualenv: run ./scripts/lnbits-venv (./scripts/test does it) or set LNBITS_VENV")
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lnbits");
    std::fs::create_dir_all(&data).unwrap();
    let lnbits = lnbits_server::Lnbits::start(&venv, &data, lnbits_server::free_port()).await;
    let wallets = lnbits_server::set_up_wallets(&lnbits, 100_000).await;
    let metrics_port = free_port();
    let cfg = common::short_pour_config(
        &dir.path().join("machine"),
        &format!(
            "{}\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            lnbits_server::backend_toml(&lnbits, &wallets)
        ),
    );
    let step = Duration::from_secs(30);
    let mut m = TestMachine::start(&cfg);
    m.wait_screen_within(Screen::Idle, step).await;
    m.tap(0);
    let v = m.wait_screen_within(Screen::Payment, step).await;
    let bolt11 = v
        .payment_uri
        .strip_prefix("LIGHTNING:")
        .unwrap()
        .to_ascii_lowercase();
    let paid = lnbits_server::call(
        reqwest::Client::new()
            .post(format!("{}/api/v1/payments", lnbits.url()))
            .header("X-Api-Key", &wallets.payer_adminkey)
            .json(&serde_json::json!({"out": true, "bolt11": bolt11})),
        "pay",
    )
    .await;
    assert_eq!(paid["status"], "success", "{paid}");
    m.wait_screen_within(Screen::ThankYou, step).await;

    let (_prometheus, api) = start_prometheus(dir.path(), metrics_port);
    let eq = |want: f64| move |v: f64| v == want;
    for (query, want) in [
        (r#"up{job="lnvend"}"#, 1.0),
        (
            r#"lnvend_build_info{backend="lnbits",machine_id="test-machine"}"#,
            1.0,
        ),
        ("lnvend_backend_up", 1.0),
        (r#"lnvend_sales_total{product="Cola",outcome="paid"}"#, 1.0),
        (
            r#"lnvend_pours_total{product="Cola",outcome="poured"}"#,
            1.0,
        ),
        (r#"lnvend_received_sats_total{product="Cola"}"#, 2100.0),
        ("lnvend_pay_to_pump_seconds_count", 1.0),
    ] {
        query_until(&api, query, eq(want), &want.to_string()).await;
    }
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_scrapes_and_idle_connections_does_not_hold_up_a_sale() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = common::short_pour_config(
        dir.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let mut m = TestMachine::start(&cfg);
    m.wait_screen_within(Screen::Idle, Duration::from_secs(30))
        .await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Idle connections that never send a request, and scrapers that never stop.
    let mut idle = Vec::new();
    for _ in 0..50 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            idle.push(s);
        }
    }
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..16 {
        flood.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                    let _ = s
                        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                        .await;
                    let mut out = Vec::new();
                    let _ = s.read_to_end(&mut out).await;
                }
                tokio::task::yield_now().await;
            }
        });
    }
    let t0 = Instant::now();
    m.tap(0);
    m.wait_screen_within(Screen::Payment, Duration::from_secs(10))
        .await;
    m.sim().pay_latest().unwrap();
    m.wait_screen_within(Screen::Pouring, Duration::from_secs(10))
        .await;
    m.wait_screen_within(Screen::ThankYou, Duration::from_secs(10))
        .await;
    let took = t0.elapsed();
    flood.shutdown().await;
    drop(idle);
    assert_eq!(common::on_time(&m.gpio, common::ENA).1, 1, "poured once");
    assert!(took < Duration::from_secs(10), "the sale took {took:?}");
    // The idle connections held every slot (scrapes were refused meanwhile, as designed);
    // once they go, the listener serves again, and counted the sale.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut out = String::new();
        if s.read_to_string(&mut out).await.is_ok() && out.starts_with("HTTP/1.1 200") {
            assert_eq!(
                sample(&out, r#"lnvend_sales_total{product="Cola",outcome="paid"}"#),
                1.0
            );
            break;
        }
        assert!(Instant::now() < deadline, "the listener never served again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    m.shutdown().await;
}
