//! The embedded store: SQLite in WAL mode.
//!
//! * One writer connection owned by a task that group-commits ([`writer`]);
//!   `synchronous=FULL` by default, so an acknowledged write survives a power
//!   loss, while many concurrent writes share one `fsync`.
//! * A small pool of reader connections: WAL lets them read the last
//!   committed state while the writer works.
//! * `sqlite::memory:` (tests) has no readers: every statement goes through
//!   the writer's connection.

mod dialect;
mod writer;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use self::writer::{BoxFuture, Writer};
use crate::{BatchLock, StoreError, StoreOptions};

/// The connection the shared bodies ([`crate::ops`]) run on.
type Conn = SqliteConnection;

/// The embedded store (see the module docs).
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Option<SqlitePool>,
    lock_path: Option<PathBuf>,
    memory_lock: Arc<tokio::sync::Mutex<()>>,
}

/// The name of the writer connection's thread.
pub const SQLITE_WRITER_THREAD: &str = "sqlite-writer";

/// The prefix of the reader connections' thread names (then a number).
pub const SQLITE_READER_THREAD: &str = "sqlite-reader-";

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:<path>` or
    /// `sqlite::memory:`) and migrates it.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let base = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false)
            .statement_cache_capacity(256)
            // Batch reads return 10⁴ rows: room for all of them, so the
            // worker thread never waits for the reader to drain the channel
            // (1,024 → 16,384: the batch 4 – 12 % faster, docs/batch-profile.md).
            .row_buffer_size(16384)
            .pragma("temp_store", "memory");
        let base = if memory {
            base
        } else {
            base.journal_mode(SqliteJournalMode::Wal)
        };
        let writer_options = base
            .clone()
            .synchronous(if options.sqlite_full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .pragma("cache_size", "-65536")
            // Each connection runs on a thread of its own; named, the
            // writer and the readers show apart in `top -H` and profiles.
            .thread_name(|_| SQLITE_WRITER_THREAD.to_owned());
        let mut conn = writer_options.connect().await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;

        let readers = if memory {
            None
        } else {
            Some(
                SqlitePoolOptions::new()
                    .max_connections(options.sqlite_readers.max(1))
                    .acquire_timeout(options.busy_timeout)
                    .connect_with(
                        base.clone()
                            .pragma("cache_size", "-16384")
                            .pragma("mmap_size", "1073741824")
                            .thread_name(|id| format!("{SQLITE_READER_THREAD}{id}")),
                    )
                    .await?,
            )
        };
        let lock_path = (!memory).then(|| {
            let mut p = base.get_filename().as_os_str().to_owned();
            p.push(".batch-lock");
            PathBuf::from(p)
        });
        Ok(Self {
            writer: Writer::spawn(conn, options.sqlite_group_commit_max),
            readers,
            lock_path,
            memory_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Runs `f` on a reader connection (or through the writer for `:memory:`).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        match &self.readers {
            Some(pool) => {
                let mut conn = pool.acquire().await?;
                f(&mut conn).await
            }
            None => self.writer.run(f).await,
        }
    }

    /// Waits for the writer to drain what was queued before, then closes the readers.
    async fn shutdown(&self) {
        let _ = self.writer.run(|_| Box::pin(async { Ok(()) })).await;
        if let Some(pool) = &self.readers {
            pool.close().await;
        }
    }

    /// The batch lock: an OS lock on `<database>.batch-lock`, or an
    /// in-process lock for `:memory:`.
    async fn lock_batch(&self) -> Result<Option<BatchLock>, StoreError> {
        match &self.lock_path {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(BatchLock::file(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
                }
            }
            None => Ok(Arc::clone(&self.memory_lock)
                .try_lock_owned()
                .ok()
                .map(BatchLock::memory)),
        }
    }
}

// How the shared bodies of `crate::ops` run here. Reads go to a reader
// connection; every write goes to the writer task, which runs it in its
// group-committed transaction, so a body owns its data (`owned!`).

/// Runs a body on a reader connection.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {
        $store.read(move |$c| Box::pin(async move { $body })).await
    };
}

/// Runs reads that need one snapshot: a reader connection.
macro_rules! snapshot {
    ($($args:tt)*) => { read!($($args)*) };
}

/// Runs a write through the writer task (group-committed).
macro_rules! autocommit {
    ($store:expr, |$c:ident| $body:expr) => {
        $store
            .writer
            .run(move |$c| Box::pin(async move { $body }))
            .await
    };
}

/// Runs a several-statement write through the writer task (one transaction).
macro_rules! transaction {
    ($($args:tt)*) => { autocommit!($($args)*) };
}

/// An argument the body can carry to the writer task.
macro_rules! owned {
    ($arg:expr) => {
        ToOwned::to_owned($arg)
    };
}

crate::shared::shared_impl!(SqliteStore);
crate::ops::store_impl!(SqliteStore, Sqlite);
crate::federation::federation_impl!(
    SqliteStore,
    "IN (SELECT value FROM json_each($1))",
    "IN (SELECT value FROM json_each($3))"
);
