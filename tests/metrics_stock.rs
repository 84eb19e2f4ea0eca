//! The stock gauges as Prometheus reads them: a product poured by volume counts down after
//! each pour and back up after the operator's refill, beside its low-stock mark, and a
//! product that keeps no stock has no series.

mod common;

use std::time::Duration;

use common::TestMachine;
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, Screen};

/// Water pours 300 ml by volume from a 1000 ml tank (low at 400 ml); Cola is timed, on a
/// channel of its own, and keeps no stock.
fn config(dir: &std::path::Path) -> Config {
    config_with(dir, "tank_ml = 1000\nlow_stock_ml = 400", 25.0)
}

/// The same machine with Water's stock keys `stock` and the line flowing `ml_per_s`.
fn config_with(dir: &std::path::Path, stock: &str, ml_per_s: f64) -> Config {
    let pin_line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    let text = format!(
        r#"
{pin_line}
machine_id = "stock-test"
data_dir = "{}"

[[product]]
name = "Water"
price_sat = 600
pour_ms = 20000
volume_ml = 300
{stock}

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 3000
channel = "B"

[gpio]
backend = "mock"

[gpio.channel_a]
in1 = 23
in2 = 24
ena = 18

[gpio.channel_b]
in3 = 5
in4 = 6
enb = 13

[gpio.channel_a.flow]
pin = 17
pulses_per_litre = 450
mock_ml_per_s = {ml_per_s}
"#,
        dir.display()
    );
    Config::parse(&text, "stock.toml", Mode::Sim).expect("stock test config")
}

/// The value of one sample line, if the series is there.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

const WATER: &str = r#"lnvend_stock_remaining_ml{product="Water"}"#;

/// Idle, with its start-up done (the first view is idle before the controller runs).
async fn started(m: &mut TestMachine) {
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn buy_water(m: &mut TestMachine) {
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
}

#[tokio::test(start_paused = true)]
async fn stock_gauge_goes_down_with_each_pour_and_back_up_after_a_refill() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path()));
    started(&mut m).await;
    let text = m.metrics.encode();
    assert_eq!(sample(&text, WATER), Some(1000.0), "a full tank at start");
    assert_eq!(
        sample(&text, r#"lnvend_stock_low_ml{product="Water"}"#),
        Some(400.0)
    );
    assert_eq!(
        sample(&text, r#"lnvend_stock_remaining_ml{product="Cola"}"#),
        None,
        "no stock is kept for Cola"
    );

    buy_water(&mut m).await;
    let one = sample(&m.metrics.encode(), WATER).unwrap();
    // The pump stops at the pulse that reaches 300 ml; a pulse is about 2.2 ml.
    assert!(
        (690.0..=700.0).contains(&one),
        "{one} ml left after one pour"
    );
    buy_water(&mut m).await;
    let two = sample(&m.metrics.encode(), WATER).unwrap();
    assert!(
        (380.0..=400.0).contains(&two),
        "{two} ml left after two pours"
    );
    assert!(
        two <= sample(
            &m.metrics.encode(),
            r#"lnvend_stock_low_ml{product="Water"}"#
        )
        .unwrap(),
        "at or below the low mark, as the alert compares"
    );

    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await;
    m.send(Input::Operator(OpAction::Refill { index: 0 }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sample(&m.metrics.encode(), WATER),
        Some(1000.0),
        "refilled to the tank's size"
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_reports_the_stock_the_ledger_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path()));
    m.wait_screen(Screen::Idle).await;
    buy_water(&mut m).await;
    let left = sample(&m.metrics.encode(), WATER).unwrap();
    m.shutdown().await;
    let mut m = TestMachine::start(&config(dir.path()));
    started(&mut m).await;
    assert_eq!(sample(&m.metrics.encode(), WATER), Some(left));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dry_line_on_a_product_that_keeps_no_stock_shows_no_stock_series() {
    let dir = tempfile::tempdir().unwrap();
    // No tank_ml, and nothing flows: the pour stops for no flow and Water is sold out.
    let mut m = TestMachine::start(&config_with(dir.path(), "", 0.0));
    started(&mut m).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_for(Duration::from_secs(30), "Water sold out", |v| {
        v.tiles[0].sold_out
    })
    .await;
    assert_eq!(
        sample(&m.metrics.encode(), WATER),
        None,
        "no stock is kept for Water"
    );
    m.shutdown().await;
}
