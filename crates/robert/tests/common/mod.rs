//! Helpers shared by the end-to-end tests (each file under `tests/` is a
//! crate of its own and takes this module with `mod common;`).

#![allow(dead_code, reason = "each test crate uses some of the helpers")]

/// A free TCP port on 127.0.0.1 (free when asked; a test binds it soon
/// after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Kills the child process when the test ends, even on failure.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
