use super::*;
use crate::calibration::Gains;
use crate::channel::{
    Channel, DEFAULT_SENSITIVITY_DBM, EnvironmentKind, HardwareReference, Placement,
};
use crate::geometry::Vec2;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn device(platform: Platform, gains: Gains, phase: f64) -> Device {
    Device {
        platform,
        hardware: RadioHardware::from_true_gains(gains, &HardwareReference::STANDARD),
        app_gains: gains,
        scan_phase: phase,
        report_phase: (phase * 7.3).fract(),
    }
}

fn android(phase: f64) -> Device {
    device(Platform::ANDROID, Gains::new(-30, -5), phase)
}
fn noadv(phase: f64) -> Device {
    device(Platform::ANDROID_NO_ADVERTISER, Gains::new(-25, 0), phase)
}
fn iphone(phase: f64) -> Device {
    device(Platform::IOS, Gains::new(-10, -5), phase)
}

fn end(id: u32, device: &Device, x: f64, facing_x: f64, foreground: bool) -> End<'_> {
    let heading = if facing_x >= x {
        0.0
    } else {
        std::f64::consts::PI
    };
    End {
        id,
        device,
        antenna: Antenna {
            position: Vec2::new(x, 0.0),
            heading,
            placement: Placement::Hand,
        },
        foreground,
    }
}

fn model(kind: EnvironmentKind, era: AppEra) -> LinkModel {
    LinkModel::new(
        Channel::new(kind.preset(), DEFAULT_SENSITIVITY_DBM),
        LinkTiming::for_era(era),
    )
}

/// Runs `secs` seconds in steps of `dt` and returns all receptions.
fn run(m: &LinkModel, a: &End<'_>, b: &End<'_>, secs: f64, dt: f64, seed: u64) -> Vec<Reception> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut link = PairLink::default();
    let mut out = Vec::new();
    let mut t = 0.0;
    while t < secs {
        m.step(
            &mut link,
            a,
            b,
            t,
            dt,
            &StepContext::default(),
            &mut rng,
            &mut out,
        );
        t += dt;
    }
    out
}

#[test]
fn android_pair_rate_matches_the_scan_schedule() {
    let m = model(EnvironmentKind::Outdoor, AppEra::Stopcovid2020);
    let (da, db) = (android(0.1), android(0.6));
    let a = end(1, &da, 0.0, 1.0, true);
    let b = end(2, &db, 1.0, 0.0, true);
    let out = run(&m, &a, &b, 600.0, 1.0, 1);
    let ab = out.iter().filter(|r| r.sender == 1).count() as f64 / 10.0;
    let ba = out.iter().filter(|r| r.sender == 2).count() as f64 / 10.0;
    let ideal = m.catches_per_minute_ideal(&a, &b);
    // Balanced scan (1024/4096 ms) with 1 s batches: each 1.024 s window
    // straddles two batches, so about 1.9 reports per 4.096 s ≈ 28 / min.
    assert!((24.0..32.0).contains(&ideal), "{ideal}");
    for rate in [ab, ba] {
        assert!((rate - ideal).abs() < 0.15 * ideal, "{rate} vs {ideal}");
    }
    assert!(
        out.iter()
            .all(|r| r.via == Via::Advert && r.raw_rssi >= -100)
    );
    // Calibrated values sit around −35 at 1 m (shadowing σ 4 dB, Rician fading).
    let mean = out
        .iter()
        .map(|r| f64::from(r.calibrated_rssi(Gains::new(-30, -5))))
        .sum::<f64>()
        / out.len() as f64;
    assert!((-45.0..-28.0).contains(&mean), "{mean}");
    // Time order and bounds.
    assert!(
        out.windows(2)
            .all(|w| w[0].t <= w[1].t || w[0].t.floor() != w[1].t.floor())
    );
    assert!(out.iter().all(|r| (0.0..600.0).contains(&r.t)));
}

#[test]
fn report_delay_of_2022_lowers_the_rate() {
    let m20 = model(EnvironmentKind::Outdoor, AppEra::Stopcovid2020);
    let m22 = model(EnvironmentKind::Outdoor, AppEra::Tac2022);
    let (da, db) = (android(0.3), android(0.8));
    let a = end(1, &da, 0.0, 1.0, true);
    let b = end(2, &db, 1.0, 0.0, true);
    let r20 = m20.catches_per_minute_ideal(&a, &b);
    let r22 = m22.catches_per_minute_ideal(&a, &b);
    assert!(r22 < r20);
    // With 5 s batches: one report per batch (each batch overlaps a scan window).
    assert!((r22 - 12.0).abs() < 0.5, "{r22}");
}

#[test]
fn background_iphones_miss_each_other() {
    let m = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Stopcovid2020);
    let (d1, d2) = (iphone(0.2), iphone(0.7));
    let a = end(1, &d1, 0.0, 1.0, false);
    let b = end(2, &d2, 1.0, 0.0, false);
    assert!(run(&m, &a, &b, 600.0, 1.0, 2).is_empty());
}

#[test]
fn one_foreground_iphone_is_enough_and_reads_are_cached() {
    let m = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Stopcovid2020);
    let (d1, d2) = (iphone(0.2), iphone(0.7));
    let a = end(1, &d1, 0.0, 1.0, true);
    let b = end(2, &d2, 1.0, 0.0, false);
    let out = run(&m, &a, &b, 600.0, 1.0, 3);
    // Foreground receiver sees the background sender (overflow area) and vice versa.
    let to_fg: Vec<_> = out.iter().filter(|r| r.receiver == 1).collect();
    let to_bg: Vec<_> = out.iter().filter(|r| r.receiver == 2).collect();
    assert!(to_fg.len() > 300, "{}", to_fg.len());
    assert!(!to_bg.is_empty() && to_bg.len() <= 61, "{}", to_bg.len());
    for dir in [&to_fg, &to_bg] {
        let reads: Vec<_> = dir.iter().filter(|r| r.via == Via::GattRead).collect();
        // 1.x cache: 30 min, so one read in 10 minutes.
        assert_eq!(reads.len(), 1);
        let read_at = reads[0].t;
        assert!(dir.iter().all(|r| match r.via {
            Via::GattRead => true,
            Via::CachedRead { read_at: at } => at == read_at && r.t >= at,
            _ => false,
        }));
    }
}

#[test]
fn tac_cache_expires_after_three_minutes() {
    let m = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Tac2022);
    let (d1, d2) = (iphone(0.2), iphone(0.7));
    let a = end(1, &d1, 0.0, 1.0, true);
    let b = end(2, &d2, 1.0, 0.0, true);
    let out = run(&m, &a, &b, 600.0, 1.0, 4);
    let reads: Vec<f64> = out
        .iter()
        .filter(|r| r.receiver == 1 && r.via == Via::GattRead)
        .map(|r| r.t)
        .collect();
    assert!((3..=5).contains(&reads.len()), "{reads:?}");
    assert!(reads.windows(2).all(|w| w[1] - w[0] >= 180.0));
}

#[test]
fn background_iphone_writes_to_android_at_most_once_per_interval() {
    for (era, interval) in [(AppEra::Stopcovid2020, 10.0), (AppEra::Tac2022, 60.0)] {
        let m = model(EnvironmentKind::IndoorMediumCeiling, era);
        let (da, di) = (android(0.4), iphone(0.9));
        let a = end(1, &da, 0.0, 1.0, true);
        let i = end(2, &di, 1.0, 0.0, false);
        let out = run(&m, &a, &i, 900.0, 1.0, 5);
        let to_android: Vec<_> = out.iter().filter(|r| r.receiver == 1).collect();
        let to_iphone: Vec<_> = out.iter().filter(|r| r.receiver == 2).collect();
        assert!(
            to_android
                .iter()
                .all(|r| matches!(r.via, Via::IosWrite { .. }))
        );
        assert!(to_iphone.iter().all(|r| r.via == Via::Advert));
        assert!(
            to_android.windows(2).all(|w| w[1].t - w[0].t >= interval),
            "{era:?}"
        );
        // Writes keep coming: background iPhone scans every 10 s.
        let expected = 900.0 / interval.max(10.0);
        let n = to_android.len() as f64;
        assert!(
            n >= 0.5 * expected && n <= expected + 1.0,
            "{era:?}: {n} vs {expected}"
        );
        // The iPhone's TX gain byte is carried.
        assert!(to_android.iter().all(|r| r.sender_tx_gain == -10));
        // The Android scans the iPhone's overflow advert, so cached scans are used.
        assert!(to_android.iter().any(|r| matches!(
            r.via,
            Via::IosWrite {
                rssi_source: WriteRssiSource::CachedScan { .. }
            }
        )));
    }
}

#[test]
fn no_advertiser_android_exchanges() {
    let m = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Tac2022);
    let (dn, da, di, dn2) = (noadv(0.5), android(0.1), iphone(0.3), noadv(0.9));
    let n = end(1, &dn, 0.0, 1.0, true);
    let a = end(2, &da, 1.0, 0.0, true);
    let out = run(&m, &n, &a, 900.0, 1.0, 6);
    let writes: Vec<_> = out.iter().filter(|r| r.receiver == 2).collect();
    assert!(!writes.is_empty());
    assert!(
        writes
            .iter()
            .all(|r| matches!(r.via, Via::PartialRssiWrite { .. }))
    );
    assert!(writes.windows(2).all(|w| w[1].t - w[0].t >= 45.0));
    for w in &writes {
        let Via::PartialRssiWrite { partial_rssi } = w.via else {
            unreachable!()
        };
        // partial = raw − writer's rx gain (0); the Android finishes with its tx gain.
        assert_eq!(i32::from(partial_rssi), i32::from(w.raw_rssi));
        assert_eq!(w.calibrated_rssi(da.app_gains), i32::from(w.raw_rssi) + 30);
    }
    let adverts = out.iter().filter(|r| r.receiver == 1).count();
    // One report per 10 s cycle at most.
    assert!((60..=90).contains(&adverts), "{adverts}");

    // With an iPhone (TAC 4.x): the no-advertiser phone reads it and writes to it.
    let i = end(3, &di, 1.0, 0.0, false);
    let out = run(&m, &n, &i, 900.0, 1.0, 7);
    assert!(
        out.iter()
            .any(|r| r.receiver == 1 && r.via == Via::GattRead)
    );
    assert!(
        out.iter()
            .any(|r| r.receiver == 3 && matches!(r.via, Via::PartialRssiWrite { .. }))
    );
    // StopCovid 1.x iPhones do not accept writes.
    let m20 = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Stopcovid2020);
    let out = run(&m20, &n, &i, 900.0, 1.0, 7);
    assert!(out.iter().all(|r| r.receiver == 1));

    // Two phones without advertiser never meet.
    let n2 = end(4, &dn2, 1.0, 0.0, true);
    assert!(run(&m, &n, &n2, 900.0, 1.0, 8).is_empty());
}

#[test]
fn far_apart_nothing_is_received() {
    let m = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Stopcovid2020);
    let (da, db) = (android(0.1), android(0.6));
    let a = end(1, &da, 0.0, 300.0, true);
    let b = end(2, &db, 300.0, 0.0, true);
    assert!(run(&m, &a, &b, 300.0, 1.0, 9).is_empty());
}

#[test]
fn deterministic_and_order_independent() {
    let m = model(EnvironmentKind::MetalVehicle, AppEra::Tac2022);
    let (da, di) = (android(0.1), iphone(0.6));
    let a = end(1, &da, 0.0, 2.0, true);
    let b = end(2, &di, 2.0, 0.0, false);
    let x = run(&m, &a, &b, 300.0, 2.0, 10);
    let y = run(&m, &b, &a, 300.0, 2.0, 10);
    assert_eq!(x, y);
    assert!(!x.is_empty());
    let z = run(&m, &a, &b, 300.0, 2.0, 11);
    assert_ne!(x, z);
}

#[test]
fn step_length_does_not_change_the_rate_much() {
    let m = model(EnvironmentKind::IndoorHighCeiling, AppEra::Stopcovid2020);
    let (da, db) = (android(0.25), android(0.75));
    let a = end(1, &da, 0.0, 1.5, true);
    let b = end(2, &db, 1.5, 0.0, true);
    let fine = run(&m, &a, &b, 1200.0, 1.0, 12).len() as f64;
    let coarse = run(&m, &a, &b, 1200.0, 10.0, 12).len() as f64;
    assert!((fine - coarse).abs() < 0.1 * fine, "{fine} vs {coarse}");
}

#[test]
fn collisions_reduce_receptions() {
    // A marginal Android pair (16 m indoors, level ≈ −99 dBm before
    // shadowing): each advert counts, so collisions show.
    let m = model(EnvironmentKind::IndoorMediumCeiling, AppEra::Stopcovid2020);
    let (da, db) = (android(0.25), android(0.75));
    let a = end(1, &da, 0.0, 16.0, true);
    let b = end(2, &db, 16.0, 0.0, true);
    let run_ctx = |n: u32| {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut link = PairLink::default();
        let mut out = Vec::new();
        for k in 0..1200 {
            let ctx = StepContext {
                audible_advertisers: n,
            };
            m.step(
                &mut link,
                &a,
                &b,
                f64::from(k),
                1.0,
                &ctx,
                &mut rng,
                &mut out,
            );
        }
        out.iter().filter(|r| r.receiver == 2).count()
    };
    let quiet = run_ctx(0);
    let crowded = run_ctx(150);
    assert!(quiet > 50, "{quiet}");
    assert!(crowded < quiet * 9 / 10, "{crowded} vs {quiet}");
}

#[test]
fn window_overlap_cases() {
    let s = Schedule {
        window: 1.0,
        interval: 4.0,
        scan_offset: 0.5,
        report: 1.0,
        report_offset: 0.0,
    };
    assert_eq!(window_overlap(0.0, 1.0, &s), (0.5, Some((0.5, 1.0))));
    assert_eq!(window_overlap(1.0, 2.0, &s), (0.5, Some((1.0, 1.5))));
    assert_eq!(window_overlap(2.0, 4.0, &s), (0.0, None));
    let (t, last) = window_overlap(0.0, 9.0, &s);
    assert!((t - 2.5).abs() < 1e-12);
    assert_eq!(last, Some((8.5, 9.0)));
    let cont = Schedule {
        window: 1.0,
        interval: 1.0,
        ..s
    };
    assert_eq!(window_overlap(3.0, 4.0, &cont), (1.0, Some((3.0, 4.0))));
}

#[test]
fn payload_refresh_times() {
    // Epoch [900, 1800), service started at 1000.
    assert_eq!(advert_payload_built_at(1000.0, 900.0, 1000.0, 30.0), 1000.0);
    assert_eq!(advert_payload_built_at(1029.9, 900.0, 1000.0, 30.0), 1000.0);
    assert_eq!(advert_payload_built_at(1030.0, 900.0, 1000.0, 30.0), 1030.0);
    // Next epoch: refreshes aligned on its start.
    assert_eq!(
        advert_payload_built_at(1815.0, 1800.0, 1000.0, 30.0),
        1800.0
    );
    assert_eq!(
        advert_payload_built_at(1845.0, 1800.0, 1000.0, 30.0),
        1830.0
    );
    for t in [1000.0, 1234.5, 1799.99] {
        let b = advert_payload_built_at(t, 900.0, 1000.0, HELLO_REFRESH_S);
        assert!(b <= t && t - b < HELLO_REFRESH_S);
    }
}

#[test]
fn timing_presets_validate() {
    LinkTiming::for_era(AppEra::Stopcovid2020)
        .validate()
        .unwrap();
    LinkTiming::for_era(AppEra::Tac2022).validate().unwrap();
    let bad = LinkTiming {
        android_scan_window_s: 5.0,
        ..LinkTiming::default()
    };
    assert!(bad.validate().is_err());
    let bad = LinkTiming {
        android_report_delay_s: 0.0,
        ..LinkTiming::default()
    };
    assert!(bad.validate().is_err());
}
