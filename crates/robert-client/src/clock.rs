//! The phone's clock, injectable so that a simulator can run thousands of
//! phones on virtual time.
//!
//! The SDK never reads the system time directly: every decision (current
//! EBID, HELLO time, request time, retention, schedules, notification hours)
//! asks the [`Clock`] given to [`crate::Phone`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use robert_core::time::NtpSeconds;

/// A source of the current time (NTP seconds) and of the local UTC offset.
pub trait Clock: Send + Sync {
    /// The current time, truncated to the second.
    fn now(&self) -> NtpSeconds;

    /// The offset of the phone's local time from UTC at `at`, in seconds
    /// (e.g. 7200 for Paris in summer). Used only to deliver notifications
    /// within local day hours. The default is UTC.
    fn utc_offset_secs(&self, at: NtpSeconds) -> i32 {
        let _ = at;
        0
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> NtpSeconds {
        (**self).now()
    }

    fn utc_offset_secs(&self, at: NtpSeconds) -> i32 {
        (**self).utc_offset_secs(at)
    }
}

/// The operating system's clock, with a fixed UTC offset.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock {
    /// Local offset from UTC in seconds.
    pub utc_offset_secs: i32,
}

impl SystemClock {
    /// The current system time in NTP seconds.
    pub fn now_ntp() -> NtpSeconds {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        NtpSeconds::from_unix(unix)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> NtpSeconds {
        Self::now_ntp()
    }

    fn utc_offset_secs(&self, _at: NtpSeconds) -> i32 {
        self.utc_offset_secs
    }
}

/// The operating system's clock shifted by a fixed number of seconds: for
/// local demonstrations that must not wait real time (`robert phone
/// --clock-offset`), together with a server shifted the same way. The
/// server refuses requests from a phone whose clock differs from its own,
/// so both must use the same offset.
#[derive(Clone, Copy, Debug, Default)]
pub struct OffsetClock {
    /// Seconds added to the system time (negative: in the past).
    pub offset_secs: i64,
    /// Local offset from UTC in seconds.
    pub utc_offset_secs: i32,
}

impl OffsetClock {
    /// The system clock shifted by `offset_secs`, in UTC.
    pub fn new(offset_secs: i64) -> Self {
        Self {
            offset_secs,
            utc_offset_secs: 0,
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> NtpSeconds {
        let now = SystemClock::now_ntp().get();
        let shifted = if self.offset_secs < 0 {
            now.saturating_sub(self.offset_secs.unsigned_abs())
        } else {
            now.saturating_add(self.offset_secs.unsigned_abs())
        };
        NtpSeconds(shifted)
    }

    fn utc_offset_secs(&self, _at: NtpSeconds) -> i32 {
        self.utc_offset_secs
    }
}

/// A clock that only moves when told to: for tests and simulators.
///
/// Cloning shares the time, so one `ManualClock` can drive many phones.
#[derive(Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
    offset: Arc<AtomicI32>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now.load(Ordering::Relaxed))
            .finish()
    }
}

impl ManualClock {
    /// A clock stopped at `now`, in UTC.
    pub fn new(now: NtpSeconds) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(now.get())),
            offset: Arc::new(AtomicI32::new(0)),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: NtpSeconds) {
        self.now.store(now.get(), Ordering::Relaxed);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.now.fetch_add(secs, Ordering::Relaxed);
    }

    /// Sets the local UTC offset in seconds.
    pub fn set_utc_offset(&self, secs: i32) {
        self.offset.store(secs, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> NtpSeconds {
        NtpSeconds(self.now.load(Ordering::Relaxed))
    }

    fn utc_offset_secs(&self, _at: NtpSeconds) -> i32 {
        self.offset.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let c = ManualClock::new(NtpSeconds(1000));
        let d = c.clone();
        c.advance(5);
        assert_eq!(d.now(), NtpSeconds(1005));
        d.set(NtpSeconds(7));
        assert_eq!(c.now(), NtpSeconds(7));
        c.set_utc_offset(3600);
        assert_eq!(d.utc_offset_secs(NtpSeconds(0)), 3600);
    }

    #[test]
    fn offset_clock_shifts_the_system_time() {
        let before = SystemClock::now_ntp().get();
        let past = OffsetClock::new(-3600).now().get();
        let future = OffsetClock::new(600).now().get();
        let after = SystemClock::now_ntp().get();
        assert!(past + 3600 >= before && past + 3600 <= after);
        assert!(future >= before + 600 && future <= after + 600);
        assert_eq!(OffsetClock::new(0).utc_offset_secs(NtpSeconds(0)), 0);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock::default().now() > NtpSeconds(3_799_958_400));
    }
}
