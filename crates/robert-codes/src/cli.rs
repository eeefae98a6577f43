//! `robert codes …`: argument types (clap) and `run`. The `robert` binary
//! embeds [`CodesArgs`] as its `codes` subcommand and calls [`run`].

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine as _;
use chrono::NaiveDate;
use rand::TryRng as _;
use robert_http::connections::{ConnectionLimits, Connections};
use sha2::Digest as _;
use zeroize::Zeroizing;

use crate::SystemClock;
use crate::code::{CodeKind, Shape, classify};
use crate::config::{Config, ConfigError};
use crate::letter::{self, Language, Letter};
use crate::lots::LotError;
use crate::qr::{QrError, QrMatrix, deep_link};
use crate::service::{Channel, CodesService, DoctorError, IssueError, KpiError, SetupError};
use crate::store::{CodeStore as _, SqlStore, StoreError};

/// Command-line failures (messages never contain codes or secrets).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Service setup.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Lot job.
    #[error(transparent)]
    Lot(#[from] LotError),
    /// Doctor administration.
    #[error(transparent)]
    Doctor(#[from] DoctorError),
    /// Code issuance.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// KPI query.
    #[error(transparent)]
    Kpi(#[from] KpiError),
    /// QR encoding.
    #[error(transparent)]
    Qr(#[from] QrError),
    /// File or socket I/O.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// Bad usage.
    #[error("{0}")]
    Usage(String),
    /// Standard output was closed before the command finished
    /// (`robert codes … | head -1`). The command stops there rather than
    /// issue codes nobody will read; the binary exits quietly with status 0
    /// (the reader chose to stop reading, which is not a failure).
    #[error("standard output closed")]
    OutputClosed,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
    let context = context.into();
    move |source| CliError::Io { context, source }
}

/// `robert codes`: the submission-code service.
#[derive(Debug, clap::Args)]
pub struct CodesArgs {
    /// Configuration file (TOML); defaults apply when absent.
    #[arg(long, short = 'c', env = "ROBERT_CODES_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL (`sqlite://…?mode=rwc` or `postgres://…`), overriding the file.
    #[arg(long, env = "ROBERT_CODES_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: CodesCommand,
}

/// `robert codes` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CodesCommand {
    /// Serve the verify/generate API and the doctor portal, the internal
    /// endpoints (KPIs, metrics) on their own listener, and the daily job.
    Serve(ServeArgs),
    /// Top up laboratory lots now, then purge; exit 0 when done.
    Lot,
    /// Write the QR code of a code's deep link as PNG or SVG.
    Qr(QrArgs),
    /// Write the one-page PDF a laboratory attaches to a positive result.
    Letter(LetterArgs),
    /// Create a doctor account (password from ROBERT_DOCTOR_PASSWORD or stdin).
    AddDoctor(AddDoctorArgs),
    /// Disable a doctor account and end their sessions.
    DisableDoctor {
        /// The doctor's user name.
        username: String,
    },
    /// Delete codes two days after expiry, spent JWT ids, old sessions and audit entries.
    Purge,
    /// Print KPIs (JSON) for UTC days FROM..=TO (at most 100 days).
    Kpi {
        /// First day, YYYY-MM-DD.
        from: NaiveDate,
        /// Last day, YYYY-MM-DD.
        to: NaiveDate,
    },
    /// Issue one short or test code and print it with its validity.
    Issue {
        /// `short` or `test`.
        #[arg(value_parser = ["short", "test"])]
        kind: String,
    },
    /// Create or upgrade the database schema.
    Migrate,
    /// Print a new random pepper (base64, 32 bytes) for `[[peppers]]`.
    NewPepper,
    /// Print a new API key, and the SHA-256 to put in `[[api.clients]]`.
    NewApiKey,
}

/// `robert codes serve` options.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Public listener (overrides `listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Internal listener (overrides `internal_listen`).
    #[arg(long)]
    pub internal_listen: Option<SocketAddr>,
}

/// Image format of `robert codes qr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QrFormat {
    /// PNG raster.
    Png,
    /// SVG vector.
    Svg,
}

/// `robert codes qr` options.
#[derive(Debug, clap::Args)]
pub struct QrArgs {
    /// The code (short, test, long or JWT).
    #[arg(long)]
    pub code: String,
    /// Output file.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Image format; by default from the file extension.
    #[arg(long, value_enum)]
    pub format: Option<QrFormat>,
    /// Pixels (PNG) or units (SVG) per module.
    #[arg(long, default_value_t = 8)]
    pub scale: u32,
}

/// Letter language option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LangArg {
    /// French.
    Fr,
    /// English.
    En,
}

/// `robert codes letter` options.
#[derive(Debug, clap::Args)]
pub struct LetterArgs {
    /// The code to print; or use `--issue`.
    #[arg(long, conflicts_with = "issue", required_unless_present = "issue")]
    pub code: Option<String>,
    /// Issue a fresh code of this kind and print it (needs the database).
    #[arg(long, value_parser = ["short", "test"])]
    pub issue: Option<String>,
    /// Validity text to print (e.g. "02/09/2021 à 23:59"); automatic with `--issue`.
    #[arg(long)]
    pub valid_until: Option<String>,
    /// Output PDF file.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Language.
    #[arg(long, value_enum, default_value_t = LangArg::Fr)]
    pub lang: LangArg,
}

/// `robert codes add-doctor` options.
#[derive(Debug, clap::Args)]
pub struct AddDoctorArgs {
    /// Login name (letters, digits, . _ @ -).
    pub username: String,
    /// Name shown on pages.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Codes per Paris day (default: `portal.daily_quota`).
    #[arg(long)]
    pub daily_quota: Option<u64>,
    /// Read the password from the first line of this file (else
    /// ROBERT_DOCTOR_PASSWORD, else stdin).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

/// Loads the configuration (defaults if no file) and applies overrides.
pub fn load_config(args: &CodesArgs) -> Result<Config, CliError> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(url) = &args.database_url {
        cfg.database_url.clone_from(url);
    }
    Ok(cfg)
}

/// Opens the store and builds the service with the system clock.
pub async fn build_service(cfg: Config) -> Result<CodesService, CliError> {
    Ok(CodesService::open(cfg, Arc::new(SystemClock)).await?)
}

/// Installs a `tracing` subscriber on stderr unless one exists: `[log]`
/// format (text or JSON lines) and filter (`RUST_LOG` overrides it);
/// colours only when stderr is a terminal and `NO_COLOR` is not set
/// (`robert_http::log`, shared with `robert serve`).
pub fn init_logging(cfg: &crate::config::LogConfig) {
    robert_http::log::init(cfg);
}

pub use robert_http::log::subscriber as log_subscriber;

fn write_file(path: &Path, data: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, data).map_err(io(format!("cannot write {}", path.display())))
}

fn kind_arg(s: &str) -> CodeKind {
    if s == "test" {
        CodeKind::Test
    } else {
        CodeKind::Short
    }
}

/// "dd/mm/yyyy à HH:MM (heure de Paris)" in the letter's language.
fn until_text(until: chrono::DateTime<chrono::Utc>, language: Language) -> String {
    let (hhmm, date) = crate::portal::html::paris_time(until);
    match language {
        Language::French => format!("{date} à {hhmm} (heure de Paris)"),
        Language::English => format!("{date} at {hhmm} (Paris time)"),
    }
}

/// The end of validity of a stored code (used or not), read only.
async fn stored_validity(
    cfg: &Config,
    kind: CodeKind,
    code: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, CliError> {
    let svc = build_service(cfg.clone()).await?;
    let hashes = svc.inner.peppers.hash_candidates(kind, code);
    let found = svc.store().code_validity(&hashes, kind).await?;
    Ok(found.and_then(|(_, until)| chrono::DateTime::from_timestamp(until, 0)))
}

/// Why `robert codes lot` wrote nothing, in words an operator can act on.
fn why_no_lot(lots: &crate::config::LotsConfig, today: NaiveDate) -> String {
    if lots.schedule.is_empty() {
        return "no lot written: the configuration has no [[lots.schedule]], so no daily volume \
                of long codes is set. Add one, e.g.\n\n[[lots.schedule]]\nstart_date = 2026-01-01\n\
                daily_volume = 1000\n"
            .to_owned();
    }
    let last = today
        .checked_add_days(chrono::Days::new(u64::from(
            lots.days_ahead.saturating_sub(1),
        )))
        .unwrap_or(today);
    let first_volume_day = lots
        .schedule
        .iter()
        .filter(|e| e.daily_volume > 0)
        .map(|e| e.start_date)
        .min();
    match first_volume_day {
        None => "no lot written: every [[lots.schedule]] entry has daily_volume = 0".to_owned(),
        Some(start) if start > last => format!(
            "no lot written: the schedule's first volume starts on {start}, after the {} day(s) \
             covered (lots.days_ahead: {today} to {last})",
            lots.days_ahead
        ),
        Some(_) => format!(
            "no lot written: every day from {today} to {last} already has its scheduled volume"
        ),
    }
}

/// Runs `robert codes …`. Output goes to `out` (stdout in the binary).
pub async fn run(args: CodesArgs, out: &mut dyn std::io::Write) -> Result<ExitCode, CliError> {
    let cfg = load_config(&args)?;
    let w = |out: &mut dyn std::io::Write, s: String| {
        writeln!(out, "{s}").map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                CliError::OutputClosed
            } else {
                io("cannot write output")(e)
            }
        })
    };
    match args.command {
        CodesCommand::Serve(s) => {
            init_logging(&cfg.log);
            serve(cfg, s).await?;
        }
        CodesCommand::Lot => {
            let lots_cfg = cfg.lots.clone();
            let svc = build_service(cfg).await?;
            let report = svc.run_lot_job().await?;
            if report.lots.is_empty() {
                w(
                    out,
                    why_no_lot(&lots_cfg, crate::code::paris_date(svc.now())),
                )?;
            }
            for l in &report.lots {
                w(
                    out,
                    format!(
                        "wrote {} ({} day(s) x {} codes: {})",
                        l.archive.display(),
                        l.days.len(),
                        l.codes_per_day,
                        l.csv_names.join(", ")
                    ),
                )?;
            }
            w(
                out,
                format!(
                    "{} lot(s) written; purged {} expired and {} used code(s)",
                    report.lots.len(),
                    report.purge.expired_unused,
                    report.purge.used
                ),
            )?;
        }
        CodesCommand::Qr(q) => {
            if classify(&q.code) == Shape::Malformed {
                return Err(CliError::Usage(
                    "this is not a code the service issues".into(),
                ));
            }
            let url = deep_link(&cfg.qr.url_template, &q.code);
            let m = QrMatrix::encode(&url)?;
            let format = q.format.unwrap_or(
                if q.out
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
                {
                    QrFormat::Svg
                } else {
                    QrFormat::Png
                },
            );
            match format {
                QrFormat::Png => write_file(&q.out, &m.to_png(q.scale)?)?,
                QrFormat::Svg => write_file(&q.out, m.to_svg(q.scale, "TousAntiCovid").as_bytes())?,
            }
            w(out, format!("wrote {}", q.out.display()))?;
        }
        CodesCommand::Letter(l) => {
            let language = match l.lang {
                LangArg::Fr => Language::French,
                LangArg::En => Language::English,
            };
            let (code, until) = match (&l.code, &l.issue) {
                (Some(c), _) => {
                    let Shape::Code(kind) = classify(c) else {
                        return Err(CliError::Usage(
                            "this is not a code the service issues".into(),
                        ));
                    };
                    let until = match &l.valid_until {
                        Some(v) => Some(v.clone()),
                        // Look the code up (without consuming it) for its date.
                        None => match stored_validity(&cfg, kind, c).await {
                            Ok(Some(until)) => Some(until_text(until, language)),
                            Ok(None) => {
                                w(
                                    out,
                                    "note: this code is not in the database (unknown, or purged \
                                     after expiry): the letter has no validity date; pass \
                                     --valid-until to print one"
                                        .to_owned(),
                                )?;
                                None
                            }
                            Err(e) => {
                                w(
                                    out,
                                    format!(
                                        "note: cannot look up the code's validity ({e}): the letter \
                                         has no validity date; pass -c codes.toml or --valid-until"
                                    ),
                                )?;
                                None
                            }
                        },
                    };
                    (Zeroizing::new(c.clone()), until)
                }
                (None, Some(kind)) => {
                    let svc = build_service(cfg.clone()).await?;
                    let issued = svc.issue(kind_arg(kind), &Channel::Cli).await?;
                    let until = until_text(issued.validity.until, language);
                    (issued.code, Some(l.valid_until.clone().unwrap_or(until)))
                }
                (None, None) => return Err(CliError::Usage("give --code or --issue".into())),
            };
            let url = deep_link(&cfg.qr.url_template, &code);
            let pdf = letter::render(&Letter {
                code: &code,
                url: &url,
                valid_until: until.as_deref(),
                language,
            })?;
            write_file(&l.out, &pdf)?;
            w(out, format!("wrote {}", l.out.display()))?;
        }
        CodesCommand::AddDoctor(a) => {
            // Configuration (peppers, database) first: never ask for a
            // password only to fail afterwards.
            let svc = build_service(cfg).await?;
            let password = read_password(a.password_file.as_deref())?;
            let display = a.display_name.clone().unwrap_or_else(|| a.username.clone());
            let id = svc
                .add_doctor(&a.username, &display, &password, a.daily_quota)
                .await?;
            w(out, format!("doctor {} created (id {id})", a.username))?;
        }
        CodesCommand::DisableDoctor { username } => {
            let svc = build_service(cfg).await?;
            if !svc.disable_doctor(&username).await? {
                w(out, format!("no doctor named {username}"))?;
                return Ok(ExitCode::from(1));
            }
            w(out, format!("doctor {username} disabled"))?;
        }
        CodesCommand::Purge => {
            let svc = build_service(cfg).await?;
            let r = svc.purge().await?;
            w(
                out,
                format!(
                    "purged {} expired and {} used code(s), {} JWT id(s), {} session(s), {} audit entries",
                    r.expired_unused, r.used, r.jti, r.sessions, r.audit
                ),
            )?;
        }
        CodesCommand::Kpi { from, to } => {
            let svc = build_service(cfg).await?;
            let days = svc.kpi(from, to).await?;
            w(out, serde_json::to_string_pretty(&days).unwrap_or_default())?;
        }
        CodesCommand::Issue { kind } => {
            let svc = build_service(cfg).await?;
            let issued = svc.issue(kind_arg(&kind), &Channel::Cli).await?;
            w(
                out,
                format!(
                    "{}\nvalid from {} until {}",
                    issued.code.as_str(),
                    issued.validity.from.to_rfc3339(),
                    issued.validity.until.to_rfc3339()
                ),
            )?;
        }
        CodesCommand::Migrate => {
            let store = SqlStore::connect(&cfg.database_url, 1).await?;
            store.migrate().await?;
            w(out, format!("schema up to date ({})", store.backend()))?;
        }
        CodesCommand::NewPepper => {
            let b = random_bytes()?;
            w(
                out,
                base64::engine::general_purpose::STANDARD.encode(b.as_ref()),
            )?;
        }
        CodesCommand::NewApiKey => {
            let b = random_bytes()?;
            let key =
                Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b.as_ref()));
            let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
            w(
                out,
                format!(
                    "api key (give to the caller): {}\nkey_sha256 (configuration): {hash}",
                    key.as_str()
                ),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn random_bytes() -> Result<Zeroizing<[u8; 32]>, CliError> {
    let mut b = Zeroizing::new([0_u8; 32]);
    rand::rngs::SysRng
        .try_fill_bytes(b.as_mut())
        .map_err(|_| CliError::Usage("the operating system random generator failed".into()))?;
    Ok(b)
}

fn read_password(file: Option<&Path>) -> Result<Zeroizing<String>, CliError> {
    if let Some(path) = file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(io(format!("cannot read {}", path.display())))?,
        );
        return Ok(Zeroizing::new(
            text.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    if let Ok(p) = std::env::var("ROBERT_DOCTOR_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    eprint!("password (read from stdin): ");
    let _ = std::io::stderr().flush();
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(io("cannot read the password"))?;
    Ok(Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

async fn serve(mut cfg: Config, args: ServeArgs) -> Result<(), CliError> {
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(l) = args.internal_listen {
        cfg.internal_listen = l;
    }
    let (public_addr, internal_addr) = (cfg.listen, cfg.internal_listen);
    if let Err(e) = robert_http::connections::raise_open_file_limit(0) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let svc = build_service(cfg).await?;
    let mut public = svc.router();
    if svc.config().portal.enabled {
        public = public.route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/portal/") }),
        );
    }
    let public_l = tokio::net::TcpListener::bind(public_addr)
        .await
        .map_err(io(format!("cannot listen on {public_addr}")))?;
    let internal_l = tokio::net::TcpListener::bind(internal_addr)
        .await
        .map_err(io(format!("cannot listen on {internal_addr}")))?;
    // The bound addresses: with port 0 in the configuration, the ports the
    // system chose.
    let bound =
        |l: &tokio::net::TcpListener, configured: SocketAddr| l.local_addr().unwrap_or(configured);
    tracing::info!(
        public_addr = %bound(&public_l, public_addr),
        internal_addr = %bound(&internal_l, internal_addr),
        "robert codes serving"
    );
    let jobs = svc.spawn_daily_jobs();
    let internal = svc.internal_router();
    // The connection limits robert-server has (header timeout, cap, bounded
    // shutdown), shared by both listeners.
    let api = &svc.config().api;
    let limits = ConnectionLimits::new(
        api.header_read_timeout_secs,
        api.max_connections,
        api.shutdown_grace_secs,
    );
    let connections = Connections::new(limits, svc.metrics().connections());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        robert_http::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    tokio::join!(
        connections.serve(public_l, public, stop_rx.clone()),
        connections.serve(internal_l, internal, stop_rx),
    );
    jobs.abort();
    svc.store().close().await;
    tracing::info!("stopped");
    Ok(())
}
