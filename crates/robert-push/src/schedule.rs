//! The daily schedule: when a token is pushed next (codes-and-push.md §8,
//! "Scheduler logic").
//!
//! Each token is pushed once a day at a random instant inside a window of
//! the phone's local wall-clock time, `[start_hour:00, end_hour:00)`, in the
//! token's IANA time zone. When `start_hour > end_hour` the window wraps past
//! midnight (e.g. 20:00–06:00 opens on one local day and closes on the next).
//!
//! The next push is a uniformly random second of the **first window that
//! opens after now**. Rescheduling from a push made inside a window therefore
//! always lands in the next day's window, and a push made late (the service
//! was down) can never be followed by a second one in the same window. A
//! registration at 07:00 with the default window is planned for today's
//! window (08:00–20:00), which has not opened yet.
//!
//! The reference ran an hour + minute draw and, in its REST service, forgot
//! the modulo 24 on wrapping windows (an exception, so a 500). Here the draw
//! is an offset of wall-clock seconds from the opening instant, added to the
//! local naive date-time (so it wraps into the next local day naturally), and
//! only then resolved in the time zone:
//!
//! * a local time that does not exist (the spring-forward gap) moves forward
//!   by the length of the gap, as a wall clock would show it;
//! * a local time that exists twice (the autumn fall-back) takes the earlier
//!   instant.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use rand::RngExt as _;

/// A daily window of local wall-clock hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    start_hour: u8,
    end_hour: u8,
}

/// Why a window is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("push window {start}:00–{end}:00: hours must be 0..=23 and differ")]
pub struct WindowError {
    start: u8,
    end: u8,
}

impl Window {
    /// A window from `start_hour:00` (inclusive) to `end_hour:00` (exclusive);
    /// `start_hour > end_hour` wraps past midnight.
    pub fn new(start_hour: u8, end_hour: u8) -> Result<Self, WindowError> {
        if start_hour > 23 || end_hour > 23 || start_hour == end_hour {
            return Err(WindowError {
                start: start_hour,
                end: end_hour,
            });
        }
        Ok(Self {
            start_hour,
            end_hour,
        })
    }

    /// The window's length in wall-clock seconds (1 to 23 hours).
    pub fn len_secs(&self) -> i64 {
        let hours = (i64::from(self.end_hour) - i64::from(self.start_hour)).rem_euclid(24);
        hours * 3600
    }

    /// The opening hour.
    pub fn start_hour(&self) -> u8 {
        self.start_hour
    }

    /// The closing hour (exclusive).
    pub fn end_hour(&self) -> u8 {
        self.end_hour
    }

    /// The local date of the last window that opened at or before `now`
    /// (by wall clock in `tz`).
    fn current_window_date(&self, now: DateTime<Utc>, tz: Tz) -> NaiveDate {
        let local = now.with_timezone(&tz).naive_local();
        (local - Duration::hours(i64::from(self.start_hour))).date()
    }

    /// The local wall-clock time at which the window of local day `date`
    /// opens, plus `offset_secs`.
    fn local_at(&self, date: NaiveDate, offset_secs: i64) -> NaiveDateTime {
        let opening =
            NaiveDateTime::new(date, NaiveTime::MIN) + Duration::hours(i64::from(self.start_hour));
        opening + Duration::seconds(offset_secs)
    }

    /// The next push: a random second of the first window that opens after
    /// `now` in time zone `tz`.
    pub fn next_push<R: rand::Rng + ?Sized>(
        &self,
        now: DateTime<Utc>,
        tz: Tz,
        rng: &mut R,
    ) -> DateTime<Utc> {
        let offset = rng.random_range(0..self.len_secs());
        self.next_push_at_offset(now, tz, offset)
    }

    /// [`Window::next_push`] with the random offset given (seconds after
    /// the opening, wall clock).
    pub fn next_push_at_offset(
        &self,
        now: DateTime<Utc>,
        tz: Tz,
        offset_secs: i64,
    ) -> DateTime<Utc> {
        let date = self.current_window_date(now, tz) + Duration::days(1);
        resolve(tz, self.local_at(date, offset_secs))
    }

    /// Whether `at` falls inside a window (local wall clock in `tz`).
    pub fn contains(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz).naive_local();
        let since_open =
            local - NaiveDateTime::new(self.current_window_date(at, tz), NaiveTime::MIN);
        let secs = since_open.num_seconds() - i64::from(self.start_hour) * 3600;
        (0..self.len_secs()).contains(&secs)
    }
}

impl Default for Window {
    /// 08:00–20:00, the reference scheduler's window.
    fn default() -> Self {
        Self {
            start_hour: 8,
            end_hour: 20,
        }
    }
}

/// Resolves a local wall-clock time to an instant: the earlier of two in a
/// fall-back overlap, and shifted forward by the gap in a spring-forward
/// (02:30 in a 02:00 → 03:00 jump is read with the offset in force before
/// the jump, which the wall clock shows as 03:30).
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return t.with_timezone(&Utc);
    }
    // In a gap: step back to the last wall-clock time before it (gaps are
    // at most a few hours; some zones moved by 30 or 15 minutes), then add
    // the step back.
    for step in 1..=48 {
        let back = Duration::minutes(15 * step);
        if let Some(t) = tz.from_local_datetime(&(local - back)).earliest() {
            return t.with_timezone(&Utc) + back;
        }
    }
    // Unreachable with real zone data; read the naive time as UTC rather
    // than fail.
    Utc.from_utc_datetime(&local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn invalid_windows_are_refused() {
        assert!(Window::new(8, 8).is_err());
        assert!(Window::new(24, 8).is_err());
        assert!(Window::new(8, 24).is_err());
        assert_eq!(Window::new(8, 20).unwrap().len_secs(), 12 * 3600);
        assert_eq!(Window::new(20, 6).unwrap().len_secs(), 10 * 3600);
        assert_eq!(Window::new(23, 0).unwrap().len_secs(), 3600);
    }

    #[test]
    fn next_push_is_tomorrows_window_in_the_phones_zone() {
        let w = Window::default();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        // 2024-03-14 10:00 UTC = 11:00 Paris (UTC+1): the next window opens
        // tomorrow at 08:00 Paris = 07:00 UTC.
        let now = utc("2024-03-14T10:00:00Z");
        assert_eq!(
            w.next_push_at_offset(now, paris, 0),
            utc("2024-03-15T07:00:00Z")
        );
        assert_eq!(
            w.next_push_at_offset(now, paris, 12 * 3600 - 1),
            utc("2024-03-15T18:59:59Z")
        );
        // Réunion is UTC+4: 10:00 UTC is 14:00 there.
        let reunion: Tz = "Indian/Reunion".parse().unwrap();
        assert_eq!(
            w.next_push_at_offset(now, reunion, 0),
            utc("2024-03-15T04:00:00Z")
        );
        // Before today's window has opened (07:00 Paris): today's window.
        let early = utc("2024-03-14T06:00:00Z");
        assert_eq!(
            w.next_push_at_offset(early, paris, 0),
            utc("2024-03-14T07:00:00Z")
        );
    }

    #[test]
    fn pushed_inside_a_window_the_next_is_the_next_days() {
        let w = Window::default();
        let tz: Tz = "America/New_York".parse().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut now = utc("2024-06-01T12:00:00Z");
        let mut last_date = None;
        for _ in 0..400 {
            let next = w.next_push(now, tz, &mut rng);
            assert!(next > now);
            assert!(w.contains(next, tz), "{next}");
            let date = next.with_timezone(&tz).date_naive();
            if let Some(d) = last_date {
                assert_eq!(date, d + Duration::days(1), "one push per local day");
            }
            last_date = Some(date);
            now = next;
        }
    }

    #[test]
    fn wrapping_windows_open_in_the_evening_and_close_next_morning() {
        let w = Window::new(20, 6).unwrap();
        let tz: Tz = "Europe/Paris".parse().unwrap();
        // 2024-03-14 12:00 Paris (11:00 UTC): the next window opens today
        // at 20:00 Paris (19:00 UTC); its last second is 05:59:59 tomorrow.
        let now = utc("2024-03-14T11:00:00Z");
        assert_eq!(
            w.next_push_at_offset(now, tz, 0),
            utc("2024-03-14T19:00:00Z")
        );
        assert_eq!(
            w.next_push_at_offset(now, tz, 10 * 3600 - 1),
            utc("2024-03-15T04:59:59Z")
        );
        // Pushed at 02:00 Paris (inside the window opened yesterday): the
        // next window opens tonight, not tomorrow night (no day skipped).
        let pushed = utc("2024-03-15T01:00:00Z");
        assert!(w.contains(pushed, tz));
        assert_eq!(
            w.next_push_at_offset(pushed, tz, 0),
            utc("2024-03-15T19:00:00Z")
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let next = w.next_push(pushed, tz, &mut rng);
            assert!(w.contains(next, tz), "{next}");
            assert!(next > pushed + Duration::hours(12));
        }
    }

    #[test]
    fn spring_forward_gap_moves_forward_and_fall_back_takes_the_earlier() {
        // Europe/Paris 2024-03-31: 02:00 → 03:00 (UTC+1 → UTC+2).
        let w = Window::new(1, 5).unwrap();
        let tz: Tz = "Europe/Paris".parse().unwrap();
        let now = utc("2024-03-30T12:00:00Z");
        // 01:00 local = 00:00 UTC.
        assert_eq!(
            w.next_push_at_offset(now, tz, 0),
            utc("2024-03-31T00:00:00Z")
        );
        // 02:30 local does not exist: the wall clock shows 03:30 = 01:30 UTC.
        assert_eq!(
            w.next_push_at_offset(now, tz, 5400),
            utc("2024-03-31T01:30:00Z")
        );
        // 03:00 local (UTC+2) = 01:00 UTC.
        assert_eq!(
            w.next_push_at_offset(now, tz, 7200),
            utc("2024-03-31T01:00:00Z")
        );
        // 2024-10-27: 03:00 → 02:00 (UTC+2 → UTC+1); 02:30 happens twice,
        // the earlier is 00:30 UTC.
        let now = utc("2024-10-26T12:00:00Z");
        assert_eq!(
            w.next_push_at_offset(now, tz, 5400),
            utc("2024-10-27T00:30:00Z")
        );
        // Every draw lands inside the window, on both days.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for now in [utc("2024-03-30T12:00:00Z"), utc("2024-10-26T12:00:00Z")] {
            for _ in 0..2000 {
                let t = w.next_push(now, tz, &mut rng);
                assert!(w.contains(t, tz), "{t}");
            }
        }
    }

    #[test]
    fn zones_far_from_utc_and_the_date_line() {
        let w = Window::default();
        let now = utc("2024-03-14T23:30:00Z");
        // Kiritimati is UTC+14: 13:30 on the 15th there; next window the 16th.
        let kiri: Tz = "Pacific/Kiritimati".parse().unwrap();
        assert_eq!(
            w.next_push_at_offset(now, kiri, 0),
            utc("2024-03-15T18:00:00Z")
        );
        // Pago Pago is UTC-11: 12:30 on the 14th; next window the 15th.
        let pago: Tz = "Pacific/Pago_Pago".parse().unwrap();
        assert_eq!(
            w.next_push_at_offset(now, pago, 0),
            utc("2024-03-15T19:00:00Z")
        );
    }
}
