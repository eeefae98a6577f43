//! The batch's per-registration risk rules: evaluation (server-api.md §4.5),
//! risk reset (§4.1 step d) and exposure purge (§4.6), as pure functions.
//!
//! The server batch runs them in this order on each run (§4.1):
//!
//! ```text
//! b  purge       exposedEpochs.retain(|e| is_exposure_retained(e.epoch, current, 14))
//! d  reset       if atRisk && risk_reset_due(lastContactTimestamp, now, 7):
//!                    atRisk = false; notifiedForCurrentRisk = false
//! f  scoring     exposedEpochs[ebid epoch].push(score); outdatedRisk = true
//! h  evaluation  for registrations with outdatedRisk: evaluate_risk(..), then
//!                    outdatedRisk = false, and apply the RiskDecision
//! ```
//!
//! All times are NTP seconds and whole days are 86 400-second spans truncated
//! toward zero (Java's `Duration.toDays()`), not calendar days, except where
//! a value is truncated to UTC midnight.

use core::ops::RangeInclusive;

use rand_core::Rng;

use super::{Aggregation, compensated_sum};
use crate::time::{EPOCH_DURATION_SECS, Epoch, NtpSeconds, SECONDS_PER_DAY, ServiceStart};

/// The risk rules' parameters (server-api.md §4.5, §4.6, §6.2).
///
/// [`Default`] gives the reference values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskParams {
    /// `robert.protocol.risk-threshold`: minimum aggregated risk (0.1).
    pub risk_threshold: f64,
    /// `robert-batch.risk-threshold.last-contact-delay`: the last exposure
    /// must start strictly after `now − delay` (P7D = 604 800 s).
    pub last_contact_delay_secs: u64,
    /// `robert.protocol.risk-flag-retention-period`, in days: how long the
    /// at-risk flag lasts after the last contact date (7).
    pub risk_retention_days: u32,
    /// `robert.protocol.contagious-period`, in days: how long exposures are
    /// kept (14).
    pub contagious_period_days: u32,
}

impl Default for RiskParams {
    fn default() -> Self {
        Self {
            risk_threshold: 0.1,
            last_contact_delay_secs: 7 * SECONDS_PER_DAY,
            risk_retention_days: 7,
            contagious_period_days: 14,
        }
    }
}

/// The contact scores recorded against one epoch of a registration
/// (`exposedEpochs[i]`: `epochId` and `expositionScores`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochExposure {
    /// The EBID epoch of the contacts.
    pub epoch: Epoch,
    /// One score per contact, in insertion order.
    pub scores: Vec<f64>,
}

impl EpochExposure {
    /// An exposure with these scores.
    pub fn new(epoch: Epoch, scores: Vec<f64>) -> Self {
        Self { epoch, scores }
    }
}

/// The stored registration fields the evaluation reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RiskState {
    /// `latestRiskEpoch`: the epoch of the last risk detection (0 if never).
    /// Only exposures in later epochs count towards a new detection.
    pub latest_risk_epoch: Epoch,
    /// `lastContactTimestamp`: the randomised, day-truncated date of the
    /// last risky contact (0, i.e. 1900, if never).
    pub last_contact: NtpSeconds,
}

/// What the evaluation decided (server-api.md §4.5 step 4).
///
/// Deliberately exhaustive: a new outcome must be handled by the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskDecision {
    /// The registration is at risk. The batch stores `atRisk = true`,
    /// `notifiedForCurrentRisk = false`, these two values, and leaves
    /// `isNotified` untouched. The reference logs "Risk detected. Aggregated
    /// risk since {old latestRiskEpoch}: {risk} greater than threshold {t}".
    AtRisk {
        /// The new `lastContactTimestamp` (a UTC midnight, never after today,
        /// never before the stored value when that is not in the future).
        last_contact: NtpSeconds,
        /// The new `latestRiskEpoch`: the current epoch.
        latest_risk_epoch: Epoch,
    },
    /// The risk reaches the threshold but the last exposure is too old:
    /// nothing changes, and the KPI
    /// `usersAboveRiskThresholdButRetentionPeriodExpired` is incremented
    /// (on every run that re-scores the registration, as in the reference).
    ExposureTooOld,
    /// The risk is below the threshold: nothing changes.
    BelowThreshold,
}

/// The outcome of [`evaluate_risk`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskEvaluation {
    /// The aggregated risk over the exposures after `latestRiskEpoch`.
    pub aggregated_risk: f64,
    /// Start of the latest exposed epoch, whatever `latestRiskEpoch`
    /// (the service start when there are no exposures).
    pub last_exposure: NtpSeconds,
    /// The decision.
    pub decision: RiskDecision,
}

impl RiskEvaluation {
    /// Whether the KPI `usersAboveRiskThresholdButRetentionPeriodExpired`
    /// fires (server-api.md §6.6).
    pub fn retention_expired_kpi(&self) -> bool {
        self.decision == RiskDecision::ExposureTooOld
    }
}

/// The sum of one epoch's contact scores, as Java's `DoubleStream.sum()`
/// computes it (compensated summation).
pub fn epoch_sum(scores: &[f64]) -> f64 {
    compensated_sum(scores.iter().copied())
}

/// Risk evaluation of one registration (server-api.md §4.5,
/// `BatchRegistrationServiceImpl.updateRegistrationIfRisk`).
///
/// ```text
/// S_e      = Σ scores of epoch e                       (compensated sum)
/// risk     = aggregate([S_e for e in exposures if e.epoch > latestRiskEpoch])
/// lastExpo = start(max epoch over ALL exposures, or epoch 0)
/// at risk  ⇔ risk ≥ risk_threshold  ∧  lastExpo > now − last_contact_delay
///   then lastContactTimestamp = randomised_last_contact(lastExpo, r, now, stored)
///        with r uniform in last_contact_offsets(lastExpo, now, retention)
///        latestRiskEpoch = epoch(now)
/// else if risk ≥ risk_threshold: KPI usersAboveRiskThresholdButRetentionPeriodExpired += 1
/// ```
///
/// With the defaults (R0 = 0.0071, threshold 0.1) the risk threshold is
/// reached for `S ≥ −ln(0.9)/0.0071 ≈ 14.8396`, i.e. a bit more than one
/// full epoch of close contact (which scores 14).
pub fn evaluate_risk<R: Rng + ?Sized>(
    exposures: &[EpochExposure],
    state: &RiskState,
    aggregation: Aggregation,
    params: &RiskParams,
    start: &ServiceStart,
    now: NtpSeconds,
    rng: &mut R,
) -> RiskEvaluation {
    let aggregated_risk = aggregation.aggregate_exposures(
        exposures
            .iter()
            .filter(|e| e.epoch > state.latest_risk_epoch),
    );
    let last_epoch = exposures.iter().map(|e| e.epoch).max().unwrap_or(Epoch(0));
    let last_exposure = start.epoch_start(last_epoch);

    let decision = if aggregated_risk >= params.risk_threshold {
        let pivot = i128::from(now.get()) - i128::from(params.last_contact_delay_secs);
        if i128::from(last_exposure.get()) > pivot {
            let offsets = last_contact_offsets(last_exposure, now, params.risk_retention_days);
            let offset = pick_uniform(offsets, rng);
            RiskDecision::AtRisk {
                last_contact: randomised_last_contact(
                    last_exposure,
                    offset,
                    now,
                    state.last_contact,
                ),
                latest_risk_epoch: start.epoch_at(now),
            }
        } else {
            RiskDecision::ExposureTooOld
        }
    } else {
        RiskDecision::BelowThreshold
    };
    RiskEvaluation {
        aggregated_risk,
        last_exposure,
        decision,
    }
}

/// Whole days from `from` to `to`: `(to − from) / 86 400` truncated toward
/// zero (Java `Duration.between(from, to).toDays()`).
fn whole_days(from: NtpSeconds, to: NtpSeconds) -> i128 {
    (i128::from(to.get()) - i128::from(from.get())) / i128::from(SECONDS_PER_DAY)
}

/// The day offsets the last-contact randomisation chooses from
/// (server-api.md §4.5, "lastContactTimestamp randomisation").
///
/// ```text
/// dd = whole days from lastExpo to now          (truncated toward zero)
/// dd = 0              → r ∈ {−1, 0}      (today or yesterday, never tomorrow)
/// dd = retention (7)  → r ∈ { 0, +1}     (keeps the flag's lifetime ≥ 7 days)
/// dd = retention + 1  → r ∈ {−1, 0}
/// otherwise           → r ∈ {−1, 0, +1}
/// ```
pub fn last_contact_offsets(
    last_exposure: NtpSeconds,
    now: NtpSeconds,
    retention_days: u32,
) -> RangeInclusive<i64> {
    let dd = whole_days(last_exposure, now);
    let retention = i128::from(retention_days);
    if dd == 0 {
        -1..=0
    } else if dd == retention {
        0..=1
    } else if dd == retention + 1 {
        -1..=0
    } else {
        -1..=1
    }
}

/// The new `lastContactTimestamp` for a chosen day offset
/// (server-api.md §4.5).
///
/// ```text
/// candidate = utc_midnight(lastExpo + offset days)
/// candidate > now     → utc_midnight(now)            (never in the future)
/// candidate > stored  → candidate                    (only moves forward)
/// otherwise           → stored
/// ```
pub fn randomised_last_contact(
    last_exposure: NtpSeconds,
    offset_days: i64,
    now: NtpSeconds,
    stored: NtpSeconds,
) -> NtpSeconds {
    let shifted =
        i128::from(last_exposure.get()) + i128::from(offset_days) * i128::from(SECONDS_PER_DAY);
    let candidate = NtpSeconds(u64::try_from(shifted.max(0)).unwrap_or(u64::MAX)).utc_midnight();
    if candidate > now {
        now.utc_midnight()
    } else if candidate > stored {
        candidate
    } else {
        stored
    }
}

/// Uniform choice in a small inclusive range (at most a few values).
///
/// Lemire's multiply-shift on 64 random bits: the bias for 2 or 3 values is
/// below 2⁻⁶², and it never loops, even on a degenerate RNG.
fn pick_uniform<R: Rng + ?Sized>(range: RangeInclusive<i64>, rng: &mut R) -> i64 {
    let (low, high) = range.into_inner();
    let span = u128::try_from(i128::from(high) - i128::from(low) + 1).unwrap_or(1);
    let draw = (u128::from(rng.next_u64()) * span) >> 64;
    // draw < span ≤ 3.
    low + i64::try_from(draw).unwrap_or(0)
}

/// Whether the risk-reset step clears the at-risk flag
/// (server-api.md §4.1 step d, `ReassessRiskLevelService`).
///
/// ```text
/// reset ⇔ whole days from lastContactTimestamp to utc_midnight(now) > retention (7)
/// ```
///
/// When it returns true the batch sets `atRisk = false` and
/// `notifiedForCurrentRisk = false` and keeps `isNotified`. A
/// `lastContactTimestamp` of 0 (1900) always resets. The step only looks at
/// registrations with `atRisk == true`.
pub fn risk_reset_due(last_contact: NtpSeconds, now: NtpSeconds, retention_days: u32) -> bool {
    whole_days(last_contact, now.utc_midnight()) > i128::from(retention_days)
}

/// Whether an exposure survives the purge (server-api.md §4.6, step b).
///
/// ```text
/// keep ⇔ current − epoch ≤ contagious_period_days · 86 400 / 900   (1344 for 14 days)
/// ```
///
/// Exposures in future epochs are kept.
pub fn is_exposure_retained(epoch: Epoch, current: Epoch, contagious_period_days: u32) -> bool {
    let keep = u64::from(contagious_period_days) * SECONDS_PER_DAY / EPOCH_DURATION_SECS;
    i64::from(current.get()) - i64::from(epoch.get()) <= i64::try_from(keep).unwrap_or(i64::MAX)
}

/// Removes the exposures older than the contagious period (see
/// [`is_exposure_retained`]) and returns how many were removed. The purge
/// does not re-evaluate the risk.
pub fn purge_exposures(
    exposures: &mut Vec<EpochExposure>,
    current: Epoch,
    contagious_period_days: u32,
) -> usize {
    let before = exposures.len();
    exposures.retain(|e| is_exposure_retained(e.epoch, current, contagious_period_days));
    before - exposures.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = SECONDS_PER_DAY;

    /// 2023-01-13 (a UTC midnight) in NTP seconds.
    const TODAY: u64 = 3_882_556_800;

    #[test]
    fn today_is_a_midnight() {
        assert_eq!(NtpSeconds(TODAY).utc_midnight(), NtpSeconds(TODAY));
        assert_eq!(
            crate::time::UtcDate::of(NtpSeconds(TODAY)),
            crate::time::UtcDate::new(2023, 1, 13).unwrap()
        );
    }

    #[test]
    fn offsets_by_day_distance() {
        let now = NtpSeconds(TODAY + 10 * 3600);
        let ago = |d: u64, extra: u64| NtpSeconds(now.get() - d * DAY - extra);
        assert_eq!(last_contact_offsets(ago(0, 0), now, 7), -1..=0);
        assert_eq!(last_contact_offsets(ago(0, 3600), now, 7), -1..=0);
        // An exposure up to a day in the future also counts as dd = 0.
        assert_eq!(
            last_contact_offsets(NtpSeconds(now.get() + 3600), now, 7),
            -1..=0
        );
        assert_eq!(
            last_contact_offsets(NtpSeconds(now.get() + DAY + 1), now, 7),
            -1..=1
        );
        assert_eq!(last_contact_offsets(ago(1, 0), now, 7), -1..=1);
        assert_eq!(last_contact_offsets(ago(6, 0), now, 7), -1..=1);
        assert_eq!(last_contact_offsets(ago(7, 0), now, 7), 0..=1);
        assert_eq!(last_contact_offsets(ago(7, DAY - 1), now, 7), 0..=1);
        assert_eq!(last_contact_offsets(ago(8, 0), now, 7), -1..=0);
        assert_eq!(last_contact_offsets(ago(9, 0), now, 7), -1..=1);
    }

    #[test]
    fn randomised_last_contact_rules() {
        let now = NtpSeconds(TODAY + 10 * 3600);
        let expo = NtpSeconds(TODAY - 3 * DAY + 15 * 3600);
        let zero = NtpSeconds(0);
        assert_eq!(
            randomised_last_contact(expo, -1, now, zero),
            NtpSeconds(TODAY - 4 * DAY)
        );
        assert_eq!(
            randomised_last_contact(expo, 0, now, zero),
            NtpSeconds(TODAY - 3 * DAY)
        );
        assert_eq!(
            randomised_last_contact(expo, 1, now, zero),
            NtpSeconds(TODAY - 2 * DAY)
        );
        // Never after today: tomorrow's midnight becomes today's.
        let expo_today = NtpSeconds(TODAY + 9 * 3600);
        assert_eq!(
            randomised_last_contact(expo_today, 1, now, zero),
            NtpSeconds(TODAY)
        );
        // A candidate later than now but on the same day is clamped to today too.
        let late = NtpSeconds(TODAY + 23 * 3600);
        assert_eq!(
            randomised_last_contact(late, 0, now, zero),
            NtpSeconds(TODAY)
        );
        // Only moves forward.
        let stored = NtpSeconds(TODAY - DAY);
        assert_eq!(randomised_last_contact(expo, 1, now, stored), stored);
        assert_eq!(
            randomised_last_contact(expo_today, 0, now, stored),
            NtpSeconds(TODAY)
        );
    }

    #[test]
    fn reset_after_more_than_seven_whole_days() {
        let now = NtpSeconds(TODAY + 23 * 3600 + 59 * 60);
        for d in 0..=7 {
            assert!(!risk_reset_due(NtpSeconds(TODAY - d * DAY), now, 7), "{d}");
        }
        for d in 8..=14 {
            assert!(risk_reset_due(NtpSeconds(TODAY - d * DAY), now, 7), "{d}");
        }
        assert!(risk_reset_due(NtpSeconds(0), now, 7));
        // A last contact later than today (clock skew) never resets.
        assert!(!risk_reset_due(NtpSeconds(TODAY + DAY), now, 7));
    }

    #[test]
    fn purge_keeps_1344_epochs() {
        let current = Epoch(26_543);
        assert!(is_exposure_retained(Epoch(26_543 - 1344), current, 14));
        assert!(!is_exposure_retained(Epoch(26_543 - 1345), current, 14));
        assert!(is_exposure_retained(Epoch(26_600), current, 14));
        let mut exposures = vec![
            EpochExposure::new(Epoch(26_543 - 14 * 96 + 1), vec![1.0]),
            EpochExposure::new(Epoch(26_543 - 44 * 96), vec![12.5]),
            EpochExposure::new(Epoch(26_543), vec![2.0]),
        ];
        assert_eq!(purge_exposures(&mut exposures, current, 14), 1);
        assert_eq!(exposures.len(), 2);
        assert_eq!(exposures[0].scores, vec![1.0]);
        let mut empty = Vec::new();
        assert_eq!(purge_exposures(&mut empty, current, 14), 0);
    }

    #[test]
    fn uniform_pick_stays_in_range() {
        struct Constant(u64);
        impl rand_core::TryRng for Constant {
            type Error = core::convert::Infallible;
            fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
                Ok(self.0 as u32)
            }
            fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
                Ok(self.0)
            }
            fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
                dst.fill(0);
                Ok(())
            }
        }
        assert_eq!(pick_uniform(-1..=1, &mut Constant(0)), -1);
        assert_eq!(pick_uniform(-1..=1, &mut Constant(u64::MAX)), 1);
        assert_eq!(pick_uniform(-1..=1, &mut Constant(1 << 63)), 0);
        assert_eq!(pick_uniform(-1..=0, &mut Constant(u64::MAX)), 0);
        assert_eq!(pick_uniform(0..=1, &mut Constant(0)), 0);
    }
}
