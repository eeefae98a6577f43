//! The server's clock, injected so that tests (and the e2e suite's
//! "N days ago" steps) control time without faking the OS clock.
//!
//! Every handler and the batch read time through [`Clock`]; nothing in the
//! crate calls `SystemTime::now` except [`SystemClock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use robert_core::time::NtpSeconds;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_unix_millis(&self) -> i64;

    /// The current time in NTP seconds (truncated to the second).
    fn now_ntp(&self) -> NtpSeconds {
        NtpSeconds::from_unix(self.now_unix_millis().div_euclid(1000))
    }

    /// The current time in Unix seconds.
    fn now_unix(&self) -> i64 {
        self.now_unix_millis().div_euclid(1000)
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

fn system_unix_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_millis(&self) -> i64 {
        system_unix_millis()
    }
}

/// The system clock shifted by a settable offset, the equivalent of the
/// reference's libfaketime volume (server-api.md §7, §9 q13).
///
/// `robert serve` uses it when `server.clock_offset_secs` is set (testing
/// only: it logs a warning); tests use it to move "now" back and forth.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_millis: AtomicI64,
}

impl OffsetClock {
    /// A clock `offset_secs` ahead of the system clock (behind if negative).
    pub fn new(offset_secs: i64) -> Self {
        Self {
            offset_millis: AtomicI64::new(offset_secs.saturating_mul(1000)),
        }
    }

    /// Sets the offset in seconds.
    pub fn set_offset_secs(&self, offset_secs: i64) {
        self.offset_millis
            .store(offset_secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Shifts the clock so that it now reads `unix_secs`.
    pub fn set_now_unix(&self, unix_secs: i64) {
        let offset = unix_secs.saturating_mul(1000) - system_unix_millis();
        self.offset_millis.store(offset, Ordering::SeqCst);
    }

    /// The current offset in seconds.
    pub fn offset_secs(&self) -> i64 {
        self.offset_millis.load(Ordering::SeqCst).div_euclid(1000)
    }
}

impl Clock for OffsetClock {
    fn now_unix_millis(&self) -> i64 {
        system_unix_millis().saturating_add(self.offset_millis.load(Ordering::Relaxed))
    }
}

/// A clock that only moves when told to: deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    unix_millis: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `unix_secs`.
    pub fn new(unix_secs: i64) -> Self {
        Self {
            unix_millis: AtomicI64::new(unix_secs.saturating_mul(1000)),
        }
    }

    /// A clock stopped at an NTP instant.
    pub fn at_ntp(t: NtpSeconds) -> Self {
        Self::new(t.to_unix())
    }

    /// Sets the time.
    pub fn set_unix(&self, unix_secs: i64) {
        self.unix_millis
            .store(unix_secs.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Sets the time from NTP seconds.
    pub fn set_ntp(&self, t: NtpSeconds) {
        self.set_unix(t.to_unix());
    }

    /// Moves the clock forward (or back, if negative).
    pub fn advance_secs(&self, secs: i64) {
        self.unix_millis
            .fetch_add(secs.saturating_mul(1000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix_millis(&self) -> i64 {
        self.unix_millis.load(Ordering::SeqCst)
    }
}

/// Formats Unix milliseconds as ISO-8601 UTC with milliseconds
/// (`2023-01-13T10:00:00.123Z`), as `/api/v6/clock` returns it.
pub fn iso8601_millis(unix_millis: i64) -> String {
    let secs = unix_millis.div_euclid(1000);
    let millis = unix_millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let date = robert_core::time::UtcDate::from_days_since_unix_epoch(days);
    format!(
        "{date}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_format() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_673_604_000_123),
            "2023-01-13T10:00:00.123Z"
        );
        assert_eq!(iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn manual_and_offset_clocks() {
        let c = ManualClock::new(1_590_969_600);
        assert_eq!(c.now_ntp(), NtpSeconds(3_799_958_400));
        c.advance_secs(-1);
        assert_eq!(c.now_unix(), 1_590_969_599);
        let o = OffsetClock::new(-86_400);
        let diff = SystemClock.now_unix() - o.now_unix();
        assert!((86_399..=86_401).contains(&diff), "{diff}");
        o.set_now_unix(1_000_000_000);
        assert!((o.now_unix() - 1_000_000_000).abs() <= 1);
    }
}
