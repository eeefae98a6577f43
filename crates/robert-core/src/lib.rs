//! The ROBERT protocol core (being written).

pub mod error;
pub mod filter;
pub mod scoring;
pub mod time;

pub use error::Error;
