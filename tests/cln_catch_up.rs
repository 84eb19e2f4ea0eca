//! Core Lightning's "payments made while lnvend was down" at start, against the fake
//! lightningd: it is asked again (with a growing pause) until the node answers, a rune the
//! node refuses for a call lnvend needs puts the machine out of service saying so, and a
//! node with a long history is read in a few pages, not one call per payment it ever had.

mod common;
mod fake_lightningd;

use std::path::Path;
use std::time::Duration;

use common::*;
use fake_lightningd::FakeNode;
use lnvend::controller::Screen;
use lnvend::ledger::Ledger;

fn socket_config(dir: &Path, sock: &Path) -> lnvend::config::Config {
    config(
        &dir.join("data"),
        &format!(
            "[backend]\nkind = \"cln\"\nrpc_socket = \"{}\"\nnetwork = \"regtest\"\n",
            sock.display()
        ),
    )
}

/// Waits (virtual time) until the start-up catch-up saved its cursor.
async fn cursor_saved(dir: &Path) {
    let cursor = dir.join("data/cln-pay-index");
    for _ in 0..600 {
        if cursor.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no cursor saved at {}", cursor.display());
}

/// A first start that sells one drink's invoice (left unpaid on screen) and saves the
/// node's cursor; returns the invoice's label.
async fn first_start(dir: &Path, cfg: &lnvend::config::Config, node: &FakeNode) -> String {
    let mut m = TestMachine::start(cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let label = node.latest_label().unwrap();
    cursor_saved(dir).await;
    m.shutdown().await;
    label
}

fn owed_labels(dir: &Path) -> Vec<String> {
    Ledger::open(&dir.join("data"))
        .unwrap()
        .owed()
        .unwrap()
        .into_iter()
        .map(|o| format!("lnvend/test-machine/{}", o.sale_id.0))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn the_catch_up_is_asked_again_until_the_node_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::new("regtest");
    let sock = dir.path().join("lightning-rpc");
    let serving = node.serve_socket(&sock);
    let cfg = socket_config(dir.path(), &sock);
    let label = first_start(dir.path(), &cfg, &node).await;
    // Paid while lnvend is down; then lightningd is down too when lnvend starts.
    node.pay_silently(&label);
    tokio::time::advance(Duration::from_secs(400)).await;
    serving.abort();
    let _ = serving.await;
    std::fs::remove_file(&sock).unwrap();
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::OutOfService).await;
    tokio::time::sleep(Duration::from_secs(90)).await;
    let catch_up_calls = || node.pages() + node.calls("waitanyinvoice");
    let before = catch_up_calls();
    node.serve_socket(&sock);
    m.wait_for(Duration::from_secs(300), "back in service", |v| {
        v.screen == Screen::Idle
    })
    .await;
    // The catch-up's next try finds the payment made while down.
    tokio::time::sleep(Duration::from_secs(900)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "owed, not poured");
    m.shutdown().await;
    assert!(
        catch_up_calls() > before,
        "the node's cursor was asked again once the node was back"
    );
    assert_eq!(owed_labels(dir.path()), [label], "owed once");
    node.assert_replies_valid();
}

/// A payment made while lnvend was down is reported by the catch-up even when the catch-up
/// fails at first and a newer payment is confirmed before it succeeds: the newer payment's
/// `pay_index` must not become the floor the retried catch-up reads from. (On the whole
/// machine the start-up re-check of the ledger finds lnvend's own unsettled invoices as well;
/// the catch-up is the net under it, so it is asked here at the backend boundary.)
#[tokio::test(start_paused = true)]
async fn a_payment_confirmed_before_the_catch_up_went_through_does_not_hide_one_made_while_down() {
    use lnvend::backend::cln::{ClnBackend, SocketRpc};
    use lnvend::backend::{InvoiceRequest, InvoiceState, PaymentBackend};
    use lnvend::config::Network;
    use lnvend::money::{Msat, Price};
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::new("regtest");
    let sock = dir.path().join("lightning-rpc");
    node.serve_socket(&sock);
    let start = || {
        std::sync::Arc::new(ClnBackend::new(
            SocketRpc::new(sock.clone(), Duration::from_secs(10)),
            "cln",
            Network::Regtest,
            dir.path(),
        ))
    };
    let request = |sale: &str| InvoiceRequest {
        sale_id: sale.into(),
        machine_id: "bar-7".into(),
        product: "Cola".into(),
        price: Price::Sats(Msat::from_sat(2100).unwrap()),
        description: "Cola".into(),
        expiry: Duration::from_secs(300),
    };
    // First run: the first catch-up saves the cursors; a QR is shown, then the power goes.
    let first = start();
    assert!(first.paid_while_away().await.unwrap().is_empty());
    let down = first.create_invoice(&request("S1-0001")).await.unwrap();
    drop(first);
    node.pay_silently(&down.id.0);
    // Second run: the node answers everything but the catch-up's pages at first.
    node.fail_pages(true);
    let second = start();
    let catching_up = tokio::spawn({
        let b = second.clone();
        async move { b.paid_while_away().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(node.pages() > 0 && !catching_up.is_finished());
    let now = second.create_invoice(&request("S1-0002")).await.unwrap();
    node.pay(&now.id.0);
    assert!(matches!(
        second.invoice_state(&now.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
    node.fail_pages(false);
    let found = tokio::time::timeout(Duration::from_secs(600), catching_up)
        .await
        .expect("the catch-up went through once the node answered")
        .unwrap()
        .unwrap();
    // The one confirmed meanwhile may be reported again: the ledger owes a poured sale
    // nothing (ledger test a_late_report_of_a_poured_payment_owes_nothing).
    assert!(
        found.contains(&down.id),
        "the payment made while down: {found:?}"
    );
    node.assert_replies_valid();
}

async fn rest_node(dir: &Path, node: &FakeNode) -> lnvend::config::Config {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    node.serve_rest(listener, "the-rune");
    config(
        &dir.join("data"),
        &format!(
            "[backend]\nkind = \"cln\"\nurl = \"http://{addr}\"\nrune = \"the-rune\"\nnetwork = \"regtest\"\n"
        ),
    )
}

/// A rune that `getinfo` accepts but that lacks `listinvoices` (which the catch-up and
/// every payment check need) is out of service saying "rune", until the node accepts it.
#[tokio::test(start_paused = true)]
async fn a_rune_refused_for_any_call_is_out_of_service_saying_rune() {
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::new("regtest");
    let cfg = rest_node(dir.path(), &node).await;
    node.refuse_rune_for(Some("listinvoices"));
    let mut m = TestMachine::start(&cfg);
    let v = m
        .wait_for(Duration::from_secs(300), "out of service", |v| {
            v.screen == Screen::OutOfService
        })
        .await;
    assert!(v.detail.contains("rune"), "{}", v.detail);
    assert!(v.detail.contains("listinvoices"), "{}", v.detail);
    assert!(!v.detail.contains("key"), "{}", v.detail);
    assert!(!v.detail.contains("the-rune"), "{}", v.detail);
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(node.invoice_count(), 0, "no invoice, no QR");
    // The operator fixes the rune's permissions on the node: the catch-up goes through
    // on its next try and the machine sells again.
    node.refuse_rune_for(None);
    m.wait_for(Duration::from_secs(900), "back in service", |v| {
        v.screen == Screen::Idle
    })
    .await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.shutdown().await;
    assert!(dir.path().join("data/cln-pay-index").exists());
    node.assert_replies_valid();
}

/// A rune that may not make invoices: the first tap finds out, shows no QR and puts the
/// machine out of service saying "rune"; once the operator fixes the rune on the node, the
/// machine tries again by itself and sells, with no restart.
#[tokio::test(start_paused = true)]
async fn a_rune_refused_for_invoices_is_tried_again_and_sells_once_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::new("regtest");
    let cfg = rest_node(dir.path(), &node).await;
    node.refuse_rune_for(Some("invoice"));
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let v = m
        .wait_for(Duration::from_secs(60), "out of service", |v| {
            v.screen == Screen::OutOfService
        })
        .await;
    assert!(v.detail.contains("rune"), "{}", v.detail);
    assert!(v.detail.contains("invoice"), "{}", v.detail);
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(node.invoice_count(), 0, "no invoice, no QR");
    node.refuse_rune_for(None);
    m.wait_for(Duration::from_secs(900), "back in service", |v| {
        v.screen == Screen::Idle
    })
    .await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.shutdown().await;
    node.assert_replies_valid();
}

/// The first start against a node that was paid 5,000 times, and a restart after 3,000
/// more payments and one of lnvend's own: a handful of calls each, and lnvend's own
/// payment is found.
#[tokio::test(start_paused = true)]
async fn a_node_with_a_long_history_is_caught_up_in_a_few_calls() {
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::new("regtest");
    let sock = dir.path().join("lightning-rpc");
    node.serve_socket(&sock);
    let cfg = socket_config(dir.path(), &sock);
    node.foreign_payments(5000);
    let catch_up_calls = || node.pages() + node.calls("waitanyinvoice");
    let label = first_start(dir.path(), &cfg, &node).await;
    let first = catch_up_calls();
    assert!(first <= 12, "{first} calls for the first start");
    node.foreign_payments(1500);
    node.pay_silently(&label);
    node.foreign_payments(1500);
    tokio::time::advance(Duration::from_secs(400)).await;
    let by_label_before = node.calls("listinvoices") - node.pages();
    let m = TestMachine::start(&cfg);
    tokio::time::sleep(Duration::from_secs(30)).await;
    m.shutdown().await;
    let again = catch_up_calls() - first;
    assert!(again <= 8, "{again} calls for 3,001 payments");
    // Only lnvend's own invoices are checked one by one: 3,000 other apps' payments would
    // be 3,000 calls (25 minutes at the check's pace) of no use.
    let by_label = node.calls("listinvoices") - node.pages() - by_label_before;
    assert!(by_label <= 4, "{by_label} invoices checked one by one");
    assert_eq!(
        owed_labels(dir.path()),
        [label],
        "lnvend's own payment is owed"
    );
    node.assert_replies_valid();
}
