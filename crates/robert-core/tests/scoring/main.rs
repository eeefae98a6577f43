//! Integration tests of risk scoring, risk rules and the on-device filter
//! (server-api.md §4.4–§4.6, §7; client-ble.md §4).
//!
//! - `vectors`: every scoring v2 vector of the reference (127 contacts, two
//!   dataset aggregates), to 1e-12 relative error;
//! - `timeline`: the e2e acceptance scenarios of §7, replayed on the pure
//!   functions with a miniature batch;
//! - `filter`: whole-contact behaviour of the proximity filter;
//! - `properties`: proptest invariants of all of the above.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod filter;
mod properties;
mod support;
mod timeline;
mod vectors;
