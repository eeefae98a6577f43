//! Helpers shared by the end-to-end tests (each file under `tests/` is a
//! crate of its own and takes this module with `mod common;`).

#![allow(dead_code, reason = "each test crate uses some of the helpers")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
/// and waits for its "ROBERT server listening" line (see
/// [`spawn_until_logged`]).
pub fn spawn_listening(cmd: &mut Command) -> Listening {
    let (child, fields, log) = spawn_until_logged(cmd, "ROBERT server listening");
    Listening {
        child,
        addr: fields["address"].as_str().unwrap().to_owned(),
        internal: fields["internal"].as_str().unwrap().to_owned(),
        log,
    }
}

/// Spawns a command that logs JSON lines on stderr and waits for the line
/// whose message is `message`: the child, that line's fields and the log
/// lines before it. Only such a line proves a server ready: a connection to
/// a port could reach another process that took a port this test picked,
/// before this server started. Panics with the log when the child exits or
/// stays silent for 30 s.
pub fn spawn_until_logged(cmd: &mut Command, message: &str) -> (Child, serde_json::Value, String) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let started = Instant::now();
    let mut log = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == message {
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, v["fields"].clone(), log.join("\n"));
        }
        log.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("no {message:?} line in {log:#?}");
}
