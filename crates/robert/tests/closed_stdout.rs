//! Commands whose reader leaves early (`robert … | head -1`): no "Broken
//! pipe" message, no panic, status 0.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The code service's development configuration shipped in the repository.
const DEV_CODES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../robert-codes/codes.dev.toml"
);

/// A fresh scratch directory unique to this test process.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("robert-pipe-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `robert args` in `cwd` with stdout on a pipe whose reading end is
/// already closed, so its first write fails with EPIPE (no race with a
/// reader that might read everything first), and checks it exits quietly.
fn with_closed_stdout(cwd: &Path, args: &[&str]) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(args)
        .current_dir(cwd)
        .env_remove("ROBERT_CODES_DATABASE_URL")
        .env_remove("ROBERT_CONFIG")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "robert {args:?}: {:?}\n{stderr}",
        out.status
    );
    for word in ["Broken pipe", "panicked", "error"] {
        assert!(!stderr.contains(word), "robert {args:?} printed:\n{stderr}");
    }
}

#[test]
fn codes_commands_exit_quietly_when_the_reader_leaves() {
    let d = scratch("codes");
    std::fs::create_dir_all(d.join("data")).unwrap();
    with_closed_stdout(&d, &["codes", "new-pepper"]);
    with_closed_stdout(&d, &["codes", "-c", DEV_CODES, "migrate"]);
    // The README's `robert codes issue short | head -1`.
    with_closed_stdout(&d, &["codes", "-c", DEV_CODES, "issue", "short"]);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn robert_commands_exit_quietly_when_the_reader_leaves() {
    let d = scratch("robert");
    let phone = d.join("phone");
    with_closed_stdout(&d, &["phone", "--dir", phone.to_str().unwrap(), "show"]);
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../robert-core/tests/data/scoring-v2/R1_AA/R1_AA67.csv");
    with_closed_stdout(&d, &["score", vectors.to_str().unwrap()]);
    let data = d.join("data");
    std::fs::create_dir_all(&data).unwrap();
    with_closed_stdout(
        &d,
        &["app-config", "list", "--data-dir", data.to_str().unwrap()],
    );
    std::fs::remove_dir_all(&d).unwrap();
}
