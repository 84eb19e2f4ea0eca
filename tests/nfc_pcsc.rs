//! The PC/SC reader against a real pcscd with the vsmartcard-vpcd virtual reader and a
//! virtual NTAG 424 DNA (tests/support/vpcd_card.rs): a tap is read as its URL, once; a card
//! pulled away mid-read is a read failure, not a hang, and the next card is read; and the
//! reader survives pcscd restarting. Needs pcscd, vsmartcard-vpcd and libpcsclite-dev (./scripts/deps).

#![cfg(feature = "pcsc")]

mod common;

#[path = "support/vpcd_card.rs"]
mod vpcd_card;

use std::sync::mpsc;
use std::time::Duration;

use lnvend::nfc::pcsc_reader::PcscReader;
use lnvend::nfc::reader::{CardReader, ReadError, TapError};
use vpcd_card::{tap, Pcscd, PCSCD};

const URI: &str = "lnurlw://card.example.com/boltcards/api/v1/scan/abc?p=4E2E289D945A66BB13377A728884E867&c=E19CCB1FED8892CE";

type Read = Result<Result<String, TapError>, ReadError>;

/// Runs the reader on its own thread, as lnvend does; reads come back on the channel.
fn reader_thread() -> mpsc::Receiver<Read> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = PcscReader::new();
        loop {
            let read = r.wait_for_card();
            let failed = matches!(read, Err(ReadError::Reader(_)));
            if tx.send(read).is_err() {
                return;
            }
            if failed {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    });
    rx
}

/// The next read that is not a reader failure (pcscd starting up, the probe card).
fn next_tap(rx: &mpsc::Receiver<Read>) -> Read {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Err(ReadError::Reader(why))) => last = Some(why),
            Ok(other) => return other,
            Err(_) => {}
        }
    }
    panic!("no tap read within 30 s; last reader error: {last:?}");
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    PCSCD.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn a_tap_on_the_virtual_reader_is_read_once_as_its_url() {
    let _g = lock();
    let _pcscd = Pcscd::start();
    let rx = reader_thread();
    let card = tap(URI, None, Duration::from_secs(3));
    assert_eq!(next_tap(&rx), Ok(Ok(URI.to_string())));
    // The card stays on the reader: it is not read again.
    let again = rx.recv_timeout(Duration::from_secs(2));
    assert!(
        !matches!(again, Ok(Ok(_))),
        "a card left lying was read twice: {again:?}"
    );
    assert!(
        card.join().unwrap() >= 4,
        "SELECT, SELECT, NLEN, the message"
    );
}

/// A card pulled away mid-read is "read failed, try again"; the card laid down next (the
/// customer trying again) is read, at once and whole.
#[test]
fn a_card_pulled_away_mid_read_is_a_read_failure_and_the_next_tap_is_read() {
    let _g = lock();
    let _pcscd = Pcscd::start();
    let rx = reader_thread();
    let card = tap(URI, Some(2), Duration::from_secs(3));
    let r = next_tap(&rx);
    assert!(matches!(r, Err(ReadError::Removed)), "{r:?}");
    assert_eq!(card.join().unwrap(), 2, "the card left during the read");
    let again = tap(URI, None, Duration::from_secs(3));
    assert_eq!(next_tap(&rx), Ok(Ok(URI.to_string())));
    assert!(again.join().unwrap() >= 4, "the whole NDEF file was read");
}

#[test]
fn the_reader_survives_pcscd_restarting() {
    let _g = lock();
    let pcscd = Pcscd::start();
    let rx = reader_thread();
    let card = tap(URI, None, Duration::from_secs(2));
    assert_eq!(next_tap(&rx), Ok(Ok(URI.to_string())));
    card.join().unwrap();
    pcscd.kill();
    // With pcscd gone the reader reports itself down, again and again, without a crash.
    let down = rx.recv_timeout(Duration::from_secs(30)).expect("a report");
    assert!(matches!(down, Err(ReadError::Reader(_))), "{down:?}");
    let _pcscd = Pcscd::start();
    let card = tap(URI, None, Duration::from_secs(3));
    assert_eq!(next_tap(&rx), Ok(Ok(URI.to_string())));
    card.join().unwrap();
}

/// The reader loop as lnvend runs it: a reader that pcscd lists is reported ready before any
/// card comes near it, so the payment screen offers the card from the first sale after a
/// start, not only after someone tapped one.
#[test]
fn a_connected_reader_is_ready_before_the_first_card() {
    use lnvend::nfc::reader::{spawn, NfcEvent, ReaderHealth};
    let _g = lock();
    let _pcscd = Pcscd::start();
    let (tx, rx) = mpsc::channel();
    spawn(Box::new(PcscReader::new()), false, move |e| {
        tx.send(e).is_ok()
    })
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(NfcEvent::Health(ReaderHealth::Ready)) => return,
            Ok(other) => seen.push(other),
            Err(_) => {}
        }
    }
    panic!("the reader was not reported ready within 20 s without a card; saw {seen:?}");
}

/// The whole machine with `reader = "pcsc"`: the first payment screen after the start says
/// "Scan the QR or tap your card", though no card was tapped yet.
#[tokio::test]
// The guard only makes the tests take turns with the one pcscd; nothing else takes it.
#[allow(clippy::await_holding_lock)]
async fn the_first_payment_screen_after_a_start_offers_the_card() {
    use lnvend::controller::Screen;
    let _g = lock();
    let _pcscd = Pcscd::start();
    let dir = tempfile::tempdir().unwrap();
    let mut m =
        common::TestMachine::start(&common::config(dir.path(), "[nfc]\nreader = \"pcsc\"\n"));
    m.wait_screen(Screen::Idle).await;
    m.tap(0);
    let v = m
        .wait_for(Duration::from_secs(20), "the card hint", |v| {
            v.screen == Screen::Payment && v.card.hint
        })
        .await;
    assert!(v.card.hint);
    m.shutdown().await;
}
