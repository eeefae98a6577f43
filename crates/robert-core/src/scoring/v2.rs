//! Scoring algorithm version 2 (server-api.md §4.4, `ScoringStrategyV2ServiceImpl`).
//!
//! Reference: "hal-02641630" (Inria), eqs. 52, 56 and 57. One contact (the
//! HELLOs of one EBID, i.e. at most one 15-minute epoch) is cut into fifteen
//! one-minute windows counted from its **first HELLO in list order**:
//!
//! ```text
//! t0 = time of hellos[0]            tf = time of hellos[last]     (no sorting)
//! if tf − t0 > 900 + epochTolerance:  score = 0   ("coming too late")
//!
//! for each HELLO h:
//!     k = floor((t_h − t0) / 60);  if k > 15 { k = 14 }
//!     keep h in L[k] iff 0 ≤ k < 15 and rssi_h ≤ −5;   value min(rssi_h, RSSI_MAX)
//!
//! for k in 0..14:  q[k] = softmax(L[k] ∪ L[k+1], A),  n[k] = |L[k]| + |L[k+1]|
//!                  q[14] = softmax(L[14], A),          n[14] = |L[14]|
//!
//! for k ascending with n[k] > 0:
//!     kmax = k
//!     d = min(n[k], |DELTAS| − 1)
//!     γ = (q[k] − P0) / DELTAS[d];   v = clamp(γ, 0, 1);   R.push(v)
//!
//! score_per_minute = min(1.2 · softmax(R, B), 1)
//! score            = score_per_minute · kmax
//! nbContacts       = |{v ∈ R : v > 0}|
//! ```
//!
//! with `softmax(L, c) = c · ln((Σ exp(x/c)) / |L|)`. Quirks kept on purpose
//! (they change scores): HELLOs before `t0` fall out; a HELLO at exactly
//! `t0 + 15 min` is dropped while any later one (not last in the list) lands
//! in window 14; `DELTAS[0]` is never used; a one-minute contact scores 0
//! because `kmax = 0`.

use super::{Aggregation, ContactScore, ScoringError, ScoringInput, softmax};
use crate::time::EPOCH_DURATION_SECS;

/// Number of one-minute windows in an epoch (`epochDurationSecs / 60`).
pub const WINDOWS: usize = (EPOCH_DURATION_SECS / 60) as usize;

/// Calibrated RSSIs above this value are phone errors and are ignored.
pub const RSSI_ERROR_THRESHOLD: i32 = -5;

/// Parameters of scoring v2, as in the reference configuration
/// (`robert.scoring.*`, server-api.md §4.4 and §6.2).
///
/// [`Default`] gives the reference (dev profile) values.
#[derive(Clone, Debug, PartialEq)]
pub struct V2Params {
    /// `p0`: the RSSI (dBm) at or below which a window carries no risk (−66).
    pub p0: f64,
    /// `rssi-max`: RSSIs above it are lowered to it (−35).
    pub rssi_max: i32,
    /// `deltas`: the denominators, indexed by `min(n, len − 1)` where `n`
    /// is the number of RSSIs in a two-minute window
    /// (`[39, 27, 23, 21, 20, 15]`).
    pub deltas: Vec<f64>,
    /// `soft-max-a`: the soft-max constant for RSSIs (4.342 ≈ 10/ln 10).
    pub soft_max_a: f64,
    /// `soft-max-b`: the soft-max constant for window risks (0.2).
    pub soft_max_b: f64,
    /// `epoch-tolerance`, in seconds: how far beyond 900 s the last HELLO may
    /// come after the first (unset in every reference yml, hence 0; the
    /// reference's unit tests use 180).
    pub epoch_tolerance_secs: i64,
    /// `scoring-algo-r0`: the aggregation constant R0 (0.0071).
    pub r0: f64,
}

impl Default for V2Params {
    fn default() -> Self {
        Self {
            p0: -66.0,
            rssi_max: -35,
            deltas: vec![39.0, 27.0, 23.0, 21.0, 20.0, 15.0],
            soft_max_a: 4.342,
            soft_max_b: 0.2,
            epoch_tolerance_secs: 0,
            r0: 0.0071,
        }
    }
}

impl V2Params {
    /// Checks that no parameter can make a score NaN or infinite.
    pub fn validate(&self) -> Result<(), ScoringError> {
        let invalid = |name, reason| Err(ScoringError::InvalidParameter { name, reason });
        if !self.p0.is_finite() {
            return invalid("p0", "must be finite");
        }
        if self.deltas.is_empty() {
            return invalid("deltas", "must not be empty");
        }
        if !self.deltas.iter().all(|d| d.is_finite() && *d > 0.0) {
            return invalid("deltas", "must be finite and positive");
        }
        if !(self.soft_max_a.is_finite() && self.soft_max_a > 0.0) {
            return invalid("soft-max-a", "must be finite and positive");
        }
        if !(self.soft_max_b.is_finite() && self.soft_max_b > 0.0) {
            return invalid("soft-max-b", "must be finite and positive");
        }
        if !(self.r0.is_finite() && self.r0 >= 0.0) {
            return invalid("scoring-algo-r0", "must be finite and not negative");
        }
        Ok(())
    }
}

/// Scoring v2 with validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoringV2 {
    params: V2Params,
}

impl Default for ScoringV2 {
    /// The reference parameters.
    fn default() -> Self {
        Self {
            params: V2Params::default(),
        }
    }
}

impl ScoringV2 {
    /// Validates the parameters (see [`V2Params::validate`]).
    pub fn new(params: V2Params) -> Result<Self, ScoringError> {
        params.validate()?;
        Ok(Self { params })
    }

    /// The parameters.
    pub fn params(&self) -> &V2Params {
        &self.params
    }

    /// The aggregation of v2: `1 − exp(−R0 · S)` (paper eq. 56).
    pub fn aggregation(&self) -> Aggregation {
        Aggregation::Exponential { r0: self.params.r0 }
    }

    /// Scores one contact (module docs give the formula).
    ///
    /// `hellos` must be in upload order. Fails only on an empty list.
    pub fn score(&self, hellos: &[ScoringInput]) -> Result<ContactScore, ScoringError> {
        let (Some(first), Some(last)) = (hellos.first(), hellos.last()) else {
            return Err(ScoringError::NoHelloMessages);
        };
        let p = &self.params;
        let t0 = i128::from(first.time_collected.get());
        let span = i128::from(last.time_collected.get()) - t0;
        let span_secs = i64::try_from(span).unwrap_or(if span < 0 { i64::MIN } else { i64::MAX });
        // W·60 = EPOCH_DURATION_SECS; the tolerance widens it.
        let limit = i128::from(EPOCH_DURATION_SECS) + i128::from(p.epoch_tolerance_secs);
        if span > limit {
            return Ok(ContactScore::zero(span_secs, true));
        }

        // Phase 1: one-minute windows. `W` as i128 for the index arithmetic.
        let w = WINDOWS as i128;
        let mut windows: [Vec<i32>; WINDOWS] = Default::default();
        for hello in hellos {
            let delta = i128::from(hello.time_collected.get()) - t0;
            let mut k = delta.div_euclid(60);
            if k > w {
                k = w - 1;
            }
            if (0..w).contains(&k) && hello.rssi_calibrated <= RSSI_ERROR_THRESHOLD {
                // 0 ≤ k < 15 was just checked.
                windows[k as usize].push(hello.rssi_calibrated.min(p.rssi_max));
            }
        }

        // Phases 2 and 3: two-minute soft-max, then a risk per occupied window.
        let a = p.soft_max_a;
        let max_d = p.deltas.len() - 1; // validated non-empty
        let mut risks = Vec::with_capacity(WINDOWS);
        let mut kmax = 0u32;
        let mut nb_contacts = 0u32;
        for k in 0..WINDOWS {
            let (q, n) = match windows.get(k + 1) {
                Some(next) => {
                    let both = windows[k].iter().chain(next).map(|&r| f64::from(r));
                    (softmax(both, a), windows[k].len() + next.len())
                }
                None => (
                    softmax(windows[k].iter().map(|&r| f64::from(r)), a),
                    windows[k].len(),
                ),
            };
            if n == 0 {
                continue;
            }
            // k < 15.
            let k32 = k as u32;
            kmax = k32;
            let gamma = (q - p.p0) / p.deltas[n.min(max_d)];
            // The reference's comparison chain (maps −0.0 to +0.0, unlike `clamp`).
            #[allow(clippy::manual_clamp, reason = "exact reference semantics")]
            let v = if gamma <= 0.0 {
                0.0
            } else if gamma >= 1.0 {
                1.0
            } else {
                gamma
            };
            if v > 0.0 {
                nb_contacts += 1;
            }
            risks.push(v);
        }

        let score_per_minute = (softmax(risks, p.soft_max_b) * 1.2).min(1.0);
        Ok(ContactScore {
            score: score_per_minute * f64::from(kmax),
            score_per_minute,
            kmax,
            nb_contacts,
            skipped_too_late: false,
            span_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::NtpSeconds;

    const T: u64 = 3_850_000_000;

    fn hello(offset: i64, rssi: i32) -> ScoringInput {
        ScoringInput::new(NtpSeconds(T.checked_add_signed(offset).unwrap()), rssi)
    }

    fn v2() -> ScoringV2 {
        ScoringV2::default()
    }

    #[test]
    fn empty_contact_is_an_error() {
        assert_eq!(v2().score(&[]), Err(ScoringError::NoHelloMessages));
    }

    #[test]
    fn full_epoch_of_close_contact_scores_14() {
        // One HELLO per second for 15 minutes at −35 dBm: every window has
        // n ≥ 5 values of −35, γ = 31/15 > 1, so v = 1, softmax(R) = 1,
        // min(1.2, 1) = 1 and the score is kmax = 14 (server-api.md §4.4
        // "a full epoch of close contact scores ≈ 14").
        let hellos: Vec<_> = (0..900).map(|s| hello(s, -20)).collect();
        let r = v2().score(&hellos).unwrap();
        assert_eq!(r.kmax, 14);
        assert_eq!(r.nb_contacts, 15);
        assert_eq!(r.score_per_minute, 1.0);
        assert_eq!(r.score, 14.0);
        assert!(!r.skipped_too_late);
        assert_eq!(r.span_secs, 899);
    }

    #[test]
    fn one_minute_contact_scores_zero() {
        let hellos: Vec<_> = (0..60).map(|s| hello(s, -40)).collect();
        let r = v2().score(&hellos).unwrap();
        assert_eq!(r.kmax, 0);
        assert_eq!(r.score, 0.0);
        assert_eq!(r.nb_contacts, 1);
        assert_eq!(r.score_per_minute, 1.0);
    }

    #[test]
    fn too_late_contacts_score_zero_with_tolerance() {
        let hellos = [hello(0, -40), hello(901, -40)];
        let r = v2().score(&hellos).unwrap();
        assert!(r.skipped_too_late);
        assert_eq!(
            (r.score, r.kmax, r.nb_contacts, r.span_secs),
            (0.0, 0, 0, 901)
        );
        // Exactly 900 s is still scored (strict `>`).
        let r = v2().score(&[hello(0, -40), hello(900, -40)]).unwrap();
        assert!(!r.skipped_too_late);
        // With the unit tests' tolerance of 180 s, 1080 s passes, 1081 s not.
        let tolerant = ScoringV2::new(V2Params {
            epoch_tolerance_secs: 180,
            ..V2Params::default()
        })
        .unwrap();
        assert!(
            !tolerant
                .score(&[hello(0, -40), hello(1080, -40)])
                .unwrap()
                .skipped_too_late
        );
        assert!(
            tolerant
                .score(&[hello(0, -40), hello(1081, -40)])
                .unwrap()
                .skipped_too_late
        );
    }

    #[test]
    fn window_index_rules() {
        // k = 15 exactly (t0 + 900 s) is dropped: only window 0 is occupied.
        let r = v2().score(&[hello(0, -40), hello(900, -40)]).unwrap();
        assert_eq!((r.kmax, r.nb_contacts), (0, 1));
        // k > 15 (a middle HELLO far in the future) goes to window 14.
        // Windows 0 (two HELLOs), 13 (L13 ∪ L14) and 14 are occupied.
        let r = v2()
            .score(&[hello(0, -40), hello(5000, -40), hello(10, -40)])
            .unwrap();
        assert_eq!((r.kmax, r.nb_contacts), (14, 3));
        // k = 15 in the middle of the list is dropped too.
        let r = v2()
            .score(&[hello(0, -40), hello(905, -40), hello(10, -40)])
            .unwrap();
        assert_eq!((r.kmax, r.nb_contacts), (0, 1));
        // HELLOs before t0 (unsorted list) fall out.
        let r = v2()
            .score(&[hello(300, -40), hello(0, -40), hello(100, -40)])
            .unwrap();
        assert_eq!((r.kmax, r.nb_contacts), (0, 1));
        assert_eq!(r.span_secs, -200);
    }

    #[test]
    fn rssi_filter_and_cap() {
        // −5 is kept, −4 is dropped as an error.
        let r = v2().score(&[hello(0, -4), hello(120, -4)]).unwrap();
        assert_eq!((r.kmax, r.nb_contacts, r.score), (0, 0, 0.0));
        let r = v2().score(&[hello(0, -5), hello(120, -5)]).unwrap();
        assert_eq!(r.kmax, 2);
        // Capped to −35 whatever the value: −5 and −35 give the same score.
        let capped = v2().score(&[hello(0, -35), hello(120, -35)]).unwrap();
        assert_eq!(r, capped);
    }

    #[test]
    fn gamma_uses_deltas_by_count() {
        // One value −55 in window 0 only: n[0] = 1, d = 1, DELTAS[1] = 27,
        // γ = (−55 + 66)/27 = 0.407; kmax = 0 → score 0, but the per-minute
        // score is 1.2 · γ (soft-max of a single value is that value).
        let r = v2().score(&[hello(0, -55)]).unwrap();
        let expected = 1.2 * (11.0 / 27.0);
        assert!(
            (r.score_per_minute - expected).abs() < 1e-12,
            "{}",
            r.score_per_minute
        );
        assert_eq!((r.kmax, r.nb_contacts, r.score), (0, 1, 0.0));
        // Two values −55 in window 0 and one in window 1: n[0] = 3 → DELTAS[3] = 21,
        // n[1] = 1 → DELTAS[1] = 27; kmax = 1.
        let r = v2()
            .score(&[hello(0, -55), hello(30, -55), hello(60, -55)])
            .unwrap();
        let (v0, v1) = (11.0_f64 / 21.0, 11.0_f64 / 27.0);
        let soft = 0.2 * (((v0 / 0.2).exp() + (v1 / 0.2).exp()) / 2.0).ln();
        assert!((r.score - 1.2 * soft).abs() < 1e-12, "{}", r.score);
        assert_eq!((r.kmax, r.nb_contacts), (1, 2));
        // Far away (−80 dBm): γ < 0, v = 0, no contact counted.
        let r = v2().score(&[hello(0, -80), hello(200, -80)]).unwrap();
        assert_eq!(r.nb_contacts, 0);
        assert_eq!(r.kmax, 3);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        for params in [
            V2Params {
                deltas: vec![],
                ..V2Params::default()
            },
            V2Params {
                deltas: vec![39.0, 0.0],
                ..V2Params::default()
            },
            V2Params {
                soft_max_a: 0.0,
                ..V2Params::default()
            },
            V2Params {
                soft_max_b: f64::NAN,
                ..V2Params::default()
            },
            V2Params {
                p0: f64::INFINITY,
                ..V2Params::default()
            },
            V2Params {
                r0: -1.0,
                ..V2Params::default()
            },
        ] {
            assert!(matches!(
                ScoringV2::new(params),
                Err(ScoringError::InvalidParameter { .. })
            ));
        }
    }
}
