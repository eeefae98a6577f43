//! `robert push`: the iPhone push wake-up service (crate `robert-push`,
//! docs/push.md).
//!
//! * `robert push serve --config push.toml`: the token API robert-server's
//!   `push.url` points at (`http://host:9096/internal/api/v1`), `/metrics`,
//!   and the scheduler that sends each token its daily silent push;
//! * `robert push bench`: the measurement of docs/push.md: a mock APNs on
//!   127.0.0.1, a throwaway database with `--tokens` tokens all due, and the
//!   real sender; prints the wall-clock time and pushes per second.
//!
//! Exit status: 0 after a clean shutdown or a finished bench, 2 on error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use robert_clock::SystemClock;
use robert_push::{Config, PushService};

/// Arguments of `robert push`.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    #[command(subcommand)]
    command: PushCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PushCommand {
    /// Run the token API and the daily scheduler.
    Serve {
        /// Configuration file (TOML, docs/push.md).
        #[arg(long, short = 'c', env = "ROBERT_PUSH_CONFIG")]
        config: PathBuf,
        /// Listen address (overrides `listen`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Measure: push `--tokens` due tokens to a mock APNs on 127.0.0.1.
    Bench {
        /// Tokens inserted, all due (planned over the past `--window-secs`).
        #[arg(long, default_value_t = 100_000)]
        tokens: u32,
        /// The window the tokens were planned in, seconds.
        #[arg(long, default_value_t = 3600)]
        window_secs: i64,
        /// `apns.max_per_second` (default: the service's default, 1000).
        #[arg(long)]
        rate: Option<u32>,
        /// `apns.max_in_flight` (default: the service's default, 1000).
        #[arg(long)]
        in_flight: Option<usize>,
        /// `schedule.batch_size`.
        #[arg(long, default_value_t = 5000)]
        batch: u32,
        /// Database (default: a SQLite file in a temporary directory).
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// Runs `robert push …`.
pub(crate) fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match args.command {
        PushCommand::Serve { config, listen } => runtime.block_on(serve(config, listen)),
        PushCommand::Bench {
            tokens,
            window_secs,
            rate,
            in_flight,
            batch,
            database_url,
        } => runtime.block_on(bench(robert_push::bench::BenchOptions {
            tokens,
            window_secs,
            rate,
            in_flight,
            batch,
            database_url,
        })),
    }
}

async fn serve(path: PathBuf, listen: Option<String>) -> anyhow::Result<ExitCode> {
    robert_http::log::init(&robert_http::log::LogConfig::default());
    let mut cfg = Config::from_file(&path)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    let svc = PushService::open(&cfg, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    tracing::info!(
        listen = %cfg.listen,
        window = format!("{:02}:00-{:02}:00", cfg.schedule.window_start_hour, cfg.schedule.window_end_hour),
        "push service: token API at /internal/api/v1/push-token, metrics at /metrics"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = {
        let svc = svc.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            svc.run_scheduler(async move {
                let _ = rx.changed().await;
            })
            .await;
        })
    };
    axum::serve(listener, svc.router())
        .with_graceful_shutdown(robert_http::shutdown_signal())
        .await
        .context("push token API")?;
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    Ok(ExitCode::SUCCESS)
}

async fn bench(opts: robert_push::bench::BenchOptions) -> anyhow::Result<ExitCode> {
    let report = robert_push::bench::run(&opts).await?;
    outln!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}
