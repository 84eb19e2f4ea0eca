//! Two sizes of one drink on one channel share its tank, whole machine in paused time: a
//! pour of the small size counts off the large size's stock too, the tank running dry on
//! the small size sells out both (the large one cannot be bought, and the paid small one
//! stays a credit kept for its customer), and one refill brings back both.

mod common;

use std::time::Duration;

use common::TestMachine;
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, Screen, View};
use lnvend::ledger::Ledger;

const TANK_ML: u32 = 2000;

/// "Cola" (330 ml) and "Cola large" (500 ml), by volume on channel A, one 2 l tank.
fn config(dir: &std::path::Path) -> Config {
    let pin_line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    let text = format!(
        r#"
{pin_line}
machine_id = "tank-test"
data_dir = "{}"

[[product]]
name = "Cola"
price_sat = 1000
pour_ms = 30000
volume_ml = 330
tank_ml = {TANK_ML}
low_stock_ml = 400

[[product]]
name = "Cola large"
price_sat = 1400
pour_ms = 30000
volume_ml = 500
tank_ml = {TANK_ML}
low_stock_ml = 600

[gpio]
backend = "mock"

[gpio.channel_a]
in1 = 23
in2 = 24
ena = 18

[gpio.channel_a.flow]
pin = 17
pulses_per_litre = 450
mock_ml_per_s = 25
"#,
        dir.display()
    );
    Config::parse(&text, "tank.toml", Mode::Sim).expect("shared tank config")
}

async fn buy(m: &mut TestMachine, product: usize) {
    m.tap(product);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
}

fn gauge(m: &TestMachine, product: &str) -> Option<f64> {
    let series = format!("lnvend_stock_remaining_ml{{product=\"{product}\"}} ");
    m.metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
}

async fn operator_stock(m: &mut TestMachine) -> Vec<String> {
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    let v = m.wait_screen(Screen::Operator).await;
    v.operator
        .unwrap()
        .products
        .into_iter()
        .map(|p| p.stock)
        .collect()
}

fn sold_out(v: &View) -> Vec<bool> {
    v.tiles.iter().map(|t| t.sold_out).collect()
}

#[tokio::test(start_paused = true)]
async fn a_dry_tank_sells_out_every_size_on_it_its_stock_is_shared_and_one_refill_brings_both_back()
{
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path()));
    m.wait_screen(Screen::Idle).await;

    // A small Cola lowers the large one's stock by the same ml.
    buy(&mut m, 0).await;
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    let small = gauge(&m, "Cola").expect("Cola's stock gauge");
    assert!(
        small < f64::from(TANK_ML) - 300.0 && small > f64::from(TANK_ML) - 360.0,
        "{small} ml left"
    );
    assert_eq!(gauge(&m, "Cola large"), Some(small), "one tank, one count");
    let stock = operator_stock(&mut m).await;
    assert_eq!(stock[0], stock[1]);
    assert!(
        stock[1].starts_with(&format!("{small} of {TANK_ML} ml")),
        "{stock:?}"
    );
    m.send(Input::Operator(OpAction::Exit));
    m.wait_screen(Screen::Idle).await;

    // The tank runs dry on a small Cola: both sizes are sold out.
    m.flows[0].set_tank_empty(true);
    buy(&mut m, 0).await;
    let fault = m.wait_screen(Screen::Fault).await;
    m.send(Input::DismissFault);
    let idle = m
        .wait_for(Duration::from_secs(5), "both sizes sold out", |v| {
            v.screen == Screen::Idle && sold_out(v) == [true, true]
        })
        .await;
    // The paid small Cola stays a credit, shown kept for its customer, not pourable.
    assert_eq!(idle.credits.len(), 1, "{:?}", idle.credits);
    assert_eq!(idle.credits[0].sale_id, fault.code);
    assert!(idle.credits[0].sold_out);
    // The large one cannot be bought: no invoice, no pump run.
    let invoices = m.sim().invoices_created();
    let runs = common::on_time(&m.gpio, common::ENA).1;
    m.tap(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(m.screen(), Screen::Idle);
    assert_eq!(m.sim().invoices_created(), invoices);
    assert_eq!(common::on_time(&m.gpio, common::ENA).1, runs);
    assert_eq!(gauge(&m, "Cola large"), Some(0.0));

    // One refill (from the large size's row) refills the tank for both.
    m.flows[0].set_tank_empty(false);
    operator_stock(&mut m).await;
    m.send(Input::Operator(OpAction::Refill { index: 1 }));
    m.wait_for(Duration::from_secs(5), "the refill", |v| {
        v.operator
            .as_ref()
            .is_some_and(|o| o.message.contains("refilled"))
    })
    .await;
    m.send(Input::Operator(OpAction::Exit));
    let idle = m
        .wait_for(Duration::from_secs(5), "both on sale", |v| {
            v.screen == Screen::Idle && sold_out(v) == [false, false]
        })
        .await;
    assert!(!idle.credits[0].sold_out, "the credit can pour again");
    assert_eq!(gauge(&m, "Cola"), Some(f64::from(TANK_ML)));
    assert_eq!(gauge(&m, "Cola large"), Some(f64::from(TANK_ML)));
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.stock("Cola").unwrap().unwrap().ml, TANK_ML);
    assert_eq!(l.stock("Cola large").unwrap().unwrap().ml, TANK_ML);
}

/// A ledger written before tanks were shared counted each size apart: at the next start
/// both count the lower figure (the tank holds at most that).
#[tokio::test(start_paused = true)]
async fn an_older_ledger_s_separate_counts_start_from_the_lower_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut l = Ledger::open(dir.path()).unwrap();
        l.stock_or_start("Cola", TANK_ML, 1500).unwrap();
        l.stock_or_start("Cola large", TANK_ML, 900).unwrap();
    }
    let mut m = TestMachine::start(&config(dir.path()));
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gauge(&m, "Cola"), Some(900.0));
    assert_eq!(gauge(&m, "Cola large"), Some(900.0));
    m.shutdown().await;
}
