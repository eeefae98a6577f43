use super::matrix::{MatrixCell, faq_test_matrix};
use super::*;
use crate::channel::{EnvironmentKind, Placement};
use crate::link::Platform;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

const MINIMAL: &str = r#"
name = "m"
[[groups]]
name = "g"
kind = "office"
people = 4
"#;

fn with_group(extra_top: &str, group: &str) -> String {
    format!("name = \"t\"\n{extra_top}\n[[groups]]\nname = \"g\"\n{group}\n")
}

fn err_field(text: &str) -> String {
    match Scenario::from_toml_str(text).and_then(|s| s.build().map(|_| ())) {
        Err(ScenarioError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn defaults() {
    let s = Scenario::from_toml_str(MINIMAL).unwrap();
    assert_eq!(s.seed, 1);
    assert_eq!(s.days, 1);
    assert_eq!(s.start_date, StartDate::default());
    assert_eq!(s.app_era, AppEra::Stopcovid2020);
    assert_eq!(s.truth, TruthSpec::default());
    assert_eq!(s.population, PopulationSpec::default());
    assert_eq!(s.radio, RadioSpec::default());
    assert_eq!(s.groups[0].density, Density::Low);
    assert_eq!(s.groups[0].arrival_jitter_minutes, 10.0);
    let w = s.build().unwrap();
    assert_eq!(w.population.people.len(), 4);
    assert_eq!(w.duration_s, 86_400.0);
    assert_eq!(w.truth_config.at_risk_s, 900.0);
    assert_eq!(w.ntp_at(0.0), w.start_date.midnight());
    assert_eq!(w.ntp_at(61.7).get(), w.start_date.midnight().get() + 61);
    // Office default window 09:00–17:30 UTC with offset 0.
    for p in &w.population.people {
        let segs = p.trajectory.segments();
        assert_eq!(segs.len(), 1);
        assert!(segs[0].t0 >= 9.0 * 3600.0 && segs[0].t1 <= 17.5 * 3600.0);
    }
}

#[test]
fn dates_and_times_in_both_forms() {
    let text = with_group(
        "start_date = 2021-03-01\ndays = 2",
        "kind = \"office\"\npeople = 2\nstart = 08:15:00\nend = \"16:45\"",
    );
    let s = Scenario::from_toml_str(&text).unwrap();
    assert_eq!(
        (
            s.start_date.0.year,
            s.start_date.0.month,
            s.start_date.0.day
        ),
        (2021, 3, 1)
    );
    assert_eq!(s.groups[0].start, Some(TimeOfDay::hm(8, 15)));
    assert_eq!(s.groups[0].end, Some(TimeOfDay::hm(16, 45)));
    assert_eq!(TimeOfDay::parse("24:00"), Ok(TimeOfDay(86_400)));
    assert_eq!(
        TimeOfDay::parse("07:05:09"),
        Ok(TimeOfDay(7 * 3600 + 5 * 60 + 9))
    );
    for bad in ["24:01", "7:00", "07:60", "aa:bb", "07", "07:00:00:00", ""] {
        assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
    }
    for bad in [
        "start_date = \"2021-02-30\"",
        "start_date = \"21-02-01\"",
        "start_date = 2021-02-01T10:00:00",
    ] {
        let text = with_group(bad, "kind = \"office\"\npeople = 2");
        assert!(
            matches!(Scenario::from_toml_str(&text), Err(ScenarioError::Toml(_))),
            "{bad}"
        );
    }
}

#[test]
fn shape_errors() {
    for text in [
        "name = \"x\"\n".to_owned(),
        with_group("", "kind = \"office\"\npeople = 2\ntypo = 1"),
        with_group("", "kind = \"spaceship\"\npeople = 2"),
        with_group("colour = \"blue\"", "kind = \"office\"\npeople = 2"),
        with_group(
            "",
            "kind = \"office\"\npeople = 2\nenvironment = \"underwater\"",
        ),
        with_group(
            "",
            "kind = \"office\"\npeople = 2\nplacement = { tentacle = 1.0 }",
        ),
        "not toml at all [".to_owned(),
    ] {
        assert!(
            matches!(Scenario::from_toml_str(&text), Err(ScenarioError::Toml(_))),
            "{text}"
        );
    }
}

#[test]
fn value_errors() {
    assert_eq!(
        err_field(&with_group("days = 0", "kind = \"office\"\npeople = 2")),
        "days"
    );
    assert_eq!(
        err_field(&with_group(
            "[population]\nandroid_share = 1.5",
            "kind = \"office\"\npeople = 2"
        )),
        "population.android_share"
    );
    assert!(err_field(&with_group("", "kind = \"office\"")).ends_with(".people"));
    assert!(
        err_field(&with_group("", "kind = \"office\"\nmembers = \"nobody\"")).ends_with(".members")
    );
    assert!(
        err_field(&with_group(
            "",
            "kind = \"office\"\npeople = 2\nstart = \"18:00\"\nend = \"09:00\""
        ))
        .starts_with("groups[0]")
    );
    assert!(
        err_field(&with_group("", "kind = \"office\"\npeople = 2\ndays = [3]")).ends_with(".days")
    );
    assert!(
        err_field(&with_group(
            "",
            "kind = \"walkers\"\npeople = 2\ncrossings = 500"
        ))
        .starts_with("groups[0]")
    );
    assert!(
        err_field(&with_group("", "kind = \"office\"\npeople = 2\nenvironment = { preset = \"outdoor\", breakpoint_m = 0.1 }"))
            .ends_with(".environment")
    );
    let dup = "name = \"t\"\n[[groups]]\nname = \"g\"\nkind = \"office\"\npeople = 1\n\
               [[groups]]\nname = \"g\"\nkind = \"office\"\npeople = 1\n";
    assert!(err_field(dup).starts_with("groups[1]"));
    let pos = with_group(
        "",
        "kind = \"office\"\npeople = 2\n[[positives]]\ngroup = \"g\"\nmember = 2\nday = 0",
    );
    assert_eq!(err_field(&pos), "positives[0].member");
    let pos = with_group(
        "",
        "kind = \"office\"\npeople = 2\n[[positives]]\ngroup = \"h\"\nday = 0",
    );
    assert_eq!(err_field(&pos), "positives[0].group");
    let models = with_group(
        "[population]\nandroid_share = 0.5\n[[population.models]]\nos = \"android\"\nmodel = \"X\"\nweight = 1.0",
        "kind = \"office\"\npeople = 2",
    );
    assert_eq!(err_field(&models), "population.models");
}

#[test]
fn build_is_deterministic_and_seed_sensitive() {
    let text = with_group("seed = 5\ndays = 2", "kind = \"walkers\"\npeople = 20");
    let a = Scenario::from_toml_str(&text).unwrap().build().unwrap();
    let b = Scenario::from_toml_str(&text).unwrap().build().unwrap();
    assert_eq!(a.population, b.population);
    let c = Scenario::from_toml_str(&text.replace("seed = 5", "seed = 6"))
        .unwrap()
        .build()
        .unwrap();
    assert_ne!(a.population, c.population);
}

#[test]
fn os_and_model_mix() {
    let text = with_group(
        "[population]\nandroid_no_advertiser_share = 0.1",
        "kind = \"walkers\"\npeople = 2000\ncrossings = 1",
    );
    let w = Scenario::from_toml_str(&text).unwrap().build().unwrap();
    let people = &w.population.people;
    let android = people
        .iter()
        .filter(|p| matches!(p.device.platform, Platform::Android { .. }))
        .count() as f64;
    assert!((android / 2000.0 - 0.78).abs() < 0.03, "{android}");
    let noadv = people
        .iter()
        .filter(|p| p.device.platform == Platform::ANDROID_NO_ADVERTISER)
        .count() as f64;
    assert!((noadv / android - 0.1).abs() < 0.03, "{noadv}");
    for p in people {
        let os = p.device.platform.os();
        // The app's gains are the table lookup for the model.
        assert_eq!(
            p.device.app_gains,
            w.calibration
                .lookup(os, &p.model, crate::calibration::Idiom::Phone)
                .gains
        );
        assert!(
            DEFAULT_MODELS
                .iter()
                .any(|(o, m, _)| *o == os && *m == p.model)
        );
    }
    assert!(people.iter().any(|p| p.model == "unlisted-android"));
    assert!(people.iter().any(|p| p.model == "iPhone13,2"));
}

#[test]
fn explicit_models_and_true_gains() {
    let text = with_group(
        "[population]\nandroid_share = 1.0\ndevice_offset_sigma_db = 0.0\n\
         [[population.models]]\nos = \"android\"\nmodel = \"SM-G973F\"\nweight = 1.0\ntrue_tx_gain_db = -20.0",
        "kind = \"office\"\npeople = 3",
    );
    let w = Scenario::from_toml_str(&text).unwrap().build().unwrap();
    for p in &w.population.people {
        assert_eq!(p.model, "SM-G973F");
        assert_eq!(p.device.app_gains, crate::calibration::Gains::new(-25, 0));
        // True tx −20 = 10 dB above DEFAULT (−30): −7 + 10 dBm.
        assert!((p.device.hardware.tx_power_dbm - 3.0).abs() < 1e-9);
        // True rx = table rx (0) = 5 dB above DEFAULT (−5).
        assert!((p.device.hardware.rx_offset_db - (-22.8 + 5.0)).abs() < 1e-9);
    }
}

#[test]
fn later_groups_cut_earlier_stays() {
    let text = r#"
name = "t"
utc_offset_hours = 2.0
[population]
ios_foreground_share = 1.0
[[groups]]
name = "office"
kind = "office"
people = 8
arrival_jitter_minutes = 0.0
start = "09:00"
end = "17:00"
[[groups]]
name = "lunch"
kind = "restaurant"
members = "office"
environment = { preset = "indoor-low-ceiling", shadowing_sigma_db = 8.0 }
start = "12:00"
end = "13:00"
arrival_jitter_minutes = 0.0
"#;
    let w = Scenario::from_toml_str(text).unwrap().build().unwrap();
    assert_eq!(w.members("lunch"), w.members("office"));
    assert_eq!(w.population.places.len(), 2);
    assert_eq!(w.population.places[1].environment.shadowing_sigma_db, 8.0);
    assert_eq!(w.links.len(), 2);
    for p in &w.population.people {
        let segs = p.trajectory.segments();
        assert_eq!(segs.len(), 3, "office, lunch, office");
        // Local 12:30 = 10:30 UTC: at the restaurant.
        assert_eq!(p.trajectory.pose_at(10.5 * 3600.0).unwrap().place, 1);
        assert_eq!(p.trajectory.pose_at(9.0 * 3600.0).unwrap().place, 0);
        assert!((segs[0].t0 - 7.0 * 3600.0).abs() < 1e-9);
        assert!((segs[2].t1 - 15.0 * 3600.0).abs() < 1e-9);
        let ios = p.device.platform == Platform::Ios;
        assert!(segs.iter().all(|s| s.foreground == ios));
    }
}

#[test]
fn walkers_commute_and_queue_shapes() {
    let text = r#"
name = "t"
days = 2
[[groups]]
name = "street"
kind = "walkers"
people = 30
density = "high"
length_m = 50.0
[[groups]]
name = "bus"
kind = "commute"
people = 50
vehicle = "bus"
passengers_per_car = 20
density = "high"
trip_minutes = 20.0
departures = ["07:00"]
[[groups]]
name = "shop"
kind = "queue"
people = 25
density = "high"
start = "19:00"
end = "20:00"
placement = { hand = 1.0 }
"#;
    let w = Scenario::from_toml_str(text).unwrap().build().unwrap();
    let street = w.members("street").unwrap();
    for &id in street {
        let p = w.population.person(id).unwrap();
        assert_eq!(p.trajectory.segments().len(), 8, "4 crossings × 2 days");
        for s in p.trajectory.segments() {
            let v = s.velocity().norm();
            assert!((0.8 - 1e-9..=2.0 + 1e-9).contains(&v), "{v}");
            assert!((0.0..=3.0).contains(&s.from.y) && s.from.y == s.to.y);
            assert!((s.to.x - s.from.x).abs() == 50.0);
        }
    }
    // Bus: 50 riders / 20 per bus = 3 cars, rides within the 20-minute trip.
    let cars: Vec<_> = w
        .population
        .places
        .iter()
        .filter(|p| p.name.starts_with("bus/"))
        .collect();
    assert_eq!(cars.len(), 3);
    for &id in w.members("bus").unwrap() {
        for s in w.population.person(id).unwrap().trajectory.segments() {
            let t0 = s.t0 % 86_400.0;
            assert!(t0 >= 7.0 * 3600.0 && t0 + s.duration() <= 7.0 * 3600.0 + 1200.0 + 1e-6);
            assert!(s.duration() >= 0.4 * 1200.0 - 1e-6);
            assert!((0.3..=11.7).contains(&s.from.x) && (0.3..=2.2).contains(&s.from.y));
        }
    }
    // Queue: nobody shares a spot, everybody faces the till, placement forced.
    let shop = w.members("shop").unwrap();
    let mut t = 19.0 * 3600.0;
    let mut max_len = 0;
    while t < 21.0 * 3600.0 {
        let poses: Vec<_> = shop
            .iter()
            .filter_map(|&id| w.population.person(id).unwrap().trajectory.pose_at(t))
            .collect();
        max_len = max_len.max(poses.len());
        for (i, a) in poses.iter().enumerate() {
            assert_eq!(a.heading, std::f64::consts::PI);
            assert_eq!(a.placement, Placement::Hand);
            for b in &poses[i + 1..] {
                assert!(a.position.distance(b.position) >= 0.8 - 0.2 - 1e-9);
            }
        }
        t += 17.0;
    }
    assert!(max_len >= 3, "{max_len}");
    // Ground truth sees the queue and the bus; the truth is symmetric.
    let truth = w.ground_truth();
    assert!(
        truth
            .exposures()
            .any(|(a, b, _, _)| shop.contains(&a) && shop.contains(&b))
    );
    for (a, b, d, s) in truth.exposures() {
        assert_eq!(truth.exposure(b, a, d), s);
    }
}

#[test]
fn positives_resolve() {
    let text = r#"
name = "t"
days = 3
utc_offset_hours = 2.0
[[groups]]
name = "g"
kind = "office"
people = 5
[[positives]]
group = "g"
member = 4
day = 1
time = "20:00"
onset_days_before = 2
[[positives]]
group = "g"
day = 2
"#;
    let w = Scenario::from_toml_str(text).unwrap().build().unwrap();
    assert_eq!(w.positives.len(), 2);
    assert_eq!(w.positives[0].person, w.members("g").unwrap()[4]);
    assert_eq!(w.positives[0].declared_at, 86_400.0 + 18.0 * 3600.0);
    assert_eq!(
        w.positives[0].symptom_onset_at,
        Some(86_400.0 + 18.0 * 3600.0 - 2.0 * 86_400.0)
    );
    assert_eq!(w.positives[1].declared_at, 2.0 * 86_400.0 + 16.0 * 3600.0);
    assert!(w.positives[1].symptom_onset_at.is_none());
}

#[test]
fn faq_matrix_builds_and_density_matters() {
    let cells = faq_test_matrix().unwrap();
    assert_eq!(cells.len(), 20);
    let mut names: Vec<String> = cells.iter().map(|(c, _)| c.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20);
    let mut contacts = std::collections::HashMap::new();
    for (cell, s) in &cells {
        assert_eq!(s.name, cell.name());
        let w = s.build().unwrap();
        assert_eq!(w.population.people.len(), 16);
        for p in &w.population.places {
            assert_eq!(p.environment.kind, cell.site);
        }
        let truth = w.ground_truth();
        contacts.insert(*cell, truth.exposures().count());
    }
    // Static office cells: 1 m spacing puts neighbours within 1 m, 2 m does not.
    for site in [EnvironmentKind::Outdoor, EnvironmentKind::IndoorLowCeiling] {
        let high = contacts[&MatrixCell {
            density: Density::High,
            site,
            moving: false,
        }];
        let low = contacts[&MatrixCell {
            density: Density::Low,
            site,
            moving: false,
        }];
        assert!(high > low, "{site:?}: {high} vs {low}");
    }
}

#[test]
fn radio_run_on_a_matrix_cell() {
    let cell = MatrixCell {
        density: Density::High,
        site: EnvironmentKind::IndoorMediumCeiling,
        moving: false,
    };
    let w = Scenario::from_toml_str(&cell.to_toml(12, 3))
        .unwrap()
        .build()
        .unwrap();
    let ranges = w.pair_ranges();
    assert!(ranges.iter().all(|r| *r > 1.0 && *r <= w.max_pair_range_m));
    let run = |seed: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut got = Vec::new();
        let stats = w.run_radio(2.0, &mut rng, |r| got.push(*r)).unwrap();
        (stats, got)
    };
    let (stats, got) = run(1);
    assert_eq!(stats.max_present, 12);
    assert!(stats.receptions > 1000, "{stats:?}");
    assert_eq!(stats.receptions as usize, got.len());
    // Time-ordered within each step, all inside the 30-minute window.
    let (tmin, tmax) = got
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), r| (a.min(r.t), b.max(r.t)));
    assert!(
        tmin >= 10.0 * 3600.0 && tmax < 10.5 * 3600.0 + 2.0,
        "{tmin} {tmax}"
    );
    // Everybody hears somebody unless both are background iPhones.
    let (stats2, got2) = run(1);
    assert_eq!(stats, stats2);
    assert_eq!(got, got2);
    let (_, got3) = run(2);
    assert_ne!(got, got3);
    // At-risk pairs (neighbours within 1 m for ≥ 15 min) exchanged many HELLOs,
    // unless both are background iPhones.
    let truth = w.ground_truth();
    let mut checked = 0;
    for (a, b, _) in truth.at_risk() {
        let pa = w.population.person(a).unwrap();
        let pb = w.population.person(b).unwrap();
        let both_bg_ios = [pa, pb]
            .iter()
            .all(|p| p.device.platform == Platform::Ios && !p.trajectory.segments()[0].foreground);
        let n = got
            .iter()
            .filter(|r| (r.sender, r.receiver) == (a, b) || (r.sender, r.receiver) == (b, a))
            .count();
        if both_bg_ios {
            assert_eq!(n, 0);
        } else {
            assert!(n >= 20, "{a}-{b}: {n}");
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn instances_replicate_groups_and_members_follow() {
    let text = r#"
name = "t"
[truth]
distance_m = 2.0
[[groups]]
name = "office"
kind = "office"
people = 4
instances = 3
density = "high"
[[groups]]
name = "lunch"
kind = "restaurant"
members = "office"
table_size = 2
[[positives]]
group = "office"
member = 11
day = 0
"#;
    let w = Scenario::from_toml_str(text).unwrap().build().unwrap();
    assert_eq!(w.population.people.len(), 12);
    assert_eq!(w.members("office").unwrap().len(), 12);
    assert_eq!(w.members("lunch"), w.members("office"));
    let names: Vec<&str> = w
        .population
        .places
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "office#0", "office#1", "office#2", "lunch#0", "lunch#1", "lunch#2"
        ]
    );
    // Each instance's people only ever meet each other.
    let instance = |id: u32| id / 4;
    for p in &w.population.people {
        for s in p.trajectory.segments() {
            assert_eq!(s.place % 3, instance(p.id));
        }
    }
    let truth = w.ground_truth();
    assert!(truth.exposures().count() > 0);
    assert!(
        truth
            .exposures()
            .all(|(a, b, _, _)| instance(a) == instance(b))
    );
    assert_eq!(w.positives[0].person, 11);
    // `members` cannot be combined with `instances`.
    let bad = text.replace(
        "members = \"office\"",
        "members = \"office\"\ninstances = 3",
    );
    assert!(matches!(
        Scenario::from_toml_str(&bad).unwrap().build(),
        Err(ScenarioError::Invalid { .. })
    ));
    let bad = text.replace("instances = 3", "instances = 0");
    assert!(matches!(
        Scenario::from_toml_str(&bad).unwrap().build(),
        Err(ScenarioError::Invalid { .. })
    ));
}

/// Runs the radio of `text` with `[radio] anchor_db = anchor` appended.
fn run_with_anchor(text: &str, anchor: f64) -> (World, Vec<crate::link::Reception>) {
    let w = Scenario::from_toml_str(
        &text.replace("[radio]", &format!("[radio]\nanchor_db = {anchor:?}")),
    )
    .unwrap()
    .build()
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed);
    let mut got = Vec::new();
    w.run_radio(2.0, &mut rng, |r| got.push(*r)).unwrap();
    (w, got)
}

/// The anchor changes calibrated RSSI only: two runs differing only in
/// `anchor_db` give the same receptions (times, peers, raw RSSI, TX gain on
/// air, mechanism), and every calibrated RSSI moves by exactly the anchor
/// difference. The one exception is the partial RSSI of a no-advertiser
/// write (`raw − rxGain(writer)`, byte 18 of a 19-byte write), an `i8`
/// that saturates at −128: where the shifted value leaves that range it is
/// clamped, and so is the calibrated RSSI finished from it; that cannot
/// happen for anchors ≥ −63 dB (floor −100 dBm, RX gains ≤ 0).
#[test]
fn anchor_shifts_calibrated_rssi_and_nothing_else() {
    // Androids without advertiser and TAC 2022 timing (iPhones accept
    // writes), so that every reception mechanism occurs; a metro car and an
    // office so that levels span the range down to the floor.
    let text = "name = \"anchor\"\nseed = 4\napp_era = \"tac-2022\"\n[radio]\n\
                [population]\nandroid_no_advertiser_share = 0.3\nios_foreground_share = 0.5\n\
                [[groups]]\nname = \"car\"\nkind = \"commute\"\npeople = 30\n\
                departures = [\"08:00\"]\ntrip_minutes = 20.0\n\
                [[groups]]\nname = \"desks\"\nkind = \"office\"\npeople = 12\nspacing_m = 4.0\n\
                start = \"09:00\"\nend = \"09:20\"\narrival_jitter_minutes = 0.0\n";
    let (w0, base) = run_with_anchor(text, -35.0);
    assert!(base.len() > 5_000, "{}", base.len());
    let kinds = |v: &[crate::link::Reception]| {
        let mut k: Vec<u8> = v
            .iter()
            .map(|r| match r.via {
                crate::link::Via::Advert => 0,
                crate::link::Via::IosWrite { .. } => 1,
                crate::link::Via::PartialRssiWrite { .. } => 2,
                crate::link::Via::GattRead => 3,
                crate::link::Via::CachedRead { .. } => 4,
            })
            .collect();
        k.sort_unstable();
        k.dedup();
        k
    };
    assert_eq!(kinds(&base), vec![0, 1, 2, 3, 4], "every mechanism occurs");
    for anchor in [-63.0, -50.0, -20.0, 0.0, -64.0, -100.0] {
        let mut clamped_seen = 0;
        let shift = anchor_shift_db(anchor);
        assert_eq!(f64::from(shift), anchor + 35.0);
        let (w, got) = run_with_anchor(text, anchor);
        assert_eq!(w.anchor_db, anchor);
        // Same people, same hardware; only the apps' RX gains move.
        for (a, b) in w0.population.people.iter().zip(&w.population.people) {
            assert_eq!(a.device.hardware, b.device.hardware);
            assert_eq!(a.device.app_gains.tx, b.device.app_gains.tx);
            assert_eq!(
                i32::from(b.device.app_gains.rx),
                i32::from(a.device.app_gains.rx) - shift
            );
            assert_eq!(a.trajectory, b.trajectory);
        }
        assert_eq!(got.len(), base.len(), "anchor {anchor}: same receptions");
        for (r0, r) in base.iter().zip(&got) {
            assert_eq!(
                (r0.t, r0.sender, r0.receiver, r0.raw_rssi, r0.sender_tx_gain),
                (r.t, r.sender, r.receiver, r.raw_rssi, r.sender_tx_gain)
            );
            let g0 = w0.population.person(r.receiver).unwrap().device.app_gains;
            let g = w.population.person(r.receiver).unwrap().device.app_gains;
            let (c0, c) = (r0.calibrated_rssi(g0), r.calibrated_rssi(g));
            match (r0.via, r.via) {
                (
                    crate::link::Via::PartialRssiWrite { partial_rssi: p0 },
                    crate::link::Via::PartialRssiWrite { partial_rssi: p },
                ) => {
                    let unclamped = i32::from(p0) + shift;
                    let expected = crate::calibration::saturate_i8(unclamped);
                    assert_eq!(p, expected);
                    if i32::from(expected) == unclamped && i32::from(p0) > -128 {
                        assert_eq!(c, c0 + shift);
                    } else {
                        clamped_seen += 1;
                        assert_eq!(c, i32::from(p) - i32::from(g.tx));
                    }
                }
                (v0, v) => {
                    assert_eq!(v0, v);
                    assert_eq!(c, c0 + shift, "anchor {anchor}");
                }
            }
        }
        // Documented bound: no clamping while −100 + anchor + 35 ≥ −128.
        if anchor >= -63.0 {
            assert_eq!(clamped_seen, 0, "anchor {anchor}");
        }
        if anchor == -100.0 {
            assert!(clamped_seen > 0, "the clamping case is exercised");
        }
    }
}

#[test]
fn anchor_is_validated_and_has_an_alias() {
    let text = |radio: &str| {
        with_group(
            &format!("[radio]\n{radio}"),
            "kind = \"office\"\npeople = 2",
        )
    };
    assert_eq!(RadioSpec::default().anchor_db, -35.0);
    for bad in [
        "anchor_db = -35.5",
        "anchor_db = -101.0",
        "anchor_db = 1.0",
        "anchor_db = nan",
    ] {
        assert_eq!(err_field(&text(bad)), "radio.anchor_db", "{bad}");
    }
    let s = Scenario::from_toml_str(&text("calibrated_at_1m_db = -48.0")).unwrap();
    assert_eq!(s.radio.anchor_db, -48.0);
    let w = s.build().unwrap();
    assert_eq!(w.anchor_db, -48.0);
    // The world's table is the apps' table: DEFAULT's RX gain −5 + 13.
    assert_eq!(
        w.calibration.get("DEFAULT"),
        Some(crate::calibration::Gains::new(-30, 8))
    );
}

#[test]
fn ablation_is_read_from_the_radio_table_and_reaches_every_place() {
    use crate::channel::{Ablation, NoiseTerm};
    let text = with_group(
        "[radio]\nablate = [\"body\", \"fading\"]",
        "kind = \"office\"\npeople = 4",
    );
    let s = Scenario::from_toml_str(&text).unwrap();
    assert_eq!(
        s.radio.ablate,
        Ablation::NONE.with(NoiseTerm::Body).with(NoiseTerm::Fading)
    );
    let w = s.build().unwrap();
    assert!(
        w.population
            .places
            .iter()
            .all(|p| p.environment.ablate == s.radio.ablate)
    );
    let bad = with_group(
        "[radio]\nablate = [\"multipath\"]",
        "kind = \"office\"\npeople = 4",
    );
    assert!(Scenario::from_toml_str(&bad).is_err());
}

#[test]
fn ablating_the_device_term_calibrates_every_phone_exactly_and_changes_nothing_else() {
    use crate::channel::{Ablation, NoiseTerm, RadioHardware};
    // Unlisted models too: the mix's default includes them.
    let text = with_group("seed = 8", "kind = \"office\"\npeople = 60");
    let full = Scenario::from_toml_str(&text).unwrap();
    let mut ablated = full.clone();
    ablated.radio.ablate = Ablation::NONE.with(NoiseTerm::Device);
    let (wf, wa) = (full.build().unwrap(), ablated.build().unwrap());
    let mut differs = 0;
    for (f, a) in wf.population.people.iter().zip(&wa.population.people) {
        let exact = RadioHardware::from_true_gains(a.device.app_gains, &wa.hardware_reference);
        assert!(
            (a.device.hardware.tx_power_dbm - exact.tx_power_dbm).abs() < 1e-9
                && (a.device.hardware.rx_offset_db - exact.rx_offset_db).abs() < 1e-9,
            "{}: {:?} vs {exact:?}",
            a.model,
            a.device.hardware
        );
        differs += usize::from(f.device.hardware != a.device.hardware);
        // Same draw of everything else.
        assert_eq!(f.model, a.model);
        assert_eq!(f.device.platform, a.device.platform);
        assert_eq!(f.device.app_gains, a.device.app_gains);
        assert_eq!(f.trajectory, a.trajectory);
    }
    assert!(differs > 50, "the full model has residuals: {differs}");
}
