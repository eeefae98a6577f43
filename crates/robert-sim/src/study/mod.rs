//! The detection study (`robert calibrate study`): which estimator and
//! which thresholds warn the people who really were close to a positive
//! case, chosen on some data and judged on other data.
//!
//! ```text
//! corpus (families × draws) ──record once──▶ recordings (cached as files)
//!   training draws ─┐                          held-out draws ─┐
//!                   ▼                                          ▼
//!   optimiser (fast path, compiled)  ──setting + cut──▶  exact replay (real filter,
//!   per fold: every family but one                      real scoring, batch rules)
//!                                                       on the left-out family
//!   peers' rules (GAEN scans) ─────────cut on training──▶ same held-out phones
//!   anchors: Δ = 0, −5, …, −20 dB ──▶ sensitivity table
//! ```
//!
//! Modules: [`corpus`] (scenarios, families, draws), [`compiled`] (the
//! optimiser's fast path), [`peers`] (GAEN-based rules), [`search`] (the
//! optimiser), [`metrics`] (curves, areas, operating points), [`evaluate`]
//! (cross-validation, anchors), [`limits`] (why the targets are out of
//! reach: hearing ceiling, oracle bounds, radio ablation, far offices) and
//! [`report`] (tables, plots).

pub mod compiled;
pub mod corpus;
pub mod evaluate;
pub mod limits;
pub mod metrics;
pub mod peers;
pub mod report;
pub mod search;

use std::path::{Path, PathBuf};

use robert_core::filter::{FilterConfig, FilterMode, ProximityFilter};
use robert_core::scoring::{RiskParams, Scoring, ScoringTypical, ScoringV2, V2Params, WindowLevel};
use robert_radio::channel::Ablation;
use serde::Serialize;

use crate::error::SimError;
use crate::options::{Delivery, SimOptions};
use crate::recording::Recording;
use crate::replay::ReplaySettings;
use compiled::{FilterSetting, ServerSetting, TypicalSetting};
use corpus::{Entry, RunId};

/// How the study runs.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    /// Where recordings are cached (`<scenario>@<draw>.json.gz`).
    pub record_dir: PathBuf,
    /// Draws chosen on.
    pub training_draws: Vec<u32>,
    /// Draws reported on.
    pub held_out_draws: Vec<u32>,
    /// Anchor shifts Δ (dB) for the sensitivity table; 0 is the model's.
    pub shifts_db: Vec<i32>,
    /// Objective evaluations per optimisation.
    pub budget: usize,
    /// The recall constraint (0.9).
    pub recall_target: f64,
    /// Seed of the optimiser and the GAEN scan emulation.
    pub seed: u64,
    /// A deployment's measured anchor (calibrated dBm at 1 m): the study
    /// also tunes the setting for it.
    pub deployment_anchor_db: Option<i32>,
    /// Noise terms of the radio switched off in every scenario of the
    /// corpus (recordings kept in `record_dir/ablate-<terms>`).
    pub ablate: Ablation,
    /// Also rerun the quick study once per ablation of
    /// [`limits::sweep_ablations`] ([`limits::AblationRow`]).
    pub ablation_sweep: bool,
}

impl StudyOptions {
    /// The full study.
    pub fn full(record_dir: PathBuf) -> Self {
        Self {
            record_dir,
            training_draws: corpus::TRAINING_DRAWS.to_vec(),
            held_out_draws: corpus::HELD_OUT_DRAWS.to_vec(),
            shifts_db: vec![0, -6, -12, -18, -24],
            budget: 600,
            recall_target: 0.9,
            seed: 2026,
            deployment_anchor_db: None,
            ablate: Ablation::NONE,
            ablation_sweep: false,
        }
    }

    /// A quick pass: one draw each side, three anchors (−35, −47, −59), a
    /// smaller budget.
    pub fn quick(record_dir: PathBuf) -> Self {
        Self {
            training_draws: vec![corpus::TRAINING_DRAWS[0]],
            held_out_draws: vec![corpus::HELD_OUT_DRAWS[0]],
            shifts_db: vec![0, -12, -24],
            budget: 200,
            ..Self::full(record_dir)
        }
    }
}

/// One recorded (scenario, draw).
#[derive(Clone, Debug)]
pub struct Run {
    /// Which one.
    pub id: RunId,
    /// Its family.
    pub family: &'static str,
    /// In the issue's target set (examples and FAQ matrix).
    pub target_set: bool,
    /// The recording.
    pub rec: Recording,
}

/// Simulation options of the study's recordings: the fast steps, HELLOs
/// stored only by the future positive cases (the only stores uploaded, so
/// the alerts are unchanged), the reference thresholds.
pub fn recording_options() -> SimOptions {
    SimOptions {
        delivery: Delivery::PositivesOnly,
        record: true,
        ..SimOptions::fast()
    }
}

/// Where the recordings of a corpus with `ablation` live under `base`.
pub fn record_dir_for(base: &Path, ablation: Ablation) -> PathBuf {
    if ablation.is_empty() {
        base.to_path_buf()
    } else {
        base.join(format!("ablate-{}", ablation.label()))
    }
}

/// The corpus with `ablation` in every scenario's `[radio]`.
pub fn corpus_with(ablation: Ablation) -> Result<Vec<Entry>, SimError> {
    let mut entries = corpus::corpus()?;
    for e in &mut entries {
        e.scenario.radio.ablate = ablation;
    }
    Ok(entries)
}

/// Records every (scenario, draw) not yet in `dir` (or recorded from
/// another version of its scenario), then loads them all. A recording does
/// not know the radio model's version: delete `dir` after changing
/// `robert-radio`.
/// `progress` is told about each run.
pub fn record_corpus(
    entries: &[Entry],
    draws: &[u32],
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Run>, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::Study(format!("{}: {e}", dir.display())))?;
    let opts = recording_options();
    let mut runs = Vec::new();
    for &draw in draws {
        for e in entries {
            let id = RunId {
                scenario: e.scenario.name.clone(),
                draw,
            };
            let path = dir.join(id.file_name());
            let scenario = e.draw(draw);
            let fingerprint = crate::recording::scenario_fingerprint(&scenario);
            let rec = match Recording::load(&path) {
                Ok(rec) if rec.scenario_fingerprint == fingerprint => rec,
                _ => {
                    progress(&format!("recording {} (draw {draw})", id.scenario));
                    let mut result = crate::run_scenario(&scenario, &opts)?;
                    let rec = *result
                        .recording
                        .take()
                        .ok_or_else(|| SimError::Study("the run kept no recording".into()))?;
                    rec.save(&path)
                        .map_err(|e| SimError::Study(e.to_string()))?;
                    rec
                }
            };
            runs.push(Run {
                id,
                family: e.family,
                target_set: e.target_set,
                rec,
            });
        }
    }
    Ok(runs)
}

/// A complete setting: on-device filter, clipping, server estimator and
/// the alert cut on its statistic.
#[derive(Clone, Debug, PartialEq)]
pub struct Setting {
    /// The on-device filter.
    pub filter: FilterSetting,
    /// The filter's clipping threshold (`rssiThreshold`).
    pub clip: i32,
    /// The server's estimator.
    pub server: ServerSetting,
    /// Alert when the statistic reaches this (v2: `S`; typical: the worst
    /// day's near-minutes).
    pub cut: f64,
}

/// Scoring v2's R0 (kept: the risk threshold absorbs the cut).
pub const V2_R0: f64 = 0.0071;

impl Setting {
    /// The reference (deployed) setting.
    pub fn reference() -> Self {
        Self {
            filter: FilterSetting {
                mode: FilterMode::Risks,
                duration_s: 120,
                risk_threshold: 0.1,
                p0: -66.0,
            },
            clip: -25,
            server: ServerSetting::V2 {
                p0: -66.0,
                delta_scale: 1.0,
            },
            cut: -(0.9f64.ln()) / V2_R0,
        }
    }

    /// The server's risk threshold and R0 that alert exactly at the cut.
    pub fn risk_threshold_and_r0(&self) -> (f64, f64) {
        match self.server {
            ServerSetting::V2 { .. } => (1.0 - (-V2_R0 * self.cut).exp(), V2_R0),
            ServerSetting::Typical { .. } => (0.1, -(0.9f64.ln()) / self.cut),
        }
    }

    /// The real filter configuration.
    pub fn filter_config(&self) -> FilterConfig {
        FilterConfig {
            duration_threshold_secs: u64::from(self.filter.duration_s),
            risk_threshold: self.filter.risk_threshold,
            p0: self.filter.p0,
            rssi_threshold: self.clip,
            ..FilterConfig::app_2020()
        }
    }

    /// The real scoring.
    pub fn scoring(&self) -> Result<Scoring, SimError> {
        let (_, r0) = self.risk_threshold_and_r0();
        let err = |e: robert_core::scoring::ScoringError| SimError::Study(e.to_string());
        Ok(match self.server {
            ServerSetting::V2 { p0, delta_scale } => {
                let d = V2Params::default();
                Scoring::V2(
                    ScoringV2::new(V2Params {
                        p0,
                        deltas: d.deltas.iter().map(|x| x * delta_scale).collect(),
                        r0,
                        ..d
                    })
                    .map_err(err)?,
                )
            }
            ServerSetting::Typical(t) => {
                Scoring::Typical(ScoringTypical::new(t.params(r0)).map_err(err)?)
            }
        })
    }

    /// The exact replay's settings at an anchor shift.
    pub fn replay_settings(&self, shift_db: i32) -> Result<ReplaySettings, SimError> {
        let (risk_threshold, _) = self.risk_threshold_and_r0();
        Ok(ReplaySettings {
            anchor_shift_db: shift_db,
            filter: ProximityFilter::new(self.filter_config())
                .map_err(|e| SimError::Study(e.to_string()))?,
            filter_mode: self.filter.mode,
            scoring: self.scoring()?,
            risk: RiskParams {
                risk_threshold,
                ..RiskParams::default()
            },
        })
    }

    /// A one-line description.
    pub fn describe(&self) -> String {
        let f = &self.filter;
        let filter = match f.mode {
            FilterMode::Full => format!("filter FULL ≥ {} s", f.duration_s),
            FilterMode::Medium => format!("filter MEDIUM ≥ {} s, clip {}", f.duration_s, self.clip),
            FilterMode::Risks => format!(
                "filter RISKS ≥ {} s, risk ≥ {:.2}, p0 {:.0}, clip {}",
                f.duration_s, f.risk_threshold, f.p0, self.clip
            ),
        };
        let server = match self.server {
            ServerSetting::V2 { p0, delta_scale } => format!(
                "v2 p0 {p0:.0}, deltas ×{delta_scale:.2}, S ≥ {:.1}",
                self.cut
            ),
            ServerSetting::Typical(t) => format!(
                "typical level: {} q{:.2} from {:.0} to {:.0} dBm, contacts ≥ {:.0} min, ≥ {:.1} near-min/day",
                t.level.name(),
                t.quantile,
                t.level_low,
                t.level_low + t.width,
                t.min_minutes,
                self.cut
            ),
        };
        format!("{filter}; {server}")
    }
}

/// The estimators the optimiser tunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Family {
    /// Scoring v2 with free p0, delta scale and filter.
    V2,
    /// The typical-level estimator.
    Typical,
}

const MODES: [FilterMode; 3] = [FilterMode::Full, FilterMode::Medium, FilterMode::Risks];
const CLIPS: [i32; 2] = [-25, 0];
const LEVELS: [WindowLevel; 2] = [WindowLevel::Mean, WindowLevel::PowerMean];

impl Family {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::V2 => "ROBERT v2, tuned",
            Self::Typical => "typical level (ours)",
        }
    }

    /// The search box.
    pub fn dims(self) -> Vec<search::Dim> {
        use search::Dim;
        let mut d = vec![
            Dim::choice("filter mode", 3),
            Dim::new("filter durationThreshold (s)", 0.0, 600.0, 30.0),
            Dim::new("filter riskThreshold", 0.0, 0.6, 0.025),
            Dim::new("filter p0 (dBm)", -80.0, -40.0, 1.0),
            Dim::choice("filter clipping (−25 / 0)", 2),
        ];
        match self {
            Self::V2 => {
                d.push(Dim::new("scoring p0 (dBm)", -80.0, -30.0, 0.5));
                d.push(Dim::new("deltas scale", 0.5, 2.0, 0.05));
            }
            Self::Typical => {
                d.push(Dim::new("level low (dBm)", -80.0, -35.0, 0.5));
                d.push(Dim::new("ramp width (dB)", 0.0, 15.0, 0.5));
                d.push(Dim::new("quantile", 0.1, 0.9, 0.05));
                d.push(Dim::new("min minutes", 0.0, 10.0, 0.5));
                d.push(Dim::choice("window level (mean / power)", 2));
            }
        }
        d
    }

    /// Decodes a point of [`Family::dims`] (cut 0: chosen later).
    pub fn decode(self, x: &[f64]) -> Setting {
        let pick = |v: f64, n: usize| (v.round().max(0.0) as usize).min(n - 1);
        let filter = FilterSetting {
            mode: MODES[pick(x[0], 3)],
            duration_s: x[1].round().max(0.0) as u32,
            risk_threshold: x[2],
            p0: x[3],
        };
        let clip = CLIPS[pick(x[4], 2)];
        let server = match self {
            Self::V2 => ServerSetting::V2 {
                p0: x[5],
                delta_scale: x[6],
            },
            Self::Typical => ServerSetting::Typical(TypicalSetting {
                level_low: x[5],
                width: x[6],
                quantile: x[7],
                min_minutes: x[8],
                level: LEVELS[pick(x[9], 2)],
            }),
        };
        Setting {
            filter,
            clip,
            server,
            cut: 0.0,
        }
    }

    /// Starting points: the reference filter with the family's natural
    /// server values.
    pub fn starts(self) -> Vec<Vec<f64>> {
        let filter = [2.0, 120.0, 0.1, -66.0, 0.0];
        match self {
            Self::V2 => vec![[&filter[..], &[-66.0, 1.0]].concat()],
            Self::Typical => vec![
                [&filter[..], &[-55.0, 5.0, 0.5, 5.0, 0.0]].concat(),
                [
                    &[0.0, 120.0, 0.1, -66.0, 0.0][..],
                    &[-50.0, 0.0, 0.5, 0.0, 0.0],
                ]
                .concat(),
            ],
        }
    }
}

/// One setting judged on held-out draws at each anchor.
#[derive(Clone, Debug, Serialize)]
pub struct AnchorRow {
    /// The anchor shift Δ (dB).
    pub shift_db: i32,
    /// The anchor it stands for (−35 + Δ, calibrated dBm at 1 m).
    pub anchor_db: i32,
    /// The reference setting.
    pub reference: evaluate::HeldOut,
    /// The setting chosen at the model's anchor (absolute thresholds).
    pub model_anchor: evaluate::HeldOut,
    /// The robust setting (one for every anchor).
    pub robust: evaluate::HeldOut,
    /// The setting tuned at this anchor alone.
    pub optimum: evaluate::HeldOut,
    /// That setting, described.
    pub optimum_setting: String,
}

/// The issue's targets, on held-out draws, for the recommended setting.
#[derive(Clone, Debug, Serialize)]
pub struct Targets {
    /// Examples and FAQ matrix: confusion at 1 m (recall ≥ 90 %, precision ≥ 40 % wanted).
    pub target_set: evaluate::HeldOut,
    /// The same for the reference.
    pub target_set_reference: evaluate::HeldOut,
    /// Offices with desks ≥ 2.5 m: (alerted, phones) — ≤ 10 % wanted.
    pub far_offices: (u64, u64),
    /// The same for the reference.
    pub far_offices_reference: (u64, u64),
    /// Moving FAQ cells: (alerted, phones) — about 0 wanted.
    pub moving_cells: (u64, u64),
    /// The same for the reference.
    pub moving_cells_reference: (u64, u64),
}

/// Everything the study found (see [`report`]).
#[derive(Debug, Serialize)]
pub struct StudyResult {
    /// Runs recorded or loaded, per draw side.
    pub runs: usize,
    /// Training and held-out draws.
    pub draws: (Vec<u32>, Vec<u32>),
    /// Families (cross-validation folds).
    pub families: Vec<&'static str>,
    /// Cross-validated methods (leave one family out, held-out draws).
    pub methods: Vec<evaluate::CvResult>,
    /// The recommended setting: the typical level chosen on every family's
    /// training draws at the model's anchor (or the robust one when it
    /// holds across anchors and that one does not).
    pub chosen: String,
    /// Its parameters.
    #[serde(skip)]
    pub chosen_setting: Option<Setting>,
    /// The setting chosen at the model's anchor only.
    pub chosen_at_model_anchor: String,
    /// The setting chosen for the worst anchor (one cut for all).
    pub robust: String,
    /// Whether the recommended setting beats the reference at equal recall
    /// at every anchor (held-out draws), one line per anchor.
    pub anchor_checks: Vec<String>,
    /// All anchor checks passed.
    pub holds_across_anchors: bool,
    /// The cross-validated verdict alone.
    pub cv_wins: bool,
    /// The tuned v2 setting on every family (for comparison).
    pub v2_tuned: String,
    /// The setting tuned for [`StudyOptions::deployment_anchor_db`], with
    /// its held-out outcome at that anchor.
    #[serde(skip)]
    pub deployment: Option<(i32, Setting, evaluate::HeldOut)>,
    /// Sensitivity to the anchor.
    pub anchors: Vec<AnchorRow>,
    /// The peers at their own thresholds on held-out draws (all families)
    /// for GAEN attenuation offsets A = 8, 13, 18 dB: (rule, A, confusion
    /// at 1 m).
    pub peers_by_a: Vec<(String, f64, crate::confusion::Confusion)>,
    /// The issue's targets.
    pub targets: Targets,
    /// Whether the recommended setting wins on held-out data (beats the
    /// reference and every peer's precision at equal recall).
    pub wins: bool,
    /// Why (or why not), one line per comparison.
    pub verdict: Vec<String>,
    /// Why the targets are out of reach ([`limits`]).
    pub limits: limits::Limits,
    /// The noise terms switched off in this study's corpus (`none`).
    pub ablation: String,
    /// Offline = online check: phones whose replayed alert differs from the
    /// recorded online run, over all runs (reference settings).
    pub online_mismatches: u64,
    /// Phones checked.
    pub online_phones: u64,
}

/// Held-out outcome of a setting on runs (exact replay at a shift).
fn judge(runs: &[Run], idx: &[usize], setting: &ReplaySettings) -> evaluate::HeldOut {
    use rayon::prelude::*;
    let alerts: Vec<Vec<bool>> = idx
        .par_iter()
        .map(|&r| evaluate::exact_alerts(&runs[r], setting))
        .collect();
    let mut h = evaluate::HeldOut::default();
    for (&r, a) in idx.iter().zip(&alerts) {
        h.add_run(&runs[r], a);
    }
    h
}

fn alert_count(h: &evaluate::HeldOut) -> (u64, u64) {
    h.per_run.iter().fold((0, 0), |a, (_, _, c, alerts)| {
        (a.0 + alerts, a.1 + c.tp + c.fp + c.fn_ + c.tn)
    })
}

/// Runs the study (module docs). `progress` is told what is going on.
pub fn run_study(
    opts: &StudyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<StudyResult, SimError> {
    let entries = corpus_with(opts.ablate)?;
    let mut draws = opts.training_draws.clone();
    draws.extend(&opts.held_out_draws);
    let runs = record_corpus(
        &entries,
        &draws,
        &record_dir_for(&opts.record_dir, opts.ablate),
        progress,
    )?;

    // Offline = online, phone by phone, on every recording.
    let (mut online_mismatches, mut online_phones) = (0u64, 0u64);
    for run in &runs {
        let settings = ReplaySettings::online(&run.rec).map_err(SimError::Study)?;
        let rep = crate::replay::replay(&run.rec, &settings);
        for (i, p) in run.rec.negatives() {
            online_phones += 1;
            online_mismatches += u64::from(rep.alerted[i] != p.online_alert_s.is_some());
        }
    }
    progress(&format!(
        "offline = online: {online_mismatches} of {online_phones} phones differ"
    ));

    let folds = evaluate::folds(&runs, &opts.training_draws, &opts.held_out_draws);
    let families = corpus::families(&entries);
    let mut ws = evaluate::Workspace::new(&runs);
    let mut methods = Vec::new();
    for family in [Family::Typical, Family::V2] {
        methods.push(evaluate::cross_validate_family(
            &mut ws,
            &folds,
            family,
            opts.recall_target,
            opts.budget,
            opts.seed,
            progress,
        )?);
    }
    let mut fixed = vec![
        evaluate::Fixed::Exact(
            "ROBERT v2, reference".to_owned(),
            Box::new(ReplaySettings::reference()),
        ),
        evaluate::Fixed::Exact(
            "ROBERT v0 (legacy)".to_owned(),
            Box::new(ReplaySettings {
                scoring: Scoring::V0(robert_core::scoring::ScoringV0::new(
                    robert_core::scoring::V0Params::default(),
                )),
                ..ReplaySettings::reference()
            }),
        ),
    ];
    for rule in peers::PeerRule::ALL {
        fixed.push(evaluate::Fixed::Peer(rule, 13.0));
    }
    for f in &fixed {
        progress(&f.name());
        methods.push(evaluate::cross_validate_fixed(
            &mut ws,
            &folds,
            f,
            opts.recall_target,
        ));
    }

    // The recommended setting: every family's training draws.
    let train: Vec<usize> = (0..runs.len())
        .filter(|&i| opts.training_draws.contains(&runs[i].id.draw))
        .collect();
    let held: Vec<usize> = (0..runs.len())
        .filter(|&i| opts.held_out_draws.contains(&runs[i].id.draw))
        .collect();
    progress("choosing the recommended setting (all families, training draws)");
    // Every tuning below: on the training draws, to the recall target,
    // within the budget.
    let tune = |ws: &mut evaluate::Workspace<'_>, family: Family, shifts: &[i32]| {
        ws.tune(
            family,
            &train,
            shifts,
            opts.recall_target,
            opts.budget,
            opts.seed,
        )
        .0
    };
    let at_model = tune(&mut ws, Family::Typical, &[0]);
    let robust = tune(&mut ws, Family::Typical, &opts.shifts_db);
    let v2_tuned = tune(&mut ws, Family::V2, &[0]);

    // Sensitivity to the anchor, on held-out draws.
    let mut anchors = Vec::new();
    let mut reference_curves = Vec::new();
    for &shift in &opts.shifts_db {
        progress(&format!("anchor {} dBm", -35 + shift));
        let opt = tune(&mut ws, Family::Typical, &[shift]);
        let reference = ReplaySettings {
            anchor_shift_db: shift,
            ..ReplaySettings::reference()
        };
        let fixed = evaluate::Fixed::Exact(String::new(), Box::new(reference.clone()));
        reference_curves.push(metrics::Curves::new(
            &fixed.scored_runs(&mut ws, &held, 1.0),
        ));
        anchors.push(AnchorRow {
            shift_db: shift,
            anchor_db: -35 + shift,
            reference: judge(&runs, &held, &reference),
            model_anchor: judge(&runs, &held, &at_model.replay_settings(shift)?),
            robust: judge(&runs, &held, &robust.replay_settings(shift)?),
            optimum: judge(&runs, &held, &opt.replay_settings(shift)?),
            optimum_setting: opt.describe(),
        });
    }
    // Does a candidate beat the reference at equal recall at every anchor?
    let check = |pick: &dyn Fn(&AnchorRow) -> &evaluate::HeldOut| -> (bool, Vec<String>) {
        let mut ok = true;
        let mut lines = Vec::new();
        for (a, curves) in anchors.iter().zip(&reference_curves) {
            let c = pick(a).confusion[0];
            let (r, p) = (c.recall().unwrap_or(0.0), c.precision().unwrap_or(0.0));
            let theirs = report::precision_at_recall(curves, r);
            // The recall must stay near the target (10 points of slack for
            // held-out noise): a setting that goes deaf at this anchor does
            // not hold, however precise.
            let heard = pick(a).recall_of_heard().unwrap_or(0.0);
            let beat = heard + 1e-12 >= opts.recall_target - 0.1 && theirs.is_none_or(|q| p > q);
            ok &= beat;
            lines.push(format!(
                "anchor {} dBm: recall {} ({} of heard contacts), precision {}; reference at that recall: {} — {}",
                a.anchor_db,
                report::pct(Some(r)),
                report::pct(Some(heard)),
                report::pct(Some(p)),
                report::pct(theirs),
                if beat { "better" } else { "NOT better" }
            ));
        }
        (ok, lines)
    };
    let (model_holds, model_lines) = check(&|a| &a.model_anchor);
    let (robust_holds, robust_lines) = check(&|a| &a.robust);
    let (recommended, holds_across_anchors, anchor_checks) = if !model_holds && robust_holds {
        (robust.clone(), true, robust_lines)
    } else {
        (at_model.clone(), model_holds, model_lines)
    };

    // Targets at the model's anchor, held-out draws.
    let subset = |f: &dyn Fn(&Run) -> bool| -> Vec<usize> {
        held.iter().copied().filter(|&i| f(&runs[i])).collect()
    };
    let chosen_rs = recommended.replay_settings(0)?;
    let reference_rs = ReplaySettings::reference();
    let target_idx = subset(&|r| r.target_set);
    let far_idx = subset(&|r| {
        r.id.scenario.starts_with("office-2.5m") || r.id.scenario.starts_with("office-3m")
    });
    let moving_idx = subset(&|r| r.family == "faq-moving");
    let targets = Targets {
        target_set: judge(&runs, &target_idx, &chosen_rs),
        target_set_reference: judge(&runs, &target_idx, &reference_rs),
        far_offices: alert_count(&judge(&runs, &far_idx, &chosen_rs)),
        far_offices_reference: alert_count(&judge(&runs, &far_idx, &reference_rs)),
        moving_cells: alert_count(&judge(&runs, &moving_idx, &chosen_rs)),
        moving_cells_reference: alert_count(&judge(&runs, &moving_idx, &reference_rs)),
    };

    let deployment = match opts.deployment_anchor_db {
        Some(anchor) => {
            let shift = anchor + 35;
            progress(&format!("tuning for the deployment's anchor {anchor} dBm"));
            let s = tune(&mut ws, Family::Typical, &[shift]);
            let h = judge(&runs, &held, &s.replay_settings(shift)?);
            Some((anchor, s, h))
        }
        None => None,
    };
    let mut peers_by_a = Vec::new();
    for rule in peers::PeerRule::ALL {
        for a in [8.0, 13.0, 18.0] {
            let scored = ws.peer_scored(&held, rule, a, 1.0);
            let m = metrics::Curves::new(&scored).at(rule.native_threshold());
            peers_by_a.push((rule.name().to_owned(), a, m));
        }
    }
    progress("limits: hearing ceiling, oracle bounds, far offices");
    let mut limits = limits::analyse(&ws, &train, &held, &methods, opts.recall_target);
    if opts.ablation_sweep {
        limits.ablation = ablation_sweep(opts, progress)?;
    }
    let (cv_wins, verdict) = report::verdict(&methods);
    Ok(StudyResult {
        runs: runs.len(),
        draws: (opts.training_draws.clone(), opts.held_out_draws.clone()),
        families,
        methods,
        chosen: recommended.describe(),
        chosen_setting: Some(recommended),
        chosen_at_model_anchor: at_model.describe(),
        robust: robust.describe(),
        anchor_checks,
        holds_across_anchors,
        cv_wins,
        v2_tuned: v2_tuned.describe(),
        deployment,
        anchors,
        peers_by_a,
        targets,
        wins: cv_wins && holds_across_anchors,
        verdict,
        limits,
        ablation: opts.ablate.label(),
        online_mismatches,
        online_phones,
    })
}

/// Part 3 of [`limits`]: the quick study (one training and one held-out
/// draw, the quick budget at most) once per ablation of
/// [`limits::sweep_ablations`], each on its own recordings.
pub fn ablation_sweep(
    opts: &StudyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<limits::AblationRow>, SimError> {
    let quick = StudyOptions {
        budget: opts.budget.min(200),
        recall_target: opts.recall_target,
        seed: opts.seed,
        ..StudyOptions::quick(opts.record_dir.clone())
    };
    let mut draws = quick.training_draws.clone();
    draws.extend(&quick.held_out_draws);
    let mut rows = Vec::new();
    for ablation in limits::sweep_ablations() {
        progress(&format!("ablation {}", ablation.label()));
        let entries = corpus_with(ablation)?;
        let runs = record_corpus(
            &entries,
            &draws,
            &record_dir_for(&opts.record_dir, ablation),
            progress,
        )?;
        rows.push(limits::ablation_row(ablation, &runs, &quick, &mut |_| {})?);
    }
    Ok(rows)
}
