//! Hold invoices against a real Core Lightning when lnvend is down at the wrong moment
//! (issue 25), on the bed of tests/cln_real_hold.rs (tests/support/cln_hold_bed.rs): a
//! merchant with the holdinvoice plugin, a customer paying over a real channel, the whole
//! machine with `hold = "always"`, over the unix socket and over clnrest. `crash` drops the
//! controller where it is, as `kill -9` would; the ledger on disk is all the next start has.
//! Kept apart from tests/cln_real_hold.rs so that each file stays one room.

#[path = "support/cln_node.rs"]
mod cln_node;
mod common;
#[macro_use]
#[path = "support/cln_hold_bed.rs"]
mod hold_bed;

use std::time::Duration;

use common::*;
use hold_bed::*;
use lnvend::config::{Config, Mode};
use lnvend::controller::Screen;
use lnvend::ledger::{Ledger, SaleState};

/// lnvend killed after the pour, before its settle reached the node (the link to the node
/// is cut from mid-pour until after the kill, so no settle can get through): at the next
/// start the held payment is settled because the drink was poured; nothing is owed and the
/// pump does not run again. The customer pays once.
async fn killed_after_the_pour_before_its_settle_is_settled_at_start_not_owed(t: Transport) {
    let b = bed(t).await;
    let link = Link::new(&b, t).await;
    let before = customer_balance(&b).await;
    // 4 s pours: time to cut the link mid-pour.
    let cfg = config(&b.data, &link.backend);
    let mut m = TestMachine::start(&cfg);
    let bolt11 = buy(&mut m).await;
    let paying = pay(&b, &bolt11);
    m.wait_screen_within(Screen::Pouring, STEP).await;
    link.set_cut(true);
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    // Its first tries to settle fail on the cut link.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    m.crash().await;
    assert_eq!(
        holdstate(&b, &bolt11).await,
        "ACCEPTED",
        "not taken before the restart"
    );
    {
        let l = Ledger::open(&b.data).unwrap();
        assert_eq!(l.pour_count().unwrap(), 1, "the pour is on record");
        assert_eq!(l.unresolved_holds().unwrap().len(), 1, "its settle is not");
    }
    link.set_cut(false);
    let mut m = TestMachine::start(&cfg);
    let paid = paying.await.unwrap();
    let paid = paid.unwrap_or_else(|e| panic!("pay: {:?}", e.0));
    assert_eq!(paid["status"], "complete", "{paid}");
    until_holds_recorded(&b.data).await;
    let idle = m.wait_screen_within(Screen::Idle, STEP).await;
    assert!(idle.credits.is_empty(), "no credit: {:?}", idle.credits);
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "no second pour");
    m.shutdown().await;
    assert_eq!(balance_drop(&b, before).await, PRICE_MSAT, "paid once");
    let l = Ledger::open(&b.data).unwrap();
    assert!(l.owed().unwrap().is_empty(), "{:?}", l.owed().unwrap());
    assert_eq!(l.pour_count().unwrap(), 1);
}

/// The plugin's margin here: it takes a held payment by itself 50 s before its invoice
/// expires; with lnvend's shortest QR (60 s) that is 10 s after the invoice was made.
const MARGIN_S: u64 = 50;

/// lnvend killed while its QR is up; the customer pays (held), and lnvend stays down until
/// the plugin takes the payment by itself near the invoice's expiry. At the next start that
/// is a paid sale never poured: an owed credit for the whole drink, offered on the screen,
/// never a pour on its own and never lost. The customer pays once.
async fn taken_by_the_node_while_lnvend_is_down_is_owed_at_start(t: Transport) {
    let b = bed_margin(t, MARGIN_S).await;
    let before = customer_balance(&b).await;
    let text = config_text(&b.data, &b.backend)
        .replace("invoice_expiry_s = 300", "invoice_expiry_s = 60")
        .replace("pour_ms = 4000", "pour_ms = 300");
    let cfg = Config::parse(&text, "test.toml", Mode::Sim).unwrap();
    let mut m = TestMachine::start(&cfg);
    let bolt11 = buy(&mut m).await;
    m.crash().await;
    let paying = pay(&b, &bolt11);
    until_holdstate(&b, &bolt11, "ACCEPTED").await;
    // Taken by the plugin, with nobody to ask it.
    until_holdstate(&b, &bolt11, "SETTLED").await;
    let paid = paying.await.unwrap();
    let paid = paid.unwrap_or_else(|e| panic!("pay: {:?}", e.0));
    assert_eq!(paid["status"], "complete", "{paid}");
    let mut m = TestMachine::start(&cfg);
    until_holds_recorded(&b.data).await;
    let idle = m
        .wait_for(STEP, "the credit offered", |v| {
            v.screen == Screen::Idle && !v.credits.is_empty()
        })
        .await;
    assert_eq!(idle.credits.len(), 1, "{:?}", idle.credits);
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never a pour on an idle screen");
    m.shutdown().await;
    assert_eq!(balance_drop(&b, before).await, PRICE_MSAT, "paid once");
    let l = Ledger::open(&b.data).unwrap();
    let owed = l.owed().unwrap();
    assert_eq!(owed.len(), 1, "owed once: {owed:?}");
    assert_eq!(owed[0].price_msat, PRICE_MSAT);
    assert_eq!(owed[0].owed_ml, None, "the whole drink");
    assert_eq!(
        l.sale_state(&owed[0].sale_id).unwrap(),
        Some(SaleState::Owed)
    );
    assert_eq!(l.pour_count().unwrap(), 0);
}

over_both!(
    killed_after_the_pour_before_its_settle_is_settled_at_start_not_owed,
    socket_killed_after_the_pour_before_its_settle_is_settled_at_start_not_owed,
    clnrest_killed_after_the_pour_before_its_settle_is_settled_at_start_not_owed
);
over_both!(
    taken_by_the_node_while_lnvend_is_down_is_owed_at_start,
    socket_taken_by_the_node_while_lnvend_is_down_is_owed_at_start,
    clnrest_taken_by_the_node_while_lnvend_is_down_is_owed_at_start
);
