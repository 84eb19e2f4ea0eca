//! A Bolt Card for the tests: an NTAG 424 DNA's keys, UID and tap counter, making a fresh
//! SUN `p`/`c` for each tap as the real card's Secure Unique NFC message does (NXP AN12196,
//! boltcard's SPEC.md). Each tap hands out a [`VirtualNtag424`] holding that tap's URL, so
//! the same card can be read through the FakeReader, the virtual reader or vpcd. It lives in
//! test support because the machine itself never makes or checks `p`/`c`: the card's
//! service does.

#![allow(dead_code)]

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use cmac::{Cmac, Mac};
use lnvend::nfc::virtual_card::VirtualNtag424;

/// The fixed start of the SV2 session-vector (MAC session key, AN12196 §9.3.9.1).
const SV2_PREFIX: [u8; 6] = [0x3C, 0xC3, 0x00, 0x01, 0x00, 0x80];
/// The PICCData tag: UID and read counter mirrored.
const PICC_DATA_TAG: u8 = 0xC7;

/// `p`: AES-128 of one block, `C7 ‖ UID ‖ counter (little-endian) ‖ padding`, with K1 (CBC
/// with a zero IV on one block is this single block encryption).
pub fn sun_p(k1: &[u8; 16], uid: &[u8; 7], counter: u32, padding: [u8; 5]) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[0] = PICC_DATA_TAG;
    block[1..8].copy_from_slice(uid);
    block[8..11].copy_from_slice(&counter.to_le_bytes()[..3]);
    block[11..].copy_from_slice(&padding);
    let mut b = block.into();
    Aes128::new(k1.into()).encrypt_block(&mut b);
    b.into()
}

/// The PICCData inside `p`: (tag, UID, counter). For the tests that check `sun_p` against
/// the real-card vectors.
pub fn decrypt_p(k1: &[u8; 16], p: &[u8; 16]) -> (u8, [u8; 7], u32, [u8; 5]) {
    use aes::cipher::BlockDecrypt;
    let mut b = (*p).into();
    Aes128::new(k1.into()).decrypt_block(&mut b);
    let plain: [u8; 16] = b.into();
    let mut uid = [0u8; 7];
    uid.copy_from_slice(&plain[1..8]);
    let counter = u32::from_le_bytes([plain[8], plain[9], plain[10], 0]);
    let mut padding = [0u8; 5];
    padding.copy_from_slice(&plain[11..]);
    (plain[0], uid, counter, padding)
}

fn cmac(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let mut mac = <Cmac<Aes128> as Mac>::new_from_slice(key).expect("a 16-byte key");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The MAC session key: CMAC with K2 over `SV2 = 3CC300010080 ‖ UID ‖ counter`.
pub fn session_key(k2: &[u8; 16], uid: &[u8; 7], counter: u32) -> [u8; 16] {
    let mut sv2 = SV2_PREFIX.to_vec();
    sv2.extend_from_slice(uid);
    sv2.extend_from_slice(&counter.to_le_bytes()[..3]);
    cmac(k2, &sv2)
}

/// `c`: the odd-indexed bytes of the session key's CMAC over the empty message (the SUN
/// MAC is computed over no mirrored ASCII data in a Bolt Card's URL).
pub fn sun_c(k2: &[u8; 16], uid: &[u8; 7], counter: u32) -> [u8; 8] {
    let full = cmac(&session_key(k2, uid, counter), &[]);
    let mut c = [0u8; 8];
    for (i, b) in c.iter_mut().enumerate() {
        *b = full[2 * i + 1];
    }
    c
}

/// A card: its keys, UID, the counter of its last tap, and the URL it was programmed with
/// (everything before `?p=`).
pub struct SunCard {
    pub k1: [u8; 16],
    pub k2: [u8; 16],
    pub uid: [u8; 7],
    pub counter: u32,
    pub base_url: String,
}

impl SunCard {
    pub fn new(k1: [u8; 16], k2: [u8; 16], uid: [u8; 7], base_url: &str) -> SunCard {
        SunCard {
            k1,
            k2,
            uid,
            counter: 0,
            base_url: base_url.to_string(),
        }
    }

    /// The URL the card shows for counter `counter` (upper-case hex, as the card writes it).
    /// The padding is derived from the counter so a run is reproducible; a real card's is
    /// random, and no service may depend on it.
    pub fn uri_at(&self, counter: u32) -> String {
        let pad = (counter.wrapping_mul(0x9E37_79B9)).to_le_bytes();
        let p = sun_p(
            &self.k1,
            &self.uid,
            counter,
            [pad[0], pad[1], pad[2], pad[3], 0x5A],
        );
        let c = sun_c(&self.k2, &self.uid, counter);
        format!(
            "{}?p={}&c={}",
            self.base_url,
            hex::encode_upper(p),
            hex::encode_upper(c)
        )
    }

    /// One tap: the counter goes up, as the card raises it on every read in the field.
    pub fn tap_uri(&mut self) -> String {
        self.counter += 1;
        self.uri_at(self.counter)
    }

    /// The same URL again (a replay: a copy of an earlier tap's `p`/`c`).
    pub fn replay_uri(&self) -> String {
        self.uri_at(self.counter)
    }

    /// A tap whose `c` is wrong in its last byte: a forged or corrupted card.
    pub fn tap_uri_with_bad_cmac(&mut self) -> String {
        let mut uri = self.tap_uri();
        let last = uri.pop().expect("a hex digit");
        uri.push(if last == '0' { '1' } else { '0' });
        uri
    }

    /// One tap as a card in the field: the NTAG 424 model holding this tap's URL.
    pub fn tap(&mut self) -> VirtualNtag424 {
        VirtualNtag424::with_uri(&self.tap_uri())
    }
}

/// A reader with a card field the test controls: each card put in the field is read with
/// the NTAG 424 APDUs the real readers send ([`read_ndef_uri`]), then leaves. Run it with
/// `lnvend::nfc::reader::spawn`, as the machine runs a PC/SC reader.
///
/// [`read_ndef_uri`]: lnvend::nfc::reader::read_ndef_uri
pub struct CardField {
    cards: std::sync::mpsc::Receiver<VirtualNtag424>,
}

impl CardField {
    pub fn new() -> (CardField, std::sync::mpsc::Sender<VirtualNtag424>) {
        let (tx, rx) = std::sync::mpsc::channel();
        (CardField { cards: rx }, tx)
    }
}

impl lnvend::nfc::CardReader for CardField {
    fn wait_for_card(
        &mut self,
    ) -> Result<Result<String, lnvend::nfc::TapError>, lnvend::nfc::reader::ReadError> {
        match self.cards.recv() {
            Ok(mut card) => lnvend::nfc::reader::read_ndef_uri(&mut card),
            Err(_) => Err(lnvend::nfc::reader::ReadError::Closed),
        }
    }

    fn describe(&self) -> String {
        "test card field".into()
    }
}
