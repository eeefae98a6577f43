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

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use robert_core::filter::FilterMode;
use robert_radio::scenario::Scenario;
use robert_sim::report::{confusion_text, write_report};
use robert_sim::{
    BarProgress, Confusion, NoProgress, Progress, RegisterPolicy, SimOptions, SimResult,
    TransportMode, run_scenario_with,
};

/// Which scenarios to run (`robert simulate` and `robert calibrate`).
#[derive(Debug, clap::Args)]
pub(crate) struct ScenarioArgs {
    /// Scenario files (TOML; see crates/robert-sim/README.md). Repeatable.
    #[arg(long = "scenario", short = 's')]
    pub(crate) scenarios: Vec<PathBuf>,
    /// Also run the 20 cells of the StopCovid FAQ's field-test matrix
    /// (density × site × static/moving, 16 people each).
    #[arg(long)]
    pub(crate) faq_matrix: bool,
    /// Seed (overrides each scenario's `seed`; the FAQ cells use seed + 1 … seed + 20).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

impl ScenarioArgs {
    /// Reads the scenario files and, with `--faq-matrix`, adds the FAQ cells.
    pub(crate) fn load(&self) -> anyhow::Result<Vec<Scenario>> {
        let mut scenarios = Vec::new();
        for path in &self.scenarios {
            scenarios.push(read_scenario(path)?);
        }
        if self.faq_matrix {
            scenarios.extend(
                robert_sim::scenarios::faq_matrix(self.seed.unwrap_or(0))?
                    .into_iter()
                    .map(|(_, s)| s),
            );
        }
        if scenarios.is_empty() {
            bail!("nothing to run: give --scenario FILE.toml (repeatable) or --faq-matrix");
        }
        Ok(scenarios)
    }
}

/// Arguments of `robert simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    #[command(flatten)]
    input: ScenarioArgs,
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
    /// ask the status only at the end, store received HELLOs only in the
    /// phones of future positive cases, keep no per-phone rows.
    #[arg(long)]
    idle_mode: bool,
    /// Every phone registers at the start, idle or not (with --idle-mode:
    /// capacity measurements; every phone then asks its status at the end).
    #[arg(long)]
    register_all: bool,
    /// Requests in flight at once during registrations and status rounds
    /// (default 8; 32 with --idle-mode).
    #[arg(long)]
    concurrency: Option<usize>,
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
    /// Server scoring preset: `reference-2020` (default) or
    /// `typical-level` (the typical-level scoring with its default values).
    #[arg(long)]
    scoring_preset: Option<String>,
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
    o.seed = args.input.seed;
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
        // SimOptions::large_population's policies; the steps stay as chosen.
        let large = SimOptions::large_population();
        o.register = large.register;
        o.status_polling = large.status_polling;
        o.delivery = large.delivery;
        o.keep_phone_outcomes = large.keep_phone_outcomes;
        o.concurrency = large.concurrency;
    }
    if args.register_all {
        o.register = RegisterPolicy::AtStart;
    }
    if let Some(c) = args.concurrency {
        o.concurrency = c;
    }
    o.knobs.truth_distance_m = args.truth_distance;
    o.knobs.truth_minutes = args.truth_minutes;
    if let Some(t) = args.risk_threshold {
        o.knobs.risk_threshold = t;
    }
    if let Some(p) = &args.scoring_preset {
        o.knobs.scoring.preset = match p.as_str() {
            "reference-2020" => robert_server::batch::ScoringPreset::Reference2020,
            "typical-level" => robert_server::batch::ScoringPreset::TypicalLevel,
            _ => anyhow::bail!("--scoring-preset: reference-2020 or typical-level, not {p}"),
        };
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

/// The capacity figures of a run (registrations, statuses and reports per
/// second, memory per registration), when the run was large enough for them
/// to mean something (at least 1,000 registrations in one round, or
/// `--idle-mode`); `None` otherwise.
pub(crate) fn throughput_text(r: &SimResult, always: bool) -> Option<String> {
    let t = &r.timings.throughput;
    let one_large_round = t.registration_rounds == 1 && t.registrations >= 1000;
    if !(always || one_large_round) {
        return None;
    }
    let rate = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"));
    let kb = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{:.1} kB", v / 1000.0));
    let mut s = format!(
        "  throughput ({} in flight): {} registrations/s ({} in {:.1} s, {} round{}), \
         {} status/s (final round: {} in {:.1} s), {} reports/s ({} sequential, {:.2} s)\n",
        t.concurrency,
        rate(t.registrations_per_s),
        t.registrations,
        t.registration_ms as f64 / 1000.0,
        t.registration_rounds,
        if t.registration_rounds == 1 { "" } else { "s" },
        rate(t.final_status_per_s),
        t.final_status_requests,
        t.final_status_ms as f64 / 1000.0,
        t.reports_per_s
            .map_or_else(|| "—".to_owned(), |v| format!("{v:.1}")),
        t.reports,
        t.report_ms as f64 / 1000.0,
    );
    if t.rss_growth_per_registration_bytes.is_some() || t.server_db_bytes_per_registration.is_some()
    {
        s.push_str(&format!(
            "  memory per registration: SQLite {} on disk; process RSS +{} during registration \
             (server and phones; the phones' EBID tuples alone {})\n",
            kb(t.server_db_bytes_per_registration),
            kb(t.rss_growth_per_registration_bytes),
            kb(t.phone_state_bytes_per_registration),
        ));
    }
    if let Some(peak) = t.peak_rss_bytes {
        s.push_str(&format!("  peak RSS {:.2} GB\n", peak as f64 / 1e9));
    }
    Some(s)
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

fn read_scenario(path: &Path) -> anyhow::Result<Scenario> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let s = Scenario::from_toml_str(&text).with_context(|| format!("{}", path.display()))?;
    s.validate()
        .with_context(|| format!("{}", path.display()))?;
    Ok(s)
}

pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let opts = options(&args)?;
    let scenarios = args.input.load()?;
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
        if args.input.faq_matrix && s.name.starts_with("faq-") {
            o.seed = None;
        }
        let r = run_scenario_with(s, &o, progress.as_ref())
            .with_context(|| format!("scenario {}", s.name))?;
        outln!("{}", summary_line(&r));
        if let Some(t) = throughput_text(&r, args.idle_mode) {
            out!("{t}");
        }
        results.push(r);
    }
    let overall: Confusion = results.iter().map(|r| r.phones).sum();
    outln!("\nAll scenarios, phone level (every phone except the positive cases):");
    out!("{}", confusion_text(&overall));
    let files = write_report(&args.out, "ROBERT field simulation", &results)
        .context("cannot write the report")?;
    outln!(
        "\nReport: {} (report.md, results.json, plots) — {:.1} s",
        files.dir.display(),
        started.elapsed().as_secs_f64()
    );
    outln!("\n{}", robert_sim::explain::paragraph(&results));
    Ok(ExitCode::SUCCESS)
}
