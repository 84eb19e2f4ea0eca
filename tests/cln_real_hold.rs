//! Hold invoices against a real Core Lightning (issue 25): lightningd v26.06.6 with the
//! holdinvoice plugin 4.0.0 (built by `./scripts/holdinvoice`, run as an important plugin
//! with `holdinvoice-cancel-before-invoice-expiry=60`), a second node paying over a real
//! channel, and the whole machine with `hold = "always"`, over the unix socket and over
//! clnrest with a rune restricted to lnvend's methods and the plugin's. What the customer's
//! wallet sees is checked on the paying node: its channel balance drops once, by the price,
//! only after the pour; a pour that cannot happen leaves it exactly as it was.
//!
//! Fails loudly, naming the script, when Core Lightning's or the plugin's sources are missing
//! (`../shared/vendor/core-lightning`, `../shared/vendor/holdinvoice`).

#[path = "support/cln_node.rs"]
mod cln_node;
mod common;

use std::time::Duration;

use cln_node::{open_channel, Chain, ClnNode, HOLD_METHODS, LNVEND_METHODS};
use common::*;
use lnvend::controller::{Screen, View, RETURNED_TEXT};
use lnvend::ledger::{Ledger, SaleState};
use serde_json::{json, Value};

const STEP: Duration = Duration::from_secs(60);
const PRICE_MSAT: u64 = 2_100_000;

#[derive(Clone, Copy)]
enum Transport {
    Socket,
    Rest,
}

async fn backend_for(node: &ClnNode, t: Transport) -> String {
    match t {
        Transport::Socket => format!(
            "[backend]\nkind = \"cln\"\nrpc_socket = \"{}\"\nnetwork = \"regtest\"\nrequest_timeout_ms = 5000\nhold = \"always\"\n",
            node.rpc_path().display()
        ),
        Transport::Rest => {
            let methods: Vec<&str> = LNVEND_METHODS.iter().chain(&HOLD_METHODS).copied().collect();
            let rune = node.rune(&methods).await;
            format!(
                "[backend]\nkind = \"cln\"\nurl = \"{}\"\nrune = \"{rune}\"\nnetwork = \"regtest\"\nrequest_timeout_ms = 5000\ncert_sha256 = \"{}\"\nhold = \"always\"\n",
                node.rest_url(),
                node.rest_cert_sha256()
            )
        }
    }
}

/// A merchant with the plugin (and clnrest for `t`), a customer with a channel to it, and
/// the machine on the merchant.
struct Bed {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    merchant: ClnNode,
    customer: ClnNode,
    backend: String,
}

async fn bed(t: Transport) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let merchant = ClnNode::start_holding(
        &dir.path().join("merchant"),
        &chain,
        matches!(t, Transport::Rest),
    )
    .await;
    let customer = ClnNode::start(&dir.path().join("customer"), &chain, false).await;
    open_channel(&chain, &customer, &merchant, 1_000_000).await;
    let backend = backend_for(&merchant, t).await;
    Bed {
        data: dir.path().join("data"),
        _dir: dir,
        merchant,
        customer,
        backend,
    }
}

/// The customer's side of the channel, in msat.
async fn customer_balance(b: &Bed) -> u64 {
    let ch = b
        .customer
        .rpc("listpeerchannels", json!({"id": b.merchant.id}))
        .await;
    ch["channels"][0]["to_us_msat"].as_u64().unwrap()
}

async fn buy(m: &mut TestMachine) -> String {
    m.wait_screen_within(Screen::Idle, STEP).await;
    m.tap(0);
    let v: View = m.wait_screen_within(Screen::Payment, STEP).await;
    v.payment_uri
        .strip_prefix("LIGHTNING:")
        .unwrap()
        .to_ascii_lowercase()
}

/// The merchant node's holdstate of `bolt11`'s invoice.
async fn holdstate(b: &Bed, bolt11: &str) -> String {
    let hash = b.customer.rpc("decode", json!({"string": bolt11})).await["payment_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let r = b
        .merchant
        .rpc("holdinvoicelookup", json!({"payment_hash": hash}))
        .await;
    r["state"].as_str().unwrap_or_default().to_string()
}

/// The customer's wallet pays on its own task: `pay` returns only when the held payment is
/// settled (complete) or cancelled (failed).
fn pay(b: &Bed, bolt11: &str) -> tokio::task::JoinHandle<Result<Value, cln_node::RpcError>> {
    b.customer.spawn_call("pay", json!({"bolt11": bolt11}))
}

/// Held → poured → settled: the customer's wallet completes once, after the pour, and its
/// balance drops by the price exactly once.
async fn held_pour_is_settled_and_paid_once(t: Transport) {
    let b = bed(t).await;
    let before = customer_balance(&b).await;
    let mut m = TestMachine::start(&short_pour_config(&b.data, &b.backend));
    let bolt11 = buy(&mut m).await;
    let paying = pay(&b, &bolt11);
    m.wait_screen_within(Screen::Pouring, STEP).await;
    // The pump runs on the held payment: not taken yet.
    assert_eq!(holdstate(&b, &bolt11).await, "ACCEPTED");
    m.wait_screen_within(Screen::ThankYou, STEP).await;
    let paid = paying.await.unwrap();
    let paid = paid.unwrap_or_else(|e| panic!("pay: {:?}", e.0));
    assert_eq!(paid["status"], "complete", "{paid}");
    assert_eq!(holdstate(&b, &bolt11).await, "SETTLED");
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "one pour");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(before - customer_balance(&b).await, PRICE_MSAT, "paid once");
    m.shutdown().await;
    let l = Ledger::open(&b.data).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

/// A pump that faults before any liquid: the payment is cancelled, the customer's wallet
/// says the payment failed, and its balance is back in full.
async fn a_pump_fault_returns_the_payment_in_full(t: Transport) {
    let b = bed(t).await;
    let before = customer_balance(&b).await;
    let mut m = TestMachine::start(&short_pour_config(&b.data, &b.backend));
    let bolt11 = buy(&mut m).await;
    m.gpio.inject_fault(true);
    let paying = pay(&b, &bolt11);
    let fault = m.wait_screen_within(Screen::Fault, STEP).await;
    let paid = paying.await.unwrap();
    assert_eq!(fault.message, RETURNED_TEXT);
    assert!(paid.is_err(), "the wallet's payment failed: {paid:?}");
    m.gpio.inject_fault(false);
    let deadline = tokio::time::Instant::now() + STEP;
    while holdstate(&b, &bolt11).await != "CANCELED" {
        assert!(tokio::time::Instant::now() < deadline, "never cancelled");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(customer_balance(&b).await, before, "back in full");
    m.shutdown().await;
    let l = Ledger::open(&b.data).unwrap();
    assert!(
        l.owed().unwrap().is_empty(),
        "nothing owed: nothing was charged"
    );
    let sales = l.sales_since(0, 10).unwrap();
    assert_eq!(
        l.sale_state(&sales[0].sale_id).unwrap(),
        Some(SaleState::Returned)
    );
}

/// lnvend killed while its QR is up; the customer pays (the payment is held); at the next
/// start, before any sale, the held payment is cancelled: it was never poured.
async fn a_payment_held_while_lnvend_is_down_is_returned_at_start(t: Transport) {
    let b = bed(t).await;
    let before = customer_balance(&b).await;
    let cfg = short_pour_config(&b.data, &b.backend);
    let mut m = TestMachine::start(&cfg);
    let bolt11 = buy(&mut m).await;
    m.crash().await;
    let paying = pay(&b, &bolt11);
    let deadline = tokio::time::Instant::now() + STEP;
    while holdstate(&b, &bolt11).await != "ACCEPTED" {
        assert!(tokio::time::Instant::now() < deadline, "never held");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let m = TestMachine::start(&cfg);
    let deadline = tokio::time::Instant::now() + STEP;
    while holdstate(&b, &bolt11).await != "CANCELED" {
        assert!(tokio::time::Instant::now() < deadline, "never cancelled");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never poured");
    // lnvend's own look-up after its cancel (the plugin's can take 20 s) is recorded.
    let deadline = tokio::time::Instant::now() + STEP;
    while !Ledger::open(&b.data)
        .unwrap()
        .unresolved_holds()
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    m.shutdown().await;
    let paid = paying.await.unwrap();
    assert!(paid.is_err(), "{paid:?}");
    assert_eq!(customer_balance(&b).await, before);
    let l = Ledger::open(&b.data).unwrap();
    assert!(l.owed().unwrap().is_empty());
    assert!(l.unresolved_holds().unwrap().is_empty());
}

/// lnvend killed mid-pour (4 s pours here): at the next start the held payment is settled
/// (the pump ran) and the drink is owed; the customer's wallet completes, paying once.
async fn killed_mid_pour_is_settled_at_start_and_owed(t: Transport) {
    let b = bed(t).await;
    let before = customer_balance(&b).await;
    let cfg = config(&b.data, &b.backend);
    let mut m = TestMachine::start(&cfg);
    let bolt11 = buy(&mut m).await;
    let paying = pay(&b, &bolt11);
    m.wait_screen_within(Screen::Pouring, STEP).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    m.crash().await;
    assert_eq!(
        holdstate(&b, &bolt11).await,
        "ACCEPTED",
        "not taken before the restart"
    );
    let m = TestMachine::start(&cfg);
    let paid = paying.await.unwrap();
    let paid = paid.unwrap_or_else(|e| panic!("pay: {:?}", e.0));
    assert_eq!(paid["status"], "complete", "{paid}");
    let deadline = tokio::time::Instant::now() + STEP;
    while !Ledger::open(&b.data)
        .unwrap()
        .unresolved_holds()
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    m.shutdown().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(before - customer_balance(&b).await, PRICE_MSAT, "paid once");
    let l = Ledger::open(&b.data).unwrap();
    assert_eq!(l.owed().unwrap().len(), 1, "owed once");
}

/// Cancel on screen while the customer's payment is in flight: whether it is held before or
/// after lnvend's cancel, it is returned in full and nothing pours.
async fn cancel_with_the_payment_in_flight_returns_it(t: Transport) {
    let b = bed(t).await;
    let before = customer_balance(&b).await;
    let mut m = TestMachine::start(&short_pour_config(&b.data, &b.backend));
    let bolt11 = buy(&mut m).await;
    let paying = pay(&b, &bolt11);
    m.send(lnvend::controller::Input::Cancel);
    m.wait_screen_within(Screen::Idle, STEP).await;
    let paid = paying.await.unwrap();
    assert!(
        paid.is_err(),
        "the payment is refused or returned: {paid:?}"
    );
    let deadline = tokio::time::Instant::now() + STEP;
    while !Ledger::open(&b.data)
        .unwrap()
        .unresolved_holds()
        .unwrap()
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never resolved");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "never a pour on an idle screen");
    assert_eq!(holdstate(&b, &bolt11).await, "CANCELED");
    assert_eq!(customer_balance(&b).await, before, "back in full");
    m.shutdown().await;
    assert!(Ledger::open(&b.data).unwrap().owed().unwrap().is_empty());
}

macro_rules! over_both {
    ($scenario:ident, $socket:ident, $rest:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $socket() {
            Box::pin($scenario(Transport::Socket)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $rest() {
            Box::pin($scenario(Transport::Rest)).await;
        }
    };
}

over_both!(
    held_pour_is_settled_and_paid_once,
    socket_held_pour_is_settled_and_paid_once,
    clnrest_held_pour_is_settled_and_paid_once
);
over_both!(
    a_pump_fault_returns_the_payment_in_full,
    socket_a_pump_fault_returns_the_payment_in_full,
    clnrest_a_pump_fault_returns_the_payment_in_full
);
over_both!(
    a_payment_held_while_lnvend_is_down_is_returned_at_start,
    socket_a_payment_held_while_lnvend_is_down_is_returned_at_start,
    clnrest_a_payment_held_while_lnvend_is_down_is_returned_at_start
);
over_both!(
    killed_mid_pour_is_settled_at_start_and_owed,
    socket_killed_mid_pour_is_settled_at_start_and_owed,
    clnrest_killed_mid_pour_is_settled_at_start_and_owed
);
over_both!(
    cancel_with_the_payment_in_flight_returns_it,
    socket_cancel_with_the_payment_in_flight_returns_it,
    clnrest_cancel_with_the_payment_in_flight_returns_it
);
