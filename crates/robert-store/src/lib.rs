//! Storage of the ROBERT server: registrations, their exposures, uploaded
//! contacts waiting for the risk batch, KPI counters and the `config` list
//! returned to apps (server-api.md §3–§6).
//!
//! One trait, [`Store`], with two implementations chosen by the database URL
//! ([`open`]):
//!
//! | URL | implementation | notes |
//! |---|---|---|
//! | `sqlite:<path>`, `sqlite://<path>` | [`SqliteStore`] | the embedded default: one file, WAL, `synchronous=FULL`, group commit |
//! | `sqlite::memory:` | [`SqliteStore`] | tests only: a temporary file, removed when the store is dropped |
//! | `postgres://…`, `postgresql://…` | [`PgStore`] | a connection pool; the schema is shardable by ID_A |
//!
//! Migrations (`migrations/sqlite`, `migrations/postgres`) run in [`open`].
//!
//! # Several server nodes
//!
//! Every piece of state a request needs is in the database, so several
//! server processes on one PostgreSQL database behave as one server: besides
//! registrations and contacts, [`SharedState`] (a supertrait of [`Store`])
//! holds the built-in captcha challenges (sealed by the server), per-client
//! rate-limit budgets (GCRA, one atomic upsert per request) and the turns of
//! periodic tasks (one batch per period, one key rotation per day).
//!
//! # Federation
//!
//! [`Federation`] (a supertrait of [`Store`]) holds the outbox of contacts
//! that belong to partner countries' phones and the record of batches
//! received from partners (module [`federation`]).
//!
//! # Durability
//!
//! Every write method returns only after its transaction is committed, so a
//! request the API acknowledged is never lost. On SQLite, concurrent writes
//! share one transaction and one `fsync` (group commit, see [`SqliteStore`]):
//! durability of `synchronous=FULL` at the throughput of many writes per sync.
//!
//! # Scale-out invariants
//!
//! * Every registration statement is keyed by ID_A (stored as a 40-bit
//!   integer, the primary key); no statement joins two registrations. The only
//!   joins are registration ⋈ exposure on `id_a`, inside one shard group.
//! * The batch works on ID_A ranges ([`IdARange`]) and on contact id order.
//! * No compile-time-checked queries: building needs no database.
//!
//! # Layout
//!
//! Each [`Store`] operation is written once (`ops.rs`) and expanded for both
//! back ends; what differs between them (how a body runs, lists of ids, set
//! inserts, row locks) is in `sqlite/` and `postgres/` (`mod.rs` and
//! `dialect.rs`).
//!
//! # Features
//!
//! * `testing`: the `testing` module (throwaway SQLite and PostgreSQL
//!   databases) and the `both_backends!` test macro, for the tests of this
//!   crate and of the crates above it (enable it in `[dev-dependencies]`).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), robert_store::StoreError> {
//! use robert_store::{StoreOptions, open};
//! let store = open("sqlite:/var/lib/robert/robert.db", &StoreOptions::default()).await?;
//! println!("{} registrations", store.registration_count().await?);
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::scoring::EpochExposure;
use robert_core::time::{Epoch, NtpSeconds};

pub mod codec;
mod error;
pub mod federation;
mod lock;
mod ops;
mod postgres;
mod shared;
mod sql;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use error::StoreError;
pub use federation::Federation;
pub use lock::BatchLock;
pub use postgres::PgStore;
pub use shared::{
    CaptchaBounds, CaptchaInsert, Gcra, NewCaptcha, RateDecision, SharedState, StoredCaptcha,
};
pub use sqlite::{SQLITE_READER_THREAD, SQLITE_WRITER_THREAD, SqliteStore};
pub use types::*;

/// Connection settings. [`Default`] suits a production node; the server
/// configuration embeds them (e.g. as a `[store]` section).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreOptions {
    /// PostgreSQL: pool size (16).
    pub max_connections: u32,
    /// SQLite: read connections beside the single writer (4).
    pub sqlite_readers: u32,
    /// SQLite: `true` (default) for `synchronous=FULL` (an acknowledged write
    /// survives a power loss); `false` for `NORMAL` (survives a crash of the
    /// process, not of the machine).
    pub sqlite_full_sync: bool,
    /// SQLite: most writes merged into one transaction (256).
    pub sqlite_group_commit_max: usize,
    /// How long a statement waits for a lock or a pooled connection (10 s).
    #[serde(with = "secs")]
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            sqlite_readers: 4,
            sqlite_full_sync: true,
            sqlite_group_commit_max: 256,
            busy_timeout: Duration::from_secs(10),
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// Opens the store named by `url` and runs its migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url, options).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// The URL of the embedded store in a data directory: `sqlite:<dir>/robert.db`.
pub fn default_sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite:{}", data_dir.join("robert.db").display())
}

/// The server's storage. Both implementations pass the same test suite
/// (`tests/it`).
///
/// Write methods commit before they return. Methods taking an ID_A touch that
/// registration only. The state several server nodes share (captchas, rate
/// limits, task turns) is the supertrait [`SharedState`].
#[async_trait]
pub trait Store: SharedState + Federation + Send + Sync + std::fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Closes the connections (pending writes finish first).
    async fn close(&self);

    // ---------------------------------------------------------------- API

    /// Inserts a registration with default state. Fails with
    /// [`StoreError::DuplicateIdA`] if the ID_A exists (draw a new one and retry).
    async fn insert_registration(&self, registration: &NewRegistration) -> Result<(), StoreError>;

    /// Inserts many registrations quickly (load tests, simulations); existing
    /// ID_As are skipped. Returns how many were inserted.
    async fn insert_registrations_bulk(
        &self,
        registrations: &[NewRegistration],
    ) -> Result<u64, StoreError>;

    /// Reads a registration (one primary-key lookup), without its exposures.
    async fn get_registration(&self, id_a: IdA) -> Result<Option<Registration>, StoreError>;

    /// Records a successful `/status` (server-api.md §3.5 step 8), atomically:
    /// `lastStatusRequestEpoch` and `lastTimestampDrift` are set;
    /// if at risk and not `isNotified`, KPI `alertedUsers` += 1 and
    /// `isNotified = true`; if at risk and not `notifiedForCurrentRisk`, KPI
    /// `notifiedUsers` += 1; `notifiedForCurrentRisk = true` whatever the risk.
    /// Returns the risk state the response must show, or `None` if the
    /// registration no longer exists.
    async fn record_status_success(
        &self,
        status: &StatusSuccess,
    ) -> Result<Option<StatusOutcome>, StoreError>;

    /// Records a rejected `/status`: `lastFailedStatusRequestEpoch/Message`,
    /// and `lastTimestampDrift` when given. Returns false if the registration
    /// does not exist.
    async fn record_status_failure(
        &self,
        id_a: IdA,
        epoch: Epoch,
        message: &str,
        drift_secs: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Records `lastTimestampDrift` alone (authenticated request rejected by
    /// the clock check). Returns false if the registration does not exist.
    async fn record_timestamp_drift(&self, id_a: IdA, drift_secs: i64) -> Result<bool, StoreError>;

    /// `/unregister`: deletes the registration, its wrapped keys and its
    /// exposures. Returns false if it did not exist.
    async fn delete_registration(&self, id_a: IdA) -> Result<bool, StoreError>;

    /// `/deleteExposureHistory`: deletes the registration's exposures only
    /// (the risk flags stay, as in the reference). Returns how many contact
    /// scores were deleted.
    async fn clear_exposures(&self, id_a: IdA) -> Result<u64, StoreError>;

    /// A registration's exposures (`exposedEpochs`), by ascending epoch,
    /// scores in insertion order.
    async fn exposures(&self, id_a: IdA) -> Result<Vec<EpochExposure>, StoreError>;

    /// Number of registrations.
    async fn registration_count(&self) -> Result<u64, StoreError>;

    /// The wrapped K_A of one registration (any), or `None` when there is
    /// none: lets the server check at start that its KEK opens what the
    /// database holds (a switched key store must not fail silently).
    async fn any_wrapped_key_a(&self) -> Result<Option<WrappedKey>, StoreError>;

    /// `/report`: queues every contact of one report and increments KPI
    /// `reportsCount`, all in one transaction.
    async fn insert_contacts(
        &self,
        contacts: &[UploadedContact],
        received_at: NtpSeconds,
    ) -> Result<(), StoreError>;

    /// How many contacts and HELLOs wait for the batch.
    async fn pending_contacts(&self) -> Result<PendingContacts, StoreError>;

    /// Every KPI counter.
    async fn kpis(&self) -> Result<Kpis, StoreError>;

    /// Adds `by` to a counter (creating it at 0).
    async fn increment_kpi(&self, name: &str, by: i64) -> Result<(), StoreError>;

    /// Sets counters to absolute values, in one transaction.
    async fn set_kpis(&self, values: &[(&str, i64)]) -> Result<(), StoreError>;

    /// The `config` list returned to apps, ordered by name.
    async fn app_config(&self) -> Result<Vec<AppConfigEntry>, StoreError>;

    /// Sets (inserts or replaces) one `config` entry.
    async fn set_app_config(&self, name: &str, value: &serde_json::Value)
    -> Result<(), StoreError>;

    /// Removes one `config` entry. Returns false if it did not exist.
    async fn delete_app_config(&self, name: &str) -> Result<bool, StoreError>;

    // -------------------------------------------------------------- batch

    /// Takes the batch lock, or `None` if another run holds it. The lock is
    /// released when the [`BatchLock`] is dropped or its process dies
    /// (PostgreSQL: a session advisory lock; SQLite: an OS lock on
    /// `<database>.batch-lock`).
    async fn try_lock_batch(&self) -> Result<Option<BatchLock>, StoreError>;

    /// The state of the last batch run, if any.
    async fn batch_run_state(&self) -> Result<Option<BatchRunState>, StoreError>;

    /// Saves the state of the current batch run.
    async fn save_batch_run_state(&self, state: &BatchRunState) -> Result<(), StoreError>;

    /// Purge (server-api.md §4.6): deletes the exposures of registrations in
    /// `range` whose epoch is before `first_kept`. Returns the count deleted.
    async fn purge_exposures(&self, range: IdARange, first_kept: Epoch) -> Result<u64, StoreError>;

    /// The at-risk registrations in `range`, with their `lastContactTimestamp`.
    async fn at_risk_registrations(
        &self,
        range: IdARange,
    ) -> Result<Vec<(IdA, NtpSeconds)>, StoreError>;

    /// Risk reset (server-api.md §4.1 d): `atRisk = false`,
    /// `notifiedForCurrentRisk = false` for these registrations, in one
    /// transaction. Returns how many were at risk.
    async fn reset_risk(&self, ids: &[IdA]) -> Result<u64, StoreError>;

    /// The next queued contacts after `after` (all if `None`), by id: at most
    /// `max_contacts`, and stopping once `max_hellos` HELLOs are reached
    /// (always at least one contact if any is queued).
    async fn next_contacts(
        &self,
        after: Option<ContactId>,
        max_contacts: usize,
        max_hellos: u64,
    ) -> Result<Vec<StoredContact>, StoreError>;

    /// The wrapped K_A of these registrations (absent ones are left out),
    /// and what the read saw of registration deletions.
    async fn wrapped_keys_a(&self, ids: &[IdA]) -> Result<WrappedKeysA, StoreError>;

    /// Commits one batch chunk in ONE transaction: appends the scores to the
    /// registrations that still exist (setting `outdatedRisk`), and deletes
    /// every processed contact (`processed`, scored or rejected). Returns how
    /// many scores were stored. Re-applying a stored score is a no-op.
    ///
    /// `seen` is the [`WrappedKeysA::deletions`] of the read that found the
    /// scores' registrations: when no registration has been deleted since,
    /// the commit stores every score without checking which registrations
    /// exist. A caller passing `Some` must only score registrations that read
    /// found; `None` always checks.
    async fn commit_contact_chunk(
        &self,
        scores: &[ContactExposure],
        processed: &[ContactId],
        seen: Option<DeletionMark>,
    ) -> Result<u64, StoreError>;

    /// The registrations in `range` with `outdatedRisk`, with their exposures.
    async fn outdated_registrations(
        &self,
        range: IdARange,
    ) -> Result<Vec<RiskCandidate>, StoreError>;

    /// Stores risk evaluations in one transaction: clears `outdatedRisk`,
    /// applies each new risk, and adds `retention_expired` to KPI
    /// `usersAboveRiskThresholdButRetentionPeriodExpired`.
    async fn apply_risk_updates(
        &self,
        updates: &[RiskUpdate],
        retention_expired: i64,
    ) -> Result<(), StoreError>;

    /// The registration counts behind the batch KPIs.
    async fn population_counts(&self) -> Result<PopulationCounts, StoreError>;
}
