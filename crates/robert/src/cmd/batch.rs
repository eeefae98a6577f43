//! `robert batch`: runs the risk batch once (server-api.md §4) and prints its
//! report as JSON on stdout.
//!
//! It uses the server's configuration (`[batch]`, database, key store).
//! With `[federation]` partners it then delivers the federation outbox
//! (docs/federation.md).
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
    let clock = clock(&config);
    let now = clock.now_ntp();
    let federation = robert_server::federation::FederationRuntime::from_config(
        &config.federation,
        config.protocol.country_code,
    )?;
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
        // Then the federation outbox, to partners (one attempt each; what
        // fails stays in the outbox for the next run or `robert serve`).
        let delivery = if result.is_ok() && federation.enabled() {
            Some(
                robert_server::federation::outbound::deliver(
                    store.as_ref(),
                    &federation,
                    clock.now_unix(),
                    true,
                )
                .await,
            )
        } else {
            None
        };
        store.close().await;
        let report = result.context("the risk batch failed")?;
        match delivery {
            Some(Ok(d)) => tracing::info!(
                batches = d.batches_sent,
                contacts = d.contacts_sent,
                failures = d.failures,
                pending = ?d.pending,
                "federation delivery"
            ),
            Some(Err(e)) => tracing::warn!(error = %e, "federation delivery: store error"),
            None => {}
        }
        outln!("{}", serde_json::to_string_pretty(&report)?);
        Ok(ExitCode::SUCCESS)
    })
}
