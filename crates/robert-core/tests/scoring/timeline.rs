//! The e2e acceptance scenarios of server-api.md §7 that concern scoring and
//! the risk rules, replayed with the miniature batch of `support`: HELLOs as
//! the harness sends them (one per second, RSSI in [−10, 2]), scored with v2,
//! evaluated, reset and purged by the pure functions.
//!
//! Every scenario runs for several times of day and RNG seeds, so both
//! branches of the last-contact randomisation are exercised.

use robert_core::scoring::{RiskDecision, RiskParams, Scoring, risk_reset_due};
use robert_core::time::{NtpSeconds, ServiceStart, UtcDate};

use crate::support::{DAY, HOUR, MINUTE, Registration, SplitMix, nows, proximity, run_batch};

const SEEDS: u64 = 16;

fn start() -> ServiceStart {
    ServiceStart::REFERENCE
}

/// "John and Sarah in proximity 60 min, X ago; Sarah reports today; batch"
/// (positive-declaration outlines 6 and 7): is John at risk afterwards?
fn john_at_risk_after_contact(ago: u64, now: NtpSeconds, seed: u64) -> bool {
    let mut rng = SplitMix(seed);
    let contacts = proximity(&start(), now.minus(ago), 60 * MINUTE, &mut rng);
    let mut john = Registration::default();
    run_batch(&mut john, &contacts, now, &mut rng);
    john.at_risk
}

#[test]
fn positive_declaration_at_risk_for_contacts_up_to_7_days_30_min_ago() {
    let agos = [1, 2, 3, 4, 5, 6, 7]
        .map(|d| d * DAY)
        .into_iter()
        .chain([7 * DAY + 30 * MINUTE]);
    for ago in agos {
        for now in nows() {
            for seed in 0..SEEDS {
                assert!(
                    john_at_risk_after_contact(ago, now, seed),
                    "ago {ago} s, now {now}"
                );
            }
        }
    }
}

#[test]
fn positive_declaration_not_at_risk_from_7_days_1_h_15_min_ago() {
    let agos = [7 * DAY + HOUR + 15 * MINUTE]
        .into_iter()
        .chain((8..=16).map(|d| d * DAY));
    for ago in agos {
        for now in nows() {
            for seed in 0..4 {
                assert!(
                    !john_at_risk_after_contact(ago, now, seed),
                    "ago {ago} s, now {now}"
                );
            }
        }
    }
}

#[test]
fn positive_declaration_short_and_long_contacts() {
    for now in nows() {
        for seed in 0..SEEDS {
            let mut rng = SplitMix(seed);
            // 5 minutes now: score ≈ 4 < 14.84 → not at risk.
            let contacts = proximity(&start(), now.minus(5 * MINUTE), 5 * MINUTE, &mut rng);
            let mut sarah = Registration::default();
            let outcome = run_batch(&mut sarah, &contacts, now, &mut rng);
            assert!(!sarah.at_risk);
            let evaluation = outcome.evaluation.unwrap();
            assert_eq!(evaluation.decision, RiskDecision::BelowThreshold);
            let total: f64 = sarah.exposed.iter().flat_map(|e| &e.scores).sum();
            assert!((3.0..=4.0).contains(&total), "{total}");

            // 48 hours, 3 days ago → at risk.
            let contacts = proximity(&start(), now.minus(3 * DAY), 48 * HOUR, &mut rng);
            let mut john = Registration::default();
            run_batch(&mut john, &contacts, now, &mut rng);
            assert!(john.at_risk);
        }
    }
}

#[test]
fn sixty_minutes_of_close_contact_scores_about_four_epochs() {
    // server-api.md §4.4: "a full epoch of close contact scores ≈ 14, a full
    // hour ≈ 4 × 14". Aligned hour: exactly 4 × 14.
    let scoring = Scoring::default();
    let mut rng = SplitMix(7);
    let aligned = start().epoch_start(start().epoch_at(nows()[0]));
    let contacts = proximity(&start(), aligned, 60 * MINUTE, &mut rng);
    assert_eq!(contacts.len(), 4);
    let total: f64 = contacts
        .iter()
        .map(|(_, h)| scoring.score(h).unwrap().score)
        .sum();
    assert_eq!(total, 56.0);
}

#[test]
fn time_risk_evolution() {
    // "Sarah and John 60 min at X and John reported then (batch at X); today
    // the batch runs": Sarah still at risk for X ∈ {1 d, 2 d, 6 d, 6 d at
    // 00:01}, no longer for X ∈ {8 d at 23:59, 8 d, 10 d, 15 d}.
    // "N d at HH:MM" = (now − N days) truncated to the day, plus HH:MM.
    enum When {
        Ago(u64),
        DayAt(u64, u64),
    }
    let cases = [
        (When::Ago(DAY), true),
        (When::Ago(2 * DAY), true),
        (When::Ago(6 * DAY), true),
        (When::DayAt(6, MINUTE), true),
        (When::DayAt(8, 23 * HOUR + 59 * MINUTE), false),
        (When::Ago(8 * DAY), false),
        (When::Ago(10 * DAY), false),
        (When::Ago(15 * DAY), false),
    ];
    for (when, still_at_risk) in cases {
        for now in nows() {
            for seed in 0..SEEDS {
                let mut rng = SplitMix(seed);
                let x = match when {
                    When::Ago(ago) => now.minus(ago),
                    When::DayAt(days, secs) => now.minus(days * DAY).utc_midnight().plus(secs),
                };
                let contacts = proximity(&start(), x, 60 * MINUTE, &mut rng);
                let mut sarah = Registration::default();
                run_batch(&mut sarah, &contacts, x, &mut rng);
                assert!(sarah.at_risk, "flagged at X = {x}");
                let outcome = run_batch(&mut sarah, &[], now, &mut rng);
                assert!(outcome.evaluation.is_none(), "no new scores today");
                assert_eq!(
                    sarah.at_risk, still_at_risk,
                    "X = {x}, now = {now}, seed {seed}"
                );
                assert_eq!(outcome.reset, !still_at_risk);
            }
        }
    }
}

#[test]
fn kpi_users_above_threshold_but_retention_expired() {
    // kpis.feature 1–4: 60 min 8 days ago, report and batch today → the KPI
    // fires and the user is not at risk; 6 days ago → at risk, no KPI.
    for now in nows() {
        for seed in 0..SEEDS {
            let mut rng = SplitMix(seed);
            let old = proximity(&start(), now.minus(8 * DAY), 60 * MINUTE, &mut rng);
            let mut sarah = Registration::default();
            let evaluation = run_batch(&mut sarah, &old, now, &mut rng)
                .evaluation
                .unwrap();
            assert!(evaluation.retention_expired_kpi());
            assert!(evaluation.aggregated_risk >= 0.1);
            assert!(!sarah.at_risk);

            let recent = proximity(&start(), now.minus(6 * DAY), 60 * MINUTE, &mut rng);
            let mut paul = Registration::default();
            let evaluation = run_batch(&mut paul, &recent, now, &mut rng)
                .evaluation
                .unwrap();
            assert!(!evaluation.retention_expired_kpi());
            assert!(paul.at_risk);
        }
    }
}

#[test]
fn cnam_last_contact_dates() {
    let now = nows()[0]; // 10:37, so a 60-minute contact stays within its day
    let date = UtcDate::of;
    let days_between = |a: NtpSeconds, b: NtpSeconds| {
        date(b).days_since_unix_epoch() - date(a).days_since_unix_epoch()
    };
    for seed in 0..SEEDS {
        let mut rng = SplitMix(seed);
        // 1. 60 min 4 days ago, report today: lastContactDate within ±1 day of 4 days ago.
        let contacts = proximity(&start(), now.minus(4 * DAY), 60 * MINUTE, &mut rng);
        let mut sarah = Registration::default();
        run_batch(&mut sarah, &contacts, now, &mut rng);
        assert!(sarah.at_risk);
        let d = days_between(now.minus(4 * DAY), sarah.state.last_contact);
        assert!((-1..=1).contains(&d), "{d}");

        // 2. 60 min 7 days ago, reported and batched then; 60 min 2 hours
        // ago with someone else, reported today: lastContactDate within ±1
        // day of now, latestRiskEpoch moves to now.
        let mut sarah = Registration::default();
        let old = proximity(&start(), now.minus(7 * DAY), 60 * MINUTE, &mut rng);
        run_batch(&mut sarah, &old, now.minus(7 * DAY), &mut rng);
        assert!(sarah.at_risk);
        let first_risk_epoch = sarah.state.latest_risk_epoch;
        let recent = proximity(&start(), now.minus(2 * HOUR), 60 * MINUTE, &mut rng);
        run_batch(&mut sarah, &recent, now, &mut rng);
        assert!(sarah.at_risk);
        let d = days_between(now, sarah.state.last_contact);
        assert!((-1..=0).contains(&d), "{d}");
        assert!(sarah.state.latest_risk_epoch > first_risk_epoch);
        assert_eq!(sarah.state.latest_risk_epoch, start().epoch_at(now));
    }
}

#[test]
fn privacy_exposures_purged_after_14_days() {
    // privacy.feature: 60 min 15 days ago, reported and batched then; today's
    // batch purges the exposures and resets the flag.
    for now in nows() {
        let mut rng = SplitMix(3);
        let x = now.minus(15 * DAY);
        let contacts = proximity(&start(), x, 60 * MINUTE, &mut rng);
        let mut sarah = Registration::default();
        run_batch(&mut sarah, &contacts, x, &mut rng);
        assert!(sarah.at_risk);
        assert!(!sarah.exposed.is_empty());
        let outcome = run_batch(&mut sarah, &[], now, &mut rng);
        assert_eq!(outcome.purged, contacts.len());
        assert!(sarah.exposed.is_empty());
        assert!(!sarah.at_risk && outcome.reset);
    }
}

#[test]
fn a_new_risk_needs_new_exposures_after_the_last_detection() {
    // Only epochs after latestRiskEpoch count: re-scoring the same user with a
    // small new contact does not re-flag on the strength of the old ones.
    let now = nows()[0];
    let mut rng = SplitMix(11);
    let mut hugo = Registration::default();
    let first = proximity(&start(), now.minus(3 * HOUR), 60 * MINUTE, &mut rng);
    run_batch(&mut hugo, &first, now.minus(HOUR), &mut rng);
    assert!(hugo.at_risk);
    let before = hugo.state;
    let small = proximity(&start(), now.minus(20 * MINUTE), 5 * MINUTE, &mut rng);
    let evaluation = run_batch(&mut hugo, &small, now, &mut rng)
        .evaluation
        .unwrap();
    assert_eq!(evaluation.decision, RiskDecision::BelowThreshold);
    assert_eq!(hugo.state, before);
    assert!(hugo.at_risk, "the earlier flag stands");
}

#[test]
fn threshold_examples_of_the_notes() {
    // server-api.md §4.5: S = 20 → 0.1324 at risk; 17.3 → 0.1156 at risk;
    // 13.5 → 0.0914 not; 7.3 not; boundary S ≥ 14.84.
    use robert_core::scoring::{EpochExposure, RiskState, evaluate_risk};
    let now = nows()[0];
    let epoch = start().epoch_at(now.minus(HOUR));
    let evaluate = |scores: Vec<f64>| {
        evaluate_risk(
            &[EpochExposure::new(epoch, scores)],
            &RiskState::default(),
            Scoring::default().aggregation(),
            &RiskParams::default(),
            &start(),
            now,
            &mut SplitMix(1),
        )
    };
    for (scores, risk, at_risk) in [
        (vec![20.0], 0.1324, true),
        (vec![14.0, 3.3], 0.1156, true),
        (vec![13.5], 0.0914, false),
        (vec![7.3], 0.0505, false),
    ] {
        let e = evaluate(scores);
        assert!(
            (e.aggregated_risk - risk).abs() < 5e-5,
            "{}",
            e.aggregated_risk
        );
        assert_eq!(matches!(e.decision, RiskDecision::AtRisk { .. }), at_risk);
    }
    assert!(matches!(
        evaluate(vec![14.84]).decision,
        RiskDecision::AtRisk { .. }
    ));
    assert_eq!(evaluate(vec![14.83]).decision, RiskDecision::BelowThreshold);
    assert_eq!(evaluate(vec![]).decision, RiskDecision::BelowThreshold);
}

#[test]
fn reset_rule_by_whole_days() {
    // ReassessRiskLevelServiceTest: not reset for a last contact 1..7 days
    // before today's midnight, reset for 8..14 days.
    for now in nows() {
        let today = now.utc_midnight();
        for days in 1..=7 {
            assert!(!risk_reset_due(today.minus(days * DAY), now, 7));
        }
        for days in 8..=14 {
            assert!(risk_reset_due(today.minus(days * DAY), now, 7));
        }
    }
}
