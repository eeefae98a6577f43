//! Criterion benchmarks of the radio's hot paths: one pair step, scan-record
//! classification, scenario expansion and exact ground truth.
#![allow(clippy::unwrap_used, reason = "benchmark setup on fixed, valid inputs")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use robert_core::hello::Hello;
use robert_radio::calibration::Gains;
use robert_radio::channel::{
    Antenna, Channel, EnvironmentKind, HardwareReference, Placement, RadioHardware,
};
use robert_radio::geometry::Vec2;
use robert_radio::link::{
    AppEra, Device, End, LinkModel, LinkTiming, PairLink, Platform, StepContext,
};
use robert_radio::scenario::Scenario;
use robert_radio::wire::{AndroidAdvert, BleIds, ScanClass};

const OFFICE: &str = include_str!("../examples/scenarios/office.toml");
const WALKERS: &str = include_str!("../examples/scenarios/walkers.toml");

fn device(platform: Platform, phase: f64) -> Device {
    let g = Gains::new(-30, -5);
    Device {
        platform,
        hardware: RadioHardware::from_true_gains(g, &HardwareReference::STANDARD),
        app_gains: g,
        scan_phase: phase,
        report_phase: phase,
    }
}

fn radio(c: &mut Criterion) {
    let model = LinkModel::new(
        Channel::new(EnvironmentKind::IndoorMediumCeiling.preset(), -100.0),
        LinkTiming::for_era(AppEra::Stopcovid2020),
    );
    let (da, db, di) = (
        device(Platform::ANDROID, 0.1),
        device(Platform::ANDROID, 0.6),
        device(Platform::IOS, 0.3),
    );
    let antenna = |x: f64, heading: f64| Antenna {
        position: Vec2::new(x, 0.0),
        heading,
        placement: Placement::Hand,
    };
    let a = End {
        id: 1,
        device: &da,
        antenna: antenna(0.0, 0.0),
        foreground: true,
    };
    let b = End {
        id: 2,
        device: &db,
        antenna: antenna(1.5, 3.1),
        foreground: true,
    };
    let i = End {
        id: 3,
        device: &di,
        antenna: antenna(1.5, 3.1),
        foreground: false,
    };
    let far = End {
        id: 4,
        device: &db,
        antenna: antenna(40.0, 3.1),
        foreground: true,
    };
    for (name, other) in [
        ("pair_step_2s_android_android", &b),
        ("pair_step_2s_android_bg_iphone", &i),
        ("pair_step_2s_out_of_reach", &far),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut link = PairLink::default();
        let mut out = Vec::with_capacity(64);
        let mut t = 0.0;
        c.bench_function(name, |bench| {
            bench.iter(|| {
                out.clear();
                model.step(
                    &mut link,
                    &a,
                    other,
                    t,
                    2.0,
                    &StepContext::default(),
                    &mut rng,
                    &mut out,
                );
                t += 2.0;
                black_box(out.len())
            })
        });
    }

    let advert = AndroidAdvert {
        hello: Hello::from_bytes(&[9; 16]).unwrap(),
        version: 1,
        tx_gain: -30,
    }
    .encode(&BleIds::STOPCOVID);
    c.bench_function("classify_android_advert", |bench| {
        bench.iter(|| ScanClass::classify(black_box(&advert), &BleIds::STOPCOVID).unwrap())
    });

    let office = Scenario::from_toml_str(OFFICE).unwrap();
    c.bench_function("build_office_week", |bench| {
        bench.iter(|| office.build().unwrap())
    });
    let walkers = Scenario::from_toml_str(WALKERS).unwrap().build().unwrap();
    c.bench_function("ground_truth_200_walkers", |bench| {
        bench.iter(|| walkers.ground_truth().exposures().count())
    });
}

criterion_group!(benches, radio);
criterion_main!(benches);
