//! The optimiser: a Latin-hypercube sample of the whole box, then pattern
//! search (coordinate steps, halved when no step improves) from the best
//! few points.
//!
//! The objective (precision at a recall constraint, computed on recorded
//! receptions) is piecewise constant in every parameter, so gradient and
//! simplex methods stall on its plateaus; a space-filling start finds the
//! right basin and coordinate steps refine it. Everything is seeded: the
//! same data and seed give the same choice.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng as _};

/// One search dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct Dim {
    /// Name (reports).
    pub name: &'static str,
    /// Lowest value.
    pub lo: f64,
    /// Highest value.
    pub hi: f64,
    /// Smallest step the refinement takes (also the grid for rounding).
    pub resolution: f64,
}

impl Dim {
    /// A continuous (or stepped) dimension.
    pub const fn new(name: &'static str, lo: f64, hi: f64, resolution: f64) -> Self {
        Self {
            name,
            lo,
            hi,
            resolution,
        }
    }

    /// A choice among `n` values, coded 0 … n − 1.
    pub const fn choice(name: &'static str, n: u32) -> Self {
        Self {
            name,
            lo: 0.0,
            hi: (n - 1) as f64,
            resolution: 1.0,
        }
    }

    fn snap(&self, x: f64) -> f64 {
        let x = x.clamp(self.lo, self.hi);
        let k = ((x - self.lo) / self.resolution).round();
        (self.lo + k * self.resolution).clamp(self.lo, self.hi)
    }
}

/// The result of a search.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The best point.
    pub x: Vec<f64>,
    /// Its objective.
    pub value: f64,
    /// Objective evaluations spent.
    pub evaluations: usize,
}

/// Maximises `objective` over the box (module docs). `starts` are evaluated
/// first (e.g. the reference values); `budget` bounds the evaluations.
pub fn maximise(
    dims: &[Dim],
    starts: &[Vec<f64>],
    budget: usize,
    seed: u64,
    mut objective: impl FnMut(&[f64]) -> f64,
) -> Found {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut evaluations = 0;
    let mut seen: Vec<(Vec<f64>, f64)> = Vec::new();
    let mut eval = |x: Vec<f64>, seen: &mut Vec<(Vec<f64>, f64)>, evaluations: &mut usize| -> f64 {
        if let Some((_, v)) = seen.iter().find(|(y, _)| *y == x) {
            return *v;
        }
        *evaluations += 1;
        let v = objective(&x);
        seen.push((x, v));
        v
    };
    for s in starts {
        let x: Vec<f64> = dims.iter().zip(s).map(|(d, v)| d.snap(*v)).collect();
        eval(x, &mut seen, &mut evaluations);
    }
    // Latin hypercube: a third of the budget.
    let n0 = (budget / 3).max(dims.len() * 4);
    let mut columns: Vec<Vec<f64>> = dims
        .iter()
        .map(|d| {
            let mut c: Vec<f64> = (0..n0)
                .map(|i| {
                    let u = (i as f64 + rng.random::<f64>()) / n0 as f64;
                    d.snap(d.lo + u * (d.hi - d.lo))
                })
                .collect();
            // Fisher–Yates.
            for i in (1..c.len()).rev() {
                let j = rng.random_range(0..=i);
                c.swap(i, j);
            }
            c
        })
        .collect();
    for i in 0..n0 {
        if evaluations >= budget {
            break;
        }
        let x: Vec<f64> = columns.iter_mut().map(|c| c[i]).collect();
        eval(x, &mut seen, &mut evaluations);
    }
    // Pattern search from the best three distinct points.
    let mut ranked = seen.clone();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let seeds: Vec<Vec<f64>> = ranked.iter().take(3).map(|(x, _)| x.clone()).collect();
    for start in seeds {
        let mut x = start;
        let mut fx = eval(x.clone(), &mut seen, &mut evaluations);
        let mut steps: Vec<f64> = dims
            .iter()
            .map(|d| ((d.hi - d.lo) / 4.0).max(d.resolution))
            .collect();
        loop {
            let mut improved = false;
            for (k, d) in dims.iter().enumerate() {
                for dir in [1.0, -1.0] {
                    if evaluations >= budget {
                        break;
                    }
                    let mut y = x.clone();
                    y[k] = d.snap(x[k] + dir * steps[k]);
                    if y[k] == x[k] {
                        continue;
                    }
                    let fy = eval(y.clone(), &mut seen, &mut evaluations);
                    if fy > fx {
                        (x, fx) = (y, fy);
                        improved = true;
                        break;
                    }
                }
            }
            if evaluations >= budget {
                break;
            }
            if !improved {
                let mut any = false;
                for (s, d) in steps.iter_mut().zip(dims) {
                    if *s > d.resolution {
                        *s = (*s / 2.0).max(d.resolution);
                        any = true;
                    }
                }
                if !any {
                    break;
                }
            }
        }
    }
    let (x, value) = seen
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(x, v)| (x.clone(), *v))
        .unwrap_or_default();
    Found {
        x,
        value,
        evaluations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_top_of_a_plateaued_bump() {
        // A staircase bump with its top at (3, −60): flat steps defeat
        // gradients; the sample plus pattern search finds it.
        let dims = [
            Dim::new("a", -10.0, 10.0, 0.5),
            Dim::new("b", -80.0, -30.0, 1.0),
        ];
        let f = |x: &[f64]| -((x[0] - 3.0).abs().floor() + ((x[1] + 60.0) / 3.0).abs().floor());
        let found = maximise(&dims, &[vec![0.0, -40.0]], 300, 1, f);
        assert_eq!(found.value, 0.0, "{found:?}");
        assert!((found.x[0] - 3.0).abs() < 1.0 && (found.x[1] + 60.0).abs() < 3.0);
        assert!(found.evaluations <= 300);
        // Deterministic.
        assert_eq!(maximise(&dims, &[vec![0.0, -40.0]], 300, 1, f), found);
    }

    #[test]
    fn choices_stay_on_their_codes() {
        let dims = [Dim::choice("mode", 3)];
        let found = maximise(&dims, &[], 20, 2, |x| if x[0] == 1.0 { 1.0 } else { 0.0 });
        assert_eq!(found.x, vec![1.0]);
    }
}
