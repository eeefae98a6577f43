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

use std::collections::BTreeMap;

use robert_client::ReportBasis;
use robert_client::report::{ReportSpans, report_window};
use robert_radio::channel::EnvironmentKind;
use robert_radio::scenario::{PositiveCase, Scenario, World};
use robert_radio::truth::{GroundTruth, TruthConfig};

use crate::backend::CodeSource;
use crate::confusion::Confusion;
use crate::options::{KnobsSummary, SimOptions};
use crate::recording::add_by_day;
use crate::result::{
    AlertEvent, MissCauses, PairOutcome, PhoneOutcome, PositiveOutcome, SimResult,
};
use crate::run::{FastMap, TimeBase, env_index, os_name};

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
    /// Exposure of each (case, phone) at [`crate::recording::TRUTH_DISTANCES_M`].
    pub(crate) exposures: &'a [crate::recording::PairExposure],
}

#[derive(Clone, Debug, Default)]
struct PairAcc {
    days: BTreeMap<u32, f64>,
    env_secs: [f64; 5],
    group_secs: BTreeMap<String, f64>,
}

impl PairAcc {
    fn max_day(&self) -> f64 {
        self.days.values().copied().fold(0.0, f64::max)
    }
}

/// The group name of a place (`office#3` → `office`, `line-13/car2` → `line-13`).
pub(crate) fn group_of_place(name: &str) -> String {
    name.split(['#', '/']).next().unwrap_or(name).to_owned()
}

/// The contagious window of a case that never reported (simulation seconds).
pub(crate) fn nominal_window(time: TimeBase, case: &PositiveCase) -> (f64, f64) {
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

pub(crate) fn score(f: &RunFacts<'_>) -> SimResult {
    let world = f.world;
    let people = &world.population.people;
    let n = people.len();
    let cfg = truth_config(world, f.opts);
    let gt = GroundTruth::compute(&world.population, cfg);
    let os_of = |i: u32| {
        people
            .get(i as usize)
            .map_or("android", |p| os_name(p.device.platform.os()))
    };
    let windows: Vec<(f64, f64)> = f
        .positives
        .iter()
        .map(|r| {
            if r.declared {
                r.window
            } else {
                nominal_window(f.time, &r.case)
            }
        })
        .collect();
    // What each positive's phone heard of each sender, per place.
    let mut heard: FastMap<(u32, u32), Vec<(u32, u64)>> = FastMap::default();
    for (&(p, x, place), &count) in f.heard_by_positive {
        heard.entry((p, x)).or_default().push((place, count));
    }
    for v in heard.values_mut() {
        v.sort_unstable();
    }
    let place_of = |place: u32| world.population.places.get(place as usize);
    let mut cases_of: FastMap<u32, Vec<usize>> = FastMap::default();
    for (k, r) in f.positives.iter().enumerate() {
        cases_of.entry(r.case.person).or_default().push(k);
    }

    // Exposure of each (case, phone) inside the case's window, per UTC day.
    let mut acc: FastMap<(usize, u32), PairAcc> = FastMap::default();
    for c in gt.intervals() {
        for (p, x) in [(c.a, c.b), (c.b, c.a)] {
            if f.is_positive.get(x as usize).copied().unwrap_or(true) {
                continue;
            }
            let Some(ks) = cases_of.get(&p) else { continue };
            for &k in ks {
                let (w0, w1) = windows[k];
                let (s, e) = (c.start.max(w0), c.end.min(w1));
                if e <= s {
                    continue;
                }
                let a = acc.entry((k, x)).or_default();
                add_by_day(&mut a.days, s, e);
                let mid = 0.5 * (s + e);
                if let Some(seg) = people
                    .get(p as usize)
                    .and_then(|pp| pp.trajectory.segment_at(mid))
                    && let Some(place) = world.population.places.get(seg.place as usize)
                {
                    a.env_secs[env_index(place.environment.kind)] += e - s;
                    *a.group_secs
                        .entry(group_of_place(&place.name))
                        .or_insert(0.0) += e - s;
                }
            }
        }
    }

    let alerted: Vec<bool> = f.first_alert.iter().map(Option::is_some).collect();
    let mut truth_at_risk = vec![false; n];
    let mut truth_max = vec![0.0f64; n];
    for (&(_, x), a) in &acc {
        let m = a.max_day();
        let i = x as usize;
        truth_max[i] = truth_max[i].max(m);
        if m >= cfg.at_risk_s && m > 0.0 {
            truth_at_risk[i] = true;
        }
    }

    // Phone level.
    let mut phones = Confusion::default();
    for i in 0..n {
        if !f.is_positive[i] {
            phones.record(truth_at_risk[i], alerted[i]);
        }
    }

    // Pair level.
    let mut pairs = Confusion::default();
    let mut by_env: BTreeMap<String, Confusion> = BTreeMap::new();
    let mut by_os: BTreeMap<String, Confusion> = BTreeMap::new();
    let mut by_group: BTreeMap<String, Confusion> = BTreeMap::new();
    let mut misses = MissCauses::default();
    let mut pair_outcomes = Vec::new();
    let mut positive_outcomes = Vec::new();
    let non_positive_by_os = |os: &str| {
        (0..n)
            .filter(|&i| !f.is_positive[i] && os_of(i as u32) == os)
            .count() as u64
    };
    let (np_android, np_ios) = (non_positive_by_os("android"), non_positive_by_os("ios"));
    for (k, rec) in f.positives.iter().enumerate() {
        let p = rec.case.person;
        let mut xs: Vec<u32> = acc
            .keys()
            .filter(|(kk, _)| *kk == k)
            .map(|(_, x)| *x)
            .chain(rec.held.keys().copied())
            .chain(rec.reported.keys().copied())
            .chain(heard.keys().filter(|(r, _)| *r == p).map(|(_, s)| *s))
            .filter(|&x| !f.is_positive.get(x as usize).copied().unwrap_or(true))
            .collect();
        xs.sort_unstable();
        xs.dedup();
        let mut seen_by_os: BTreeMap<&'static str, u64> = BTreeMap::new();
        let (mut true_contacts, mut true_alerted) = (0usize, 0usize);
        for &x in &xs {
            let a = acc.get(&(k, x));
            let max_day = a.map_or(0.0, PairAcc::max_day);
            let truth = max_day > 0.0 && max_day >= cfg.at_risk_s;
            let held = rec.held.get(&x).copied().unwrap_or(0);
            let reported = rec.reported.get(&x).copied().unwrap_or(0);
            let contact_alerted = alerted[x as usize];
            let predicted = contact_alerted && reported > 0;
            let radio: &[(u32, u64)] = heard.get(&(p, x)).map_or(&[], Vec::as_slice);
            // The place where the positive's phone heard most of the contact.
            let loudest = radio
                .iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .and_then(|(pl, _)| place_of(*pl));
            let env = a
                .and_then(|a| argmax(&a.env_secs))
                .and_then(|i| EnvironmentKind::ALL.get(i))
                .or_else(|| loudest.map(|pl| &pl.environment.kind))
                .map(|k| k.name());
            let group = a
                .and_then(|a| {
                    a.group_secs
                        .iter()
                        .max_by(|x, y| x.1.total_cmp(y.1))
                        .map(|(g, _)| g.clone())
                })
                .or_else(|| loudest.map(|pl| group_of_place(&pl.name)));
            let os_pair = format!("{}→{}", os_of(p), os_of(x));
            *seen_by_os.entry(os_of(x)).or_default() += 1;
            pairs.record(truth, predicted);
            by_os
                .entry(os_pair.clone())
                .or_default()
                .record(truth, predicted);
            if let Some(e) = env {
                by_env
                    .entry(e.to_owned())
                    .or_default()
                    .record(truth, predicted);
            }
            if let Some(g) = &group {
                by_group
                    .entry(g.clone())
                    .or_default()
                    .record(truth, predicted);
            }
            if truth {
                true_contacts += 1;
                if contact_alerted {
                    true_alerted += 1;
                }
                if !predicted {
                    if held == 0 {
                        misses.never_heard += 1;
                    } else if reported == 0 {
                        misses.filtered_on_phone += 1;
                    } else {
                        misses.below_server_threshold += 1;
                    }
                }
            }
            pair_outcomes.push(PairOutcome {
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
        }
        // Pairs that never met: true negatives.
        for (os, total) in [("android", np_android), ("ios", np_ios)] {
            let rest = total.saturating_sub(seen_by_os.get(os).copied().unwrap_or(0));
            if rest > 0 {
                pairs.tn += rest;
                by_os.entry(format!("{}→{os}", os_of(p))).or_default().tn += rest;
            }
        }
        let person = people.get(p as usize);
        positive_outcomes.push(PositiveOutcome {
            person: p,
            os: os_of(p),
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

    let r0 = f.opts.knobs.scoring.r0;
    let mut exposure_s = vec![vec![0.0f64; crate::recording::TRUTH_DISTANCES_M.len()]; n];
    for e in f.exposures {
        if let Some(row) = exposure_s.get_mut(e.phone as usize) {
            for (r, v) in row.iter_mut().zip(&e.max_day_s) {
                *r = (*r).max(*v);
            }
        }
    }
    let phone_outcomes = if f.opts.keep_phone_outcomes {
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
                truth_at_risk: truth_at_risk[i],
                truth_max_exposure_s: truth_max[i],
                server_score: f.server_score[i],
                server_risk: 1.0 - (-r0 * f.server_score[i]).exp(),
                hellos_held: f.hellos_held[i],
                exposure_s: exposure_s[i].clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut timeline: Vec<AlertEvent> = (0..n)
        .filter(|&i| !f.is_positive[i])
        .filter_map(|i| {
            f.first_alert[i].map(|t| AlertEvent {
                t_s: t,
                person: u32::try_from(i).unwrap_or(u32::MAX),
                truth: truth_at_risk[i],
            })
        })
        .collect();
    timeline.sort_by(|a, b| a.t_s.total_cmp(&b.t_s).then(a.person.cmp(&b.person)));

    let k = &f.opts.knobs;
    SimResult {
        scenario: world.name.clone(),
        description: f.scenario.description.clone(),
        seed: world.seed,
        start_date: world.start_date.to_string(),
        days: world.days,
        people: n,
        android: (0..n).filter(|&i| os_of(i as u32) == "android").count(),
        ios: (0..n).filter(|&i| os_of(i as u32) == "ios").count(),
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
        pairs,
        by_environment: by_env,
        by_os_pair: by_os,
        by_group,
        misses,
        positives: positive_outcomes,
        phone_outcomes,
        pair_outcomes,
        rssi_samples: Vec::new(),
        timeline,
        events: Vec::new(),
        timings: Default::default(),
        recording: None,
    }
}
