//! Operator mode: the PIN behind the hidden corner, its growing lockout, and the product
//! overrides the operator edits on the touchscreen.
//!
//! The PIN is stored only as a salted PBKDF2-SHA256 hash (`lnvend hash-pin` makes one) and
//! compared in constant time. Overrides (price and pour time per product) live in
//! `overrides.toml` in the data directory, written atomically (temp file, fsync, rename), so a
//! power cut leaves either the old or the new file, never half of one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Wrong PINs allowed before the first lockout.
pub const FREE_TRIES: u32 = 5;
/// The first lockout; each further wrong PIN doubles it, up to `MAX_LOCKOUT`.
pub const FIRST_LOCKOUT: Duration = Duration::from_secs(30);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(3600);
/// PBKDF2 rounds: about a tenth of a second on a Pi 3B.
pub const PIN_ROUNDS: u32 = 50_000;
/// The most rounds a configured hash may ask for: 20 times [`PIN_ROUNDS`], about two
/// seconds of one Pi 3B core per PIN attempt. Room for a stronger hash made elsewhere,
/// while a slipped digit or a hostile `pbkdf2-sha256$4000000000$…` (over two hours of
/// derivation) is refused at load instead of tying up a core for each attempt.
pub const MAX_PIN_ROUNDS: u32 = 1_000_000;

/// The shortest PIN `lnvend hash-pin` accepts. A 4-digit PIN's hash falls to an offline
/// search in minutes; six digits make that a thousand times longer. Hashes of shorter PINs
/// made before this rule still work.
pub const MIN_NEW_PIN_DIGITS: usize = 6;
/// The longest PIN (the PIN pad takes this many digits).
pub const MAX_PIN_DIGITS: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PinHashError {
    #[error("a new PIN is 6 to 12 digits")]
    BadPin,
    #[error("not a PIN hash made by `lnvend hash-pin` (pbkdf2-sha256$rounds$salt$hash)")]
    BadHash,
    /// The count is no secret; the hash itself is never in the message.
    #[error("{rounds} PBKDF2 rounds is more than the {MAX_PIN_ROUNDS} a PIN check may take (about 2 s on a Pi 3B); make the hash with `lnvend hash-pin`")]
    TooManyRounds { rounds: u32 },
}

/// Hashes a PIN for the config file.
pub fn hash_pin(pin: &str) -> Result<String, PinHashError> {
    check_pin_shape(pin)?;
    if pin.len() < MIN_NEW_PIN_DIGITS {
        return Err(PinHashError::BadPin);
    }
    let salt: [u8; 16] = rand::random();
    Ok(format!(
        "pbkdf2-sha256${PIN_ROUNDS}${}${}",
        hex::encode(salt),
        hex::encode(derive(pin, &salt, PIN_ROUNDS))
    ))
}

fn check_pin_shape(pin: &str) -> Result<(), PinHashError> {
    if (4..=MAX_PIN_DIGITS).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PinHashError::BadPin)
    }
}

fn derive(pin: &str, salt: &[u8], rounds: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(pin.as_bytes(), salt, rounds, &mut out);
    out
}

/// A parsed PIN hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PinHash {
    rounds: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHash(<redacted>)")
    }
}

impl PinHash {
    pub fn parse(text: &str) -> Result<PinHash, PinHashError> {
        let mut parts = text.trim().split('$');
        if parts.next() != Some("pbkdf2-sha256") {
            return Err(PinHashError::BadHash);
        }
        let rounds: u32 = parts
            .next()
            .and_then(|r| r.parse().ok())
            .ok_or(PinHashError::BadHash)?;
        let salt = parts
            .next()
            .and_then(|s| hex::decode(s).ok())
            .ok_or(PinHashError::BadHash)?;
        let hash = parts
            .next()
            .and_then(|s| hex::decode(s).ok())
            .ok_or(PinHashError::BadHash)?;
        if parts.next().is_some() || rounds == 0 || salt.len() < 8 || hash.len() != 32 {
            return Err(PinHashError::BadHash);
        }
        if rounds > MAX_PIN_ROUNDS {
            return Err(PinHashError::TooManyRounds { rounds });
        }
        Ok(PinHash { rounds, salt, hash })
    }

    pub fn matches(&self, pin: &str) -> bool {
        use subtle_eq::ct_eq;
        check_pin_shape(pin).is_ok() && ct_eq(&derive(pin, &self.salt, self.rounds), &self.hash)
    }
}

mod subtle_eq {
    /// Compares without stopping at the first difference.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Wrong-PIN bookkeeping.
#[derive(Debug, Default, Clone)]
pub struct Lockout {
    failures: u32,
    until: Option<Instant>,
}

/// What a PIN attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinOutcome {
    Accepted,
    Wrong { tries_left: u32 },
    LockedOut { for_: Duration },
}

impl Lockout {
    /// The state after a restart with `failures` wrong PINs on record: past the free tries,
    /// the pad is locked again for the lockout those failures earned, from `now` (the
    /// monotonic clock starts anew at boot, so the lock starts anew too: never shorter).
    pub fn restore(failures: u32, now: Instant) -> Lockout {
        let until = (failures >= FREE_TRIES).then(|| now + lock_for(failures));
        Lockout { failures, until }
    }

    /// Wrong PINs since the last right one.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Checks `pin` unless locked out; `None` hash means operator mode is disabled.
    pub fn attempt(&mut self, hash: &PinHash, pin: &str, now: Instant) -> PinOutcome {
        match self.locked(now) {
            Some(outcome) => outcome,
            None => self.record(hash.matches(pin), now),
        }
    }

    /// The lockout in force at `now`, if any: then no PIN is even checked.
    pub fn locked(&self, now: Instant) -> Option<PinOutcome> {
        let until = self.until?;
        (now < until).then(|| PinOutcome::LockedOut { for_: until - now })
    }

    /// Books a PIN checked off the controller loop (`matched`: it was right) at `now`,
    /// which [`Lockout::locked`] found unlocked when the check began.
    pub fn record(&mut self, matched: bool, now: Instant) -> PinOutcome {
        if matched {
            self.failures = 0;
            self.until = None;
            return PinOutcome::Accepted;
        }
        self.failures += 1;
        if self.failures < FREE_TRIES {
            return PinOutcome::Wrong {
                tries_left: FREE_TRIES - self.failures,
            };
        }
        let lock = lock_for(self.failures);
        self.until = Some(now + lock);
        PinOutcome::LockedOut { for_: lock }
    }
}

/// The lockout `failures` wrong PINs earn (at least [`FREE_TRIES`]).
fn lock_for(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(FREE_TRIES).min(16);
    (FIRST_LOCKOUT * 2u32.pow(doublings)).min(MAX_LOCKOUT)
}

/// The operator's changes to one product, by index and name (a renamed product drops them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProductOverride {
    pub index: usize,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_sat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_fiat: Option<String>,
    pub pour_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, rename = "product")]
    pub products: Vec<ProductOverride>,
    /// Flow sensor calibrations made in the operator menu.
    #[serde(default, rename = "flow", skip_serializing_if = "Vec::is_empty")]
    pub flow: Vec<FlowOverride>,
}

/// A flow sensor's calibration from the operator menu's "Calibrate".
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlowOverride {
    pub channel: crate::pump::Channel,
    pub pulses_per_litre: f64,
}

pub fn overrides_path(data_dir: &Path) -> PathBuf {
    data_dir.join("overrides.toml")
}

#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Reads the overrides file; a missing file means no overrides.
pub fn load_overrides(path: &Path) -> Result<Overrides, OverridesError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| OverridesError::Invalid {
            path: path.display().to_string(),
            message: e.message().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Overrides::default()),
        Err(e) => Err(OverridesError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// Writes the overrides atomically: a temp file, fsync, rename, fsync of the directory.
pub fn save_overrides(path: &Path, overrides: &Overrides) -> Result<(), OverridesError> {
    use std::io::Write;
    let err = |source| OverridesError::Write {
        path: path.display().to_string(),
        source,
    };
    let text = toml::to_string_pretty(overrides).map_err(|e| OverridesError::Invalid {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let tmp = path.with_extension("toml.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(b"# Written by lnvend's operator menu. Edit the main config instead.\n")
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_hash_accepts_only_its_pin_and_never_prints_it() {
        let h = hash_pin("246813").unwrap();
        assert!(h.starts_with("pbkdf2-sha256$50000$"));
        assert!(!h.contains("246813"));
        let p = PinHash::parse(&h).unwrap();
        assert!(p.matches("246813"));
        assert!(!p.matches("246814"));
        assert!(!p.matches("2468130"));
        assert_eq!(format!("{p:?}"), "PinHash(<redacted>)");
        assert_eq!(hash_pin("12a456"), Err(PinHashError::BadPin));
        assert_eq!(
            hash_pin("12345"),
            Err(PinHashError::BadPin),
            "new PINs: 6 digits at least"
        );
        assert_eq!(hash_pin("1234567890123"), Err(PinHashError::BadPin));
        assert!(hash_pin("123456789012").is_ok());
        assert_eq!(PinHash::parse("sha1$1$00$00"), Err(PinHashError::BadHash));
        // A hostile round count is refused before any derivation, and its message holds
        // neither the salt nor the hash.
        let salt_and_hash = h.split_once("50000$").unwrap().1;
        let hostile = format!("pbkdf2-sha256$4000000000${salt_and_hash}");
        let e = PinHash::parse(&hostile).unwrap_err();
        assert_eq!(
            e,
            PinHashError::TooManyRounds {
                rounds: 4_000_000_000
            }
        );
        assert!(!e.to_string().contains(&salt_and_hash[..16]), "{e}");
        let most = format!("pbkdf2-sha256${MAX_PIN_ROUNDS}${salt_and_hash}");
        assert!(PinHash::parse(&most).is_ok());
        assert_ne!(hash_pin("246813").unwrap(), h, "salted");
        // The simulator's hash of a 4-digit PIN, made before the rule, still works.
        let old = include_str!("../examples/sim.toml")
            .lines()
            .find_map(|l| l.strip_prefix("operator_pin_hash = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap();
        assert!(PinHash::parse(old).unwrap().matches("1234"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_gives_no_fresh_tries() {
        let h = PinHash::parse(&hash_pin("123456").unwrap()).unwrap();
        let t = Instant::now();
        let mut l = Lockout::default();
        for _ in 0..FREE_TRIES {
            l.attempt(&h, "000000", t);
        }
        // Power cycle: a new Lockout from the recorded count, on a new monotonic clock.
        let mut again = Lockout::restore(l.failures(), t + Duration::from_secs(1));
        assert!(matches!(
            again.attempt(&h, "123456", t + Duration::from_secs(2)),
            PinOutcome::LockedOut { .. }
        ));
        let mut fresh = Lockout::restore(3, t);
        assert_eq!(
            fresh.attempt(&h, "000000", t),
            PinOutcome::Wrong { tries_left: 1 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn five_wrong_pins_lock_out_and_the_lockout_grows() {
        let h = PinHash::parse(&hash_pin("123456").unwrap()).unwrap();
        let mut l = Lockout::default();
        let t = Instant::now();
        for left in (1..FREE_TRIES).rev() {
            assert_eq!(
                l.attempt(&h, "0000", t),
                PinOutcome::Wrong { tries_left: left }
            );
        }
        assert_eq!(
            l.attempt(&h, "0000", t),
            PinOutcome::LockedOut {
                for_: FIRST_LOCKOUT
            }
        );
        // Even the right PIN is refused while locked out.
        assert!(matches!(
            l.attempt(&h, "123456", t + Duration::from_secs(10)),
            PinOutcome::LockedOut { .. }
        ));
        let t2 = t + FIRST_LOCKOUT;
        assert_eq!(
            l.attempt(&h, "0000", t2),
            PinOutcome::LockedOut {
                for_: FIRST_LOCKOUT * 2
            }
        );
        let t3 = t2 + FIRST_LOCKOUT * 2;
        assert_eq!(
            l.attempt(&h, "0000", t3),
            PinOutcome::LockedOut {
                for_: FIRST_LOCKOUT * 4
            }
        );
        let t4 = t3 + FIRST_LOCKOUT * 4;
        assert_eq!(l.attempt(&h, "123456", t4), PinOutcome::Accepted);
        assert_eq!(
            l.attempt(&h, "0000", t4),
            PinOutcome::Wrong { tries_left: 4 },
            "reset after success"
        );
    }

    #[test]
    fn overrides_are_saved_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = overrides_path(dir.path());
        assert_eq!(load_overrides(&path).unwrap(), Overrides::default());
        let o = Overrides {
            products: vec![ProductOverride {
                index: 0,
                name: "Cola".into(),
                price_sat: Some(2500),
                price_fiat: None,
                pour_ms: 4200,
            }],
            flow: vec![FlowOverride {
                channel: crate::pump::Channel::B,
                pulses_per_litre: 462.5,
            }],
        };
        save_overrides(&path, &o).unwrap();
        assert_eq!(load_overrides(&path).unwrap(), o);
        assert!(!path.with_extension("toml.tmp").exists());
        std::fs::write(&path, "[[product]]\nindex = 0\nnope = 1\n").unwrap();
        assert!(load_overrides(&path).is_err());
    }
}
