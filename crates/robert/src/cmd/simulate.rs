//! `robert simulate`: run field-simulation scenarios (real SDK phones over
//! the simulated radio, the real server and code service in process) and
//! write a report: `report.md`, `results.json` and plots (PNG and SVG).
//!
//! ```text
//! robert simulate --scenario crates/robert-sim/scenarios/office.toml --out sim-report
//! robert simulate --faq-matrix --out faq-report
//! robert simulate --scenario a.toml --scenario b.toml --seed 7 --truth-distance 2
//! ```
//!
//! Exit status: 0 when every scenario ran, 2 on any error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use robert_core::filter::FilterMode;
use robert_radio::scenario::Scenario;
use robert_sim::report::{confusion_text, write_report};
use robert_sim::{
    BarProgress, Confusion, NoProgress, Progress, RegisterPolicy, SimOptions, SimResult,
    StatusPolling, TransportMode, run_scenario_with,
};

/// Arguments of `robert simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// Scenario files (TOML; see crates/robert-sim/README.md). Repeatable.
    #[arg(long = "scenario", short = 's')]
    scenarios: Vec<PathBuf>,
    /// Also run the 20 cells of the StopCovid FAQ's field-test matrix
    /// (density × site × static/moving, 16 people each).
    #[arg(long)]
    faq_matrix: bool,
    /// Seed (overrides each scenario's `seed`; the FAQ cells use seed + 1 … seed + 20).
    #[arg(long)]
    seed: Option<u64>,
    /// Report directory.
    #[arg(long, short = 'o', default_value = "robert-sim-report")]
    out: PathBuf,
    /// Coarser time steps (2 s moving, 15 s static): about twice as fast.
    #[arg(long)]
    fast: bool,
    /// Time step while someone in a radio pair moves, in seconds.
    #[arg(long)]
    step_moving: Option<f64>,
    /// Time step while every radio pair is static, in seconds (≤ 15).
    #[arg(long)]
    step_static: Option<f64>,
    /// Phones talk to a real HTTP listener on 127.0.0.1 instead of calling
    /// the server's router in process.
    #[arg(long)]
    http: bool,
    /// Large populations: register phones only when they first meet someone,
    /// and ask the status only at the end.
    #[arg(long)]
    idle_mode: bool,
    /// Ground truth: contact distance in metres (default: the scenario's, 1 m).
    #[arg(long)]
    truth_distance: Option<f64>,
    /// Ground truth: cumulated minutes within that distance on one day (default 15).
    #[arg(long)]
    truth_minutes: Option<f64>,
    /// Server: risk threshold on 1 − exp(−R0·S) (default 0.1).
    #[arg(long)]
    risk_threshold: Option<f64>,
    /// Server: scoring constant R0 (default 0.0071).
    #[arg(long)]
    r0: Option<f64>,
    /// Phone: on-device filter mode (`risks`, `medium`, `full`).
    #[arg(long)]
    filter_mode: Option<String>,
    /// Phone: the filter's minimum duration of an EBID group, in seconds.
    #[arg(long)]
    filter_duration: Option<u64>,
    /// Run the risk batch every this many simulated hours (default 24; 0: only at the end).
    #[arg(long)]
    batch_every_hours: Option<f64>,
    /// No progress bars; print only the summary.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Options from the flags.
pub(crate) fn options(args: &SimulateArgs) -> anyhow::Result<SimOptions> {
    let mut o = if args.fast {
        SimOptions::fast()
    } else {
        SimOptions::default()
    };
    o.seed = args.seed;
    if let Some(s) = args.step_moving {
        o.step_moving_s = s;
    }
    if let Some(s) = args.step_static {
        o.step_static_s = s;
    }
    if args.http {
        o.transport = TransportMode::Http;
    }
    if args.idle_mode {
        o.register = RegisterPolicy::Lazy;
        o.status_polling = StatusPolling::FinalOnly;
    }
    o.knobs.truth_distance_m = args.truth_distance;
    o.knobs.truth_minutes = args.truth_minutes;
    if let Some(t) = args.risk_threshold {
        o.knobs.risk_threshold = t;
    }
    if let Some(r0) = args.r0 {
        o.knobs.scoring.r0 = r0;
    }
    if let Some(m) = &args.filter_mode {
        o.knobs.filter_mode = FilterMode::from_config(m)
            .with_context(|| format!("unknown filter mode {m:?} (risks, medium, full)"))?;
    }
    if let Some(d) = args.filter_duration {
        o.knobs.filter.duration_threshold_secs = d;
    }
    if let Some(h) = args.batch_every_hours {
        o.batch_every_hours = (h > 0.0).then_some(h);
    }
    o.validate().map_err(anyhow::Error::msg)?;
    Ok(o)
}

/// One line per scenario.
pub(crate) fn summary_line(r: &SimResult) -> String {
    let c = &r.phones;
    format!(
        "{:<34} {:>4} phones {:>2} d  TP {:>3} FP {:>3} FN {:>3} TN {:>4}  recall {:>7}  precision {:>7}  {:>6.1} s",
        r.scenario,
        r.people,
        r.days,
        c.tp,
        c.fp,
        c.fn_,
        c.tn,
        robert_sim::confusion::percent(c.recall()),
        robert_sim::confusion::percent(c.precision()),
        r.timings.total_ms as f64 / 1000.0
    )
}

pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&args)?;
    let mut scenarios: Vec<Scenario> = Vec::new();
    for path in &args.scenarios {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let s = Scenario::from_toml_str(&text).with_context(|| format!("{}", path.display()))?;
        s.validate()
            .with_context(|| format!("{}", path.display()))?;
        scenarios.push(s);
    }
    if args.faq_matrix {
        let base = args.seed.unwrap_or(0);
        scenarios.extend(
            robert_sim::scenarios::faq_matrix(base)?
                .into_iter()
                .map(|(_, s)| s),
        );
    }
    if scenarios.is_empty() {
        bail!("nothing to run: give --scenario FILE.toml (repeatable) or --faq-matrix");
    }
    let progress: Box<dyn Progress> = if args.quiet {
        Box::new(NoProgress)
    } else {
        Box::new(BarProgress::new(false))
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for s in &scenarios {
        let mut o = opts.clone();
        // A FAQ cell keeps its own seed; --seed already moved their base.
        if args.faq_matrix && s.name.starts_with("faq-") {
            o.seed = None;
        }
        let r = run_scenario_with(s, &o, progress.as_ref())
            .with_context(|| format!("scenario {}", s.name))?;
        println!("{}", summary_line(&r));
        results.push(r);
    }
    let overall: Confusion = results.iter().map(|r| r.phones).sum();
    println!("\nAll scenarios, phone level (every phone except the positive cases):");
    print!("{}", confusion_text(&overall));
    let files = write_report(&args.out, "ROBERT field simulation", &results)
        .context("cannot write the report")?;
    println!(
        "\nReport: {} (report.md, results.json, plots) — {:.1} s",
        files.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
