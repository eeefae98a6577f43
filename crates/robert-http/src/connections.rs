//! Serving HTTP/1.1 connections with connection-level limits (issue 11,
//! items 3 and 4): a header-read timeout, a cap on open connections, a
//! bounded graceful shutdown, and the process's open-file limit.
//!
//! * A connection that has not sent a whole request head within
//!   `server.header_read_timeout_secs` is closed (hyper's HTTP/1 header
//!   timeout); so is an idle keep-alive connection after as long.
//! * At most `server.max_connections` connections are open (kept below the
//!   open-file limit). When a new connection arrives at the cap, the oldest
//!   connection without a request in progress is closed to make room; when
//!   every connection has one, the new connection waits until one ends and
//!   further ones wait in the listen backlog.
//! * On shutdown the listeners stop accepting, requests in progress finish
//!   for at most `server.shutdown_grace_secs`, and every connection without
//!   one (idle, or with an unfinished request head) is closed at once.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// File descriptors kept free for everything but client connections (the
/// database pool, the key store, outgoing HTTP clients, logs).
pub const RESERVED_FDS: u64 = 128;

/// Connection-level settings of the listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed for a request head.
    pub header_read_timeout: Duration,
    /// Most connections open at once (all listeners together).
    pub max_connections: usize,
    /// Time requests in progress get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    /// Limits from a service's configuration values (seconds, count), the
    /// connection cap lowered to fit the current open-file limit (see
    /// [`effective_max_connections`]).
    pub fn new(
        header_read_timeout_secs: u64,
        max_connections: usize,
        shutdown_grace_secs: u64,
    ) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(header_read_timeout_secs.max(1)),
            max_connections: effective_max_connections(max_connections, open_file_limit().current),
            shutdown_grace: Duration::from_secs(shutdown_grace_secs),
        }
    }
}

/// The connection cap that fits `soft_nofile` open files: `configured`, at
/// most the soft limit minus [`RESERVED_FDS`], at least 1.
pub fn effective_max_connections(configured: usize, soft_nofile: Option<u64>) -> usize {
    let fit = soft_nofile.map_or(usize::MAX, |n| {
        usize::try_from(n.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX)
    });
    configured.min(fit).max(1)
}

/// The process's open-file limit (`RLIMIT_NOFILE`); `None` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit, the one enforced.
    pub current: Option<u64>,
    /// The hard limit, the most the soft limit may be raised to.
    pub maximum: Option<u64>,
}

/// The current open-file limit.
pub fn open_file_limit() -> OpenFileLimit {
    #[cfg(unix)]
    {
        let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        OpenFileLimit {
            current: l.current,
            maximum: l.maximum,
        }
    }
    #[cfg(not(unix))]
    OpenFileLimit {
        current: None,
        maximum: None,
    }
}

/// Sets the soft open-file limit to `target` (0: the hard limit), never
/// above the hard limit, and returns the limits before and after.
pub fn raise_open_file_limit(
    target: u64,
) -> Result<(OpenFileLimit, OpenFileLimit), std::io::Error> {
    let before = open_file_limit();
    #[cfg(unix)]
    {
        let wanted = match (target, before.maximum) {
            (0, None) => before.current,
            (0, hard) => hard,
            (t, Some(hard)) => Some(t.min(hard)),
            (t, None) => Some(t),
        };
        if wanted != before.current {
            rustix::process::setrlimit(
                rustix::process::Resource::Nofile,
                rustix::process::Rlimit {
                    current: wanted,
                    maximum: before.maximum,
                },
            )?;
        }
    }
    #[cfg(not(unix))]
    let _ = target;
    Ok((before, open_file_limit()))
}

/// One open connection, as the accept loop sees it.
#[derive(Debug, Default)]
struct Conn {
    /// Requests in progress: from the call of the service until the
    /// response body is dropped (written out, or the connection is gone).
    active: AtomicUsize,
    /// Set when the accept loop closes this connection to make room.
    evicted: AtomicBool,
    evict: Notify,
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn insert(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        self.lock().insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks the oldest connection without a request in progress to close.
    fn evict_oldest_idle(&self) -> bool {
        let open = self.lock();
        for conn in open.values() {
            if conn.active.load(Ordering::Acquire) == 0
                && !conn.evicted.swap(true, Ordering::AcqRel)
            {
                conn.evict.notify_one();
                return true;
            }
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the listeners of one server share: the connection cap and the
/// registry of open connections.
#[derive(Debug, Clone)]
pub struct Connections {
    limits: ConnectionLimits,
    permits: Arc<Semaphore>,
    registry: Arc<Registry>,
    metrics: Arc<ConnectionMetrics>,
}

/// Connection counters, rendered with each service's metrics
/// ([`ConnectionMetrics::render`]).
#[derive(Debug, Default)]
pub struct ConnectionMetrics {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed to make room at the cap.
    pub evicted: AtomicU64,
    /// Times a new connection had to wait because every connection at the
    /// cap had a request in progress.
    pub cap_waits: AtomicU64,
    /// Connections closed because the request head was not complete in time.
    pub header_timeouts: AtomicU64,
    /// The effective connection cap.
    pub cap: AtomicU64,
    /// Requests answered 408 because the body came in below the minimum
    /// rate (`limits.body_min_bytes_per_sec`).
    pub slow_bodies: AtomicU64,
}

impl ConnectionMetrics {
    /// Appends the Prometheus text of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "robert_http_connections_open",
                "gauge",
                "Client connections open.",
                &self.open,
            ),
            (
                "robert_http_connections_max",
                "gauge",
                "The effective connection cap.",
                &self.cap,
            ),
            (
                "robert_http_connections_accepted_total",
                "counter",
                "Client connections accepted.",
                &self.accepted,
            ),
            (
                "robert_http_connections_evicted_total",
                "counter",
                "Connections without a request in progress closed to make room at the cap.",
                &self.evicted,
            ),
            (
                "robert_http_connection_cap_waits_total",
                "counter",
                "New connections that waited at the cap (every connection had a request in progress).",
                &self.cap_waits,
            ),
            (
                "robert_http_header_timeouts_total",
                "counter",
                "Connections closed for not sending a whole request head in time.",
                &self.header_timeouts,
            ),
            (
                "robert_http_slow_bodies_total",
                "counter",
                "Requests answered 408 for a body below the minimum upload rate.",
                &self.slow_bodies,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

impl Connections {
    /// Connection bookkeeping for `limits`, counting into `metrics`.
    pub fn new(limits: ConnectionLimits, metrics: Arc<ConnectionMetrics>) -> Self {
        let m = metrics;
        m.cap
            .store(limits.max_connections as u64, Ordering::Relaxed);
        Self {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            registry: Arc::default(),
            metrics: m,
        }
    }

    /// Serves `router` on `listener` until `shutdown` turns true, then
    /// stops accepting and closes the connections (see the module
    /// documentation). Requests carry their peer as
    /// [`ConnectInfo<SocketAddr>`].
    pub async fn serve(
        &self,
        listener: TcpListener,
        router: Router,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tasks = JoinSet::new();
        let mut last_error_log: Option<tokio::time::Instant> = None;
        loop {
            while tasks.try_join_next().is_some() {}
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = shutdown.wait_for(|s| *s) => break,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: log (at most once a second), pause
                    // briefly rather than spin, and go on.
                    let now = tokio::time::Instant::now();
                    if last_error_log.is_none_or(|t| now - t >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, "accept error");
                        last_error_log = Some(now);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if self.registry.evict_oldest_idle() {
                        self.metrics.evicted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.metrics.cap_waits.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::select! {
                        p = self.permits.clone().acquire_owned() => match p {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                        _ = shutdown.wait_for(|s| *s) => break,
                    }
                }
            };
            self.metrics.accepted.fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            let router = router.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                this.connection(stream, remote, router, shutdown).await;
                drop(permit);
            });
        }
        drop(listener);
        // Every connection task sees the shutdown too; give them the grace
        // (and a little to flush), then cut whatever is left.
        let wait = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(self.limits.shutdown_grace + Duration::from_secs(1), wait)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
    }

    async fn connection(
        &self,
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
        router: Router,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let (id, conn) = self.registry.insert();
        self.metrics.open.fetch_add(1, Ordering::Relaxed);
        let _gone = Gone(|| {
            self.registry.remove(id);
            self.metrics.open.fetch_sub(1, Ordering::Relaxed);
        });
        let service = {
            let conn = conn.clone();
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let guard = Active::new(conn.clone());
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(remote));
                let mut router = router.clone();
                async move {
                    let resp = tower::Service::call(&mut router, req).await?;
                    Ok::<_, Infallible>(resp.map(|body| {
                        Body::new(Tracked {
                            inner: body,
                            _active: guard,
                        })
                    }))
                }
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let http = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(http);
        tokio::select! {
            r = http.as_mut() => {
                self.count_error(r);
                return;
            }
            _ = shutdown.wait_for(|s| *s) => {}
            () = conn.evict.notified() => {
                // Evicted at the cap: without a request in progress it goes
                // now (the accept loop is waiting for its place).
                if conn.active.load(Ordering::Acquire) == 0 {
                    return;
                }
            }
        }
        // Closing: the request in progress (if any) finishes, within the
        // grace; a connection without one goes at once.
        http.as_mut().graceful_shutdown();
        let deadline = tokio::time::Instant::now() + self.limits.shutdown_grace;
        let mut idle_ticks = 0;
        loop {
            tokio::select! {
                r = http.as_mut() => {
                    self.count_error(r);
                    return;
                }
                () = tokio::time::sleep_until(deadline) => return,
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    // Two idle ticks in a row: nothing in progress, and
                    // hyper has had time to flush a response just finished.
                    if conn.active.load(Ordering::Acquire) == 0 {
                        idle_ticks += 1;
                        if idle_ticks >= 2 {
                            return;
                        }
                    } else {
                        idle_ticks = 0;
                    }
                }
            }
        }
    }

    fn count_error(&self, r: Result<(), hyper::Error>) {
        if let Err(e) = r {
            if e.is_timeout() {
                self.metrics.header_timeouts.fetch_add(1, Ordering::Relaxed);
            }
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Runs a closure when dropped.
struct Gone<F: FnMut()>(F);

impl<F: FnMut()> Drop for Gone<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// A request in progress on a connection.
#[derive(Debug)]
struct Active(Arc<Conn>);

impl Active {
    fn new(conn: Arc<Conn>) -> Self {
        conn.active.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in progress until it
/// is dropped.
#[derive(Debug)]
struct Tracked {
    inner: Body,
    _active: Active,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(effective_max_connections(10_000, Some(1024)), 896);
        assert_eq!(effective_max_connections(10_000, Some(1_048_576)), 10_000);
        assert_eq!(effective_max_connections(10_000, None), 10_000);
        assert_eq!(effective_max_connections(10_000, Some(100)), 1);
    }

    #[test]
    fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
        let (_, after) = raise_open_file_limit(0).unwrap();
        assert_eq!(after.current, after.maximum);
    }

    #[test]
    fn eviction_picks_the_oldest_connection_without_a_request() {
        let r = Registry::default();
        let (_, a) = r.insert();
        let (_, b) = r.insert();
        let (_, c) = r.insert();
        let _busy = Active::new(a.clone());
        assert!(r.evict_oldest_idle());
        assert!(!a.evicted.load(Ordering::Relaxed));
        assert!(b.evicted.load(Ordering::Relaxed));
        assert!(r.evict_oldest_idle());
        assert!(c.evicted.load(Ordering::Relaxed));
        assert!(!r.evict_oldest_idle(), "the only one left is busy");
    }
}
