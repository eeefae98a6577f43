//! The measurement behind `robert push bench` (docs/push.md): a mock APNs
//! on 127.0.0.1, a throwaway database holding `tokens` tokens all due
//! (planned over the past `window_secs`), and one scan of the real sender.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::{Rng as _, RngExt as _};
use robert_clock::{Clock as _, SystemClock};

use crate::config::Config;
use crate::jwt::{JwtError, ProviderToken, generate_p8};
use crate::mock_apns::{MockApns, MockApnsConfig, MockError};
use crate::service::{PushService, ServiceError};
use crate::store::{StoreError, TokenStore};

/// Why the measurement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The mock.
    #[error(transparent)]
    Mock(#[from] MockError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The provider key.
    #[error(transparent)]
    Key(#[from] JwtError),
    /// Files.
    #[error("bench files: {0}")]
    Io(#[from] std::io::Error),
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
    let dir = tempdir()?;
    let clock = Arc::new(SystemClock);
    let p8 = generate_p8();
    let (team, kid, topic) = ("TEAM123456", "KEY1234567", "fr.gouv.stopcovid.ios");
    let jwt = ProviderToken::from_p8(&p8, kid, team, 2400)?;
    let mock = MockApns::start(MockApnsConfig {
        team_id: team.into(),
        key_id: kid.into(),
        topic: topic.into(),
        public_key_pem: jwt.public_key_pem(),
        clock: clock.clone(),
    })
    .await?;
    mock.set_recording(false);
    let ca = dir.0.join("mock-apns.pem");
    std::fs::write(&ca, mock.cert_pem())?;
    let mut cfg = Config::default();
    cfg.apns.urls = vec![mock.url()];
    cfg.apns.team_id = team.into();
    cfg.apns.key_id = kid.into();
    cfg.apns.topic = topic.into();
    cfg.apns.ca_file = Some(ca);
    if let Some(r) = opts.rate {
        cfg.apns.max_per_second = r;
    }
    if let Some(n) = opts.in_flight {
        cfg.apns.max_in_flight = n;
    }
    cfg.schedule.batch_size = opts.batch;
    cfg.database_url = opts
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.0.join("push.db").display()));
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
    let svc = PushService::with_parts(&cfg, store, jwt, clock)?;
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
        mock_answers: mock.by_status(),
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

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

fn tempdir() -> std::io::Result<TempDir> {
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    let p = std::env::temp_dir().join(format!("robert-push-bench-{}", hex::encode(b)));
    std::fs::create_dir_all(&p)?;
    Ok(TempDir(p))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
