//! The PC/SC reader backend (`[nfc] reader = "pcsc"`): any reader pcscd drives, such as an
//! ACR122U on USB. It waits for a card with `SCardGetStatusChange` and reads its NDEF file
//! through [`read_ndef_uri`]. A card is read once per time it is laid on the reader (a card
//! left lying there is not read again), so one tap is one read.
//!
//! pcscd may restart or be missing: every call that fails for that reason drops the context
//! and reports [`ReadError::Reader`], and the reader loop reconnects after a pause. A card
//! pulled away mid-read is [`ReadError::Removed`] (the screen says "try again").

use std::collections::HashMap;
use std::ffi::CString;
use std::time::Duration;

use pcsc::{Context, Disposition, Error, Protocols, ReaderState, Scope, ShareMode, State};

use super::reader::{read_ndef_uri, ApduLink, CardReader, ReadError, TapError};

/// How long one wait for a card lasts before the reader list is looked at again.
const WAIT: Duration = Duration::from_secs(1);

pub struct PcscReader {
    ctx: Option<Context>,
    /// Readers whose present card was read already, with pcscd's event count then: a card
    /// taken away and laid down again (even between two looks) changes the count.
    read: HashMap<CString, u32>,
}

impl PcscReader {
    pub fn new() -> PcscReader {
        PcscReader {
            ctx: None,
            read: HashMap::new(),
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
        ReadError::Reader(format!("pcscd: {e}"))
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

impl CardReader for PcscReader {
    fn wait_for_card(&mut self) -> Result<Result<String, TapError>, ReadError> {
        loop {
            let names = match self.context()?.list_readers_owned() {
                Ok(n) => n,
                Err(e) => return Err(self.service_error(e)),
            };
            if names.is_empty() {
                return Err(ReadError::Reader("no PC/SC reader is connected".into()));
            }
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
                        }
                    }
                    rs.sync_current_state();
                }
                if let Some((name, count)) = ready {
                    self.read.insert(name.clone(), count);
                    let card =
                        match self
                            .context()?
                            .connect(&name, ShareMode::Shared, Protocols::ANY)
                        {
                            Ok(c) => c,
                            Err(e) if is_removal(e) => return Err(ReadError::Removed),
                            Err(e) => return Err(self.service_error(e)),
                        };
                    let result = read_ndef_uri(&mut Link(&card));
                    let _ = card.disconnect(Disposition::LeaveCard);
                    if let Err(ReadError::Reader(_)) = &result {
                        self.ctx = None;
                        self.read.clear();
                    }
                    return result;
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
