//! People, places and trajectories, and the sweep that finds which pairs are
//! close enough to be worth a radio step.
//!
//! A person's [`Trajectory`] is a sorted list of non-overlapping
//! [`Segment`]s; each segment is a straight-line move (or a stay) at constant
//! speed inside one [`Place`], with the phone carried one way. Outside every
//! segment the person is "elsewhere" (at home, alone): they meet nobody.
//! People in different places never meet: places are radio-isolated.
//!
//! Distances are therefore cheap: find the segment by binary search and
//! interpolate. [`PairSweep`] keeps the segments active at the current time
//! per place and, inside each place, sorts by x and sweeps, so the cost is
//! proportional to the present people plus the close pairs, never O(n²)
//! over the population.

use crate::channel::{Antenna, Environment, Placement};
use crate::geometry::Vec2;
use crate::link::{Device, End};

/// Index of a person in [`Population::people`].
pub type PersonId = u32;
/// Index of a place in [`Population::places`].
pub type PlaceId = u32;

/// A malformed trajectory or population.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MobilityError {
    /// A time or coordinate is NaN or infinite.
    #[error("segment {index}: non-finite time or position")]
    NonFinite {
        /// Index of the segment (after sorting).
        index: usize,
    },
    /// A segment starts before simulation time 0.
    #[error("segment {index}: starts before time 0")]
    NegativeTime {
        /// Index of the segment.
        index: usize,
    },
    /// A segment ends before it starts, or lasts zero seconds.
    #[error("segment {index}: empty or reversed time interval")]
    EmptySegment {
        /// Index of the segment.
        index: usize,
    },
    /// Two segments of one person overlap in time.
    #[error("segments overlap at t = {at} s")]
    Overlap {
        /// Start of the later segment.
        at: f64,
    },
    /// A segment refers to a place that does not exist.
    #[error("person {person}: unknown place {place}")]
    UnknownPlace {
        /// The person.
        person: PersonId,
        /// The place id.
        place: PlaceId,
    },
    /// A person's id differs from their index.
    #[error("person at index {index} has id {id}")]
    BadPersonId {
        /// Index in the list.
        index: usize,
        /// Id found.
        id: PersonId,
    },
    /// The pair-range list does not have one entry per place.
    #[error("{got} pair ranges for {places} places")]
    RangeCount {
        /// Ranges given.
        got: usize,
        /// Places in the population.
        places: usize,
    },
}

/// A straight-line move at constant speed, or a stay, inside one place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Start (simulation seconds, inclusive).
    pub t0: f64,
    /// End (simulation seconds, exclusive).
    pub t1: f64,
    /// Where.
    pub place: PlaceId,
    /// Position at `t0`.
    pub from: Vec2,
    /// Position at `t1`.
    pub to: Vec2,
    /// Facing direction (radians); `None`: the direction of motion (0 when static).
    pub heading: Option<f64>,
    /// Where the phone is carried.
    pub placement: Placement,
    /// iPhones: app in the foreground during this segment.
    pub foreground: bool,
}

impl Segment {
    /// A stay at `at`, facing `heading`.
    pub fn stay(
        t0: f64,
        t1: f64,
        place: PlaceId,
        at: Vec2,
        heading: f64,
        placement: Placement,
    ) -> Self {
        Self {
            t0,
            t1,
            place,
            from: at,
            to: at,
            heading: Some(heading),
            placement,
            foreground: false,
        }
    }

    /// A walk from `from` to `to`, facing the direction of motion.
    pub fn walk(
        t0: f64,
        t1: f64,
        place: PlaceId,
        from: Vec2,
        to: Vec2,
        placement: Placement,
    ) -> Self {
        Self {
            t0,
            t1,
            place,
            from,
            to,
            heading: None,
            placement,
            foreground: false,
        }
    }

    /// Duration (s).
    pub fn duration(&self) -> f64 {
        self.t1 - self.t0
    }

    /// Velocity (m/s).
    pub fn velocity(&self) -> Vec2 {
        let d = self.duration();
        if d > 0.0 {
            (self.to - self.from) * (1.0 / d)
        } else {
            Vec2::default()
        }
    }

    /// Position at `t`, clamped to the segment.
    pub fn position_at(&self, t: f64) -> Vec2 {
        let d = self.duration();
        if d <= 0.0 {
            return self.from;
        }
        self.from.lerp(self.to, ((t - self.t0) / d).clamp(0.0, 1.0))
    }

    /// Facing direction (radians).
    pub fn heading(&self) -> f64 {
        self.heading
            .unwrap_or_else(|| (self.to - self.from).heading())
    }

    /// The part of this segment within `[a, b)`, if any.
    pub fn clip(&self, a: f64, b: f64) -> Option<Self> {
        let t0 = self.t0.max(a);
        let t1 = self.t1.min(b);
        if t1 <= t0 {
            return None;
        }
        Some(Self {
            t0,
            t1,
            from: self.position_at(t0),
            to: self.position_at(t1),
            heading: Some(self.heading()),
            ..*self
        })
    }
}

/// Where a person is and how the phone is carried, at one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    /// Place.
    pub place: PlaceId,
    /// Position in the place.
    pub position: Vec2,
    /// Facing direction (radians).
    pub heading: f64,
    /// Phone placement.
    pub placement: Placement,
    /// iPhones: app in the foreground.
    pub foreground: bool,
}

impl Pose {
    /// The radio end of this pose.
    pub fn antenna(&self) -> Antenna {
        Antenna {
            position: self.position,
            heading: self.heading,
            placement: self.placement,
        }
    }
}

/// A person's movements: sorted, non-overlapping segments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trajectory {
    segments: Vec<Segment>,
}

impl Trajectory {
    /// Sorts and validates segments: finite values, `0 ≤ t0 < t1`, no overlap
    /// (a segment may start exactly when the previous one ends).
    pub fn new(mut segments: Vec<Segment>) -> Result<Self, MobilityError> {
        for (index, s) in segments.iter().enumerate() {
            let finite = s.t0.is_finite()
                && s.t1.is_finite()
                && s.from.is_finite()
                && s.to.is_finite()
                && s.heading.is_none_or(f64::is_finite);
            if !finite {
                return Err(MobilityError::NonFinite { index });
            }
            if s.t0 < 0.0 {
                return Err(MobilityError::NegativeTime { index });
            }
            if s.t1 <= s.t0 {
                return Err(MobilityError::EmptySegment { index });
            }
        }
        segments.sort_by(|a, b| a.t0.total_cmp(&b.t0));
        if let Some(w) = segments.windows(2).find(|w| w[1].t0 < w[0].t1) {
            return Err(MobilityError::Overlap { at: w[1].t0 });
        }
        Ok(Self { segments })
    }

    /// The segments, sorted by start.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment containing `t`, if any.
    pub fn segment_at(&self, t: f64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.t0 <= t);
        let s = self.segments.get(i.checked_sub(1)?)?;
        (t < s.t1).then_some(s)
    }

    /// The pose at `t`, if present anywhere.
    pub fn pose_at(&self, t: f64) -> Option<Pose> {
        self.segment_at(t).map(|s| Pose {
            place: s.place,
            position: s.position_at(t),
            heading: s.heading(),
            placement: s.placement,
            foreground: s.foreground,
        })
    }

    /// Total time present in any place (s).
    pub fn present_time(&self) -> f64 {
        self.segments.iter().map(Segment::duration).sum()
    }
}

/// One phone owner.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    /// Index in [`Population::people`].
    pub id: PersonId,
    /// Name of the group that created this person.
    pub group: String,
    /// Phone model key (`Build.MODEL` or iOS hardware id), for the SDK's calibration lookup.
    pub model: String,
    /// The phone's radio.
    pub device: Device,
    /// Movements.
    pub trajectory: Trajectory,
}

/// A radio-isolated area: a room, a vehicle car, a street.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    /// Index in [`Population::places`].
    pub id: PlaceId,
    /// Human-readable name.
    pub name: String,
    /// Propagation environment.
    pub environment: Environment,
}

/// Everybody and everywhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Population {
    /// People; `people[i].id == i`.
    pub people: Vec<Person>,
    /// Places; `places[i].id == i`.
    pub places: Vec<Place>,
}

impl Population {
    /// Checks ids and that every segment's place exists.
    pub fn validate(&self) -> Result<(), MobilityError> {
        for (index, p) in self.people.iter().enumerate() {
            if usize::try_from(p.id).ok() != Some(index) {
                return Err(MobilityError::BadPersonId { index, id: p.id });
            }
            for s in p.trajectory.segments() {
                if usize::try_from(s.place).map_or(true, |i| i >= self.places.len()) {
                    return Err(MobilityError::UnknownPlace {
                        person: p.id,
                        place: s.place,
                    });
                }
            }
        }
        Ok(())
    }

    /// The person with this id.
    pub fn person(&self, id: PersonId) -> Option<&Person> {
        self.people.get(usize::try_from(id).ok()?)
    }

    /// The radio end of a person at `t`, if present.
    pub fn end_at(&self, id: PersonId, t: f64) -> Option<End<'_>> {
        let p = self.person(id)?;
        let pose = p.trajectory.pose_at(t)?;
        Some(End {
            id,
            device: &p.device,
            antenna: pose.antenna(),
            foreground: pose.foreground,
        })
    }
}

/// Two people in the same place within the pair range at some instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NearPair {
    /// Lower id.
    pub a: PersonId,
    /// Higher id.
    pub b: PersonId,
    /// Shared place.
    pub place: PlaceId,
    /// Plan distance between them (m).
    pub distance_m: f64,
}

/// Finds close pairs at successive instants.
#[derive(Debug)]
pub struct PairSweep<'a> {
    population: &'a Population,
    ranges: Vec<f64>,
    /// (start time, person, segment index), sorted.
    starts: Vec<(f64, PersonId, usize)>,
    next: usize,
    /// Per place: (person, segment index) possibly active.
    active: Vec<Vec<(PersonId, usize)>>,
    occupied: Vec<PlaceId>,
    last_t: f64,
    scratch: Vec<(f64, f64, PersonId)>,
}

impl<'a> PairSweep<'a> {
    /// A sweep over `population`; `ranges[place]` is the plan distance beyond
    /// which pairs in that place are ignored.
    pub fn new(population: &'a Population, ranges: Vec<f64>) -> Result<Self, MobilityError> {
        population.validate()?;
        if ranges.len() != population.places.len() {
            return Err(MobilityError::RangeCount {
                got: ranges.len(),
                places: population.places.len(),
            });
        }
        let mut starts: Vec<(f64, PersonId, usize)> = population
            .people
            .iter()
            .flat_map(|p| {
                p.trajectory
                    .segments()
                    .iter()
                    .enumerate()
                    .map(move |(i, s)| (s.t0, p.id, i))
            })
            .collect();
        starts.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        Ok(Self {
            population,
            active: vec![Vec::new(); ranges.len()],
            ranges,
            starts,
            next: 0,
            occupied: Vec::new(),
            last_t: f64::NEG_INFINITY,
            scratch: Vec::new(),
        })
    }

    fn segment(&self, person: PersonId, index: usize) -> Option<&'a Segment> {
        self.population
            .person(person)?
            .trajectory
            .segments()
            .get(index)
    }

    /// Number of people present somewhere at the last instant swept.
    pub fn present_count(&self) -> usize {
        self.occupied
            .iter()
            .filter_map(|p| self.active.get(usize::try_from(*p).ok()?))
            .map(Vec::len)
            .sum()
    }

    /// Start time of the next segment not yet swept, if any: lets a caller
    /// skip idle periods.
    pub fn next_start(&self) -> Option<f64> {
        self.starts.get(self.next).map(|s| s.0)
    }

    /// Appends to `out` every pair present in the same place at `t` with plan
    /// distance ≤ the place's range, sorted by (place, a, b). Times should
    /// not decrease between calls (going back restarts the sweep).
    pub fn pairs_at(&mut self, t: f64, out: &mut Vec<NearPair>) {
        if t < self.last_t {
            self.next = 0;
            for &p in &self.occupied {
                if let Some(v) = usize::try_from(p).ok().and_then(|i| self.active.get_mut(i)) {
                    v.clear();
                }
            }
            self.occupied.clear();
        }
        self.last_t = t;
        while let Some(&(t0, person, idx)) = self.starts.get(self.next) {
            if t0 > t {
                break;
            }
            self.next += 1;
            let Some(seg) = self.segment(person, idx) else {
                continue;
            };
            if seg.t1 <= t {
                continue;
            }
            if let Some(v) = usize::try_from(seg.place)
                .ok()
                .and_then(|i| self.active.get_mut(i))
            {
                if v.is_empty() {
                    self.occupied.push(seg.place);
                }
                v.push((person, idx));
            }
        }
        let first = out.len();
        let occupied = std::mem::take(&mut self.occupied);
        let mut still = Vec::with_capacity(occupied.len());
        for place in occupied {
            let Some(pi) = usize::try_from(place).ok() else {
                continue;
            };
            let mut list = std::mem::take(&mut self.active[pi]);
            list.retain(|&(person, idx)| self.segment(person, idx).is_some_and(|s| s.t1 > t));
            if list.is_empty() {
                continue;
            }
            let range = self.ranges[pi];
            self.scratch.clear();
            for &(person, idx) in &list {
                if let Some(s) = self.segment(person, idx) {
                    let p = s.position_at(t);
                    self.scratch.push((p.x, p.y, person));
                }
            }
            self.scratch
                .sort_by(|x, y| x.0.total_cmp(&y.0).then(x.2.cmp(&y.2)));
            for i in 0..self.scratch.len() {
                let (xi, yi, pi_) = self.scratch[i];
                for &(xj, yj, pj) in &self.scratch[i + 1..] {
                    if xj - xi > range {
                        break;
                    }
                    let (dx, dy) = (xj - xi, yj - yi);
                    let d = (dx * dx + dy * dy).sqrt();
                    if d <= range {
                        out.push(NearPair {
                            a: pi_.min(pj),
                            b: pi_.max(pj),
                            place,
                            distance_m: d,
                        });
                    }
                }
            }
            self.active[pi] = list;
            still.push(place);
        }
        still.sort_unstable();
        self.occupied = still;
        out[first..].sort_by_key(|x| (x.place, x.a, x.b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::Gains;
    use crate::channel::{EnvironmentKind, HardwareReference, RadioHardware};
    use crate::link::Platform;

    fn device() -> Device {
        Device {
            platform: Platform::ANDROID,
            hardware: RadioHardware::from_true_gains(
                Gains::new(-30, -5),
                &HardwareReference::STANDARD,
            ),
            app_gains: Gains::new(-30, -5),
            scan_phase: 0.0,
            report_phase: 0.0,
        }
    }

    fn person(id: PersonId, segments: Vec<Segment>) -> Person {
        Person {
            id,
            group: "g".into(),
            model: "DEFAULT".into(),
            device: device(),
            trajectory: Trajectory::new(segments).unwrap(),
        }
    }

    fn place(id: PlaceId) -> Place {
        Place {
            id,
            name: format!("p{id}"),
            environment: EnvironmentKind::Outdoor.preset(),
        }
    }

    #[test]
    fn trajectory_validation() {
        let ok = Segment::stay(0.0, 10.0, 0, Vec2::new(0.0, 0.0), 0.0, Placement::Hand);
        assert!(Trajectory::new(vec![ok]).is_ok());
        let mut bad = ok;
        bad.t1 = 0.0;
        assert_eq!(
            Trajectory::new(vec![bad]),
            Err(MobilityError::EmptySegment { index: 0 })
        );
        bad = ok;
        bad.t0 = -1.0;
        assert_eq!(
            Trajectory::new(vec![bad]),
            Err(MobilityError::NegativeTime { index: 0 })
        );
        bad = ok;
        bad.from.x = f64::NAN;
        assert_eq!(
            Trajectory::new(vec![bad]),
            Err(MobilityError::NonFinite { index: 0 })
        );
        let mut later = ok;
        later.t0 = 5.0;
        later.t1 = 20.0;
        assert_eq!(
            Trajectory::new(vec![later, ok]),
            Err(MobilityError::Overlap { at: 5.0 })
        );
        later.t0 = 10.0;
        assert!(Trajectory::new(vec![later, ok]).is_ok());
    }

    #[test]
    fn positions_and_lookup() {
        let walk = Segment::walk(
            10.0,
            20.0,
            0,
            Vec2::new(0.0, 0.0),
            Vec2::new(10.0, 0.0),
            Placement::Hand,
        );
        let stay = Segment::stay(30.0, 40.0, 1, Vec2::new(5.0, 5.0), 1.0, Placement::Table);
        let t = Trajectory::new(vec![stay, walk]).unwrap();
        assert!(t.pose_at(5.0).is_none());
        assert_eq!(t.pose_at(15.0).unwrap().position, Vec2::new(5.0, 0.0));
        assert_eq!(t.pose_at(15.0).unwrap().heading, 0.0);
        assert!(t.pose_at(20.0).is_none(), "end is exclusive");
        assert!(t.pose_at(25.0).is_none());
        let p = t.pose_at(30.0).unwrap();
        assert_eq!(
            (p.place, p.placement, p.heading),
            (1, Placement::Table, 1.0)
        );
        assert_eq!(t.present_time(), 20.0);
        let c = walk.clip(12.0, 15.0).unwrap();
        assert_eq!((c.from, c.to), (Vec2::new(2.0, 0.0), Vec2::new(5.0, 0.0)));
        assert!(walk.clip(20.0, 30.0).is_none());
    }

    #[test]
    fn sweep_finds_close_pairs_only_in_the_same_place() {
        let pop = Population {
            people: vec![
                person(
                    0,
                    vec![Segment::stay(
                        0.0,
                        100.0,
                        0,
                        Vec2::new(0.0, 0.0),
                        0.0,
                        Placement::Hand,
                    )],
                ),
                person(
                    1,
                    vec![Segment::stay(
                        0.0,
                        100.0,
                        0,
                        Vec2::new(3.0, 4.0),
                        0.0,
                        Placement::Hand,
                    )],
                ),
                person(
                    2,
                    vec![Segment::stay(
                        50.0,
                        100.0,
                        0,
                        Vec2::new(1.0, 0.0),
                        0.0,
                        Placement::Hand,
                    )],
                ),
                person(
                    3,
                    vec![Segment::stay(
                        0.0,
                        100.0,
                        1,
                        Vec2::new(0.0, 0.0),
                        0.0,
                        Placement::Hand,
                    )],
                ),
                person(
                    4,
                    vec![Segment::stay(
                        0.0,
                        100.0,
                        0,
                        Vec2::new(40.0, 0.0),
                        0.0,
                        Placement::Hand,
                    )],
                ),
            ],
            places: vec![place(0), place(1)],
        };
        let mut sweep = PairSweep::new(&pop, vec![10.0, 10.0]).unwrap();
        let mut out = Vec::new();
        sweep.pairs_at(10.0, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].a, out[0].b, out[0].place), (0, 1, 0));
        assert!((out[0].distance_m - 5.0).abs() < 1e-12);
        assert_eq!(sweep.present_count(), 4);
        out.clear();
        sweep.pairs_at(60.0, &mut out);
        let ids: Vec<_> = out.iter().map(|p| (p.a, p.b)).collect();
        assert_eq!(ids, vec![(0, 1), (0, 2), (1, 2)]);
        out.clear();
        sweep.pairs_at(100.0, &mut out);
        assert!(out.is_empty());
        assert_eq!(sweep.present_count(), 0);
        // Going back in time restarts.
        sweep.pairs_at(60.0, &mut out);
        assert_eq!(out.len(), 3);
        assert!(matches!(
            PairSweep::new(&pop, vec![1.0]),
            Err(MobilityError::RangeCount { .. })
        ));
    }

    #[test]
    fn sweep_matches_brute_force_on_a_crowd() {
        // 300 walkers on a 60 m street, compared with all-pairs distances.
        let mut people = Vec::new();
        for i in 0..300u32 {
            let f = f64::from(i);
            let y = (f * 0.37).fract() * 4.0;
            let (x0, x1) = if i % 2 == 0 { (0.0, 60.0) } else { (60.0, 0.0) };
            let t0 = (f * 1.7) % 200.0;
            people.push(person(
                i,
                vec![Segment::walk(
                    t0,
                    t0 + 45.0,
                    0,
                    Vec2::new(x0, y),
                    Vec2::new(x1, y),
                    Placement::Hand,
                )],
            ));
        }
        let pop = Population {
            people,
            places: vec![place(0)],
        };
        let mut sweep = PairSweep::new(&pop, vec![3.0]).unwrap();
        for t in [0.0, 50.0, 100.0, 150.5, 220.0] {
            let mut got = Vec::new();
            sweep.pairs_at(t, &mut got);
            let mut want = Vec::new();
            for a in &pop.people {
                for b in &pop.people {
                    if a.id < b.id
                        && let (Some(pa), Some(pb)) =
                            (a.trajectory.pose_at(t), b.trajectory.pose_at(t))
                        && pa.position.distance(pb.position) <= 3.0
                    {
                        want.push((a.id, b.id));
                    }
                }
            }
            let got: Vec<_> = got.iter().map(|p| (p.a, p.b)).collect();
            assert_eq!(got, want, "t = {t}");
        }
    }
}
