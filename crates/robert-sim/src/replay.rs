//! Offline re-scoring of a [`Recording`]: the same decisions the online run
//! takes, from the recorded contact stores, in milliseconds.
//!
//! The pipeline is made of the real functions, in the order the system
//! applies them (pure; no server, no clock):
//!
//! ```text
//! for each batch time b (in order):
//!   for each report declared at or before b, not yet processed, that reached the server:
//!     for each EBID group of the case's store (sorted by key, as uploaded):
//!       HELLOs inside the report window                        (robert_client::report)
//!       rssi ← rssi + Δ                                       (anchor shift, module docs)
//!       robert_core::filter::ProximityFilter::filter           (on-device filter)
//!       server validation: Time16 within tolerance, |epoch(t) − epoch(EBID)| ≤ 1
//!       robert_core::scoring::Scoring::score                   (server scoring)
//!       exposedEpochs[sender][EBID epoch] += score
//!   every registration with new scores: purge, then robert_core::scoring::evaluate_risk
//!   AtRisk ⇒ the phone is alerted (its next status request returns risk level 4)
//! ```
//!
//! **Anchor shift.** Calibrated RSSI is `raw − txGain − rxGain`: moving the
//! calibration's absolute level (the "anchor", −35 dB at 1 m in the radio
//! model) moves every calibrated value by the same Δ and changes nothing
//! the radio does (the receiver floor acts on raw RSSI). Δ is therefore
//! applied to the recorded calibrated values; anchor −50 is Δ = −15.
//!
//! **Difference from the online run.** An online phone sees an alert only
//! when it asks its status while the flag is set (every ~8 hours, and once
//! after the final batch); the flag lasts at least 7 days, longer than any
//! corpus scenario, so "AtRisk at some batch" is "alerted". The offline =
//! online test (`tests/it/replay.rs`) checks this phone by phone.

use rand::SeedableRng as _;
use rand::rngs::ChaCha8Rng;
use robert_core::filter::{FilterConfig, FilterMode, ProximityFilter, RssiSample};
use robert_core::scoring::{
    EpochExposure, RiskDecision, RiskParams, RiskState, Scoring, ScoringInput, evaluate_risk,
    purge_exposures,
};
use robert_core::time::{
    EPOCH_DURATION_SECS, Epoch, NtpSeconds, SECONDS_PER_DAY, ServiceStart, UtcDate,
};

use crate::recording::{GroupRecord, Recording, UNKNOWN_SENDER};

/// The server's Time16 tolerance is recorded per HELLO; the epoch
/// tolerance (reception epoch vs EBID epoch) is checked here.
const EPOCH_TOLERANCE: u64 = 1;

/// Everything a re-scoring varies.
#[derive(Clone, Debug)]
pub struct ReplaySettings {
    /// Added to every calibrated RSSI before anything else (dB).
    pub anchor_shift_db: i32,
    /// The on-device filter.
    pub filter: ProximityFilter,
    /// The filter mode.
    pub filter_mode: FilterMode,
    /// The server's scoring (and with it the aggregation).
    pub scoring: Scoring,
    /// The server's risk rules.
    pub risk: RiskParams,
}

impl ReplaySettings {
    /// The deployed values: the 2020 filter in mode RISKS, scoring v2, risk
    /// threshold 0.1, no anchor shift.
    pub fn reference() -> Self {
        Self {
            anchor_shift_db: 0,
            filter: ProximityFilter::default(),
            filter_mode: FilterMode::Risks,
            scoring: Scoring::default(),
            risk: RiskParams::default(),
        }
    }

    /// The settings the recorded online run used (filter thresholds, mode,
    /// scoring, risk threshold); other filter values are the 2020 ones.
    pub fn online(rec: &Recording) -> Result<Self, String> {
        let o = &rec.online;
        let filter = ProximityFilter::new(FilterConfig {
            duration_threshold_secs: o.filter_duration_threshold_s,
            risk_threshold: o.filter_risk_threshold,
            p0: o.filter_p0,
            rssi_threshold: o.filter_rssi_threshold,
            ..FilterConfig::app_2020()
        })
        .map_err(|e| e.to_string())?;
        let filter_mode = FilterMode::from_config(&o.filter_mode)
            .ok_or_else(|| format!("unknown filter mode {}", o.filter_mode))?;
        let batch = robert_server::batch::BatchConfig {
            scoring: o.scoring.clone(),
            risk_threshold: o.risk_threshold,
            ..Default::default()
        };
        let scoring = batch.scoring_algorithm().map_err(|e| e.to_string())?;
        Ok(Self {
            anchor_shift_db: 0,
            filter,
            filter_mode,
            scoring,
            risk: RiskParams {
                risk_threshold: o.risk_threshold,
                ..RiskParams::default()
            },
        })
    }
}

/// The outcome of a re-scoring, per person.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// At risk at some batch (positive cases: always false).
    pub alerted: Vec<bool>,
    /// Index of the batch that first found the phone at risk.
    pub first_alert_batch: Vec<Option<usize>>,
    /// The aggregated risk over every exposure, after the last batch
    /// (the statistic that a threshold sweep cuts).
    pub final_risk: Vec<f64>,
    /// The plain sum of every stored contact score after the last batch
    /// (the online run's `S`).
    pub score_sum: Vec<f64>,
    /// Contacts (EBID groups) uploaded, over all reports.
    pub contacts_uploaded: usize,
    /// Contacts the on-device filter kept back.
    pub contacts_filtered: usize,
}

/// One scored contact, for explanations.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredContact {
    /// The report (index in [`Recording::reports`]).
    pub report: usize,
    /// The sender's person id.
    pub sender: u32,
    /// The EBID epoch (NTP-based, see [`GroupRecord::epoch`]).
    pub epoch: u64,
    /// The contact score.
    pub score: f64,
}

/// The HELLOs of a group inside a report window, shifted by Δ, as the
/// filter sees them (storage order), with their index in the group.
fn window_samples(g: &GroupRecord, window: (u64, u64), shift: i32) -> (Vec<RssiSample>, Vec<u32>) {
    // select_contacts: partition points on the (time-ordered) store.
    let times: Vec<u64> = g.times().collect();
    let a = times.partition_point(|&t| t < window.0);
    let b = times.partition_point(|&t| t <= window.1);
    if a >= b {
        return (Vec::new(), Vec::new());
    }
    let samples = (a..b)
        .map(|i| {
            RssiSample::new(
                NtpSeconds(times[i]),
                (i32::from(g.rssi[i]) + shift).clamp(i32::from(i16::MIN), i32::from(i16::MAX)),
            )
        })
        .collect();
    let index = (a..b).filter_map(|i| u32::try_from(i).ok()).collect();
    (samples, index)
}

/// What the on-device filter and the server make of one group: the scoring
/// inputs (`None` when the filter kept the group back, an empty list when
/// the server rejects every HELLO).
pub fn server_inputs(
    g: &GroupRecord,
    window: (u64, u64),
    s: &ReplaySettings,
) -> Option<Vec<ScoringInput>> {
    let (samples, index) = window_samples(g, window, s.anchor_shift_db);
    if samples.is_empty() {
        return Some(Vec::new());
    }
    let accepted = match s.filter.filter(&samples, s.filter_mode) {
        robert_core::filter::FilterOutcome::Accepted(a) => a,
        robert_core::filter::FilterOutcome::Rejected(_) => return None,
    };
    let mut inputs = Vec::with_capacity(samples.len());
    for ((sample, &rssi), &i) in samples.iter().zip(&accepted.rssi).zip(&index) {
        if g.bad_time16.binary_search(&i).is_ok() {
            continue;
        }
        let received = sample.time.get() / EPOCH_DURATION_SECS;
        if received.abs_diff(g.epoch) > EPOCH_TOLERANCE {
            continue;
        }
        // The SDK stores i16; shifted and clipped values stay far inside it.
        let rssi = rssi.clamp(i32::from(i16::MIN), i32::from(i16::MAX));
        inputs.push(ScoringInput::new(sample.time, rssi));
    }
    Some(inputs)
}

/// The simulated server's service start.
fn service_start(rec: &Recording) -> ServiceStart {
    let days = i64::try_from(rec.service_start_ntp / SECONDS_PER_DAY).unwrap_or(0);
    // NTP day 0 is 1900-01-01.
    ServiceStart::new(
        UtcDate::new(1900, 1, 1).map_or(ServiceStart::REFERENCE.date(), |d| d.add_days(days)),
    )
}

/// The server epoch that an NTP-based epoch is.
fn server_epoch(start: &ServiceStart, ntp_epoch: u64) -> Epoch {
    let origin = start.ntp().get() / EPOCH_DURATION_SECS;
    Epoch(u32::try_from(ntp_epoch.saturating_sub(origin)).unwrap_or(u32::MAX))
}

/// Re-scores a recording (module docs). `on_contact` sees every scored
/// contact (for explanations); pass `|_| {}` otherwise.
pub fn replay_with(
    rec: &Recording,
    s: &ReplaySettings,
    mut on_contact: impl FnMut(ScoredContact),
) -> Replay {
    let n = rec.phones.len();
    let start = service_start(rec);
    let aggregation = s.scoring.aggregation();
    let mut exposures: Vec<Vec<EpochExposure>> = vec![Vec::new(); n];
    let mut state = vec![RiskState::default(); n];
    let mut out = Replay {
        alerted: vec![false; n],
        first_alert_batch: vec![None; n],
        final_risk: vec![0.0; n],
        score_sum: vec![0.0; n],
        ..Replay::default()
    };
    // The decision does not depend on the random last-contact date.
    let mut rng = ChaCha8Rng::seed_from_u64(rec.seed);
    let mut next_report = 0;
    for (b, &at) in rec.batches_s.iter().enumerate() {
        let mut outdated = vec![false; n];
        while let Some(report) = rec.reports.get(next_report) {
            if report.declared_s > at {
                break;
            }
            let k = next_report;
            next_report += 1;
            if !report.uploaded {
                continue;
            }
            for g in &report.groups {
                let Some(inputs) = server_inputs(g, report.window_ntp, s) else {
                    out.contacts_filtered += 1;
                    continue;
                };
                if inputs.is_empty() {
                    continue;
                }
                out.contacts_uploaded += 1;
                let sender = g.sender as usize;
                if g.sender == UNKNOWN_SENDER
                    || !rec.phones.get(sender).is_some_and(|p| p.registered)
                {
                    continue;
                }
                let Ok(score) = s.scoring.score(&inputs) else {
                    continue;
                };
                on_contact(ScoredContact {
                    report: k,
                    sender: g.sender,
                    epoch: g.epoch,
                    score: score.score,
                });
                let epoch = server_epoch(&start, g.epoch);
                let list = &mut exposures[sender];
                match list.iter_mut().find(|e| e.epoch == epoch) {
                    Some(e) => e.scores.push(score.score),
                    None => list.push(EpochExposure::new(epoch, vec![score.score])),
                }
                outdated[sender] = true;
            }
        }
        let now = NtpSeconds(rec.start_ntp.saturating_add(at.max(0.0) as u64));
        let current = start.epoch_at(now);
        for i in (0..n).filter(|&i| outdated[i]) {
            purge_exposures(&mut exposures[i], current, s.risk.contagious_period_days);
            exposures[i].sort_by_key(|e| e.epoch);
            let ev = evaluate_risk(
                &exposures[i],
                &state[i],
                aggregation,
                &s.risk,
                &start,
                now,
                &mut rng,
            );
            if let RiskDecision::AtRisk {
                last_contact,
                latest_risk_epoch,
            } = ev.decision
            {
                state[i] = RiskState {
                    latest_risk_epoch,
                    last_contact,
                };
                if !rec.phones[i].positive && !out.alerted[i] {
                    out.alerted[i] = true;
                    out.first_alert_batch[i] = Some(b);
                }
            }
        }
    }
    for (i, list) in exposures.iter().enumerate() {
        out.final_risk[i] = aggregation.aggregate_exposures(list);
        out.score_sum[i] = list.iter().flat_map(|e| &e.scores).sum();
    }
    out
}

/// [`replay_with`] without the per-contact callback.
pub fn replay(rec: &Recording, s: &ReplaySettings) -> Replay {
    replay_with(rec, s, |_| {})
}
