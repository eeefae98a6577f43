//! Connection and upload limits on a real socket (issue 11, items 3 and 4;
//! attacks D3, D4 and D7 of `reports/attacks-and-faults.md`): slow uploads
//! must not hold the report slots, an oversized `Content-Length` is refused
//! on sight, a legitimate slow upload is not cut by the processing timeout,
//! and the connection cap holds excess connections in the backlog.
//!
//! The limits are configured small so every test takes a few seconds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use robert_server::config::Config;
use robert_server::serve;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::support::TestApp;

/// A server on a real loopback socket.
struct Running {
    app: TestApp,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
}

impl Running {
    async fn start(label: &str, customize: impl FnOnce(&mut Config)) -> Self {
        let app = TestApp::with(robert_store::Backend::Sqlite, label, customize)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve::run(app.state.clone(), listener, None, async {
            let _ = rx.await;
        }));
        Self {
            app,
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        self.app.cleanup().await;
    }
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body): status and
/// body, or `None` when the connection closes first.
async fn read_response(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<(u16, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.get(9..12)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..]).into_owned();
            return Some((status, body));
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Sends a whole request and times its response.
async fn timed_post(addr: SocketAddr, path: &str, body: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{}{body}", post_head(path, body.len())).as_bytes())
        .await
        .unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(20), read_response(&mut s))
        .await
        .expect("a response within 20 s")
        .expect("a response before the connection closed");
    (status, body, started.elapsed())
}

/// A client that declares a large report and sends it one byte at a time
/// (D3), until it is dropped.
fn trickle(addr: SocketAddr, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return;
        };
        let head = format!("{}{{\"token\":\"", post_head("/api/v6/report", 10_000_000));
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(every).await;
            if s.write_all(b"A").await.is_err() {
                return;
            }
        }
    })
}

/// D3: two (here four) clients trickling report bodies held both report
/// slots, so a real report waited for the whole request timeout. The slot
/// is now taken once the body is read.
#[tokio::test]
async fn slow_uploads_do_not_delay_a_normal_report() {
    let s = Running::start("limits-slots", |c| {
        c.limits.max_concurrent_reports = 2;
        c.server.request_timeout_secs = 3;
    })
    .await;
    let attackers: Vec<_> = (0..4)
        .map(|_| trickle(s.addr, Duration::from_millis(200)))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body, took) = timed_post(
        s.addr,
        "/api/v6/report",
        r#"{"token":"validA","contacts":[]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "a normal report took {took:?} behind slow uploads"
    );
    for a in attackers {
        a.abort();
    }
    s.stop().await;
}

/// D7: a `Content-Length` above the route's limit is refused with 413 at
/// once, before any of the body is read (not 408 after the timeout).
#[tokio::test]
async fn an_oversized_content_length_gets_413_at_once() {
    let s = Running::start("limits-413", |c| {
        c.server.request_timeout_secs = 3;
    })
    .await;
    for (path, len) in [("/api/v6/status", 20_000), ("/api/v6/report", 200_000_000)] {
        let started = Instant::now();
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(format!("{}{{", post_head(path, len)).as_bytes())
            .await
            .unwrap();
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut c))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, 413, "{path}: {body}");
        assert!(body.contains("too large"), "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{path}: 413 after {:?}",
            started.elapsed()
        );
    }
    s.stop().await;
}

/// A legitimate report uploaded slowly (the apps wait 60 s on Android, 90 s
/// on iOS) is not cut by the processing timeout: here a 40 kB report at
/// 20 kB/s (2 s) with a 1 s processing timeout, the scaled-down model of a
/// 3.8 MB report at 80 kB/s with the 30 s default.
#[tokio::test]
async fn a_slow_legitimate_upload_is_not_cut_by_the_processing_timeout() {
    let s = Running::start("limits-slowlegit", |c| {
        c.server.request_timeout_secs = 1;
    })
    .await;
    let body = format!(
        r#"{{"token":"validB","contacts":[]{}}}"#,
        " ".repeat(40_000)
    );
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    c.write_all(post_head("/api/v6/report", body.len()).as_bytes())
        .await
        .unwrap();
    for part in body.as_bytes().chunks(2_000) {
        c.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, resp) = tokio::time::timeout(Duration::from_secs(10), read_response(&mut c))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{resp}");
    s.stop().await;
}

/// D3's attackers after the fix: a body trickled below the minimum rate is
/// answered 408 once the grace is over (here 1 s at 1,000 bytes/s), long
/// before the processing timeout (30 s).
#[tokio::test]
async fn a_body_below_the_minimum_rate_gets_408_after_the_grace() {
    let s = Running::start("limits-trickle", |c| {
        c.limits.body_read_grace_secs = 1;
        c.limits.body_min_bytes_per_sec = 1_000;
    })
    .await;
    let started = Instant::now();
    let c = TcpStream::connect(s.addr).await.unwrap();
    let (mut reader, mut writer) = c.into_split();
    writer
        .write_all(format!("{}{{\"token\":\"", post_head("/api/v6/report", 100_000)).as_bytes())
        .await
        .unwrap();
    // The response comes while the client is still writing.
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"A").await.is_err() {
                break;
            }
        }
    };
    let (status, body) = tokio::select! {
        r = read_response(&mut reader) => r.expect("a response"),
        () = trickle => panic!("the connection closed without a response"),
    };
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("too slow"), "{body}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "408 after {took:?}"
    );
    let metrics = timed_get(s.addr, "/metrics").await;
    assert!(
        metrics.contains("robert_http_slow_bodies_total 1"),
        "{metrics}"
    );
    s.stop().await;
}

async fn timed_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), read_response(&mut s))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// D4: at the connection cap, a new connection closes the oldest one
/// without a request in progress (here connections that never finish their
/// headers), so the server stays reachable; the closings are counted.
#[tokio::test]
async fn at_the_connection_cap_the_oldest_idle_connection_makes_room() {
    let s = Running::start("limits-cap", |c| {
        c.server.max_connections = 8;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"GET /api/v6/clock HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    let started = Instant::now();
    let metrics = timed_get(s.addr, "/metrics").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(
        value("robert_http_connections_evicted_total") >= 13,
        "{metrics}"
    );
    assert!(value("robert_http_connections_open") <= 8, "{metrics}");
    assert_eq!(value("robert_http_connections_max"), 8);
    // The oldest held connections were closed by the server.
    let mut first = held.remove(0);
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), first.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    s.stop().await;
}
