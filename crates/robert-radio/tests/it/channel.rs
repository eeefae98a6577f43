//! Statistical properties of the channel.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use robert_radio::calibration::Gains;
use robert_radio::channel::{
    Antenna, Channel, EnvironmentKind, HardwareReference, LinkGeometry, Placement, RadioHardware,
    Shadowing,
};
use robert_radio::geometry::Vec2;

fn mean_level(kind: EnvironmentKind, d: f64, seed: u64) -> f64 {
    let env = kind.preset();
    let ch = Channel::new(env, -200.0);
    let hw = RadioHardware::from_true_gains(Gains::new(-30, -5), &HardwareReference::STANDARD);
    let a = Antenna {
        position: Vec2::new(0.0, 0.0),
        heading: 0.0,
        placement: Placement::Hand,
    };
    let b = Antenna {
        position: Vec2::new(d, 0.0),
        heading: std::f64::consts::PI,
        placement: Placement::Hand,
    };
    let g = LinkGeometry::between(&env, &a, &b);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 2000;
    let mut sum = 0.0;
    for _ in 0..n {
        // Independent shadowing draws (fresh state) plus one packet each.
        let s = Shadowing::default().advance(&env, 0.0, d, &mut rng);
        let level = ch.level_dbm(&hw, &hw, &g, s);
        sum += f64::from(ch.sample_packet(level, &mut rng).unwrap_or(-127));
    }
    sum / f64::from(n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Path loss is monotone in distance on average: with shadowing and
    /// fading, the mean RSSI at d₁ exceeds the mean at d₂ ≥ 1.5·d₁.
    #[test]
    fn mean_rssi_decreases_with_distance(
        kind in prop::sample::select(EnvironmentKind::ALL.to_vec()),
        d1 in 0.5f64..15.0,
        factor in 1.5f64..3.0,
        seed in any::<u64>(),
    ) {
        let near = mean_level(kind, d1, seed);
        let far = mean_level(kind, d1 * factor, seed.wrapping_add(1));
        prop_assert!(near > far, "{kind:?}: {near} at {d1} m vs {far} at {} m", d1 * factor);
    }
}
