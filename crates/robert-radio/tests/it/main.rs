//! Integration tests of robert-radio: one binary, a module per area.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod channel;
mod robustness;
mod scenarios;
mod wire;
