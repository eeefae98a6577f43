//! Small numerical helpers: uniform and normal draws from any [`Rng`], the
//! normal CDF, and the CDF / inverse-CDF table of small-scale fading.
//!
//! Draws use only `Rng::next_u64`, so sequences depend on the generator
//! alone, not on the `rand` crate's distribution code.

use rand::Rng;
use serde::Deserialize;

/// A uniform draw in the open interval (0, 1).
pub(crate) fn uniform01<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    // 53 random bits, shifted by half a step so neither 0 nor 1 occurs.
    ((rng.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A uniform draw in `[lo, hi)`.
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * uniform01(rng)
}

/// A uniform index in `0..n` (`n > 0`); tiny modulo bias is irrelevant here.
pub(crate) fn index<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    // `n` fits u64 on every supported target; the result is < n.
    usize::try_from(rng.next_u64() % (n.max(1) as u64)).unwrap_or(0)
}

/// A Bernoulli draw.
pub(crate) fn bernoulli<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    uniform01(rng) < p
}

/// A standard normal draw (Box–Muller, one of the pair).
pub(crate) fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1 = uniform01(rng);
    let u2 = uniform01(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Picks an index with probability proportional to `weights` (non-negative,
/// not all zero; otherwise index 0).
pub(crate) fn weighted_index<R: Rng + ?Sized>(rng: &mut R, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().copied().filter(|w| *w > 0.0).sum();
    if total <= 0.0 {
        return 0;
    }
    let mut x = uniform01(rng) * total;
    for (i, w) in weights.iter().enumerate() {
        if *w > 0.0 {
            if x < *w {
                return i;
            }
            x -= w;
        }
    }
    weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
}

/// Complementary error function, Chebyshev fit with fractional error below
/// 1.2e-7 everywhere (W. H. Press et al., *Numerical Recipes*, 2nd ed., §6.2, `erfcc`).
pub(crate) fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 { ans } else { 2.0 - ans }
}

/// Standard normal CDF Φ(x).
pub(crate) fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Small-scale (multipath) fading of the received power, per packet.
///
/// The power gain `g = |h|²` has mean 1 (fading redistributes power, it does
/// not add loss on average); the table works on `10·log10(g)` in dB.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fading {
    /// No fading (deterministic received power).
    None,
    /// Rayleigh fading: no dominant path, `g` exponential with mean 1
    /// (dense multipath without line of sight, e.g. inside a metal vehicle).
    Rayleigh,
    /// Rician fading: one dominant path plus diffuse multipath.
    Rician {
        /// K-factor in dB: power of the dominant path over the diffuse power.
        k_factor_db: f64,
    },
}

/// Grid of the fading table, in dB.
const GRID_MIN_DB: f64 = -60.0;
const GRID_MAX_DB: f64 = 20.0;
const GRID_STEP_DB: f64 = 0.05;

/// CDF of the fading in dB on a fixed grid, for probabilities and
/// inverse-CDF sampling (including sampling conditioned on exceeding a level,
/// which is what a receiver with a sensitivity floor observes).
#[derive(Clone, Debug, PartialEq)]
pub struct FadingTable {
    fading: Fading,
    cdf: Vec<f64>,
    /// Quantiles at `u = QUICK_LO + i·(QUICK_HI − QUICK_LO)/QUICK_N`, for O(1) sampling.
    quick: Vec<f64>,
}

/// Range and size of the direct quantile table; outside it, binary search.
const QUICK_LO: f64 = 0.001;
const QUICK_HI: f64 = 0.999;
const QUICK_N: usize = 4096;

impl FadingTable {
    /// Tabulates `fading` on [-60, +20] dB in 0.05 dB steps.
    pub fn new(fading: Fading) -> Self {
        let n = ((GRID_MAX_DB - GRID_MIN_DB) / GRID_STEP_DB).round() as usize + 1;
        let cdf = match fading {
            Fading::None => Vec::new(),
            Fading::Rayleigh => (0..n)
                .map(|i| {
                    let g = db_to_lin(grid_db(i));
                    -(-g).exp_m1()
                })
                .collect(),
            Fading::Rician { k_factor_db } => {
                let k = db_to_lin(k_factor_db);
                let mut v: Vec<f64> = (0..n)
                    .map(|i| rician_cdf(k, db_to_lin(grid_db(i))))
                    .collect();
                // Numerical noise must not break monotonicity.
                for i in 1..v.len() {
                    if v[i] < v[i - 1] {
                        v[i] = v[i - 1];
                    }
                }
                v
            }
        };
        let mut table = Self {
            fading,
            cdf,
            quick: Vec::new(),
        };
        if !table.cdf.is_empty() {
            table.quick = (0..=QUICK_N)
                .map(|i| {
                    table.search_quantile(
                        QUICK_LO + (QUICK_HI - QUICK_LO) * i as f64 / QUICK_N as f64,
                    )
                })
                .collect();
        }
        table
    }

    /// The fading model tabulated.
    pub fn fading(&self) -> Fading {
        self.fading
    }

    /// P(fading ≤ `x_db`).
    pub fn cdf(&self, x_db: f64) -> f64 {
        if self.cdf.is_empty() {
            return if x_db >= 0.0 { 1.0 } else { 0.0 };
        }
        if x_db <= GRID_MIN_DB {
            return self.cdf[0] * db_to_lin(x_db - GRID_MIN_DB).min(1.0);
        }
        let pos = (x_db - GRID_MIN_DB) / GRID_STEP_DB;
        let i = pos.floor() as usize;
        if i + 1 >= self.cdf.len() {
            return 1.0;
        }
        let f = pos - i as f64;
        self.cdf[i] + f * (self.cdf[i + 1] - self.cdf[i])
    }

    /// P(fading > `x_db`).
    pub fn exceed(&self, x_db: f64) -> f64 {
        (1.0 - self.cdf(x_db)).max(0.0)
    }

    /// The fading value (dB) at which the CDF reaches `u`.
    fn quantile(&self, u: f64) -> f64 {
        if self.cdf.is_empty() {
            return 0.0;
        }
        if (QUICK_LO..QUICK_HI).contains(&u) && !self.quick.is_empty() {
            let pos = (u - QUICK_LO) / (QUICK_HI - QUICK_LO) * QUICK_N as f64;
            let i = (pos.floor() as usize).min(QUICK_N - 1);
            let f = pos - i as f64;
            return self.quick[i] + f * (self.quick[i + 1] - self.quick[i]);
        }
        self.search_quantile(u)
    }

    /// [`FadingTable::quantile`] by binary search on the CDF grid.
    fn search_quantile(&self, u: f64) -> f64 {
        if self.cdf.is_empty() {
            return 0.0;
        }
        let idx = self.cdf.partition_point(|c| *c < u);
        if idx == 0 {
            return GRID_MIN_DB;
        }
        if idx >= self.cdf.len() {
            return GRID_MAX_DB;
        }
        let (c0, c1) = (self.cdf[idx - 1], self.cdf[idx]);
        let f = if c1 > c0 { (u - c0) / (c1 - c0) } else { 0.0 };
        grid_db(idx - 1) + f * GRID_STEP_DB
    }

    /// A fading draw in dB.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.quantile(uniform01(rng))
    }

    /// A fading draw conditioned on being above `min_db` (returns `min_db`
    /// when that event has probability ~0, and never less than `min_db`).
    pub fn sample_above<R: Rng + ?Sized>(&self, min_db: f64, rng: &mut R) -> f64 {
        if self.cdf.is_empty() {
            return 0.0_f64.max(min_db);
        }
        let lo = self.cdf(min_db);
        if lo >= 1.0 {
            return min_db;
        }
        let u = lo + (1.0 - lo) * uniform01(rng);
        self.quantile(u).max(min_db)
    }
}

fn grid_db(i: usize) -> f64 {
    GRID_MIN_DB + i as f64 * GRID_STEP_DB
}

/// dB → linear power ratio.
pub(crate) fn db_to_lin(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}

/// P(|h|² ≤ g) for Rician fading with K-factor `k` (linear) and E|h|² = 1.
///
/// `h = ν + s·(X + iY)`, X, Y standard normal, ν² = K/(K+1), 2s² = 1/(K+1).
/// Conditioning on the quadrature component `y = r·sinθ` (r = √g):
///
/// ```text
/// F(g) = ∫ φ(r sinθ / s) / s · [Φ((r cosθ − ν)/s) − Φ((−r cosθ − ν)/s)] · r cosθ dθ,  θ ∈ [−π/2, π/2]
/// ```
///
/// integrated with Simpson's rule over the part where φ is not negligible.
fn rician_cdf(k: f64, g: f64) -> f64 {
    let nu = (k / (k + 1.0)).sqrt();
    let s = (1.0 / (2.0 * (k + 1.0))).sqrt();
    let r = g.sqrt();
    if r <= 0.0 {
        return 0.0;
    }
    // φ(y/s) < 1e-15 beyond |y| > 8.5 s.
    let theta_max = if 8.5 * s >= r {
        std::f64::consts::FRAC_PI_2
    } else {
        (8.5 * s / r).asin()
    };
    let n = 400; // even
    let h = 2.0 * theta_max / f64::from(n);
    let integrand = |theta: f64| {
        let (sin, cos) = theta.sin_cos();
        let y = r * sin;
        let x = r * cos;
        let phi = (-(y * y) / (2.0 * s * s)).exp() / (s * (std::f64::consts::TAU).sqrt());
        phi * (norm_cdf((x - nu) / s) - norm_cdf((-x - nu) / s)) * x
    };
    let mut sum = integrand(-theta_max) + integrand(theta_max);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * integrand(-theta_max + f64::from(i) * h);
    }
    (sum * h / 3.0).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::ChaCha8Rng;

    #[test]
    fn erfc_reference_values() {
        // Values from Abramowitz & Stegun, Table 7.1.
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7, "erfc({x})");
        }
        assert!((norm_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn rician_with_tiny_k_matches_rayleigh() {
        let ray = FadingTable::new(Fading::Rayleigh);
        let ric = FadingTable::new(Fading::Rician { k_factor_db: -40.0 });
        for x in [-30.0, -10.0, -3.0, 0.0, 3.0, 6.0] {
            assert!(
                (ray.cdf(x) - ric.cdf(x)).abs() < 2e-3,
                "x={x}: {} vs {}",
                ray.cdf(x),
                ric.cdf(x)
            );
        }
        // Rayleigh closed form: P(g ≤ 1) = 1 − e^{-1}.
        assert!((ray.cdf(0.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-9);
    }

    #[test]
    fn rician_cdf_reference_point() {
        // Large K = 100: |h| ≈ N(ν, s²) with ν = √(100/101), s = √(1/202), so
        // P(g ≤ −3 dB) ≈ Φ((√0.5 − ν)/s) = Φ(−4.09) ≈ 2.2e-5.
        let t = FadingTable::new(Fading::Rician { k_factor_db: 20.0 });
        let p = t.cdf(-3.0103);
        assert!((1.5e-5..3.0e-5).contains(&p), "{p}");
        assert!(t.cdf(3.0) > 1.0 - 1e-6);
        assert!((t.cdf(0.0) - 0.5).abs() < 0.1);
    }

    #[test]
    fn fading_draws_have_unit_mean_power_and_respect_the_floor() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for f in [
            Fading::Rayleigh,
            Fading::Rician { k_factor_db: 0.0 },
            Fading::Rician { k_factor_db: 6.0 },
        ] {
            let t = FadingTable::new(f);
            let n = 20_000;
            let mean: f64 = (0..n).map(|_| db_to_lin(t.sample(&mut rng))).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.04, "{f:?}: mean power {mean}");
            for _ in 0..1000 {
                assert!(t.sample_above(-2.0, &mut rng) >= -2.0);
            }
            // Conditioned mean is above the unconditioned one.
            let cm: f64 = (0..n).map(|_| t.sample_above(0.0, &mut rng)).sum::<f64>() / n as f64;
            assert!(cm > 0.0);
        }
        let none = FadingTable::new(Fading::None);
        assert_eq!(none.sample(&mut rng), 0.0);
        assert_eq!(none.cdf(-0.1), 0.0);
        assert_eq!(none.exceed(-0.1), 1.0);
        assert_eq!(none.exceed(0.1), 0.0);
    }

    #[test]
    fn quick_quantiles_match_the_binary_search() {
        for f in [Fading::Rayleigh, Fading::Rician { k_factor_db: 6.0 }] {
            let t = FadingTable::new(f);
            for i in 0..=1000 {
                let u = f64::from(i) / 1000.0;
                let (q, s) = (t.quantile(u), t.search_quantile(u));
                assert!((q - s).abs() < 0.05, "{f:?} u={u}: {q} vs {s}");
            }
        }
    }

    #[test]
    fn normal_draws_are_standard() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let n = 50_000;
        let xs: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02);
        assert!((var - 1.0).abs() < 0.03);
    }

    #[test]
    fn weighted_index_follows_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counts = [0usize; 3];
        for _ in 0..30_000 {
            counts[weighted_index(&mut rng, &[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = counts[2] as f64 / counts[0] as f64;
        assert!((ratio - 3.0).abs() < 0.2, "{ratio}");
        assert_eq!(weighted_index(&mut rng, &[0.0, 0.0]), 0);
    }
}
