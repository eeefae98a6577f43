//! Confusion matrices and the rates derived from them.

use std::ops::{Add, AddAssign};

use serde::Serialize;

/// Counts of one binary classification: "the system alerts" against "the
/// ground truth says at risk".
///
/// | | alerted | not alerted |
/// |---|---|---|
/// | at risk (truth) | `tp` | `fn_` |
/// | not at risk | `fp` | `tn` |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// At risk and alerted.
    pub tp: u64,
    /// Not at risk but alerted.
    pub fp: u64,
    /// At risk but not alerted.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Not at risk and not alerted.
    pub tn: u64,
}

impl Confusion {
    /// Counts one unit.
    pub fn record(&mut self, truth: bool, alerted: bool) {
        match (truth, alerted) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }

    /// Units counted.
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// Units at risk according to the truth (`tp + fn`).
    pub fn actual_positives(&self) -> u64 {
        self.tp + self.fn_
    }

    /// Units alerted (`tp + fp`).
    pub fn predicted_positives(&self) -> u64 {
        self.tp + self.fp
    }

    /// Recall (sensitivity) `tp / (tp + fn)`; `None` when nobody was at risk.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// Precision `tp / (tp + fp)`; `None` when nobody was alerted.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.tp, self.tp + self.fp)
    }

    /// Specificity `tn / (tn + fp)`; `None` when everybody was at risk.
    pub fn specificity(&self) -> Option<f64> {
        ratio(self.tn, self.tn + self.fp)
    }

    /// F1 score, the harmonic mean of precision and recall; `None` when
    /// `tp + fp + fn = 0`.
    pub fn f1(&self) -> Option<f64> {
        ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn_)
    }

    /// Accuracy `(tp + tn) / total`; `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.tp + self.tn, self.total())
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    // Counts stay far below 2^53: exact in f64.
    (den > 0).then(|| num as f64 / den as f64)
}

impl Add for Confusion {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            tp: self.tp + o.tp,
            fp: self.fp + o.fp,
            fn_: self.fn_ + o.fn_,
            tn: self.tn + o.tn,
        }
    }
}

impl AddAssign for Confusion {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Confusion {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// Formats an optional rate as a percentage with one decimal, `—` if undefined.
pub fn percent(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{:.1} %", 100.0 * v),
        None => "—".to_owned(),
    }
}
