//! The push service end to end on 127.0.0.1: its token API, its scheduler
//! and its APNs client against the mock APNs (`service`), and robert-server
//! with a phone in front of it (`server`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod server;
mod service;
mod support;
