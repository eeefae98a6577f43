//! The optimiser's fast path: each recorded EBID group reduced once to
//! fifteen window levels per stage, so that a candidate setting costs a
//! pass over groups (microseconds each) rather than over HELLOs.
//!
//! ```text
//! compile(recording, Δ, clip, rssi_max):           one pass over the HELLOs
//!   per group in a report window:
//!     filter side  duration, 15 windows (soft-max level with the SDK's a, count)  ← clipped(r + Δ)
//!     server side  what the server keeps of the upload (Time16, epoch tolerance):
//!                  v2 windows (t0 = first HELLO in upload order, the reference's quirks)
//!                  typical-level windows (t0 = earliest), mean and power-mean levels,
//!                  duration;  once for the clipped upload (modes MEDIUM, RISKS) and,
//!                  when clipping changed a value, once for the raw one (mode FULL)
//! evaluate(compiled, setting):                      per group, O(15)
//!   filter decision → contact score (v2 or typical) → per (phone, UTC day) sums
//!   → one statistic per phone (v2: S; typical: the worst day's near-minutes)
//! ```
//!
//! The statistic ignores the batch timing (every report processed at
//! once), which the exact replay ([`crate::replay`]) keeps; the study
//! reports its final numbers through the exact replay, and a test checks
//! that both paths agree on recorded data.

use robert_core::filter::FilterMode;
use robert_core::scoring::{TypicalParams, WindowLevel};
use robert_core::time::EPOCH_DURATION_SECS;

use crate::recording::{GroupRecord, Recording, UNKNOWN_SENDER};

/// Windows per contact.
pub const W: usize = 15;

/// The SDK filter's soft-max constant (10 / ln 10, as sent by the server).
const FILTER_A: f64 = 10.0 / std::f64::consts::LN_10;

/// Scoring v2's soft-max constant for RSSIs.
const V2_A: f64 = 4.342;

/// The server's epoch tolerance (reception epoch vs EBID epoch).
const EPOCH_TOLERANCE: u64 = 1;

/// Fifteen windows: a level and a count each (count 0: empty).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Windows {
    /// Power-mean level (dB) per window.
    pub pow: [f32; W],
    /// Arithmetic-mean level (dB) per window.
    pub mean: [f32; W],
    /// HELLOs per window (saturating).
    pub n: [u16; W],
}

/// What the server makes of one upload of a group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServerSide {
    /// Scoring v2's windows (its `t0`, its `k > 15 → 14` quirk).
    pub v2: Windows,
    /// v2: the last occupied window (`kmax`).
    pub v2_kmax: u8,
    /// v2: the contact scores 0 ("coming too late": last − first > 900 s).
    pub v2_too_late: bool,
    /// The typical-level windows (t0 = earliest kept HELLO).
    pub typical: Windows,
    /// The typical-level duration in minutes (≤ 15).
    pub typical_minutes: f32,
    /// At least one HELLO passed the server's checks.
    pub any: bool,
}

/// One EBID group, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// Index of the report in the recording.
    pub report: u16,
    /// The sender (person id, an index in [`Compiled::scored`]).
    pub sender: u32,
    /// UTC day of the EBID's epoch, counted from the recording's first day.
    pub day: u16,
    /// Filter: span of the HELLOs in the window (s).
    pub filter_duration_s: u32,
    /// Filter windows (levels with the SDK's constant; `pow` only).
    pub filter: Windows,
    /// Server side of the clipped upload (modes MEDIUM and RISKS).
    pub clipped: ServerSide,
    /// Server side of the raw upload (mode FULL) when it differs.
    pub raw: Option<Box<ServerSide>>,
}

/// A recording, compiled for one (Δ, clip, rssi_max).
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The anchor shift applied (dB).
    pub shift_db: i32,
    /// The clipping threshold applied (`rssiThreshold`).
    pub clip: i32,
    /// The server cap applied (`rssi-max`).
    pub rssi_max: i32,
    /// Days covered (per-phone day sums have this many slots).
    pub days: usize,
    /// Groups, in upload order (reports in order, groups sorted by key).
    pub groups: Vec<Group>,
    /// Per person: not a positive case and registered (only those count).
    pub scored: Vec<bool>,
    /// Per person: may receive a score (registered, not positive).
    pub registered: Vec<bool>,
}

fn level_windows(slots: &[(f64, f64, u32); W], a: f64) -> Windows {
    let mut w = Windows::default();
    for k in 0..W {
        let (mut sum, mut pow, mut n) = slots[k];
        if let Some(next) = slots.get(k + 1) {
            sum += next.0;
            pow += next.1;
            n += next.2;
        }
        if n == 0 {
            continue;
        }
        let nf = f64::from(n);
        // Levels are a few tens of dB; f32 keeps 1e-6 dB.
        {
            w.pow[k] = (a * (pow / nf).ln()) as f32;
            w.mean[k] = (sum / nf) as f32;
        }
        w.n[k] = u16::try_from(n).unwrap_or(u16::MAX);
    }
    w
}

/// The SDK's peak clipping over values in time order (robert_core::filter step 3).
fn clip_peaks(values: &mut [i32], threshold: i32) -> bool {
    let original = values.to_vec();
    let mut changed = false;
    for pos in 0..values.len() {
        let current = original[pos];
        if current > threshold {
            let previous = if pos == 0 { current } else { values[pos - 1] };
            let next = original.get(pos + 1).copied().unwrap_or(current);
            let v = threshold.min(previous.min(next));
            changed |= v != current;
            values[pos] = v;
        }
    }
    changed
}

/// The server side of one upload: `(time, value)` in upload order, already
/// filtered by the server's checks.
fn server_side(upload: &[(u64, i32)], rssi_max: i32) -> ServerSide {
    let mut side = ServerSide::default();
    let (Some(first), Some(last)) = (upload.first(), upload.last()) else {
        return side;
    };
    side.any = true;
    let keep = |r: i32| r <= robert_core::scoring::v2::RSSI_ERROR_THRESHOLD;
    // v2: t0 = first in upload order; k > 15 → 14; keep 0 ≤ k < 15.
    let t0 = i128::from(first.0);
    side.v2_too_late = i128::from(last.0) - t0 > i128::from(EPOCH_DURATION_SECS);
    let mut slots = [(0.0, 0.0, 0u32); W];
    for &(t, r) in upload {
        let mut k = (i128::from(t) - t0).div_euclid(60);
        if k > W as i128 {
            k = W as i128 - 1;
        }
        if (0..W as i128).contains(&k) && keep(r) {
            let v = f64::from(r.min(rssi_max));
            // 0 ≤ k < 15.
            let s = &mut slots[k as usize];
            s.0 += v;
            s.1 += (v / V2_A).exp();
            s.2 += 1;
        }
    }
    side.v2 = level_windows(&slots, V2_A);
    side.v2_kmax = (0..W)
        .rev()
        .find(|&k| side.v2.n[k] > 0)
        .and_then(|k| u8::try_from(k).ok())
        .unwrap_or(0);
    // Typical level: drop errors, sort, t0 = earliest, keep t − t0 < 900.
    let mut kept: Vec<(u64, f64)> = upload
        .iter()
        .filter(|(_, r)| keep(*r))
        .map(|&(t, r)| (t, f64::from(r.min(rssi_max))))
        .collect();
    kept.sort_by_key(|h| h.0);
    if let Some(&(t0, _)) = kept.first() {
        kept.retain(|h| h.0 - t0 < EPOCH_DURATION_SECS);
        let mut slots = [(0.0, 0.0, 0u32); W];
        for &(t, v) in &kept {
            // (t − t0) / 60 < 15.
            let s = &mut slots[((t - t0) / 60) as usize];
            s.0 += v;
            s.1 += (v / robert_core::scoring::typical::POWER_MEAN_A).exp();
            s.2 += 1;
        }
        side.typical = level_windows(&slots, robert_core::scoring::typical::POWER_MEAN_A);
        let span = kept.last().map_or(0, |h| h.0 - t0);
        // Below 900 s.
        {
            side.typical_minutes = ((span as f64 / 60.0).min(W as f64)) as f32;
        }
    }
    side
}

/// Compiles one group for a report window; `None` when no HELLO is in it.
fn compile_group(
    g: &GroupRecord,
    window: (u64, u64),
    shift: i32,
    clip: i32,
    rssi_max: i32,
) -> Option<(u32, ServerSide, Option<Box<ServerSide>>, Windows)> {
    let times: Vec<u64> = g.times().collect();
    let a = times.partition_point(|&t| t < window.0);
    let b = times.partition_point(|&t| t <= window.1);
    if a >= b {
        return None;
    }
    let idx: Vec<usize> = (a..b).collect();
    let values: Vec<i32> = idx.iter().map(|&i| i32::from(g.rssi[i]) + shift).collect();
    // Filter: stable sort by time.
    let mut order: Vec<usize> = (0..idx.len()).collect();
    order.sort_by_key(|&j| times[idx[j]]);
    let first_t = times[idx[order[0]]];
    let last_t = times[idx[order[order.len() - 1]]];
    let duration = u32::try_from(last_t - first_t).unwrap_or(u32::MAX);
    let mut sorted_vals: Vec<i32> = order.iter().map(|&j| values[j]).collect();
    let changed = clip_peaks(&mut sorted_vals, clip);
    let mut clipped = vec![0; values.len()];
    for (&j, &v) in order.iter().zip(&sorted_vals) {
        clipped[j] = v;
    }
    // Filter windows: epochStart from the first sample in storage order.
    let epoch_start = times[idx[0]] / EPOCH_DURATION_SECS * EPOCH_DURATION_SECS;
    let mut slots = [(0.0, 0.0, 0u32); W];
    for (j, &i) in idx.iter().enumerate() {
        let d = i128::from(times[i]) - i128::from(epoch_start);
        let k = d.div_euclid(60);
        if (0..W as i128).contains(&k) {
            // 0 ≤ k < 15.
            let s = &mut slots[k as usize];
            let v = f64::from(clipped[j]);
            s.0 += v;
            s.1 += (v / FILTER_A).exp();
            s.2 += 1;
        }
    }
    let filter = level_windows(&slots, FILTER_A);
    // What the server keeps of an upload.
    let upload = |vals: &[i32]| -> Vec<(u64, i32)> {
        idx.iter()
            .zip(vals)
            .filter(|&(&i, _)| {
                let i32_index = u32::try_from(i).unwrap_or(u32::MAX);
                g.bad_time16.binary_search(&i32_index).is_err()
                    && (times[i] / EPOCH_DURATION_SECS).abs_diff(g.epoch) <= EPOCH_TOLERANCE
            })
            .map(|(&i, &v)| (times[i], v))
            .collect()
    };
    let clipped_side = server_side(&upload(&clipped), rssi_max);
    let raw_side = changed.then(|| Box::new(server_side(&upload(&values), rssi_max)));
    Some((duration, clipped_side, raw_side, filter))
}

/// Compiles a recording (module docs).
pub fn compile(rec: &Recording, shift_db: i32, clip: i32, rssi_max: i32) -> Compiled {
    let first_day = rec.start_ntp / 86_400;
    let mut groups = Vec::new();
    let mut days = usize::try_from(rec.days).unwrap_or(1).max(1);
    for (k, report) in rec.reports.iter().enumerate() {
        if !report.uploaded {
            continue;
        }
        for g in &report.groups {
            if g.sender == UNKNOWN_SENDER {
                continue;
            }
            let Some((duration, clipped, raw, filter)) =
                compile_group(g, report.window_ntp, shift_db, clip, rssi_max)
            else {
                continue;
            };
            let day = (g.epoch * EPOCH_DURATION_SECS / 86_400).saturating_sub(first_day);
            let day = u16::try_from(day).unwrap_or(u16::MAX);
            days = days.max(usize::from(day) + 1);
            groups.push(Group {
                report: u16::try_from(k).unwrap_or(u16::MAX),
                sender: g.sender,
                day,
                filter_duration_s: duration,
                filter,
                clipped,
                raw,
            });
        }
    }
    Compiled {
        shift_db,
        clip,
        rssi_max,
        days,
        groups,
        scored: rec.phones.iter().map(|p| !p.positive).collect(),
        registered: rec.phones.iter().map(|p| p.registered).collect(),
    }
}

/// The on-device filter's settings the optimiser varies.
#[derive(Clone, Debug, PartialEq)]
pub struct FilterSetting {
    /// Mode.
    pub mode: FilterMode,
    /// `durationThreshold` (s).
    pub duration_s: u32,
    /// `riskThreshold` (mode RISKS).
    pub risk_threshold: f64,
    /// `p0` (dBm).
    pub p0: f64,
}

/// The SDK's ten deltas.
const FILTER_DELTAS: [f64; 10] = [39.0, 27.0, 23.0, 21.0, 20.0, 19.0, 18.0, 17.0, 16.0, 15.0];
/// The filter's soft-max constant for window risks.
const FILTER_B: f64 = 0.1;

fn softmax(values: impl Iterator<Item = f64>, c: f64) -> f64 {
    let (mut sum, mut n) = (0.0, 0u32);
    for x in values {
        sum += (x / c).exp();
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        c * (sum / f64::from(n)).ln()
    }
}

impl FilterSetting {
    /// Whether the filter keeps a group.
    pub fn accepts(&self, g: &Group) -> bool {
        if g.filter_duration_s < self.duration_s {
            return false;
        }
        if self.mode != FilterMode::Risks {
            return true;
        }
        let w = &g.filter;
        let mut risks = [0.0f64; W];
        let mut density = 0u32;
        for ((risk, &n), &level) in risks.iter_mut().zip(&w.n).zip(&w.pow) {
            let n = usize::from(n);
            if n == 0 {
                continue;
            }
            let gamma = (f64::from(level) - self.p0) / FILTER_DELTAS[(n - 1).min(9)];
            let v = if gamma.is_nan() {
                0.0
            } else {
                gamma.clamp(0.0, 1.0)
            };
            *risk = v;
            if v > 0.0 {
                density += 1;
            }
        }
        let intermediate = softmax(risks.iter().copied(), FILTER_B);
        let risk = intermediate * (f64::from(g.filter_duration_s) / 60.0 + f64::from(density))
            / (2.0 * W as f64);
        risk >= self.risk_threshold
    }
}

/// The server-side estimator the optimiser varies.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerSetting {
    /// Scoring v2: `p0`, the deltas scaled by `delta_scale`; statistic `S`.
    V2 {
        /// `p0` (dBm).
        p0: f64,
        /// Multiplies the reference deltas.
        delta_scale: f64,
    },
    /// The typical-level scoring; statistic: the worst day's near-minutes.
    Typical(TypicalSetting),
}

/// The typical-level scoring's values the optimiser varies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TypicalSetting {
    /// `level_low` (dBm).
    pub level_low: f64,
    /// `level_high − level_low` (dB).
    pub width: f64,
    /// Quantile of the window levels.
    pub quantile: f64,
    /// Minimum duration (minutes).
    pub min_minutes: f64,
    /// Window level kind.
    pub level: WindowLevel,
}

impl TypicalSetting {
    /// The scoring's parameters with these values, the default `rssi_max`
    /// and `r0`.
    pub fn params(&self, r0: f64) -> TypicalParams {
        TypicalParams {
            level_low: self.level_low,
            level_high: self.level_low + self.width,
            quantile: self.quantile,
            min_minutes: self.min_minutes,
            level: self.level,
            r0,
            ..TypicalParams::default()
        }
    }
}

/// The reference deltas of scoring v2.
const V2_DELTAS: [f64; 6] = [39.0, 27.0, 23.0, 21.0, 20.0, 15.0];

impl ServerSetting {
    fn score(&self, s: &ServerSide, levels: &mut Vec<f64>) -> f64 {
        match *self {
            Self::V2 { p0, delta_scale } => {
                if s.v2_too_late {
                    return 0.0;
                }
                let mut risks = [0.0f64; W];
                let mut m = 0;
                for k in 0..W {
                    let n = usize::from(s.v2.n[k]);
                    if n == 0 {
                        continue;
                    }
                    let gamma = (f64::from(s.v2.pow[k]) - p0) / (V2_DELTAS[n.min(5)] * delta_scale);
                    // v2's comparison chain (−0.0 becomes +0.0).
                    #[allow(clippy::manual_clamp, reason = "exact reference semantics")]
                    let v = if gamma <= 0.0 {
                        0.0
                    } else if gamma >= 1.0 {
                        1.0
                    } else {
                        gamma
                    };
                    risks[m] = v;
                    m += 1;
                }
                let per_minute = (softmax(risks[..m].iter().copied(), 0.2) * 1.2).min(1.0);
                per_minute * f64::from(s.v2_kmax)
            }
            Self::Typical(TypicalSetting {
                level_low,
                width,
                quantile,
                min_minutes,
                level,
            }) => {
                let minutes = f64::from(s.typical_minutes);
                if minutes < min_minutes || minutes <= 0.0 {
                    return 0.0;
                }
                levels.clear();
                for k in 0..W {
                    if s.typical.n[k] > 0 {
                        levels.push(f64::from(match level {
                            WindowLevel::Mean => s.typical.mean[k],
                            WindowLevel::PowerMean => s.typical.pow[k],
                        }));
                    }
                }
                if levels.is_empty() {
                    return 0.0;
                }
                levels.sort_by(f64::total_cmp);
                let m = levels.len();
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::cast_precision_loss
                )]
                let idx = ((quantile * (m - 1) as f64).round() as usize).min(m - 1);
                let l = levels[idx];
                let w = if width <= 0.0 {
                    if l > level_low { 1.0 } else { 0.0 }
                } else {
                    ((l - level_low) / width).clamp(0.0, 1.0)
                };
                minutes * w
            }
        }
    }

    /// Whether the statistic is per day (the worst day) or a total.
    fn daily(&self) -> bool {
        matches!(self, Self::Typical { .. })
    }
}

/// Per-phone statistic of a compiled recording under a setting (module
/// docs): `S` for v2, the worst day's near-minutes for the typical level.
pub fn statistic(c: &Compiled, filter: &FilterSetting, server: &ServerSetting, out: &mut Vec<f64>) {
    let n = c.scored.len();
    let days = c.days;
    let mut sums = vec![0.0f64; n * days];
    let mut levels = Vec::with_capacity(W);
    for g in &c.groups {
        let sender = g.sender as usize;
        if sender >= n || !c.registered[sender] || !filter.accepts(g) {
            continue;
        }
        let side = match (&g.raw, filter.mode) {
            (Some(raw), FilterMode::Full) => raw.as_ref(),
            _ => &g.clipped,
        };
        if !side.any {
            continue;
        }
        let s = server.score(side, &mut levels);
        let day = usize::from(g.day).min(days - 1);
        sums[sender * days + day] += s;
    }
    out.clear();
    let daily = server.daily();
    for i in 0..n {
        let row = &sums[i * days..(i + 1) * days];
        out.push(if daily {
            row.iter().copied().fold(0.0, f64::max)
        } else {
            row.iter().sum()
        });
    }
}
