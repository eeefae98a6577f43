//! The risk batch (server-api.md §4): purge old exposures, reset expired
//! risks, validate and score the uploaded contacts, evaluate the risk of the
//! registrations that got new scores, and refresh the batch KPIs.
//!
//! ```text
//! b  purge       per ID_A range: delete exposures older than the contagious period (14 d)
//! d  reset       per ID_A range: atRisk && lastContact + 7 whole days < today → atRisk = false
//! e  federation  contacts whose ECC names a partner country → federation outbox (federate.rs)
//! f  scoring     per chunk of contacts (by id):
//!                  identify (ECC, EBID: SKINNY batch API)   ┐ worker threads
//!                  fetch the senders' wrapped K_A           │ (store)
//!                  unwrap K_A, check HELLOs, score (v2)     ┘ worker threads
//!                  ONE transaction: append scores + outdatedRisk, delete the chunk's contacts
//! h  evaluation  per ID_A range: outdatedRisk registrations → §4.5 rules, one transaction
//! i  KPIs        infectedUsersNotNotified, notifiedUsersScoredAgain, exposedButNotAtRiskUsers
//! ```
//!
//! # Entry point
//!
//! [`run`] (or [`run_with`] for progress reporting and tests) takes the
//! store, the keys ([`BatchKeys`]), the settings ([`BatchConfig`]), the
//! current time and an RNG, and returns a [`BatchReport`]. It never reads the
//! clock: the caller passes `now` (end-to-end tests move it).
//!
//! # Crash safety and idempotency
//!
//! Killed at any point and run again, the batch reaches the same state as an
//! uninterrupted run:
//!
//! * each chunk commits its scores AND deletes its contacts (scored or
//!   rejected) in one transaction: a chunk is applied entirely or not at all,
//!   so no contact is scored twice or lost (a stored score is also keyed by
//!   its contact id, making a replay a no-op);
//! * purge and reset are idempotent; risk evaluation clears `outdatedRisk`
//!   in the transaction that stores its outcome (and its KPI increment);
//! * the run's state (its random seed and whether purge and reset are done)
//!   is stored: a run that finds an unfinished one resumes it, with the same
//!   seed, skipping purge and reset if they were complete. The last-contact
//!   randomisation draws from an RNG seeded by (run seed, ID_A), so its
//!   outcome does not depend on where a crash happened.
//!
//! Two runs never overlap: [`robert_store::Store::try_lock_batch`] (released
//! by the OS if the process dies); a second run fails with
//! [`BatchError::AlreadyRunning`].
//!
//! # Deviations from the reference
//!
//! * KPI `exposedButNotAtRiskUsers` is written under the name the API reads;
//!   the reference batch (master) wrote `exposedUsersNotAtRisk`, so its API
//!   always showed 0 (server-api.md §6.6; develop fixed it the same way).
//! * EBIDs are identified as develop does (robert-core `ContactValidator`):
//!   the first HELLO whose candidate day key gives an epoch within ±1 of its
//!   reception epoch; master stopped at the first HELLO that failed.

mod config;
mod federate;
mod steps;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::ControlFlow;
use std::time::Instant;

use rand::CryptoRng;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use robert_core::id_a::IdA;
use robert_core::keys::{KeyG, KeyS};
use robert_core::time::{EPOCH_DURATION_SECS, Epoch, NtpSeconds, SECONDS_PER_DAY, UtcDate};
use robert_store::{IdARange, Store, StoreError};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub use config::{BatchConfig, HelloConfig, ScoringConfig, ScoringPreset, TypicalConfig};
#[doc(hidden)]
pub use validate::{ChunkOutcome, Identified, Validation, identify, verify_and_score};
pub use validate::{ContactRejections, HelloRejections};

/// The server keys the batch needs.
#[derive(Clone)]
pub struct BatchKeys {
    /// Unwraps each registration's K_A (in memory or in a token).
    pub kek: crate::keystore::SharedKek,
    /// Decrypts ECCs.
    pub key_g: KeyG,
    /// K_S by UTC day; EBIDs of days without a key are rejected.
    pub day_keys: BTreeMap<UtcDate, KeyS>,
}

impl fmt::Debug for BatchKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchKeys")
            .field("days", &self.day_keys.len())
            .field("first_day", &self.day_keys.keys().next())
            .field("last_day", &self.day_keys.keys().next_back())
            .finish_non_exhaustive()
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Another run holds the batch lock.
    #[error("another batch run is in progress")]
    AlreadyRunning,
    /// The configuration is invalid.
    #[error("invalid batch configuration: {0}")]
    Config(String),
    /// The store failed; the run can simply be started again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The progress observer asked to stop; the next run resumes.
    #[error("batch run stopped by its observer")]
    Aborted,
    /// A worker thread failed.
    #[error("batch worker failed: {0}")]
    Worker(String),
    /// The key token failed while unwrapping K_A; the run can be started
    /// again (nothing of the chunk was committed).
    #[error("batch keys: {0}")]
    Keys(#[from] crate::keystore::KeyOpError),
}

/// Progress events passed to the observer of [`run_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchProgress {
    /// Purge and reset are done (or were done by the interrupted run).
    PurgedAndReset,
    /// A chunk of contacts was committed.
    ChunkCommitted {
        /// Chunk number in this run, from 1.
        chunk: u64,
        /// Contacts in the chunk.
        contacts: usize,
        /// HELLOs in the chunk.
        hellos: u64,
    },
    /// One ID_A range of the risk evaluation was committed.
    Evaluated {
        /// Ranges done.
        partitions_done: u32,
    },
}

/// What a run did (printed as JSON by `robert batch`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BatchReport {
    /// This run resumed an interrupted one.
    pub resumed: bool,
    /// The `now` of the run (NTP seconds).
    pub now: u64,
    /// The current epoch.
    pub epoch: u32,
    /// Exposures (contact scores) purged.
    pub exposures_purged: u64,
    /// Registrations whose risk flag was reset.
    pub risks_reset: u64,
    /// Chunks committed.
    pub chunks: u64,
    /// Contacts processed (each one is deleted from the queue).
    pub contacts_processed: u64,
    /// Contacts whose score was stored.
    pub contacts_scored: u64,
    /// Contacts of partner countries' phones moved to the federation outbox
    /// (`[federation]`), before scoring.
    pub contacts_forwarded: u64,
    /// Contacts scored 0 because their HELLOs span more than one epoch.
    pub contacts_scored_zero_too_late: u64,
    /// Discarded contacts by reason.
    pub contacts_rejected: ContactRejections,
    /// HELLOs in the processed contacts.
    pub hellos_processed: u64,
    /// HELLOs that passed every check.
    pub hellos_valid: u64,
    /// HELLOs discarded inside identified contacts, by reason.
    pub hellos_rejected: HelloRejections,
    /// Registrations whose risk was evaluated.
    pub registrations_evaluated: u64,
    /// Risk detections (registrations set at risk) in this run.
    pub registrations_at_risk: u64,
    /// Increments of `usersAboveRiskThresholdButRetentionPeriodExpired`.
    pub retention_expired: u64,
    /// The KPI values set at the end of the run.
    pub kpis: BatchKpis,
    /// Wall-clock milliseconds: purge and reset.
    pub purge_reset_ms: u64,
    /// Wall-clock milliseconds: contact validation, scoring and commits.
    pub scoring_ms: u64,
    /// Wall-clock milliseconds: risk evaluation.
    pub evaluation_ms: u64,
    /// Wall-clock milliseconds: the whole run.
    pub total_ms: u64,
    /// HELLOs processed per second of the scoring step (0 if none).
    pub hellos_per_second: f64,
    /// Busy time of each stage of the scoring step. The stages overlap
    /// (pipeline), so they may add up to more than `scoring_ms`.
    pub stages: StageTimings,
}

/// Cumulative milliseconds spent in each stage of the scoring step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StageTimings {
    /// Reading contacts from the queue.
    pub fetch_ms: u64,
    /// ECC and EBID decryption (worker threads).
    pub identify_ms: u64,
    /// Reading the senders' wrapped K_A.
    pub keys_ms: u64,
    /// K_A unwrapping, HELLO checks and scoring (worker threads).
    pub verify_ms: u64,
    /// Chunk transactions (scores + contact deletion).
    pub commit_ms: u64,
}

impl StageTimings {
    fn add(&mut self, o: &Self) {
        self.fetch_ms += o.fetch_ms;
        self.identify_ms += o.identify_ms;
        self.keys_ms += o.keys_ms;
        self.verify_ms += o.verify_ms;
        self.commit_ms += o.commit_ms;
    }
}

/// The KPIs the batch sets (server-api.md §6.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchKpis {
    /// `infectedUsersNotNotified`.
    pub infected_users_not_notified: i64,
    /// `notifiedUsersScoredAgain`.
    pub notified_users_scored_again: i64,
    /// `exposedButNotAtRiskUsers`.
    pub exposed_but_not_at_risk_users: i64,
}

/// Runs the batch once (see the module docs).
///
/// `rng` supplies the run's random seed (a resumed run keeps the seed of the
/// interrupted one). It is used before the returned future starts, so a
/// non-`Send` RNG such as `rand::rng()` may be passed.
pub fn run<'a, R: CryptoRng + ?Sized>(
    store: &'a dyn Store,
    keys: &'a BatchKeys,
    config: &'a BatchConfig,
    now: NtpSeconds,
    rng: &mut R,
) -> impl Future<Output = Result<BatchReport, BatchError>> + Send + 'a {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    async move {
        run_with(store, keys, config, now, seed, &mut |_| {
            ControlFlow::Continue(())
        })
        .await
    }
}

/// [`run`] with an explicit seed for a fresh run and a progress observer,
/// which may stop the run ([`BatchError::Aborted`]) after any event.
pub async fn run_with(
    store: &dyn Store,
    keys: &BatchKeys,
    config: &BatchConfig,
    now: NtpSeconds,
    fresh_seed: [u8; 32],
    observer: &mut (dyn FnMut(&BatchProgress) -> ControlFlow<()> + Send),
) -> Result<BatchReport, BatchError> {
    let settings = config.settings()?;
    let started = Instant::now();
    let lock = store
        .try_lock_batch()
        .await?
        .ok_or(BatchError::AlreadyRunning)?;
    let result = run_locked(store, keys, &settings, now, fresh_seed, observer, started).await;
    // Release explicitly (PostgreSQL: unlock, then close the session) so
    // that the next run, even an immediate one, finds the lock free; a
    // dropped lock is released too, but only once the server notices.
    lock.release().await;
    result
}

/// The batch once the lock is held: the steps of the module docs, in order.
///
/// Each step leaves the store in a state from which a rerun reaches the same
/// end (module docs, "Crash safety and idempotency"): the run's state is
/// saved before the first step ([`steps::start_or_resume`]), after purge and
/// reset ([`steps::purge_and_reset`]) and once the KPIs are set
/// ([`steps::finish`]).
async fn run_locked(
    store: &dyn Store,
    keys: &BatchKeys,
    settings: &config::Settings,
    now: NtpSeconds,
    fresh_seed: [u8; 32],
    observer: &mut (dyn FnMut(&BatchProgress) -> ControlFlow<()> + Send),
    started: Instant,
) -> Result<BatchReport, BatchError> {
    let current = settings.start.epoch_at(now);
    let mut report = BatchReport {
        now: now.get(),
        epoch: current.get(),
        ..BatchReport::default()
    };
    let waiting = store.pending_contacts().await?;
    tracing::info!(
        hellos = waiting.hellos,
        contacts = waiting.contacts,
        "{} hello messages waiting for process",
        waiting.hellos
    );
    let run = steps::start_or_resume(store, now, fresh_seed, &mut report).await?;
    let ranges = IdARange::partitions(settings.partitions);

    // b, d: purge and reset.
    steps::purge_and_reset(store, settings, &ranges, &run, current, &mut report).await?;
    notify(observer, &BatchProgress::PurgedAndReset)?;

    // e: contacts of partner countries, to the federation outbox.
    federate::forward_partner_contacts(
        store,
        &keys.key_g,
        settings.country.0,
        &settings.forwarded_countries,
        now,
        &mut report,
    )
    .await?;

    // f: contacts, validated and scored chunk by chunk.
    steps::score_contacts(store, keys, settings, observer, &mut report).await?;

    // h: risk evaluation, per ID_A range.
    steps::evaluate_risks(store, settings, &ranges, &run, observer, &mut report).await?;

    // i: KPIs, then the run is marked done.
    steps::refresh_kpis(store, &mut report).await?;
    steps::finish(store, &run).await?;
    report.total_ms = millis(started);
    tracing::info!(
        evaluated = report.registrations_evaluated,
        at_risk = report.registrations_at_risk,
        total_ms = report.total_ms,
        "batch run complete"
    );
    Ok(report)
}

/// The first epoch the purge keeps (server-api.md §4.6): exposures with
/// `current − epoch ≤ days · 86400 / 900` survive.
fn first_kept_epoch(current: Epoch, contagious_period_days: u32) -> Epoch {
    let keep = u64::from(contagious_period_days) * SECONDS_PER_DAY / EPOCH_DURATION_SECS;
    current.minus(u32::try_from(keep).unwrap_or(u32::MAX))
}

/// The RNG of one registration's last-contact randomisation: a function of
/// the run's seed and the ID_A only, so a resumed run draws the same values.
fn registration_rng(seed: &[u8; 32], id_a: IdA) -> StdRng {
    let digest = Sha256::new()
        .chain_update(b"robert batch last-contact")
        .chain_update(seed)
        .chain_update(id_a.as_bytes())
        .finalize();
    let mut s = [0u8; 32];
    s.copy_from_slice(&digest);
    StdRng::from_seed(s)
}

fn notify(
    observer: &mut (dyn FnMut(&BatchProgress) -> ControlFlow<()> + Send),
    event: &BatchProgress,
) -> Result<(), BatchError> {
    match observer(event) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(BatchError::Aborted),
    }
}

/// Runs CPU work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BatchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BatchError::Worker(e.to_string()))
}

fn millis(since: Instant) -> u64 {
    duration_ms(since.elapsed())
}

fn duration_ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use robert_core::keys::Kek;
    use robert_core::scoring::is_exposure_retained;

    use super::*;

    #[test]
    fn purge_cut_matches_the_retention_rule() {
        for current in [0u32, 5, 1343, 1344, 1345, 26_543, 100_000] {
            for days in [0u32, 1, 14, 30] {
                let cut = first_kept_epoch(Epoch(current), days);
                assert!(is_exposure_retained(cut, Epoch(current), days));
                if cut.get() > 0 {
                    assert!(!is_exposure_retained(cut.minus(1), Epoch(current), days));
                }
            }
        }
    }

    #[test]
    fn registration_rng_depends_on_seed_and_id_only() {
        use rand::Rng as _;
        let a = registration_rng(&[1; 32], IdA([1, 2, 3, 4, 5])).next_u64();
        assert_eq!(
            a,
            registration_rng(&[1; 32], IdA([1, 2, 3, 4, 5])).next_u64()
        );
        assert_ne!(
            a,
            registration_rng(&[2; 32], IdA([1, 2, 3, 4, 5])).next_u64()
        );
        assert_ne!(
            a,
            registration_rng(&[1; 32], IdA([1, 2, 3, 4, 6])).next_u64()
        );
    }

    #[test]
    fn keys_debug_shows_no_key_material() {
        let keys = BatchKeys {
            kek: Arc::new(Kek::from_bytes([1; 32])),
            key_g: KeyG::from_slice(&[2; 32]).unwrap(),
            day_keys: BTreeMap::from([(
                UtcDate::new(2023, 1, 13).unwrap(),
                KeyS::from_bytes([3; 24]),
            )]),
        };
        let s = format!("{keys:?}");
        assert!(
            s.contains("days: 1") && !s.contains("[1") && !s.contains("3, 3"),
            "{s}"
        );
    }
}
