//! `robert serve`: the ROBERT server (server-api.md §3), optionally running
//! the risk batch periodically (`--batch-every 15m`).
//!
//! With no arguments it listens on 127.0.0.1:8086 (the API) and
//! 127.0.0.1:8081 (KPIs and metrics), with the embedded SQLite store and a
//! key store created on first start, both in `./data`.
//! Configuration: `--config robert.toml` and `ROBERT_<SECTION>__<KEY>`
//! environment variables (see `crates/robert-server/robert.example.toml`).
//!
//! Exit status: 0 after a clean shutdown (Ctrl-C, SIGTERM), 2 on error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use robert_server::clock::{OffsetClock, SharedClock};
use robert_server::config::Config;
use robert_server::serve;

/// Arguments of `robert serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) common: ConfigArgs,
    /// Run the risk batch inside the server at this interval (e.g. `15m`,
    /// `1h`, `900s`); by default the batch runs separately (`robert batch`).
    #[arg(long, value_parser = parse_duration)]
    batch_every: Option<Duration>,
    /// Listen address (overrides `server.bind`).
    #[arg(long)]
    bind: Option<String>,
    /// Listen address of the internal endpoints, KPIs and metrics (overrides
    /// `server.internal_bind`, default 127.0.0.1:8081); `public` serves them
    /// on `--bind` instead.
    #[arg(long, value_name = "ADDRESS")]
    internal_bind: Option<String>,
    /// Also run the submission-code service (verify API, doctor portal,
    /// daily laboratory lots) in this process, configured by this file (see
    /// `crates/robert-codes/codes.dev.toml` for local use,
    /// `crates/robert-codes/codes.example.toml` for production). Its routes join the
    /// server's listeners (its KPIs and its metrics, at `/codes/metrics`, on
    /// the internal one), and `/report`
    /// verifies codes against it unless `codes.url` is set explicitly.
    #[arg(long, env = "ROBERT_CODES_CONFIG")]
    codes_config: Option<PathBuf>,
}

/// Options shared by the server commands.
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    /// Configuration file (TOML).
    #[arg(long, short = 'c', env = "ROBERT_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory (overrides `server.data_dir`).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Shift the server clock, e.g. `-1h` or `+20m` (overrides
    /// `server.clock_offset_secs`): local demonstrations and tests only.
    /// `robert phone` reads the same variable, so phones and server agree.
    #[arg(
        long,
        value_name = "DURATION",
        env = "ROBERT_CLOCK_OFFSET",
        value_parser = parse_offset,
        allow_hyphen_values = true
    )]
    pub(crate) clock_offset: Option<i64>,
}

impl ConfigArgs {
    /// Loads the configuration.
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::from_env_and_file(self.config.as_deref())?;
        if let Some(d) = &self.data_dir {
            config.server.data_dir = d.clone();
        }
        if let Some(o) = self.clock_offset {
            config.server.clock_offset_secs = o;
        }
        Ok(config)
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `1d`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (examples: 900s, 15m, 1h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("invalid duration unit in {s:?} (use s, m, h or d)")),
    };
    if secs == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Parses a signed clock offset: `-1h`, `+20m`, `90s`, `0`, `-3600`.
pub(crate) fn parse_offset(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (negative, rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest
        .trim_end_matches(['s', 'm', 'h', 'd'])
        .trim_start_matches('0')
        .is_empty()
        && rest.starts_with('0')
    {
        return Ok(0);
    }
    let secs = parse_duration(rest)
        .map_err(|_| format!("invalid clock offset {s:?} (examples: -1h, +20m, 90s, 0)"))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| format!("clock offset {s:?} is too large"))?;
    Ok(if negative { -secs } else { secs })
}

/// Installs the log subscriber (stderr; `robert_http::log`, shared with
/// `robert codes serve`). Text logs are coloured only when stderr is a
/// terminal (and `NO_COLOR` is not set): a log file or a pipe gets plain
/// text.
pub(crate) fn init_logging(config: &Config) {
    robert_http::log::init(&config.log);
}

/// The server clock: the system clock shifted by `server.clock_offset_secs`.
pub(crate) fn clock(config: &Config) -> SharedClock {
    Arc::new(OffsetClock::new(config.server.clock_offset_secs))
}

/// A multi-threaded Tokio runtime.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.common.load()?;
    if let Some(b) = &args.bind {
        config.server.bind = b.clone();
    }
    if let Some(b) = &args.internal_bind {
        config.server.internal_bind = b.clone();
    }
    config.validate()?;
    init_logging(&config);
    match serve::raise_open_file_limit(config.server.open_files_limit) {
        Ok((before, after)) => tracing::info!(
            soft = %limit_text(after.current),
            hard = %limit_text(after.maximum),
            was = %limit_text(before.current),
            "open-file limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot set the open-file limit"),
    }
    runtime()?.block_on(async move {
        let codes = match &args.codes_config {
            Some(path) => Some(embedded_codes(path).await?),
            None => None,
        };
        let clock = clock(&config);
        let startup = serve::prepare(config, clock)
            .await
            .context("cannot start the server")?;
        // Listen only once ready: the key store exists when the port opens.
        let (main, internal) = serve::bind(&startup.state.config).await?;
        for w in &startup.warnings {
            tracing::warn!("{w}");
        }
        for n in &startup.notes {
            tracing::info!("{n}");
        }
        let state = startup.state;
        if let Some(c) = &codes {
            // /report claims and settles codes by a call, not over loopback.
            state
                .codes
                .use_local(Arc::new(super::embedded_codes::InProcess(c.clone())));
        } else if !state.codes.probe().await {
            tracing::warn!(
                url = %state.config.codes.url,
                "the submission-code service does not answer: /report answers 503 and \
                 readiness is DOWN until it does (for local use, run the service inside \
                 the server: --codes-config {DEV_CODES_CONFIG})"
            );
        }
        tracing::info!(
            address = %main.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            internal = %internal.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_else(|| "public listener".into()),
            codes = codes.is_some(),
            "ROBERT server listening"
        );
        let _keys = serve::spawn_key_maintenance(state.clone(), startup.keystore, startup.keystore_generation);
        let _sweep = serve::spawn_shared_state_sweep(state.clone(), Duration::from_secs(60));
        if let Some(every) = args.batch_every {
            tracing::info!(every_secs = every.as_secs(), "the risk batch runs inside the server");
            let _batch = serve::spawn_periodic_batch(state.clone(), every);
        }
        if state.federation.enabled() {
            tracing::info!(
                partners = ?state.federation.partners().map(|p| p.country).collect::<Vec<_>>(),
                every_secs = state.config.federation.deliver_every_secs,
                "federation: delivering the outbox to partners"
            );
        }
        let _federation = robert_server::federation::outbound::spawn_delivery(state.clone());
        let extra = match &codes {
            Some(c) => serve::ExtraRoutes { public: c.router(), internal: c.embedded_internal_router() },
            None => serve::ExtraRoutes::default(),
        };
        let _lots = codes.as_ref().map(robert_codes::CodesService::spawn_daily_jobs);
        let store = state.store.clone();
        serve::run_with(state, main, internal, extra, serve::shutdown_signal()).await?;
        store.close().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The development configuration of the code service shipped in the repository.
const DEV_CODES_CONFIG: &str = "crates/robert-codes/codes.dev.toml";

fn limit_text(l: Option<u64>) -> String {
    l.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

/// Builds the submission-code service for a one-process deployment. The
/// server reaches it in process ([`super::embedded_codes`]), so no address
/// is exempt from its verify rate limit.
async fn embedded_codes(path: &std::path::Path) -> anyhow::Result<robert_codes::CodesService> {
    let cfg = robert_codes::Config::load(path).with_context(|| {
        format!(
            "cannot load the code service configuration {} (for local use, start from \
             {DEV_CODES_CONFIG}: SQLite, plain HTTP, works as is; for production, \
             crates/robert-codes/codes.example.toml)",
            path.display()
        )
    })?;
    // SQLite creates the file but not its directory (codes.dev.toml puts it
    // in ./data, which the server creates only later).
    if let Some(dir) = sqlite_dir(&cfg.database_url) {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    tracing::info!(
        "the submission-code service runs inside the server (its own listen addresses are ignored)"
    );
    robert_codes::cli::build_service(cfg)
        .await
        .context("cannot start the submission-code service")
}

/// The directory of a `sqlite://PATH?…` database file, if it has one.
fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let path = url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    let dir = std::path::Path::new(path).parent()?;
    (!dir.as_os_str().is_empty()).then(|| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn clock_offsets() {
        assert_eq!(parse_offset("-1h"), Ok(-3600));
        assert_eq!(parse_offset("+20m"), Ok(1200));
        assert_eq!(parse_offset("90"), Ok(90));
        assert_eq!(parse_offset("0"), Ok(0));
        assert_eq!(parse_offset("0s"), Ok(0));
        assert_eq!(parse_offset("-0"), Ok(0));
        assert!(parse_offset("-").is_err());
        assert!(parse_offset("1w").is_err());
        assert!(parse_offset("--1h").is_err());
    }

    #[test]
    fn sqlite_directories() {
        assert_eq!(
            sqlite_dir("sqlite://data/robert-codes.db?mode=rwc"),
            Some(PathBuf::from("data"))
        );
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/c.db"),
            Some(PathBuf::from("/var/lib"))
        );
        assert_eq!(sqlite_dir("sqlite://robert-codes.db?mode=rwc"), None);
        assert_eq!(sqlite_dir("sqlite://:memory:"), None);
        assert_eq!(sqlite_dir("postgres://db/x"), None);
    }
}
