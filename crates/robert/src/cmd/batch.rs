//! `robert batch`: runs the risk batch once (server-api.md §4) and prints its
//! report as JSON on stdout.
//!
//! It uses the server's configuration (`[batch]`, database, key store).
//! Exit status: 0 when the run completed, 2 on error (including another run
//! in progress).

use std::process::ExitCode;

use anyhow::Context as _;
use robert_server::keystore::KeyRing;
use robert_server::serve;

use super::serve::{ConfigArgs, clock, init_logging, runtime};

/// Arguments of `robert batch`.
#[derive(Debug, clap::Args)]
pub(crate) struct BatchArgs {
    #[command(flatten)]
    common: ConfigArgs,
}

pub(crate) fn run(args: BatchArgs) -> anyhow::Result<ExitCode> {
    let config = args.common.load()?;
    init_logging(&config);
    let (ks, _) = serve::open_keystore(&config, false)?;
    let ring = KeyRing::from_set(ks.load()?)?;
    let keys = ring.batch_keys();
    let now = clock(&config).now_ntp();
    runtime()?.block_on(async move {
        let store = robert_store::open(&config.server.database_url(), &config.store)
            .await
            .context("cannot open the database")?;
        serve::check_kek(ring.kek().as_ref(), ks.as_ref(), store.as_ref()).await?;
        let mut seed = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
        let result = robert_server::batch::run(
            store.as_ref(),
            &keys,
            &config.batch,
            now,
            &mut <rand::rngs::StdRng as rand::SeedableRng>::from_seed(seed),
        )
        .await;
        store.close().await;
        let report = result.context("the risk batch failed")?;
        outln!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    })
}
