use super::*;
use crate::calibration::{CalibrationTable, calibrate};
use crate::geometry::Vec2;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn facing(a: Vec2, b: Vec2, placement: Placement) -> (Antenna, Antenna) {
    let h = (b - a).heading();
    (
        Antenna {
            position: a,
            heading: h,
            placement,
        },
        Antenna {
            position: b,
            heading: h + std::f64::consts::PI,
            placement,
        },
    )
}

#[test]
fn default_pair_at_one_metre_calibrates_to_minus_35() {
    let r = HardwareReference::STANDARD;
    assert!((r.default_rx_offset_db() - -22.8).abs() < 1e-9);
    let hw = RadioHardware::from_true_gains(Gains::new(-30, -5), &r);
    assert_eq!(hw.tx_power_dbm, -7.0);
    let env = EnvironmentKind::Outdoor.preset();
    let (a, b) = facing(Vec2::new(0.0, 0.0), Vec2::new(1.0, 0.0), Placement::Hand);
    let g = LinkGeometry::between(&env, &a, &b);
    assert!((g.distance_m - 1.0).abs() < 1e-12);
    let ch = Channel::new(env, DEFAULT_SENSITIVITY_DBM);
    let level = ch.level_dbm(&hw, &hw, &g, 0.0);
    assert!((level - -70.0).abs() < 1e-9, "{level}");
    assert_eq!(calibrate(level.round() as i32, -30, -5), -35);
}

#[test]
fn exact_table_makes_every_pair_calibrate_alike() {
    let table = CalibrationTable::october_2020();
    let r = HardwareReference::STANDARD;
    let env = EnvironmentKind::IndoorMediumCeiling.preset();
    let (a, b) = facing(Vec2::new(0.0, 0.0), Vec2::new(2.0, 0.0), Placement::Hand);
    let g = LinkGeometry::between(&env, &a, &b);
    let ch = Channel::new(env, DEFAULT_SENSITIVITY_DBM);
    let mut values = Vec::new();
    for (_, s) in table.iter() {
        for (_, rcv) in table.iter().take(10) {
            let level = ch.level_dbm(
                &RadioHardware::from_true_gains(s, &r),
                &RadioHardware::from_true_gains(rcv, &r),
                &g,
                0.0,
            );
            values.push(level - f64::from(s.tx) - f64::from(rcv.rx));
        }
    }
    let first = values[0];
    assert!(values.iter().all(|v| (v - first).abs() < 1e-9));
    // 2 m indoors, n = 2.2: 22·log10(2) = 6.6 dB below −35.
    assert!((first - (-35.0 - 22.0 * 2f64.log10())).abs() < 1e-9);
}

#[test]
fn path_loss_is_monotone_and_continuous_at_the_breakpoint() {
    for kind in EnvironmentKind::ALL {
        let env = kind.preset();
        env.validate().unwrap();
        let mut prev = f64::NEG_INFINITY;
        for i in 1..2000 {
            let d = f64::from(i) * 0.05;
            let pl = env.path_loss_db(d);
            assert!(pl >= prev, "{kind:?} at {d}");
            prev = pl;
        }
        let b = env.breakpoint_m;
        assert!((env.path_loss_db(b - 1e-9) - env.path_loss_db(b + 1e-9)).abs() < 1e-6);
        assert_eq!(env.path_loss_db(0.0), env.path_loss_db(MIN_DISTANCE_M));
    }
}

#[test]
fn body_and_placement_losses() {
    let env = EnvironmentKind::Outdoor.preset();
    let (a, b) = facing(Vec2::new(0.0, 0.0), Vec2::new(1.0, 0.0), Placement::Hand);
    let base = LinkGeometry::between(&env, &a, &b).loss_db;
    assert!((base - env.path_loss_db(1.0)).abs() < 1e-9);
    // A turns its back: the direct path loses the full torso loss, the
    // diffuse floor fills part of it.
    let mut a2 = a;
    a2.heading += std::f64::consts::PI;
    let turned = LinkGeometry::between(&env, &a2, &b).loss_db;
    let expected = obstruction_loss_db(env.body_loss_db, env.diffuse_floor_db);
    assert!((turned - base - expected).abs() < 1e-9);
    assert!(expected < env.body_loss_db && expected < env.diffuse_floor_db);
    // Back pocket while facing the peer: body in the way as well.
    let mut a3 = a;
    a3.placement = Placement::BackPocket;
    let g3 = LinkGeometry::between(&env, &a3, &b);
    let path = env.path_loss_db(g3.distance_m);
    assert!((g3.loss_db - path - expected - Placement::BackPocket.loss_db()).abs() < 1e-9);
    // Side by side: half the torso on the direct path.
    let mut a4 = a;
    a4.heading += std::f64::consts::FRAC_PI_2;
    let side = LinkGeometry::between(&env, &a4, &b).loss_db;
    let half = obstruction_loss_db(env.body_loss_db / 2.0, env.diffuse_floor_db);
    assert!((side - base - half).abs() < 1e-9);
    // Both backs turned: still capped by the diffuse floor.
    let mut b2 = b;
    b2.heading += std::f64::consts::PI;
    let both = LinkGeometry::between(&env, &a2, &b2).loss_db - base;
    assert!(both > turned - base && both < env.diffuse_floor_db);
}

#[test]
fn ablating_body_or_placement_zeroes_that_term_only() {
    let full = EnvironmentKind::IndoorMediumCeiling.preset();
    let with = |t: NoiseTerm| Environment {
        ablate: Ablation::NONE.with(t),
        ..full
    };
    // Back pocket, carrier turned away: both terms are in play.
    let (mut a, b) = facing(
        Vec2::new(0.0, 0.0),
        Vec2::new(2.0, 0.0),
        Placement::BackPocket,
    );
    a.heading += std::f64::consts::PI / 3.0;
    let g = LinkGeometry::between(&full, &a, &b);
    let path = full.path_loss_db(g.distance_m);
    let place = 2.0 * Placement::BackPocket.loss_db();
    let obstruction = g.loss_db - path - place;
    assert!(obstruction > 3.0, "{obstruction}");
    let no_body = LinkGeometry::between(&with(NoiseTerm::Body), &a, &b);
    assert!((no_body.loss_db - (path + place)).abs() < 1e-9);
    let no_place = LinkGeometry::between(&with(NoiseTerm::Placement), &a, &b);
    assert!((no_place.loss_db - (path + obstruction)).abs() < 1e-9);
    // Heights (hence distance) are not placement losses: unchanged.
    assert_eq!(no_place.distance_m, g.distance_m);
    // The other terms leave the geometry alone.
    for t in [
        NoiseTerm::Device,
        NoiseTerm::Pair,
        NoiseTerm::Shadowing,
        NoiseTerm::Fading,
    ] {
        assert_eq!(LinkGeometry::between(&with(t), &a, &b), g, "{t:?}");
    }
}

#[test]
fn ablating_shadowing_or_pair_zeroes_it_and_keeps_the_random_stream() {
    let full = EnvironmentKind::MetalVehicle.preset();
    let run = |ablate: Ablation| {
        let env = Environment { ablate, ..full };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut s = Shadowing::default();
        let values: Vec<f64> = (0..50)
            .map(|i| s.advance(&env, f64::from(i) * 2.0, 1.5, &mut rng))
            .collect();
        (values, s.pair_offset_db(), rng.next_u64())
    };
    let (x_full, y_full, next_full) = run(Ablation::NONE);
    assert!(y_full.abs() > 0.1 && x_full.iter().any(|x| (x - y_full).abs() > 1.0));
    let (x_ns, y_ns, next_ns) = run(Ablation::NONE.with(NoiseTerm::Shadowing));
    assert_eq!(y_ns, y_full);
    assert!(
        x_ns.iter().all(|x| *x == y_full),
        "only the pair offset is left"
    );
    let (x_np, y_np, next_np) = run(Ablation::NONE.with(NoiseTerm::Pair));
    assert_eq!(y_np, 0.0);
    for (a, b) in x_np.iter().zip(&x_full) {
        assert!((a - (b - y_full)).abs() < 1e-9, "shadowing unchanged");
    }
    let both = Ablation::NONE
        .with(NoiseTerm::Pair)
        .with(NoiseTerm::Shadowing);
    let (x_0, _, next_0) = run(both);
    assert!(x_0.iter().all(|x| *x == 0.0));
    assert!(next_full == next_ns && next_ns == next_np && next_np == next_0);
}

#[test]
fn ablating_fading_gives_the_mean_level_and_a_sharp_floor() {
    let env = Environment {
        ablate: Ablation::NONE.with(NoiseTerm::Fading),
        ..EnvironmentKind::MetalVehicle.preset()
    };
    let off = Channel::new(env, -100.0);
    let on = Channel::new(EnvironmentKind::MetalVehicle.preset(), -100.0);
    let (mut r_off, mut r_on) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
    for _ in 0..200 {
        assert_eq!(off.sample_received_rssi(-71.3, &mut r_off), -71);
        assert_eq!(off.sample_packet(-71.3, &mut r_off), Some(-71));
        assert_eq!(off.sample_packet(-100.6, &mut r_off), None);
        on.sample_received_rssi(-71.3, &mut r_on);
        on.sample_packet(-71.3, &mut r_on);
        on.sample_packet(-100.6, &mut r_on);
    }
    assert_eq!(r_off.next_u64(), r_on.next_u64(), "same random stream");
    assert_eq!(off.packet_probability(-99.6, 0.0), 1.0);
    assert_eq!(off.packet_probability(-100.6, 0.0), 0.0);
    assert_eq!(off.packet_probability(-95.0, 5.0), 1.0);
    assert_eq!(off.packet_probability(-95.0, 6.0), 0.0);
    let p = on.packet_probability(-99.6, 0.0);
    assert!(p > 0.0 && p < 1.0);
}

#[test]
fn ablation_lists_parse() {
    assert_eq!(Ablation::parse("none").unwrap(), Ablation::NONE);
    assert_eq!(Ablation::parse("").unwrap(), Ablation::NONE);
    assert_eq!(
        Ablation::parse("all").unwrap().terms(),
        NoiseTerm::ALL.to_vec()
    );
    let a = Ablation::parse("placement, body").unwrap();
    assert_eq!(a.terms(), vec![NoiseTerm::Placement, NoiseTerm::Body]);
    assert_eq!(a.label(), "placement+body");
    assert_eq!(Ablation::parse(&a.label()).unwrap(), a);
    assert_eq!(Ablation::NONE.label(), "none");
    let e = Ablation::parse("body,multipath").unwrap_err();
    assert!(e.contains("multipath") && e.contains("fading"), "{e}");
    for t in NoiseTerm::ALL {
        assert_eq!(NoiseTerm::parse(t.name()), Some(t));
    }
}

#[test]
fn obstruction_loss_fills_in_with_the_diffuse_floor() {
    assert_eq!(obstruction_loss_db(0.0, 9.0), 0.0);
    assert_eq!(
        obstruction_loss_db(-3.0, 9.0),
        0.0,
        "no gain from negative losses"
    );
    let mut prev = 0.0;
    for i in 1..=40 {
        let l = obstruction_loss_db(f64::from(i), 9.0);
        assert!(l > prev && l < 9.0 + 1e-9, "{i}: {l}");
        prev = l;
    }
    // Weak obstruction: almost all of it; strong: almost the floor.
    assert!((obstruction_loss_db(3.0, 30.0) - 3.0).abs() < 0.01);
    assert!((obstruction_loss_db(60.0, 9.0) - 9.0).abs() < 1e-3);
}

#[test]
fn shadowing_is_stationary_and_correlated() {
    let env = EnvironmentKind::IndoorMediumCeiling.preset();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut s = Shadowing::default();
    let n = 20_000;
    let mut xs = Vec::with_capacity(n);
    for i in 0..n {
        xs.push(s.advance(&env, i as f64, 2.0, &mut rng));
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(
        (var.sqrt() - env.shadowing_sigma_db).abs() < 0.6,
        "{}",
        var.sqrt()
    );
    // Lag-1 (1 s) correlation ≈ exp(−1/τ).
    let c1 = xs
        .windows(2)
        .map(|w| (w[0] - mean) * (w[1] - mean))
        .sum::<f64>()
        / (n - 1) as f64
        / var;
    let expected = (-1.0 / env.shadowing_time_constant_s).exp();
    assert!((c1 - expected).abs() < 0.03, "{c1} vs {expected}");
}

#[test]
fn received_samples_respect_the_floor() {
    let ch = Channel::new(EnvironmentKind::MetalVehicle.preset(), -100.0);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for level in [-110.0, -100.0, -90.0, -40.0] {
        for _ in 0..500 {
            let r = ch.sample_received_rssi(level, &mut rng);
            assert!(r >= -100, "{r}");
            if let Some(p) = ch.sample_packet(level, &mut rng) {
                assert!(p >= -100);
            }
        }
    }
    assert!(ch.packet_probability(-60.0, 0.0) > 0.99);
    assert!(ch.packet_probability(-140.0, 0.0) < 1e-3);
    assert!(ch.packet_probability(-95.0, 0.0) > ch.packet_probability(-95.0, 5.0));
}

#[test]
fn max_range_is_finite_and_ordered() {
    let best = -70.0 + 20.0; // an iPhone sender into a good receiver
    let out = Channel::new(EnvironmentKind::Outdoor.preset(), -100.0).max_range_m(best);
    let low = Channel::new(EnvironmentKind::IndoorMediumCeiling.preset(), -100.0).max_range_m(best);
    assert!(out > 20.0 && out < 1000.0, "{out}");
    assert!(low > 5.0 && low < 1000.0, "{low}");
    let deaf = Channel::new(EnvironmentKind::Outdoor.preset(), -10.0).max_range_m(-70.0);
    assert_eq!(deaf, MIN_DISTANCE_M);
}
