//! The measurement behind `robert push bench` (docs/push.md): a mock APNs
//! on 127.0.0.1, a throwaway database holding `tokens` tokens all due
//! (planned over the past `window_secs`), and one scan of the real sender.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng as _, RngExt as _};
use robert_clock::{Clock as _, SystemClock};

use crate::local::{LocalApns, LocalError};
use crate::service::{PushService, ServiceError};
use crate::store::{StoreError, TokenStore};

/// Why the measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The mock APNs and its key.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Tokens inserted, all due.
    pub tokens: u32,
    /// The window they were planned in, seconds.
    pub window_secs: i64,
    /// `apns.max_per_second` (None: the default).
    pub rate: Option<u32>,
    /// `apns.max_in_flight` (None: the default).
    pub in_flight: Option<usize>,
    /// `schedule.batch_size`.
    pub batch: u32,
    /// Database (None: SQLite in a temporary directory).
    pub database_url: Option<String>,
}

/// What was measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// Tokens inserted.
    pub tokens: u64,
    /// Seconds to insert them.
    pub insert_secs: f64,
    /// Seconds from the start of the scan to the last outcome recorded.
    pub push_secs: f64,
    /// Accepted pushes per second.
    pub pushes_per_sec: f64,
    /// Claimed by the scan.
    pub claimed: u64,
    /// Accepted.
    pub accepted: u64,
    /// Failed.
    pub failed: u64,
    /// Deactivated.
    pub invalid: u64,
    /// The mock's answers per status code.
    pub mock_answers: BTreeMap<u16, u64>,
    /// The rate cap used.
    pub max_per_second: u32,
    /// The in-flight cap used.
    pub max_in_flight: usize,
    /// The batch size used.
    pub batch_size: u32,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// Whether every token was pushed within `window_secs`.
    pub within_window: bool,
}

/// Runs the measurement.
pub async fn run(opts: &BenchOptions) -> Result<BenchReport, BenchError> {
    let clock = Arc::new(SystemClock);
    let local = LocalApns::start(clock.clone()).await?;
    local.mock.set_recording(false);
    let mut cfg = local.config.clone();
    if let Some(r) = opts.rate {
        cfg.apns.max_per_second = r;
    }
    if let Some(n) = opts.in_flight {
        cfg.apns.max_in_flight = n;
    }
    cfg.schedule.batch_size = opts.batch;
    if let Some(url) = &opts.database_url {
        cfg.database_url = url.clone();
    }
    cfg.validate().map_err(ServiceError::from)?;
    let store = TokenStore::open(&cfg.database_url, cfg.max_connections).await?;
    let now = clock.now_unix();
    let t0 = Instant::now();
    let mut rng = rand::rng();
    let zones = [
        "Europe/Paris",
        "America/Cayenne",
        "Indian/Reunion",
        "Pacific/Noumea",
    ];
    let window = opts.window_secs.max(1);
    let rows: Vec<(String, String, i64)> = (0..opts.tokens)
        .map(|i| {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            let planned = now - rng.random_range(1..=window);
            (
                hex::encode(b),
                zones[i as usize % zones.len()].to_owned(),
                planned,
            )
        })
        .collect();
    let inserted = store.insert_bulk(rows, now).await?;
    let insert_secs = t0.elapsed().as_secs_f64();
    let svc = PushService::with_parts(&cfg, store, local.provider_token()?, clock)?;
    let t1 = Instant::now();
    let report = svc.scan().await?;
    let push_secs = t1.elapsed().as_secs_f64();
    Ok(BenchReport {
        tokens: inserted,
        insert_secs,
        push_secs,
        pushes_per_sec: report.accepted as f64 / push_secs.max(1e-9),
        claimed: report.claimed,
        accepted: report.accepted,
        failed: report.failed,
        invalid: report.invalid,
        mock_answers: local.mock.by_status(),
        max_per_second: cfg.apns.max_per_second,
        max_in_flight: cfg.apns.max_in_flight,
        batch_size: cfg.schedule.batch_size,
        database: if cfg.database_url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        },
        within_window: push_secs < window as f64,
    })
}
