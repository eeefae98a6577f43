//! Plane geometry: positions in metres inside a place, headings in radians.

use std::ops::{Add, Mul, Sub};

/// A point or vector in a place's local plane, in metres.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Vec2 {
    /// East-west coordinate (m).
    pub x: f64,
    /// North-south coordinate (m).
    pub y: f64,
}

impl Vec2 {
    /// Builds a vector.
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    /// Dot product.
    pub fn dot(self, o: Self) -> f64 {
        self.x * o.x + self.y * o.y
    }

    /// Euclidean norm.
    pub fn norm(self) -> f64 {
        // Not `hypot`: much slower, and overflow is impossible at metre scales.
        (self.x * self.x + self.y * self.y).sqrt()
    }

    /// Distance to another point.
    pub fn distance(self, o: Self) -> f64 {
        (self - o).norm()
    }

    /// Unit vector of heading `rad` (0 = +x, counter-clockwise).
    pub fn from_heading(rad: f64) -> Self {
        let (s, c) = rad.sin_cos();
        Self { x: c, y: s }
    }

    /// Heading of this vector (radians), 0 for the zero vector.
    pub fn heading(self) -> f64 {
        if self.x == 0.0 && self.y == 0.0 {
            0.0
        } else {
            self.y.atan2(self.x)
        }
    }

    /// Linear interpolation: `self + (o − self)·f`.
    pub fn lerp(self, o: Self, f: f64) -> Self {
        self + (o - self) * f
    }

    /// Whether both coordinates are finite.
    pub fn is_finite(self) -> bool {
        self.x.is_finite() && self.y.is_finite()
    }
}

impl Add for Vec2 {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self::new(self.x + o.x, self.y + o.y)
    }
}

impl Sub for Vec2 {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self::new(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f64> for Vec2 {
    type Output = Self;
    fn mul(self, f: f64) -> Self {
        Self::new(self.x * f, self.y * f)
    }
}

/// Cosine of the angle between heading `rad` and the direction `dir`
/// (1 when facing it, −1 when turning one's back to it; 1 if `dir` is zero).
pub fn cos_angle_to(rad: f64, dir: Vec2) -> f64 {
    let n = dir.norm();
    if n == 0.0 {
        1.0
    } else {
        Vec2::from_heading(rad).dot(dir) / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let a = Vec2::new(0.0, 0.0);
        let b = Vec2::new(3.0, 4.0);
        assert_eq!(a.distance(b), 5.0);
        assert_eq!(a.lerp(b, 0.5), Vec2::new(1.5, 2.0));
        assert!((cos_angle_to(0.0, Vec2::new(1.0, 0.0)) - 1.0).abs() < 1e-12);
        assert!((cos_angle_to(std::f64::consts::PI, Vec2::new(1.0, 0.0)) + 1.0).abs() < 1e-12);
        assert!(cos_angle_to(std::f64::consts::FRAC_PI_2, Vec2::new(1.0, 0.0)).abs() < 1e-12);
        assert!((Vec2::new(0.0, 2.0).heading() - std::f64::consts::FRAC_PI_2).abs() < 1e-12);
    }
}
