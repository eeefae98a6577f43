//! The service alone: token API, scheduler, APNs client → mock APNs.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use robert_clock::Clock as _;

use crate::support::{Harness, device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_api_is_the_references() {
    let h = Harness::new(None).await;
    let url = format!("{}/push-token", h.push_url());
    let post = |body: serde_json::Value| {
        let h = &h;
        let url = url.clone();
        async move {
            let r = h.http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let t = device(1);
    // Validation: {field: message}.
    let (s, b) = post(serde_json::json!({"locale": "fr", "timezone": "Europe/Paris"})).await;
    assert_eq!(s, 400);
    assert!(b.contains("\"token\""), "{b}");
    let (s, b) =
        post(serde_json::json!({"token": t, "locale": " ", "timezone": "Europe/Paris"})).await;
    assert_eq!((s, b.contains("\"locale\"")), (400, true), "{b}");
    let (s, _) =
        post(serde_json::json!({"token": 3, "locale": "fr", "timezone": "Europe/Paris"})).await;
    assert_eq!(s, 400);
    let long = "a".repeat(256);
    let (s, _) =
        post(serde_json::json!({"token": long, "locale": "fr", "timezone": "Europe/Paris"})).await;
    assert_eq!(s, 400);
    // Unknown time zone: 400, empty body.
    let (s, b) =
        post(serde_json::json!({"token": t, "locale": "fr", "timezone": "Mars/Olympus"})).await;
    assert_eq!((s, b.as_str()), (400, ""));
    let r = h.http.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // GET: 405.
    assert_eq!(
        h.http.get(&url).send().await.unwrap().status().as_u16(),
        405
    );
    assert_eq!(
        h.svc.store().counts().await.unwrap(),
        (0, 0),
        "nothing stored"
    );

    // Registration: 201, planned in tomorrow's window in Paris.
    assert_eq!(h.register(&t, "Europe/Paris").await, 201);
    let row = h.svc.store().get(&t).await.unwrap().unwrap();
    let planned = DateTime::from_timestamp(row.next_planned_push, 0).unwrap();
    let paris: Tz = "Europe/Paris".parse().unwrap();
    assert!(h.svc.window().contains(planned, paris), "{planned}");
    assert_eq!(
        planned.with_timezone(&paris).format("%F").to_string(),
        "2024-03-15"
    );
    // A refresh keeps the planned push and updates the zone.
    assert_eq!(h.register(&t, "Indian/Reunion").await, 201);
    let again = h.svc.store().get(&t).await.unwrap().unwrap();
    assert_eq!(again.next_planned_push, row.next_planned_push);
    assert_eq!(again.timezone, "Indian/Reunion");

    // Removal: 202, then unknown: 400.
    assert_eq!(h.unregister(&t).await, 202);
    assert!(
        h.svc.store().get(&t).await.unwrap().is_none(),
        "deleted, not kept"
    );
    assert_eq!(h.unregister(&t).await, 400);
    let m = h
        .http
        .get(format!("{}/metrics", h.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("robert_push_registrations_total 2"), "{m}");
    assert!(m.contains("robert_push_unregistrations_total 1"), "{m}");
}

/// Exactly one push per token per local day, inside its window.
async fn one_push_a_day(h: &Harness) {
    let zones = [
        "Europe/Paris",
        "America/Cayenne",
        "Pacific/Noumea",
        "Indian/Reunion",
    ];
    for (i, z) in zones.iter().enumerate() {
        assert_eq!(h.register(&device(i as u32), z).await, 201);
    }
    // Three days, a scan every 10 minutes.
    h.run_for(3 * 86_400, 600).await;
    for (i, z) in zones.iter().enumerate() {
        let tz: Tz = z.parse().unwrap();
        let at = h.accepted_for(&device(i as u32));
        let days: Vec<String> = at
            .iter()
            .map(|t| {
                let t = DateTime::<Utc>::from_timestamp(*t, 0).unwrap();
                // Scans every 10 min: a push is at most 10 min late.
                assert!(
                    h.svc
                        .window()
                        .contains(t - chrono::Duration::seconds(600), tz)
                        || h.svc.window().contains(t, tz),
                    "{z}: {t}"
                );
                t.with_timezone(&tz).format("%F").to_string()
            })
            .collect();
        let mut unique = days.clone();
        unique.dedup();
        assert_eq!(unique, days, "{z}: never twice a day");
        assert!((2..=3).contains(&days.len()), "{z}: {days:?}");
    }
    let total: usize = (0..4).map(|i| h.accepted_for(&device(i)).len()).sum();
    assert_eq!(
        h.mock().total() as usize,
        total,
        "no request but the accepted ones"
    );
    let row = h.svc.store().get(&device(0)).await.unwrap().unwrap();
    assert_eq!(
        row.successful_push_sent as usize,
        h.accepted_for(&device(0)).len()
    );
    assert!(row.next_planned_push > h.clock.now_unix());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_push_per_token_per_day_sqlite() {
    let h = Harness::new(None).await;
    one_push_a_day(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_push_per_token_per_day_postgres() {
    let Some(db) = robert_store::testing::TestDatabase::postgres("push_daily")
        .await
        .unwrap()
    else {
        return;
    };
    let h = Harness::new(Some(db.url())).await;
    one_push_a_day(&h).await;
    drop(h);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_unregistered_tokens_are_deactivated_after_failover() {
    // Two servers (production then sandbox; here the same mock twice).
    let h = Harness::with(None, |c| {
        c.apns.urls = vec![c.apns.urls[0].clone(), c.apns.urls[0].clone()]
    })
    .await;
    let (good, bad, gone) = (device(1), device(2), device(3));
    for t in [&good, &bad, &gone] {
        assert_eq!(h.register(t, "Europe/Paris").await, 201);
    }
    h.mock().set_bad(&bad);
    h.mock().set_unregistered(&gone);
    // Until 23:00 in Paris tomorrow: every token's first window is over.
    h.run_for(129_600, 900).await;
    let bad_row = h.svc.store().get(&bad).await.unwrap().unwrap();
    assert!(!bad_row.active);
    assert_eq!(
        bad_row.last_error_code.as_deref(),
        Some("BadDeviceToken,BadDeviceToken")
    );
    let gone_row = h.svc.store().get(&gone).await.unwrap().unwrap();
    assert!(!gone_row.active);
    assert_eq!(
        gone_row.last_error_code.as_deref(),
        Some("Unregistered"),
        "410: no failover"
    );
    let requests = |t: &str| h.mock().received().iter().filter(|r| r.token == t).count();
    assert_eq!((requests(&bad), requests(&gone)), (2, 1));
    // No more pushes to them; the good one goes on.
    h.run_for(2 * 86_400, 900).await;
    assert_eq!((requests(&bad), requests(&gone)), (2, 1));
    assert_eq!(h.accepted_for(&good).len(), 3);
    let m = h.svc.metrics();
    assert_eq!(robert_push::metrics::Metrics::get(&m.invalid), 2);
    // Registering again (the app sent it again) reactivates it.
    assert_eq!(h.register(&gone, "Europe/Paris").await, 201);
    assert!(h.svc.store().get(&gone).await.unwrap().unwrap().active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_on_429_and_5xx_then_gives_up() {
    let h = Harness::new(None).await;
    let t = device(7);
    assert_eq!(h.register(&t, "Europe/Paris").await, 201);
    let due = h
        .svc
        .store()
        .get(&t)
        .await
        .unwrap()
        .unwrap()
        .next_planned_push;
    h.clock.set_unix(due);
    h.mock().fail_next(1, 429, "TooManyRequests");
    h.mock().fail_next(1, 503, "ServiceUnavailable");
    h.mock().fail_next(1, 500, "InternalServerError");
    let r = h.svc.scan().await.unwrap();
    assert_eq!((r.claimed, r.accepted), (1, 1));
    let m = h.svc.metrics();
    use robert_push::metrics::Metrics;
    assert_eq!((Metrics::get(&m.sent), Metrics::get(&m.retries)), (4, 3));

    // Next day: more failures than retries (3): failed, kept active.
    let due = h
        .svc
        .store()
        .get(&t)
        .await
        .unwrap()
        .unwrap()
        .next_planned_push;
    h.clock.set_unix(due);
    h.mock().fail_next(4, 503, "ServiceUnavailable");
    let r = h.svc.scan().await.unwrap();
    assert_eq!((r.claimed, r.failed), (1, 1));
    let row = h.svc.store().get(&t).await.unwrap().unwrap();
    assert!(row.active);
    assert_eq!((row.successful_push_sent, row.failed_push_sent), (1, 1));
    assert_eq!(row.last_error_code.as_deref(), Some("ServiceUnavailable"));
    assert!(
        row.next_planned_push > due + 12 * 3600,
        "rescheduled before sending"
    );
    assert_eq!(Metrics::get(&m.failed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_token_is_refreshed_and_expired_ones_replaced() {
    let h = Harness::new(None).await;
    for i in 0..3 {
        assert_eq!(h.register(&device(i), "Europe/Paris").await, 201);
    }
    h.run_for(2 * 86_400, 300).await;
    let rx = h.mock().received();
    assert!(rx.iter().all(|r| r.status == 200), "{rx:?}");
    for r in &rx {
        let age = r.at - r.iat.unwrap();
        assert!((0..2400).contains(&age), "token {age} s old");
    }
    // An ExpiredProviderToken answer for a token ≥ 20 min old: replaced,
    // retried, accepted.
    let last_iat = rx.last().unwrap().iat.unwrap();
    let now = last_iat + 1500;
    h.clock.set_unix(now);
    let extra = device(9);
    h.svc
        .store()
        .insert_bulk([(extra.clone(), "Europe/Paris".to_owned(), now)], now)
        .await
        .unwrap();
    h.mock().clear();
    h.mock().fail_next(1, 403, "ExpiredProviderToken");
    let r = h.svc.scan().await.unwrap();
    assert!(r.accepted >= 1 && r.failed == 0, "{r:?}");
    let rx = h.mock().received();
    assert_eq!((rx[0].status, rx[0].iat), (403, Some(last_iat)));
    assert_eq!(rx[1].iat, Some(now), "a new token after the 403");
    assert_eq!(h.accepted_for(&extra).len(), 1);
}
