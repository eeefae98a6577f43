//! The push service's counters, rendered in the Prometheus text format at
//! `/metrics`.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `robert_push_sent_total` | counter | HTTP/2 requests sent to APNs (retries included) |
//! | `robert_push_accepted_total` | counter | notifications APNs accepted (200) |
//! | `robert_push_failed_total` | counter | notifications given up (other refusals, retries exhausted, transport errors) |
//! | `robert_push_invalid_total` | counter | tokens deactivated (410 Unregistered, 400 BadDeviceToken / DeviceTokenNotForTopic on every server) |
//! | `robert_push_retries_total` | counter | retries after 429, 5xx, transport errors or an expired provider token |
//! | `robert_push_provider_tokens_total` | counter | provider JWTs signed |
//! | `robert_push_registrations_total` | counter | `POST /push-token` accepted |
//! | `robert_push_unregistrations_total` | counter | `DELETE /push-token/{token}` accepted |
//! | `robert_push_scans_total` | counter | scheduler scans |
//! | `robert_push_tokens_active`, `robert_push_tokens` | gauge | active tokens, all tokens |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests sent to APNs.
    pub sent: AtomicU64,
    /// Accepted notifications.
    pub accepted: AtomicU64,
    /// Failed notifications.
    pub failed: AtomicU64,
    /// Deactivated tokens.
    pub invalid: AtomicU64,
    /// Retries.
    pub retries: AtomicU64,
    /// Provider tokens signed.
    pub provider_tokens: AtomicU64,
    /// Registrations.
    pub registrations: AtomicU64,
    /// Unregistrations.
    pub unregistrations: AtomicU64,
    /// Scheduler scans.
    pub scans: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// The Prometheus text, with the token gauges.
    pub fn render(&self, active: i64, total: i64) -> String {
        let mut out = String::new();
        let counters = [
            (
                "sent",
                &self.sent,
                "Requests sent to APNs, retries included.",
            ),
            ("accepted", &self.accepted, "Notifications APNs accepted."),
            ("failed", &self.failed, "Notifications given up."),
            ("invalid", &self.invalid, "Tokens deactivated as invalid."),
            ("retries", &self.retries, "Retries of a notification."),
            (
                "provider_tokens",
                &self.provider_tokens,
                "Provider JWTs signed.",
            ),
            (
                "registrations",
                &self.registrations,
                "Token registrations accepted.",
            ),
            (
                "unregistrations",
                &self.unregistrations,
                "Token removals accepted.",
            ),
            ("scans", &self.scans, "Scheduler scans for due tokens."),
        ];
        for (name, c, help) in counters {
            let _ = writeln!(out, "# HELP robert_push_{name}_total {help}");
            let _ = writeln!(out, "# TYPE robert_push_{name}_total counter");
            let _ = writeln!(
                out,
                "robert_push_{name}_total {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, v, help) in [
            ("tokens_active", active, "Active tokens."),
            ("tokens", total, "Stored tokens."),
        ] {
            let _ = writeln!(out, "# HELP robert_push_{name} {help}");
            let _ = writeln!(out, "# TYPE robert_push_{name} gauge");
            let _ = writeln!(out, "robert_push_{name} {v}");
        }
        out
    }

    /// A counter's value.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
