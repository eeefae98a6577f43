//! `robert codes serve`, the standalone submission-code service, has the
//! connection limits robert-server has (the shared `robert-http` shell): a
//! client that never finishes its request head is closed after
//! `api.header_read_timeout_secs`, and SIGTERM stops the service at once even
//! while such a client is connected.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn slow_heads_are_closed_and_sigterm_stops_at_once() {
    let dir = std::env::temp_dir().join(format!("robert-codes-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("codes.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite://{}?mode=rwc\"\n\
             [[peppers]]\nid = \"p1\"\nsecret = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
             [api]\nheader_read_timeout_secs = 1\n[log]\nformat = \"json\"\n",
            dir.join("codes.db").display()
        ),
    )
    .unwrap();
    let (mut child, fields, _) = common::spawn_until_logged(
        Command::new(env!("CARGO_BIN_EXE_robert"))
            .args(["codes", "-c", config.to_str().unwrap(), "serve"])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--internal-listen",
                "127.0.0.1:0",
            ])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null()),
        "robert codes serving",
    );
    let public = fields["public_addr"].as_str().unwrap().to_owned();
    let internal = fields["internal_addr"].as_str().unwrap().to_owned();

    // Half a request head, then nothing: closed after about a second.
    let mut slow = TcpStream::connect(&public).unwrap();
    slow.write_all(b"GET /api/v1/verify?code=AAAAAA HTTP/1.1\r\nHost:")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    let metrics = get(&internal, "/metrics");
    assert!(
        metrics.contains("robert_http_header_timeouts_total 1"),
        "{metrics}"
    );

    // Another half-open client must not hold the shutdown.
    let mut held = TcpStream::connect(&public).unwrap();
    held.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let stop = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stop.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running 10 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        stop.elapsed() < Duration::from_secs(5),
        "{:?}",
        stop.elapsed()
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}
