use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::nfc::virtual_card::VirtualNtag424;

const TAP: &str =
    "lnurlw://card.example.com/scan/abc?p=4E2E289D945A66BB13377A728884E867&c=E19CCB1FED8892CE";
const UID: [u8; 7] = [0x04, 0x51, 0x2A, 0x9A, 0x6B, 0x11, 0x90];

/// What the fake module has in its field and how it misbehaves.
#[derive(Default)]
struct Module {
    card: Option<VirtualNtag424>,
    /// InDataExchange answers left before the card leaves the field.
    leaves_after: Option<usize>,
    /// The answer to the n-th InDataExchange from now goes out with a wrong DCS.
    corrupt_exchange: Option<usize>,
    /// The module is unplugged: it never says it is ready.
    unplugged: bool,
    pending: VecDeque<Vec<u8>>,
    /// Every command code the host sent, in order.
    commands: Vec<(u8, Vec<u8>)>,
}

/// A fake PN532 transport answering frames as a module with (or without) a card on it.
#[derive(Clone, Default)]
struct FakePn532(Arc<Mutex<Module>>);

impl FakePn532 {
    fn with_card(card: VirtualNtag424) -> FakePn532 {
        let fake = FakePn532::default();
        fake.lay(card);
        fake
    }
    fn lay(&self, card: VirtualNtag424) {
        self.0.lock().unwrap().card = Some(card);
    }
    fn take_away(&self) {
        self.0.lock().unwrap().card = None;
    }
    fn module(&self) -> std::sync::MutexGuard<'_, Module> {
        self.0.lock().unwrap()
    }
    fn reader(&self) -> Pn532Reader {
        Pn532Reader::new(Box::new(self.clone()), "pn532-test")
    }
}

fn answer_frame(cmd: u8, payload: &[u8], corrupt: bool) -> Vec<u8> {
    let mut data = vec![TFI_PN532, cmd + 1];
    data.extend_from_slice(payload);
    let len = data.len() as u8;
    let mut f = vec![0x00, 0x00, 0xFF, len, len.wrapping_neg()];
    f.extend_from_slice(&data);
    let dcs = data
        .iter()
        .fold(0u8, |s, b| s.wrapping_add(*b))
        .wrapping_neg();
    f.push(if corrupt { dcs ^ 0x5A } else { dcs });
    f.push(0x00);
    f
}

impl Pn532Transport for FakePn532 {
    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let mut m = self.0.lock().unwrap();
        if frame == ACK {
            m.pending.clear();
            return Ok(());
        }
        // The host's frame must be one the real module would take.
        assert_eq!(&frame[..3], &[0x00, 0x00, 0xFF], "preamble");
        let len = frame[3] as usize;
        assert_eq!(frame[3].wrapping_add(frame[4]), 0, "LCS");
        let data = &frame[5..5 + len];
        let dcs = frame[5 + len];
        assert_eq!(data.iter().fold(dcs, |s, b| s.wrapping_add(*b)), 0, "DCS");
        assert_eq!(frame[6 + len], 0x00, "postamble");
        assert_eq!(data[0], TFI_HOST);
        let (cmd, params) = (data[1], data[2..].to_vec());
        m.commands.push((cmd, params.clone()));
        m.pending.push_back(ACK.to_vec());
        let mut corrupt = false;
        let payload = match cmd {
            CMD_SAM_CONFIGURATION | CMD_RF_CONFIGURATION => vec![],
            CMD_IN_LIST_PASSIVE_TARGET => match m.card {
                // NbTg 1, Tg 1, SENS_RES 0344, SEL_RES 20 (ISO 14443-4), the 7-byte UID.
                Some(_) => [&[1, 1, 0x03, 0x44, 0x20, 7][..], &UID].concat(),
                None => vec![0],
            },
            CMD_IN_DATA_EXCHANGE => {
                if let Some(n) = m.corrupt_exchange.as_mut() {
                    corrupt = *n == 0;
                    *n = n.wrapping_sub(1);
                }
                if m.leaves_after == Some(0) {
                    m.card = None;
                }
                if let Some(n) = m.leaves_after.as_mut() {
                    *n = n.saturating_sub(1);
                }
                match m.card.as_mut() {
                    // Status 00, then the card's response APDU.
                    Some(card) => [&[0x00][..], &card.answer(&params[1..])].concat(),
                    // Status 01: the card did not answer in time.
                    None => vec![0x01],
                }
            }
            CMD_IN_RELEASE => vec![0x00],
            other => panic!("the fake PN532 was sent command {other:02X}"),
        };
        m.pending.push_back(answer_frame(cmd, &payload, corrupt));
        Ok(())
    }

    fn wait_ready(&mut self, _: Duration) -> Result<bool, TransportError> {
        let m = self.0.lock().unwrap();
        Ok(!m.unplugged && !m.pending.is_empty())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let next = self
            .0
            .lock()
            .unwrap()
            .pending
            .pop_front()
            .unwrap_or_default();
        buf.fill(0);
        let n = next.len().min(buf.len());
        buf[..n].copy_from_slice(&next[..n]);
        Ok(())
    }
}

#[test]
fn a_command_frame_has_the_pn532_framing() {
    // GetFirmwareVersion, as the PN532 user manual writes it.
    assert_eq!(
        command_frame(0x02, &[]),
        [0x00, 0x00, 0xFF, 0x02, 0xFE, 0xD4, 0x02, 0x2A, 0x00]
    );
}

#[test]
fn a_tap_is_read_once_as_its_url() {
    let fake = FakePn532::with_card(VirtualNtag424::with_uri(TAP));
    let mut reader = fake.reader();
    assert_eq!(reader.poll_once(), Ok(Some(Ok(TAP.to_string()))));
    // The card left lying on the reader is not read (nor paid) again.
    assert_eq!(reader.poll_once(), Ok(None));
    assert_eq!(reader.poll_once(), Ok(None));
    fake.take_away();
    assert_eq!(reader.poll_once(), Ok(None));
    fake.lay(VirtualNtag424::with_uri(TAP));
    assert_eq!(reader.wait_for_card(), Ok(Ok(TAP.to_string())));
    // The module was configured once, and the card was asked with the NTAG 424's APDUs.
    let m = fake.module();
    let count = |c| m.commands.iter().filter(|(cmd, _)| *cmd == c).count();
    assert_eq!(count(CMD_SAM_CONFIGURATION), 1);
    let first_exchange = m.commands.iter().find(|(c, _)| *c == CMD_IN_DATA_EXCHANGE);
    assert_eq!(
        first_exchange.map(|(_, p)| p.clone()),
        Some([&[0x01][..], &crate::nfc::ndef::apdu::SELECT_APP].concat())
    );
}

#[test]
fn no_card_is_nothing() {
    let fake = FakePn532::default();
    let mut reader = fake.reader();
    for _ in 0..3 {
        assert_eq!(reader.poll_once(), Ok(None));
    }
    let m = fake.module();
    assert!(m.commands.iter().all(|(c, _)| *c != CMD_IN_DATA_EXCHANGE));
    // One ISO 14443A target at 106 kbps is what each round asks for.
    assert!(m
        .commands
        .iter()
        .any(|(c, p)| *c == CMD_IN_LIST_PASSIVE_TARGET && p == &[0x01, 0x00]));
}

#[test]
fn a_corrupt_checksum_frame_is_a_failed_read_then_the_card_reads() {
    for n in 0..4 {
        let fake = FakePn532::with_card(VirtualNtag424::with_uri(TAP));
        fake.module().corrupt_exchange = Some(n);
        let mut reader = fake.reader();
        assert!(
            matches!(reader.poll_once(), Err(ReadError::Garbled(_))),
            "corrupt answer {n}"
        );
        // Held again, the same card reads: the failure did not mark it as read.
        assert_eq!(reader.poll_once(), Ok(Some(Ok(TAP.to_string()))), "{n}");
    }
}

#[test]
fn a_card_removed_mid_read_is_a_failed_read() {
    // SELECT, SELECT, NLEN, one chunk: the card leaves before each of them.
    for n in 0..4 {
        let fake = FakePn532::with_card(VirtualNtag424::with_uri(TAP));
        fake.module().leaves_after = Some(n);
        let mut reader = fake.reader();
        assert_eq!(reader.poll_once(), Err(ReadError::Removed), "after {n}");
        assert_eq!(reader.poll_once(), Ok(None), "gone after {n}");
    }
}

#[test]
fn an_unplugged_module_is_a_reader_failure_and_is_configured_again() {
    let fake = FakePn532::with_card(VirtualNtag424::with_uri(TAP));
    fake.module().unplugged = true;
    let mut reader = fake.reader();
    assert!(matches!(reader.poll_once(), Err(ReadError::Reader(_))));
    fake.module().unplugged = false;
    fake.module().pending.clear();
    assert_eq!(reader.poll_once(), Ok(Some(Ok(TAP.to_string()))));
}

#[test]
fn a_bad_frame_from_the_module_is_an_error_never_a_panic() {
    let good = answer_frame(CMD_IN_DATA_EXCHANGE, &[0x00, 0x90, 0x00], false);
    assert_eq!(
        parse_answer(&good, CMD_IN_DATA_EXCHANGE),
        Ok(vec![0x00, 0x90, 0x00])
    );
    for cut in 0..good.len() - 1 {
        assert!(
            parse_answer(&good[..cut], CMD_IN_DATA_EXCHANGE).is_err(),
            "{cut}"
        );
    }
    let mut bad_lcs = good.clone();
    bad_lcs[4] ^= 1;
    assert_eq!(
        parse_answer(&bad_lcs, CMD_IN_DATA_EXCHANGE),
        Err(FrameError::LengthChecksum)
    );
    let corrupt = answer_frame(CMD_IN_DATA_EXCHANGE, &[0x00, 0x90, 0x00], true);
    assert_eq!(
        parse_answer(&corrupt, CMD_IN_DATA_EXCHANGE),
        Err(FrameError::DataChecksum)
    );
    assert_eq!(
        parse_answer(&good, CMD_IN_LIST_PASSIVE_TARGET),
        Err(FrameError::WrongAnswer {
            got: 0x41,
            want: 0x4B
        })
    );
    assert_eq!(
        parse_answer(&[0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00], 0x40),
        Err(FrameError::ErrorFrame)
    );
    // Every byte value in every position of a short frame: errors only.
    for pos in 0..good.len() {
        for v in 0..=255u8 {
            let mut f = good.clone();
            f[pos] = v;
            let _ = parse_answer(&f, CMD_IN_DATA_EXCHANGE);
        }
    }
}
