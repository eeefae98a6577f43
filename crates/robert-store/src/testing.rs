//! Throwaway databases for tests, on both back ends.
//!
//! ```no_run
//! # async fn demo() -> Result<(), robert_store::StoreError> {
//! use robert_store::testing::TestDatabase;
//! for db in TestDatabase::all("my_test").await? {
//!     let store = db.store();
//!     // ... exercise the store ...
//!     db.cleanup().await;
//! }
//! # Ok(()) }
//! ```
//!
//! A test written once runs on both back ends with
//! [`both_backends!`](crate::both_backends):
//!
//! ```ignore
//! use robert_store::both_backends;
//!
//! both_backends!(counts_registrations);
//!
//! async fn counts_registrations(store: Arc<dyn Store>, url: String) {
//!     assert_eq!(store.registration_count().await.unwrap(), 0);
//! }
//! ```
//!
//! Compiled with the `testing` feature only: crates enable it in their
//! `[dev-dependencies]`.
//!
//! * SQLite: a fresh file under the system temporary directory.
//! * PostgreSQL: a fresh database `robert_test_<pid>_<n>_<label>` on the
//!   server named by `ROBERT_TEST_PG_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped by
//!   [`TestDatabase::cleanup`] (or, best effort, on drop). When no server
//!   answers, [`TestDatabase::postgres`] prints `skipped: no PostgreSQL` and
//!   returns `None`; with `ROBERT_TEST_REQUIRE_PG=1` it fails instead.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};

use crate::{Backend, Store, StoreError, StoreOptions};

/// Environment variable naming the PostgreSQL server for tests.
pub const PG_URL_ENV: &str = "ROBERT_TEST_PG_URL";

/// Default PostgreSQL server for tests.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Environment variable choosing the back ends the benchmarks run on:
/// `sqlite` (the default), `postgres` or `both`.
pub const BENCH_BACKEND_ENV: &str = "ROBERT_BENCH_BACKEND";

/// Runs `bench` once per back end that [`BENCH_BACKEND_ENV`] chooses, each
/// on a multi-threaded runtime: the database benchmarks' main loop.
///
/// # Panics
///
/// If the runtime cannot start (a benchmark has nothing to measure then).
pub fn bench_each_backend<F, Fut>(mut bench: F)
where
    F: FnMut(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let backends: &[Backend] = match std::env::var(BENCH_BACKEND_ENV).as_deref() {
        Ok("postgres") => &[Backend::Postgres],
        Ok("both") => &[Backend::Sqlite, Backend::Postgres],
        _ => &[Backend::Sqlite],
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    for backend in backends {
        rt.block_on(bench(*backend));
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

static SKIP_REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A migrated store in a database of its own.
#[derive(Debug)]
pub struct TestDatabase {
    store: Arc<dyn Store>,
    url: String,
    cleanup: Option<Cleanup>,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite(PathBuf),
    Postgres { admin_url: String, name: String },
}

fn unique_name(label: &str) -> String {
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    format!(
        "robert_test_{}_{}_{label}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The admin URL from the environment, or the default.
pub fn pg_admin_url() -> String {
    std::env::var(PG_URL_ENV).unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl TestDatabase {
    /// A fresh SQLite file store.
    pub async fn sqlite(label: &str) -> Result<Self, StoreError> {
        let dir = std::env::temp_dir().join("robert-store-tests");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.db", unique_name(label)));
        let url = format!("sqlite:{}", path.display());
        let store = crate::open(&url, &StoreOptions::default()).await?;
        Ok(Self {
            store,
            url,
            cleanup: Some(Cleanup::Sqlite(path)),
        })
    }

    /// A fresh PostgreSQL database, or `None` (after printing
    /// `skipped: no PostgreSQL`) when no server answers.
    pub async fn postgres(label: &str) -> Result<Option<Self>, StoreError> {
        let admin_url = pg_admin_url();
        let admin = PgConnectOptions::from_str(&admin_url)?;
        let connect = tokio::time::timeout(Duration::from_secs(5), admin.connect()).await;
        let mut conn = match connect {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return skip(&admin_url, &e.to_string()),
            Err(_) => return skip(&admin_url, "timeout"),
        };
        let name = unique_name(label);
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        let url = with_database(&admin_url, &name);
        let store = crate::open(&url, &StoreOptions::default()).await?;
        Ok(Some(Self {
            store,
            url,
            cleanup: Some(Cleanup::Postgres { admin_url, name }),
        }))
    }

    /// The SQLite store, then the PostgreSQL store when a server answers.
    pub async fn all(label: &str) -> Result<Vec<Self>, StoreError> {
        let mut dbs = vec![Self::sqlite(label).await?];
        dbs.extend(Self::postgres(label).await?);
        Ok(dbs)
    }

    /// A fresh store of the given kind (`None`: PostgreSQL unavailable).
    pub async fn of(backend: Backend, label: &str) -> Result<Option<Self>, StoreError> {
        match backend {
            Backend::Sqlite => Self::sqlite(label).await.map(Some),
            Backend::Postgres => Self::postgres(label).await,
        }
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The database URL (to open a second store on the same data).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which back end this is.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }

    /// Closes the store and deletes the database.
    pub async fn cleanup(mut self) {
        self.store.close().await;
        if let Some(c) = self.cleanup.take() {
            drop_database(c).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // A test that panicked before `cleanup`: delete on a helper thread
        // (this may run inside an async runtime, which must not block).
        if let Some(c) = self.cleanup.take() {
            let handle = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_database(c));
                }
            });
            let _ = handle.join();
        }
    }
}

async fn drop_database(c: Cleanup) {
    match c {
        Cleanup::Sqlite(path) => {
            for suffix in ["", "-wal", "-shm", ".batch-lock"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
        Cleanup::Postgres { admin_url, name } => {
            let Ok(opts) = PgConnectOptions::from_str(&admin_url) else {
                return;
            };
            if let Ok(mut conn) = opts.connect().await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
                let _ = conn.close().await;
            }
        }
    }
}

/// Runs a test body on a fresh database of `backend` (the store and its
/// URL), then deletes the database; returns at once when PostgreSQL is
/// unavailable (see [`TestDatabase::postgres`]). Panics if the database
/// cannot be made.
pub async fn run<F, Fut>(label: &str, backend: Backend, body: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = match TestDatabase::of(backend, label).await {
        Ok(Some(db)) => db,
        Ok(None) => return,
        Err(e) => panic!("test database {label} on {backend:?}: {e}"),
    };
    body(db.store(), db.url().to_owned()).await;
    db.cleanup().await;
}

/// Declares, for each `name`, a module `name` with tests `sqlite` and
/// `postgres` running `async fn name(store: Arc<dyn Store>, url: String)`
/// through [`run`](crate::testing::run) (on a multi-threaded tokio runtime: the calling crate
/// needs `tokio` with its `macros` and `rt-multi-thread` features).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            $crate::both_backends!(@test $name, sqlite, Sqlite);
            $crate::both_backends!(@test $name, postgres, Postgres);
        }
    )*};
    (@test $name:ident, $variant:ident, $backend:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $variant() {
            $crate::testing::run(stringify!($name), $crate::Backend::$backend, super::$name).await;
        }
    };
}

fn skip(url: &str, why: &str) -> Result<Option<TestDatabase>, StoreError> {
    if std::env::var("ROBERT_TEST_REQUIRE_PG").is_ok_and(|v| v == "1") {
        panic!("PostgreSQL required (ROBERT_TEST_REQUIRE_PG=1) but unreachable at {url}: {why}");
    }
    // Written to the real stderr (the test harness captures `eprintln!`), once per process.
    if !SKIP_REPORTED.swap(true, Ordering::Relaxed) {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no PostgreSQL at {url} ({why}); the PostgreSQL variants of the tests \
             pass without running. Set {PG_URL_ENV} to test them."
        );
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replacement() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
