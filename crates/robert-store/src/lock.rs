//! The batch lock: at most one risk batch runs against a store.

use std::fmt;

/// Proof that this process holds the batch lock; dropping it releases the lock.
///
/// Whatever the back end, the operating system releases the lock when the
/// holding process dies, so a killed batch never blocks the next run:
/// PostgreSQL drops a session advisory lock with its connection, and the
/// kernel drops a `flock` with the process's file descriptors.
pub struct BatchLock {
    _inner: Inner,
}

#[allow(dead_code, reason = "the fields are held for their Drop")]
enum Inner {
    /// A PostgreSQL session holding `pg_advisory_lock`.
    Postgres(sqlx::postgres::PgConnection),
    /// An exclusive `flock` on `<database>.batch-lock`.
    File(std::fs::File),
}

impl BatchLock {
    pub(crate) fn postgres(conn: sqlx::postgres::PgConnection) -> Self {
        Self {
            _inner: Inner::Postgres(conn),
        }
    }

    pub(crate) fn file(file: std::fs::File) -> Self {
        Self {
            _inner: Inner::File(file),
        }
    }

    /// Releases the lock now. Dropping it releases it too, but PostgreSQL
    /// frees a session lock only once the server has noticed the closed
    /// connection, so a run that starts right after a dropped one may still
    /// find it taken; this unlocks and closes the session before returning.
    /// Errors are ignored: the lock then goes with the connection.
    pub async fn release(self) {
        match self._inner {
            Inner::Postgres(mut conn) => {
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(crate::postgres::BATCH_LOCK_KEY)
                    .execute(&mut conn)
                    .await;
                let _ = sqlx::Connection::close(conn).await;
            }
            Inner::File(file) => drop(file),
        }
    }
}

impl fmt::Debug for BatchLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self._inner {
            Inner::Postgres(_) => "postgres advisory lock",
            Inner::File(_) => "file lock",
        };
        f.debug_tuple("BatchLock").field(&kind).finish()
    }
}
