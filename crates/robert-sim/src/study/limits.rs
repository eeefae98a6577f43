//! Why the targets are out of reach, reproducibly: what the
//! receptions allow at best, whatever the estimator.
//!
//! 1. **Hearing ceiling** ([`hearing`]): contacts at risk whose case's
//!    phone never stored one of their HELLOs cannot be alerted by any rule
//!    that uses the receptions; per family, with how many of them are two
//!    iPhones (background iPhones cannot exchange HELLOs).
//! 2. **Oracle bounds** on the same receptions ([`OracleRun`]): a rule that
//!    knows each HELLO's true distance (what a perfect distance estimator
//!    could do with the same receptions), and one that knows each HELLO's
//!    noiseless model level (path loss at the true distance in that place:
//!    no placement, body, device, shadowing or fading term). Both count
//!    minutes with a HELLO judged near, per case, phone and UTC day; their
//!    parameters are chosen on the training draws and judged on the
//!    held-out draws like every other rule. Beside them, every method's
//!    **in-sample** best cut ([`in_sample`]): chosen on the held-out data
//!    itself, an upper bound, never a result.
//! 3. **Radio ablation** ([`ablation_row`]): the corpus re-recorded with one
//!    noise term of the radio switched off (`[radio] ablate`,
//!    [`robert_radio::channel::NoiseTerm`]), the quick study rerun on it.
//! 4. **The far offices** ([`OfficeCurve`]): phones alerted in the offices
//!    with desks ≥ 2.5 m apart against recall, as each method's cut moves.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use robert_radio::channel::Ablation;
use serde::Serialize;

use super::evaluate::{self, CvResult, Fixed, HeldOut, Workspace};
use super::metrics::{Curves, Scored, ratio};
use super::{Family, Run, StudyOptions};
use crate::error::SimError;
use crate::recording::{Recording, UNKNOWN_DISTANCE_CM, UNKNOWN_LEVEL_DDB};
use crate::replay::ReplaySettings;

/// (recall of the heard contacts at risk, precision).
pub type RecallPrecision = (f64, f64);

/// Contacts at risk (1 m truth) and how many were heard, for one family
/// (or all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HearingRow {
    /// Family, or `all`.
    pub family: String,
    /// Contacts at risk.
    pub at_risk: u64,
    /// Of which some case's phone stored a HELLO in its report window.
    pub heard: u64,
    /// Never heard, and every case they were at risk from has an iPhone as
    /// they do (two iPhones in background cannot exchange HELLOs).
    pub never_heard_iphones: u64,
}

impl HearingRow {
    /// Contacts at risk never heard.
    pub fn never_heard(&self) -> u64 {
        self.at_risk - self.heard
    }

    /// The largest recall any rule on the receptions can reach.
    pub fn ceiling(&self) -> Option<f64> {
        (self.at_risk > 0).then(|| ratio(self.heard, self.at_risk))
    }

    fn add(&mut self, o: &Self) {
        self.at_risk += o.at_risk;
        self.heard += o.heard;
        self.never_heard_iphones += o.never_heard_iphones;
    }
}

/// The hearing of one run's contacts at risk.
pub fn run_hearing(rec: &Recording) -> HearingRow {
    let truth = rec.truth(1.0).unwrap_or_default();
    let heard = rec.heard();
    let d1 = rec.distance_index(1.0).unwrap_or(0);
    let cut = rec.truth_minutes * 60.0;
    let ios = |p: u32| rec.phones.get(p as usize).is_some_and(|x| x.os == "ios");
    let mut row = HearingRow::default();
    for (i, p) in rec.phones.iter().enumerate() {
        if p.positive || !truth[i] {
            continue;
        }
        row.at_risk += 1;
        if heard[i] {
            row.heard += 1;
            continue;
        }
        let mut cases = rec
            .exposures
            .iter()
            .filter(|e| e.phone as usize == i && e.max_day_s[d1] > 0.0 && e.max_day_s[d1] >= cut);
        let first = cases.next();
        if first.is_some()
            && ios(i as u32)
            && first.into_iter().chain(cases).all(|e| ios(e.positive))
        {
            row.never_heard_iphones += 1;
        }
    }
    row
}

/// Per family (in order of appearance) and `all`, over runs.
pub fn hearing(runs: &[Run], idx: &[usize]) -> Vec<HearingRow> {
    let mut rows: Vec<HearingRow> = Vec::new();
    let mut all = HearingRow {
        family: "all".to_owned(),
        ..HearingRow::default()
    };
    for &r in idx {
        let run = &runs[r];
        let h = run_hearing(&run.rec);
        all.add(&h);
        match rows.iter_mut().find(|x| x.family == run.family) {
            Some(x) => x.add(&h),
            None => rows.push(HearingRow {
                family: run.family.to_owned(),
                ..h
            }),
        }
    }
    rows.push(all);
    rows
}

/// What an oracle knows of each HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Oracle {
    /// A HELLO is near when the true distance is at most this (m).
    Distance(f64),
    /// A HELLO is near when its noiseless model level is at least this (dB,
    /// calibrated scale at the model's anchor).
    Level(f64),
}

impl Oracle {
    /// Its name in reports.
    pub fn describe(self) -> String {
        match self {
            Self::Distance(d) => format!("oracle: true distance ≤ {d} m"),
            Self::Level(l) => format!("oracle: noiseless level ≥ {l:.1} dB"),
        }
    }
}

/// One minute of one (case report, phone, UTC day) with a HELLO: the
/// closest true distance and the loudest noiseless level in it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Slot {
    phone: u32,
    key: u32,
    distance_cm: u16,
    level_ddb: i16,
}

/// A run's receptions as the oracles see them.
#[derive(Clone, Debug, Default)]
pub struct OracleRun {
    phones: usize,
    slots: Vec<Slot>,
    /// HELLOs in report windows.
    pub hellos: u64,
    /// Of which the recorder could not place (no oracle data).
    pub missing: u64,
}

impl OracleRun {
    /// Collects the minutes with a HELLO of every uploaded report (inside
    /// its window), per phone.
    pub fn compile(rec: &Recording) -> Self {
        let mut acc: BTreeMap<(u32, u32, u64), (u16, i16)> = BTreeMap::new();
        let mut keys: HashMap<(usize, u64), u32> = HashMap::new();
        let (mut hellos, mut missing) = (0u64, 0u64);
        for (k, r) in rec.reports.iter().enumerate().filter(|(_, r)| r.uploaded) {
            for g in &r.groups {
                let scored = rec
                    .phones
                    .get(g.sender as usize)
                    .is_some_and(|p| !p.positive);
                if !scored {
                    continue;
                }
                for (i, t) in g.times().enumerate() {
                    if t < r.window_ntp.0 || t > r.window_ntp.1 {
                        continue;
                    }
                    hellos += 1;
                    let d = g.distance_cm.get(i).copied().unwrap_or(UNKNOWN_DISTANCE_CM);
                    let l = g
                        .model_level_ddb
                        .get(i)
                        .copied()
                        .unwrap_or(UNKNOWN_LEVEL_DDB);
                    if d == UNKNOWN_DISTANCE_CM || l == UNKNOWN_LEVEL_DDB {
                        missing += 1;
                        continue;
                    }
                    let n = keys.len();
                    let key = *keys.entry((k, t / 86_400)).or_insert(n as u32);
                    let e = acc.entry((g.sender, key, t / 60)).or_insert((d, l));
                    e.0 = e.0.min(d);
                    e.1 = e.1.max(l);
                }
            }
        }
        Self {
            phones: rec.phones.len(),
            slots: acc
                .into_iter()
                .map(|((phone, key, _), (distance_cm, level_ddb))| Slot {
                    phone,
                    key,
                    distance_cm,
                    level_ddb,
                })
                .collect(),
            hellos,
            missing,
        }
    }

    /// Per phone: the most near-minutes on one (case, UTC day).
    pub fn statistic(&self, oracle: Oracle) -> Vec<f64> {
        let near = |s: &Slot| match oracle {
            Oracle::Distance(d) => f64::from(s.distance_cm) <= d * 100.0 + 1e-9,
            Oracle::Level(l) => f64::from(s.level_ddb) >= l * 10.0 - 1e-9,
        };
        let mut counts: HashMap<(u32, u32), u32> = HashMap::new();
        for s in self.slots.iter().filter(|s| near(s)) {
            *counts.entry((s.phone, s.key)).or_default() += 1;
        }
        let mut out: Vec<f64> = vec![0.0; self.phones];
        for ((phone, _), c) in counts {
            if let Some(o) = out.get_mut(phone as usize) {
                *o = (*o).max(f64::from(c));
            }
        }
        out
    }
}

/// (statistic, truth at 1 m) of the phones that are not positive cases.
fn scored(run: &Run, stat: &[f64]) -> Vec<Scored> {
    let truth = run.rec.truth(1.0).unwrap_or_default();
    run.rec
        .negatives()
        .map(|(i, _)| {
            (
                stat.get(i).copied().unwrap_or(0.0),
                truth.get(i).copied().unwrap_or(false),
            )
        })
        .collect()
}

/// The best precision a cut chosen on these very phones reaches with at
/// least `target` of the `reachable` (heard) contacts at risk: (recall of
/// heard, precision). An upper bound, never a result.
pub fn in_sample(scored: &[Scored], reachable: u64, target: f64) -> Option<(f64, f64)> {
    let min_tp = ((target * reachable as f64 - 1e-9).ceil()).max(1.0) as u64;
    let c = Curves::new(scored);
    c.best_at_tp(min_tp)
        .map(|p| (ratio(p.tp, reachable), ratio(p.tp, p.tp + p.fp)))
}

/// An oracle, its parameter and cut chosen on training runs, judged on
/// held-out runs.
#[derive(Clone, Debug, Serialize)]
pub struct OracleResult {
    /// The oracle with its chosen parameter.
    pub oracle: Oracle,
    /// Alert at this many near-minutes on one day.
    pub cut: f64,
    /// Held-out outcome (with per-run statistics divided by the cut).
    pub held: HeldOut,
    /// In-sample best on the held-out runs ([`in_sample`]).
    pub in_sample: Option<(f64, f64)>,
    /// HELLOs without oracle data (should be 0).
    pub missing: u64,
}

/// Compiles the oracle view of runs (in parallel).
pub fn compile_oracles(runs: &[Run], idx: &[usize]) -> HashMap<usize, OracleRun> {
    idx.par_iter()
        .map(|&r| (r, OracleRun::compile(&runs[r].rec)))
        .collect()
}

/// Chooses the oracle's parameter (from `candidates`) and cut on the
/// training runs for `target` of the heard contacts, judges it on the
/// held-out runs.
pub fn evaluate_oracle(
    ws: &Workspace<'_>,
    compiled: &HashMap<usize, OracleRun>,
    train: &[usize],
    held: &[usize],
    candidates: &[Oracle],
    target: f64,
) -> Option<OracleResult> {
    let runs = ws.runs;
    let min_tp = ws.min_tp(train, target);
    let pooled = |idx: &[usize], o: Oracle| -> Vec<Scored> {
        idx.iter()
            .flat_map(|&r| scored(&runs[r], &compiled[&r].statistic(o)))
            .collect()
    };
    let (oracle, point) = candidates
        .par_iter()
        .filter_map(|&o| {
            let c = Curves::new(&pooled(train, o));
            c.best_at_tp(min_tp).map(|p| (o, p))
        })
        .max_by(|a, b| {
            let pa = ratio(a.1.tp, a.1.tp + a.1.fp);
            let pb = ratio(b.1.tp, b.1.tp + b.1.fp);
            pa.total_cmp(&pb).then(a.1.tp.cmp(&b.1.tp))
        })?;
    let cut = point.cut;
    let mut h = HeldOut::default();
    let mut missing = 0;
    for &r in held {
        let run = &runs[r];
        let c = &compiled[&r];
        missing += c.missing;
        let stat = c.statistic(oracle);
        let alerted: Vec<bool> = stat.iter().map(|&x| x >= cut && x > 0.0).collect();
        h.add_run(run, &alerted);
        let s: Vec<Scored> = scored(run, &stat)
            .into_iter()
            .map(|(x, t)| (x / cut, t))
            .collect();
        h.normalised.extend(&s);
        h.run_stats.push(s);
    }
    let in_sample = in_sample(&h.normalised, h.reachable, target);
    Some(OracleResult {
        oracle,
        cut,
        held: h,
        in_sample,
        missing,
    })
}

/// The levels the noiseless-level oracle may choose from (dB).
pub fn level_candidates() -> Vec<Oracle> {
    (0..=90)
        .map(|i| Oracle::Level(-70.0 + 0.5 * f64::from(i)))
        .collect()
}

/// Phones alerted in the far offices against recall, as one method's cut
/// moves (held-out, out-of-fold statistics divided by each fold's cut).
#[derive(Clone, Debug, Serialize)]
pub struct OfficeCurve {
    /// Method.
    pub method: String,
    /// Phones in the far offices (not positive cases).
    pub far_phones: u64,
    /// (recall of heard, share of far-office phones alerted, precision),
    /// from the highest cut down.
    #[serde(skip)]
    pub points: Vec<(f64, f64, f64)>,
    /// At the method's operating point (cut 1): (recall of heard, far
    /// share, precision).
    pub operating: (f64, f64, f64),
}

/// Whether a scenario is one of the offices with desks ≥ 2.5 m apart.
pub fn is_far_office(scenario: &str) -> bool {
    scenario.starts_with("office-2.5m") || scenario.starts_with("office-3m")
}

impl OfficeCurve {
    /// The curve of a held-out outcome whose `run_stats` follow `per_run`.
    pub fn new(method: &str, h: &HeldOut) -> Self {
        let mut far_phones = 0;
        let mut all: Vec<(f64, bool, bool)> = Vec::new();
        for ((name, _, c, _), stats) in h.per_run.iter().zip(&h.run_stats) {
            let far = is_far_office(name);
            if far {
                far_phones += c.tp + c.fp + c.fn_ + c.tn;
            }
            all.extend(
                stats
                    .iter()
                    .filter(|s| s.0 > 0.0)
                    .map(|&(x, t)| (x, t, far)),
            );
        }
        all.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut tp, mut fp, mut fa) = (0u64, 0u64, 0u64);
        let mut points = Vec::new();
        let mut operating = (0.0, 0.0, 0.0);
        let mut i = 0;
        while i < all.len() {
            let cut = all[i].0;
            while i < all.len() && all[i].0 == cut {
                if all[i].1 {
                    tp += 1;
                } else {
                    fp += 1;
                }
                fa += u64::from(all[i].2);
                i += 1;
            }
            let p = (
                ratio(tp, h.reachable),
                ratio(fa, far_phones),
                ratio(tp, tp + fp),
            );
            if cut >= 1.0 {
                operating = p;
            }
            points.push(p);
        }
        Self {
            method: method.to_owned(),
            far_phones,
            points,
            operating,
        }
    }

    /// The smallest far-office share among cuts reaching `recall` of the
    /// heard contacts.
    pub fn far_at_recall(&self, recall: f64) -> Option<f64> {
        self.points
            .iter()
            .filter(|p| p.0 + 1e-12 >= recall)
            .map(|p| p.1)
            .min_by(f64::total_cmp)
    }

    /// The largest recall of heard with at most `share` of the far-office
    /// phones alerted, with its precision.
    pub fn best_recall_with_far(&self, share: f64) -> Option<(f64, f64)> {
        self.points
            .iter()
            .filter(|p| p.1 <= share + 1e-12)
            .map(|p| (p.0, p.2))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }
}

/// Everything of this module the study found (parts 1, 2 and 4; part 3 in
/// [`AblationRow`]s).
#[derive(Clone, Debug, Serialize)]
pub struct Limits {
    /// Held-out hearing per family, and `all`.
    pub hearing: Vec<HearingRow>,
    /// The same on the target set (examples and FAQ matrix).
    pub hearing_target_set: HearingRow,
    /// The recall target (of heard contacts).
    pub target: f64,
    /// The distance oracle at 1 m.
    pub distance_oracle: Option<OracleResult>,
    /// The noiseless-level oracle.
    pub level_oracle: Option<OracleResult>,
    /// Per method: (name, held-out (recall of heard, precision) at the
    /// training cut, in-sample best at the target).
    pub in_sample: Vec<(String, RecallPrecision, Option<RecallPrecision>)>,
    /// The far-office curves (oracles first, then the methods).
    pub offices: Vec<OfficeCurve>,
    /// The radio ablation (empty unless the sweep ran).
    pub ablation: Vec<AblationRow>,
}

/// Parts 1, 2 and 4 on the study's runs.
pub fn analyse(
    ws: &Workspace<'_>,
    train: &[usize],
    held: &[usize],
    methods: &[CvResult],
    target: f64,
) -> Limits {
    let runs = ws.runs;
    let hearing_rows = hearing(runs, held);
    let target_idx: Vec<usize> = held
        .iter()
        .copied()
        .filter(|&r| runs[r].target_set)
        .collect();
    let hearing_target_set = hearing(runs, &target_idx).pop().unwrap_or_default();
    let mut both: Vec<usize> = train.to_vec();
    both.extend(held);
    let compiled = compile_oracles(runs, &both);
    let distance_oracle =
        evaluate_oracle(ws, &compiled, train, held, &[Oracle::Distance(1.0)], target);
    let level_oracle = evaluate_oracle(ws, &compiled, train, held, &level_candidates(), target);
    let mut offices = Vec::new();
    for o in distance_oracle.iter().chain(&level_oracle) {
        offices.push(OfficeCurve::new(&o.oracle.describe(), &o.held));
    }
    let mut in_sample_rows = Vec::new();
    for m in methods {
        let h = &m.tuned;
        in_sample_rows.push((
            m.method.clone(),
            (
                h.recall_of_heard().unwrap_or(0.0),
                h.confusion[0].precision().unwrap_or(0.0),
            ),
            in_sample(&h.normalised, h.reachable, target),
        ));
        offices.push(OfficeCurve::new(&m.method, h));
    }
    Limits {
        hearing: hearing_rows,
        hearing_target_set,
        target,
        distance_oracle,
        level_oracle,
        in_sample: in_sample_rows,
        offices,
        ablation: Vec::new(),
    }
}

/// How far 1 m and 3 m overlap in what the phones received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Overlap {
    /// Median calibrated RSSI of HELLOs at 0.5–1 m (true distance).
    pub median_1m: Option<f64>,
    /// Median at 2.5–3.5 m.
    pub median_3m: Option<f64>,
    /// Share of the 2.5–3.5 m HELLOs at least as loud as the 1 m median.
    pub hellos_above: Option<f64>,
    /// The same for two-minute window means of one (case, phone) pair,
    /// classified by the window's mean distance.
    pub windows_above: Option<f64>,
}

/// The overlap of 1 m and 3 m receptions over runs.
pub fn overlap(runs: &[Run], idx: &[usize]) -> Overlap {
    let (mut h1, mut h3, mut w1, mut w3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let near = |cm: f64| (50.0..=100.0).contains(&cm);
    let far = |cm: f64| (250.0..=350.0).contains(&cm);
    for &r in idx {
        for rep in runs[r].rec.reports.iter().filter(|x| x.uploaded) {
            let mut windows: BTreeMap<(u32, u64), (f64, f64, u32)> = BTreeMap::new();
            for g in &rep.groups {
                for (i, t) in g.times().enumerate() {
                    let Some(&d) = g.distance_cm.get(i) else {
                        continue;
                    };
                    if d == UNKNOWN_DISTANCE_CM {
                        continue;
                    }
                    let (d, v) = (f64::from(d), f64::from(g.rssi[i]));
                    if near(d) {
                        h1.push(v);
                    } else if far(d) {
                        h3.push(v);
                    }
                    let w = windows.entry((g.sender, t / 120)).or_default();
                    w.0 += d;
                    w.1 += v;
                    w.2 += 1;
                }
            }
            for (d, v, n) in windows.into_values() {
                let (d, v) = (d / f64::from(n), v / f64::from(n));
                if near(d) {
                    w1.push(v);
                } else if far(d) {
                    w3.push(v);
                }
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let above = |v: &[f64], m: Option<f64>| {
        m.filter(|_| !v.is_empty())
            .map(|m| v.iter().filter(|x| **x >= m).count() as f64 / v.len() as f64)
    };
    let (m1, m3) = (median(&mut h1), median(&mut h3));
    let wm1 = median(&mut w1);
    Overlap {
        median_1m: m1,
        median_3m: m3,
        hellos_above: above(&h3, m1),
        windows_above: above(&w3, wm1),
    }
}

/// The quick study on a corpus recorded with some noise terms off.
#[derive(Clone, Debug, Serialize)]
pub struct AblationRow {
    /// The terms switched off (`none`: the full model).
    pub ablation: String,
    /// Held-out hearing of contacts at risk.
    pub hearing: HearingRow,
    /// How far 1 m and 3 m overlap (held-out draws).
    pub overlap: Overlap,
    /// Typical level, cross-validated: held-out (recall of heard,
    /// precision).
    pub typical: (f64, f64),
    /// Its in-sample best at the target.
    pub typical_in_sample: Option<(f64, f64)>,
    /// The reference, its cut for the target chosen on training folds:
    /// held-out (recall of heard, precision).
    pub reference: (f64, f64),
    /// Its in-sample best at the target.
    pub reference_in_sample: Option<(f64, f64)>,
    /// Precision of the noiseless-level oracle (held out), for scale.
    pub level_oracle: Option<(f64, f64)>,
}

fn heard_and_precision(h: &HeldOut) -> (f64, f64) {
    (
        h.recall_of_heard().unwrap_or(0.0),
        h.confusion[0].precision().unwrap_or(0.0),
    )
}

/// Part 3 for one ablation: the typical level (cross-validated, leave one
/// family out) and the reference on already recorded `runs`, with the
/// draws, budget, target and seed of `opts`.
pub fn ablation_row(
    ablation: Ablation,
    runs: &[Run],
    opts: &StudyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<AblationRow, SimError> {
    let (training_draws, held_out_draws) = (&opts.training_draws, &opts.held_out_draws);
    let (budget, target, seed) = (opts.budget, opts.recall_target, opts.seed);
    let folds = evaluate::folds(runs, training_draws, held_out_draws);
    let held: Vec<usize> = (0..runs.len())
        .filter(|&i| held_out_draws.contains(&runs[i].id.draw))
        .collect();
    let train: Vec<usize> = (0..runs.len())
        .filter(|&i| training_draws.contains(&runs[i].id.draw))
        .collect();
    let mut ws = Workspace::new(runs);
    let typical = evaluate::cross_validate_family(
        &mut ws,
        &folds,
        Family::Typical,
        target,
        budget,
        seed,
        progress,
    )?;
    let reference = evaluate::cross_validate_fixed(
        &mut ws,
        &folds,
        &Fixed::Exact(
            "ROBERT v2, reference".to_owned(),
            Box::new(ReplaySettings::reference()),
        ),
        target,
    );
    let mut both = train.clone();
    both.extend(&held);
    let compiled = compile_oracles(runs, &both);
    let level = evaluate_oracle(&ws, &compiled, &train, &held, &level_candidates(), target);
    let t = &typical.tuned;
    let r = &reference.tuned;
    Ok(AblationRow {
        ablation: ablation.label(),
        hearing: hearing(runs, &held).pop().unwrap_or_default(),
        overlap: overlap(runs, &held),
        typical: heard_and_precision(t),
        typical_in_sample: in_sample(&t.normalised, t.reachable, target),
        reference: heard_and_precision(r),
        reference_in_sample: in_sample(&r.normalised, r.reachable, target),
        level_oracle: level.map(|o| heard_and_precision(&o.held)),
    })
}

/// The ablations of the sweep: the full model, each term alone, all terms.
pub fn sweep_ablations() -> Vec<Ablation> {
    let mut v = vec![Ablation::NONE];
    v.extend(
        robert_radio::channel::NoiseTerm::ALL
            .into_iter()
            .map(|t| Ablation::NONE.with(t)),
    );
    v.push(Ablation::all());
    v
}
