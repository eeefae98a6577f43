//! Integration tests of the phone SDK (one test binary).
//!
//! * `fake` / `flows` / `privacy`: the SDK against a fake `/api/v6` server
//!   built on robert-core, in process.
//! * `real_server`: the SDK against the real server and code service, in
//!   process (see that module).
//! * `traffic`: what a network observer sees of padded and dummy requests
//!   (real TCP on 127.0.0.1 through a recording relay).

#![allow(missing_docs, clippy::unwrap_used, reason = "tests")]

mod fake;
mod flows;
mod privacy;
mod real_server;
mod support;
mod traffic;
