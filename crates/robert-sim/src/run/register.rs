//! Registration of the phones (all at the start, or as they first meet someone).

use std::cmp::Reverse;
use std::time::Instant;

use futures::StreamExt as _;
use robert_client::FixedCaptchaAnswer;
use robert_core::id_a::IdA;
use robert_core::time::UtcDate;
use robert_radio::calibration::Os;

use crate::error::SimError;
use crate::options::{RegisterPolicy, StatusPolling};
use crate::phones::SimPhone;
use crate::result::Throughput;

use super::Sim;
use super::throughput::proc_status_bytes;

impl Sim<'_> {
    /// Tops up the code service, then registers every phone when the
    /// policy says so, measuring memory and database growth around it.
    pub(super) async fn register_at_start(&mut self) -> Result<Throughput, SimError> {
        self.backend.set_time(self.time.start);
        self.backend.top_up_lots().await?;
        let mut tp = Throughput {
            concurrency: self.opts.concurrency,
            phone_struct_bytes: size_of::<SimPhone>(),
            rss_before_registration_bytes: proc_status_bytes("VmRSS"),
            server_db_bytes_before_registration: self.backend.server_db_bytes(),
            ..Throughput::default()
        };
        if self.opts.register == RegisterPolicy::AtStart {
            let all: Vec<u32> = (0..self.phones.len())
                .filter_map(|i| u32::try_from(i).ok())
                .collect();
            self.register(&all, 0.0).await?;
            tp.rss_after_registration_bytes = proc_status_bytes("VmRSS");
            tp.server_db_bytes_after_registration = self.backend.server_db_bytes();
            let n = self.counts.registrations;
            if n > 0 {
                let per = |a: Option<u64>, b: Option<u64>| Some((a? as f64 - b? as f64) / n as f64);
                tp.rss_growth_per_registration_bytes = per(
                    tp.rss_after_registration_bytes,
                    tp.rss_before_registration_bytes,
                );
                tp.server_db_bytes_per_registration = per(
                    tp.server_db_bytes_after_registration,
                    tp.server_db_bytes_before_registration,
                );
                let tuples: usize = self
                    .phones
                    .iter()
                    .filter_map(|p| p.phone.registration())
                    .map(|r| r.tuples().len())
                    .sum();
                tp.phone_state_bytes_per_registration =
                    Some((tuples * size_of::<robert_core::tuples::Tuple>()) as f64 / n as f64);
            }
        }
        Ok(tp)
    }

    /// The timeline's first line: how many phones registered.
    pub(super) fn registered_event(&mut self) {
        let n_reg = self.counts.registrations;
        let msg = format!(
            "{n_reg} phones registered ({} Android, {} iPhone)",
            self.world
                .population
                .people
                .iter()
                .filter(|p| p.device.platform.os() == Os::Android)
                .count(),
            self.world
                .population
                .people
                .iter()
                .filter(|p| p.device.platform.os() == Os::Ios)
                .count()
        );
        self.event(0.0, msg);
    }

    /// Registers these phones at simulation time `t`.
    pub(super) async fn register(&mut self, people: &[u32], t: f64) -> Result<(), SimError> {
        let now = self.time.ntp(t);
        self.backend.set_time(now);
        let wanted: std::collections::BTreeSet<u32> = people.iter().copied().collect();
        let total = wanted.len() as u64;
        let show = total >= 50;
        if show {
            self.progress.phase(&self.world.name, "register", total);
        }
        let concurrency = self.opts.concurrency;
        let started = Instant::now();
        let futs = self
            .phones
            .iter_mut()
            .enumerate()
            .filter(|(i, p)| {
                u32::try_from(*i).is_ok_and(|i| wanted.contains(&i)) && !p.phone.is_registered()
            })
            .map(|(i, p)| async move {
                let phone = p.at(now);
                let r = phone
                    .register(&mut FixedCaptchaAnswer("sim".to_owned()))
                    .await;
                (i, r)
            });
        let mut stream = futures::stream::iter(futs).buffer_unordered(concurrency);
        let mut done = 0u64;
        let mut results = Vec::new();
        while let Some(r) = stream.next().await {
            done += 1;
            if show {
                self.progress.advance(done);
            }
            results.push(r);
        }
        drop(stream);
        self.meter.registration += started.elapsed();
        self.meter.registration_rounds += 1;
        self.meter.registrations += results.len() as u64;
        if show {
            self.progress.finish_phase();
        }
        results.sort_by_key(|(i, _)| *i);
        for (i, r) in results {
            match r {
                Ok(()) => {
                    self.counts.registrations += 1;
                    self.registered_at[i] = Some(t);
                    self.id_a[i] = self.identify(i);
                    if self.opts.status_polling == StatusPolling::Schedule
                        && let Some(due) = self.phones[i].phone.next_status_due()
                    {
                        self.status_heap
                            .push(Reverse((due.get(), u32::try_from(i).unwrap_or(u32::MAX))));
                    }
                }
                Err(e) => {
                    self.counts.registration_failures += 1;
                    if self.counts.registration_failures <= 3 {
                        let msg = format!("registration of phone {i} failed: {e}");
                        self.event(t, msg);
                    }
                }
            }
        }
        Ok(())
    }

    /// The server-side identity of a registered phone (for exposure scores).
    pub(super) fn identify(&self, i: usize) -> Option<IdA> {
        let reg = self.phones.get(i)?.phone.registration()?;
        let tuple = reg.tuples().first()?;
        let day = UtcDate::of(reg.epoch_start(tuple.epoch));
        self.backend.id_of(&tuple.ebid, day)
    }
}
