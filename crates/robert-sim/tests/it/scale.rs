//! The capacity mode at a small scale (300 phones, mostly idle): every
//! phone registers at the start and asks its status once at the end, and
//! the throughput figures are filled; the lazy mode, by contrast, leaves
//! the idle phones unregistered.

use robert_radio::scenario::Scenario;
use robert_sim::{Delivery, RegisterPolicy, SimOptions, StatusPolling, run_scenario};

/// `scenarios/scale-100k.toml` in miniature: 200 people at home, 60 at
/// lunch (tables of four), 40 in meetings of eight, two positives.
const SCALE_SMALL: &str = r#"
name = "scale-small"
seed = 100
start_date = "2020-10-08"
days = 1
utc_offset_hours = 2.0

[radio]
android_report_delay_s = 5.0

[[groups]]
name = "at-home"
kind = "office"
people = 200
days = []

[[groups]]
name = "lunch"
kind = "restaurant"
people = 4
instances = 15
density = "high"
table_size = 4
start = "12:00"
end = "13:00"

[[groups]]
name = "meeting"
kind = "office"
people = 8
instances = 5
density = "high"
spacing_m = 1.2
start = "10:00"
end = "10:30"

[[positives]]
group = "lunch"
member = 1
day = 0
time = "20:00"

[[positives]]
group = "meeting"
member = 12
day = 0
time = "20:30"
"#;

fn scenario() -> Scenario {
    Scenario::from_toml_str(SCALE_SMALL).unwrap()
}

#[test]
fn capacity_mode_registers_every_phone_and_asks_every_status() {
    let opts = SimOptions::capacity();
    assert_eq!(opts.register, RegisterPolicy::AtStart);
    assert_eq!(opts.status_polling, StatusPolling::FinalOnly);
    assert_eq!(opts.delivery, Delivery::PositivesOnly);

    let r = run_scenario(&scenario(), &opts).unwrap();

    assert_eq!(r.people, 300);
    assert_eq!(r.counts.registrations, 300, "idle phones register too");
    assert_eq!(r.counts.registration_failures, 0);
    assert_eq!(r.counts.status_failures, 0);
    assert_eq!(r.counts.reports, 2, "{:?}", r.positives);
    // Only the two positive cases' phones store HELLOs.
    assert!(r.counts.hellos_not_stored > 0);
    assert!(r.counts.hellos_recorded > 0);
    assert!(r.phone_outcomes.is_empty(), "no per-phone rows");
    // The positives' lunch and meeting partners are still alerted.
    assert!(r.phones.tp >= 1, "{:?}", r.phones);

    let t = r.timings.throughput;
    assert_eq!(t.concurrency, opts.concurrency);
    assert_eq!(t.registrations, 300);
    assert_eq!(t.registration_rounds, 1);
    assert!(t.registration_ms <= r.timings.register_ms);
    assert!(t.registrations_per_s.is_some_and(|v| v > 0.0), "{t:?}");
    // The final round: every phone exactly once.
    assert_eq!(t.final_status_requests, 300);
    assert!(t.final_status_per_s.is_some_and(|v| v > 0.0), "{t:?}");
    assert_eq!(
        r.counts.status_requests,
        t.final_status_requests + t.run_status_requests
    );
    assert_eq!(t.reports, 2);
    assert!(t.reports_per_s.is_some_and(|v| v > 0.0), "{t:?}");
    // Memory per registration.
    let tuples = t.phone_state_bytes_per_registration.unwrap();
    assert!(
        tuples > 1000.0,
        "a phone holds days of 16-byte EBID tuples: {tuples}"
    );
    assert!(
        t.server_db_bytes_per_registration.is_some_and(|b| b > 0.0),
        "each registration adds a row: {t:?}"
    );
    if cfg!(target_os = "linux") {
        assert!(t.rss_before_registration_bytes.is_some_and(|b| b > 0));
        assert!(t.rss_after_registration_bytes.is_some_and(|b| b > 0));
        assert!(t.rss_growth_per_registration_bytes.is_some());
        assert!(t.peak_rss_bytes >= t.rss_after_registration_bytes, "{t:?}");
    }
}

#[test]
fn lazy_mode_leaves_idle_phones_unregistered() {
    let r = run_scenario(&scenario(), &SimOptions::large_population()).unwrap();
    let t = r.timings.throughput;
    // Only the 100 people who meet somebody register, in several rounds.
    assert_eq!(r.counts.registrations, 100);
    assert_eq!(t.registrations, 100);
    assert!(t.registration_rounds > 1, "{t:?}");
    // They alone ask their status at the end.
    assert_eq!(t.final_status_requests, 100);
    // No registration phase at the start: no memory figure per registration.
    assert_eq!(t.rss_growth_per_registration_bytes, None);
    assert_eq!(t.server_db_bytes_per_registration, None);
}
