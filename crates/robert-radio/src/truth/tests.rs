use super::*;
use crate::calibration::Gains;
use crate::channel::{EnvironmentKind, HardwareReference, Placement, RadioHardware};
use crate::geometry::Vec2;
use crate::link::{Device, Platform};
use crate::mobility::{Person, Place, Trajectory};
use proptest::prelude::*;

fn device() -> Device {
    Device {
        platform: Platform::ANDROID,
        hardware: RadioHardware::from_true_gains(Gains::new(-30, -5), &HardwareReference::STANDARD),
        app_gains: Gains::new(-30, -5),
        scan_phase: 0.0,
        report_phase: 0.0,
    }
}

fn population(trajectories: Vec<Vec<Segment>>, places: u32) -> Population {
    Population {
        people: trajectories
            .into_iter()
            .enumerate()
            .map(|(i, segs)| Person {
                id: u32::try_from(i).unwrap(),
                group: "g".into(),
                model: "DEFAULT".into(),
                device: device(),
                trajectory: Trajectory::new(segs).unwrap(),
            })
            .collect(),
        places: (0..places)
            .map(|id| Place {
                id,
                name: format!("p{id}"),
                environment: EnvironmentKind::IndoorMediumCeiling.preset(),
            })
            .collect(),
    }
}

fn stay(t0: f64, t1: f64, x: f64, y: f64) -> Segment {
    Segment::stay(t0, t1, 0, Vec2::new(x, y), 0.0, Placement::Hand)
}

fn walk(t0: f64, t1: f64, from: (f64, f64), to: (f64, f64)) -> Segment {
    Segment::walk(
        t0,
        t1,
        0,
        Vec2::new(from.0, from.1),
        Vec2::new(to.0, to.1),
        Placement::Hand,
    )
}

fn truth(pop: &Population, d: f64) -> GroundTruth {
    GroundTruth::compute(
        pop,
        TruthConfig {
            distance_m: d,
            at_risk_s: 900.0,
        },
    )
}

#[test]
fn static_pair() {
    let pop = population(
        vec![
            vec![stay(0.0, 1200.0, 0.0, 0.0)],
            vec![stay(0.0, 1200.0, 0.8, 0.0)],
            vec![stay(0.0, 1200.0, 0.0, 1.2)],
        ],
        1,
    );
    let t = truth(&pop, 1.0);
    assert_eq!(t.exposure(0, 1, 0), 1200.0);
    assert_eq!(t.exposure(1, 0, 0), 1200.0);
    assert!(t.is_at_risk(0, 1, 0));
    assert_eq!(t.exposure(0, 2, 0), 0.0);
    // 0.8 to 1.2 m apart diagonally: √(0.64 + 1.44) ≈ 1.44 m.
    assert_eq!(t.exposure(1, 2, 0), 0.0);
    assert_eq!(t.at_risk().collect::<Vec<_>>(), vec![(0, 1, 0)]);
    assert_eq!(t.at_risk_contacts_of(1), vec![(0, 0)]);
    let t2 = truth(&pop, 2.0);
    assert_eq!(t2.exposure(0, 2, 0), 1200.0);
    assert_eq!(t2.exposure(1, 2, 0), 1200.0);
}

#[test]
fn walker_passing_a_static_person() {
    // 1 m/s along y = 0; the static person at (5, 0.6): within 1 m while
    // |x − 5| ≤ √(1 − 0.36) = 0.8, i.e. 1.6 s.
    let pop = population(
        vec![
            vec![walk(0.0, 10.0, (0.0, 0.0), (10.0, 0.0))],
            vec![stay(0.0, 10.0, 5.0, 0.6)],
        ],
        1,
    );
    let t = truth(&pop, 1.0);
    assert!((t.exposure(0, 1, 0) - 1.6).abs() < 1e-9);
    let iv = t.intervals();
    assert_eq!(iv.len(), 1);
    assert!((iv[0].start - 4.2).abs() < 1e-9 && (iv[0].end - 5.8).abs() < 1e-9);
}

#[test]
fn walkers_crossing_in_opposite_directions() {
    // Relative speed 2 m/s, lateral offset 0.5 m: within 1 m for 2·√0.75 / 2 s.
    let pop = population(
        vec![
            vec![walk(0.0, 10.0, (0.0, 0.0), (10.0, 0.0))],
            vec![walk(0.0, 10.0, (10.0, 0.5), (0.0, 0.5))],
        ],
        1,
    );
    let t = truth(&pop, 1.0);
    assert!((t.exposure(0, 1, 0) - 0.75f64.sqrt()).abs() < 1e-9);
}

#[test]
fn days_are_split_at_utc_midnight() {
    let pop = population(
        vec![
            vec![stay(86_000.0, 87_000.0, 0.0, 0.0)],
            vec![stay(86_000.0, 87_000.0, 0.5, 0.0)],
        ],
        1,
    );
    let t = truth(&pop, 1.0);
    assert!((t.exposure(0, 1, 0) - 400.0).abs() < 1e-9);
    assert!((t.exposure(0, 1, 1) - 600.0).abs() < 1e-9);
    assert!(!t.is_at_risk(0, 1, 0) && !t.is_at_risk(0, 1, 1));
    assert!((t.total_exposure(0, 1) - 1000.0).abs() < 1e-9);
}

#[test]
fn different_places_never_meet() {
    let mut other = stay(0.0, 1000.0, 0.0, 0.0);
    other.place = 1;
    let pop = population(vec![vec![stay(0.0, 1000.0, 0.0, 0.0)], vec![other]], 2);
    assert_eq!(truth(&pop, 1.0).exposures().count(), 0);
}

#[test]
fn time_accumulates_over_a_day_and_segments_merge() {
    // Morning 10 min, afternoon 6 min: 16 min ≥ 15 → at risk; the morning is
    // two consecutive segments of person 0 and must merge into one interval.
    let a = vec![
        stay(0.0, 300.0, 0.0, 0.0),
        stay(300.0, 600.0, 0.0, 0.0),
        stay(40_000.0, 40_360.0, 0.0, 0.0),
    ];
    let b = vec![
        stay(0.0, 600.0, 0.5, 0.0),
        stay(40_000.0, 40_360.0, 0.5, 0.0),
    ];
    let pop = population(vec![a, b], 1);
    let t = truth(&pop, 1.0);
    assert!((t.exposure(0, 1, 0) - 960.0).abs() < 1e-9);
    assert!(t.is_at_risk(0, 1, 0));
    assert_eq!(t.intervals().len(), 2);
    // 10 + 4 min is not enough.
    let a = vec![
        stay(0.0, 600.0, 0.0, 0.0),
        stay(40_000.0, 40_240.0, 0.0, 0.0),
    ];
    let b = vec![
        stay(0.0, 600.0, 0.5, 0.0),
        stay(40_000.0, 40_240.0, 0.5, 0.0),
    ];
    let t = truth(&population(vec![a, b], 1), 1.0);
    assert!(!t.is_at_risk(0, 1, 0));
}

/// Brute-force estimate by time stepping, for cross-checking.
fn stepped(pop: &Population, a: u32, b: u32, d: f64, dt: f64, horizon: f64) -> f64 {
    let (pa, pb) = (&pop.people[a as usize], &pop.people[b as usize]);
    let mut acc = 0.0;
    let mut t = dt / 2.0;
    while t < horizon {
        if let (Some(x), Some(y)) = (pa.trajectory.pose_at(t), pb.trajectory.pose_at(t))
            && x.place == y.place
            && x.position.distance(y.position) <= d
        {
            acc += dt;
        }
        t += dt;
    }
    acc
}

/// Random trajectories: each person has up to 3 non-overlapping segments in
/// places 0–1, static or walking, within [0, 600) s on a 6 m square.
fn arb_trajectory() -> impl Strategy<Value = Vec<Segment>> {
    prop::collection::vec(
        (
            0.0f64..150.0,
            1.0f64..60.0,
            0u32..2,
            (0.0f64..6.0, 0.0f64..6.0),
            (0.0f64..6.0, 0.0f64..6.0),
            any::<bool>(),
        ),
        1..4,
    )
    .prop_map(|specs| {
        let mut t = 0.0;
        specs
            .into_iter()
            .map(|(gap, dur, place, from, to, moving)| {
                let t0 = t + gap;
                t = t0 + dur;
                let to = if moving { to } else { from };
                Segment {
                    place,
                    ..walk(t0, t0 + dur, from, to)
                }
            })
            .collect()
    })
}

fn relabelled(pop: &Population) -> Population {
    population(
        pop.people
            .iter()
            .rev()
            .map(|p| p.trajectory.segments().to_vec())
            .collect(),
        2,
    )
}

fn split_all(pop: &Population, f: f64) -> Population {
    population(
        pop.people
            .iter()
            .map(|p| {
                p.trajectory
                    .segments()
                    .iter()
                    .flat_map(|s| {
                        let m = s.t0 + f * (s.t1 - s.t0);
                        let mut first = s.clip(s.t0, m).into_iter().collect::<Vec<_>>();
                        first.extend(s.clip(m, s.t1));
                        first
                    })
                    .collect()
            })
            .collect(),
        2,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invariants(trajs in prop::collection::vec(arb_trajectory(), 2..6), split in 0.1f64..0.9) {
        let pop = population(trajs, 2);
        let n = u32::try_from(pop.people.len()).unwrap();
        let t1 = truth(&pop, 1.0);
        let t2 = truth(&pop, 2.0);

        // Symmetry under relabelling.
        let rev = truth(&relabelled(&pop), 1.0);
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    let e = t1.exposure(a, b, 0);
                    prop_assert!((e - t1.exposure(b, a, 0)).abs() < 1e-12);
                    prop_assert!((e - rev.exposure(n - 1 - a, n - 1 - b, 0)).abs() < 1e-6);
                }
            }
        }
        // Additivity: cutting segments in two changes nothing.
        let cut = truth(&split_all(&pop, split), 1.0);
        for (a, b, d, s) in t1.exposures() {
            prop_assert!((cut.exposure(a, b, d) - s).abs() < 1e-6, "{a} {b}: {s} vs {}", cut.exposure(a, b, d));
        }
        prop_assert_eq!(cut.exposures().count(), t1.exposures().count());
        // Monotone in D, bounded by co-presence, equal to the interval sum.
        for a in 0..n {
            for b in (a + 1)..n {
                let e1 = t1.total_exposure(a, b);
                prop_assert!(e1 <= t2.total_exposure(a, b) + 1e-9);
                let co: f64 = pop.people[a as usize].trajectory.segments().iter()
                    .flat_map(|x| pop.people[b as usize].trajectory.segments().iter().map(move |y| (x, y)))
                    .filter(|(x, y)| x.place == y.place)
                    .map(|(x, y)| (x.t1.min(y.t1) - x.t0.max(y.t0)).max(0.0))
                    .sum();
                prop_assert!(e1 <= co + 1e-9);
                let iv: f64 = t1.intervals().iter().filter(|c| c.a == a && c.b == b).map(|c| c.end - c.start).sum();
                prop_assert!((iv - e1).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn matches_time_stepping(trajs in prop::collection::vec(arb_trajectory(), 2..4)) {
        let pop = population(trajs, 2);
        let t = truth(&pop, 1.5);
        let n = u32::try_from(pop.people.len()).unwrap();
        for a in 0..n {
            for b in (a + 1)..n {
                let exact = t.total_exposure(a, b);
                let approx = stepped(&pop, a, b, 1.5, 0.01, 800.0);
                // Each interval edge costs at most one step.
                let edges = 2.0 * (t.intervals().iter().filter(|c| c.a == a && c.b == b).count() as f64 + 6.0);
                prop_assert!((exact - approx).abs() <= 0.01 * edges + 1e-6, "{exact} vs {approx}");
            }
        }
    }
}
