//! The example scenario files parse, build, and give sensible ground truth.

use robert_radio::link::{AppEra, Platform};
use robert_radio::scenario::Scenario;

const OFFICE: &str = include_str!("../../examples/scenarios/office.toml");
const METRO: &str = include_str!("../../examples/scenarios/metro-commute.toml");
const WALKERS: &str = include_str!("../../examples/scenarios/walkers.toml");

#[test]
fn examples_parse_and_validate() {
    for (text, name) in [
        (OFFICE, "office-week"),
        (METRO, "metro-commute"),
        (WALKERS, "street-walkers"),
    ] {
        let s = Scenario::from_toml_str(text).unwrap();
        assert_eq!(s.name, name);
        s.validate().unwrap();
    }
}

#[test]
fn office_week() {
    let w = Scenario::from_toml_str(OFFICE).unwrap().build().unwrap();
    assert_eq!(w.population.people.len(), 30);
    assert_eq!(w.days, 5);
    assert_eq!(w.timing.ios_connection_interval_s, 10.0);
    assert_eq!(w.positives.len(), 1);
    let positive = w.positives[0].person;
    assert_eq!(positive, w.members("open-space").unwrap()[3]);
    let truth = w.ground_truth();
    // Desks 1.2 m apart: the diagonal neighbours are not within 1 m, but
    // lunch tables of four put everybody within 1 m for an hour.
    let contacts = truth.at_risk_contacts_of(positive);
    assert!(contacts.len() >= 3, "{contacts:?}");
    assert!(contacts.iter().all(|(_, d)| *d < 5));
    // Every weekday has at-risk pairs.
    for day in 0..5 {
        assert!(truth.at_risk().any(|(_, _, d)| d == day), "day {day}");
    }
}

#[test]
fn metro_commute() {
    let w = Scenario::from_toml_str(METRO).unwrap().build().unwrap();
    assert_eq!(
        w.timing,
        robert_radio::link::LinkTiming::for_era(AppEra::Tac2022)
    );
    assert_eq!(w.population.people.len(), 160);
    let cars = w
        .population
        .places
        .iter()
        .filter(|p| p.name.starts_with("line-13/car"))
        .count();
    assert_eq!(cars, 3);
    let truth = w.ground_truth();
    assert_eq!(truth.config().distance_m, 2.0);
    assert!(truth.at_risk().count() > 10);
    assert!(w.population.people.iter().all(|p| match p.device.platform {
        Platform::Android { .. } => true,
        Platform::Ios => p.model.starts_with("iPhone"),
    }));
}

#[test]
fn street_walkers_meet_briefly() {
    let w = Scenario::from_toml_str(WALKERS).unwrap().build().unwrap();
    let truth = w.ground_truth();
    // Many passings within 1 m, none anywhere near 15 minutes.
    assert!(truth.exposures().count() > 100);
    assert_eq!(truth.at_risk().count(), 0);
    assert!(truth.exposures().all(|(_, _, _, s)| s < 120.0));
}
