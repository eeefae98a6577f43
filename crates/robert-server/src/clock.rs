//! The server's clock, injected so that tests (and the e2e suite's
//! "N days ago" steps) control time without faking the OS clock.
//!
//! Every handler and the batch read time through [`Clock`] (the workspace's
//! one clock, from `robert-clock`); nothing in the crate calls
//! `SystemTime::now` for "now". This module adds the `/clock` endpoint's
//! time format.

pub use robert_clock::{Clock, ManualClock, OffsetClock, SharedClock, SystemClock};

/// Formats Unix milliseconds as ISO-8601 UTC with milliseconds
/// (`2023-01-13T10:00:00.123Z`), as `/api/v6/clock` returns it.
pub fn iso8601_millis(unix_millis: i64) -> String {
    let secs = unix_millis.div_euclid(1000);
    let millis = unix_millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let date = robert_core::time::UtcDate::from_days_since_unix_epoch(days);
    format!(
        "{date}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_format() {
        assert_eq!(iso8601_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601_millis(1_673_604_000_123),
            "2023-01-13T10:00:00.123Z"
        );
        assert_eq!(iso8601_millis(-1), "1969-12-31T23:59:59.999Z");
    }
}
