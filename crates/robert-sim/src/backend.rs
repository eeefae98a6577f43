//! The real backend, in process, on the simulated clock: the ROBERT server
//! (`robert_server`, embedded SQLite store, captcha `accept-any`) and the
//! submission-code service (`robert_codes`, its own SQLite store), on one
//! manual clock, whose claim API the server calls over HTTP on 127.0.0.1 as
//! in production. The server is assembled by [`robert_server::serve::ServerBuilder`], as
//! `robert serve` assembles it, from keys made here.
//!
//! Phones reach the server either through its axum `Router` directly
//! ([`TransportMode::InProcess`]) or through a real listener on
//! `127.0.0.1:0` served by [`robert_server::serve::run`], the code behind
//! `robert serve` ([`TransportMode::Http`]).

use std::collections::VecDeque;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use robert_codes::service::Channel;
use robert_codes::{CodeKind, CodesService};
use robert_core::ebid::Ebid;
use robert_core::id_a::IdA;
use robert_core::time::{NtpSeconds, ServiceStart, UtcDate};
use robert_server::batch::{BatchConfig, BatchReport};
use robert_server::clock::ManualClock;
use robert_server::config::{CaptchaMode, Config};
use robert_server::keystore::KeySet;
use robert_server::serve::ServerBuilder;
use robert_server::state::AppState;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::error::SimError;
use crate::options::{Knobs, TransportMode};

/// Which kind of submission code a positive case used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeSource {
    /// A laboratory's long code (UUID) taken from a daily lot, as printed
    /// on the result letter's QR code.
    LabLongCode,
    /// A doctor's 6-character short code, issued minutes before use.
    DoctorShortCode,
}

/// The server, the code service and their clocks.
pub(crate) struct Backend {
    pub(crate) state: AppState,
    pub(crate) router: Router,
    /// The one clock of the server and the code service.
    clock: ManualClock,
    codes: CodesService,
    codes_shutdown: Option<oneshot::Sender<()>>,
    server_shutdown: Option<oneshot::Sender<()>>,
    /// Base URL phones use.
    pub(crate) server_url: String,
    /// The server's registration public key, base64 SPKI.
    pub(crate) public_key_b64: String,
    lots_dir: PathBuf,
    /// Unused laboratory codes, by validity day (Paris), oldest first.
    lab_codes: VecDeque<(chrono::NaiveDate, Zeroizing<String>)>,
    seen_archives: std::collections::BTreeSet<PathBuf>,
    batch: BatchConfig,
    /// The server's SQLite database file.
    server_db: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

fn backend_err(what: &str, e: impl std::fmt::Display) -> SimError {
    SimError::Backend(format!("{what}: {e}"))
}

impl Backend {
    /// Starts everything at `start` (NTP), with keys for `first_day ..= last_day`.
    pub(crate) async fn start(
        start: NtpSeconds,
        last_day: UtcDate,
        knobs: &Knobs,
        transport: TransportMode,
        data_dir: Option<&Path>,
        codes_per_day: u64,
        seed: u64,
    ) -> Result<Self, SimError> {
        let (tmp, dir) = match data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| backend_err("data directory", e))?;
                (None, d.to_path_buf())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("robert-sim-")
                    .tempdir()
                    .map_err(|e| backend_err("temporary directory", e))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_BAC0_E7D5);
        let today = UtcDate::of(start);
        let clock = ManualClock::at_ntp(start);

        // --- The code service, listening on 127.0.0.1:0 (the server calls its verify API).
        let codes_db = dir.join("codes.db");
        remove_db(&codes_db);
        let mut pepper = [0u8; 32];
        rng.fill_bytes(&mut pepper);
        let lots_dir = dir.join("lots");
        let _ = std::fs::remove_dir_all(&lots_dir);
        let mut codes_config = robert_codes::Config::from_toml(&format!(
            "[[peppers]]\nid = \"sim\"\nsecret = \"{}\"\n\n[api]\nverify_per_second = 100000\nverify_burst = 100000\n",
            robert_core::b64::encode(pepper)
        ))
        .map_err(|e| backend_err("code service configuration", e))?;
        codes_config.database_url = format!("sqlite://{}?mode=rwc", codes_db.display());
        codes_config.max_connections = 4;
        codes_config.lots.output_dir = lots_dir.clone();
        codes_config.lots.days_ahead = 11;
        codes_config.lots.schedule = vec![robert_codes::config::ScheduleEntry {
            start_date: chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default(),
            daily_volume: codes_per_day.max(1),
        }];
        // The same front door as `robert codes serve`, on the shared clock.
        let codes = CodesService::open(codes_config, Arc::new(clock.clone()))
            .await
            .map_err(|e| backend_err("code service", e))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| backend_err("code service listener", e))?;
        let codes_addr: SocketAddr = listener
            .local_addr()
            .map_err(|e| backend_err("code service listener", e))?;
        let (codes_tx, codes_rx) = oneshot::channel::<()>();
        let codes_router = codes.router();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                codes_router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = codes_rx.await;
            })
            .await;
        });

        // --- The ROBERT server.
        let server_db = dir.join("robert.db");
        remove_db(&server_db);
        let mut config = Config::default();
        config.server.data_dir = dir.clone();
        config.captcha.mode = CaptchaMode::AcceptAny;
        config.codes.url = format!("http://{codes_addr}");
        config.codes.timeout_ms = 30_000;
        // The service must have started before the scenario (the FAQ's
        // field tests predate the June 2020 launch).
        let service_start = service_start_for(today);
        config.protocol.service_start = service_start;
        config.batch.service_start = service_start;
        config.batch.scoring = knobs.scoring.clone();
        config.batch.risk_threshold = knobs.risk_threshold;
        // Durability across power loss is pointless here.
        config.store.sqlite_full_sync = false;
        // No token consumer to please, and RSA key generation would cost
        // about a second per run: the generated ES256 keys sign the tokens.
        config.jwt.algorithm = robert_server::config::JwtAlgorithm::ES256;
        let mut set = KeySet::default();
        set.fill_missing(today.add_days(-20), last_day.add_days(2), true, &mut rng);
        let batch = config.batch.clone();
        // The same builder as `robert serve`, with keys made here; it opens
        // the configured database (`robert.db` in the data directory).
        let state = ServerBuilder::new(config, Arc::new(clock.clone()))
            .keys(set)
            .build()
            .await
            .map_err(|e| backend_err("server", e))?;
        let public_key_b64 = state.keys.get().registration().public_key_base64();
        let router = robert_server::api::app(state.clone());
        let (server_url, server_shutdown) = match transport {
            TransportMode::InProcess => ("http://robert.sim".to_owned(), None),
            TransportMode::Http => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| backend_err("server listener", e))?;
                let addr = listener
                    .local_addr()
                    .map_err(|e| backend_err("server listener", e))?;
                let (tx, rx) = oneshot::channel::<()>();
                let st = state.clone();
                tokio::spawn(async move {
                    let shutdown = async {
                        let _ = rx.await;
                    };
                    // A failing listener shows up as failed phone requests.
                    let _ = robert_server::serve::run(st, listener, None, shutdown).await;
                });
                (format!("http://{addr}"), Some(tx))
            }
        };
        Ok(Self {
            state,
            router,
            clock,
            codes,
            codes_shutdown: Some(codes_tx),
            server_shutdown,
            server_url,
            public_key_b64,
            lots_dir,
            lab_codes: VecDeque::new(),
            seen_archives: std::collections::BTreeSet::new(),
            batch,
            server_db,
            _tmp: tmp,
        })
    }

    /// Moves the clock of the server and the code service.
    pub(crate) fn set_time(&self, t: NtpSeconds) {
        self.clock.set_ntp(t);
    }

    /// The laboratories' daily job: tops up the lots of the next days and
    /// reads the new archives as a laboratory system would.
    pub(crate) async fn top_up_lots(&mut self) -> Result<(), SimError> {
        self.codes
            .top_up_lots()
            .await
            .map_err(|e| backend_err("laboratory lots", e))?;
        let mut archives: Vec<PathBuf> = std::fs::read_dir(&self.lots_dir)
            .map_err(|e| backend_err("lots directory", e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.to_string_lossy()
                    .ends_with(robert_codes::lots::ARCHIVE_SUFFIX)
            })
            .collect();
        archives.sort();
        for path in archives {
            if self.seen_archives.insert(path.clone()) {
                let codes = read_lot(&path)?;
                self.lab_codes.extend(codes);
            }
        }
        self.lab_codes.make_contiguous().sort_by_key(|(d, _)| *d);
        Ok(())
    }

    /// A code for a positive case at the current time.
    pub(crate) async fn code(&mut self, source: CodeSource) -> Result<Zeroizing<String>, SimError> {
        match source {
            CodeSource::DoctorShortCode => {
                let issued = self
                    .codes
                    .issue(CodeKind::Short, &Channel::Cli)
                    .await
                    .map_err(|e| backend_err("short code", e))?;
                Ok(Zeroizing::new(issued.code.to_string()))
            }
            CodeSource::LabLongCode => {
                let today = robert_codes::code::paris_date(self.codes.now());
                // Codes of day D are valid from D to D + 7 (Paris).
                while let Some((day, _)) = self.lab_codes.front() {
                    if *day + chrono::Days::new(7) < today {
                        self.lab_codes.pop_front();
                    } else {
                        break;
                    }
                }
                let pos = self.lab_codes.iter().position(|(d, _)| *d <= today);
                if pos.is_none() {
                    self.top_up_lots().await?;
                }
                let pos = self
                    .lab_codes
                    .iter()
                    .position(|(d, _)| *d <= today)
                    .ok_or_else(|| SimError::Backend("no laboratory code valid today".into()))?;
                let (_, code) = self
                    .lab_codes
                    .remove(pos)
                    .ok_or_else(|| SimError::Backend("laboratory code vanished".into()))?;
                Ok(code)
            }
        }
    }

    /// Runs the risk batch at the server's current time with a seeded RNG
    /// (the last-contact date randomisation is then reproducible).
    pub(crate) async fn run_batch(&self, seed: u64) -> Result<BatchReport, SimError> {
        let keys = self.state.keys.get().batch_keys();
        let now = self.state.clock.now_ntp();
        robert_server::batch::run(
            self.state.store.as_ref(),
            &keys,
            &self.batch,
            now,
            &mut StdRng::seed_from_u64(seed),
        )
        .await
        .map_err(|e| backend_err("risk batch", e))
    }

    /// The registration behind an EBID broadcast during `epoch_start`'s day.
    pub(crate) fn id_of(&self, ebid: &Ebid, day: UtcDate) -> Option<IdA> {
        let ring = self.state.keys.get();
        Some(ebid.decrypt(ring.server_key(day)?).id_a)
    }

    /// Sum of the exposure scores the server holds for a registration.
    pub(crate) async fn exposure_score(&self, id: IdA) -> Result<f64, SimError> {
        let e = self
            .state
            .store
            .exposures(id)
            .await
            .map_err(|e| backend_err("exposures", e))?;
        Ok(e.iter().flat_map(|x| x.scores.iter()).sum())
    }

    /// Bytes of the server's SQLite database on disk: main file and WAL
    /// (`None` when the file cannot be read).
    pub(crate) fn server_db_bytes(&self) -> Option<u64> {
        let main = std::fs::metadata(&self.server_db).ok()?.len();
        let mut wal = self.server_db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::fs::metadata(PathBuf::from(wal)).map_or(0, |m| m.len());
        Some(main + wal)
    }

    /// Stops the listeners and closes the stores.
    pub(crate) async fn shutdown(mut self) {
        if let Some(tx) = self.server_shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(tx) = self.codes_shutdown.take() {
            let _ = tx.send(());
        }
        self.state.store.close().await;
    }
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Reads a laboratory lot archive (gzip tar of CSV files, one per validity
/// day: `code_pour_qr, code_brut, validite_debut, validite_fin`).
fn read_lot(path: &Path) -> Result<Vec<(chrono::NaiveDate, Zeroizing<String>)>, SimError> {
    let f = std::fs::File::open(path).map_err(|e| backend_err("lot archive", e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| backend_err("lot archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| backend_err("lot archive", e))?;
        let mut text = Zeroizing::new(String::new());
        entry
            .read_to_string(&mut text)
            .map_err(|e| backend_err("lot CSV", e))?;
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line
                .split(',')
                .map(|c| c.trim().trim_matches('"'))
                .collect();
            let (Some(code), Some(from)) = (cols.get(1), cols.get(2)) else {
                continue;
            };
            // validite_debut is 00:00 Paris of the validity day, in UTC: the
            // day is the Paris date of that instant.
            let day = chrono::DateTime::parse_from_rfc3339(from)
                .ok()
                .map(|t| robert_codes::code::paris_date(t.with_timezone(&chrono::Utc)));
            if let Some(day) = day {
                out.push((day, Zeroizing::new((*code).to_owned())));
            }
        }
    }
    Ok(out)
}

/// The service start date the simulated server uses for a scenario
/// starting on `today`: the reference's 2020-06-01, or 30 days before the
/// scenario when it starts earlier.
pub(crate) fn service_start_for(today: UtcDate) -> UtcDate {
    ServiceStart::REFERENCE.date().min(today.add_days(-30))
}
