//! The token store: embedded SQLite by default, PostgreSQL in production.
//!
//! One table, `push_token`, with the columns of the reference's `push`
//! table (codes-and-push.md §8) less `deleted`: an unregistered token is
//! deleted, not kept soft-deleted, since the reference's soft delete kept
//! personal data for no use (a re-registration starts afresh either way).
//! Instants are Unix seconds (UTC). The schema is created by
//! [`TokenStore::open`] (`CREATE … IF NOT EXISTS`, versioned in
//! `push_schema_version`), not by sqlx's migrator, so that the table may live
//! in a database that also holds robert-store's migrations.
//!
//! Tokens are personal data: this module never logs them.

use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr as _;
use std::time::Duration;

/// A database error.
#[derive(Debug, thiserror::Error)]
#[error("push token store: {0}")]
pub struct StoreError(#[from] sqlx::Error);

/// The schema version this code writes.
const SCHEMA_VERSION: i64 = 1;

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS push_schema_version (version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS push_token (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        locale TEXT NOT NULL,
        timezone TEXT NOT NULL,
        active BOOLEAN NOT NULL,
        creation_date BIGINT NOT NULL,
        next_planned_push BIGINT NOT NULL,
        last_successful_push BIGINT,
        last_failure_push BIGINT,
        last_error_code TEXT,
        successful_push_sent BIGINT NOT NULL DEFAULT 0,
        failed_push_sent BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS push_token_due ON push_token (next_planned_push) WHERE active",
];

const PG_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS push_schema_version (version BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS push_token (
        id BIGSERIAL PRIMARY KEY,
        token VARCHAR(255) NOT NULL UNIQUE,
        locale VARCHAR(255) NOT NULL,
        timezone VARCHAR(255) NOT NULL,
        active BOOLEAN NOT NULL,
        creation_date BIGINT NOT NULL,
        next_planned_push BIGINT NOT NULL,
        last_successful_push BIGINT,
        last_failure_push BIGINT,
        last_error_code VARCHAR(255),
        successful_push_sent BIGINT NOT NULL DEFAULT 0,
        failed_push_sent BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS push_token_due ON push_token (next_planned_push) WHERE active",
];

/// The pool, per back end.
#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body on either back end (the SQL is common: `$n`
/// placeholders, `ON CONFLICT`, booleans).
macro_rules! on_pool {
    ($self:expr, |$p:ident| $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// A token row as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Row id.
    pub id: i64,
    /// The device token.
    pub token: String,
    /// Locale (kept as the reference does; unused).
    pub locale: String,
    /// IANA time zone.
    pub timezone: String,
    /// False once APNs called the token invalid.
    pub active: bool,
    /// Next planned push, Unix seconds.
    pub next_planned_push: i64,
    /// Last accepted push, Unix seconds.
    pub last_successful_push: Option<i64>,
    /// Last failed push, Unix seconds.
    pub last_failure_push: Option<i64>,
    /// APNs reasons of the last failure.
    pub last_error_code: Option<String>,
    /// Accepted pushes.
    pub successful_push_sent: i64,
    /// Failed pushes.
    pub failed_push_sent: i64,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is personal data: never in a debug print.
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .field("timezone", &self.timezone)
            .field("active", &self.active)
            .field("next_planned_push", &self.next_planned_push)
            .field("successful_push_sent", &self.successful_push_sent)
            .field("failed_push_sent", &self.failed_push_sent)
            .finish_non_exhaustive()
    }
}

/// A token claimed for sending.
#[derive(Clone)]
pub struct Due {
    /// Row id.
    pub id: i64,
    /// The device token.
    pub token: String,
}

impl std::fmt::Debug for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Due")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What happened to one push, as recorded on its row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// APNs accepted it.
    Accepted,
    /// APNs refused it or could not be reached; the reasons.
    Failed(String),
    /// APNs called the token invalid: the row is deactivated.
    Deactivated(String),
}

/// The token store.
#[derive(Clone, Debug)]
pub struct TokenStore {
    pool: Pool,
}

/// Truncates to the 255 characters of the reference's `varchar(255)`.
fn truncate_255(s: &str) -> String {
    s.chars().take(255).collect()
}

impl TokenStore {
    /// Connects to `sqlite://…` or `postgres://…` and creates the schema.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?,
            )
        } else {
            let opts = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            // An in-memory database exists per connection: one connection.
            let n = if url.contains(":memory:") {
                1
            } else {
                max_connections
            };
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(n)
                    .connect_with(opts)
                    .await?,
            )
        };
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let stmts = match &self.pool {
            Pool::Sqlite(_) => SQLITE_SCHEMA,
            Pool::Postgres(_) => PG_SCHEMA,
        };
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for s in stmts {
                sqlx::query(*s).execute(&mut *tx).await?;
            }
            let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM push_schema_version")
                .fetch_one(&mut *tx)
                .await?;
            if v.is_none() {
                sqlx::query("INSERT INTO push_schema_version (version) VALUES ($1)")
                    .bind(SCHEMA_VERSION)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Registers a token or refreshes its locale and time zone (the
    /// reference's `POST /push-token`). A new or deactivated token gets
    /// `next_planned_push = next`; an active one keeps its planned push.
    pub async fn upsert(
        &self,
        token: &str,
        locale: &str,
        timezone: &str,
        now: i64,
        next: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO push_token
                (token, locale, timezone, active, creation_date, next_planned_push)
            VALUES ($1, $2, $3, TRUE, $4, $5)
            ON CONFLICT (token) DO UPDATE SET
                locale = excluded.locale,
                timezone = excluded.timezone,
                next_planned_push = CASE WHEN push_token.active
                    THEN push_token.next_planned_push ELSE excluded.next_planned_push END,
                active = TRUE";
        on_pool!(self, |p| {
            sqlx::query(SQL)
                .bind(token)
                .bind(locale)
                .bind(timezone)
                .bind(now)
                .bind(next)
                .execute(p)
                .await?;
        });
        Ok(())
    }

    /// Deletes a token; false if it was unknown.
    pub async fn delete(&self, token: &str) -> Result<bool, StoreError> {
        let n = on_pool!(self, |p| {
            sqlx::query("DELETE FROM push_token WHERE token = $1")
                .bind(token)
                .execute(p)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Claims up to `limit` active tokens due at `now`: each one's
    /// `next_planned_push` is moved to `reschedule(timezone)` and committed
    /// **before** it is returned, so that a token is never sent twice for
    /// one planned push, even with several senders on one database (a
    /// claim is a conditional update on the old planned instant).
    pub async fn claim_due(
        &self,
        now: i64,
        limit: u32,
        mut reschedule: impl FnMut(&str) -> i64 + Send,
    ) -> Result<Vec<Due>, StoreError> {
        const SELECT: &str = "SELECT id, token, timezone, next_planned_push FROM push_token
            WHERE active AND next_planned_push <= $1
            ORDER BY next_planned_push LIMIT $2";
        const CLAIM: &str = "UPDATE push_token SET next_planned_push = $1
            WHERE id = $2 AND next_planned_push = $3 AND active";
        let claimed = on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let rows = sqlx::query(SELECT)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get(0)?;
                let token: String = row.try_get(1)?;
                let timezone: String = row.try_get(2)?;
                let planned: i64 = row.try_get(3)?;
                let next = reschedule(&timezone);
                let n = sqlx::query(CLAIM)
                    .bind(next)
                    .bind(id)
                    .bind(planned)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    claimed.push(Due { id, token });
                }
            }
            tx.commit().await?;
            claimed
        });
        Ok(claimed)
    }

    /// Records the outcomes of sent pushes, in one transaction.
    pub async fn record(&self, now: i64, outcomes: &[(i64, Recorded)]) -> Result<(), StoreError> {
        const OK: &str = "UPDATE push_token SET last_successful_push = $1,
            successful_push_sent = successful_push_sent + 1 WHERE id = $2";
        const FAILED: &str = "UPDATE push_token SET last_failure_push = $1,
            failed_push_sent = failed_push_sent + 1, last_error_code = $2 WHERE id = $3";
        const DEACTIVATED: &str = "UPDATE push_token SET last_failure_push = $1,
            failed_push_sent = failed_push_sent + 1, last_error_code = $2, active = FALSE
            WHERE id = $3";
        if outcomes.is_empty() {
            return Ok(());
        }
        on_pool!(self, |p| {
            let mut tx = p.begin().await?;
            for (id, outcome) in outcomes {
                match outcome {
                    Recorded::Accepted => {
                        sqlx::query(OK)
                            .bind(now)
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Recorded::Failed(reason) | Recorded::Deactivated(reason) => {
                        let sql = if matches!(outcome, Recorded::Failed(_)) {
                            FAILED
                        } else {
                            DEACTIVATED
                        };
                        sqlx::query(sql)
                            .bind(now)
                            .bind(truncate_255(reason))
                            .bind(*id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The row of a token (tests, operators).
    pub async fn get(&self, token: &str) -> Result<Option<TokenRow>, StoreError> {
        const SQL: &str = "SELECT id, token, locale, timezone, active, next_planned_push,
            last_successful_push, last_failure_push, last_error_code,
            successful_push_sent, failed_push_sent FROM push_token WHERE token = $1";
        let row = on_pool!(self, |p| {
            match sqlx::query(SQL).bind(token).fetch_optional(p).await? {
                None => None,
                Some(r) => Some(TokenRow {
                    id: r.try_get(0)?,
                    token: r.try_get(1)?,
                    locale: r.try_get(2)?,
                    timezone: r.try_get(3)?,
                    active: r.try_get(4)?,
                    next_planned_push: r.try_get(5)?,
                    last_successful_push: r.try_get(6)?,
                    last_failure_push: r.try_get(7)?,
                    last_error_code: r.try_get(8)?,
                    successful_push_sent: r.try_get(9)?,
                    failed_push_sent: r.try_get(10)?,
                }),
            }
        });
        Ok(row)
    }

    /// Active tokens and all tokens (the `/metrics` gauges).
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        const SQL: &str =
            "SELECT COALESCE(SUM(CASE WHEN active THEN 1 ELSE 0 END), 0), COUNT(*) FROM push_token";
        let (a, t) = on_pool!(self, |p| {
            let r = sqlx::query(SQL).fetch_one(p).await?;
            (r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)
        });
        Ok((a, t))
    }

    /// Inserts `tokens` (token, timezone, planned push) in bulk, in
    /// transactions of 10 000 rows: the measurement's million tokens.
    pub async fn insert_bulk(
        &self,
        rows: impl IntoIterator<Item = (String, String, i64)>,
        now: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO push_token
                (token, locale, timezone, active, creation_date, next_planned_push)
            VALUES ($1, 'fr-FR', $2, TRUE, $3, $4) ON CONFLICT (token) DO NOTHING";
        let mut rows = rows.into_iter().peekable();
        let mut n = 0u64;
        while rows.peek().is_some() {
            on_pool!(self, |p| {
                let mut tx = p.begin().await?;
                for (token, tz, next) in rows.by_ref().take(10_000) {
                    n += sqlx::query(SQL)
                        .bind(token)
                        .bind(tz)
                        .bind(now)
                        .bind(next)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
            });
        }
        Ok(n)
    }
}
