//! Calibration: fit the on-device filter and the server's risk thresholds to
//! a set of scenarios, minimising false negatives first and false positives
//! second (the StopCovid FAQ's order), and compare with the reference
//! values.
//!
//! # Method
//!
//! 1. **Grid.** Every combination of the phone filter's minimum risk
//!    (`riskThreshold`, mode RISKS), its minimum duration
//!    (`durationThreshold`) and the server scoring's `p0` in a [`Grid`] runs
//!    every scenario once (same seeds, so the same radio: only the
//!    thresholds differ). These knobs change what phones upload or how the
//!    server scores it, so they need a rerun.
//! 2. **Sweep.** The server alerts a phone when `1 − exp(−R0·S) ≥
//!    threshold`, i.e. when its score `S ≥ −ln(1 − threshold) / R0`: one
//!    monotone cut on `S`. For each grid point, [`sweep`] tries every cut
//!    between two observed scores offline (each [`crate::PhoneOutcome`]
//!    carries `S` and the ground truth) and keeps the one with the fewest
//!    false negatives, then the fewest false positives. The cut is placed
//!    at the geometric middle of the gap it falls in (a margin on both
//!    sides), or exactly at the reference threshold when that one is
//!    already optimal.
//! 3. **Choice.** Across grid points, fewest false negatives, then fewest
//!    false positives, then fewest changes from the reference, then grid
//!    order. The reference values therefore stay whenever the data do not
//!    say otherwise.
//! 4. **Check.** The chosen setting runs every scenario again for real; the
//!    before/after table compares that run with the reference run.
//!
//! R0 stays the reference's (0.0071): with the risk threshold free, R0 and
//! the threshold act as one parameter.

use std::cmp::Ordering;

use robert_radio::scenario::Scenario;
use serde::Serialize;

use crate::confusion::Confusion;
use crate::error::SimError;
use crate::options::{Knobs, SimOptions};
use crate::progress::NoProgress;
use crate::result::{PhoneOutcome, SimResult};
use crate::run::run_scenario_with;

/// The values a calibration tries. The reference values need not be in the
/// grid: the reference always runs first, as the "before".
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Grid {
    /// On-device filter: minimum window risk in mode RISKS (reference 0.1).
    pub filter_risk_thresholds: Vec<f64>,
    /// On-device filter: minimum span of an EBID group in seconds
    /// (reference 120).
    pub filter_durations_s: Vec<u64>,
    /// Server scoring v2: `p0` in dBm (reference −66).
    pub scoring_p0s: Vec<f64>,
}

impl Default for Grid {
    /// 3 × 2 × 2 = 12 grid points around the reference.
    fn default() -> Self {
        Self {
            filter_risk_thresholds: vec![0.1, 0.2, 0.3],
            filter_durations_s: vec![120, 300],
            scoring_p0s: vec![-66.0, -62.0],
        }
    }
}

impl Grid {
    /// Every combination, filter risk outermost.
    pub fn points(&self) -> Vec<Setting> {
        let reference = Setting::reference();
        let mut out = Vec::new();
        for &filter_risk_threshold in &self.filter_risk_thresholds {
            for &filter_duration_s in &self.filter_durations_s {
                for &scoring_p0 in &self.scoring_p0s {
                    out.push(Setting {
                        filter_risk_threshold,
                        filter_duration_s,
                        scoring_p0,
                        risk_threshold: reference.risk_threshold,
                    });
                }
            }
        }
        out
    }

    /// The settings a calibration runs, in order: `reference` first, then
    /// every grid point that differs from it (at the reference's risk
    /// threshold, which the sweep then fits).
    pub fn runs(&self, reference: &Setting) -> Vec<Setting> {
        let mut runs = vec![*reference];
        runs.extend(
            self.points()
                .into_iter()
                .map(|s| Setting {
                    risk_threshold: reference.risk_threshold,
                    ..s
                })
                .filter(|s| s.changes_from(reference) > 0),
        );
        runs
    }

    /// Checks that the grid is not empty and every value is in range.
    pub fn validate(&self) -> Result<(), String> {
        if self.filter_risk_thresholds.is_empty()
            || self.filter_durations_s.is_empty()
            || self.scoring_p0s.is_empty()
        {
            return Err("every grid dimension needs at least one value".into());
        }
        if let Some(v) = self
            .filter_risk_thresholds
            .iter()
            .find(|v| !(v.is_finite() && (0.0..=1.0).contains(*v)))
        {
            return Err(format!("filter risk threshold {v} is not in [0, 1]"));
        }
        if let Some(v) = self.filter_durations_s.iter().find(|v| **v > 900) {
            return Err(format!(
                "filter duration {v} s is longer than an epoch (900 s)"
            ));
        }
        if let Some(v) = self
            .scoring_p0s
            .iter()
            .find(|v| !(v.is_finite() && (-120.0..=0.0).contains(*v)))
        {
            return Err(format!("scoring p0 {v} dBm is not in [-120, 0]"));
        }
        Ok(())
    }
}

/// How two outcomes are ranked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Fewest false negatives, then fewest false positives (the FAQ's
    /// order): one more contact caught is worth any number of false alerts.
    #[default]
    Lexicographic,
    /// A false negative costs as much as `fn_cost` false positives; ties
    /// are broken by fewest false negatives. A finite price for a missed
    /// contact, for when the strict order buys one contact with a hundred
    /// false alerts.
    Weighted {
        /// False positives one false negative is worth (> 0).
        fn_cost: f64,
    },
}

impl Objective {
    /// Orders outcomes best first.
    pub fn compare(&self, a: &Confusion, b: &Confusion) -> Ordering {
        match *self {
            Self::Lexicographic => (a.fn_, a.fp).cmp(&(b.fn_, b.fp)),
            Self::Weighted { fn_cost } => {
                let cost = |c: &Confusion| fn_cost * c.fn_ as f64 + c.fp as f64;
                cost(a)
                    .total_cmp(&cost(b))
                    .then_with(|| (a.fn_, a.fp).cmp(&(b.fn_, b.fp)))
            }
        }
    }

    /// Checks that a weight is positive and finite.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Self::Weighted { fn_cost } if !(fn_cost.is_finite() && fn_cost > 0.0) => Err(format!(
                "the cost of a false negative ({fn_cost}) must be positive"
            )),
            _ => Ok(()),
        }
    }
}

/// One set of calibrated values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Setting {
    /// On-device filter `riskThreshold` (mode RISKS).
    pub filter_risk_threshold: f64,
    /// On-device filter `durationThreshold` (s).
    pub filter_duration_s: u64,
    /// Server scoring `p0` (dBm).
    pub scoring_p0: f64,
    /// Server risk threshold on `1 − exp(−R0·S)`.
    pub risk_threshold: f64,
}

impl Setting {
    /// The deployed values ([`Knobs::default`]).
    pub fn reference() -> Self {
        Self::of(&Knobs::default())
    }

    /// The values in force in `knobs`.
    pub fn of(knobs: &Knobs) -> Self {
        Self {
            filter_risk_threshold: knobs.filter.risk_threshold,
            filter_duration_s: knobs.filter.duration_threshold_secs,
            scoring_p0: knobs.scoring.p0,
            risk_threshold: knobs.risk_threshold,
        }
    }

    /// Writes the values into `knobs` (everything else unchanged).
    pub fn apply(&self, knobs: &mut Knobs) {
        knobs.filter.risk_threshold = self.filter_risk_threshold;
        knobs.filter.duration_threshold_secs = self.filter_duration_s;
        knobs.scoring.p0 = self.scoring_p0;
        knobs.risk_threshold = self.risk_threshold;
    }

    /// How many of the four values differ from `other`.
    pub fn changes_from(&self, other: &Setting) -> usize {
        [
            self.filter_risk_threshold != other.filter_risk_threshold,
            self.filter_duration_s != other.filter_duration_s,
            self.scoring_p0 != other.scoring_p0,
            !same_threshold(self.risk_threshold, other.risk_threshold),
        ]
        .into_iter()
        .filter(|c| *c)
        .count()
    }
}

/// Risk thresholds equal to 12 significant digits (a fitted threshold that
/// is the reference's comes back through `exp`/`ln`).
fn same_threshold(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// The score cut `S ≥ s` equivalent to a risk threshold.
pub fn score_cut(risk_threshold: f64, r0: f64) -> f64 {
    -(1.0 - risk_threshold).ln() / r0
}

/// The risk threshold equivalent to a score cut.
pub fn risk_threshold_for(score_cut: f64, r0: f64) -> f64 {
    1.0 - (-r0 * score_cut).exp()
}

/// One phone as the sweep sees it: its server score and the truth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    /// Sum of the exposure scores the server holds (`S`).
    pub score: f64,
    /// Ground truth: at-risk contact of a positive case.
    pub at_risk: bool,
}

impl Unit {
    /// The phone-level units of a run: every phone except the positive
    /// cases (unregistered phones have score 0 and are never alerted).
    pub fn of_run(outcomes: &[PhoneOutcome]) -> Vec<Unit> {
        outcomes
            .iter()
            .filter(|p| !p.positive)
            .map(|p| Unit {
                score: if p.registered { p.server_score } else { 0.0 },
                at_risk: p.truth_at_risk,
            })
            .collect()
    }
}

/// The confusion matrix of the cut `S ≥ cut` (phones with `S = 0` are
/// never alerted: the server stores no exposure for them).
pub fn confusion_at(units: &[Unit], cut: f64) -> Confusion {
    let mut c = Confusion::default();
    for u in units {
        c.record(u.at_risk, u.score > 0.0 && u.score >= cut);
    }
    c
}

/// The best cut for a set of units.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// Alert when `S ≥ score_cut`.
    pub score_cut: f64,
    /// The same as a risk threshold (at the given R0).
    pub risk_threshold: f64,
    /// Phone-level outcome at that cut.
    pub confusion: Confusion,
}

/// Finds the best score cut under `objective` (see the module docs).
/// `reference_cut` is kept when it is optimal.
pub fn sweep(units: &[Unit], r0: f64, reference_cut: f64, objective: Objective) -> Fit {
    let mut scores: Vec<f64> = units
        .iter()
        .map(|u| u.score)
        .filter(|s| *s > 0.0 && s.is_finite())
        .collect();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    // Classes: cut in (scores[i-1], scores[i]] alerts exactly the phones
    // with S ≥ scores[i]; the last class (above every score) alerts nobody.
    let mut best: Option<(Confusion, f64, f64)> = None;
    for i in 0..=scores.len() {
        let low = if i == 0 { 0.0 } else { scores[i - 1] };
        let high = scores.get(i).copied().unwrap_or(f64::INFINITY);
        let probe = if high.is_finite() {
            high
        } else {
            low * 2.0 + 1.0
        };
        let c = confusion_at(units, probe);
        if best
            .as_ref()
            .is_none_or(|(b, _, _)| objective.compare(&c, b) == Ordering::Less)
        {
            best = Some((c, low, high));
        }
    }
    // `scores.len() + 1 ≥ 1` classes, so the loop ran at least once.
    let (confusion, low, high) = best.unwrap_or((confusion_at(units, 0.0), 0.0, f64::INFINITY));
    let mut cut = if reference_cut > low && reference_cut <= high {
        reference_cut
    } else if low <= 0.0 {
        high / 2.0
    } else if high.is_infinite() {
        low * 2.0
    } else {
        (low * high).sqrt()
    };
    // Round a fitted threshold to four decimals for the configuration files
    // when the rounded cut stays in the same gap (it nearly always does: the
    // cut sits in the middle of the gap).
    let mut risk_threshold = risk_threshold_for(cut, r0);
    if cut != reference_cut {
        let rounded = (risk_threshold * 1e4).round() / 1e4;
        let rounded_cut = score_cut(rounded, r0);
        if rounded > 0.0 && rounded < 1.0 && rounded_cut > low && rounded_cut <= high {
            risk_threshold = rounded;
            cut = rounded_cut;
        }
    }
    Fit {
        score_cut: cut,
        risk_threshold,
        confusion,
    }
}

/// One grid point: the rerun with its filter and scoring values, and the
/// best risk threshold for them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GridPoint {
    /// The values, with the fitted risk threshold.
    pub setting: Setting,
    /// Outcome of the run (at the reference risk threshold).
    pub at_reference_threshold: Confusion,
    /// Outcome at the fitted risk threshold (offline sweep).
    pub fitted: Fit,
    /// Wall-clock time of the runs (ms).
    pub run_ms: u64,
}

/// One scenario before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioRow {
    /// Scenario name.
    pub scenario: String,
    /// Phones (all, including the positive cases).
    pub people: usize,
    /// Phone-level outcome with the reference values.
    pub before: Confusion,
    /// Phone-level outcome with the chosen values.
    pub after: Confusion,
}

/// What [`calibrate`] found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    /// The reference values (the "before").
    pub reference: Setting,
    /// The chosen values (the "after"); equal to `reference` when the data
    /// do not say otherwise.
    pub chosen: Setting,
    /// R0 used to turn score cuts into risk thresholds.
    pub r0: f64,
    /// How outcomes were ranked.
    pub objective: Objective,
    /// Every grid point, in grid order (the reference first).
    pub grid: Vec<GridPoint>,
    /// Per scenario, before and after.
    pub scenarios: Vec<ScenarioRow>,
    /// All scenarios, before.
    pub before: Confusion,
    /// All scenarios, after (a real rerun with `chosen`).
    pub after: Confusion,
    /// Phones whose real alert in the reference run differs from the offline
    /// rule `S ≥ cut` (alerts depend on more than the score, e.g. the date
    /// of the last contact); 0 means the sweep predicts runs exactly.
    pub offline_mismatches: u64,
    /// Outcome the sweep predicted for the chosen values (compare `after`).
    pub predicted_after: Confusion,
}

impl Calibration {
    /// Whether the chosen values differ from the reference.
    pub fn changed(&self) -> bool {
        self.chosen.changes_from(&self.reference) > 0
    }
}

/// Runs a calibration study over `scenarios` (see the module docs).
/// `base` supplies everything except the four calibrated values (its knobs
/// give the reference); `on_step` receives one line per finished run.
pub fn calibrate(
    scenarios: &[Scenario],
    base: &SimOptions,
    grid: &Grid,
    objective: Objective,
    on_step: &mut dyn FnMut(&str),
) -> Result<Calibration, SimError> {
    grid.validate().map_err(SimError::Options)?;
    objective.validate().map_err(SimError::Options)?;
    if scenarios.is_empty() {
        return Err(SimError::Options("no scenario to calibrate on".into()));
    }
    let mut base = base.clone();
    base.keep_phone_outcomes = true;
    base.validate().map_err(SimError::Options)?;
    let reference = Setting::of(&base.knobs);
    let r0 = base.knobs.scoring.r0;
    let reference_cut = score_cut(reference.risk_threshold, r0);

    let settings = grid.runs(&reference);

    let mut points = Vec::with_capacity(settings.len());
    let mut before_rows: Vec<(String, usize, Confusion)> = Vec::new();
    let mut offline_mismatches = 0u64;
    for (i, setting) in settings.iter().enumerate() {
        let started = std::time::Instant::now();
        let results = run_all(scenarios, &base, setting)?;
        let units: Vec<Unit> = results
            .iter()
            .flat_map(|r| Unit::of_run(&r.phone_outcomes))
            .collect();
        let at_reference_threshold: Confusion = results.iter().map(|r| r.phones).sum();
        if i == 0 {
            before_rows = results
                .iter()
                .map(|r| (r.scenario.clone(), r.people, r.phones))
                .collect();
            offline_mismatches = results
                .iter()
                .flat_map(|r| r.phone_outcomes.iter())
                .filter(|p| !p.positive)
                .filter(|p| {
                    let offline =
                        p.registered && p.server_score > 0.0 && p.server_score >= reference_cut;
                    offline != p.first_alert_s.is_some()
                })
                .count() as u64;
        }
        let fitted = sweep(&units, r0, reference_cut, objective);
        let point = GridPoint {
            setting: Setting {
                risk_threshold: fitted.risk_threshold,
                ..*setting
            },
            at_reference_threshold,
            fitted,
            run_ms: started.elapsed().as_millis() as u64,
        };
        on_step(&format!(
            "{}/{} {}  as run: FN {} FP {}  fitted: FN {} FP {} at risk threshold {:.4}",
            i + 1,
            settings.len(),
            describe(setting),
            at_reference_threshold.fn_,
            at_reference_threshold.fp,
            fitted.confusion.fn_,
            fitted.confusion.fp,
            fitted.risk_threshold
        ));
        points.push(point);
    }

    let best = points
        .iter()
        .enumerate()
        .min_by(|(ia, a), (ib, b)| {
            objective
                .compare(&a.fitted.confusion, &b.fitted.confusion)
                .then_with(|| {
                    a.setting
                        .changes_from(&reference)
                        .cmp(&b.setting.changes_from(&reference))
                })
                .then_with(|| ia.cmp(ib))
        })
        .map(|(_, p)| p.clone());
    // `points` holds at least the reference.
    let Some(best) = best else {
        return Err(SimError::Options("empty calibration grid".into()));
    };
    let chosen = if best.setting.changes_from(&reference) == 0 {
        reference
    } else {
        best.setting
    };

    let after_results = if chosen == reference {
        None
    } else {
        let r = run_all(scenarios, &base, &chosen)?;
        on_step(&format!("check: {} (a real run)", describe(&chosen)));
        Some(r)
    };
    let scenarios_rows: Vec<ScenarioRow> = before_rows
        .iter()
        .enumerate()
        .map(|(i, (name, people, before))| ScenarioRow {
            scenario: name.clone(),
            people: *people,
            before: *before,
            after: after_results
                .as_ref()
                .and_then(|r| r.get(i))
                .map_or(*before, |r| r.phones),
        })
        .collect();
    Ok(Calibration {
        reference,
        chosen,
        r0,
        objective,
        before: scenarios_rows.iter().map(|r| r.before).sum(),
        after: scenarios_rows.iter().map(|r| r.after).sum(),
        grid: points,
        scenarios: scenarios_rows,
        offline_mismatches,
        predicted_after: best.fitted.confusion,
    })
}

fn run_all(
    scenarios: &[Scenario],
    base: &SimOptions,
    setting: &Setting,
) -> Result<Vec<SimResult>, SimError> {
    let mut opts = base.clone();
    setting.apply(&mut opts.knobs);
    opts.validate().map_err(SimError::Options)?;
    scenarios
        .iter()
        .map(|s| run_scenario_with(s, &opts, &NoProgress))
        .collect()
}

/// `filter risk 0.1, 120 s, p0 −66, risk threshold 0.1`.
pub fn describe(s: &Setting) -> String {
    format!(
        "filter risk {}, filter duration {} s, scoring p0 {} dBm, risk threshold {:.4}",
        s.filter_risk_threshold, s.filter_duration_s, s.scoring_p0, s.risk_threshold
    )
}

/// The Markdown report of a calibration (`calibration.md`).
pub fn markdown(c: &Calibration) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let row = |name: &str, s: &Setting, k: &Confusion| {
        format!(
            "| {name} | {} | {} | {} | {:.4} | {} |\n",
            s.filter_risk_threshold,
            s.filter_duration_s,
            s.scoring_p0,
            s.risk_threshold,
            crate::report::rate_cells(k)
        )
    };
    let head = "| | filter risk | filter duration (s) | scoring p0 (dBm) | risk threshold | TP | FP | FN | TN | recall | precision |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    md.push_str("# Calibration\n\n");
    let _ = write!(
        md,
        "{} (phone level: every phone except the positive cases). Method: \
         `robert_sim::calibrate`.\n\n## Before and after\n\n",
        match c.objective {
            Objective::Lexicographic =>
                "Minimise false negatives first, then false positives".to_owned(),
            Objective::Weighted { fn_cost } =>
                format!("Minimise {fn_cost} × false negatives + false positives"),
        }
    );
    md.push_str(head);
    md.push_str(&row("reference", &c.reference, &c.before));
    md.push_str(&row("calibrated", &c.chosen, &c.after));
    let _ = writeln!(
        md,
        "\n{}\n",
        if c.changed() {
            "The data favour other values than the reference's (see below)."
        } else {
            "The reference values are already optimal on these scenarios: nothing changes."
        }
    );
    md.push_str("## Per scenario\n\n| scenario | phones | before TP/FP/FN/TN | after TP/FP/FN/TN |\n|---|---:|---|---|\n");
    for r in &c.scenarios {
        let _ = writeln!(
            md,
            "| {} | {} | {}/{}/{}/{} | {}/{}/{}/{} |",
            r.scenario,
            r.people,
            r.before.tp,
            r.before.fp,
            r.before.fn_,
            r.before.tn,
            r.after.tp,
            r.after.fp,
            r.after.fn_,
            r.after.tn
        );
    }
    md.push_str(
        "\n## Grid\n\nEach row reran every scenario with its filter and scoring values; \
         the risk threshold is the best cut on the server score for that row.\n\n",
    );
    md.push_str(head);
    for (i, p) in c.grid.iter().enumerate() {
        md.push_str(&row(&format!("{}", i + 1), &p.setting, &p.fitted.confusion));
    }
    let _ = writeln!(
        md,
        "\nOffline rule check: {} phone(s) of the reference run alerted differently \
         from `S ≥ cut`; the sweep predicted FN {} FP {} for the chosen values, the \
         real rerun gave FN {} FP {}.",
        c.offline_mismatches, c.predicted_after.fn_, c.predicted_after.fp, c.after.fn_, c.after.fp
    );
    md
}

/// The before/after table as plain text (what `robert calibrate` prints).
pub fn text_table(c: &Calibration) -> String {
    use crate::confusion::percent;
    let mut out = format!(
        "{:<11} {:>11} {:>9} {:>8} {:>9} {:>5} {:>5} {:>5} {:>6} {:>8} {:>10}\n",
        "",
        "filter risk",
        "duration",
        "p0",
        "threshold",
        "TP",
        "FP",
        "FN",
        "TN",
        "recall",
        "precision"
    );
    for (name, s, k) in [
        ("reference", &c.reference, &c.before),
        ("calibrated", &c.chosen, &c.after),
    ] {
        out.push_str(&format!(
            "{:<11} {:>11} {:>7} s {:>4} dBm {:>9.4} {:>5} {:>5} {:>5} {:>6} {:>8} {:>10}\n",
            name,
            s.filter_risk_threshold,
            s.filter_duration_s,
            s.scoring_p0,
            s.risk_threshold,
            k.tp,
            k.fp,
            k.fn_,
            k.tn,
            percent(k.recall()),
            percent(k.precision())
        ));
    }
    out
}

/// The chosen values as configuration: the server's TOML, and the
/// `robert app-config` commands that hand the filter to the apps through
/// the `config` list (the SDK follows `ble.filterMode` / `ble.filterConfig`).
pub fn config_snippet(s: &Setting, r0: f64) -> String {
    format!(
        "# robert serve / robert batch configuration\n[batch]\nrisk_threshold = {}\n\
         [batch.scoring]\nr0 = {r0}\np0 = {}\n\
         # the apps' on-device filter, through the config list:\n\
         # robert app-config set ble.filterMode RISKS --string\n\
         # robert app-config set ble.filterConfig '{{\"durationThreshold\": {}, \"riskThreshold\": {}}}'\n",
        s.risk_threshold, s.scoring_p0, s.filter_duration_s, s.filter_risk_threshold
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(score: f64, at_risk: bool) -> Unit {
        Unit { score, at_risk }
    }

    const R0: f64 = 0.0071;

    #[test]
    fn score_cut_and_risk_threshold_are_inverse() {
        let cut = score_cut(0.1, R0);
        assert!((cut - 14.839_509).abs() < 1e-5, "{cut}");
        assert!((risk_threshold_for(cut, R0) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn sweep_keeps_every_true_contact_then_drops_false_ones() {
        // True contacts at 30 and 50; false ones at 5, 10 and 80.
        let units = [
            u(5.0, false),
            u(10.0, false),
            u(30.0, true),
            u(50.0, true),
            u(80.0, false),
            u(0.0, false),
            u(0.0, true),
        ];
        // A reference cut (100) outside the best gap is not kept.
        let fit = sweep(&units, R0, 100.0, Objective::Lexicographic);
        // The unscored true contact cannot be recovered: FN 1 is the floor.
        assert_eq!(fit.confusion.fn_, 1);
        assert_eq!(
            fit.confusion.fp, 1,
            "only the phone at 80 stays a false alert"
        );
        // The cut sits between 10 and 30, near their geometric middle (the
        // threshold is rounded to four decimals).
        assert!(
            (fit.score_cut - (10.0f64 * 30.0).sqrt()).abs() < 0.1,
            "{}",
            fit.score_cut
        );
        assert_eq!(fit.risk_threshold, (fit.risk_threshold * 1e4).round() / 1e4);
        assert_eq!(confusion_at(&units, fit.score_cut), fit.confusion);
    }

    #[test]
    fn sweep_keeps_the_reference_cut_when_it_is_optimal() {
        let reference = score_cut(0.1, R0); // ≈ 14.84
        let units = [u(5.0, false), u(30.0, true)];
        let fit = sweep(&units, R0, reference, Objective::Lexicographic);
        assert_eq!(fit.score_cut, reference);
        assert!(same_threshold(fit.risk_threshold, 0.1));
        assert_eq!(fit.confusion.fp, 0);
        assert_eq!(fit.confusion.fn_, 0);
    }

    #[test]
    fn sweep_lowers_the_cut_to_catch_a_weak_true_contact() {
        let reference = score_cut(0.1, R0);
        let units = [u(3.0, true), u(1.0, false), u(40.0, true)];
        let fit = sweep(&units, R0, reference, Objective::Lexicographic);
        assert_eq!(fit.confusion.fn_, 0);
        assert_eq!(fit.confusion.fp, 0);
        assert!(fit.score_cut > 1.0 && fit.score_cut <= 3.0);
        assert!(fit.risk_threshold < 0.1);
    }

    #[test]
    fn sweep_without_true_contacts_alerts_nobody() {
        let units = [u(5.0, false), u(50.0, false)];
        let fit = sweep(&units, R0, score_cut(0.1, R0), Objective::Lexicographic);
        assert_eq!(fit.confusion.fp, 0);
        assert_eq!(fit.confusion.tn, 2);
        assert!(fit.score_cut > 50.0);
        assert!(
            sweep(&[], R0, 1.0, Objective::Lexicographic)
                .confusion
                .total()
                == 0
        );
    }

    #[test]
    fn a_finite_price_for_a_miss_refuses_a_contact_bought_with_many_false_alerts() {
        // Catching the weak true contact at 3 means alerting the five false
        // ones at 4..8 too.
        let mut units = vec![u(3.0, true), u(40.0, true)];
        units.extend((4..9).map(|s| u(f64::from(s), false)));
        let strict = sweep(&units, R0, 100.0, Objective::Lexicographic);
        assert_eq!((strict.confusion.fn_, strict.confusion.fp), (0, 5));
        let priced = sweep(&units, R0, 100.0, Objective::Weighted { fn_cost: 2.0 });
        assert_eq!((priced.confusion.fn_, priced.confusion.fp), (1, 0));
        let dear = sweep(&units, R0, 100.0, Objective::Weighted { fn_cost: 10.0 });
        assert_eq!((dear.confusion.fn_, dear.confusion.fp), (0, 5));
        assert!(Objective::Weighted { fn_cost: 0.0 }.validate().is_err());
        assert!(
            Objective::Weighted { fn_cost: f64::NAN }
                .validate()
                .is_err()
        );
    }

    #[test]
    fn changes_count_each_value_once() {
        let r = Setting::reference();
        assert_eq!(r.changes_from(&r), 0);
        let s = Setting {
            filter_duration_s: 300,
            risk_threshold: 0.2,
            ..r
        };
        assert_eq!(s.changes_from(&r), 2);
        let mut k = Knobs::default();
        s.apply(&mut k);
        assert_eq!(Setting::of(&k), s);
    }

    #[test]
    fn grid_lists_every_combination_and_rejects_bad_values() {
        let g = Grid::default();
        assert_eq!(g.points().len(), 12);
        assert!(g.validate().is_ok());
        let bad = Grid {
            filter_risk_thresholds: vec![1.5],
            ..Grid::default()
        };
        assert!(bad.validate().is_err());
        let empty = Grid {
            scoring_p0s: vec![],
            ..Grid::default()
        };
        assert!(empty.validate().is_err());
    }

    #[test]
    fn snippet_carries_the_values() {
        let s = Setting {
            risk_threshold: 0.25,
            ..Setting::reference()
        };
        let text = config_snippet(&s, R0);
        assert!(text.contains("risk_threshold = 0.25"));
        assert!(text.contains("p0 = -66"));
        assert!(text.contains("\"durationThreshold\": 120"));
        // The filterConfig it prints is what the phone SDK reads.
        let json = text
            .lines()
            .find(|l| l.contains("set ble.filterConfig"))
            .and_then(|l| l.split('\'').nth(1))
            .expect("the filterConfig between quotes");
        let list = serde_json::json!([{"name": "ble.filterConfig", "value": json}]);
        let found = robert_client::server_config::ServerFilter::from_list(
            &list,
            &robert_core::filter::FilterConfig::sdk_default(),
        );
        let filter = found.filter.expect("parses");
        let config = filter.config();
        assert_eq!(config.duration_threshold_secs, 120);
        assert_eq!(config.risk_threshold, 0.1);
    }
}
