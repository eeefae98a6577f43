//! When to send the next status request (client-ble.md §3.8), and when to
//! show the "at risk" notification (§3.11). Pure: time and randomness are
//! arguments.
//!
//! Status polling follows the Android app's WorkManager job: a period
//! `checkStatusFrequency`, a uniformly random extra delay in
//! `[0, randomStatusHour]` drawn anew after each success, and a linear
//! back-off of `minStatusRetryDuration` per consecutive failure.

use rand::RngExt as _;
use rand_core::Rng;
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY};

/// Status polling parameters (server configuration keys in comments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusScheduleParams {
    /// `app.checkStatusFrequency`: period between successful requests.
    pub frequency_secs: u64,
    /// `app.randomStatusHour`: upper bound of the random extra delay.
    pub random_offset_secs: u64,
    /// `app.minStatusRetryDuration`: back-off step after a failure.
    pub min_retry_secs: u64,
    /// Longest back-off.
    pub max_backoff_secs: u64,
}

impl StatusScheduleParams {
    /// The 2022 configuration: every 8 h, +0–6 min, retry after 3 h.
    pub const TAC_2022: Self = Self {
        frequency_secs: 8 * 3600,
        random_offset_secs: 360,
        min_retry_secs: 3 * 3600,
        max_backoff_secs: SECONDS_PER_DAY,
    };

    /// The October 2020 configuration: every 3 h, +0–1 h, retry after 3 h.
    pub const STOPCOVID_2020_10: Self = Self {
        frequency_secs: 3 * 3600,
        random_offset_secs: 3600,
        min_retry_secs: 3 * 3600,
        max_backoff_secs: SECONDS_PER_DAY,
    };
}

impl Default for StatusScheduleParams {
    fn default() -> Self {
        Self::TAC_2022
    }
}

/// The polling state of one phone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusSchedule {
    /// Last successful status.
    pub last_success: Option<NtpSeconds>,
    /// Last attempt, successful or not.
    pub last_attempt: Option<NtpSeconds>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When the next request is due.
    pub next_due: NtpSeconds,
}

impl StatusSchedule {
    /// The schedule right after registration: first status after one period
    /// plus the random delay (the bundle covers several days).
    pub fn after_registration(
        now: NtpSeconds,
        params: &StatusScheduleParams,
        rng: &mut impl Rng,
    ) -> Self {
        Self {
            next_due: now.plus(params.frequency_secs + jitter(params, rng)),
            ..Self::default()
        }
    }

    /// Whether a request is due at `now`.
    pub fn is_due(&self, now: NtpSeconds) -> bool {
        now >= self.next_due
    }

    /// Records a success and draws the next due time.
    pub fn on_success(
        &mut self,
        now: NtpSeconds,
        params: &StatusScheduleParams,
        rng: &mut impl Rng,
    ) {
        self.last_success = Some(now);
        self.last_attempt = Some(now);
        self.consecutive_failures = 0;
        self.next_due = now.plus(params.frequency_secs + jitter(params, rng));
    }

    /// Records a failure: linear back-off, capped.
    pub fn on_failure(&mut self, now: NtpSeconds, params: &StatusScheduleParams) {
        self.last_attempt = Some(now);
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let backoff = params
            .min_retry_secs
            .saturating_mul(u64::from(self.consecutive_failures))
            .min(params.max_backoff_secs);
        self.next_due = now.plus(backoff);
    }
}

fn jitter(params: &StatusScheduleParams, rng: &mut impl Rng) -> u64 {
    if params.random_offset_secs == 0 {
        0
    } else {
        rng.random_range(0..=params.random_offset_secs)
    }
}

/// The local notification rule (§3.11): notify when the risk level rises, or
/// stays at a non-zero level with a newer scoring date; deliver between
/// `min_hour` and `max_hour` local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotificationRule {
    /// First local hour of delivery (`minHourContactNotif`, 7).
    pub min_hour: u8,
    /// End of delivery, exclusive (`maxHourContactNotif`, 19).
    pub max_hour: u8,
}

impl Default for NotificationRule {
    fn default() -> Self {
        Self {
            min_hour: 7,
            max_hour: 19,
        }
    }
}

/// The part of a status answer the rule compares.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RiskSnapshot {
    /// `riskLevel` (0 none, 4 ROBERT high-risk contact).
    pub level: f64,
    /// `lastRiskScoringDate`.
    pub last_risk_scoring: Option<NtpSeconds>,
}

/// A notification waiting for its delivery time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Notification {
    /// The risk level that triggered it.
    pub risk_level: f64,
    /// When to show it.
    pub deliver_at: NtpSeconds,
}

impl NotificationRule {
    /// Whether going from `previous` to `current` deserves a notification.
    pub fn should_notify(&self, previous: &RiskSnapshot, current: &RiskSnapshot) -> bool {
        if current.level <= 0.0 || current.level.is_nan() {
            return false;
        }
        if current.level > previous.level {
            return true;
        }
        current.level == previous.level
            && match (current.last_risk_scoring, previous.last_risk_scoring) {
                (Some(c), Some(p)) => c > p,
                (Some(_), None) => true,
                _ => false,
            }
    }

    /// The first instant at or after `now` whose local hour is in
    /// `[min_hour, max_hour)`.
    pub fn delivery_time(&self, now: NtpSeconds, utc_offset_secs: i32) -> NtpSeconds {
        let offset = i64::from(utc_offset_secs);
        let local = i64::try_from(now.get())
            .unwrap_or(i64::MAX)
            .saturating_add(offset);
        let day = SECONDS_PER_DAY as i64;
        let into_day = local.rem_euclid(day);
        let min = i64::from(self.min_hour) * 3600;
        let max = i64::from(self.max_hour) * 3600;
        if (min..max).contains(&into_day) || min >= max {
            return now;
        }
        let wait = if into_day < min {
            min - into_day
        } else {
            day - into_day + min
        };
        now.plus(u64::try_from(wait).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const T: NtpSeconds = NtpSeconds(3_882_556_800); // a UTC midnight

    #[test]
    fn period_jitter_and_backoff() {
        let p = StatusScheduleParams::STOPCOVID_2020_10;
        let mut rng = StdRng::seed_from_u64(3);
        let mut s = StatusSchedule::after_registration(T, &p, &mut rng);
        let first = s.next_due.get() - T.get();
        assert!((3 * 3600..=4 * 3600).contains(&first), "{first}");
        assert!(!s.is_due(T.plus(3 * 3600 - 1)));
        assert!(s.is_due(s.next_due));

        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            s.on_success(T, &p, &mut rng);
            let d = s.next_due.get() - T.get();
            assert!((3 * 3600..=4 * 3600).contains(&d));
            seen.insert(d);
        }
        assert!(seen.len() > 10, "the offset is random");

        s.on_failure(T, &p);
        assert_eq!(s.next_due, T.plus(3 * 3600));
        s.on_failure(T, &p);
        assert_eq!(s.next_due, T.plus(6 * 3600), "linear back-off");
        for _ in 0..20 {
            s.on_failure(T, &p);
        }
        assert_eq!(s.next_due, T.plus(SECONDS_PER_DAY), "capped");
        s.on_success(T, &p, &mut rng);
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.last_success, Some(T));
    }

    #[test]
    fn notify_on_rise_or_newer_scoring() {
        let rule = NotificationRule::default();
        let none = RiskSnapshot::default();
        let at_risk = RiskSnapshot {
            level: 4.0,
            last_risk_scoring: Some(T),
        };
        assert!(rule.should_notify(&none, &at_risk));
        assert!(!rule.should_notify(&at_risk, &at_risk));
        let newer = RiskSnapshot {
            last_risk_scoring: Some(T.plus(900)),
            ..at_risk
        };
        assert!(rule.should_notify(&at_risk, &newer));
        assert!(!rule.should_notify(&newer, &at_risk), "older scoring");
        assert!(!rule.should_notify(&at_risk, &none), "falling risk");
        assert!(!rule.should_notify(&none, &none));
    }

    #[test]
    fn delivery_between_7_and_19_local() {
        let rule = NotificationRule::default();
        // 10:00 UTC, UTC: now.
        assert_eq!(rule.delivery_time(T.plus(10 * 3600), 0), T.plus(10 * 3600));
        // 03:00 UTC: today 07:00.
        assert_eq!(rule.delivery_time(T.plus(3 * 3600), 0), T.plus(7 * 3600));
        // 19:00 UTC: tomorrow 07:00.
        assert_eq!(
            rule.delivery_time(T.plus(19 * 3600), 0),
            T.plus(SECONDS_PER_DAY + 7 * 3600)
        );
        // 18:30 UTC is 20:30 in Paris (UTC+2): next day 07:00 Paris = 05:00 UTC.
        assert_eq!(
            rule.delivery_time(T.plus(18 * 3600 + 1800), 7200),
            T.plus(SECONDS_PER_DAY + 5 * 3600)
        );
        // 05:30 UTC is 07:30 in Paris: now.
        assert_eq!(
            rule.delivery_time(T.plus(5 * 3600 + 1800), 7200),
            T.plus(5 * 3600 + 1800)
        );
    }
}
