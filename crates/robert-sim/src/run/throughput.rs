//! Throughput of the server phases, measured on the way (see
//! [`Throughput`]): wall time and request counts per phase, process memory
//! and server database size around the registrations.

use std::time::Duration;

use crate::result::Throughput;

/// Wall time and request counts per server phase (see [`Throughput`]).
#[derive(Debug, Default)]
pub(super) struct Meter {
    pub(super) registrations: u64,
    pub(super) registration_rounds: u64,
    pub(super) registration: Duration,
    pub(super) run_status_requests: u64,
    pub(super) run_status: Duration,
    pub(super) final_status_requests: u64,
    pub(super) final_status: Duration,
    pub(super) reports: u64,
    pub(super) report: Duration,
}

impl Meter {
    /// Fills the per-phase figures and the peak memory into `tp`.
    pub(super) fn complete(&self, tp: &mut Throughput) {
        let m = self;
        tp.registrations = m.registrations;
        tp.registration_rounds = m.registration_rounds;
        tp.registration_ms = dur_ms(m.registration);
        tp.registrations_per_s = per_s(m.registrations, m.registration);
        tp.final_status_requests = m.final_status_requests;
        tp.final_status_ms = dur_ms(m.final_status);
        tp.final_status_per_s = per_s(m.final_status_requests, m.final_status);
        tp.run_status_requests = m.run_status_requests;
        tp.run_status_ms = dur_ms(m.run_status);
        tp.reports = m.reports;
        tp.report_ms = dur_ms(m.report);
        tp.reports_per_s = per_s(m.reports, m.report);
        // The kernel updates VmHWM from per-thread counters it syncs lazily,
        // so it can read a little below an RSS sampled earlier: never report
        // a peak under a value we saw.
        tp.peak_rss_bytes = [
            proc_status_bytes("VmHWM"),
            proc_status_bytes("VmRSS"),
            tp.rss_after_registration_bytes,
            tp.rss_before_registration_bytes,
        ]
        .into_iter()
        .flatten()
        .max();
    }
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`); `None`
/// off Linux.
pub(super) fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Seconds of a duration, as a rate denominator.
fn per_s(count: u64, d: Duration) -> Option<f64> {
    let s = d.as_secs_f64();
    (count > 0 && s > 0.0).then(|| count as f64 / s)
}

fn dur_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
