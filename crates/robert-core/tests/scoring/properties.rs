//! Property tests: scores, aggregation, risk randomisation and the filter.

use proptest::prelude::*;
use robert_core::filter::{FilterMode, FilterOutcome, ProximityFilter, Rejection, RssiSample};
use robert_core::scoring::{
    Aggregation, EpochExposure, RiskDecision, RiskParams, RiskState, ScoringInput, ScoringV0,
    ScoringV2, evaluate_risk, last_contact_offsets, randomised_last_contact,
};
use robert_core::time::{Epoch, NtpSeconds, SECONDS_PER_DAY, ServiceStart};

use crate::support::SplitMix;

/// 2023-01-13 00:00 UTC.
const TODAY: u64 = 3_882_556_800;

fn hellos() -> impl Strategy<Value = Vec<ScoringInput>> {
    let near = (0u64..2_000, any::<i32>())
        .prop_map(|(dt, rssi)| ScoringInput::new(NtpSeconds(TODAY + dt), rssi));
    let anywhere =
        (any::<u64>(), -120i32..10).prop_map(|(t, rssi)| ScoringInput::new(NtpSeconds(t), rssi));
    prop_oneof![
        prop::collection::vec(near, 1..200),
        prop::collection::vec(anywhere, 1..20),
    ]
}

proptest! {
    #[test]
    fn v2_scores_are_finite_and_bounded_by_kmax(hellos in hellos()) {
        let r = ScoringV2::default().score(&hellos).unwrap();
        prop_assert!(r.score.is_finite());
        prop_assert!(r.score >= 0.0 && r.score <= f64::from(r.kmax));
        prop_assert!((0.0..=1.0).contains(&r.score_per_minute));
        prop_assert!(r.kmax <= 14 && r.nb_contacts <= 15);
        prop_assert_eq!(r.score, r.score_per_minute * f64::from(r.kmax));
    }

    #[test]
    fn v0_scores_are_finite(hellos in hellos()) {
        let r = ScoringV0::default().score(&hellos).unwrap();
        prop_assert!(r.score.is_finite());
    }

    #[test]
    fn v0_scores_are_positive_for_sorted_hellos(mut hellos in hellos()) {
        hellos.sort_by_key(|h| h.time_collected);
        let r = ScoringV0::default().score(&hellos).unwrap();
        prop_assert!(r.score >= 0.0);
    }

    #[test]
    fn aggregation_is_a_probability_and_monotone(a in 0.0f64..5_000.0, b in 0.0f64..5_000.0) {
        let agg = Aggregation::Exponential { r0: 0.0071 };
        let (ra, rb) = (agg.aggregate([a]), agg.aggregate([b]));
        prop_assert!((0.0..1.0).contains(&ra));
        if a <= b {
            prop_assert!(ra <= rb);
        } else {
            prop_assert!(ra >= rb);
        }
    }

    #[test]
    fn aggregation_of_many_scores_stays_in_unit_interval(scores in prop::collection::vec(0.0f64..14.0, 0..2_000)) {
        let risk = Aggregation::Exponential { r0: 0.0071 }.aggregate(scores.iter().copied());
        prop_assert!((0.0..=1.0).contains(&risk));
    }

    #[test]
    fn randomised_last_contact_invariants(
        expo_offset in -20 * 86_400i64..2 * 86_400,
        now_secs in 0u64..86_400,
        stored_days_ago in prop::option::of(0u64..30),
        seed in any::<u64>(),
    ) {
        let now = NtpSeconds(TODAY + now_secs);
        let last_exposure = NtpSeconds(now.get().checked_add_signed(expo_offset).unwrap());
        // Stored values are UTC midnights not after today, or 0 (never).
        let stored = stored_days_ago.map_or(NtpSeconds(0), |d| NtpSeconds(TODAY - d * SECONDS_PER_DAY));
        let offsets = last_contact_offsets(last_exposure, now, 7);
        prop_assert!(offsets.start() >= &-1 && offsets.end() <= &1 && offsets.start() < offsets.end());
        let allowed: Vec<NtpSeconds> = offsets
            .clone()
            .map(|r| NtpSeconds(last_exposure.get().checked_add_signed(r * 86_400).unwrap()).utc_midnight())
            .collect();
        for r in offsets {
            let out = randomised_last_contact(last_exposure, r, now, stored);
            prop_assert_eq!(out, out.utc_midnight());
            prop_assert!(out <= now);
            prop_assert!(out >= stored);
            prop_assert!(out == stored || out == now.utc_midnight() || allowed.contains(&out));
        }

        // The same through the evaluation, with a real RNG.
        let start = ServiceStart::REFERENCE;
        let epoch = start.epoch_at(last_exposure);
        let evaluation = evaluate_risk(
            &[EpochExposure::new(epoch, vec![30.0])],
            &RiskState { latest_risk_epoch: Epoch(0), last_contact: stored },
            Aggregation::Exponential { r0: 0.0071 },
            &RiskParams::default(),
            &start,
            now,
            &mut SplitMix(seed),
        );
        let fresh = evaluation.last_exposure.get() + 7 * SECONDS_PER_DAY > now.get();
        match evaluation.decision {
            RiskDecision::AtRisk { last_contact, latest_risk_epoch } => {
                prop_assert!(fresh);
                prop_assert_eq!(latest_risk_epoch, start.epoch_at(now));
                prop_assert_eq!(last_contact, last_contact.utc_midnight());
                prop_assert!(last_contact <= now && last_contact >= stored);
                let expo = evaluation.last_exposure;
                let allowed: Vec<NtpSeconds> = last_contact_offsets(expo, now, 7)
                    .map(|r| NtpSeconds(expo.get().checked_add_signed(r * 86_400).unwrap()).utc_midnight())
                    .collect();
                prop_assert!(last_contact == stored || last_contact == now.utc_midnight() || allowed.contains(&last_contact));
            }
            RiskDecision::ExposureTooOld => prop_assert!(!fresh),
            RiskDecision::BelowThreshold => prop_assert!(false, "S = 30 is above the threshold"),
        }
    }

    #[test]
    fn filter_never_panics_nor_yields_nan(
        samples in prop::collection::vec((any::<u64>(), any::<i32>()), 0..50),
        near in prop::collection::vec((0u64..1_200, -120i32..20), 0..300),
        duplicate in any::<bool>(),
    ) {
        let filter = ProximityFilter::default();
        let mut all: Vec<RssiSample> = samples
            .iter()
            .map(|&(t, r)| RssiSample::new(NtpSeconds(t), r))
            .chain(near.iter().map(|&(dt, r)| RssiSample::new(NtpSeconds(TODAY + dt), r)))
            .collect();
        if duplicate && !all.is_empty() {
            let copy = all.clone();
            all.extend(copy);
        }
        for part in [&all[..], &all[..all.len().min(1)], &near_only(&near)] {
            for mode in [FilterMode::Full, FilterMode::Medium, FilterMode::Risks] {
                check_outcome(part, mode, filter.filter(part, mode))?;
                check_outcome(part, mode, filter.filter_in_epoch(part, NtpSeconds(TODAY), mode))?;
            }
        }
    }
}

fn near_only(near: &[(u64, i32)]) -> Vec<RssiSample> {
    near.iter()
        .map(|&(dt, r)| RssiSample::new(NtpSeconds(TODAY + dt), r))
        .collect()
}

fn check_outcome(
    input: &[RssiSample],
    mode: FilterMode,
    outcome: FilterOutcome,
) -> Result<(), TestCaseError> {
    let analysis = match outcome {
        FilterOutcome::Accepted(a) => {
            prop_assert_eq!(a.rssi.len(), input.len());
            for (out, sample) in a.rssi.iter().zip(input) {
                if mode == FilterMode::Full || sample.rssi <= -25 {
                    prop_assert_eq!(*out, sample.rssi);
                } else {
                    prop_assert!(*out <= -25);
                }
            }
            prop_assert_eq!(a.analysis.is_none(), mode == FilterMode::Full);
            a.analysis
        }
        FilterOutcome::Rejected(Rejection::DurationTooShort { .. }) => None,
        FilterOutcome::Rejected(Rejection::RiskTooLow(analysis)) => {
            prop_assert_eq!(mode, FilterMode::Risks);
            Some(analysis)
        }
        FilterOutcome::Rejected(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
    };
    if let Some(analysis) = analysis {
        prop_assert_eq!(analysis.window_risks.len(), 15);
        prop_assert!(
            analysis
                .window_risks
                .iter()
                .all(|w| (0.0..=1.0).contains(w))
        );
        if let Some(mean) = analysis.mean_peak {
            prop_assert!(mean.is_finite());
        }
        if let Some(risk) = analysis.risk {
            prop_assert!(risk.risk.is_finite() && risk.risk >= 0.0);
            prop_assert!(risk.intermediate_risk.is_finite());
            prop_assert!(risk.duration_minutes.is_finite());
        }
    }
    Ok(())
}
