//! The model held against published phone-to-phone measurements
//! (ble-measurements.md §2, §4, §6). Every test names its source and the
//! published band; the bands come from the data, not from the model, so a
//! model change that leaves them fails here.
//!
//! All statistics are on **received** samples of the calibrated RSSI
//! (conditioned on reception, §6.4), from surveys run through the
//! simulator's own code ([`SurveySpec::run`]). Seeds are fixed; the same
//! seed is used for the distances of one environment (common random
//! numbers: same devices, placements and headings), so separations are not
//! blurred by the draw of the population.

use super::*;

/// Indoor presets (rooms and halls), compared with EPFL/ETH's atrium.
const INDOOR: [EnvironmentKind; 3] = [
    EnvironmentKind::IndoorHighCeiling,
    EnvironmentKind::IndoorMediumCeiling,
    EnvironmentKind::IndoorLowCeiling,
];

/// A realistic-carriage survey; more pairs in metal vehicles, whose
/// per-pair offsets make the median noisier.
fn realistic(env: EnvironmentKind, d: f64) -> Survey {
    let pairs = if env == EnvironmentKind::MetalVehicle {
        300
    } else {
        120
    };
    SurveySpec {
        pairs,
        ..SurveySpec::realistic(env, d, 11)
    }
    .run()
    .unwrap()
}

/// Separation from 1 m, realistic carriage.
///
/// Sources (ble-measurements.md §4.2): EPFL/ETH exp34, median per scenario
/// (train, office desks, queue, bar, gym): 1 m → 2 m −2 … −8 dB, 1 m → 3 m
/// −4 … −7 dB (all scenarios −5 / −6). TU Berlin park, line of sight:
/// −7.5 dB (pair range 0 … −11) and −8 dB (0 … −17). Free space −6 / −9.5.
/// Bands: 1 → 2 m in [−8.5, −2], 1 → 3 m in [−10, −4] for every non-metal
/// environment.
///
/// Leith & Farrell, bus (r = 0.06 between per-pair median and log d) and
/// tram (r = 0.15; 0.5–1 m median 62, 2.5–3 m 61, 3–4 m 66 dB): no
/// distance trend in metal vehicles. Band: |1 → 2 m| ≤ 2 dB,
/// |1 → 3 m| ≤ 4 dB.
#[test]
fn separation_by_distance_within_published_bands() {
    for env in EnvironmentKind::ALL {
        let m1 = realistic(env, 1.0).median();
        let s2 = realistic(env, 2.0).median() - m1;
        let s3 = realistic(env, 3.0).median() - m1;
        if env == EnvironmentKind::MetalVehicle {
            assert!(s2.abs() <= 2.0, "{env:?}: 1→2 m {s2}");
            assert!(s3.abs() <= 4.0, "{env:?}: 1→3 m {s3}");
        } else {
            assert!((-8.5..=-2.0).contains(&s2), "{env:?}: 1→2 m {s2}");
            assert!((-10.0..=-4.0).contains(&s3), "{env:?}: 1→3 m {s3}");
        }
    }
}

/// Spread at a given distance, realistic carriage.
///
/// Sources (§2.1, §4.3): EPFL/ETH per-packet IQR 10–13 dB at every
/// distance from 0.5 to 5 m (7 dB with all phones on desks, not our mix);
/// the band for the model is 10–16 dB. Band [10, 16] dB.
///
/// Metal vehicles: Leith & Farrell pooled IQR 7–10 dB (bus) and 6–11 dB
/// (tram) on per-scan averages of several packets; a per-packet Rayleigh
/// fading adds an IQR of 6.8 dB of its own (between 12 dB in quadrature
/// and 17 dB added). Band [9, 17] dB.
#[test]
fn interquartile_range_within_published_bands() {
    for env in EnvironmentKind::ALL {
        for d in [1.0, 2.0] {
            let iqr = realistic(env, d).iqr();
            let band = if env == EnvironmentKind::MetalVehicle {
                9.0..=17.0
            } else {
                10.0..=16.0
            };
            assert!(band.contains(&iqr), "{env:?} at {d} m: IQR {iqr}");
        }
    }
}

/// Level of a realistic carriage relative to the anchor (both phones in
/// hand, facing, no body in the way).
///
/// Source (§4.3): EPFL/ETH atrium, 1 m, all scenarios: median attenuation
/// 54 dB, against 42–48 dB for phones 1 m apart back to back in the
/// anechoic chamber (42–45 for the Samsung models of the atrium; 48 the
/// centre over all pairs): a realistic carriage is 6–12 dB weaker. The
/// anechoic pairs themselves spread over 16 dB, so we allow 3 dB either
/// side. Band: median at 1 m is 3 to 15 dB below the anchor, indoors.
#[test]
fn realistic_carriage_sits_below_the_anchor_as_measured() {
    for env in INDOOR {
        let excess = DEFAULT_ANCHOR_DB - realistic(env, 1.0).median();
        assert!((3.0..=15.0).contains(&excess), "{env:?}: {excess} dB");
    }
}

/// Per-pair spread in metal vehicles.
///
/// Source (§2.1): Leith & Farrell, commuter bus: "changing the people in a
/// pair of seats moves attenuation by ±10 dB"; per-pair medians do not
/// follow distance (r = 0.06). Band: the 10–90 % range of per-pair medians
/// (both phones in hand, 1.5 m, 10 min) spans 13–26 dB (±6.5 … ±13), and is
/// at least 3 dB wider than in a furnished room with the same carriage.
#[test]
fn metal_vehicle_pairs_spread_as_in_the_bus() {
    let range = |env| {
        let spec = SurveySpec {
            placement: in_hand(),
            pairs: 150,
            ..SurveySpec::realistic(env, 1.5, 23)
        };
        let m = spec.run().unwrap().pair_medians(20);
        assert!(m.len() >= 100, "{env:?}: {} pairs heard", m.len());
        quantile_sorted(&m, 0.9) - quantile_sorted(&m, 0.1)
    };
    let metal = range(EnvironmentKind::MetalVehicle);
    let room = range(EnvironmentKind::IndoorMediumCeiling);
    assert!((13.0..=26.0).contains(&metal), "metal: {metal}");
    assert!(metal >= room + 3.0, "metal {metal} vs room {room}");
}

fn turned_loss(env: EnvironmentKind, placement: Placement) -> f64 {
    turned_loss_db(env, placement, 1.83)
}

/// Body loss by environment.
///
/// Source (§2.2): MITRE, phones 6 ft apart, the carrier rotated in 45°
/// steps, max − min of the per-take medians. Anechoic chamber and outdoor
/// courtyard 15–26 dB (front pocket 15, purse 15–16, back pocket 23–26, ear
/// 22–24); conference room 6–14 dB (6–10 through a wall); screen room
/// (strong multipath) 7–11 dB. The targets: ≈ 18–20 dB outdoors,
/// 8–10 dB in furnished rooms, ≈ 6 dB in metal vehicles. Bands: outdoor
/// [15, 26]; furnished rooms (medium and low ceiling) [6, 14]; metal
/// vehicle [5, 11]; a hall in between rooms and outdoors.
#[test]
fn turning_the_body_costs_what_mitre_measured() {
    let placements = [
        Placement::FrontPocket,
        Placement::BackPocket,
        Placement::Bag,
        Placement::Ear,
        Placement::Hand,
    ];
    for p in placements {
        let outdoor = turned_loss(EnvironmentKind::Outdoor, p);
        assert!((15.0..=26.0).contains(&outdoor), "outdoor {p:?}: {outdoor}");
        for env in [
            EnvironmentKind::IndoorMediumCeiling,
            EnvironmentKind::IndoorLowCeiling,
        ] {
            let room = turned_loss(env, p);
            assert!((6.0..=14.0).contains(&room), "{env:?} {p:?}: {room}");
        }
        let metal = turned_loss(EnvironmentKind::MetalVehicle, p);
        assert!((5.0..=11.0).contains(&metal), "metal {p:?}: {metal}");
        let hall = turned_loss(EnvironmentKind::IndoorHighCeiling, p);
        let room = turned_loss(EnvironmentKind::IndoorMediumCeiling, p);
        assert!(room <= hall && hall <= outdoor, "hall {p:?}: {hall}");
    }
    // The central values for a phone fully behind the torso.
    let hand = |env| turned_loss(env, Placement::Hand);
    assert!((18.0..=20.5).contains(&hand(EnvironmentKind::Outdoor)));
    assert!((8.0..=10.0).contains(&hand(EnvironmentKind::IndoorMediumCeiling)));
    assert!((5.0..=7.0).contains(&hand(EnvironmentKind::MetalVehicle)));
}

/// Calibration residual after the table.
///
/// Source (§2.2, §4.3): EPFL/ETH anechoic runs, phones 1 m apart, after
/// Google's per-model calibration: 42–58 dB over eight ordered pairs of
/// iPhones, Pixels and Samsungs (16 dB; the expected range of eight draws
/// is ≈ 2.8 σ, so σ per pair ≈ 5–6 dB, ≈ 3.5–4 dB per gain). Band: over
/// random pairs of the default population, the calibrated RSSI of a clear
/// 1 m link (no shadowing, no fading) has a 10–90 % range of 9–20 dB, and
/// iPhone ↔ Android pairs are at least as spread as that.
#[test]
fn calibration_residuals_spread_like_the_anechoic_pairs() {
    let world = Scenario::from_toml_str(
        "name = \"devices\"\nseed = 5\n[[groups]]\nname = \"g\"\nkind = \"office\"\npeople = 400\n",
    )
    .unwrap()
    .build()
    .unwrap();
    let pairs = clear_1m_pairs(&world);
    let mut all: Vec<f64> = pairs.iter().map(|(v, _)| *v).collect();
    let mut mixed: Vec<f64> = pairs.iter().filter(|(_, m)| *m).map(|(v, _)| *v).collect();
    let spread = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        quantile_sorted(v, 0.9) - quantile_sorted(v, 0.1)
    };
    let (all_spread, mixed_spread) = (spread(&mut all), spread(&mut mixed));
    assert!(mixed.len() >= 30, "{} mixed pairs", mixed.len());
    assert!(
        (9.0..=20.0).contains(&all_spread),
        "all pairs: {all_spread}"
    );
    assert!(
        (9.0..=20.0).contains(&mixed_spread),
        "iPhone ↔ Android: {mixed_spread}"
    );
    // Centred on the anchor: the residuals are unbiased.
    let median = quantile_sorted(&all, 0.5);
    assert!((median - DEFAULT_ANCHOR_DB).abs() <= 2.0, "{median}");
}

/// The anchor consistent with the ROBERT-scale field series.
///
/// Source (§2.3, §6.3): robert-server's scoring vectors of 20 May 2020
/// (field-test days; distances unknown): median −70 dB, IQR −74 … −64.
/// ble-measurements.md §4.4 expects them 10–20 dB below the model's
/// realistic medians at the −35 anchor, i.e. an anchor of roughly −45 to
/// −55. Bands: the fitted anchor in [−58, −42]; at that anchor the FAQ-like
/// mix has quartiles within 4 dB of the series' (−74, −64).
#[test]
fn field_series_anchor_is_consistent_with_the_robert_vectors() {
    let fit = field_series_anchor(&FieldMix::faq_like(), FIELD_SERIES_MEDIAN_DB).unwrap();
    assert!(fit.samples > 10_000, "{fit:?}");
    assert!(
        (fit.median_db - FIELD_SERIES_MEDIAN_DB).abs() <= 0.5,
        "{fit:?}"
    );
    assert!((-58.0..=-42.0).contains(&fit.anchor_db), "{fit:?}");
    let (q1, q3) = fit.quartiles_db;
    assert!((q1 - FIELD_SERIES_IQR_DB.0).abs() <= 4.0, "{fit:?}");
    assert!((q3 - FIELD_SERIES_IQR_DB.1).abs() <= 4.0, "{fit:?}");
}

#[test]
fn surveys_are_seeded_and_shift_with_the_anchor() {
    let spec = SurveySpec {
        pairs: 10,
        minutes: 3.0,
        ..SurveySpec::realistic(EnvironmentKind::IndoorMediumCeiling, 1.0, 3)
    };
    let a = spec.run().unwrap();
    assert!(!a.is_empty());
    assert_eq!(a, spec.run().unwrap());
    let lower = SurveySpec {
        anchor_db: -52.0,
        ..spec.clone()
    }
    .run()
    .unwrap();
    assert_eq!(lower, a.shifted(-17));
    assert_ne!(
        a,
        SurveySpec { seed: 4, ..spec }.run().unwrap(),
        "another seed, other draws"
    );
    // Pooling keeps the pairs of different surveys apart.
    let pooled = Survey::pooled([&a, &a]);
    assert_eq!(pooled.len(), 2 * a.len());
    assert_eq!(pooled.pair_medians(1).len(), 2 * a.pair_medians(1).len());
    assert!(quantile_sorted(&[], 0.5).is_nan());
    assert_eq!(quantile_sorted(&[1.0, 3.0], 0.5), 2.0);
    assert!(grouped_quantile_sorted(&[], 0.5).is_nan());
    // Four values in the bin of −60: the median is the middle of the bin.
    assert_eq!(grouped_quantile_sorted(&[-60, -60, -60, -60], 0.5), -60.0);
    // One below, three at −60: the median is a third of the way into the bin.
    let m = grouped_quantile_sorted(&[-70, -60, -60, -60], 0.5);
    assert!((m - (-60.5 + 1.0 / 3.0)).abs() < 1e-12, "{m}");
    assert_eq!(grouped_quantile_sorted(&[-70, -60], 0.0), -70.5);
    assert_eq!(grouped_quantile_sorted(&[-70, -60], 1.0), -59.5);
}

/// The ablation switches (`[radio] ablate`) move the received median the
/// way the terms they remove do: zero-mean terms (shadowing, device
/// residuals) leave it where it was, the losses (bodies, placements) raise
/// it by about their mean. Realistic carriage, 1 m, a furnished room.
#[test]
fn ablations_move_the_median_only_by_what_they_remove() {
    use crate::channel::{Ablation, NoiseTerm};
    let spec = SurveySpec {
        pairs: 60,
        ..SurveySpec::realistic(EnvironmentKind::IndoorMediumCeiling, 1.0, 13)
    };
    let median = |ablate: Ablation| {
        let mut s = spec.scenario().unwrap();
        s.radio.ablate = ablate;
        Survey::record(&s.build().unwrap()).unwrap().median()
    };
    let full = median(Ablation::NONE);
    let off = |t: NoiseTerm| median(Ablation::NONE.with(t)) - full;
    for t in [NoiseTerm::Shadowing, NoiseTerm::Device, NoiseTerm::Pair] {
        let d = off(t);
        assert!(d.abs() <= 1.5, "{t:?}: median moved {d} dB");
    }
    // Placement losses average about 2 dB per phone in this mix.
    let d = off(NoiseTerm::Placement);
    assert!((2.0..=6.0).contains(&d), "placement: {d}");
    // Bodies with random headings cost about 10 dB in a room (radio-model.md).
    let d = off(NoiseTerm::Body);
    assert!((5.0..=12.0).contains(&d), "body: {d}");
    // Everything off: the clear formula, −35 − 0 dB at 1 m (heights add a little).
    let all = median(Ablation::all());
    assert!((-38.0..=-34.0).contains(&all), "all off: {all}");
}
