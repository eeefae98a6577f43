//! Store errors.

use std::sync::Arc;

/// Everything a store operation can fail with.
///
/// Cloneable so that one failed group commit can answer every request in it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The ID_A is already registered; the caller retries with a new random one.
    #[error("ID_A already registered")]
    DuplicateIdA,
    /// The database URL is neither `sqlite:…` nor `postgres://…`.
    #[error("unsupported database URL (expected sqlite:<path> or postgres://…)")]
    UnsupportedUrl,
    /// A value cannot be stored (e.g. a HELLO reception time beyond 32 bits).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// A stored value does not decode (the database was altered outside this crate).
    #[error("corrupt stored data: {0}")]
    Corrupt(&'static str),
    /// The database failed (connection, I/O, constraint, …).
    #[error("database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),
    /// A migration failed at startup.
    #[error("database migration failed: {0}")]
    Migrate(#[source] Arc<sqlx::migrate::MigrateError>),
    /// A lock file could not be created or locked.
    #[error("lock file: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// The store was closed, or its writer stopped.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the database is unreachable or restarting rather than the
    /// request or the data being at fault: the connection was lost, the pool
    /// is closed or exhausted, the server is shutting down or refuses
    /// connections, or it is a read-only standby (during a failover). The
    /// caller should answer "retry later" (HTTP 503), not "internal error".
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Closed => true,
            Self::Database(e) => sqlx_unavailable(e),
            _ => false,
        }
    }
}

/// See [`StoreError::is_unavailable`]. PostgreSQL SQLSTATEs: class 08
/// (connection exception), 57P01–57P03 (admin/crash shutdown, cannot
/// connect now), 53300 (too many connections), 25006 (read-only
/// transaction: a standby not yet promoted).
fn sqlx_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "53300" || code == "25006"
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(Arc::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(Arc::new(e))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_is_the_database_going_away_not_a_bad_row() {
        let io = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert!(StoreError::from(sqlx::Error::Io(io)).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolClosed).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Closed.is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::DuplicateIdA.is_unavailable());
        assert!(!StoreError::Corrupt("x").is_unavailable());
    }
}
