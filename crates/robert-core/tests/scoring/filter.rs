//! The on-device proximity filter on whole contacts (client-ble.md §4), with
//! the app's 2020 configuration in mode RISKS.

use robert_core::filter::{
    FilterConfig, FilterMode, FilterOutcome, ProximityFilter, Rejection, RssiSample,
};
use robert_core::time::{NtpSeconds, ServiceStart};

use crate::support::{MINUTE, SplitMix};

/// One sample every `every` seconds from `from` for `duration` seconds,
/// grouped per epoch (one group per EBID, as the app groups by EBID).
fn groups(
    from: NtpSeconds,
    duration: u64,
    every: u64,
    rssi: impl Fn(u64) -> i32,
) -> Vec<Vec<RssiSample>> {
    let start = ServiceStart::REFERENCE;
    let mut out: Vec<Vec<RssiSample>> = Vec::new();
    let mut last_epoch = None;
    for s in (0..duration).step_by(usize::try_from(every).unwrap()) {
        let t = from.plus(s);
        let epoch = start.epoch_at(t);
        if last_epoch != Some(epoch) {
            out.push(Vec::new());
            last_epoch = Some(epoch);
        }
        out.last_mut().unwrap().push(RssiSample::new(t, rssi(s)));
    }
    out
}

fn aligned_start() -> NtpSeconds {
    let start = ServiceStart::REFERENCE;
    start.epoch_start(start.epoch_at(NtpSeconds(3_882_556_800 + 10 * 3600)))
}

#[test]
fn sixty_minute_close_contact_is_accepted_epoch_by_epoch() {
    let filter = ProximityFilter::default();
    let mut rng = SplitMix(5);
    let rssi: Vec<i32> = (0..3600).map(|_| rng.in_range(-60, -20)).collect();
    let contact = groups(aligned_start(), 60 * MINUTE, 2, |s| {
        rssi[usize::try_from(s).unwrap()]
    });
    assert_eq!(contact.len(), 4);
    for group in &contact {
        match filter.filter(group, FilterMode::Risks) {
            FilterOutcome::Accepted(a) => {
                assert_eq!(a.rssi.len(), group.len());
                // Peaks above −25 dBm were clipped, everything else kept.
                for (out, input) in a.rssi.iter().zip(group) {
                    if input.rssi <= -25 {
                        assert_eq!(*out, input.rssi);
                    } else {
                        assert!(*out <= -25);
                    }
                }
                assert!(a.updated);
                let risk = a.analysis.unwrap().risk.unwrap();
                assert!(risk.risk >= 0.9, "{risk:?}");
                assert_eq!(risk.risk_density, 15);
            }
            FilterOutcome::Rejected(r) => panic!("rejected: {r:?}"),
        }
    }
}

#[test]
fn one_minute_contact_is_rejected() {
    let filter = ProximityFilter::default();
    let contact = groups(aligned_start(), MINUTE, 1, |_| -40);
    assert_eq!(contact.len(), 1);
    assert_eq!(
        filter.filter(&contact[0], FilterMode::Risks),
        FilterOutcome::Rejected(Rejection::DurationTooShort { duration_secs: 59 })
    );
}

#[test]
fn far_contact_is_rejected_in_risks_mode_only() {
    let filter = ProximityFilter::default();
    let contact = groups(aligned_start(), 15 * MINUTE, 3, |_| -90);
    match filter.filter(&contact[0], FilterMode::Risks) {
        FilterOutcome::Rejected(Rejection::RiskTooLow(analysis)) => {
            assert!(analysis.window_risks.iter().all(|&w| w == 0.0));
            let risk = analysis.risk.unwrap();
            assert_eq!((risk.risk, risk.risk_density), (0.0, 0));
        }
        other => panic!("{other:?}"),
    }
    // MEDIUM and FULL keep it (only the duration is checked).
    assert!(filter.filter(&contact[0], FilterMode::Medium).is_accepted());
    assert!(filter.filter(&contact[0], FilterMode::Full).is_accepted());
}

#[test]
fn short_weak_contact_passes_the_2020_but_not_the_sdk_duration() {
    // Three minutes at −55 dBm: the app's 120 s threshold lets it through
    // to the risk computation; the SDK default (300 s) rejects it outright.
    let contact = groups(aligned_start(), 3 * MINUTE, 1, |_| -55);
    let app = ProximityFilter::default();
    let sdk = ProximityFilter::new(FilterConfig::sdk_default()).unwrap();
    assert!(!matches!(
        app.filter(&contact[0], FilterMode::Risks),
        FilterOutcome::Rejected(Rejection::DurationTooShort { .. })
    ));
    assert!(matches!(
        sdk.filter(&contact[0], FilterMode::Risks),
        FilterOutcome::Rejected(Rejection::DurationTooShort { duration_secs: 179 })
    ));
}
