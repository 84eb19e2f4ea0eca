//! A BTCPay refund's claim link is never lost to the operator: asked for in the Credits
//! tab, the menu left before BTCPay answered, the link is in the Credits tab when the
//! operator comes back (text and QR) and in `lnvend sales`, until the operator dismisses
//! it. A fake Greenfield server answers slowly, so real time; every wait is bounded.

mod common;
mod fake_btcpay;

use std::time::Duration;

use common::TestMachine;
use fake_btcpay::{FakeBtcpay, KEY, STORE};
use lnvend::config::{Config, Mode};
use lnvend::controller::{Input, OpAction, OpTab, Screen, View};

fn config(dir: &std::path::Path, fake: &FakeBtcpay) -> Config {
    let pin = include_str!("../examples/sim.toml")
        .lines()
        .find(|l| l.starts_with("operator_pin_hash"))
        .unwrap();
    let text = format!(
        r#"
{pin}
machine_id = "links-1"
data_dir = "{}"

[[product]]
name = "Cola"
price_sat = 2100
pour_ms = 300

[clock]
require_sync = false

[gpio]
backend = "mock"

[backend]
kind = "btcpay"
url = "{}"
store_id = "{STORE}"
api_key = "{KEY}"
request_timeout_ms = 5000
network = "regtest"
"#,
        dir.display(),
        fake.url()
    );
    Config::parse(&text, "links-test.toml", Mode::Run).expect("config")
}

async fn wait(m: &mut TestMachine, what: &str, pred: impl Fn(&View) -> bool) -> View {
    m.wait_for(Duration::from_secs(10), what, pred).await
}

async fn credits_tab(m: &mut TestMachine) -> lnvend::controller::OperatorView {
    m.send(Input::OpenOperator);
    wait(m, "the PIN pad", |v| v.screen == Screen::Pin).await;
    m.send(Input::OperatorPin("1234".into()));
    wait(m, "the menu", |v| v.screen == Screen::Operator).await;
    m.send(Input::Operator(OpAction::Tab(OpTab::Credits)));
    let v = wait(m, "the Credits tab", |v| {
        v.operator.as_ref().is_some_and(|o| o.tab == OpTab::Credits)
    })
    .await;
    v.operator.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_link_answered_after_the_menu_was_left_waits_in_the_credits_tab_and_sales() {
    let fake = FakeBtcpay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &fake);
    let mut m = TestMachine::start(&cfg);
    // A paid Cola whose pump failed: an owed credit.
    m.tap(0);
    wait(&mut m, "the payment screen", |v| {
        v.screen == Screen::Payment
    })
    .await;
    let inv = fake.latest();
    m.gpio.inject_fault(true);
    fake.settle(&inv.id);
    let fault = wait(&mut m, "the fault screen", |v| v.screen == Screen::Fault).await;
    m.gpio.inject_fault(false);
    m.send(Input::DismissFault);
    wait(&mut m, "out of service", |v| {
        v.screen == Screen::OutOfService
    })
    .await;

    // The operator asks for the refund and leaves the menu before BTCPay answers.
    fake.refund_delay(Duration::from_millis(1500));
    let op = credits_tab(&mut m).await;
    assert!(op.refund_links.is_empty());
    m.send(Input::Operator(OpAction::Refund(fault.code.clone())));
    m.send(Input::Operator(OpAction::Exit));
    wait(&mut m, "the menu left", |v| v.screen != Screen::Operator).await;
    let mut answered = false;
    for _ in 0..100 {
        if !fake.refunds().is_empty() {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "BTCPay made the refund");
    // The answer reaches the controller just after the fake's reply.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back in the menu: the link is on the Credits tab, with what it refunds.
    let op = credits_tab(&mut m).await;
    assert!(op.credits.is_empty(), "refunded, no longer owed");
    assert_eq!(op.refund_links.len(), 1, "{:?}", op.refund_links);
    let row = &op.refund_links[0];
    assert_eq!(row.sale_id, fault.code);
    let pull = format!("{}/pull-payments/PP", fake.url());
    assert!(
        row.text.contains("2,100 sats") && row.text.contains(&pull),
        "{}",
        row.text
    );
    // Its QR, for the customer's wallet.
    m.send(Input::Operator(OpAction::ShowRefundLink(
        fault.code.clone(),
    )));
    let v = wait(&mut m, "the refund QR", |v| {
        v.operator.as_ref().is_some_and(|o| o.refund_qr.is_some())
    })
    .await;
    let bmp = v.operator.unwrap().refund_qr.unwrap();
    let s = bmp.size as usize;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(s, s, |x, y| bmp.pixels[y * s + x]);
    let link = img.detect_grids()[0].decode().unwrap().1;
    assert!(link.starts_with(&pull), "{link}");
    assert!(row.text.contains(&link), "the text and the QR agree");
    m.send(Input::Operator(OpAction::CloseRefund));

    // `lnvend sales` prints it too.
    let report = lnvend::cli::sales_report(&cfg, 0, false).unwrap();
    assert!(report.contains("refund links not dismissed: 1"), "{report}");
    assert!(report.contains(&link), "{report}");

    // Dismissed: gone from both.
    m.send(Input::Operator(OpAction::DismissRefundLink(
        fault.code.clone(),
    )));
    wait(&mut m, "the link dismissed", |v| {
        v.operator
            .as_ref()
            .is_some_and(|o| o.refund_links.is_empty())
    })
    .await;
    let report = lnvend::cli::sales_report(&cfg, 0, false).unwrap();
    assert!(!report.contains(&link), "{report}");
    m.shutdown().await;
}
