//! `robert demo`: a small town (about 300 phones, five simulated days,
//! Android and iPhone, offices, a school, a metro, a bus, a market and a
//! shop queue) run end to end in under a minute: a real server on
//! 127.0.0.1 (the `robert serve` code, embedded SQLite store), the real
//! code service, real SDK phones over HTTP, the simulated radio. It prints
//! what happened and the confusion matrix against the exact ground truth,
//! and leaves a report with plots. Then the push part (`demo_push`) and the
//! federation part (`demo_federation`: two servers, scripted encounters;
//! `--federation-only` runs it alone).
//!
//! Exit status: 0 when the demo ran, 2 on error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use robert_sim::report::{confusion_text, write_report};
use robert_sim::{BarProgress, NoProgress, Progress, SimOptions, TransportMode, clock_label};

/// Arguments of `robert demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Report directory.
    #[arg(long, short = 'o', default_value = "robert-demo")]
    out: PathBuf,
    /// Seed (default: the town's).
    #[arg(long)]
    seed: Option<u64>,
    /// Call the server's router in process instead of HTTP on 127.0.0.1.
    #[arg(long)]
    in_process: bool,
    /// No progress bars.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Run only the federation part (two servers, scripted encounters: a
    /// few seconds), not the town.
    #[arg(long)]
    federation_only: bool,
}

/// Appends a section the simulator's report does not know (the push and
/// federation parts).
fn append_section(report: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(report)?;
    write!(f, "\n## {text}")
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.federation_only {
        return run_federation_only(&args.out, started);
    }
    let scenario = robert_sim::scenarios::town()?;
    let mut opts = SimOptions::fast();
    opts.seed = args.seed;
    opts.transport = if args.in_process {
        TransportMode::InProcess
    } else {
        TransportMode::Http
    };
    opts.concurrency = 16;
    let progress: Box<dyn Progress> = if args.quiet {
        Box::new(NoProgress)
    } else {
        Box::new(BarProgress::new(false))
    };
    outln!(
        "robert demo: {} — {}\n{} days from {}, real server and code service {}, seed {}\n",
        scenario.name,
        scenario.description,
        scenario.days,
        scenario.start_date.0,
        if args.in_process {
            "in process"
        } else {
            "on 127.0.0.1 (HTTP)"
        },
        args.seed.unwrap_or(scenario.seed)
    );
    let r = robert_sim::run_scenario_with(&scenario, &opts, progress.as_ref())
        .context("the demo failed")?;
    let c = &r.counts;
    outln!("What happened:");
    for e in &r.events {
        outln!("  {}  {}", clock_label(e.t_s), e.text);
    }
    outln!(
        "\n  {} phones ({} Android, {} iPhone) registered; {} HELLOs exchanged and recorded \
         ({} radio receptions, {} duplicates in the same second, {} stale cached iPhone reads)",
        c.registrations,
        r.android,
        r.ios,
        c.hellos_recorded,
        c.radio_receptions,
        c.hellos_duplicate,
        c.hellos_stale
    );
    outln!(
        "  {} status requests; {} reports ({} HELLOs uploaded); {} batch runs; {} phones alerted",
        c.status_requests,
        c.reports,
        c.reported_hellos,
        c.batch_runs,
        c.alerts
    );
    outln!(
        "\nAgainst the ground truth (at risk: ≥ {} min within {} m on one day of a positive \
         case's contagious window; every phone except the {} positive cases):",
        r.knobs.truth_minutes,
        r.knobs.truth_distance_m,
        r.positives.len()
    );
    out!("{}", confusion_text(&r.phones));
    if !r.by_os_pair.is_empty() {
        outln!("\n  per OS pair (positive case → contact), pair level:");
        for (k, v) in &r.by_os_pair {
            outln!(
                "    {k:<16} TP {:>3} FP {:>3} FN {:>3}  recall {:>7}  precision {:>7}",
                v.tp,
                v.fp,
                v.fn_,
                robert_sim::confusion::percent(v.recall()),
                robert_sim::confusion::percent(v.precision())
            );
        }
    }
    let push = super::demo_push::run(
        r.ios,
        i64::from(scenario.days),
        scenario.start_date.0.midnight().to_unix(),
    )
    .context("the push part of the demo failed")?;
    let push_text = push.text();
    out!("\n{push_text}");
    let federation =
        super::demo_federation::run().context("the federation part of the demo failed")?;
    let federation_text = federation.text();
    out!("\n{federation_text}");
    let files = write_report(
        &args.out,
        "robert demo: a small town over five days",
        std::slice::from_ref(&r),
    )
    .context("cannot write the report")?;
    let report_md = files.dir.join("report.md");
    append_section(&report_md, &push_text).context("cannot write the report")?;
    append_section(&report_md, &federation_text).context("cannot write the report")?;
    outln!(
        "\nReport and plots: {}/ (report.md, results.json, rssi_vs_distance, recall_precision, \
         alert_timeline as PNG and SVG)",
        files.dir.display()
    );
    outln!(
        "Wall time {:.1} s (simulation {:.1} s, of which server calls {:.1} s; final statuses {:.1} s)",
        started.elapsed().as_secs_f64(),
        r.timings.simulate_ms as f64 / 1000.0,
        r.timings.server_ms as f64 / 1000.0,
        r.timings.final_ms as f64 / 1000.0
    );
    outln!(
        "\n{}",
        robert_sim::explain::paragraph(std::slice::from_ref(&r))
    );
    Ok(ExitCode::SUCCESS)
}

/// `robert demo --federation-only`: the federation part alone, its section
/// in `out/report.md`.
fn run_federation_only(out: &std::path::Path, started: Instant) -> anyhow::Result<ExitCode> {
    outln!(
        "robert demo: the federation part only (two servers on 127.0.0.1, scripted encounters)\n"
    );
    let federation =
        super::demo_federation::run().context("the federation part of the demo failed")?;
    let text = federation.text();
    out!("{text}");
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let report = out.join("report.md");
    std::fs::write(&report, format!("# robert demo: federation\n\n## {text}"))
        .with_context(|| format!("cannot write {}", report.display()))?;
    outln!(
        "\nReport: {}\nWall time {:.1} s",
        report.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
