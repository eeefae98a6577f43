//! The simulated radio channel between two phones: received power from
//! positions, placements and the environment.
//!
//! ```text
//! level(S→R) = P_tx(S) + G_rx(R)                      device hardware (from calibration)
//!            − PL(d)                                   log-distance path loss, dual slope
//!            − L_place(S) − L_place(R)                 phone in hand / at the ear / pocket / bag
//!            − L_obs(B_S + B_R + C)                    bodies and crowd on the direct path, filled in by multipath
//!            + X_shadow(t) + Y_pair                    log-normal shadowing, AR(1) in time and distance; static per-pair offset
//! raw RSSI  = round(level + F)                         F: per-packet Rician / Rayleigh fading (dB)
//!             received only if raw ≥ sensitivity floor
//!
//! PL(d)  = PL₀ + 10·n·log10(d / 1 m)                   d ≤ d_b
//!        = PL₀ + 10·n·log10(d_b) + 10·n_far·log10(d / d_b)   d > d_b
//! B_end  = L_torso · block(placement) · (1 − cos θ_end) / 2    θ: angle between where the phone faces and the peer
//! C      = c_crowd · max(0, d − 1 m)                   bystanders' bodies (dense crowds)
//! L_obs(x) = −10·log10( (1 − δ)·10^(−x/10) + δ ),  δ = 10^(−D/10)     (obstruction_loss_db)
//! ```
//!
//! `d` is the 3-D distance between the two phones (plan distance plus the
//! height difference of the placements), floored at 0.1 m.
//!
//! # Bodies: a shadowed direct path plus a diffuse floor
//!
//! A torso costs the *direct* path 20–30 dB at 2.4 GHz; what a receiver
//! loses is much less where walls, furniture and other people scatter
//! power around the body. MITRE's rotation measurements (ble-measurements.md
//! §2.2) show exactly that: turning the carrier costs 15–26 dB in an
//! anechoic chamber or a courtyard, 6–14 dB in a conference room, 7–11 dB in
//! a screen room. We model it with one torso loss for every environment
//! (26 dB, the top of MITRE's outdoor spread) and a per-environment
//! **diffuse floor** `D`: the share of the unobstructed power that arrives
//! around the obstruction and is not attenuated. The two are power-summed
//! ([`obstruction_loss_db`]), so a body costs about `min(B, D)`, two bodies
//! no more than `D`, and multipath fills the shadow by itself instead of a
//! per-environment body loss. With `L_torso` = 26 dB, one carrier turned
//! away costs 19.0 dB outdoors (D = 20), 9.9 dB in a hall (10), 8.9 dB in a
//! furnished room (9), 7.9 dB under a low ceiling (8) and 6.0 dB in a metal
//! vehicle (6). The crowd's bodies join the same sum. Simplification: `D`
//! is relative to the direct path at the same distance (the distance law
//! is unchanged), whereas a room's diffuse field is roughly
//! distance-independent.
//!
//! The Rician K-factor is a different quantity: it sets the packet-to-packet
//! fluctuation around the mean and includes the ground and wall reflections
//! that arrive from about the peer's direction (and are shadowed with the
//! direct ray); `D` is what arrives from around the body.
//!
//! # Sources and assumptions
//!
//! Values are generally known literature figures for 2.4 GHz, rounded; where
//! no single figure exists the value is **our assumption**, chosen inside the
//! published range, and says so. Everything is a plain field, so a scenario
//! can override any of it. The tests of [`crate::survey`] hold the result
//! against published phone-to-phone data; `docs/radio-model.md` has the
//! comparison table.
//!
//! | parameter | value(s) | source |
//! |---|---|---|
//! | `PL₀` (1 m) | 40.2 dB | free-space loss 20·log10(4π·1 m/λ), λ = c / 2.44 GHz = 0.123 m (Friis) |
//! | `PL₀` metal vehicle | 37 dB | assumption: enclosed metal body adds reflected power; Leith & Farrell (2020) measured stronger-than-free-space signals in a light-rail tram |
//! | `n` outdoor | 2.0 | free space (Rappaport, *Wireless Communications*, Table 4.2: free space 2); TU Berlin park 1 → 2 / 3 / 5 m: −7.5 / −8 / −14 dB |
//! | `d_b`, `n_far` outdoor | 30 m, 4.0 | two-ray ground reflection breakpoint 4·h_t·h_r/λ ≈ 4·1.1·1.1/0.123 ≈ 39 m, slope 4 beyond (Rappaport §4.6); rounded down for bodies |
//! | `n` indoor | 2.0 / 2.2 / 1.8 (high / medium / low ceiling) | Rappaport Table 4.2: in-building line of sight 1.6–1.8; ITU-R P.1238 ≈ 2.2–3.0 at 2.4 GHz (commercial / office); the realistic separations (1 → 2 m ≈ −5, 1 → 3 m ≈ −8 dB) sit inside EPFL/ETH's and TU Berlin's ranges, so the optional n ≈ 1.8–2.0 beyond 2 m of ble-measurements.md §6.1 is not needed |
//! | `n` low ceiling | 1.8 | waveguide effect of corridors / low ceilings (in-building LOS 1.6–1.8, Rappaport) |
//! | `n_far` indoor | 3.0–3.5 | obstructed in building 4–6 (Rappaport) and ITU-R P.1238 office 3.0; partitions beyond the room |
//! | `n` metal vehicle | 0.5 | Leith & Farrell, bus (per-pair median against log d: r = 0.06) and tram (r = 0.15): no distance trend; ble-measurements.md §6.1: n ≈ 0.5–1.0 |
//! | `σ` shadowing | 4 (outdoor), 5 / 6 / 7 (indoor high / medium / low), 6 dB (metal) | log-normal shadowing 3–12 dB indoors (Rappaport §4.9) |
//! | `σ_pair` per-pair offset | 0; 6 dB in metal vehicles | Leith & Farrell, bus: changing the people in a pair of seats moves attenuation by ±10 dB; with `σ` 6 dB the slow variation totals √(6² + 6²) ≈ 8.5 dB (ble-measurements.md §6.1: σ 8–10 dB) |
//! | shadow decorrelation | 1–5 m, 5–30 s | Gudmundson (1991) exponential autocorrelation model; distances scaled down to body-scale geometry, times for people shifting posture (assumption) |
//! | fading | Rician K 6 dB outdoor, 3 / 1 / 0 dB indoor high / medium / low ceiling, Rayleigh in metal | Rician for line of sight plus ground / wall reflections, Rayleigh for rich multipath without dominant path (Goldsmith, *Wireless Communications*, §3.2); K values assumptions within the usual 0–10 dB indoor range |
//! | `L_torso` direct path through a torso | 26 dB | on-body measurements at 2.4 GHz give 20–30 dB behind a torso; MITRE's largest rotation spread in the open 26 dB |
//! | diffuse floor `D` | 20 outdoor, 10 hall, 9 furnished room, 8 low ceiling, 6 dB metal | MITRE rotation spreads (see above); ble-measurements.md §6.2: ≈ 18–20 dB outdoors (max 26), 8–10 dB in furnished rooms, ≈ 6 dB in metal vehicles and screen-room multipath; the hall is our interpolation |
//! | body block factor | 1; bag 0.7, ear 0.8, table 0.2 | MITRE: the purse (15–16 dB) and the ear (22–24 dB) are shadowed almost like pockets in the open; a phone on a table sees over it (assumption) |
//! | placement losses | hand 0, table 0, chest pocket 2, ear 3, trouser pockets 3, bag / backpack 4 dB | MITRE: placements differ by only a few dB at their best angle; EPFL/ETH: pocket scenarios (bar 57, gym 55 dB) within 1–3 dB of hand-held ones (train, queue 54 dB) at 1 m |
//! | crowd loss | 0 (low density) to 1.5 dB/m (high density) | assumption: a dense crowd places a body every ~10 m of line of sight between phones held at chest height; filled in by `D` like the carriers' bodies |
//! | sensitivity floor | −100 dBm raw | EPFL/ETH raw floor −100 to −104 dBm; the Core Specification requires only −70 dBm |
//! | TX power of a DEFAULT Android | −7 dBm | Android `ADVERTISE_TX_POWER_MEDIUM` nominal value (client-ble.md §1.3) |
//! | raw RSSI at 1 m, DEFAULT ↔ DEFAULT | −70 dBm | client-ble.md §2.2 (calibrated −35 with the October 2020 table: [`HardwareReference::STANDARD`]); the scenario's `anchor_db` moves the calibrated scale, not this |
//! | per-device calibration residual | σ 3.5 dB per gain (`population.device_offset_sigma_db`) | EPFL/ETH anechoic pairs after Google's per-model calibration spread over 42–58 dB (σ ≈ 5–6 dB per pair, ≈ 3.5–4 per gain); applies to every pair, iPhone ↔ Android included |
//!
//! # Device hardware from the calibration table
//!
//! The table's gains say how a model's signal and reported RSSI deviate from
//! a reference; we take them as the truth about the hardware (plus a random
//! per-device residual chosen by the scenario), so that a correctly
//! calibrated pair reports the same calibrated RSSI whatever the models:
//!
//! ```text
//! P_tx(model) = P_tx,DEFAULT + (txGain(model) − txGain(DEFAULT))     P_tx,DEFAULT = −7 dBm
//! G_rx(model) = G_rx,DEFAULT + (rxGain(model) − rxGain(DEFAULT))
//! G_rx,DEFAULT chosen so that DEFAULT↔DEFAULT, outdoor, in hand, facing, at 1 m:
//!     raw = −7 + G_rx,DEFAULT − 40.2 = −70  ⇒  G_rx,DEFAULT = −22.8 dB, calibrated = −35
//! ```
//!
//! Hence `calibrated = raw − txGain − rxGain = −35 − (PL(d) − PL₀) − losses`
//! for any pair whose table entries are exact. Assumption: the receiver's RX
//! gain also shifts its sensitivity (a "deaf" model reports lower RSSI *and*
//! hears less), because the floor applies to the reported raw RSSI. A
//! scenario's anchor (`[radio] anchor_db`) then lowers every *app's* RX gain
//! by `anchor_db + 35`, which moves calibrated values and nothing else
//! ([`crate::scenario`], "The anchor").

use rand::Rng;
use serde::Deserialize;

use crate::calibration::Gains;
use crate::math::standard_normal;
pub use crate::math::{Fading, FadingTable};

mod ablation;
pub use ablation::{Ablation, NoiseTerm};

/// Free-space path loss at 1 m and 2.44 GHz (dB).
pub const FREE_SPACE_LOSS_1M_DB: f64 = 40.2;
/// Default receiver sensitivity floor on the reported raw RSSI (dBm).
pub const DEFAULT_SENSITIVITY_DBM: f64 = -100.0;
/// Loss of the direct path through the phone owner's torso (dB), before
/// the diffuse floor fills it in ([`obstruction_loss_db`]).
pub const DEFAULT_BODY_LOSS_DB: f64 = 26.0;
/// Smallest distance used in path loss (m): phones touching are not closer than this.
pub const MIN_DISTANCE_M: f64 = 0.1;
/// Raw RSSI range reported (dBm).
pub const RSSI_RANGE: (i32, i32) = (-127, 20);

/// The anchor that turns calibration-table gains into hardware figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HardwareReference {
    /// Gains of the `DEFAULT` entry (−30 / −5).
    pub default_gains: Gains,
    /// Radiated power of a DEFAULT Android (dBm).
    pub default_tx_dbm: f64,
    /// Calibrated RSSI expected at 1 m, outdoor, in hand, facing, with the
    /// unshifted October 2020 table (dB): fixes the raw levels. The
    /// scenario's `anchor_db` shifts the apps' gains instead.
    pub calibrated_at_1m_db: f64,
    /// Path loss at 1 m used for the anchor (dB).
    pub reference_loss_db: f64,
}

impl HardwareReference {
    /// The values of the module documentation.
    pub const STANDARD: Self = Self {
        default_gains: Gains::new(-30, -5),
        default_tx_dbm: -7.0,
        calibrated_at_1m_db: -35.0,
        reference_loss_db: FREE_SPACE_LOSS_1M_DB,
    };

    /// RX offset of a DEFAULT device (dB).
    pub fn default_rx_offset_db(&self) -> f64 {
        self.calibrated_at_1m_db
            + f64::from(self.default_gains.tx)
            + f64::from(self.default_gains.rx)
            + self.reference_loss_db
            - self.default_tx_dbm
    }
}

impl Default for HardwareReference {
    fn default() -> Self {
        Self::STANDARD
    }
}

/// The true radio figures of one phone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RadioHardware {
    /// Radiated power including antenna (dBm).
    pub tx_power_dbm: f64,
    /// Offset between incident power and reported RSSI (dB).
    pub rx_offset_db: f64,
}

impl RadioHardware {
    /// Hardware whose behaviour the gains `truth` describe exactly.
    pub fn from_true_gains(truth: Gains, reference: &HardwareReference) -> Self {
        Self::from_true_gains_f64(f64::from(truth.tx), f64::from(truth.rx), reference)
    }

    /// Same with fractional gains (the table's 5-dB steps plus a residual).
    pub fn from_true_gains_f64(tx_gain: f64, rx_gain: f64, reference: &HardwareReference) -> Self {
        Self {
            tx_power_dbm: reference.default_tx_dbm + tx_gain
                - f64::from(reference.default_gains.tx),
            rx_offset_db: reference.default_rx_offset_db() + rx_gain
                - f64::from(reference.default_gains.rx),
        }
    }
}

/// Where the phone is carried. Losses and heights: see the module table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Held in hand in front of the chest (reference: 0 dB).
    Hand,
    /// At the ear (phone call).
    Ear,
    /// Lying on a table or desk.
    Table,
    /// Shirt or jacket chest pocket.
    ChestPocket,
    /// Front trouser pocket.
    FrontPocket,
    /// Back trouser pocket (faces backwards).
    BackPocket,
    /// Handbag or shoulder bag at the side.
    Bag,
    /// Backpack (faces backwards).
    Backpack,
}

impl Placement {
    /// All placements, in declaration order.
    pub const ALL: [Self; 8] = [
        Self::Hand,
        Self::Ear,
        Self::Table,
        Self::ChestPocket,
        Self::FrontPocket,
        Self::BackPocket,
        Self::Bag,
        Self::Backpack,
    ];

    /// The kebab-case name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Hand => "hand",
            Self::Ear => "ear",
            Self::Table => "table",
            Self::ChestPocket => "chest-pocket",
            Self::FrontPocket => "front-pocket",
            Self::BackPocket => "back-pocket",
            Self::Bag => "bag",
            Self::Backpack => "backpack",
        }
    }

    /// Extra loss of this placement (dB), on transmit and on receive.
    pub fn loss_db(self) -> f64 {
        match self {
            Self::Hand | Self::Table => 0.0,
            Self::Ear => 3.0,
            Self::ChestPocket => 2.0,
            Self::FrontPocket | Self::BackPocket => 3.0,
            Self::Bag | Self::Backpack => 4.0,
        }
    }

    /// Height of the phone above the floor (m), for the 3-D distance.
    pub fn height_m(self) -> f64 {
        match self {
            Self::Hand => 1.1,
            Self::Ear => 1.6,
            Self::Table => 0.75,
            Self::ChestPocket | Self::Backpack => 1.3,
            Self::FrontPocket | Self::BackPocket => 0.85,
            Self::Bag => 0.9,
        }
    }

    /// Whether the phone sits behind its owner (body between it and what
    /// the owner faces).
    pub fn faces_backward(self) -> bool {
        matches!(self, Self::BackPocket | Self::Backpack)
    }

    /// Share of the full body loss applied when the peer is straight behind
    /// the phone's side of the body (1 = torso fully in the way; a phone on a
    /// table, in a side bag or at the ear is partly shadowed).
    pub fn body_block_factor(self) -> f64 {
        match self {
            Self::Table => 0.2,
            Self::Bag => 0.7,
            Self::Ear => 0.8,
            _ => 1.0,
        }
    }
}

/// Environment presets (the FAQ's test conditions: outdoor, ceilings high /
/// medium / low, metal structures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvironmentKind {
    /// Street, park, platform in the open.
    Outdoor,
    /// Hall, supermarket, station concourse.
    IndoorHighCeiling,
    /// Office, classroom, restaurant.
    IndoorMediumCeiling,
    /// Low-ceilinged room, corridor, basement.
    IndoorLowCeiling,
    /// Metro car, bus, tram: metal body, dense multipath.
    MetalVehicle,
}

impl EnvironmentKind {
    /// All presets.
    pub const ALL: [Self; 5] = [
        Self::Outdoor,
        Self::IndoorHighCeiling,
        Self::IndoorMediumCeiling,
        Self::IndoorLowCeiling,
        Self::MetalVehicle,
    ];

    /// The preset's parameters (module table).
    pub fn preset(self) -> Environment {
        let base = Environment {
            kind: self,
            reference_loss_db: FREE_SPACE_LOSS_1M_DB,
            path_loss_exponent: 2.0,
            breakpoint_m: 30.0,
            far_exponent: 4.0,
            shadowing_sigma_db: 4.0,
            shadowing_time_constant_s: 30.0,
            shadowing_distance_m: 5.0,
            fading: Fading::Rician { k_factor_db: 6.0 },
            crowd_loss_db_per_m: 0.0,
            body_loss_db: DEFAULT_BODY_LOSS_DB,
            diffuse_floor_db: 20.0,
            pair_offset_sigma_db: 0.0,
            ablate: Ablation::NONE,
        };
        match self {
            Self::Outdoor => base,
            Self::IndoorHighCeiling => Environment {
                breakpoint_m: 15.0,
                far_exponent: 3.0,
                shadowing_sigma_db: 5.0,
                shadowing_time_constant_s: 20.0,
                shadowing_distance_m: 3.0,
                fading: Fading::Rician { k_factor_db: 3.0 },
                diffuse_floor_db: 10.0,
                ..base
            },
            Self::IndoorMediumCeiling => Environment {
                path_loss_exponent: 2.2,
                breakpoint_m: 10.0,
                far_exponent: 3.5,
                shadowing_sigma_db: 6.0,
                shadowing_time_constant_s: 15.0,
                shadowing_distance_m: 2.0,
                fading: Fading::Rician { k_factor_db: 1.0 },
                diffuse_floor_db: 9.0,
                ..base
            },
            Self::IndoorLowCeiling => Environment {
                path_loss_exponent: 1.8,
                breakpoint_m: 8.0,
                far_exponent: 3.5,
                shadowing_sigma_db: 7.0,
                shadowing_time_constant_s: 10.0,
                shadowing_distance_m: 1.5,
                fading: Fading::Rician { k_factor_db: 0.0 },
                diffuse_floor_db: 8.0,
                ..base
            },
            Self::MetalVehicle => Environment {
                reference_loss_db: 37.0,
                path_loss_exponent: 0.5,
                breakpoint_m: 20.0,
                far_exponent: 2.5,
                shadowing_sigma_db: 6.0,
                shadowing_time_constant_s: 5.0,
                shadowing_distance_m: 1.0,
                fading: Fading::Rayleigh,
                diffuse_floor_db: 6.0,
                pair_offset_sigma_db: 6.0,
                ..base
            },
        }
    }

    /// The kebab-case name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Outdoor => "outdoor",
            Self::IndoorHighCeiling => "indoor-high-ceiling",
            Self::IndoorMediumCeiling => "indoor-medium-ceiling",
            Self::IndoorLowCeiling => "indoor-low-ceiling",
            Self::MetalVehicle => "metal-vehicle",
        }
    }
}

/// Propagation parameters of one environment. See the module table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Environment {
    /// Preset this was derived from.
    pub kind: EnvironmentKind,
    /// Path loss at 1 m, `PL₀` (dB).
    pub reference_loss_db: f64,
    /// Path-loss exponent up to the breakpoint, `n`.
    pub path_loss_exponent: f64,
    /// Breakpoint distance `d_b` (m).
    pub breakpoint_m: f64,
    /// Path-loss exponent beyond the breakpoint, `n_far`.
    pub far_exponent: f64,
    /// Standard deviation of log-normal shadowing, `σ` (dB).
    pub shadowing_sigma_db: f64,
    /// Time over which shadowing decorrelates for a static pair (s, e-folding).
    pub shadowing_time_constant_s: f64,
    /// Relative displacement over which shadowing decorrelates (m, e-folding).
    pub shadowing_distance_m: f64,
    /// Per-packet fading model.
    pub fading: Fading,
    /// Extra loss per metre beyond 1 m from bystanders' bodies (dB/m).
    pub crowd_loss_db_per_m: f64,
    /// Loss of the *direct path* when the owner's torso is fully between
    /// phone and peer (dB); what is actually lost is less, see
    /// [`Environment::diffuse_floor_db`].
    pub body_loss_db: f64,
    /// Share of the unobstructed received power that arrives around an
    /// obstruction (bodies, bystanders), in dB below that power: the
    /// obstruction loss never exceeds this value ([`obstruction_loss_db`]).
    pub diffuse_floor_db: f64,
    /// Standard deviation of a static offset drawn once per pair (dB): who
    /// sits around the pair, seat positions (metal vehicles).
    pub pair_offset_sigma_db: f64,
    /// Noise terms switched off (none in the presets; `[radio] ablate` sets
    /// them on every place of a scenario).
    pub ablate: Ablation,
}

impl Environment {
    /// Mean path loss at `distance_m` (no shadowing, no fading).
    pub fn path_loss_db(&self, distance_m: f64) -> f64 {
        let d = distance_m.max(MIN_DISTANCE_M);
        if d <= self.breakpoint_m {
            self.reference_loss_db + 10.0 * self.path_loss_exponent * d.log10()
        } else {
            self.reference_loss_db
                + 10.0 * self.path_loss_exponent * self.breakpoint_m.log10()
                + 10.0 * self.far_exponent * (d / self.breakpoint_m).log10()
        }
    }

    /// Loss from bystanders on the direct path at `distance_m`.
    pub fn crowd_loss_db(&self, distance_m: f64) -> f64 {
        self.crowd_loss_db_per_m * (distance_m - 1.0).max(0.0)
    }

    /// Total standard deviation of the slow variations: time-varying
    /// shadowing and per-pair offset, `√(σ² + σ_pair²)` (dB).
    pub fn slow_sigma_db(&self) -> f64 {
        self.shadowing_sigma_db.hypot(self.pair_offset_sigma_db)
    }

    /// What the received power loses when the direct path is attenuated by
    /// `direct_db` (bodies, bystanders), with this environment's diffuse
    /// floor ([`obstruction_loss_db`]).
    pub fn obstruction_loss_db(&self, direct_db: f64) -> f64 {
        obstruction_loss_db(direct_db, self.diffuse_floor_db)
    }

    /// Checks that every field is finite and in a sensible range.
    pub fn validate(&self) -> Result<(), &'static str> {
        let finite = [
            self.reference_loss_db,
            self.path_loss_exponent,
            self.breakpoint_m,
            self.far_exponent,
            self.shadowing_sigma_db,
            self.shadowing_time_constant_s,
            self.shadowing_distance_m,
            self.crowd_loss_db_per_m,
            self.body_loss_db,
            self.diffuse_floor_db,
            self.pair_offset_sigma_db,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return Err("environment parameters must be finite");
        }
        if self.path_loss_exponent < 0.0 || self.far_exponent < 0.0 {
            return Err("path-loss exponents must be non-negative");
        }
        if self.breakpoint_m < 1.0 {
            return Err("breakpoint must be at least 1 m");
        }
        if self.shadowing_sigma_db < 0.0
            || self.pair_offset_sigma_db < 0.0
            || self.crowd_loss_db_per_m < 0.0
            || self.body_loss_db < 0.0
            || self.diffuse_floor_db < 0.0
        {
            return Err("sigma and losses must be non-negative");
        }
        if self.shadowing_time_constant_s <= 0.0 || self.shadowing_distance_m <= 0.0 {
            return Err("decorrelation time and distance must be positive");
        }
        if let Fading::Rician { k_factor_db } = self.fading
            && !k_factor_db.is_finite()
        {
            return Err("Rician K-factor must be finite");
        }
        Ok(())
    }
}

/// One end of a link at an instant: where the phone is and how it is carried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Antenna {
    /// Position of the owner in the place (m).
    pub position: crate::geometry::Vec2,
    /// Direction the owner faces (radians).
    pub heading: f64,
    /// Where the phone is.
    pub placement: Placement,
}

impl Antenna {
    /// Direct-path loss through this end's owner towards a peer at `toward`
    /// (dB): `full · block(placement) · (1 − cos θ) / 2`, θ the angle between
    /// where the phone faces and the peer.
    pub fn body_loss_db(&self, toward: crate::geometry::Vec2, full_loss_db: f64) -> f64 {
        let facing = if self.placement.faces_backward() {
            self.heading + std::f64::consts::PI
        } else {
            self.heading
        };
        let c = crate::geometry::cos_angle_to(facing, toward - self.position);
        full_loss_db * self.placement.body_block_factor() * (1.0 - c) / 2.0
    }
}

/// The geometric, slowly varying part of a link (symmetric in both directions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkGeometry {
    /// 3-D distance between the phones (m).
    pub distance_m: f64,
    /// Plan distance between the owners (m).
    pub plan_distance_m: f64,
    /// All losses except hardware and shadowing: path loss, placements,
    /// and the obstruction loss of bodies and crowd (dB).
    pub loss_db: f64,
}

impl LinkGeometry {
    /// Computes the geometry between two ends in `env`.
    pub fn between(env: &Environment, a: &Antenna, b: &Antenna) -> Self {
        let plan = a.position.distance(b.position);
        let dh = a.placement.height_m() - b.placement.height_m();
        let d = (plan * plan + dh * dh).sqrt();
        let direct = a.body_loss_db(b.position, env.body_loss_db)
            + b.body_loss_db(a.position, env.body_loss_db)
            + env.crowd_loss_db(d);
        let placement = if env.ablate.contains(NoiseTerm::Placement) {
            0.0
        } else {
            a.placement.loss_db() + b.placement.loss_db()
        };
        let obstruction = if env.ablate.contains(NoiseTerm::Body) {
            0.0
        } else {
            env.obstruction_loss_db(direct)
        };
        let loss = env.path_loss_db(d) + placement + obstruction;
        Self {
            distance_m: d,
            plan_distance_m: plan,
            loss_db: loss,
        }
    }
}

/// Shadowing state of one (unordered) pair: reciprocal, so both directions share it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shadowing {
    value_db: f64,
    pair_offset_db: f64,
    last_t: f64,
    last_distance_m: f64,
    initialised: bool,
    ablate: Ablation,
}

impl Shadowing {
    /// Current slow variation: shadowing plus the pair's offset (dB; 0
    /// before the first update), without the terms the environment
    /// switches off.
    pub fn value_db(&self) -> f64 {
        let x = if self.ablate.contains(NoiseTerm::Shadowing) {
            0.0
        } else {
            self.value_db
        };
        x + self.pair_offset_db()
    }

    /// The pair's static offset `Y` (dB; 0 before the first update, in
    /// environments without one and when switched off).
    pub fn pair_offset_db(&self) -> f64 {
        if self.ablate.contains(NoiseTerm::Pair) {
            0.0
        } else {
            self.pair_offset_db
        }
    }

    /// Advances the AR(1) process to time `t` and distance `distance_m` and
    /// returns `X + Y`:
    ///
    /// ```text
    /// ρ = exp(−|Δt| / τ − |Δd| / d_c)
    /// X ← ρ·X + √(1 − ρ²)·σ·N(0, 1)          (stationary: X ~ N(0, σ²) at all times)
    /// Y ~ N(0, σ_pair²)                      drawn once, at the first update (only if σ_pair > 0)
    /// ```
    ///
    /// Terms the environment switches off ([`Ablation`]) are still drawn
    /// (same random stream) but count 0.
    pub fn advance<R: Rng + ?Sized>(
        &mut self,
        env: &Environment,
        t: f64,
        distance_m: f64,
        rng: &mut R,
    ) -> f64 {
        let z = standard_normal(rng);
        if !self.initialised {
            self.value_db = env.shadowing_sigma_db * z;
            if env.pair_offset_sigma_db > 0.0 {
                self.pair_offset_db = env.pair_offset_sigma_db * standard_normal(rng);
            }
            self.initialised = true;
        } else {
            let rho = (-(t - self.last_t).abs() / env.shadowing_time_constant_s
                - (distance_m - self.last_distance_m).abs() / env.shadowing_distance_m)
                .exp();
            self.value_db = rho * self.value_db
                + (1.0 - rho * rho).max(0.0).sqrt() * env.shadowing_sigma_db * z;
        }
        self.last_t = t;
        self.last_distance_m = distance_m;
        self.ablate = env.ablate;
        self.value_db()
    }
}

/// An environment ready for sampling: parameters, fading table, sensitivity.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Propagation parameters.
    pub env: Environment,
    /// Reported raw RSSI below this is not received (dBm).
    pub sensitivity_dbm: f64,
    fading: FadingTable,
}

impl Channel {
    /// Builds the channel (tabulates the fading CDF: a few milliseconds).
    pub fn new(env: Environment, sensitivity_dbm: f64) -> Self {
        Self {
            fading: FadingTable::new(env.fading),
            env,
            sensitivity_dbm,
        }
    }

    /// The fading table.
    pub fn fading(&self) -> &FadingTable {
        &self.fading
    }

    /// Mean received level (dBm) of `tx` at `rx`, given the geometry and the
    /// current shadowing (before per-packet fading).
    pub fn level_dbm(
        &self,
        tx: &RadioHardware,
        rx: &RadioHardware,
        geometry: &LinkGeometry,
        shadowing_db: f64,
    ) -> f64 {
        tx.tx_power_dbm + rx.rx_offset_db - geometry.loss_db + shadowing_db
    }

    /// Probability that one packet at mean level `level_dbm` is received
    /// with a reported RSSI ≥ `sensitivity + margin_db`.
    pub fn packet_probability(&self, level_dbm: f64, margin_db: f64) -> f64 {
        // The reported value is rounded: it reaches the floor from 0.5 dB below.
        let need = self.sensitivity_dbm + margin_db - 0.5 - level_dbm;
        if self.fading_off() {
            return if need <= 0.0 { 1.0 } else { 0.0 };
        }
        self.fading.exceed(need)
    }

    /// A reported raw RSSI for a packet known to have been received.
    pub fn sample_received_rssi<R: Rng + ?Sized>(&self, level_dbm: f64, rng: &mut R) -> i8 {
        let floor = self.sensitivity_dbm - 0.5 - level_dbm;
        let mut fade = self.fading.sample_above(floor, rng);
        if self.fading_off() {
            fade = 0.0;
        }
        let min = (self.sensitivity_dbm.ceil() as i32).max(RSSI_RANGE.0);
        quantise(level_dbm + fade, min)
    }

    /// A packet: `Some(raw RSSI)` if received, `None` if below the floor.
    pub fn sample_packet<R: Rng + ?Sized>(&self, level_dbm: f64, rng: &mut R) -> Option<i8> {
        let mut fade = self.fading.sample(rng);
        if self.fading_off() {
            fade = 0.0;
        }
        let v = level_dbm + fade;
        let r = v.round();
        (r >= self.sensitivity_dbm.ceil()).then(|| quantise(v, RSSI_RANGE.0))
    }

    fn fading_off(&self) -> bool {
        self.env.ablate.contains(NoiseTerm::Fading)
    }

    /// The distance beyond which a link of `best_level_at_1m_dbm` (level at
    /// 1 m with no placement or body loss) has practically no chance of a
    /// reception: mean level + 4σ shadowing + the fading's 1e-6 upper
    /// quantile is below the floor (σ: shadowing and pair offset
    /// combined). Used to prune pairs.
    pub fn max_range_m(&self, best_level_at_1m_dbm: f64) -> f64 {
        let mut up = 0.0;
        while self.fading.exceed(up) > 1e-6 && up < 20.0 {
            up += 0.25;
        }
        let headroom =
            best_level_at_1m_dbm + 4.0 * self.env.slow_sigma_db() + up - self.sensitivity_dbm;
        let reaches =
            |d: f64| headroom - (self.env.path_loss_db(d) - self.env.reference_loss_db) > 0.0;
        if !reaches(MIN_DISTANCE_M) {
            return MIN_DISTANCE_M;
        }
        let (mut lo, mut hi) = (MIN_DISTANCE_M, 10_000.0);
        if reaches(hi) {
            return hi;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if reaches(mid) { lo = mid } else { hi = mid }
        }
        hi
    }
}

/// Loss of received power when the direct path is attenuated by
/// `direct_db`, if a share `10^(−floor/10)` of the unobstructed power
/// arrives around the obstruction (scattered by walls, furniture, other
/// people) and is not attenuated (power sum):
///
/// ```text
/// δ = 10^(−floor/10)
/// L = −10·log10( (1 − δ)·10^(−direct/10) + δ )
/// ```
///
/// 0 when nothing is in the way, close to `direct` when it is small, never
/// more than `floor_db`: multipath fills the shadow by itself.
pub fn obstruction_loss_db(direct_db: f64, floor_db: f64) -> f64 {
    let diffuse = db_to_power(-floor_db.max(0.0));
    let total = (1.0 - diffuse) * db_to_power(-direct_db.max(0.0)) + diffuse;
    -10.0 * total.log10()
}

fn db_to_power(db: f64) -> f64 {
    (db * (std::f64::consts::LN_10 / 10.0)).exp()
}

/// Rounds to whole dB and clamps into `[min, 20]` as a signed byte.
fn quantise(v: f64, min: i32) -> i8 {
    let r = (v.round() as i32).clamp(min, RSSI_RANGE.1);
    i8::try_from(r).unwrap_or(i8::MIN)
}

#[cfg(test)]
mod tests;
