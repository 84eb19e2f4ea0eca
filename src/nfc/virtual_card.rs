//! A model of an NTAG 424 DNA's NDEF application, answering the ISO 7816-4 APDUs that
//! [`super::reader::read_ndef_uri`] sends: for the reader tests, the fake PN532 and the
//! simulator's "Tap card" buttons. It can leave the field after a given number of APDUs, as
//! a card pulled away mid-read does.

use super::ndef::apdu;
use super::reader::{ApduLink, ReadError};

/// The card: its NDEF file (NLEN then the message) and what is selected.
pub struct VirtualNtag424 {
    file: Vec<u8>,
    app_selected: bool,
    file_selected: bool,
    /// APDUs answered before the card leaves the field (`None`: it stays).
    remove_after: Option<usize>,
    answered: usize,
}

const OK: [u8; 2] = [0x90, 0x00];
const NOT_FOUND: [u8; 2] = [0x6A, 0x82];
const WRONG_PARAMS: [u8; 2] = [0x6B, 0x00];
const NOT_ALLOWED: [u8; 2] = [0x69, 0x86];
const NOT_SUPPORTED: [u8; 2] = [0x6D, 0x00];

impl VirtualNtag424 {
    /// A card whose NDEF file holds one URI record with `uri` (prefix code 0, as Bolt Cards
    /// are programmed).
    pub fn with_uri(uri: &str) -> VirtualNtag424 {
        VirtualNtag424::with_file(ndef_file_for_uri(uri))
    }

    /// A card with these exact NDEF file bytes.
    pub fn with_file(file: Vec<u8>) -> VirtualNtag424 {
        VirtualNtag424 {
            file,
            app_selected: false,
            file_selected: false,
            remove_after: None,
            answered: 0,
        }
    }

    /// The card leaves the field after answering `n` APDUs.
    pub fn removed_after(mut self, n: usize) -> VirtualNtag424 {
        self.remove_after = Some(n);
        self
    }

    /// The response APDU to `cmd`.
    pub fn answer(&mut self, cmd: &[u8]) -> Vec<u8> {
        if cmd == apdu::SELECT_APP {
            self.app_selected = true;
            self.file_selected = false;
            return OK.to_vec();
        }
        if cmd == apdu::SELECT_NDEF_FILE {
            if !self.app_selected {
                return NOT_FOUND.to_vec();
            }
            self.file_selected = true;
            return OK.to_vec();
        }
        if let [0x00, 0xB0, hi, lo, le] = *cmd {
            if !self.file_selected {
                return NOT_ALLOWED.to_vec();
            }
            let offset = u16::from_be_bytes([hi, lo]) as usize;
            let len = if le == 0 { 256 } else { le as usize };
            if offset >= self.file.len() {
                return WRONG_PARAMS.to_vec();
            }
            let end = (offset + len).min(self.file.len());
            let mut out = self.file[offset..end].to_vec();
            out.extend_from_slice(&OK);
            return out;
        }
        NOT_SUPPORTED.to_vec()
    }
}

impl ApduLink for VirtualNtag424 {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, ReadError> {
        if self.remove_after.is_some_and(|n| self.answered >= n) {
            return Err(ReadError::Removed);
        }
        self.answered += 1;
        Ok(self.answer(command))
    }
}

/// An NDEF file as an NTAG 424 holds it: NLEN, then one short URI record (prefix code 0),
/// or a long one when the URI does not fit in 255 bytes.
pub fn ndef_file_for_uri(uri: &str) -> Vec<u8> {
    let mut payload = vec![0x00];
    payload.extend_from_slice(uri.as_bytes());
    let mut msg = if payload.len() <= 255 {
        vec![0xD1, 0x01, payload.len() as u8]
    } else {
        let mut m = vec![0xC1, 0x01];
        m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        m
    };
    msg.push(b'U');
    msg.extend_from_slice(&payload);
    let mut file = (msg.len() as u16).to_be_bytes().to_vec();
    file.extend_from_slice(&msg);
    file
}
