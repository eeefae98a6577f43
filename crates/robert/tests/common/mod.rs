//! Helpers shared by the end-to-end tests (each file under `tests/` is a
//! crate of its own and takes this module with `mod common;`).

#![allow(dead_code, reason = "each test crate uses some of the helpers")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; a test binds it soon
/// after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Kills the child process when the test ends, even on failure.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `robert serve` that has said it listens.
pub struct Listening {
    /// The server process.
    pub child: Child,
    /// The public listener's address, as the server bound it.
    pub addr: String,
    /// The internal listener's address (or "public listener").
    pub internal: String,
    /// The log lines the server wrote before it listened.
    pub log: String,
}

/// Spawns a `robert serve` command that logs JSON (`ROBERT_LOG__FORMAT=json`)
/// and waits for its "ROBERT server listening" line. Only that line proves
/// the server is ready: a connection to the port could reach another
/// process that took a port this test picked, before this server started.
/// Panics with the server's log when it exits or stays silent for 30 s.
pub fn spawn_listening(cmd: &mut Command) -> Listening {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let mut log = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "ROBERT server listening" {
            let addr = v["fields"]["address"].as_str().unwrap().to_owned();
            let internal = v["fields"]["internal"].as_str().unwrap().to_owned();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Listening {
                child,
                addr,
                internal,
                log: log.join("\n"),
            };
        }
        log.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no listening line in {log:#?}");
}
