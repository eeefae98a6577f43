//! End-to-end tests of `robert simulate` (the built binary): a small
//! scenario runs, prints its summary and leaves a report; bad input exits 2.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn robert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `robert` in a fresh output directory (`--out DIR` appended),
/// asserts success and returns stdout and the directory.
fn run_ok(args: &[&str], tag: &str) -> (String, PathBuf) {
    let out = std::env::temp_dir().join(format!("robert-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let mut all = args.to_vec();
    all.extend(["--out", out.to_str().unwrap()]);
    let o = robert(&all);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    (stdout, out)
}

/// [`run_ok`] of `robert command --scenario small.toml options…`.
fn run_small(command: &str, options: &[&str], tag: &str) -> (String, PathBuf) {
    let small = small();
    let mut args = vec![command, "--scenario", &small];
    args.extend(options);
    run_ok(&args, tag)
}

/// The simulator's small scenario, as an argument.
fn small() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../robert-sim/scenarios/small.toml");
    path.to_str().unwrap().to_owned()
}

#[test]
fn simulate_a_small_scenario_writes_a_report() {
    let (stdout, out) = run_small("simulate", &["--fast", "--quiet"], "sim-cli");
    assert!(stdout.contains("ci-small"), "{stdout}");
    assert!(stdout.contains("recall"), "{stdout}");
    // The closing paragraph says what the alerts mean and which settings.
    assert!(stdout.contains("What the alerts mean"), "{stdout}");
    assert!(stdout.contains("reference-2020 v2"), "{stdout}");
    for f in [
        "report.md",
        "results.json",
        "rssi_vs_distance.png",
        "rssi_vs_distance.svg",
        "recall_precision.png",
        "alert_timeline.svg",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn simulate_without_scenario_or_with_a_bad_file_exits_2() {
    let o = robert(&["simulate", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to run"));

    let bad = std::env::temp_dir().join(format!("robert-sim-bad-{}.toml", std::process::id()));
    std::fs::write(
        &bad,
        "name = \"x\"\n[[groups]]\nname = \"g\"\nkind = \"office\"\npeople = 0\n",
    )
    .unwrap();
    let o = robert(&["simulate", "--quiet", "--scenario", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("people"),
        "{o:?}"
    );
    let o = robert(&["simulate", "--quiet", "--scenario", "/nonexistent/x.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let o = robert(&[
        "simulate",
        "--quiet",
        "--scenario",
        &small(),
        "--step-static",
        "99",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_file(bad);
}

#[test]
fn calibrate_picks_values_no_worse_than_the_reference_and_writes_its_report() {
    let (stdout, out) = run_small(
        "calibrate",
        &[
            "--filter-risk",
            "0.1,0.9",
            "--filter-duration",
            "120",
            "--scoring-p0",
            "-66",
            "--repeat",
            "2",
            "--quiet",
        ],
        "cal-cli",
    );
    assert!(stdout.contains("reference"), "{stdout}");
    assert!(stdout.contains("calibrated"), "{stdout}");
    let md = std::fs::read_to_string(out.join("calibration.md")).unwrap();
    assert!(md.contains("## Before and after"), "{md}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("calibration.json")).unwrap()).unwrap();
    // Two draws of the radio for the one scenario, pooled.
    let rows = json["scenarios"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[1]["scenario"], "ci-small#2");
    // The reference and the one other grid point.
    assert_eq!(json["grid"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["reference"]["filter_risk_threshold"], 0.1);
    let counts = |k: &str| {
        (
            json[k]["fn"].as_u64().unwrap(),
            json[k]["fp"].as_u64().unwrap(),
        )
    };
    // Fewest false negatives first, then fewest false positives: the real
    // rerun with the chosen values is never worse than the reference.
    assert!(counts("after") <= counts("before"), "{json}");
    // The small scenario's desk neighbour is a contact at risk; the reference
    // alerts them, so the calibration must keep doing so.
    assert_eq!(json["before"]["fn"], 0, "{json}");
    assert_eq!(json["after"]["fn"], 0, "{json}");
    assert_eq!(json["after"], json["predicted_after"], "{json}");
    let _ = std::fs::remove_dir_all(&out);

    let o = robert(&[
        "calibrate",
        "--scenario",
        &small(),
        "--filter-risk",
        "1.5",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not in [0, 1]"),
        "{o:?}"
    );
    let o = robert(&["calibrate", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_typical_level_preset_runs_and_a_bad_preset_or_anchor_exits_2() {
    let (stdout, out) = run_small(
        "simulate",
        &["--fast", "--quiet", "--scoring-preset", "typical-level"],
        "sim-cli-typical",
    );
    assert!(stdout.contains("server scoring typical-level"), "{stdout}");
    let _ = std::fs::remove_dir_all(&out);
    let o = robert(&["simulate", "--scenario", &small(), "--scoring-preset", "v3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("typical-level"),
        "{o:?}"
    );
    let o = robert(&["calibrate", "study", "--anchor", "20"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn demo_federation_only_runs_two_servers_and_reports() {
    let (stdout, out) = run_ok(&["demo", "--federation-only"], "demo-fed");
    assert!(stdout.contains("Federation: a border town"), "{stdout}");
    assert!(stdout.contains("scripted"), "{stdout}");
    assert!(
        stdout.contains("France : 4 phones, TP 2 FP 0 FN 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Belgium: 3 phones, TP 1 FP 0 FN 0"),
        "{stdout}"
    );
    assert!(stdout.contains("HTTP 401, contacts stored 0"), "{stdout}");
    assert!(stdout.contains("Federation checks: all passed"), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Federation"), "{report}");
    let _ = std::fs::remove_dir_all(&out);
}
