//! On-device proximity filter (client-ble.md §4, the SDKs' `ProximityFilter`).
//!
//! Before a report, the phone filters its received HELLOs **per EBID**: a
//! group is dropped when it is too short or (in mode RISKS) too weak, and
//! RSSI peaks are clipped; the clipped values replace `rssiCalibrated` in the
//! report. This answers the CNIL's 2020 finding that filtering must happen on
//! the phone (peers-and-crates.md). Both SDKs (Android and iOS, June 2020)
//! implement the same steps, for one EBID's samples `(t, rssi)`:
//!
//! ```text
//! 1. sort by t (stable);  duration = t_last − t_first
//!    duration < durationThreshold                    → Rejected
//! 2. mode FULL                                       → Accepted, values unchanged
//! 3. clip peaks, in time order: if rssi_i > rssiThreshold
//!        peak;  rssi_i ← min(rssiThreshold, clipped_{i−1}, rssi_{i+1})
//!        (a missing neighbour at either end is rssi_i itself)
//! 4. window risks: slot = timeWindow − timeOverlap (60 s), S = ceil(epochDuration / slot) (15)
//!        slot(t) = floor((t − epochStart) / slot), samples outside [0, S) ignored
//!        window k = slots k .. k + timeWindow/slot − 1 (two slots), n = its sample count
//!        w_k = 0 if n = 0, else clamp((softmax(rssis, a) − p0) / deltas[min(n − 1, |deltas| − 1)], 0, 1)
//! 5. mode MEDIUM                                     → Accepted, clipped values
//! 6. mode RISKS:  durationMin = duration / 60;  density = |{k : w_k > 0}|
//!        intermediate = softmax(w, b)
//!        risk = intermediate · (durationMin + density) / (2 · S)
//!        risk < riskThreshold                        → Rejected, else Accepted (clipped values)
//! ```
//!
//! with `softmax(L, c) = c · ln((Σ exp(x/c)) / |L|)`. The app computes
//! `epochStart = floor(t / 900) · 900` from the group's first HELLO in
//! storage order ([`ProximityFilter::filter`]); the SDK call takes it as an
//! argument ([`ProximityFilter::filter_in_epoch`]).
//!
//! Deviations, all on inputs the SDKs mishandle: the mean peak is `None`
//! instead of NaN (Android) when there is no peak; configurations that would
//! make results NaN or allocate without bound are refused by
//! [`ProximityFilter::new`]. Where the SDKs differ, this follows Android:
//! the number of slots per window is `timeWindow / slot` rounded down (iOS
//! rounds up; they agree for the deployed 120/60 s).

use crate::time::NtpSeconds;

/// One received HELLO of an EBID, as the filter sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RssiSample {
    /// Reception time (`timeCollectedOnDevice`, NTP seconds).
    pub time: NtpSeconds,
    /// Calibrated RSSI in dBm.
    pub rssi: i32,
}

impl RssiSample {
    /// A sample.
    pub fn new(time: NtpSeconds, rssi: i32) -> Self {
        Self { time, rssi }
    }
}

/// The filter's mode (`ble.filterMode` in the app configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FilterMode {
    /// Only the duration check (steps 1–2).
    Full,
    /// Duration check, peak clipping and window risks (steps 1–5).
    Medium,
    /// Everything, with the final risk decision (steps 1–6). The app's mode.
    Risks,
}

impl FilterMode {
    /// Parses the configuration value `FULL`, `MEDIUM` or `RISKS`
    /// (case-insensitive).
    pub fn from_config(value: &str) -> Option<Self> {
        match value.to_ascii_uppercase().as_str() {
            "FULL" => Some(Self::Full),
            "MEDIUM" => Some(Self::Medium),
            "RISKS" => Some(Self::Risks),
            _ => None,
        }
    }
}

/// Filter configuration (`ble.filterConfig`, client-ble.md §4 and §2.5).
#[derive(Clone, Debug, PartialEq)]
pub struct FilterConfig {
    /// Minimum span between the first and last sample, in seconds.
    pub duration_threshold_secs: u64,
    /// RSSIs above this value (dBm) are peaks and get clipped.
    pub rssi_threshold: i32,
    /// Denominators by sample count in a window (index `min(n − 1, len − 1)`).
    pub deltas: Vec<f64>,
    /// RSSI (dBm) at or below which a window carries no risk.
    pub p0: f64,
    /// Soft-max constant for RSSIs.
    pub a: f64,
    /// Soft-max constant for window risks (mode RISKS).
    pub b: f64,
    /// Length of a risk window, in seconds.
    pub time_window_secs: u64,
    /// Overlap of two successive windows, in seconds (less than the window).
    pub time_overlap_secs: u64,
    /// Minimum risk for acceptance in mode RISKS.
    pub risk_threshold: f64,
    /// Length of the period the samples belong to: the ROBERT epoch (900 s).
    pub epoch_duration_secs: u64,
}

/// The SDKs' ten-entry deltas.
const SDK_DELTAS: [f64; 10] = [39.0, 27.0, 23.0, 21.0, 20.0, 19.0, 18.0, 17.0, 16.0, 15.0];

/// At most this many slots per epoch (bounds memory on odd configurations).
pub const MAX_SLOTS: u64 = 100_000;

impl FilterConfig {
    /// The configuration the app received from the server in 2020 (mode
    /// RISKS): `a = 10/ln 10` (sent as 4.3429448190325175), `b = 0.1`, the
    /// ten deltas, `p0 = −66`, `rssiThreshold = −25`, windows of 120 s
    /// overlapping by 60 s, `durationThreshold = 120 s` (90 s from 2022),
    /// `riskThreshold = 0.1`.
    pub fn app_2020() -> Self {
        Self {
            duration_threshold_secs: 120,
            rssi_threshold: -25,
            deltas: SDK_DELTAS.to_vec(),
            p0: -66.0,
            a: 10.0 / core::f64::consts::LN_10,
            b: 0.1,
            time_window_secs: 120,
            time_overlap_secs: 60,
            risk_threshold: 0.1,
            epoch_duration_secs: 900,
        }
    }

    /// The SDKs' built-in defaults (used when no server configuration is
    /// given): as [`FilterConfig::app_2020`] but `durationThreshold = 300 s`,
    /// `rssiThreshold = 0`, `riskThreshold = 0.2`.
    pub fn sdk_default() -> Self {
        Self {
            duration_threshold_secs: 300,
            rssi_threshold: 0,
            risk_threshold: 0.2,
            ..Self::app_2020()
        }
    }

    /// Checks that the configuration cannot produce NaN or unbounded work.
    pub fn validate(&self) -> Result<(), FilterConfigError> {
        let invalid = |name, reason| Err(FilterConfigError::InvalidParameter { name, reason });
        if self.deltas.is_empty() {
            return invalid("deltas", "must not be empty");
        }
        if !self.deltas.iter().all(|d| d.is_finite() && *d > 0.0) {
            return invalid("deltas", "must be finite and positive");
        }
        if !self.p0.is_finite() {
            return invalid("p0", "must be finite");
        }
        if !(self.a.is_finite() && self.a > 0.0) {
            return invalid("a", "must be finite and positive");
        }
        if !(self.b.is_finite() && self.b > 0.0) {
            return invalid("b", "must be finite and positive");
        }
        if self.time_overlap_secs >= self.time_window_secs {
            return invalid("timeOverlap", "must be shorter than timeWindow");
        }
        if self.epoch_duration_secs == 0 {
            return invalid("epochDuration", "must be positive");
        }
        let slot = self.time_window_secs - self.time_overlap_secs;
        if self.epoch_duration_secs.div_ceil(slot) > MAX_SLOTS {
            return invalid("timeWindow", "too many slots per epoch");
        }
        if self.risk_threshold.is_nan() {
            return invalid("riskThreshold", "must not be NaN");
        }
        Ok(())
    }
}

impl Default for FilterConfig {
    /// [`FilterConfig::app_2020`].
    fn default() -> Self {
        Self::app_2020()
    }
}

/// A refused filter configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterConfigError {
    /// A parameter is outside its domain.
    #[error("invalid proximity filter parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name, as in `ble.filterConfig`.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The result of filtering one EBID's samples.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterOutcome {
    /// Keep the samples, with the RSSI values given.
    Accepted(Accepted),
    /// Drop every sample of this EBID from the report.
    Rejected(Rejection),
}

impl FilterOutcome {
    /// Whether the samples are kept.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted(_))
    }
}

/// Accepted samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    /// The RSSI to report for each input sample, **in input order**
    /// (`rssi[i]` belongs to `samples[i]`): clipped in modes MEDIUM and
    /// RISKS, unchanged in mode FULL.
    pub rssi: Vec<i32>,
    /// Whether any value was clipped (`areTimestampedRssisUpdated`).
    pub updated: bool,
    /// Intermediate values (`None` in mode FULL).
    pub analysis: Option<Analysis>,
}

/// Why samples were rejected.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Rejection {
    /// No samples, or their span is below `durationThreshold`.
    DurationTooShort {
        /// `t_last − t_first` in seconds (0 without samples).
        duration_secs: u64,
    },
    /// Mode RISKS: the risk is below `riskThreshold`.
    RiskTooLow(Analysis),
}

/// Values computed in modes MEDIUM and RISKS.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// One risk in [0, 1] per window (15 for the deployed configuration).
    pub window_risks: Vec<f64>,
    /// Number of clipped peaks.
    pub peak_count: usize,
    /// Mean of the peaks' original values (`None` without peaks).
    pub mean_peak: Option<f64>,
    /// Mode RISKS only: the final risk computation.
    pub risk: Option<RiskSummary>,
}

/// The mode RISKS computation (step 6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RiskSummary {
    /// `(t_last − t_first) / 60`.
    pub duration_minutes: f64,
    /// Number of windows with a risk above 0.
    pub risk_density: usize,
    /// `softmax(window_risks, b)`.
    pub intermediate_risk: f64,
    /// `intermediate · (durationMin + density) / (2 · windows)`.
    pub risk: f64,
}

/// The proximity filter with a validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ProximityFilter {
    config: FilterConfig,
}

impl Default for ProximityFilter {
    /// The app's 2020 configuration.
    fn default() -> Self {
        Self {
            config: FilterConfig::app_2020(),
        }
    }
}

impl ProximityFilter {
    /// Validates the configuration (see [`FilterConfig::validate`]).
    pub fn new(config: FilterConfig) -> Result<Self, FilterConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &FilterConfig {
        &self.config
    }

    /// Filters one EBID's samples as the app does: the epoch start is the
    /// first sample's time **in input order**, rounded down to a multiple of
    /// the epoch duration (`floor(t / 900) · 900` in NTP seconds, which is an
    /// epoch boundary because the service start is a UTC midnight).
    pub fn filter(&self, samples: &[RssiSample], mode: FilterMode) -> FilterOutcome {
        let epoch = self.config.epoch_duration_secs;
        let start = samples.first().map_or(0, |s| s.time.get() / epoch * epoch);
        self.filter_in_epoch(samples, NtpSeconds(start), mode)
    }

    /// Filters one EBID's samples against an explicit epoch start (the SDK's
    /// `filter(timestampedRssis, epochStart, epochDuration, mode)`).
    pub fn filter_in_epoch(
        &self,
        samples: &[RssiSample],
        epoch_start: NtpSeconds,
        mode: FilterMode,
    ) -> FilterOutcome {
        let c = &self.config;

        // Step 1: stable sort by time, duration threshold.
        let mut order: Vec<usize> = (0..samples.len()).collect();
        order.sort_by_key(|&i| samples[i].time);
        let (Some(&first), Some(&last)) = (order.first(), order.last()) else {
            return FilterOutcome::Rejected(Rejection::DurationTooShort { duration_secs: 0 });
        };
        let duration_secs = samples[last].time.get() - samples[first].time.get();
        if duration_secs < c.duration_threshold_secs {
            return FilterOutcome::Rejected(Rejection::DurationTooShort { duration_secs });
        }

        // Step 2.
        if mode == FilterMode::Full {
            return FilterOutcome::Accepted(Accepted {
                rssi: samples.iter().map(|s| s.rssi).collect(),
                updated: false,
                analysis: None,
            });
        }

        // Step 3: clip peaks in time order.
        let sorted_rssi: Vec<i32> = order.iter().map(|&i| samples[i].rssi).collect();
        let mut clipped: Vec<i32> = Vec::with_capacity(sorted_rssi.len());
        let mut peaks: Vec<i32> = Vec::new();
        for (pos, &current) in sorted_rssi.iter().enumerate() {
            if current > c.rssi_threshold {
                peaks.push(current);
                let previous = if pos == 0 { current } else { clipped[pos - 1] };
                let next = sorted_rssi.get(pos + 1).copied().unwrap_or(current);
                clipped.push(c.rssi_threshold.min(previous.min(next)));
            } else {
                clipped.push(current);
            }
        }

        // Step 4: window risks over the clipped values.
        let times = order.iter().map(|&i| samples[i].time);
        let window_risks = self.window_risks(times.zip(clipped.iter().copied()), epoch_start);

        let mut rssi = vec![0; samples.len()];
        for (&i, &value) in order.iter().zip(&clipped) {
            rssi[i] = value;
        }
        let mean_peak = (!peaks.is_empty()).then(|| {
            let total: i64 = peaks.iter().map(|&p| i64::from(p)).sum();
            // Peak counts and sums stay far below 2^53.
            total as f64 / peaks.len() as f64
        });
        let mut analysis = Analysis {
            window_risks,
            peak_count: peaks.len(),
            mean_peak,
            risk: None,
        };
        let updated = !peaks.is_empty();

        // Step 5.
        if mode == FilterMode::Medium {
            return FilterOutcome::Accepted(Accepted {
                rssi,
                updated,
                analysis: Some(analysis),
            });
        }

        // Step 6.
        // Durations up to 2^64 s convert with rounding only.
        let duration_minutes = duration_secs as f64 / 60.0;
        let risk_density = analysis.window_risks.iter().filter(|&&w| w > 0.0).count();
        let intermediate_risk = softmax(analysis.window_risks.iter().copied(), c.b);
        // Window counts are bounded by MAX_SLOTS.
        let risk = intermediate_risk * (duration_minutes + risk_density as f64)
            / (2 * analysis.window_risks.len()) as f64;
        analysis.risk = Some(RiskSummary {
            duration_minutes,
            risk_density,
            intermediate_risk,
            risk,
        });
        if risk < c.risk_threshold {
            FilterOutcome::Rejected(Rejection::RiskTooLow(analysis))
        } else {
            FilterOutcome::Accepted(Accepted {
                rssi,
                updated,
                analysis: Some(analysis),
            })
        }
    }

    /// Step 4: one risk per window (module docs).
    fn window_risks<I>(&self, samples: I, epoch_start: NtpSeconds) -> Vec<f64>
    where
        I: Iterator<Item = (NtpSeconds, i32)>,
    {
        let c = &self.config;
        let slot = c.time_window_secs - c.time_overlap_secs; // validated > 0
        // Validated ≤ MAX_SLOTS.
        let slot_count = usize::try_from(c.epoch_duration_secs.div_ceil(slot)).unwrap_or(0);
        let per_window = usize::try_from(c.time_window_secs / slot).unwrap_or(usize::MAX);

        let mut slots: Vec<Vec<i32>> = vec![Vec::new(); slot_count];
        for (time, rssi) in samples {
            let delta = i128::from(time.get()) - i128::from(epoch_start.get());
            let index = delta.div_euclid(i128::from(slot));
            if let Some(bucket) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) {
                bucket.push(rssi);
            }
        }

        let max_delta = c.deltas.len() - 1; // validated non-empty
        (0..slot_count)
            .map(|k| {
                let end = k.saturating_add(per_window).min(slot_count);
                let window = slots[k..end].iter().flatten();
                let n = window.clone().count();
                if n == 0 {
                    return 0.0;
                }
                let m = softmax(window.map(|&r| f64::from(r)), c.a);
                let gamma = (m - c.p0) / c.deltas[(n - 1).min(max_delta)];
                if gamma.is_nan() {
                    0.0
                } else {
                    gamma.clamp(0.0, 1.0)
                }
            })
            .collect()
    }
}

/// The SDKs' soft-max: `c · ln((Σ exp(x/c)) / |L|)`, 0 for an empty list.
fn softmax<I: Iterator<Item = f64>>(values: I, c: f64) -> f64 {
    crate::scoring::softmax(values, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An epoch boundary (multiple of 900) in NTP seconds.
    const E: u64 = 3_882_556_800;

    fn s(offset: u64, rssi: i32) -> RssiSample {
        RssiSample::new(NtpSeconds(E + offset), rssi)
    }

    fn app() -> ProximityFilter {
        ProximityFilter::default()
    }

    fn accepted(outcome: FilterOutcome) -> Accepted {
        match outcome {
            FilterOutcome::Accepted(a) => a,
            FilterOutcome::Rejected(r) => panic!("rejected: {r:?}"),
        }
    }

    #[test]
    fn configurations() {
        let app = FilterConfig::app_2020();
        assert_eq!(app.a, 4.3429448190325175); // the value in the app's config JSON
        assert_eq!(app.deltas.len(), 10);
        assert!(app.validate().is_ok());
        let sdk = FilterConfig::sdk_default();
        assert_eq!(
            (
                sdk.duration_threshold_secs,
                sdk.rssi_threshold,
                sdk.risk_threshold
            ),
            (300, 0, 0.2)
        );
        assert!(ProximityFilter::new(sdk).is_ok());
        for bad in [
            FilterConfig {
                deltas: vec![],
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                deltas: vec![1.0, f64::NAN],
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                a: 0.0,
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                b: f64::INFINITY,
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                p0: f64::NAN,
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                time_overlap_secs: 120,
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                epoch_duration_secs: 0,
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                epoch_duration_secs: u64::MAX,
                ..FilterConfig::app_2020()
            },
            FilterConfig {
                risk_threshold: f64::NAN,
                ..FilterConfig::app_2020()
            },
        ] {
            assert!(ProximityFilter::new(bad).is_err());
        }
        assert_eq!(FilterMode::from_config("RISKS"), Some(FilterMode::Risks));
        assert_eq!(FilterMode::from_config("medium"), Some(FilterMode::Medium));
        assert_eq!(FilterMode::from_config("Full"), Some(FilterMode::Full));
        assert_eq!(FilterMode::from_config("ALL"), None);
    }

    #[test]
    fn step1_empty_and_duration_threshold() {
        let f = app();
        for mode in [FilterMode::Full, FilterMode::Medium, FilterMode::Risks] {
            assert_eq!(
                f.filter(&[], mode),
                FilterOutcome::Rejected(Rejection::DurationTooShort { duration_secs: 0 })
            );
            assert_eq!(
                f.filter(&[s(0, -50), s(119, -50)], mode),
                FilterOutcome::Rejected(Rejection::DurationTooShort { duration_secs: 119 })
            );
        }
        assert!(
            f.filter(&[s(0, -50), s(120, -50)], FilterMode::Full)
                .is_accepted()
        );
        // The span is measured after sorting, not in input order.
        assert!(
            f.filter(&[s(120, -50), s(0, -50)], FilterMode::Full)
                .is_accepted()
        );
        assert!(
            !f.filter(&[s(60, -50), s(0, -50), s(30, -50)], FilterMode::Full)
                .is_accepted()
        );
    }

    #[test]
    fn step2_full_mode_keeps_values_in_input_order() {
        let samples = [s(200, 10), s(0, -50), s(100, -20)];
        let a = accepted(app().filter(&samples, FilterMode::Full));
        assert_eq!(a.rssi, vec![10, -50, -20]);
        assert!(!a.updated);
        assert_eq!(a.analysis, None);
    }

    #[test]
    fn step3_peak_clipping_uses_clipped_previous_and_original_next() {
        // Time order: −30, −10, −40, −20, −26 with threshold −25.
        // −10: min(−25, prev −30, next −40) = −40;
        // −20: min(−25, prev −40 (clipped value of −40), next −26) = −40.
        let samples = [s(0, -30), s(60, -10), s(120, -40), s(180, -20), s(240, -26)];
        let a = accepted(app().filter(&samples, FilterMode::Medium));
        assert_eq!(a.rssi, vec![-30, -40, -40, -40, -26]);
        assert!(a.updated);
        let analysis = a.analysis.unwrap();
        assert_eq!((analysis.peak_count, analysis.mean_peak), (2, Some(-15.0)));

        // Chained peaks: the previous value is the already clipped one.
        let a = accepted(app().filter(&[s(0, -50), s(60, -10), s(120, -5)], FilterMode::Medium));
        assert_eq!(a.rssi, vec![-50, -50, -50]);

        // Ends: the missing neighbour is the value itself.
        let a = accepted(app().filter(&[s(0, -10), s(130, -50)], FilterMode::Medium));
        assert_eq!(a.rssi, vec![-50, -50]);
        let a = accepted(app().filter(&[s(0, -50), s(130, -10)], FilterMode::Medium));
        assert_eq!(a.rssi, vec![-50, -50]);
        let a = accepted(app().filter(&[s(0, -10), s(130, 3)], FilterMode::Medium));
        assert_eq!(a.rssi, vec![-25, -25]);

        // No peak: nothing updated, no mean.
        let a = accepted(app().filter(&[s(0, -50), s(130, -60)], FilterMode::Medium));
        assert!(!a.updated);
        assert_eq!(a.analysis.unwrap().mean_peak, None);
    }

    #[test]
    fn step3_clipped_values_follow_their_input_sample() {
        // Unsorted input: the peak (index 0, latest in time) is clipped using
        // its time-order neighbours, and the result stays at index 0.
        let samples = [s(240, -10), s(0, -60), s(120, -45), s(60, -70)];
        let a = accepted(app().filter(&samples, FilterMode::Medium));
        // Time order: −60, −70, −45, −10; −10 is last: min(−25, −45, −10) = −45.
        assert_eq!(a.rssi, vec![-45, -60, -45, -70]);
    }

    #[test]
    fn step4_window_risks() {
        // Values computed independently with Python's math module:
        //   a = 10/ln 10;  w0 = clamp((a·ln((e^{−50/a} + e^{−60/a})/2) + 66)/27)
        //   w1 = 6/39;  w13 = w14 = 26/39.
        let samples = [s(10, -50), s(70, -60), s(850, -40), s(900, -30), s(0, -90)];
        let start = NtpSeconds(E);
        let a = accepted(app().filter_in_epoch(&samples[..4], start, FilterMode::Medium));
        let w = a.analysis.unwrap().window_risks;
        assert_eq!(w.len(), 15);
        assert!((w[0] - 0.4964306257386089).abs() < 1e-12, "{}", w[0]);
        assert!((w[1] - 6.0 / 39.0).abs() < 1e-12);
        assert!(w[2..13].iter().all(|&x| x == 0.0));
        // t = E + 900 is outside the epoch and ignored.
        assert!((w[13] - 26.0 / 39.0).abs() < 1e-12);
        assert!((w[14] - 26.0 / 39.0).abs() < 1e-12);

        // A sample below p0 gives 0; the sample count picks the delta
        // (3 samples at −60 in one window: (−60 + 66)/deltas[2] = 6/23).
        let a = accepted(app().filter_in_epoch(
            &[s(0, -60), s(20, -60), s(40, -60), s(700, -90)],
            start,
            FilterMode::Medium,
        ));
        let w = a.analysis.unwrap().window_risks;
        assert!((w[0] - 6.0 / 23.0).abs() < 1e-12, "{}", w[0]);
        assert_eq!(w[11], 0.0);
        assert_eq!(w[10], 0.0);
    }

    #[test]
    fn step6_risk_decision() {
        // Same data as step 4, mode RISKS. Independent Python computation:
        //   intermediate = 0.1·ln(Σ exp(w_k/0.1) / 15) = 0.4748063783927867
        //   risk = intermediate · (14 + 4) / 30 = 0.284883827035672
        // (duration = 840 s = 14 min, density = 4).
        let samples = [s(10, -50), s(70, -60), s(850, -40)];
        let start = NtpSeconds(E);
        let a = accepted(app().filter_in_epoch(&samples, start, FilterMode::Risks));
        let r = a.analysis.unwrap().risk.unwrap();
        assert_eq!(r.duration_minutes, 14.0);
        assert_eq!(r.risk_density, 4);
        assert!((r.intermediate_risk - 0.4748063783927867).abs() < 1e-12);
        assert!((r.risk - 0.284883827035672).abs() < 1e-12);

        // The same samples fail a 0.3 threshold.
        let strict = ProximityFilter::new(FilterConfig {
            risk_threshold: 0.3,
            ..FilterConfig::app_2020()
        })
        .unwrap();
        match strict.filter_in_epoch(&samples, start, FilterMode::Risks) {
            FilterOutcome::Rejected(Rejection::RiskTooLow(analysis)) => {
                assert!((analysis.risk.unwrap().risk - 0.284883827035672).abs() < 1e-12);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn app_epoch_start_comes_from_first_sample_in_input_order() {
        // The first input sample is in the next epoch: the app's epoch start
        // is then E + 900 and the earlier samples fall outside.
        let samples = [s(905, -50), s(10, -50), s(100, -50), s(200, -50)];
        let w_app = match app().filter(&samples, FilterMode::Medium) {
            FilterOutcome::Accepted(a) => a.analysis.unwrap().window_risks,
            other => panic!("{other:?}"),
        };
        assert!(w_app[0] > 0.0);
        assert!(w_app[1..].iter().all(|&x| x == 0.0));
        let w_sdk = match app().filter_in_epoch(&samples, NtpSeconds(E), FilterMode::Medium) {
            FilterOutcome::Accepted(a) => a.analysis.unwrap().window_risks,
            other => panic!("{other:?}"),
        };
        assert!(w_sdk[0] > 0.0 && w_sdk[1] > 0.0 && w_sdk[3] > 0.0);
    }
}
