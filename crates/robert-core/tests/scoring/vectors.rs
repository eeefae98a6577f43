//! The reference's scoring v2 vectors (`ScoringAlgorithmV2Test`, robert-server
//! tag 1.19.3; see `tests/data/scoring-v2/README.md`): every contact's
//! `score_per_minute`, `kmax` and `nb_contacts`, and both datasets'
//! aggregated risks, to 1e-12 relative error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use robert_core::scoring::{Aggregation, ScoringInput, ScoringV2, V2Params};
use robert_core::time::NtpSeconds;

const TOLERANCE: f64 = 1e-12;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scoring-v2")
}

/// Relative comparison; an expected 0 must be exactly 0.
fn assert_close(actual: f64, expected: f64, what: &str) {
    if expected == 0.0 {
        assert_eq!(actual, 0.0, "{what}");
    } else {
        let relative = ((actual - expected) / expected).abs();
        assert!(
            relative <= TOLERANCE,
            "{what}: {actual} vs {expected} (relative error {relative:e})"
        );
    }
}

/// Reads one contact file (columns by header name, rows in file order).
fn read_contact(path: &Path) -> Vec<ScoringInput> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name).unwrap();
    let (time, rssi) = (column("timeCollectedOnDevice"), column("rssiCalibrated"));
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            ScoringInput::new(
                NtpSeconds(record[time].trim().parse().unwrap()),
                record[rssi].trim().parse().unwrap(),
            )
        })
        .collect()
}

struct Expected {
    score_per_minute: f64,
    kmax: u32,
    nb_contacts: u32,
}

fn expected() -> BTreeMap<String, Expected> {
    let mut reader = csv::Reader::from_path(data_dir().join("expected.csv")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let e = Expected {
                score_per_minute: r[1].parse().unwrap(),
                kmax: r[2].parse().unwrap(),
                nb_contacts: r[3].parse().unwrap(),
            };
            (r[0].to_owned(), e)
        })
        .collect()
}

fn files_of(dataset: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(data_dir().join(dataset))
        .unwrap()
        .map(|e| format!("{dataset}/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".csv"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_file_has_an_expected_row_and_conversely() {
    let expected = expected();
    let mut on_disk = files_of("C4_20_A");
    assert_eq!(on_disk.len(), 58);
    let r1 = files_of("R1_AA");
    assert_eq!(r1.len(), 69);
    on_disk.extend(r1);
    let listed: Vec<&String> = expected.keys().collect();
    assert_eq!(listed, on_disk.iter().collect::<Vec<_>>());
}

fn check_all_contacts(scoring: &ScoringV2) -> usize {
    let mut checked = 0;
    for (file, e) in expected() {
        let hellos = read_contact(&data_dir().join(&file));
        let r = scoring.score(&hellos).unwrap();
        assert!(!r.skipped_too_late, "{file}");
        assert_eq!(r.kmax, e.kmax, "{file}: kmax");
        assert_eq!(r.nb_contacts, e.nb_contacts, "{file}: nb_contacts");
        assert_close(
            r.score_per_minute,
            e.score_per_minute,
            &format!("{file}: score_per_minute"),
        );
        // The reference asserts the contact score equals expected × kmax.
        assert_close(
            r.score,
            e.score_per_minute * f64::from(e.kmax),
            &format!("{file}: score"),
        );
        checked += 1;
    }
    checked
}

#[test]
fn every_contact_matches_the_reference() {
    assert_eq!(check_all_contacts(&ScoringV2::default()), 127);
}

#[test]
fn the_reference_unit_test_tolerance_of_180_s_changes_nothing() {
    // `ScoringAlgorithmV2Test` runs with epoch-tolerance 180; production uses 0.
    let tolerant = ScoringV2::new(V2Params {
        epoch_tolerance_secs: 180,
        ..V2Params::default()
    })
    .unwrap();
    assert_eq!(check_all_contacts(&tolerant), 127);
}

#[test]
fn dataset_aggregates_match_the_reference() {
    let mut reader = csv::Reader::from_path(data_dir().join("aggregates.csv")).unwrap();
    let mut datasets = 0;
    for record in reader.records() {
        let record = record.unwrap();
        let (dataset, expected): (&str, f64) = (&record[0], record[1].parse().unwrap());
        let scoring = ScoringV2::default();
        let scores: Vec<f64> = files_of(dataset)
            .iter()
            .map(|f| {
                scoring
                    .score(&read_contact(&data_dir().join(f)))
                    .unwrap()
                    .score
            })
            .collect();
        let risk = scoring.aggregation().aggregate(scores.iter().copied());
        assert_close(risk, expected, dataset);
        assert_eq!(
            scoring.aggregation(),
            Aggregation::Exponential { r0: 0.0071 }
        );
        datasets += 1;
    }
    assert_eq!(datasets, 2);
}

#[test]
fn a00_example_from_the_notes() {
    // server-api.md §4.4: "A00 gives 0.11556942265181178 × 8, with nbContacts 4".
    let hellos = read_contact(&data_dir().join("C4_20_A/C4_20_A00.csv"));
    let r = ScoringV2::default().score(&hellos).unwrap();
    assert_close(r.score, 0.115_569_422_651_811_78 * 8.0, "A00");
    assert_eq!((r.kmax, r.nb_contacts), (8, 4));
}
