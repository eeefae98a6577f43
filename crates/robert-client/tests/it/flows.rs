//! The SDK's flows against the fake server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_client::{
    CaptchaChallenge, CaptchaSolver, ClientError, Clock, FixedCaptchaAnswer, MemoryStorage, Phone,
    PhoneConfig, ReceiveError, ReportBasis, RetryPolicy, ServiceTransport, Transport,
    TransportError, TransportErrorKind,
};
use robert_core::hello::Hello;
use robert_core::mac::Salt;

use crate::support::{World, exchange, t0};

#[tokio::test]
async fn register_stores_tuples_and_emits_valid_hellos() {
    let w = World::new();
    let p = w.registered(1).await;
    let reg = p.registration().unwrap();
    assert_eq!(reg.time_start().get(), 3_799_958_400);
    assert_eq!(reg.registered_at(), t0());
    // From epoch 66855 (index 39 in the day) to the end of day + 3: 57 + 288.
    assert_eq!(reg.tuples().len(), 345);
    let t = p.current_tuple().unwrap();
    assert_eq!(t.epoch.get(), 66_855);

    let hello = Hello::from_bytes(&p.hello().unwrap()).unwrap();
    assert_eq!(hello.ebid, t.ebid);
    assert_eq!(hello.time, t0().time16());
    // The server can check the MAC with the K_A it derived on its side.
    let id = w.server.id_of(&hello.ebid);
    assert!(hello.verify_mac(&w.server.lock().ids[&id].key_a));

    // The BLE payload carries the version and this model's TX gain (SM-G973F: −25).
    let payload = p.ble_payload().unwrap();
    assert_eq!(&payload[..16], &hello.to_bytes());
    assert_eq!((payload[16], payload[17] as i8), (1, -25));

    // The HELLO follows the epoch: next epoch, next EBID.
    w.clock.advance_secs(900);
    let next = Hello::from_bytes(&p.hello().unwrap()).unwrap();
    assert_ne!(next.ebid, hello.ebid);
    assert_eq!(p.current_tuple().unwrap().epoch.get(), 66_856);

    let s = p.summary();
    assert_eq!(s.registered_since, Some(t0()));
    assert_eq!(s.ebids_left, 344);
    assert!(s.next_status_due.unwrap() > t0().plus(8 * 3600 - 1));
}

#[tokio::test]
async fn register_refuses_twice_and_reports_captcha_outcomes() {
    let w = World::new();
    let mut p = w.registered(1).await;
    assert!(matches!(
        p.register(&mut FixedCaptchaAnswer("ok".into())).await,
        Err(ClientError::AlreadyRegistered)
    ));

    let mut q = w.phone(2);
    assert!(matches!(
        q.register(&mut FixedCaptchaAnswer("wrong".into())).await,
        Err(ClientError::CaptchaRejected)
    ));
    assert!(!q.is_registered());

    struct GiveUp(Option<CaptchaChallenge>);
    impl CaptchaSolver for GiveUp {
        async fn solve(&mut self, c: &CaptchaChallenge) -> Option<String> {
            self.0 = Some(c.clone());
            None
        }
    }
    let mut solver = GiveUp(None);
    assert!(matches!(
        q.register(&mut solver).await,
        Err(ClientError::CaptchaCancelled)
    ));
    let challenge = solver.0.unwrap();
    assert_eq!(challenge.media.as_deref(), Some(&b"\x89PNG fake"[..]));

    // Without a captcha image the solver still gets the id.
    w.server.lock().serve_captcha_image = false;
    q.register(&mut FixedCaptchaAnswer("ok".into()))
        .await
        .unwrap();
    assert!(q.is_registered());
}

#[tokio::test]
async fn wrong_server_key_means_undecryptable_tuples() {
    let w = World::new();
    let other = robert_core::registration::ServerKeyPair::generate(&mut StdRng::seed_from_u64(9));
    let mut config = (*w.config).clone();
    config.server_public_key = other.public_key();
    let mut p = Phone::open(
        Arc::new(config),
        w.transport(),
        MemoryStorage::new(),
        Arc::new(w.clock.clone()),
        StdRng::seed_from_u64(1),
    )
    .unwrap();
    assert!(matches!(
        p.register(&mut FixedCaptchaAnswer("ok".into())).await,
        Err(ClientError::TuplesUndecryptable)
    ));
    assert!(!p.is_registered());
}

#[tokio::test]
async fn receive_calibrates_dedups_and_rejects() {
    let w = World::new();
    let mut a = w.registered(1).await;
    let b = w.registered(2).await;
    let hb = b.hello().unwrap();
    // SM-G973F receiver: rx gain 0; sender tx −25: raw −70 → −45.
    a.receive_hello(&hb, -70, -25).unwrap();
    assert_eq!(
        a.receive_hello(&hb, -70, -25),
        Err(ReceiveError::Duplicate),
        "same EBID, same second"
    );
    let (_, records) = a.contacts().groups().next().unwrap();
    assert_eq!(records[0].rssi_calibrated, -45);
    assert_eq!(records[0].rssi_raw, -70);
    assert_eq!(
        a.receive_hello(&hb[..15], -70, -25),
        Err(ReceiveError::Malformed)
    );
    assert_eq!(a.receive_hello(&hb, 127, -25), Err(ReceiveError::NoRssi));
    assert_eq!(
        a.receive_hello(&a.hello().unwrap(), -50, -25),
        Err(ReceiveError::Own)
    );
    // A HELLO replayed 4 minutes later is stale (the server would drop it).
    w.clock.advance_secs(240);
    assert_eq!(a.receive_hello(&hb, -70, -25), Err(ReceiveError::StaleTime));
    assert_eq!(a.contacts().len(), 1);
}

#[tokio::test]
async fn status_refills_tuples_and_notifies_once_at_risk() {
    let w = World::new();
    let mut p = w.registered(1).await;
    w.clock.advance_secs(3 * 86_400); // tuples run low
    assert!(p.needs_refill());
    let out = p.status().await.unwrap();
    assert_eq!(out.risk_level, 0.0);
    assert!(out.tuples_received > 96);
    assert!(out.notification.is_none());
    assert!(!p.needs_refill());
    assert!(p.status_info().analytics_token.is_some());
    assert!(
        !format!("{:?}", p.status_info()).contains("analytics.jwt"),
        "tokens are redacted"
    );

    // Marked at risk: the next status notifies, delivered between 7h and 19h UTC.
    for ident in w.server.lock().ids.values_mut() {
        ident.at_risk = true;
    }
    w.clock.advance_secs(12 * 3600); // 21:45 UTC
    let out = p.status().await.unwrap();
    assert_eq!(out.risk_level, 4.0);
    let n = out.notification.unwrap();
    let local = n.deliver_at.seconds_into_utc_day();
    assert_eq!(local, 7 * 3600, "next morning 07:00");
    assert!(p.status_info().at_risk());
    assert!(p.status_info().last_contact_date.is_some());
    assert!(p.status_info().declaration_token.is_some());
    assert!(p.take_due_notification().is_none(), "not yet");
    w.clock.set_ntp(n.deliver_at);
    assert_eq!(p.take_due_notification(), Some(n));
    assert!(p.take_due_notification().is_none());

    // Same level, same scoring epoch: no new notification.
    w.clock.advance_secs(3600);
    let out = p.status().await.unwrap();
    assert_eq!(out.risk_level, 4.0);
    // The fake's lastRiskScoringDate is the status epoch, so it is newer: a
    // notification is due again (TAC: same level with newer scoring date).
    assert!(out.notification.is_some());
}

#[tokio::test]
async fn status_errors_back_off_and_430_wipes_the_registration() {
    let w = World::new();
    let mut p = w.registered(1).await;
    let hb = w.registered(2).await.hello().unwrap();
    p.receive_hello(&hb, -60, -30).unwrap();

    w.server
        .lock()
        .scripted
        .push_back((StatusCode::BAD_REQUEST, "Invalid data"));
    match p.status().await {
        Err(ClientError::BadRequest { message }) => {
            assert_eq!(message.as_deref(), Some("Invalid data"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.schedule().consecutive_failures, 1);
    assert_eq!(p.next_status_due(), Some(t0().plus(3 * 3600)));
    assert!(p.status_if_due().await.unwrap().is_none(), "backing off");

    // Rate limit of the server: two statuses within 2 epochs. A 400 with no
    // message right after a status is read as "too soon", with the time the
    // next one is accepted.
    w.clock.advance_secs(3 * 3600);
    assert!(p.status_if_due().await.unwrap().is_some());
    w.clock.advance_secs(60);
    assert!(matches!(
        p.status().await,
        Err(ClientError::StatusTooSoon { gap_epochs: 2, .. })
    ));

    // The server forgets the registration: 430, local registration wiped,
    // received HELLOs kept.
    w.server.lock().ids.clear();
    w.clock.advance_secs(3600);
    let err = p.status().await.unwrap_err();
    assert!(err.is_registration_dropped(), "{err:?}");
    assert!(!p.is_registered());
    assert_eq!(p.contacts().len(), 1);
    assert!(matches!(p.status().await, Err(ClientError::NotRegistered)));
    // And the phone can register again.
    p.register(&mut FixedCaptchaAnswer("ok".into()))
        .await
        .unwrap();
    assert!(p.is_registered());
}

#[tokio::test]
async fn clock_misalignment_is_detected() {
    let w = World::new();
    let mut p = w.registered(1).await;
    p.check_clock().await.unwrap();
    w.server.lock().date_offset = Some(300);
    match p.check_clock().await {
        Err(ClientError::ClockMisaligned { drift_secs }) => assert_eq!(drift_secs, 300),
        other => panic!("{other:?}"),
    }
    // Every response's Date header is checked too.
    w.clock.advance_secs(3600);
    assert!(matches!(
        p.status().await,
        Err(ClientError::ClockMisaligned { drift_secs: 300 })
    ));
    w.server.lock().date_offset = Some(-100);
    w.clock.advance_secs(3600); // the refused status still counted for the rate limit
    p.status().await.unwrap();
}

/// A transport failing its next `failures` requests with `kind`.
struct Flaky<T> {
    inner: T,
    failures: Arc<AtomicUsize>,
    kind: TransportErrorKind,
    calls: Arc<AtomicUsize>,
}

impl<T: Transport> Transport for Flaky<T> {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failed = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err(TransportError::new(self.kind, "injected"));
        }
        self.inner.send(request).await
    }
}

type FlakyPhone = Phone<Flaky<ServiceTransport<axum::Router>>, MemoryStorage>;

fn flaky_phone(
    w: &World,
    kind: TransportErrorKind,
) -> (FlakyPhone, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut config: PhoneConfig = (*w.config).clone();
    config.retry = RetryPolicy::default(); // 3 attempts, 1 s then 2 s apart
    let phone = Phone::open(
        Arc::new(config),
        Flaky {
            inner: w.transport(),
            failures: failures.clone(),
            kind,
            calls: calls.clone(),
        },
        MemoryStorage::new(),
        Arc::new(w.clock.clone()),
        StdRng::seed_from_u64(5),
    )
    .unwrap();
    (phone, calls, failures)
}

#[tokio::test(start_paused = true)]
async fn network_errors_are_retried_with_backoff() {
    let w = World::new();
    let (mut p, calls, failures) = flaky_phone(&w, TransportErrorKind::Timeout);
    failures.store(2, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    // /captcha times out twice, then succeeds; then the image and /register.
    p.register(&mut FixedCaptchaAnswer("ok".into()))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2 + 3);
    assert_eq!(started.elapsed(), std::time::Duration::from_secs(1 + 2));

    // Three failures exhaust the attempts: a network error.
    let (mut q, calls_q, failures_q) = flaky_phone(&w, TransportErrorKind::Connect);
    failures_q.store(3, Ordering::SeqCst);
    match q.register(&mut FixedCaptchaAnswer("ok".into())).await {
        Err(ClientError::Network(e)) => assert_eq!(e.kind, TransportErrorKind::Connect),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls_q.load(Ordering::SeqCst), 3);

    // A report that may have reached the server (timeout) is not repeated...
    w.server.lock().valid_codes.insert("AB12CD".into());
    let before = calls.load(Ordering::SeqCst);
    failures.store(1, Ordering::SeqCst);
    assert!(matches!(
        p.report("AB12CD", ReportBasis::Unknown).await,
        Err(ClientError::Network(_))
    ));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        before + 1,
        "no retry after a timeout"
    );
    // ...but one that surely did not leave is.
    let (mut r, calls, failures) = flaky_phone(&w, TransportErrorKind::Connect);
    failures.store(1, Ordering::SeqCst);
    r.report("AB12CD", ReportBasis::Unknown).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The reqwest transport over a real socket, where hyper adds a `Date`
/// header that the SDK compares with the phone's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_transport_over_tcp_checks_the_date_header() {
    let w = World::new();
    w.clock.set_ntp(robert_client::SystemClock.now_ntp());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = w.server.router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let mut config: PhoneConfig = (*w.config).clone();
    config.server_url = format!("http://{addr}");
    let transport =
        robert_client::ReqwestTransport::new(std::time::Duration::from_secs(5)).unwrap();
    let mut p = Phone::open(
        Arc::new(config.clone()),
        transport.clone(),
        MemoryStorage::new(),
        Arc::new(w.clock.clone()),
        StdRng::seed_from_u64(1),
    )
    .unwrap();
    p.register(&mut FixedCaptchaAnswer("ok".into()))
        .await
        .unwrap();
    assert!(p.is_registered());
    p.check_clock().await.unwrap();

    // A phone whose clock is 10 minutes fast is told so by the Date header.
    let fast = robert_client::ManualClock::at_ntp(w.clock.now_ntp().plus(600));
    let mut q = Phone::open(
        Arc::new(config),
        transport,
        MemoryStorage::new(),
        Arc::new(fast),
        StdRng::seed_from_u64(2),
    )
    .unwrap();
    match q.register(&mut FixedCaptchaAnswer("ok".into())).await {
        Err(ClientError::ClockMisaligned { drift_secs }) => {
            assert!((-602..=-598).contains(&drift_secs), "{drift_secs}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!q.is_registered(), "no key pair generated before the check");
}

#[tokio::test]
async fn server_5xx_is_an_http_error() {
    let w = World::new();
    let mut p = w.registered(1).await;
    w.server
        .lock()
        .scripted
        .push_back((StatusCode::INTERNAL_SERVER_ERROR, "An error occured"));
    w.clock.advance_secs(3600);
    match p.status().await {
        Err(ClientError::Http { status, message }) => {
            assert_eq!(status, 500);
            assert_eq!(message.as_deref(), Some("An error occured"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn report_sends_only_filtered_contacts_and_the_contact_becomes_at_risk() {
    let w = World::new();
    let mut reporter = w.registered(1).await;
    let mut close = w.registered(2).await;
    let mut brief = w.registered(3).await;
    let mut far = w.registered(4).await;

    // 60 minutes at close range with `close`, HELLOs every 5 s.
    exchange(&mut reporter, &mut close, &w.clock, 60, 5);
    // 90 s with `brief` (under the 120 s duration threshold).
    for _ in 0..18 {
        let h = brief.hello().unwrap();
        reporter.receive_hello(&h, -60, -30).unwrap();
        w.clock.advance_secs(5);
    }
    // 20 minutes with `far`, at −95 dBm raw (calibrated −65 + ... too weak).
    for _ in 0..240 {
        let h = far.hello().unwrap();
        reporter.receive_hello(&h, -100, -30).unwrap();
        w.clock.advance_secs(5);
    }
    let _ = (&mut brief, &mut far);

    let preview = reporter.prepare_report(ReportBasis::Unknown);
    assert_eq!(preview.contacts.len(), 4, "four 15-minute EBIDs of `close`");
    assert!(preview.rejected_groups >= 2);

    // Bad codes: format checked on the phone, unknown code refused by the server.
    assert!(matches!(
        reporter.report("ABC", ReportBasis::Unknown).await,
        Err(ClientError::Code(_))
    ));
    match reporter.report("ZZ99ZZ", ReportBasis::Unknown).await {
        Err(ClientError::InvalidCode { message }) => {
            assert_eq!(message.as_deref(), Some("Unrecognized token of length: 6"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !reporter.contacts().is_empty(),
        "kept after a failed report"
    );

    let uuid = "3d27eb2c-9a3b-4e4f-8d7c-1234567890ab";
    w.server.lock().valid_codes.insert(uuid.into());
    let out = reporter
        .report(
            &format!(
                "https://bonjour.tousanticovid.gouv.fr/app/code/{}",
                uuid.to_uppercase()
            ),
            ReportBasis::Unknown,
        )
        .await
        .unwrap();
    assert_eq!(out.contacts_sent, 4);
    assert_eq!(out.hellos_sent, preview.hellos_sent());
    assert!(out.report_validation_token.is_some());
    assert!(
        reporter.contacts().is_empty(),
        "handed over, deleted locally"
    );
    assert_eq!(reporter.reported_at(), Some(w.clock.now_ntp()));

    // What the server received: only `close`'s EBIDs, HELLO fields intact.
    let close_id = w
        .server
        .id_of(&close.registration().unwrap().tuples()[0].ebid);
    {
        let inner = w.server.lock();
        let report = &inner.reports[0];
        assert_eq!(report["token"], uuid);
        let contacts = report["contacts"].as_array().unwrap();
        assert_eq!(contacts.len(), 4);
        for c in contacts {
            let ebid = robert_core::ebid::Ebid::from_base64(c["ebid"].as_str().unwrap()).unwrap();
            assert_eq!(ebid.decrypt(&inner.key_s).id_a, close_id);
            for id in c["ids"].as_array().unwrap() {
                assert!(id["timeCollectedOnDevice"].as_u64().unwrap() > 3_800_000_000);
                assert!(id["timeFromHelloMessage"].as_u64().unwrap() <= 65_535);
                assert_eq!(id["mac"].as_str().unwrap().len(), 8);
                // Raw −60, sender SM-G973F tx −25, receiver SM-G973F rx 0.
                assert_eq!(id["rssiCalibrated"], -35);
                assert_eq!(id["rssiRaw"], -60);
            }
        }
    }

    // Batch, then status: `close` is at risk, the reporter is not.
    w.server.run_batch(10);
    w.clock.advance_secs(3600);
    assert_eq!(close.status().await.unwrap().risk_level, 4.0);
    assert_eq!(reporter.status().await.unwrap().risk_level, 0.0);
}

#[tokio::test]
async fn unregister_then_status_is_430_and_delete_history_reaches_the_server() {
    let w = World::new();
    let mut a = w.registered(1).await;
    let mut b = w.registered(2).await;
    exchange(&mut a, &mut b, &w.clock, 5, 5);

    // delete_exposure_history: local HELLOs gone, server called.
    assert!(!a.contacts().is_empty());
    a.delete_exposure_history().await.unwrap();
    assert!(a.contacts().is_empty());
    let a_id = w.server.id_of(&a.registration().unwrap().tuples()[0].ebid);
    assert_eq!(w.server.lock().ids[&a_id].deleted_history, 1);

    // Keep a copy of b's credentials (as a stale backup would), unregister b.
    let b_id = w.server.id_of(&b.registration().unwrap().tuples()[0].ebid);
    let mut storage = MemoryStorage::new();
    robert_client::Storage::write(&mut storage, "state", &b_storage_state(&mut b)).unwrap();
    let mut stale = w.phone_with(4, storage);
    b.unregister().await.unwrap();
    assert!(!b.is_registered());
    assert!(b.contacts().is_empty());
    assert!(
        robert_client::Storage::list(b.storage_mut())
            .unwrap()
            .is_empty()
    );
    assert!(!w.server.lock().ids.contains_key(&b_id));
    w.clock.advance_secs(3600);
    assert!(stale.status().await.unwrap_err().is_registration_dropped());
    assert!(!stale.is_registered());
    // Unregistering an already dropped registration still wipes locally.
    let mut stale2 = w.registered(5).await;
    w.server.lock().ids.clear();
    stale2.unregister().await.unwrap();
    assert!(!stale2.is_registered());
}

/// The persisted `state` record of a phone.
fn b_storage_state(b: &mut Phone<ServiceTransport<axum::Router>, MemoryStorage>) -> Vec<u8> {
    b.persist().unwrap();
    robert_client::Storage::read(b.storage_mut(), "state")
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn ensure_identity_refills_when_low() {
    let w = World::new();
    let mut p = w.registered(1).await;
    w.clock.advance_secs(3 * 86_400 + 12 * 3600);
    let before = w.server.lock().requests.len();
    let t = p.ensure_identity().await.unwrap();
    assert_eq!(
        w.server.lock().requests[before..],
        ["/status".to_owned()],
        "one status to refill"
    );
    assert_eq!(t, p.current_tuple().unwrap());
    // Not low any more: no request.
    p.ensure_identity().await.unwrap();
    assert_eq!(w.server.lock().requests.len(), before + 1);
    // Past every tuple and the server unreachable: no identity.
    w.clock.advance_secs(10 * 86_400);
    w.server
        .lock()
        .scripted
        .push_back((StatusCode::SERVICE_UNAVAILABLE, ""));
    assert!(p.hello().is_err());
    assert!(matches!(
        p.ensure_identity().await,
        Err(ClientError::Http { status: 503, .. })
    ));
    // Authenticated requests fall back to the latest EBID.
    let latest = p.registration().unwrap().tuples().last().copied().unwrap();
    let f = p
        .registration()
        .unwrap()
        .auth_fields(Salt::Status, w.clock.now_ntp())
        .unwrap();
    assert_eq!(f.ebid, latest.ebid);
}

#[tokio::test]
async fn retention_purges_old_hellos_after_status() {
    let w = World::new();
    let mut a = w.registered(1).await;
    let mut b = w.registered(2).await;
    exchange(&mut a, &mut b, &w.clock, 10, 5);
    a.persist().unwrap();
    assert_eq!(a.summary().contacts_per_day.len(), 1);
    for _ in 0..5 {
        w.clock.advance_secs(3 * 86_400);
        a.status().await.unwrap();
    }
    assert!(a.contacts().is_empty(), "older than 14 days");
    assert!(
        robert_client::Storage::list(a.storage_mut())
            .unwrap()
            .iter()
            .all(|n| !n.starts_with("contacts-")),
        "day files removed"
    );
}

/// `pushInfo` goes with every `/status` once the host sets it (and only
/// then), and its token with `/unregister` as `pushToken`.
#[tokio::test]
async fn push_info_rides_with_status_and_unregister() {
    let w = World::new();
    let mut p = w.registered(7).await;
    p.status().await.unwrap();
    let body = w.server.lock().last_bodies["/status"].clone();
    assert!(body["mac"].is_string(), "{body}");
    assert!(body.get("pushInfo").is_none(), "{body}");

    let push = robert_client::PushInfo {
        token: "apns-token-0123".into(),
        locale: "fr-FR".into(),
        timezone: "Europe/Paris".into(),
    };
    p.set_push_info(Some(push.clone()));
    assert!(
        !format!("{push:?}").contains("apns-token"),
        "token kept out of Debug"
    );
    w.clock.advance_secs(2 * 900);
    p.status().await.unwrap();
    let body = w.server.lock().last_bodies["/status"].clone();
    assert_eq!(
        body["pushInfo"],
        serde_json::json!({"token": "apns-token-0123", "locale": "fr-FR", "timezone": "Europe/Paris"})
    );

    p.unregister().await.unwrap();
    let body = w.server.lock().last_bodies["/unregister"].clone();
    assert_eq!(body["pushToken"], "apns-token-0123", "{body}");
    assert!(body["mac"].is_string(), "{body}");
}

/// `ble.filterMode` and `ble.filterConfig` from the server's `config` list
/// replace the configured filter, survive a restart (kept, encrypted, in
/// storage), and are ignored when the host opts out.
#[tokio::test]
async fn the_server_config_list_sets_the_on_device_filter() {
    use robert_core::filter::FilterMode;
    let w = World::new();
    let mut p = w.registered(3).await;
    assert_eq!(p.proximity_filter().0, FilterMode::Risks);
    assert_eq!(p.proximity_filter().1.duration_threshold_secs, 120);

    w.server.lock().config_list = serde_json::json!([
        {"name": "ble.filterMode", "value": "FULL"},
        {"name": "ble.filterConfig", "value": "{\"durationThreshold\": 300, \"riskThreshold\": 0.3}"}
    ]);
    w.clock.advance_secs(2 * 900);
    p.status().await.unwrap();
    let (mode, config) = p.proximity_filter();
    assert_eq!(mode, FilterMode::Full);
    assert_eq!(config.duration_threshold_secs, 300);
    assert_eq!(config.risk_threshold, 0.3);
    assert_eq!(config.p0, -66.0, "keys not in the list keep their value");

    // A restart keeps the server's filter.
    p.persist().unwrap();
    let storage = std::mem::take(p.storage_mut());
    let reopened = w.phone_with(3, storage);
    assert_eq!(reopened.proximity_filter().0, FilterMode::Full);
    assert_eq!(reopened.proximity_filter().1.duration_threshold_secs, 300);

    // A malformed filterConfig is ignored; the mode still applies.
    w.server.lock().config_list = serde_json::json!([
        {"name": "ble.filterMode", "value": "MEDIUM"},
        {"name": "ble.filterConfig", "value": {"deltas": []}}
    ]);
    let mut p = reopened;
    w.clock.advance_secs(2 * 900);
    p.status().await.unwrap();
    assert_eq!(p.proximity_filter().0, FilterMode::Medium);
    assert_eq!(p.proximity_filter().1.duration_threshold_secs, 300);

    // A host that pins its filter ignores the list.
    let mut pinned = (*w.config).clone();
    pinned.follow_server_filter = false;
    let mut q = Phone::open(
        Arc::new(pinned),
        w.transport(),
        MemoryStorage::new(),
        Arc::new(w.clock.clone()),
        StdRng::seed_from_u64(9),
    )
    .unwrap();
    q.register(&mut FixedCaptchaAnswer("ok".into()))
        .await
        .unwrap();
    assert_eq!(q.proximity_filter().0, FilterMode::Risks);
    assert_eq!(q.proximity_filter().1.duration_threshold_secs, 120);
}
