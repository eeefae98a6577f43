//! Registrations and the API's writes.

use std::sync::Arc;

use robert_core::id_a::IdA;
use robert_core::scoring::EpochExposure;
use robert_core::time::{Epoch, NtpSeconds};
use robert_store::{
    ContactExposure, ContactId, FailedStatus, NewRisk, RiskUpdate, StatusSuccess, Store,
    StoreError, kpi,
};

use crate::{NOW, both_backends, new_registration, rng, set_risk, status};

both_backends!(
    insert_get_and_duplicate,
    bulk_insert_skips_existing,
    status_success_sets_flags_and_kpis_once,
    status_failure_and_drift,
    unregister_removes_everything,
    clear_exposures_keeps_risk_flags,
    concurrent_status_writes_are_all_committed,
    committed_writes_survive_reopening,
);

async fn insert_get_and_duplicate(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let reg = new_registration(&mut rng, 0xdf42e26aec);
    assert_eq!(store.any_wrapped_key_a().await.unwrap(), None);
    store.insert_registration(&reg).await.unwrap();
    assert_eq!(
        store.any_wrapped_key_a().await.unwrap(),
        Some(reg.key_a.clone())
    );
    let got = store.get_registration(reg.id_a).await.unwrap().unwrap();
    assert_eq!(got.id_a, reg.id_a);
    assert_eq!(got.key_a, reg.key_a);
    assert_eq!(got.key_a_tuples, reg.key_a_tuples);
    assert_eq!(got.created_at, NOW);
    assert!(!got.is_notified && !got.at_risk && !got.notified_for_current_risk);
    assert!(!got.outdated_risk);
    assert_eq!(got.last_status_epoch, Epoch(0));
    assert_eq!(got.latest_risk_epoch, Epoch(0));
    assert_eq!(got.last_contact, NtpSeconds(0));
    assert_eq!(got.last_failed_status, None);
    assert_eq!(got.last_timestamp_drift, 0);

    // Same ID_A, other keys: refused, and the stored keys are untouched.
    let mut dup = new_registration(&mut rng, 0xdf42e26aec);
    dup.created_at = NtpSeconds(1);
    assert!(matches!(
        store.insert_registration(&dup).await,
        Err(StoreError::DuplicateIdA)
    ));
    assert_eq!(
        store
            .get_registration(reg.id_a)
            .await
            .unwrap()
            .unwrap()
            .key_a,
        reg.key_a
    );

    // The extreme ID_As.
    for id in [0, (1 << 40) - 1] {
        let r = new_registration(&mut rng, id);
        store.insert_registration(&r).await.unwrap();
        assert_eq!(
            store.get_registration(r.id_a).await.unwrap().unwrap().id_a,
            r.id_a
        );
    }
    assert_eq!(store.get_registration(IdA([9; 5])).await.unwrap(), None);
    assert_eq!(store.registration_count().await.unwrap(), 3);
}

async fn bulk_insert_skips_existing(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let first: Vec<_> = (0..25_000)
        .map(|i| new_registration(&mut rng, i * 7919))
        .collect();
    assert_eq!(
        store.insert_registrations_bulk(&first).await.unwrap(),
        25_000
    );
    // Overlapping second batch: only the new ones count.
    let second: Vec<_> = (20_000..60_000)
        .map(|i| new_registration(&mut rng, i * 7919))
        .collect();
    assert_eq!(
        store.insert_registrations_bulk(&second).await.unwrap(),
        35_000
    );
    assert_eq!(store.registration_count().await.unwrap(), 60_000);
    // The pre-existing ones kept their original keys.
    let kept = store
        .get_registration(first[21_000].id_a)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.key_a, first[21_000].key_a);
    assert_ne!(kept.key_a, second[1_000].key_a);
}

async fn status_success_sets_flags_and_kpis_once(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let a = new_registration(&mut rng, 1);
    store.insert_registration(&a).await.unwrap();

    // Not at risk: notifiedForCurrentRisk is set anyway, no KPI moves.
    let out = status(&*store, a.id_a, 100, -3).await;
    assert!(!out.at_risk && !out.alerted && !out.notified);
    let reg = store.get_registration(a.id_a).await.unwrap().unwrap();
    assert_eq!(reg.last_status_epoch, Epoch(100));
    assert_eq!(reg.last_timestamp_drift, -3);
    assert!(reg.notified_for_current_risk && !reg.is_notified);
    assert_eq!(store.kpis().await.unwrap().get(kpi::ALERTED_USERS), 0);

    // The batch detects a risk.
    let risk = NewRisk {
        last_contact: NtpSeconds(3_882_470_400),
        latest_risk_epoch: Epoch(200),
    };
    set_risk(&*store, a.id_a, risk).await;
    let reg = store.get_registration(a.id_a).await.unwrap().unwrap();
    assert!(reg.at_risk && !reg.notified_for_current_risk && !reg.is_notified);

    // First status at risk: both KPIs, both flags.
    let out = status(&*store, a.id_a, 203, 1).await;
    assert!(out.at_risk && out.alerted && out.notified);
    assert_eq!(out.last_contact, risk.last_contact);
    assert_eq!(out.latest_risk_epoch, Epoch(200));
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::ALERTED_USERS), 1);
    assert_eq!(kpis.get(kpi::NOTIFIED_USERS), 1);
    let reg = store.get_registration(a.id_a).await.unwrap().unwrap();
    assert!(reg.is_notified && reg.notified_for_current_risk);

    // Second status: nothing more.
    let out = status(&*store, a.id_a, 206, 1).await;
    assert!(out.at_risk && !out.alerted && !out.notified);

    // A new risk episode: notifiedUsers again, alertedUsers not.
    let again = NewRisk {
        latest_risk_epoch: Epoch(300),
        ..risk
    };
    set_risk(&*store, a.id_a, again).await;
    let out = status(&*store, a.id_a, 303, 0).await;
    assert!(!out.alerted && out.notified);
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::ALERTED_USERS), 1);
    assert_eq!(kpis.get(kpi::NOTIFIED_USERS), 2);

    // Unknown registration.
    let missing = StatusSuccess {
        id_a: IdA([7; 5]),
        epoch: Epoch(1),
        drift_secs: 0,
    };
    assert_eq!(store.record_status_success(&missing).await.unwrap(), None);
}

async fn status_failure_and_drift(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let a = new_registration(&mut rng, 2);
    store.insert_registration(&a).await.unwrap();
    assert!(
        store
            .record_status_failure(a.id_a, Epoch(55), "Invalid MAC", Some(70))
            .await
            .unwrap()
    );
    let reg = store.get_registration(a.id_a).await.unwrap().unwrap();
    assert_eq!(
        reg.last_failed_status,
        Some(FailedStatus {
            epoch: Epoch(55),
            message: "Invalid MAC".into()
        })
    );
    assert_eq!(reg.last_timestamp_drift, 70);
    // Without a drift, the stored drift stays.
    assert!(
        store
            .record_status_failure(a.id_a, Epoch(56), "too close", None)
            .await
            .unwrap()
    );
    let reg = store.get_registration(a.id_a).await.unwrap().unwrap();
    assert_eq!(reg.last_timestamp_drift, 70);
    assert_eq!(reg.last_failed_status.unwrap().epoch, Epoch(56));
    assert!(store.record_timestamp_drift(a.id_a, -120).await.unwrap());
    assert_eq!(
        store
            .get_registration(a.id_a)
            .await
            .unwrap()
            .unwrap()
            .last_timestamp_drift,
        -120
    );
    assert!(!store.record_timestamp_drift(IdA([8; 5]), 1).await.unwrap());
    assert!(
        !store
            .record_status_failure(IdA([8; 5]), Epoch(1), "x", None)
            .await
            .unwrap()
    );
}

async fn score(store: &dyn Store, id: IdA, epoch: u32, contact: i64, score: f64) {
    store
        .commit_contact_chunk(
            &[ContactExposure {
                contact_id: ContactId(contact),
                id_a: id,
                epoch: Epoch(epoch),
                score,
            }],
            &[],
            None,
        )
        .await
        .unwrap();
}

async fn unregister_removes_everything(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let a = new_registration(&mut rng, 3);
    let b = new_registration(&mut rng, 4);
    store.insert_registration(&a).await.unwrap();
    store.insert_registration(&b).await.unwrap();
    score(&*store, a.id_a, 10, 1, 2.5).await;
    score(&*store, b.id_a, 10, 2, 3.5).await;
    assert!(store.delete_registration(a.id_a).await.unwrap());
    assert_eq!(store.get_registration(a.id_a).await.unwrap(), None);
    assert!(store.exposures(a.id_a).await.unwrap().is_empty());
    assert!(
        store
            .wrapped_keys_a(&[a.id_a])
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    assert!(!store.delete_registration(a.id_a).await.unwrap());
    // Its pending risk evaluation went with it; b's is still there.
    let outdated = store
        .outdated_registrations(robert_store::IdARange::ALL)
        .await
        .unwrap();
    assert_eq!(
        outdated.iter().map(|c| c.id_a).collect::<Vec<_>>(),
        vec![b.id_a]
    );
    // The other registration is untouched.
    assert_eq!(
        store.exposures(b.id_a).await.unwrap(),
        vec![EpochExposure::new(Epoch(10), vec![3.5])]
    );
    // A registration deleted before its chunk commits gets no exposure.
    score(&*store, a.id_a, 11, 3, 9.0).await;
    assert!(store.exposures(a.id_a).await.unwrap().is_empty());
}

async fn clear_exposures_keeps_risk_flags(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let a = new_registration(&mut rng, 5);
    store.insert_registration(&a).await.unwrap();
    score(&*store, a.id_a, 20, 1, 14.0).await;
    score(&*store, a.id_a, 21, 2, 15.0).await;
    score(&*store, a.id_a, 20, 3, 1.5).await;
    assert_eq!(
        store.exposures(a.id_a).await.unwrap(),
        vec![
            EpochExposure::new(Epoch(20), vec![14.0, 1.5]),
            EpochExposure::new(Epoch(21), vec![15.0]),
        ]
    );
    let risk = NewRisk {
        last_contact: NtpSeconds(3_882_470_400),
        latest_risk_epoch: Epoch(30),
    };
    set_risk(&*store, a.id_a, risk).await;
    assert_eq!(store.clear_exposures(a.id_a).await.unwrap(), 3);
    assert!(store.exposures(a.id_a).await.unwrap().is_empty());
    let reg = store.get_registration(a.id_a).await.unwrap().unwrap();
    assert!(reg.at_risk);
    assert_eq!(reg.last_contact, risk.last_contact);
    assert_eq!(reg.latest_risk_epoch, Epoch(30));
    assert_eq!(store.clear_exposures(a.id_a).await.unwrap(), 0);
}

async fn concurrent_status_writes_are_all_committed(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let regs: Vec<_> = (0..400)
        .map(|i| new_registration(&mut rng, 1000 + i))
        .collect();
    store.insert_registrations_bulk(&regs).await.unwrap();
    let risk = NewRisk {
        last_contact: NtpSeconds(3_882_470_400),
        latest_risk_epoch: Epoch(9),
    };
    let updates: Vec<_> = regs
        .iter()
        .step_by(2)
        .map(|r| RiskUpdate {
            id_a: r.id_a,
            at_risk: Some(risk),
        })
        .collect();
    store.apply_risk_updates(&updates, 0).await.unwrap();
    // Every registration sends two statuses at once, plus a duplicate insert
    // that fails inside the same group commits without disturbing the others.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, r) in regs.iter().enumerate() {
        for k in 0..2u32 {
            let store = Arc::clone(&store);
            let id = r.id_a;
            tasks.spawn(async move {
                store
                    .record_status_success(&StatusSuccess {
                        id_a: id,
                        epoch: Epoch(500 + k),
                        drift_secs: i64::try_from(i).unwrap(),
                    })
                    .await
                    .map(|o| o.unwrap())
            });
        }
        let store = Arc::clone(&store);
        let dup = r.clone();
        tasks.spawn(async move {
            let e = store.insert_registration(&dup).await;
            assert!(matches!(e, Err(StoreError::DuplicateIdA)), "{e:?}");
            Ok(robert_store::StatusOutcome {
                at_risk: false,
                last_contact: NtpSeconds(0),
                latest_risk_epoch: Epoch(0),
                alerted: false,
                notified: false,
            })
        });
    }
    let mut alerted = 0;
    while let Some(r) = tasks.join_next().await {
        alerted += i64::from(r.unwrap().unwrap().alerted);
    }
    // Exactly one of the two concurrent statuses of each at-risk user alerted.
    assert_eq!(alerted, 200);
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::ALERTED_USERS), 200);
    assert_eq!(kpis.get(kpi::NOTIFIED_USERS), 200);
    for (i, r) in regs.iter().enumerate() {
        let reg = store.get_registration(r.id_a).await.unwrap().unwrap();
        assert!(reg.last_status_epoch == Epoch(500) || reg.last_status_epoch == Epoch(501));
        assert_eq!(reg.last_timestamp_drift, i64::try_from(i).unwrap());
        assert_eq!(reg.is_notified, i % 2 == 0);
    }
}

async fn committed_writes_survive_reopening(store: Arc<dyn Store>, url: String) {
    let mut rng = rng();
    let a = new_registration(&mut rng, 77);
    store.insert_registration(&a).await.unwrap();
    store.increment_kpi(kpi::REPORTS_COUNT, 5).await.unwrap();
    store.close().await;
    let again = robert_store::open(&url, &robert_store::StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        again.get_registration(a.id_a).await.unwrap().unwrap().key_a,
        a.key_a
    );
    assert_eq!(again.kpis().await.unwrap().get(kpi::REPORTS_COUNT), 5);
    again.close().await;
}
