//! The batch's storage operations.

use std::sync::Arc;

use robert_core::id_a::IdA;
use robert_core::scoring::EpochExposure;
use robert_core::time::{Epoch, NtpSeconds};
use robert_store::{
    Backend, BatchPhase, BatchRunState, ContactExposure, ContactId, IdARange, NewRegistration,
    NewRisk, PopulationCounts, RiskUpdate, Store, StoreOptions, kpi,
};

use crate::{both_backends, new_registration, rng};

both_backends!(
    chunk_commit_appends_and_is_idempotent,
    a_registration_deleted_after_its_key_was_read_gets_no_score,
    purge_by_range_and_epoch,
    risk_reset_selection,
    outdated_evaluation_round_trip,
    population_counts_follow_the_kpi_definitions,
    batch_lock_is_exclusive,
    batch_run_state_round_trip,
    keys_lookup,
);

fn expo(contact: i64, id: IdA, epoch: u32, score: f64) -> ContactExposure {
    ContactExposure {
        contact_id: ContactId(contact),
        id_a: id,
        epoch: Epoch(epoch),
        score,
    }
}

/// Two registrations with these ids, stored.
async fn two_registrations(
    store: &dyn Store,
    a: u64,
    b: u64,
) -> (NewRegistration, NewRegistration) {
    let mut rng = rng();
    let (a, b) = (new_registration(&mut rng, a), new_registration(&mut rng, b));
    store
        .insert_registrations_bulk(&[a.clone(), b.clone()])
        .await
        .unwrap();
    (a, b)
}

async fn chunk_commit_appends_and_is_idempotent(store: Arc<dyn Store>, _url: String) {
    let (a, b) = two_registrations(&*store, 10, 11).await;
    let unknown = IdA::from_u64(999);
    let chunk = [
        expo(1, a.id_a, 100, 14.0),
        expo(2, b.id_a, 100, 3.0),
        expo(3, a.id_a, 101, 0.0),
        expo(4, unknown, 100, 5.0),
        expo(5, a.id_a, 100, 2.0),
    ];
    assert_eq!(
        store.commit_contact_chunk(&chunk, &[], None).await.unwrap(),
        4
    );
    // Re-applying the same contacts stores nothing new.
    assert_eq!(
        store.commit_contact_chunk(&chunk, &[], None).await.unwrap(),
        0
    );
    assert_eq!(
        store.exposures(a.id_a).await.unwrap(),
        vec![
            EpochExposure::new(Epoch(100), vec![14.0, 2.0]),
            EpochExposure::new(Epoch(101), vec![0.0]),
        ]
    );
    assert!(
        store
            .get_registration(a.id_a)
            .await
            .unwrap()
            .unwrap()
            .outdated_risk
    );
    assert!(
        store
            .get_registration(b.id_a)
            .await
            .unwrap()
            .unwrap()
            .outdated_risk
    );
    assert_eq!(store.get_registration(unknown).await.unwrap(), None);
    assert!(store.exposures(unknown).await.unwrap().is_empty());
    // Scores keep full f64 precision.
    let precise = 0.115_569_422_651_811_78 * 8.0;
    store
        .commit_contact_chunk(&[expo(6, b.id_a, 102, precise)], &[], None)
        .await
        .unwrap();
    assert_eq!(
        store.exposures(b.id_a).await.unwrap()[1].scores,
        vec![precise]
    );
}

/// The batch reads a chunk's K_A, scores, then commits; an `/unregister`
/// in between must win. SQLite's commit skips its existence check when the
/// deletion count the read saw is unchanged, so the count must move.
async fn a_registration_deleted_after_its_key_was_read_gets_no_score(
    store: Arc<dyn Store>,
    _url: String,
) {
    let (a, b) = two_registrations(&*store, 20, 21).await;
    let read = store.wrapped_keys_a(&[a.id_a, b.id_a]).await.unwrap();
    assert_eq!(read.keys.len(), 2);
    assert_eq!(
        read.deletions.is_some(),
        store.backend() == Backend::Sqlite,
        "SQLite counts deletions; PostgreSQL always checks"
    );
    let again = store.wrapped_keys_a(&[b.id_a]).await.unwrap();
    assert_eq!(again.deletions, read.deletions, "nothing deleted yet");

    assert!(store.delete_registration(a.id_a).await.unwrap());
    if read.deletions.is_some() {
        let after = store.wrapped_keys_a(&[b.id_a]).await.unwrap();
        assert_ne!(after.deletions, read.deletions, "the deletion is counted");
    }
    let chunk = [expo(1, a.id_a, 100, 4.0), expo(2, b.id_a, 100, 3.0)];
    assert_eq!(
        store
            .commit_contact_chunk(&chunk, &[], read.deletions)
            .await
            .unwrap(),
        1
    );
    assert!(store.exposures(a.id_a).await.unwrap().is_empty());
    assert_eq!(
        store.exposures(b.id_a).await.unwrap(),
        vec![EpochExposure::new(Epoch(100), vec![3.0])]
    );
    let outdated = store.outdated_registrations(IdARange::ALL).await.unwrap();
    assert_eq!(
        outdated.iter().map(|r| r.id_a).collect::<Vec<_>>(),
        vec![b.id_a]
    );

    // With nothing deleted since its read, a chunk stores every score.
    let read = store.wrapped_keys_a(&[b.id_a]).await.unwrap();
    assert_eq!(
        store
            .commit_contact_chunk(&[expo(3, b.id_a, 101, 1.0)], &[], read.deletions)
            .await
            .unwrap(),
        1
    );
}

async fn purge_by_range_and_epoch(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let low = new_registration(&mut rng, 5);
    let high = new_registration(&mut rng, (1 << 40) - 5);
    store
        .insert_registrations_bulk(&[low.clone(), high.clone()])
        .await
        .unwrap();
    let mut c = 0;
    for reg in [&low, &high] {
        for epoch in [98, 99, 100, 101] {
            c += 1;
            store
                .commit_contact_chunk(&[expo(c, reg.id_a, epoch, 1.0)], &[], None)
                .await
                .unwrap();
        }
    }
    let parts = IdARange::partitions(2);
    assert_eq!(
        store.purge_exposures(parts[0], Epoch(100)).await.unwrap(),
        2
    );
    let epochs = |e: Vec<EpochExposure>| e.iter().map(|x| x.epoch.get()).collect::<Vec<_>>();
    assert_eq!(epochs(store.exposures(low.id_a).await.unwrap()), [100, 101]);
    assert_eq!(
        epochs(store.exposures(high.id_a).await.unwrap()),
        [98, 99, 100, 101]
    );
    assert_eq!(
        store.purge_exposures(parts[1], Epoch(101)).await.unwrap(),
        3
    );
    assert_eq!(epochs(store.exposures(high.id_a).await.unwrap()), [101]);
    assert_eq!(
        store
            .purge_exposures(IdARange::ALL, Epoch(101))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .purge_exposures(IdARange::ALL, Epoch(101))
            .await
            .unwrap(),
        0
    );
}

async fn risk_reset_selection(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let regs: Vec<_> = (0..6)
        .map(|i| new_registration(&mut rng, i << 37))
        .collect();
    store.insert_registrations_bulk(&regs).await.unwrap();
    let updates: Vec<_> = regs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, r)| RiskUpdate {
            id_a: r.id_a,
            at_risk: Some(NewRisk {
                last_contact: NtpSeconds(1000 * i as u64),
                latest_risk_epoch: Epoch(7),
            }),
        })
        .collect();
    store.apply_risk_updates(&updates, 0).await.unwrap();
    for r in &regs[..2] {
        store
            .record_status_success(&robert_store::StatusSuccess {
                id_a: r.id_a,
                epoch: Epoch(9),
                drift_secs: 0,
            })
            .await
            .unwrap();
    }
    let all = store.at_risk_registrations(IdARange::ALL).await.unwrap();
    assert_eq!(
        all,
        vec![
            (regs[0].id_a, NtpSeconds(0)),
            (regs[2].id_a, NtpSeconds(2000)),
            (regs[4].id_a, NtpSeconds(4000))
        ]
    );
    let parts = IdARange::partitions(8);
    assert_eq!(
        store.at_risk_registrations(parts[2]).await.unwrap(),
        vec![(regs[2].id_a, NtpSeconds(2000))]
    );
    assert!(
        store
            .at_risk_registrations(parts[1])
            .await
            .unwrap()
            .is_empty()
    );
    // Reset two of them (and one that is not at risk).
    assert_eq!(
        store
            .reset_risk(&[regs[0].id_a, regs[4].id_a, regs[1].id_a])
            .await
            .unwrap(),
        2
    );
    let r0 = store.get_registration(regs[0].id_a).await.unwrap().unwrap();
    assert!(!r0.at_risk && !r0.notified_for_current_risk);
    assert!(r0.is_notified, "isNotified is kept");
    assert_eq!(
        store
            .at_risk_registrations(IdARange::ALL)
            .await
            .unwrap()
            .len(),
        1
    );
    // Idempotent.
    assert_eq!(store.reset_risk(&[regs[0].id_a]).await.unwrap(), 0);
}

async fn outdated_evaluation_round_trip(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let regs: Vec<_> = (0..4)
        .map(|i| new_registration(&mut rng, (i << 38) + 1))
        .collect();
    store.insert_registrations_bulk(&regs).await.unwrap();
    store
        .commit_contact_chunk(
            &[
                expo(1, regs[0].id_a, 50, 1.0),
                expo(2, regs[0].id_a, 40, 2.0),
                expo(3, regs[2].id_a, 60, 3.0),
                expo(4, regs[0].id_a, 50, 4.0),
            ],
            &[],
            None,
        )
        .await
        .unwrap();
    let all = store.outdated_registrations(IdARange::ALL).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id_a, regs[0].id_a);
    assert_eq!(
        all[0].exposures,
        vec![
            EpochExposure::new(Epoch(40), vec![2.0]),
            EpochExposure::new(Epoch(50), vec![1.0, 4.0])
        ]
    );
    assert_eq!(all[1].id_a, regs[2].id_a);
    assert_eq!(
        all[1].exposures,
        vec![EpochExposure::new(Epoch(60), vec![3.0])]
    );
    let parts = IdARange::partitions(4);
    let p2 = store.outdated_registrations(parts[2]).await.unwrap();
    assert_eq!(p2.len(), 1);
    assert_eq!(p2[0].id_a, regs[2].id_a);
    assert_eq!(p2[0].exposures.len(), 1);

    let risk = NewRisk {
        last_contact: NtpSeconds(3_882_470_400),
        latest_risk_epoch: Epoch(70),
    };
    store
        .apply_risk_updates(
            &[
                RiskUpdate {
                    id_a: regs[0].id_a,
                    at_risk: Some(risk),
                },
                RiskUpdate {
                    id_a: regs[2].id_a,
                    at_risk: None,
                },
            ],
            3,
        )
        .await
        .unwrap();
    assert!(
        store
            .outdated_registrations(IdARange::ALL)
            .await
            .unwrap()
            .is_empty()
    );
    let r0 = store.get_registration(regs[0].id_a).await.unwrap().unwrap();
    assert!(r0.at_risk && !r0.outdated_risk && !r0.notified_for_current_risk);
    assert_eq!(
        (r0.last_contact, r0.latest_risk_epoch),
        (risk.last_contact, risk.latest_risk_epoch)
    );
    let r2 = store.get_registration(regs[2].id_a).await.unwrap().unwrap();
    assert!(!r2.at_risk && !r2.outdated_risk);
    assert_eq!(
        store
            .kpis()
            .await
            .unwrap()
            .get(kpi::USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED),
        3
    );
}

async fn population_counts_follow_the_kpi_definitions(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let regs: Vec<_> = (0..8).map(|i| new_registration(&mut rng, i + 1)).collect();
    store.insert_registrations_bulk(&regs).await.unwrap();
    assert_eq!(
        store.population_counts().await.unwrap(),
        PopulationCounts::default()
    );
    // 0: exposed only. 1: exposed twice (counts once). 2: at risk, not notified, exposed.
    // 3: at risk, notified. 4: notified, reset, exposed again. 5: notified, reset, no exposure.
    let chunk = [
        expo(1, regs[0].id_a, 5, 1.0),
        expo(2, regs[1].id_a, 5, 1.0),
        expo(3, regs[1].id_a, 6, 1.0),
        expo(4, regs[2].id_a, 5, 1.0),
        expo(5, regs[4].id_a, 5, 1.0),
    ];
    store.commit_contact_chunk(&chunk, &[], None).await.unwrap();
    let risk = Some(NewRisk {
        last_contact: NtpSeconds(10),
        latest_risk_epoch: Epoch(1),
    });
    let at_risk: Vec<_> = [2, 3, 4, 5]
        .iter()
        .map(|i| RiskUpdate {
            id_a: regs[*i].id_a,
            at_risk: risk,
        })
        .collect();
    store.apply_risk_updates(&at_risk, 0).await.unwrap();
    for i in [3, 4, 5] {
        store
            .record_status_success(&robert_store::StatusSuccess {
                id_a: regs[i].id_a,
                epoch: Epoch(2),
                drift_secs: 0,
            })
            .await
            .unwrap();
    }
    store
        .reset_risk(&[regs[4].id_a, regs[5].id_a])
        .await
        .unwrap();
    assert_eq!(
        store.population_counts().await.unwrap(),
        PopulationCounts {
            at_risk_not_notified: 1,
            notified_scored_again: 1,
            exposed_not_at_risk: 2
        }
    );
}

async fn batch_lock_is_exclusive(store: Arc<dyn Store>, url: String) {
    let other = robert_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let lock = store
        .try_lock_batch()
        .await
        .unwrap()
        .expect("free at first");
    assert!(store.try_lock_batch().await.unwrap().is_none());
    assert!(other.try_lock_batch().await.unwrap().is_none());
    drop(lock);
    // Released on drop (PostgreSQL notices the closed session asynchronously).
    let mut again = None;
    for _ in 0..50 {
        again = other.try_lock_batch().await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = again.expect("released after drop");
    assert!(store.try_lock_batch().await.unwrap().is_none());
    // An explicit release frees it at once: an immediate retry succeeds
    // (what lets a batch rerun right after an aborted one).
    again.release().await;
    let third = store
        .try_lock_batch()
        .await
        .unwrap()
        .expect("free right after release()");
    third.release().await;
    other.close().await;
}

async fn batch_run_state_round_trip(store: Arc<dyn Store>, _url: String) {
    assert_eq!(store.batch_run_state().await.unwrap(), None);
    let mut state = BatchRunState {
        run_at: NtpSeconds(3_882_556_800),
        seed: [7; 32],
        phase: BatchPhase::Started,
    };
    store.save_batch_run_state(&state).await.unwrap();
    assert_eq!(store.batch_run_state().await.unwrap(), Some(state.clone()));
    state.phase = BatchPhase::Done;
    state.seed[0] = 1;
    store.save_batch_run_state(&state).await.unwrap();
    assert_eq!(store.batch_run_state().await.unwrap(), Some(state.clone()));
    assert!(
        !format!("{state:?}").contains("seed"),
        "the seed stays out of logs"
    );
}

/// A chunk's K_A lookup: absent ID_As are left out; a small list is read in
/// one go, a large one (SQLite: ≥ 2,048) in parts on several connections.
async fn keys_lookup(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let regs: Vec<_> = (0..3000)
        .map(|i| new_registration(&mut rng, i * 104_729))
        .collect();
    store.insert_registrations_bulk(&regs).await.unwrap();
    let mut marks = Vec::new();
    for step in [3, 1] {
        let mut ids: Vec<IdA> = regs.iter().step_by(step).map(|r| r.id_a).collect();
        ids.push(IdA::from_u64(1));
        ids.reverse();
        let read = store.wrapped_keys_a(&ids).await.unwrap();
        assert_eq!(read.keys.len(), 3000 / step, "step {step}");
        for r in regs.iter().step_by(step) {
            assert_eq!(read.keys[&r.id_a], r.key_a);
        }
        marks.push(read.deletions);
    }
    assert_eq!(marks[0], marks[1], "one count, however the read is split");
    assert!(store.wrapped_keys_a(&[]).await.unwrap().keys.is_empty());
}
