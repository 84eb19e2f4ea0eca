//! The PN532 reader backend (`[nfc] reader = "pn532-i2c"` or `"pn532-spi"`): a PN532 module
//! wired to the Pi. This file owns the PN532's frame protocol (preamble, LEN/LCS, TFI, DCS,
//! ACK) and the three commands a Bolt Card needs: SAMConfiguration once, InListPassiveTarget
//! for an ISO 14443A card, and InDataExchange carrying the same ISO 7816-4 APDUs as the PC/SC
//! path (through [`read_ndef_uri`]). The bus itself is a [`Pn532Transport`]; the rppal I2C
//! and SPI transports are in `pn532_rppal`, the fake module with a card on it is in the tests.
//!
//! Everything the module sends is checked (both checksums, the TFI, the answer's command
//! code, the length against the buffer) before a byte of it is used: noise on the bus or a
//! flaky module makes a read fail, never a crash or a wrong URL.

use std::time::Duration;

use super::reader::{read_ndef_uri, ApduLink, CardReader, ReadError, TapError};

/// Why the bus to the module failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("i2c: {0}")]
    I2c(#[source] rppal::i2c::Error),
    #[error("spi: {0}")]
    Spi(#[source] rppal::spi::Error),
    /// A fake transport's own failure (tests).
    #[error("{0}")]
    Other(String),
}

/// The bus to a PN532: write a frame, wait until the module has something to say, read it.
pub trait Pn532Transport: Send {
    /// Sends one whole frame (preamble to postamble).
    fn write(&mut self, frame: &[u8]) -> Result<(), TransportError>;
    /// Waits up to `timeout` for the module's ready flag. `false`: not ready in time.
    fn wait_ready(&mut self, timeout: Duration) -> Result<bool, TransportError>;
    /// Reads `buf.len()` bytes of what the module has ready (without the bus's own status
    /// or direction byte). The module pads past its frame; the parser ignores the rest.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), TransportError>;
}

/// Host to PN532, PN532 to host.
const TFI_HOST: u8 = 0xD4;
const TFI_PN532: u8 = 0xD5;
const ACK: [u8; 6] = [0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00];

const CMD_SAM_CONFIGURATION: u8 = 0x14;
const CMD_RF_CONFIGURATION: u8 = 0x32;
const CMD_IN_DATA_EXCHANGE: u8 = 0x40;
const CMD_IN_LIST_PASSIVE_TARGET: u8 = 0x4A;
const CMD_IN_RELEASE: u8 = 0x52;

/// The longest normal information frame: 7 bytes of framing around LEN ≤ 255.
const MAX_FRAME: usize = 262;

/// How long the module may take to ACK a command.
const ACK_TIMEOUT: Duration = Duration::from_millis(100);
/// How long an answer may take: one polling round, or one APDU to the card.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(1000);
/// Pause between polling rounds that found no card: the module is not kept busy in a loop.
const POLL_PAUSE: Duration = Duration::from_millis(150);

/// Why a frame from the module cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no frame preamble")]
    NoPreamble,
    #[error("length checksum wrong")]
    LengthChecksum,
    #[error("data checksum wrong")]
    DataChecksum,
    #[error("frame longer than the bytes read")]
    Truncated,
    #[error("not an answer from the PN532 (TFI {0:02X})")]
    NotFromPn532(u8),
    #[error("answer to command {got:02X}, expected {want:02X}")]
    WrongAnswer { got: u8, want: u8 },
    #[error("error frame from the PN532")]
    ErrorFrame,
    #[error("no ACK from the PN532")]
    NoAck,
}

/// The normal information frame for `cmd` with `params`, host to PN532.
pub fn command_frame(cmd: u8, params: &[u8]) -> Vec<u8> {
    // LEN counts TFI + command + params; callers never pass more than an APDU.
    let len = (2 + params.len()).min(255) as u8;
    let mut f = Vec::with_capacity(params.len() + 9);
    f.extend_from_slice(&[0x00, 0x00, 0xFF, len, len.wrapping_neg(), TFI_HOST, cmd]);
    f.extend_from_slice(params);
    let sum = [TFI_HOST, cmd]
        .iter()
        .chain(params)
        .fold(0u8, |s, b| s.wrapping_add(*b));
    f.push(sum.wrapping_neg());
    f.push(0x00);
    f
}

/// The data of the module's answer to `cmd` (after TFI and the answer code `cmd + 1`).
pub fn parse_answer(bytes: &[u8], cmd: u8) -> Result<Vec<u8>, FrameError> {
    // Leading zeros are allowed before the start code 00 FF.
    let start = bytes
        .windows(2)
        .position(|w| w == [0x00, 0xFF])
        .ok_or(FrameError::NoPreamble)?;
    let rest = &bytes[start + 2..];
    let (&len, &lcs) = match rest {
        [len, lcs, ..] => (len, lcs),
        _ => return Err(FrameError::Truncated),
    };
    if len == 0x01 && lcs == 0xFF {
        return Err(FrameError::ErrorFrame);
    }
    if len.wrapping_add(lcs) != 0 {
        return Err(FrameError::LengthChecksum);
    }
    let body = rest
        .get(2..2 + len as usize + 1)
        .ok_or(FrameError::Truncated)?;
    let (data, dcs) = body.split_at(len as usize);
    let sum = data.iter().fold(dcs[0], |s, b| s.wrapping_add(*b));
    if sum != 0 {
        return Err(FrameError::DataChecksum);
    }
    match data {
        [TFI_PN532, code, payload @ ..] if *code == cmd.wrapping_add(1) => Ok(payload.to_vec()),
        [TFI_PN532, code, ..] => Err(FrameError::WrongAnswer {
            got: *code,
            want: cmd.wrapping_add(1),
        }),
        [tfi, ..] => Err(FrameError::NotFromPn532(*tfi)),
        [] => Err(FrameError::Truncated),
    }
}

/// Why one command to the module failed.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    #[error(transparent)]
    Bus(#[from] TransportError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("the PN532 did not answer in time")]
    Timeout,
}

/// A PN532 on some bus, read as a [`CardReader`].
pub struct Pn532Reader {
    bus: Box<dyn Pn532Transport>,
    name: String,
    configured: bool,
    /// The UID of the card read last while it stays in the field: a card left lying on the
    /// reader is read once, not once per polling round.
    present: Option<Vec<u8>>,
}

impl Pn532Reader {
    pub fn new(bus: Box<dyn Pn532Transport>, name: impl Into<String>) -> Pn532Reader {
        Pn532Reader {
            bus,
            name: name.into(),
            configured: false,
            present: None,
        }
    }

    /// One command: write, take the ACK, wait for and check the answer.
    fn command(&mut self, cmd: u8, params: &[u8]) -> Result<Vec<u8>, CommandError> {
        self.bus.write(&command_frame(cmd, params))?;
        if !self.bus.wait_ready(ACK_TIMEOUT)? {
            return Err(CommandError::Timeout);
        }
        let mut ack = [0u8; ACK.len()];
        self.bus.read(&mut ack)?;
        if ack != ACK {
            return Err(FrameError::NoAck.into());
        }
        if !self.bus.wait_ready(ANSWER_TIMEOUT)? {
            // An ACK from the host aborts the command, so the next one starts clean.
            self.bus.write(&ACK)?;
            return Err(CommandError::Timeout);
        }
        let mut buf = vec![0u8; MAX_FRAME];
        self.bus.read(&mut buf)?;
        Ok(parse_answer(&buf, cmd)?)
    }

    fn configure(&mut self) -> Result<(), CommandError> {
        // Normal mode (no SAM), no virtual-card timeout, IRQ pin used.
        self.command(CMD_SAM_CONFIGURATION, &[0x01, 0x00, 0x01])?;
        // MaxRetries: ATR 0xFF, PSL 0x01, passive activation 0x02, so that a polling round
        // with no card returns "no target" instead of waiting forever.
        self.command(CMD_RF_CONFIGURATION, &[0x05, 0xFF, 0x01, 0x02])?;
        Ok(())
    }

    /// One polling round: `None` when there is no card, or when the card in the field was
    /// read already; otherwise the read.
    pub fn poll_once(&mut self) -> Result<Option<Result<String, TapError>>, ReadError> {
        self.open()?;
        // One target, 106 kbps type A (ISO 14443A).
        let listed = self
            .command(CMD_IN_LIST_PASSIVE_TARGET, &[0x01, 0x00])
            .map_err(|e| self.bus_error(e))?;
        let uid = match listed.as_slice() {
            [0, ..] => {
                self.present = None;
                return Ok(None);
            }
            // NbTg, Tg, SENS_RES (2), SEL_RES, NFCIDLength, NFCID…
            [1, _tg, _, _, _, n, rest @ ..] if rest.len() >= *n as usize => {
                rest[..*n as usize].to_vec()
            }
            _ => {
                return Err(ReadError::Garbled(
                    "InListPassiveTarget answer malformed".into(),
                ))
            }
        };
        if self.present.as_deref() == Some(uid.as_slice()) {
            return Ok(None);
        }
        let read = read_ndef_uri(&mut Exchange(self));
        // Released whatever happened, so the next round starts clean; its failure shows then.
        let _ = self.command(CMD_IN_RELEASE, &[0x00]);
        match read {
            Ok(read) => {
                self.present = Some(uid);
                Ok(Some(read))
            }
            Err(e) => {
                self.present = None;
                Err(e)
            }
        }
    }

    /// A failure outside a card read: the module is configured again on the next round.
    fn bus_error(&mut self, e: CommandError) -> ReadError {
        self.configured = false;
        self.present = None;
        ReadError::Reader(format!("{}: {e}", self.name))
    }
}

/// The card in the field, through InDataExchange to target 1.
struct Exchange<'a>(&'a mut Pn532Reader);

impl ApduLink for Exchange<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut params = Vec::with_capacity(command.len() + 1);
        params.push(0x01);
        params.extend_from_slice(command);
        let answer = match self.0.command(CMD_IN_DATA_EXCHANGE, &params) {
            Ok(a) => a,
            Err(CommandError::Timeout) => return Err(ReadError::Removed),
            Err(CommandError::Frame(e)) => return Err(ReadError::Garbled(e.to_string())),
            Err(e @ CommandError::Bus(_)) => return Err(self.0.bus_error(e)),
        };
        match answer.split_first() {
            Some((0x00, resp)) => Ok(resp.to_vec()),
            // 01 timeout, 0x27/0x29 target gone or released, anything else: the card is not
            // answering any more, which for the customer is "hold it again".
            Some((_, _)) => Err(ReadError::Removed),
            None => Err(ReadError::Garbled("InDataExchange without status".into())),
        }
    }
}

impl CardReader for Pn532Reader {
    /// The module answers its configuration: ready.
    fn open(&mut self) -> Result<(), ReadError> {
        if !self.configured {
            self.configure().map_err(|e| self.bus_error(e))?;
            self.configured = true;
        }
        Ok(())
    }

    fn wait_for_card(&mut self) -> Result<Result<String, TapError>, ReadError> {
        loop {
            if let Some(read) = self.poll_once()? {
                return Ok(read);
            }
            std::thread::sleep(POLL_PAUSE);
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests;
