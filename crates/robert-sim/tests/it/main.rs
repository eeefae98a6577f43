//! Integration tests of the simulator (one test binary).

#![allow(missing_docs, clippy::unwrap_used, reason = "tests")]

mod confusion;
mod end_to_end;
mod replay;
mod scale;
mod scenarios;
mod study;
