//! Precision–recall and ROC curves of a per-phone statistic against the
//! ground truth, their areas, and operating points.
//!
//! A phone is alerted when its statistic reaches a cut `c > 0` (a phone
//! with statistic 0 is never alerted: it was not heard, or the rule gave it
//! nothing). Sweeping `c` over the observed values traces the curves.

use serde::Serialize;

use crate::confusion::Confusion;

/// One phone: its statistic and its ground truth.
pub type Scored = (f64, bool);

/// A point of the curves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    /// The cut (alert when statistic ≥ cut).
    pub cut: f64,
    /// True positives at this cut.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
}

/// The curves of one statistic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curves {
    /// Phones at risk.
    pub positives: u64,
    /// Phones not at risk.
    pub negatives: u64,
    /// One point per distinct positive statistic, from the highest cut down.
    pub points: Vec<CurvePoint>,
}

impl Curves {
    /// Builds the curves.
    pub fn new(scored: &[Scored]) -> Self {
        let positives = scored.iter().filter(|s| s.1).count() as u64;
        let negatives = scored.len() as u64 - positives;
        let mut v: Vec<Scored> = scored.iter().copied().filter(|s| s.0 > 0.0).collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut points = Vec::new();
        let (mut tp, mut fp) = (0, 0);
        let mut i = 0;
        while i < v.len() {
            let cut = v[i].0;
            while i < v.len() && v[i].0 == cut {
                if v[i].1 {
                    tp += 1;
                } else {
                    fp += 1;
                }
                i += 1;
            }
            points.push(CurvePoint { cut, tp, fp });
        }
        Self {
            positives,
            negatives,
            points,
        }
    }

    /// The confusion matrix at a cut.
    pub fn at(&self, cut: f64) -> Confusion {
        let p = self
            .points
            .iter()
            .take_while(|p| p.cut >= cut)
            .last()
            .copied()
            .unwrap_or(CurvePoint { cut, tp: 0, fp: 0 });
        Confusion {
            tp: p.tp,
            fp: p.fp,
            fn_: self.positives - p.tp,
            tn: self.negatives - p.fp,
        }
    }

    /// The largest recall any cut reaches (phones never heard cap it).
    pub fn recall_ceiling(&self) -> f64 {
        ratio(self.points.last().map_or(0, |p| p.tp), self.positives)
    }

    /// The cut with the best precision among those with at least `min_tp`
    /// true positives (ties: the higher recall). `None` when no cut gets
    /// there.
    pub fn best_at_tp(&self, min_tp: u64) -> Option<CurvePoint> {
        let mut best: Option<(f64, CurvePoint)> = None;
        for p in self.points.iter().filter(|p| p.tp >= min_tp) {
            let prec = ratio(p.tp, p.tp + p.fp);
            if best.is_none_or(|(bp, b)| {
                prec > bp + 1e-12 || ((prec - bp).abs() <= 1e-12 && p.tp > b.tp)
            }) {
                best = Some((prec, *p));
            }
        }
        best.map(|b| b.1)
    }

    /// The cut with the best precision among those with recall ≥ `recall`
    /// (ties: the higher recall, then the higher cut). `None` when no cut
    /// reaches that recall.
    pub fn best_at_recall(&self, recall: f64) -> Option<CurvePoint> {
        let mut best: Option<(f64, CurvePoint)> = None;
        for p in &self.points {
            if ratio(p.tp, self.positives) + 1e-12 < recall {
                continue;
            }
            let prec = ratio(p.tp, p.tp + p.fp);
            let better = match best {
                None => true,
                Some((bp, b)) => prec > bp + 1e-12 || ((prec - bp).abs() <= 1e-12 && p.tp > b.tp),
            };
            if better {
                best = Some((prec, *p));
            }
        }
        best.map(|b| b.1)
    }

    /// Area under the ROC curve (trapezoids; the statistic-0 phones sit at
    /// the (1, 1) corner).
    pub fn roc_auc(&self) -> f64 {
        if self.positives == 0 || self.negatives == 0 {
            return f64::NAN;
        }
        let (mut area, mut x0, mut y0) = (0.0, 0.0, 0.0);
        for p in &self.points {
            let x = ratio(p.fp, self.negatives);
            let y = ratio(p.tp, self.positives);
            area += (x - x0) * (y + y0) / 2.0;
            (x0, y0) = (x, y);
        }
        area + (1.0 - x0) * (1.0 + y0) / 2.0
    }

    /// Area under the precision–recall curve (step interpolation: average
    /// precision).
    pub fn pr_auc(&self) -> f64 {
        if self.positives == 0 {
            return f64::NAN;
        }
        let (mut area, mut r0) = (0.0, 0.0);
        for p in &self.points {
            let r = ratio(p.tp, self.positives);
            area += (r - r0) * ratio(p.tp, p.tp + p.fp);
            r0 = r;
        }
        area
    }
}

/// `a / b`, 0 for an empty denominator.
pub fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// A cut between the operating point's statistic and the next lower one
/// (geometric middle when both are positive), so that a small shift of the
/// data does not move phones across it.
pub fn margin_cut(c: &Curves, p: CurvePoint) -> f64 {
    let next = c
        .points
        .iter()
        .find(|q| q.cut < p.cut)
        .map_or(0.0, |q| q.cut);
    if next > 0.0 {
        (p.cut * next).sqrt()
    } else {
        p.cut * 0.75
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_by_hand() {
        // Statistics: 5 (T), 4 (F), 3 (T), 2 (F), 0 (T: never heard), 0 (F).
        let s = [
            (5.0, true),
            (4.0, false),
            (3.0, true),
            (2.0, false),
            (0.0, true),
            (0.0, false),
        ];
        let c = Curves::new(&s);
        assert_eq!((c.positives, c.negatives), (3, 3));
        assert_eq!(c.points.len(), 4);
        let m = c.at(3.0);
        assert_eq!((m.tp, m.fp, m.fn_, m.tn), (2, 1, 1, 2));
        assert!((c.recall_ceiling() - 2.0 / 3.0).abs() < 1e-12);
        // Recall ≥ 1/3: cut 5 has precision 1.
        assert_eq!(c.best_at_recall(0.3).unwrap().cut, 5.0);
        // Recall ≥ 2/3: cut 3 (precision 2/3).
        assert_eq!(c.best_at_recall(0.6).unwrap().cut, 3.0);
        assert!(c.best_at_recall(0.9).is_none());
        // ROC: (0,0) (0,1/3) (1/3,1/3) (1/3,2/3) (2/3,2/3), then (1,1):
        // 0 + 1/9 + 0 + 2/9 + 5/18 = 11/18.
        assert!((c.roc_auc() - 11.0 / 18.0).abs() < 1e-12, "{}", c.roc_auc());
        // Average precision: 1/3·1 + 1/3·2/3.
        assert!((c.pr_auc() - (1.0 / 3.0 + 2.0 / 9.0)).abs() < 1e-12);
        assert!((margin_cut(&c, c.points[2]) - 6f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn a_perfect_statistic_has_roc_area_one() {
        let c = Curves::new(&[(3.0, true), (2.0, true), (1.0, false), (0.5, false)]);
        assert!((c.roc_auc() - 1.0).abs() < 1e-12);
        assert!((c.pr_auc() - 1.0).abs() < 1e-12);
    }
}
