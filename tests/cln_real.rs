//! The whole machine against a real Core Lightning (lightningd v26.06.6 built by
//! `./scripts/lightningd`, on a deterministic regtest chain served by the
//! `lnvend-regtest-chain` plugin; see tests/support/cln_node.rs), over the unix socket and
//! over clnrest with its own TLS certificate and a rune. What tests/cln.rs checks against a
//! fake, checked here against the real thing: payments are real (the node pays its own
//! invoice, or a second node pays over a real channel, HTLCs and all). Time is real, so
//! pours are short (300 ms).
//!
//! Fails loudly, naming the script, when Core Lightning's sources
//! (`../shared/vendor/core-lightning`) are missing.

#[path = "support/cln_node.rs"]
mod cln_node;
mod common;

use std::path::Path;
use std::time::Duration;

use cln_node::{open_channel, Chain, ClnNode, LNVEND_METHODS};
use common::*;
use lnvend::controller::{Input, Screen, View};
use lnvend::ledger::Ledger;
use serde_json::{json, Value};

const POUR: Duration = Duration::from_millis(300);
/// Real time on a busy machine: how much longer than asked a pour may measure.
const POUR_SLACK: Duration = Duration::from_millis(60);
const STEP: Duration = Duration::from_secs(30);

fn socket_toml(node: &ClnNode) -> String {
    format!(
        "[backend]\nkind = \"cln\"\nrpc_socket = \"{}\"\nnetwork = \"regtest\"\nrequest_timeout_ms = 5000\n",
        node.rpc_path().display()
    )
}

/// How the machine trusts clnrest's self-signed identity.
#[derive(Clone, Copy)]
enum Trust {
    /// `cert_sha256` of the server certificate.
    Pin,
    /// `ca_file`: the CA clnrest made beside it.
    Ca,
}

fn rest_toml(node: &ClnNode, rune: &str, trust: Trust) -> String {
    let trust = match trust {
        Trust::Pin => format!("cert_sha256 = \"{}\"", node.rest_cert_sha256()),
        Trust::Ca => format!("ca_file = \"{}\"", node.rest_ca_file().display()),
    };
    format!(
        "[backend]\nkind = \"cln\"\nurl = \"{}\"\nrune = \"{rune}\"\nnetwork = \"regtest\"\nrequest_timeout_ms = 5000\n{trust}\n",
        node.rest_url()
    )
}

async fn wait(m: &mut TestMachine, screen: Screen, limit: Duration) -> View {
    m.wait_screen_within(screen, limit).await
}

/// The BOLT11 on screen, as a customer's wallet would scan it.
fn bolt11_on_screen(m: &TestMachine) -> String {
    let uri = m.views.borrow().payment_uri.clone();
    uri.strip_prefix("LIGHTNING:")
        .unwrap_or_else(|| panic!("not a lightning URI: {uri}"))
        .to_ascii_lowercase()
}

/// The only sale in the machine's ledger.
fn only_sale(data: &Path) -> String {
    let mut sales = Ledger::open(data).unwrap().sales_since(0, 10).unwrap();
    assert_eq!(sales.len(), 1, "{sales:?}");
    sales.remove(0).sale_id.0
}

/// The node pays its own invoice (Core Lightning does since v23.08): a real payment, no
/// channel needed.
async fn self_pay(node: &ClnNode, bolt11: &str) {
    let paid = node.rpc("pay", json!({"bolt11": bolt11})).await;
    assert_eq!(paid["status"], "complete", "{paid}");
}

/// Pump channel A ran once, for the pour time.
fn assert_one_pour(m: &TestMachine) {
    let (on, count) = on_time(&m.gpio, ENA);
    assert_eq!(count, 1, "one pour");
    assert!(on >= POUR && on <= POUR + POUR_SLACK, "{on:?}");
}

/// Taps Cola and waits for its QR.
async fn buy(m: &mut TestMachine) -> String {
    wait(m, Screen::Idle, STEP).await;
    m.tap(0);
    let v = wait(m, Screen::Payment, STEP).await;
    assert!(v.qr.is_some());
    bolt11_on_screen(m)
}

async fn pours_once_after(m: &mut TestMachine) {
    wait(m, Screen::Pouring, STEP).await;
    wait(m, Screen::ThankYou, STEP).await;
    wait(m, Screen::Idle, STEP).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_one_pour(m);
}

/// How the machine reaches the node: every scenario below runs over both.
#[derive(Clone, Copy)]
enum Transport {
    /// lightningd's unix socket (no rune: the socket's permissions are the access control).
    Socket,
    /// clnrest over TLS, with a rune restricted to lnvend's four methods.
    Rest(Trust),
}

/// A node for `t` (with clnrest when the machine talks to it that way).
async fn node_for(dir: &Path, chain: &Chain, t: Transport) -> ClnNode {
    ClnNode::start(dir, chain, matches!(t, Transport::Rest(_))).await
}

/// The `[backend]` table of a machine that reaches `node` over `t`.
async fn backend_for(node: &ClnNode, t: Transport) -> String {
    match t {
        Transport::Socket => socket_toml(node),
        Transport::Rest(trust) => rest_toml(node, &node.lnvend_rune(&[]).await, trust),
    }
}

/// One `#[tokio::test]` per transport for a scenario `async fn name(t: Transport)`.
macro_rules! over_both {
    ($scenario:ident, $socket:ident, $rest:ident, $trust:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $socket() {
            // On the heap: a debug build's future of a whole scenario overflows the test
            // thread's stack.
            Box::pin($scenario(Transport::Socket)).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $rest() {
            Box::pin($scenario(Transport::Rest($trust))).await;
        }
    };
}

/// A paid invoice pours once, and the node's invoice is labelled with the machine and sale.
async fn a_paid_invoice_pours_once_and_is_labelled(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let node = node_for(&dir.path().join("node"), &chain, t).await;
    let data = dir.path().join("data");
    let mut m = TestMachine::start(&short_pour_config(&data, &backend_for(&node, t).await));
    let bolt11 = buy(&mut m).await;
    let sale = only_sale(&data);
    let label = format!("lnvend/test-machine/{sale}");
    let listed = node.rpc("listinvoices", json!({"label": label})).await;
    assert_eq!(listed["invoices"][0]["bolt11"], bolt11.as_str(), "{listed}");
    assert_eq!(listed["invoices"][0]["amount_msat"], 2_100_000);
    self_pay(&node, &bolt11).await;
    pours_once_after(&mut m).await;
    m.shutdown().await;
    let listed = node.rpc("listinvoices", json!({"label": label})).await;
    assert_eq!(listed["invoices"][0]["status"], "paid", "{listed}");
    let l = Ledger::open(&data).unwrap();
    assert_eq!(l.pour_count().unwrap(), 1);
    assert!(l.owed().unwrap().is_empty());
}
over_both!(
    a_paid_invoice_pours_once_and_is_labelled,
    socket_a_paid_invoice_pours_once_and_is_labelled_with_machine_and_sale,
    clnrest_with_a_pinned_certificate_and_a_four_method_rune_pours_once,
    Trust::Pin
);

/// A payment over a real channel (an HTLC from a second node) pours once.
async fn a_payment_over_a_real_channel_pours_once(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let merchant = node_for(&dir.path().join("merchant"), &chain, t).await;
    let customer = ClnNode::start(&dir.path().join("customer"), &chain, false).await;
    open_channel(&chain, &customer, &merchant, 1_000_000).await;
    let data = dir.path().join("data");
    let backend = backend_for(&merchant, t).await;
    let mut m = TestMachine::start(&short_pour_config(&data, &backend));
    let bolt11 = buy(&mut m).await;
    let paid = customer.rpc("pay", json!({"bolt11": bolt11})).await;
    assert_eq!(paid["status"], "complete", "{paid}");
    assert_eq!(paid["destination"], merchant.id.as_str());
    pours_once_after(&mut m).await;
    m.shutdown().await;
    // The HTLC moved the money: the merchant's side of the channel holds the price.
    let ch = merchant
        .rpc("listpeerchannels", json!({"id": customer.id}))
        .await;
    assert_eq!(ch["channels"][0]["to_us_msat"], 2_100_000, "{ch}");
    assert_eq!(Ledger::open(&data).unwrap().pour_count().unwrap(), 1);
}
over_both!(
    a_payment_over_a_real_channel_pours_once,
    socket_a_payment_over_a_real_channel_pours_once,
    clnrest_a_payment_over_a_real_channel_pours_once,
    Trust::Ca
);

/// Cancel withdraws the invoice (`delinvoice`): the customer's wallet, paying the QR they
/// walked away from, is refused by the node. Nothing charged, nothing owed, nothing poured.
async fn cancel_withdraws_the_invoice(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let node = node_for(&dir.path().join("node"), &chain, t).await;
    let data = dir.path().join("data");
    let mut m = TestMachine::start(&short_pour_config(&data, &backend_for(&node, t).await));
    let bolt11 = buy(&mut m).await;
    m.send(Input::Cancel);
    wait(&mut m, Screen::Idle, STEP).await;
    let gone = async {
        loop {
            let found = node.rpc("listinvoices", json!({"invstring": bolt11})).await;
            if found["invoices"].as_array().is_some_and(|a| a.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the node still has the invoice 10 s after Cancel");
    let refused = node.call("pay", json!({"bolt11": bolt11})).await;
    assert!(refused.is_err(), "the node took a payment: {refused:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = m.views.borrow().clone();
    assert_eq!(v.screen, Screen::Idle, "still selling");
    assert!(v.credits.is_empty(), "nothing owed");
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured");
    m.shutdown().await;
    assert!(Ledger::open(&data).unwrap().owed().unwrap().is_empty());
}
over_both!(
    cancel_withdraws_the_invoice,
    socket_cancel_withdraws_the_invoice_so_the_wallet_cannot_pay_it,
    clnrest_cancel_withdraws_the_invoice_so_the_wallet_cannot_pay_it,
    Trust::Pin
);

/// A rune without `delinvoice` (made before lnvend asked for it): Cancel cannot withdraw
/// the invoice, the machine sells on, and the customer's wallet that pays the QR they
/// walked away from gets an owed credit, not a pour on the idle screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clnrest_without_delinvoice_cancel_then_pay_is_an_owed_credit() {
    Box::pin(async {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::new(&dir.path().join("chain"));
        let node = ClnNode::start(&dir.path().join("node"), &chain, true).await;
        let rune = node.rune(&LNVEND_METHODS).await;
        let data = dir.path().join("data");
        let mut m = TestMachine::start(&short_pour_config(
            &data,
            &rest_toml(&node, &rune, Trust::Pin),
        ));
        let bolt11 = buy(&mut m).await;
        m.send(Input::Cancel);
        wait(&mut m, Screen::Idle, STEP).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The customer's wallet pays the QR they walked away from.
        self_pay(&node, &bolt11).await;
        let v = m
            .wait_for(STEP, "the credit on the idle screen", |v| {
                v.screen == Screen::Idle && !v.credits.is_empty()
            })
            .await;
        assert_eq!(v.credits[0].product, "Cola");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured on idle");
        m.shutdown().await;
        let owed = Ledger::open(&data).unwrap().owed().unwrap();
        assert_eq!(owed.len(), 1, "{owed:?}");
        assert_eq!(owed[0].price_msat, 2_100_000);
    })
    .await
}

/// Payments made while lnvend was down are found at start (the catch-up by the node's
/// `updated` index) and owed; another app's invoices on the same node are ignored.
async fn payments_made_while_down_are_owed_at_start(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let node = node_for(&dir.path().join("node"), &chain, t).await;
    // Another app on the node: paid once before lnvend ever ran, and once while it was down.
    let other = |label: &str| json!({"amount_msat": 5000, "label": label, "description": "another app's invoice"});
    let before = node.rpc("invoice", other("shop/1")).await;
    self_pay(&node, before["bolt11"].as_str().unwrap()).await;

    let data = dir.path().join("data");
    let cfg = short_pour_config(&data, &backend_for(&node, t).await);
    let mut m = TestMachine::start(&cfg);
    let bolt11 = buy(&mut m).await;
    let sale = only_sale(&data);
    let cursor = data.join("cln-pay-index");
    let deadline = tokio::time::Instant::now() + STEP;
    while !cursor.exists() {
        assert!(tokio::time::Instant::now() < deadline, "no pay_index saved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    m.shutdown().await;
    assert_eq!(std::fs::read_to_string(&cursor).unwrap().trim(), "1");

    // While lnvend is down: its customer pays, and so does the other app's.
    self_pay(&node, &bolt11).await;
    let during = node.rpc("invoice", other("shop/2")).await;
    self_pay(&node, during["bolt11"].as_str().unwrap()).await;

    let mut m = TestMachine::start(&cfg);
    let v = m
        .wait_for(STEP, "the credit on the idle screen", |v| {
            v.screen == Screen::Idle && !v.credits.is_empty()
        })
        .await;
    assert_eq!(v.credits.len(), 1, "{:?}", v.credits);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "nothing poured on idle");
    m.shutdown().await;
    let owed = Ledger::open(&data).unwrap().owed().unwrap();
    assert_eq!(owed.len(), 1, "ours only, once: {owed:?}");
    assert_eq!(owed[0].sale_id.0, sale);
    assert_eq!(
        std::fs::read_to_string(&cursor).unwrap().trim(),
        "3",
        "the cursor moved past every payment the node saw"
    );
}
over_both!(
    payments_made_while_down_are_owed_at_start,
    socket_payments_made_while_lnvend_was_down_are_owed_at_start_and_other_apps_are_ignored,
    clnrest_payments_made_while_lnvend_was_down_are_owed_at_start_and_other_apps_are_ignored,
    Trust::Pin
);

/// lightningd stopped while a QR is shown, then back: the payment is still seen.
async fn lightningd_stopped_and_back_while_the_qr_is_shown(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let mut node = node_for(&dir.path().join("node"), &chain, t).await;
    let data = dir.path().join("data");
    let mut m = TestMachine::start(&short_pour_config(&data, &backend_for(&node, t).await));
    let bolt11 = buy(&mut m).await;
    node.stop().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.start_again().await;
    self_pay(&node, &bolt11).await;
    pours_once_after(&mut m).await;
    m.shutdown().await;
    assert_eq!(Ledger::open(&data).unwrap().pour_count().unwrap(), 1);
}
over_both!(
    lightningd_stopped_and_back_while_the_qr_is_shown,
    socket_lightningd_stopped_while_the_qr_is_shown_and_back_the_payment_is_still_seen,
    clnrest_lightningd_stopped_while_the_qr_is_shown_and_back_the_payment_is_still_seen,
    Trust::Pin
);

/// lnvend started while lightningd is down: out of service, then selling by itself.
async fn started_while_lightningd_is_down(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    // Started once so clnrest makes its certificate and the rune exists; then down.
    let mut node = node_for(&dir.path().join("node"), &chain, t).await;
    let backend = backend_for(&node, t).await;
    node.stop().await;
    let data = dir.path().join("data");
    let mut m = TestMachine::start(&short_pour_config(&data, &backend));
    let v = wait(&mut m, Screen::OutOfService, STEP).await;
    assert!(v.qr.is_none());
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.screen(), Screen::OutOfService);
    node.start_again().await;
    let t0 = std::time::Instant::now();
    let bolt11 = buy(&mut m).await;
    eprintln!(
        "back in service {:?} after lightningd answered",
        t0.elapsed()
    );
    self_pay(&node, &bolt11).await;
    pours_once_after(&mut m).await;
    m.shutdown().await;
}
over_both!(
    started_while_lightningd_is_down,
    socket_lnvend_started_while_lightningd_is_down_is_out_of_service_then_sells_by_itself,
    clnrest_lnvend_started_while_lightningd_is_down_is_out_of_service_then_sells_by_itself,
    Trust::Ca
);

/// An invoice that expired: the node refuses to pay it, and the machine said Expired.
async fn an_expired_invoice_is_refused_and_shown_expired(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let node = node_for(&dir.path().join("node"), &chain, t).await;
    let data = dir.path().join("data");
    // The shortest expiry lnvend allows.
    let text = config_text(&data, &backend_for(&node, t).await)
        .replace("invoice_expiry_s = 300", "invoice_expiry_s = 60");
    let cfg = lnvend::config::Config::parse(&text, "test.toml", lnvend::config::Mode::Sim).unwrap();
    let mut m = TestMachine::start(&cfg);
    let bolt11 = buy(&mut m).await;
    wait(&mut m, Screen::Expired, Duration::from_secs(75)).await;
    // Refused: the payee (the same node) no longer knows an expired invoice (203).
    let refused = node
        .call("pay", json!({"bolt11": bolt11}))
        .await
        .expect_err("the node paid an expired invoice");
    eprintln!("pay of the expired invoice: {:?}", refused.0);
    let label = format!("lnvend/test-machine/{}", only_sale(&data));
    let listed = node.rpc("listinvoices", json!({"label": label})).await;
    assert_eq!(listed["invoices"][0]["status"], "expired", "{listed}");
    wait(&mut m, Screen::Idle, STEP).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
}
over_both!(
    an_expired_invoice_is_refused_and_shown_expired,
    socket_an_expired_invoice_is_refused_by_the_node_and_the_machine_says_expired,
    clnrest_an_expired_invoice_is_refused_by_the_node_and_the_machine_says_expired,
    Trust::Pin
);

/// A machine whose rune allows the three of lnvend's four methods other than `missing`: it
/// must go out of service, saying the node refused the rune and naming the call, at start
/// (or, for `invoice`, at the first tap, which shows no QR), and never pour. Should a QR
/// show, the failure says what a customer who pays it then sees.
async fn rune_without(missing: &str) {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(&dir.path().join("chain"));
    let node = ClnNode::start(&dir.path().join("node"), &chain, true).await;
    let allowed: Vec<&str> = LNVEND_METHODS
        .into_iter()
        .filter(|m| *m != missing)
        .collect();
    let rune = node.rune(&allowed).await;
    let data = dir.path().join("data");
    let mut m = TestMachine::start(&short_pour_config(
        &data,
        &rest_toml(&node, &rune, Trust::Pin),
    ));
    // Its start-up checks find out, before any customer is shown a QR (a refused `invoice`
    // has no harmless probe: the first tap finds it, and shows no QR).
    tokio::time::sleep(Duration::from_secs(3)).await;
    if m.screen() == Screen::Idle {
        assert_eq!(
            missing, "invoice",
            "a refused {missing} went unnoticed at start"
        );
        m.tap(0);
    }
    let v = m
        .wait_for(Duration::from_secs(15), "out of service or a QR", |v| {
            v.screen == Screen::OutOfService || v.screen == Screen::Payment
        })
        .await;
    if v.screen == Screen::Payment {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let still = m.screen();
        self_pay(&node, &bolt11_on_screen(&m)).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
        let after = m.views.borrow().clone();
        let pours = on_time(&m.gpio, ENA).1;
        m.shutdown().await;
        let owed = Ledger::open(&data).unwrap().owed().unwrap().len();
        panic!(
            "without {missing}: a QR, still {still:?} 10 s later; once paid, 15 s later: \
             {:?} {:?} {:?}, {pours} pours, {owed} owed",
            after.screen, after.message, after.detail
        );
    }
    let said = format!("{} {}", v.message, v.detail);
    assert!(
        said.contains(missing) && said.contains("rune") && !said.contains("key"),
        "{said}"
    );
    assert!(!said.contains(&rune), "the rune is a secret: {said}");
    m.tap(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(m.screen(), Screen::OutOfService);
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rune_without_getinfo_is_out_of_service_saying_so() {
    rune_without("getinfo").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rune_without_invoice_is_out_of_service_saying_so() {
    rune_without("invoice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rune_without_listinvoices_is_out_of_service_saying_so() {
    rune_without("listinvoices").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rune_without_waitinvoice_is_out_of_service_saying_so() {
    rune_without("waitinvoice").await;
}

/// The rune the book gives lets `delinvoice` delete only an unpaid invoice with this
/// machine's label, and the four methods work as before: the node's own `checkrune` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_book_s_rune_lets_delinvoice_touch_only_unpaid_lnvend_invoices() {
    Box::pin(async {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::new(&dir.path().join("chain"));
        let node = ClnNode::start(&dir.path().join("node"), &chain, true).await;
        let rune = node.lnvend_rune(&[]).await;
        let valid = |method: &'static str, params: Value| {
            let rune = rune.clone();
            let node = &node;
            async move {
                let r = node
                    .call(
                        "checkrune",
                        json!({"rune": rune, "method": method, "params": params}),
                    )
                    .await;
                matches!(r, Ok(v) if v["valid"] == true)
            }
        };
        let ours = json!({"label": "lnvend/test-machine/S1-00AA", "status": "unpaid"});
        assert!(valid("delinvoice", ours).await);
        let paid = json!({"label": "lnvend/test-machine/S1-00AA", "status": "paid"});
        assert!(!valid("delinvoice", paid).await, "a paid invoice");
        let other_machine = json!({"label": "lnvend/bar-2/S1-00AA", "status": "unpaid"});
        assert!(
            !valid("delinvoice", other_machine).await,
            "another machine's"
        );
        let other_app = json!({"label": "shop/order-7", "status": "unpaid"});
        assert!(!valid("delinvoice", other_app).await, "another app's");
        assert!(valid("listinvoices", json!({"label": "x"})).await);
        assert!(valid("getinfo", json!({})).await);
        assert!(!valid("pay", json!({"bolt11": "lnbcrt1"})).await);
    })
    .await
}
