//! Which contacts a report sends (client-ble.md §3.9, §4): the window from
//! symptom onset or test date, then the on-device proximity filter of
//! `robert_core::filter`, per EBID. Pure.
//!
//! ```text
//! symptoms (onset O):          from = max(now − 14 d, O − 2 d)    to = min(now, O + 10 d)
//! positive test, no symptoms:  from = max(now − 14 d, T − 7 d)    to = min(now, T + 10 d)
//! neither known:               from = now − 14 d                  to = now
//! ```
//!
//! Then each `(EBID, ECC)` group's records inside the window go through the
//! [`ProximityFilter`]: a rejected group is not sent at all, an accepted one
//! is sent with the filter's (clipped) calibrated RSSIs. The CNIL required
//! this filtering to happen on the phone, so that the server never receives
//! contacts too short or too far to matter.

use robert_core::filter::{FilterMode, FilterOutcome, ProximityFilter, RssiSample};
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY};

use crate::contacts::{ContactKey, ContactRecord, ContactStore};

/// What the user declared about their illness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportBasis {
    /// Symptoms started at this instant (a date is taken at 00:00).
    SymptomOnset(NtpSeconds),
    /// A positive test taken at this instant, without symptoms.
    PositiveTest(NtpSeconds),
    /// Nothing declared: the whole retention period.
    Unknown,
}

/// The spans of TousAntiCovid's report window, in days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportSpans {
    /// Retention of local contacts (`app.dataRetentionPeriod`, 14).
    pub retention_days: u64,
    /// Contagiousness before symptom onset (`preSymptomsSpan`, 2).
    pub pre_symptoms_days: u64,
    /// Contagiousness before a positive test (`positiveSampleSpan`, 7).
    pub positive_sample_days: u64,
    /// Contagiousness after onset or test (`contagiousSpan`, 10).
    pub contagious_days: u64,
}

impl Default for ReportSpans {
    fn default() -> Self {
        Self {
            retention_days: 14,
            pre_symptoms_days: 2,
            positive_sample_days: 7,
            contagious_days: 10,
        }
    }
}

/// An inclusive time window `[from, to]`; empty when `from > to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportWindow {
    /// First instant included.
    pub from: NtpSeconds,
    /// Last instant included.
    pub to: NtpSeconds,
}

impl ReportWindow {
    /// Whether `t` is inside.
    pub fn contains(&self, t: NtpSeconds) -> bool {
        self.from <= t && t <= self.to
    }
}

/// The window of contacts to report at `now` (module docs).
pub fn report_window(now: NtpSeconds, basis: ReportBasis, spans: &ReportSpans) -> ReportWindow {
    let days = |n: u64| n.saturating_mul(SECONDS_PER_DAY);
    let retention_start = now.minus(days(spans.retention_days));
    let (from, to) = match basis {
        ReportBasis::SymptomOnset(onset) => (
            retention_start.max(onset.minus(days(spans.pre_symptoms_days))),
            now.min(onset.plus(days(spans.contagious_days))),
        ),
        ReportBasis::PositiveTest(test) => (
            retention_start.max(test.minus(days(spans.positive_sample_days))),
            now.min(test.plus(days(spans.contagious_days))),
        ),
        ReportBasis::Unknown => (retention_start, now),
    };
    ReportWindow { from, to }
}

/// One contact of a report: a group's records to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportContact {
    /// The group.
    pub key: ContactKey,
    /// Its records inside the window, with the filter's calibrated RSSI.
    pub records: Vec<ContactRecord>,
}

/// The outcome of the selection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportSelection {
    /// Contacts to send (accepted by the filter).
    pub contacts: Vec<ReportContact>,
    /// Groups with records in the window that the filter rejected.
    pub rejected_groups: usize,
    /// Records in the window, accepted or not.
    pub records_in_window: usize,
}

impl ReportSelection {
    /// Number of HELLOs that will be sent.
    pub fn hellos_sent(&self) -> usize {
        self.contacts.iter().map(|c| c.records.len()).sum()
    }
}

/// Selects the contacts to report: window, then filter, per group.
///
/// The filter sees each group's samples in reception order and takes the
/// epoch start from the first one, as the apps do
/// ([`ProximityFilter::filter`]). Groups come out sorted by key, so the
/// output does not depend on hash order.
pub fn select_contacts(
    store: &ContactStore,
    window: ReportWindow,
    filter: &ProximityFilter,
    mode: FilterMode,
) -> ReportSelection {
    let mut selection = ReportSelection::default();
    let mut groups: Vec<(&ContactKey, &[ContactRecord])> = store.groups().collect();
    groups.sort_by_key(|(k, _)| **k);
    for (key, records) in groups {
        let a = records.partition_point(|r| r.time_collected < window.from);
        let b = records.partition_point(|r| r.time_collected <= window.to);
        let Some(in_window) = records.get(a..b).filter(|s| !s.is_empty()) else {
            continue;
        };
        selection.records_in_window += in_window.len();
        let samples: Vec<RssiSample> = in_window
            .iter()
            .map(|r| RssiSample::new(r.time_collected, i32::from(r.rssi_calibrated)))
            .collect();
        match filter.filter(&samples, mode) {
            FilterOutcome::Accepted(accepted) => {
                let records = in_window
                    .iter()
                    .zip(&accepted.rssi)
                    .map(|(r, &rssi)| ContactRecord {
                        // Clipping only lowers values, so they stay in range.
                        rssi_calibrated: i16::try_from(rssi).unwrap_or(r.rssi_calibrated),
                        ..*r
                    })
                    .collect();
                selection
                    .contacts
                    .push(ReportContact { key: *key, records });
            }
            FilterOutcome::Rejected(_) => selection.rejected_groups += 1,
        }
    }
    selection
}

#[cfg(test)]
mod tests {
    use super::*;
    use robert_core::ebid::Ebid;
    use robert_core::ecc::Ecc;
    use robert_core::mac::HelloMac;

    const D: u64 = SECONDS_PER_DAY;
    /// A UTC midnight (and epoch boundary).
    const NOW: NtpSeconds = NtpSeconds(3_882_556_800 + 30 * D + 12 * 3600);

    #[test]
    fn windows_follow_tousanticovid() {
        let s = ReportSpans::default();
        // Onset 3 days ago: from onset − 2 d (5 days ago) to now.
        let w = report_window(NOW, ReportBasis::SymptomOnset(NOW.minus(3 * D)), &s);
        assert_eq!(w.from, NOW.minus(5 * D));
        assert_eq!(w.to, NOW);
        // Onset 13 days ago: capped by the 14-day retention; ends at onset + 10 d.
        let w = report_window(NOW, ReportBasis::SymptomOnset(NOW.minus(13 * D)), &s);
        assert_eq!(w.from, NOW.minus(14 * D));
        assert_eq!(w.to, NOW.minus(3 * D));
        // Test 2 days ago: from test − 7 d.
        let w = report_window(NOW, ReportBasis::PositiveTest(NOW.minus(2 * D)), &s);
        assert_eq!(w.from, NOW.minus(9 * D));
        assert_eq!(w.to, NOW);
        let w = report_window(NOW, ReportBasis::PositiveTest(NOW.minus(10 * D)), &s);
        assert_eq!(w.from, NOW.minus(14 * D));
        assert_eq!(w.to, NOW);
        let w = report_window(NOW, ReportBasis::Unknown, &s);
        assert_eq!((w.from, w.to), (NOW.minus(14 * D), NOW));
        // Onset long ago: empty window.
        let w = report_window(NOW, ReportBasis::SymptomOnset(NOW.minus(40 * D)), &s);
        assert!(w.from > w.to);
        assert!(!w.contains(NOW.minus(20 * D)));
    }

    fn key(n: u8) -> ContactKey {
        ContactKey {
            ebid: Ebid([n; 8]),
            ecc: Ecc(n),
        }
    }

    fn rec(t: NtpSeconds, rssi: i16) -> ContactRecord {
        ContactRecord {
            time_collected: t,
            hello_time: t.time16(),
            mac: HelloMac([9; 5]),
            rssi_raw: rssi - 35,
            rssi_calibrated: rssi,
        }
    }

    #[test]
    fn selection_applies_window_then_filter() {
        let epoch_start = NOW.minus(D); // an epoch boundary
        let mut store = ContactStore::new();
        // Group 1: 14 minutes close by, with one peak above −25 → accepted, clipped.
        for i in 0..170u64 {
            let rssi = if i == 50 { -10 } else { -45 };
            store.insert(key(1), rec(epoch_start.plus(i * 5), rssi));
        }
        // Group 2: 90 seconds only → rejected (duration < 120 s).
        for i in 0..18u64 {
            store.insert(key(2), rec(epoch_start.plus(i * 5), -40));
        }
        // Group 3: 14 minutes but far away (−90) → rejected by risk.
        for i in 0..170u64 {
            store.insert(key(3), rec(epoch_start.plus(i * 5), -90));
        }
        // Group 4: close but outside the window (20 days ago).
        for i in 0..170u64 {
            store.insert(key(4), rec(NOW.minus(20 * D).plus(i * 5), -45));
        }
        let window = report_window(NOW, ReportBasis::Unknown, &ReportSpans::default());
        let sel = select_contacts(
            &store,
            window,
            &ProximityFilter::default(),
            FilterMode::Risks,
        );
        assert_eq!(sel.contacts.len(), 1);
        assert_eq!(sel.contacts[0].key, key(1));
        assert_eq!(sel.rejected_groups, 2);
        assert_eq!(sel.records_in_window, 170 + 18 + 170);
        assert_eq!(sel.hellos_sent(), 170);
        let recs = &sel.contacts[0].records;
        assert_eq!(recs[50].rssi_calibrated, -45, "peak clipped");
        assert_eq!(recs[50].rssi_raw, -45, "raw value untouched");
        assert!(recs.iter().all(|r| r.rssi_calibrated <= -25));

        // Mode FULL keeps the far group (duration only) and the peak.
        let sel = select_contacts(
            &store,
            window,
            &ProximityFilter::default(),
            FilterMode::Full,
        );
        assert_eq!(sel.contacts.len(), 2);
        assert_eq!(sel.contacts[0].records[50].rssi_calibrated, -10);
    }
}
