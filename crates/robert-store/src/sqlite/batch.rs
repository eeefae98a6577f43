//! The batch's reads on SQLite, without the async driver.
//!
//! Each chunk of the risk batch reads its contacts and its senders' wrapped
//! K_A: tens of thousands of rows. Through sqlx every row crosses from the
//! connection's worker thread to the async side one at a time, which cost
//! the batch more CPU than SQLite's own work (docs/batch-profile.md, fourth
//! and fifth rounds). Here the two reads run on plain `rusqlite` connections
//! (the same SQLite library as sqlx's), opened read-only on the same file,
//! each whole read on one blocking thread: one hand-off per read, not per
//! row.
//!
//! WAL lets these connections read the last committed state while the
//! writer works, exactly like the store's async readers. They are opened on
//! first use and kept until the store closes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::READER_MMAP_SIZE;
use crate::codec::{id_from_db, wrapped_key_from_db};
use crate::sql::decode_contact;
use crate::{DeletionMark, StoreError, StoredContact, WrappedKeysA};

/// Blocking read connections for the batch (opened on first use, kept).
#[derive(Debug, Clone)]
pub(crate) struct BatchReader {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl BatchReader {
    /// Reads the database file at `path`.
    pub(super) fn new(path: &Path, busy_timeout: Duration) -> Self {
        Self {
            path: path.to_owned(),
            busy_timeout,
            idle: Arc::default(),
        }
    }

    fn open(&self) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -16384; PRAGMA mmap_size = {READER_MMAP_SIZE}; \
             PRAGMA temp_store = memory;"
        ))?;
        Ok(conn)
    }

    /// Closes the idle connections (one still in use closes when its read ends
    /// and is dropped with the last handle).
    pub(super) fn close(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Runs `f` on an idle connection (or a new one) on a blocking thread.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let taken = this
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match taken {
                Some(conn) => conn,
                None => this.open()?,
            };
            let out = f(&conn);
            this.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            out
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    /// See [`crate::Store::next_contacts`].
    pub(crate) async fn next_contacts(
        &self,
        after: i64,
        limit: i64,
        hellos: i64,
    ) -> Result<Vec<StoredContact>, StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, received_at, ebid, ecc, hellos, hello_count FROM contact \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query((after, limit))?;
            let mut out = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1 << 16));
            let mut before = 0i64;
            while let Some(row) = rows.next()? {
                if before >= hellos {
                    break;
                }
                let id: i64 = row.get(0)?;
                let received_at: i64 = row.get(1)?;
                let ebid = blob(row, 2)?;
                let ecc = blob(row, 3)?;
                let packed = blob(row, 4)?;
                out.push(decode_contact(id, received_at, ebid, ecc, packed));
                before = before.saturating_add(row.get::<_, i64>(5)?);
            }
            Ok(out)
        })
        .await
    }

    /// See [`crate::Store::wrapped_keys_a`]; `sorted` are the ID_As, ascending.
    ///
    /// Large lists are read in parts on several connections at once: the
    /// lookups are most of a chunk's reading, and one thread doing them all
    /// held back the pipeline (docs/batch-profile.md, fifth round).
    pub(crate) async fn wrapped_keys_a(
        &self,
        sorted: Vec<i64>,
    ) -> Result<WrappedKeysA, StoreError> {
        let parts = if sorted.len() >= 2 * KEYS_PART_MIN {
            KEYS_PARTS
        } else {
            1
        };
        let per = sorted.len().div_ceil(parts).max(1);
        let mut reads = tokio::task::JoinSet::new();
        for part in sorted.chunks(per) {
            let (this, part) = (self.clone(), part.to_vec());
            reads.spawn(async move { this.run(move |conn| read_keys(conn, &part)).await });
        }
        let mut out = WrappedKeysA {
            keys: std::collections::HashMap::with_capacity(sorted.len()),
            deletions: None,
        };
        while let Some(part) = reads.join_next().await {
            let part = part.map_err(|_| StoreError::Closed)??;
            out.keys.extend(part.keys);
            // Each part read the count before its keys; the smallest count
            // was read before every key, so a deletion after it is seen.
            out.deletions = match (out.deletions, part.deletions) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(out)
    }
}

/// Column `i` of `row` as a blob.
fn blob<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(i)?
        .as_blob()
        .map_err(|_| StoreError::Corrupt("a blob column holds another type"))
}

/// How many registrations have been deleted, as the trigger of migration
/// 0004 counts them.
pub(super) const DELETION_COUNT: &str = "SELECT n FROM registration_deletions";

/// Parts of a large K_A read, each on its own connection.
const KEYS_PARTS: usize = 2;

/// Fewest ID_As per part.
const KEYS_PART_MIN: usize = 1024;

/// Reads the deletion count, then the wrapped K_A of `sorted`, in one read
/// transaction: alone, each lookup would be a transaction of its own, and
/// the first after a commit by the writer unmaps the connection's whole
/// memory map (SQLite's pager resets when the database changed).
fn read_keys(conn: &Connection, sorted: &[i64]) -> Result<WrappedKeysA, StoreError> {
    let snapshot = conn.unchecked_transaction()?;
    let deletions: i64 = conn
        .prepare_cached(DELETION_COUNT)?
        .query_row([], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached("SELECT key_a FROM registration WHERE id_a = ?1")?;
    let mut keys = std::collections::HashMap::with_capacity(sorted.len());
    for &id in sorted {
        let mut rows = stmt.query([id])?;
        if let Some(row) = rows.next()? {
            keys.insert(id_from_db(id)?, wrapped_key_from_db(blob(row, 0)?)?);
        }
    }
    drop(stmt);
    snapshot.commit()?;
    Ok(WrappedKeysA {
        keys,
        deletions: Some(DeletionMark(deletions)),
    })
}
