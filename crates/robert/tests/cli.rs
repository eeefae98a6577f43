//! End-to-end tests of the `robert` binary's `score` subcommand.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The reference's scoring v2 vectors, kept by robert-core.
fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../robert-core/tests/data/scoring-v2")
        .join(name)
}

fn robert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(args)
        .output()
        .unwrap()
}

/// A scratch file unique to this test process.
fn scratch(name: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("robert-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

fn close(actual: &Value, expected: f64) -> bool {
    let actual = actual.as_f64().unwrap();
    if expected == 0.0 {
        actual == 0.0
    } else {
        ((actual - expected) / expected).abs() <= 1e-12
    }
}

#[test]
fn scores_two_vector_files() {
    let (a00, r67) = (vector("C4_20_A/C4_20_A00.csv"), vector("R1_AA/R1_AA67.csv"));
    let out = robert(&["score", a00.to_str().unwrap(), r67.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["algorithm"], 2);
    let contacts = json["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 2);

    // expected.csv: C4_20_A00 → 0.11556942265181178 × 8, nbContacts 4;
    //               R1_AA67   → 0.2463398180057588 × 1, nbContacts 2.
    let (s1, s2) = (0.115_569_422_651_811_78 * 8.0, 0.246_339_818_005_758_8);
    assert!(
        contacts[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("C4_20_A00.csv")
    );
    assert!(close(&contacts[0]["score"], s1), "{}", contacts[0]);
    assert!(close(
        &contacts[0]["scorePerMinute"],
        0.115_569_422_651_811_78
    ));
    assert_eq!(contacts[0]["kmax"], 8);
    assert_eq!(contacts[0]["nbContacts"], 4);
    assert_eq!(contacts[0]["skippedTooLate"], false);
    assert!(close(&contacts[1]["score"], s2), "{}", contacts[1]);
    assert_eq!(contacts[1]["kmax"], 1);
    assert_eq!(contacts[1]["nbContacts"], 2);
    assert!(contacts[1]["hellos"].as_u64().unwrap() > 0);

    assert!(close(&json["totalScore"], s1 + s2));
    assert!(close(
        &json["aggregatedRisk"],
        1.0 - (-0.0071 * (s1 + s2)).exp()
    ));

    // --r0 changes only the aggregation.
    let out = robert(&[
        "score",
        "--r0",
        "0.007",
        a00.to_str().unwrap(),
        r67.to_str().unwrap(),
    ]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(close(
        &json["aggregatedRisk"],
        1.0 - (-0.007 * (s1 + s2)).exp()
    ));
}

#[test]
fn legacy_v0_sums_scores() {
    // v0 on a two-HELLO contact: Δt = 60 s, mean RSSI (−70 − 77)/2 = −73
    // (integer division), α = 35 → 300 / (60 · 38) per the WP4 formula.
    let file = scratch(
        "v0.csv",
        "mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated\nAAAAAAAAAAA=,3882556800,0,-70\nAAAAAAAAAAA=,3882556860,60,-77\n",
    );
    let out = robert(&[
        "score",
        "--algo",
        "v0",
        file.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["algorithm"], 0);
    assert!(close(&json["contacts"][0]["score"], 300.0 / 2280.0));
    assert!(json["contacts"][0].get("kmax").is_none());
    assert!(close(&json["aggregatedRisk"], 600.0 / 2280.0));
    std::fs::remove_file(file).unwrap();
}

fn assert_fails(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
}

#[test]
fn malformed_value_names_file_and_line() {
    let file = scratch(
        "bad-rssi.csv",
        "mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated\nAAAAAAAAAAA=,3882556800,0,-70\nAAAAAAAAAAA=,3882556801,1,loud\n",
    );
    let out = robert(&["score", file.to_str().unwrap()]);
    assert_fails(
        &out,
        &["bad-rssi.csv", "line 3", "rssiCalibrated", "\"loud\""],
    );
    std::fs::remove_file(file).unwrap();
}

#[test]
fn structural_errors_exit_2() {
    let missing_column = scratch(
        "no-rssi.csv",
        "mac,timeCollectedOnDevice,timeFromHelloMessage\nA,1,1\n",
    );
    assert_fails(
        &robert(&["score", missing_column.to_str().unwrap()]),
        &["no-rssi.csv", "rssiCalibrated"],
    );

    let ragged = scratch(
        "ragged.csv",
        "mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated\nA,1,1,-50\nA,2,2\n",
    );
    assert_fails(
        &robert(&["score", ragged.to_str().unwrap()]),
        &["ragged.csv", "line: 3"],
    );

    let empty = scratch(
        "empty.csv",
        "mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated\n",
    );
    assert_fails(
        &robert(&["score", empty.to_str().unwrap()]),
        &["empty.csv", "no HELLO"],
    );

    let absent = std::env::temp_dir().join("robert-cli-does-not-exist.csv");
    assert_fails(
        &robert(&["score", absent.to_str().unwrap()]),
        &["robert-cli-does-not-exist.csv"],
    );

    // One bad file fails the whole run, even after a good one.
    let good = vector("C4_20_A/C4_20_A00.csv");
    assert_fails(
        &robert(&["score", good.to_str().unwrap(), empty.to_str().unwrap()]),
        &["empty.csv"],
    );

    for file in [missing_column, ragged, empty] {
        std::fs::remove_file(file).unwrap();
    }
}
