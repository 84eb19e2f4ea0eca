//! The one place that reads the clocks: the wall clock (invoice expiries, sale ids, the
//! ledger's records) and the monotonic clock (every duration the machine measures: the
//! payment countdown, the credit window, the PIN lockout, the pour), plus whether the wall
//! clock is known to be right.
//!
//! A Raspberry Pi 3B or 4 has no real-time clock: it boots with the last saved time, or
//! 1970, until NTP answers. Selling on such a clock would make wrong expiries, colliding
//! sale ids and a ledger with nonsense dates, so the machine sells nothing until the clock
//! is synchronised (see [`Clock::sync_problem`]). Machines with a real-time clock turn the
//! check off in the config (`[clock] require_sync = false`); even then a wall clock before
//! [`EARLIEST_PLAUSIBLE`] is never trusted.
//!
//! Everything is behind the small [`Clock`] trait, with [`FakeClock`] beside it, so tests
//! can jump the wall clock by hours or to 1970 and drop the sync.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// 2025-01-01 00:00 UTC: no lnvend sale can honestly be older.
pub const EARLIEST_PLAUSIBLE: u64 = 1_735_689_600;

/// systemd-timesyncd touches this file once the clock is synchronised (it is what
/// `systemd-time-wait-sync.service` waits for).
pub const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The wall clock.
    fn wall(&self) -> SystemTime;

    /// The monotonic clock (tokio's, so paused-time tests drive it).
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Why the wall clock cannot be trusted right now, or `None` when it can.
    fn sync_problem(&self) -> Option<String>;

    /// Seconds since the UNIX epoch (0 for a clock before 1970).
    fn unix(&self) -> u64 {
        unix_of(self.wall())
    }

    /// Microseconds since the UNIX epoch.
    fn unix_us(&self) -> i64 {
        unix_us_of(self.wall())
    }
}

/// Seconds from the UNIX epoch to `t` (0 for a time before 1970).
pub fn unix_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Microseconds from the UNIX epoch to `t` (0 before 1970, `i64::MAX` past year 294 000).
pub fn unix_us_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The system's wall clock in seconds since the epoch, for code that keeps no [`Clock`]
/// (memo expiries, webhook ages, record stamps); anything that decides whether to sell
/// goes through a [`Clock`] so tests can move it.
pub fn unix_now() -> u64 {
    unix_of(SystemTime::now())
}

/// The same in microseconds.
pub fn unix_now_us() -> i64 {
    unix_us_of(SystemTime::now())
}

/// A wall clock before [`EARLIEST_PLAUSIBLE`] is wrong whatever else says it is right.
fn implausible(unix: u64) -> Option<String> {
    (unix < EARLIEST_PLAUSIBLE).then(|| {
        format!("the wall clock says {unix} s after 1970, before 2025: it has not been set")
    })
}

/// The system's clocks.
#[derive(Debug)]
pub struct SystemClock {
    require_sync: bool,
    flag: PathBuf,
}

impl SystemClock {
    /// `require_sync`: sell only once the clock is known to be synchronised.
    pub fn new(require_sync: bool) -> SystemClock {
        SystemClock {
            require_sync,
            flag: PathBuf::from(TIMESYNCD_FLAG),
        }
    }

    /// The same, with another flag file than timesyncd's (tests).
    pub fn with_flag(require_sync: bool, flag: PathBuf) -> SystemClock {
        SystemClock { require_sync, flag }
    }
}

/// The kernel's view: `adjtimex` in read-only mode says whether an NTP daemon has
/// disciplined the clock. Under the unit's system-call filter (`@clock` refused) it fails,
/// and only the flag file is asked.
fn kernel_synchronised() -> Option<bool> {
    // SAFETY: `timex` is plain data; modes = 0 only reads the kernel's state.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sync_problem(&self) -> Option<String> {
        if let Some(p) = implausible(self.unix()) {
            return Some(p);
        }
        if !self.require_sync || self.flag.exists() || kernel_synchronised() == Some(true) {
            return None;
        }
        Some(format!(
            "the clock is not synchronised yet (no {} and the kernel reports no NTP sync); \
             machines with a real-time clock set [clock] require_sync = false",
            self.flag.display()
        ))
    }
}

/// For `check-config`: a machine that waits for time sync but whose time service can never
/// tell lnvend so. Under the unit's system-call filter (`@clock` refused, `adjtimex`
/// included) lnvend learns of a synchronised clock only from systemd-timesyncd's flag
/// file; chrony and ntpd never write it, so with either of them instead of timesyncd, and
/// with no time service at all, a machine left at `require_sync = true` waits forever.
/// `root` is `/` except in tests.
pub fn sync_source_warning(require_sync: bool, root: &std::path::Path) -> Option<String> {
    if !require_sync {
        return None;
    }
    let has = |paths: &[&str]| paths.iter().any(|p| root.join(p).exists());
    if has(&[
        "usr/lib/systemd/systemd-timesyncd",
        "lib/systemd/systemd-timesyncd",
    ]) {
        return None;
    }
    let other = ["usr/sbin/chronyd", "usr/sbin/ntpd", "usr/sbin/openntpd"]
        .into_iter()
        .find(|p| root.join(p).exists());
    let found = match other {
        Some(p) => format!("/{p} keeps the time here, but"),
        None => "no time service was found here, and".to_string(),
    };
    Some(format!(
        "clock.require_sync is on: {found} lnvend under its unit learns of a synchronised          clock only from systemd-timesyncd ({TIMESYNCD_FLAG}), so it would sell nothing;          install systemd-timesyncd, or set [clock] require_sync = false on a machine with a          real-time clock"
    ))
}

/// A clock for tests: the wall clock follows tokio's (paused) clock from a start time, can
/// jump by any amount, and its sync can be switched.
#[derive(Debug)]
pub struct FakeClock {
    start_wall: u64,
    start: Instant,
    /// Added to the wall clock, in seconds (a jump).
    offset_s: AtomicI64,
    synced: AtomicBool,
}

impl FakeClock {
    /// A synchronised clock whose wall time is `unix` seconds now.
    pub fn new(unix: u64) -> FakeClock {
        FakeClock {
            start_wall: unix,
            start: Instant::now(),
            offset_s: AtomicI64::new(0),
            synced: AtomicBool::new(true),
        }
    }

    /// Moves the wall clock by `seconds` (negative: back), as NTP stepping it would.
    pub fn jump(&self, seconds: i64) {
        self.offset_s.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Sets the wall clock to `unix` seconds now.
    pub fn set_unix(&self, unix: u64) {
        let now = self.unix() as i64;
        self.jump(unix as i64 - now);
    }

    pub fn set_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn wall(&self) -> SystemTime {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        let secs = (self.start_wall as i64)
            .saturating_add(self.offset_s.load(Ordering::SeqCst))
            .max(0) as u64;
        UNIX_EPOCH + Duration::from_secs(secs) + elapsed
    }

    fn sync_problem(&self) -> Option<String> {
        if let Some(p) = implausible(self.unix()) {
            return Some(p);
        }
        (!self.synced.load(Ordering::SeqCst)).then(|| "the clock is not synchronised".into())
    }
}

/// The monotonic instant at which a wall-clock UNIX time falls, as seen by `clock` now;
/// `now` if it is past, and never an overflow for an absurd time (it is capped at a day).
pub fn instant_of_unix(clock: &dyn Clock, unix: u64) -> Instant {
    let left = unix.saturating_sub(clock.unix()).min(24 * 3600);
    clock.now() + Duration::from_secs(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_is_zero_before_1970_and_exact_after() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(unix_of(before), 0);
        assert_eq!(unix_us_of(before), 0);
        let t = UNIX_EPOCH + Duration::from_micros(1_764_000_000_250_000);
        assert_eq!(unix_of(t), 1_764_000_000);
        assert_eq!(unix_us_of(t), 1_764_000_000_250_000);
        let (s, us) = (unix_now(), unix_now_us());
        assert!(s >= EARLIEST_PLAUSIBLE, "{s}");
        assert!((us / 1_000_000).abs_diff(s as i64) <= 60, "{us} vs {s}");
    }

    #[test]
    fn check_config_warns_when_no_time_service_can_ever_say_the_clock_is_synced() {
        let root = tempfile::tempdir().unwrap();
        let put = |p: &str| {
            let f = root.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"").unwrap();
        };
        let none = sync_source_warning(true, root.path()).expect("nothing keeps the time");
        assert!(none.contains("no time service"), "{none}");
        put("usr/sbin/chronyd");
        let chrony = sync_source_warning(true, root.path()).expect("chrony writes no flag");
        assert!(
            chrony.contains("/usr/sbin/chronyd") && chrony.contains("require_sync = false"),
            "{chrony}"
        );
        assert_eq!(
            sync_source_warning(false, root.path()),
            None,
            "not asked to wait"
        );
        put("lib/systemd/systemd-timesyncd");
        assert_eq!(
            sync_source_warning(true, root.path()),
            None,
            "timesyncd flags sync"
        );
    }

    #[test]
    fn a_clock_at_1970_is_never_trusted_even_without_the_sync_check() {
        let c = FakeClock::new(1_800_000_000);
        assert_eq!(c.sync_problem(), None);
        c.set_unix(0);
        assert!(c.sync_problem().unwrap().contains("not been set"));
        let sys = SystemClock::new(false);
        assert_eq!(
            sys.sync_problem(),
            None,
            "this machine's clock is after 2025"
        );
    }

    #[test]
    fn the_system_clock_waits_for_timesyncd_when_sync_is_required() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("synchronized");
        let c = SystemClock::with_flag(true, flag.clone());
        // This build machine's kernel may or may not report NTP sync; the flag decides
        // when it does not.
        if kernel_synchronised() != Some(true) {
            assert!(c.sync_problem().unwrap().contains("not synchronised"));
        }
        std::fs::write(&flag, "").unwrap();
        assert_eq!(c.sync_problem(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fake_wall_clock_follows_tokio_time_and_jumps() {
        let c = FakeClock::new(1_800_000_000);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(c.unix(), 1_800_000_010);
        c.jump(-3600);
        assert_eq!(c.unix(), 1_799_996_410);
        c.set_synced(false);
        assert!(c.sync_problem().is_some());
        // An absurd expiry is capped, not an overflow.
        let at = instant_of_unix(&c, u64::MAX);
        assert_eq!(at - c.now(), Duration::from_secs(24 * 3600));
        assert_eq!(instant_of_unix(&c, 5), c.now());
    }
}
