//! Risk batch tests (server-api.md §4, §7). Every scenario runs on SQLite and
//! on PostgreSQL (`ROBERT_TEST_PG_URL`; skipped with a message when no
//! server answers). Contacts are built with robert-core exactly as phones
//! build them: real EBIDs, ECCs and HELLO MACs of registered identities.

#![allow(clippy::unwrap_used, missing_docs)]

mod crash;
mod rejections;
mod retention;
mod scenarios;
mod support;

// The scenarios declare their SQLite and PostgreSQL variants with it.
use robert_store::both_backends;
