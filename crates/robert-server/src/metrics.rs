//! A small Prometheus registry: lock-free counters and histograms for the
//! fixed set of routes, rendered in the text exposition format at `/metrics`.
//!
//! It is per [`Metrics`] instance (no global recorder), so tests and several
//! apps in one process do not interfere.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `robert_http_requests_total` | counter | `route`, `status` |
//! | `robert_http_request_duration_seconds` | histogram | `route` |
//! | `robert_report_hellos` | histogram | – (HELLOs per accepted report; the reference's `robert.ws.report.hellomessage`) |
//! | `robert_report_contacts_total`, `robert_report_hellos_total` | counter | – |
//! | `robert_report_rssi_out_of_range_total` | counter | – (HELLOs of accepted reports whose `rssiCalibrated` was outside −127..127, stored clamped) |
//! | `robert_keys_server_key_days_ahead` | gauge | – (days of K_S after today) |
//! | `robert_batch_runs_total` | counter | `outcome`: `ok`, `failed`, `skipped` (another node had the turn, or the batch lock) |
//! | `robert_batch_last_*` | gauge | – (numeric fields of the last batch report) |
//! | `robert_captcha_outstanding` | gauge | – |
//! | `robert_http_connections_open`, `robert_http_connections_max` | gauge | – (see [`crate::connections`]) |
//! | `robert_http_connections_accepted_total`, `robert_http_connections_evicted_total`, `robert_http_connection_cap_waits_total`, `robert_http_header_timeouts_total`, `robert_http_slow_bodies_total` | counter | – |
//! | `robert_report_code_checks_limited_total` | counter | – (reports refused with 429: too many codes tried by one client) |
//! | `robert_report_codes_unavailable_total` | counter | – (reports answered 503: the submission-code service failed or timed out) |
//! | `robert_report_code_settle_failed_total` | counter | – (holds on a code that could not be confirmed or released after the report) |
//! | `robert_codes_up` | gauge | – (1 if the submission-code service answered the last readiness probe) |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The routes, as axum matches them.
pub const ROUTES: [&str; 17] = [
    "/api/v6/captcha",
    "/api/v6/captcha/{captchaId}/image",
    "/api/v6/captcha/{captchaId}/audio",
    "/api/v6/register",
    "/api/v6/status",
    "/api/v6/report",
    "/api/v6/unregister",
    "/api/v6/deleteExposureHistory",
    "/api/v6/clock",
    "/internal/api/v2/kpis",
    "/actuator/health",
    "/actuator/health/liveness",
    "/actuator/health/readiness",
    "/status.txt",
    "/metrics",
    "/openapi.json",
    "other",
];

const STATUSES: [u16; 15] = [
    200, 201, 400, 401, 404, 405, 408, 410, 413, 415, 429, 430, 500, 503, 0,
];

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const HELLO_BUCKETS: [f64; 8] = [
    10.0, 100.0, 1000.0, 5000.0, 10_000.0, 50_000.0, 100_000.0, 300_000.0,
];

/// A histogram with fixed buckets.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: [f64; N],
    counts: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in micro-units (µs for durations, units ×1e6 otherwise).
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [f64; N]) -> Self {
        Self {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if v <= *b {
                c.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int conversion is what we want for a sum.
        self.sum_micros
            .fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[derive(Debug)]
struct RouteMetrics {
    by_status: [AtomicU64; STATUSES.len()],
    latency: Histogram<{ LATENCY_BUCKETS.len() }>,
}

/// The registry.
#[derive(Debug)]
pub struct Metrics {
    routes: Vec<RouteMetrics>,
    report_hellos: Histogram<{ HELLO_BUCKETS.len() }>,
    report_contacts_total: AtomicU64,
    report_hellos_total: AtomicU64,
    report_rssi_out_of_range_total: AtomicU64,
    report_code_checks_limited_total: AtomicU64,
    report_codes_unavailable_total: AtomicU64,
    report_code_settle_failed_total: AtomicU64,
    codes_up: AtomicU64,
    key_days_ahead: AtomicU64,
    batch_ok: AtomicU64,
    batch_failed: AtomicU64,
    batch_skipped: AtomicU64,
    batch_last: Mutex<BTreeMap<String, f64>>,
    captcha_outstanding: AtomicU64,
    connections: std::sync::Arc<crate::connections::ConnectionMetrics>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self {
            routes: ROUTES
                .iter()
                .map(|_| RouteMetrics {
                    by_status: std::array::from_fn(|_| AtomicU64::new(0)),
                    latency: Histogram::new(LATENCY_BUCKETS),
                })
                .collect(),
            report_hellos: Histogram::new(HELLO_BUCKETS),
            report_contacts_total: AtomicU64::new(0),
            report_hellos_total: AtomicU64::new(0),
            report_rssi_out_of_range_total: AtomicU64::new(0),
            report_code_checks_limited_total: AtomicU64::new(0),
            report_codes_unavailable_total: AtomicU64::new(0),
            report_code_settle_failed_total: AtomicU64::new(0),
            codes_up: AtomicU64::new(1),
            key_days_ahead: AtomicU64::new(0),
            batch_ok: AtomicU64::new(0),
            batch_failed: AtomicU64::new(0),
            batch_skipped: AtomicU64::new(0),
            batch_last: Mutex::new(BTreeMap::new()),
            captcha_outstanding: AtomicU64::new(0),
            connections: std::sync::Arc::default(),
        }
    }

    /// The connection counters (shared with the accept loop).
    pub fn connections(&self) -> std::sync::Arc<crate::connections::ConnectionMetrics> {
        self.connections.clone()
    }

    /// Index of a matched route (the last one, "other", for anything else).
    pub fn route_index(matched: Option<&str>) -> usize {
        matched
            .and_then(|m| ROUTES.iter().position(|r| *r == m))
            .unwrap_or(ROUTES.len() - 1)
    }

    /// Records one request.
    pub fn observe_request(&self, route: usize, status: u16, elapsed: Duration) {
        let Some(r) = self.routes.get(route) else {
            return;
        };
        let si = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len() - 1);
        r.by_status[si].fetch_add(1, Ordering::Relaxed);
        r.latency.observe(elapsed.as_secs_f64());
    }

    /// Records an accepted report: its contacts, HELLOs, and HELLOs whose
    /// RSSI was out of range (stored clamped).
    pub fn observe_report(&self, contacts: usize, hellos: u64, rssi_out_of_range: u64) {
        self.report_rssi_out_of_range_total
            .fetch_add(rssi_out_of_range, Ordering::Relaxed);
        self.report_hellos.observe(hellos as f64);
        self.report_contacts_total
            .fetch_add(contacts as u64, Ordering::Relaxed);
        self.report_hellos_total
            .fetch_add(hellos, Ordering::Relaxed);
    }

    /// Counts a report refused because its client tried too many codes.
    pub fn observe_code_checks_limited(&self) {
        self.report_code_checks_limited_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a report answered 503 because the code service failed.
    pub fn observe_codes_unavailable(&self) {
        self.report_codes_unavailable_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a hold on a code that could not be settled after a report.
    pub fn observe_code_settle_failed(&self) {
        self.report_code_settle_failed_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records whether the code service answered the last probe.
    pub fn set_codes_up(&self, up: bool) {
        self.codes_up.store(u64::from(up), Ordering::Relaxed);
    }

    /// Sets the number of K_S days held after today.
    pub fn set_key_days_ahead(&self, days: u64) {
        self.key_days_ahead.store(days, Ordering::Relaxed);
    }

    /// Sets the outstanding built-in captchas.
    pub fn set_captcha_outstanding(&self, n: u64) {
        self.captcha_outstanding.store(n, Ordering::Relaxed);
    }

    /// Records a batch run; numeric fields of `report` (a JSON object, nested
    /// objects flattened with `_`) become `robert_batch_last_*` gauges.
    pub fn observe_batch(&self, ok: bool, report: Option<&serde_json::Value>) {
        if ok {
            self.batch_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.batch_failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(v) = report {
            let mut flat = BTreeMap::new();
            flatten("", v, &mut flat);
            *self
                .batch_last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = flat;
        }
    }

    /// Records a batch turn this node did not run: another node claimed
    /// it, or another run held the batch lock.
    pub fn observe_batch_skipped(&self) {
        self.batch_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        out.push_str("# HELP robert_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE robert_http_requests_total counter\n");
        for (route, r) in ROUTES.iter().zip(&self.routes) {
            for (s, c) in STATUSES.iter().zip(&r.by_status) {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let status = if *s == 0 {
                        "other".to_owned()
                    } else {
                        s.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "robert_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP robert_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE robert_http_request_duration_seconds histogram\n");
        for (route, r) in ROUTES.iter().zip(&self.routes) {
            if r.latency.count.load(Ordering::Relaxed) > 0 {
                r.latency.render(
                    &mut out,
                    "robert_http_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        out.push_str("# HELP robert_report_hellos HELLO messages per accepted report.\n");
        out.push_str("# TYPE robert_report_hellos histogram\n");
        self.report_hellos
            .render(&mut out, "robert_report_hellos", "");
        for (name, help, v) in [
            (
                "robert_report_contacts_total",
                "Contacts accepted in reports.",
                &self.report_contacts_total,
            ),
            (
                "robert_report_hellos_total",
                "HELLO messages accepted in reports.",
                &self.report_hellos_total,
            ),
            (
                "robert_report_rssi_out_of_range_total",
                "HELLOs of accepted reports whose rssiCalibrated was outside -127..127 (stored clamped).",
                &self.report_rssi_out_of_range_total,
            ),
            (
                "robert_report_code_checks_limited_total",
                "Reports refused with 429: too many submission codes tried by one client.",
                &self.report_code_checks_limited_total,
            ),
            (
                "robert_report_codes_unavailable_total",
                "Reports answered 503: the submission-code service failed or timed out.",
                &self.report_codes_unavailable_total,
            ),
            (
                "robert_report_code_settle_failed_total",
                "Holds on a submission code that could not be confirmed or released after a report.",
                &self.report_code_settle_failed_total,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "robert_keys_server_key_days_ahead",
                "Days of K_S held after today.",
                &self.key_days_ahead,
            ),
            (
                "robert_captcha_outstanding",
                "Outstanding built-in captchas.",
                &self.captcha_outstanding,
            ),
            (
                "robert_codes_up",
                "1 if the submission-code service answered the last readiness probe.",
                &self.codes_up,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP robert_batch_runs_total Risk batch runs by outcome.\n# TYPE robert_batch_runs_total counter\n");
        let _ = writeln!(
            out,
            "robert_batch_runs_total{{outcome=\"ok\"}} {}",
            self.batch_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "robert_batch_runs_total{{outcome=\"failed\"}} {}",
            self.batch_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "robert_batch_runs_total{{outcome=\"skipped\"}} {}",
            self.batch_skipped.load(Ordering::Relaxed)
        );
        self.connections.render(&mut out);
        let last = self
            .batch_last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, v) in last.iter() {
            let name = format!("robert_batch_last_{k}");
            let _ = writeln!(out, "# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    sanitize(k)
                } else {
                    format!("{prefix}_{}", sanitize(k))
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Number(n) if !prefix.is_empty() => {
            if let Some(f) = n.as_f64() {
                out.insert(prefix.to_owned(), f);
            }
        }
        serde_json::Value::Bool(b) if !prefix.is_empty() => {
            out.insert(prefix.to_owned(), if *b { 1.0 } else { 0.0 });
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        let status = Metrics::route_index(Some("/api/v6/status"));
        m.observe_request(status, 200, Duration::from_micros(800));
        m.observe_request(status, 430, Duration::from_millis(3));
        m.observe_request(
            Metrics::route_index(Some("/nope")),
            404,
            Duration::from_millis(1),
        );
        m.observe_report(2, 150, 0);
        m.observe_batch(true, Some(&serde_json::json!({"contactsProcessed": 3, "timing": {"totalMs": 12.5}, "name": "x"})));
        let text = m.render();
        assert!(
            text.contains("robert_http_requests_total{route=\"/api/v6/status\",status=\"200\"} 1")
        );
        assert!(
            text.contains("robert_http_requests_total{route=\"/api/v6/status\",status=\"430\"} 1")
        );
        assert!(text.contains("robert_http_requests_total{route=\"other\",status=\"404\"} 1"));
        assert!(text.contains(
            "robert_http_request_duration_seconds_bucket{route=\"/api/v6/status\",le=\"0.001\"} 1"
        ));
        assert!(text.contains(
            "robert_http_request_duration_seconds_bucket{route=\"/api/v6/status\",le=\"0.005\"} 2"
        ));
        assert!(
            text.contains("robert_http_request_duration_seconds_count{route=\"/api/v6/status\"} 2")
        );
        assert!(text.contains("robert_report_hellos_bucket{le=\"1000\"} 1"));
        assert!(text.contains("robert_report_hellos_total 150"));
        assert!(text.contains("robert_batch_runs_total{outcome=\"ok\"} 1"));
        assert!(text.contains("robert_batch_last_contacts_processed 3"));
        assert!(text.contains("robert_batch_last_timing_total_ms 12.5"));
    }
}
