//! The report of one or more runs: `report.md` (Markdown summary),
//! `results.json` (every [`SimResult`]), and plots as PNG and SVG
//! (`rssi_vs_distance`, `recall_precision`, `alert_timeline`).

pub(crate) mod plots;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::common::clock_label;
use crate::confusion::{Confusion, percent};
use crate::error::SimError;
use crate::result::SimResult;

/// The files a report wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `results.json`.
    pub json: PathBuf,
    /// The plots (PNG and SVG).
    pub plots: Vec<PathBuf>,
}

/// Writes the report of `results` into `dir` (created if needed).
pub fn write_report(
    dir: &Path,
    title: &str,
    results: &[SimResult],
) -> Result<ReportFiles, SimError> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join("results.json");
    let text = serde_json::to_string_pretty(results)
        .map_err(|e| SimError::Report(format!("results.json: {e}")))?;
    std::fs::write(&json, text)?;
    let plots = plots::write_plots(dir, results)?;
    let markdown = dir.join("report.md");
    std::fs::write(&markdown, markdown_report(title, results))?;
    Ok(ReportFiles {
        dir: dir.to_path_buf(),
        markdown,
        json,
        plots,
    })
}

/// `TP | FP | FN | TN | recall | precision` cells of a Markdown row.
pub(crate) fn rate_cells(c: &Confusion) -> String {
    format!(
        "{} | {} | {} | {} | {} | {}",
        c.tp,
        c.fp,
        c.fn_,
        c.tn,
        percent(c.recall()),
        percent(c.precision())
    )
}

/// The 2×2 matrix as a Markdown table.
pub fn confusion_table(c: &Confusion) -> String {
    format!(
        "| | alerted | not alerted | total |\n|---|---:|---:|---:|\n\
         | **at risk** (ground truth) | {} (TP) | {} (FN) | {} |\n\
         | **not at risk** | {} (FP) | {} (TN) | {} |\n\
         | total | {} | {} | {} |\n\n\
         Recall {} · precision {} · specificity {} · F1 {}\n",
        c.tp,
        c.fn_,
        c.tp + c.fn_,
        c.fp,
        c.tn,
        c.fp + c.tn,
        c.tp + c.fp,
        c.fn_ + c.tn,
        c.total(),
        percent(c.recall()),
        percent(c.precision()),
        percent(c.specificity()),
        percent(c.f1()),
    )
}

/// The matrix as aligned plain text, for terminals.
pub fn confusion_text(c: &Confusion) -> String {
    format!(
        "                        alerted   not alerted\n\
         at risk (truth)    {:>12} {:>13}\n\
         not at risk        {:>12} {:>13}\n\
         recall {}   precision {}   specificity {}\n",
        format!("TP {}", c.tp),
        format!("FN {}", c.fn_),
        format!("FP {}", c.fp),
        format!("TN {}", c.tn),
        percent(c.recall()),
        percent(c.precision()),
        percent(c.specificity()),
    )
}

fn breakdown(out: &mut String, title: &str, unit: &str, map: &BTreeMap<String, Confusion>) {
    if map.is_empty() {
        return;
    }
    let _ = writeln!(out, "### {title}\n\n{unit}\n");
    let _ = writeln!(
        out,
        "| | TP | FP | FN | TN | recall | precision |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (k, c) in map {
        let _ = writeln!(out, "| {k} | {} |", rate_cells(c));
    }
    out.push('\n');
}

fn merge(
    results: &[SimResult],
    f: impl Fn(&SimResult) -> &BTreeMap<String, Confusion>,
) -> BTreeMap<String, Confusion> {
    let mut m: BTreeMap<String, Confusion> = BTreeMap::new();
    for r in results {
        for (k, c) in f(r) {
            *m.entry(k.clone()).or_default() += *c;
        }
    }
    m
}

/// A FAQ matrix cell parsed from a scenario name `faq-<density>-<site>-<motion>`.
fn faq_cell(name: &str) -> Option<(String, String, String)> {
    let rest = name.strip_prefix("faq-")?;
    let (density, rest) = rest.split_once('-')?;
    let (site, motion) = rest.rsplit_once('-')?;
    matches!(motion, "static" | "moving")
        .then(|| (density.to_owned(), site.to_owned(), motion.to_owned()))
}

fn faq_table(out: &mut String, results: &[SimResult]) {
    let mut cells: BTreeMap<(String, String), BTreeMap<String, Confusion>> = BTreeMap::new();
    let mut hellos: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for r in results {
        if let Some((d, s, m)) = faq_cell(&r.scenario) {
            *cells
                .entry((d.clone(), s.clone()))
                .or_default()
                .entry(m.clone())
                .or_default() += r.phones;
            *hellos.entry((d, s, m)).or_default() += r.counts.hellos_recorded;
        }
    }
    if cells.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## The FAQ's field-test matrix\n\n\
         StopCovid's technical FAQ (\"Tests phase\") lists the conditions of the May 2020 field \
         tests: high / low density, surface and ceiling height, static / moving people, outdoor / \
         metal structures. Each cell below is one scenario (phone level; TP/FP/FN/TN and recall / \
         precision), with the HELLOs the phones recorded.\n"
    );
    let _ = writeln!(
        out,
        "| density | site | static TP/FP/FN/TN | static recall | static precision | moving TP/FP/FN/TN | moving recall | moving precision | HELLOs (static / moving) |\n\
         |---|---|---|---:|---:|---|---:|---:|---:|"
    );
    let order = |s: &str| {
        [
            "outdoor",
            "indoor-high-ceiling",
            "indoor-medium-ceiling",
            "indoor-low-ceiling",
            "metal-vehicle",
        ]
        .iter()
        .position(|x| *x == s)
        .unwrap_or(9)
    };
    let mut keys: Vec<&(String, String)> = cells.keys().collect();
    keys.sort_by_key(|(d, s)| (d.as_str() != "high", order(s)));
    for key in keys {
        let m = &cells[key];
        let c = |motion: &str| m.get(motion).copied().unwrap_or_default();
        let (st, mv) = (c("static"), c("moving"));
        let h = |motion: &str| {
            hellos
                .get(&(key.0.clone(), key.1.clone(), motion.to_owned()))
                .copied()
                .unwrap_or(0)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {}/{}/{}/{} | {} | {} | {}/{}/{}/{} | {} | {} | {} / {} |",
            key.0,
            key.1,
            st.tp,
            st.fp,
            st.fn_,
            st.tn,
            percent(st.recall()),
            percent(st.precision()),
            mv.tp,
            mv.fp,
            mv.fn_,
            mv.tn,
            percent(mv.recall()),
            percent(mv.precision()),
            h("static"),
            h("moving"),
        );
    }
    out.push('\n');
}

/// The Markdown report.
pub fn markdown_report(title: &str, results: &[SimResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {title}\n");
    let overall: Confusion = results.iter().map(|r| r.phones).sum();
    let pairs: Confusion = results.iter().map(|r| r.pairs).sum();
    if let Some(r) = results.first() {
        let k = &r.knobs;
        let _ = writeln!(
            out,
            "{} scenario(s). Contact at risk: ≥ {} min cumulated within {} m on one UTC day, in the \
             positive case's contagious window. Alert: risk level 4 from the real server after the \
             risk batch. On-device filter {} (duration ≥ {} s, risk ≥ {}), scoring v{} (R0 = {}, \
             p0 = {} dB, RSSI cap {} dB), risk threshold {}. Transport: {:?}.\n",
            results.len(),
            k.truth_minutes,
            k.truth_distance_m,
            k.filter_mode,
            k.filter_duration_threshold_s,
            k.filter_risk_threshold,
            k.scoring_algo_version,
            k.scoring_r0,
            k.scoring_p0,
            k.scoring_rssi_max,
            k.risk_threshold,
            r.transport,
        );
    }
    let _ = writeln!(
        out,
        "## Overall (phone level)\n\nUnit: every phone except the positive cases.\n\n{}",
        confusion_table(&overall)
    );
    let _ = writeln!(
        out,
        "Pair level (unit: positive case × other phone; alerted = the phone is alerted and the \
         case's report carried its HELLOs): TP {} · FP {} · FN {} · TN {} · recall {} · precision {}\n",
        pairs.tp,
        pairs.fp,
        pairs.fn_,
        pairs.tn,
        percent(pairs.recall()),
        percent(pairs.precision())
    );

    let _ = writeln!(
        out,
        "## Per scenario\n\n| scenario | people | days | positives | TP | FP | FN | TN | recall | precision |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.scenario,
            r.people,
            r.days,
            r.positives.len(),
            rate_cells(&r.phones)
        );
    }
    out.push('\n');
    faq_table(&mut out, results);

    let _ = writeln!(out, "## Breakdowns (pair level)\n");
    breakdown(
        &mut out,
        "Per environment",
        "Where the positive case and the contact spent most time within the contact distance \
         (pairs that met only).",
        &merge(results, |r| &r.by_environment),
    );
    breakdown(
        &mut out,
        "Per OS pair",
        "OS of the positive case → OS of the contact (the case's phone must have heard the \
         contact's HELLOs).",
        &merge(results, |r| &r.by_os_pair),
    );
    breakdown(
        &mut out,
        "Per group",
        "Scenario group (place) of the encounter.",
        &merge(results, |r| &r.by_group),
    );
    let misses = results.iter().fold([0u64; 3], |a, r| {
        [
            a[0] + r.misses.never_heard,
            a[1] + r.misses.filtered_on_phone,
            a[2] + r.misses.below_server_threshold,
        ]
    });
    let _ = writeln!(
        out,
        "### Why contacts at risk were missed\n\n| cause | pairs |\n|---|---:|\n\
         | the case's phone never recorded a HELLO of the contact | {} |\n\
         | HELLOs held, none passed the report window and on-device filter | {} |\n\
         | HELLOs uploaded, server score below the risk threshold | {} |\n",
        misses[0], misses[1], misses[2]
    );

    let _ = writeln!(
        out,
        "## What happened\n\n| scenario | registrations | HELLOs recorded | radio receptions | reports | HELLOs uploaded | batch runs | alerts | wall time |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in results {
        let c = &r.counts;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            r.scenario,
            c.registrations,
            c.hellos_recorded,
            c.radio_receptions,
            c.reports,
            c.reported_hellos,
            c.batch_runs,
            c.alerts,
            r.timings.total_ms as f64 / 1000.0
        );
    }
    out.push('\n');
    if results.len() <= 3 {
        for r in results {
            let _ = writeln!(out, "### Events: {}\n", r.scenario);
            for e in r.events.iter().take(60) {
                let _ = writeln!(out, "- {}: {}", clock_label(e.t_s), e.text);
            }
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "## Plots\n\n\
         ![RSSI vs distance](rssi_vs_distance.png)\n\n\
         Calibrated RSSI the receiving phones stored, against the true distance between the two \
         people, per environment (a reservoir sample; lines: medians per 0.5 m). The horizontal \
         line is the scoring's p0: windows at or below it carry no risk.\n\n\
         ![Recall and precision](recall_precision.png)\n\n\
         Phone-level recall (blue) and precision (orange) per scenario; a missing bar is undefined \
         (nobody at risk, or nobody alerted).\n\n\
         ![Alert timeline](alert_timeline.png)\n\n\
         Phones seeing risk level 4, cumulated over simulated time: thick lines are true alerts, \
         thin ones false alerts; vertical lines mark the positive declarations. Each SVG file \
         beside its PNG has the same plot.\n"
    );
    let _ = writeln!(
        out,
        "## How to read this report\n\n\
         * **TP** a contact at risk that was alerted; **FN** one that was not; **FP** an alert \
         without a contact at risk; **TN** neither. Recall = TP / (TP + FN): the share of contacts \
         at risk that the system found. Precision = TP / (TP + FP): the share of alerts that were \
         deserved.\n\
         * The ground truth is exact (trajectories), per UTC day, and only counts time inside the \
         positive case's contagious window (the window its phone reports).\n\
         * `results.json` holds every number, per phone (`phone_outcomes`: truth, alert, server \
         score) and per pair (`pair_outcomes`: HELLOs heard, uploaded, filtered), for re-analysis \
         with other thresholds.\n"
    );
    out
}
