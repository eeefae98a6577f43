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
