//! robert-server (`push.url` = this service) → the push service → the mock
//! APNs, with phones of the SDK registering and sending `pushInfo`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use robert_client::{
    DeviceModel, FixedCaptchaAnswer, MemoryStorage, Phone, PhoneConfig, PushInfo, RetryPolicy,
    ServiceTransport,
};
use robert_server::config::Config;
use robert_server::serve::ServerBuilder;
use robert_store::testing::TestDatabase;

use crate::support::{Harness, device};

type TestPhone = Phone<ServiceTransport<Router>, MemoryStorage>;

/// Waits (≤ 5 s) until the push store agrees with `present`: the server's
/// calls to the push service are fire-and-forget.
async fn wait_for(h: &Harness, token: &str, present: bool) {
    for _ in 0..500 {
        if h.svc.store().get(token).await.unwrap().is_some() == present {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "push store never {} the token",
        if present { "got" } else { "lost" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_pushinfo_reaches_apns_once_a_day() {
    let h = Harness::new(None).await;
    let clock = h.clock.clone();

    // robert-server, on the same clock, with push.url at the service.
    let db = TestDatabase::sqlite("push_e2e").await.unwrap();
    let mut config = Config::default();
    config.push.url = h.push_url();
    let state = ServerBuilder::for_tests(config, Arc::new(clock.clone()))
        .store(db.store())
        .build()
        .await
        .unwrap();
    let public_key = state.keys.get().registration().public_key_base64();
    let router = robert_server::api::app(state);
    let mut phone_config = PhoneConfig::with_key_base64(
        "http://robert.test",
        &public_key,
        DeviceModel::android("DEFAULT"),
    )
    .unwrap();
    phone_config.retry = RetryPolicy::none();
    let phone_config = Arc::new(phone_config);

    // Three iPhones register, then send their push info with /status.
    let mut phones: Vec<TestPhone> = Vec::new();
    for i in 0..3u32 {
        let mut p = Phone::open(
            phone_config.clone(),
            ServiceTransport::new(router.clone()),
            MemoryStorage::new(),
            Arc::new(clock.clone()),
            StdRng::seed_from_u64(u64::from(i)),
        )
        .unwrap();
        p.register(&mut FixedCaptchaAnswer("x".into()))
            .await
            .unwrap();
        p.set_push_info(Some(PushInfo {
            token: device(100 + i),
            locale: "fr-FR".into(),
            timezone: "Europe/Paris".into(),
        }));
        phones.push(p);
    }
    clock.advance_secs(3600);
    for (i, p) in phones.iter_mut().enumerate() {
        p.status().await.unwrap();
        wait_for(&h, &device(100 + i as u32), true).await;
    }
    let (good, bad, leaving) = (device(100), device(101), device(102));
    h.mock().set_bad(&bad);

    // Until 23:00 in Paris tomorrow: every valid token is pushed once; the
    // bad one is deactivated.
    h.run_for(126_000, 600).await;
    assert_eq!(h.accepted_for(&good).len(), 1);
    assert_eq!(h.accepted_for(&leaving).len(), 1);
    let bad_row = h.svc.store().get(&bad).await.unwrap().unwrap();
    assert!(!bad_row.active);
    let to_bad = h
        .mock()
        .received()
        .iter()
        .filter(|r| r.token == bad)
        .count();
    assert_eq!(to_bad, 1);

    // The third phone unregisters: robert-server deletes its token.
    phones[2].unregister().await.unwrap();
    wait_for(&h, &leaving, false).await;

    // Day 2 (the first phone checks its status again: a refresh, not a
    // second schedule).
    phones[0].status().await.unwrap();
    h.run_for(86_400, 600).await;
    assert_eq!(h.accepted_for(&good).len(), 2, "one push a day");
    assert_eq!(h.accepted_for(&leaving).len(), 1, "none after /unregister");
    assert_eq!(
        h.mock()
            .received()
            .iter()
            .filter(|r| r.token == bad)
            .count(),
        1
    );
    // Every request the mock saw was well-formed (JWT, headers, payload).
    assert!(
        h.mock()
            .received()
            .iter()
            .all(|r| r.status == 200 || r.reason == "BadDeviceToken")
    );
    db.cleanup().await;
}
