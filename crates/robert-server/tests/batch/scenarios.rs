//! The acceptance scenarios of server-api.md §7 that involve the batch.

use std::sync::Arc;

use robert_store::{StatusSuccess, Store, kpi};

use crate::both_backends;
use crate::support::{DAY, HOUR, MINUTE, TODAY, World, days_ago, now, reg, register};

both_backends!(
    sixty_minutes_puts_the_contact_at_risk,
    short_contacts_stay_below_the_threshold,
    exposure_older_than_seven_days_counts_in_the_retention_kpi,
    only_exposures_after_the_last_detection_count,
    unregistered_sender_is_discarded,
);

/// One KPI's current value.
async fn kpi_of(store: &dyn Store, name: &str) -> i64 {
    store.kpis().await.unwrap().get(name)
}

/// positive-declaration 1, 4 and kpis 5: John and Sarah 60 min, John reports.
async fn sixty_minutes_puts_the_contact_at_risk(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(1);
    let (john, sarah, paul) = (
        w.phone(days_ago(18)),
        w.phone(days_ago(18)),
        w.phone(days_ago(18)),
    );
    for p in [&john, &sarah, &paul] {
        register(&*store, p).await;
    }
    // Starting on an epoch boundary: 4 full contacts of 900 HELLOs.
    let from = now().minus(2 * HOUR);
    let contacts = w.proximity(&sarah, from, 3600);
    assert_eq!(contacts.len(), 4);
    store.insert_contacts(&contacts, now()).await.unwrap();

    let report = w.batch(&*store, now(), 7).await;
    assert_eq!(report.contacts_processed, 4);
    assert_eq!(report.contacts_scored, 4);
    assert_eq!(report.contacts_rejected.total(), 0);
    assert_eq!(report.hellos_processed, 3600);
    assert_eq!(report.hellos_valid, 3600);
    assert_eq!(report.registrations_evaluated, 1);
    assert_eq!(report.registrations_at_risk, 1);
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 0);

    // Each full epoch of close contact scores 14 (15 windows, kmax = 14, v = 1).
    let exposures = store.exposures(sarah.id_a).await.unwrap();
    let first = w.start.epoch_at(from);
    assert_eq!(exposures.len(), 4);
    for (i, e) in exposures.iter().enumerate() {
        assert_eq!(e.epoch, first.plus(i as u32));
        assert_eq!(e.scores.len(), 1);
        assert!((e.scores[0] - 14.0).abs() < 1e-9, "{}", e.scores[0]);
    }
    let s = reg(&*store, &sarah).await;
    assert!(s.at_risk && !s.outdated_risk && !s.notified_for_current_risk && !s.is_notified);
    assert_eq!(s.latest_risk_epoch, w.start.epoch_at(now()));
    // The randomised last contact date: a UTC midnight, today or yesterday
    // (the exposure is today, so only offsets −1 and 0 are drawn).
    assert_eq!(s.last_contact, s.last_contact.utc_midnight());
    assert!(
        s.last_contact == TODAY || s.last_contact == TODAY.minus(DAY),
        "{}",
        s.last_contact
    );
    // The reporter and the bystander are not at risk and have no exposure.
    for p in [&john, &paul] {
        assert!(!reg(&*store, p).await.at_risk);
        assert!(store.exposures(p.id_a).await.unwrap().is_empty());
    }
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::INFECTED_USERS_NOT_NOTIFIED), 1);
    assert_eq!(kpis.get(kpi::EXPOSED_BUT_NOT_AT_RISK_USERS), 0);
    assert_eq!(kpis.get(kpi::NOTIFIED_USERS_SCORED_AGAIN), 0);
    assert_eq!(kpis.get(kpi::REPORTS_COUNT), 1);

    // Sarah asks for her status: notified; the next batch updates the KPI.
    let out = store
        .record_status_success(&StatusSuccess {
            id_a: sarah.id_a,
            epoch: w.start.epoch_at(now()),
            drift_secs: 0,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(out.at_risk && out.alerted && out.notified);
    w.batch(&*store, now().plus(HOUR), 8).await;
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::INFECTED_USERS_NOT_NOTIFIED), 0);
    assert_eq!(kpis.get(kpi::NOTIFIED_USERS), 1);
    assert_eq!(kpis.get(kpi::ALERTED_USERS), 1);
}

/// positive-declaration 5 and the §4.5 threshold: 5 min (score 4) and 15 min
/// (score 14 < 14.84) are below it; a second 15-minute contact crosses it.
async fn short_contacts_stay_below_the_threshold(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(2);
    let (five, fifteen) = (w.phone(days_ago(18)), w.phone(days_ago(18)));
    register(&*store, &five).await;
    register(&*store, &fifteen).await;
    let mut contacts = w.proximity(&five, now().minus(2 * HOUR), 5 * MINUTE);
    contacts.extend(w.proximity(&fifteen, now().minus(2 * HOUR), 15 * MINUTE));
    store.insert_contacts(&contacts, now()).await.unwrap();
    let report = w.batch(&*store, now(), 1).await;
    assert_eq!(report.registrations_evaluated, 2);
    assert_eq!(report.registrations_at_risk, 0);
    let score = |e: Vec<robert_core::scoring::EpochExposure>| {
        e.iter().flat_map(|x| x.scores.clone()).sum::<f64>()
    };
    assert!((score(store.exposures(five.id_a).await.unwrap()) - 4.0).abs() < 1e-9);
    assert!((score(store.exposures(fifteen.id_a).await.unwrap()) - 14.0).abs() < 1e-9);
    assert!(!reg(&*store, &five).await.at_risk && !reg(&*store, &fifteen).await.at_risk);
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::EXPOSED_BUT_NOT_AT_RISK_USERS), 2);
    assert_eq!(kpis.get(kpi::INFECTED_USERS_NOT_NOTIFIED), 0);

    // Another reporter met `fifteen` for 15 more minutes: S = 28, risk 0.18.
    let more = w.proximity(&fifteen, now().minus(HOUR), 15 * MINUTE);
    store.insert_contacts(&more, now()).await.unwrap();
    let report = w.batch(&*store, now().plus(MINUTE), 2).await;
    assert_eq!(report.registrations_evaluated, 1);
    assert_eq!(report.registrations_at_risk, 1);
    assert!(reg(&*store, &fifteen).await.at_risk);
    assert_eq!(kpi_of(&*store, kpi::EXPOSED_BUT_NOT_AT_RISK_USERS).await, 1);
}

/// kpis 1–4: an exposure 8 days old is above the threshold but too old
/// (KPI +1, not at risk); one 6 days old puts at risk (KPI unchanged).
async fn exposure_older_than_seven_days_counts_in_the_retention_kpi(
    store: Arc<dyn Store>,
    _url: String,
) {
    let mut w = World::new(3);
    let (old, recent, ines, hugo) = (
        w.phone(days_ago(20)),
        w.phone(days_ago(20)),
        w.phone(days_ago(20)),
        w.phone(days_ago(20)),
    );
    for p in [&old, &recent, &ines, &hugo] {
        register(&*store, p).await;
    }
    let mut contacts = w.proximity(&old, days_ago(8), 3600);
    contacts.extend(w.proximity(&ines, days_ago(8), 3600));
    contacts.extend(w.proximity(&hugo, days_ago(8), 3600));
    contacts.extend(w.proximity(&recent, days_ago(6), 3600));
    store.insert_contacts(&contacts, now()).await.unwrap();
    let report = w.batch(&*store, now(), 3).await;
    assert_eq!(report.retention_expired, 3);
    assert_eq!(report.registrations_at_risk, 1);
    assert_eq!(
        kpi_of(
            &*store,
            kpi::USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED
        )
        .await,
        3
    );
    for p in [&old, &ines, &hugo] {
        let r = reg(&*store, p).await;
        assert!(!r.at_risk && !r.outdated_risk);
        assert_eq!(
            store.exposures(p.id_a).await.unwrap().len(),
            4,
            "kept for 14 days"
        );
    }
    let r = reg(&*store, &recent).await;
    assert!(r.at_risk);
    // Contact 6 days ago: offsets {−1, 0, +1} around that day.
    let day = days_ago(6).utc_midnight();
    assert!(
        [day.minus(DAY), day, day.plus(DAY)].contains(&r.last_contact),
        "{}",
        r.last_contact
    );
    // The KPI fires again whenever such a registration is re-scored.
    store
        .insert_contacts(&w.proximity(&old, days_ago(9), 60), now())
        .await
        .unwrap();
    w.batch(&*store, now(), 4).await;
    assert_eq!(
        kpi_of(
            &*store,
            kpi::USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED
        )
        .await,
        4
    );
}

/// kpis 6 and §4.5 step 1: after a detection only later exposures count.
async fn only_exposures_after_the_last_detection_count(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(4);
    let hugo = w.phone(days_ago(18));
    register(&*store, &hugo).await;
    store
        .insert_contacts(
            &w.proximity(&hugo, now().minus(3 * HOUR), 3600),
            now().minus(HOUR),
        )
        .await
        .unwrap();
    let t1 = now().minus(HOUR);
    w.batch(&*store, t1, 1).await;
    let first = reg(&*store, &hugo).await;
    assert!(first.at_risk);
    assert_eq!(first.latest_risk_epoch, w.start.epoch_at(t1));
    store
        .record_status_success(&StatusSuccess {
            id_a: hugo.id_a,
            epoch: w.start.epoch_at(t1),
            drift_secs: 0,
        })
        .await
        .unwrap();

    // 15 more minutes after the detection: S since then = 14 < 14.84.
    store
        .insert_contacts(
            &w.proximity(&hugo, t1.plus(15 * MINUTE), 15 * MINUTE),
            now(),
        )
        .await
        .unwrap();
    let t2 = now().plus(HOUR);
    let report = w.batch(&*store, t2, 2).await;
    assert_eq!(
        (report.registrations_evaluated, report.registrations_at_risk),
        (1, 0)
    );
    let second = reg(&*store, &hugo).await;
    assert_eq!(second.latest_risk_epoch, first.latest_risk_epoch);
    assert_eq!(second.last_contact, first.last_contact);
    assert!(second.notified_for_current_risk, "no new risk episode");

    // 60 more minutes: a new detection, a new episode.
    store
        .insert_contacts(&w.proximity(&hugo, t2, 3600), t2.plus(HOUR))
        .await
        .unwrap();
    let t3 = t2.plus(2 * HOUR);
    let report = w.batch(&*store, t3, 3).await;
    assert_eq!(report.registrations_at_risk, 1);
    let third = reg(&*store, &hugo).await;
    assert_eq!(third.latest_risk_epoch, w.start.epoch_at(t3));
    assert!(third.at_risk && !third.notified_for_current_risk && third.is_notified);
    assert!(
        third.last_contact >= first.last_contact,
        "only moves forward"
    );
    let out = store
        .record_status_success(&StatusSuccess {
            id_a: hugo.id_a,
            epoch: w.start.epoch_at(t3),
            drift_secs: 0,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(out.notified && !out.alerted);
    assert_eq!(kpi_of(&*store, kpi::NOTIFIED_USERS).await, 2);
}

/// unregister 2: Sarah unregisters, then Paul reports their contact.
async fn unregistered_sender_is_discarded(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(5);
    let (paul, sarah) = (w.phone(days_ago(15)), w.phone(days_ago(15)));
    register(&*store, &paul).await;
    register(&*store, &sarah).await;
    let contacts = w.proximity(&sarah, days_ago(5), 3600);
    assert!(store.delete_registration(sarah.id_a).await.unwrap());
    store.insert_contacts(&contacts, now()).await.unwrap();
    let report = w.batch(&*store, now(), 1).await;
    assert_eq!(report.contacts_processed, 4);
    assert_eq!(report.contacts_rejected.unknown_registration, 4);
    assert_eq!(report.contacts_scored, 0);
    assert_eq!(report.registrations_evaluated, 0);
    assert_eq!(store.get_registration(sarah.id_a).await.unwrap(), None);
    assert!(store.exposures(sarah.id_a).await.unwrap().is_empty());
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 0);
}
