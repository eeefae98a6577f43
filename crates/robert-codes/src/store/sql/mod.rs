//! [`CodeStore`] on SQLite or PostgreSQL with runtime queries.
//!
//! One SQL text serves both back ends (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`); the [`with_pool!`] macro expands each body once per back end.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use super::{CodeStore, StoreError};

/// Rows per multi-row `INSERT` (7 parameters each, far below both limits).
const INSERT_CHUNK: usize = 500;

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// SQL storage: SQLite or PostgreSQL, chosen by the URL.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool,
}

/// Runs `$body` with `$p` bound to the concrete pool of either back end.
macro_rules! with_pool {
    ($self:expr, |$p:ident| $body:expr) => {
        match &$self.pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

fn day_number(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const KPI_UPSERT: &str = "INSERT INTO kpi_daily (day, kind, issued, used, expired) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (day, kind) DO UPDATE SET \
     issued = kpi_daily.issued + excluded.issued, used = kpi_daily.used + excluded.used, \
     expired = kpi_daily.expired + excluded.expired";

const DOCTOR_COLUMNS: &str = "id, username, display_name, password_hash, enabled, daily_quota, \
     failed_logins, locked_until";

/// Builds a `Doctor` from a row selected with [`DOCTOR_COLUMNS`] first.
macro_rules! doctor_from_row {
    ($row:expr) => {
        (|| -> Result<Doctor, sqlx::Error> {
            let row = $row;
            Ok(Doctor {
                id: row.try_get(0)?,
                username: row.try_get(1)?,
                display_name: row.try_get(2)?,
                password_hash: row.try_get(3)?,
                enabled: row.try_get(4)?,
                daily_quota: row.try_get::<Option<i64>, _>(5)?.map(to_u64),
                failed_logins: u32::try_from(row.try_get::<i64, _>(6)?).unwrap_or(u32::MAX),
                locked_until: row.try_get(7)?,
            })
        })()
    };
}

impl SqlStore {
    /// Connects to `url` (`sqlite://…` or `postgres://…`); does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let max = max_connections.max(1);
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(15))
                .create_if_missing(true);
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts)
                    .await?,
            )
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(url)
                    .await?,
            )
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self { pool })
    }

    /// Connects and migrates.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = Self::connect(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_pool!(self, |p| p.close().await);
    }
}

mod code_store;
