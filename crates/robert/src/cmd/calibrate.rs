//! `robert calibrate`: fit the on-device filter and the server's risk
//! thresholds to a set of scenarios — fewest false negatives first, then
//! fewest false positives — and print the before/after table
//! (`robert_sim::calibrate` has the method).
//!
//! ```text
//! robert calibrate --faq-matrix --scenario crates/robert-sim/scenarios/office.toml
//! robert calibrate --scenario small.toml --filter-risk 0.1,0.3 --filter-duration 120 --scoring-p0 -66
//! ```
//!
//! Writes `calibration.md` and `calibration.json` into `--out`. Exit status 0
//! when the study ran (whatever it found), 2 on any error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use robert_sim::SimOptions;
use robert_sim::calibrate::{
    Grid, Objective, calibrate, config_snippet, describe, markdown, text_table,
};

/// Arguments of `robert calibrate`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct CalibrateArgs {
    #[command(subcommand)]
    command: Option<CalibrateCommand>,
    #[command(flatten)]
    input: super::simulate::ScenarioArgs,
    /// On-device filter riskThreshold values to try (mode RISKS; reference 0.1).
    #[arg(long, value_delimiter = ',', default_values_t = Grid::default().filter_risk_thresholds)]
    filter_risk: Vec<f64>,
    /// On-device filter durationThreshold values to try, in seconds (reference 120).
    #[arg(long, value_delimiter = ',', default_values_t = Grid::default().filter_durations_s)]
    filter_duration: Vec<u64>,
    /// Server scoring p0 values to try, in dBm (reference -66).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true,
          default_values_t = Grid::default().scoring_p0s)]
    scoring_p0: Vec<f64>,
    /// Count a false negative as this many false positives instead of
    /// ranking false negatives strictly first (the FAQ's order, the default).
    #[arg(long)]
    fn_cost: Option<f64>,
    /// Run every scenario this many times with different seeds (the
    /// scenario's seed, then seed + 1000003·k) and fit on all runs pooled:
    /// values that only suit one draw of the radio do not win.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// Finer time steps (1 s moving, 10 s static) instead of the fast ones.
    #[arg(long)]
    fine: bool,
    /// Report directory (calibration.md, calibration.json).
    #[arg(long, short = 'o', default_value = "robert-calibration")]
    out: PathBuf,
    /// Print only the result.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Subcommands of `robert calibrate`.
#[derive(Debug, clap::Subcommand)]
enum CalibrateCommand {
    /// The detection study: record a corpus once, choose estimators and
    /// thresholds on training data, judge them and the peers' rules on
    /// held-out data (docs/simulation-results.md).
    Study(super::study::StudyArgs),
}

pub(crate) fn run(args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    if let Some(CalibrateCommand::Study(study)) = args.command {
        return super::study::run(study);
    }
    let mut scenarios = args.input.load()?;
    if let Some(seed) = args.input.seed {
        // FAQ cells already carry seed + i; files take the given seed.
        for s in scenarios.iter_mut().filter(|s| !s.name.starts_with("faq-")) {
            s.seed = seed;
        }
    }
    let drawn = scenarios.clone();
    for k in 1..u64::from(args.repeat) {
        scenarios.extend(drawn.iter().map(|s| {
            let mut s = s.clone();
            s.seed = s.seed.wrapping_add(k * 1_000_003);
            s.name = format!("{}#{}", s.name, k + 1);
            s
        }));
    }
    let grid = Grid {
        filter_risk_thresholds: args.filter_risk.clone(),
        filter_durations_s: args.filter_duration.clone(),
        scoring_p0s: args.scoring_p0.clone(),
    };
    grid.validate().map_err(anyhow::Error::msg)?;
    let base = if args.fine {
        SimOptions::default()
    } else {
        SimOptions::fast()
    };
    let objective = match args.fn_cost {
        Some(fn_cost) => Objective::Weighted { fn_cost },
        None => Objective::Lexicographic,
    };
    objective.validate().map_err(anyhow::Error::msg)?;
    let runs = grid
        .runs(&robert_sim::calibrate::Setting::of(&base.knobs))
        .len();
    if !args.quiet {
        outln!(
            "Calibrating on {} scenario(s): {runs} runs of every scenario (the reference, \
             then each other grid point)…",
            scenarios.len(),
        );
    }
    let started = Instant::now();
    let quiet = args.quiet;
    let c = calibrate(&scenarios, &base, &grid, objective, &mut |line| {
        if !quiet {
            outln!("  {line}");
        }
    })
    .context("calibration failed")?;

    out!("\n{}", text_table(&c));
    if c.changed() {
        outln!("\nThe data favour: {}", describe(&c.chosen));
        outln!("As configuration:\n{}", config_snippet(&c.chosen, c.r0));
    } else {
        outln!("\nThe reference values are already optimal on these scenarios.");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let md = args.out.join("calibration.md");
    std::fs::write(&md, markdown(&c)).with_context(|| format!("cannot write {}", md.display()))?;
    let json = args.out.join("calibration.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&c)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    outln!(
        "Report: {} (calibration.md, calibration.json) — {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
