//! Time source. Everything that reads "now" takes a [`Clock`] (the
//! workspace's one clock, from `robert-clock`), so tests can set the instant
//! (validity windows, DST transitions, expiry, purge) without sleeping.
//!
//! The service reasons in `chrono` instants: [`utc_now`] reads a clock as
//! one (to the millisecond), [`manual_at`] and [`set_manual`] set a
//! [`ManualClock`] from one.

use chrono::{DateTime, Utc};

pub use robert_clock::{Clock, ManualClock, SystemClock};

/// The clock's current instant, in UTC, to the millisecond.
pub fn utc_now<C: Clock + ?Sized>(clock: &C) -> DateTime<Utc> {
    let millis = clock.now_unix_millis();
    // `chrono` spans ±262,000 years; a clock beyond that saturates.
    DateTime::from_timestamp_millis(millis).unwrap_or(if millis < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// A manual clock stopped at `at` (to the millisecond).
pub fn manual_at(at: DateTime<Utc>) -> ManualClock {
    ManualClock::at_unix_millis(at.timestamp_millis())
}

/// Sets a manual clock to `at` (to the millisecond).
pub fn set_manual(clock: &ManualClock, at: DateTime<Utc>) {
    clock.set_unix_millis(at.timestamp_millis());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrono_instants_round_trip_to_the_millisecond() {
        let at = DateTime::from_timestamp_millis(1_767_225_600_123).unwrap();
        let clock = manual_at(at);
        assert_eq!(utc_now(&clock), at);
        clock.advance_secs(-2);
        assert_eq!(utc_now(&clock).timestamp_millis(), 1_767_225_598_123);
        set_manual(&clock, at);
        assert_eq!(utc_now(&clock), at);
        let dynamic: &dyn Clock = &clock;
        assert_eq!(utc_now(dynamic), at);
    }

    #[test]
    fn out_of_range_clocks_saturate() {
        assert_eq!(
            utc_now(&ManualClock::at_unix_millis(i64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            utc_now(&ManualClock::at_unix_millis(i64::MIN)),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
