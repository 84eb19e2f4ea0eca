//! The credit of a drink whose tank ran dry, whole machine in paused time: the customer
//! still at the machine sees it on the idle screen as kept for them (with its receipt
//! code), it is never a button while the product is sold out, a Refill inside its window
//! makes it pourable (once), and after its window it waits in the operator's Credits tab at
//! its full value.

mod common;

use std::time::Duration;

use common::{on_time, TestMachine, ENA};
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, OpTab, Screen, View};
use lnvend::ledger::{Ledger, SaleState};
use lnvend::vend::SaleId;

/// Water (product 0): 600 sats for 300 ml by volume, no stock kept; Cola timed.
fn config(dir: &std::path::Path) -> Config {
    let pin_line = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .expect("the sim config has a PIN");
    let text = format!(
        r#"
{pin_line}
machine_id = "kept-test"
data_dir = "{}"

[[product]]
name = "Water"
price_sat = 600
pour_ms = 20000
volume_ml = 300

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 3000

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
    Config::parse(&text, "kept.toml", Mode::Sim).unwrap()
}

/// Pays for Water with the tank empty: the fault screen's receipt code.
async fn dry_sale(m: &mut TestMachine) -> String {
    m.flows[0].set_tank_empty(true);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.sim().pay_latest().unwrap();
    let fault = m.wait_screen(Screen::Fault).await;
    m.send(Input::DismissFault);
    m.wait_screen(Screen::Idle).await;
    fault.code
}

async fn login(m: &mut TestMachine) {
    m.send(Input::OpenOperator);
    m.wait_screen(Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    m.wait_screen(Screen::Operator).await;
}

fn idle(v: &View) -> bool {
    v.screen == Screen::Idle
}

#[tokio::test(start_paused = true)]
async fn a_dry_tanks_credit_is_shown_kept_never_poured_and_then_waits_for_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path()));
    let code = dry_sale(&mut m).await;
    let v = m.views.borrow().clone();
    // Cola pours from channel A too: one tank, sold out with it.
    assert!(v.tiles[0].sold_out && v.tiles[1].sold_out);
    // Listed, with its receipt code, as sold out: the customer sees it is kept for them.
    assert_eq!(v.credits.len(), 1, "{:?}", v.credits);
    assert_eq!(v.credits[0].sale_id, code);
    assert_eq!(v.credits[0].product, "Water");
    assert!(v.credits[0].sold_out, "not offered as pourable");
    // A tap on it (or on the tile) pours nothing.
    m.send(Input::RedeemCredit(code.clone()));
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.screen(), Screen::Idle);
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "no pump run after the dry one");
    assert_eq!(m.sim().invoices_created(), 1);
    // Still shown near the end of the 2-minute window, gone after it.
    tokio::time::sleep(Duration::from_secs(110)).await;
    assert!(m.views.borrow().credits.iter().any(|c| c.sale_id == code));
    m.wait_for(Duration::from_secs(15), "the window to end", |v| {
        idle(v) && v.credits.is_empty()
    })
    .await;
    // Then it waits for the operator, at its full price: nothing of it was poured.
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Tab(OpTab::Credits)));
    let v = m
        .wait_for(Duration::from_secs(5), "the Credits tab", |v| {
            v.operator.as_ref().is_some_and(|o| o.tab == OpTab::Credits)
        })
        .await;
    let credits = v.operator.unwrap().credits;
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].sale_id, code);
    assert!(credits[0].text.contains("600 sats"), "{}", credits[0].text);
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(l.sale_state(&SaleId(code)).unwrap(), Some(SaleState::Owed));
}

#[tokio::test(start_paused = true)]
async fn a_refill_inside_the_window_makes_the_kept_credit_pourable_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path()));
    let code = dry_sale(&mut m).await;
    assert!(m.views.borrow().credits[0].sold_out);
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Refill { index: 0 }));
    m.wait_for(Duration::from_secs(5), "the refill", |v| {
        v.operator
            .as_ref()
            .is_some_and(|o| o.message.contains("on sale again"))
    })
    .await;
    m.send(Input::Operator(OpAction::Exit));
    let v = m
        .wait_for(Duration::from_secs(5), "the credit as a button", |v| {
            idle(v) && v.credits.first().is_some_and(|c| !c.sold_out)
        })
        .await;
    assert_eq!(v.credits[0].sale_id, code);
    m.flows[0].set_tank_empty(false);
    m.send(Input::RedeemCredit(code.clone()));
    m.wait_screen(Screen::Pouring).await;
    // A second tap while it pours, and another after, pour nothing more.
    m.send(Input::RedeemCredit(code.clone()));
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    m.send(Input::RedeemCredit(code.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(m.screen(), Screen::Idle);
    assert!(m.views.borrow().credits.is_empty());
    assert_eq!(
        on_time(&m.gpio, ENA).1,
        2,
        "the dry run and the credit's pour"
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    let sale = SaleId(code);
    assert_eq!(l.sale_state(&sale).unwrap(), Some(SaleState::Poured));
    assert_eq!(l.owed_ml(&sale).unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_credit_whose_refund_is_under_way_cannot_be_settled_as_well() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = TestMachine::start(&config(dir.path()));
    let code = dry_sale(&mut m).await;
    login(&mut m).await;
    m.send(Input::Operator(OpAction::Tab(OpTab::Credits)));
    // Settle tapped while the refund is still running: the refund alone gives the money
    // back, and the operator is told so, not paid out twice.
    m.send(Input::Operator(OpAction::Refund(code.clone())));
    m.send(Input::Operator(OpAction::Settle(code.clone())));
    let v = m
        .wait_for(Duration::from_secs(5), "the refund", |v| {
            v.operator
                .as_ref()
                .is_some_and(|o| !o.refund_text.is_empty())
        })
        .await;
    assert_eq!(
        v.operator.unwrap().refund_text,
        format!("Refund 600 sats by hand; receipt code {code}")
    );
    m.shutdown().await;
    let l = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        l.sale_state(&SaleId(code)).unwrap(),
        Some(SaleState::Refunded)
    );
}
