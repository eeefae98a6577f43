//! The ROBERT field simulator: every phone runs the real SDK
//! (`robert-client`), HELLOs travel through the simulated radio
//! (`robert-radio`), the real server (`robert-server`, embedded SQLite) and
//! code service (`robert-codes`) run in process, and one simulated clock
//! drives them all, so that days of a town's life run in seconds. The
//! outcome — who the system alerted — is scored against the exact ground
//! truth of who was within 1 m of a positive case for 15 minutes.
//!
//! ```text
//! Scenario (TOML) ──build──▶ World: people, places, trajectories, radio models, positives
//!                                   │
//!      ┌────────────────────────────┴───────────── one simulated clock ─────────────┐
//!      ▼                                                                            ▼
//!  radio pair sweep ─▶ receptions ─▶ sender SDK builds the payload on air     server + code service
//!                                   ─▶ receiver SDK records the HELLO         (axum router or 127.0.0.1)
//!  SDK status schedule (EBID refills) ──────────────────────────────────────▶ /status
//!  positive case: lab long code / doctor short code ─▶ SDK report (filter) ─▶ /report
//!  risk batch (daily, and at the end) ◀─────────────────────────────────────  store
//!  every phone asks its status ──────────────────────────────────────────────▶ risk level 4?
//!                                   │
//!            ground truth (exact) ──┴──▶ confusion matrices, RSSI samples, timeline ─▶ report
//! ```
//!
//! # Running a scenario
//!
//! ```no_run
//! use robert_radio::scenario::Scenario;
//! use robert_sim::{SimOptions, run_scenario};
//!
//! let scenario = Scenario::from_toml_str(robert_sim::scenarios::SMALL)?;
//! let result = run_scenario(&scenario, &SimOptions::fast())?;
//! println!(
//!     "recall {:?}, precision {:?}",
//!     result.phones.recall(),
//!     result.phones.precision()
//! );
//! robert_sim::report::write_report("sim-report".as_ref(), "My run", &[result])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The scenario format is robert-radio's (`robert_radio::scenario`, see
//! `crates/robert-sim/README.md`); example files are in
//! `crates/robert-sim/scenarios/`, including the 20 cells of the StopCovid
//! FAQ's field-test matrix ([`scenarios::faq_matrix`]).
//!
//! # Calibration studies
//!
//! [`Knobs`] holds every threshold a calibration varies: the on-device
//! filter ([`robert_core::filter::FilterConfig`] and its mode), the server's
//! scoring ([`robert_server::batch::ScoringConfig`]: p0, RSSI cap, deltas,
//! soft-max constants, R0) and risk threshold, and the ground truth's
//! contact definition. Rerun a scenario with other knobs through
//! [`SimOptions::knobs`]; the same seed gives the same radio, so only the
//! thresholds change. Thresholds that act after the scoring (R0, risk
//! threshold) can also be swept without rerunning: each
//! [`PhoneOutcome`] carries the phone's server score `S` and its truth.
//! [`calibrate::calibrate`] does both over a grid and picks the values with
//! the fewest false negatives, then the fewest false positives (`robert
//! calibrate`).
//!
//! # Scale
//!
//! For large, mostly idle populations, [`RegisterPolicy::Lazy`] registers a
//! phone only when it first meets someone and [`StatusPolling::FinalOnly`]
//! skips status requests during the run; [`Delivery::PositivesOnly`] stores
//! received HELLOs only in the phones that will report (the only ones whose
//! HELLOs matter), which bounds memory; `keep_phone_outcomes = false` drops
//! per-phone rows from the result.
//!
//! # Determinism
//!
//! The same scenario, seed and options give the same result, except
//! wall-clock timings: the radio, each phone (`StdRng` seeded from the seed
//! and its id), the server's batch randomisation and the RSSI sampling all
//! draw from seeded generators. (Server-side random values — ID_A, bundle
//! nonces, codes — differ between runs but never change an outcome.)
//!
//! # Deviations from reality, on purpose
//!
//! * The SDK has no entry point for 19-byte writes carrying a partial RSSI
//!   (Androids without advertiser): the simulator passes the sender TX gain
//!   that makes the SDK's `raw − tx − rx` equal the protocol's value.

mod backend;
pub mod calibrate;
mod common;
pub mod confusion;
pub mod error;
pub mod explain;
mod exposure;
pub mod options;
mod phones;
pub mod progress;
pub mod recording;
pub mod replay;
pub mod report;
pub mod result;
mod run;
pub mod scenarios;
mod score;
pub mod study;

pub use backend::CodeSource;
pub use common::clock_label;
pub use confusion::Confusion;
pub use error::SimError;
pub use options::{
    Delivery, Knobs, KnobsSummary, RegisterPolicy, SimOptions, StatusPolling, TransportMode,
};
pub use progress::{BarProgress, NoProgress, Progress};
pub use result::Throughput;
pub use result::{
    AlertEvent, Counts, MissCauses, PairOutcome, PhoneOutcome, PositiveOutcome, RssiSample,
    SimEvent, SimResult, Timings,
};
pub use run::{run_scenario, run_scenario_async, run_scenario_with};
