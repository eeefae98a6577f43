//! The batch's configuration (`[batch]` in the server configuration).

use robert_core::contact::HelloPolicy;
use robert_core::ecc::CountryCode;
use robert_core::scoring::{
    RiskParams, Scoring, ScoringTypical, ScoringV0, ScoringV2, TypicalParams, V0Params, V2Params,
    WindowLevel,
};
use robert_core::time::{SECONDS_PER_DAY, ServiceStart, UtcDate};
use serde::{Deserialize, Serialize};

use robert_store::Backend;

use super::BatchError;

/// Settings of the risk batch. [`Default`] gives the reference values
/// (server-api.md §6.2); every field may be omitted in the configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Contact scoring (`robert.scoring.*`).
    pub scoring: ScoringConfig,
    /// HELLO tolerances (`robert.protocol.hello-message-timestamp-tolerance`, …).
    pub hello: HelloConfig,
    /// `robert.protocol.risk-threshold`: minimum aggregated risk (0.1).
    pub risk_threshold: f64,
    /// `robert.protocol.contagious-period`: days of exposures kept (14).
    pub contagious_period_days: u32,
    /// `robert.protocol.risk-flag-retention-period`: days the at-risk flag
    /// lasts after the last contact date (7).
    pub risk_retention_days: u32,
    /// `robert-batch.risk-threshold.last-contact-delay` in days: the last
    /// exposure must be more recent than this for a risk (7).
    pub last_contact_delay_days: u32,
    /// This server's country code (33, France).
    pub country_code: u8,
    /// The service start date (`robert.server.time-start`, 2020-06-01).
    #[serde(with = "date")]
    pub service_start: UtcDate,
    /// Most contacts per chunk; each chunk is one transaction (by the
    /// store when unset: 20 000 on SQLite, 10 000 on PostgreSQL, the
    /// faster of the sizes measured on each, docs/batch-profile.md).
    pub chunk_contacts: Option<usize>,
    /// A chunk stops once it holds this many HELLOs (100 per contact of
    /// `chunk_contacts` when unset).
    pub chunk_hellos: Option<u64>,
    /// Worker threads for validation and scoring; 0 = every core (0).
    pub parallelism: usize,
    /// ID_A ranges the purge, reset and evaluation steps work through, one
    /// transaction each (64).
    pub partitions: u32,
    /// Countries whose contacts go to the federation outbox instead of
    /// being dropped: not a `[batch]` key, it follows `[federation]` (the
    /// partners with a `url`).
    #[serde(skip)]
    pub forwarded_countries: Vec<u8>,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            scoring: ScoringConfig::default(),
            hello: HelloConfig::default(),
            risk_threshold: 0.1,
            contagious_period_days: 14,
            risk_retention_days: 7,
            last_contact_delay_days: 7,
            country_code: CountryCode::FRANCE.0,
            service_start: ServiceStart::REFERENCE.date(),
            chunk_contacts: None,
            chunk_hellos: None,
            parallelism: 0,
            partitions: 64,
            forwarded_countries: Vec::new(),
        }
    }
}

/// Which family of scoring the batch runs (`[batch.scoring] preset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoringPreset {
    /// The reference's scoring, byte-exact: v2 (or v0 with
    /// `algo_version = 0`) with the fields of [`ScoringConfig`], and the
    /// reference's aggregation `1 − exp(−R0 · S)` over all exposures.
    #[default]
    #[serde(rename = "reference-2020")]
    Reference2020,
    /// robert-rs's typical-level scoring (`robert_core::scoring::typical`)
    /// with [`ScoringConfig::typical`]: near-minutes per contact from the
    /// level it typically holds, judged per UTC day.
    #[serde(rename = "typical-level")]
    TypicalLevel,
}

impl ScoringPreset {
    /// The configuration name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference2020 => "reference-2020",
            Self::TypicalLevel => "typical-level",
        }
    }
}

/// Parameters of the typical-level scoring (`[batch.scoring.typical]`;
/// `robert_core::scoring::TypicalParams` documents each).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypicalConfig {
    /// Level (dBm) at or below which a contact carries no near-minutes.
    pub level_low: f64,
    /// Level (dBm) from which every minute counts in full.
    pub level_high: f64,
    /// Which window level is the contact's typical one (0.5: the median).
    pub quantile: f64,
    /// Contacts shorter than this many minutes score 0.
    pub min_minutes: f64,
    /// RSSIs above this are lowered to it (dBm).
    pub rssi_max: i32,
    /// `mean` (dB) or `power-mean` (v2's soft-max level).
    pub level: String,
    /// `risk = 1 − exp(−R0 · worst day's near-minutes)`.
    pub r0: f64,
}

impl Default for TypicalConfig {
    fn default() -> Self {
        let p = TypicalParams::default();
        Self {
            level_low: p.level_low,
            level_high: p.level_high,
            quantile: p.quantile,
            min_minutes: p.min_minutes,
            rssi_max: p.rssi_max,
            level: p.level.name().to_owned(),
            r0: p.r0,
        }
    }
}

/// Scoring parameters (`robert.scoring.*`, server-api.md §4.4, §6.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// The scoring family: `reference-2020` (the fields below) or
    /// `typical-level` ([`ScoringConfig::typical`]).
    pub preset: ScoringPreset,
    /// `algo-version`: 2 (default) or 0 (legacy).
    pub algo_version: u8,
    /// `p0` (−66).
    pub p0: f64,
    /// `rssi-max` (−35).
    pub rssi_max: i32,
    /// `deltas` (39, 27, 23, 21, 20, 15).
    pub deltas: Vec<f64>,
    /// `soft-max-a` (4.342).
    pub soft_max_a: f64,
    /// `soft-max-b` (0.2).
    pub soft_max_b: f64,
    /// `epoch-tolerance` in seconds (0).
    pub epoch_tolerance_secs: i64,
    /// `scoring-algo-r0` (0.0071).
    pub r0: f64,
    /// `robert.protocol.scoring-algo-rssi`, v0 only (−40).
    pub rssi_1m: i32,
    /// The typical-level scoring's parameters (preset `typical-level`).
    pub typical: TypicalConfig,
}

impl ScoringConfig {
    /// A one-line description of the scoring in force (reports).
    pub fn describe(&self) -> String {
        match self.preset {
            ScoringPreset::TypicalLevel => {
                let t = &self.typical;
                format!(
                    "typical-level ({} level, quantile {}, near from {} to {} dBm, contacts ≥ {} min, \
                     {:.1} near-minutes on one day for the threshold 0.1)",
                    t.level,
                    t.quantile,
                    t.level_low,
                    t.level_high,
                    t.min_minutes,
                    -(0.9f64.ln()) / t.r0
                )
            }
            ScoringPreset::Reference2020 if self.algo_version == 0 => {
                format!("reference-2020 v0 (RSSI at 1 m {})", self.rssi_1m)
            }
            ScoringPreset::Reference2020 => {
                format!("reference-2020 v2 (p0 {}, R0 {})", self.p0, self.r0)
            }
        }
    }
}

impl Default for ScoringConfig {
    fn default() -> Self {
        let v2 = V2Params::default();
        Self {
            algo_version: 2,
            p0: v2.p0,
            rssi_max: v2.rssi_max,
            deltas: v2.deltas,
            soft_max_a: v2.soft_max_a,
            soft_max_b: v2.soft_max_b,
            epoch_tolerance_secs: v2.epoch_tolerance_secs,
            r0: v2.r0,
            rssi_1m: V0Params::default().rssi_1m,
            preset: ScoringPreset::default(),
            typical: TypicalConfig::default(),
        }
    }
}

/// HELLO tolerances (server-api.md §4.2–4.3, §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HelloConfig {
    /// Time16 vs reception time, seconds (180).
    pub time_tolerance_secs: u32,
    /// Reception epoch vs EBID epoch (1).
    pub epoch_tolerance: u32,
    /// Seconds around UTC midnight where the adjacent day's K_S is tried (180).
    pub day_boundary_secs: u64,
}

impl Default for HelloConfig {
    fn default() -> Self {
        let p = HelloPolicy::default();
        Self {
            time_tolerance_secs: p.time_tolerance_secs,
            epoch_tolerance: p.epoch_tolerance,
            day_boundary_secs: p.day_boundary_secs,
        }
    }
}

/// A checked configuration, ready to run.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) start: ServiceStart,
    pub(crate) country: CountryCode,
    pub(crate) policy: HelloPolicy,
    pub(crate) scoring: Scoring,
    pub(crate) risk: RiskParams,
    chunk_contacts: Option<usize>,
    chunk_hellos: Option<u64>,
    pub(crate) threads: usize,
    pub(crate) partitions: u32,
    pub(crate) forwarded_countries: Vec<u8>,
}

impl Settings {
    /// Contacts and HELLOs per chunk on `backend`: as configured, or the
    /// back end's own default. Larger chunks commit less often; SQLite's
    /// single writer gains from that up to 20,000 contacts, while
    /// PostgreSQL's batch was faster at 10,000 (docs/batch-profile.md,
    /// fifth round).
    pub(crate) fn chunk(&self, backend: Backend) -> (usize, u64) {
        let contacts = self.chunk_contacts.unwrap_or(match backend {
            Backend::Sqlite => 20_000,
            // PostgreSQL, and any back end not measured yet.
            _ => 10_000,
        });
        let hellos = self
            .chunk_hellos
            .unwrap_or_else(|| u64::try_from(contacts).map_or(u64::MAX, |c| c.saturating_mul(100)));
        (contacts, hellos)
    }
}

impl BatchConfig {
    /// The scoring algorithm this configuration selects, with its
    /// parameters checked.
    pub fn scoring_algorithm(&self) -> Result<Scoring, BatchError> {
        let start = ServiceStart::new(self.service_start);
        let s = &self.scoring;
        if s.preset == ScoringPreset::TypicalLevel {
            let t = &s.typical;
            let level = WindowLevel::from_name(&t.level).ok_or_else(|| {
                BatchError::Config("scoring.typical.level must be mean or power-mean".to_owned())
            })?;
            return ScoringTypical::new(TypicalParams {
                level_low: t.level_low,
                level_high: t.level_high,
                quantile: t.quantile,
                min_minutes: t.min_minutes,
                rssi_max: t.rssi_max,
                level,
                r0: t.r0,
            })
            .map(Scoring::Typical)
            .map_err(|e| BatchError::Config(e.to_string()));
        }
        Ok(match s.algo_version {
            2 => Scoring::V2(
                ScoringV2::new(V2Params {
                    p0: s.p0,
                    rssi_max: s.rssi_max,
                    deltas: s.deltas.clone(),
                    soft_max_a: s.soft_max_a,
                    soft_max_b: s.soft_max_b,
                    epoch_tolerance_secs: s.epoch_tolerance_secs,
                    r0: s.r0,
                })
                .map_err(|e| BatchError::Config(e.to_string()))?,
            ),
            0 => Scoring::V0(ScoringV0::new(V0Params {
                rssi_1m: s.rssi_1m,
                start,
            })),
            _ => {
                return Err(BatchError::Config(
                    "scoring.algo_version must be 2 or 0".to_owned(),
                ));
            }
        })
    }

    /// Checks every value.
    pub(crate) fn settings(&self) -> Result<Settings, BatchError> {
        let bad = |what: &str| Err(BatchError::Config(what.to_owned()));
        let start = ServiceStart::new(self.service_start);
        let scoring = self.scoring_algorithm()?;
        if !(self.risk_threshold.is_finite() && self.risk_threshold > 0.0) {
            return bad("risk_threshold must be finite and positive");
        }
        if self.chunk_contacts == Some(0) || self.chunk_hellos == Some(0) {
            return bad("chunk_contacts and chunk_hellos must be at least 1");
        }
        if !(1..=65_536).contains(&self.partitions) {
            return bad("partitions must be in 1..=65536");
        }
        if self.hello.day_boundary_secs >= SECONDS_PER_DAY / 2 {
            return bad("hello.day_boundary_secs must be below half a day");
        }
        let threads = match self.parallelism {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        Ok(Settings {
            start,
            country: CountryCode(self.country_code),
            policy: HelloPolicy {
                time_tolerance_secs: self.hello.time_tolerance_secs,
                epoch_tolerance: self.hello.epoch_tolerance,
                day_boundary_secs: self.hello.day_boundary_secs,
            },
            scoring,
            risk: RiskParams {
                risk_threshold: self.risk_threshold,
                last_contact_delay_secs: u64::from(self.last_contact_delay_days) * SECONDS_PER_DAY,
                risk_retention_days: self.risk_retention_days,
                contagious_period_days: self.contagious_period_days,
            },
            chunk_contacts: self.chunk_contacts,
            chunk_hellos: self.chunk_hellos,
            threads: threads.clamp(1, 256),
            partitions: self.partitions,
            forwarded_countries: {
                let mut v = self.forwarded_countries.clone();
                v.sort_unstable();
                v.dedup();
                v
            },
        })
    }
}

/// `UtcDate` as `"YYYY-MM-DD"`.
mod date {
    use robert_core::time::UtcDate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &UtcDate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(d)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UtcDate, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom("expected a date YYYY-MM-DD"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_reference_values() {
        let s = BatchConfig::default().settings().unwrap();
        assert_eq!(s.start, ServiceStart::REFERENCE);
        assert_eq!(s.country, CountryCode(33));
        assert_eq!(s.policy, HelloPolicy::default());
        assert_eq!(s.risk, RiskParams::default());
        assert_eq!(s.scoring, Scoring::default());
    }

    #[test]
    fn chunk_sizes_follow_the_store_unless_set() {
        let s = BatchConfig::default().settings().unwrap();
        assert_eq!(s.chunk(Backend::Sqlite), (20_000, 2_000_000));
        assert_eq!(s.chunk(Backend::Postgres), (10_000, 1_000_000));
        let c: BatchConfig = toml::from_str("chunk_contacts = 500").unwrap();
        let s = c.settings().unwrap();
        assert_eq!(s.chunk(Backend::Sqlite), (500, 50_000));
        assert_eq!(s.chunk(Backend::Postgres), (500, 50_000));
        let c: BatchConfig = toml::from_str("chunk_hellos = 7").unwrap();
        assert_eq!(c.settings().unwrap().chunk(Backend::Postgres), (10_000, 7));
        assert!(
            toml::from_str::<BatchConfig>("chunk_hellos = 0")
                .unwrap()
                .settings()
                .is_err()
        );
    }

    #[test]
    fn toml_section_with_overrides() {
        let c: BatchConfig = toml::from_str(
            "risk_threshold = 0.2\nservice_start = \"2022-01-01\"\n[scoring]\nr0 = 0.007\n",
        )
        .unwrap();
        assert_eq!(c.risk_threshold, 0.2);
        assert_eq!(c.service_start, UtcDate::new(2022, 1, 1).unwrap());
        assert_eq!(c.scoring.r0, 0.007);
        assert_eq!(c.scoring.soft_max_a, 4.342);
        assert_eq!(c.contagious_period_days, 14);
        assert!(toml::from_str::<BatchConfig>("unknown = 1").is_err());
        assert!(toml::from_str::<BatchConfig>("service_start = \"2022-13-01\"").is_err());
        let round = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<BatchConfig>(&round).unwrap(), c);
    }

    #[test]
    fn invalid_values_are_refused() {
        let scoring = |f: fn(&mut ScoringConfig)| {
            let mut s = ScoringConfig::default();
            f(&mut s);
            BatchConfig {
                scoring: s,
                ..BatchConfig::default()
            }
        };
        assert!(scoring(|s| s.algo_version = 1).settings().is_err());
        assert!(scoring(|s| s.deltas.clear()).settings().is_err());
        assert!(scoring(|s| s.soft_max_b = 0.0).settings().is_err());
        let c = BatchConfig {
            chunk_contacts: Some(0),
            ..BatchConfig::default()
        };
        assert!(c.settings().is_err());
        let c = BatchConfig {
            risk_threshold: f64::NAN,
            ..BatchConfig::default()
        };
        assert!(c.settings().is_err());
        let c = BatchConfig {
            partitions: 0,
            ..BatchConfig::default()
        };
        assert!(c.settings().is_err());
        let v0 = scoring(|s| s.algo_version = 0).settings().unwrap();
        assert!(matches!(v0.scoring, Scoring::V0(_)));
        assert!(
            scoring(|s| {
                s.preset = ScoringPreset::TypicalLevel;
                s.typical.level = "median".into();
            })
            .settings()
            .is_err()
        );
        assert!(
            scoring(|s| {
                s.preset = ScoringPreset::TypicalLevel;
                s.typical.quantile = 2.0;
            })
            .settings()
            .is_err()
        );
    }

    #[test]
    fn presets_select_the_scoring() {
        let c: BatchConfig = toml::from_str("[scoring]\npreset = \"reference-2020\"\n").unwrap();
        assert!(matches!(c.settings().unwrap().scoring, Scoring::V2(_)));
        let c: BatchConfig = toml::from_str(
            "[scoring]\npreset = \"typical-level\"\n[scoring.typical]\nlevel_low = -60.0\nlevel_high = -55.0\n",
        )
        .unwrap();
        let Scoring::Typical(t) = c.settings().unwrap().scoring else {
            panic!("typical-level selects the typical scoring");
        };
        assert_eq!(t.params().level_low, -60.0);
        assert_eq!(t.params().quantile, TypicalParams::default().quantile);
        assert!(toml::from_str::<BatchConfig>("[scoring]\npreset = \"v3\"\n").is_err());
    }
}
