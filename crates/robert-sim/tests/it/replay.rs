//! Record once, re-score offline: the offline pipeline (real filter, real
//! scoring, the batch's risk rules) reproduces the online run's alerts
//! phone by phone.

use robert_radio::scenario::Density;
use robert_radio::scenario::Scenario;
use robert_sim::SimOptions;
use robert_sim::recording::Recording;
use robert_sim::replay::{ReplaySettings, replay};

fn recorded(scenario: &Scenario, opts: &SimOptions) -> (robert_sim::SimResult, Recording) {
    let opts = SimOptions {
        record: true,
        ..opts.clone()
    };
    let mut result = robert_sim::run_scenario(scenario, &opts).unwrap();
    let rec = *result.recording.take().expect("a recording");
    (result, rec)
}

/// Offline alerts and scores equal the online ones, phone by phone.
fn assert_equivalent(result: &robert_sim::SimResult, rec: &Recording) {
    let settings = ReplaySettings::online(rec).unwrap();
    let offline = replay(rec, &settings);
    let truth = rec.truth(1.0).unwrap();
    let mut alerts = 0;
    for (i, p) in rec.phones.iter().enumerate() {
        if p.positive {
            continue;
        }
        let online = p.online_alert_s.is_some();
        alerts += usize::from(online);
        assert_eq!(
            offline.alerted[i], online,
            "{}: phone {i}: offline {} online {} (S offline {}, online {})",
            rec.scenario, offline.alerted[i], online, offline.score_sum[i], p.online_score
        );
        let (a, b) = (offline.score_sum[i], p.online_score);
        assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(1.0),
            "{}: phone {i}: S offline {a}, online {b}",
            rec.scenario
        );
        let row = result
            .phone_outcomes
            .iter()
            .find(|o| o.person as usize == i)
            .unwrap();
        assert_eq!(
            truth[i], row.truth_at_risk,
            "{}: truth of phone {i}",
            rec.scenario
        );
    }
    assert!(
        alerts > 0,
        "{}: a test without alerts proves little",
        rec.scenario
    );
}

#[test]
fn offline_replay_reproduces_the_online_run() {
    let small = Scenario::from_toml_str(robert_sim::scenarios::SMALL).unwrap();
    let (result, rec) = recorded(&small, &SimOptions::fast());
    assert!(rec.hello_count() > 100);
    assert_eq!(rec.reports.len(), 2);
    assert_equivalent(&result, &rec);

    // A crowded FAQ cell: many contacts, many alerts.
    let cells = robert_sim::scenarios::faq_matrix(1).unwrap();
    let (_, cell) = cells
        .iter()
        .find(|(c, _)| c.density == Density::High && !c.moving)
        .unwrap();
    let (result, rec) = recorded(cell, &SimOptions::fast());
    assert_equivalent(&result, &rec);
}

#[test]
fn offline_replay_follows_other_thresholds() {
    let cells = robert_sim::scenarios::faq_matrix(3).unwrap();
    let (_, cell) = cells
        .iter()
        .find(|(c, _)| c.density == Density::Low && !c.moving)
        .unwrap();
    let mut opts = SimOptions::fast();
    opts.knobs.filter.risk_threshold = 0.3;
    opts.knobs.filter.duration_threshold_secs = 300;
    opts.knobs.scoring.p0 = -60.0;
    opts.knobs.risk_threshold = 0.05;
    let (result, rec) = recorded(cell, &opts);
    assert_equivalent(&result, &rec);
}

#[test]
fn a_recording_survives_a_round_trip_through_a_file() {
    let small = Scenario::from_toml_str(robert_sim::scenarios::SMALL).unwrap();
    let (_, rec) = recorded(&small, &SimOptions::fast());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.json.gz");
    rec.save(&path).unwrap();
    let back = Recording::load(&path).unwrap();
    // HELLOs and times exactly; computed floats within JSON's precision.
    assert_eq!(back.reports, rec.reports);
    assert_eq!(back.batches_s, rec.batches_s);
    assert_eq!(back.phones.len(), rec.phones.len());
    for (a, b) in back.exposures.iter().zip(&rec.exposures) {
        assert_eq!((a.case, a.phone), (b.case, b.phone));
        for (x, y) in a.max_day_s.iter().zip(&b.max_day_s) {
            assert!((x - y).abs() < 1e-6);
        }
    }
    std::fs::write(&path, b"not gzip").unwrap();
    assert!(Recording::load(&path).is_err());
}

#[test]
fn an_offline_anchor_shift_is_a_simulation_at_that_anchor() {
    // The same cell simulated at anchor −50 and replayed offline from the
    // −35 recording shifted by −15: the same alerts and scores.
    let cells = robert_sim::scenarios::faq_matrix(5).unwrap();
    let (_, cell) = cells
        .iter()
        .find(|(c, _)| c.density == Density::High && !c.moving)
        .unwrap();
    let (_, rec) = recorded(cell, &SimOptions::fast());
    let mut low = cell.clone();
    low.radio.anchor_db = -50.0;
    let (_, rec_low) = recorded(&low, &SimOptions::fast());
    let shifted = replay(
        &rec,
        &ReplaySettings {
            anchor_shift_db: -15,
            ..ReplaySettings::online(&rec).unwrap()
        },
    );
    let mut alerts = 0;
    for (i, p) in rec_low.negatives() {
        assert_eq!(shifted.alerted[i], p.online_alert_s.is_some(), "phone {i}");
        assert!(
            (shifted.score_sum[i] - p.online_score).abs() <= 1e-9 * p.online_score.abs().max(1.0)
        );
        alerts += usize::from(shifted.alerted[i]);
    }
    // The shift matters: fewer alerts than at −35.
    let base = replay(&rec, &ReplaySettings::online(&rec).unwrap());
    assert!(
        alerts < base.alerted.iter().filter(|a| **a).count(),
        "{alerts}"
    );
}
