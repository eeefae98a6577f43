//! What a measurement campaign would record from the model: pairs of
//! people at a fixed distance, each with a phone from the built-in model
//! mix carried in a realistic way, and the **calibrated RSSI of the HELLOs
//! their apps actually received** (conditioned on reception, as every
//! published field series is; ble-measurements.md §6.4).
//!
//! A survey is an ordinary scenario run through the same code as the
//! simulator ([`Scenario::build`], [`World::run_radio`]): `pairs` instances
//! of a two-person office group, desks `distance_m` apart (±0.1 m jitter per
//! coordinate), random headings, placement drawn per person from the
//! survey's weights. Nothing here is tuned: the tests in `survey/tests.rs`
//! hold these statistics against published bands, and
//! `examples/radio_model_table.rs` prints the "model against published"
//! table of `docs/radio-model.md` from them.
//!
//! [`field_series_anchor`] answers the question of ble-measurements.md §6.3:
//! which anchor puts a mix like the French May 2020 field tests (static,
//! closer and farther than 1 m, phones in pockets or at the ear, 15 min) at
//! the median of robert-server's ROBERT-scale scoring vectors (−70 dB)?

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

use crate::channel::{Antenna, EnvironmentKind, FREE_SPACE_LOSS_1M_DB, LinkGeometry, Placement};
use crate::geometry::Vec2;
use crate::scenario::{
    DEFAULT_ANCHOR_DB, PlacementWeights, Scenario, ScenarioError, World, anchor_shift_db,
};

/// Median of the ROBERT-scale field series (robert-server scoring vectors
/// `C4_20_A*.csv` and `R1_AA*.csv`, 20 May 2020; ble-measurements.md §2.3).
pub const FIELD_SERIES_MEDIAN_DB: f64 = -70.0;
/// Interquartile range of the same series (dB).
pub const FIELD_SERIES_IQR_DB: (f64, f64) = (-74.0, -64.0);

/// One survey: `pairs` static pairs at `distance_m` for `minutes`.
#[derive(Clone, Debug, PartialEq)]
pub struct SurveySpec {
    /// Environment preset.
    pub environment: EnvironmentKind,
    /// Distance between the two people (m, plan distance of the desks).
    pub distance_m: f64,
    /// Number of independent pairs (own devices, placements, headings).
    pub pairs: u32,
    /// Duration of each pair's stay (minutes).
    pub minutes: f64,
    /// Placement weights, drawn per person.
    pub placement: PlacementWeights,
    /// `[radio] anchor_db`.
    pub anchor_db: f64,
    /// Scenario seed.
    pub seed: u64,
}

impl SurveySpec {
    /// A survey with [`realistic_carriage`], 10 minutes, 120 pairs, the
    /// default anchor.
    pub fn realistic(environment: EnvironmentKind, distance_m: f64, seed: u64) -> Self {
        Self {
            environment,
            distance_m,
            pairs: 120,
            minutes: 10.0,
            placement: realistic_carriage(),
            anchor_db: DEFAULT_ANCHOR_DB,
            seed,
        }
    }

    /// The scenario this survey runs.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let weights: Vec<String> = self
            .placement
            .iter()
            .map(|(p, w)| format!("{} = {w}", p.name()))
            .collect();
        let end_s = 10.0 * 3600.0 + (self.minutes * 60.0).round();
        if !(self.minutes > 0.0 && end_s < 86_400.0) {
            return Err(crate::scenario::invalid(
                "survey.minutes",
                "must be positive and end before midnight",
            ));
        }
        let end = end_s as u32;
        let text = format!(
            "name = \"survey\"\nseed = {seed}\n[radio]\nanchor_db = {anchor:?}\n\
             [[groups]]\nname = \"pairs\"\nkind = \"office\"\npeople = 2\ninstances = {pairs}\n\
             environment = \"{env}\"\nspacing_m = {d:?}\narrival_jitter_minutes = 0.0\n\
             start = \"10:00\"\nend = \"{h:02}:{m:02}:{s:02}\"\nplacement = {{ {w} }}\n",
            seed = self.seed,
            anchor = self.anchor_db,
            pairs = self.pairs,
            env = self.environment.name(),
            d = self.distance_m,
            h = end / 3600,
            m = end / 60 % 60,
            s = end % 60,
            w = weights.join(", "),
        );
        Scenario::from_toml_str(&text)
    }

    /// Builds and runs the survey (radio only, 2 s steps).
    pub fn run(&self) -> Result<Survey, ScenarioError> {
        let world = self.scenario()?.build()?;
        Survey::record(&world)
    }
}

/// One received HELLO of a survey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SurveySample {
    /// The unordered pair (lower person id first).
    pub pair: (u32, u32),
    /// Calibrated RSSI stored by the receiving app (dB).
    pub rssi: i32,
}

/// The received samples of a survey.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Survey {
    /// Every reception, in time order.
    pub samples: Vec<SurveySample>,
}

impl Survey {
    /// Runs the radio of `world` (2 s steps, RNG seeded from the world's
    /// seed) and records the calibrated RSSI of every reception.
    pub fn record(world: &World) -> Result<Self, ScenarioError> {
        let mut rng = ChaCha8Rng::seed_from_u64(world.seed);
        let mut samples = Vec::new();
        world
            .run_radio(2.0, &mut rng, |r| {
                if let Some(receiver) = world.population.person(r.receiver) {
                    samples.push(SurveySample {
                        pair: (r.sender.min(r.receiver), r.sender.max(r.receiver)),
                        rssi: r.calibrated_rssi(receiver.device.app_gains),
                    });
                }
            })
            .map_err(|source| ScenarioError::Mobility { person: 0, source })?;
        Ok(Self { samples })
    }

    /// The samples shifted by `shift_db` (what another anchor gives: see
    /// [`anchor_shift_db`]).
    pub fn shifted(&self, shift_db: i32) -> Self {
        Self {
            samples: self
                .samples
                .iter()
                .map(|s| SurveySample {
                    rssi: s.rssi + shift_db,
                    ..*s
                })
                .collect(),
        }
    }

    /// The samples of several surveys, pooled. Person ids of each part are
    /// moved past those of the previous parts, so pairs stay distinct.
    pub fn pooled<'a>(parts: impl IntoIterator<Item = &'a Self>) -> Self {
        let mut samples = Vec::new();
        let mut offset = 0u32;
        for part in parts {
            let mut next = offset;
            for s in &part.samples {
                let pair = (
                    s.pair.0.saturating_add(offset),
                    s.pair.1.saturating_add(offset),
                );
                next = next.max(pair.1.saturating_add(1));
                samples.push(SurveySample { pair, ..*s });
            }
            offset = next;
        }
        Self { samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Quantile `q` ∈ [0, 1] of the calibrated RSSI (NaN when empty).
    ///
    /// RSSI values are whole dB, so each value `v` stands for the bin
    /// `[v − ½, v + ½)` and the quantile is interpolated inside its bin
    /// (the usual median of grouped data): medians and separations are not
    /// rounded to whole dB.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v: Vec<i32> = self.samples.iter().map(|s| s.rssi).collect();
        v.sort_unstable();
        grouped_quantile_sorted(&v, q)
    }

    /// Median calibrated RSSI (dB).
    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    /// Lower and upper quartiles (dB).
    pub fn quartiles(&self) -> (f64, f64) {
        (self.quantile(0.25), self.quantile(0.75))
    }

    /// Interquartile range (dB).
    pub fn iqr(&self) -> f64 {
        let (lo, hi) = self.quartiles();
        hi - lo
    }

    /// Median of each pair with at least `min_samples` receptions (grouped,
    /// as [`Survey::quantile`]), sorted.
    pub fn pair_medians(&self, min_samples: usize) -> Vec<f64> {
        let mut by_pair: BTreeMap<(u32, u32), Vec<i32>> = BTreeMap::new();
        for s in &self.samples {
            by_pair.entry(s.pair).or_default().push(s.rssi);
        }
        let mut out: Vec<f64> = by_pair
            .into_values()
            .filter(|v| v.len() >= min_samples.max(1))
            .map(|mut v| {
                v.sort_unstable();
                grouped_quantile_sorted(&v, 0.5)
            })
            .collect();
        out.sort_by(f64::total_cmp);
        out
    }
}

/// Quantile of sorted values with linear interpolation (NaN when empty).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let x = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let i = (x.floor() as usize).min(n - 2);
            let f = x - i as f64;
            sorted[i] * (1.0 - f) + sorted[i + 1] * f
        }
    }
}

/// Quantile of sorted whole numbers, each standing for a 1-wide bin
/// centred on it, interpolated inside the bin (NaN when empty).
pub fn grouped_quantile_sorted(sorted: &[i32], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let target = q.clamp(0.0, 1.0) * n as f64;
    // Index of the bin holding the target rank.
    let k = ((target.floor() as usize).min(n - 1)).min(n - 1);
    let v = sorted[k];
    let below = sorted.partition_point(|x| *x < v);
    let upto = sorted.partition_point(|x| *x <= v);
    let inside = (upto - below) as f64;
    f64::from(v) - 0.5 + ((target - below as f64) / inside).clamp(0.0, 1.0)
}

/// "Realistic carriage": the mix of the EPFL/ETH everyday scenarios
/// (ble-measurements.md §2.1: lunch and bar with phones in pockets, train
/// and queue with phones in hand now and then, office with phones on desks,
/// gym). Our assumption of the shares: hand 0.25, front pocket 0.25, table
/// 0.15, bag 0.1, back pocket 0.05, chest pocket 0.05, backpack 0.05, ear
/// 0.1.
pub fn realistic_carriage() -> PlacementWeights {
    [
        (Placement::Hand, 0.25),
        (Placement::FrontPocket, 0.25),
        (Placement::Table, 0.15),
        (Placement::Bag, 0.1),
        (Placement::BackPocket, 0.05),
        (Placement::ChestPocket, 0.05),
        (Placement::Backpack, 0.05),
        (Placement::Ear, 0.1),
    ]
    .into_iter()
    .collect()
}

/// Both phones in hand (the anchor's carriage, with random headings).
pub fn in_hand() -> PlacementWeights {
    [(Placement::Hand, 1.0)].into_iter().collect()
}

/// MITRE's rotation procedure (ble-measurements.md §2.2) on the model: the
/// receiver holds its phone and faces the carrier `distance_m` away; the
/// carrier turns through eight headings 45° apart; the result is the
/// largest minus the smallest link loss (dB), i.e. what turning round costs
/// (no shadowing or fading: MITRE took the median of each 30 s take).
pub fn turned_loss_db(env: EnvironmentKind, placement: Placement, distance_m: f64) -> f64 {
    let e = env.preset();
    let rx = Antenna {
        position: Vec2::new(distance_m, 0.0),
        heading: std::f64::consts::PI,
        placement: Placement::Hand,
    };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for k in 0..8 {
        let tx = Antenna {
            position: Vec2::new(0.0, 0.0),
            heading: f64::from(k) * std::f64::consts::FRAC_PI_4,
            placement,
        };
        let loss = LinkGeometry::between(&e, &tx, &rx).loss_db;
        lo = lo.min(loss);
        hi = hi.max(loss);
    }
    hi - lo
}

/// Calibrated RSSI of a clear 1 m link (outdoor, facing, in hand, no
/// shadowing or fading) for the pairs of consecutive people (0–1, 2–3, …)
/// of `world`, first sending to second: the anchor plus both devices'
/// calibration residuals. Also returns whether each pair mixes iPhone and
/// Android.
pub fn clear_1m_pairs(world: &World) -> Vec<(f64, bool)> {
    world
        .population
        .people
        .chunks_exact(2)
        .map(|p| {
            let (s, r) = (&p[0].device, &p[1].device);
            let level = s.hardware.tx_power_dbm + r.hardware.rx_offset_db
                - FREE_SPACE_LOSS_1M_DB
                - f64::from(s.app_gains.tx)
                - f64::from(r.app_gains.rx);
            (level, s.platform.os() != r.platform.os())
        })
        .collect()
}

/// A mix of static surveys standing for a field campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldMix {
    /// Sites (equal weight).
    pub environments: Vec<EnvironmentKind>,
    /// Distances (equal weight; m).
    pub distances_m: Vec<f64>,
    /// Placement weights.
    pub placement: PlacementWeights,
    /// Stay of each pair (minutes).
    pub minutes: f64,
    /// Pairs per (site, distance) cell.
    pub pairs_per_cell: u32,
    /// Seed of the first cell (the next cells use the following seeds).
    pub seed: u64,
}

impl FieldMix {
    /// Like the StopCovid field tests of May 2020 as far as they are known
    /// (technical FAQ "Tests phase", client-ble.md §2.4): the five sites of
    /// the FAQ matrix, static people closer and farther than 1 m (0.5, 0.8,
    /// 1.5 and 2.5 m), phones in a front pocket (0.5), a back pocket (0.25)
    /// or at the ear (0.25), 15-minute stays.
    pub fn faq_like() -> Self {
        Self {
            environments: EnvironmentKind::ALL.to_vec(),
            distances_m: vec![0.5, 0.8, 1.5, 2.5],
            placement: [
                (Placement::FrontPocket, 0.5),
                (Placement::BackPocket, 0.25),
                (Placement::Ear, 0.25),
            ]
            .into_iter()
            .collect(),
            minutes: 15.0,
            pairs_per_cell: 40,
            seed: 7000,
        }
    }

    /// Runs every cell at the default anchor and pools the samples.
    pub fn run(&self) -> Result<Survey, ScenarioError> {
        let mut parts = Vec::new();
        let mut seed = self.seed;
        for &environment in &self.environments {
            for &distance_m in &self.distances_m {
                let spec = SurveySpec {
                    environment,
                    distance_m,
                    pairs: self.pairs_per_cell,
                    minutes: self.minutes,
                    placement: self.placement.clone(),
                    anchor_db: DEFAULT_ANCHOR_DB,
                    seed,
                };
                seed = seed.wrapping_add(1);
                parts.push(spec.run()?);
            }
        }
        Ok(Survey::pooled(&parts))
    }
}

/// The anchor that puts a field mix at a target median, and the quartiles
/// it then gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnchorFit {
    /// The fitted `[radio] anchor_db` (whole dB).
    pub anchor_db: f64,
    /// Median of the mix at that anchor (dB).
    pub median_db: f64,
    /// Quartiles of the mix at that anchor (dB).
    pub quartiles_db: (f64, f64),
    /// Median of the mix at the default anchor (dB).
    pub median_at_default_db: f64,
    /// Number of received samples.
    pub samples: usize,
}

/// The anchor at which `mix` has a median of `target_median_db` (use
/// [`FIELD_SERIES_MEDIAN_DB`]): the mix is run once at the default anchor
/// and shifted, since an anchor changes calibrated RSSI by exactly
/// [`anchor_shift_db`] and nothing else (tested in `scenario/tests.rs`).
pub fn field_series_anchor(
    mix: &FieldMix,
    target_median_db: f64,
) -> Result<AnchorFit, ScenarioError> {
    let survey = mix.run()?;
    let m0 = survey.median();
    if !m0.is_finite() {
        return Err(crate::scenario::invalid("survey", "nothing was received"));
    }
    let (lo, hi) = crate::scenario::ANCHOR_RANGE_DB;
    let anchor = (DEFAULT_ANCHOR_DB + (target_median_db - m0))
        .round()
        .clamp(lo, hi);
    let shifted = survey.shifted(anchor_shift_db(anchor));
    Ok(AnchorFit {
        anchor_db: anchor,
        median_db: shifted.median(),
        quartiles_db: shifted.quartiles(),
        median_at_default_db: m0,
        samples: survey.len(),
    })
}

#[cfg(test)]
mod tests;
