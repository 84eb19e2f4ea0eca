//! The reader beside the screen, behind one small trait: [`CardReader`] waits for a card and
//! returns what its NDEF file says. The APDU sequence that reads an NTAG 424's NDEF file is
//! written once ([`read_ndef_uri`]) over an [`ApduLink`], so the PC/SC and PN532 backends
//! only move bytes. [`FakeReader`] is the trait's fake for tests and the simulator.
//!
//! A reader blocks (pcscd's `SCardGetStatusChange`, a PN532's IRQ wait), so it runs on an OS
//! thread of its own ([`spawn`]), never on the UI thread or the controller loop, and sends
//! what it reads as [`NfcEvent`]s.

use std::sync::mpsc;
use std::time::Duration;

use super::ndef::{self, apdu, CardUrl, NdefError};

/// One exchange of bytes with the card in the field.
pub trait ApduLink {
    /// Sends a command APDU and returns the response APDU (data then SW1 SW2).
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, ReadError>;
}

/// Why a tap could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The card left the field during the read: the customer should hold it again.
    #[error("the card was removed during the read")]
    Removed,
    /// The card answered, but not as an NTAG 424 with an NDEF file does.
    #[error("the card refused {step} (status {sw})")]
    Refused { step: &'static str, sw: String },
    /// The reader's own answer was garbled (a PN532 frame with a bad checksum): this read
    /// failed, the customer tries again.
    #[error("garbled answer from the reader: {0}")]
    Garbled(String),
    /// The reader or its service (pcscd) failed; the reader loop reconnects.
    #[error("reader: {0}")]
    Reader(String),
    /// The reader is gone for good (a virtual reader whose feed was dropped): the loop ends.
    #[error("the reader was closed")]
    Closed,
}

/// What a tap gave: the card's URL, or why not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    #[error("read failed: {0}")]
    Read(ReadError),
    #[error("not a Bolt Card: {0}")]
    NotBoltCard(NdefError),
}

/// The reader's state, for the payment screen's hint and the operator's Status tab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderHealth {
    /// No reader configured.
    Off,
    /// Connected and waiting for cards.
    Ready,
    /// Not usable right now (reason for the operator); the loop keeps trying.
    Down(String),
}

/// What the reader thread sends to the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NfcEvent {
    Tap(Result<CardUrl, TapError>),
    Health(ReaderHealth),
}

/// A reader: blocks until a card is in the field and returns its NDEF URI (or why not).
/// `Err(ReadError::Reader)` means the reader itself failed (the loop reports it and retries).
pub trait CardReader: Send {
    /// Connects to the reader, without waiting for a card: `Ok` once it is there and
    /// usable, `Err(ReadError::Reader)` if not. The loop reports the reader ready on `Ok`,
    /// so the payment screen offers the card before the first tap (a wait for a card can
    /// last all day). A reader with nothing to connect to is there as soon as it exists.
    fn open(&mut self) -> Result<(), ReadError> {
        Ok(())
    }
    fn wait_for_card(&mut self) -> Result<Result<String, TapError>, ReadError>;
    /// A short name for logs and the Status tab ("pcsc: ACS ACR122U", "pn532-i2c").
    fn describe(&self) -> String;
}

/// The largest READ BINARY a short APDU asks for in one go; the NTAG 424 accepts it.
const READ_CHUNK: u16 = 0x80;

/// Reads the NDEF URI of the NTAG 424 on `link`: SELECT the application, SELECT file E104,
/// READ BINARY the 2-byte NLEN, then the message in chunks.
pub fn read_ndef_uri(link: &mut dyn ApduLink) -> Result<Result<String, TapError>, ReadError> {
    expect_ok(link, &apdu::SELECT_APP, "SELECT application")?;
    expect_ok(link, &apdu::SELECT_NDEF_FILE, "SELECT file E104")?;
    let head = expect_ok(link, &apdu::read_binary(0, 2), "READ BINARY NLEN")?;
    let nlen = match head.as_slice() {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => {
            return Err(ReadError::Refused {
                step: "READ BINARY NLEN",
                sw: format!("{} bytes for 2", head.len()),
            })
        }
    };
    if nlen == 0 || nlen > ndef::MAX_NDEF_LEN {
        return Ok(Err(TapError::NotBoltCard(NdefError::Empty)));
    }
    let mut msg = Vec::with_capacity(nlen as usize);
    while (msg.len() as u16) < nlen {
        let want = (nlen - msg.len() as u16).min(READ_CHUNK) as u8;
        let offset = 2 + msg.len() as u16;
        let chunk = expect_ok(link, &apdu::read_binary(offset, want), "READ BINARY")?;
        if chunk.is_empty() || chunk.len() > want as usize {
            return Err(ReadError::Refused {
                step: "READ BINARY",
                sw: format!("{} bytes for {want}", chunk.len()),
            });
        }
        msg.extend_from_slice(&chunk);
    }
    Ok(ndef::parse_message(&msg).map_err(TapError::NotBoltCard))
}

fn expect_ok(
    link: &mut dyn ApduLink,
    command: &[u8],
    step: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let resp = link.transmit(command)?;
    match apdu::split(&resp) {
        Some((data, true)) => Ok(data.to_vec()),
        Some((_, false)) => Err(ReadError::Refused {
            step,
            sw: hex::encode_upper(&resp[resp.len() - 2..]),
        }),
        None => Err(ReadError::Refused {
            step,
            sw: "no status word".into(),
        }),
    }
}

/// How long the loop waits before reconnecting a failed reader (pcscd restarting, a loose
/// cable): long enough not to spin, short enough that the hint comes back quickly.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Runs `reader` on an OS thread of its own, sending every tap and health change to `send`.
/// Ends when `send` returns false (the controller is gone).
/// `insecure_http` is the `[nfc] allow_insecure_http` test switch.
pub fn spawn(
    mut reader: Box<dyn CardReader>,
    insecure_http: bool,
    send: impl Fn(NfcEvent) -> bool + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lnvend-nfc".into())
        .spawn(move || run(&mut *reader, &send, insecure_http, RECONNECT_DELAY))
}

/// The reader loop: one [`NfcEvent::Tap`] per card, health on every change. A reader that
/// is not known to be ready is opened first, and reported ready before the wait for a card.
pub fn run(
    reader: &mut dyn CardReader,
    send: &dyn Fn(NfcEvent) -> bool,
    insecure_http: bool,
    reconnect: Duration,
) {
    let mut health = ReaderHealth::Off;
    let mut last_down: Option<String> = None;
    loop {
        let opened = match health {
            ReaderHealth::Ready => Ok(()),
            ReaderHealth::Off | ReaderHealth::Down(_) => reader.open(),
        };
        let read = match opened {
            Ok(()) => {
                if health != ReaderHealth::Ready {
                    health = ReaderHealth::Ready;
                    if !send(NfcEvent::Health(health.clone())) {
                        return;
                    }
                }
                reader.wait_for_card()
            }
            Err(e @ (ReadError::Closed | ReadError::Reader(_))) => Err(e),
            // Whatever else stops the reader from opening is the reader being down.
            Err(e) => Err(ReadError::Reader(e.to_string())),
        };
        if read == Err(ReadError::Closed) {
            return;
        }
        if !matches!(read, Err(ReadError::Reader(_))) {
            // The reader worked: its next failure is news again.
            last_down = None;
        }
        let event = match read {
            Ok(read) => NfcEvent::Tap(read.and_then(|uri| {
                CardUrl::from_card_uri(&uri, insecure_http).map_err(TapError::NotBoltCard)
            })),
            Err(ReadError::Reader(why)) => {
                // Logged once per reason: a reader that opens and fails again at once
                // (Ready, Down, Ready…) does not fill the journal.
                if last_down.as_deref() != Some(why.as_str()) {
                    tracing::warn!(reader = %reader.describe(), reason = %why, "NFC reader unavailable");
                    last_down = Some(why.clone());
                }
                health = ReaderHealth::Down(why);
                // Sent on every retry (every `reconnect`), so the loop notices when the
                // controller is gone even while the reader stays down.
                if !send(NfcEvent::Health(health.clone())) {
                    return;
                }
                std::thread::sleep(reconnect);
                continue;
            }
            Err(e) => NfcEvent::Tap(Err(TapError::Read(e))),
        };
        if !send(event) {
            return;
        }
    }
}

/// The trait's fake: each `wait_for_card` takes the next scripted result, blocking until
/// one is given; when the script's sender is dropped the reader is closed.
pub struct FakeReader {
    script: mpsc::Receiver<Result<Result<String, TapError>, ReadError>>,
}

/// Feeds a [`FakeReader`].
pub type FakeCards = mpsc::Sender<Result<Result<String, TapError>, ReadError>>;

impl FakeReader {
    pub fn new() -> (FakeReader, FakeCards) {
        let (tx, rx) = mpsc::channel();
        (FakeReader { script: rx }, tx)
    }
}

impl CardReader for FakeReader {
    fn wait_for_card(&mut self) -> Result<Result<String, TapError>, ReadError> {
        self.script.recv().unwrap_or(Err(ReadError::Closed))
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}

#[cfg(test)]
mod tests;
