//! Choosing on training data, judging on held-out data.
//!
//! * [`Workspace::tune`] maximises, over a family's box, the precision at
//!   recall ≥ the target on the **training** runs given to it (one cut per
//!   setting, chosen on the same runs; with several anchor shifts, one cut
//!   for all and the worst anchor counts).
//! * [`cross_validate_family`] leaves one family out at a time: training = the
//!   other families' training draws, test = the left-out family's held-out
//!   draws, judged with the exact replay. Pooled over folds, every held-out
//!   phone is judged by a setting that never saw its family or its draw.
//! * Fixed rules (the reference, v0, the peers) get their cut for the
//!   recall target the same way: on the training folds only.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use super::compiled::{self, Compiled};
use super::metrics::{Curves, Scored, margin_cut};
use super::peers::{self, PeerRule, Scans};
use super::search::{Found, maximise};
use super::{Family, Run, Setting};
use crate::confusion::Confusion;
use crate::error::SimError;
use crate::replay::{ReplaySettings, replay};

/// Truth distances reported (m): the contact definition and the 2 m one.
pub const TRUTHS_M: [f64; 2] = [1.0, 2.0];

/// Runs and their compiled forms.
#[derive(Debug)]
pub struct Workspace<'a> {
    /// The recorded runs.
    pub runs: &'a [Run],
    compiled: HashMap<(usize, i32, i32), Compiled>,
    scans: HashMap<usize, Scans>,
    /// Every run index an optimisation has read (the no-leak test reads it).
    pub tuned_on: std::collections::BTreeSet<usize>,
}

/// A per-phone statistic with both truths, for one run.
#[derive(Clone, Debug, Default)]
pub struct PhoneStats {
    /// Statistic per person (0 for positive cases).
    pub stat: Vec<f64>,
}

impl<'a> Workspace<'a> {
    /// A workspace over these runs.
    pub fn new(runs: &'a [Run]) -> Self {
        Self {
            runs,
            compiled: HashMap::new(),
            scans: HashMap::new(),
            tuned_on: Default::default(),
        }
    }

    /// Compiles what these runs need at these shifts and clips.
    fn prepare(&mut self, runs: &[usize], shifts: &[i32], clips: &[i32]) {
        let todo: Vec<(usize, i32, i32)> = runs
            .iter()
            .flat_map(|&r| {
                shifts
                    .iter()
                    .flat_map(move |&s| clips.iter().map(move |&c| (r, s, c)))
            })
            .filter(|k| !self.compiled.contains_key(k))
            .collect();
        let runs_ref = self.runs;
        let done: Vec<((usize, i32, i32), Compiled)> = todo
            .par_iter()
            .map(|&(r, s, c)| ((r, s, c), compiled::compile(&runs_ref[r].rec, s, c, -35)))
            .collect();
        self.compiled.extend(done);
    }

    /// Pooled (statistic, truth at `truth_m`) over runs, fast path.
    pub fn scored(
        &mut self,
        runs: &[usize],
        setting: &Setting,
        shift: i32,
        truth_m: f64,
    ) -> Vec<Scored> {
        self.prepare(runs, &[shift], &[setting.clip]);
        let mut out = Vec::new();
        let mut stat = Vec::new();
        for &r in runs {
            let c = &self.compiled[&(r, shift, setting.clip)];
            compiled::statistic(c, &setting.filter, &setting.server, &mut stat);
            let truth = self.runs[r].rec.truth(truth_m).unwrap_or_default();
            for (i, &s) in stat.iter().enumerate() {
                if c.scored[i] {
                    out.push((s, truth.get(i).copied().unwrap_or(false)));
                }
            }
        }
        out
    }

    /// GAEN scan instances of a run (cached).
    pub fn scans(&mut self, run: usize) -> &Scans {
        let runs = self.runs;
        self.scans
            .entry(run)
            .or_insert_with(|| peers::scans(&runs[run].rec))
    }

    /// Pooled (peer statistic, truth) over runs.
    pub fn peer_scored(
        &mut self,
        runs: &[usize],
        rule: PeerRule,
        a_db: f64,
        truth_m: f64,
    ) -> Vec<Scored> {
        let mut out = Vec::new();
        for &r in runs {
            let truth = self.runs[r].rec.truth(truth_m).unwrap_or_default();
            let s = self.scans(r);
            let stat = peers::statistic(s, rule, a_db);
            for (i, &v) in stat.iter().enumerate() {
                if s.scored[i] {
                    out.push((v, truth.get(i).copied().unwrap_or(false)));
                }
            }
        }
        out
    }

    /// Contacts at risk (1 m) that some case's phone heard, over runs: the
    /// most any estimator can alert.
    pub fn reachable(&self, runs: &[usize]) -> u64 {
        runs.iter()
            .map(|&r| {
                let rec = &self.runs[r].rec;
                let truth = rec.truth(1.0).unwrap_or_default();
                let heard = rec.heard();
                rec.phones
                    .iter()
                    .enumerate()
                    .filter(|(i, p)| !p.positive && truth[*i] && heard[*i])
                    .count() as u64
            })
            .sum()
    }

    /// True positives a setting needs on these runs: `target` of the
    /// reachable contacts at risk.
    pub fn min_tp(&self, runs: &[usize], target: f64) -> u64 {
        (target * self.reachable(runs) as f64 - 1e-9)
            .ceil()
            .max(1.0) as u64
    }

    /// Tunes a family on training runs (module docs). Returns the setting
    /// with its cut and the optimiser's result.
    pub fn tune(
        &mut self,
        family: Family,
        train: &[usize],
        shifts: &[i32],
        target: f64,
        budget: usize,
        seed: u64,
    ) -> (Setting, Found) {
        let dims = family.dims();
        self.prepare(train, shifts, &super::CLIPS);
        let min_tp = self.min_tp(train, target);
        self.tuned_on.extend(train.iter().copied());
        let found = maximise(&dims, &family.starts(), budget, seed, |x| {
            let setting = family.decode(x);
            let curves: Vec<Curves> = shifts
                .iter()
                .map(|&s| Curves::new(&self.scored(train, &setting, s, 1.0)))
                .collect();
            objective(&curves, min_tp).0
        });
        let mut setting = family.decode(&found.x);
        let curves: Vec<Curves> = shifts
            .iter()
            .map(|&s| Curves::new(&self.scored(train, &setting, s, 1.0)))
            .collect();
        setting.cut = objective(&curves, min_tp).1;
        (setting, found)
    }
}

/// The objective over curves at several anchors sharing one cut: the worst
/// precision among cuts with at least `min_tp` true positives at every
/// anchor (plus a small reward for recall); when no cut gets there, the
/// worst anchor's recall at the lowest cut minus one. Returns (value, cut).
pub fn objective(curves: &[Curves], min_tp: u64) -> (f64, f64) {
    let mut cuts: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.cut))
        .collect();
    cuts.sort_by(|a, b| b.total_cmp(a));
    cuts.dedup();
    let mut best: Option<(f64, f64)> = None;
    for &cut in &cuts {
        let (mut worst_p, mut worst_r, mut worst_tp) = (f64::INFINITY, f64::INFINITY, u64::MAX);
        for c in curves {
            let m = c.at(cut);
            worst_r = worst_r.min(m.recall().unwrap_or(0.0));
            worst_p = worst_p.min(m.precision().unwrap_or(0.0));
            worst_tp = worst_tp.min(m.tp);
        }
        if worst_tp >= min_tp {
            let v = worst_p + 1e-3 * worst_r;
            if best.is_none_or(|b| v > b.0) {
                best = Some((v, cut));
            }
        }
    }
    match best {
        Some((v, cut)) => {
            // A margin below the chosen cut, towards the next observed value.
            let next = cuts.iter().copied().find(|&c| c < cut).unwrap_or(0.0);
            let margin = if next > 0.0 {
                (cut * next).sqrt()
            } else {
                cut * 0.75
            };
            (v, margin)
        }
        None => {
            let lowest = cuts.last().copied().unwrap_or(1.0);
            let r = curves
                .iter()
                .map(|c| c.at(lowest).recall().unwrap_or(0.0))
                .fold(f64::INFINITY, f64::min);
            (r - 1.0, lowest)
        }
    }
}

/// Held-out outcome of one method: phones judged, pooled over folds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HeldOut {
    /// Confusion at the 1 m and 2 m truths.
    pub confusion: [Confusion; 2],
    /// Contacts at risk (1 m) that a case's phone heard: the most any
    /// estimator can alert.
    pub reachable: u64,
    /// Per run (scenario name, draw): confusion at 1 m and alerted phones.
    pub per_run: Vec<(String, u32, Confusion, u64)>,
    /// Out-of-fold statistics divided by each fold's cut (1 = alert), with
    /// the 1 m truth, for curves.
    pub normalised: Vec<Scored>,
    /// The same with the 2 m truth.
    pub normalised_2m: Vec<Scored>,
    /// The 1 m statistics per run, in the order of `per_run` (for the
    /// bootstrap).
    #[serde(skip)]
    pub run_stats: Vec<Vec<Scored>>,
}

impl HeldOut {
    /// Recall among the contacts at risk that were heard.
    pub fn recall_of_heard(&self) -> Option<f64> {
        (self.reachable > 0).then(|| self.confusion[0].tp as f64 / self.reachable as f64)
    }

    /// Adds a run's phones.
    pub fn add_run(&mut self, run: &Run, alerted: &[bool]) {
        let heard = run.rec.heard();
        let truth1 = run.rec.truth(1.0).unwrap_or_default();
        self.reachable += run
            .rec
            .phones
            .iter()
            .enumerate()
            .filter(|(i, p)| !p.positive && truth1[*i] && heard[*i])
            .count() as u64;
        let mut per = Confusion::default();
        let mut alerts = 0;
        for (t, &d) in TRUTHS_M.iter().enumerate() {
            let truth = run.rec.truth(d).unwrap_or_default();
            for (i, p) in run.rec.phones.iter().enumerate() {
                if p.positive {
                    continue;
                }
                let a = alerted.get(i).copied().unwrap_or(false);
                let tr = truth.get(i).copied().unwrap_or(false);
                self.confusion[t].record(tr, a);
                if t == 0 {
                    per.record(tr, a);
                    alerts += u64::from(a);
                }
            }
        }
        self.per_run
            .push((run.id.scenario.clone(), run.id.draw, per, alerts));
    }
}

/// The exact replay's alerts of a setting on a run.
pub fn exact_alerts(run: &Run, settings: &ReplaySettings) -> Vec<bool> {
    replay(&run.rec, settings).alerted
}

/// One fold: the family left out, its training and test runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// The family left out.
    pub family: &'static str,
    /// Training runs (other families, training draws).
    pub train: Vec<usize>,
    /// Test runs (this family, held-out draws).
    pub test: Vec<usize>,
}

/// Leave-one-family-out folds over runs.
pub fn folds(runs: &[Run], training_draws: &[u32], held_out_draws: &[u32]) -> Vec<Fold> {
    let mut families: Vec<&'static str> = Vec::new();
    for r in runs {
        if !families.contains(&r.family) {
            families.push(r.family);
        }
    }
    families
        .into_iter()
        .map(|family| Fold {
            family,
            train: (0..runs.len())
                .filter(|&i| runs[i].family != family && training_draws.contains(&runs[i].id.draw))
                .collect(),
            test: (0..runs.len())
                .filter(|&i| runs[i].family == family && held_out_draws.contains(&runs[i].id.draw))
                .collect(),
        })
        .collect()
}

/// A method judged by cross-validation.
#[derive(Clone, Debug, Serialize)]
pub struct CvResult {
    /// Method name.
    pub method: String,
    /// Held-out outcome at the cut chosen on training folds for the recall
    /// target.
    pub tuned: HeldOut,
    /// Held-out outcome at the method's own threshold (fixed rules only).
    pub native: Option<HeldOut>,
    /// The setting chosen per fold (tunable families).
    pub settings: Vec<(String, String)>,
}

/// Cross-validates a tunable family (module docs).
pub fn cross_validate_family(
    ws: &mut Workspace<'_>,
    folds: &[Fold],
    family: Family,
    target: f64,
    budget: usize,
    seed: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<CvResult, SimError> {
    let mut out = CvResult {
        method: family.name().to_owned(),
        tuned: HeldOut::default(),
        native: None,
        settings: Vec::new(),
    };
    for (k, fold) in folds.iter().enumerate() {
        progress(&format!(
            "{}: fold {} ({} left out)",
            family.name(),
            k + 1,
            fold.family
        ));
        let (setting, _) = ws.tune(family, &fold.train, &[0], target, budget, seed + k as u64);
        out.settings
            .push((fold.family.to_owned(), setting.describe()));
        let rs = setting.replay_settings(0)?;
        let runs = ws.runs;
        let alerts: Vec<Vec<bool>> = fold
            .test
            .par_iter()
            .map(|&r| exact_alerts(&runs[r], &rs))
            .collect();
        for (&r, a) in fold.test.iter().zip(&alerts) {
            out.tuned.add_run(&runs[r], a);
            let one: Vec<Scored> = ws
                .scored(&[r], &setting, 0, 1.0)
                .into_iter()
                .map(|(x, t)| (x / setting.cut, t))
                .collect();
            out.tuned.normalised.extend(&one);
            out.tuned.run_stats.push(one);
        }
        let two = ws.scored(&fold.test, &setting, 0, 2.0);
        out.tuned
            .normalised_2m
            .extend(two.iter().map(|&(x, t)| (x / setting.cut, t)));
    }
    Ok(out)
}

/// A fixed rule: its statistic on runs (pooled), with the 1 m or 2 m truth.
#[derive(Clone, Debug)]
pub enum Fixed {
    /// A peer's rule at an attenuation offset.
    Peer(PeerRule, f64),
    /// The exact replay of a real setting (statistic: the final aggregated
    /// risk) — the reference and v0.
    Exact(String, Box<ReplaySettings>),
}

impl Fixed {
    /// Name.
    pub fn name(&self) -> String {
        match self {
            Self::Peer(r, a) if (*a - 13.0).abs() < 1e-9 => r.name().to_owned(),
            Self::Peer(r, a) => format!("{} (A = {a})", r.name()),
            Self::Exact(n, _) => n.clone(),
        }
    }

    /// Pooled (statistic, truth) over runs.
    pub fn scored_runs(&self, ws: &mut Workspace<'_>, runs: &[usize], truth_m: f64) -> Vec<Scored> {
        self.scored(ws, runs, truth_m)
    }

    fn scored(&self, ws: &mut Workspace<'_>, runs: &[usize], truth_m: f64) -> Vec<Scored> {
        match self {
            Self::Peer(rule, a) => ws.peer_scored(runs, *rule, *a, truth_m),
            Self::Exact(_, s) => {
                let all = ws.runs;
                let per: Vec<Vec<Scored>> = runs
                    .par_iter()
                    .map(|&r| {
                        let run = &all[r];
                        let rep = replay(&run.rec, s);
                        let truth = run.rec.truth(truth_m).unwrap_or_default();
                        run.rec
                            .negatives()
                            .map(|(i, _)| {
                                (rep.final_risk[i], truth.get(i).copied().unwrap_or(false))
                            })
                            .collect()
                    })
                    .collect();
                per.into_iter().flatten().collect()
            }
        }
    }

    fn native_alerts(&self, ws: &mut Workspace<'_>, run: usize) -> Vec<bool> {
        match self {
            Self::Peer(rule, a) => {
                let t = rule.native_threshold();
                let s = ws.scans(run);
                peers::statistic(s, *rule, *a)
                    .iter()
                    .map(|&v| v >= t && v > 0.0)
                    .collect()
            }
            Self::Exact(_, s) => exact_alerts(&ws.runs[run], s),
        }
    }

    fn native_cut(&self) -> f64 {
        match self {
            Self::Peer(rule, _) => rule.native_threshold(),
            Self::Exact(_, s) => s.risk.risk_threshold,
        }
    }
}

/// Cross-validates a fixed rule: native threshold, and the cut for the
/// recall target chosen on each fold's training runs.
pub fn cross_validate_fixed(
    ws: &mut Workspace<'_>,
    folds: &[Fold],
    rule: &Fixed,
    target: f64,
) -> CvResult {
    let mut tuned = HeldOut::default();
    let mut native = HeldOut::default();
    for fold in folds {
        let train = rule.scored(ws, &fold.train, 1.0);
        let curves = Curves::new(&train);
        let min_tp = ws.min_tp(&fold.train, target);
        let cut = curves.best_at_tp(min_tp).map_or_else(
            || curves.points.last().map_or(f64::INFINITY, |p| p.cut),
            |p| margin_cut(&curves, p),
        );
        let test2 = rule.scored(ws, &fold.test, 2.0);
        tuned
            .normalised_2m
            .extend(test2.iter().map(|&(x, t)| (x / cut, t)));
        native
            .normalised_2m
            .extend(test2.iter().map(|&(x, t)| (x / rule.native_cut(), t)));
        for &r in &fold.test {
            let run = &ws.runs[r];
            let stat = rule.scored(ws, &[r], 1.0);
            let mut alerted = vec![false; run.rec.phones.len()];
            let idx: Vec<usize> = (0..run.rec.phones.len())
                .filter(|&i| !run.rec.phones[i].positive)
                .collect();
            for (&i, &(x, _)) in idx.iter().zip(&stat) {
                alerted[i] = x >= cut && x > 0.0;
            }
            tuned.add_run(run, &alerted);
            let t: Vec<Scored> = stat.iter().map(|&(x, tr)| (x / cut, tr)).collect();
            tuned.normalised.extend(&t);
            tuned.run_stats.push(t);
            let n: Vec<Scored> = stat
                .iter()
                .map(|&(x, tr)| (x / rule.native_cut(), tr))
                .collect();
            native.normalised.extend(&n);
            native.run_stats.push(n);
            let a = rule.native_alerts(ws, r);
            native.add_run(run, &a);
        }
    }
    CvResult {
        method: rule.name(),
        tuned,
        native: Some(native),
        settings: Vec::new(),
    }
}
