//! Whole-machine scenarios of pouring by volume, in paused time: the simulated flow sensor
//! pulses with jitter while the pump runs, and the machine stops, owes, sells out and
//! refills as a customer and an operator would see it.

mod common;

use std::time::Duration;

use common::{login, on_time, refill_for_credit, TestMachine, ENA};
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, Screen, View};
use lnvend::ledger::Ledger;
use lnvend::pump::Channel;
use lnvend::vend::SaleId;

const SENSOR: u8 = 17;

/// Water (product 0) pours 300 ml by volume through a 450 pulses/l sensor on channel A,
/// from a tank of `tank` ml (0: no stock kept); the simulated line flows `ml_per_s`. `limit_ms` is the
/// longest one pour may take.
fn config(dir: &std::path::Path, tank: u32, ml_per_s: f64, limit_ms: u64) -> Config {
    config_with(dir, tank, ml_per_s, limit_ms, "")
}

/// [`config`], with more `[gpio]` keys.
fn config_with(
    dir: &std::path::Path,
    tank: u32,
    ml_per_s: f64,
    limit_ms: u64,
    gpio: &str,
) -> Config {
    let text = config_text(dir, tank, ml_per_s, limit_ms, gpio);
    Config::parse(&text, "flow.toml", Mode::Sim).expect("flow test config")
}

/// The text of [`config_with`].
fn config_text(
    dir: &std::path::Path,
    tank: u32,
    ml_per_s: f64,
    limit_ms: u64,
    gpio: &str,
) -> String {
    let pin_line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    // A tank of 0: no stock kept. Cola shares Water's channel, so it counts off the same
    // tank (a timed 100 ml) whenever Water keeps stock.
    let (stock, cola_stock) = if tank == 0 {
        (String::new(), String::new())
    } else {
        (
            format!("tank_ml = {tank}\nlow_stock_ml = 600"),
            format!("timed_pour_ml = 100\ntank_ml = {tank}"),
        )
    };
    format!(
        r#"
{pin_line}
machine_id = "flow-test"
data_dir = "{}"

[[product]]
name = "Water"
price_sat = 600
pour_ms = {limit_ms}
volume_ml = 300
{stock}

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 3000
{cola_stock}

[gpio]
backend = "mock"
{gpio}

[gpio.channel_a]
in1 = 23
in2 = 24
ena = 18

[gpio.channel_a.flow]
pin = {SENSOR}
pulses_per_litre = 450
mock_ml_per_s = {ml_per_s}
"#,
        dir.display()
    )
}

async fn buy(m: &mut TestMachine, product: usize) {
    m.tap(product);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
}

fn op_message(v: &View) -> String {
    v.operator
        .as_ref()
        .map(|o| o.message.clone())
        .unwrap_or_default()
}

fn sold_out(v: &View, i: usize) -> bool {
    v.tiles[i].sold_out
}

/// The newest sale's id, from the ledger.
fn ledger(dir: &std::path::Path) -> Ledger {
    Ledger::open(dir).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_volume_is_reached_and_the_pump_stops_at_that_pulse() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    buy(&mut m, 0).await;
    m.wait_screen(Screen::ThankYou).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // 300 ml at 450 pulses per litre, and no pulse after the stop.
    assert_eq!(m.gpio.edge_count(SENSOR), 135);
    let (ran, starts) = on_time(&m.gpio, ENA);
    assert_eq!(starts, 1);
    // About 12 s at 25 ml/s, jittered.
    assert!(
        ran > Duration::from_secs(10) && ran < Duration::from_secs(14),
        "{ran:?}"
    );
    m.shutdown().await;
    let l = ledger(dir.path());
    assert_eq!(l.stock("Water").unwrap().unwrap().ml, 9_700);
    let sale = l.stock_moves("Water").unwrap()[1].sale_id.clone().unwrap();
    assert_eq!(l.poured_ml(&SaleId(sale)).unwrap(), Some(300));
}

#[tokio::test(start_paused = true)]
async fn no_flow_stops_within_the_no_flow_time_owes_a_credit_and_sells_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    m.flows[0].set_tank_empty(true);
    buy(&mut m, 0).await;
    let fault = m.wait_screen(Screen::Fault).await;
    assert!(fault.message.contains("ran out"), "{}", fault.message);
    let (ran, _) = on_time(&m.gpio, ENA);
    assert!(
        ran <= Duration::from_millis(1550),
        "the dry pump ran {ran:?}"
    );
    m.send(Input::DismissFault);
    // Water is sold out, and so is Cola: it pours from channel A's tank too.
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(sold_out(&idle, 0) && sold_out(&idle, 1));
    // The credit is shown kept, not offered as pourable from a dry tank, and a tap on the
    // tile (or on the credit) does nothing.
    assert_eq!(idle.credits.len(), 1, "{:?}", idle.credits);
    assert!(idle.credits[0].sold_out, "{:?}", idle.credits);
    m.tap(0);
    m.send(Input::RedeemCredit(fault.code.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.screen(), Screen::Idle);
    assert_eq!(m.sim().invoices_created(), 1);
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "no second pump run");
    // The operator refills the tank: the paid sale's credit is offered again.
    let idle = refill_for_credit(&mut m, 0).await;
    assert_eq!(idle.credits[0].sale_id, fault.code);
    assert!(!sold_out(&idle, 0));
    m.shutdown().await;
    let l = ledger(dir.path());
    let kinds: Vec<String> = l
        .stock_moves("Water")
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds, ["start", "dry", "refill"]);
    assert_eq!(l.stock("Water").unwrap().unwrap().ml, 10_000);
    assert_eq!(l.owed().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn flow_that_stops_mid_pour_stops_the_pump_and_sells_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    buy(&mut m, 0).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    m.flows[0].set_tank_empty(true);
    let fault = m.wait_screen(Screen::Fault).await;
    let (ran, _) = on_time(&m.gpio, ENA);
    // The last pulse came just before 4 s: no more than the no-flow time after it.
    assert!(
        ran > Duration::from_secs(4) && ran <= Duration::from_millis(4000 + 1500 + 100),
        "{ran:?}"
    );
    let pulses = m.gpio.edge_count(SENSOR);
    let flowed = (pulses as f64 * 1000.0 / 450.0).round() as u32;
    assert!((80..=120).contains(&flowed), "{flowed} ml");
    m.send(Input::DismissFault);
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(sold_out(&idle, 0));
    // Refilled, the credit pours what the dry tank did not, not a whole drink.
    refill_for_credit(&mut m, 0).await;
    m.flows[0].set_tank_empty(false);
    m.send(Input::RedeemCredit(fault.code.clone()));
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::ThankYou).await;
    let more = m.gpio.edge_count(SENSOR) - pulses;
    assert_eq!(
        more,
        (f64::from(300 - flowed) * 450.0 / 1000.0).round() as u64
    );
    m.shutdown().await;
    let l = ledger(dir.path());
    let id = SaleId(fault.code);
    let total = l.poured_ml(&id).unwrap().unwrap();
    assert!((299..=301).contains(&total), "{total} ml in all");
    // Poured in full: nothing is owed any more, in the ledger or its CSV.
    assert_eq!(l.owed_ml(&id).unwrap(), None);
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_time_limit_equal_to_the_hard_maximum_is_a_short_pour_and_the_machine_sells_on() {
    let dir = tempfile::tempdir().unwrap();
    // pour_ms == max_run_ms, which the config allows with no anti-drip: 10 ml/s for 12 s.
    let mut m = TestMachine::start(&config_with(
        dir.path(),
        10_000,
        10.0,
        12_000,
        "max_run_ms = 12000",
    ));
    buy(&mut m, 0).await;
    let fault = m.wait_screen(Screen::Fault).await;
    assert!(
        fault
            .message
            .contains("Only part of your drink could be poured"),
        "{}",
        fault.message
    );
    m.send(Input::DismissFault);
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(!sold_out(&idle, 0));
    assert!(!idle.credits.is_empty(), "the undelivered share is offered");
    m.shutdown().await;
    let l = ledger(dir.path());
    let id = SaleId(fault.code);
    let poured = l.poured_ml(&id).unwrap().unwrap();
    assert!((95..=140).contains(&poured), "{poured} ml");
    assert_eq!(l.owed_ml(&id).unwrap(), Some(300 - poured));
    assert!(l.stock("Water").unwrap().unwrap().ml < 10_000);
}

#[tokio::test(start_paused = true)]
async fn the_time_limit_before_the_volume_owes_the_undelivered_share_and_its_credit_pours_it() {
    let dir = tempfile::tempdir().unwrap();
    // 10 ml/s for at most 12 s: about 120 of 300 ml.
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 10.0, 12_000));
    buy(&mut m, 0).await;
    let fault = m.wait_screen(Screen::Fault).await;
    let (ran, _) = on_time(&m.gpio, ENA);
    assert_eq!(ran, Duration::from_secs(12));
    let pulses = m.gpio.edge_count(SENSOR);
    let poured = (pulses as f64 * 1000.0 / 450.0).round() as u32;
    assert!((100..=140).contains(&poured), "{poured} ml");
    assert!(
        fault
            .message
            .contains("Only part of your drink could be poured"),
        "{}",
        fault.message
    );
    m.send(Input::DismissFault);
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(!sold_out(&idle, 0), "a slow line is not an empty tank");
    // The line is cleared; the credit pours the rest, and only the rest.
    m.flows[0].set_hz(25.0 * 0.45);
    let owed = 300 - poured;
    m.send(Input::RedeemCredit(fault.code.clone()));
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::ThankYou).await;
    let more = m.gpio.edge_count(SENSOR) - pulses;
    assert_eq!(more, (f64::from(owed) * 450.0 / 1000.0).round() as u64);
    m.shutdown().await;
    let l = ledger(dir.path());
    let id = SaleId(fault.code);
    assert_eq!(
        l.owed_ml(&id).unwrap(),
        None,
        "the credit poured what was owed"
    );
    let total = l.poured_ml(&id).unwrap().unwrap();
    assert!((299..=301).contains(&total), "{total} ml in all");
    assert!(l.owed().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stock_counts_down_sold_out_blocks_the_tap_and_refill_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two pours of 300 ml.
    let mut m = TestMachine::start(&config(dir.path(), 700, 25.0, 20_000));
    for _ in 0..2 {
        buy(&mut m, 0).await;
        m.wait_screen(Screen::ThankYou).await;
        m.wait_screen(Screen::Idle).await;
    }
    let idle = m
        .wait_for(Duration::from_secs(5), "Water sold out", |v| sold_out(v, 0))
        .await;
    assert!(!sold_out(&idle, 1));
    let before = m.sim().invoices_created();
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.screen(), Screen::Idle);
    assert_eq!(
        m.sim().invoices_created(),
        before,
        "no invoice for a sold-out drink"
    );
    // The operator refills the tank.
    let menu = login(&mut m).await;
    assert_eq!(
        menu.operator.unwrap().products[0].stock,
        "SOLD OUT (100 of 700 ml)"
    );
    m.send(Input::Operator(OpAction::Refill { index: 0 }));
    let v = m
        .wait_for(Duration::from_secs(5), "the refill", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| o.products[0].stock == "700 of 700 ml")
        })
        .await;
    assert!(v.operator.unwrap().message.contains("refilled"));
    m.send(Input::Operator(OpAction::Exit));
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(!sold_out(&idle, 0));
    buy(&mut m, 0).await;
    m.wait_screen(Screen::ThankYou).await;
    m.shutdown().await;
    let l = ledger(dir.path());
    assert_eq!(l.stock("Water").unwrap().unwrap().ml, 400);
    let kinds: Vec<String> = l
        .stock_moves("Water")
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(kinds, ["start", "pour", "pour", "refill", "pour"]);
}

#[tokio::test(start_paused = true)]
async fn a_product_without_a_sensor_keeps_its_timed_pour() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    // Cola is on channel A too, but timed: 3 s whatever the sensor says.
    m.flows[0].set_tank_empty(true);
    buy(&mut m, 1).await;
    m.wait_screen(Screen::ThankYou).await;
    let (ran, _) = on_time(&m.gpio, ENA);
    assert_eq!(ran, Duration::from_secs(3));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn calibration_from_a_measured_jug_is_computed_saved_and_used_for_the_next_pours() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 10_000, 25.0, 20_000);
    let mut m = TestMachine::start(&cfg);
    login(&mut m).await;
    m.send(Input::Operator(OpAction::CalibratePour {
        channel: Channel::A,
    }));
    let v = m
        .wait_for(Duration::from_secs(30), "the calibration pour", |v| {
            op_message(v).starts_with("Counted")
        })
        .await;
    // 200 ml at the configured 450 pulses per litre.
    assert!(
        op_message(&v).contains("Counted 90 pulses"),
        "{}",
        op_message(&v)
    );
    assert_eq!(v.operator.unwrap().calibrating, Some(Channel::A));
    assert_eq!(m.gpio.edge_count(SENSOR), 90);
    // The jug shows 180 ml: this sensor gives 500 pulses per litre.
    m.send(Input::Operator(OpAction::Calibrate {
        channel: Channel::A,
        measured_ml: 180,
    }));
    let v = m
        .wait_for(Duration::from_secs(5), "the new calibration", |v| {
            op_message(v).contains("pulses per litre")
        })
        .await;
    assert!(
        op_message(&v).contains("500.0 pulses per litre (was 450.0)"),
        "{}",
        op_message(&v)
    );
    assert_eq!(v.operator.as_ref().unwrap().calibrating, None);
    assert!(v.operator.unwrap().flow[0]
        .text
        .contains("500.0 pulses per litre"));
    m.send(Input::Operator(OpAction::Exit));
    m.wait_screen(Screen::Idle).await;
    // 300 ml is now 150 pulses.
    buy(&mut m, 0).await;
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(m.gpio.edge_count(SENSOR), 90 + 150);
    m.shutdown().await;
    // And after a restart, from the saved override.
    let mut m = TestMachine::start(&cfg);
    buy(&mut m, 0).await;
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(m.gpio.edge_count(SENSOR), 150);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_keypad_typo_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    login(&mut m).await;
    // No calibration pour yet.
    m.send(Input::Operator(OpAction::Calibrate {
        channel: Channel::A,
        measured_ml: 200,
    }));
    m.wait_for(Duration::from_secs(5), "a refusal", |v| {
        op_message(v).contains("first")
    })
    .await;
    m.send(Input::Operator(OpAction::CalibratePour {
        channel: Channel::A,
    }));
    m.wait_for(Duration::from_secs(30), "the pour", |v| {
        op_message(v).starts_with("Counted")
    })
    .await;
    // 90 pulses for 20 l is no sensor's figure (4.5 pulses per litre).
    m.send(Input::Operator(OpAction::Calibrate {
        channel: Channel::A,
        measured_ml: 20_000,
    }));
    let v = m
        .wait_for(Duration::from_secs(5), "a refusal", |v| {
            op_message(v).contains("no flow sensor's figure")
        })
        .await;
    assert!(v.operator.unwrap().flow[0]
        .text
        .contains("450.0 pulses per litre"));
    // 20 ml typed for 200: 4500 pulses per litre is a sensor's figure, but not this one's.
    m.send(Input::Operator(OpAction::Calibrate {
        channel: Channel::A,
        measured_ml: 20,
    }));
    let v = m
        .wait_for(Duration::from_secs(5), "a refusal", |v| {
            op_message(v).contains("more than 50 %")
        })
        .await;
    assert!(v.operator.unwrap().flow[0]
        .text
        .contains("450.0 pulses per litre"));
    // The pour still counts: the right figure is taken without pouring again.
    m.send(Input::Operator(OpAction::Calibrate {
        channel: Channel::A,
        measured_ml: 190,
    }));
    let v = m
        .wait_for(Duration::from_secs(5), "the calibration", |v| {
            op_message(v).contains("Saved and in use")
        })
        .await;
    assert!(v.operator.unwrap().flow[0]
        .text
        .contains("473.7 pulses per litre"));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_calibration_pour_with_too_few_pulses_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 5 ml/s for under 12 s: about 26 pulses, not the 90 of 200 ml.
    let mut m = TestMachine::start(&config_with(
        dir.path(),
        10_000,
        5.0,
        12_000,
        "max_run_ms = 12000",
    ));
    login(&mut m).await;
    m.send(Input::Operator(OpAction::CalibratePour {
        channel: Channel::A,
    }));
    let v = m
        .wait_for(Duration::from_secs(30), "the refusal", |v| {
            op_message(v).contains("failed")
        })
        .await;
    assert!(op_message(&v).contains("too few"), "{}", op_message(&v));
    assert_eq!(v.operator.as_ref().unwrap().calibrating, None);
    // Nothing to enter a jug's ml against.
    m.send(Input::Operator(OpAction::Calibrate {
        channel: Channel::A,
        measured_ml: 60,
    }));
    let v = m
        .wait_for(Duration::from_secs(5), "a refusal", |v| {
            op_message(v).contains("first")
        })
        .await;
    assert!(v.operator.unwrap().flow[0]
        .text
        .contains("450.0 pulses per litre"));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_operators_test_pour_of_a_volume_product_pours_its_volume_not_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    login(&mut m).await;
    m.send(Input::Operator(OpAction::TestPour { index: 0 }));
    let v = m
        .wait_for(Duration::from_secs(30), "the test pour", |v| {
            op_message(v).contains("done")
        })
        .await;
    assert!(
        op_message(&v).contains("300 ml (135 pulses)"),
        "{}",
        op_message(&v)
    );
    assert_eq!(m.gpio.edge_count(SENSOR), 135);
    let (ran, _) = on_time(&m.gpio, ENA);
    assert!(ran < Duration::from_secs(14), "{ran:?} of a 20 s limit");
    // An unpaid test pour is no sale and counts nothing off the stock.
    assert_eq!(v.operator.unwrap().products[0].stock, "10000 of 10000 ml");
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_keypad_refuses_a_volume_time_limit_within_the_no_flow_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), 10_000, 25.0, 20_000));
    let menu = login(&mut m).await;
    let op = menu.operator.unwrap();
    // Water pours by volume behind a 1500 ms no-flow time; Cola is timed.
    assert_eq!(op.products[0].pour_entry.min, 1501);
    assert_eq!(op.products[1].pour_entry.min, 1);
    m.send(Input::Operator(OpAction::SetPour { index: 0, ms: 1000 }));
    let v = m
        .wait_for(Duration::from_secs(5), "a refusal", |v| {
            op_message(v).contains("not changed")
        })
        .await;
    assert_eq!(v.operator.unwrap().products[0].pour, "20.00 s");
    m.send(Input::Operator(OpAction::SetPour { index: 1, ms: 1000 }));
    m.wait_for(Duration::from_secs(5), "Cola at 1 s", |v| {
        v.operator
            .as_ref()
            .is_some_and(|o| o.products[1].pour == "1.00 s")
    })
    .await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dry_tank_without_stock_kept_stays_sold_out_across_a_restart_until_refilled() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), 0, 25.0, 20_000);
    let mut m = TestMachine::start(&cfg);
    m.flows[0].set_tank_empty(true);
    buy(&mut m, 0).await;
    m.wait_screen(Screen::Fault).await;
    m.send(Input::DismissFault);
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(sold_out(&idle, 0));
    m.shutdown().await;
    // After a power cut it does not sell (and run dry) again.
    let mut m = TestMachine::start(&cfg);
    // (The first view, before the ledger is read, shows every product.)
    let idle = m
        .wait_for(Duration::from_secs(5), "Water sold out", |v| {
            v.screen == Screen::Idle && sold_out(v, 0)
        })
        .await;
    assert!(sold_out(&idle, 1), "Cola shares channel A's dry tank");
    let before = m.sim().invoices_created();
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.sim().invoices_created(), before);
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Refill { index: 0 }));
    m.wait_for(Duration::from_secs(5), "the refill", |v| {
        op_message(v).contains("on sale again")
    })
    .await;
    m.send(Input::Operator(OpAction::Exit));
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(!sold_out(&idle, 0));
    m.shutdown().await;
    // And the refill holds across a restart too.
    let mut m = TestMachine::start(&cfg);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(!sold_out(&idle, 0));
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_short_credit_of_a_product_no_longer_poured_by_volume_pours_by_time() {
    let dir = tempfile::tempdir().unwrap();
    // 10 ml/s for at most 12 s: a short pour, part of it owed.
    let text = config_text(dir.path(), 0, 10.0, 12_000, "");
    let cfg = Config::parse(&text, "flow.toml", Mode::Sim).unwrap();
    let mut m = TestMachine::start(&cfg);
    buy(&mut m, 0).await;
    let fault = m.wait_screen(Screen::Fault).await;
    m.send(Input::DismissFault);
    m.wait_screen(Screen::Idle).await;
    m.shutdown().await;
    let id = SaleId(fault.code.clone());
    let measured = ledger(dir.path()).poured_ml(&id).unwrap().unwrap();
    assert!(ledger(dir.path()).owed_ml(&id).unwrap().is_some());
    // The operator takes the volume and the sensor off: Water pours 4 s by time now.
    let timed = text
        .replace("volume_ml = 300\n", "")
        .replace("pour_ms = 12000", "pour_ms = 4000");
    let timed = timed[..timed.find("[gpio.channel_a.flow]").unwrap()].to_string();
    let cfg = Config::parse(&timed, "flow.toml", Mode::Sim).unwrap();
    let mut m = TestMachine::start(&cfg);
    m.wait_for(Duration::from_secs(5), "the credit", |v| {
        v.screen == Screen::Idle && !v.credits.is_empty()
    })
    .await;
    m.send(Input::RedeemCredit(fault.code.clone()));
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::ThankYou).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_secs(4), 1));
    m.shutdown().await;
    let l = ledger(dir.path());
    assert!(l.owed().unwrap().is_empty());
    // Its record says what was measured and that nothing is owed any more (the timed pour
    // has no configured ml: none are guessed), so no report shows a debt that was poured.
    assert_eq!(
        l.sale_state(&id).unwrap(),
        Some(lnvend::ledger::SaleState::Poured)
    );
    assert_eq!(
        l.owed_ml(&id).unwrap(),
        None,
        "the credit poured what was owed"
    );
    assert_eq!(l.poured_ml(&id).unwrap(), Some(measured));
}
