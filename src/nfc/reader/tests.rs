use super::*;
use crate::nfc::virtual_card::VirtualNtag424;

const TAP: &str =
    "lnurlw://card.example.com/scan/abc?p=4E2E289D945A66BB13377A728884E867&c=E19CCB1FED8892CE";

#[test]
fn a_virtual_ntag_424_reads_as_its_url() {
    let mut card = VirtualNtag424::with_uri(TAP);
    assert_eq!(read_ndef_uri(&mut card).unwrap().unwrap(), TAP);
}

#[test]
fn a_url_longer_than_one_read_is_read_in_chunks() {
    let long = format!("lnurlw://card.example.com/{}?p=11&c=22", "x".repeat(300));
    let mut card = VirtualNtag424::with_uri(&long);
    assert_eq!(read_ndef_uri(&mut card).unwrap().unwrap(), long);
}

#[test]
fn a_card_removed_at_any_point_of_the_read_is_a_read_failure() {
    // SELECT, SELECT, NLEN, one chunk: removal before any of them.
    for n in 0..4 {
        let mut card = VirtualNtag424::with_uri(TAP).removed_after(n);
        assert_eq!(
            read_ndef_uri(&mut card),
            Err(ReadError::Removed),
            "after {n}"
        );
    }
}

#[test]
fn a_card_without_the_ndef_application_is_refused_with_its_status() {
    struct NoApp;
    impl ApduLink for NoApp {
        fn transmit(&mut self, _: &[u8]) -> Result<Vec<u8>, ReadError> {
            Ok(vec![0x6A, 0x82])
        }
    }
    assert_eq!(
        read_ndef_uri(&mut NoApp),
        Err(ReadError::Refused {
            step: "SELECT application",
            sw: "6A82".into()
        })
    );
}

#[test]
fn a_card_that_overfeeds_a_read_is_refused() {
    /// Answers every READ BINARY of the message with 200 bytes, whatever was asked.
    struct Flood(VirtualNtag424);
    impl ApduLink for Flood {
        fn transmit(&mut self, cmd: &[u8]) -> Result<Vec<u8>, ReadError> {
            if cmd[1] == 0xB0 && cmd[3] != 0 {
                let mut v = vec![0x41; 200];
                v.extend_from_slice(&[0x90, 0x00]);
                return Ok(v);
            }
            self.0.transmit(cmd)
        }
    }
    let r = read_ndef_uri(&mut Flood(VirtualNtag424::with_uri(TAP)));
    assert!(
        matches!(
            r,
            Err(ReadError::Refused {
                step: "READ BINARY",
                ..
            })
        ),
        "{r:?}"
    );
}

#[test]
fn an_empty_or_huge_nlen_is_not_a_bolt_card() {
    let mut empty = VirtualNtag424::with_file(vec![0, 0]);
    assert!(matches!(
        read_ndef_uri(&mut empty),
        Ok(Err(TapError::NotBoltCard(_)))
    ));
    let mut huge = VirtualNtag424::with_file(vec![0xFF, 0xFF, 0xD1]);
    assert!(matches!(
        read_ndef_uri(&mut huge),
        Ok(Err(TapError::NotBoltCard(_)))
    ));
}

#[test]
fn the_loop_reports_taps_and_health_and_survives_a_reader_restart() {
    let (mut reader, cards) = FakeReader::new();
    cards.send(Ok(Ok(TAP.into()))).unwrap();
    cards
        .send(Err(ReadError::Reader("pcscd gone".into())))
        .unwrap();
    cards
        .send(Err(ReadError::Reader("pcscd gone".into())))
        .unwrap();
    cards.send(Err(ReadError::Removed)).unwrap();
    cards
        .send(Ok(Ok("https://not.a.bolt/card".into())))
        .unwrap();
    drop(cards);
    let seen = std::sync::Mutex::new(Vec::new());
    let send = |e: NfcEvent| {
        let mut s = seen.lock().unwrap();
        s.push(e);
        s.len() < 100
    };
    run(&mut reader, &send, false, Duration::ZERO);
    let seen = seen.into_inner().unwrap();
    let url = CardUrl::from_card_uri(TAP, false).unwrap();
    let down = |why: &str| NfcEvent::Health(ReaderHealth::Down(why.into()));
    assert_eq!(
        seen,
        vec![
            NfcEvent::Health(ReaderHealth::Ready),
            NfcEvent::Tap(Ok(url)),
            down("pcscd gone"),
            // The fake opens again at once; its next wait fails again.
            NfcEvent::Health(ReaderHealth::Ready),
            down("pcscd gone"),
            NfcEvent::Health(ReaderHealth::Ready),
            NfcEvent::Tap(Err(TapError::Read(ReadError::Removed))),
            NfcEvent::Tap(Err(TapError::NotBoltCard(NdefError::NotBoltCard {
                scheme: "https".into()
            }))),
        ],
        "the loop ends once the reader is closed"
    );
}

#[test]
fn the_thread_ends_when_the_controller_is_gone() {
    let (reader, cards) = FakeReader::new();
    cards.send(Ok(Ok(TAP.into()))).unwrap();
    let handle = spawn(Box::new(reader), false, |_| false).unwrap();
    handle.join().unwrap();
    assert!(
        cards.send(Ok(Ok(TAP.into()))).is_err(),
        "the reader was dropped with its thread"
    );
}

/// A reader is usable before any card is laid on it: the loop says so at once, so the
/// first payment screen after a start already offers the card (a reader whose wait only
/// ends with a card, as PC/SC's does, must not keep the hint away until the first tap).
#[test]
fn a_present_reader_is_reported_ready_before_any_card() {
    let (reader, cards) = FakeReader::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = spawn(Box::new(reader), false, move |e| tx.send(e).is_ok()).unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok(NfcEvent::Health(ReaderHealth::Ready)),
        "no card was laid on the reader"
    );
    drop(cards);
    handle.join().unwrap();
}
