//! Exposure of (positive case, phone) pairs inside the cases' contagious
//! windows, from the exact ground truth: what the scoring's truth and the
//! recorder's per-distance exposures both accumulate.
//!
//! ```text
//! ground-truth interval (a, b, [start, end)) within D
//!   ├─ both directions: (case person p, phone x), x not itself a case
//!   └─ each case k of p: [start, end) ∩ window(k) ─▶ piece (k, p, x, [s, e))
//!         ├─ seconds per UTC day          (add_by_day)
//!         └─ seconds per environment and place group where p was (PlaceSecs)
//! ```

use std::collections::BTreeMap;

use robert_radio::mobility::Place;
use robert_radio::scenario::World;
use robert_radio::truth::{DAY_S, GroundTruth};

use crate::common::{FastMap, env_index, group_of_place};

/// Per-day accumulation of `[s, e)` (simulation seconds) into UTC days.
pub(crate) fn add_by_day(days: &mut BTreeMap<u32, f64>, s: f64, e: f64) {
    let mut t = s;
    while t < e {
        let day = (t / DAY_S).floor();
        let piece = e.min((day + 1.0) * DAY_S);
        *days
            .entry(u32::try_from(day as i64).unwrap_or(u32::MAX))
            .or_insert(0.0) += piece - t;
        t = piece;
    }
}

/// The cases of each person (`cases[k]` is the person of case `k`).
pub(crate) fn cases_by_person(cases: impl IntoIterator<Item = u32>) -> FastMap<u32, Vec<usize>> {
    let mut cases_of: FastMap<u32, Vec<usize>> = FastMap::default();
    for (k, p) in cases.into_iter().enumerate() {
        cases_of.entry(p).or_default().push(k);
    }
    cases_of
}

/// Part of a ground-truth contact inside a case's window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Piece {
    /// The case (index into the cases).
    pub(crate) case: usize,
    /// The case's person.
    pub(crate) positive: u32,
    /// The other person (never a case).
    pub(crate) phone: u32,
    /// Start (simulation seconds).
    pub(crate) start: f64,
    /// End (simulation seconds), after `start`.
    pub(crate) end: f64,
}

impl Piece {
    /// Where the case's person was in the middle of the piece.
    pub(crate) fn place<'w>(&self, world: &'w World) -> Option<&'w Place> {
        let mid = 0.5 * (self.start + self.end);
        world
            .population
            .people
            .get(self.positive as usize)
            .and_then(|pp| pp.trajectory.segment_at(mid))
            .and_then(|seg| world.population.places.get(seg.place as usize))
    }
}

/// Calls `f` with every piece of `gt`'s contacts that falls inside a case's
/// window (`windows[k]`, simulation seconds), in the ground truth's order.
pub(crate) fn for_each_piece(
    gt: &GroundTruth,
    cases_of: &FastMap<u32, Vec<usize>>,
    windows: &[(f64, f64)],
    is_positive: &[bool],
    mut f: impl FnMut(Piece),
) {
    for c in gt.intervals() {
        for (p, x) in [(c.a, c.b), (c.b, c.a)] {
            if is_positive.get(x as usize).copied().unwrap_or(true) {
                continue;
            }
            let Some(ks) = cases_of.get(&p) else { continue };
            for &k in ks {
                let (w0, w1) = windows[k];
                let (s, e) = (c.start.max(w0), c.end.min(w1));
                if e <= s {
                    continue;
                }
                f(Piece {
                    case: k,
                    positive: p,
                    phone: x,
                    start: s,
                    end: e,
                });
            }
        }
    }
}

/// Seconds spent per environment kind and per place group.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlaceSecs {
    /// Indexed like [`robert_radio::channel::EnvironmentKind::ALL`].
    pub(crate) env_secs: [f64; 5],
    /// By [`group_of_place`].
    pub(crate) group_secs: BTreeMap<String, f64>,
}

impl PlaceSecs {
    /// Adds `secs` spent in `place`.
    pub(crate) fn add(&mut self, place: &Place, secs: f64) {
        self.env_secs[env_index(place.environment.kind)] += secs;
        *self
            .group_secs
            .entry(group_of_place(&place.name))
            .or_insert(0.0) += secs;
    }

    /// The group with the most seconds (the last of equals).
    pub(crate) fn top_group(&self) -> Option<String> {
        self.group_secs
            .iter()
            .max_by(|x, y| x.1.total_cmp(y.1))
            .map(|(g, _)| g.clone())
    }
}
