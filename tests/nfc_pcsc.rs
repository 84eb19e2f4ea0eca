//! The PC/SC reader against a real pcscd with the vsmartcard-vpcd virtual reader and a
//! virtual NTAG 424 DNA (tests/support/vpcd_card.rs): a tap is read as its URL, once; a card
//! pulled away mid-read is a read failure, not a hang, and the next card is read; and the
//! reader survives pcscd restarting. Needs pcscd, vsmartcard-vpcd and libpcsclite-dev (./scripts/deps).

#![cfg(feature = "pcsc")]

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
