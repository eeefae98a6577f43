//! Databases that cannot serve *for now*: the one classification of
//! transient database errors, shared by the server's store and the code
//! service's store, and the `Retry-After` both services send with the 503.

/// Seconds a client is told to wait (`Retry-After`) when the database
/// cannot serve for now: long enough for a standby promotion (0.2–0.3 s in
/// docs/deployment.md) and a pool reconnect, short enough for a phone's
/// retry loop.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// Whether `e` means the database could not serve for a reason that
/// passes: the connection was lost or refused, the pool is exhausted or
/// closed, the server is shutting down or starting (SQLSTATE class 08,
/// 57P01–57P03), or it is a standby not yet promoted (25006, read-only
/// transaction). A retry, on another connection or after a failover, may
/// succeed; callers answer 503 with `Retry-After`, not 500.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|c| {
            c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

/// Whether `e`, or an error in its chain of sources, is a database error
/// for which [`is_unavailable`] holds: lets a service map its own error
/// types (which wrap the database's) to 503 without knowing their shape.
pub fn caused_by_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(db) = err.downcast_ref::<sqlx::Error>() {
            return is_unavailable(db);
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_unavailable_and_others_are_not() {
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert!(is_unavailable(&sqlx::Error::Io(eof)));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("x".into())));
    }

    // The shape of the code service's errors: a store error that names
    // its sqlx source, wrapped transparently by a service error.
    #[derive(Debug, thiserror::Error)]
    enum Wrapper {
        #[error("database error")]
        Db(#[from] sqlx::Error),
        #[error("other")]
        Other,
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error(transparent)]
        Store(#[from] Wrapper),
    }

    #[test]
    fn the_chain_of_sources_is_searched() {
        let timed_out = Outer::Store(Wrapper::Db(sqlx::Error::PoolTimedOut));
        assert!(caused_by_unavailable(&timed_out));
        let missing = Outer::Store(Wrapper::Db(sqlx::Error::RowNotFound));
        assert!(!caused_by_unavailable(&missing));
        assert!(!caused_by_unavailable(&Outer::Store(Wrapper::Other)));
        assert!(caused_by_unavailable(&sqlx::Error::PoolClosed));
    }
}
