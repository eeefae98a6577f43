//! Scenario descriptions (TOML) and their expansion into a [`World`]:
//! people with phones, places, trajectories, radio models, ground truth and
//! positive cases.
//!
//! # File format
//!
//! Every field has a default except `name` and `groups`; unknown fields are
//! errors (typos do not pass silently). Times of day are local (`"09:00"` or
//! `"09:00:30"`, quoted or as TOML local times); `utc_offset_hours` turns
//! them into UTC. Simulation time 0 is UTC midnight of `start_date`.
//!
//! ```toml
//! name = "office"                # required
//! description = "…"              # free text
//! seed = 42                      # all randomness of the expansion (default 1)
//! start_date = "2020-10-05"      # UTC date of simulation time 0 (default 2020-10-05)
//! days = 5                       # duration in days (default 1, at most 366)
//! utc_offset_hours = 2.0         # local time = UTC + offset (default 0; France: 1 or 2)
//! app_era = "stopcovid-2020"     # or "tac-2022": OS timing presets (link::LinkTiming)
//!
//! [radio]                        # all optional
//! sensitivity_dbm = -100.0       # reported raw RSSI floor
//! anchor_db = -35.0              # calibrated RSSI at 1 m, hand-held, facing (see "The anchor")
//! default_android_tx_dbm = -7.0
//! max_pair_range_m = 60.0        # pairs farther apart are not stepped (cost cap)
//! android_report_delay_s = 1.0   # timing overrides, each optional:
//! ios_bg_scan_interval_s = 10.0  #   see link::LinkTiming for all defaults
//! ios_connection_interval_s = 10.0
//! ios_payload_cache_s = 1800.0
//! connection_failure_probability = 0.05
//! ablate = ["body", "placement"] # noise terms switched off (channel::NoiseTerm; default none)
//!
//! [truth]
//! distance_m = 1.0               # contact distance D
//! at_risk_minutes = 15.0         # cumulated minutes within D per UTC day
//!
//! [population]
//! android_share = 0.78           # P(Android); France 2020 (assumption: ~3/4 of phones)
//! android_no_advertiser_share = 0.0   # Androids in "without advertiser" mode (TAC ≥ 2.2.4)
//! ios_foreground_share = 0.25    # P(an iPhone's app is foreground / power-save) per stay
//! device_offset_sigma_db = 3.5   # per-device residual vs. the table (tx and rx; see channel)
//! unlisted_model_sigma_db = 4.0  # spread of true gains of models absent from the table
//! placement = { hand = 0.3, front-pocket = 0.5, bag = 0.2 }   # default: per group kind
//! [[population.models]]          # optional; replaces the built-in mix (scenario::DEFAULT_MODELS)
//! os = "android"                 # "android" | "ios"
//! model = "SM-G973F"             # Build.MODEL or iOS hardware id
//! weight = 5.0
//! true_tx_gain_db = -27.0        # optional: hardware truth differing from the table
//! true_rx_gain_db = 0.0
//!
//! [[groups]]
//! name = "open-space"            # unique
//! kind = "office"                # office | classroom | restaurant | walkers | commute | queue
//! people = 20                    # new people, or:
//! members = "other-group"        # the people of an earlier group (same persons, other times)
//! instances = 1                  # independent copies (own people and places; `members` follows them)
//! environment = "indoor-medium-ceiling"  # or { preset = "...", shadowing_sigma_db = 7.0, ... }
//!                                #   (any field of channel::Environment, e.g. diffuse_floor_db)
//! density = "high"               # "low" (default) | "high": spacing, crowd loss, car load
//! days = [0, 1, 2, 3, 4]         # day indices (default: every day)
//! start = "09:00"                # local; defaults per kind
//! end = "17:30"
//! arrival_jitter_minutes = 10.0  # arrivals late / departures early by up to this
//! placement = { table = 0.6, front-pocket = 0.4 }
//! spacing_m = 1.2                # office / classroom grid step, queue step
//! table_size = 4                 # restaurant
//! length_m = 100.0               # walkers: street length
//! width_m = 4.0                  # walkers: street width
//! crossings = 4                  # walkers: street crossings per person per day
//! speed_m_s = 1.35               # walkers: mean walking speed
//! vehicle = "metro"              # commute: "metro" (15 × 2.7 m car) | "bus" (12 × 2.5 m)
//! departures = ["08:00", "18:00"]  # commute
//! trip_minutes = 30.0            # commute
//! passengers_per_car = 40        # commute
//! service_minutes = 2.0          # queue: mean time at the till
//!
//! [[positives]]
//! group = "open-space"
//! member = 0                     # index in the group (default: drawn at random)
//! day = 3
//! time = "18:00"                 # local time of the declaration (default 18:00)
//! onset_days_before = 2          # optional symptom onset
//! ```
//!
//! # The anchor
//!
//! `[radio] anchor_db` is the calibrated RSSI (dB) that a DEFAULT ↔ DEFAULT
//! pair reports at 1 m, both phones in hand, facing, before shadowing and
//! fading. It is the largest unknown of the radio model: nothing published
//! gives ROBERT's calibrated scale at a known distance
//! (ble-measurements.md §4.4). A whole number in [−100, 0]; the old name
//! `calibrated_at_1m_db` is accepted.
//!
//! * **Default −35 dB**: what the deployed October 2020 table implies
//!   (client-ble.md §2.2: DEFAULT gains −30 / −5, raw −70 dBm at 1 m). It
//!   stays the default because it is the only figure derived from the apps'
//!   own calibration, and it keeps earlier results reproducible.
//! * **The other end, about −53 dB**: the anchor at which a mix like the
//!   French field tests of May 2020 matches the only ROBERT-scale field
//!   series (robert-server's scoring vectors, median −70 dB):
//!   [`crate::survey::field_series_anchor`]. That mix is our guess (the
//!   tests' distances and placements are not published), so it bounds the
//!   plausible range rather than replacing the default; `docs/radio-model.md`
//!   gives the range over several guesses.
//!
//! The anchor moves the apps' calibration, never the radio: every app's RX
//! gain is lowered by `anchor_db + 35` ([`anchor_shift_db`]). Raw levels,
//! which packets are received and every random draw are the same for every
//! anchor, and every calibrated RSSI moves by exactly `anchor_db + 35`, so
//! recorded receptions can be shifted offline. The one exception: the
//! partial RSSI of a no-advertiser write (byte 18, `raw − rxGain(writer)`)
//! is an `i8` that saturates at −128. Every table RX gain is ≤ 0, so it
//! cannot saturate while `sensitivity_dbm + anchor_db + 35 ≥ −128`, i.e. for
//! anchors ≥ −63 dB at the default −100 dBm floor; below that, writes
//! measured near the floor are clamped (and so is the calibrated RSSI the
//! receiver finishes from them).
//!
//! Groups listed later take precedence: when a person belongs to several
//! groups whose times overlap, the later group's stay is cut out of the
//! earlier one (e.g. an office day interrupted by a restaurant lunch).
//!
//! See `examples/scenarios/*.toml` and [`matrix::faq_test_matrix`].

mod build;
pub mod matrix;
mod validate;
mod world;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::calibration::Os;
use crate::channel::{Ablation, Environment, EnvironmentKind, Fading, Placement};
use crate::link::AppEra;
use crate::mobility::MobilityError;

use robert_core::time::UtcDate;
pub use world::{PositiveCase, RadioRunStats, World, anchor_shift_db};

/// An invalid scenario.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The TOML text does not parse or does not match the format.
    #[error("scenario TOML: {0}")]
    Toml(String),
    /// A field has an invalid value.
    #[error("{field}: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The generated trajectories are inconsistent (a bug or an extreme setting).
    #[error("person {person}: {source}")]
    Mobility {
        /// Person id.
        person: u32,
        /// The underlying error.
        #[source]
        source: MobilityError,
    },
}

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A scenario, as read from TOML. See the module documentation.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw of the expansion.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// UTC date of simulation time 0.
    #[serde(default)]
    pub start_date: StartDate,
    /// Number of simulated days (1..=366).
    #[serde(default = "default_days")]
    pub days: u32,
    /// Local time minus UTC, in hours (−14..=14).
    #[serde(default)]
    pub utc_offset_hours: f64,
    /// Which app generation's timing to use.
    #[serde(default)]
    pub app_era: AppEra,
    /// Radio settings.
    #[serde(default)]
    pub radio: RadioSpec,
    /// Ground-truth contact definition.
    #[serde(default)]
    pub truth: TruthSpec,
    /// Phones and how they are carried.
    #[serde(default)]
    pub population: PopulationSpec,
    /// Activity groups (at least one).
    pub groups: Vec<GroupSpec>,
    /// People who will declare themselves positive.
    #[serde(default)]
    pub positives: Vec<PositiveSpec>,
}

fn default_seed() -> u64 {
    1
}
fn default_days() -> u32 {
    1
}

impl Scenario {
    /// Parses a scenario from TOML text (syntax and shape only; see
    /// [`Scenario::validate`] and [`Scenario::build`]).
    pub fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))
    }

    /// Expands the scenario into a world (validates first).
    pub fn build(&self) -> Result<World, ScenarioError> {
        build::build(self)
    }

    /// Checks every field's range and cross-references.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        validate::validate(self)
    }
}

/// A UTC date (`"2020-10-05"` or TOML local date `2020-10-05`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DateRepr")]
pub struct StartDate(pub UtcDate);

impl Default for StartDate {
    fn default() -> Self {
        // A Monday of October 2020, when the calibration table was current.
        Self(UtcDate {
            year: 2020,
            month: 10,
            day: 5,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DateRepr {
    Toml(toml::value::Datetime),
    Text(String),
}

impl TryFrom<DateRepr> for StartDate {
    type Error = String;
    fn try_from(r: DateRepr) -> Result<Self, String> {
        let text = match r {
            DateRepr::Toml(dt) => match (dt.date, dt.time, dt.offset) {
                (Some(d), None, None) => {
                    return UtcDate::new(i32::from(d.year), d.month, d.day)
                        .map(Self)
                        .ok_or_else(|| format!("invalid date {dt}"));
                }
                _ => return Err(format!("expected a date without time, got {dt}")),
            },
            DateRepr::Text(s) => s,
        };
        let parts: Vec<&str> = text.split('-').collect();
        let [y, m, d] = parts.as_slice() else {
            return Err(format!("expected YYYY-MM-DD, got `{text}`"));
        };
        let parse = |s: &str| s.parse::<i32>().ok();
        match (parse(y), parse(m), parse(d)) {
            (Some(y), Some(m), Some(d)) if y.to_string().len() == 4 => UtcDate::new(
                y,
                u8::try_from(m).unwrap_or(0),
                u8::try_from(d).unwrap_or(0),
            )
            .map(Self)
            .ok_or_else(|| format!("invalid date `{text}`")),
            _ => Err(format!("expected YYYY-MM-DD, got `{text}`")),
        }
    }
}

/// A local time of day, in seconds after midnight (`"HH:MM"`, `"HH:MM:SS"`,
/// or a TOML local time; `"24:00"` is allowed as an end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "DateRepr")]
pub struct TimeOfDay(pub u32);

impl TimeOfDay {
    /// Builds from hours and minutes.
    pub const fn hm(h: u32, m: u32) -> Self {
        Self(h * 3600 + m * 60)
    }

    /// Seconds after midnight.
    pub fn seconds(self) -> f64 {
        f64::from(self.0)
    }

    /// Parses `HH:MM` or `HH:MM:SS`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let nums: Option<Vec<u32>> = parts
            .iter()
            .map(|p| {
                (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| p.parse().ok())
                    .flatten()
            })
            .collect();
        let (h, m, s) = match nums.as_deref() {
            Some([h, m]) => (*h, *m, 0),
            Some([h, m, s]) => (*h, *m, *s),
            _ => return Err(format!("expected HH:MM or HH:MM:SS, got `{text}`")),
        };
        if m >= 60 || s >= 60 || h > 24 || (h == 24 && (m, s) != (0, 0)) {
            return Err(format!("time of day out of range: `{text}`"));
        }
        Ok(Self(h * 3600 + m * 60 + s))
    }
}

impl TryFrom<DateRepr> for TimeOfDay {
    type Error = String;
    fn try_from(r: DateRepr) -> Result<Self, String> {
        match r {
            DateRepr::Toml(dt) => match (dt.date, dt.time, dt.offset) {
                (None, Some(t), None) => Ok(Self(
                    u32::from(t.hour) * 3600
                        + u32::from(t.minute) * 60
                        + u32::from(t.second.unwrap_or(0)),
                )),
                _ => Err(format!("expected a local time of day, got {dt}")),
            },
            DateRepr::Text(s) => Self::parse(&s),
        }
    }
}

/// `[radio]`: receiver floor, calibration anchor, cost cap, timing overrides.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RadioSpec {
    /// Reported raw RSSI floor (dBm).
    pub sensitivity_dbm: f64,
    /// The anchor: calibrated RSSI (dB) of a DEFAULT ↔ DEFAULT pair at 1 m,
    /// hand-held, facing, before shadowing and fading. A whole number in
    /// [−100, 0]. It shifts the apps' calibration gains only (raw levels and
    /// receptions do not depend on it). Also accepted as
    /// `calibrated_at_1m_db`.
    #[serde(alias = "calibrated_at_1m_db")]
    pub anchor_db: f64,
    /// Radiated power of a DEFAULT Android (dBm).
    pub default_android_tx_dbm: f64,
    /// Pairs farther apart than this are never stepped (m).
    pub max_pair_range_m: f64,
    /// Override of `LinkTiming::android_report_delay_s`.
    pub android_report_delay_s: Option<f64>,
    /// Override of `LinkTiming::ios_bg_scan_interval_s` (and the background report period).
    pub ios_bg_scan_interval_s: Option<f64>,
    /// Override of `LinkTiming::ios_connection_interval_s`.
    pub ios_connection_interval_s: Option<f64>,
    /// Override of `LinkTiming::ios_payload_cache_s`.
    pub ios_payload_cache_s: Option<f64>,
    /// Override of `LinkTiming::connection_failure_probability`.
    pub connection_failure_probability: Option<f64>,
    /// Noise terms switched off in every place and device (a study's
    /// ablation; empty: the full model). See [`crate::channel::NoiseTerm`].
    pub ablate: Ablation,
}

impl Default for RadioSpec {
    fn default() -> Self {
        Self {
            sensitivity_dbm: crate::channel::DEFAULT_SENSITIVITY_DBM,
            anchor_db: DEFAULT_ANCHOR_DB,
            default_android_tx_dbm: -7.0,
            max_pair_range_m: 60.0,
            android_report_delay_s: None,
            ios_bg_scan_interval_s: None,
            ios_connection_interval_s: None,
            ios_payload_cache_s: None,
            connection_failure_probability: None,
            ablate: Ablation::NONE,
        }
    }
}

/// Default [`RadioSpec::anchor_db`]: client-ble.md §2.2, DEFAULT ↔ DEFAULT
/// raw −70 dBm at 1 m calibrates to −35 with the October 2020 table.
pub const DEFAULT_ANCHOR_DB: f64 = -35.0;

/// Range of [`RadioSpec::anchor_db`] (dB).
pub const ANCHOR_RANGE_DB: (f64, f64) = (-100.0, 0.0);

/// `[truth]`: the contact definition.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TruthSpec {
    /// Contact distance (m).
    pub distance_m: f64,
    /// Cumulated minutes within the distance on one UTC day for "at risk".
    pub at_risk_minutes: f64,
}

impl Default for TruthSpec {
    fn default() -> Self {
        Self {
            distance_m: 1.0,
            at_risk_minutes: 15.0,
        }
    }
}

/// Placement weights (need not sum to 1).
pub type PlacementWeights = BTreeMap<Placement, f64>;

/// `[population]`: OS and model mix, app state, carrying habits.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopulationSpec {
    /// Probability that a new person has an Android phone.
    pub android_share: f64,
    /// Among Androids, probability of lacking LE advertising ("without advertiser" mode).
    pub android_no_advertiser_share: f64,
    /// Probability, per stay, that an iPhone's app is in the foreground.
    pub ios_foreground_share: f64,
    /// Standard deviation of each device's deviation from its model's true gains (dB).
    pub device_offset_sigma_db: f64,
    /// Standard deviation of true gains of models absent from the table around the gains the app uses (dB).
    pub unlisted_model_sigma_db: f64,
    /// Model mix; empty means [`DEFAULT_MODELS`].
    pub models: Vec<ModelSpec>,
    /// Placement weights for every group without its own (default: per group kind).
    pub placement: Option<PlacementWeights>,
}

impl Default for PopulationSpec {
    fn default() -> Self {
        Self {
            android_share: 0.78,
            android_no_advertiser_share: 0.0,
            ios_foreground_share: 0.25,
            device_offset_sigma_db: 3.5,
            unlisted_model_sigma_db: 4.0,
            models: Vec::new(),
            placement: None,
        }
    }
}

/// One phone model of the mix.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Operating system.
    pub os: Os,
    /// `Build.MODEL` or iOS hardware id.
    pub model: String,
    /// Relative weight within its OS.
    pub weight: f64,
    /// True TX gain (dB) if it differs from the table (default: table value).
    #[serde(default)]
    pub true_tx_gain_db: Option<f64>,
    /// True RX gain (dB) if it differs from the table.
    #[serde(default)]
    pub true_rx_gain_db: Option<f64>,
}

/// The built-in model mix: (OS, model, weight).
///
/// Models are taken from the October 2020 calibration table (plus
/// `unlisted-android` and `iPhone13,2`, absent from it, so that table misses
/// are exercised). Weights are our assumption of the French 2020 installed
/// base (Samsung Galaxy A/S, Huawei, Xiaomi; recent iPhones), not
/// measurements.
pub const DEFAULT_MODELS: &[(Os, &str, f64)] = &[
    (Os::Android, "SM-A505FN", 8.0),
    (Os::Android, "SM-A405FN", 6.0),
    (Os::Android, "SM-G973F", 6.0),
    (Os::Android, "SM-G960F", 5.0),
    (Os::Android, "SM-G950F", 4.0),
    (Os::Android, "SM-A202F", 4.0),
    (Os::Android, "MAR-LX1A", 4.0),
    (Os::Android, "SM-J530F", 3.0),
    (Os::Android, "SM-A520F", 3.0),
    (Os::Android, "SM-A705FN", 3.0),
    (Os::Android, "POT-LX1", 3.0),
    (Os::Android, "Redmi 7A", 3.0),
    (Os::Android, "SM-G975F", 2.0),
    (Os::Android, "SM-G970F", 2.0),
    (Os::Android, "CLT-L09", 2.0),
    (Os::Android, "SNE-LX1", 2.0),
    (Os::Android, "FIG-LX1", 2.0),
    (Os::Android, "Mi 9 SE", 1.0),
    (Os::Android, "Pixel 3a", 1.0),
    (Os::Android, "Moto G (5)", 1.0),
    (Os::Android, "CPH1921", 1.0),
    (Os::Android, "unlisted-android", 34.0),
    (Os::Ios, "iPhone12,1", 14.0),
    (Os::Ios, "iPhone11,8", 12.0),
    (Os::Ios, "iPhone9,3", 10.0),
    (Os::Ios, "iPhone10,4", 9.0),
    (Os::Ios, "iPhone12,8", 8.0),
    (Os::Ios, "iPhone8,1", 6.0),
    (Os::Ios, "iPhone10,6", 5.0),
    (Os::Ios, "iPhone11,2", 5.0),
    (Os::Ios, "iPhone13,2", 5.0),
    (Os::Ios, "iPhone8,4", 4.0),
    (Os::Ios, "iPhone10,5", 4.0),
    (Os::Ios, "iPhone9,4", 4.0),
    (Os::Ios, "iPhone10,1", 3.0),
    (Os::Ios, "iPhone12,3", 3.0),
    (Os::Ios, "iPhone12,5", 3.0),
];

/// What a group does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupKind {
    /// Seated on a grid all day, facing random directions (desks).
    Office,
    /// Seated in rows facing the front.
    Classroom,
    /// Seated around tables of `table_size`, facing the table centre.
    Restaurant,
    /// Crossing a street at walking speed, in random directions and lanes.
    Walkers,
    /// Riding metro cars or buses at fixed departures.
    Commute,
    /// Queuing at a till, moving up as people are served.
    Queue,
}

/// Crowd density.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Density {
    /// Spread out.
    #[default]
    Low,
    /// Packed.
    High,
}

/// Vehicle of a commute group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vehicle {
    /// Metro car, 15 m × 2.7 m.
    #[default]
    Metro,
    /// Bus, 12 m × 2.5 m.
    Bus,
}

impl Vehicle {
    /// Interior length and width (m).
    pub fn size_m(self) -> (f64, f64) {
        match self {
            Self::Metro => (15.0, 2.7),
            Self::Bus => (12.0, 2.5),
        }
    }
}

/// An environment: a preset name, or a preset with overrides.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum EnvironmentSpec {
    /// `"outdoor"`, `"indoor-high-ceiling"`, `"indoor-medium-ceiling"`,
    /// `"indoor-low-ceiling"` or `"metal-vehicle"`.
    Preset(EnvironmentKind),
    /// `{ preset = "...", <field> = value, ... }`.
    Custom(CustomEnvironment),
}

/// A preset with some parameters replaced (fields of [`Environment`]).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomEnvironment {
    /// Base preset.
    pub preset: EnvironmentKind,
    /// Path loss at 1 m (dB).
    #[serde(default)]
    pub reference_loss_db: Option<f64>,
    /// Path-loss exponent.
    #[serde(default)]
    pub path_loss_exponent: Option<f64>,
    /// Breakpoint (m).
    #[serde(default)]
    pub breakpoint_m: Option<f64>,
    /// Exponent beyond the breakpoint.
    #[serde(default)]
    pub far_exponent: Option<f64>,
    /// Shadowing σ (dB).
    #[serde(default)]
    pub shadowing_sigma_db: Option<f64>,
    /// Shadowing decorrelation time (s).
    #[serde(default)]
    pub shadowing_time_constant_s: Option<f64>,
    /// Shadowing decorrelation distance (m).
    #[serde(default)]
    pub shadowing_distance_m: Option<f64>,
    /// Fading, e.g. `{ model = "rician", k_factor_db = 3.0 }` or `{ model = "rayleigh" }`.
    #[serde(default)]
    pub fading: Option<Fading>,
    /// Crowd loss (dB/m); overrides the density default.
    #[serde(default)]
    pub crowd_loss_db_per_m: Option<f64>,
    /// Direct-path loss through a torso (dB).
    #[serde(default)]
    pub body_loss_db: Option<f64>,
    /// Diffuse floor: share of the unobstructed power that arrives around
    /// obstructions, in dB below it.
    #[serde(default)]
    pub diffuse_floor_db: Option<f64>,
    /// Standard deviation of the static per-pair offset (dB).
    #[serde(default)]
    pub pair_offset_sigma_db: Option<f64>,
}

impl EnvironmentSpec {
    /// The environment, with the density's crowd loss unless overridden.
    pub fn resolve(&self, density: Density) -> Environment {
        let crowd = match density {
            Density::Low => 0.0,
            Density::High => HIGH_DENSITY_CROWD_LOSS_DB_PER_M,
        };
        match self {
            Self::Preset(k) => Environment {
                crowd_loss_db_per_m: crowd,
                ..k.preset()
            },
            Self::Custom(c) => {
                let p = c.preset.preset();
                Environment {
                    kind: c.preset,
                    reference_loss_db: c.reference_loss_db.unwrap_or(p.reference_loss_db),
                    path_loss_exponent: c.path_loss_exponent.unwrap_or(p.path_loss_exponent),
                    breakpoint_m: c.breakpoint_m.unwrap_or(p.breakpoint_m),
                    far_exponent: c.far_exponent.unwrap_or(p.far_exponent),
                    shadowing_sigma_db: c.shadowing_sigma_db.unwrap_or(p.shadowing_sigma_db),
                    shadowing_time_constant_s: c
                        .shadowing_time_constant_s
                        .unwrap_or(p.shadowing_time_constant_s),
                    shadowing_distance_m: c.shadowing_distance_m.unwrap_or(p.shadowing_distance_m),
                    fading: c.fading.unwrap_or(p.fading),
                    crowd_loss_db_per_m: c.crowd_loss_db_per_m.unwrap_or(crowd),
                    body_loss_db: c.body_loss_db.unwrap_or(p.body_loss_db),
                    diffuse_floor_db: c.diffuse_floor_db.unwrap_or(p.diffuse_floor_db),
                    pair_offset_sigma_db: c.pair_offset_sigma_db.unwrap_or(p.pair_offset_sigma_db),
                    ablate: p.ablate,
                }
            }
        }
    }
}

/// Crowd loss of a high-density group (dB per metre beyond 1 m); see [`crate::channel`].
pub const HIGH_DENSITY_CROWD_LOSS_DB_PER_M: f64 = 1.5;

/// `[[groups]]`: one activity. Kind-specific fields are ignored by other kinds.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Unique name.
    pub name: String,
    /// Activity.
    pub kind: GroupKind,
    /// Number of new people per instance (not with `members`).
    #[serde(default)]
    pub people: u32,
    /// Independent copies of this group, each with its own people and
    /// places (e.g. 2,000 offices of 50 for a capacity run). A group with
    /// `members = "x"` has one instance per instance of `x`, each reusing
    /// that instance's people. Default 1.
    #[serde(default)]
    pub instances: Option<u32>,
    /// Reuse the people of an earlier group.
    #[serde(default)]
    pub members: Option<String>,
    /// Environment (default per kind: office, classroom, restaurant →
    /// indoor-medium-ceiling; walkers → outdoor; commute → metal-vehicle;
    /// queue → indoor-high-ceiling).
    #[serde(default)]
    pub environment: Option<EnvironmentSpec>,
    /// Density.
    #[serde(default)]
    pub density: Density,
    /// Day indices (default: all).
    #[serde(default)]
    pub days: Option<Vec<u32>>,
    /// Local start time (defaults per kind).
    #[serde(default)]
    pub start: Option<TimeOfDay>,
    /// Local end time (defaults per kind).
    #[serde(default)]
    pub end: Option<TimeOfDay>,
    /// Arrivals are late and departures early by up to this (minutes).
    #[serde(default = "default_jitter")]
    pub arrival_jitter_minutes: f64,
    /// Placement weights (default: population's, else per kind).
    #[serde(default)]
    pub placement: Option<PlacementWeights>,
    /// Grid step (office 1.2 / 2.5 m, classroom 1.0 / 2.0 m) or queue step (0.8 / 1.5 m), high / low density.
    #[serde(default)]
    pub spacing_m: Option<f64>,
    /// Restaurant: seats per table (default 4).
    #[serde(default)]
    pub table_size: Option<u32>,
    /// Walkers: street length (default 100 m).
    #[serde(default)]
    pub length_m: Option<f64>,
    /// Walkers: street width (default 3 m high density, 8 m low).
    #[serde(default)]
    pub width_m: Option<f64>,
    /// Walkers: crossings per person per day (default 4).
    #[serde(default)]
    pub crossings: Option<u32>,
    /// Walkers: mean speed (default 1.35 m/s; typical pedestrian speed 1.2–1.5 m/s).
    #[serde(default)]
    pub speed_m_s: Option<f64>,
    /// Commute: vehicle type.
    #[serde(default)]
    pub vehicle: Option<Vehicle>,
    /// Commute: local departure times (default 08:00 and 18:00).
    #[serde(default)]
    pub departures: Option<Vec<TimeOfDay>>,
    /// Commute: trip duration (default 30 min).
    #[serde(default)]
    pub trip_minutes: Option<f64>,
    /// Commute: passengers per car (default 40 high / 12 low).
    #[serde(default)]
    pub passengers_per_car: Option<u32>,
    /// Queue: mean service time (default 2 min).
    #[serde(default)]
    pub service_minutes: Option<f64>,
}

fn default_jitter() -> f64 {
    10.0
}

/// `[[positives]]`: a person who declares a positive test.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositiveSpec {
    /// Group of the person.
    pub group: String,
    /// Index in the group's members (default: random).
    #[serde(default)]
    pub member: Option<u32>,
    /// Day of the declaration.
    pub day: u32,
    /// Local time of the declaration (default 18:00).
    #[serde(default)]
    pub time: Option<TimeOfDay>,
    /// Symptom onset, in days before the declaration.
    #[serde(default)]
    pub onset_days_before: Option<u32>,
}

#[cfg(test)]
mod tests;
