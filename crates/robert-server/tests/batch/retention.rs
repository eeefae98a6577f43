//! Purge after the contagious period and risk reset after the retention
//! period (server-api.md §4.1 b/d, §4.5, §4.6; privacy and
//! time-risk-evolution scenarios of §7).

use std::sync::Arc;

use robert_core::time::Epoch;
use robert_store::{Store, kpi};

use crate::both_backends;
use crate::support::{DAY, HOUR, MINUTE, World, days_ago, now, reg, register};

both_backends!(exposures_are_purged_after_14_days, risk_lasts_about_a_week);

/// privacy 1 and the 1344-epoch boundary.
async fn exposures_are_purged_after_14_days(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(21);
    let (sarah, edge) = (w.phone(days_ago(20)), w.phone(days_ago(20)));
    register(&*store, &sarah).await;
    register(&*store, &edge).await;
    // 15 days ago: Sarah met John 60 min, John reported, the batch ran.
    let then = days_ago(15);
    store
        .insert_contacts(&w.proximity(&sarah, then, 3600), then.plus(HOUR))
        .await
        .unwrap();
    // 14 days ago, straddling the cut: epochs current−1346 … current−1343.
    let current = w.start.epoch_at(now());
    let from = w.start.epoch_start(current.minus(1346));
    store
        .insert_contacts(&w.proximity(&edge, from, 3600), then.plus(HOUR))
        .await
        .unwrap();
    let first = w.batch(&*store, then.plus(2 * HOUR), 1).await;
    assert_eq!(first.registrations_at_risk, 2);
    assert!(reg(&*store, &sarah).await.at_risk);

    let out = w.batch(&*store, now(), 2).await;
    assert_eq!(out.exposures_purged, 4 + 2);
    assert_eq!(out.risks_reset, 2);
    assert!(store.exposures(sarah.id_a).await.unwrap().is_empty());
    let s = reg(&*store, &sarah).await;
    assert!(!s.at_risk && !s.notified_for_current_risk);
    let kept: Vec<Epoch> = store
        .exposures(edge.id_a)
        .await
        .unwrap()
        .iter()
        .map(|e| e.epoch)
        .collect();
    assert_eq!(kept, [current.minus(1344), current.minus(1343)]);
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::INFECTED_USERS_NOT_NOTIFIED), 0);
    assert_eq!(
        kpis.get(kpi::EXPOSED_BUT_NOT_AT_RISK_USERS),
        1,
        "edge still has exposures"
    );
}

/// time-risk-evolution: exposed, reported and batched X days ago, then a
/// batch today. Still at risk for X ∈ {1, 2, 6} (also at 00:01); not for
/// X ∈ {8, 10} (also 8 days ago at 23:59). Three phones per X so that
/// the random last-contact offsets vary.
async fn risk_lasts_about_a_week(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(22);
    // (start of the contact, expected at risk today), chronological.
    let midnight = |d: u64| now().utc_midnight().minus(d * DAY);
    let cases = [
        (days_ago(10), false),
        (days_ago(8), false),
        (midnight(8).plus(23 * HOUR + 59 * MINUTE), false),
        (midnight(6).plus(MINUTE), true),
        (days_ago(6), true),
        (days_ago(2), true),
        (days_ago(1), true),
    ];
    let mut phones = Vec::new();
    for (i, (at, expected)) in cases.iter().enumerate() {
        for _ in 0..3 {
            let p = w.phone(days_ago(15));
            register(&*store, &p).await;
            store
                .insert_contacts(&w.proximity(&p, *at, 3600), at.plus(HOUR))
                .await
                .unwrap();
            phones.push((p, *expected, i));
        }
        // As in the e2e harness, the report and the batch happen at that time
        // (the HELLOs run on for the next hour).
        let out = w.batch(&*store, *at, i as u64).await;
        assert_eq!(out.registrations_at_risk, 3);
    }
    w.batch(&*store, now(), 100).await;
    for (p, expected, case) in &phones {
        let r = reg(&*store, p).await;
        assert_eq!(
            r.at_risk, *expected,
            "case {case}: last contact {}",
            r.last_contact
        );
    }
}
