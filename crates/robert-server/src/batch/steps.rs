//! The steps of one batch run (module docs of [`super`]), in the order
//! [`super::run_locked`] calls them. Each one says what it leaves behind if
//! the process dies inside it, which is what makes a rerun reach the same
//! state as an uninterrupted run.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use robert_core::id_a::IdA;
use robert_core::scoring::{Aggregation, RiskDecision, RiskState, evaluate_risk, risk_reset_due};
use robert_core::time::{Epoch, NtpSeconds};
use robert_store::{
    BatchPhase, BatchRunState, DeletionMark, IdARange, NewRisk, RiskUpdate, Store, kpi,
};

use super::{
    BatchError, BatchKeys, BatchKpis, BatchProgress, BatchReport, ChunkOutcome, Identified,
    StageTimings, Validation, blocking, config, duration_ms, first_kept_epoch, identify, millis,
    notify, registration_rng, verify_and_score,
};

/// The run in progress: its time and its seed (a fresh one, or the
/// interrupted run's), and whether purge and reset are already done.
pub(super) struct RunState {
    now: NtpSeconds,
    seed: [u8; 32],
    skip_purge_reset: bool,
}

/// Starts a run, or resumes an unfinished one with its seed.
///
/// A fresh run saves its state (`Started`, with its seed) before doing
/// anything else: a crash from here on is resumed with the same seed. A run
/// found in `Scoring` had finished purge and reset, which are skipped.
pub(super) async fn start_or_resume(
    store: &dyn Store,
    now: NtpSeconds,
    fresh_seed: [u8; 32],
    report: &mut BatchReport,
) -> Result<RunState, BatchError> {
    let (seed, skip_purge_reset) = match store.batch_run_state().await? {
        Some(state) if state.phase != BatchPhase::Done => {
            tracing::warn!(
                phase = state.phase.as_str(),
                "resuming an interrupted batch run"
            );
            report.resumed = true;
            (state.seed, state.phase == BatchPhase::Scoring)
        }
        _ => {
            store
                .save_batch_run_state(&BatchRunState {
                    run_at: now,
                    seed: fresh_seed,
                    phase: BatchPhase::Started,
                })
                .await?;
            (fresh_seed, false)
        }
    };
    Ok(RunState {
        now,
        seed,
        skip_purge_reset,
    })
}

/// b, d: per ID_A range, deletes exposures older than the contagious period,
/// then clears the risk of registrations whose last contact is too old.
///
/// Both are idempotent, so a crash inside them only repeats them; once both
/// are done the run's state moves to `Scoring`, and a resumed run skips them.
pub(super) async fn purge_and_reset(
    store: &dyn Store,
    settings: &config::Settings,
    ranges: &[IdARange],
    run: &RunState,
    current: Epoch,
    report: &mut BatchReport,
) -> Result<(), BatchError> {
    let step = Instant::now();
    let now = run.now;
    if !run.skip_purge_reset {
        let first_kept = first_kept_epoch(current, settings.risk.contagious_period_days);
        for range in ranges {
            report.exposures_purged += store.purge_exposures(*range, first_kept).await?;
        }
        for range in ranges {
            let due: Vec<IdA> = store
                .at_risk_registrations(*range)
                .await?
                .into_iter()
                .filter(|(_, last_contact)| {
                    risk_reset_due(*last_contact, now, settings.risk.risk_retention_days)
                })
                .map(|(id, _)| id)
                .collect();
            report.risks_reset += store.reset_risk(&due).await?;
        }
        store
            .save_batch_run_state(&BatchRunState {
                run_at: now,
                seed: run.seed,
                phase: BatchPhase::Scoring,
            })
            .await?;
    }
    report.purge_reset_ms = millis(step);
    tracing::info!(
        purged = report.exposures_purged,
        reset = report.risks_reset,
        "old exposures purged and expired risks reset"
    );
    Ok(())
}

/// f: validates and scores the waiting contacts, chunk by chunk.
///
/// Pipelined: while chunk k commits, chunk k+1 is validated and chunk k+2
/// is read. Commits stay in chunk order, and each commits its scores and
/// deletes its contacts in one transaction ([`commit`]): a crash loses at
/// most uncommitted work, which the rerun reads again.
pub(super) async fn score_contacts(
    store: &dyn Store,
    keys: &BatchKeys,
    settings: &config::Settings,
    observer: &mut (dyn FnMut(&BatchProgress) -> ControlFlow<()> + Send),
    report: &mut BatchReport,
) -> Result<(), BatchError> {
    let step = Instant::now();
    let validation = Arc::new(Validation::new(keys, settings));
    let (chunk_contacts, chunk_hellos) = settings.chunk(store.backend());
    let fetch = |after| async move {
        let t = Instant::now();
        let contacts = store
            .next_contacts(after, chunk_contacts, chunk_hellos)
            .await?;
        Ok::<_, BatchError>((contacts, t.elapsed()))
    };
    let (mut next, fetched_in) = fetch(None).await?;
    report.stages.fetch_ms += duration_ms(fetched_in);
    let mut pending: Option<ScoredChunk> = None;
    loop {
        let contacts = std::mem::take(&mut next);
        let after = contacts.last().map(|c| c.id);
        let (committed, processed, fetched) = tokio::join!(
            commit(store, pending.take()),
            process_chunk(store, &validation, contacts),
            async {
                match after {
                    Some(_) => fetch(after).await.map(Some),
                    None => Ok(None),
                }
            }
        );
        if let Some((ScoredChunk { outcome, .. }, took)) = committed? {
            report.stages.commit_ms += duration_ms(took);
            record_chunk(report, &outcome);
            notify(
                observer,
                &BatchProgress::ChunkCommitted {
                    chunk: report.chunks,
                    contacts: outcome.processed.len(),
                    hellos: outcome.hellos,
                },
            )?;
        }
        let (outcome, stages) = processed?;
        report.stages.add(&stages);
        if let Some((contacts, took)) = fetched? {
            report.stages.fetch_ms += duration_ms(took);
            next = contacts;
        }
        match outcome {
            Some(outcome) => pending = Some(outcome),
            None => break,
        }
    }
    report.scoring_ms = millis(step);
    let secs = step.elapsed().as_secs_f64();
    if report.hellos_processed > 0 && secs > 0.0 {
        report.hellos_per_second = report.hellos_processed as f64 / secs;
    }
    tracing::info!(
        contacts = report.contacts_processed,
        scored = report.contacts_scored,
        rejected = report.contacts_rejected.total(),
        hellos = report.hellos_processed,
        hellos_valid = report.hellos_valid,
        hellos_per_second = report.hellos_per_second as u64,
        "contacts processed"
    );
    Ok(())
}

/// A validated and scored chunk, waiting for its commit.
#[derive(Debug)]
pub(super) struct ScoredChunk {
    /// What validation and scoring found.
    pub(super) outcome: ChunkOutcome,
    /// What the read of the senders' K_A saw of registration deletions, for
    /// the commit ([`Store::commit_contact_chunk`]).
    pub(super) deletions: Option<DeletionMark>,
}

/// Validates and scores one chunk (`None` for an empty chunk).
pub(super) async fn process_chunk(
    store: &dyn Store,
    validation: &Arc<Validation>,
    contacts: Vec<robert_store::StoredContact>,
) -> Result<(Option<ScoredChunk>, StageTimings), BatchError> {
    let mut stages = StageTimings::default();
    if contacts.is_empty() {
        return Ok((None, stages));
    }
    let t = Instant::now();
    let ctx = Arc::clone(validation);
    let identified = blocking(move || identify(&ctx, contacts)).await?;
    stages.identify_ms += millis(t);
    let t = Instant::now();
    let ids: Vec<IdA> = identified
        .iter()
        .filter_map(Identified::id_a)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let wrapped = store.wrapped_keys_a(&ids).await?;
    stages.keys_ms += millis(t);
    let t = Instant::now();
    let ctx = Arc::clone(validation);
    let deletions = wrapped.deletions;
    let outcome = blocking(move || verify_and_score(&ctx, identified, &wrapped.keys)).await??;
    stages.verify_ms += millis(t);
    Ok((Some(ScoredChunk { outcome, deletions }), stages))
}

/// Commits a processed chunk: its scores and the deletion of its contacts,
/// in one transaction.
pub(super) async fn commit(
    store: &dyn Store,
    chunk: Option<ScoredChunk>,
) -> Result<Option<(ScoredChunk, std::time::Duration)>, BatchError> {
    let Some(chunk) = chunk else {
        return Ok(None);
    };
    let t = Instant::now();
    let outcome = &chunk.outcome;
    store
        .commit_contact_chunk(&outcome.exposures, &outcome.processed, chunk.deletions)
        .await?;
    Ok(Some((chunk, t.elapsed())))
}

fn record_chunk(report: &mut BatchReport, outcome: &ChunkOutcome) {
    report.chunks += 1;
    report.contacts_processed += outcome.processed.len() as u64;
    report.contacts_scored += outcome.exposures.len() as u64;
    report.contacts_scored_zero_too_late += outcome.scored_zero_too_late;
    report.contacts_rejected.merge(&outcome.contact_rejections);
    report.hellos_processed += outcome.hellos;
    report.hellos_valid += outcome.hellos_valid;
    report.hellos_rejected.merge(&outcome.hello_rejections);
    tracing::debug!(
        chunk = report.chunks,
        contacts = outcome.processed.len(),
        scored = outcome.exposures.len(),
        "chunk committed"
    );
}

/// h: evaluates the risk of every registration with new scores
/// (`outdatedRisk`), per ID_A range; range k+1 is read while range k is
/// written.
///
/// Each range's outcomes, the clearing of their `outdatedRisk` and the
/// retention KPI increment are one transaction, so a crash leaves every
/// registration either evaluated or still outdated. The last-contact
/// randomisation draws from an RNG seeded by (run seed, ID_A): a resumed
/// run draws the same values.
pub(super) async fn evaluate_risks(
    store: &dyn Store,
    settings: &config::Settings,
    ranges: &[IdARange],
    run: &RunState,
    observer: &mut (dyn FnMut(&BatchProgress) -> ControlFlow<()> + Send),
    report: &mut BatchReport,
) -> Result<(), BatchError> {
    let step = Instant::now();
    let aggregation = settings.scoring.aggregation();
    let mut next = match ranges.first() {
        Some(first) => store.outdated_registrations(*first).await?,
        None => Vec::new(),
    };
    for (done, i) in (1u32..).zip(0..ranges.len()) {
        let candidates = std::mem::take(&mut next);
        let (updates, expired) = evaluate_range(settings, aggregation, run, candidates, report);
        let apply = async {
            if updates.is_empty() {
                Ok(())
            } else {
                store.apply_risk_updates(&updates, expired).await
            }
        };
        let read_next = async {
            match ranges.get(i + 1) {
                Some(range) => store.outdated_registrations(*range).await,
                None => Ok(Vec::new()),
            }
        };
        let (applied, read) = tokio::join!(apply, read_next);
        applied?;
        next = read?;
        if !updates.is_empty() {
            report.registrations_evaluated += updates.len() as u64;
            report.retention_expired += expired.unsigned_abs();
            notify(
                observer,
                &BatchProgress::Evaluated {
                    partitions_done: done,
                },
            )?;
        }
    }
    report.evaluation_ms = millis(step);
    Ok(())
}

/// The §4.5 rules over one range's outdated registrations: the updates to
/// write and how many exposures were too old to count.
fn evaluate_range(
    settings: &config::Settings,
    aggregation: Aggregation,
    run: &RunState,
    candidates: Vec<robert_store::RiskCandidate>,
    report: &mut BatchReport,
) -> (Vec<RiskUpdate>, i64) {
    let mut updates = Vec::with_capacity(candidates.len());
    let mut expired = 0i64;
    for c in candidates {
        let state = RiskState {
            latest_risk_epoch: c.latest_risk_epoch,
            last_contact: c.last_contact,
        };
        let mut rng = registration_rng(&run.seed, c.id_a);
        let evaluation = evaluate_risk(
            &c.exposures,
            &state,
            aggregation,
            &settings.risk,
            &settings.start,
            run.now,
            &mut rng,
        );
        let at_risk = match evaluation.decision {
            RiskDecision::AtRisk {
                last_contact,
                latest_risk_epoch,
            } => {
                tracing::info!(
                    id_a = ?c.id_a,
                    "Risk detected. Aggregated risk since {}: {} greater than threshold {}",
                    c.latest_risk_epoch,
                    evaluation.aggregated_risk,
                    settings.risk.risk_threshold
                );
                report.registrations_at_risk += 1;
                Some(NewRisk {
                    last_contact,
                    latest_risk_epoch,
                })
            }
            RiskDecision::ExposureTooOld => {
                expired += 1;
                None
            }
            RiskDecision::BelowThreshold => None,
        };
        updates.push(RiskUpdate {
            id_a: c.id_a,
            at_risk,
        });
    }
    (updates, expired)
}

/// i: counts the population and sets the batch KPIs (idempotent: they are
/// recomputed from the store, not incremented).
pub(super) async fn refresh_kpis(
    store: &dyn Store,
    report: &mut BatchReport,
) -> Result<(), BatchError> {
    let counts = store.population_counts().await?;
    report.kpis = BatchKpis {
        infected_users_not_notified: counts.at_risk_not_notified,
        notified_users_scored_again: counts.notified_scored_again,
        exposed_but_not_at_risk_users: counts.exposed_not_at_risk,
    };
    store
        .set_kpis(&[
            (
                kpi::INFECTED_USERS_NOT_NOTIFIED,
                counts.at_risk_not_notified,
            ),
            (
                kpi::NOTIFIED_USERS_SCORED_AGAIN,
                counts.notified_scored_again,
            ),
            (
                kpi::EXPOSED_BUT_NOT_AT_RISK_USERS,
                counts.exposed_not_at_risk,
            ),
        ])
        .await?;
    Ok(())
}

/// Marks the run done: the next run starts afresh with a new seed.
pub(super) async fn finish(store: &dyn Store, run: &RunState) -> Result<(), BatchError> {
    store
        .save_batch_run_state(&BatchRunState {
            run_at: run.now,
            seed: run.seed,
            phase: BatchPhase::Done,
        })
        .await?;
    let remaining = store.pending_contacts().await?;
    tracing::info!(
        "{} hello messages remaining after process",
        remaining.hellos
    );
    Ok(())
}
