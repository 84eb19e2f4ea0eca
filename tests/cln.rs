//! Whole-machine scenarios with Core Lightning: the controller, the mock pump and a real
//! ledger against a fake lightningd on a unix socket (and a fake clnrest over HTTP) whose
//! every reply is checked against CLN's own schemas. What is asserted is what a customer or
//! an operator would notice: the screen, the pin record and the ledger.

mod common;
mod fake_lightningd;

use std::path::Path;
use std::time::Duration;

use common::*;
use fake_lightningd::FakeNode;
use lnvend::controller::Screen;
use lnvend::ledger::Ledger;

fn socket_backend(sock: &Path, network: &str) -> String {
    format!(
        "[backend]\nkind = \"cln\"\nrpc_socket = \"{}\"\nnetwork = \"{network}\"\n",
        sock.display()
    )
}

/// A fake node on a socket in `dir`, and the config of a regtest machine using it.
fn node_and_config(dir: &Path, node_network: &str) -> (FakeNode, lnvend::config::Config) {
    let node = FakeNode::new(node_network);
    let sock = dir.join("lightning-rpc");
    node.serve_socket(&sock);
    let cfg = config(&dir.join("data"), &socket_backend(&sock, "regtest"));
    (node, cfg)
}

#[tokio::test(start_paused = true)]
async fn the_node_s_invoice_names_the_machine_the_product_and_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.shutdown().await;
    let label = node.latest_label().unwrap();
    let sale = Ledger::open(&dir.path().join("data"))
        .unwrap()
        .sales_since(0, 10)
        .unwrap()
        .remove(0)
        .sale_id;
    assert_eq!(
        label,
        format!("lnvend/test-machine/{}", sale.0),
        "`listinvoices label=lnvend/<machine>/<receipt code>` finds it"
    );
    assert_eq!(
        node.latest_description().unwrap(),
        format!("Cola - test-machine - {}", sale.0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_paid_invoice_pours_exactly_the_pour_time_once() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let v = m.wait_screen(Screen::Payment).await;
    assert_eq!(v.amount, "2,100 sats");
    assert!(
        v.payment_uri.starts_with("LIGHTNING:LNBCRT21U1"),
        "{}",
        v.payment_uri
    );
    assert!(v.qr.is_some());
    let label = node.latest_label().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.pay(&label);
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(4000), 1));
    assert_eq!(on_time(&m.gpio, ENB).1, 0);
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("data")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
    assert!(node.calls("waitinvoice") >= 1, "woken by waitinvoice");
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn an_invoice_that_expires_goes_back_to_idle_without_pouring() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    // waitinvoice answers 903 at expiry; listinvoices then says expired.
    m.wait_for(Duration::from_secs(400), "idle after expiry", |v| {
        v.screen == Screen::Idle
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    assert_eq!(m.views.borrow().screen, Screen::Idle);
    m.shutdown().await;
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn a_duplicate_label_is_out_of_service_with_no_qr() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    node.fail_next_invoice(900, "Duplicate label 'S1-0000'");
    m.tap(0);
    let v = m
        .wait_for(Duration::from_secs(30), "not a QR", |v| {
            v.screen != Screen::Idle && v.screen != Screen::Creating
        })
        .await;
    assert_eq!(v.screen, Screen::OutOfService, "{v:?}");
    assert!(v.qr.is_none());
    assert_eq!(node.invoice_count(), 0);
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn the_daemon_hanging_up_mid_wait_still_finds_the_payment_and_pours_once() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let label = node.latest_label().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Every waitinvoice is hung up on, now and on reconnect: only polling is left.
    node.set_waits_closed(true);
    tokio::time::sleep(Duration::from_secs(5)).await;
    node.pay_silently(&label);
    let t0 = tokio::time::Instant::now();
    m.wait_screen(Screen::Pouring).await;
    assert!(
        t0.elapsed() <= Duration::from_secs(3),
        "found within a poll: {:?}",
        t0.elapsed()
    );
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(on_time(&m.gpio, ENA), (Duration::from_millis(4000), 1));
    m.shutdown().await;
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn a_payment_made_while_lnvend_was_down_is_owed_at_restart_not_poured() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    // Another app on the node was paid before lnvend ever ran: not ours to report.
    node.foreign_payment();
    let mut m = TestMachine::start(&cfg);
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    let label = node.latest_label().unwrap();
    // The start-up catch-up runs beside the sale; give it its round trips.
    let cursor = dir.path().join("data/cln-pay-index");
    for _ in 0..50 {
        if cursor.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.shutdown().await;
    assert_eq!(
        std::fs::read_to_string(&cursor).unwrap().trim(),
        "1",
        "the first start saved the node's cursor and reported nothing"
    );
    // Paid while down; the invoice then expires.
    node.pay_silently(&label);
    tokio::time::advance(Duration::from_secs(400)).await;
    let before = node.pages();
    let m = TestMachine::start(&cfg);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(m.views.borrow().screen, Screen::Idle, "no pour on screen");
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
    assert!(node.pages() > before, "asked from the cursor");
    let owed = Ledger::open(&dir.path().join("data"))
        .unwrap()
        .owed()
        .unwrap();
    assert_eq!(owed.len(), 1, "the payment made while down is owed once");
    assert_eq!(format!("lnvend/test-machine/{}", owed[0].sale_id.0), label);
    assert_eq!(owed[0].price_msat, 2_100_000);
    let saved = std::fs::read_to_string(dir.path().join("data/cln-pay-index")).unwrap();
    assert_eq!(saved.trim(), "2", "the cursor moved past the payment");
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn a_node_on_the_wrong_network_puts_the_machine_out_of_service() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "bitcoin");
    let mut m = TestMachine::start(&cfg);
    let v = m.wait_screen(Screen::OutOfService).await;
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService, "{v:?}");
    assert_eq!(node.invoice_count(), 0, "no invoice, no QR");
    m.shutdown().await;
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn an_oversized_reply_puts_the_machine_out_of_service_and_pours_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    node.set_oversized_replies(Some("getinfo"));
    let mut m = TestMachine::start(&cfg);
    let v = m.wait_screen(Screen::OutOfService).await;
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService, "{v:?}");
    assert!(m.views.borrow().qr.is_none());
    assert_eq!(node.invoice_count(), 0, "no invoice, no QR");
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    assert_eq!(
        node.open_connections(),
        0,
        "the oversized replies' connections were dropped"
    );

    // A sane node again: the machine comes back and sells.
    node.set_oversized_replies(None);
    m.wait_screen(Screen::Idle).await;
    // A 2 MiB answer to the invoice request shows no QR either.
    node.set_oversized_replies(Some("invoice"));
    m.tap(0);
    let v = m
        .wait_for(Duration::from_secs(30), "not a QR", |v| {
            v.screen != Screen::Idle && v.screen != Screen::Creating
        })
        .await;
    assert_eq!(v.screen, Screen::OutOfService, "{v:?}");
    assert!(v.qr.is_none());
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn finished_sales_leave_no_connection_to_the_node_open() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    for sale in 0..3 {
        m.tap(0);
        m.wait_screen(Screen::Payment).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            node.open_connections() >= 1,
            "sale {sale}: waitinvoice is open"
        );
        node.pay(&node.latest_label().unwrap());
        m.wait_screen(Screen::ThankYou).await;
        m.wait_screen(Screen::Idle).await;
    }
    // One left to expire unpaid, its waitinvoice open until then.
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    m.wait_for(Duration::from_secs(400), "idle after expiry", |v| {
        v.screen == Screen::Idle
    })
    .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        node.open_connections(),
        0,
        "every watch closed its connection"
    );
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("data")).unwrap();
    assert_eq!(l.pour_count().unwrap(), 3);
    node.assert_replies_valid();
}

#[test]
fn the_schema_check_catches_a_reply_real_lightningd_would_not_send() {
    let schemas = fake_lightningd::Schemas::load();
    let good = serde_json::json!({"bolt11": "lnbcrt1", "payment_hash": "00".repeat(32),
        "payment_secret": "11".repeat(32), "expires_at": 1, "created_index": 1});
    assert!(schemas.check("invoice", &good).is_empty());
    let mut no_secret = good.clone();
    no_secret.as_object_mut().unwrap().remove("payment_secret");
    assert!(!schemas.check("invoice", &no_secret).is_empty());
    let mut short_hash = good.clone();
    short_hash["payment_hash"] = "abcd".into();
    assert!(!schemas.check("invoice", &short_hash).is_empty());
    let paid_without_index = serde_json::json!({"invoices": [{"label": "a",
        "payment_hash": "00".repeat(32), "status": "paid", "expires_at": 1,
        "created_index": 1, "amount_msat": 1000}]});
    assert!(!schemas
        .check("listinvoices", &paid_without_index)
        .is_empty());
}

// --- clnrest ---

async fn rest_node(
    dir: &Path,
    rune_served: &str,
    rune_configured: &str,
) -> (FakeNode, lnvend::config::Config) {
    let node = FakeNode::new("regtest");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    node.serve_rest(listener, rune_served);
    let cfg = config(
        &dir.join("data"),
        &format!(
            "[backend]\nkind = \"cln\"\nurl = \"http://{addr}\"\nrune = \"{rune_configured}\"\nnetwork = \"regtest\"\n"
        ),
    );
    (node, cfg)
}

#[tokio::test(start_paused = true)]
async fn clnrest_a_paid_invoice_pours_once() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = rest_node(dir.path(), "good-rune", "good-rune").await;
    let mut m = TestMachine::start(&cfg);
    m.wait_screen(Screen::Idle).await;
    m.tap(1);
    let v = m.wait_screen(Screen::Payment).await;
    assert_eq!(v.amount, "3,000 sats");
    let label = node.latest_label().unwrap();
    node.pay(&label);
    m.wait_screen(Screen::ThankYou).await;
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(on_time(&m.gpio, ENB), (Duration::from_millis(2500), 1));
    m.shutdown().await;
    node.assert_replies_valid();
}

#[tokio::test(start_paused = true)]
async fn clnrest_a_wrong_rune_is_out_of_service_with_no_qr() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = rest_node(dir.path(), "good-rune", "stale-rune").await;
    let mut m = TestMachine::start(&cfg);
    let v = m.wait_screen(Screen::OutOfService).await;
    assert!(!v.message.contains("stale-rune"), "{}", v.message);
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(m.views.borrow().screen, Screen::OutOfService);
    assert_eq!(node.invoice_count(), 0);
    m.shutdown().await;
}

/// Two machines on one node whose sales happen to have the same id: each gets its own
/// invoice (no duplicate label), and each sees only its own payment.
#[tokio::test]
async fn two_machines_with_the_same_sale_id_get_distinct_labels_and_both_are_paid() {
    use lnvend::backend::cln::{ClnBackend, SocketRpc};
    use lnvend::backend::{InvoiceRequest, InvoiceState, PaymentBackend};
    use lnvend::config::Network;
    use lnvend::money::{Msat, Price};
    let dir = tempfile::tempdir().unwrap();
    let node = FakeNode::new("regtest");
    let sock = dir.path().join("lightning-rpc");
    node.serve_socket(&sock);
    let machine = |name: &'static str| {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        ClnBackend::new(
            SocketRpc::new(sock.clone(), Duration::from_secs(10)),
            "cln",
            Network::Regtest,
            &data,
        )
    };
    let request = |machine_id: &str| InvoiceRequest {
        sale_id: "S1800000000-0001".into(),
        machine_id: machine_id.into(),
        product: "Cola".into(),
        price: Price::Sats(Msat::from_sat(2100).unwrap()),
        description: "Cola".into(),
        expiry: Duration::from_secs(300),
    };
    let (a, b) = (machine("bar-7"), machine("bar-8"));
    let ia = a.create_invoice(&request("bar-7")).await.unwrap();
    let ib = b.create_invoice(&request("bar-8")).await.unwrap();
    assert_ne!(ia.id, ib.id);
    assert_eq!(ia.id.0, "lnvend/bar-7/S1800000000-0001");
    assert_eq!(
        a.invoice_state(&ia.id).await.unwrap(),
        InvoiceState::Pending
    );
    node.pay(&ia.id.0);
    assert!(matches!(
        a.invoice_state(&ia.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
    assert_eq!(
        b.invoice_state(&ib.id).await.unwrap(),
        InvoiceState::Pending,
        "bar-7's payment is not bar-8's"
    );
    node.pay(&ib.id.0);
    assert!(matches!(
        b.invoice_state(&ib.id).await.unwrap(),
        InvoiceState::Paid { .. }
    ));
    node.assert_replies_valid();
}

/// Taps Cola on the idle screen; the QR's invoice label once it is shown.
async fn show_qr(m: &mut TestMachine, node: &FakeNode) -> String {
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    m.wait_screen(Screen::Payment).await;
    node.latest_label().unwrap()
}

/// Cancel on the screen withdraws the invoice (`delinvoice status=unpaid`): the node takes
/// no payment for it any more, so a customer who walked away cannot pay for nothing.
#[tokio::test(start_paused = true)]
async fn cancel_withdraws_the_invoice_so_nobody_can_pay_for_a_drink_they_left() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    let label = show_qr(&mut m, &node).await;
    m.send(lnvend::controller::Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!node.has_invoice(&label), "the node no longer has it");
    assert_eq!(node.calls("delinvoice"), 1);
    // The watch and the sweep find it gone: no error, no credit, still selling.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(m.views.borrow().screen, Screen::Idle);
    assert!(m.views.borrow().credits.is_empty());
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("data")).unwrap();
    assert!(l.owed().unwrap().is_empty());
    assert_eq!(l.pour_count().unwrap(), 0);
    node.assert_replies_valid();
}

/// A rune without `delinvoice` costs only the withdrawal: the machine stays in service, the
/// invoice stays payable until it expires, and a payment made after Cancel is owed.
#[tokio::test(start_paused = true)]
async fn clnrest_a_rune_without_delinvoice_keeps_selling_and_a_payment_after_cancel_is_owed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = rest_node(dir.path(), "good-rune", "good-rune").await;
    node.refuse_rune_for(Some("delinvoice"));
    let mut m = TestMachine::start(&cfg);
    let label = show_qr(&mut m, &node).await;
    m.send(lnvend::controller::Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(node.has_invoice(&label), "not withdrawn");
    // Past a few health checks, looked at every 2 s: a refused delinvoice is no reason to
    // stop selling, not even until a refusal would lapse.
    for _ in 0..45 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(m.views.borrow().screen, Screen::Idle, "still selling");
    }
    node.pay(&label);
    let v = m
        .wait_for(
            Duration::from_secs(30),
            "the credit on the idle screen",
            |v| v.screen == Screen::Idle && !v.credits.is_empty(),
        )
        .await;
    assert_eq!(v.credits[0].product, "Cola");
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("data")).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1);
    assert_eq!(l.pour_count().unwrap(), 0);
}

/// The customer's payment reaches the node just before Cancel's withdrawal: the node keeps
/// the paid invoice (`delinvoice` answers 906), and the payment is owed, never lost.
#[tokio::test(start_paused = true)]
async fn a_payment_that_beats_the_withdrawal_is_owed() {
    let dir = tempfile::tempdir().unwrap();
    let (node, cfg) = node_and_config(dir.path(), "regtest");
    let mut m = TestMachine::start(&cfg);
    let label = show_qr(&mut m, &node).await;
    node.pay_silently(&label);
    m.send(lnvend::controller::Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    let v = m
        .wait_for(
            Duration::from_secs(120),
            "the credit on the idle screen",
            |v| v.screen == Screen::Idle && !v.credits.is_empty(),
        )
        .await;
    assert_eq!(v.credits[0].product, "Cola");
    assert!(node.has_invoice(&label), "the paid invoice is not deleted");
    assert_eq!(node.calls("delinvoice"), 1, "the withdrawal was asked");
    m.shutdown().await;
    let l = Ledger::open(&dir.path().join("data")).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1);
    assert_eq!(l.pour_count().unwrap(), 0);
    node.assert_replies_valid();
}
