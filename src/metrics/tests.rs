use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::vend::OutOfService;

fn metrics() -> Metrics {
    Metrics::new(
        &BuildInfo {
            version: "0.1.0".into(),
            backend: "sim".into(),
            machine_id: "bar-7".into(),
        },
        &["Cola".into(), "Mate \"x\"".into()],
        1_700_000_000,
    )
}

/// The value of one sample line of the exposition, by its name and labels as printed.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn every_series_is_there_from_the_start_at_zero() {
    let text = metrics().encode();
    for (series, value) in [
        (r#"lnvend_sales_total{product="Cola",outcome="paid"}"#, 0.0),
        (
            r#"lnvend_pours_total{product="Cola",outcome="poured"}"#,
            0.0,
        ),
        (r#"lnvend_received_sats_total{product="Cola"}"#, 0.0),
        (r#"lnvend_pump_run_seconds_total{channel="A"}"#, 0.0),
        ("lnvend_pay_to_pump_seconds_count", 0.0),
        ("lnvend_owed_credits", 0.0),
        ("lnvend_backend_up", 0.0),
        ("process_start_time_seconds", 1_700_000_000.0),
        (
            r#"lnvend_build_info{version="0.1.0",backend="sim",machine_id="bar-7"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    // A quote in a product name cannot break the format.
    assert!(text.contains(r#"product="Mate _x_""#), "{text}");
}

#[test]
fn a_payment_counts_once_when_the_ledger_takes_it_not_when_it_refuses_it_as_poured() {
    let m = metrics();
    let t0 = Instant::now();
    let paid = r#"lnvend_sales_total{product="Cola",outcome="paid"}"#;
    m.payment_seen("S1", "Cola", 2100, t0);
    assert_eq!(sample(&m.encode(), paid), Some(0.0), "not yet recorded");
    m.pump_started("S1", t0);
    // The same payment seen again: the ledger says it was poured.
    m.payment_seen("S1", "Cola", 2100, t0);
    m.payment_refused("S1", true);
    assert_eq!(sample(&m.encode(), paid), Some(1.0));
    // A paid sale the ledger cannot record: paid all the same (it is owed).
    m.payment_seen("S2", "Cola", 2100, t0);
    m.payment_refused("S2", false);
    let text = m.encode();
    assert_eq!(sample(&text, paid), Some(2.0));
    assert_eq!(
        sample(&text, r#"lnvend_received_sats_total{product="Cola"}"#),
        Some(4200.0)
    );
    assert_eq!(sample(&text, "lnvend_pay_to_pump_seconds_count"), Some(1.0));
}

#[test]
fn a_paid_poured_sale_counts_its_sats_latency_and_pump_time() {
    let m = metrics();
    let t0 = Instant::now();
    m.payment_seen("S1", "Cola", 2100, t0);
    m.pump_started("S1", t0 + Duration::from_millis(30));
    // A credit pour of another sale: no payment to measure from.
    m.pump_started("S0", t0 + Duration::from_secs(60));
    m.pour_ended("Cola", "A", 4.0, true);
    m.paid("Cola", 2100, true);
    m.abandoned("Cola", Abandoned::Expired);
    let text = m.encode();
    for (series, value) in [
        (r#"lnvend_sales_total{product="Cola",outcome="paid"}"#, 1.0),
        (
            r#"lnvend_sales_total{product="Cola",outcome="late_paid"}"#,
            1.0,
        ),
        (
            r#"lnvend_sales_total{product="Cola",outcome="expired"}"#,
            1.0,
        ),
        (r#"lnvend_received_sats_total{product="Cola"}"#, 4200.0),
        (
            r#"lnvend_pours_total{product="Cola",outcome="poured"}"#,
            1.0,
        ),
        (r#"lnvend_pump_run_seconds_total{channel="A"}"#, 4.0),
        ("lnvend_pay_to_pump_seconds_count", 1.0),
        (r#"lnvend_pay_to_pump_seconds_bucket{le="0.05"}"#, 1.0),
        (r#"lnvend_pay_to_pump_seconds_bucket{le="0.025"}"#, 0.0),
        ("lnvend_pour_duration_seconds_sum", 4.0),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

#[test]
fn exactly_one_state_is_set_and_the_reason_is_a_kind_not_the_text() {
    let m = metrics();
    m.state(&State::OutOfService {
        reason: OutOfService::Backend("HTTP 500 from https://secret.example/…".into()),
    });
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            r#"lnvend_state{state="out_of_service",reason="backend"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"lnvend_state{state="idle",reason=""}"#),
        Some(0.0)
    );
    assert!(!text.contains("secret.example"), "{text}");
    m.state(&State::Idle);
    let text = m.encode();
    let ones = text
        .lines()
        .filter(|l| l.starts_with("lnvend_state{") && l.ends_with(" 1"))
        .count();
    assert_eq!(ones, 1, "{text}");
    assert_eq!(
        sample(&text, r#"lnvend_state{state="idle",reason=""}"#),
        Some(1.0)
    );
}

#[test]
fn backend_health_owed_credits_and_stock_are_gauges() {
    let m = metrics();
    m.backend(true, 1_800_000_000);
    m.backend(false, 1_800_000_060);
    m.owed(2, 5100);
    m.stock(&[super::StockLevel {
        product: "Cola".into(),
        ml: 750,
        low_ml: 500,
    }]);
    let text = m.encode();
    assert_eq!(sample(&text, "lnvend_backend_up"), Some(0.0));
    assert_eq!(
        sample(&text, "lnvend_backend_last_ok_timestamp_seconds"),
        Some(1_800_000_000.0),
        "the last GOOD answer"
    );
    assert_eq!(sample(&text, "lnvend_owed_credits"), Some(2.0));
    assert_eq!(sample(&text, "lnvend_owed_sats"), Some(5100.0));
    assert_eq!(
        sample(&text, r#"lnvend_stock_remaining_ml{product="Cola"}"#),
        Some(750.0)
    );
    assert_eq!(
        sample(&text, r#"lnvend_stock_low_ml{product="Cola"}"#),
        Some(500.0)
    );
}

/// One request; a connection the listener refused (at its cap) is tried again for 5 s.
async fn get(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        let sent = s.write_all(request.as_bytes()).await;
        if sent.is_ok() && s.read_to_string(&mut out).await.is_ok() && !out.is_empty() {
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer from {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_listener_serves_metrics_only_and_survives_a_flood() {
    let m = Arc::new(metrics());
    m.paid("Cola", 2100, false);
    let l = server::MetricsListener::start("127.0.0.1:0".parse().unwrap(), m.clone()).unwrap();
    let addr = l.bound();
    // Idle connections beyond the cap are closed; once they go the listener serves again.
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(idle);
    let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        ok.contains("application/openmetrics-text; version=1.0.0"),
        "{ok}"
    );
    assert!(
        ok.contains(r#"lnvend_sales_total{product="Cola",outcome="paid"} 1"#),
        "{ok}"
    );
    let other = get(addr, "GET /secrets HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let post = get(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    drop(l);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a dropped listener no longer listens"
    );
}
