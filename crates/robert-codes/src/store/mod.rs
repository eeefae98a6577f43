//! Storage behind one trait, [`CodeStore`], with one SQL implementation,
//! [`SqlStore`], for SQLite (default) and PostgreSQL.
//!
//! Invariants:
//! - codes exist here only as keyed hashes ([`crate::pepper`]);
//! - a code is consumed by one conditional `UPDATE` (valid iff one row changed);
//! - a JWT `jti` is consumed by one `INSERT … ON CONFLICT DO NOTHING`;
//! - times are Unix seconds (UTC); KPI days are UTC day numbers.

use async_trait::async_trait;
use chrono::NaiveDate;

use crate::code::CodeKind;
use crate::pepper::CodeHash;

mod sql;

pub use sql::SqlStore;

/// KPI kind number used for JWT report tokens (stored kinds use 1–3).
pub const KPI_KIND_JWT: i64 = 4;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed or is unreachable.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Schema migration failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique value already exists (e.g. a doctor's user name).
    #[error("already exists: {0}")]
    Conflict(String),
    /// The URL names no supported database.
    #[error("unsupported database URL (use sqlite://… or postgres://…)")]
    UnsupportedUrl,
    /// Stored data is not what this version expects.
    #[error("unexpected stored data: {0}")]
    Corrupt(String),
}

/// A code to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    /// Keyed hash under the current pepper.
    pub hash: CodeHash,
    /// Kind.
    pub kind: CodeKind,
    /// First valid instant (Unix seconds).
    pub available_from: i64,
    /// Last valid instant (Unix seconds).
    pub valid_until: i64,
    /// Generation instant (Unix seconds).
    pub generated_at: i64,
}

/// A laboratory lot (one archive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLot {
    /// When the lot was produced (Unix seconds).
    pub created_at: i64,
    /// First validity day covered.
    pub first_day: NaiveDate,
    /// Last validity day covered.
    pub last_day: NaiveDate,
    /// Codes per day (per CSV file).
    pub codes_per_day: u64,
    /// Archive file name.
    pub archive_name: String,
}

/// One day of KPI counters for one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiRow {
    /// UTC day number (days since 1970-01-01).
    pub day: i64,
    /// 1 long, 2 short, 3 test, 4 JWT.
    pub kind: i64,
    /// Codes issued that day.
    pub issued: u64,
    /// Codes used that day.
    pub used: u64,
    /// Codes that expired unused that day (counted when purged).
    pub expired: u64,
}

/// A doctor account.
#[derive(Clone, PartialEq, Eq)]
pub struct Doctor {
    /// Identifier.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name shown on pages.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Whether the account may log in.
    pub enabled: bool,
    /// Daily quota override.
    pub daily_quota: Option<u64>,
    /// Consecutive failed logins.
    pub failed_logins: u32,
    /// Locked until this instant (Unix seconds).
    pub locked_until: Option<i64>,
}

impl std::fmt::Debug for Doctor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doctor")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A doctor account to create.
#[derive(Clone)]
pub struct NewDoctor {
    /// Login name.
    pub username: String,
    /// Name shown on pages.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Daily quota override.
    pub daily_quota: Option<u64>,
    /// Creation instant (Unix seconds).
    pub created_at: i64,
}

impl std::fmt::Debug for NewDoctor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewDoctor")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An audit-log entry: who did what when. Never holds a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Instant (Unix seconds).
    pub at: i64,
    /// Who (`doctor:<username>`, `api:<client>`, `cli`).
    pub actor: String,
    /// What (`issue_short`, `login_failed`, …).
    pub action: String,
    /// Free text without secrets.
    pub detail: String,
}

/// Rows removed by a purge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Codes that expired unused.
    pub expired_unused: u64,
    /// Used codes past retention.
    pub used: u64,
    /// JWT identifiers past their token's lifetime.
    pub jti: u64,
    /// Expired portal sessions.
    pub sessions: u64,
    /// Audit entries past retention.
    pub audit: u64,
}

/// Cut-off instants for a purge.
#[derive(Debug, Clone, Copy)]
pub struct PurgeCutoffs {
    /// Delete codes whose validity ended before this.
    pub codes_before: i64,
    /// Delete `jti` records whose token expired before this.
    pub jti_before: i64,
    /// Delete sessions that expired before this.
    pub sessions_before: i64,
    /// Delete audit entries older than this.
    pub audit_before: i64,
    /// Delete KPI days before this day number.
    pub kpi_before_day: i64,
}

/// What a claim holds: a code or a JWT.
#[derive(Debug, Clone, Copy)]
pub enum UseTarget<'a> {
    /// A code of `kind` whose hash is one of `hashes` (one per pepper).
    Code {
        /// The candidate hashes.
        hashes: &'a [CodeHash],
        /// The code's kind.
        kind: CodeKind,
    },
    /// A JWT, by the hash of its `jti`.
    Jwt {
        /// Hash of the `jti` claim.
        jti_hash: &'a [u8; 32],
        /// The token's expiry (Unix seconds), kept for the purge.
        expires_at: i64,
    },
}

/// Storage of codes, lots, doctors, sessions, quotas and KPIs.
#[async_trait]
pub trait CodeStore: Send + Sync + std::fmt::Debug {
    /// Creates or upgrades the schema.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// A trivial round trip: whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Closes the connections once in-flight queries finish (SQLite
    /// checkpoints its log); later calls fail as unavailable (503 at the
    /// API). Called when the service stops.
    async fn close(&self);

    /// Stores one code; `false` if its hash already exists. Counts it as issued.
    async fn insert_code(&self, code: &NewCode) -> Result<bool, StoreError>;

    /// Whether any of `hashes` is a code of `kind` still valid at `now`.
    async fn live_code_exists(
        &self,
        hashes: &[CodeHash],
        kind: CodeKind,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// The validity window `(available_from, valid_until)` (Unix seconds) of
    /// the code of `kind` with one of `hashes`, used or not; read only (for
    /// printing a letter).
    async fn code_validity(
        &self,
        hashes: &[CodeHash],
        kind: CodeKind,
    ) -> Result<Option<(i64, i64)>, StoreError>;

    /// Atomically consumes the code: `true` iff one of `hashes` is an unused
    /// code of `kind` valid at `now`, which is now marked used.
    async fn burn(&self, hashes: &[CodeHash], kind: CodeKind, now: i64)
    -> Result<bool, StoreError>;

    /// Records a JWT `jti`; `true` iff it was not already used.
    async fn use_jti(
        &self,
        jti_hash: &[u8; 32],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError>;

    /// Holds the code or JWT for one report until `until` (two-phase use):
    /// `true` iff it is unused, valid at `now`, and not held by another
    /// unexpired claim. A claim with the same `key` (the same report,
    /// retried) takes the hold again. Of concurrent claims with different
    /// keys exactly one succeeds.
    async fn claim(
        &self,
        target: UseTarget<'_>,
        key: &[u8; 32],
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;

    /// Turns the claim made with `key` into a use (counted in the KPIs):
    /// `true` iff that claim still holds the code (even past `until`, as
    /// long as nobody claimed or used it since).
    async fn confirm(
        &self,
        target: UseTarget<'_>,
        key: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Drops the claim made with `key`; the code is usable again. `true`
    /// iff there was such a claim.
    async fn release(&self, target: UseTarget<'_>, key: &[u8; 32]) -> Result<bool, StoreError>;

    /// Number of long codes whose validity starts at `available_from`.
    async fn count_long_codes(&self, available_from: i64) -> Result<u64, StoreError>;

    /// Reserves the next CSV sequence number for validity day `day`
    /// (`initial` for the first file of that day).
    async fn next_file_sequence(&self, day: NaiveDate, initial: i64) -> Result<i64, StoreError>;

    /// Stores a lot and its codes in one transaction; returns the lot id.
    async fn insert_lot(&self, lot: &NewLot, codes: &[NewCode]) -> Result<i64, StoreError>;

    /// Deletes what is past retention and counts expired codes in the KPIs.
    async fn purge(&self, cutoffs: &PurgeCutoffs) -> Result<PurgeReport, StoreError>;

    /// KPI counters for days `from_day..=to_day`.
    async fn kpi(&self, from_day: i64, to_day: i64) -> Result<Vec<KpiRow>, StoreError>;

    /// Takes one unit of `subject`'s quota for `day`; `false` if `limit` is reached.
    async fn consume_quota(
        &self,
        subject: &[u8; 32],
        day: i64,
        limit: u64,
    ) -> Result<bool, StoreError>;

    /// Units of quota used by `subject` on `day`.
    async fn quota_used(&self, subject: &[u8; 32], day: i64) -> Result<u64, StoreError>;

    /// Creates a doctor; [`StoreError::Conflict`] if the user name exists.
    async fn create_doctor(&self, doctor: &NewDoctor) -> Result<i64, StoreError>;

    /// Enables or disables a doctor (disabling ends their sessions); `false` if unknown.
    async fn set_doctor_enabled(&self, username: &str, enabled: bool) -> Result<bool, StoreError>;

    /// Looks a doctor up by user name.
    async fn doctor_by_username(&self, username: &str) -> Result<Option<Doctor>, StoreError>;

    /// Adds one failed login; returns the new count.
    async fn increment_failed_logins(&self, doctor_id: i64) -> Result<u32, StoreError>;

    /// Sets or clears the lock.
    async fn set_locked_until(&self, doctor_id: i64, until: Option<i64>) -> Result<(), StoreError>;

    /// Clears failed logins and the lock after a successful login.
    async fn reset_failed_logins(&self, doctor_id: i64) -> Result<(), StoreError>;

    /// Stores a new session.
    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        doctor_id: i64,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// The enabled doctor and CSRF token of a live session.
    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(Doctor, String)>, StoreError>;

    /// Ends a session.
    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError>;

    /// Appends to the audit log.
    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The latest `limit` audit entries, newest first.
    async fn audit_entries(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Takes the named job lock until `until` unless another holder has it.
    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;

    /// Releases the named lock if `holder` has it.
    async fn unlock(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}
