//! Integration tests of the ROBERT server: the real router (`app(state)`)
//! on SQLite and, when reachable, PostgreSQL (`ROBERT_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; "skipped: no PostgreSQL"
//! otherwise), driven by a protocol-level test phone and a manual clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "tests"
)]

mod api;
mod attacks;
mod cluster;
mod errors;
mod federation;
mod fuzz;
mod hsm;
mod limits;
mod phone;
mod privacy;
mod scenarios;
mod socket;
mod support;
