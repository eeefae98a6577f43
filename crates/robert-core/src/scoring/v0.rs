//! Scoring algorithm version 0, the legacy "WP4" formula
//! (server-api.md §4.4, `ScoringStrategyServiceImpl` with `algo-version: 0`).
//!
//! ```text
//! α = −RSSI_1m − 5                       (RSSI_1m = scoring-algo-rssi, −40 → α = 35)
//!
//! n > 1:   acc = Σ_{i=1}^{n−1}  (5 · Δt_i) / (60 · min(avg_i + α, −5))
//!          Δt_i  = t_i − t_{i−1}                      (list order, seconds)
//!          avg_i = (rssi_{i−1} + rssi_i) / 2          (integer division, toward 0)
//! n = 1:   r = (t − serviceStart) mod 900;  Δ = (r > 450 ? 900 − r : r);  Δ = min(Δ, 120)
//!          acc = (5 · Δ) / (60 · min(rssi + α, −5))
//! score = −acc
//! ```
//!
//! Aggregation is the plain sum of the scores ([`super::Aggregation::Sum`]).
//! The denominator is always ≤ −300, so every term is finite and the score
//! is positive for HELLOs in time order.

use super::{ContactScore, ScoringError, ScoringInput};
use crate::time::{EPOCH_DURATION_SECS, ServiceStart};

/// Parameters of scoring v0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V0Params {
    /// `robert.protocol.scoring-algo-rssi`: the calibrated RSSI at one metre
    /// (−40 in the reference configuration).
    pub rssi_1m: i32,
    /// The service start, used for single-HELLO contacts
    /// (`robert.server.time-start`).
    pub start: ServiceStart,
}

impl Default for V0Params {
    fn default() -> Self {
        Self {
            rssi_1m: -40,
            start: ServiceStart::REFERENCE,
        }
    }
}

/// Scoring v0 (legacy).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScoringV0 {
    params: V0Params,
}

impl ScoringV0 {
    /// Scoring v0 with these parameters (all values are valid).
    pub fn new(params: V0Params) -> Self {
        Self { params }
    }

    /// The parameters.
    pub fn params(&self) -> &V0Params {
        &self.params
    }

    /// Scores one contact (module docs give the formula). Fails only on an
    /// empty list.
    pub fn score(&self, hellos: &[ScoringInput]) -> Result<ContactScore, ScoringError> {
        let (Some(first), Some(last)) = (hellos.first(), hellos.last()) else {
            return Err(ScoringError::NoHelloMessages);
        };
        let alpha = -i64::from(self.params.rssi_1m) - 5;
        let term = |delta_secs: i128, rssi: i64| -> f64 {
            let denominator = (rssi + alpha).min(-5) * 60;
            // Integer → double conversions, as the reference's `(double)` casts.
            let numerator = (delta_secs * 5) as f64;
            let denominator = denominator as f64;
            numerator / denominator
        };

        let mut acc = 0.0;
        if let [single] = hellos {
            let epoch = i128::from(EPOCH_DURATION_SECS);
            let since_start =
                i128::from(single.time_collected.get()) - i128::from(self.params.start.ntp().get());
            // Java's `%` keeps the dividend's sign, like Rust's.
            let remainder = since_start % epoch;
            let delta = if remainder > epoch / 2 {
                epoch - remainder
            } else {
                remainder
            };
            acc += term(delta.min(120), i64::from(single.rssi_calibrated));
        } else {
            for pair in hellos.windows(2) {
                let delta = i128::from(pair[1].time_collected.get())
                    - i128::from(pair[0].time_collected.get());
                let average =
                    (i64::from(pair[0].rssi_calibrated) + i64::from(pair[1].rssi_calibrated)) / 2;
                acc += term(delta, average);
            }
        }

        let span = i128::from(last.time_collected.get()) - i128::from(first.time_collected.get());
        let span_secs = i64::try_from(span).unwrap_or(if span < 0 { i64::MIN } else { i64::MAX });
        Ok(ContactScore {
            score: 0.0 - acc,
            ..ContactScore::zero(span_secs, false)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NtpSeconds;

    /// An epoch start (service start + 20 epochs).
    const E: u64 = 3_799_958_400 + 20 * 900;

    fn hello(offset: u64, rssi: i32) -> ScoringInput {
        ScoringInput::new(NtpSeconds(E + offset), rssi)
    }

    /// The RSSI_1m under which the reference's `RSSICalibratedScoringStrategyTest`
    /// ranges hold (α = 55).
    fn v0_test_profile() -> ScoringV0 {
        ScoringV0::new(V0Params {
            rssi_1m: -60,
            ..V0Params::default()
        })
    }

    #[test]
    fn empty_contact_is_an_error() {
        assert_eq!(
            ScoringV0::default().score(&[]),
            Err(ScoringError::NoHelloMessages)
        );
    }

    #[test]
    fn reference_unit_test_ranges() {
        let s = v0_test_profile();
        let score = |h: &[ScoringInput]| s.score(h).unwrap().score;
        // "1-minute encounter (4 messages over 1 minute)": 0.75 < score < 1.
        let one_minute = [
            hello(178, -78),
            hello(180, -50),
            hello(214, -35),
            hello(225, -42),
        ];
        let x = score(&one_minute);
        assert!(x > 0.75 && x < 1.0, "{x}");
        // By hand: 10/540 + 170/300 + 55/300.
        assert!((x - (10.0 / 540.0 + 170.0 / 300.0 + 55.0 / 300.0)).abs() < 1e-12);

        // "10-minute encounter (12 messages over 10 minutes)": 9 < score < 10.
        let ten_minutes = [
            hello(178, -78),
            hello(180, -50),
            hello(214, -35),
            hello(225, -42),
            hello(278, -78),
            hello(301, -50),
            hello(450, -35),
            hello(489, -42),
            hello(543, -35),
            hello(576, -42),
            hello(602, -35),
            hello(741, -42),
        ];
        let x = score(&ten_minutes);
        assert!(x > 9.0 && x < 10.0, "{x}");

        // "Spotty encounter (4 messages over 10+ minutes)": 6 < score < 7.
        let spotty = [
            hello(15, -78),
            hello(180, -30),
            hello(500, -100),
            hello(719, -60),
        ];
        let x = score(&spotty);
        assert!(x > 6.0 && x < 7.0, "{x}");

        // "One early, one late": 3.9 < score < 4.
        let x = score(&[hello(5, -70), hello(895, -78)]);
        assert!(x > 3.9 && x < 4.0, "{x}");
        assert!((x - 4450.0 / 1140.0).abs() < 1e-12);

        // Single messages: early, late, around the middle of the epoch are all
        // below the risk threshold (0.1 in the reference test profile) or 0.5.
        assert!(score(&[hello(5, -15)]) < 0.1);
        assert!(score(&[hello(895, -78)]) < 0.1);
        assert!(score(&[hello(455, -78)]) < 0.5);
        // "Short encounter (2 messages over 5 seconds)".
        assert!(score(&[hello(178, -78), hello(180, -50)]) < 0.1);
    }

    #[test]
    fn single_hello_distance_to_epoch_boundary_is_capped_at_120() {
        // Default α = 35; rssi −60 → min(−25, −5)·60 = −1500.
        let s = ScoringV0::default();
        // 5 s after a boundary: Δ = 5.
        assert_eq!(s.score(&[hello(5, -60)]).unwrap().score, 25.0 / 1500.0);
        // 895 s: remainder 895 > 450 → Δ = 5.
        assert_eq!(s.score(&[hello(895, -60)]).unwrap().score, 25.0 / 1500.0);
        // In the middle: Δ = 450, capped to 120.
        assert_eq!(s.score(&[hello(450, -60)]).unwrap().score, 600.0 / 1500.0);
    }

    #[test]
    fn pairs_use_truncated_integer_mean() {
        // (−70 + −77) / 2 = −73 (toward zero), + 35 = −38 → denominator −2280.
        let s = ScoringV0::default();
        let x = s.score(&[hello(0, -70), hello(60, -77)]).unwrap();
        assert_eq!(x.score, 300.0 / 2280.0);
        assert_eq!(x.kmax, 0);
        assert_eq!(x.span_secs, 60);
    }
}
