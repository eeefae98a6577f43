//! Traffic privacy (docs/traffic-privacy.md): what a network observer who
//! sees a phone's TLS connections to `/status` and `/report` can learn from
//! their sizes and timing, and how padding and dummy requests hide it.
//!
//! * **The mark.** A client that wants the protection sends the header
//!   [`FAKE_HEADER`] (`robert-fake`) on `/status` and `/report`: `0` on a
//!   real request, `1` on a dummy. The header is inside TLS and has the
//!   same length either way. A request without it (the reference apps) is
//!   served exactly as before: no padding, no dummy handling.
//! * **Padding.** Marked requests carry a `padding` JSON field (the SDK
//!   sizes it; the request DTOs ignore unknown fields, as Jackson does), and
//!   their responses get one too: `/status` to a size that does not depend
//!   on the risk ([`status_target`]), everything else to a multiple of
//!   [`RESPONSE_BUCKET`] ([`response_target`]).
//! * **Dummies.** A marked dummy is answered by the API's privacy layer
//!   without reaching the handler: no store access, no code check, no log
//!   line, only the counter `robert_privacy_dummy_requests_total`. Its
//!   answer has the real one's status and padded size.
//! * **Timing.** Every marked request, real or dummy, gets a release
//!   deadline when it arrives, drawn from one distribution that does not
//!   depend on the mark ([`TrafficPrivacy::hold`]): a margin times a high
//!   percentile of the recent real handling times of its route and request
//!   size ([`TimingReservoir`]), plus random jitter. A real answer is held
//!   until then (or sent when ready if it overruns, which is counted); a
//!   dummy's answer too. Error answers to marked requests are held and
//!   padded the same way, head included ([`PADDING_HEADER`]).
//! * **Rates.** `[privacy]` ([`PrivacyConfig`]) publishes the dummy rates
//!   and the padding switch in the apps' `config` list
//!   ([`PrivacyConfig::list_entries`]); entries of the same name set with
//!   `robert app-config` win.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::RngExt as _;
use serde::Deserialize;

/// The request header that marks a client asking for padding: `0` on a
/// real request, `1` on a dummy.
pub const FAKE_HEADER: &str = "robert-fake";

/// `config` list entry: whether the server pads (`true`).
pub const LIST_PADDING: &str = "privacy.padding";
/// `config` list entry: mean dummy reports per phone per day.
pub const LIST_DUMMY_REPORTS: &str = "privacy.dummyReportsPerDay";
/// `config` list entry: mean dummy status requests per phone per day.
pub const LIST_DUMMY_STATUS: &str = "privacy.dummyStatusPerDay";

/// Responses of marked requests other than `/status` are padded to a
/// multiple of this many bytes.
pub const RESPONSE_BUCKET: usize = 1024;
/// `/status` responses of marked requests are padded to a multiple of this
/// many bytes...
pub const STATUS_BUCKET: usize = 1024;
/// ...at least this many bytes beyond the length of the answer without its
/// risk fields (`lastContactDate`, `lastRiskScoringDate`,
/// `declarationToken`): the two dates (at most 20 digits each) and a
/// declaration token of up to 2 KiB (an RS256 token with a 4096-bit key is
/// about 1 KiB). A longer token only costs the bucket: it is counted in
/// `robert_privacy_padding_overflow_total`.
pub const STATUS_RISK_ALLOWANCE: usize =
    2 * (r#","lastRiskScoringDate":"""#.len() + 20) + r#","declarationToken":"""#.len() + 2048;

/// The response header that pads the head of an answer to a marked
/// request: every such head (status line and headers, as HTTP/1.1 writes
/// them) is padded to a multiple of [`HEAD_BUCKET`], so that an error
/// (`401 Unauthorized`) has the head size of a success (`200 OK`).
pub const PADDING_HEADER: &str = "robert-padding";

/// Heads of answers to marked requests are padded to a multiple of this
/// many bytes.
pub const HEAD_BUCKET: usize = 256;

/// The overhead of an empty padding header, `robert-padding: \r\n`.
pub const PADDING_HEADER_OVERHEAD: usize = PADDING_HEADER.len() + 4;

/// The overhead of an empty padding field, `,"padding":""`.
pub const PADDING_FIELD_OVERHEAD: usize = r#","padding":"""#.len();

/// Smallest multiple of `bucket` that is at least `len`.
fn round_up(len: usize, bucket: usize) -> usize {
    len.div_ceil(bucket.max(1)) * bucket.max(1)
}

/// The padded length of a `/status` answer whose length without its risk
/// fields is `risk_free_len`: the same whether the phone is at risk or not.
pub fn status_target(risk_free_len: usize) -> usize {
    round_up(
        risk_free_len + PADDING_FIELD_OVERHEAD + STATUS_RISK_ALLOWANCE,
        STATUS_BUCKET,
    )
}

/// The padded length of an HTTP/1.1 head of `head_len` bytes, padding
/// header included.
pub fn head_target(head_len: usize) -> usize {
    round_up(head_len + PADDING_HEADER_OVERHEAD, HEAD_BUCKET)
}

/// The padded length of any other answer of `len` bytes.
pub fn response_target(len: usize) -> usize {
    round_up(len + PADDING_FIELD_OVERHEAD, RESPONSE_BUCKET)
}

/// Inserts a `"padding"` field into the JSON object `body` so that it is
/// exactly `target` bytes long. Returns `None` (body unchanged) if `body`
/// is not an object or `target` is too small.
pub fn pad_json_object(body: &[u8], target: usize) -> Option<Vec<u8>> {
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if body.first() != Some(&b'{') || body[end] != b'}' {
        return None;
    }
    let empty = body[1..end].iter().all(u8::is_ascii_whitespace);
    let field = if empty {
        r#""padding":""#
    } else {
        r#","padding":""#
    };
    let fixed = end + field.len() + 2; // body up to `}`, field, `"`, `}`
    let fill = target.checked_sub(fixed)?;
    let mut out = Vec::with_capacity(target);
    out.extend_from_slice(&body[..end]);
    out.extend_from_slice(field.as_bytes());
    out.resize(out.len() + fill, b'0');
    out.extend_from_slice(b"\"}");
    Some(out)
}

/// The routes the privacy layer covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrivateRoute {
    /// `/api/v6/status`.
    Status,
    /// `/api/v6/report`.
    Report,
}

impl PrivateRoute {
    /// The route's path, as the metrics label it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Status => "/api/v6/status",
            Self::Report => "/api/v6/report",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Status => 0,
            Self::Report => 1,
        }
    }
}

/// `[privacy]`: what the server tells the apps about dummy traffic and
/// padding, and how it times its answers to marked requests.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Add the `privacy.*` entries below to the `config` list returned to
    /// apps (an entry set with `robert app-config` under the same name
    /// wins). Apps that do not know them ignore them; our SDK pads and
    /// sends dummies only to a server that announces them.
    pub publish: bool,
    /// `privacy.padding`: ask clients to pad (they then get padded answers).
    pub padding: bool,
    /// `privacy.dummyReportsPerDay`: mean dummy reports per phone and day
    /// (a Poisson process; 0 turns them off). 0.1 is one every ten days.
    pub dummy_reports_per_day: f64,
    /// `privacy.dummyStatusPerDay`: mean dummy status requests per phone and
    /// day (0 turns them off).
    pub dummy_status_per_day: f64,
    /// Real handling times kept per route and request size class (the most
    /// recent ones), whose [`deadline_percentile`](Self::deadline_percentile)
    /// sets the release deadline of marked requests. Few enough that the
    /// deadline follows the node's current speed.
    pub timing_samples: usize,
    /// The base of the deadline, in milliseconds, while fewer than
    /// [`MIN_SAMPLES`] real handling times are known for a route.
    pub fallback_delay_ms: u64,
    /// The deadline of a marked request is this many times the
    /// [`deadline_percentile`](Self::deadline_percentile) of the recent real
    /// handling times (at least 1): the room real requests have before they
    /// overrun their deadline.
    pub deadline_margin: f64,
    /// The percentile (in `(0, 1]`; 1 is the maximum) of the recent real
    /// handling times that, times the margin, makes the deadline.
    pub deadline_percentile: f64,
    /// Random jitter added to every deadline: uniform in `[0, this)`
    /// milliseconds.
    pub deadline_jitter_ms: u64,
    /// The deadline before jitter is at least this many milliseconds...
    pub deadline_min_ms: u64,
    /// ...and at most this many (and always under the processing timeout,
    /// `server.request_timeout_secs`).
    pub deadline_max_ms: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            publish: true,
            padding: true,
            dummy_reports_per_day: 0.1,
            dummy_status_per_day: 1.0,
            timing_samples: 32,
            fallback_delay_ms: 20,
            deadline_margin: 2.0,
            deadline_percentile: 0.9,
            deadline_jitter_ms: 20,
            deadline_min_ms: 20,
            deadline_max_ms: 5000,
        }
    }
}

impl PrivacyConfig {
    /// Checks the timing settings; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.deadline_margin.is_finite() && self.deadline_margin >= 1.0) {
            return Err("privacy.deadline_margin must be a number of at least 1".into());
        }
        if !(self.deadline_percentile > 0.0 && self.deadline_percentile <= 1.0) {
            return Err("privacy.deadline_percentile must be in (0, 1]".into());
        }
        if self.deadline_min_ms > self.deadline_max_ms {
            return Err("privacy.deadline_min_ms must not exceed privacy.deadline_max_ms".into());
        }
        if self.timing_samples == 0 {
            return Err("privacy.timing_samples must be at least 1".into());
        }
        Ok(())
    }

    /// The `config` list entries this section publishes (none if
    /// `publish` is off).
    pub fn list_entries(&self) -> Vec<(&'static str, serde_json::Value)> {
        if !self.publish {
            return Vec::new();
        }
        let rate = |r: f64| {
            serde_json::Number::from_f64(if r.is_finite() { r.max(0.0) } else { 0.0 })
                .map_or(serde_json::Value::from(0), serde_json::Value::Number)
        };
        vec![
            (LIST_PADDING, serde_json::Value::Bool(self.padding)),
            (LIST_DUMMY_REPORTS, rate(self.dummy_reports_per_day)),
            (LIST_DUMMY_STATUS, rate(self.dummy_status_per_day)),
        ]
    }
}

/// Fewest real handling times of a size class (or of the route) from
/// which a deadline is computed.
pub const MIN_SAMPLES: usize = 8;

/// The size class of a request body: `⌊log2(len)⌋` (padded bodies fall in
/// few classes; a request is timed like real requests of its size).
pub fn size_class(len: usize) -> u32 {
    usize::BITS - len.max(1).leading_zeros()
}

/// A ring of the most recent values.
#[derive(Debug, Default)]
struct Ring {
    values: Vec<Duration>,
    next: usize,
}

impl Ring {
    fn push(&mut self, v: Duration, cap: usize) {
        if self.values.len() < cap {
            self.values.push(v);
        } else if cap > 0 {
            self.values[self.next % cap] = v;
            self.next = (self.next + 1) % cap;
        }
    }

    /// The `q`-quantile (nearest rank) of the values, if there are enough.
    fn percentile(&self, q: f64) -> Option<Duration> {
        if self.values.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted = self.values.clone();
        sorted.sort_unstable();
        // Nearest rank: ⌈q·n⌉, in 1..=n.
        let n = sorted.len();
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        sorted.get(rank - 1).copied()
    }
}

/// The recent handling times of real (successful) requests, per route and
/// request size class, and per route: the base of the release deadlines
/// of marked requests.
#[derive(Debug)]
pub struct TimingReservoir {
    cap: usize,
    fallback: Duration,
    rings: Mutex<HashMap<(PrivateRoute, Option<u32>), Ring>>,
}

impl TimingReservoir {
    /// A reservoir of `cap` values per ring (at least [`MIN_SAMPLES`]).
    pub fn new(cap: usize, fallback: Duration) -> Self {
        Self {
            cap: cap.max(MIN_SAMPLES),
            fallback,
            rings: Mutex::new(HashMap::new()),
        }
    }

    /// Records the handling time of a real request of `body_len` bytes.
    pub fn record(&self, route: PrivateRoute, body_len: usize, took: Duration) {
        let mut rings = self
            .rings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let class = size_class(body_len);
        rings
            .entry((route, Some(class)))
            .or_default()
            .push(took, self.cap);
        rings.entry((route, None)).or_default().push(took, self.cap);
    }

    /// The `q`-quantile of the recent real handling times of requests of
    /// `body_len` bytes: of its size class, else of its route, else the
    /// fallback.
    pub fn percentile(&self, route: PrivateRoute, body_len: usize, q: f64) -> Duration {
        let rings = self
            .rings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let class = size_class(body_len);
        rings
            .get(&(route, Some(class)))
            .and_then(|r| r.percentile(q))
            .or_else(|| rings.get(&(route, None)).and_then(|r| r.percentile(q)))
            .unwrap_or(self.fallback)
    }
}

/// Real marked requests whose lateness (zero when on time) is kept per
/// route: the draw of [`TrafficPrivacy::dummy_lateness`]. Overruns are rare
/// (about one in a hundred under a steady load), so enough that the tail
/// has several of them.
pub const LATENESS_SAMPLES: usize = 1024;

/// How the release deadline of a marked request is drawn.
#[derive(Clone, Copy, Debug)]
struct DeadlinePolicy {
    margin: f64,
    percentile: f64,
    jitter: Duration,
    min: Duration,
    max: Duration,
}

/// The privacy layer's state: the timing reservoir, the deadline policy
/// and the counters.
#[derive(Debug)]
pub struct TrafficPrivacy {
    /// Real handling times.
    pub timing: TimingReservoir,
    policy: DeadlinePolicy,
    dummies: [AtomicU64; 2],
    padded: [AtomicU64; 2],
    overruns: [AtomicU64; 2],
    overflow: AtomicU64,
    /// How late the recent real marked answers were ready, per route.
    lateness: Mutex<[Ring; 2]>,
}

impl TrafficPrivacy {
    /// The state for `config`.
    pub fn new(config: &PrivacyConfig) -> Self {
        let margin = if config.deadline_margin.is_finite() {
            config.deadline_margin.max(1.0)
        } else {
            1.0
        };
        Self {
            timing: TimingReservoir::new(
                config.timing_samples,
                Duration::from_millis(config.fallback_delay_ms),
            ),
            policy: DeadlinePolicy {
                margin,
                percentile: config.deadline_percentile.clamp(f64::MIN_POSITIVE, 1.0),
                jitter: Duration::from_millis(config.deadline_jitter_ms),
                min: Duration::from_millis(config.deadline_min_ms),
                max: Duration::from_millis(config.deadline_max_ms.max(config.deadline_min_ms)),
            },
            dummies: Default::default(),
            padded: Default::default(),
            overruns: Default::default(),
            overflow: AtomicU64::new(0),
            lateness: Mutex::default(),
        }
    }

    /// How long after its arrival a marked request of `body_len` bytes on
    /// `route` is answered, real or dummy (the caller does not say which:
    /// the draw cannot depend on it): the margin times the configured
    /// percentile of the recent real handling times of its size class,
    /// within `[deadline_min_ms, deadline_max_ms]`, plus a jitter uniform in
    /// `[0, deadline_jitter_ms)`.
    pub fn hold(&self, route: PrivateRoute, body_len: usize, rng: &mut impl rand::Rng) -> Duration {
        let p = &self.policy;
        let base = self
            .timing
            .percentile(route, body_len, p.percentile)
            .mul_f64(p.margin)
            .clamp(p.min, p.max);
        let jitter = if p.jitter.is_zero() {
            Duration::ZERO
        } else {
            p.jitter.mul_f64(rng.random_range(0.0..1.0))
        };
        base + jitter
    }

    /// Records how long after its deadline a real marked answer on `route`
    /// was ready: zero when on time (most of them).
    pub fn record_lateness(&self, route: PrivateRoute, late: Duration) {
        let mut rings = self
            .lateness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rings[route.index()].push(late, LATENESS_SAMPLES);
    }

    /// How long after its deadline a dummy on `route` is answered: the
    /// lateness of a recent real marked answer, drawn uniformly (zero until
    /// one is known). A real answer that overruns its deadline leaves when
    /// ready; without this, only real answers would ever leave late, and
    /// a late answer would be a real one. With it, dummies leave late as
    /// often and by as much as real requests do.
    pub fn dummy_lateness(&self, route: PrivateRoute, rng: &mut impl rand::Rng) -> Duration {
        let rings = self
            .lateness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let values = &rings[route.index()].values;
        if values.is_empty() {
            return Duration::ZERO;
        }
        values[rng.random_range(0..values.len())]
    }

    /// Counts a dummy request dropped.
    pub fn observe_dummy(&self, route: PrivateRoute) {
        self.dummies[route.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a real request that asked for padding.
    pub fn observe_padded(&self, route: PrivateRoute) {
        self.padded[route.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a real marked request answered after its deadline.
    pub fn observe_overrun(&self, route: PrivateRoute) {
        self.overruns[route.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Real marked requests answered after their deadline on `route` so far.
    pub fn overruns(&self, route: PrivateRoute) -> u64 {
        self.overruns[route.index()].load(Ordering::Relaxed)
    }

    /// Counts an answer longer than its padding target.
    pub fn observe_overflow(&self) {
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Dummy requests dropped on `route` so far.
    pub fn dummies(&self, route: PrivateRoute) -> u64 {
        self.dummies[route.index()].load(Ordering::Relaxed)
    }

    /// The Prometheus text of the counters.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP robert_privacy_dummy_requests_total Dummy requests answered and dropped."
        );
        let _ = writeln!(out, "# TYPE robert_privacy_dummy_requests_total counter");
        for route in [PrivateRoute::Status, PrivateRoute::Report] {
            let _ = writeln!(
                out,
                "robert_privacy_dummy_requests_total{{route=\"{}\"}} {}",
                route.label(),
                self.dummies(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP robert_privacy_padded_requests_total Real requests that asked for padding."
        );
        let _ = writeln!(out, "# TYPE robert_privacy_padded_requests_total counter");
        for route in [PrivateRoute::Status, PrivateRoute::Report] {
            let _ = writeln!(
                out,
                "robert_privacy_padded_requests_total{{route=\"{}\"}} {}",
                route.label(),
                self.padded[route.index()].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP robert_privacy_deadline_overrun_total Real marked requests answered after their release deadline."
        );
        let _ = writeln!(out, "# TYPE robert_privacy_deadline_overrun_total counter");
        for route in [PrivateRoute::Status, PrivateRoute::Report] {
            let _ = writeln!(
                out,
                "robert_privacy_deadline_overrun_total{{route=\"{}\"}} {}",
                route.label(),
                self.overruns(route)
            );
        }
        let _ = writeln!(
            out,
            "# HELP robert_privacy_padding_overflow_total Answers longer than their padding target."
        );
        let _ = writeln!(out, "# TYPE robert_privacy_padding_overflow_total counter");
        let _ = writeln!(
            out,
            "robert_privacy_padding_overflow_total {}",
            self.overflow.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn padding_reaches_the_target_exactly_and_stays_json() {
        for body in [
            &br#"{"success":true,"message":null}"#[..],
            br#"{}"#,
            b"{ }\n",
            br#"{"a":[1,2,{"b":"}"}]}"#,
        ] {
            let target = response_target(body.len());
            let padded = pad_json_object(body, target).unwrap();
            assert_eq!(padded.len(), target);
            assert_eq!(target % RESPONSE_BUCKET, 0);
            let v: serde_json::Value = serde_json::from_slice(&padded).unwrap();
            let orig: serde_json::Value = serde_json::from_slice(body).unwrap();
            let mut stripped = v.clone();
            stripped.as_object_mut().unwrap().remove("padding");
            assert_eq!(stripped, orig);
        }
        assert!(pad_json_object(b"[1]", 100).is_none());
        assert!(pad_json_object(b"", 100).is_none());
        assert!(pad_json_object(br#"{"a":1}"#, 10).is_none(), "too small");
    }

    #[test]
    fn status_target_ignores_the_risk_fields() {
        // Whatever the risk fields add (up to the allowance), the target
        // depends only on the risk-free length.
        let base = 54_321;
        let t = status_target(base);
        assert!(t >= base + STATUS_RISK_ALLOWANCE + PADDING_FIELD_OVERHEAD);
        assert_eq!(t % STATUS_BUCKET, 0);
    }

    #[test]
    fn reservoir_percentile_of_recent_real_times_of_the_size_class() {
        let r = TimingReservoir::new(16, Duration::from_millis(100));
        // Empty: the fallback.
        assert_eq!(
            r.percentile(PrivateRoute::Report, 4096, 0.9),
            Duration::from_millis(100)
        );
        for i in 0..40 {
            r.record(PrivateRoute::Report, 4096, Duration::from_millis(i));
        }
        // Only the last 16 are kept: 24..40 ms; nearest rank.
        let ms = |q| r.percentile(PrivateRoute::Report, 4000, q).as_millis();
        assert_eq!(ms(1.0), 39);
        assert_eq!(ms(0.9), 38); // ⌈14.4⌉ = 15th of 16
        assert_eq!(ms(0.5), 31);
        assert_eq!(ms(0.01), 24);
        // Another size class without samples: the route's.
        assert_eq!(
            r.percentile(PrivateRoute::Report, 1 << 20, 1.0).as_millis(),
            39
        );
        // Another route: the fallback.
        assert_eq!(
            r.percentile(PrivateRoute::Status, 4096, 1.0).as_millis(),
            100
        );
    }

    #[test]
    fn dummies_draw_the_lateness_of_recent_real_answers() {
        let p = TrafficPrivacy::new(&PrivacyConfig::default());
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // Nothing known: on time.
        assert_eq!(
            p.dummy_lateness(PrivateRoute::Report, &mut rng),
            Duration::ZERO
        );
        // 1,000 real answers, 30 of them late by 1..=30 ms, others on time.
        for i in 0..1000u64 {
            let late = if i % 33 == 0 && i / 33 < 30 {
                Duration::from_millis(i / 33 + 1)
            } else {
                Duration::ZERO
            };
            p.record_lateness(PrivateRoute::Report, late);
        }
        let draws: Vec<Duration> = (0..20_000)
            .map(|_| p.dummy_lateness(PrivateRoute::Report, &mut rng))
            .collect();
        let late: Vec<u128> = draws
            .iter()
            .filter(|d| !d.is_zero())
            .map(Duration::as_millis)
            .collect();
        // 3 % late (600 expected; ±5 standard deviations of the binomial).
        assert!((480..=720).contains(&late.len()), "{}", late.len());
        // By the real amounts: 1 to 30 ms, mean 15.5.
        assert!(late.iter().all(|ms| (1..=30).contains(ms)));
        let mean = late.iter().sum::<u128>() as f64 / late.len() as f64;
        assert!((13.0..18.0).contains(&mean), "{mean}");
        // The other route knows nothing yet.
        assert_eq!(
            p.dummy_lateness(PrivateRoute::Status, &mut rng),
            Duration::ZERO
        );
        // Only the most recent LATENESS_SAMPLES count: a steady node again.
        for _ in 0..LATENESS_SAMPLES {
            p.record_lateness(PrivateRoute::Report, Duration::ZERO);
        }
        assert!((0..1000).all(|_| p.dummy_lateness(PrivateRoute::Report, &mut rng).is_zero()));
    }

    #[test]
    fn hold_is_margin_times_percentile_within_bounds_plus_jitter() {
        let config = PrivacyConfig {
            deadline_margin: 2.0,
            deadline_percentile: 1.0,
            deadline_jitter_ms: 10,
            deadline_min_ms: 30,
            deadline_max_ms: 100,
            fallback_delay_ms: 5,
            ..PrivacyConfig::default()
        };
        let p = TrafficPrivacy::new(&config);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut holds = |p: &TrafficPrivacy| -> (u128, u128) {
            let v: Vec<u128> = (0..500)
                .map(|_| p.hold(PrivateRoute::Status, 600, &mut rng).as_micros())
                .collect();
            (*v.iter().min().unwrap(), *v.iter().max().unwrap())
        };
        // Fallback 5 ms × 2 = 10 ms, raised to the minimum of 30 ms.
        let (lo, hi) = holds(&p);
        assert!(lo >= 30_000 && hi < 40_000 && hi - lo > 8_000, "{lo} {hi}");
        // Real times up to 20 ms: 40 ms + jitter.
        for ms in 10..=20 {
            p.timing
                .record(PrivateRoute::Status, 600, Duration::from_millis(ms));
        }
        let (lo, hi) = holds(&p);
        assert!(lo >= 40_000 && hi < 50_000, "{lo} {hi}");
        // A slow node: capped at 100 ms + jitter.
        for _ in 0..40 {
            p.timing
                .record(PrivateRoute::Status, 600, Duration::from_millis(500));
        }
        let (lo, hi) = holds(&p);
        assert!(lo >= 100_000 && hi < 110_000, "{lo} {hi}");
    }

    #[test]
    fn bad_deadline_settings_are_refused() {
        assert!(PrivacyConfig::default().validate().is_ok());
        for bad in [
            PrivacyConfig {
                deadline_margin: 0.5,
                ..PrivacyConfig::default()
            },
            PrivacyConfig {
                deadline_margin: f64::NAN,
                ..PrivacyConfig::default()
            },
            PrivacyConfig {
                deadline_percentile: 0.0,
                ..PrivacyConfig::default()
            },
            PrivacyConfig {
                deadline_percentile: 1.5,
                ..PrivacyConfig::default()
            },
            PrivacyConfig {
                deadline_min_ms: 10,
                deadline_max_ms: 5,
                ..PrivacyConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_entries_follow_the_section() {
        let c = PrivacyConfig::default();
        let e = c.list_entries();
        assert_eq!(e[0], (LIST_PADDING, serde_json::json!(true)));
        assert_eq!(e[1], (LIST_DUMMY_REPORTS, serde_json::json!(0.1)));
        assert_eq!(e[2], (LIST_DUMMY_STATUS, serde_json::json!(1.0)));
        let off = PrivacyConfig {
            publish: false,
            ..c
        };
        assert!(off.list_entries().is_empty());
    }
}
