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
    /// The batch's blocking SQLite reads failed (`sqlite/batch.rs`).
    #[error("database error: {0}")]
    Sqlite(#[source] Arc<rusqlite::Error>),
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
    /// Whether the database could not serve for a reason that passes (the
    /// store was closed, or [`robert_http::db::is_unavailable`]). A retry,
    /// on another connection or after a failover, may succeed; callers
    /// answer 503 with `Retry-After`, not 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Closed => true,
            Self::Database(e) => robert_http::db::is_unavailable(e),
            Self::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(Arc::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(Arc::new(e))
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
    fn lost_connections_are_unavailable_other_failures_are_not() {
        let eof = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "expected to read 5 bytes",
        );
        assert!(StoreError::from(sqlx::Error::Io(eof)).is_unavailable());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(StoreError::Closed.is_unavailable());
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_unavailable());
        assert!(!StoreError::DuplicateIdA.is_unavailable());
        assert!(!StoreError::Corrupt("x").is_unavailable());
        let sqlite = |code| {
            StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        assert!(sqlite(rusqlite::ffi::SQLITE_BUSY).is_unavailable());
        assert!(sqlite(rusqlite::ffi::SQLITE_LOCKED).is_unavailable());
        assert!(!sqlite(rusqlite::ffi::SQLITE_CORRUPT).is_unavailable());
    }
}
