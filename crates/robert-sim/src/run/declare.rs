//! A positive case declares itself: code, SDK report (window + on-device filter), upload.

use std::time::Instant;

use robert_client::ReportBasis;
use robert_client::report::report_window;

use crate::backend::CodeSource;
use crate::common::FastMap;
use crate::error::SimError;

use super::Sim;
use super::deliver::ebid_key;

impl Sim<'_> {
    /// A positive case declares itself: code, then SDK report.
    pub(super) async fn declare(&mut self, k: usize, at: f64) -> Result<(), SimError> {
        let now = self.time.ntp(at);
        let case = self.positives[k].case;
        let source = self.positives[k].code;
        let person = case.person;
        let basis = match case.symptom_onset_at {
            Some(onset) => ReportBasis::SymptomOnset(self.time.ntp(onset)),
            None => ReportBasis::PositiveTest(now),
        };
        let code = self.backend.code(source).await?;
        let Some(sim_phone) = self.phones.get_mut(person as usize) else {
            return Err(SimError::Phone {
                person,
                message: "unknown person".into(),
            });
        };
        let phone = sim_phone.at(now);
        let window = report_window(now, basis, &phone.config().report_spans);
        // What the phone holds and what the report will carry, per sender.
        let mut held: FastMap<u32, usize> = FastMap::default();
        let mut in_window_groups: FastMap<u32, usize> = FastMap::default();
        for (key, records) in phone.contacts().groups() {
            let Some(&(owner, _)) = self.ebid_owner.get(&ebid_key(&key.ebid)) else {
                continue;
            };
            *held.entry(owner).or_default() += records.len();
            if records.iter().any(|r| window.contains(r.time_collected)) {
                *in_window_groups.entry(owner).or_default() += 1;
            }
        }
        if self.opts.record {
            let owners = &self.ebid_owner;
            let oracle = &self.oracle;
            let groups = crate::recording::record_groups(
                phone.contacts().groups(),
                |key| owners.get(&ebid_key(&key.ebid)).copied(),
                |sender, t| oracle.get(&(person, sender, t)).copied(),
                robert_server::batch::HelloConfig::default().time_tolerance_secs,
            );
            self.recorder.reports.push(crate::recording::ReportRecord {
                person,
                declared_s: at,
                window_ntp: (window.from.get(), window.to.get()),
                uploaded: false,
                groups,
            });
        }
        let selection = phone.prepare_report(basis);
        let mut reported: FastMap<u32, (usize, usize)> = FastMap::default();
        for c in &selection.contacts {
            if let Some(&(owner, _)) = self.ebid_owner.get(&ebid_key(&c.key.ebid)) {
                let e = reported.entry(owner).or_default();
                e.0 += c.records.len();
                e.1 += 1;
            }
        }
        let started = Instant::now();
        let result = phone.report(&code, basis).await;
        self.meter.report += started.elapsed();
        self.meter.reports += 1;
        drop(code);
        let rec = &mut self.positives[k];
        rec.declared = true;
        rec.window = (self.time.sim(window.from), self.time.sim(window.to));
        rec.held = held;
        rec.reported = reported.iter().map(|(o, (h, _))| (*o, *h)).collect();
        rec.filtered = in_window_groups
            .iter()
            .map(|(o, g)| (*o, g.saturating_sub(reported.get(o).map_or(0, |r| r.1))))
            .collect();
        let text = match result {
            Ok(out) => {
                if self.opts.record
                    && let Some(r) = self.recorder.reports.last_mut()
                {
                    r.uploaded = true;
                }
                rec.contacts_sent = out.contacts_sent;
                rec.hellos_sent = out.hellos_sent;
                rec.rejected_groups = out.rejected_groups;
                self.counts.reports += 1;
                self.counts.reported_contacts += out.contacts_sent as u64;
                self.counts.reported_hellos += out.hellos_sent as u64;
                self.counts.filter_rejected_groups += out.rejected_groups as u64;
                format!(
                    "person {person} tests positive and reports with a {}: {} EBID groups ({} HELLOs) uploaded, {} kept back by the on-device filter",
                    match source {
                        CodeSource::LabLongCode => "laboratory long code",
                        CodeSource::DoctorShortCode => "doctor's short code",
                    },
                    out.contacts_sent,
                    out.hellos_sent,
                    out.rejected_groups
                )
            }
            Err(e) => {
                rec.error = Some(e.to_string());
                self.counts.report_failures += 1;
                format!("person {person}: report FAILED: {e}")
            }
        };
        self.event(at, text);
        Ok(())
    }
}
