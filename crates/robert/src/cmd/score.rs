//! `robert score` (placeholder, being written).

use std::process::ExitCode;

/// Arguments of `robert score`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScoreArgs {
    /// Contact files (CSV with header `mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated`).
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
}

/// Runs `robert score`.
pub(crate) fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet: {} files", args.files.len())
}
