//! The expanded scenario: [`World`] and what it answers (link models,
//! pair sweep, ground truth, a radio-only run).

use robert_core::time::{NtpSeconds, UtcDate};

use crate::calibration::CalibrationTable;
use crate::channel::HardwareReference;
use crate::fast_map::FastMap;
use crate::link::{End, LinkModel, LinkTiming, PairLink, Reception, StepContext};
use crate::mobility::{MobilityError, NearPair, PairSweep, PersonId, PlaceId, Population};
use crate::truth::{GroundTruth, TruthConfig};

/// A person who declares a positive test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PositiveCase {
    /// Who.
    pub person: PersonId,
    /// When the declaration happens (simulation seconds).
    pub declared_at: f64,
    /// Symptom onset (simulation seconds; may be negative: before the simulation).
    pub symptom_onset_at: Option<f64>,
}

/// An expanded scenario: everything the simulator needs.
#[derive(Clone, Debug)]
pub struct World {
    /// Scenario name.
    pub name: String,
    /// Scenario seed (the simulator may derive its radio RNG from it).
    pub seed: u64,
    /// UTC date of simulation time 0.
    pub start_date: UtcDate,
    /// Simulated days.
    pub days: u32,
    /// Simulated duration (s).
    pub duration_s: f64,
    /// OS timing in force.
    pub timing: LinkTiming,
    /// Hardware reference used to derive devices (raw levels; independent
    /// of the anchor).
    pub hardware_reference: HardwareReference,
    /// The scenario's anchor (`[radio] anchor_db`).
    pub anchor_db: f64,
    /// Calibration table the apps use: October 2020, with the RX gains
    /// shifted by the anchor ([`anchor_shift_db`]).
    pub calibration: CalibrationTable,
    /// People and places.
    pub population: Population,
    /// One link model per distinct environment.
    pub links: Vec<LinkModel>,
    /// `place_links[place]` indexes [`World::links`].
    pub place_links: Vec<usize>,
    /// Pairs farther apart are never stepped (m).
    pub max_pair_range_m: f64,
    /// Ground-truth contact definition.
    pub truth_config: TruthConfig,
    /// Positive declarations.
    pub positives: Vec<PositiveCase>,
    /// Members of each group, in scenario order.
    pub groups: Vec<(String, Vec<PersonId>)>,
}

/// Counters of [`World::run_radio`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RadioRunStats {
    /// Time steps executed (idle periods are skipped).
    pub steps: u64,
    /// Pair steps executed.
    pub pair_steps: u64,
    /// Receptions produced.
    pub receptions: u64,
    /// Most people present at once.
    pub max_present: usize,
}

impl World {
    /// The link model of a place.
    pub fn link_model(&self, place: PlaceId) -> Option<&LinkModel> {
        let i = *self.place_links.get(usize::try_from(place).ok()?)?;
        self.links.get(i)
    }

    /// Per-place pair range: the channel's reach for the strongest devices
    /// present, capped at `max_pair_range_m`.
    pub fn pair_ranges(&self) -> Vec<f64> {
        let (tx, rx) = self.population.people.iter().fold(
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
            |(tx, rx), p| {
                (
                    tx.max(p.device.hardware.tx_power_dbm),
                    rx.max(p.device.hardware.rx_offset_db),
                )
            },
        );
        self.population
            .places
            .iter()
            .map(|pl| match self.link_model(pl.id) {
                Some(m) if tx.is_finite() => m
                    .channel
                    .max_range_m(tx + rx - m.channel.env.reference_loss_db)
                    .min(self.max_pair_range_m),
                _ => self.max_pair_range_m,
            })
            .collect()
    }

    /// A pair sweep over the population with [`World::pair_ranges`].
    pub fn pair_sweep(&self) -> Result<PairSweep<'_>, MobilityError> {
        PairSweep::new(&self.population, self.pair_ranges())
    }

    /// The exact ground truth with the scenario's contact definition.
    pub fn ground_truth(&self) -> GroundTruth {
        GroundTruth::compute(&self.population, self.truth_config)
    }

    /// NTP seconds at simulation time `t` (rounded down).
    pub fn ntp_at(&self, t: f64) -> NtpSeconds {
        // t ≥ 0 within a simulation; negative values clamp to the start.
        self.start_date.midnight().plus(t.max(0.0).floor() as u64)
    }

    /// The members of a group.
    pub fn members(&self, group: &str) -> Option<&[PersonId]> {
        self.groups
            .iter()
            .find(|(n, _)| n == group)
            .map(|(_, m)| m.as_slice())
    }

    /// Steps one near pair over `[t0, t0 + dt)` with positions at `t0`;
    /// returns false (and does nothing) if either person is absent.
    #[expect(clippy::too_many_arguments, reason = "mirrors LinkModel::step")]
    pub fn step_pair<R: rand::Rng + ?Sized>(
        &self,
        link: &mut PairLink,
        pair: &NearPair,
        t0: f64,
        dt: f64,
        ctx: &StepContext,
        rng: &mut R,
        out: &mut Vec<Reception>,
    ) -> bool {
        let (Some(a), Some(b), Some(model)) = (
            self.population.end_at(pair.a, t0),
            self.population.end_at(pair.b, t0),
            self.link_model(pair.place),
        ) else {
            return false;
        };
        model.step(link, &a, &b, t0, dt, ctx, rng, out);
        true
    }

    /// Runs the radio alone over the whole scenario with steps of `dt`
    /// seconds, calling `on_reception` for every reception (time-ordered
    /// within a step). Idle periods are skipped; pair states not seen for
    /// 15 minutes are dropped. This is the loop the simulator runs, minus
    /// the phone SDKs.
    pub fn run_radio<R, F>(
        &self,
        dt: f64,
        rng: &mut R,
        mut on_reception: F,
    ) -> Result<RadioRunStats, MobilityError>
    where
        R: rand::Rng + ?Sized,
        F: FnMut(&Reception),
    {
        let mut stats = RadioRunStats::default();
        if dt <= 0.0 || !dt.is_finite() {
            return Ok(stats);
        }
        let mut sweep = self.pair_sweep()?;
        let mut links: FastMap<(PersonId, PersonId), (PairLink, f64)> = FastMap::default();
        let mut pairs = Vec::new();
        let mut buf = Vec::new();
        let n_people = self.population.people.len();
        let mut degree = vec![0u32; n_people];
        // Radio end of each person, computed once per step.
        let mut ends: Vec<Option<End<'_>>> = vec![None; n_people];
        let mut stamp = vec![u64::MAX; n_people];
        let mut t = 0.0;
        while t < self.duration_s {
            pairs.clear();
            sweep.pairs_at(t, &mut pairs);
            let present = sweep.present_count();
            stats.max_present = stats.max_present.max(present);
            if present == 0 {
                match sweep.next_start() {
                    Some(next) if next > t => {
                        t = (next / dt).ceil() * dt;
                        continue;
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            stats.steps += 1;
            for p in &pairs {
                for id in [p.a, p.b] {
                    if let Some(d) = degree.get_mut(id as usize) {
                        *d += 1;
                    }
                }
            }
            buf.clear();
            for p in &pairs {
                let deg = |id: PersonId| degree.get(id as usize).copied().unwrap_or(1);
                let ctx = StepContext {
                    audible_advertisers: deg(p.a).max(deg(p.b)).saturating_sub(1),
                };
                let mut end_of = |id: PersonId| {
                    let i = id as usize;
                    if stamp.get(i) != Some(&stats.steps)
                        && let (Some(slot), Some(st)) = (ends.get_mut(i), stamp.get_mut(i))
                    {
                        *slot = self.population.end_at(id, t);
                        *st = stats.steps;
                    }
                    ends.get(i).copied().flatten()
                };
                let (Some(ea), Some(eb), Some(model)) =
                    (end_of(p.a), end_of(p.b), self.link_model(p.place))
                else {
                    continue;
                };
                let entry = links.entry((p.a, p.b)).or_default();
                entry.1 = t;
                model.step(&mut entry.0, &ea, &eb, t, dt, &ctx, rng, &mut buf);
                stats.pair_steps += 1;
            }
            for p in &pairs {
                for id in [p.a, p.b] {
                    if let Some(d) = degree.get_mut(id as usize) {
                        *d = 0;
                    }
                }
            }
            buf.sort_unstable_by(|x, y| {
                x.t.total_cmp(&y.t)
                    .then(x.sender.cmp(&y.sender))
                    .then(x.receiver.cmp(&y.receiver))
            });
            stats.receptions += buf.len() as u64;
            for r in &buf {
                on_reception(r);
            }
            if stats.steps % 1024 == 0 {
                links.retain(|_, (_, seen)| t - *seen <= 900.0);
            }
            t += dt;
        }
        Ok(stats)
    }
}

/// How much the anchor `anchor_db` raises every calibrated RSSI over the
/// October 2020 table (whose anchor is
/// [`HardwareReference::STANDARD`]`.calibrated_at_1m_db`, −35 dB): the
/// apps' RX gains are lowered by this much. `anchor_db` is a validated
/// whole number in [−100, 0], so the result is exact.
pub fn anchor_shift_db(anchor_db: f64) -> i32 {
    // Whole and in range after validation; clamped anyway, so the cast is exact.
    (anchor_db - HardwareReference::STANDARD.calibrated_at_1m_db)
        .round()
        .clamp(-200.0, 200.0) as i32
}
