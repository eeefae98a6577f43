//! Dummy traffic (docs/traffic-privacy.md): when to send dummy reports and
//! dummy status requests, so that a network observer cannot tell the phone
//! of a person who reports from any other. Pure: time and randomness are
//! arguments.
//!
//! The rates come from the server's `config` list:
//!
//! | entry | meaning | when absent |
//! |---|---|---|
//! | `privacy.padding` | `true`: pad `/status` and `/report` and mark them (`robert-fake`) | no padding |
//! | `privacy.dummyReportsPerDay` | mean dummy reports per day (≥ 0) | none |
//! | `privacy.dummyStatusPerDay` | mean dummy status requests per day (≥ 0) | none |
//!
//! A server that does not announce them (the reference's) never receives a
//! dummy: it would take one for a real report with a wrong code. Dummies are
//! only sent with padding on (the mark is what tells the server).
//!
//! Each kind is a Poisson process: the time to the next dummy is drawn from
//! an exponential distribution of mean `1 / rate`. The process is
//! memoryless, so a schedule lost on restart is simply drawn again.

use rand::RngExt as _;
use rand_core::Rng;
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY};
use serde_json::Value;

/// `config` list entry: whether to pad.
pub const LIST_PADDING: &str = "privacy.padding";
/// `config` list entry: mean dummy reports per day.
pub const LIST_DUMMY_REPORTS: &str = "privacy.dummyReportsPerDay";
/// `config` list entry: mean dummy status requests per day.
pub const LIST_DUMMY_STATUS: &str = "privacy.dummyStatusPerDay";

/// Longest interval drawn (ten years): a tiny rate means "practically never".
const MAX_INTERVAL_SECS: f64 = 10.0 * 365.0 * SECONDS_PER_DAY as f64;

/// Highest rate accepted, per day (one dummy every 15 minutes): a larger
/// value in the list is taken as this, so that a mistyped entry cannot
/// make every phone flood the server.
pub const MAX_RATE_PER_DAY: f64 = 96.0;

/// The traffic-privacy settings of the server's `config` list.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PrivacySettings {
    /// Pad `/status` and `/report` and mark them.
    pub padding: bool,
    /// Mean dummy reports per day (0: none).
    pub dummy_reports_per_day: f64,
    /// Mean dummy status requests per day (0: none).
    pub dummy_status_per_day: f64,
}

impl PrivacySettings {
    /// Nothing: no padding, no dummy.
    pub const OFF: Self = Self {
        padding: false,
        dummy_reports_per_day: 0.0,
        dummy_status_per_day: 0.0,
    };

    /// Reads `list` (`[{"name": …, "value": …}, …]`); `None` if it names
    /// none of the entries. A rate that is not a non-negative number counts
    /// as 0; rates above [`MAX_RATE_PER_DAY`] as that; a `padding` that is
    /// not a boolean (or the string `"true"`) as `false`.
    pub fn from_list(list: &Value) -> Option<Self> {
        let entries = list.as_array()?;
        let value_of = |name: &str| {
            entries
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|e| e.get("value"))
        };
        let (p, r, s) = (
            value_of(LIST_PADDING),
            value_of(LIST_DUMMY_REPORTS),
            value_of(LIST_DUMMY_STATUS),
        );
        if p.is_none() && r.is_none() && s.is_none() {
            return None;
        }
        let rate = |v: Option<&Value>| {
            let x = match v {
                Some(Value::Number(n)) => n.as_f64(),
                Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            x.filter(|x| x.is_finite() && *x > 0.0)
                .map_or(0.0, |x| x.min(MAX_RATE_PER_DAY))
        };
        let padding = match p {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
            _ => false,
        };
        Some(Self {
            padding,
            dummy_reports_per_day: rate(r),
            dummy_status_per_day: rate(s),
        })
    }

    /// The rate of one kind (0 without padding: a dummy needs the mark).
    pub fn rate(&self, kind: DummyKind) -> f64 {
        if !self.padding {
            return 0.0;
        }
        match kind {
            DummyKind::Report => self.dummy_reports_per_day,
            DummyKind::Status => self.dummy_status_per_day,
        }
    }
}

/// The two kinds of dummy requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DummyKind {
    /// A dummy `/report`.
    Report,
    /// A dummy `/status`.
    Status,
}

/// Seconds to the next event of a Poisson process of `per_day` events per
/// day; `None` if the rate is not positive.
pub fn exponential_interval_secs(per_day: f64, rng: &mut impl Rng) -> Option<u64> {
    if !(per_day.is_finite() && per_day > 0.0) {
        return None;
    }
    // u in (0, 1]: −ln(u) is finite and ≥ 0.
    let u: f64 = 1.0 - rng.random::<f64>();
    let secs = -u.ln() * SECONDS_PER_DAY as f64 / per_day;
    // Float to int saturates; the cap keeps it meaningful.
    Some(secs.min(MAX_INTERVAL_SECS).round() as u64)
}

/// When each kind of dummy is next due.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DummySchedule {
    armed: bool,
    next_report: Option<NtpSeconds>,
    next_status: Option<NtpSeconds>,
}

impl DummySchedule {
    /// Draws both next times from `now`.
    pub fn start(&mut self, now: NtpSeconds, settings: &PrivacySettings, rng: &mut impl Rng) {
        self.armed = true;
        self.next_report = Self::draw(now, settings.rate(DummyKind::Report), rng);
        self.next_status = Self::draw(now, settings.rate(DummyKind::Status), rng);
    }

    fn draw(now: NtpSeconds, rate: f64, rng: &mut impl Rng) -> Option<NtpSeconds> {
        exponential_interval_secs(rate, rng).map(|s| now.plus(s))
    }

    /// Stops every dummy (not registered, or new settings to apply).
    pub fn stop(&mut self) {
        *self = Self::default();
    }

    /// Whether [`Self::start`] was called since the last [`Self::stop`].
    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// The dummy due at `now`, if any (the earlier of the two).
    pub fn due(&self, now: NtpSeconds) -> Option<DummyKind> {
        match (self.next_report, self.next_status) {
            (Some(r), Some(s)) if r <= s && r <= now => Some(DummyKind::Report),
            (_, Some(s)) if s <= now => Some(DummyKind::Status),
            (Some(r), _) if r <= now => Some(DummyKind::Report),
            _ => None,
        }
    }

    /// When the next dummy is due.
    pub fn next_due(&self) -> Option<NtpSeconds> {
        match (self.next_report, self.next_status) {
            (Some(r), Some(s)) => Some(r.min(s)),
            (r, s) => r.or(s),
        }
    }

    /// When the next dummy of `kind` is due.
    pub fn next_of(&self, kind: DummyKind) -> Option<NtpSeconds> {
        match kind {
            DummyKind::Report => self.next_report,
            DummyKind::Status => self.next_status,
        }
    }

    /// Records that a dummy of `kind` went out (or failed) at `now`, and
    /// draws the next one.
    pub fn on_sent(
        &mut self,
        kind: DummyKind,
        now: NtpSeconds,
        settings: &PrivacySettings,
        rng: &mut impl Rng,
    ) {
        let next = Self::draw(now, settings.rate(kind), rng);
        match kind {
            DummyKind::Report => self.next_report = next,
            DummyKind::Status => self.next_status = next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;
    use rand::rngs::StdRng;
    use serde_json::json;

    const T: NtpSeconds = NtpSeconds(3_882_556_800);

    #[test]
    fn settings_from_the_config_list() {
        let list = json!([
            {"name": "app.checkStatusFrequency", "value": 12},
            {"name": "privacy.padding", "value": true},
            {"name": "privacy.dummyReportsPerDay", "value": 0.1},
            {"name": "privacy.dummyStatusPerDay", "value": "2"}
        ]);
        let s = PrivacySettings::from_list(&list).unwrap();
        assert_eq!(
            s,
            PrivacySettings {
                padding: true,
                dummy_reports_per_day: 0.1,
                dummy_status_per_day: 2.0
            }
        );
        assert_eq!(PrivacySettings::from_list(&json!([])), None);
        assert_eq!(
            PrivacySettings::from_list(&json!([{"name": "ble.filterMode", "value": "RISKS"}])),
            None
        );
        let odd = json!([
            {"name": "privacy.padding", "value": "yes"},
            {"name": "privacy.dummyReportsPerDay", "value": -3},
            {"name": "privacy.dummyStatusPerDay", "value": 1e9}
        ]);
        let s = PrivacySettings::from_list(&odd).unwrap();
        assert!(!s.padding);
        assert_eq!(s.dummy_reports_per_day, 0.0);
        assert_eq!(s.dummy_status_per_day, MAX_RATE_PER_DAY);
        // Without padding no dummy at all: the mark is what the server reads.
        assert_eq!(s.rate(DummyKind::Status), 0.0);
    }

    #[test]
    fn intervals_are_exponential_with_the_configured_mean() {
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000;
        let per_day = 0.5;
        let xs: Vec<f64> = (0..n)
            .map(|_| exponential_interval_secs(per_day, &mut rng).unwrap() as f64)
            .collect();
        let mean = xs.iter().sum::<f64>() / f64::from(n);
        let expect = SECONDS_PER_DAY as f64 / per_day;
        // Standard error of the mean: expect / √n ≈ 0.7 %; allow 3 %.
        assert!((mean / expect - 1.0).abs() < 0.03, "{mean} vs {expect}");
        // Exponential: the median is ln 2 × mean.
        let mut sorted = xs;
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        assert!((median / (expect * std::f64::consts::LN_2) - 1.0).abs() < 0.05);
        assert_eq!(exponential_interval_secs(0.0, &mut rng), None);
        assert_eq!(exponential_interval_secs(f64::NAN, &mut rng), None);
        // The same seed gives the same draws.
        let a: Vec<_> = (0..5)
            .map(|_| exponential_interval_secs(1.0, &mut StdRng::seed_from_u64(3)))
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn schedule_draws_due_and_redraws() {
        let settings = PrivacySettings {
            padding: true,
            dummy_reports_per_day: 1.0,
            dummy_status_per_day: 4.0,
        };
        let mut rng = StdRng::seed_from_u64(11);
        let mut s = DummySchedule::default();
        assert_eq!(s.next_due(), None);
        assert!(!s.is_armed());
        s.start(T, &settings, &mut rng);
        assert!(s.is_armed());
        let next = s.next_due().unwrap();
        assert!(next >= T);
        assert_eq!(s.due(T.plus(0)).is_some(), next == T);
        let kind = s.due(next).unwrap();
        assert_eq!(s.next_of(kind), Some(next));
        s.on_sent(kind, next, &settings, &mut rng);
        assert!(s.next_of(kind).unwrap() >= next);

        // Over a simulated year, about 365 reports and 1460 status dummies.
        let mut counts = [0u32; 2];
        let mut now = T;
        s.start(now, &settings, &mut rng);
        let end = T.plus(365 * SECONDS_PER_DAY);
        while let Some(next) = s.next_due() {
            if next > end {
                break;
            }
            now = next;
            let kind = s.due(now).unwrap();
            counts[usize::from(kind == DummyKind::Status)] += 1;
            s.on_sent(kind, now, &settings, &mut rng);
        }
        // Poisson counts: ±4 standard deviations.
        assert!((365 - 77..=365 + 77).contains(&counts[0]), "{counts:?}");
        assert!((1460 - 153..=1460 + 153).contains(&counts[1]), "{counts:?}");

        s.stop();
        assert_eq!(s.next_due(), None);
        assert_eq!(s.due(end), None);
    }

    #[test]
    fn a_zero_rate_never_fires() {
        let settings = PrivacySettings {
            padding: true,
            dummy_reports_per_day: 0.0,
            dummy_status_per_day: 2.0,
        };
        let mut s = DummySchedule::default();
        s.start(T, &settings, &mut StdRng::seed_from_u64(1));
        assert_eq!(s.next_of(DummyKind::Report), None);
        assert!(s.next_of(DummyKind::Status).is_some());
        s.start(T, &PrivacySettings::OFF, &mut StdRng::seed_from_u64(1));
        assert_eq!(s.next_due(), None);
    }
}
