//! The received HELLOs ("local proximities", client-ble.md §3.6), grouped by
//! `(EBID, ECC)`, in memory.
//!
//! * At most one record per EBID per second (iOS: primary key
//!   `ebid + timeCollectedOnDevice`): a second HELLO of the same EBID in the
//!   same second is dropped.
//! * Records older than the retention period (14 days) are purged.
//! * Inserting is a hash look-up and (almost always) an append: no I/O.
//!   Persistence is the [`crate::Phone`]'s explicit `persist`.
//!
//! Only pseudonyms are recorded: the EBID, the ECC, the HELLO's time and MAC
//! as broadcast, the reception time and the signal strength. No address,
//! no location, nothing about the sender's device.

use std::collections::{BTreeMap, HashMap};

use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::mac::HelloMac;
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY, Time16};

/// The grouping key of received HELLOs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContactKey {
    /// The sender's EBID.
    pub ebid: Ebid,
    /// The ECC broadcast with it.
    pub ecc: Ecc,
}

impl PartialOrd for ContactKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ContactKey {
    /// By EBID bytes, then ECC byte.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ebid, self.ecc.0).cmp(&(other.ebid, other.ecc.0))
    }
}

/// One received HELLO, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContactRecord {
    /// Local time at reception (`timeCollectedOnDevice`).
    pub time_collected: NtpSeconds,
    /// The HELLO's Time16 (`timeFromHelloMessage`).
    pub hello_time: Time16,
    /// The HELLO's 5-byte MAC.
    pub mac: HelloMac,
    /// The RSSI as measured (`rssiRaw`).
    pub rssi_raw: i16,
    /// `raw − txGain(sender) − rxGain(own)` (`rssiCalibrated`).
    pub rssi_calibrated: i16,
}

/// Per-day counts for display.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayCount {
    /// Distinct `(EBID, ECC)` groups with a record that day.
    pub ebids: usize,
    /// Records that day.
    pub records: usize,
}

/// All received HELLOs, grouped by `(EBID, ECC)`, each group sorted by
/// reception time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactStore {
    groups: HashMap<ContactKey, Vec<ContactRecord>>,
    len: usize,
}

impl ContactStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a HELLO. Returns `false` (and stores nothing) when the same
    /// group already has a record in the same second.
    pub fn insert(&mut self, key: ContactKey, record: ContactRecord) -> bool {
        let records = self.groups.entry(key).or_default();
        let t = record.time_collected;
        match records.last() {
            None => records.push(record),
            Some(last) if last.time_collected < t => records.push(record),
            Some(_) => {
                // Out of order (clock moved back) or same second: keep sorted, no duplicate.
                let pos = records.partition_point(|r| r.time_collected < t);
                if records.get(pos).is_some_and(|r| r.time_collected == t) {
                    return false;
                }
                records.insert(pos, record);
            }
        }
        self.len += 1;
        true
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of `(EBID, ECC)` groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The groups, in no particular order.
    pub fn groups(&self) -> impl Iterator<Item = (&ContactKey, &[ContactRecord])> {
        self.groups.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// The records of one group.
    pub fn group(&self, key: &ContactKey) -> Option<&[ContactRecord]> {
        self.groups.get(key).map(Vec::as_slice)
    }

    /// Removes every record collected before `cutoff`; returns how many.
    pub fn purge_before(&mut self, cutoff: NtpSeconds) -> usize {
        let mut removed = 0;
        self.groups.retain(|_, records| {
            let old = records.partition_point(|r| r.time_collected < cutoff);
            records.drain(..old);
            removed += old;
            !records.is_empty()
        });
        self.len -= removed;
        removed
    }

    /// Removes everything.
    pub fn clear(&mut self) {
        self.groups.clear();
        self.len = 0;
    }

    /// Record and group counts per UTC day (NTP day index = `t / 86400`).
    pub fn per_day(&self) -> BTreeMap<u64, DayCount> {
        let mut out: BTreeMap<u64, DayCount> = BTreeMap::new();
        for records in self.groups.values() {
            let mut last_day = None;
            for r in records {
                let day = r.time_collected.get() / SECONDS_PER_DAY;
                let c = out.entry(day).or_default();
                c.records += 1;
                if last_day != Some(day) {
                    c.ebids += 1;
                    last_day = Some(day);
                }
            }
        }
        out
    }

    /// The records collected on NTP day `day`, with their keys (for
    /// persistence, one file per day).
    pub fn records_of_day(&self, day: u64) -> Vec<(ContactKey, ContactRecord)> {
        let from = NtpSeconds(day * SECONDS_PER_DAY);
        let to = NtpSeconds((day + 1) * SECONDS_PER_DAY);
        let mut out = Vec::new();
        for (k, records) in &self.groups {
            let a = records.partition_point(|r| r.time_collected < from);
            let b = records.partition_point(|r| r.time_collected < to);
            out.extend(records[a..b].iter().map(|r| (*k, *r)));
        }
        out
    }
}

/// NTP day index of an instant.
pub fn day_of(t: NtpSeconds) -> u64 {
    t.get() / SECONDS_PER_DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ContactKey {
        ContactKey {
            ebid: Ebid([n; 8]),
            ecc: Ecc(n),
        }
    }

    fn rec(t: u64, rssi: i16) -> ContactRecord {
        ContactRecord {
            time_collected: NtpSeconds(t),
            hello_time: NtpSeconds(t).time16(),
            mac: HelloMac([1, 2, 3, 4, 5]),
            rssi_raw: rssi,
            rssi_calibrated: rssi + 35,
        }
    }

    #[test]
    fn records_and_tuples_stay_small() {
        // The crate docs quote these sizes for simulations of many phones.
        assert_eq!(size_of::<ContactRecord>(), 24);
        assert_eq!(size_of::<robert_core::tuples::Tuple>(), 16);
    }

    #[test]
    fn one_record_per_ebid_per_second() {
        let mut s = ContactStore::new();
        assert!(s.insert(key(1), rec(100, -70)));
        assert!(!s.insert(key(1), rec(100, -60)), "same second");
        assert!(s.insert(key(2), rec(100, -60)), "other EBID");
        assert!(s.insert(key(1), rec(101, -60)));
        assert!(s.insert(key(1), rec(50, -60)), "out of order kept sorted");
        assert!(!s.insert(key(1), rec(50, -61)));
        assert_eq!(s.len(), 4);
        let g = s.group(&key(1)).unwrap();
        assert_eq!(
            g.iter().map(|r| r.time_collected.get()).collect::<Vec<_>>(),
            vec![50, 100, 101]
        );
        assert_eq!(g[1].rssi_raw, -70, "first HELLO of the second kept");
    }

    #[test]
    fn purge_and_per_day() {
        let mut s = ContactStore::new();
        let d = SECONDS_PER_DAY;
        s.insert(key(1), rec(d - 1, -70));
        s.insert(key(1), rec(d, -70));
        s.insert(key(1), rec(d + 5, -70));
        s.insert(key(2), rec(2 * d, -70));
        let per_day = s.per_day();
        assert_eq!(
            per_day.get(&0),
            Some(&DayCount {
                ebids: 1,
                records: 1
            })
        );
        assert_eq!(
            per_day.get(&1),
            Some(&DayCount {
                ebids: 1,
                records: 2
            })
        );
        assert_eq!(s.records_of_day(1).len(), 2);
        assert_eq!(s.records_of_day(2), vec![(key(2), rec(2 * d, -70))]);
        assert_eq!(s.purge_before(NtpSeconds(d + 1)), 2);
        assert_eq!(s.len(), 2);
        assert_eq!(s.purge_before(NtpSeconds(3 * d)), 2);
        assert!(s.is_empty());
        assert_eq!(s.group_count(), 0, "empty groups dropped");
    }
}
