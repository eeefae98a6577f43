//! Scoring "typical level" (robert-rs; not in the reference): minutes
//! spent near, judged from the level a contact **typically holds**, summed
//! per UTC day.
//!
//! Scoring v2 ([`super::v2`]) is a dose: every window's soft-max level
//! counts, the soft-max over windows favours the loudest, and the batch
//! sums all epochs of all days. A long exposure at 3 m, whose fading peaks
//! reach the level of a 1 m contact a quarter of the time, accumulates like
//! a short one at 0.7 m. This estimator keeps the duration but weighs it by
//! the contact's central level — a quantile (the median by default) of its
//! per-window mean levels — so that an exposure counts as near only when
//! it is loud most of the time, and judges each day on its own, as the
//! contact definition does (15 minutes within 1 m on one day).
//!
//! ```text
//! keep HELLOs with rssi ≤ −5;  r = min(rssi, rssi_max)
//! t0 = earliest time;  slot(h) = floor((t_h − t0) / 60), kept if < 15
//! window k (0..14) = slots k and k+1 (window 14: slot 14);  n_k = its count
//! level_k = mean of its r (dB)                 [level = "mean"]
//!         | a · ln(mean(exp(r / a))), a = 4.342 [level = "power-mean", as v2's q]
//! L = the quantile-q value of { level_k : n_k > 0 }  (nearest rank: index round(q · (m − 1)))
//! w = clamp((L − level_low) / (level_high − level_low), 0, 1)
//!     (a step at level_low when level_high ≤ level_low)
//! D = min((t_last − t_first) / 60, 15)           minutes, over kept HELLOs
//! score = D · w  if D ≥ min_minutes, else 0       ("near-minutes")
//!
//! aggregation (per registration, Aggregation::DailyMax):
//!   N_day = Σ scores of the epochs of that UTC day (epoch / 96)
//!   risk  = 1 − exp(−R0 · max_day N_day)
//! ```
//!
//! With `R0 = −ln(0.9) / T` and the risk threshold 0.1, a registration is at
//! risk when one day gathers at least `T` near-minutes. The parameters come
//! from the detection study of `robert calibrate study`
//! (docs/simulation-results.md); [`TypicalParams::default`] holds the values
//! it chose.
//!
//! The storage model is the reference's: one score per contact, appended to
//! the registration's list for the EBID's epoch; only the aggregation reads
//! the epochs' days.

use super::{Aggregation, ContactScore, ScoringError, ScoringInput};
use crate::time::EPOCH_DURATION_SECS;

/// Windows per contact (one-minute slots in an epoch).
pub const WINDOWS: usize = (EPOCH_DURATION_SECS / 60) as usize;

/// The soft-max constant of the power-mean level (v2's `soft-max-a`).
pub const POWER_MEAN_A: f64 = 4.342;

/// How a window's HELLOs make one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowLevel {
    /// The arithmetic mean of the RSSIs in dB: robust to fading peaks.
    Mean,
    /// The mean of the powers, in dB (scoring v2's `q`): near the peaks.
    PowerMean,
}

impl WindowLevel {
    /// The configuration name (`mean`, `power-mean`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::PowerMean => "power-mean",
        }
    }

    /// Parses [`WindowLevel::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "mean" => Some(Self::Mean),
            "power-mean" => Some(Self::PowerMean),
            _ => None,
        }
    }
}

/// Parameters of the typical-level scoring (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct TypicalParams {
    /// Level (dBm, calibrated) at or below which a contact carries no
    /// near-minutes.
    pub level_low: f64,
    /// Level at or above which every minute counts in full.
    pub level_high: f64,
    /// Which window level is the contact's typical one (0.5: the median).
    pub quantile: f64,
    /// Contacts shorter than this many minutes score 0.
    pub min_minutes: f64,
    /// RSSIs above this are lowered to it (dBm).
    pub rssi_max: i32,
    /// How a window's HELLOs make one level.
    pub level: WindowLevel,
    /// The daily aggregation constant: `risk = 1 − exp(−R0 · max_day N_day)`.
    pub r0: f64,
}

impl Default for TypicalParams {
    /// The values chosen by the detection study at the radio model's anchor
    /// (−35 dBm at 1 m; docs/simulation-results.md): the median-ish (0.6)
    /// window mean, near from −53 to −50 dBm, contacts of 10 minutes or
    /// more, 13.4 near-minutes on one day for the risk threshold 0.1. The
    /// levels are absolute: a deployment whose anchor differs by Δ dB must
    /// move `level_low` and `level_high` by Δ (`robert calibrate study
    /// --anchor`).
    fn default() -> Self {
        Self {
            level_low: -53.0,
            level_high: -50.0,
            quantile: 0.6,
            min_minutes: 10.0,
            rssi_max: -35,
            level: WindowLevel::Mean,
            r0: -(0.9f64.ln()) / 13.4,
        }
    }
}

impl TypicalParams {
    /// Checks that no parameter can make a score NaN or infinite.
    pub fn validate(&self) -> Result<(), ScoringError> {
        let invalid = |name, reason| Err(ScoringError::InvalidParameter { name, reason });
        if !(self.level_low.is_finite() && self.level_high.is_finite()) {
            return invalid("level-low/level-high", "must be finite");
        }
        if !(0.0..=1.0).contains(&self.quantile) {
            return invalid("quantile", "must be in [0, 1]");
        }
        if !(self.min_minutes.is_finite() && self.min_minutes >= 0.0) {
            return invalid("min-minutes", "must be finite and not negative");
        }
        if !(self.r0.is_finite() && self.r0 >= 0.0) {
            return invalid("scoring-algo-r0", "must be finite and not negative");
        }
        Ok(())
    }

    /// The weight of a typical level `L` (module docs).
    pub fn weight(&self, level: f64) -> f64 {
        if self.level_high <= self.level_low {
            return if level > self.level_low { 1.0 } else { 0.0 };
        }
        ((level - self.level_low) / (self.level_high - self.level_low)).clamp(0.0, 1.0)
    }

    /// The contact score from its window levels (of the occupied windows,
    /// in any order) and its duration in minutes.
    pub fn score_from_levels(&self, levels: &mut [f64], duration_min: f64) -> f64 {
        if levels.is_empty() || duration_min < self.min_minutes || duration_min <= 0.0 {
            return 0.0;
        }
        levels.sort_by(f64::total_cmp);
        let m = levels.len();
        // m ≤ 15 and q ∈ [0, 1]: the index is in range.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let idx = ((self.quantile * (m - 1) as f64).round() as usize).min(m - 1);
        duration_min * self.weight(levels[idx])
    }
}

/// The typical-level scoring with validated parameters ([`Default`]: the
/// study's values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScoringTypical {
    params: TypicalParams,
}

impl ScoringTypical {
    /// Validates the parameters (see [`TypicalParams::validate`]).
    pub fn new(params: TypicalParams) -> Result<Self, ScoringError> {
        params.validate()?;
        Ok(Self { params })
    }

    /// The parameters.
    pub fn params(&self) -> &TypicalParams {
        &self.params
    }

    /// The aggregation: the worst day's near-minutes (module docs).
    pub fn aggregation(&self) -> Aggregation {
        Aggregation::DailyMax { r0: self.params.r0 }
    }

    /// Scores one contact (module docs). Fails only on an empty list.
    pub fn score(&self, hellos: &[ScoringInput]) -> Result<ContactScore, ScoringError> {
        if hellos.is_empty() {
            return Err(ScoringError::NoHelloMessages);
        }
        let p = &self.params;
        let span = |h: &[ScoringInput]| -> i64 {
            match (h.first(), h.last()) {
                (Some(a), Some(b)) => i64::try_from(
                    i128::from(b.time_collected.get()) - i128::from(a.time_collected.get()),
                )
                .unwrap_or(i64::MAX),
                _ => 0,
            }
        };
        let span_secs = span(hellos);
        let mut kept: Vec<(u64, f64)> = hellos
            .iter()
            .filter(|h| h.rssi_calibrated <= super::v2::RSSI_ERROR_THRESHOLD)
            .map(|h| {
                (
                    h.time_collected.get(),
                    f64::from(h.rssi_calibrated.min(p.rssi_max)),
                )
            })
            .collect();
        kept.sort_by_key(|h| h.0);
        let Some(&(t0, _)) = kept.first() else {
            return Ok(ContactScore::zero(span_secs, false));
        };
        let limit = WINDOWS as u64 * 60;
        kept.retain(|h| h.0 - t0 < limit);
        let mut slots: [(f64, f64, u32); WINDOWS] = [(0.0, 0.0, 0); WINDOWS];
        for &(t, r) in &kept {
            // (t − t0) / 60 < 15 after the retain above.
            let s = &mut slots[((t - t0) / 60) as usize];
            s.0 += r;
            s.1 += (r / POWER_MEAN_A).exp();
            s.2 += 1;
        }
        let mut levels = Vec::with_capacity(WINDOWS);
        for k in 0..WINDOWS {
            let (mut sum, mut pow, mut n) = slots[k];
            if let Some(next) = slots.get(k + 1) {
                sum += next.0;
                pow += next.1;
                n += next.2;
            }
            if n == 0 {
                continue;
            }
            let n = f64::from(n);
            levels.push(match p.level {
                WindowLevel::Mean => sum / n,
                WindowLevel::PowerMean => POWER_MEAN_A * (pow / n).ln(),
            });
        }
        let first = kept.first().map_or(t0, |h| h.0);
        let last = kept.last().map_or(t0, |h| h.0);
        // Spans are below 900 s here.
        let duration_min = ((last - first) as f64 / 60.0).min(WINDOWS as f64);
        let occupied = u32::try_from(levels.len()).unwrap_or(u32::MAX);
        let score = p.score_from_levels(&mut levels, duration_min);
        let kmax = duration_min as u32;
        Ok(ContactScore {
            score,
            score_per_minute: if duration_min > 0.0 {
                score / duration_min
            } else {
                0.0
            },
            kmax,
            nb_contacts: occupied,
            skipped_too_late: false,
            span_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NtpSeconds;

    const T: u64 = 3_850_000_000;

    fn contact(rssi: impl Fn(u64) -> i32, secs: u64, every: u64) -> Vec<ScoringInput> {
        (0..secs)
            .step_by(usize::try_from(every).unwrap())
            .map(|s| ScoringInput::new(NtpSeconds(T + s), rssi(s)))
            .collect()
    }

    fn step(low: f64) -> ScoringTypical {
        ScoringTypical::new(TypicalParams {
            level_low: low,
            level_high: low,
            quantile: 0.5,
            min_minutes: 0.0,
            ..TypicalParams::default()
        })
        .unwrap()
    }

    #[test]
    fn a_loud_epoch_counts_its_minutes_a_quiet_one_none() {
        let loud = contact(|_| -45, 900, 10);
        let s = step(-50.0).score(&loud).unwrap();
        // 0 … 890 s: 14.83 minutes, all near.
        assert!((s.score - 890.0 / 60.0).abs() < 1e-9, "{s:?}");
        let quiet = contact(|_| -60, 900, 10);
        assert_eq!(step(-50.0).score(&quiet).unwrap().score, 0.0);
    }

    #[test]
    fn peaks_do_not_make_a_far_contact_near() {
        // Every fourth minute peaks at −30, the others are quiet (−62): the
        // two-minute windows holding a peak minute average −46, the other
        // eight of fifteen −62. v2's soft-max sees the peaks; the median
        // does not.
        let hellos = contact(|s| if (s / 60) % 4 == 0 { -30 } else { -62 }, 900, 10);
        assert_eq!(step(-50.0).score(&hellos).unwrap().score, 0.0);
        let v2 = super::super::ScoringV2::default().score(&hellos).unwrap();
        assert!(v2.score > 10.0, "v2 scores it as a near contact: {v2:?}");
        // The 90 % quantile does see them.
        let high_q = ScoringTypical::new(TypicalParams {
            quantile: 0.9,
            ..step(-50.0).params().clone()
        })
        .unwrap();
        assert!(high_q.score(&hellos).unwrap().score > 10.0);
    }

    #[test]
    fn the_ramp_weighs_levels_between_its_ends() {
        let p = TypicalParams {
            level_low: -60.0,
            level_high: -50.0,
            ..TypicalParams::default()
        };
        assert_eq!(p.weight(-61.0), 0.0);
        assert!((p.weight(-55.0) - 0.5).abs() < 1e-12);
        assert_eq!(p.weight(-40.0), 1.0);
    }

    #[test]
    fn short_contacts_and_phone_errors_score_zero() {
        let short = contact(|_| -40, 120, 10);
        let s = ScoringTypical::new(TypicalParams {
            min_minutes: 5.0,
            ..step(-50.0).params().clone()
        })
        .unwrap();
        assert_eq!(s.score(&short).unwrap().score, 0.0);
        // RSSIs above −5 are dropped: nothing left, score 0.
        let errors = contact(|_| 0, 900, 10);
        assert_eq!(step(-50.0).score(&errors).unwrap().score, 0.0);
        assert_eq!(step(-50.0).score(&[]), Err(ScoringError::NoHelloMessages));
    }

    #[test]
    fn hellos_beyond_fifteen_minutes_are_ignored_and_order_does_not_matter() {
        let mut hellos = contact(|_| -45, 1800, 10);
        let s = step(-50.0).score(&hellos).unwrap();
        assert!(s.score <= 15.0 && s.score > 14.0, "{s:?}");
        hellos.reverse();
        assert_eq!(step(-50.0).score(&hellos).unwrap().score, s.score);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        let bad = |f: fn(&mut TypicalParams)| {
            let mut p = TypicalParams::default();
            f(&mut p);
            ScoringTypical::new(p).is_err()
        };
        assert!(bad(|p| p.quantile = 1.5));
        assert!(bad(|p| p.level_low = f64::NAN));
        assert!(bad(|p| p.min_minutes = -1.0));
        assert!(bad(|p| p.r0 = f64::INFINITY));
        assert!(!bad(|_| {}));
    }
}
