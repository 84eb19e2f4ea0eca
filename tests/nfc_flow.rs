//! Tap to pay with a Bolt Card, on the whole machine (simulated backend, mock GPIO) against a
//! local LNURL-withdraw service: the card's service is told the invoice on screen, the pour
//! waits for the backend's confirmation, every failure is said on screen with the QR still
//! payable, and one invoice is offered to one card exchange.

mod common;
#[path = "support/lnurlw_service.rs"]
mod lnurlw_service;

use std::time::Duration;

use common::{on_time, short_pour_config, TestMachine, ENA};
use lnurlw_service::{Behaviour, CardService, K1};
use lnvend::controller::{Input, Screen, View};
use lnvend::nfc::reader::ReadError;
use lnvend::nfc::{CardUrl, NfcEvent, ReaderHealth, TapError};

/// A card's service on this machine's loopback needs both test switches.
const LOCAL_NFC: &str =
    "[nfc]\nreader = \"virtual\"\nallow_insecure_http = true\nallow_private_hosts = true\n";

const LIMIT: Duration = Duration::from_secs(20);

async fn machine(dir: &tempfile::TempDir, nfc: &str) -> TestMachine {
    let mut m = TestMachine::start(&short_pour_config(dir.path(), nfc));
    m.wait_screen(Screen::Idle).await;
    m
}

fn tap(m: &TestMachine, uri: &str) {
    let url = CardUrl::from_card_uri(uri, true).expect("a Bolt Card URI");
    m.send(Input::Nfc(NfcEvent::Tap(Ok(url))));
}

async fn payment_screen(m: &mut TestMachine) -> View {
    m.tap(0);
    m.wait_screen(Screen::Payment).await
}

async fn card_says(m: &mut TestMachine, what: &str) -> View {
    let what = what.to_string();
    m.wait_for(LIMIT, &format!("card message {what:?}"), |v| {
        v.card.message.contains(&what)
    })
    .await
}

fn bolt11_on_screen(v: &View) -> String {
    v.payment_uri
        .strip_prefix("LIGHTNING:")
        .unwrap()
        .to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_tap_pays_the_invoice_on_screen_and_pours_once_on_the_backends_word() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    let screen = payment_screen(&mut m).await;
    assert!(screen.card.hint, "the payment screen offers the card");
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Paying with your card").await;
    let cb = service.callbacks();
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0]["k1"], K1);
    assert_eq!(cb[0]["pr"], bolt11_on_screen(&screen));
    // The service said OK; nothing pours until the backend says paid.
    assert_eq!(m.screen(), Screen::Payment);
    assert_eq!(on_time(&m.gpio, ENA).1, 0);
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::Idle).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "one pour");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ok_without_a_payment_pours_nothing_and_the_qr_stays_payable() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    let screen = payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Paying with your card").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = m.views.borrow().clone();
    assert_eq!(v.screen, Screen::Payment);
    assert_eq!(v.payment_uri, screen.payment_uri, "the same QR");
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "no pour on the service's OK");
    // The customer pays the QR by phone instead.
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::Idle).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_taps_in_a_row_make_one_card_payment() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour {
        refuse_replays: false,
        ..Behaviour::default()
    })
    .await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    tap(&m, &service.tap_uri("P2"));
    card_says(&mut m, "Paying with your card").await;
    // A third tap after the service accepted the invoice is ignored too.
    tap(&m, &service.tap_uri("P3"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(service.scans().len(), 1, "one withdrawRequest");
    assert_eq!(service.callbacks().len(), 1, "one callback");
    m.shutdown().await;
}

/// A slow service's answer for a sale the customer left must not touch the next sale's card
/// state: its "Paying with your card…" stays, and a second tap on it is still ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_for_a_left_sale_leaves_the_next_sales_card_exchange_alone() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour {
        refuse_replays: false,
        first_callback_delay: Some(Duration::from_millis(1500)),
        ..Behaviour::default()
    })
    .await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    let first = payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Reading your card").await;
    // The customer gives up on the first sale and picks again.
    m.send(Input::Cancel);
    m.wait_screen(Screen::Idle).await;
    let second = payment_screen(&mut m).await;
    assert_ne!(second.payment_uri, first.payment_uri, "a new invoice");
    tap(&m, &service.tap_uri("P2"));
    card_says(&mut m, "Paying with your card").await;
    // The first sale's slow callback answers now.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(service.callbacks().len(), 2);
    let v = m.views.borrow().clone();
    assert_eq!(v.payment_uri, second.payment_uri);
    assert!(
        v.card.message.contains("Paying with your card"),
        "the second sale's card message: {:?}",
        v.card.message
    );
    tap(&m, &service.tap_uri("P3"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(service.scans().len(), 2, "the third tap is ignored");
    assert_eq!(service.callbacks().len(), 2, "one callback per invoice");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_tap_is_declined_with_the_services_reason_and_the_qr_stays() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    // The first tap of P1 pays one drink.
    payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Paying with your card").await;
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Idle).await;
    // The same p/c again, on the next sale.
    let screen = payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    let v = card_says(&mut m, "declined: This link is already used. You can").await;
    assert!(v.card.message.contains("declined"), "{}", v.card.message);
    assert_eq!(v.screen, Screen::Payment);
    assert_eq!(v.payment_uri, screen.payment_uri);
    assert_eq!(service.callbacks().len(), 1, "no callback for the replay");
    assert_eq!(on_time(&m.gpio, ENA).1, 1);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_over_the_cards_limit_is_said_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    // Cola is 2100 sat; the card allows 2000.
    let service = CardService::start(Behaviour {
        max_msat: 2_000_000,
        ..Behaviour::default()
    })
    .await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    let v = card_says(&mut m, "over your card's limit").await;
    assert_eq!(v.screen, Screen::Payment);
    assert!(service.callbacks().is_empty());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_refused_by_the_service_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour {
        callback_error: Some("Amount is too high".into()),
        ..Behaviour::default()
    })
    .await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    let v = card_says(&mut m, "Amount is too high").await;
    assert_eq!(v.screen, Screen::Payment);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_service_that_is_down_is_said_and_the_qr_stays() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("lnurlw://{}/scan?p=11&c=22", closed.local_addr().unwrap());
    drop(closed);
    let mut m = machine(&dir, LOCAL_NFC).await;
    let screen = payment_screen(&mut m).await;
    tap(&m, &uri);
    let v = card_says(&mut m, "cannot be reached").await;
    assert_eq!(v.payment_uri, screen.payment_uri);
    // A later good tap on the same invoice is still heard.
    let service = CardService::start(Behaviour::default()).await;
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Paying with your card").await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_pointing_at_a_private_address_is_refused_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let strict = "[nfc]\nreader = \"virtual\"\nallow_insecure_http = true\n";
    let mut m = machine(&dir, strict).await;
    payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    let v = card_says(&mut m, "not allowed here").await;
    assert_eq!(v.screen, Screen::Payment);
    assert!(service.scans().is_empty(), "the LAN was never probed");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_failures_and_other_cards_are_said_and_taps_off_the_payment_screen_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    // On the idle screen a tap does nothing.
    tap(&m, &service.tap_uri("P0"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(service.scans().is_empty());
    assert_eq!(m.screen(), Screen::Idle);
    payment_screen(&mut m).await;
    m.send(Input::Nfc(NfcEvent::Tap(Err(TapError::Read(
        ReadError::Removed,
    )))));
    card_says(&mut m, "Hold it still and try again").await;
    let not_bolt = lnvend::nfc::ndef::NdefError::NotUri;
    m.send(Input::Nfc(NfcEvent::Tap(Err(TapError::NotBoltCard(
        not_bolt,
    )))));
    card_says(&mut m, "not a Bolt Card").await;
    // The customer holds the card again: it pays.
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Paying with your card").await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hint_follows_the_readers_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = machine(&dir, LOCAL_NFC).await;
    let v = payment_screen(&mut m).await;
    assert!(v.card.hint);
    m.send(Input::Nfc(NfcEvent::Health(ReaderHealth::Down(
        "pcscd is not running".into(),
    ))));
    m.wait_for(LIMIT, "no hint", |v| !v.card.hint).await;
    m.send(Input::Nfc(NfcEvent::Health(ReaderHealth::Ready)));
    m.wait_for(LIMIT, "hint again", |v| v.card.hint).await;
    m.shutdown().await;

    // Without [nfc] there is no hint, and a tap is ignored.
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let mut m = machine(&dir, "").await;
    let v = payment_screen(&mut m).await;
    assert!(!v.card.hint);
    tap(&m, &service.tap_uri("P1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(service.scans().is_empty());
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_cannot_be_opened_leaves_qr_sales_and_no_hint() {
    // This host has no /dev/i2c-1: the PN532 reader cannot be opened.
    let dir = tempfile::tempdir().unwrap();
    let mut m = machine(&dir, "[nfc]\nreader = \"pn532-i2c\"\n").await;
    let v = payment_screen(&mut m).await;
    assert!(!v.card.hint);
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_on_the_virtual_reader_goes_through_the_reader_thread_to_the_payment_screen() {
    use lnvend::nfc::reader::read_ndef_uri;
    use lnvend::nfc::virtual_card::VirtualNtag424;
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(Behaviour::default()).await;
    let m = lnvend::app::assemble(&short_pour_config(dir.path(), LOCAL_NFC)).unwrap();
    let cards = m.cards.clone().expect("the virtual reader's feed");
    let inputs = m.controller.inputs();
    let views = m.controller.views();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(m.controller.run(async {
        let _ = rx.await;
    }));
    let wait = |pred: fn(&View) -> bool| {
        let mut views = views.clone();
        async move {
            tokio::time::timeout(LIMIT, async {
                loop {
                    if pred(&views.borrow_and_update()) {
                        return;
                    }
                    views.changed().await.unwrap();
                }
            })
            .await
            .expect("the view in time")
        }
    };
    wait(|v| v.screen == Screen::Idle).await;
    assert!(inputs.send(Input::Tap(0)));
    wait(|v| v.screen == Screen::Payment && v.card.hint).await;
    // The card is read through the same NDEF read as a real one.
    let read = read_ndef_uri(&mut VirtualNtag424::with_uri(&service.tap_uri("P1")));
    cards.send(read).unwrap();
    wait(|v| v.card.message.contains("Paying with your card")).await;
    assert_eq!(service.callbacks().len(), 1);
    stop.send(()).unwrap();
    task.await.unwrap();
}

/// Cola is 2100 sat; this card wants its PIN from 2000 sat (pinLimit is in msat).
fn pin_card() -> Behaviour {
    Behaviour {
        pin: Some((2_000_000, "2468".into())),
        ..Behaviour::default()
    }
}

fn type_pin(m: &TestMachine, pin: &str) {
    m.send(Input::CardPin(Some(lnvend::secret::Secret::new(pin))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_card_with_the_right_pin_pays_and_pours_once() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(pin_card()).await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    let screen = payment_screen(&mut m).await;
    tap(&m, &service.tap_uri("P1"));
    let v = card_says(&mut m, "Enter your card's PIN").await;
    assert!(v.card.pin_pad, "the pad is up");
    assert!(
        service.callbacks().is_empty(),
        "nothing sent before the PIN"
    );
    // A PIN the pad cannot make is not sent; the pad stays.
    type_pin(&m, "12");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(service.callbacks().is_empty());
    assert!(m.views.borrow().card.pin_pad);
    type_pin(&m, "2468");
    let v = card_says(&mut m, "Paying with your card").await;
    assert!(!v.card.pin_pad);
    let cb = service.callbacks();
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0]["pin"], "2468");
    assert_eq!(cb[0]["pr"], bolt11_on_screen(&screen));
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "no pour on the service's OK");
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::Idle).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1, "one pour");
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_card_with_a_wrong_pin_is_declined_and_the_qr_stays_payable() {
    let dir = tempfile::tempdir().unwrap();
    let service = CardService::start(pin_card()).await;
    let mut m = machine(&dir, LOCAL_NFC).await;
    let screen = payment_screen(&mut m).await;
    // Cancel on the pad: nothing is sent, the pad goes.
    tap(&m, &service.tap_uri("P1"));
    card_says(&mut m, "Enter your card's PIN").await;
    m.send(Input::CardPin(None));
    m.wait_for(LIMIT, "the pad gone", |v| !v.card.pin_pad).await;
    assert!(service.callbacks().is_empty());
    // Tapped again, a wrong PIN: the service's reason is said.
    tap(&m, &service.tap_uri("P2"));
    card_says(&mut m, "Enter your card's PIN").await;
    type_pin(&m, "1111");
    let v = card_says(&mut m, "declined: Wrong PIN. You can still pay by QR").await;
    assert!(!v.card.pin_pad);
    assert_eq!(v.screen, Screen::Payment);
    assert_eq!(v.payment_uri, screen.payment_uri, "the same QR");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 0, "no pour");
    // The QR is still payable by phone.
    m.sim().pay_latest().unwrap();
    m.wait_screen(Screen::Pouring).await;
    m.wait_screen(Screen::Idle).await;
    assert_eq!(on_time(&m.gpio, ENA).1, 1);
    m.shutdown().await;
}
