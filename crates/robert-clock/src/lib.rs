//! The one clock of the workspace: the server, the code service and the
//! phone SDK read "now" through [`Clock`], so that tests and the simulator
//! control time without faking the operating system's clock.
//!
//! Time is kept in Unix milliseconds and read in the protocol's units
//! ([`NtpSeconds`], truncated to the second) or in Unix seconds. Three
//! clocks are written here, once:
//!
//! - [`SystemClock`]: the operating system's clock (production); nothing
//!   else in the workspace's services calls `SystemTime::now` for "now";
//! - [`OffsetClock`]: the system clock shifted by a settable offset (local
//!   demonstrations, the reference's libfaketime volume);
//! - [`ManualClock`]: a clock that only moves when told to (tests, the
//!   simulator); clones share one time, so one clock can drive a server, a
//!   code service and many phones.
//!
//! A clock also tells the local offset from UTC ([`Clock::utc_offset_secs`]),
//! which only the phone uses (notifications within local day hours); it is
//! 0 (UTC) unless set.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use robert_core::time::NtpSeconds;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_unix_millis(&self) -> i64;

    /// The current time in Unix seconds (rounded down).
    fn now_unix(&self) -> i64 {
        self.now_unix_millis().div_euclid(1000)
    }

    /// The current time in NTP seconds (truncated to the second).
    fn now_ntp(&self) -> NtpSeconds {
        NtpSeconds::from_unix(self.now_unix())
    }

    /// The offset of local time from UTC at `at`, in seconds (e.g. 7200 for
    /// Paris in summer). The default is UTC.
    fn utc_offset_secs(&self, at: NtpSeconds) -> i32 {
        let _ = at;
        0
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now_unix_millis(&self) -> i64 {
        (**self).now_unix_millis()
    }

    fn utc_offset_secs(&self, at: NtpSeconds) -> i32 {
        (**self).utc_offset_secs(at)
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's time in Unix milliseconds (negative before 1970;
/// saturating far outside the range of `i64`).
fn system_unix_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The operating system's clock, in UTC.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_millis(&self) -> i64 {
        system_unix_millis()
    }
}

/// The system clock shifted by a settable offset: the equivalent of the
/// reference's libfaketime volume (`robert serve` with
/// `server.clock_offset_secs`, `robert phone --clock-offset`), and tests
/// that move "now" back and forth. A server refuses requests from a phone
/// whose clock differs from its own, so both must use the same offset.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_millis: AtomicI64,
    utc_offset: AtomicI32,
}

impl OffsetClock {
    /// A clock `offset_secs` ahead of the system clock (behind if negative),
    /// in UTC.
    pub fn new(offset_secs: i64) -> Self {
        Self {
            offset_millis: AtomicI64::new(offset_secs.saturating_mul(1000)),
            utc_offset: AtomicI32::new(0),
        }
    }

    /// Sets the offset in seconds.
    pub fn set_offset_secs(&self, offset_secs: i64) {
        self.offset_millis
            .store(offset_secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Shifts the clock so that it now reads `unix_secs`.
    pub fn set_now_unix(&self, unix_secs: i64) {
        let offset = unix_secs
            .saturating_mul(1000)
            .saturating_sub(system_unix_millis());
        self.offset_millis.store(offset, Ordering::SeqCst);
    }

    /// The current offset in seconds.
    pub fn offset_secs(&self) -> i64 {
        self.offset_millis.load(Ordering::SeqCst).div_euclid(1000)
    }

    /// Sets the local offset from UTC in seconds.
    pub fn set_utc_offset(&self, secs: i32) {
        self.utc_offset.store(secs, Ordering::Relaxed);
    }
}

impl Clock for OffsetClock {
    fn now_unix_millis(&self) -> i64 {
        system_unix_millis().saturating_add(self.offset_millis.load(Ordering::Relaxed))
    }

    fn utc_offset_secs(&self, _at: NtpSeconds) -> i32 {
        self.utc_offset.load(Ordering::Relaxed)
    }
}

/// A clock that only moves when told to: deterministic tests and the
/// simulator.
///
/// Cloning shares the time (and the UTC offset), so one `ManualClock` can
/// drive many phones, or a server and a code service together.
#[derive(Clone, Default)]
pub struct ManualClock {
    unix_millis: Arc<AtomicI64>,
    utc_offset: Arc<AtomicI32>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("unix_millis", &self.unix_millis.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock stopped at `unix_secs`, in UTC.
    pub fn new(unix_secs: i64) -> Self {
        Self::at_unix_millis(unix_secs.saturating_mul(1000))
    }

    /// A clock stopped at `unix_millis`, in UTC.
    pub fn at_unix_millis(unix_millis: i64) -> Self {
        Self {
            unix_millis: Arc::new(AtomicI64::new(unix_millis)),
            utc_offset: Arc::new(AtomicI32::new(0)),
        }
    }

    /// A clock stopped at an NTP instant, in UTC.
    pub fn at_ntp(t: NtpSeconds) -> Self {
        Self::new(t.to_unix())
    }

    /// Sets the time in Unix milliseconds.
    pub fn set_unix_millis(&self, unix_millis: i64) {
        self.unix_millis.store(unix_millis, Ordering::SeqCst);
    }

    /// Sets the time in Unix seconds.
    pub fn set_unix(&self, unix_secs: i64) {
        self.set_unix_millis(unix_secs.saturating_mul(1000));
    }

    /// Sets the time from NTP seconds.
    pub fn set_ntp(&self, t: NtpSeconds) {
        self.set_unix(t.to_unix());
    }

    /// Moves the clock forward (or back, if negative) by `secs` seconds.
    pub fn advance_secs(&self, secs: i64) {
        self.advance_millis(secs.saturating_mul(1000));
    }

    /// Moves the clock forward (or back, if negative) by `millis`.
    pub fn advance_millis(&self, millis: i64) {
        self.unix_millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the local offset from UTC in seconds.
    pub fn set_utc_offset(&self, secs: i32) {
        self.utc_offset.store(secs, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_unix_millis(&self) -> i64 {
        self.unix_millis.load(Ordering::SeqCst)
    }

    fn utc_offset_secs(&self, _at: NtpSeconds) -> i32 {
        self.utc_offset.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_reads_in_every_unit() {
        let c = ManualClock::new(1_590_969_600);
        assert_eq!(c.now_ntp(), NtpSeconds(3_799_958_400));
        assert_eq!(c.now_unix_millis(), 1_590_969_600_000);
        c.advance_secs(-1);
        assert_eq!(c.now_unix(), 1_590_969_599);
        c.advance_millis(1500);
        assert_eq!(c.now_unix(), 1_590_969_600);
        assert_eq!(c.now_unix_millis(), 1_590_969_600_500);
        c.set_ntp(NtpSeconds(3_799_958_401));
        assert_eq!(c.now_unix(), 1_590_969_601);
        assert_eq!(ManualClock::at_ntp(NtpSeconds(7)).now_ntp(), NtpSeconds(7));
    }

    #[test]
    fn before_1970_rounds_down() {
        let c = ManualClock::at_unix_millis(-1);
        assert_eq!(c.now_unix(), -1);
        assert_eq!(c.now_ntp(), NtpSeconds(2_208_988_799));
    }

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let c = ManualClock::at_ntp(NtpSeconds(1000));
        let d = c.clone();
        c.advance_secs(5);
        assert_eq!(d.now_ntp(), NtpSeconds(1005));
        d.set_ntp(NtpSeconds(7));
        assert_eq!(c.now_ntp(), NtpSeconds(7));
        assert_eq!(d.utc_offset_secs(NtpSeconds(0)), 0);
        c.set_utc_offset(3600);
        assert_eq!(d.utc_offset_secs(NtpSeconds(0)), 3600);
        let shared: SharedClock = Arc::new(d);
        assert_eq!(Arc::clone(&shared).now_ntp(), NtpSeconds(7));
    }

    #[test]
    fn offset_clock_shifts_the_system_time() {
        let before = SystemClock.now_unix();
        let past = OffsetClock::new(-3600).now_unix();
        let future = OffsetClock::new(600).now_unix();
        let after = SystemClock.now_unix();
        assert!(past + 3600 >= before && past + 3600 <= after);
        assert!(future >= before + 600 && future <= after + 600);
        let o = OffsetClock::new(-86_400);
        assert_eq!(o.offset_secs(), -86_400);
        o.set_now_unix(1_000_000_000);
        assert!((o.now_unix() - 1_000_000_000).abs() <= 1);
        o.set_offset_secs(60);
        assert_eq!(o.offset_secs(), 60);
        assert_eq!(o.utc_offset_secs(NtpSeconds(0)), 0);
        o.set_utc_offset(-3600);
        assert_eq!(o.utc_offset_secs(NtpSeconds(0)), -3600);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_ntp() > NtpSeconds(3_799_958_400));
    }
}
