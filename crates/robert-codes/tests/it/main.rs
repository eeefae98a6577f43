//! Integration tests of `robert-codes`: one binary, a module per area.
//! Storage tests run on SQLite and on PostgreSQL (`ROBERT_TEST_PG_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(missing_docs, clippy::unwrap_used, reason = "tests")]

mod support;

mod api;
mod browser;
mod cli;
mod lots;
mod portal;
mod store;
