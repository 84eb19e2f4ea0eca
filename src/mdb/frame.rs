//! MDB 9-bit framing: words, the checksum, and blocks in both directions.
//!
//! MDB runs at 9600 baud with 9 data bits. The ninth ("mode") bit marks a boundary: the VMC
//! sets it on the address byte that opens each command, and a peripheral sets it on the last
//! byte of its reply (the checksum, or a lone ACK/NAK). Everything else has it clear. This
//! module knows only that framing and the checksum; what the bytes mean is in
//! [`super::cashless`]. It owns the length bound (36 bytes per block), so nothing above it
//! ever sees an oversized or truncated block from a hostile bus.

use thiserror::Error;

/// The longest block the MDB spec allows, checksum included.
pub const MAX_BLOCK: usize = 36;

/// Acknowledge (VMC or peripheral).
pub const ACK: u8 = 0x00;
/// Retransmit request: only the VMC sends it, asking for the last reply again.
pub const RET: u8 = 0xAA;
/// Negative acknowledge: the block arrived damaged.
pub const NAK: u8 = 0xFF;

/// One 9-bit word on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    pub byte: u8,
    /// The ninth bit.
    pub mode: bool,
}

impl Word {
    pub const fn data(byte: u8) -> Self {
        Word { byte, mode: false }
    }
    pub const fn mode(byte: u8) -> Self {
        Word { byte, mode: true }
    }
    /// The word as the 9-bit value a UART in 9-bit mode carries (mode bit = bit 8).
    pub fn to_u16(self) -> u16 {
        u16::from(self.byte) | if self.mode { 0x100 } else { 0 }
    }
    /// From a 9-bit value; bits above the ninth are an error, not silently dropped.
    pub fn from_u16(v: u16) -> Result<Self, FrameError> {
        if v > 0x1FF {
            return Err(FrameError::NotNineBits(v));
        }
        Ok(Word {
            byte: (v & 0xFF) as u8,
            mode: v & 0x100 != 0,
        })
    }
}

/// The MDB checksum: the sum of the bytes, modulo 256.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b))
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("empty block")]
    Empty,
    #[error("block of {0} words is longer than the MDB limit of {MAX_BLOCK}")]
    TooLong(usize),
    #[error("9-bit word {0:#x} has bits above the ninth")]
    NotNineBits(u16),
    #[error("a VMC block must open with the mode bit set on its address byte")]
    NoAddress,
    #[error("mode bit set on word {0}, inside the block")]
    StrayModeBit(usize),
    #[error("a peripheral's reply must end with the mode bit set")]
    Unterminated,
    #[error("checksum {got:#04x}, expected {want:#04x}")]
    Checksum { got: u8, want: u8 },
    #[error("a lone byte {0:#04x} is neither ACK, RET nor NAK")]
    NotControl(u8),
}

/// What the VMC put on the bus, as a peripheral sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmcBlock {
    /// A lone byte without the mode bit, answering the peripheral's last data reply.
    Control(Control),
    /// An address byte and its data; the checksum is verified and removed.
    Command { address: u8, data: Vec<u8> },
}

/// A one-byte acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Ack,
    Ret,
    Nak,
}

impl Control {
    pub fn byte(self) -> u8 {
        match self {
            Control::Ack => ACK,
            Control::Ret => RET,
            Control::Nak => NAK,
        }
    }
    pub fn from_byte(b: u8) -> Result<Self, FrameError> {
        match b {
            ACK => Ok(Control::Ack),
            RET => Ok(Control::Ret),
            NAK => Ok(Control::Nak),
            other => Err(FrameError::NotControl(other)),
        }
    }
}

/// What a peripheral put on the bus, as the VMC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeripheralBlock {
    Ack,
    Nak,
    /// Reply bytes; the checksum is verified and removed.
    Data(Vec<u8>),
}

fn bounded(words: &[Word]) -> Result<(), FrameError> {
    if words.is_empty() {
        return Err(FrameError::Empty);
    }
    if words.len() > MAX_BLOCK {
        return Err(FrameError::TooLong(words.len()));
    }
    Ok(())
}

/// Splits `body` (everything but the last byte) from the checksum and checks it.
fn verify(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
    let (last, body) = bytes.split_last().ok_or(FrameError::Empty)?;
    let want = checksum(body);
    if *last != want {
        return Err(FrameError::Checksum { got: *last, want });
    }
    Ok(body.to_vec())
}

/// Encodes a VMC command: address byte with the mode bit, data, checksum without it.
pub fn encode_vmc(address: u8, data: &[u8]) -> Vec<Word> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.push(Word::mode(address));
    out.extend(data.iter().map(|b| Word::data(*b)));
    let sum = checksum(&[address]).wrapping_add(checksum(data));
    out.push(Word::data(sum));
    out
}

/// Encodes a VMC acknowledgement (a lone byte, mode bit clear).
pub fn encode_vmc_control(c: Control) -> Vec<Word> {
    vec![Word::data(c.byte())]
}

/// Decodes one block the VMC sent (as the bus layer cut it at the inter-byte gap).
pub fn decode_vmc(words: &[Word]) -> Result<VmcBlock, FrameError> {
    bounded(words)?;
    if words.len() == 1 && !words[0].mode {
        return Ok(VmcBlock::Control(Control::from_byte(words[0].byte)?));
    }
    if !words[0].mode {
        return Err(FrameError::NoAddress);
    }
    if let Some(i) = words.iter().skip(1).position(|w| w.mode) {
        return Err(FrameError::StrayModeBit(i + 1));
    }
    if words.len() < 2 {
        // An address byte alone has no checksum: the block was cut short.
        return Err(FrameError::Empty);
    }
    let bytes: Vec<u8> = words.iter().map(|w| w.byte).collect();
    let mut body = verify(&bytes)?;
    let address = body.remove(0);
    Ok(VmcBlock::Command {
        address,
        data: body,
    })
}

/// Encodes a peripheral's data reply: data, then the checksum with the mode bit.
/// An empty `data` is not a reply; send [`encode_peripheral_ack`] instead.
pub fn encode_peripheral(data: &[u8]) -> Vec<Word> {
    let mut out: Vec<Word> = data.iter().map(|b| Word::data(*b)).collect();
    out.push(Word::mode(checksum(data)));
    out
}

/// A peripheral's lone ACK: 0x00 with the mode bit (no checksum).
pub fn encode_peripheral_ack() -> Vec<Word> {
    vec![Word::mode(ACK)]
}

/// A peripheral's lone NAK: 0xFF with the mode bit.
pub fn encode_peripheral_nak() -> Vec<Word> {
    vec![Word::mode(NAK)]
}

/// Decodes one block a peripheral sent.
pub fn decode_peripheral(words: &[Word]) -> Result<PeripheralBlock, FrameError> {
    bounded(words)?;
    let (last, body) = words.split_last().ok_or(FrameError::Empty)?;
    if !last.mode {
        return Err(FrameError::Unterminated);
    }
    if let Some(i) = body.iter().position(|w| w.mode) {
        return Err(FrameError::StrayModeBit(i));
    }
    if body.is_empty() {
        return match last.byte {
            ACK => Ok(PeripheralBlock::Ack),
            NAK => Ok(PeripheralBlock::Nak),
            other => Err(FrameError::NotControl(other)),
        };
    }
    let bytes: Vec<u8> = words.iter().map(|w| w.byte).collect();
    Ok(PeripheralBlock::Data(verify(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a block as hex with `*` after each mode-bit byte, for readable assertions.
    fn show(words: &[Word]) -> String {
        words
            .iter()
            .map(|w| format!("{:02X}{}", w.byte, if w.mode { "*" } else { "" }))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn checksum_wraps_modulo_256() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[0x12]), 0x12);
        assert_eq!(checksum(&[0xFF, 0x02]), 0x01);
        // Published bill-validator enable (34 FF FF 00 00, checksum 32) from
        // github.com/perdidor/Arduino-MDB-UART, cmd_examples.txt:
        // 34h + FFh + FFh + 00h + 00h = 232h, low byte 32h.
        assert_eq!(checksum(&[0x34, 0xFF, 0xFF, 0x00, 0x00]), 0x32);
    }

    #[test]
    fn vmc_command_has_mode_bit_only_on_the_address() {
        // Cashless #1 POLL: 12* 12.
        assert_eq!(show(&encode_vmc(0x12, &[])), "12* 12");
        // VEND REQUEST for price 0x0064, item 0x0005: checksum 13+00+00+64+00+05 = 7C.
        assert_eq!(
            show(&encode_vmc(0x13, &[0x00, 0x00, 0x64, 0x00, 0x05])),
            "13* 00 00 64 00 05 7C"
        );
    }

    #[test]
    fn published_reset_sequence_round_trips() {
        // Bill validator RESET "3030" from perdidor/Arduino-MDB-UART cmd_examples.txt:
        // address 30h with the mode bit, then its checksum 30h.
        let words = [Word::mode(0x30), Word::data(0x30)];
        assert_eq!(
            decode_vmc(&words),
            Ok(VmcBlock::Command {
                address: 0x30,
                data: vec![]
            })
        );
        assert_eq!(encode_vmc(0x30, &[]), words);
    }

    #[test]
    fn vmc_block_round_trips_and_rejects_a_bad_checksum() {
        let words = encode_vmc(0x14, &[0x01]);
        assert_eq!(
            decode_vmc(&words),
            Ok(VmcBlock::Command {
                address: 0x14,
                data: vec![0x01]
            })
        );
        let mut bad = words.clone();
        bad[2].byte ^= 0x01;
        assert_eq!(
            decode_vmc(&bad),
            Err(FrameError::Checksum {
                got: 0x14,
                want: 0x15
            })
        );
    }

    #[test]
    fn vmc_control_bytes_are_lone_and_without_mode_bit() {
        for c in [Control::Ack, Control::Ret, Control::Nak] {
            assert_eq!(decode_vmc(&encode_vmc_control(c)), Ok(VmcBlock::Control(c)));
        }
        assert_eq!(
            decode_vmc(&[Word::data(0x42)]),
            Err(FrameError::NotControl(0x42))
        );
    }

    #[test]
    fn vmc_block_shape_errors() {
        assert_eq!(decode_vmc(&[]), Err(FrameError::Empty));
        assert_eq!(decode_vmc(&[Word::mode(0x12)]), Err(FrameError::Empty));
        assert_eq!(
            decode_vmc(&[Word::data(0x12), Word::data(0x12)]),
            Err(FrameError::NoAddress)
        );
        assert_eq!(
            decode_vmc(&[Word::mode(0x12), Word::mode(0x12)]),
            Err(FrameError::StrayModeBit(1))
        );
        let long = vec![Word::mode(0x13); MAX_BLOCK + 1];
        assert_eq!(decode_vmc(&long), Err(FrameError::TooLong(37)));
    }

    #[test]
    fn peripheral_reply_ends_with_mode_bit_on_checksum() {
        // BEGIN SESSION with funds 0x0100: 03 01 00, checksum 04 with the mode bit.
        assert_eq!(
            show(&encode_peripheral(&[0x03, 0x01, 0x00])),
            "03 01 00 04*"
        );
        assert_eq!(show(&encode_peripheral_ack()), "00*");
        assert_eq!(show(&encode_peripheral_nak()), "FF*");
    }

    #[test]
    fn peripheral_block_decodes_ack_nak_and_data() {
        assert_eq!(
            decode_peripheral(&encode_peripheral_ack()),
            Ok(PeripheralBlock::Ack)
        );
        assert_eq!(
            decode_peripheral(&encode_peripheral_nak()),
            Ok(PeripheralBlock::Nak)
        );
        // JUST RESET is a data reply 00 with checksum 00*, not a lone ACK.
        assert_eq!(
            decode_peripheral(&encode_peripheral(&[0x00])),
            Ok(PeripheralBlock::Data(vec![0x00]))
        );
        assert_eq!(
            decode_peripheral(&[Word::data(0x05), Word::data(0x05)]),
            Err(FrameError::Unterminated)
        );
        assert_eq!(
            decode_peripheral(&[Word::mode(0x05), Word::mode(0x05)]),
            Err(FrameError::StrayModeBit(0))
        );
        assert_eq!(
            decode_peripheral(&[Word::data(0x07), Word::mode(0x08)]),
            Err(FrameError::Checksum {
                got: 0x08,
                want: 0x07
            })
        );
        assert_eq!(
            decode_peripheral(&[Word::mode(0x33)]),
            Err(FrameError::NotControl(0x33))
        );
    }

    #[test]
    fn nine_bit_values_convert_both_ways() {
        assert_eq!(Word::mode(0x12).to_u16(), 0x112);
        assert_eq!(Word::from_u16(0x112), Ok(Word::mode(0x12)));
        assert_eq!(Word::from_u16(0x0AA), Ok(Word::data(0xAA)));
        assert_eq!(Word::from_u16(0x200), Err(FrameError::NotNineBits(0x200)));
    }

    #[test]
    fn hostile_blocks_never_panic() {
        // Every 1- to 3-word block over a spread of values and mode bits: decode returns.
        let vals = [0x000u16, 0x0AA, 0x0FF, 0x100, 0x112, 0x1FF, 0x013, 0x10A];
        for a in vals {
            for b in vals {
                for c in vals {
                    let w: Vec<Word> = [a, b, c]
                        .iter()
                        .map(|v| Word::from_u16(*v).unwrap())
                        .collect();
                    for n in 1..=3 {
                        let _ = decode_vmc(&w[..n]);
                        let _ = decode_peripheral(&w[..n]);
                    }
                }
            }
        }
    }
}
