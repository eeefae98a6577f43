//! The HTTP shell shared by the ROBERT server (`robert-server`) and the
//! submission-code service (`robert-codes`): serving connections with
//! connection-level limits ([`connections`]), the process's open-file
//! limit, the shutdown signal, the log output ([`log`]) and the
//! classification of a database that cannot serve for now ([`db`]). I/O
//! lives here, never in `robert-core`.

pub mod connections;
pub mod db;
pub mod log;

/// Resolves on Ctrl-C or SIGTERM: the signal both services stop on.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
