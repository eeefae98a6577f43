//! How a simulation runs: time steps, transport, phone policies, and the
//! [`Knobs`] (filter, scoring and risk thresholds, contact definition) that a
//! calibration study varies.

use robert_core::filter::{FilterConfig, FilterMode};
use robert_server::batch::ScoringConfig;
use serde::Serialize;

/// The thresholds a calibration study varies. Everything else is the
/// scenario.
///
/// The defaults are the deployed values: the 2020 on-device filter in mode
/// RISKS (client-ble.md §4), scoring v2 with `R0 = 0.0071` and a risk
/// threshold of 0.1 (server-api.md §4.4–4.5), and the scenario's own contact
/// definition (1 m, 15 minutes by default).
#[derive(Clone, Debug, PartialEq)]
pub struct Knobs {
    /// On-device proximity filter applied to each EBID group before a report.
    pub filter: FilterConfig,
    /// The filter mode (`RISKS` in the apps; `FULL` only checks the duration).
    pub filter_mode: FilterMode,
    /// Server scoring (`robert.scoring.*`: p0, rssi-max, deltas, soft-max, R0).
    pub scoring: ScoringConfig,
    /// Minimum aggregated risk `1 − exp(−R0·S)` for an alert (0.1).
    pub risk_threshold: f64,
    /// Ground truth: contact distance D in metres; `None` keeps the scenario's.
    pub truth_distance_m: Option<f64>,
    /// Ground truth: cumulated minutes within D on one UTC day; `None` keeps
    /// the scenario's.
    pub truth_minutes: Option<f64>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            filter: FilterConfig::app_2020(),
            filter_mode: FilterMode::Risks,
            scoring: ScoringConfig::default(),
            risk_threshold: 0.1,
            truth_distance_m: None,
            truth_minutes: None,
        }
    }
}

/// A serialisable summary of [`Knobs`] for reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KnobsSummary {
    /// Filter mode name.
    pub filter_mode: String,
    /// Filter: minimum duration of an EBID group (s).
    pub filter_duration_threshold_s: u64,
    /// Filter: minimum risk in mode RISKS.
    pub filter_risk_threshold: f64,
    /// Filter: p0 (dBm).
    pub filter_p0: f64,
    /// Scoring algorithm version.
    pub scoring_algo_version: u8,
    /// The scoring in force, in words (preset and main values).
    pub scoring_description: String,
    /// Scoring: R0.
    pub scoring_r0: f64,
    /// Scoring: p0 (dBm).
    pub scoring_p0: f64,
    /// Scoring: RSSI cap (dBm).
    pub scoring_rssi_max: i32,
    /// Risk threshold.
    pub risk_threshold: f64,
    /// Contact distance used by the ground truth (m).
    pub truth_distance_m: f64,
    /// Cumulated minutes used by the ground truth.
    pub truth_minutes: f64,
}

/// How phones reach the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportMode {
    /// In process: each request calls the server's axum `Router` directly
    /// (no socket). The fastest; the default.
    #[default]
    InProcess,
    /// Real HTTP on loopback: the server listens on `127.0.0.1:0` with the
    /// same serving code as `robert serve`, phones use reqwest.
    Http,
}

/// When phones register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegisterPolicy {
    /// Every phone registers at the start of the simulation.
    #[default]
    AtStart,
    /// A phone registers just before it first comes within radio range of
    /// another: phones that never meet anybody cost nothing (they cannot be
    /// alerted, and count as true or false negatives without a request).
    /// The mode for large, mostly idle populations.
    Lazy,
}

/// How phones poll their status during the simulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusPolling {
    /// The SDK's own schedule (`status_if_due`: every 8 h plus jitter, as
    /// TousAntiCovid 2022), which also refills EBIDs. Alerts appear on the
    /// timeline when they would on a real phone.
    #[default]
    Schedule,
    /// No status during the run except EBID refills when the stock runs low;
    /// every phone asks once at the end. Cheaper for large populations.
    FinalOnly,
}

/// Which phones store the HELLOs they receive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Every receiving phone's SDK records every HELLO (realistic memory
    /// and CPU; about 24 bytes per HELLO).
    #[default]
    Everyone,
    /// Only the phones of future positive cases record HELLOs: they are the
    /// only ones whose HELLOs are ever uploaded, so the outcome is the same
    /// and memory stays bounded for large populations. The radio still runs
    /// for everybody (receptions are counted).
    PositivesOnly,
}

/// Options of one simulation run. [`SimOptions::default`] is a sensible
/// realistic run; [`SimOptions::fast`] trades radio time resolution for speed.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// Seed of the radio, the phones and the batch (`None`: the scenario's).
    pub seed: Option<u64>,
    /// Time step while somebody in a radio pair is moving (s).
    pub step_moving_s: f64,
    /// Time step while every radio pair is static (s, ≤ 15).
    pub step_static_s: f64,
    /// Thresholds.
    pub knobs: Knobs,
    /// Transport between phones and server.
    pub transport: TransportMode,
    /// Registration policy.
    pub register: RegisterPolicy,
    /// Status polling policy.
    pub status_polling: StatusPolling,
    /// Which phones store received HELLOs.
    pub delivery: Delivery,
    /// The risk batch runs every this many hours of simulated time (at
    /// multiples of it after midnight UTC), and once more at the end.
    /// `None`: only at the end.
    pub batch_every_hours: Option<f64>,
    /// Requests in flight at once when many phones call the server at the
    /// same simulated instant (registrations, status).
    pub concurrency: usize,
    /// RSSI-versus-distance samples kept per environment (reservoir).
    pub rssi_samples_per_environment: usize,
    /// Keep one [`crate::PhoneOutcome`] per phone in the result (large
    /// populations may turn it off).
    pub keep_phone_outcomes: bool,
    /// Where the embedded databases live (`None`: a temporary directory
    /// removed at the end).
    pub data_dir: Option<std::path::PathBuf>,
    /// Record the positive cases' contact stores, the batch times and the
    /// exposures at several distances into [`crate::SimResult::recording`]
    /// for offline re-scoring ([`crate::recording`], [`crate::replay`]).
    pub record: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            seed: None,
            step_moving_s: 1.0,
            step_static_s: 10.0,
            knobs: Knobs::default(),
            transport: TransportMode::InProcess,
            register: RegisterPolicy::AtStart,
            status_polling: StatusPolling::Schedule,
            delivery: Delivery::Everyone,
            batch_every_hours: Some(24.0),
            concurrency: 8,
            rssi_samples_per_environment: 4000,
            keep_phone_outcomes: true,
            data_dir: None,
            record: false,
        }
    }
}

impl SimOptions {
    /// The settings for large, mostly idle populations: lazy registration,
    /// status only at the end, HELLOs stored only by future positive cases,
    /// no per-phone rows, coarse steps.
    pub fn large_population() -> Self {
        Self {
            register: RegisterPolicy::Lazy,
            status_polling: StatusPolling::FinalOnly,
            delivery: Delivery::PositivesOnly,
            keep_phone_outcomes: false,
            concurrency: 32,
            ..Self::fast()
        }
    }

    /// Capacity measurements: [`SimOptions::large_population`] except that
    /// every phone registers at the start ([`RegisterPolicy::AtStart`]),
    /// so that the registration phase and the final status round involve
    /// every phone, idle or not (the throughput figures of
    /// [`crate::Throughput`] are then per phone of the population).
    pub fn capacity() -> Self {
        Self {
            register: RegisterPolicy::AtStart,
            ..Self::large_population()
        }
    }

    /// Coarser steps (2 s moving, 15 s static): about twice as fast, for
    /// demos and CI.
    pub fn fast() -> Self {
        Self {
            step_moving_s: 2.0,
            step_static_s: 15.0,
            ..Self::default()
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.step_moving_s.is_finite() && (0.1..=15.0).contains(&self.step_moving_s)) {
            return Err("step_moving_s must be in [0.1, 15] s".into());
        }
        if !(self.step_static_s.is_finite()
            && (self.step_moving_s..=15.0).contains(&self.step_static_s))
        {
            return Err("step_static_s must be in [step_moving_s, 15] s".into());
        }
        if let Some(h) = self.batch_every_hours
            && !(h.is_finite() && h >= 0.25)
        {
            return Err("batch_every_hours must be at least 0.25".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.knobs.risk_threshold) {
            return Err("risk_threshold must be in [0, 1]".into());
        }
        if let Some(d) = self.knobs.truth_distance_m
            && !(d.is_finite() && d > 0.0)
        {
            return Err("truth_distance_m must be positive".into());
        }
        if let Some(m) = self.knobs.truth_minutes
            && !(m.is_finite() && m >= 0.0)
        {
            return Err("truth_minutes must be non-negative".into());
        }
        self.knobs
            .filter
            .validate()
            .map_err(|e| format!("filter: {e}"))?;
        Ok(())
    }
}
