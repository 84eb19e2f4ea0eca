//! The MDB cashless device's vocabulary (level 1): the VMC's commands and the reader's
//! replies, as typed enums with encode and decode.
//!
//! Byte values follow the MDB/ICP cashless device section (version 3.0 and later; the level
//! 1 subset is unchanged through 4.2/4.3). Money is the raw 16-bit "scaled" value on the
//! wire, most significant byte first; what a unit is worth is set by the reader's own
//! [`ReaderConfig`] (scale factor and decimal places), so this layer never converts it.
//!
//! Decoding is strict and total: every length is checked against the command or reply it
//! claims to be, unknown codes are errors, and nothing indexes past the bytes it was given.
//! Level 2/3 extensions (revalue, always-idle, 32-bit money, optional features) decode as
//! [`DecodeError::Unsupported`], so a level 1 reader can decline them instead of guessing.

use super::frame::{self, FrameError, PeripheralBlock, VmcBlock, Word};
use thiserror::Error;

/// Which of the two cashless addresses a device answers on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// 0x10: cashless device #1.
    Cashless1,
    /// 0x60: cashless device #2.
    Cashless2,
}

impl Address {
    /// The address bits (the top five of the address byte; the low three carry the command).
    pub fn base(self) -> u8 {
        match self {
            Address::Cashless1 => 0x10,
            Address::Cashless2 => 0x60,
        }
    }
}

// Command offsets within the address byte.
const RESET: u8 = 0x00;
const SETUP: u8 = 0x01;
const POLL: u8 = 0x02;
const VEND: u8 = 0x03;
const READER: u8 = 0x04;
const REVALUE: u8 = 0x05;
const EXPANSION: u8 = 0x07;

/// The VMC's identity, sent with EXPANSION REQUEST ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmcId {
    pub manufacturer: [u8; 3],
    pub serial: [u8; 12],
    pub model: [u8; 12],
    /// Packed BCD, e.g. 0x0102 for 1.02.
    pub version: u16,
}

/// A command from the VMC to a cashless device (level 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Reset,
    /// SETUP 00: the VMC's feature level and display.
    SetupConfig {
        vmc_level: u8,
        columns: u8,
        rows: u8,
        display_info: u8,
    },
    /// SETUP 01: the machine's price range (scaled units).
    SetupPrices {
        max: u16,
        min: u16,
    },
    Poll,
    VendRequest {
        price: u16,
        item: u16,
    },
    VendCancel,
    VendSuccess {
        item: u16,
    },
    VendFailure,
    SessionComplete,
    /// The VMC reports a sale paid in cash (for the reader's audit).
    CashSale {
        price: u16,
        item: u16,
    },
    ReaderDisable,
    ReaderEnable,
    ReaderCancel,
    ExpansionRequestId(VmcId),
}

/// The reader's own configuration, sent as READER CONFIG DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// 1 for this implementation.
    pub level: u8,
    /// ISO 4217 numeric code in BCD with a leading 1, e.g. 0x1978 for EUR, 0x1840 for USD.
    pub country: u16,
    /// Every money value on the bus is multiplied by this…
    pub scale: u8,
    /// …and has this many decimal places.
    pub decimals: u8,
    /// Seconds the VMC should wait for an answer before it calls the reader dead.
    pub max_response_s: u8,
    /// Bit flags (refunds, multivend, display, cash sale); 0 for a plain level 1 reader.
    pub options: u8,
}

/// The reader's identity, sent as PERIPHERAL ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderId {
    pub manufacturer: [u8; 3],
    pub serial: [u8; 12],
    pub model: [u8; 12],
    pub version: u16,
}

/// The longest display message (a 2 x 16 display; the spec's ceiling for level 1).
pub const MAX_DISPLAY: usize = 32;

/// One reply from the reader. Several may share one block (e.g. JUST RESET after a poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    JustReset,
    ReaderConfig(ReaderConfig),
    /// Text for the VMC's display, for `tenths` tenths of a second. Must end its block,
    /// since its length is only known from the VMC's display size.
    DisplayRequest {
        tenths: u8,
        text: Vec<u8>,
    },
    BeginSession {
        funds: u16,
    },
    SessionCancelRequest,
    VendApproved {
        amount: u16,
    },
    VendDenied,
    EndSession,
    Cancelled,
    PeripheralId(ReaderId),
    Malfunction {
        code: u8,
    },
    OutOfSequence,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("bad MDB frame")]
    Frame(#[source] FrameError),
    #[error("command {command:#04x} (subcommand {sub:?}) is not supported at level 1")]
    Unsupported { command: u8, sub: Option<u8> },
    #[error("{what} carries {got} data bytes, expected {want}")]
    Length {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("unknown reply code {0:#04x}")]
    UnknownReply(u8),
    #[error("a display request must be the last reply in its block and carry 1 to {MAX_DISPLAY} bytes, got {0}")]
    Display(usize),
}

impl From<FrameError> for DecodeError {
    fn from(e: FrameError) -> Self {
        DecodeError::Frame(e)
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn exact(what: &'static str, data: &[u8], want: usize) -> Result<(), DecodeError> {
    if data.len() == want {
        Ok(())
    } else {
        Err(DecodeError::Length {
            what,
            got: data.len(),
            want,
        })
    }
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

impl Command {
    /// The command's offset and data bytes (without address or checksum).
    fn parts(&self) -> (u8, Vec<u8>) {
        let mut d = Vec::new();
        let off = match self {
            Command::Reset => RESET,
            Command::SetupConfig {
                vmc_level,
                columns,
                rows,
                display_info,
            } => {
                d.extend([0x00, *vmc_level, *columns, *rows, *display_info]);
                SETUP
            }
            Command::SetupPrices { max, min } => {
                d.push(0x01);
                d.extend(max.to_be_bytes());
                d.extend(min.to_be_bytes());
                SETUP
            }
            Command::Poll => POLL,
            Command::VendRequest { price, item } => {
                d.push(0x00);
                d.extend(price.to_be_bytes());
                d.extend(item.to_be_bytes());
                VEND
            }
            Command::VendCancel => {
                d.push(0x01);
                VEND
            }
            Command::VendSuccess { item } => {
                d.push(0x02);
                d.extend(item.to_be_bytes());
                VEND
            }
            Command::VendFailure => {
                d.push(0x03);
                VEND
            }
            Command::SessionComplete => {
                d.push(0x04);
                VEND
            }
            Command::CashSale { price, item } => {
                d.push(0x05);
                d.extend(price.to_be_bytes());
                d.extend(item.to_be_bytes());
                VEND
            }
            Command::ReaderDisable => {
                d.push(0x00);
                READER
            }
            Command::ReaderEnable => {
                d.push(0x01);
                READER
            }
            Command::ReaderCancel => {
                d.push(0x02);
                READER
            }
            Command::ExpansionRequestId(id) => {
                d.push(0x00);
                d.extend(id.manufacturer);
                d.extend(id.serial);
                d.extend(id.model);
                d.extend(id.version.to_be_bytes());
                EXPANSION
            }
        };
        (off, d)
    }

    /// The command as the VMC puts it on the bus to `to`.
    pub fn encode(&self, to: Address) -> Vec<Word> {
        let (off, data) = self.parts();
        frame::encode_vmc(to.base() | off, &data)
    }

    /// Decodes a command's data once its address byte is known to be ours.
    pub fn decode(offset: u8, data: &[u8]) -> Result<Command, DecodeError> {
        let sub = data.first().copied();
        let unsupported = || DecodeError::Unsupported {
            command: offset,
            sub,
        };
        match offset {
            RESET => exact("RESET", data, 0).map(|_| Command::Reset),
            POLL => exact("POLL", data, 0).map(|_| Command::Poll),
            SETUP => match sub {
                Some(0x00) => {
                    exact("SETUP CONFIG DATA", data, 5)?;
                    Ok(Command::SetupConfig {
                        vmc_level: data[1],
                        columns: data[2],
                        rows: data[3],
                        display_info: data[4],
                    })
                }
                // Level 3 "expanded currency" prices carry 10 bytes after the subcommand; only the 16-bit form here.
                Some(0x01) if data.len() == 11 => Err(unsupported()),
                Some(0x01) => {
                    exact("SETUP MAX/MIN PRICES", data, 5)?;
                    Ok(Command::SetupPrices {
                        max: be16(data, 1),
                        min: be16(data, 3),
                    })
                }
                _ => Err(unsupported()),
            },
            VEND => match sub {
                Some(0x00) => {
                    exact("VEND REQUEST", data, 5)?;
                    Ok(Command::VendRequest {
                        price: be16(data, 1),
                        item: be16(data, 3),
                    })
                }
                Some(0x01) => exact("VEND CANCEL", data, 1).map(|_| Command::VendCancel),
                Some(0x02) => {
                    exact("VEND SUCCESS", data, 3)?;
                    Ok(Command::VendSuccess {
                        item: be16(data, 1),
                    })
                }
                Some(0x03) => exact("VEND FAILURE", data, 1).map(|_| Command::VendFailure),
                Some(0x04) => exact("SESSION COMPLETE", data, 1).map(|_| Command::SessionComplete),
                Some(0x05) => {
                    exact("CASH SALE", data, 5)?;
                    Ok(Command::CashSale {
                        price: be16(data, 1),
                        item: be16(data, 3),
                    })
                }
                _ => Err(unsupported()),
            },
            READER => match sub {
                Some(0x00) => exact("READER DISABLE", data, 1).map(|_| Command::ReaderDisable),
                Some(0x01) => exact("READER ENABLE", data, 1).map(|_| Command::ReaderEnable),
                Some(0x02) => exact("READER CANCEL", data, 1).map(|_| Command::ReaderCancel),
                _ => Err(unsupported()),
            },
            EXPANSION => match sub {
                Some(0x00) => {
                    exact("EXPANSION REQUEST ID", data, 30)?;
                    Ok(Command::ExpansionRequestId(VmcId {
                        manufacturer: array(&data[1..]),
                        serial: array(&data[4..]),
                        model: array(&data[16..]),
                        version: be16(data, 28),
                    }))
                }
                _ => Err(unsupported()),
            },
            // REVALUE is level 2; 0x06 is unassigned.
            REVALUE => Err(unsupported()),
            _ => Err(unsupported()),
        }
    }
}

/// What a cashless device at `ours` makes of one block from the VMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromVmc {
    /// The VMC's ACK/RET/NAK to our last data reply (RET: send it again).
    Control(frame::Control),
    Command(Command),
    /// Addressed to another peripheral: stay silent.
    NotOurs {
        address: u8,
    },
}

/// Decodes a block from the VMC for the device at `ours`. Blocks for other addresses are
/// reported before their checksum is looked at, since their length is not ours to know.
pub fn decode_from_vmc(words: &[Word], ours: Address) -> Result<FromVmc, DecodeError> {
    if let Some(first) = words.first() {
        if first.mode && first.byte & 0xF8 != ours.base() {
            return Ok(FromVmc::NotOurs {
                address: first.byte,
            });
        }
    }
    match frame::decode_vmc(words)? {
        VmcBlock::Control(c) => Ok(FromVmc::Control(c)),
        VmcBlock::Command { address, data } => {
            Command::decode(address & 0x07, &data).map(FromVmc::Command)
        }
    }
}

/// The reader's answer to one command: a lone ACK, or data replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Ack,
    Replies(Vec<Reply>),
}

impl Reply {
    fn bytes(&self, d: &mut Vec<u8>) {
        match self {
            Reply::JustReset => d.push(0x00),
            Reply::ReaderConfig(c) => {
                d.extend([0x01, c.level]);
                d.extend(c.country.to_be_bytes());
                d.extend([c.scale, c.decimals, c.max_response_s, c.options]);
            }
            Reply::DisplayRequest { tenths, text } => {
                d.extend([0x02, *tenths]);
                d.extend(text.iter().take(MAX_DISPLAY));
            }
            Reply::BeginSession { funds } => {
                d.push(0x03);
                d.extend(funds.to_be_bytes());
            }
            Reply::SessionCancelRequest => d.push(0x04),
            Reply::VendApproved { amount } => {
                d.push(0x05);
                d.extend(amount.to_be_bytes());
            }
            Reply::VendDenied => d.push(0x06),
            Reply::EndSession => d.push(0x07),
            Reply::Cancelled => d.push(0x08),
            Reply::PeripheralId(id) => {
                d.push(0x09);
                d.extend(id.manufacturer);
                d.extend(id.serial);
                d.extend(id.model);
                d.extend(id.version.to_be_bytes());
            }
            Reply::Malfunction { code } => d.extend([0x0A, *code]),
            Reply::OutOfSequence => d.push(0x0B),
        }
    }
}

impl Response {
    /// The response as the reader puts it on the bus. Replies that would overflow the
    /// 36-byte block are dropped from the end (the state machine never queues that many).
    pub fn encode(&self) -> Vec<Word> {
        match self {
            Response::Ack => frame::encode_peripheral_ack(),
            Response::Replies(rs) if rs.is_empty() => frame::encode_peripheral_ack(),
            Response::Replies(rs) => {
                let mut d = Vec::new();
                for r in rs {
                    let mut one = Vec::new();
                    r.bytes(&mut one);
                    if d.len() + one.len() < frame::MAX_BLOCK {
                        d.extend(one);
                    }
                }
                frame::encode_peripheral(&d)
            }
        }
    }

    /// Decodes a reader's block (the VMC's side; also lets tests read what we sent).
    pub fn decode(words: &[Word]) -> Result<Response, DecodeError> {
        let data = match frame::decode_peripheral(words)? {
            PeripheralBlock::Ack => return Ok(Response::Ack),
            PeripheralBlock::Nak => return Err(DecodeError::Frame(FrameError::NotControl(0xFF))),
            PeripheralBlock::Data(d) => d,
        };
        let mut out = Vec::new();
        let mut rest: &[u8] = &data;
        while let Some((&code, tail)) = rest.split_first() {
            let (reply, used) = decode_one(code, tail)?;
            out.push(reply);
            rest = &tail[used..];
        }
        Ok(Response::Replies(out))
    }
}

/// Decodes one reply whose code is `code`; returns it and how many of `tail` it used.
fn decode_one(code: u8, tail: &[u8]) -> Result<(Reply, usize), DecodeError> {
    let need = |what: &'static str, n: usize| {
        if tail.len() >= n {
            Ok(())
        } else {
            Err(DecodeError::Length {
                what,
                got: tail.len(),
                want: n,
            })
        }
    };
    Ok(match code {
        0x00 => (Reply::JustReset, 0),
        0x01 => {
            need("READER CONFIG DATA", 7)?;
            let c = ReaderConfig {
                level: tail[0],
                country: be16(tail, 1),
                scale: tail[3],
                decimals: tail[4],
                max_response_s: tail[5],
                options: tail[6],
            };
            (Reply::ReaderConfig(c), 7)
        }
        0x02 => {
            let n = tail.len().saturating_sub(1);
            if tail.is_empty() || n == 0 || n > MAX_DISPLAY {
                return Err(DecodeError::Display(n));
            }
            let r = Reply::DisplayRequest {
                tenths: tail[0],
                text: tail[1..].to_vec(),
            };
            (r, tail.len())
        }
        0x03 => {
            need("BEGIN SESSION", 2)?;
            (
                Reply::BeginSession {
                    funds: be16(tail, 0),
                },
                2,
            )
        }
        0x04 => (Reply::SessionCancelRequest, 0),
        0x05 => {
            need("VEND APPROVED", 2)?;
            (
                Reply::VendApproved {
                    amount: be16(tail, 0),
                },
                2,
            )
        }
        0x06 => (Reply::VendDenied, 0),
        0x07 => (Reply::EndSession, 0),
        0x08 => (Reply::Cancelled, 0),
        0x09 => {
            need("PERIPHERAL ID", 29)?;
            let id = ReaderId {
                manufacturer: array(tail),
                serial: array(&tail[3..]),
                model: array(&tail[15..]),
                version: be16(tail, 27),
            };
            (Reply::PeripheralId(id), 29)
        }
        0x0A => {
            need("MALFUNCTION/ERROR", 1)?;
            (Reply::Malfunction { code: tail[0] }, 1)
        }
        0x0B => (Reply::OutOfSequence, 0),
        other => return Err(DecodeError::UnknownReply(other)),
    })
}

#[cfg(test)]
#[path = "cashless_tests.rs"]
mod tests;
