//! Risk scoring: contact scores, their aggregation, and the batch's risk
//! rules (server-api.md §4.1, §4.4–§4.6).
//!
//! The server batch turns every validated contact (the HELLOs of one EBID
//! received by one phone) into one **contact score** with [`Scoring::score`],
//! appends it to the sender's exposure list under the EBID's epoch, and later
//! decides with [`risk::evaluate_risk`] whether the registration is at risk.
//!
//! ```text
//! contact (HELLOs of one EBID) --score--> s            (v2: §4.4, v0: legacy)
//! exposedEpochs[epoch] += s
//! S    = Σ s over epochs > latestRiskEpoch
//! risk = 1 − exp(−R0 · S)                               (v2; v0: S itself)
//! at risk  ⇔  risk ≥ threshold  ∧  last exposure within 7 days   (§4.5)
//! ```
//!
//! Two algorithms exist in the reference, selected by
//! `robert.scoring.algo-version`:
//! - [`v2`] (the reference's default and production): windowed soft-max of
//!   the RSSI, paper "hal-02641630" eqs. 52/56/57;
//! - [`v0`] (legacy "WP4" formula).
//!
//! robert-rs adds [`typical`]: near-minutes judged from the level a contact
//! typically holds, aggregated per UTC day (chosen by the detection study,
//! docs/simulation-results.md).
//!
//! Everything here is pure: no clock, no I/O; the one random choice (the
//! last-contact date) takes the RNG as an argument. The floating-point code
//! follows the reference's order of operations so that results match its
//! `double` arithmetic to about 1e-15 relative error (checked against the
//! reference's 127 vectors in `tests/scoring.rs`).

pub mod risk;
pub mod typical;
pub mod v0;
pub mod v2;

use crate::time::NtpSeconds;

pub use risk::{
    EpochExposure, RiskDecision, RiskEvaluation, RiskParams, RiskState, evaluate_risk,
    is_exposure_retained, last_contact_offsets, purge_exposures, randomised_last_contact,
    risk_reset_due,
};
pub use typical::{ScoringTypical, TypicalParams, WindowLevel};
pub use v0::{ScoringV0, V0Params};
pub use v2::{ScoringV2, V2Params};

/// One HELLO as the scoring algorithms see it (server-api.md §4.4).
///
/// The batch maps each validated HELLO of a contact to one of these, keeping
/// the **upload order**: v2 takes `t0` from the first element and does not
/// sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScoringInput {
    /// When the receiving phone collected the HELLO (`timeCollectedOnDevice`).
    pub time_collected: NtpSeconds,
    /// The calibrated RSSI in dBm (`rssiCalibrated`).
    pub rssi_calibrated: i32,
}

impl ScoringInput {
    /// Builds an input from raw values.
    pub fn new(time_collected: NtpSeconds, rssi_calibrated: i32) -> Self {
        Self {
            time_collected,
            rssi_calibrated,
        }
    }
}

/// The score of one contact and the side outputs of the algorithm
/// (server-api.md §4.4, `ScoringResult`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContactScore {
    /// The contact score stored in `exposedEpochs[epoch].expositionScores`.
    ///
    /// v2: `score_per_minute · kmax`; v0: the WP4 sum.
    pub score: f64,
    /// v2 only: `min(1.2 · softmax(R, B), 1)`, the score before the
    /// multiplication by `kmax` (0 for v0 and for skipped contacts).
    pub score_per_minute: f64,
    /// v2 only: the last occupied one-minute window, which stands in for the
    /// duration in minutes (0 for v0 and for skipped contacts).
    pub kmax: u32,
    /// v2 only: the number of windows with a risk `v > 0` (0 for v0).
    pub nb_contacts: u32,
    /// v2 only: the contact was scored 0 because its last HELLO came more
    /// than `900 + epochTolerance` seconds after its first. The reference
    /// logs "Skip contact because some hello messages are coming too late:
    /// N sec after first message" with N = [`ContactScore::span_secs`].
    pub skipped_too_late: bool,
    /// `tf − t0`: collection time of the last HELLO minus that of the first,
    /// in list order (may be negative when the list is not sorted).
    pub span_secs: i64,
}

impl ContactScore {
    /// The score of a contact that contributes nothing.
    pub(crate) fn zero(span_secs: i64, skipped_too_late: bool) -> Self {
        Self {
            score: 0.0,
            score_per_minute: 0.0,
            kmax: 0,
            nb_contacts: 0,
            skipped_too_late,
            span_secs,
        }
    }
}

/// Why scoring could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScoringError {
    /// The contact has no HELLO. The reference throws "Cannot score contact
    /// with no HELLO messages"; the batch never gets here because it discards
    /// empty contacts earlier (§4.3 step 7).
    #[error("cannot score contact with no HELLO messages")]
    NoHelloMessages,
    /// A parameter is outside its domain (it would make scores NaN or panic).
    #[error("invalid scoring parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in the reference configuration.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// How contact scores are combined into a registration's risk
/// (server-api.md §4.5 step 2).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Aggregation {
    /// v2, paper eq. 56:
    ///
    /// ```text
    /// risk = 1 − exp(−R0 · Σ scores)
    /// ```
    ///
    /// The sum is a plain left-to-right `+=`, as in the reference.
    Exponential {
        /// `robert.scoring.scoring-algo-r0` (0.0071).
        r0: f64,
    },
    /// v0: the plain sum of the scores (Java `DoubleStream.sum`, i.e.
    /// compensated summation).
    Sum,
    /// [`typical`]: the worst UTC day's sum of scores (epochs are grouped
    /// by `epoch / 96`; the service starts at a UTC midnight):
    ///
    /// ```text
    /// risk = 1 − exp(−R0 · max_day Σ_{epochs of the day} scores)
    /// ```
    ///
    /// Given plain values ([`Aggregation::aggregate`]) they count as one day.
    DailyMax {
        /// The aggregation constant.
        r0: f64,
    },
}

impl Aggregation {
    /// Aggregates scores, in the given order.
    ///
    /// The batch passes one value per exposed epoch (the sum of that epoch's
    /// contact scores, see [`risk::epoch_sum`]); the `robert score` tool
    /// passes one value per contact.
    pub fn aggregate<I: IntoIterator<Item = f64>>(&self, scores: I) -> f64 {
        match *self {
            Self::Exponential { r0 } => {
                let mut sum = 0.0;
                for score in scores {
                    sum += score;
                }
                1.0 - (-r0 * sum).exp()
            }
            Self::Sum => compensated_sum(scores),
            Self::DailyMax { r0 } => {
                let sum: f64 = scores.into_iter().sum();
                1.0 - (-r0 * sum).exp()
            }
        }
    }

    /// Aggregates a registration's exposures, as the risk evaluation does:
    /// one value per epoch (the compensated sum of its contact scores,
    /// [`risk::epoch_sum`]), combined by [`Aggregation::aggregate`] in the
    /// given order.
    pub fn aggregate_exposures<'a, I>(&self, exposures: I) -> f64
    where
        I: IntoIterator<Item = &'a EpochExposure>,
    {
        match *self {
            Self::DailyMax { r0 } => {
                let mut days: Vec<(u32, f64)> = Vec::new();
                for e in exposures {
                    let day = e.epoch.day_index();
                    let sum = risk::epoch_sum(&e.scores);
                    match days.iter_mut().find(|(d, _)| *d == day) {
                        Some((_, total)) => *total += sum,
                        None => days.push((day, sum)),
                    }
                }
                let worst = days.iter().map(|(_, s)| *s).fold(0.0, f64::max);
                1.0 - (-r0 * worst).exp()
            }
            _ => self.aggregate(exposures.into_iter().map(|e| risk::epoch_sum(&e.scores))),
        }
    }
}

/// The scoring algorithm configured on the server (`robert.scoring.algo-version`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Scoring {
    /// Version 2, the default (server-api.md §4.4).
    V2(ScoringV2),
    /// Version 0, the legacy WP4 formula.
    V0(ScoringV0),
    /// The typical-level scoring of robert-rs ([`typical`]).
    Typical(ScoringTypical),
}

impl Default for Scoring {
    /// Version 2 with the reference parameters.
    fn default() -> Self {
        Self::V2(ScoringV2::default())
    }
}

impl Scoring {
    /// Scores one contact; `hellos` must be in upload order.
    pub fn score(&self, hellos: &[ScoringInput]) -> Result<ContactScore, ScoringError> {
        match self {
            Self::V2(s) => s.score(hellos),
            Self::V0(s) => s.score(hellos),
            Self::Typical(s) => s.score(hellos),
        }
    }

    /// The aggregation that goes with this algorithm.
    pub fn aggregation(&self) -> Aggregation {
        match self {
            Self::V2(s) => s.aggregation(),
            Self::V0(_) => Aggregation::Sum,
            Self::Typical(s) => s.aggregation(),
        }
    }

    /// The value of `robert.scoring.algo-version` for this algorithm (3 for
    /// the typical-level scoring, a robert-rs extension).
    pub fn version(&self) -> u8 {
        match self {
            Self::V2(_) => 2,
            Self::V0(_) => 0,
            Self::Typical(_) => 3,
        }
    }
}

/// The soft-max of the reference (server-api.md §4.4):
///
/// ```text
/// softmax(L, c) = c · ln( (Σ_{x∈L} exp(x / c)) / |L| ),   0 for an empty L
/// ```
///
/// The values are taken in iteration order and summed left to right, the
/// sum is divided by the count, then the logarithm is scaled: exactly the
/// reference's sequence of `double` operations.
pub(crate) fn softmax<I: IntoIterator<Item = f64>>(values: I, c: f64) -> f64 {
    let mut sum = 0.0;
    let mut count: u64 = 0;
    for x in values {
        sum += (x / c).exp();
        count += 1;
    }
    if count == 0 {
        return 0.0;
    }
    // Counts beyond 2^53 are unreachable (they would not fit in memory).
    let n = count as f64;
    c * (sum / n).ln()
}

/// Java's `DoubleStream.sum()`: Kahan–Babuška compensated summation, as in
/// OpenJDK's `Collectors.sumWithCompensation` / `computeFinalSum` (JDK 18+
/// sign convention), falling back to the simple sum when the compensated one
/// is NaN because of infinities.
pub(crate) fn compensated_sum<I: IntoIterator<Item = f64>>(values: I) -> f64 {
    let mut high = 0.0_f64;
    let mut compensation = 0.0_f64;
    let mut simple = 0.0_f64;
    for value in values {
        let tmp = value - compensation;
        let velvel = high + tmp;
        compensation = (velvel - high) - tmp;
        high = velvel;
        simple += value;
    }
    let total = high - compensation;
    if total.is_nan() && simple.is_infinite() {
        simple
    } else {
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_of_empty_is_zero() {
        assert_eq!(softmax(core::iter::empty(), 4.342), 0.0);
    }

    #[test]
    fn softmax_of_constant_list_is_that_constant() {
        // c · ln(n·e^{x/c} / n) = x, up to rounding.
        let s = softmax([-35.0; 7], 4.342);
        assert!((s + 35.0).abs() < 1e-12, "{s}");
        let s = softmax([1.0; 5], 0.2);
        assert!((s - 1.0).abs() < 1e-12, "{s}");
    }

    #[test]
    fn softmax_lies_between_mean_and_max() {
        let values = [-70.0, -50.0, -40.0];
        let s = softmax(values, 4.342);
        assert!(s > -53.4 && s < -40.0, "{s}");
        // Computed independently (Python's math.exp / math.log):
        // 4.342·ln((e^{-70/4.342} + e^{-50/4.342} + e^{-40/4.342}) / 3).
        assert!((s - (-44.352595751251485)).abs() < 1e-12, "{s}");
    }

    #[test]
    fn compensated_sum_recovers_small_terms() {
        let values = [1.0, 1e-16, 1e-16, 1e-16, 1e-16];
        let naive: f64 = values.iter().sum();
        assert_eq!(naive, 1.0);
        assert_eq!(compensated_sum(values), 1.0 + 4e-16);
        assert_eq!(compensated_sum([]), 0.0);
        assert_eq!(compensated_sum([f64::INFINITY, 1.0]), f64::INFINITY);
    }

    #[test]
    fn aggregation_exponential_matches_paper_values() {
        let agg = Aggregation::Exponential { r0: 0.0071 };
        // server-api.md §4.5: S = 20 gives 0.1324, S = 13.5 gives 0.0914.
        assert!((agg.aggregate([20.0]) - 0.1324).abs() < 5e-5);
        assert!((agg.aggregate([10.0, 3.5]) - 0.0914).abs() < 5e-5);
        assert_eq!(agg.aggregate([]), 0.0);
        assert_eq!(Aggregation::Sum.aggregate([1.5, 2.25]), 3.75);
    }

    #[test]
    fn daily_max_judges_each_day_on_its_own() {
        use crate::time::Epoch;
        let r0 = -(0.9f64.ln()) / 15.0;
        let agg = Aggregation::DailyMax { r0 };
        // Day 0: 10 + 4 near-minutes; day 1: 12. Neither reaches 15, though
        // together they would.
        let e = |epoch, s: &[f64]| EpochExposure::new(Epoch(epoch), s.to_vec());
        let split = [e(10, &[6.0, 4.0]), e(20, &[4.0]), e(96 + 3, &[12.0])];
        let risk = agg.aggregate_exposures(&split);
        assert!((risk - (1.0 - (-r0 * 14.0).exp())).abs() < 1e-12, "{risk}");
        assert!(risk < 0.1);
        let one_day = [e(10, &[6.0, 4.0]), e(20, &[5.0])];
        assert!(agg.aggregate_exposures(&one_day) >= 0.1 - 1e-12);
        // The reference's aggregations are unchanged: one value per epoch.
        let exp = Aggregation::Exponential { r0: 0.0071 };
        assert_eq!(
            exp.aggregate_exposures(&split),
            exp.aggregate([10.0, 4.0, 12.0])
        );
    }
}
