//! The end of the run: final batch and status round, then the score against the ground truth.

use std::time::Instant;

use crate::common::os_name;
use crate::error::SimError;
use crate::result::SimResult;
use crate::score::{self, RunFacts};

use super::{Recorder, Sim};
use crate::recording::{
    FORMAT_VERSION, OnlineSettings, PhoneRecord, Recording, TRUTH_DISTANCES_M, scenario_fingerprint,
};

impl Sim<'_> {
    /// End of the run: batch, then every registered phone asks its status
    /// an hour later; exposure scores are read from the server.
    pub(super) async fn finish(&mut self) -> Result<(), SimError> {
        let end = self.world.duration_s;
        self.backend.set_time(self.time.ntp(end));
        self.batch(end).await?;
        let at = end + 3600.0;
        self.recorder.final_status_s = at;
        let now = self.time.ntp(at);
        self.backend.set_time(now);
        let people: Vec<u32> = self
            .phones
            .iter()
            .enumerate()
            .filter(|(_, p)| p.phone.is_registered())
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        self.progress
            .phase(&self.world.name, "final status", people.len() as u64);
        let started = Instant::now();
        let outcomes = self.status_of(&people, now, true).await;
        self.meter.final_status += started.elapsed();
        self.meter.final_status_requests += outcomes.len() as u64;
        for (i, r) in outcomes {
            self.after_status(i, r, at);
        }
        self.progress.finish_phase();
        let alerted = self.first_alert.iter().filter(|a| a.is_some()).count();
        let text = format!(
            "every phone asks its status: {} requests, {} phones at risk level 4{}",
            people.len(),
            alerted,
            if self.counts.status_failures > 0 {
                format!(
                    " ({} status failures during the run, e.g. {})",
                    self.counts.status_failures,
                    self.status_errors.first().map_or("", String::as_str)
                )
            } else {
                String::new()
            }
        );
        self.event(at, text);
        Ok(())
    }

    /// Scores the run against the ground truth ([`score::score`]), with the
    /// server's exposure scores, and completes the recording if asked.
    pub(super) async fn score(&mut self) -> Result<SimResult, SimError> {
        let mut server_score = vec![0.0f64; self.phones.len()];
        for (i, id) in self.id_a.iter().enumerate() {
            if let Some(id) = id {
                server_score[i] = self.backend.exposure_score(*id).await?;
            }
        }
        let hellos_held: Vec<usize> = self
            .phones
            .iter()
            .map(|p| p.phone.contacts().len())
            .collect();
        let exposures = if self.opts.record || self.opts.keep_phone_outcomes {
            let cases: Vec<u32> = self.positives.iter().map(|r| r.case.person).collect();
            let windows: Vec<(f64, f64)> = self
                .positives
                .iter()
                .map(|r| r.contagious_window(self.time))
                .collect();
            crate::recording::pair_exposures(
                self.world,
                &cases,
                &windows,
                &self.is_positive,
                &TRUTH_DISTANCES_M,
            )
        } else {
            Vec::new()
        };
        let facts = RunFacts {
            world: self.world,
            scenario: self.scenario,
            opts: self.opts,
            time: self.time,
            positives: &self.positives,
            is_positive: &self.is_positive,
            registered: &self
                .registered_at
                .iter()
                .map(|r| r.is_some_and(f64::is_finite))
                .collect::<Vec<_>>(),
            first_alert: &self.first_alert,
            risk_level: &self.risk_level,
            server_score: &server_score,
            hellos_held: &hellos_held,
            heard_by_positive: &self.heard_by_positive,
            exposures: &exposures,
        };
        let mut result = score::score(&facts);
        if self.opts.record {
            result.recording = Some(Box::new(self.recorder.finish(&facts)));
        }
        result.counts = self.counts.clone();
        result.events = std::mem::take(&mut self.events);
        let mut samples = Vec::new();
        for (_, s) in &self.reservoirs {
            samples.extend_from_slice(s);
        }
        result.rssi_samples = samples;
        Ok(result)
    }
}

impl Recorder {
    /// Completes the recording at the end of the run.
    fn finish(&mut self, f: &RunFacts<'_>) -> Recording {
        let world = f.world;
        let exposures = f.exposures.to_vec();
        let truth = score::truth_config(world, f.opts);
        let phones = world
            .population
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| PhoneRecord {
                group: p.group.clone(),
                os: os_name(p.device.platform.os()).to_owned(),
                positive: f.is_positive.get(i).copied().unwrap_or(false),
                registered: f.registered.get(i).copied().unwrap_or(false),
                online_alert_s: f.first_alert.get(i).copied().flatten(),
                online_score: f.server_score.get(i).copied().unwrap_or(0.0),
            })
            .collect();
        let k = &f.opts.knobs;
        Recording {
            format: FORMAT_VERSION,
            scenario: world.name.clone(),
            seed: world.seed,
            scenario_fingerprint: scenario_fingerprint(f.scenario),
            start_ntp: f.time.start.get(),
            service_start_ntp: crate::backend::service_start_for(world.start_date)
                .midnight()
                .get(),
            days: world.days,
            truth_minutes: truth.at_risk_s / 60.0,
            distances_m: TRUTH_DISTANCES_M.to_vec(),
            batches_s: std::mem::take(&mut self.batches_s),
            final_status_s: self.final_status_s,
            online: OnlineSettings {
                filter_mode: format!("{:?}", k.filter_mode).to_uppercase(),
                filter_duration_threshold_s: k.filter.duration_threshold_secs,
                filter_risk_threshold: k.filter.risk_threshold,
                filter_p0: k.filter.p0,
                filter_rssi_threshold: k.filter.rssi_threshold,
                scoring: k.scoring.clone(),
                risk_threshold: k.risk_threshold,
            },
            phones,
            reports: std::mem::take(&mut self.reports),
            exposures,
        }
    }
}
