//! `robert calibrate study`: the detection study (`robert_sim::study`).
//!
//! ```text
//! robert calibrate study [--quick] [--recordings DIR] [--out DIR]
//!                        [--ablate TERMS] [--ablation-sweep]
//! ```
//!
//! Records the corpus once into `--recordings` (reused by later runs),
//! cross-validates the estimators and the peers' rules, and writes
//! `study.md` and `study.json` (plus the PR/ROC plots) into `--out`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use robert_radio::channel::Ablation;
use robert_sim::study::{StudyOptions, report, run_study};

/// Arguments of `robert calibrate study`.
#[derive(Debug, clap::Args)]
pub(crate) struct StudyArgs {
    /// One training and one held-out draw, three anchors, a smaller search
    /// budget (a few minutes).
    #[arg(long)]
    quick: bool,
    /// Where the recordings are kept (created; reused when present).
    #[arg(long, default_value = "robert-study-recordings")]
    recordings: PathBuf,
    /// Report directory.
    #[arg(long, short = 'o', default_value = "robert-study")]
    out: PathBuf,
    /// Objective evaluations per optimisation (default: 600, quick 200).
    #[arg(long)]
    budget: Option<usize>,
    /// The deployment's measured anchor: the calibrated RSSI (dBm) of two
    /// phones 1 m apart, in hand, facing, with the deployed calibration
    /// table. The study then also tunes the setting for it and prints its
    /// configuration lines.
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-100..=0))]
    anchor: Option<i32>,
    /// Switch off noise terms of the radio in every scenario of the corpus
    /// (comma-separated: placement, body, device, pair, shadowing, fading,
    /// or all). Recordings go to `<recordings>/ablate-<terms>`.
    #[arg(long, value_parser = parse_ablation)]
    ablate: Option<Ablation>,
    /// Also rerun the quick study once per ablation (the full model, each
    /// term alone, all terms) for "Why the targets are out of reach".
    #[arg(long)]
    ablation_sweep: bool,
    /// Print only the result.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn parse_ablation(s: &str) -> Result<Ablation, String> {
    Ablation::parse(s)
}

pub(crate) fn run(args: StudyArgs) -> anyhow::Result<ExitCode> {
    let mut opts = if args.quick {
        StudyOptions::quick(args.recordings.clone())
    } else {
        StudyOptions::full(args.recordings.clone())
    };
    if let Some(b) = args.budget {
        opts.budget = b;
    }
    opts.deployment_anchor_db = args.anchor;
    opts.ablate = args.ablate.unwrap_or_default();
    opts.ablation_sweep = args.ablation_sweep;
    let started = Instant::now();
    let quiet = args.quiet;
    let result = run_study(&opts, &mut |line| {
        if !quiet {
            outln!("  [{:>6.1} s] {line}", started.elapsed().as_secs_f64());
        }
    })
    .context("study failed")?;
    outln!("\n{}", report::methods_table(&result.methods));
    for line in &result.verdict {
        outln!("  {line}");
    }
    outln!(
        "\nRecommended ({}): {}\n",
        if result.wins {
            "wins on held-out data"
        } else {
            "does not beat every rule on held-out data: the reference stays the default"
        },
        result.chosen
    );
    if let Some(s) = &result.chosen_setting {
        outln!("{}", report::config_lines(s));
    }
    if let Some((anchor, s, h)) = &result.deployment {
        outln!(
            "For the anchor {anchor} dBm: {} (held out: recall {}, precision {})\n{}",
            s.describe(),
            report::pct(h.confusion[0].recall()),
            report::pct(h.confusion[0].precision()),
            report::config_lines(s)
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let md = args.out.join("study.md");
    std::fs::write(&md, report::markdown(&result))
        .with_context(|| format!("cannot write {}", md.display()))?;
    let json = args.out.join("study.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&result)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    report::write_plots(&args.out, &result).context("cannot draw the plots")?;
    outln!(
        "Report: {} (study.md, study.json, study_pr/study_roc/study_limits_pr/study_offices as PNG and SVG) — {} runs, {:.1} s",
        args.out.display(),
        result.runs,
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
