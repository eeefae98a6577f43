//! The simulation loop: real SDK phones, the simulated radio, the real
//! server and code service, all on one simulated clock.
//!
//! ```text
//! t = 0: backend up (clocks at the scenario's start), phones registered
//! loop until the last day ends:
//!   events due now, in time order:
//!     status requests the SDK schedule says are due (refilling EBIDs)
//!     positive declarations: code (lab long code / doctor short code),
//!       SDK report (window + on-device filter)
//!     the risk batch (every `batch_every_hours`)
//!   pairs of people within radio range (robert-radio's pair sweep)
//!   radio step of each pair over [t, t + dt): receptions
//!   each reception: the sender's SDK builds the payload that was on air
//!     (Android adverts: rebuilt every 30 s; GATT: fresh), the receiver's
//!     SDK records it at the reception second
//!   t += dt (1–2 s while someone moves, 10–15 s otherwise; idle periods
//!     are skipped up to the next arrival or event)
//! end: risk batch, then every phone asks its status one hour later;
//!   ground truth and confusion matrices
//! ```
//!
//! One file per step: [`setup`] (backend, phones, cases), [`register`],
//! [`events`] (status, refills, batch), [`declare`] (code and report),
//! [`radio`] (the time loop and the radio step), [`deliver`] (receptions
//! handed to the SDKs), [`finish`] (final round, then [`crate::score`]),
//! [`throughput`] (server phases measured on the way). The dependency is
//! one-way: the run calls the scoring and the recorder, never the reverse.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use rand::rngs::ChaCha8Rng;
use robert_core::id_a::IdA;
use robert_radio::scenario::{Scenario, World};

use crate::backend::Backend;
use crate::common::{FastMap, TimeBase, clock_label};
use crate::error::SimError;
use crate::options::SimOptions;
use crate::phones::SimPhone;
use crate::progress::{NoProgress, Progress};
use crate::recording::{OracleFacts, ReportRecord};
use crate::result::{Counts, RssiSample, SimEvent, SimResult, Timings};
use crate::score::PositiveRecord;

mod declare;
mod deliver;
mod events;
mod finish;
mod radio;
mod register;
mod setup;
mod throughput;

use deliver::Item;
use throughput::Meter;

/// Runs a scenario with the given options (builds its own Tokio runtime).
pub fn run_scenario(scenario: &Scenario, options: &SimOptions) -> Result<SimResult, SimError> {
    run_scenario_with(scenario, options, &NoProgress)
}

/// As [`run_scenario`], reporting progress.
pub fn run_scenario_with(
    scenario: &Scenario,
    options: &SimOptions,
    progress: &dyn Progress,
) -> Result<SimResult, SimError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_scenario_async(scenario, options, progress))
}

/// The async entry point, for callers already inside a Tokio runtime
/// (multi-threaded: the code service runs on a worker).
pub async fn run_scenario_async(
    scenario: &Scenario,
    options: &SimOptions,
    progress: &dyn Progress,
) -> Result<SimResult, SimError> {
    options.validate().map_err(SimError::Options)?;
    let t0 = Instant::now();
    let mut scenario = scenario.clone();
    if let Some(seed) = options.seed {
        scenario.seed = seed;
    }
    let world = scenario.build()?;
    let build_ms = ms(t0);
    let mut sim = Sim::new(&world, &scenario, options, progress).await?;
    sim.timings.build_ms = build_ms;
    let result = sim.run().await;
    let backend = sim.backend;
    backend.shutdown().await;
    let mut result = result?;
    result.timings.total_ms = ms(t0);
    Ok(result)
}

fn ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct Sim<'w> {
    world: &'w World,
    scenario: &'w Scenario,
    opts: &'w SimOptions,
    progress: &'w dyn Progress,
    seed: u64,
    time: TimeBase,
    backend: Backend,
    phones: Vec<SimPhone>,
    registered_at: Vec<Option<f64>>,
    id_a: Vec<Option<IdA>>,
    is_positive: Vec<bool>,
    first_alert: Vec<Option<f64>>,
    risk_level: Vec<f64>,
    status_heap: BinaryHeap<Reverse<(u64, u32)>>,
    positives: Vec<PositiveRecord>,
    next_positive: usize,
    next_batch: Option<f64>,
    batch_runs: u64,
    next_refill: Option<f64>,
    /// EBID → (sender, EBID epoch counted from NTP 0).
    ebid_owner: FastMap<u64, (u32, u64)>,
    /// Recorder state (`SimOptions::record`).
    recorder: Recorder,
    /// Reusable buffers of `deliver`.
    items: Vec<Item>,
    sorted: Vec<Item>,
    starts: Vec<usize>,
    /// Payloads iPhones read over GATT, by (sender, receiver), for cached reuse.
    gatt_reads: FastMap<(u32, u32), [u8; 18]>,
    /// (positive receiver, sender, place) → receptions.
    heard_by_positive: FastMap<(u32, u32, u32), u64>,
    /// Recording only: (positive receiver, sender, NTP second) → the
    /// first reception's true distance and noiseless level.
    oracle: FastMap<(u32, u32, u64), OracleFacts>,
    place_env: Vec<usize>,
    reservoirs: Vec<(u64, Vec<RssiSample>)>,
    sample_rng: ChaCha8Rng,
    counts: Counts,
    events: Vec<SimEvent>,
    timings: Timings,
    status_errors: Vec<String>,
    /// Wall-clock accumulators of the server phases.
    meter: Meter,
}

/// What the run collects for its recording while it goes (see
/// [`crate::SimOptions::record`]); [`Sim::score`] completes it.
#[derive(Debug, Default)]
struct Recorder {
    /// The reports, in declaration order.
    reports: Vec<ReportRecord>,
    /// Batch times (simulation seconds).
    batches_s: Vec<f64>,
    /// Final status time (simulation seconds).
    final_status_s: f64,
}

impl Sim<'_> {
    fn event(&mut self, t: f64, text: String) {
        self.progress.event(&format!("[{}] {text}", clock_label(t)));
        self.events.push(SimEvent { t_s: t, text });
    }

    /// The run, step by step (module docs).
    async fn run(&mut self) -> Result<SimResult, SimError> {
        let t_reg = Instant::now();
        let mut tp = self.register_at_start().await?;
        self.timings.register_ms = ms(t_reg);
        self.registered_event();

        let t_loop = Instant::now();
        self.time_loop().await?;
        self.timings.simulate_ms = ms(t_loop);

        let t_final = Instant::now();
        self.finish().await?;
        self.timings.final_ms = ms(t_final);

        let t_truth = Instant::now();
        let mut result = self.score().await?;
        self.timings.truth_ms = ms(t_truth);
        self.meter.complete(&mut tp);
        self.timings.throughput = tp;
        result.timings = self.timings;
        Ok(result)
    }
}
