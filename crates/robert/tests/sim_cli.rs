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

fn small() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../robert-sim/scenarios/small.toml")
}

#[test]
fn simulate_a_small_scenario_writes_a_report() {
    let out = std::env::temp_dir().join(format!("robert-sim-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = robert(&[
        "simulate",
        "--scenario",
        small().to_str().unwrap(),
        "--fast",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("ci-small"), "{stdout}");
    assert!(stdout.contains("recall"), "{stdout}");
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
        small().to_str().unwrap(),
        "--step-static",
        "99",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_file(bad);
}
