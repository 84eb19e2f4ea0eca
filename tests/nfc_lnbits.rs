//! Bolt Cards against the real thing: a whole machine (mock GPIO) whose payment backend is a
//! real LNbits 1.6.2, and in that same LNbits the Bolt Cards extension holding a card with
//! known keys. The test card (tests/support/sun_card.rs) makes real SUN `p`/`c` for every
//! tap and is read through the NTAG 424 APDUs the machine's readers send. The extension
//! checks `p`/`c` with the card's keys, enforces the counter and the limits, and pays the
//! machine's invoice from the card's wallet; the machine pours only when its own LNbits
//! backend says the invoice is paid, as for a QR payment.
//!
//! Each test starts its own LNbits (about 20 s on a loaded 2-core machine). It needs the
//! virtualenv of `./scripts/lnbits-venv` and the vendored extension (see
//! tests/support/lnbits_boltcards.rs); without either it fails, it does not skip.

mod common;
#[path = "support/lnbits_boltcards.rs"]
mod lnbits_boltcards;
#[path = "support/lnbits_server.rs"]
mod lnbits_server;
#[path = "support/sun_card.rs"]
mod sun_card;

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Duration;

use common::{on_time, short_pour_config, TestMachine, ENA};
use lnbits_boltcards::{BoltLnbits, CardSpec, IssuedCard};
use lnvend::controller::{Input, Screen, View};
use lnvend::nfc::virtual_card::VirtualNtag424;
use serde_json::json;
use sun_card::{CardField, SunCard};

/// A card's service on this machine's loopback, over plain http: both test switches.
const LOCAL_NFC: &str =
    "\n[nfc]\nreader = \"virtual\"\nallow_insecure_http = true\nallow_private_hosts = true\n";

/// Real time, real servers, a loaded machine.
const STEP: Duration = Duration::from_secs(30);
/// What Cola costs.
const PRICE_SAT: i64 = 2100;
const FUND_SAT: u64 = 50_000;

fn venv() -> PathBuf {
    lnbits_server::venv().unwrap_or_else(|| {
        panic!("no LNbits virtualenv: run ./scripts/lnbits-venv (./scripts/test does it) or set LNBITS_VENV")
    })
}

/// The machine, and the card field of its reader.
async fn machine(
    dir: &tempfile::TempDir,
    lnbits: &BoltLnbits,
) -> (TestMachine, Sender<VirtualNtag424>) {
    let config = short_pour_config(dir.path(), &format!("{}{LOCAL_NFC}", lnbits.backend_toml()));
    let mut m = TestMachine::start(&config);
    m.wait_screen(Screen::Idle).await;
    let (field, cards) = CardField::new();
    let inputs = m.inputs.clone();
    lnvend::nfc::reader::spawn(Box::new(field), true, move |e| inputs.send(Input::Nfc(e)))
        .expect("reader thread");
    (m, cards)
}

fn spec(uid: &str, tx_limit_sat: u64, daily_limit_sat: u64) -> CardSpec<'_> {
    CardSpec {
        uid,
        k1: "0c3b25d92b38ae443229dd59ad34b85d",
        k2: "b45775776cb224c75bcde7ca3704e933",
        tx_limit_sat,
        daily_limit_sat,
    }
}

fn card_for(issued: &IssuedCard, uid: &str) -> SunCard {
    let key = |h: &str| -> [u8; 16] { hex::decode(h).unwrap().try_into().unwrap() };
    let s = spec(uid, 0, 0);
    SunCard::new(
        key(s.k1),
        key(s.k2),
        hex::decode(uid).unwrap().try_into().unwrap(),
        &issued.base_url,
    )
}

async fn payment_screen(m: &mut TestMachine) -> View {
    m.tap(0);
    m.wait_screen(Screen::Payment).await
}

async fn card_says(m: &mut TestMachine, what: &str) -> View {
    let what = what.to_string();
    m.wait_for(STEP, &format!("card message {what:?}"), |v| {
        v.card.message.contains(&what)
    })
    .await
}

async fn poured(m: &mut TestMachine) {
    m.wait_screen_within(Screen::Pouring, STEP).await;
    m.wait_screen_within(Screen::Idle, STEP).await;
}

fn pours(m: &TestMachine) -> usize {
    on_time(&m.gpio, ENA).1
}

/// A phone wallet pays the QR on screen (the card wallet, as FakeWallet pays only invoices of
/// its own LNbits).
async fn pay_qr(lnbits: &BoltLnbits, v: &View) {
    let bolt11 = v
        .payment_uri
        .strip_prefix("LIGHTNING:")
        .unwrap()
        .to_lowercase();
    let paid = lnbits_server::call(
        reqwest::Client::new()
            .post(format!("{}/api/v1/payments", lnbits.lnbits.url()))
            .header("X-Api-Key", &lnbits.card_wallet_adminkey)
            .json(&json!({"out": true, "bolt11": bolt11})),
        "pay the QR",
    )
    .await;
    assert_eq!(paid["status"], "success", "{paid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_tap_pours_once_from_the_cards_wallet_and_its_replay_is_refused() {
    if !lnbits_boltcards::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lnbits = BoltLnbits::start(&venv(), dir.path(), FUND_SAT).await;
    let issued = lnbits.issue(&spec("04996C6A926980", 5000, 100_000)).await;
    let mut card = card_for(&issued, "04996C6A926980");
    let (mut m, field) = machine(&dir, &lnbits).await;

    payment_screen(&mut m).await;
    field.send(card.tap()).unwrap();
    poured(&mut m).await;
    assert_eq!(pours(&m), 1, "one pour");
    assert_eq!(lnbits.card_wallet_sat().await, FUND_SAT as i64 - PRICE_SAT);
    assert_eq!(lnbits.machine_sat().await, PRICE_SAT);
    assert_eq!(lnbits.hits().await, (1, 1));

    // The same p/c again (a copy of the last tap), on the next sale.
    let screen = payment_screen(&mut m).await;
    field
        .send(VirtualNtag424::with_uri(&card.replay_uri()))
        .unwrap();
    let v = card_says(&mut m, "declined: This link is already used").await;
    assert_eq!(v.screen, Screen::Payment);
    assert_eq!(v.payment_uri, screen.payment_uri, "the same QR");
    assert_eq!(pours(&m), 1, "no pour on a replay");
    assert_eq!(lnbits.card_wallet_sat().await, FUND_SAT as i64 - PRICE_SAT);
    // The QR is still payable by phone.
    pay_qr(&lnbits, &v).await;
    poured(&mut m).await;
    assert_eq!(pours(&m), 2);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_taps_in_a_row_pay_once_and_the_daily_limit_then_refuses() {
    if !lnbits_boltcards::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lnbits = BoltLnbits::start(&venv(), dir.path(), FUND_SAT).await;
    // The extension refuses a tap once the day's spending is over the daily limit.
    let issued = lnbits.issue(&spec("04A1B2C3D4E5F6", 5000, 2000)).await;
    let mut card = card_for(&issued, "04A1B2C3D4E5F6");
    let (mut m, field) = machine(&dir, &lnbits).await;

    payment_screen(&mut m).await;
    // Two fresh taps (counters 1 and 2) at once: the second is not a replay, the machine
    // must ignore it while the first is in flight.
    field.send(card.tap()).unwrap();
    field.send(card.tap()).unwrap();
    poured(&mut m).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pours(&m), 1, "one pour");
    assert_eq!(m.screen(), Screen::Idle);
    assert_eq!(
        lnbits.card_wallet_sat().await,
        FUND_SAT as i64 - PRICE_SAT,
        "one payment"
    );
    assert_eq!(
        lnbits.hits().await,
        (1, 1),
        "one withdrawRequest, one callback"
    );

    let screen = payment_screen(&mut m).await;
    field.send(card.tap()).unwrap();
    let v = card_says(&mut m, "declined: Max daily limit spent").await;
    assert_eq!(v.payment_uri, screen.payment_uri);
    assert_eq!(pours(&m), 1);
    assert_eq!(lnbits.card_wallet_sat().await, FUND_SAT as i64 - PRICE_SAT);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cmac_a_price_over_tx_limit_and_a_disabled_card_are_refused() {
    if !lnbits_boltcards::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lnbits = BoltLnbits::start(&venv(), dir.path(), FUND_SAT).await;
    let forged = lnbits.issue(&spec("04000000000001", 5000, 100_000)).await;
    let small = lnbits.issue(&spec("04000000000002", 1000, 100_000)).await;
    let disabled = lnbits.issue(&spec("04000000000003", 5000, 100_000)).await;
    lnbits.set_enabled(&disabled, false).await;
    let (mut m, field) = machine(&dir, &lnbits).await;
    let screen = payment_screen(&mut m).await;

    let mut card = card_for(&forged, "04000000000001");
    let uri = card.tap_uri_with_bad_cmac();
    field.send(VirtualNtag424::with_uri(&uri)).unwrap();
    card_says(&mut m, "declined: CMAC does not check").await;

    // 1000 sat per payment: the withdrawRequest's maxWithdrawable is under Cola's price, so
    // the machine says so and sends no invoice.
    let mut card = card_for(&small, "04000000000002");
    field.send(card.tap()).unwrap();
    card_says(&mut m, "over your card's limit").await;

    let mut card = card_for(&disabled, "04000000000003");
    field.send(card.tap()).unwrap();
    let v = card_says(&mut m, "declined: Card is disabled").await;

    assert_eq!(v.screen, Screen::Payment);
    assert_eq!(v.payment_uri, screen.payment_uri, "the same QR throughout");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pours(&m), 0);
    assert_eq!(
        lnbits.card_wallet_sat().await,
        FUND_SAT as i64,
        "nothing paid"
    );
    assert_eq!(lnbits.machine_sat().await, 0);
    m.shutdown().await;
}
