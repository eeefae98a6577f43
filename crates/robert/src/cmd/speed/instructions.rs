//! `robert speed --instructions`: instructions per operation, counted by
//! `valgrind --tool=callgrind`, for a guard that load cannot move.
//!
//! Each operation runs twice in a child `robert speed --only NAME --calls N`
//! under callgrind, with a small and a large N; the difference of the two
//! totals divided by the difference of the operations cancels the program's
//! start-up and set-up. The counts are exact and repeat run after run (the
//! set-up is seeded); wall-clock figures on a shared machine swing 2–4×.
//!
//! Under valgrind the CPU reports no AVX-512, so the SKINNY and AES
//! back ends are the AVX2 (or portable) ones: the counts guard those code
//! paths. A baseline records the back end it was taken on and the build
//! (debug or release); a run on another one is reported, not compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::SpeedArgs;

/// How much more than the baseline an operation may take.
const TOLERANCE: f64 = 1.10;

/// Calls in the small and the large child run, by operations per call.
fn calls_for(per_call: u64) -> (u64, u64) {
    if per_call > 1 { (2, 12) } else { (200, 2_200) }
}

/// A baseline file: the counts of one build profile on one back end.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Baseline {
    /// `debug` or `release`.
    profile: String,
    /// The SKINNY back end under valgrind.
    skinny_backend: String,
    /// Instructions per operation.
    instructions: BTreeMap<String, u64>,
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Total instructions (`Ir`) of `robert speed --only name --calls calls`.
fn count(name: &str, calls: u64, dir: &Path) -> anyhow::Result<u64> {
    let exe = std::env::current_exe().context("cannot find the robert executable")?;
    let out_file = dir.join(format!("callgrind.{name}.{calls}"));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg("--quiet")
        .arg(&exe)
        .args(["speed", "--only", name, "--calls", &calls.to_string()])
        .status()
        .context("cannot run valgrind (install it: apt-get install valgrind)")?;
    anyhow::ensure!(status.success(), "valgrind on {name} failed: {status}");
    let text = std::fs::read_to_string(&out_file)
        .with_context(|| format!("cannot read {}", out_file.display()))?;
    let _ = std::fs::remove_file(&out_file);
    parse_total(&text).with_context(|| format!("no instruction total in {}", out_file.display()))
}

/// The `summary:` (or `totals:`) line of a callgrind output file.
fn parse_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The SKINNY back end a child sees under valgrind.
fn backend_under_valgrind() -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the robert executable")?;
    let out = Command::new("valgrind")
        .args(["--tool=none", "--quiet"])
        .arg(&exe)
        .args(["speed", "--only", "skinny-backend", "--calls", "0"])
        .output()
        .context("cannot run valgrind (install it: apt-get install valgrind)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.trim().to_owned())
}

/// Runs `robert speed --instructions`.
pub(super) fn run(
    ops: &[(&'static str, &'static str, u64)],
    args: &SpeedArgs,
) -> anyhow::Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("robert-speed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let backend = backend_under_valgrind()?;
    let mut counts = BTreeMap::new();
    println!(
        "instructions per operation (callgrind; {} build; SKINNY back end under valgrind: {backend})",
        profile()
    );
    for &(name, what, per_call) in ops {
        let (small, large) = calls_for(per_call);
        let a = count(name, small, &dir)?;
        let b = count(name, large, &dir)?;
        let ops_run = (large - small) * per_call;
        let per_op = b.saturating_sub(a).div_ceil(ops_run);
        println!("{name:<24} {per_op:>10}  {what}");
        counts.insert(name.to_owned(), per_op);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let measured = Baseline {
        profile: profile().to_owned(),
        skinny_backend: backend,
        instructions: counts,
    };
    if let Some(path) = &args.write {
        // Other builds' and back ends' baselines in the file are kept.
        let existing = match std::fs::read_to_string(path) {
            Ok(text) => parse_baselines(&text)
                .with_context(|| format!("{} is not a baseline file", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let all = merge(existing, measured);
        std::fs::write(path, serde_json::to_string_pretty(&all)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("baseline written to {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = &args.check else {
        return Ok(ExitCode::SUCCESS);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the baseline {}", path.display()))?;
    let baselines = parse_baselines(&text)
        .with_context(|| format!("{} is not a baseline file", path.display()))?;
    let Some(base) = baselines
        .iter()
        .find(|b| b.profile == measured.profile && b.skinny_backend == measured.skinny_backend)
    else {
        println!(
            "no baseline in {} for a {} build on the {} back end: not compared",
            path.display(),
            measured.profile,
            measured.skinny_backend
        );
        return Ok(ExitCode::SUCCESS);
    };
    let regressions = compare(base, &measured);
    for r in &regressions {
        eprintln!("{r}");
    }
    if regressions.is_empty() {
        println!(
            "within {:.0} % of the baseline {}",
            (TOLERANCE - 1.0) * 100.0,
            path.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// A baseline file: a list of baselines, or (older files) a single one.
fn parse_baselines(text: &str) -> serde_json::Result<Vec<Baseline>> {
    serde_json::from_str(text).or_else(|_| serde_json::from_str::<Baseline>(text).map(|b| vec![b]))
}

/// `existing` with `measured` in place of the baseline of the same build
/// profile and back end, sorted by both.
fn merge(mut existing: Vec<Baseline>, measured: Baseline) -> Vec<Baseline> {
    existing.retain(|b| {
        (&b.profile, &b.skinny_backend) != (&measured.profile, &measured.skinny_backend)
    });
    existing.push(measured);
    existing.sort_by(|a, b| (&a.profile, &a.skinny_backend).cmp(&(&b.profile, &b.skinny_backend)));
    existing
}

/// The operations that grew by more than [`TOLERANCE`], or vanished.
fn compare(base: &Baseline, now: &Baseline) -> Vec<String> {
    let mut out = Vec::new();
    for (name, &before) in &base.instructions {
        match now.instructions.get(name) {
            None => out.push(format!("{name}: in the baseline, not measured")),
            Some(&after) if after as f64 > before as f64 * TOLERANCE => out.push(format!(
                "{name}: {after} instructions per operation, baseline {before} (+{:.1} %)",
                (after as f64 / before as f64 - 1.0) * 100.0
            )),
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_callgrind_total() {
        let text = "version: 1\ncreator: callgrind-3.22.0\nevents: Ir\nsummary: 123456\n\nfn=main\n1 2\ntotals: 123456\n";
        assert_eq!(parse_total(text), Some(123_456));
        assert_eq!(parse_total("events: Ir\n"), None);
    }

    fn baseline(profile: &str, backend: &str, n: u64) -> Baseline {
        Baseline {
            profile: profile.into(),
            skinny_backend: backend.into(),
            instructions: [("a".to_owned(), n)].into_iter().collect(),
        }
    }

    #[test]
    fn writing_replaces_only_the_same_build_and_back_end() {
        let file = vec![baseline("debug", "avx2", 1), baseline("release", "avx2", 2)];
        let text = serde_json::to_string(&file).unwrap();
        let merged = merge(
            parse_baselines(&text).unwrap(),
            baseline("debug", "avx2", 3),
        );
        assert_eq!(
            merged,
            vec![baseline("debug", "avx2", 3), baseline("release", "avx2", 2)]
        );
        let merged = merge(merged, baseline("debug", "avx512", 4));
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[1], baseline("debug", "avx512", 4));
        // An older single-object file reads as one baseline.
        let one = serde_json::to_string(&baseline("debug", "avx2", 5)).unwrap();
        assert_eq!(
            parse_baselines(&one).unwrap(),
            vec![baseline("debug", "avx2", 5)]
        );
        assert!(parse_baselines("{}").is_err());
    }

    #[test]
    fn a_growth_beyond_ten_percent_is_a_regression() {
        let base = Baseline {
            profile: "debug".into(),
            skinny_backend: "avx2".into(),
            instructions: [
                ("a".to_owned(), 1000),
                ("b".to_owned(), 1000),
                ("c".to_owned(), 5),
            ]
            .into_iter()
            .collect(),
        };
        let mut now = Baseline {
            profile: "debug".into(),
            skinny_backend: "avx2".into(),
            instructions: [("a".to_owned(), 1100), ("b".to_owned(), 900)]
                .into_iter()
                .collect(),
        };
        // a: exactly +10 % passes; c: missing is reported.
        assert_eq!(
            compare(&base, &now),
            vec!["c: in the baseline, not measured"]
        );
        now.instructions.insert("a".into(), 1101);
        now.instructions.insert("c".into(), 5);
        let r = compare(&base, &now);
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].starts_with("a: 1101 instructions per operation, baseline 1000"),
            "{r:?}"
        );
    }
}
