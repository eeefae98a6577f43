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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng as _};
use rayon::prelude::*;
use robert_client::report::report_window;
use robert_client::schedule::StatusScheduleParams;
use robert_client::{
    ClientError, DeviceModel, FixedCaptchaAnswer, PhoneConfig, ReceiveError, ReportBasis,
    ReqwestTransport, RetryPolicy, ServiceTransport,
};
use robert_core::ebid::Ebid;
use robert_core::id_a::IdA;
use robert_core::time::{EPOCH_DURATION_SECS, NtpSeconds, UtcDate};
use robert_radio::calibration::Os;
use robert_radio::channel::EnvironmentKind;
use robert_radio::link::{
    End, HELLO_REFRESH_S, PairLink, Reception, StepContext, Via, advert_payload_built_at,
};
use robert_radio::mobility::{NearPair, PersonId};
use robert_radio::scenario::{Scenario, World};

use crate::backend::{Backend, CodeSource};
use crate::error::SimError;
use crate::options::{Delivery, RegisterPolicy, SimOptions, StatusPolling, TransportMode};
use crate::phones::{SimPhone, SimTransport};
use crate::progress::{NoProgress, Progress};
use crate::recording::Recorder;
use crate::result::{Counts, RssiSample, SimEvent, SimResult, Throughput, Timings};
use crate::score::{self, PositiveRecord, RunFacts};

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

/// A fast hasher for integer keys (the maps are never iterated for output
/// in an order-dependent way).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Index of an environment kind in [`EnvironmentKind::ALL`].
pub(crate) fn env_index(kind: EnvironmentKind) -> usize {
    EnvironmentKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

/// The OS name used in tables.
pub(crate) fn os_name(os: Os) -> &'static str {
    match os {
        Os::Android => "android",
        Os::Ios => "ios",
    }
}

fn via_name(via: &Via) -> &'static str {
    match via {
        Via::Advert => "advert",
        Via::IosWrite { .. } => "ios-write",
        Via::PartialRssiWrite { .. } => "partial-rssi-write",
        Via::GattRead => "gatt-read",
        Via::CachedRead { .. } => "cached-read",
    }
}

/// Seconds of simulated time ↔ NTP seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeBase {
    pub(crate) start: NtpSeconds,
}

impl TimeBase {
    pub(crate) fn ntp(&self, t: f64) -> NtpSeconds {
        if t >= 0.0 {
            // Simulation times are finite and below 2^53.
            self.start.plus(t.floor() as u64)
        } else {
            self.start.minus((-t).ceil() as u64)
        }
    }

    pub(crate) fn sim(&self, t: NtpSeconds) -> f64 {
        (i128::from(t.get()) - i128::from(self.start.get())) as f64
    }
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
    oracle: FastMap<(u32, u32, u64), crate::recording::OracleFacts>,
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

/// Wall time and request counts per server phase (see [`Throughput`]).
#[derive(Debug, Default)]
struct Meter {
    registrations: u64,
    registration_rounds: u64,
    registration: Duration,
    run_status_requests: u64,
    run_status: Duration,
    final_status_requests: u64,
    final_status: Duration,
    reports: u64,
    report: Duration,
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`); `None`
/// off Linux.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Seconds of a duration, as a rate denominator.
fn per_s(count: u64, d: Duration) -> Option<f64> {
    let s = d.as_secs_f64();
    (count > 0 && s > 0.0).then(|| count as f64 / s)
}

fn dur_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'w> Sim<'w> {
    async fn new(
        world: &'w World,
        scenario: &'w Scenario,
        opts: &'w SimOptions,
        progress: &'w dyn Progress,
    ) -> Result<Self, SimError> {
        let t0 = Instant::now();
        let seed = world.seed;
        let time = TimeBase {
            start: world.start_date.midnight(),
        };
        let last_day = UtcDate::of(time.ntp(world.duration_s));
        let backend = Backend::start(
            time.start,
            last_day,
            &opts.knobs,
            opts.transport,
            opts.data_dir.as_deref(),
            (world.positives.len() as u64).max(4),
            seed,
        )
        .await?;
        let transport = match opts.transport {
            TransportMode::InProcess => {
                SimTransport::InProcess(ServiceTransport::new(backend.router.clone()))
            }
            TransportMode::Http => SimTransport::Http(
                ReqwestTransport::new(Duration::from_secs(60))
                    .map_err(|e| SimError::Backend(format!("HTTP client: {e}")))?,
            ),
        };
        // One shared configuration per phone model.
        let schedule = match scenario.app_era {
            robert_radio::link::AppEra::Stopcovid2020 => StatusScheduleParams::STOPCOVID_2020_10,
            robert_radio::link::AppEra::Tac2022 => StatusScheduleParams::TAC_2022,
        };
        let mut configs: HashMap<(Os, String), Arc<PhoneConfig>> = HashMap::new();
        // The apps' table: October 2020, RX gains shifted by the scenario's
        // anchor (robert-radio `scenario`, "The anchor").
        let calibration = robert_client::CalibrationTable::from_csv(&world.calibration.to_csv())
            .map_err(|e| SimError::Backend(format!("calibration table: {e}")))?;
        let mut phones = Vec::with_capacity(world.population.people.len());
        for p in &world.population.people {
            let os = p.device.platform.os();
            let config = match configs.get(&(os, p.model.clone())) {
                Some(c) => c.clone(),
                None => {
                    let device = match os {
                        Os::Android => DeviceModel::android(&p.model),
                        Os::Ios => DeviceModel::ios(&p.model),
                    };
                    let mut c = PhoneConfig::with_key_base64(
                        &backend.server_url,
                        &backend.public_key_b64,
                        device,
                    )
                    .map_err(|e| SimError::Backend(format!("phone configuration: {e}")))?;
                    c.retry = RetryPolicy::none();
                    // The phones keep the app's 120 s clock-alignment check in
                    // both transports: the server stamps `Date` with its own
                    // (simulated) clock, also over a real socket.
                    c.filter = opts.knobs.filter.clone();
                    c.filter_mode = opts.knobs.filter_mode;
                    c.status_schedule = schedule;
                    let c = Arc::new(c);
                    configs.insert((os, p.model.clone()), c.clone());
                    c
                }
            };
            let phone_seed = seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(u64::from(p.id));
            let phone = SimPhone::open(
                config,
                transport.clone(),
                time.start,
                phone_seed,
                &calibration,
            )
            .map_err(|e| SimError::Phone {
                person: p.id,
                message: e.to_string(),
            })?;
            phones.push(phone);
        }
        let n = phones.len();
        let mut is_positive = vec![false; n];
        let mut positives: Vec<PositiveRecord> = world
            .positives
            .iter()
            .map(|c| PositiveRecord::new(*c))
            .collect();
        positives.sort_by(|a, b| a.case.declared_at.total_cmp(&b.case.declared_at));
        for (i, p) in positives.iter_mut().enumerate() {
            // Alternate laboratory long codes and doctor short codes.
            p.code = if i % 2 == 0 {
                CodeSource::LabLongCode
            } else {
                CodeSource::DoctorShortCode
            };
            if let Some(f) = is_positive.get_mut(p.case.person as usize) {
                *f = true;
            }
        }
        let place_env = world
            .population
            .places
            .iter()
            .map(|pl| env_index(pl.environment.kind))
            .collect();
        let batch_every = opts.batch_every_hours.map(|h| h * 3600.0);
        let timings = Timings {
            backend_ms: ms(t0),
            ..Timings::default()
        };
        Ok(Self {
            world,
            scenario,
            opts,
            progress,
            seed,
            time,
            backend,
            phones,
            registered_at: vec![None; n],
            id_a: vec![None; n],
            is_positive,
            first_alert: vec![None; n],
            risk_level: vec![0.0; n],
            status_heap: BinaryHeap::new(),
            positives,
            next_positive: 0,
            next_batch: batch_every.filter(|b| *b < world.duration_s),
            batch_runs: 0,
            next_refill: (opts.status_polling == StatusPolling::FinalOnly).then_some(6.0 * 3600.0),
            ebid_owner: FastMap::default(),
            recorder: Recorder::default(),
            gatt_reads: FastMap::default(),
            items: Vec::new(),
            sorted: Vec::new(),
            starts: Vec::new(),
            heard_by_positive: FastMap::default(),
            oracle: FastMap::default(),
            place_env,
            reservoirs: vec![(0, Vec::new()); EnvironmentKind::ALL.len()],
            sample_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5A3F_1E5A_3F1E),
            counts: Counts::default(),
            events: Vec::new(),
            timings,
            status_errors: Vec::new(),
            meter: Meter::default(),
        })
    }

    fn event(&mut self, t: f64, text: String) {
        self.progress.event(&format!("[{}] {text}", clock_label(t)));
        self.events.push(SimEvent { t_s: t, text });
    }

    async fn run(&mut self) -> Result<SimResult, SimError> {
        let t_reg = Instant::now();
        self.backend.set_time(self.time.start);
        self.backend.top_up_lots().await?;
        let mut tp = Throughput {
            concurrency: self.opts.concurrency,
            phone_struct_bytes: size_of::<SimPhone>(),
            rss_before_registration_bytes: proc_status_bytes("VmRSS"),
            server_db_bytes_before_registration: self.backend.server_db_bytes(),
            ..Throughput::default()
        };
        if self.opts.register == RegisterPolicy::AtStart {
            let all: Vec<u32> = (0..self.phones.len())
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
            self.register(&all, 0.0).await?;
            tp.rss_after_registration_bytes = proc_status_bytes("VmRSS");
            tp.server_db_bytes_after_registration = self.backend.server_db_bytes();
            let n = self.counts.registrations;
            if n > 0 {
                let per = |a: Option<u64>, b: Option<u64>| Some((a? as f64 - b? as f64) / n as f64);
                tp.rss_growth_per_registration_bytes = per(
                    tp.rss_after_registration_bytes,
                    tp.rss_before_registration_bytes,
                );
                tp.server_db_bytes_per_registration = per(
                    tp.server_db_bytes_after_registration,
                    tp.server_db_bytes_before_registration,
                );
                let tuples: usize = self
                    .phones
                    .iter()
                    .filter_map(|p| p.phone.registration())
                    .map(|r| r.tuples().len())
                    .sum();
                tp.phone_state_bytes_per_registration =
                    Some((tuples * size_of::<robert_core::tuples::Tuple>()) as f64 / n as f64);
            }
        }
        self.timings.register_ms = ms(t_reg);
        let n_reg = self.counts.registrations;
        let msg = format!(
            "{n_reg} phones registered ({} Android, {} iPhone)",
            self.world
                .population
                .people
                .iter()
                .filter(|p| p.device.platform.os() == Os::Android)
                .count(),
            self.world
                .population
                .people
                .iter()
                .filter(|p| p.device.platform.os() == Os::Ios)
                .count()
        );
        self.event(0.0, msg);

        let t_loop = Instant::now();
        self.time_loop().await?;
        self.timings.simulate_ms = ms(t_loop);

        let t_final = Instant::now();
        self.finish().await?;
        self.timings.final_ms = ms(t_final);

        let t_truth = Instant::now();
        let mut result = self.score().await?;
        self.timings.truth_ms = ms(t_truth);
        let m = &self.meter;
        tp.registrations = m.registrations;
        tp.registration_rounds = m.registration_rounds;
        tp.registration_ms = dur_ms(m.registration);
        tp.registrations_per_s = per_s(m.registrations, m.registration);
        tp.final_status_requests = m.final_status_requests;
        tp.final_status_ms = dur_ms(m.final_status);
        tp.final_status_per_s = per_s(m.final_status_requests, m.final_status);
        tp.run_status_requests = m.run_status_requests;
        tp.run_status_ms = dur_ms(m.run_status);
        tp.reports = m.reports;
        tp.report_ms = dur_ms(m.report);
        tp.reports_per_s = per_s(m.reports, m.report);
        // The kernel updates VmHWM from per-thread counters it syncs lazily,
        // so it can read a little below an RSS sampled earlier: never report
        // a peak under a value we saw.
        tp.peak_rss_bytes = [
            proc_status_bytes("VmHWM"),
            proc_status_bytes("VmRSS"),
            tp.rss_after_registration_bytes,
            tp.rss_before_registration_bytes,
        ]
        .into_iter()
        .flatten()
        .max();
        self.timings.throughput = tp;
        result.timings = self.timings;
        Ok(result)
    }

    /// Registers these phones at simulation time `t`.
    async fn register(&mut self, people: &[u32], t: f64) -> Result<(), SimError> {
        let now = self.time.ntp(t);
        self.backend.set_time(now);
        let wanted: std::collections::BTreeSet<u32> = people.iter().copied().collect();
        let total = wanted.len() as u64;
        let show = total >= 50;
        if show {
            self.progress.phase(&self.world.name, "register", total);
        }
        let concurrency = self.opts.concurrency;
        let started = Instant::now();
        let futs = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(i, p)| {
                u32::try_from(*i).is_ok_and(|i| wanted.contains(&i)) && !p.phone.is_registered()
            })
            .map(|(i, p)| async move {
                let phone = p.at(now);
                let r = phone
                    .register(&mut FixedCaptchaAnswer("sim".to_owned()))
                    .await;
                (i, r)
            });
        let mut stream = futures::stream::iter(futs).buffer_unordered(concurrency);
        let mut done = 0u64;
        let mut results = Vec::new();
        while let Some(r) = stream.next().await {
            done += 1;
            if show {
                self.progress.advance(done);
            }
            results.push(r);
        }
        drop(stream);
        self.meter.registration += started.elapsed();
        self.meter.registration_rounds += 1;
        self.meter.registrations += results.len() as u64;
        if show {
            self.progress.finish_phase();
        }
        results.sort_by_key(|(i, _)| *i);
        for (i, r) in results {
            match r {
                Ok(()) => {
                    self.counts.registrations += 1;
                    self.registered_at[i] = Some(t);
                    self.id_a[i] = self.identify(i);
                    if self.opts.status_polling == StatusPolling::Schedule
                        && let Some(due) = self.phones[i].phone.next_status_due()
                    {
                        self.status_heap
                            .push(Reverse((due.get(), u32::try_from(i).unwrap_or(u32::MAX))));
                    }
                }
                Err(e) => {
                    self.counts.registration_failures += 1;
                    if self.counts.registration_failures <= 3 {
                        let msg = format!("registration of phone {i} failed: {e}");
                        self.event(t, msg);
                    }
                }
            }
        }
        Ok(())
    }

    /// The server-side identity of a registered phone (for exposure scores).
    fn identify(&self, i: usize) -> Option<IdA> {
        let reg = self.phones.get(i)?.phone.registration()?;
        let tuple = reg.tuples().first()?;
        let day = UtcDate::of(reg.epoch_start(tuple.epoch));
        self.backend.id_of(&tuple.ebid, day)
    }

    /// Time of the next event strictly after nothing: status, declaration,
    /// batch, refill check.
    fn next_event(&self) -> f64 {
        let mut next = f64::INFINITY;
        if let Some(Reverse((due, _))) = self.status_heap.peek() {
            next = next.min(self.time.sim(NtpSeconds(*due)));
        }
        if let Some(p) = self.positives.get(self.next_positive) {
            next = next.min(p.case.declared_at);
        }
        if let Some(b) = self.next_batch {
            next = next.min(b);
        }
        if let Some(r) = self.next_refill {
            next = next.min(r);
        }
        next
    }

    /// Processes every event due at or before `t` (within a millisecond).
    async fn process_events(&mut self, t: f64) -> Result<(), SimError> {
        loop {
            let next = self.next_event();
            if next > t + 1e-3 {
                return Ok(());
            }
            let started = Instant::now();
            // Events run at their own time (the loop never steps past one).
            let at = next.max(0.0);
            let now = self.time.ntp(at);
            self.backend.set_time(now);
            let positive_due = self
                .positives
                .get(self.next_positive)
                .is_some_and(|p| p.case.declared_at <= at + 1e-3);
            if positive_due {
                let i = self.next_positive;
                self.next_positive += 1;
                self.declare(i, at).await?;
            } else if self.next_batch.is_some_and(|b| b <= at + 1e-3) {
                self.batch(at).await?;
                let step = self.opts.batch_every_hours.unwrap_or(24.0) * 3600.0;
                self.next_batch = self
                    .next_batch
                    .map(|b| b + step)
                    .filter(|b| *b < self.world.duration_s);
            } else if self.next_refill.is_some_and(|r| r <= at + 1e-3) {
                self.refill(at).await;
                self.next_refill = self.next_refill.map(|r| r + 6.0 * 3600.0);
            } else {
                self.statuses_due(now, at).await;
            }
            self.timings.server_ms += ms(started);
        }
    }

    /// Every phone whose status is due at `now`.
    async fn statuses_due(&mut self, now: NtpSeconds, at: f64) {
        let mut due: Vec<u32> = Vec::new();
        while let Some(Reverse((d, i))) = self.status_heap.peek().copied() {
            if d > now.get() {
                break;
            }
            self.status_heap.pop();
            // Stale heap entries (the phone's schedule moved) are skipped.
            let current = self
                .phones
                .get(i as usize)
                .and_then(|p| p.phone.next_status_due());
            if current == Some(NtpSeconds(d)) {
                due.push(i);
            } else if let Some(c) = current
                && c.get() > now.get()
            {
                self.status_heap.push(Reverse((c.get(), i)));
            }
        }
        due.sort_unstable();
        due.dedup();
        if due.is_empty() {
            return;
        }
        let started = Instant::now();
        let outcomes = self.status_of(&due, now, false).await;
        self.meter.run_status += started.elapsed();
        self.meter.run_status_requests += outcomes
            .iter()
            .filter(|(_, r)| !matches!(r, Ok(None)))
            .count() as u64;
        for (i, r) in outcomes {
            self.after_status(i, r, at);
            if let Some(next) = self.phones[i].phone.next_status_due() {
                self.status_heap
                    .push(Reverse((next.get(), u32::try_from(i).unwrap_or(u32::MAX))));
            }
        }
    }

    /// Sends status requests for `people` at `now`, concurrently.
    async fn status_of(
        &mut self,
        people: &[u32],
        now: NtpSeconds,
        forced: bool,
    ) -> Vec<(usize, Result<Option<f64>, ClientError>)> {
        let concurrency = self.opts.concurrency;
        let mut k = 0usize;
        let futs = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| {
                while k < people.len() && (people[k] as usize) < *i {
                    k += 1;
                }
                k < people.len() && people[k] as usize == *i
            })
            .map(|(i, p)| async move {
                let phone = p.at(now);
                let r = if forced {
                    phone.status().await.map(|o| Some(o.risk_level))
                } else {
                    phone.status_if_due().await.map(|o| o.map(|o| o.risk_level))
                };
                (i, r)
            });
        let mut out: Vec<(usize, Result<Option<f64>, ClientError>)> = futures::stream::iter(futs)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        out.sort_by_key(|(i, _)| *i);
        out
    }

    fn after_status(&mut self, i: usize, r: Result<Option<f64>, ClientError>, at: f64) {
        match r {
            Ok(Some(level)) => {
                self.counts.status_requests += 1;
                self.risk_level[i] = level;
                if level >= 4.0 && self.first_alert[i].is_none() {
                    self.first_alert[i] = Some(at);
                    self.counts.alerts += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.counts.status_requests += 1;
                self.counts.status_failures += 1;
                if self.status_errors.len() < 5 {
                    self.status_errors.push(format!("phone {i}: {e}"));
                }
            }
        }
    }

    /// FinalOnly polling: phones whose EBID stock runs low refill it.
    async fn refill(&mut self, at: f64) {
        let now = self.time.ntp(at);
        let low: Vec<u32> = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| {
                p.clock.set(now);
                p.phone.is_registered() && p.phone.needs_refill()
            })
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        if low.is_empty() {
            return;
        }
        let concurrency = self.opts.concurrency;
        let set: std::collections::BTreeSet<u32> = low.iter().copied().collect();
        let futs = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| u32::try_from(*i).is_ok_and(|i| set.contains(&i)))
            .map(|(_, p)| async move { p.at(now).ensure_identity().await.is_ok() });
        let started = Instant::now();
        let results: Vec<bool> = futures::stream::iter(futs)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        self.meter.run_status += started.elapsed();
        self.meter.run_status_requests += results.len() as u64;
        self.counts.status_requests += results.len() as u64;
        self.counts.status_failures += results.iter().filter(|ok| !**ok).count() as u64;
    }

    /// A positive case declares itself: code, then SDK report.
    async fn declare(&mut self, k: usize, at: f64) -> Result<(), SimError> {
        let now = self.time.ntp(at);
        let case = self.positives[k].case;
        let source = self.positives[k].code;
        let person = case.person;
        let basis = match case.symptom_onset_at {
            Some(onset) => ReportBasis::SymptomOnset(self.time.ntp(onset)),
            None => ReportBasis::PositiveTest(now),
        };
        let code = self.backend.code(source).await?;
        let Some(sim_phone) = self.phones.get_mut(person as usize) else {
            return Err(SimError::Phone {
                person,
                message: "unknown person".into(),
            });
        };
        let phone = sim_phone.at(now);
        let window = report_window(now, basis, &phone.config().report_spans);
        // What the phone holds and what the report will carry, per sender.
        let mut held: FastMap<u32, usize> = FastMap::default();
        let mut in_window_groups: FastMap<u32, usize> = FastMap::default();
        for (key, records) in phone.contacts().groups() {
            let Some(&(owner, _)) = self.ebid_owner.get(&ebid_key(&key.ebid)) else {
                continue;
            };
            *held.entry(owner).or_default() += records.len();
            if records.iter().any(|r| window.contains(r.time_collected)) {
                *in_window_groups.entry(owner).or_default() += 1;
            }
        }
        if self.opts.record {
            let owners = &self.ebid_owner;
            let oracle = &self.oracle;
            let groups = crate::recording::record_groups(
                phone.contacts().groups(),
                |key| owners.get(&ebid_key(&key.ebid)).copied(),
                |sender, t| oracle.get(&(person, sender, t)).copied(),
                robert_server::batch::HelloConfig::default().time_tolerance_secs,
            );
            self.recorder.reports.push(crate::recording::ReportRecord {
                person,
                declared_s: at,
                window_ntp: (window.from.get(), window.to.get()),
                uploaded: false,
                groups,
            });
        }
        let selection = phone.prepare_report(basis);
        let mut reported: FastMap<u32, (usize, usize)> = FastMap::default();
        for c in &selection.contacts {
            if let Some(&(owner, _)) = self.ebid_owner.get(&ebid_key(&c.key.ebid)) {
                let e = reported.entry(owner).or_default();
                e.0 += c.records.len();
                e.1 += 1;
            }
        }
        let started = Instant::now();
        let result = phone.report(&code, basis).await;
        self.meter.report += started.elapsed();
        self.meter.reports += 1;
        drop(code);
        let rec = &mut self.positives[k];
        rec.declared = true;
        rec.window = (self.time.sim(window.from), self.time.sim(window.to));
        rec.held = held;
        rec.reported = reported.iter().map(|(o, (h, _))| (*o, *h)).collect();
        rec.filtered = in_window_groups
            .iter()
            .map(|(o, g)| (*o, g.saturating_sub(reported.get(o).map_or(0, |r| r.1))))
            .collect();
        let text = match result {
            Ok(out) => {
                if self.opts.record
                    && let Some(r) = self.recorder.reports.last_mut()
                {
                    r.uploaded = true;
                }
                rec.contacts_sent = out.contacts_sent;
                rec.hellos_sent = out.hellos_sent;
                rec.rejected_groups = out.rejected_groups;
                self.counts.reports += 1;
                self.counts.reported_contacts += out.contacts_sent as u64;
                self.counts.reported_hellos += out.hellos_sent as u64;
                self.counts.filter_rejected_groups += out.rejected_groups as u64;
                format!(
                    "person {person} tests positive and reports with a {}: {} EBID groups ({} HELLOs) uploaded, {} kept back by the on-device filter",
                    match source {
                        CodeSource::LabLongCode => "laboratory long code",
                        CodeSource::DoctorShortCode => "doctor's short code",
                    },
                    out.contacts_sent,
                    out.hellos_sent,
                    out.rejected_groups
                )
            }
            Err(e) => {
                rec.error = Some(e.to_string());
                self.counts.report_failures += 1;
                format!("person {person}: report FAILED: {e}")
            }
        };
        self.event(at, text);
        Ok(())
    }

    async fn batch(&mut self, at: f64) -> Result<(), SimError> {
        self.batch_runs += 1;
        self.recorder.batches_s.push(at);
        let report = self
            .backend
            .run_batch(self.seed.wrapping_add(self.batch_runs))
            .await?;
        self.counts.batch_runs += 1;
        self.counts.batch_contacts_processed += report.contacts_processed;
        self.counts.batch_contacts_scored += report.contacts_scored;
        self.counts.batch_hellos_valid += report.hellos_valid;
        self.counts.batch_risk_detections += report.registrations_at_risk;
        if report.contacts_processed > 0 || report.registrations_at_risk > 0 {
            let text = format!(
                "risk batch: {} contacts scored ({} valid HELLOs), {} registrations at risk",
                report.contacts_scored, report.hellos_valid, report.registrations_at_risk
            );
            self.event(at, text);
        }
        Ok(())
    }

    async fn time_loop(&mut self) -> Result<(), SimError> {
        let world = self.world;
        let end = world.duration_s;
        let mut sweep = world
            .pair_sweep()
            .map_err(|e| SimError::Backend(format!("pair sweep: {e}")))?;
        let n = world.population.people.len();
        let mut links: FastMap<(PersonId, PersonId), (PairLink, f64)> = FastMap::default();
        let mut pairs: Vec<NearPair> = Vec::new();
        let mut buf: Vec<Reception> = Vec::new();
        let mut buf_place: Vec<u32> = Vec::new();
        let mut degree = vec![0u32; n];
        let mut radio_rng = ChaCha8Rng::seed_from_u64(self.seed);
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
            let next_start = sweep.next_start().unwrap_or(f64::INFINITY);
            let cap = |t: f64, step: f64| {
                let mut t_next = t + step;
                for c in [next_start, end] {
                    if c > t + 1e-3 && c < t_next {
                        t_next = c;
                    }
                }
                t_next
            };
            if pairs.is_empty() {
                t = if sweep.present_count() == 0 {
                    let mut t_next = next_start.min(end);
                    if t_next <= t + 1e-3 {
                        t_next = cap(t, self.opts.step_moving_s);
                    }
                    t_next
                } else {
                    cap(t, self.opts.step_static_s)
                };
                continue;
            }
            if self.opts.register == RegisterPolicy::Lazy {
                to_register.clear();
                for p in &pairs {
                    for id in [p.a, p.b] {
                        if self.registered_at[id as usize].is_none() {
                            to_register.push(id);
                        }
                    }
                }
                if !to_register.is_empty() {
                    to_register.sort_unstable();
                    to_register.dedup();
                    let ids = std::mem::take(&mut to_register);
                    let started = Instant::now();
                    self.register(&ids, t).await?;
                    self.timings.server_ms += ms(started);
                    // Failed registrations are not retried at every step.
                    for &id in &ids {
                        if self.registered_at[id as usize].is_none() {
                            self.registered_at[id as usize] = Some(f64::INFINITY);
                        }
                    }
                    to_register = ids;
                }
            }
            let moving = pairs.iter().any(|p| {
                [p.a, p.b].iter().any(|&id| {
                    world
                        .population
                        .person(id)
                        .and_then(|pp| pp.trajectory.segment_at(t))
                        .is_some_and(|s| s.from != s.to)
                })
            });
            let step = if moving {
                self.opts.step_moving_s
            } else {
                self.opts.step_static_s
            };
            let t_next = cap(t, step);
            let dt = t_next - t;
            self.counts.steps += 1;

            // Radio: every near pair over [t, t + dt).
            for p in &pairs {
                for id in [p.a, p.b] {
                    if let Some(d) = degree.get_mut(id as usize) {
                        *d += 1;
                    }
                }
            }
            buf.clear();
            buf_place.clear();
            for p in &pairs {
                let deg = |id: PersonId| degree.get(id as usize).copied().unwrap_or(1);
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
                let entry = links.entry((p.a, p.b)).or_default();
                entry.1 = t;
                let before = buf.len();
                step_model(
                    model,
                    &mut entry.0,
                    &ea,
                    &eb,
                    t,
                    dt,
                    &ctx,
                    &mut radio_rng,
                    &mut buf,
                );
                buf_place.extend(std::iter::repeat_n(p.place, buf.len() - before));
                self.counts.pair_steps += 1;
            }
            for p in &pairs {
                for id in [p.a, p.b] {
                    if let Some(d) = degree.get_mut(id as usize) {
                        *d = 0;
                    }
                }
            }
            self.deliver(&buf, &buf_place);
            if self.counts.steps.is_multiple_of(1024) {
                links.retain(|_, (_, seen)| t - *seen <= 900.0);
            }
            t = t_next;
        }
        self.progress.advance(end as u64);
        self.progress.finish_phase();
        Ok(())
    }

    /// Hands every reception of a step to the receiving SDK: payloads are
    /// built (sequentially: senders' caches), then receivers record them,
    /// in parallel over receivers when the step is large.
    fn deliver(&mut self, buf: &[Reception], places: &[u32]) {
        let world = self.world;
        let mut items = std::mem::take(&mut self.items);
        items.clear();
        for (r, &place) in buf.iter().zip(places) {
            self.counts.radio_receptions += 1;
            match r.via {
                Via::Advert => self.counts.via_advert += 1,
                Via::IosWrite { .. } => self.counts.via_ios_write += 1,
                Via::PartialRssiWrite { .. } => self.counts.via_partial_rssi_write += 1,
                Via::GattRead => self.counts.via_gatt_read += 1,
                Via::CachedRead { .. } => self.counts.via_cached_read += 1,
            }
            let (s, rcv) = (r.sender as usize, r.receiver as usize);
            if s == rcv || s >= self.phones.len() || rcv >= self.phones.len() {
                continue;
            }
            let env = self.place_env.get(place as usize).copied().unwrap_or(0);
            let receiver_gains = world
                .population
                .person(r.receiver)
                .map(|p| p.device.app_gains);
            self.sample_rssi(r, env, receiver_gains);
            if self.is_positive[rcv] {
                *self
                    .heard_by_positive
                    .entry((r.receiver, r.sender, place))
                    .or_default() += 1;
                if self.opts.record {
                    let key = (r.receiver, r.sender, self.time.ntp(r.t).get());
                    if !self.oracle.contains_key(&key)
                        && let Some(f) = oracle_facts(world, r, place)
                    {
                        self.oracle.insert(key, f);
                    }
                }
            } else if self.opts.delivery == Delivery::PositivesOnly {
                self.counts.hellos_not_stored += 1;
                continue;
            }
            // The payload the sender's SDK built for this exchange.
            let (built_at, advert) = match r.via {
                Via::Advert => {
                    let epoch_start = (r.t / 900.0).floor() * 900.0;
                    let started = self.registered_at[s].unwrap_or(0.0).min(r.t);
                    (
                        advert_payload_built_at(r.t, epoch_start, started, HELLO_REFRESH_S),
                        true,
                    )
                }
                Via::CachedRead { read_at } => (read_at, false),
                _ => (r.t, false),
            };
            let built_ntp = self.time.ntp(built_at);
            // An iPhone reusing a payload it read earlier gets the very bytes
            // it read (the sender may have purged that EBID since).
            let cached = match r.via {
                Via::CachedRead { .. } => self.gatt_reads.get(&(r.sender, r.receiver)).copied(),
                _ => None,
            };
            let payload = match cached {
                Some(p) => p,
                None => {
                    let sender = &mut self.phones[s];
                    let before = if advert {
                        sender.advert.at
                    } else {
                        sender.fresh.at
                    };
                    let Some(payload) = sender.payload_at(built_ntp, advert) else {
                        self.counts.hellos_unavailable += 1;
                        continue;
                    };
                    if before != built_ntp.get() {
                        self.counts.hellos_built += 1;
                        self.ebid_owner.insert(
                            payload_ebid(&payload),
                            (r.sender, built_ntp.get() / EPOCH_DURATION_SECS),
                        );
                    }
                    payload
                }
            };
            if matches!(r.via, Via::GattRead) {
                self.gatt_reads.insert((r.sender, r.receiver), payload);
            }
            let tx = match (r.via, receiver_gains) {
                // The 19-byte write carries a partial RSSI that the receiver
                // finishes with its own TX gain; the SDK takes (raw, sender
                // TX gain), so pass the TX gain that yields the same value.
                (Via::PartialRssiWrite { partial_rssi }, Some(g)) => {
                    let target =
                        robert_radio::calibration::finish_partial(i32::from(partial_rssi), g.tx);
                    robert_radio::calibration::saturate_i8(
                        i32::from(r.raw_rssi) - i32::from(g.rx) - target,
                    )
                }
                _ => r.sender_tx_gain,
            };
            let mut hello = [0u8; 16];
            hello.copy_from_slice(&payload[..16]);
            items.push(Item {
                receiver: r.receiver,
                at: self.time.ntp(r.t).get(),
                hello,
                raw: i16::from(r.raw_rssi),
                tx,
            });
        }
        let tally = if items.len() >= PARALLEL_MIN_ITEMS {
            // Counting sort by receiver (stable: each sender's HELLOs stay in
            // time order), then one task per receiving phone.
            let n = self.phones.len();
            let mut starts = std::mem::take(&mut self.starts);
            starts.clear();
            starts.resize(n + 1, 0);
            for it in &items {
                starts[it.receiver as usize + 1] += 1;
            }
            for i in 0..n {
                starts[i + 1] += starts[i];
            }
            let mut sorted = std::mem::take(&mut self.sorted);
            sorted.clear();
            sorted.resize(items.len(), Item::default());
            let mut next = starts.clone();
            for it in &items {
                let slot = &mut next[it.receiver as usize];
                sorted[*slot] = *it;
                *slot += 1;
            }
            let tally = self
                .phones
                .par_iter_mut()
                .enumerate()
                .filter(|(i, _)| starts[*i] < starts[*i + 1])
                .map(|(i, p)| receive_all(p, &sorted[starts[i]..starts[i + 1]]))
                .reduce(Tally::default, Tally::add);
            self.starts = starts;
            self.sorted = sorted;
            tally
        } else {
            let mut t = Tally::default();
            for it in &items {
                t = t.add(receive_all(
                    &mut self.phones[it.receiver as usize],
                    std::slice::from_ref(it),
                ));
            }
            t
        };
        self.counts.hellos_recorded += tally.recorded;
        self.counts.hellos_duplicate += tally.duplicate;
        self.counts.hellos_stale += tally.stale;
        self.counts.hellos_other_rejected += tally.other;
        self.items = items;
    }

    fn sample_rssi(
        &mut self,
        r: &Reception,
        env: usize,
        gains: Option<robert_radio::calibration::Gains>,
    ) {
        let cap = self.opts.rssi_samples_per_environment;
        if cap == 0 {
            return;
        }
        let Some((seen, samples)) = self.reservoirs.get_mut(env) else {
            return;
        };
        *seen += 1;
        let slot = if samples.len() < cap {
            None
        } else {
            let j = self.sample_rng.random_range(0..*seen);
            match usize::try_from(j) {
                Ok(j) if j < cap => Some(j),
                _ => return,
            }
        };
        let pose = |id: u32| {
            self.world
                .population
                .person(id)
                .and_then(|p| p.trajectory.pose_at(r.t))
        };
        let (Some(a), Some(b), Some(g)) = (pose(r.sender), pose(r.receiver), gains) else {
            return;
        };
        let sample = RssiSample {
            environment: EnvironmentKind::ALL
                .get(env)
                .map_or("outdoor", |k| k.name()),
            distance_m: a.position.distance(b.position) as f32,
            rssi_raw: r.raw_rssi,
            rssi_calibrated: i16::try_from(r.calibrated_rssi(g)).unwrap_or(i16::MIN),
            via: via_name(&r.via),
        };
        match slot {
            None => samples.push(sample),
            Some(j) => samples[j] = sample,
        }
    }

    /// End of the run: batch, then every registered phone asks its status
    /// an hour later; exposure scores are read from the server.
    async fn finish(&mut self) -> Result<(), SimError> {
        let end = self.world.duration_s;
        self.backend.set_time(self.time.ntp(end));
        self.batch(end).await?;
        let at = end + 3600.0;
        self.recorder.final_status_s = at;
        let now = self.time.ntp(at);
        self.backend.set_time(now);
        let people: Vec<u32> = self
            .phones
            .iter()
            .enumerate()
            .filter(|(_, p)| p.phone.is_registered())
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        self.progress
            .phase(&self.world.name, "final status", people.len() as u64);
        let started = Instant::now();
        let outcomes = self.status_of(&people, now, true).await;
        self.meter.final_status += started.elapsed();
        self.meter.final_status_requests += outcomes.len() as u64;
        for (i, r) in outcomes {
            self.after_status(i, r, at);
        }
        self.progress.finish_phase();
        let alerted = self.first_alert.iter().filter(|a| a.is_some()).count();
        let text = format!(
            "every phone asks its status: {} requests, {} phones at risk level 4{}",
            people.len(),
            alerted,
            if self.counts.status_failures > 0 {
                format!(
                    " ({} status failures during the run, e.g. {})",
                    self.counts.status_failures,
                    self.status_errors.first().map_or("", String::as_str)
                )
            } else {
                String::new()
            }
        );
        self.event(at, text);
        Ok(())
    }

    async fn score(&mut self) -> Result<SimResult, SimError> {
        let mut server_score = vec![0.0f64; self.phones.len()];
        for (i, id) in self.id_a.iter().enumerate() {
            if let Some(id) = id {
                server_score[i] = self.backend.exposure_score(*id).await?;
            }
        }
        let hellos_held: Vec<usize> = self
            .phones
            .iter()
            .map(|p| p.phone.contacts().len())
            .collect();
        let exposures = if self.opts.record || self.opts.keep_phone_outcomes {
            let cases: Vec<u32> = self.positives.iter().map(|r| r.case.person).collect();
            let windows: Vec<(f64, f64)> = self
                .positives
                .iter()
                .map(|r| {
                    if r.declared {
                        r.window
                    } else {
                        score::nominal_window(self.time, &r.case)
                    }
                })
                .collect();
            crate::recording::pair_exposures(
                self.world,
                &cases,
                &windows,
                &self.is_positive,
                &crate::recording::TRUTH_DISTANCES_M,
            )
        } else {
            Vec::new()
        };
        let facts = RunFacts {
            world: self.world,
            scenario: self.scenario,
            opts: self.opts,
            time: self.time,
            positives: &self.positives,
            is_positive: &self.is_positive,
            registered: &self
                .registered_at
                .iter()
                .map(|r| r.is_some_and(f64::is_finite))
                .collect::<Vec<_>>(),
            first_alert: &self.first_alert,
            risk_level: &self.risk_level,
            server_score: &server_score,
            hellos_held: &hellos_held,
            heard_by_positive: &self.heard_by_positive,
            exposures: &exposures,
        };
        let mut result = score::score(&facts);
        if self.opts.record {
            result.recording = Some(Box::new(self.recorder.finish(&facts)));
        }
        result.counts = self.counts.clone();
        result.events = std::mem::take(&mut self.events);
        let mut samples = Vec::new();
        for (_, s) in &self.reservoirs {
            samples.extend_from_slice(s);
        }
        result.rssi_samples = samples;
        Ok(result)
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

/// Below this many HELLOs in a step, receivers are served sequentially: on
/// the 2-core reference machine the parallel path only pays off for large
/// steps (the demo town, with up to ~3,000 HELLOs per step, runs as fast
/// sequentially).
const PARALLEL_MIN_ITEMS: usize = 8192;

/// A HELLO to hand to a receiving SDK.
#[derive(Clone, Copy, Debug, Default)]
struct Item {
    receiver: u32,
    /// Reception second (NTP).
    at: u64,
    hello: [u8; 16],
    raw: i16,
    tx: i8,
}

/// Outcomes of `receive_hello` calls.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    recorded: u64,
    duplicate: u64,
    stale: u64,
    other: u64,
}

impl Tally {
    fn add(self, o: Self) -> Self {
        Self {
            recorded: self.recorded + o.recorded,
            duplicate: self.duplicate + o.duplicate,
            stale: self.stale + o.stale,
            other: self.other + o.other,
        }
    }
}

/// One phone records its HELLOs of the step, in order.
/// The true plan distance (cm) and noiseless model level (tenths of dB)
/// of a reception in `place` (recording only; see
/// [`crate::recording::GroupRecord::distance_cm`]).
fn oracle_facts(world: &World, r: &Reception, place: u32) -> Option<crate::recording::OracleFacts> {
    // A reception reported after one of the two left (end of a step,
    // a batched report): the last geometry before it.
    let pose = |id: u32| {
        let p = world.population.person(id)?;
        [0.0, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0]
            .into_iter()
            .find_map(|back| p.trajectory.pose_at(r.t - back))
    };
    let (a, b) = (pose(r.sender)?, pose(r.receiver)?);
    let env = world.population.places.get(place as usize)?.environment;
    let d = a.position.distance(b.position);
    let level =
        world.anchor_db - (env.path_loss_db(d) - robert_radio::channel::FREE_SPACE_LOSS_1M_DB);
    Some((
        (d * 100.0).round().clamp(0.0, f64::from(u16::MAX - 1)) as u16,
        (level * 10.0)
            .round()
            .clamp(f64::from(i16::MIN + 1), f64::from(i16::MAX)) as i16,
    ))
}

fn receive_all(phone: &mut SimPhone, items: &[Item]) -> Tally {
    let mut t = Tally::default();
    for it in items {
        match phone
            .at(NtpSeconds(it.at))
            .receive_hello(&it.hello, it.raw, it.tx)
        {
            Ok(()) => t.recorded += 1,
            Err(ReceiveError::Duplicate) => t.duplicate += 1,
            Err(ReceiveError::StaleTime) => t.stale += 1,
            Err(_) => t.other += 1,
        }
    }
    t
}

fn payload_ebid(payload: &[u8; 18]) -> u64 {
    let mut e = [0u8; 8];
    e.copy_from_slice(&payload[1..9]);
    u64::from_be_bytes(e)
}

pub(crate) fn ebid_key(e: &Ebid) -> u64 {
    u64::from_be_bytes(e.0)
}

/// `d1 14:05` style label of a simulation time.
pub fn clock_label(t: f64) -> String {
    let t = t.max(0.0);
    let day = (t / 86_400.0).floor();
    let rest = t - day * 86_400.0;
    let h = (rest / 3600.0).floor();
    let m = ((rest - h * 3600.0) / 60.0).floor();
    format!("day {} {:02}:{:02} UTC", day as u64, h as u64, m as u64)
}
