//! One module per subcommand: arguments and `run`.

pub(crate) mod app_config;
pub(crate) mod batch;
pub(crate) mod calibrate;
pub(crate) mod codes;
pub(crate) mod demo;
mod demo_federation;
mod demo_push;
pub(crate) mod embedded_codes;
pub(crate) mod keys;
pub(crate) mod phone;
pub(crate) mod push;
pub(crate) mod score;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod speed;
pub(crate) mod study;
