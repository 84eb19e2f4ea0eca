//! The PC/SC reader backend (`[nfc] reader = "pcsc"`): any reader pcscd drives, such as an
//! ACR122U on USB. It waits for a card with `SCardGetStatusChange` and reads its NDEF file
//! through [`read_ndef_uri`]. A card is read once per time it is laid on the reader (a card
//! left lying there is not read again), so one tap is one read.
//!
//! The reader is ready as soon as pcscd lists it ([`CardReader::open`]), so the payment
//! screen offers the card from the first sale after a start.
//!
//! pcscd may restart or be missing: every call that fails for that reason drops the context
//! and reports [`ReadError::Reader`], and the reader loop reconnects after a pause. A card
//! pulled away mid-read is [`ReadError::Removed`] (the screen says "try again").
//!
//! A read that fails that way while pcscd still reports a card present is tried again
//! (up to [`RETRIES`] times for one lay-down, [`RETRY_PAUSE`] apart), instead of counting
//! that card as read: the screen says "hold it still and try again", and a card that only
//! slipped in the field, or a card laid down so soon after the pulled one that pcscd never
//! saw the reader empty, must then be read without lifting it again. On vsmartcard's
//! virtual reader the second case is what happens: vpcd drops the pulled card's socket on
//! the failed APDU and answers the next presence poll with the next card's socket, so
//! pcscd's event count for the reader does not change between the two cards.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

use pcsc::{Context, Disposition, Error, Protocols, ReaderState, Scope, ShareMode, State};

use super::reader::{read_ndef_uri, ApduLink, CardReader, ReadError, TapError};

/// How long one wait for a card lasts before the reader list is looked at again.
const WAIT: Duration = Duration::from_secs(1);

/// Reads tried again after a failed one, for one card lying on the reader.
pub const RETRIES: u8 = 2;
/// The pause before a read is tried again: the card settles, and a card that is really
/// gone has time to show as gone.
pub const RETRY_PAUSE: Duration = Duration::from_millis(300);

pub struct PcscReader {
    ctx: Option<Context>,
    /// Readers whose present card was read already, with pcscd's event count then: a card
    /// taken away and laid down again (even between two looks) changes the count.
    read: HashMap<CString, u32>,
    /// Readers whose present card failed to read, with the event count and the retries
    /// made for it so far.
    failed: HashMap<CString, (u32, u8)>,
}

impl PcscReader {
    pub fn new() -> PcscReader {
        PcscReader {
            ctx: None,
            read: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    fn context(&mut self) -> Result<&Context, ReadError> {
        if self.ctx.is_none() {
            let ctx = Context::establish(Scope::User)
                .map_err(|e| ReadError::Reader(format!("pcscd: {e}")))?;
            self.ctx = Some(ctx);
        }
        self.ctx
            .as_ref()
            .ok_or_else(|| ReadError::Reader("pcscd: no context".into()))
    }

    /// Drops the context when the error says pcscd or the reader went away.
    fn service_error(&mut self, e: Error) -> ReadError {
        self.ctx = None;
        self.read.clear();
        self.failed.clear();
        ReadError::Reader(format!("pcscd: {e}"))
    }

    /// Connects to the card on `name` (event count `count`) and reads it, trying it again
    /// later if the read failed the way a moved card fails.
    fn read_card(
        &mut self,
        name: CString,
        count: u32,
    ) -> Result<Result<String, TapError>, ReadError> {
        let retry = self
            .failed
            .get(&name)
            .filter(|(c, _)| *c == count)
            .map(|&(_, n)| n);
        if retry.is_some() {
            std::thread::sleep(RETRY_PAUSE);
        }
        self.read.insert(name.clone(), count);
        let result = match self
            .context()?
            .connect(&name, ShareMode::Shared, Protocols::ANY)
        {
            Ok(card) => {
                let result = read_ndef_uri(&mut Link(&card));
                let _ = card.disconnect(Disposition::LeaveCard);
                result
            }
            Err(e) if is_removal(e) => Err(ReadError::Removed),
            Err(e) => return Err(self.service_error(e)),
        };
        match &result {
            Err(ReadError::Reader(_)) => {
                self.ctx = None;
                self.read.clear();
                self.failed.clear();
            }
            Err(ReadError::Removed | ReadError::Garbled(_)) => {
                let tries = retry.unwrap_or(0);
                if tries < RETRIES {
                    // Not read: the next look reads it again while it lies there.
                    self.read.remove(&name);
                    self.failed.insert(name, (count, tries + 1));
                } else {
                    self.failed.remove(&name);
                }
            }
            Ok(_) | Err(ReadError::Refused { .. } | ReadError::Closed) => {
                self.failed.remove(&name);
            }
        }
        result
    }
}

impl Default for PcscReader {
    fn default() -> Self {
        PcscReader::new()
    }
}

fn is_removal(e: Error) -> bool {
    matches!(
        e,
        Error::RemovedCard
            | Error::ResetCard
            | Error::NoSmartcard
            | Error::UnpoweredCard
            | Error::UnresponsiveCard
            | Error::UnsupportedCard
    )
}

/// One connected card.
struct Link<'a>(&'a pcsc::Card);

impl ApduLink for Link<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
        match self.0.transmit(command, &mut buf) {
            // A card that left the field can come back as an empty answer.
            Ok(resp) if resp.len() < 2 => Err(ReadError::Removed),
            Ok(resp) => Ok(resp.to_vec()),
            Err(e) if is_removal(e) => Err(ReadError::Removed),
            Err(e) => Err(ReadError::Reader(format!("pcscd: {e}"))),
        }
    }
}

impl PcscReader {
    /// The readers pcscd lists; none is the reader being down.
    fn reader_names(&mut self) -> Result<Vec<CString>, ReadError> {
        let names = match self.context()?.list_readers_owned() {
            Ok(n) => n,
            Err(e) => return Err(self.service_error(e)),
        };
        if names.is_empty() {
            return Err(ReadError::Reader("no PC/SC reader is connected".into()));
        }
        Ok(names)
    }
}

impl CardReader for PcscReader {
    /// pcscd answers and lists a reader: ready, though `wait_for_card` only returns with a
    /// card.
    fn open(&mut self) -> Result<(), ReadError> {
        self.reader_names().map(|_| ())
    }

    fn wait_for_card(&mut self) -> Result<Result<String, TapError>, ReadError> {
        loop {
            let names = self.reader_names()?;
            let mut states: Vec<ReaderState> = names
                .iter()
                .map(|n| ReaderState::new(n.clone(), State::UNAWARE))
                .collect();
            states.push(ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE));
            // The first call only learns the current states.
            let mut first = true;
            loop {
                let timeout = if first { Duration::ZERO } else { WAIT };
                let ctx = self.context()?;
                match ctx.get_status_change(timeout, &mut states) {
                    Ok(()) => {}
                    Err(Error::Timeout) if !first => break, // look at the reader list again
                    Err(Error::Timeout) => {}
                    Err(e) => return Err(self.service_error(e)),
                }
                first = false;
                let mut replug = false;
                let mut ready = None;
                for rs in &mut states {
                    let name = rs.name().to_owned();
                    if name.as_c_str() == pcsc::PNP_NOTIFICATION() {
                        if rs.event_state().contains(State::CHANGED) {
                            replug = true;
                        }
                    } else {
                        let ev = rs.event_state();
                        if ev.intersects(State::UNKNOWN | State::IGNORE) {
                            replug = true;
                        } else if ev.contains(State::PRESENT) && !ev.contains(State::MUTE) {
                            let count = rs.event_count();
                            if self.read.get(&name) != Some(&count) && ready.is_none() {
                                ready = Some((name, count));
                            }
                        } else {
                            self.read.remove(&name);
                            self.failed.remove(&name);
                        }
                    }
                    rs.sync_current_state();
                }
                if let Some((name, count)) = ready {
                    return self.read_card(name, count);
                }
                if replug {
                    break;
                }
            }
        }
    }

    fn describe(&self) -> String {
        "pcsc".into()
    }
}
