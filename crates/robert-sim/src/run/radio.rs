//! The time loop: pairs within radio range, the radio step of each pair.

use std::time::Instant;

use rand::SeedableRng as _;
use rand::rngs::ChaCha8Rng;
use robert_radio::link::{End, PairLink, Reception, StepContext};
use robert_radio::mobility::{NearPair, PersonId};
use robert_radio::scenario::World;

use crate::common::FastMap;
use crate::error::SimError;
use crate::options::RegisterPolicy;

use super::{Sim, ms};

impl Sim<'_> {
    /// The loop of the module docs, from t = 0 to the end of the last day:
    /// events due, then the radio step of every pair within range.
    pub(super) async fn time_loop(&mut self) -> Result<(), SimError> {
        let world = self.world;
        let end = world.duration_s;
        let mut sweep = world
            .pair_sweep()
            .map_err(|e| SimError::Backend(format!("pair sweep: {e}")))?;
        let mut radio = Radio::new(world.population.people.len(), self.seed);
        let mut pairs: Vec<NearPair> = Vec::new();
        let mut to_register: Vec<u32> = Vec::new();
        self.progress
            .phase(&world.name, "simulate", end.ceil() as u64);
        let mut t = 0.0f64;
        let mut last_progress = Instant::now();
        loop {
            self.process_events(t).await?;
            if t >= end {
                break;
            }
            if last_progress.elapsed().as_millis() >= 100 {
                self.progress.advance(t as u64);
                last_progress = Instant::now();
            }
            pairs.clear();
            sweep.pairs_at(t, &mut pairs);
            // The step grid depends on the radio alone (arrivals), never on
            // phone or server events: those run at their own times at the
            // top of the loop. The same seed then gives the same receptions
            // whatever the transport, policies or thresholds.
            let grid = StepGrid {
                next_start: sweep.next_start().unwrap_or(f64::INFINITY),
                end,
            };
            if pairs.is_empty() {
                t = if sweep.present_count() == 0 {
                    grid.skip_idle(t, self.opts.step_moving_s)
                } else {
                    grid.cap(t, self.opts.step_static_s)
                };
                continue;
            }
            if self.opts.register == RegisterPolicy::Lazy {
                self.register_met(&pairs, &mut to_register, t).await?;
            }
            let step = if any_moving(world, &pairs, t) {
                self.opts.step_moving_s
            } else {
                self.opts.step_static_s
            };
            let t_next = grid.cap(t, step);
            let dt = t_next - t;
            self.counts.steps += 1;

            // Radio: every near pair over [t, t + dt).
            self.counts.pair_steps += radio.step(world, &pairs, t, dt);
            self.deliver(&radio.buf, &radio.buf_place);
            if self.counts.steps.is_multiple_of(1024) {
                radio.links.retain(|_, (_, seen)| t - *seen <= 900.0);
            }
            t = t_next;
        }
        self.progress.advance(end as u64);
        self.progress.finish_phase();
        Ok(())
    }

    /// Lazy registration: the phones of these pairs that never tried
    /// register now (`to_register` is a reusable buffer).
    async fn register_met(
        &mut self,
        pairs: &[NearPair],
        to_register: &mut Vec<u32>,
        t: f64,
    ) -> Result<(), SimError> {
        to_register.clear();
        for p in pairs {
            for id in [p.a, p.b] {
                if self.registered_at[id as usize].is_none() {
                    to_register.push(id);
                }
            }
        }
        if to_register.is_empty() {
            return Ok(());
        }
        to_register.sort_unstable();
        to_register.dedup();
        let ids = std::mem::take(to_register);
        let started = Instant::now();
        self.register(&ids, t).await?;
        self.timings.server_ms += ms(started);
        // Failed registrations are not retried at every step.
        for &id in &ids {
            if self.registered_at[id as usize].is_none() {
                self.registered_at[id as usize] = Some(f64::INFINITY);
            }
        }
        *to_register = ids;
        Ok(())
    }
}

/// Where the next step may end: never past the next arrival or the end.
#[derive(Clone, Copy, Debug)]
struct StepGrid {
    /// The next arrival of someone (simulation seconds).
    next_start: f64,
    /// The end of the run.
    end: f64,
}

impl StepGrid {
    /// `t + step`, cut at the next arrival or the end if they come first.
    fn cap(self, t: f64, step: f64) -> f64 {
        let mut t_next = t + step;
        for c in [self.next_start, self.end] {
            if c > t + 1e-3 && c < t_next {
                t_next = c;
            }
        }
        t_next
    }

    /// Nobody present: straight to the next arrival (or the end).
    fn skip_idle(self, t: f64, step_moving_s: f64) -> f64 {
        let mut t_next = self.next_start.min(self.end);
        if t_next <= t + 1e-3 {
            t_next = self.cap(t, step_moving_s);
        }
        t_next
    }
}

/// Whether someone in these pairs is walking at `t` (short steps then).
fn any_moving(world: &World, pairs: &[NearPair], t: f64) -> bool {
    pairs.iter().any(|p| {
        [p.a, p.b].iter().any(|&id| {
            world
                .population
                .person(id)
                .and_then(|pp| pp.trajectory.segment_at(t))
                .is_some_and(|s| s.from != s.to)
        })
    })
}

/// The radio across steps: each pair's link state, the radio's random
/// stream (seeded by the run's seed alone) and the step's receptions.
struct Radio {
    /// Link state of each pair, with the last time it was stepped.
    links: FastMap<(PersonId, PersonId), (PairLink, f64)>,
    /// Receptions of the step, and the place of each.
    buf: Vec<Reception>,
    buf_place: Vec<u32>,
    /// Pairs each person is in during the step (zero between steps).
    degree: Vec<u32>,
    rng: ChaCha8Rng,
}

impl Radio {
    fn new(people: usize, seed: u64) -> Self {
        Self {
            links: FastMap::default(),
            buf: Vec::new(),
            buf_place: Vec::new(),
            degree: vec![0u32; people],
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Steps every pair over [t, t + dt) into `buf`; returns how many pairs
    /// were stepped.
    fn step(&mut self, world: &World, pairs: &[NearPair], t: f64, dt: f64) -> u64 {
        let mut stepped = 0;
        for p in pairs {
            for id in [p.a, p.b] {
                if let Some(d) = self.degree.get_mut(id as usize) {
                    *d += 1;
                }
            }
        }
        self.buf.clear();
        self.buf_place.clear();
        for p in pairs {
            let deg = |id: PersonId| self.degree.get(id as usize).copied().unwrap_or(1);
            let ctx = StepContext {
                audible_advertisers: deg(p.a).max(deg(p.b)).saturating_sub(1),
            };
            let (Some(ea), Some(eb), Some(model)) = (
                world.population.end_at(p.a, t),
                world.population.end_at(p.b, t),
                world.link_model(p.place),
            ) else {
                continue;
            };
            let entry = self.links.entry((p.a, p.b)).or_default();
            entry.1 = t;
            let before = self.buf.len();
            step_model(
                model,
                &mut entry.0,
                &ea,
                &eb,
                t,
                dt,
                &ctx,
                &mut self.rng,
                &mut self.buf,
            );
            self.buf_place
                .extend(std::iter::repeat_n(p.place, self.buf.len() - before));
            stepped += 1;
        }
        for p in pairs {
            for id in [p.a, p.b] {
                if let Some(d) = self.degree.get_mut(id as usize) {
                    *d = 0;
                }
            }
        }
        stepped
    }
}

#[expect(clippy::too_many_arguments, reason = "mirrors LinkModel::step")]
fn step_model(
    model: &robert_radio::link::LinkModel,
    link: &mut PairLink,
    a: &End<'_>,
    b: &End<'_>,
    t: f64,
    dt: f64,
    ctx: &StepContext,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Reception>,
) {
    model.step(link, a, b, t, dt, ctx, rng, out);
}
