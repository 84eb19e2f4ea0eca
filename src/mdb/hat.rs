//! The Qibixx MDB Pi HAT's text protocol, cashless-device side: pure code, no IO.
//!
//! The HAT runs the MDB cashless state machine in its own firmware and talks to the Pi over
//! a serial line (115200 8N1) in short comma-separated ASCII lines. Commands to the HAT
//! start with a capital `C`, its reports with a lower-case `c`; `r,ACK` says the machine
//! polled the device (it comes all the time). The facts used here (from Qibixx's
//! cashless-slave, configuration and vending-session pages, and public projects' logs of a
//! real HAT):
//!
//! - `C,1` enables the cashless device (`C,0` disables it; each is echoed `c,1` / `c,0`);
//!   the HAT then reports `c,STATUS,INACTIVE`, `c,STATUS,DISABLED`, `c,STATUS,ENABLED`,
//!   and `c,STATUS,IDLE[,n]` while a session is open. `C,SETCONF,mdb-always-idle=1`, sent
//!   while the device is disabled (and again after every power-on: the HAT forgets it),
//!   lets the machine ask for a vend without a session started first (`c,SET,OK`);
//! - a selection on the machine's keypad arrives as `c,STATUS,VEND,<amount>,<item>`, the
//!   amount a decimal in the machine's currency (`15.19`) and the item its number;
//! - `C,VEND,<amount>` approves that vend, `C,VEND,-1` denies it, `C,STOP` ends a session
//!   no vend is asked in;
//! - the machine reports the result as `c,VEND,SUCCESS`, or `c,ERR,VEND 3` (failed); the
//!   customer cancelling on the keypad is `c,ERR,VEND 1`; other `c,ERR,…` lines (a `C,1`
//!   to a device already on: `c,ERR,"cashless is on"`) are not about a vend.
//!
//! Every line is bounded ([`MAX_LINE`]) and parsed strictly: anything else is `None`,
//! which the link ignores. A malformed line is never a vend.

use std::fmt;

/// The longest line the HAT sends, with room to spare: a longer one is noise, dropped.
pub const MAX_LINE: usize = 80;
/// The most decimals an amount may have (MDB scales prices by at most 10^4 here).
pub const MAX_DECIMALS: u8 = 4;

/// An amount in the machine's currency, exactly as it sent it: `units / 10^decimals`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineAmount {
    pub units: u64,
    pub decimals: u8,
}

impl MachineAmount {
    /// A decimal like `15.19` or `2`: digits only, one optional point, at most
    /// [`MAX_DECIMALS`] after it, no sign, no exponent, at most 9 digits in all.
    pub fn parse(s: &str) -> Option<MachineAmount> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !digits(int)
            || !digits(frac)
            || frac.len() > usize::from(MAX_DECIMALS)
            || int.len() + frac.len() > 9
            || (s.contains('.') && frac.is_empty())
        {
            return None;
        }
        let units = format!("{int}{frac}").parse().ok()?;
        Some(MachineAmount {
            units,
            decimals: frac.len() as u8,
        })
    }
}

impl fmt::Display for MachineAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.decimals == 0 {
            return write!(f, "{}", self.units);
        }
        let scale = 10u64.pow(u32::from(self.decimals));
        write!(
            f,
            "{}.{:0width$}",
            self.units / scale,
            self.units % scale,
            width = usize::from(self.decimals)
        )
    }
}

/// The cashless device's state as the HAT reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HatStatus {
    Inactive,
    Disabled,
    Enabled,
    /// A session is open (the machine shows credit, waits for a selection).
    Idle,
}

/// One line from the HAT, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HatLine {
    /// `r,ACK`: the machine polled the device (the HAT's steady keep-alive).
    Ack,
    /// `c,1` / `c,0`: the echo of enable / disable.
    Switched(bool),
    Status(HatStatus),
    /// `c,STATUS,VEND,<amount>,<item>`: the customer chose `item` at `amount`.
    VendRequest {
        amount: MachineAmount,
        item: u16,
    },
    /// `c,VEND,SUCCESS`: the machine dispensed.
    VendSuccess,
    /// `c,ERR,VEND <n>` (`VEND 3`: failed), or any other `c,VEND,…`: the vend failed or was
    /// refused (the text is for the log).
    VendFailed(String),
    /// `c,ERR,VEND 1`: the customer cancelled the session on the machine.
    SessionCancelled,
    /// Any other `c,ERR,…`: not about a vend (the text is for the log).
    Error(String),
}

/// A command to the HAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HatCommand {
    Enable,
    Disable,
    /// Approve the vend in progress for `amount` (the amount it asked).
    Approve(MachineAmount),
    /// Deny the vend the machine asked for (`C,VEND,-1`).
    Deny,
    /// End a session no vend is asked in (`C,STOP`).
    Stop,
    /// Let the machine ask for vends without a session started first; sent only while the
    /// device is disabled.
    AlwaysIdle,
    /// The HAT's version query: harmless, and answered (`v,…`), so a HAT whose machine
    /// is quiet still says something within the silence limit.
    Probe,
}

impl HatCommand {
    /// The line to send, without its line end.
    pub fn line(&self) -> String {
        match self {
            HatCommand::Enable => "C,1".into(),
            HatCommand::Disable => "C,0".into(),
            HatCommand::Approve(a) => format!("C,VEND,{a}"),
            HatCommand::Deny => "C,VEND,-1".into(),
            HatCommand::Stop => "C,STOP".into(),
            HatCommand::AlwaysIdle => "C,SETCONF,mdb-always-idle=1".into(),
            HatCommand::Probe => "V".into(),
        }
    }
}

/// Whether `line` is the HAT's answer to [`HatCommand::Probe`] (`v,<version>`): proof it
/// is alive, nothing to act on.
pub fn is_version(line: &str) -> bool {
    let line = line.trim_end_matches(['\r', '\n']);
    line.len() <= MAX_LINE && line.is_ascii() && line.starts_with("v,")
}

/// Understands one line (without its line end). `None`: not a line lnvend acts on, or
/// malformed; it is ignored.
pub fn parse(line: &str) -> Option<HatLine> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.len() > MAX_LINE || !line.is_ascii() {
        return None;
    }
    let fields: Vec<&str> = line.split(',').collect();
    match fields.as_slice() {
        ["r", "ACK"] => Some(HatLine::Ack),
        ["c", "1"] => Some(HatLine::Switched(true)),
        ["c", "0"] => Some(HatLine::Switched(false)),
        ["c", "STATUS", "INACTIVE"] => Some(HatLine::Status(HatStatus::Inactive)),
        ["c", "STATUS", "DISABLED"] => Some(HatLine::Status(HatStatus::Disabled)),
        ["c", "STATUS", "ENABLED"] => Some(HatLine::Status(HatStatus::Enabled)),
        ["c", "STATUS", "IDLE"] => Some(HatLine::Status(HatStatus::Idle)),
        ["c", "STATUS", "IDLE", n]
            if !n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(HatLine::Status(HatStatus::Idle))
        }
        ["c", "STATUS", "VEND", amount, item] => {
            let amount = MachineAmount::parse(amount)?;
            if item.is_empty() || item.len() > 5 || !item.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // MDB's item numbers are 16 bits: a larger one fails to parse, and is ignored.
            let item: u16 = item.parse().ok()?;
            Some(HatLine::VendRequest { amount, item })
        }
        ["c", "VEND", "SUCCESS"] => Some(HatLine::VendSuccess),
        ["c", "VEND", rest @ ..] if !rest.is_empty() => Some(HatLine::VendFailed(rest.join(","))),
        ["c", "ERR", rest @ ..] if !rest.is_empty() => {
            let text = rest.join(",");
            let text = text.trim_matches('"');
            Some(if text == "VEND 1" {
                HatLine::SessionCancelled
            } else if text.starts_with("VEND") {
                HatLine::VendFailed(text.to_owned())
            } else {
                HatLine::Error(text.to_owned())
            })
        }
        _ => None,
    }
}

/// Splits the serial byte stream into bounded lines. A line longer than [`MAX_LINE`] is
/// dropped whole (up to its line end); the buffer never holds more than that.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
    /// Inside an overlong line: dropping until its end.
    skipping: bool,
    /// Overlong lines dropped since start.
    pub dropped: u64,
}

impl LineSplitter {
    /// Feeds `bytes`; every complete line (CR or LF ends one; empty lines are skipped).
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                if !self.skipping && !self.buf.is_empty() {
                    // Non-UTF-8 is noise: the parser sees it as malformed.
                    out.push(String::from_utf8_lossy(&self.buf).into_owned());
                }
                self.buf.clear();
                self.skipping = false;
            } else if !self.skipping {
                if self.buf.len() == MAX_LINE {
                    self.buf.clear();
                    self.skipping = true;
                    self.dropped += 1;
                } else {
                    self.buf.push(b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "hat_tests.rs"]
mod tests;
