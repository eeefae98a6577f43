//! `robert codes`: the submission-code service (crate `robert-codes`):
//! verify API, doctor portal, laboratory lots, QR codes and letters.

use std::process::ExitCode;

use anyhow::Context as _;

pub(crate) use robert_codes::cli::CodesArgs;

/// Runs `robert codes …` on a multi-threaded Tokio runtime.
pub(crate) fn run(args: CodesArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut stdout = std::io::stdout();
    match runtime.block_on(robert_codes::cli::run(args, &mut stdout)) {
        Ok(code) => Ok(code),
        // `robert codes … | head -1`: the reader left; stop quietly, status 0
        // (see `crate::out` for why 0 rather than 141).
        Err(robert_codes::cli::CliError::OutputClosed) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}
