//! The embedded store: SQLite in WAL mode.
//!
//! * One writer connection owned by a task that group-commits ([`writer`]);
//!   `synchronous=FULL` by default, so an acknowledged write survives a power
//!   loss, while many concurrent writes share one `fsync`.
//! * A small pool of reader connections: WAL lets them read the last
//!   committed state while the writer works.
//! * The risk batch's two bulk reads run on blocking connections of their
//!   own ([`batch`]), without the async driver's per-row hand-off.
//! * `sqlite::memory:` (tests) is a database in a temporary file, removed
//!   when the store is dropped: the same connections and code paths as a
//!   real file, nothing left behind.

mod batch;
mod dialect;
mod writer;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::ConnectOptions as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use self::batch::BatchReader;
use self::writer::{BoxFuture, Writer};
use crate::{BatchLock, StoreError, StoreOptions};

/// The connection the shared bodies ([`crate::ops`]) run on.
type Conn = SqliteConnection;

/// The embedded store (see the module docs).
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: SqlitePool,
    batch_reader: BatchReader,
    lock_path: PathBuf,
    /// The temporary file of `sqlite::memory:`, removed on drop.
    _temporary: Option<TemporaryDatabase>,
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
        let temporary = memory.then(TemporaryDatabase::new);
        let base = match &temporary {
            Some(t) => SqliteConnectOptions::new().filename(&t.path),
            None => SqliteConnectOptions::from_str(url)?,
        };
        let base = base
            .create_if_missing(true)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false)
            .statement_cache_capacity(256)
            // Reads of many rows fit the channel whole, so the worker thread
            // never waits for the reader to drain it. Measured on the batch's
            // reads when they went through sqlx (docs/batch-profile.md,
            // fourth round); the risk evaluation's reads of outdated
            // registrations still do.
            .row_buffer_size(16384)
            .pragma("temp_store", "memory")
            .journal_mode(SqliteJournalMode::Wal);
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
        // The file exists now. Every connection opened later (the readers'
        // pool grows on demand, the batch's connections, the batch lock)
        // names it by its absolute path, so a change of working directory
        // cannot point them at another file.
        let file = std::fs::canonicalize(base.get_filename())?;
        let base = base.filename(&file);

        let readers = SqlitePoolOptions::new()
            .max_connections(options.sqlite_readers.max(1))
            .acquire_timeout(options.busy_timeout)
            .connect_with(
                base.clone()
                    .pragma("cache_size", "-16384")
                    .pragma("mmap_size", READER_MMAP_SIZE)
                    .thread_name(|id| format!("{SQLITE_READER_THREAD}{id}")),
            )
            .await?;
        let mut lock_path = file.as_os_str().to_owned();
        lock_path.push(".batch-lock");
        Ok(Self {
            writer: Writer::spawn(conn, options.sqlite_group_commit_max),
            readers,
            batch_reader: BatchReader::new(&file, options.busy_timeout),
            lock_path: PathBuf::from(lock_path),
            _temporary: temporary,
        })
    }

    /// [`Store::next_contacts`](crate::Store::next_contacts) on a blocking reader.
    async fn read_next_contacts(
        &self,
        after: i64,
        limit: i64,
        hellos: i64,
    ) -> Result<Vec<crate::StoredContact>, StoreError> {
        self.batch_reader.next_contacts(after, limit, hellos).await
    }

    /// [`Store::wrapped_keys_a`](crate::Store::wrapped_keys_a) on blocking readers.
    async fn read_wrapped_keys_a(
        &self,
        sorted: Vec<i64>,
    ) -> Result<crate::WrappedKeysA, StoreError> {
        self.batch_reader.wrapped_keys_a(sorted).await
    }

    /// Runs `f` on a reader connection.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let mut conn = self.readers.acquire().await?;
        f(&mut conn).await
    }

    /// Waits for the writer to drain what was queued before, then closes the readers.
    async fn shutdown(&self) {
        let _ = self.writer.run(|_| Box::pin(async { Ok(()) })).await;
        self.readers.close().await;
        self.batch_reader.close();
    }

    /// The batch lock: an OS lock on `<database>.batch-lock`.
    async fn lock_batch(&self) -> Result<Option<BatchLock>, StoreError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(BatchLock::file(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// The readers' memory map (1 GiB): without it they used more CPU and were
/// not faster (docs/batch-profile.md, fourth and fifth rounds).
pub(super) const READER_MMAP_SIZE: &str = "1073741824";

/// The temporary file behind `sqlite::memory:`, removed (with its WAL,
/// shared-memory and lock files) when dropped.
#[derive(Debug)]
struct TemporaryDatabase {
    path: PathBuf,
}

impl TemporaryDatabase {
    /// A fresh path; files a killed process of the same id left there are
    /// removed first, so the database starts empty.
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "robert-memory-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let fresh = Self {
            path: std::env::temp_dir().join(name),
        };
        fresh.remove();
        fresh
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", ".batch-lock"] {
            let mut p = self.path.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
}

impl Drop for TemporaryDatabase {
    fn drop(&mut self) {
        self.remove();
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
