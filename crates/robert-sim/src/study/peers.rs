//! Peers' exposure rules (ble-measurements.md §5) run on the same recorded
//! receptions as ROBERT.
//!
//! **Attenuation.** GAEN's attenuation is `TX_power − (RSSI + correction)`:
//! Google's per-model values make every phone look like a reference phone,
//! and a clear 1 m line of sight reads about 48 dB (EPFL/ETH anechoic runs).
//! ROBERT's calibrated RSSI does the same job with its own table (−35 dB at
//! 1 m in the radio model). So `a = A − rssi_cal`, with `A = 48 + anchor`
//! (13 dB for the model's anchor, swept 8–18 for GAEN's own calibration
//! spread). Because both scales are calibrated against the same physical
//! reference, the peers do not move with ROBERT's anchor shift Δ: `A`
//! carries their uncertainty instead.
//!
//! **Scans.** GAEN does not keep every packet: the receiving phone scans for
//! about 4 s every 180–300 s (uniform here, seeded per receiving phone).
//! Each scan that hears a sender gives a *scan instance*: the mean
//! attenuation of its packets (*typicalAttenuation*), their minimum
//! (*minAttenuation*), and the seconds since the previous scan. ROBERT's SDK
//! keeps at most one HELLO per EBID and second, so a scan holds up to four
//! packets. Instances group by sender and UTC day (one GAEN key per day)
//! and, for GAEN v2, into exposure windows of at most 30 minutes.
//!
//! **Whose receptions.** GAEN's receiver is the contact's phone (it matches
//! the case's published keys); ROBERT uploads the case's receptions. Here
//! every rule runs on the case's receptions, as the issue asks: the radio
//! is symmetric up to each phone's own placement and calibration residual.
//!
//! | rule | per | statistic | native alert |
//! |---|---|---|---|
//! | SwissCovid 55/63 (GAEN v1) | day | `min(B1,30) + 0.5·min(B2,30)` minutes, typical attenuation | ≥ 15 |
//! | CWA v1 (GAEN v1, 2020) | all keys | `(min(B1,30) + 0.5·min(B2,30)) · 60/50` if one key lasts > 10 min at weighted attenuation ≤ 73 | ≥ 15 |
//! | CWA v2 Dec 2020 | day | Σ windows kept (≥ 10 min at min att. < 73) of `1.4 · Σ secs·w(min att)/60`, w = 1 / 0.5 / 0 at 55, 63 | ≥ 15 |
//! | CWA v2 Mar 2021 | day | windows kept if ≥ 5 min < 79; w = 0.8 / 1.0 / 0.1 / 0 at 63, 73, 79 | ≥ 13 |
//! | CWA v2 2022 | day | every window; weights of Mar 2021 | ≥ 9 |
//! | Immuni (June 2020) | key | minutes of a key at weighted attenuation ≤ 73 | > 15 |
//!
//! CWA v1's factor is `maxRiskScore / riskScoreNormalizationDivisor`: the
//! product of levels 6 (transmission risk of a confirmed case at its peak),
//! 1 (duration > 10 min), 5 (days) and 2 (attenuation ≤ 73 dB) is 60,
//! divided by 50 (`attenuation-duration.yaml`). CWA v2's transmission risk
//! value is 1.4 (TRL 7: confirmed test, standard infectiousness).

use rand::rngs::ChaCha8Rng;
use rand::{RngExt as _, SeedableRng as _};
use serde::Serialize;

use crate::recording::{Recording, UNKNOWN_SENDER};

/// Scan length (s).
pub const SCAN_S: u64 = 4;
/// Shortest and longest gap between scans (s).
pub const SCAN_GAP_S: (u64, u64) = (180, 300);
/// Longest GAEN v2 exposure window (s).
pub const WINDOW_S: u64 = 1800;

/// One scan instance (module docs), with the RSSIs still on the ROBERT
/// scale (attenuation = A − value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanInstance {
    /// The sender.
    pub sender: u32,
    /// UTC day since the recording's first day (one GAEN key).
    pub day: u16,
    /// Exposure window within the key (`(t − day start) / 1800`).
    pub window: u16,
    /// Mean calibrated RSSI of the scan's packets (→ typicalAttenuation).
    pub mean_rssi: f32,
    /// Largest calibrated RSSI (→ minAttenuation).
    pub max_rssi: i16,
    /// Seconds since the previous scan.
    pub secs: u16,
}

/// The scan instances of a recording, all reports pooled.
#[derive(Clone, Debug, PartialEq)]
pub struct Scans {
    /// Instances.
    pub instances: Vec<ScanInstance>,
    /// Per person: counts in the confusion matrix (not a positive case).
    pub scored: Vec<bool>,
}

/// Emulates GAEN's scans over every report's contact store (module docs).
pub fn scans(rec: &Recording) -> Scans {
    let first_day = rec.start_ntp / 86_400;
    let mut instances = Vec::new();
    for (k, report) in rec.reports.iter().enumerate() {
        if !report.uploaded {
            continue;
        }
        // Every reception of the window, by time: (t, sender, rssi).
        let mut rx: Vec<(u64, u32, i16)> = Vec::new();
        for g in &report.groups {
            if g.sender == UNKNOWN_SENDER {
                continue;
            }
            for (t, &r) in g.times().zip(&g.rssi) {
                if t >= report.window_ntp.0 && t <= report.window_ntp.1 {
                    rx.push((t, g.sender, r));
                }
            }
        }
        rx.sort_unstable();
        let (Some(&(start, ..)), Some(&(end, ..))) = (rx.first(), rx.last()) else {
            continue;
        };
        let mut rng = ChaCha8Rng::seed_from_u64(rec.seed ^ (0x5CA7_u64 << 32) ^ k as u64);
        let mut t = start.saturating_sub(rng.random_range(0..SCAN_GAP_S.1));
        let mut gap = SCAN_GAP_S.1;
        let mut i = 0;
        while t <= end {
            let lo = rx[i..].partition_point(|r| r.0 < t) + i;
            let hi = rx[lo..].partition_point(|r| r.0 < t + SCAN_S) + lo;
            // Per sender within this scan.
            let mut scan: Vec<(u32, i16)> = rx[lo..hi].iter().map(|r| (r.1, r.2)).collect();
            scan.sort_unstable();
            let mut j = 0;
            while j < scan.len() {
                let sender = scan[j].0;
                let mut e = j;
                let (mut sum, mut max) = (0.0f64, i16::MIN);
                while e < scan.len() && scan[e].0 == sender {
                    sum += f64::from(scan[e].1);
                    max = max.max(scan[e].1);
                    e += 1;
                }
                let day_abs = t / 86_400;
                // Means of a few RSSIs; f32 is plenty.
                instances.push(ScanInstance {
                    sender,
                    day: u16::try_from(day_abs.saturating_sub(first_day)).unwrap_or(u16::MAX),
                    window: u16::try_from((t % 86_400) / WINDOW_S).unwrap_or(u16::MAX),
                    mean_rssi: (sum / (e - j) as f64) as f32,
                    max_rssi: max,
                    secs: u16::try_from(gap).unwrap_or(u16::MAX),
                });
                j = e;
            }
            i = lo;
            gap = rng.random_range(SCAN_GAP_S.0..=SCAN_GAP_S.1);
            t += gap;
        }
    }
    Scans {
        instances,
        scored: rec.phones.iter().map(|p| !p.positive).collect(),
    }
}

/// A peer's rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PeerRule {
    /// SwissCovid, thresholds of 10 Sept 2020 (55/63 dB, weights 1 / 0.5).
    SwissCovid,
    /// Corona-Warn-App on GAEN v1 (June–December 2020).
    CwaV1,
    /// Corona-Warn-App, ExposureWindows, parameters of 16 Dec 2020.
    CwaV2Dec2020,
    /// … of 17 March 2021.
    CwaV2Mar2021,
    /// … of 25 January 2022.
    CwaV2Jan2022,
    /// Immuni, configuration of June 2020.
    Immuni,
}

impl PeerRule {
    /// Every rule.
    pub const ALL: [Self; 6] = [
        Self::SwissCovid,
        Self::CwaV1,
        Self::CwaV2Dec2020,
        Self::CwaV2Mar2021,
        Self::CwaV2Jan2022,
        Self::Immuni,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SwissCovid => "SwissCovid 55/63",
            Self::CwaV1 => "CWA v1 (2020)",
            Self::CwaV2Dec2020 => "CWA v2 Dec 2020",
            Self::CwaV2Mar2021 => "CWA v2 Mar 2021",
            Self::CwaV2Jan2022 => "CWA v2 2022",
            Self::Immuni => "Immuni",
        }
    }

    /// The rule's own alert threshold on its statistic.
    pub fn native_threshold(self) -> f64 {
        match self {
            Self::SwissCovid | Self::CwaV1 | Self::CwaV2Dec2020 => 15.0,
            Self::CwaV2Mar2021 => 13.0,
            Self::CwaV2Jan2022 => 9.0,
            // "Above 15 minutes".
            Self::Immuni => 15.0 + 1e-9,
        }
    }
}

/// CWA v2's transmission risk value (TRL 7).
const TRV: f64 = 1.4;
/// CWA v1's `maxRiskScore / riskScoreNormalizationDivisor`.
const CWA_V1_FACTOR: f64 = 60.0 / 50.0;

fn v2_weight(rule: PeerRule, a: f64) -> f64 {
    match rule {
        PeerRule::CwaV2Dec2020 => {
            if a < 55.0 {
                1.0
            } else if a < 63.0 {
                0.5
            } else {
                0.0
            }
        }
        _ => {
            if a < 63.0 {
                0.8
            } else if a < 73.0 {
                1.0
            } else if a < 79.0 {
                0.1
            } else {
                0.0
            }
        }
    }
}

/// Per-phone statistic of a rule at attenuation offset `a_db` (module
/// docs); alert when it reaches [`PeerRule::native_threshold`].
pub fn statistic(s: &Scans, rule: PeerRule, a_db: f64) -> Vec<f64> {
    use std::collections::BTreeMap;
    let n = s.scored.len();
    let mut out = vec![0.0f64; n];
    let att_typ = |i: &ScanInstance| a_db - f64::from(i.mean_rssi);
    let att_min = |i: &ScanInstance| a_db - f64::from(i.max_rssi);
    match rule {
        PeerRule::SwissCovid | PeerRule::CwaV1 => {
            // Buckets per (phone, day) or per phone: [≤ 55, 55–63, > 63], minutes.
            let mut b: BTreeMap<(u32, u16), [f64; 2]> = BTreeMap::new();
            // CWA v1: per key (phone, day): duration and Σ secs·att.
            let mut keys: BTreeMap<(u32, u16), (f64, f64)> = BTreeMap::new();
            for i in &s.instances {
                let a = att_typ(i);
                let m = f64::from(i.secs) / 60.0;
                let day = if rule == PeerRule::SwissCovid {
                    i.day
                } else {
                    0
                };
                let e = b.entry((i.sender, day)).or_default();
                if a <= 55.0 {
                    e[0] += m;
                } else if a <= 63.0 {
                    e[1] += m;
                }
                let k = keys.entry((i.sender, i.day)).or_default();
                k.0 += m;
                k.1 += m * a;
            }
            for (&(x, _), v) in &b {
                let es = v[0].min(30.0) + 0.5 * v[1].min(30.0);
                let stat = if rule == PeerRule::SwissCovid {
                    es
                } else {
                    let risky = keys
                        .range((x, 0)..=(x, u16::MAX))
                        .any(|(_, (d, sa))| *d > 10.0 && sa / d <= 73.0);
                    if risky { es * CWA_V1_FACTOR } else { 0.0 }
                };
                let o = &mut out[x as usize];
                *o = (*o).max(stat);
            }
        }
        PeerRule::CwaV2Dec2020 | PeerRule::CwaV2Mar2021 | PeerRule::CwaV2Jan2022 => {
            // Per window: Σ secs·w / 60 and minutes under the filter's limit.
            let (limit, min_minutes) = match rule {
                PeerRule::CwaV2Dec2020 => (73.0, 10.0),
                PeerRule::CwaV2Mar2021 => (79.0, 5.0),
                _ => (f64::INFINITY, 0.0),
            };
            let mut w: BTreeMap<(u32, u16, u16), (f64, f64)> = BTreeMap::new();
            for i in &s.instances {
                let a = att_min(i);
                let e = w.entry((i.sender, i.day, i.window)).or_default();
                e.0 += f64::from(i.secs) * v2_weight(rule, a) / 60.0;
                if a < limit {
                    e.1 += f64::from(i.secs) / 60.0;
                }
            }
            let mut days: BTreeMap<(u32, u16), f64> = BTreeMap::new();
            for (&(x, day, _), &(weighted, minutes)) in &w {
                if minutes >= min_minutes {
                    *days.entry((x, day)).or_default() += TRV * weighted;
                }
            }
            for (&(x, _), &v) in &days {
                let o = &mut out[x as usize];
                *o = (*o).max(v);
            }
        }
        PeerRule::Immuni => {
            let mut keys: BTreeMap<(u32, u16), (f64, f64)> = BTreeMap::new();
            for i in &s.instances {
                let m = f64::from(i.secs) / 60.0;
                let k = keys.entry((i.sender, i.day)).or_default();
                k.0 += m;
                k.1 += m * att_typ(i);
            }
            for (&(x, _), &(d, sa)) in &keys {
                if d > 0.0 && sa / d <= 73.0 {
                    let o = &mut out[x as usize];
                    *o = (*o).max(d);
                }
            }
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        if !s.scored[i] {
            *o = 0.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(sender: u32, day: u16, window: u16, rssi: f32, secs: u16) -> ScanInstance {
        ScanInstance {
            sender,
            day,
            window,
            mean_rssi: rssi,
            // Rounded to whole dB: the hand computations below do the same.
            max_rssi: rssi.round() as i16,
            secs,
        }
    }

    fn scans(instances: Vec<ScanInstance>) -> Scans {
        Scans {
            instances,
            scored: vec![true; 3],
        }
    }

    #[test]
    fn swisscovid_weighs_buckets_and_caps_them_per_day() {
        // A = 13: rssi −40 → 53 dB (near), −46 → 59 dB (mid), −55 → 68 dB (far).
        // Phone 1, day 0: 12 near scans of 4 min = 48 min → capped at 30;
        // 4 mid scans of 5 min = 20 min → 10; far ignored. ES = 40.
        let mut v = Vec::new();
        v.extend((0..12).map(|_| inst(1, 0, 0, -40.0, 240)));
        v.extend((0..4).map(|_| inst(1, 0, 1, -46.0, 300)));
        v.extend((0..9).map(|_| inst(1, 0, 2, -55.0, 300)));
        // Phone 2: 14 min near on day 0 and 14 on day 1: no day reaches 15.
        v.extend((0..14).map(|_| inst(2, 0, 0, -40.0, 60)));
        v.extend((0..14).map(|_| inst(2, 1, 0, -40.0, 60)));
        let s = statistic(&scans(v), PeerRule::SwissCovid, 13.0);
        assert!((s[1] - 40.0).abs() < 1e-9, "{s:?}");
        assert!((s[2] - 14.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s[0], 0.0);
    }

    #[test]
    fn cwa_v2_drops_short_windows_and_sums_days() {
        // Dec 2020, A = 13. Window 0: 8 min at 53 dB → dropped (< 10 min
        // under 73). Window 1: 12 min at 53 dB → 1.4 · 12 = 16.8.
        let mut v = Vec::new();
        v.extend((0..8).map(|_| inst(1, 0, 0, -40.0, 60)));
        v.extend((0..12).map(|_| inst(1, 0, 1, -40.0, 60)));
        let s = statistic(&scans(v.clone()), PeerRule::CwaV2Dec2020, 13.0);
        assert!((s[1] - 16.8).abs() < 1e-9, "{s:?}");
        // 2022: nothing dropped, weight 0.8 below 63: 1.4 · 0.8 · 20 = 22.4.
        let s = statistic(&scans(v), PeerRule::CwaV2Jan2022, 13.0);
        assert!((s[1] - 22.4).abs() < 1e-9, "{s:?}");
        // Far (rssi −62 → 75 dB): Mar 2021 weight 0.1 → 1.4 · 0.1 · 30 = 4.2.
        let far: Vec<_> = (0..30).map(|_| inst(2, 0, 0, -62.0, 60)).collect();
        let s = statistic(&scans(far), PeerRule::CwaV2Mar2021, 13.0);
        assert!((s[2] - 4.2).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn cwa_v1_needs_one_long_enough_key_and_immuni_more_than_fifteen_minutes() {
        // 10 min exactly at 53 dB: not > 10 → no risk exposure.
        let v: Vec<_> = (0..10).map(|_| inst(1, 0, 0, -40.0, 60)).collect();
        assert_eq!(statistic(&scans(v), PeerRule::CwaV1, 13.0)[1], 0.0);
        // 20 min: (20 · 1) · 1.2 = 24.
        let v: Vec<_> = (0..20).map(|_| inst(1, 0, 0, -40.0, 60)).collect();
        let s = statistic(&scans(v.clone()), PeerRule::CwaV1, 13.0);
        assert!((s[1] - 24.0).abs() < 1e-9, "{s:?}");
        let s = statistic(&scans(v), PeerRule::Immuni, 13.0);
        assert!((s[1] - 20.0).abs() < 1e-9);
        // Immuni: weighted attenuation above 73 (rssi −65 → 78 dB): nothing.
        let v: Vec<_> = (0..40).map(|_| inst(1, 0, 0, -65.0, 60)).collect();
        assert_eq!(statistic(&scans(v), PeerRule::Immuni, 13.0)[1], 0.0);
    }
}
