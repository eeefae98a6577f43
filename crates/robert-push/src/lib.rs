//! The iPhone push wake-up service (issue 15, part 1; codes-and-push.md §8).
//!
//! iOS suspends a background app; the reference (TousAntiCovid's
//! `robert-push-notif-server`) woke each registered iPhone once a day with a
//! silent push, inside a window of the phone's local time, so that the app
//! ran its `/status` check. This crate is that service:
//!
//! * [`service`]: the token API robert-server already calls
//!   (`POST`/`DELETE {push.url}/push-token…`) and the scheduler;
//! * [`store`]: the tokens, in SQLite (embedded, default) or PostgreSQL;
//! * [`schedule`]: a random instant in tomorrow's window, per time zone;
//! * [`apns`]: the APNs provider client (HTTP/2, TLS, token auth, retries);
//! * [`jwt`]: the ES256 provider token from the team's .p8 key;
//! * [`mock_apns`]: a mock APNs for tests, benchmarks and the demo;
//! * [`local`]: the mock with a provider key and a configuration at it;
//! * [`metrics`]: Prometheus counters;
//! * [`bench`](mod@bench): the measurement of `robert push bench`.
//!
//! Tokens are personal data: no module logs them.

pub mod apns;
pub mod bench;
pub mod config;
pub mod jwt;
pub mod local;
pub mod metrics;
pub mod mock_apns;
pub mod schedule;
pub mod service;
pub mod store;

pub use config::Config;
pub use service::{PushService, ScanReport};
