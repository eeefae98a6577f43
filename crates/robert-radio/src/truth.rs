//! Ground truth: how long each pair of people actually spent within a
//! distance of each other, per UTC day, computed exactly from trajectories.
//!
//! For two segments of different people in the same place overlapping in
//! time on `[s, e)`, the relative position is linear in time,
//! `r(τ) = r₀ + w·τ`, so `|r(τ)|² ≤ D²` is a quadratic inequality
//!
//! ```text
//! (w·w) τ² + 2 (r₀·w) τ + (r₀·r₀ − D²) ≤ 0,   τ ∈ [0, e − s]
//! ```
//!
//! whose solution is one interval: no time stepping, no discretisation error.
//! Intervals are split at UTC midnights (simulation time 0 is a UTC midnight)
//! and summed per (pair, day). A pair is **at risk** on a day when the sum
//! reaches the threshold (default 15 minutes within 1 m, the contact
//! definition used at StopCovid's launch, client-ble.md §2.4).
//!
//! Distances are between people (plan positions), not phones.

use std::collections::BTreeMap;

use crate::mobility::{PersonId, Population, Segment};

/// Seconds per day.
pub const DAY_S: f64 = 86_400.0;

/// What counts as a contact.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TruthConfig {
    /// Distance threshold D (m). Default 1 m.
    pub distance_m: f64,
    /// Cumulated time within D on one UTC day that makes a contact at risk (s). Default 900.
    pub at_risk_s: f64,
}

impl Default for TruthConfig {
    fn default() -> Self {
        Self {
            distance_m: 1.0,
            at_risk_s: 900.0,
        }
    }
}

/// A maximal interval during which two people stayed within D.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContactInterval {
    /// Lower id.
    pub a: PersonId,
    /// Higher id.
    pub b: PersonId,
    /// Start (s).
    pub start: f64,
    /// End (s).
    pub end: f64,
}

/// Exposure of every pair that came within D at least once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroundTruth {
    config: TruthConfig,
    /// (a, b) with a < b → day → seconds within D.
    exposure: BTreeMap<(PersonId, PersonId), BTreeMap<u32, f64>>,
    intervals: Vec<ContactInterval>,
}

impl GroundTruth {
    /// Computes the ground truth of a population.
    pub fn compute(population: &Population, config: TruthConfig) -> Self {
        // All segments grouped by place, sorted by start.
        let mut by_place: BTreeMap<u32, Vec<(PersonId, &Segment)>> = BTreeMap::new();
        for p in &population.people {
            for s in p.trajectory.segments() {
                by_place.entry(s.place).or_default().push((p.id, s));
            }
        }
        let mut raw: Vec<ContactInterval> = Vec::new();
        for segs in by_place.values_mut() {
            segs.sort_by(|x, y| x.1.t0.total_cmp(&y.1.t0).then(x.0.cmp(&y.0)));
            // Sweep: `open` holds segments that may still overlap later ones.
            let mut open: Vec<(PersonId, &Segment)> = Vec::new();
            for &(pid, seg) in segs.iter() {
                open.retain(|(_, o)| o.t1 > seg.t0);
                for &(qid, other) in &open {
                    if qid == pid {
                        continue;
                    }
                    if let Some((start, end)) = within(seg, other, config.distance_m) {
                        raw.push(ContactInterval {
                            a: pid.min(qid),
                            b: pid.max(qid),
                            start,
                            end,
                        });
                    }
                }
                open.push((pid, seg));
            }
        }
        raw.sort_by(|x, y| {
            (x.a, x.b)
                .cmp(&(y.a, y.b))
                .then(x.start.total_cmp(&y.start))
        });
        // Merge touching intervals of the same pair (consecutive segments).
        let mut intervals: Vec<ContactInterval> = Vec::with_capacity(raw.len());
        for c in raw {
            match intervals.last_mut() {
                Some(l) if l.a == c.a && l.b == c.b && c.start <= l.end + 1e-9 => {
                    l.end = l.end.max(c.end);
                }
                _ => intervals.push(c),
            }
        }
        let mut exposure: BTreeMap<(PersonId, PersonId), BTreeMap<u32, f64>> = BTreeMap::new();
        for c in &intervals {
            let days = exposure.entry((c.a, c.b)).or_default();
            let mut t = c.start;
            while t < c.end {
                let day = (t / DAY_S).floor();
                let day_end = (day + 1.0) * DAY_S;
                let piece_end = c.end.min(day_end);
                // Times are ≥ 0 (trajectories start at 0) and below 2³² days.
                let d = u32::try_from(day as i64).unwrap_or(u32::MAX);
                *days.entry(d).or_insert(0.0) += piece_end - t;
                t = piece_end;
            }
        }
        Self {
            config,
            exposure,
            intervals,
        }
    }

    /// The configuration used.
    pub fn config(&self) -> TruthConfig {
        self.config
    }

    /// Seconds within D of `a` and `b` (any order) on `day`.
    pub fn exposure(&self, a: PersonId, b: PersonId, day: u32) -> f64 {
        self.exposure
            .get(&(a.min(b), a.max(b)))
            .and_then(|d| d.get(&day))
            .copied()
            .unwrap_or(0.0)
    }

    /// Seconds within D over the whole simulation.
    pub fn total_exposure(&self, a: PersonId, b: PersonId) -> f64 {
        self.exposure
            .get(&(a.min(b), a.max(b)))
            .map_or(0.0, |d| d.values().sum())
    }

    /// Whether the pair is at risk on `day`.
    pub fn is_at_risk(&self, a: PersonId, b: PersonId, day: u32) -> bool {
        self.exposure(a, b, day) >= self.config.at_risk_s
    }

    /// Every (a, b, day, seconds) with a < b and seconds > 0, sorted.
    pub fn exposures(&self) -> impl Iterator<Item = (PersonId, PersonId, u32, f64)> + '_ {
        self.exposure
            .iter()
            .flat_map(|(&(a, b), days)| days.iter().map(move |(&d, &s)| (a, b, d, s)))
    }

    /// Every at-risk (a, b, day), sorted.
    pub fn at_risk(&self) -> impl Iterator<Item = (PersonId, PersonId, u32)> + '_ {
        let th = self.config.at_risk_s;
        self.exposures()
            .filter(move |e| e.3 >= th)
            .map(|(a, b, d, _)| (a, b, d))
    }

    /// People at risk with `person` on any day (contacts to notify if `person` is positive).
    pub fn at_risk_contacts_of(&self, person: PersonId) -> Vec<(PersonId, u32)> {
        self.at_risk()
            .filter_map(|(a, b, d)| {
                if a == person {
                    Some((b, d))
                } else if b == person {
                    Some((a, d))
                } else {
                    None
                }
            })
            .collect()
    }

    /// Maximal contact intervals, sorted by (a, b, start).
    pub fn intervals(&self) -> &[ContactInterval] {
        &self.intervals
    }
}

/// The sub-interval of the common time of `x` and `y` during which they are
/// within `d` of each other (same place assumed by the caller).
fn within(x: &Segment, y: &Segment, d: f64) -> Option<(f64, f64)> {
    if x.place != y.place {
        return None;
    }
    let s = x.t0.max(y.t0);
    let e = x.t1.min(y.t1);
    if e <= s {
        return None;
    }
    let r0 = y.position_at(s) - x.position_at(s);
    let w = y.velocity() - x.velocity();
    let len = e - s;
    let a = w.dot(w);
    let b = r0.dot(w);
    let c = r0.dot(r0) - d * d;
    let (lo, hi) = if a <= 1e-18 {
        if c <= 0.0 { (0.0, len) } else { return None }
    } else {
        let disc = b * b - a * c;
        if disc < 0.0 {
            return None;
        }
        let sq = disc.sqrt();
        ((-b - sq) / a, (-b + sq) / a)
    };
    let lo = lo.max(0.0);
    let hi = hi.min(len);
    (hi > lo).then_some((s + lo, s + hi))
}

#[cfg(test)]
mod tests;
