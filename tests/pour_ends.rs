//! Every way a pour by volume can end, whole machine in paused time: a tank that runs dry,
//! a pump fault mid-pour or in the anti-drip run after the volume, a stop of the program
//! mid-pour, and a credit pour of the rest that itself ends early. What the sensor measured
//! is always recorded: a shortfall it cannot tell from a full drink (under 3 pulses or 3 %)
//! is a poured sale, and anything more leaves a credit worth only the unpoured share.
//! The operator's test and calibration pours count as pump wear too.

mod common;

use std::time::Duration;

use common::{login, on_time, refill_for_credit, TestMachine, ENA};
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, Screen, View};
use lnvend::ledger::{Ledger, SaleState};
use lnvend::pump::mock::PinValue;
use lnvend::pump::Channel;
use lnvend::vend::SaleId;

const SENSOR: u8 = 17;
/// IN2: high while the anti-drip run reverses the line.
const REVERSE: u8 = 24;
const PRICE_SAT: u64 = 600;
/// 300 ml at 450 pulses per litre.
const DRINK_PULSES: u64 = 135;

/// Water: 600 sats for 300 ml by volume, 450 pulses per litre at 25 ml/s, from a counted
/// 10 l tank; `gpio` adds `[gpio]` keys.
fn config(dir: &std::path::Path, gpio: &str) -> Config {
    config_with(dir, gpio, "")
}

/// [`config`], with more tables (`tables`) at the end.
fn config_with(dir: &std::path::Path, gpio: &str, tables: &str) -> Config {
    let pin_line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    let text = format!(
        "{pin_line}\nmachine_id = \"ends\"\ndata_dir = \"{}\"\n
[[product]]\nname = \"Water\"\nprice_sat = {PRICE_SAT}\npour_ms = 20000\nvolume_ml = 300\ntank_ml = 10000\n
[gpio]\nbackend = \"mock\"\n{gpio}\n
[gpio.channel_a]\nin1 = 23\nin2 = {REVERSE}\nena = {ENA}\n
[gpio.channel_a.flow]\npin = {SENSOR}\npulses_per_litre = 450\nmock_ml_per_s = 25.0\n{tables}",
        dir.display()
    );
    Config::parse(&text, "ends.toml", Mode::Sim).expect("test config")
}

async fn buy(m: &mut TestMachine) {
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
}

/// Waits (in virtual time) until the sensor has counted `n` pulses in all.
async fn until_pulses(m: &TestMachine, n: u64) {
    while m.gpio.edge_count(SENSOR) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The screen after the pour.
async fn after_pour(m: &mut TestMachine) -> View {
    m.wait_for(Duration::from_secs(30), "the end of the pour", |v| {
        v.screen != Screen::Pouring
    })
    .await
}

/// Pays for Water (with `gpio` keys) and makes the pump fault once `now` holds: the pour
/// ends, the pump is off and not trusted with the next sale (out of service), no credit is
/// offered, and the sale is poured with `ml` recorded.
async fn pump_fault_when(
    gpio: &str,
    now: impl Fn(&TestMachine) -> bool,
    ml: std::ops::RangeInclusive<u32>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), gpio));
    buy(&mut m).await;
    while !now(&m) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    m.gpio.inject_fault(true);
    let v = after_pour(&mut m).await;
    assert_eq!(v.screen, Screen::OutOfService, "{}", v.message);
    assert!(v.credits.is_empty(), "{:?}", v.credits);
    assert_eq!(m.gpio.level(ENA), Some(PinValue::Level(false)));
    m.shutdown().await;
    assert_poured(dir.path(), ml);
}

/// The tank runs dry a pulse or two before the drink is complete (under the 3 % the sensor
/// cannot tell apart): thanks, and back to the drinks with no credit offered.
async fn runs_dry_just_before_the_end(m: &mut TestMachine) -> View {
    until_pulses(m, DRINK_PULSES - 2).await;
    m.flows[0].set_tank_empty(true);
    let v = after_pour(m).await;
    assert_eq!(v.screen, Screen::ThankYou, "{}", v.message);
    let idle = m.wait_screen(Screen::Idle).await;
    assert!(idle.credits.is_empty(), "{:?}", idle.credits);
    idle
}

/// The one sale the machine made, from its stock moves.
fn the_sale(l: &Ledger) -> SaleId {
    let moves = l.stock_moves("Water").unwrap();
    SaleId(
        moves
            .iter()
            .find_map(|m| m.sale_id.clone())
            .expect("a pour"),
    )
}

/// A sale poured in full as the customer and the operator see it: no credit offered or
/// owed, `ml` recorded as poured.
fn assert_poured(dir: &std::path::Path, ml: std::ops::RangeInclusive<u32>) {
    let l = Ledger::open(dir).unwrap();
    assert!(l.owed().unwrap().is_empty(), "{:?}", l.owed().unwrap());
    let id = the_sale(&l);
    assert_eq!(l.sale_state(&id).unwrap(), Some(SaleState::Poured));
    let poured = l.poured_ml(&id).unwrap().unwrap();
    assert!(ml.contains(&poured), "{poured} ml");
    assert_eq!(l.owed_ml(&id).unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_tank_that_runs_dry_a_few_ml_before_the_end_is_a_poured_sale_with_no_credit() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    buy(&mut m).await;
    let idle = runs_dry_just_before_the_end(&mut m).await;
    assert!(idle.tiles[0].sold_out, "the tank is dry all the same");
    m.shutdown().await;
    assert_poured(dir.path(), 295..=298);
}

#[tokio::test(start_paused = true)]
async fn a_pump_fault_a_few_ml_before_the_end_is_a_poured_sale_and_stops_the_machine() {
    let near_full = |m: &TestMachine| m.gpio.edge_count(SENSOR) >= DRINK_PULSES - 2;
    pump_fault_when("", near_full, 295..=298).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_anti_drip_run_after_the_full_volume_owes_nothing() {
    let reversing = |m: &TestMachine| m.gpio.level(REVERSE) == Some(PinValue::Level(true));
    pump_fault_when("anti_drip_ms = 500", reversing, 300..=300).await;
}

/// About 100 ml (45 pulses) are in the cup when `end` ends the pour: the sale is a credit
/// for the rest only, as the operator's `lnvend sales` shows it, and what flowed is off the
/// stock.
async fn about_100_ml_then(end: impl AsyncFnOnce(&mut TestMachine)) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let mut m = TestMachine::start(&cfg);
    buy(&mut m).await;
    until_pulses(&m, 45).await;
    end(&mut m).await;
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1);
    let (poured, left) = (owed[0].poured_ml.unwrap(), owed[0].owed_ml.unwrap());
    assert!((99..=103).contains(&poured), "{poured} ml");
    assert_eq!(poured + left, 300);
    // The refund the operator gives is the unpoured share, rounded up to a whole sat.
    let share = (PRICE_SAT * u64::from(left)).div_ceil(300);
    assert!(share < PRICE_SAT * 7 / 10, "{share} sats");
    let report = lnvend::cli::sales_report(&cfg, 0, false).unwrap();
    assert!(
        report.contains(&format!("owed credits: 1 ({share} sats)")),
        "{report}"
    );
    assert_eq!(l.stock("Water").unwrap().unwrap().ml, 10_000 - poured);
}

#[tokio::test(start_paused = true)]
async fn a_stop_of_the_program_mid_pour_owes_only_the_unpoured_share() {
    // The service is stopped mid-pour (systemctl stop, an update): `shutdown` follows.
    about_100_ml_then(async |_: &mut TestMachine| {}).await;
}

#[tokio::test(start_paused = true)]
async fn a_pump_fault_mid_pour_owes_only_the_unpoured_share() {
    about_100_ml_then(async |m: &mut TestMachine| {
        m.gpio.inject_fault(true);
        let fault = m.wait_screen(Screen::Fault).await;
        assert!(!fault.code.is_empty());
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_credit_pour_of_the_rest_that_runs_dry_just_before_its_end_settles_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    buy(&mut m).await;
    until_pulses(&m, 45).await;
    m.flows[0].set_tank_empty(true);
    let fault = m.wait_screen(Screen::Fault).await;
    m.send(Input::DismissFault);
    m.wait_screen(Screen::Idle).await;
    refill_for_credit(&mut m, 0).await;
    m.flows[0].set_tank_empty(false);
    m.send(Input::RedeemCredit(fault.code.clone()));
    m.wait_screen(Screen::Pouring).await;
    // The rest runs dry just before its end.
    runs_dry_just_before_the_end(&mut m).await;
    m.shutdown().await;
    assert_poured(dir.path(), 295..=299);
}

/// The value of one sample line, by its name and labels as printed.
fn pump_seconds(m: &TestMachine) -> f64 {
    let text = m.metrics.encode();
    let series = r#"lnvend_pump_run_seconds_total{channel="A"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(start_paused = true)]
async fn the_operators_test_and_calibration_pours_count_as_pump_wear() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path(), ""));
    login(&mut m).await;
    let message = |v: &View| v.operator.as_ref().map(|o| o.message.clone());
    m.send(Input::Operator(OpAction::TestPour { index: 0 }));
    m.wait_for(Duration::from_secs(30), "the test pour", |v| {
        message(v).is_some_and(|t| t.contains("done"))
    })
    .await;
    let (tested, _) = on_time(&m.gpio, ENA);
    assert!(tested > Duration::from_secs(10), "{tested:?}");
    let worn = pump_seconds(&m);
    assert!(
        (worn - tested.as_secs_f64()).abs() < 0.2,
        "{worn} s counted for a {tested:?} test pour"
    );
    m.send(Input::Operator(OpAction::CalibratePour {
        channel: Channel::A,
    }));
    m.wait_for(Duration::from_secs(30), "the calibration pour", |v| {
        message(v).is_some_and(|t| t.starts_with("Counted"))
    })
    .await;
    let calibrated = on_time(&m.gpio, ENA).0 - tested;
    assert!(calibrated > Duration::from_secs(6), "{calibrated:?}");
    let more = pump_seconds(&m) - worn;
    assert!(
        (more - calibrated.as_secs_f64()).abs() < 0.2,
        "{more} s counted for a {calibrated:?} calibration pour"
    );
    m.shutdown().await;
}

/// With a hold invoice (issue 25), a tank that runs dry after 250 of 300 ml: the payment is
/// taken (settled) and only the 50 ml left are owed. Returning the whole payment would give
/// the customer 250 ml and their money back.
#[tokio::test(start_paused = true)]
async fn a_held_payment_for_a_drink_partly_poured_is_taken_and_owes_only_the_rest() {
    use lnvend::backend::HoldState;
    let dir = tempfile::tempdir().unwrap();
    let hold = "[backend]\nkind = \"sim\"\nhold = \"always\"\n";
    let mut m = TestMachine::start(&config_with(dir.path(), "", hold));
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let inv = m.sim().latest().unwrap();
    m.sim().pay(&inv.id).unwrap();
    m.wait_screen(Screen::Pouring).await;
    // 250 ml at 450 pulses per litre.
    until_pulses(&m, 112).await;
    m.flows[0].set_tank_empty(true);
    let v = after_pour(&mut m).await;
    assert!(
        !v.message.contains("Nothing was charged"),
        "the screen must not promise the money back: {}",
        v.message
    );
    for _ in 0..600 {
        if !matches!(m.sim().hold_of(&inv.id), Some(HoldState::Accepted { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        m.sim().hold_of(&inv.id),
        Some(HoldState::Settled),
        "taken, not returned"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    let rest = owed[0].owed_ml.expect("a measured share");
    assert!(
        (45..=52).contains(&rest),
        "only the rest is owed: {rest} ml"
    );
}
