//! A small scenario end to end: a dozen real SDK phones, a few hours, the
//! real server, code service and batch in process.

use robert_radio::scenario::Scenario;
use robert_sim::{CodeSource, SimOptions, run_scenario};

fn small() -> Scenario {
    Scenario::from_toml_str(robert_sim::scenarios::SMALL).unwrap()
}

#[test]
fn an_hour_at_half_a_metre_is_alerted_a_loner_is_not() {
    let scenario = small();
    let world = scenario.build().unwrap();
    let desk = world.members("desk").unwrap().to_vec();
    let loner = world.members("loner").unwrap()[0];
    let result = run_scenario(&scenario, &SimOptions::fast()).unwrap();

    assert_eq!(result.people, 11);
    assert_eq!(result.counts.registrations, 11);
    assert_eq!(result.counts.reports, 2, "{:?}", result.positives);
    let codes: Vec<CodeSource> = result.positives.iter().map(|p| p.code).collect();
    assert_eq!(
        codes,
        [CodeSource::LabLongCode, CodeSource::DoctorShortCode]
    );
    assert!(result.counts.hellos_recorded > 100);
    assert!(result.counts.batch_runs >= 1);

    let contact = result
        .phone_outcomes
        .iter()
        .find(|p| p.person == desk[1])
        .unwrap();
    assert!(
        contact.truth_at_risk,
        "90 min at 0.5 m is a contact at risk"
    );
    assert!(
        contact.first_alert_s.is_some(),
        "and it is alerted: {contact:?}"
    );
    assert_eq!(contact.risk_level, 4.0);

    let alone = result
        .phone_outcomes
        .iter()
        .find(|p| p.person == loner)
        .unwrap();
    assert!(!alone.truth_at_risk);
    assert!(alone.first_alert_s.is_none());
    assert_eq!(alone.server_score, 0.0);

    // Phone level: 9 phones (11 minus 2 positives); the desk contact is a
    // true positive, the loner a true negative.
    assert_eq!(result.phones.total(), 9);
    assert!(result.phones.tp >= 1);
    assert!(result.phones.tn >= 1);
    // Pair level: 2 cases × 9 phones.
    assert_eq!(result.pairs.total(), 18);
    let by_os: u64 = result.by_os_pair.values().map(|c| c.total()).sum();
    assert_eq!(by_os, 18);
    assert!(!result.rssi_samples.is_empty());
    assert!(
        result
            .timeline
            .iter()
            .any(|a| a.person == desk[1] && a.truth)
    );
}

#[test]
fn same_seed_same_results_and_a_complete_report() {
    let scenario = small();
    let a = run_scenario(&scenario, &SimOptions::fast()).unwrap();
    let b = run_scenario(&scenario, &SimOptions::fast()).unwrap();
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.phones, b.phones);
    assert_eq!(a.pairs, b.pairs);
    assert_eq!(a.timeline, b.timeline);
    assert_eq!(a.rssi_samples, b.rssi_samples);
    let scores = |r: &robert_sim::SimResult| {
        r.phone_outcomes
            .iter()
            .map(|p| p.server_score)
            .collect::<Vec<_>>()
    };
    assert_eq!(scores(&a), scores(&b));

    let dir = tempfile::tempdir().unwrap();
    let files = robert_sim::report::write_report(dir.path(), "CI report", &[a]).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("## Overall (phone level)"));
    assert!(md.contains("| ci-small |"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json[0]["scenario"], "ci-small");
    assert_eq!(files.plots.len(), 6);
    for p in &files.plots {
        let bytes = std::fs::read(p).unwrap();
        if p.extension().unwrap() == "png" {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", p.display());
            // A 1000×640 plot with axes, points and text compresses to well
            // over a few kilobytes; a blank image would not.
            assert!(
                bytes.len() > 10_000,
                "{} is {} bytes",
                p.display(),
                bytes.len()
            );
        } else {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.starts_with("<svg"), "{}", p.display());
            assert!(text.contains("<text"), "SVG has labels");
            assert!(text.len() > 5_000);
        }
    }
}

/// The same run over real HTTP on 127.0.0.1 (reqwest, the `robert serve`
/// serving code) gives the same outcome as in process. The phones keep the
/// app's 120 s check of their clock against the server's `Date`, which the
/// server stamps with its (simulated) clock: no request may fail on it.
#[test]
fn http_on_loopback_gives_the_in_process_outcome() {
    let scenario = small();
    let in_process = run_scenario(&scenario, &SimOptions::fast()).unwrap();
    let http = run_scenario(
        &scenario,
        &SimOptions {
            transport: robert_sim::TransportMode::Http,
            ..SimOptions::fast()
        },
    )
    .unwrap();
    assert_eq!(http.counts.registration_failures, 0);
    assert_eq!(http.counts.status_failures, 0);
    assert_eq!(http.counts.report_failures, 0);
    assert!(http.counts.status_requests > 0);
    assert_eq!(http.counts, in_process.counts);
    assert_eq!(http.phones, in_process.phones);
    assert_eq!(http.pair_outcomes, in_process.pair_outcomes);
}

/// The large-population settings (lazy registration, final status only,
/// HELLOs stored by future positive cases only) reach the same alerts.
#[test]
fn large_population_mode_reaches_the_same_alerts() {
    let scenario = small();
    let full = run_scenario(&scenario, &SimOptions::fast()).unwrap();
    let lean = run_scenario(
        &scenario,
        &SimOptions {
            keep_phone_outcomes: true,
            ..SimOptions::large_population()
        },
    )
    .unwrap();
    let alerted = |r: &robert_sim::SimResult| {
        r.phone_outcomes
            .iter()
            .map(|p| p.risk_level >= 4.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(alerted(&lean), alerted(&full));
    assert_eq!(lean.phones, full.phones);
    assert!(lean.counts.hellos_not_stored > 0);
    assert!(lean.counts.hellos_recorded < full.counts.hellos_recorded);
    assert_eq!(lean.counts.reported_hellos, full.counts.reported_hellos);
}

/// A calibration rerun: the same seed gives the same radio and uploads, and
/// a stricter risk threshold only removes alerts, consistently with the
/// server scores the result reports.
#[test]
fn stricter_thresholds_rerun_the_same_radio() {
    let scenario = small();
    let base = run_scenario(&scenario, &SimOptions::fast()).unwrap();
    let mut strict = SimOptions::fast();
    strict.knobs.risk_threshold = 0.6;
    let strict = run_scenario(&scenario, &strict).unwrap();
    assert_eq!(strict.counts.radio_receptions, base.counts.radio_receptions);
    assert_eq!(strict.counts.reported_hellos, base.counts.reported_hellos);
    assert_eq!(strict.knobs.risk_threshold, 0.6);
    for (s, b) in strict.phone_outcomes.iter().zip(&base.phone_outcomes) {
        assert_eq!(s.server_score, b.server_score);
        // Alerted iff 1 − exp(−R0·S) ≥ threshold (scores are from this run's batch).
        assert_eq!(
            s.risk_level >= 4.0,
            !s.positive && s.server_risk >= 0.6,
            "{s:?}"
        );
        assert!(s.risk_level < 4.0 || b.risk_level >= 4.0);
    }
    assert!(
        strict.counts.alerts < base.counts.alerts,
        "{} vs {}",
        strict.counts.alerts,
        base.counts.alerts
    );
}

/// The scenario's anchor reaches the phones: the same radio (receptions,
/// raw RSSI, HELLOs recorded) with every calibrated RSSI lower by the
/// anchor's difference, and at −100 dB nothing scores any more, which can
/// only happen if the SDK phones calibrate with the shifted table.
#[test]
fn the_anchor_moves_calibrated_rssi_in_the_phones_only() {
    let scenario = small();
    let base = run_scenario(&scenario, &SimOptions::fast()).unwrap();
    let mut low = scenario;
    low.radio.anchor_db = -100.0;
    let low = run_scenario(&low, &SimOptions::fast()).unwrap();
    assert_eq!(low.counts.radio_receptions, base.counts.radio_receptions);
    assert_eq!(low.counts.hellos_recorded, base.counts.hellos_recorded);
    assert_eq!(low.rssi_samples.len(), base.rssi_samples.len());
    assert!(!base.rssi_samples.is_empty());
    for (l, b) in low.rssi_samples.iter().zip(&base.rssi_samples) {
        assert_eq!(
            (l.rssi_raw, l.via, l.distance_m),
            (b.rssi_raw, b.via, b.distance_m)
        );
        if l.via != "partial-rssi-write" {
            assert_eq!(l.rssi_calibrated, b.rssi_calibrated - 65, "{l:?}");
        }
    }
    assert!(base.counts.alerts > 0);
    assert_eq!(low.counts.alerts, 0);
    assert!(base.phone_outcomes.iter().any(|p| p.server_score > 0.0));
    assert!(low.phone_outcomes.iter().all(|p| p.server_score == 0.0));
}
