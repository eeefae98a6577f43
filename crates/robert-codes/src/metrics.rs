//! A small Prometheus registry of counters, one per service instance, so
//! tests can read values and `robert serve` can append them to its own
//! `/metrics` output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counter families: name and help text.
const FAMILIES: &[(&str, &str)] = &[
    (
        "submission_verify_code_total",
        "Verify requests by outcome and inferred code type (reference name).",
    ),
    (
        "robert_codes_issued_total",
        "Codes issued, by code type and channel.",
    ),
    (
        "robert_codes_rate_limited_total",
        "Requests refused by a rate limiter, by endpoint.",
    ),
    (
        "robert_codes_quota_exceeded_total",
        "Issuances refused by a daily quota, by channel.",
    ),
    (
        "robert_codes_portal_logins_total",
        "Portal login attempts by outcome.",
    ),
    ("robert_codes_lots_total", "Laboratory lots by outcome."),
    (
        "robert_codes_purged_total",
        "Rows deleted by purges, by table.",
    ),
];

/// Counters keyed by family and label set.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    connections: std::sync::Arc<robert_http::connections::ConnectionMetrics>,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The connection counters of `robert codes serve`'s listeners,
    /// rendered with the rest.
    pub fn connections(&self) -> std::sync::Arc<robert_http::connections::ConnectionMetrics> {
        self.connections.clone()
    }

    /// Adds `by` to `family{labels}`. `labels` are `(name, value)` pairs of
    /// fixed, non-secret values.
    pub fn add(&self, family: &'static str, labels: &[(&str, &str)], by: u64) {
        let mut l = String::new();
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            let _ = write!(
                l,
                "{k}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            );
        }
        let mut map = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((family, l)).or_default() += by;
    }

    /// Adds one.
    pub fn inc(&self, family: &'static str, labels: &[(&str, &str)]) {
        self.add(family, labels, 1);
    }

    /// Current value of `family{labels}` (labels as rendered, e.g. `valid="true"`).
    pub fn get(&self, family: &str, labels: &str) -> u64 {
        let map = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter()
            .find(|((f, l), _)| *f == family && l == labels)
            .map_or(0, |(_, v)| *v)
    }

    /// Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let map = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        for (family, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}");
            let _ = writeln!(out, "# TYPE {family} counter");
            for ((f, labels), v) in map.iter() {
                if f == family {
                    if labels.is_empty() {
                        let _ = writeln!(out, "{family} {v}");
                    } else {
                        let _ = writeln!(out, "{family}{{{labels}}} {v}");
                    }
                }
            }
        }
        if self
            .connections
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            self.connections.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::new();
        m.inc(
            "submission_verify_code_total",
            &[("valid", "true"), ("code_type", "SHORT")],
        );
        m.add("robert_codes_purged_total", &[("table", "codes")], 5);
        let text = m.render();
        assert!(text.contains("# TYPE submission_verify_code_total counter"));
        assert!(
            text.contains("submission_verify_code_total{valid=\"true\",code_type=\"SHORT\"} 1")
        );
        assert!(text.contains("robert_codes_purged_total{table=\"codes\"} 5"));
        assert_eq!(m.get("robert_codes_purged_total", "table=\"codes\""), 5);
    }
}
