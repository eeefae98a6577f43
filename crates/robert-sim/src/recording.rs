//! The reception recorder: what a run needs to be re-scored offline.
//!
//! A [`Recording`] keeps, for one run (scenario × radio draw):
//!
//! * for each positive case that reported, its **whole contact store at
//!   report time, before the on-device filter**: per EBID group the sender
//!   phone, the EBID's epoch, every HELLO's collection time and calibrated
//!   RSSI, and which HELLOs the server would reject on their Time16;
//! * the report window, the times of the risk batches and of the final
//!   status round;
//! * per phone: group, OS, whether it was a positive case, registered, and
//!   what the online run decided (first alert, server score `S`);
//! * per (case, phone) pair that came within the largest truth distance:
//!   the cumulated seconds on the worst UTC day (inside the case's
//!   contagious window) within each distance of [`TRUTH_DISTANCES_M`], and
//!   where it happened. The ground truth at 1 m and 2 m, and the
//!   explanation of an alert ("40 minutes within 2 m, none within 1 m"),
//!   both come from these.
//!
//! [`crate::replay`] re-scores a recording under any setting in
//! milliseconds instead of re-simulating it. Recordings persist as gzipped
//! JSON ([`Recording::save`], [`Recording::load`]); HELLO times are
//! delta-encoded, so a HELLO costs a few bytes.
//!
//! ```text
//! run ──declare──▶ contact store (all groups, unfiltered) ─┐
//!     ──batches──▶ batch times                              ├─▶ Recording ──save──▶ *.json.gz
//!     ──truth────▶ per pair: seconds within 1, 1.5, 2, 3, 5 m
//!     ──online───▶ per phone: alert, S                      ┘
//! ```

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read as _, Write as _};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use robert_client::contacts::{ContactKey, ContactRecord};
use robert_radio::channel::EnvironmentKind;
use robert_radio::scenario::World;
use robert_radio::truth::{GroundTruth, TruthConfig};
use robert_server::batch::ScoringConfig;
use serde::{Deserialize, Serialize};

use crate::exposure::{PlaceSecs, add_by_day, cases_by_person, for_each_piece};

/// Version of the recording format; [`Recording::load`] refuses others
/// (2: per-HELLO oracle data, [`GroupRecord::distance_cm`]).
pub const FORMAT_VERSION: u32 = 2;

/// The distances (m) at which every pair's exposure is measured.
pub const TRUTH_DISTANCES_M: [f64; 5] = [1.0, 1.5, 2.0, 3.0, 5.0];

/// A sender that the recorder could not attribute (never seen building a
/// payload; should not happen).
pub const UNKNOWN_SENDER: u32 = u32::MAX;

/// One run, recorded for offline re-scoring (module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// Scenario name.
    pub scenario: String,
    /// Seed of the run (the radio draw).
    pub seed: u64,
    /// Fingerprint of the scenario as run ([`scenario_fingerprint`]): a
    /// cached recording of another version of the scenario is not reused.
    #[serde(default)]
    pub scenario_fingerprint: u64,
    /// NTP seconds of simulation time 0 (a UTC midnight).
    pub start_ntp: u64,
    /// NTP seconds of the simulated server's service start (a UTC midnight).
    pub service_start_ntp: u64,
    /// Simulated days.
    pub days: u32,
    /// The scenario's contact duration (minutes within D on one UTC day).
    pub truth_minutes: f64,
    /// The distances of [`PairExposure::max_day_s`] ([`TRUTH_DISTANCES_M`]).
    pub distances_m: Vec<f64>,
    /// Simulation times of the risk batches, in order (the last one is the
    /// final batch at the end of the run).
    pub batches_s: Vec<f64>,
    /// Simulation time of the final status round.
    pub final_status_s: f64,
    /// The settings of the online run.
    pub online: OnlineSettings,
    /// One row per person, indexed by person id.
    pub phones: Vec<PhoneRecord>,
    /// One per positive case that reported, in declaration order.
    pub reports: Vec<ReportRecord>,
    /// One per (case, phone) pair within the largest distance at some time.
    pub exposures: Vec<PairExposure>,
}

/// The thresholds the online run used (for the offline = online check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineSettings {
    /// Filter mode (`FULL`, `MEDIUM`, `RISKS`).
    pub filter_mode: String,
    /// Filter `durationThreshold` (s).
    pub filter_duration_threshold_s: u64,
    /// Filter `riskThreshold`.
    pub filter_risk_threshold: f64,
    /// Filter `p0`.
    pub filter_p0: f64,
    /// Filter `rssiThreshold` (clipping).
    pub filter_rssi_threshold: i32,
    /// The server's scoring configuration.
    pub scoring: ScoringConfig,
    /// The server's risk threshold.
    pub risk_threshold: f64,
}

/// One person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhoneRecord {
    /// The scenario group the person belongs to.
    pub group: String,
    /// `android` or `ios`.
    pub os: String,
    /// A positive case (not counted in confusion matrices).
    pub positive: bool,
    /// Registered with the server (only registered phones can be alerted).
    pub registered: bool,
    /// Online run: simulation time of the first risk level 4, if any.
    pub online_alert_s: Option<f64>,
    /// Online run: the server's score `S` at the end.
    pub online_score: f64,
}

/// A positive case's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// The case's person id.
    pub person: u32,
    /// Simulation time of the declaration.
    pub declared_s: f64,
    /// Report window, NTP seconds, inclusive (`from`, `to`).
    pub window_ntp: (u64, u64),
    /// The report reached the server (it failed otherwise).
    pub uploaded: bool,
    /// The contact store at report time, sorted by key as the SDK sends it.
    pub groups: Vec<GroupRecord>,
}

/// One EBID group of a contact store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The sender's person id ([`UNKNOWN_SENDER`] if unknown).
    pub sender: u32,
    /// The EBID's epoch, counted from NTP time 0 (`floor(t / 900)` of the
    /// instant the sender built the HELLO): only differences and the UTC
    /// day (`epoch / 96`) matter.
    pub epoch: u64,
    /// Collection time of the first HELLO (NTP seconds).
    pub t0: u64,
    /// Each HELLO's collection time minus the previous one's (the first is 0),
    /// in storage order.
    pub dt: Vec<i32>,
    /// Each HELLO's calibrated RSSI (dBm).
    pub rssi: Vec<i16>,
    /// Indexes of HELLOs whose Time16 the server rejects (more than the
    /// tolerance away from the collection time); normally empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_time16: Vec<u32>,
    /// Oracle data, for the study's bounds only (no phone knows it): each
    /// HELLO's true plan distance between the two people when it was
    /// collected, in centimetres ([`UNKNOWN_DISTANCE_CM`] if the recorder
    /// missed it). Empty in recordings made before format 2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distance_cm: Vec<u16>,
    /// Oracle data: each HELLO's noiseless model level, tenths of dB — the
    /// calibrated RSSI that the place's path loss alone gives at that
    /// distance (`anchor − (PL(d) − PL₀,free space)`: no placement, body,
    /// device, shadowing or fading term; [`UNKNOWN_LEVEL_DDB`] if missed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_level_ddb: Vec<i16>,
}

/// [`GroupRecord::distance_cm`] of a HELLO the recorder could not place.
pub const UNKNOWN_DISTANCE_CM: u16 = u16::MAX;

/// [`GroupRecord::model_level_ddb`] of a HELLO the recorder could not place.
pub const UNKNOWN_LEVEL_DDB: i16 = i16::MIN;

/// What the recorder knows of a reception that no phone knows: the true
/// plan distance (cm) and the noiseless model level (tenths of dB).
pub type OracleFacts = (u16, i16);

impl GroupRecord {
    /// Collection times (NTP seconds), in storage order.
    pub fn times(&self) -> impl Iterator<Item = u64> + '_ {
        let mut t = i128::from(self.t0);
        self.dt.iter().map(move |d| {
            t += i128::from(*d);
            // Times are NTP seconds of real receptions: positive, below 2^64.
            u64::try_from(t).unwrap_or(0)
        })
    }

    /// Number of HELLOs.
    pub fn len(&self) -> usize {
        self.rssi.len()
    }

    /// Whether the group has no HELLO.
    pub fn is_empty(&self) -> bool {
        self.rssi.is_empty()
    }
}

/// What a (case, phone) pair really lived through.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairExposure {
    /// Index of the case in the scenario's positives (declaration order).
    pub case: u32,
    /// The case's person id.
    pub positive: u32,
    /// The other phone's person id (never a positive case).
    pub phone: u32,
    /// Per distance of [`Recording::distances_m`]: cumulated seconds within
    /// it on the worst UTC day, inside the case's contagious window.
    pub max_day_s: Vec<f64>,
    /// Environment where the pair spent most time within the largest distance.
    pub environment: Option<String>,
    /// Group (place) where the pair spent most time within the largest distance.
    pub place_group: Option<String>,
}

/// Why a recording could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a recording.
    #[error("{path}: not a recording: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Recording {
    /// The phones that are not positive cases (those whose alerts are
    /// scored), with their indices in [`Recording::phones`].
    pub fn negatives(&self) -> impl Iterator<Item = (usize, &PhoneRecord)> {
        self.phones.iter().enumerate().filter(|(_, p)| !p.positive)
    }

    /// Writes the recording as gzipped JSON.
    pub fn save(&self, path: &Path) -> Result<(), RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut gz = GzEncoder::new(BufWriter::new(file), Compression::new(6));
        let json = serde_json::to_vec(self).map_err(|e| RecordingError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        gz.write_all(&json).map_err(io)?;
        gz.finish().map_err(io)?.flush().map_err(io)?;
        Ok(())
    }

    /// Reads a recording written by [`Recording::save`].
    pub fn load(path: &Path) -> Result<Self, RecordingError> {
        let file = std::fs::File::open(path).map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut json = Vec::new();
        GzDecoder::new(BufReader::new(file))
            .read_to_end(&mut json)
            .map_err(|source| RecordingError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let format = |message: String| RecordingError::Format {
            path: path.display().to_string(),
            message,
        };
        let rec: Self = serde_json::from_slice(&json).map_err(|e| format(e.to_string()))?;
        if rec.format != FORMAT_VERSION {
            return Err(format(format!(
                "format {} (this build reads {FORMAT_VERSION})",
                rec.format
            )));
        }
        if rec.distances_m.is_empty()
            || rec
                .exposures
                .iter()
                .any(|e| e.max_day_s.len() != rec.distances_m.len())
        {
            return Err(format("exposure rows do not match the distances".into()));
        }
        Ok(rec)
    }

    /// Index of a distance in [`Recording::distances_m`].
    pub fn distance_index(&self, distance_m: f64) -> Option<usize> {
        self.distances_m
            .iter()
            .position(|d| (d - distance_m).abs() < 1e-9)
    }

    /// Ground truth per person at a distance of [`Recording::distances_m`]:
    /// a contact at risk of at least one case (≥ `truth_minutes` on one UTC
    /// day within the distance). `None` for an unrecorded distance.
    pub fn truth(&self, distance_m: f64) -> Option<Vec<bool>> {
        let d = self.distance_index(distance_m)?;
        let cut = self.truth_minutes * 60.0;
        let mut out = vec![false; self.phones.len()];
        for e in &self.exposures {
            if e.max_day_s[d] > 0.0
                && e.max_day_s[d] >= cut
                && let Some(t) = out.get_mut(e.phone as usize)
            {
                *t = true;
            }
        }
        Some(out)
    }

    /// Per person: some case's report window holds at least one HELLO of
    /// its phone (before the on-device filter). No estimator can alert a
    /// phone that was never heard: this bounds every method's recall.
    pub fn heard(&self) -> Vec<bool> {
        let mut out = vec![false; self.phones.len()];
        for r in self.reports.iter().filter(|r| r.uploaded) {
            for g in &r.groups {
                if let Some(h) = out.get_mut(g.sender as usize)
                    && !*h
                {
                    *h = g
                        .times()
                        .any(|t| t >= r.window_ntp.0 && t <= r.window_ntp.1);
                }
            }
        }
        out
    }

    /// Number of HELLOs recorded in the reports' contact stores.
    pub fn hello_count(&self) -> usize {
        self.reports
            .iter()
            .flat_map(|r| &r.groups)
            .map(GroupRecord::len)
            .sum()
    }
}

/// A fingerprint of a scenario (FNV-1a over its debug form, which lists
/// every field): changes when the scenario changes.
pub fn scenario_fingerprint(s: &robert_radio::scenario::Scenario) -> u64 {
    let text = format!("{s:?}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Records one contact store group (sorted by key, as the SDK sends them).
/// `oracle(sender, collection time)` gives what the recorder noted of
/// that reception.
pub(crate) fn record_groups<'a>(
    groups: impl Iterator<Item = (&'a ContactKey, &'a [ContactRecord])>,
    owner: impl Fn(&ContactKey) -> Option<(u32, u64)>,
    oracle: impl Fn(u32, u64) -> Option<OracleFacts>,
    time_tolerance_secs: u32,
) -> Vec<GroupRecord> {
    let mut sorted: Vec<(&ContactKey, &[ContactRecord])> = groups.collect();
    sorted.sort_by_key(|(k, _)| **k);
    sorted
        .into_iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(key, records)| {
            let (sender, epoch) = owner(key).unwrap_or((UNKNOWN_SENDER, 0));
            let t0 = records[0].time_collected.get();
            let mut prev = i128::from(t0);
            let mut dt = Vec::with_capacity(records.len());
            let mut bad_time16 = Vec::new();
            for (i, r) in records.iter().enumerate() {
                let t = i128::from(r.time_collected.get());
                // Collection times of one group lie within a few epochs.
                dt.push(i32::try_from(t - prev).unwrap_or(i32::MAX));
                prev = t;
                if !r
                    .hello_time
                    .within(r.time_collected.time16(), time_tolerance_secs)
                {
                    bad_time16.push(u32::try_from(i).unwrap_or(u32::MAX));
                }
            }
            let facts: Vec<OracleFacts> = records
                .iter()
                .map(|r| {
                    oracle(sender, r.time_collected.get())
                        .unwrap_or((UNKNOWN_DISTANCE_CM, UNKNOWN_LEVEL_DDB))
                })
                .collect();
            GroupRecord {
                sender,
                epoch,
                t0,
                dt,
                rssi: records.iter().map(|r| r.rssi_calibrated).collect(),
                bad_time16,
                distance_cm: facts.iter().map(|f| f.0).collect(),
                model_level_ddb: facts.iter().map(|f| f.1).collect(),
            }
        })
        .collect()
}

/// Exposure of every (case, phone) pair at each of `distances`, inside each
/// case's window (`windows[k]`, simulation seconds). `cases[k]` is the
/// person of case `k`.
pub(crate) fn pair_exposures(
    world: &World,
    cases: &[u32],
    windows: &[(f64, f64)],
    is_positive: &[bool],
    distances: &[f64],
) -> Vec<PairExposure> {
    #[derive(Default)]
    struct Acc {
        days: Vec<BTreeMap<u32, f64>>,
        places: PlaceSecs,
    }
    let cases_of = cases_by_person(cases.iter().copied());
    let last = distances.len().saturating_sub(1);
    let mut acc: BTreeMap<(usize, u32), Acc> = BTreeMap::new();
    for (di, &d) in distances.iter().enumerate() {
        let gt = GroundTruth::compute(
            &world.population,
            TruthConfig {
                distance_m: d,
                at_risk_s: world.truth_config.at_risk_s,
            },
        );
        for_each_piece(&gt, &cases_of, windows, is_positive, |piece| {
            let a = acc.entry((piece.case, piece.phone)).or_default();
            a.days.resize_with(distances.len(), BTreeMap::new);
            add_by_day(&mut a.days[di], piece.start, piece.end);
            if di == last
                && let Some(place) = piece.place(world)
            {
                a.places.add(place, piece.end - piece.start);
            }
        });
    }
    acc.into_iter()
        .map(|((k, x), a)| {
            let max_day_s = (0..distances.len())
                .map(|i| {
                    a.days
                        .get(i)
                        .map_or(0.0, |d| d.values().copied().fold(0.0, f64::max))
                })
                .collect();
            let environment = a
                .places
                .env_secs
                .iter()
                .enumerate()
                .filter(|(_, s)| **s > 0.0)
                .max_by(|x, y| x.1.total_cmp(y.1))
                .and_then(|(i, _)| EnvironmentKind::ALL.get(i))
                .map(|k| k.name().to_owned());
            PairExposure {
                case: u32::try_from(k).unwrap_or(u32::MAX),
                positive: cases[k],
                phone: x,
                max_day_s,
                environment,
                place_group: a.places.top_group(),
            }
        })
        .collect()
}
