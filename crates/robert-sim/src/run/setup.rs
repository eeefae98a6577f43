//! Setup: the backend, one SDK phone per person, the positive cases.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::ChaCha8Rng;
use robert_client::schedule::StatusScheduleParams;
use robert_client::{DeviceModel, PhoneConfig, ReqwestTransport, RetryPolicy, ServiceTransport};
use robert_core::time::UtcDate;
use robert_radio::calibration::Os;
use robert_radio::channel::EnvironmentKind;
use robert_radio::scenario::{Scenario, World};

use crate::backend::{Backend, CodeSource};
use crate::common::{FastMap, TimeBase, env_index};
use crate::error::SimError;
use crate::options::{SimOptions, StatusPolling, TransportMode};
use crate::phones::{SimPhone, SimTransport};
use crate::progress::Progress;
use crate::result::{Counts, Timings};
use crate::score::PositiveRecord;

use super::{Meter, Recorder, Sim, ms};

impl<'w> Sim<'w> {
    pub(super) async fn new(
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
}
