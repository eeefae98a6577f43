//! Scoring a run against the ground truth.
//!
//! # Definitions
//!
//! * **Contagious window** of a positive case: the window its phone reports
//!   (TousAntiCovid's rule, `robert_client::report::report_window`): from
//!   symptom onset − 2 days (or test − 7 days), at most 14 days back, to the
//!   declaration.
//! * **Ground-truth contact at risk** of a positive case P: a phone X
//!   (X not itself a positive case) whose owner spent at least
//!   `at_risk_minutes` (15) cumulated within `distance_m` (1 m) of P's owner
//!   on one UTC day, counting only time inside P's contagious window.
//!   Distances are exact (robert-radio's `GroundTruth`, between people).
//! * **Alerted**: the phone's status answered risk level 4 at least once
//!   (during the run or at the final status after the last batch).
//! * **Phone level** (the headline matrix): the units are all phones except
//!   the positive cases; truth = contact at risk of at least one case;
//!   predicted = alerted.
//! * **Pair level** (breakdowns by OS pair, environment, group): the units
//!   are (positive case P, phone X) pairs; truth = X is a contact at risk of
//!   P; predicted = X is alerted **and** P's report carried HELLOs of X, i.e.
//!   P contributed to X's alert. The OS pair is "OS of P → OS of X"; the
//!   environment is where the pair spent most time within D (else where P's
//!   phone heard most of X's HELLOs). Pairs that never came within radio
//!   range count as true negatives in the overall and OS-pair tables, and
//!   are left out of the environment and group tables.
//!
//! # Steps
//!
//! ```text
//! windows         each case's contagious window (reported, else nominal)
//! truth           exposure per (case, phone) inside the window, per UTC day
//!                 (crate::exposure) ─▶ contacts at risk, worst day per phone
//! phone level     the headline matrix
//! pair level      per case, per phone it met or heard: matrices by OS pair,
//!                 environment and group, causes of misses, outcome rows
//! phone rows      per-phone outcomes (when kept), the alert timeline
//! result          the SimResult, with the knobs in force
//! ```

use std::collections::BTreeMap;

use robert_client::ReportBasis;
use robert_client::report::{ReportSpans, report_window};
use robert_radio::channel::EnvironmentKind;
use robert_radio::scenario::{PositiveCase, Scenario, World};
use robert_radio::truth::{GroundTruth, TruthConfig};

use crate::backend::CodeSource;
use crate::common::{FastMap, TimeBase, group_of_place, os_name};
use crate::confusion::Confusion;
use crate::exposure::{PlaceSecs, add_by_day, cases_by_person, for_each_piece};
use crate::options::{KnobsSummary, SimOptions};
use crate::recording::{PairExposure, TRUTH_DISTANCES_M};
use crate::result::{
    AlertEvent, MissCauses, PairOutcome, PhoneOutcome, PositiveOutcome, SimResult,
};

/// A positive case as the run saw it.
#[derive(Clone, Debug)]
pub(crate) struct PositiveRecord {
    pub(crate) case: PositiveCase,
    pub(crate) code: CodeSource,
    pub(crate) declared: bool,
    /// Report window (simulation seconds).
    pub(crate) window: (f64, f64),
    /// HELLOs held per sender when reporting.
    pub(crate) held: FastMap<u32, usize>,
    /// HELLOs uploaded per sender.
    pub(crate) reported: FastMap<u32, usize>,
    /// EBID groups kept back by the filter per sender.
    pub(crate) filtered: FastMap<u32, usize>,
    pub(crate) contacts_sent: usize,
    pub(crate) hellos_sent: usize,
    pub(crate) rejected_groups: usize,
    pub(crate) error: Option<String>,
}

impl PositiveRecord {
    pub(crate) fn new(case: PositiveCase) -> Self {
        Self {
            case,
            code: CodeSource::LabLongCode,
            declared: false,
            window: (0.0, 0.0),
            held: FastMap::default(),
            reported: FastMap::default(),
            filtered: FastMap::default(),
            contacts_sent: 0,
            hellos_sent: 0,
            rejected_groups: 0,
            error: None,
        }
    }

    /// The case's contagious window (simulation seconds): the one its report
    /// used, or for a case that never reported the one it would have used.
    pub(crate) fn contagious_window(&self, time: TimeBase) -> (f64, f64) {
        if self.declared {
            self.window
        } else {
            nominal_window(time, &self.case)
        }
    }
}

/// What the run observed, for scoring.
pub(crate) struct RunFacts<'a> {
    pub(crate) world: &'a World,
    pub(crate) scenario: &'a Scenario,
    pub(crate) opts: &'a SimOptions,
    pub(crate) time: TimeBase,
    pub(crate) positives: &'a [PositiveRecord],
    pub(crate) is_positive: &'a [bool],
    pub(crate) registered: &'a [bool],
    pub(crate) first_alert: &'a [Option<f64>],
    pub(crate) risk_level: &'a [f64],
    pub(crate) server_score: &'a [f64],
    pub(crate) hellos_held: &'a [usize],
    pub(crate) heard_by_positive: &'a FastMap<(u32, u32, u32), u64>,
    /// Exposure of each (case, phone) at [`TRUTH_DISTANCES_M`].
    pub(crate) exposures: &'a [PairExposure],
}

impl RunFacts<'_> {
    /// The OS name of a person (`android` for an unknown one).
    fn os_of(&self, i: u32) -> &'static str {
        self.world
            .population
            .people
            .get(i as usize)
            .map_or("android", |p| os_name(p.device.platform.os()))
    }
}

/// The contagious window of a case that never reported (simulation seconds).
fn nominal_window(time: TimeBase, case: &PositiveCase) -> (f64, f64) {
    let now = time.ntp(case.declared_at);
    let basis = match case.symptom_onset_at {
        Some(o) => ReportBasis::SymptomOnset(time.ntp(o)),
        None => ReportBasis::PositiveTest(now),
    };
    let w = report_window(now, basis, &ReportSpans::default());
    (time.sim(w.from), time.sim(w.to))
}

/// The contact definition in force.
pub(crate) fn truth_config(world: &World, opts: &SimOptions) -> TruthConfig {
    TruthConfig {
        distance_m: opts
            .knobs
            .truth_distance_m
            .unwrap_or(world.truth_config.distance_m),
        at_risk_s: opts
            .knobs
            .truth_minutes
            .map_or(world.truth_config.at_risk_s, |m| m * 60.0),
    }
}

fn argmax(v: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &x) in v.iter().enumerate() {
        if x > 0.0 && best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

/// Scores a run: the steps of the module docs.
pub(crate) fn score(f: &RunFacts<'_>) -> SimResult {
    let cfg = truth_config(f.world, f.opts);
    let windows: Vec<(f64, f64)> = f
        .positives
        .iter()
        .map(|r| r.contagious_window(f.time))
        .collect();
    let truth = Truth::compute(f, cfg, &windows);
    let alerted: Vec<bool> = f.first_alert.iter().map(Option::is_some).collect();
    let phones = phone_level(f, &truth, &alerted);
    let mut pairs = PairLevel::new(f, &truth, &alerted);
    for (k, rec) in f.positives.iter().enumerate() {
        pairs.add_case(k, rec);
    }
    let phone_outcomes = if f.opts.keep_phone_outcomes {
        phone_outcomes(f, &truth)
    } else {
        Vec::new()
    };
    let timeline = alert_timeline(f, &truth);
    result(f, cfg, phones, pairs, phone_outcomes, timeline)
}

/// Exposure of a (case, phone) pair inside the case's window.
#[derive(Clone, Debug, Default)]
struct PairAcc {
    days: BTreeMap<u32, f64>,
    places: PlaceSecs,
}

impl PairAcc {
    fn max_day(&self) -> f64 {
        self.days.values().copied().fold(0.0, f64::max)
    }
}

/// The ground truth of the run, at the contact definition in force.
struct Truth {
    cfg: TruthConfig,
    /// Per (case, phone).
    acc: FastMap<(usize, u32), PairAcc>,
    /// Per phone: a contact at risk of at least one case.
    at_risk: Vec<bool>,
    /// Per phone: the worst day's seconds over all cases.
    max: Vec<f64>,
}

impl Truth {
    /// Exposure of each (case, phone) inside the case's window, per UTC day.
    fn compute(f: &RunFacts<'_>, cfg: TruthConfig, windows: &[(f64, f64)]) -> Self {
        let world = f.world;
        let n = world.population.people.len();
        let gt = GroundTruth::compute(&world.population, cfg);
        let cases_of = cases_by_person(f.positives.iter().map(|r| r.case.person));
        let mut acc: FastMap<(usize, u32), PairAcc> = FastMap::default();
        for_each_piece(&gt, &cases_of, windows, f.is_positive, |piece| {
            let a = acc.entry((piece.case, piece.phone)).or_default();
            add_by_day(&mut a.days, piece.start, piece.end);
            if let Some(place) = piece.place(world) {
                a.places.add(place, piece.end - piece.start);
            }
        });
        let mut at_risk = vec![false; n];
        let mut max = vec![0.0f64; n];
        for (&(_, x), a) in &acc {
            let m = a.max_day();
            let i = x as usize;
            max[i] = max[i].max(m);
            if m >= cfg.at_risk_s && m > 0.0 {
                at_risk[i] = true;
            }
        }
        Self {
            cfg,
            acc,
            at_risk,
            max,
        }
    }
}

/// The headline matrix: every phone but the cases; truth = contact at risk
/// of a case, predicted = alerted.
fn phone_level(f: &RunFacts<'_>, truth: &Truth, alerted: &[bool]) -> Confusion {
    let mut phones = Confusion::default();
    for (i, &alerted) in alerted.iter().enumerate() {
        if !f.is_positive[i] {
            phones.record(truth.at_risk[i], alerted);
        }
    }
    phones
}

/// The pair-level tables, filled case by case.
struct PairLevel<'f, 'a> {
    f: &'f RunFacts<'a>,
    truth: &'f Truth,
    alerted: &'f [bool],
    /// What each positive's phone heard of each sender, per place (sorted).
    heard: FastMap<(u32, u32), Vec<(u32, u64)>>,
    /// Phones that are not cases, per OS.
    non_positive_by_os: [(&'static str, u64); 2],
    pairs: Confusion,
    by_env: BTreeMap<String, Confusion>,
    by_os: BTreeMap<String, Confusion>,
    by_group: BTreeMap<String, Confusion>,
    misses: MissCauses,
    pair_outcomes: Vec<PairOutcome>,
    positive_outcomes: Vec<PositiveOutcome>,
}

impl<'f, 'a> PairLevel<'f, 'a> {
    fn new(f: &'f RunFacts<'a>, truth: &'f Truth, alerted: &'f [bool]) -> Self {
        let mut heard: FastMap<(u32, u32), Vec<(u32, u64)>> = FastMap::default();
        for (&(p, x, place), &count) in f.heard_by_positive {
            heard.entry((p, x)).or_default().push((place, count));
        }
        for v in heard.values_mut() {
            v.sort_unstable();
        }
        let n = f.world.population.people.len();
        let non_positive = |os: &str| {
            (0..n)
                .filter(|&i| !f.is_positive[i] && f.os_of(i as u32) == os)
                .count() as u64
        };
        Self {
            f,
            truth,
            alerted,
            heard,
            non_positive_by_os: [
                ("android", non_positive("android")),
                ("ios", non_positive("ios")),
            ],
            pairs: Confusion::default(),
            by_env: BTreeMap::new(),
            by_os: BTreeMap::new(),
            by_group: BTreeMap::new(),
            misses: MissCauses::default(),
            pair_outcomes: Vec::new(),
            positive_outcomes: Vec::new(),
        }
    }

    /// Case `k`: every phone it met within D, held or reported HELLOs of, or
    /// heard; then the pairs that never met, as true negatives.
    fn add_case(&mut self, k: usize, rec: &PositiveRecord) {
        let f = self.f;
        let p = rec.case.person;
        let mut xs: Vec<u32> = self
            .truth
            .acc
            .keys()
            .filter(|(kk, _)| *kk == k)
            .map(|(_, x)| *x)
            .chain(rec.held.keys().copied())
            .chain(rec.reported.keys().copied())
            .chain(self.heard.keys().filter(|(r, _)| *r == p).map(|(_, s)| *s))
            .filter(|&x| !f.is_positive.get(x as usize).copied().unwrap_or(true))
            .collect();
        xs.sort_unstable();
        xs.dedup();
        let mut seen_by_os: BTreeMap<&'static str, u64> = BTreeMap::new();
        let (mut true_contacts, mut true_alerted) = (0usize, 0usize);
        for &x in &xs {
            let (truth, contact_alerted) = self.add_pair(k, rec, x);
            *seen_by_os.entry(f.os_of(x)).or_default() += 1;
            if truth {
                true_contacts += 1;
                if contact_alerted {
                    true_alerted += 1;
                }
            }
        }
        // Pairs that never met: true negatives.
        for (os, total) in self.non_positive_by_os {
            let rest = total.saturating_sub(seen_by_os.get(os).copied().unwrap_or(0));
            if rest > 0 {
                self.pairs.tn += rest;
                self.by_os
                    .entry(format!("{}→{os}", f.os_of(p)))
                    .or_default()
                    .tn += rest;
            }
        }
        let person = f.world.population.people.get(p as usize);
        self.positive_outcomes.push(PositiveOutcome {
            person: p,
            os: f.os_of(p),
            model: person.map(|pp| pp.model.clone()).unwrap_or_default(),
            group: person.map(|pp| pp.group.clone()).unwrap_or_default(),
            declared_at_s: rec.case.declared_at,
            code: rec.code,
            contacts_sent: rec.contacts_sent,
            hellos_sent: rec.hellos_sent,
            rejected_groups: rec.rejected_groups,
            error: rec.error.clone(),
            true_contacts,
            true_contacts_alerted: true_alerted,
        });
    }

    /// The pair (case `k`, phone `x`): its truth and prediction in every
    /// table, the cause of a miss, its outcome row. Returns (truth, whether
    /// the phone was alerted).
    fn add_pair(&mut self, k: usize, rec: &PositiveRecord, x: u32) -> (bool, bool) {
        let f = self.f;
        let p = rec.case.person;
        let a = self.truth.acc.get(&(k, x));
        let max_day = a.map_or(0.0, PairAcc::max_day);
        let truth = max_day > 0.0 && max_day >= self.truth.cfg.at_risk_s;
        let held = rec.held.get(&x).copied().unwrap_or(0);
        let reported = rec.reported.get(&x).copied().unwrap_or(0);
        let contact_alerted = self.alerted[x as usize];
        let predicted = contact_alerted && reported > 0;
        let radio: &[(u32, u64)] = self.heard.get(&(p, x)).map_or(&[], Vec::as_slice);
        // The place where the positive's phone heard most of the contact.
        let loudest = radio
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .and_then(|(pl, _)| f.world.population.places.get(*pl as usize));
        let env = a
            .and_then(|a| argmax(&a.places.env_secs))
            .and_then(|i| EnvironmentKind::ALL.get(i))
            .or_else(|| loudest.map(|pl| &pl.environment.kind))
            .map(|k| k.name());
        let group = a
            .and_then(|a| a.places.top_group())
            .or_else(|| loudest.map(|pl| group_of_place(&pl.name)));
        let os_pair = format!("{}→{}", f.os_of(p), f.os_of(x));
        self.pairs.record(truth, predicted);
        self.by_os
            .entry(os_pair.clone())
            .or_default()
            .record(truth, predicted);
        if let Some(e) = env {
            self.by_env
                .entry(e.to_owned())
                .or_default()
                .record(truth, predicted);
        }
        if let Some(g) = &group {
            self.by_group
                .entry(g.clone())
                .or_default()
                .record(truth, predicted);
        }
        if truth && !predicted {
            if held == 0 {
                self.misses.never_heard += 1;
            } else if reported == 0 {
                self.misses.filtered_on_phone += 1;
            } else {
                self.misses.below_server_threshold += 1;
            }
        }
        self.pair_outcomes.push(PairOutcome {
            positive: p,
            contact: x,
            os_pair,
            environment: env,
            group,
            truth_max_day_s: max_day,
            truth,
            radio_receptions: radio.iter().map(|(_, c)| c).sum(),
            hellos_held: held,
            hellos_reported: reported,
            groups_filtered: rec.filtered.get(&x).copied().unwrap_or(0),
            contact_alerted,
            predicted,
        });
        (truth, contact_alerted)
    }
}

/// One row per phone: what it was, what the run decided, the truth.
fn phone_outcomes(f: &RunFacts<'_>, truth: &Truth) -> Vec<PhoneOutcome> {
    let people = &f.world.population.people;
    let r0 = f.opts.knobs.scoring.r0;
    let mut exposure_s = vec![vec![0.0f64; TRUTH_DISTANCES_M.len()]; people.len()];
    for e in f.exposures {
        if let Some(row) = exposure_s.get_mut(e.phone as usize) {
            for (r, v) in row.iter_mut().zip(&e.max_day_s) {
                *r = (*r).max(*v);
            }
        }
    }
    people
        .iter()
        .enumerate()
        .map(|(i, p)| PhoneOutcome {
            person: p.id,
            group: p.group.clone(),
            os: os_name(p.device.platform.os()),
            model: p.model.clone(),
            positive: f.is_positive[i],
            registered: f.registered[i],
            risk_level: f.risk_level[i],
            first_alert_s: f.first_alert[i],
            truth_at_risk: truth.at_risk[i],
            truth_max_exposure_s: truth.max[i],
            server_score: f.server_score[i],
            server_risk: 1.0 - (-r0 * f.server_score[i]).exp(),
            hellos_held: f.hellos_held[i],
            exposure_s: exposure_s[i].clone(),
        })
        .collect()
}

/// First alerts of the phones that are not cases, in time order.
fn alert_timeline(f: &RunFacts<'_>, truth: &Truth) -> Vec<AlertEvent> {
    let mut timeline: Vec<AlertEvent> = (0..f.world.population.people.len())
        .filter(|&i| !f.is_positive[i])
        .filter_map(|i| {
            f.first_alert[i].map(|t| AlertEvent {
                t_s: t,
                person: u32::try_from(i).unwrap_or(u32::MAX),
                truth: truth.at_risk[i],
            })
        })
        .collect();
    timeline.sort_by(|a, b| a.t_s.total_cmp(&b.t_s).then(a.person.cmp(&b.person)));
    timeline
}

/// The result, with the knobs in force (counts, events, samples and
/// timings are the run's to fill).
fn result(
    f: &RunFacts<'_>,
    cfg: TruthConfig,
    phones: Confusion,
    pairs: PairLevel<'_, '_>,
    phone_outcomes: Vec<PhoneOutcome>,
    timeline: Vec<AlertEvent>,
) -> SimResult {
    let world = f.world;
    let n = world.population.people.len();
    let k = &f.opts.knobs;
    SimResult {
        scenario: world.name.clone(),
        description: f.scenario.description.clone(),
        seed: world.seed,
        start_date: world.start_date.to_string(),
        days: world.days,
        people: n,
        android: (0..n).filter(|&i| f.os_of(i as u32) == "android").count(),
        ios: (0..n).filter(|&i| f.os_of(i as u32) == "ios").count(),
        knobs: KnobsSummary {
            filter_mode: format!("{:?}", k.filter_mode).to_uppercase(),
            filter_duration_threshold_s: k.filter.duration_threshold_secs,
            filter_risk_threshold: k.filter.risk_threshold,
            filter_p0: k.filter.p0,
            scoring_algo_version: k.scoring.algo_version,
            scoring_description: k.scoring.describe(),
            scoring_r0: k.scoring.r0,
            scoring_p0: k.scoring.p0,
            scoring_rssi_max: k.scoring.rssi_max,
            risk_threshold: k.risk_threshold,
            truth_distance_m: cfg.distance_m,
            truth_minutes: cfg.at_risk_s / 60.0,
        },
        transport: f.opts.transport,
        counts: Default::default(),
        phones,
        pairs: pairs.pairs,
        by_environment: pairs.by_env,
        by_os_pair: pairs.by_os,
        by_group: pairs.by_group,
        misses: pairs.misses,
        positives: pairs.positive_outcomes,
        phone_outcomes,
        pair_outcomes: pairs.pair_outcomes,
        rssi_samples: Vec::new(),
        timeline,
        events: Vec::new(),
        timings: Default::default(),
        recording: None,
    }
}
