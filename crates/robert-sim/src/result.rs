//! What a run returns: counts, confusion matrices by breakdown, per-phone
//! and per-pair outcomes, RSSI samples, the alert timeline. Everything is
//! `Serialize` (the report writes it as `results.json`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::backend::CodeSource;
use crate::confusion::Confusion;
use crate::options::{KnobsSummary, TransportMode};

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Phones registered.
    pub registrations: u64,
    /// Registrations that failed.
    pub registration_failures: u64,
    /// Time steps executed.
    pub steps: u64,
    /// Radio pair steps executed.
    pub pair_steps: u64,
    /// HELLO receptions produced by the radio model.
    pub radio_receptions: u64,
    /// … of which Android adverts caught by a scan.
    pub via_advert: u64,
    /// … of which iPhone writes into an Android.
    pub via_ios_write: u64,
    /// … of which 19-byte writes of Androids without advertiser.
    pub via_partial_rssi_write: u64,
    /// … of which GATT reads.
    pub via_gatt_read: u64,
    /// … of which iPhone payloads reused from a cached read.
    pub via_cached_read: u64,
    /// Payloads (HELLOs) built by the phones' SDK.
    pub hellos_built: u64,
    /// Receptions dropped because the sender had no EBID for the epoch.
    pub hellos_unavailable: u64,
    /// HELLOs recorded by receiving SDKs.
    pub hellos_recorded: u64,
    /// Receptions not handed to an SDK ([`crate::Delivery::PositivesOnly`]).
    pub hellos_not_stored: u64,
    /// Dropped by the SDK: same EBID in the same second.
    pub hellos_duplicate: u64,
    /// Dropped by the SDK: Time16 too far from the local clock (cached iPhone reads).
    pub hellos_stale: u64,
    /// Dropped by the SDK for another reason (own EBID, malformed).
    pub hellos_other_rejected: u64,
    /// Status requests sent.
    pub status_requests: u64,
    /// Status requests that failed.
    pub status_failures: u64,
    /// Reports sent successfully.
    pub reports: u64,
    /// Reports that failed.
    pub report_failures: u64,
    /// Contacts (EBID groups) uploaded.
    pub reported_contacts: u64,
    /// HELLOs uploaded.
    pub reported_hellos: u64,
    /// EBID groups the on-device filter kept back.
    pub filter_rejected_groups: u64,
    /// Risk batch runs.
    pub batch_runs: u64,
    /// Contacts the batch processed.
    pub batch_contacts_processed: u64,
    /// Contacts the batch scored.
    pub batch_contacts_scored: u64,
    /// HELLOs that passed every server check.
    pub batch_hellos_valid: u64,
    /// Risk detections by the batch.
    pub batch_risk_detections: u64,
    /// Phones alerted (risk level 4 at a status).
    pub alerts: u64,
}

/// A positive case and what its report did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PositiveOutcome {
    /// Person id.
    pub person: u32,
    /// `android` or `ios`.
    pub os: &'static str,
    /// Phone model.
    pub model: String,
    /// Scenario group.
    pub group: String,
    /// Declaration time (simulation seconds).
    pub declared_at_s: f64,
    /// Which code was used.
    pub code: CodeSource,
    /// EBID groups uploaded.
    pub contacts_sent: usize,
    /// HELLOs uploaded.
    pub hellos_sent: usize,
    /// EBID groups the filter kept back.
    pub rejected_groups: usize,
    /// The report's error, if it failed.
    pub error: Option<String>,
    /// Ground-truth contacts at risk (non-positive phones).
    pub true_contacts: usize,
    /// Of which alerted.
    pub true_contacts_alerted: usize,
}

/// One phone at the end of the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhoneOutcome {
    /// Person id.
    pub person: u32,
    /// Scenario group that created the person.
    pub group: String,
    /// `android` or `ios`.
    pub os: &'static str,
    /// Phone model.
    pub model: String,
    /// A positive case (excluded from the phone-level matrix).
    pub positive: bool,
    /// Registered with the server.
    pub registered: bool,
    /// Risk level of the last status.
    pub risk_level: f64,
    /// When the phone first saw risk level 4 (simulation seconds).
    pub first_alert_s: Option<f64>,
    /// Ground truth: at-risk contact of some positive case.
    pub truth_at_risk: bool,
    /// Longest cumulated time within D of a positive case on one day, in
    /// that case's contagious window (s).
    pub truth_max_exposure_s: f64,
    /// Sum of the exposure scores the server holds for this phone.
    pub server_score: f64,
    /// Aggregated risk `1 − exp(−R0·S)` from that score.
    pub server_risk: f64,
    /// HELLOs this phone holds at the end (positives: 0 after reporting).
    pub hellos_held: usize,
    /// Worst-day seconds within 1, 1.5, 2, 3 and 5 m of a positive case
    /// (inside its contagious window; the largest over cases), which
    /// explains an alert or a miss.
    pub exposure_s: Vec<f64>,
}

/// One (positive case, other phone) pair with anything to say.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairOutcome {
    /// The positive case.
    pub positive: u32,
    /// The other phone.
    pub contact: u32,
    /// `"android→ios"`: OS of the positive case → OS of the contact.
    pub os_pair: String,
    /// Environment where they spent most time within D (else where the
    /// positive heard most of the contact's HELLOs).
    pub environment: Option<&'static str>,
    /// Scenario group (place) of that environment.
    pub group: Option<String>,
    /// Longest cumulated time within D on one day, in the window (s).
    pub truth_max_day_s: f64,
    /// Ground truth at risk.
    pub truth: bool,
    /// HELLOs of the contact the positive's radio delivered.
    pub radio_receptions: u64,
    /// HELLOs of the contact the positive's phone held when reporting.
    pub hellos_held: usize,
    /// HELLOs of the contact uploaded (after window and filter).
    pub hellos_reported: usize,
    /// EBID groups of the contact the filter kept back.
    pub groups_filtered: usize,
    /// The contact was alerted.
    pub contact_alerted: bool,
    /// Predicted: alerted and the positive's report carried its HELLOs.
    pub predicted: bool,
}

/// Why at-risk contacts were missed (pair level).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MissCauses {
    /// The positive's phone never recorded a HELLO of the contact.
    pub never_heard: u64,
    /// HELLOs were held but none passed the report window and on-device filter.
    pub filtered_on_phone: u64,
    /// HELLOs were uploaded, but the server's score stayed below the threshold.
    pub below_server_threshold: u64,
}

/// One RSSI sample for the RSSI-versus-distance plot.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RssiSample {
    /// Environment preset name.
    pub environment: &'static str,
    /// Distance between the two people at reception (m).
    pub distance_m: f32,
    /// Raw RSSI (dBm).
    pub rssi_raw: i8,
    /// Calibrated RSSI the receiver stored (dB).
    pub rssi_calibrated: i16,
    /// Mechanism: `advert`, `ios-write`, `partial-rssi-write`, `gatt-read`, `cached-read`.
    pub via: &'static str,
}

/// A phone seeing risk level 4 for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AlertEvent {
    /// When (simulation seconds).
    pub t_s: f64,
    /// Who.
    pub person: u32,
    /// Whether the ground truth says at risk.
    pub truth: bool,
}

/// Something worth telling (the demo prints these).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimEvent {
    /// When (simulation seconds).
    pub t_s: f64,
    /// What happened.
    pub text: String,
}

/// Wall-clock timings (milliseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Scenario expansion.
    pub build_ms: u64,
    /// Backend start (stores, keys, listeners).
    pub backend_ms: u64,
    /// Registrations.
    pub register_ms: u64,
    /// The time loop (radio, SDK receptions, statuses, reports, batches).
    pub simulate_ms: u64,
    /// … of which server calls and batches during the loop.
    pub server_ms: u64,
    /// Final batch and statuses.
    pub final_ms: u64,
    /// Ground truth and scoring.
    pub truth_ms: u64,
    /// Everything.
    pub total_ms: u64,
    /// Sustained server throughput per phase, and memory per registration.
    pub throughput: Throughput,
}

/// Sustained throughput of the server per phase, measured on the wall clock
/// around the phones' requests only (radio, truth and bookkeeping excluded),
/// and what a registration costs in memory and on disk.
///
/// Rates are `None` when the phase did not happen. Registrations and final
/// statuses run [`crate::SimOptions::concurrency`] requests in flight at
/// once, so their rates are a capacity figure when the phase is large
/// (registration at the start, [`crate::RegisterPolicy::AtStart`]; the final
/// status round of every registered phone). Reports happen one at a time at
/// their declaration instants: their rate is the inverse of the mean report
/// latency (SDK filter, upload, code verification by the code service).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Throughput {
    /// Requests in flight at once during registrations and status rounds.
    pub concurrency: usize,
    /// Registration attempts (successes and failures).
    pub registrations: u64,
    /// Rounds of registrations (1 with `AtStart`; one per step with new
    /// phones with `Lazy`, where the rate mixes many small rounds).
    pub registration_rounds: u64,
    /// Wall time spent registering (ms).
    pub registration_ms: u64,
    /// Registrations per second.
    pub registrations_per_s: Option<f64>,
    /// Status requests of the final round (every registered phone once).
    pub final_status_requests: u64,
    /// Wall time of the final status round (ms, batch excluded).
    pub final_status_ms: u64,
    /// Final status requests per second.
    pub final_status_per_s: Option<f64>,
    /// Status requests during the run (schedule or EBID refills).
    pub run_status_requests: u64,
    /// Wall time of those (ms).
    pub run_status_ms: u64,
    /// Reports attempted.
    pub reports: u64,
    /// Wall time inside the SDK's report calls (ms).
    pub report_ms: u64,
    /// Reports per second (one at a time: 1 / mean latency).
    pub reports_per_s: Option<f64>,
    /// Resident memory of the whole process before the registration phase
    /// (bytes; Linux `/proc/self/status`, else `None`).
    pub rss_before_registration_bytes: Option<u64>,
    /// Resident memory after the registration phase (bytes).
    pub rss_after_registration_bytes: Option<u64>,
    /// RSS growth during the registration phase per registration (bytes):
    /// the server **and** the phones (each phone's SDK keeps its keys and
    /// EBID tuples), in one process. Meaningful with `AtStart` only.
    pub rss_growth_per_registration_bytes: Option<f64>,
    /// The phones' share of that, estimated from what the SDKs hold:
    /// registration keys, EBID tuples and the phone structure (bytes per
    /// registered phone, allocator overhead excluded).
    pub phone_state_bytes_per_registration: Option<f64>,
    /// Size of one simulated phone's structure (the SDK phone with its
    /// state, clock, RNG and payload caches), allocated for every person
    /// whether registered or not (bytes, heap allocations excluded).
    pub phone_struct_bytes: usize,
    /// The server's SQLite database (main file and WAL) right after the
    /// registration phase (bytes).
    pub server_db_bytes_after_registration: Option<u64>,
    /// The server's SQLite database before the registration phase (bytes).
    pub server_db_bytes_before_registration: Option<u64>,
    /// Database growth per registration (bytes).
    pub server_db_bytes_per_registration: Option<f64>,
    /// Peak resident memory of the process at the end of the run (bytes):
    /// `VmHWM`, or a larger RSS sample taken during the run.
    pub peak_rss_bytes: Option<u64>,
}

/// Everything a run produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimResult {
    /// Scenario name.
    pub scenario: String,
    /// Scenario description.
    pub description: String,
    /// Seed used.
    pub seed: u64,
    /// UTC date of simulation time 0.
    pub start_date: String,
    /// Simulated days.
    pub days: u32,
    /// People (phones).
    pub people: usize,
    /// Android phones.
    pub android: usize,
    /// iPhones.
    pub ios: usize,
    /// Thresholds in force.
    pub knobs: KnobsSummary,
    /// Transport used.
    pub transport: TransportMode,
    /// Counters.
    pub counts: Counts,
    /// Phone level: every phone except the positive cases; truth = at-risk
    /// contact of some positive case in its contagious window; predicted =
    /// alerted (risk level 4).
    pub phones: Confusion,
    /// Pair level: every (positive case, other phone); truth = at-risk
    /// contact of that case; predicted = the phone is alerted and the case's
    /// report carried its HELLOs.
    pub pairs: Confusion,
    /// Pair level, by environment of the encounter (pairs that met only).
    pub by_environment: BTreeMap<String, Confusion>,
    /// Pair level, by OS of the positive case → OS of the contact.
    pub by_os_pair: BTreeMap<String, Confusion>,
    /// Pair level, by scenario group (place) of the encounter (pairs that met only).
    pub by_group: BTreeMap<String, Confusion>,
    /// Why at-risk pairs were missed.
    pub misses: MissCauses,
    /// The positive cases.
    pub positives: Vec<PositiveOutcome>,
    /// Every phone (if kept).
    pub phone_outcomes: Vec<PhoneOutcome>,
    /// Pairs that met, were reported or are at risk.
    pub pair_outcomes: Vec<PairOutcome>,
    /// RSSI samples (reservoir per environment).
    pub rssi_samples: Vec<RssiSample>,
    /// First alerts, in time order.
    pub timeline: Vec<AlertEvent>,
    /// Notable events, in time order.
    pub events: Vec<SimEvent>,
    /// Wall-clock timings.
    pub timings: Timings,
    /// The recording of this run, with [`crate::SimOptions::record`].
    #[serde(skip)]
    pub recording: Option<Box<crate::recording::Recording>>,
}
