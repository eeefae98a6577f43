//! Events at their own time: status requests, the EBID refills of idle phones, the risk batch.

use std::cmp::Reverse;
use std::time::Instant;

use futures::StreamExt as _;
use robert_client::ClientError;
use robert_core::time::NtpSeconds;

use crate::error::SimError;

use super::{Sim, ms};

impl Sim<'_> {
    /// Time of the next event strictly after nothing: status, declaration,
    /// batch, refill check.
    pub(super) fn next_event(&self) -> f64 {
        let mut next = f64::INFINITY;
        if let Some(Reverse((due, _))) = self.status_heap.peek() {
            next = next.min(self.time.sim(NtpSeconds(*due)));
        }
        if let Some(p) = self.positives.get(self.next_positive) {
            next = next.min(p.case.declared_at);
        }
        if let Some(b) = self.next_batch {
            next = next.min(b);
        }
        if let Some(r) = self.next_refill {
            next = next.min(r);
        }
        next
    }

    /// Processes every event due at or before `t` (within a millisecond).
    pub(super) async fn process_events(&mut self, t: f64) -> Result<(), SimError> {
        loop {
            let next = self.next_event();
            if next > t + 1e-3 {
                return Ok(());
            }
            let started = Instant::now();
            // Events run at their own time (the loop never steps past one).
            let at = next.max(0.0);
            let now = self.time.ntp(at);
            self.backend.set_time(now);
            let positive_due = self
                .positives
                .get(self.next_positive)
                .is_some_and(|p| p.case.declared_at <= at + 1e-3);
            if positive_due {
                let i = self.next_positive;
                self.next_positive += 1;
                self.declare(i, at).await?;
            } else if self.next_batch.is_some_and(|b| b <= at + 1e-3) {
                self.batch(at).await?;
                let step = self.opts.batch_every_hours.unwrap_or(24.0) * 3600.0;
                self.next_batch = self
                    .next_batch
                    .map(|b| b + step)
                    .filter(|b| *b < self.world.duration_s);
            } else if self.next_refill.is_some_and(|r| r <= at + 1e-3) {
                self.refill(at).await;
                self.next_refill = self.next_refill.map(|r| r + 6.0 * 3600.0);
            } else {
                self.statuses_due(now, at).await;
            }
            self.timings.server_ms += ms(started);
        }
    }

    /// Every phone whose status is due at `now`.
    pub(super) async fn statuses_due(&mut self, now: NtpSeconds, at: f64) {
        let mut due: Vec<u32> = Vec::new();
        while let Some(Reverse((d, i))) = self.status_heap.peek().copied() {
            if d > now.get() {
                break;
            }
            self.status_heap.pop();
            // Stale heap entries (the phone's schedule moved) are skipped.
            let current = self
                .phones
                .get(i as usize)
                .and_then(|p| p.phone.next_status_due());
            if current == Some(NtpSeconds(d)) {
                due.push(i);
            } else if let Some(c) = current
                && c.get() > now.get()
            {
                self.status_heap.push(Reverse((c.get(), i)));
            }
        }
        due.sort_unstable();
        due.dedup();
        if due.is_empty() {
            return;
        }
        let started = Instant::now();
        let outcomes = self.status_of(&due, now, false).await;
        self.meter.run_status += started.elapsed();
        self.meter.run_status_requests += outcomes
            .iter()
            .filter(|(_, r)| !matches!(r, Ok(None)))
            .count() as u64;
        for (i, r) in outcomes {
            self.after_status(i, r, at);
            if let Some(next) = self.phones[i].phone.next_status_due() {
                self.status_heap
                    .push(Reverse((next.get(), u32::try_from(i).unwrap_or(u32::MAX))));
            }
        }
    }

    /// Sends status requests for `people` at `now`, concurrently.
    pub(super) async fn status_of(
        &mut self,
        people: &[u32],
        now: NtpSeconds,
        forced: bool,
    ) -> Vec<(usize, Result<Option<f64>, ClientError>)> {
        let concurrency = self.opts.concurrency;
        let mut k = 0usize;
        let futs = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| {
                while k < people.len() && (people[k] as usize) < *i {
                    k += 1;
                }
                k < people.len() && people[k] as usize == *i
            })
            .map(|(i, p)| async move {
                let phone = p.at(now);
                let r = if forced {
                    phone.status().await.map(|o| Some(o.risk_level))
                } else {
                    phone.status_if_due().await.map(|o| o.map(|o| o.risk_level))
                };
                (i, r)
            });
        let mut out: Vec<(usize, Result<Option<f64>, ClientError>)> = futures::stream::iter(futs)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        out.sort_by_key(|(i, _)| *i);
        out
    }

    pub(super) fn after_status(&mut self, i: usize, r: Result<Option<f64>, ClientError>, at: f64) {
        match r {
            Ok(Some(level)) => {
                self.counts.status_requests += 1;
                self.risk_level[i] = level;
                if level >= 4.0 && self.first_alert[i].is_none() {
                    self.first_alert[i] = Some(at);
                    self.counts.alerts += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.counts.status_requests += 1;
                self.counts.status_failures += 1;
                if self.status_errors.len() < 5 {
                    self.status_errors.push(format!("phone {i}: {e}"));
                }
            }
        }
    }

    /// FinalOnly polling: phones whose EBID stock runs low refill it.
    pub(super) async fn refill(&mut self, at: f64) {
        let now = self.time.ntp(at);
        let low: Vec<u32> = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(_, p)| {
                p.clock.set_ntp(now);
                p.phone.is_registered() && p.phone.needs_refill()
            })
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect();
        if low.is_empty() {
            return;
        }
        let concurrency = self.opts.concurrency;
        let set: std::collections::BTreeSet<u32> = low.iter().copied().collect();
        let futs = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| u32::try_from(*i).is_ok_and(|i| set.contains(&i)))
            .map(|(_, p)| async move { p.at(now).ensure_identity().await.is_ok() });
        let started = Instant::now();
        let results: Vec<bool> = futures::stream::iter(futs)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        self.meter.run_status += started.elapsed();
        self.meter.run_status_requests += results.len() as u64;
        self.counts.status_requests += results.len() as u64;
        self.counts.status_failures += results.iter().filter(|ok| !**ok).count() as u64;
    }

    /// Runs the risk batch at `at` (its seed: the run's seed plus the
    /// number of batches so far).
    pub(super) async fn batch(&mut self, at: f64) -> Result<(), SimError> {
        self.batch_runs += 1;
        self.recorder.batches_s.push(at);
        let report = self
            .backend
            .run_batch(self.seed.wrapping_add(self.batch_runs))
            .await?;
        self.counts.batch_runs += 1;
        self.counts.batch_contacts_processed += report.contacts_processed;
        self.counts.batch_contacts_scored += report.contacts_scored;
        self.counts.batch_hellos_valid += report.hellos_valid;
        self.counts.batch_risk_detections += report.registrations_at_risk;
        if report.contacts_processed > 0 || report.registrations_at_risk > 0 {
            let text = format!(
                "risk batch: {} contacts scored ({} valid HELLOs), {} registrations at risk",
                report.contacts_scored, report.hellos_valid, report.registrations_at_risk
            );
            self.event(at, text);
        }
        Ok(())
    }
}
