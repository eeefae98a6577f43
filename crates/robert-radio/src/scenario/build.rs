//! Expansion of a [`Scenario`] into a [`World`].

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use super::world::{PositiveCase, World, anchor_shift_db};
use super::{
    Density, GroupKind, GroupSpec, PlacementWeights, Scenario, ScenarioError, Vehicle, invalid,
};
use crate::calibration::{CalibrationTable, Idiom, Os};
use crate::channel::{
    Channel, Environment, EnvironmentKind, HardwareReference, NoiseTerm, Placement, RadioHardware,
};
use crate::geometry::Vec2;
use crate::link::{Device, LinkModel, LinkTiming, Platform};
use crate::math::{bernoulli, index, standard_normal, uniform, weighted_index};
use crate::mobility::{Person, PersonId, Place, PlaceId, Population, Segment, Trajectory};
use crate::truth::{DAY_S, TruthConfig};

pub(super) fn timing(s: &Scenario) -> LinkTiming {
    let r = &s.radio;
    let mut t = LinkTiming::for_era(s.app_era);
    if let Some(v) = r.android_report_delay_s {
        t.android_report_delay_s = v;
    }
    if let Some(v) = r.ios_bg_scan_interval_s {
        t.ios_bg_scan_interval_s = v;
        t.ios_bg_report_period_s = v;
        t.ios_bg_scan_window_s = t.ios_bg_scan_window_s.min(v);
    }
    if let Some(v) = r.ios_connection_interval_s {
        t.ios_connection_interval_s = v;
    }
    if let Some(v) = r.ios_payload_cache_s {
        t.ios_payload_cache_s = v;
    }
    if let Some(v) = r.connection_failure_probability {
        t.connection_failure_probability = v;
    }
    t
}

pub(super) fn environment(g: &GroupSpec) -> Environment {
    let spec = g
        .environment
        .unwrap_or(super::EnvironmentSpec::Preset(match g.kind {
            GroupKind::Office | GroupKind::Classroom | GroupKind::Restaurant => {
                EnvironmentKind::IndoorMediumCeiling
            }
            GroupKind::Walkers => EnvironmentKind::Outdoor,
            GroupKind::Commute => EnvironmentKind::MetalVehicle,
            GroupKind::Queue => EnvironmentKind::IndoorHighCeiling,
        }));
    spec.resolve(g.density)
}

/// Local (start, end) in seconds after midnight, with per-kind defaults.
pub(super) fn window(g: &GroupSpec) -> (f64, f64) {
    use super::TimeOfDay as T;
    let (s, e) = match g.kind {
        GroupKind::Office => (T::hm(9, 0), T::hm(17, 30)),
        GroupKind::Classroom => (T::hm(8, 30), T::hm(12, 0)),
        GroupKind::Restaurant => (T::hm(12, 0), T::hm(13, 30)),
        GroupKind::Walkers => (T::hm(10, 0), T::hm(18, 0)),
        GroupKind::Queue => (T::hm(10, 0), T::hm(19, 0)),
        GroupKind::Commute => (T::hm(0, 0), T::hm(24, 0)),
    };
    (g.start.unwrap_or(s).seconds(), g.end.unwrap_or(e).seconds())
}

pub(super) fn walker_params(g: &GroupSpec) -> (f64, f64, u32, f64) {
    let width = g.width_m.unwrap_or(match g.density {
        Density::High => 3.0,
        Density::Low => 8.0,
    });
    (
        g.length_m.unwrap_or(100.0),
        width,
        g.crossings.unwrap_or(4),
        g.speed_m_s.unwrap_or(1.35),
    )
}

pub(super) fn service_mean(g: &GroupSpec) -> f64 {
    g.service_minutes.unwrap_or(2.0) * 60.0
}

/// Simulation time of local midnight of `day`.
pub(super) fn day_base(s: &Scenario, day: u32) -> f64 {
    f64::from(day) * DAY_S - s.utc_offset_hours * 3600.0
}

fn default_placement(kind: GroupKind) -> PlacementWeights {
    use Placement::*;
    let w: &[(Placement, f64)] = match kind {
        GroupKind::Office => &[
            (Table, 0.45),
            (FrontPocket, 0.2),
            (Hand, 0.15),
            (Bag, 0.1),
            (BackPocket, 0.05),
            (ChestPocket, 0.05),
        ],
        GroupKind::Classroom => &[
            (Table, 0.4),
            (Bag, 0.25),
            (FrontPocket, 0.2),
            (Hand, 0.1),
            (BackPocket, 0.05),
        ],
        GroupKind::Restaurant => &[
            (Table, 0.5),
            (FrontPocket, 0.2),
            (Bag, 0.15),
            (Hand, 0.1),
            (ChestPocket, 0.05),
        ],
        GroupKind::Walkers => &[
            (FrontPocket, 0.3),
            (Hand, 0.25),
            (Bag, 0.15),
            (BackPocket, 0.1),
            (Backpack, 0.1),
            (ChestPocket, 0.05),
            (Ear, 0.05),
        ],
        GroupKind::Commute => &[
            (Hand, 0.35),
            (FrontPocket, 0.2),
            (Bag, 0.15),
            (Backpack, 0.1),
            (ChestPocket, 0.1),
            (Ear, 0.05),
            (BackPocket, 0.05),
        ],
        GroupKind::Queue => &[
            (Hand, 0.35),
            (FrontPocket, 0.25),
            (Bag, 0.2),
            (BackPocket, 0.1),
            (Ear, 0.05),
            (ChestPocket, 0.05),
        ],
    };
    w.iter().copied().collect()
}

#[derive(Clone, Debug)]
pub(super) struct MixEntry {
    pub(super) os: Os,
    pub(super) model: String,
    pub(super) weight: f64,
    pub(super) true_tx: Option<f64>,
    pub(super) true_rx: Option<f64>,
}

pub(super) fn model_mix(s: &Scenario) -> Vec<MixEntry> {
    if s.population.models.is_empty() {
        super::DEFAULT_MODELS
            .iter()
            .map(|(os, model, weight)| MixEntry {
                os: *os,
                model: (*model).to_owned(),
                weight: *weight,
                true_tx: None,
                true_rx: None,
            })
            .collect()
    } else {
        s.population
            .models
            .iter()
            .map(|m| MixEntry {
                os: m.os,
                model: m.model.clone(),
                weight: m.weight,
                true_tx: m.true_tx_gain_db,
                true_rx: m.true_rx_gain_db,
            })
            .collect()
    }
}

/// Builder state.
struct Ctx<'a> {
    s: &'a Scenario,
    /// Calibration shift of the anchor (dB).
    shift: i32,
    rng: ChaCha8Rng,
    table: CalibrationTable,
    reference: HardwareReference,
    mix: Vec<MixEntry>,
    people: Vec<Person>,
    segments: Vec<Vec<Segment>>,
    places: Vec<Place>,
}

/// One visit: consecutive segments sharing a placement and app state.
struct Stay {
    person: PersonId,
    segments: Vec<Segment>,
}

impl Ctx<'_> {
    fn new_person(&mut self, group: &str) -> PersonId {
        let p = &self.s.population;
        let rng = &mut self.rng;
        let os = if bernoulli(rng, p.android_share) {
            Os::Android
        } else {
            Os::Ios
        };
        let candidates: Vec<&MixEntry> = self.mix.iter().filter(|m| m.os == os).collect();
        let weights: Vec<f64> = candidates.iter().map(|m| m.weight).collect();
        let entry = candidates[weighted_index(rng, &weights).min(candidates.len() - 1)].clone();
        let platform = match os {
            Os::Android => Platform::Android {
                advertiser: !bernoulli(rng, p.android_no_advertiser_share),
            },
            Os::Ios => Platform::Ios,
        };
        let app = self.table.lookup(os, &entry.model, Idiom::Phone).gains;
        // An ablated device term still draws (same random stream), times 0.
        let on = if self.s.radio.ablate.contains(NoiseTerm::Device) {
            0.0
        } else {
            1.0
        };
        let (mut tx, mut rx) = match self.table.get(&entry.model) {
            Some(g) => (f64::from(g.tx), f64::from(g.rx)),
            None => (
                f64::from(app.tx) + on * p.unlisted_model_sigma_db * standard_normal(rng),
                f64::from(app.rx) + on * p.unlisted_model_sigma_db * standard_normal(rng),
            ),
        };
        tx = entry.true_tx.unwrap_or(tx) + on * p.device_offset_sigma_db * standard_normal(rng);
        rx = entry.true_rx.unwrap_or(rx) + on * p.device_offset_sigma_db * standard_normal(rng);
        let hardware = RadioHardware::from_true_gains_f64(tx, rx, &self.reference);
        let device = Device::new(platform, hardware, app.shift_calibrated(self.shift), rng);
        let id = u32::try_from(self.people.len()).unwrap_or(u32::MAX);
        self.people.push(Person {
            id,
            group: group.to_owned(),
            model: entry.model,
            device,
            trajectory: Trajectory::default(),
        });
        self.segments.push(Vec::new());
        id
    }

    fn add_place(&mut self, name: String, environment: Environment) -> PlaceId {
        let id = u32::try_from(self.places.len()).unwrap_or(u32::MAX);
        self.places.push(Place {
            id,
            name,
            environment,
        });
        id
    }

    fn days(&self, g: &GroupSpec) -> Vec<u32> {
        g.days.clone().unwrap_or_else(|| (0..self.s.days).collect())
    }

    /// Assigns placement and app state per stay, clips to the simulation,
    /// and inserts with precedence over earlier groups.
    fn commit(&mut self, g: &GroupSpec, stays: Vec<Stay>) {
        let weights = g
            .placement
            .clone()
            .or_else(|| self.s.population.placement.clone())
            .unwrap_or_else(|| default_placement(g.kind));
        let (keys, w): (Vec<Placement>, Vec<f64>) = weights.into_iter().unzip();
        let horizon = f64::from(self.s.days) * DAY_S;
        for stay in stays {
            let placement = keys[weighted_index(&mut self.rng, &w).min(keys.len() - 1)];
            let ios = self
                .people
                .get(stay.person as usize)
                .is_some_and(|p| p.device.platform == Platform::Ios);
            let foreground =
                ios && bernoulli(&mut self.rng, self.s.population.ios_foreground_share);
            let Some(list) = self.segments.get_mut(stay.person as usize) else {
                continue;
            };
            for seg in stay.segments {
                let Some(seg) = seg.clip(0.0, horizon) else {
                    continue;
                };
                let seg = Segment {
                    placement,
                    foreground,
                    ..seg
                };
                insert_with_precedence(list, seg);
            }
        }
    }
}

/// Inserts `new`, cutting its time out of existing segments.
fn insert_with_precedence(list: &mut Vec<Segment>, new: Segment) {
    let mut out = Vec::with_capacity(list.len() + 2);
    for s in list.drain(..) {
        if s.t1 <= new.t0 || s.t0 >= new.t1 {
            out.push(s);
        } else {
            out.extend(s.clip(s.t0, new.t0));
            out.extend(s.clip(new.t1, s.t1));
        }
    }
    out.push(new);
    *list = out;
}

pub(super) fn build(s: &Scenario) -> Result<World, ScenarioError> {
    super::validate::validate(s)?;
    let reference = HardwareReference {
        default_tx_dbm: s.radio.default_android_tx_dbm,
        ..HardwareReference::STANDARD
    };
    let shift = anchor_shift_db(s.radio.anchor_db);
    let mut ctx = Ctx {
        s,
        shift,
        rng: ChaCha8Rng::seed_from_u64(s.seed),
        table: CalibrationTable::october_2020(),
        reference,
        mix: model_mix(s),
        people: Vec::new(),
        segments: Vec::new(),
        places: Vec::new(),
    };
    // Per group: the member list of each instance.
    let mut instances: Vec<(String, Vec<Vec<PersonId>>)> = Vec::new();
    for g in &s.groups {
        let per_instance: Vec<Vec<PersonId>> = match &g.members {
            Some(other) => instances
                .iter()
                .find(|(n, _)| n == other)
                .map(|(_, m)| m.clone())
                .unwrap_or_default(),
            None => (0..g.instances.unwrap_or(1))
                .map(|_| (0..g.people).map(|_| ctx.new_person(&g.name)).collect())
                .collect(),
        };
        let many = per_instance.len() > 1;
        for (i, members) in per_instance.iter().enumerate() {
            let name = if many {
                format!("{}#{i}", g.name)
            } else {
                g.name.clone()
            };
            let stays = match g.kind {
                GroupKind::Office | GroupKind::Classroom => {
                    seated_grid(&mut ctx, g, &name, members)
                }
                GroupKind::Restaurant => restaurant(&mut ctx, g, &name, members),
                GroupKind::Walkers => walkers(&mut ctx, g, &name, members),
                GroupKind::Commute => commute(&mut ctx, g, &name, members),
                GroupKind::Queue => queue(&mut ctx, g, &name, members),
            };
            ctx.commit(g, stays);
        }
        instances.push((g.name.clone(), per_instance));
    }
    let groups: Vec<(String, Vec<PersonId>)> = instances
        .into_iter()
        .map(|(n, m)| (n, m.into_iter().flatten().collect()))
        .collect();

    let Ctx {
        mut rng,
        table,
        people,
        segments,
        places,
        ..
    } = ctx;
    let mut population = Population { people, places };
    for (p, segs) in population.people.iter_mut().zip(segments) {
        p.trajectory = Trajectory::new(segs).map_err(|source| ScenarioError::Mobility {
            person: p.id,
            source,
        })?;
    }
    population
        .validate()
        .map_err(|source| ScenarioError::Mobility { person: 0, source })?;

    for pl in &mut population.places {
        pl.environment.ablate = s.radio.ablate;
    }
    let timing = timing(s);
    let mut links: Vec<LinkModel> = Vec::new();
    let mut place_links = Vec::with_capacity(population.places.len());
    for pl in &population.places {
        let i = match links.iter().position(|l| l.channel.env == pl.environment) {
            Some(i) => i,
            None => {
                links.push(LinkModel::new(
                    Channel::new(pl.environment, s.radio.sensitivity_dbm),
                    timing,
                ));
                links.len() - 1
            }
        };
        place_links.push(i);
    }

    let mut positives = Vec::new();
    for pos in &s.positives {
        let members = groups
            .iter()
            .find(|(n, _)| *n == pos.group)
            .map(|(_, m)| m.as_slice())
            .unwrap_or_default();
        let idx = match pos.member {
            Some(m) => m as usize,
            None => index(&mut rng, members.len()),
        };
        let Some(&person) = members.get(idx) else {
            return Err(invalid("positives", "empty group"));
        };
        let declared_at =
            day_base(s, pos.day) + pos.time.unwrap_or(super::TimeOfDay::hm(18, 0)).seconds();
        positives.push(PositiveCase {
            person,
            declared_at,
            symptom_onset_at: pos
                .onset_days_before
                .map(|d| declared_at - f64::from(d) * DAY_S),
        });
    }

    Ok(World {
        name: s.name.clone(),
        seed: s.seed,
        start_date: s.start_date.0,
        days: s.days,
        duration_s: f64::from(s.days) * DAY_S,
        timing,
        hardware_reference: reference,
        anchor_db: s.radio.anchor_db,
        calibration: table.shift_calibrated(shift),
        population,
        links,
        place_links,
        max_pair_range_m: s.radio.max_pair_range_m,
        truth_config: TruthConfig {
            distance_m: s.truth.distance_m,
            at_risk_s: s.truth.at_risk_minutes * 60.0,
        },
        positives,
        groups,
    })
}

/// Office (desks, random headings) or classroom (rows facing +y).
fn seated_grid(ctx: &mut Ctx<'_>, g: &GroupSpec, name: &str, members: &[PersonId]) -> Vec<Stay> {
    let classroom = g.kind == GroupKind::Classroom;
    let spacing = g.spacing_m.unwrap_or(match (classroom, g.density) {
        (false, Density::High) => 1.2,
        (false, Density::Low) => 2.5,
        (true, Density::High) => 1.0,
        (true, Density::Low) => 2.0,
    });
    let place = ctx.add_place(name.to_owned(), environment(g));
    let cols = (members.len() as f64).sqrt().ceil().max(1.0) as usize;
    let seats: Vec<(PersonId, Vec2, f64)> = members
        .iter()
        .enumerate()
        .map(|(i, &pid)| {
            let (c, r) = ((i % cols) as f64, (i / cols) as f64);
            let pos = Vec2::new(
                c * spacing + uniform(&mut ctx.rng, -0.1, 0.1),
                r * spacing + uniform(&mut ctx.rng, -0.1, 0.1),
            );
            let heading = if classroom {
                std::f64::consts::FRAC_PI_2
            } else {
                uniform(&mut ctx.rng, 0.0, std::f64::consts::TAU)
            };
            (pid, pos, heading)
        })
        .collect();
    let (start, end) = window(g);
    let jitter = g.arrival_jitter_minutes * 60.0;
    let mut stays = Vec::new();
    for day in ctx.days(g) {
        let base = day_base(ctx.s, day);
        for &(pid, pos, heading) in &seats {
            let t0 = base + start + uniform(&mut ctx.rng, 0.0, jitter);
            let t1 = base + end - uniform(&mut ctx.rng, 0.0, jitter);
            if t1 > t0 {
                stays.push(Stay {
                    person: pid,
                    segments: vec![Segment::stay(t0, t1, place, pos, heading, Placement::Hand)],
                });
            }
        }
    }
    stays
}

/// Parties seated around tables, facing the table centre.
fn restaurant(ctx: &mut Ctx<'_>, g: &GroupSpec, name: &str, members: &[PersonId]) -> Vec<Stay> {
    let size = g.table_size.unwrap_or(4).max(1) as usize;
    let (table_step, radius) = match g.density {
        Density::High => (2.0, 0.45),
        Density::Low => (3.5, 0.6),
    };
    let table_step = g.spacing_m.unwrap_or(table_step);
    let place = ctx.add_place(name.to_owned(), environment(g));
    let tables: Vec<&[PersonId]> = members.chunks(size).collect();
    let cols = (tables.len() as f64).sqrt().ceil().max(1.0) as usize;
    let mut seats: Vec<Vec<(PersonId, Vec2, f64)>> = Vec::new();
    for (ti, party) in tables.iter().enumerate() {
        let centre = Vec2::new(
            (ti % cols) as f64 * table_step,
            (ti / cols) as f64 * table_step,
        );
        let rot = uniform(&mut ctx.rng, 0.0, std::f64::consts::TAU);
        let n = party.len() as f64;
        seats.push(
            party
                .iter()
                .enumerate()
                .map(|(j, &pid)| {
                    let a = rot + std::f64::consts::TAU * j as f64 / n;
                    let pos = centre + Vec2::from_heading(a) * radius;
                    (pid, pos, a + std::f64::consts::PI)
                })
                .collect(),
        );
    }
    let (start, end) = window(g);
    let jitter = g.arrival_jitter_minutes * 60.0;
    let mut stays = Vec::new();
    for day in ctx.days(g) {
        let base = day_base(ctx.s, day);
        for party in &seats {
            let t0 = base + start + uniform(&mut ctx.rng, 0.0, jitter);
            let t1 = base + end - uniform(&mut ctx.rng, 0.0, jitter);
            if t1 <= t0 {
                continue;
            }
            for &(pid, pos, heading) in party {
                stays.push(Stay {
                    person: pid,
                    segments: vec![Segment::stay(t0, t1, place, pos, heading, Placement::Hand)],
                });
            }
        }
    }
    stays
}

/// Street crossings in random directions and lanes.
fn walkers(ctx: &mut Ctx<'_>, g: &GroupSpec, name: &str, members: &[PersonId]) -> Vec<Stay> {
    let (length, width, crossings, speed) = walker_params(g);
    let place = ctx.add_place(name.to_owned(), environment(g));
    let (start, end) = window(g);
    let slot = (end - start) / f64::from(crossings);
    let mut stays = Vec::new();
    for day in ctx.days(g) {
        let base = day_base(ctx.s, day);
        for &pid in members {
            for k in 0..crossings {
                let rng = &mut ctx.rng;
                let v = (speed + 0.15 * standard_normal(rng)).clamp(0.8, 2.0);
                let dur = length / v;
                let slot0 = base + start + f64::from(k) * slot;
                let t0 = slot0 + uniform(rng, 0.0, (slot - dur).max(0.0));
                let y = uniform(rng, 0.0, width);
                let (x0, x1) = if bernoulli(rng, 0.5) {
                    (0.0, length)
                } else {
                    (length, 0.0)
                };
                stays.push(Stay {
                    person: pid,
                    segments: vec![Segment::walk(
                        t0,
                        t0 + dur,
                        place,
                        Vec2::new(x0, y),
                        Vec2::new(x1, y),
                        Placement::Hand,
                    )],
                });
            }
        }
    }
    stays
}

/// Rides in metro cars or buses.
fn commute(ctx: &mut Ctx<'_>, g: &GroupSpec, name: &str, members: &[PersonId]) -> Vec<Stay> {
    let vehicle = g.vehicle.unwrap_or(Vehicle::Metro);
    let (len, wid) = vehicle.size_m();
    let per_car = g.passengers_per_car.unwrap_or(match g.density {
        Density::High => 40,
        Density::Low => 12,
    }) as usize;
    let min_sep = match g.density {
        Density::High => 0.5,
        Density::Low => 1.0,
    };
    let trip = g.trip_minutes.unwrap_or(30.0) * 60.0;
    let departures = g
        .departures
        .clone()
        .unwrap_or_else(|| vec![super::TimeOfDay::hm(8, 0), super::TimeOfDay::hm(18, 0)]);
    let cars = members.len().div_ceil(per_car.max(1)).max(1);
    let env = environment(g);
    let car_places: Vec<PlaceId> = (0..cars)
        .map(|c| ctx.add_place(format!("{name}/car{c}"), env))
        .collect();
    let mut stays = Vec::new();
    let mut order: Vec<PersonId> = members.to_vec();
    for day in ctx.days(g) {
        let base = day_base(ctx.s, day);
        for dep in &departures {
            let t_dep = base + dep.seconds();
            // Fisher–Yates shuffle: who rides in which car.
            for i in (1..order.len()).rev() {
                let j = index(&mut ctx.rng, i + 1);
                order.swap(i, j);
            }
            for (c, riders) in order.chunks(per_car.max(1)).enumerate() {
                let place = car_places[c.min(cars - 1)];
                let mut placed: Vec<Vec2> = Vec::with_capacity(riders.len());
                for &pid in riders {
                    let rng = &mut ctx.rng;
                    let ride = trip * uniform(rng, 0.4, 1.0);
                    let board = uniform(rng, 0.0, trip - ride);
                    let mut pos = Vec2::default();
                    for _ in 0..30 {
                        pos = Vec2::new(uniform(rng, 0.3, len - 0.3), uniform(rng, 0.3, wid - 0.3));
                        if placed.iter().all(|q| q.distance(pos) >= min_sep) {
                            break;
                        }
                    }
                    placed.push(pos);
                    let heading = uniform(rng, 0.0, std::f64::consts::TAU);
                    stays.push(Stay {
                        person: pid,
                        segments: vec![Segment::stay(
                            t_dep + board,
                            t_dep + board + ride,
                            place,
                            pos,
                            heading,
                            Placement::Hand,
                        )],
                    });
                }
            }
        }
    }
    stays
}

/// A FIFO queue at a till at x = 0; people face the till and move up.
fn queue(ctx: &mut Ctx<'_>, g: &GroupSpec, name: &str, members: &[PersonId]) -> Vec<Stay> {
    let spacing = g.spacing_m.unwrap_or(match g.density {
        Density::High => 0.8,
        Density::Low => 1.5,
    });
    let service = service_mean(g);
    let place = ctx.add_place(name.to_owned(), environment(g));
    let (start, end) = window(g);
    let mut stays = Vec::new();
    for day in ctx.days(g) {
        let base = day_base(ctx.s, day);
        let mut arrivals: Vec<(f64, PersonId, f64)> = members
            .iter()
            .map(|&pid| {
                let a = base + start + uniform(&mut ctx.rng, 0.0, end - start - 2.0 * service);
                (a, pid, uniform(&mut ctx.rng, -0.1, 0.1))
            })
            .collect();
        arrivals.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        let mut ends: Vec<f64> = Vec::with_capacity(arrivals.len());
        let mut j0 = 0usize;
        for (i, &(a, pid, dy)) in arrivals.iter().enumerate() {
            let s_start = ends.last().map_or(a, |e: &f64| e.max(a));
            let s_end = s_start + service * uniform(&mut ctx.rng, 0.5, 1.5);
            while j0 < i && ends[j0] <= a {
                j0 += 1;
            }
            let pos = |idx: usize| Vec2::new(0.5 + idx as f64 * spacing, dy);
            let mut segs = Vec::new();
            let mut cur = a;
            let mut idx = i - j0;
            for &e in &ends[j0..i] {
                if e > cur {
                    segs.push(Segment::stay(
                        cur,
                        e,
                        place,
                        pos(idx),
                        std::f64::consts::PI,
                        Placement::Hand,
                    ));
                    cur = e;
                }
                idx -= 1;
            }
            if s_end > cur {
                // Everybody ahead has left: `cur` is the service start.
                segs.push(Segment::stay(
                    cur,
                    s_end,
                    place,
                    pos(0),
                    std::f64::consts::PI,
                    Placement::Hand,
                ));
            }
            ends.push(s_end);
            stays.push(Stay {
                person: pid,
                segments: segs,
            });
        }
    }
    stays
}
