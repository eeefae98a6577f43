//! Every endpoint's success path and its documented rejections (server-api.md §3).

use robert_core::b64;
use robert_core::ebid::Ebid;
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::id_a::IdA;
use robert_core::mac::{RequestMac, Salt};
use robert_core::time::{EPOCHS_PER_DAY, Epoch, NtpSeconds};
use robert_server::config::{CaptchaMode, JwtAlgorithm};
use robert_server::jwt;
use robert_store::{ContactExposure, ContactId, NewRisk, RiskUpdate};
use serde_json::json;

use super::phone::{Phone, valid_code};
use super::support::TestApp;

fn jwt_pem(app: &TestApp, which: &str) -> String {
    app.state
        .tokens
        .signers()
        .iter()
        .find(|(n, _)| *n == which)
        .map(|(_, s)| s.public_key_pem())
        .unwrap()
}

#[tokio::test]
async fn register_gives_a_bundle_from_now_to_the_end_of_day_plus_three() {
    for app in TestApp::all("register").await {
        let phone = Phone::register(&app, "john").await;
        let now_epoch = app.state.start.epoch_at(app.now());
        let tuples = &phone.bundle.tuples;
        // 12:00 is epoch 48 of the day: 48 remaining + 3 × 96.
        assert_eq!(
            tuples.len(),
            (EPOCHS_PER_DAY - now_epoch.index_in_day() + 3 * EPOCHS_PER_DAY) as usize
        );
        assert_eq!(tuples[0].epoch, now_epoch);
        // Each EBID decrypts under its day's K_S to (epoch, one ID_A); each ECC to France.
        let ring = app.state.keys.get();
        let id = tuples[0]
            .ebid
            .decrypt(ring.server_key(app.state.start.day_of(now_epoch)).unwrap())
            .id_a;
        for t in tuples {
            let c = t
                .ebid
                .decrypt(ring.server_key(app.state.start.day_of(t.epoch)).unwrap());
            assert_eq!((c.epoch, c.id_a), (t.epoch, id));
            assert_eq!(t.ecc.decrypt(ring.key_g(), &t.ebid), CountryCode::FRANCE);
        }
        let reg = app.registration(id).await.unwrap();
        assert!(!reg.at_risk && !reg.is_notified);
        assert_eq!(reg.created_at, app.now());
        // Push registration forwarded in the background.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let push = app.stubs.push();
        assert_eq!(push.len(), 1, "{push:?}");
        assert!(push[0].1.contains("valid-device-john") && push[0].1.contains("Europe/Paris"));
        app.cleanup().await;
    }
}

#[tokio::test]
async fn register_returns_the_app_config() {
    for app in TestApp::all("config").await {
        app.state
            .store
            .set_app_config("app.checkStatusFrequency", &json!(12))
            .await
            .unwrap();
        app.state.invalidate_app_config();
        let body = json!({"captcha": "x", "captchaId": "y",
            "clientPublicECDHKey": robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64()});
        let r = app.post("/api/v6/register", &body).await;
        assert_eq!(r.status, 201);
        assert_eq!(
            r.json["config"],
            json!([
                {"name": "app.checkStatusFrequency", "value": 12},
                // `[privacy]`'s entries (docs/traffic-privacy.md).
                {"name": "privacy.padding", "value": true},
                {"name": "privacy.dummyReportsPerDay", "value": 0.1},
                {"name": "privacy.dummyStatusPerDay", "value": 1.0}
            ])
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn status_not_at_risk() {
    for app in TestApp::all("status").await {
        let mut phone = Phone::register(&app, "sarah").await;
        let before = phone.bundle.clone();
        let r = phone.status(&app).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json["riskLevel"], 0);
        for absent in [
            "lastContactDate",
            "lastRiskScoringDate",
            "declarationToken",
            "message",
        ] {
            assert!(r.json.get(absent).is_none(), "{absent} must be omitted");
        }
        assert!(r.json["config"].is_array());
        assert_eq!(
            phone.bundle, before,
            "same tuples (same time), new encryption"
        );
        let claims = jwt::verify(
            r.json["analyticsToken"].as_str().unwrap(),
            JwtAlgorithm::RS256,
            &jwt_pem(&app, "analytics"),
        )
        .unwrap();
        let minute = app.now().to_unix() / 60 * 60;
        assert_eq!(
            claims,
            json!({"iss": "robert-server", "iat": minute, "exp": minute + 360 * 60 + 60})
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn status_rate_limit_and_its_diagnostics() {
    for app in TestApp::all("ratelimit").await {
        let mut phone = Phone::register(&app, "paul").await;
        assert_eq!(phone.status(&app).await.status, 200);
        app.clock.advance_secs(900);
        let r = phone.status(&app).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.message().contains("Too many status requests"));
        let reg = app.registration(phone.id_a(&app)).await.unwrap();
        let failed = reg.last_failed_status.unwrap();
        let now_epoch = app.state.start.epoch_at(app.now());
        assert_eq!(failed.epoch, now_epoch);
        assert_eq!(
            failed.message,
            format!(
                "Discarding ESR request because epochs are too close: last ESR request epoch {} vs current epoch {} => 1 < 2 (tolerance)",
                now_epoch.get() - 1,
                now_epoch
            )
        );
        app.clock.advance_secs(900);
        assert_eq!(phone.status(&app).await.status, 200, "two epochs later");
        app.cleanup().await;
    }
    // Disabled with a gap of 0 (the reference's ESR_LIMIT=0).
    let app = TestApp::with(robert_store::Backend::Sqlite, "nolimit", |c| {
        c.protocol.status_min_epoch_gap = 0
    })
    .await
    .unwrap();
    let mut phone = Phone::register(&app, "paul").await;
    for _ in 0..3 {
        assert_eq!(phone.status(&app).await.status, 200);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn clock_skew_is_400_and_records_the_drift() {
    for app in TestApp::all("skew").await {
        let mut phone = Phone::register(&app, "ines").await;
        let now = app.now();
        let epoch = app.state.start.epoch_at(now);
        let id = phone.id_a(&app);
        let r = app
            .post(
                "/api/v6/status",
                &phone.auth_body_at(epoch, now.plus(61), Salt::Status),
            )
            .await;
        assert_eq!(r.status, 400, "{r:?}");
        assert!(r.message().contains("60 seconds"));
        assert_eq!(
            app.registration(id).await.unwrap().last_timestamp_drift,
            -61
        );
        let r = app
            .post(
                "/api/v6/status",
                &phone.auth_body_at(epoch, now.minus(60), Salt::Status),
            )
            .await;
        assert_eq!(r.status, 200, "60 s is within the tolerance: {r:?}");
        assert_eq!(app.registration(id).await.unwrap().last_timestamp_drift, 60);
        // The clock check takes precedence over an unknown identity (430).
        assert_eq!(phone.unregister(&app).await.status, 200);
        let r = app
            .post(
                "/api/v6/status",
                &phone.auth_body_at(epoch, now.plus(100), Salt::Status),
            )
            .await;
        assert_eq!(r.status, 400);
        let r = phone.status(&app).await;
        assert_eq!(r.status, 430);
        app.cleanup().await;
    }
}

#[tokio::test]
async fn authentication_failures() {
    for app in TestApp::all("auth").await {
        let mut phone = Phone::register(&app, "hugo").await;
        let now = app.now();
        let epoch = app.state.start.epoch_at(now);
        let id = phone.id_a(&app);

        // Any epoch whose K_S exists authenticates (the EBID must match it).
        for e in [epoch.get() + 1, epoch.get() + 95] {
            let r = app
                .post(
                    "/api/v6/status",
                    &phone.auth_body_at(Epoch(e), app.now(), Salt::Status),
                )
                .await;
            assert_eq!(r.status, 200, "epoch {e}: {r:?}");
            app.clock.advance_secs(1800);
        }
        let now = app.now();
        let epoch = app.state.start.epoch_at(now);

        // A MAC of another request type.
        let mut body = phone.auth_body_at(epoch, now, Salt::Unregister);
        let r = app.post("/api/v6/status", &body).await;
        assert_eq!((r.status, r.message()), (400, "Authentication failed"));
        let reg = app.registration(id).await.unwrap();
        assert_eq!(reg.last_failed_status.unwrap().message, "Invalid MAC");
        // A flipped MAC bit.
        body = phone.auth_body_at(epoch, now, Salt::Status);
        let mut mac = b64::decode(body["mac"].as_str().unwrap(), "m").unwrap();
        mac[0] ^= 1;
        body["mac"] = json!(b64::encode(&mac));
        assert_eq!(app.post("/api/v6/status", &body).await.status, 400);
        // The EBID of another epoch than epochId.
        let mut body = phone.auth_body_at(epoch, now, Salt::Status);
        body["ebid"] = json!(phone.tuple(epoch.next()).ebid.to_base64());
        let r = app.post("/api/v6/status", &body).await;
        assert_eq!((r.status, r.message()), (400, "Authentication failed"));
        // No K_S for the claimed epoch's day (beyond the key store): 430.
        let far = Epoch(epoch.get() + 60 * EPOCHS_PER_DAY);
        let mut body = phone.auth_body_at(epoch, now, Salt::Status);
        body["epochId"] = json!(far.get());
        let r = app.post("/api/v6/status", &body).await;
        assert_eq!(r.status, 430, "{r:?}");
        assert!(r.message().contains("register again"));
        // A well-formed EBID of an unknown ID_A: 430.
        let ring = app.state.keys.get();
        let ks = ring.server_key(app.state.start.day_of(epoch)).unwrap();
        let stranger = Ebid::encrypt(ks, epoch, IdA([9, 9, 9, 9, 9])).unwrap();
        let mac = RequestMac::compute(
            &phone.keys.key_a,
            Salt::Status,
            &stranger,
            epoch.get(),
            now.time32(),
        );
        let body = json!({"ebid": stranger.to_base64(), "epochId": epoch.get(), "time": b64::encode(now.time32().to_bytes()), "mac": mac.to_base64()});
        assert_eq!(app.post("/api/v6/status", &body).await.status, 430);
        // The same request types on unregister and deleteExposureHistory.
        let body = phone.auth_body_at(epoch, now, Salt::Status);
        assert_eq!(app.post("/api/v6/unregister", &body).await.status, 400);
        assert_eq!(
            app.post("/api/v6/deleteExposureHistory", &body)
                .await
                .status,
            400
        );
        assert_eq!(
            phone.status(&app).await.status,
            200,
            "nothing above changed the registration"
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn at_risk_status_tokens_and_kpis() {
    for app in TestApp::all("atrisk").await {
        let mut phone = Phone::register(&app, "sarah").await;
        let id = phone.id_a(&app);
        let start = app.state.start;
        let now_epoch = start.epoch_at(app.now());
        let last_contact = app.now().utc_midnight().minus(2 * 86_400);
        let risk_epoch = Epoch(now_epoch.get() - 3);
        app.state
            .store
            .apply_risk_updates(
                &[RiskUpdate {
                    id_a: id,
                    at_risk: Some(NewRisk {
                        last_contact,
                        latest_risk_epoch: risk_epoch,
                    }),
                }],
                0,
            )
            .await
            .unwrap();
        let r = phone.status(&app).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json["riskLevel"], 4);
        assert_eq!(
            r.json["lastContactDate"],
            json!(last_contact.get().to_string())
        );
        assert_eq!(
            r.json["lastRiskScoringDate"],
            json!(start.epoch_start(risk_epoch).get().to_string())
        );
        let claims = jwt::verify(
            r.json["declarationToken"].as_str().unwrap(),
            JwtAlgorithm::RS256,
            &jwt_pem(&app, "declaration"),
        )
        .unwrap();
        assert_eq!(claims["iss"], "tac");
        assert_eq!(claims["iat"], app.now().to_unix());
        assert_eq!(
            claims["notificationDateTimestamp"],
            start.epoch_start(now_epoch).get()
        );
        assert_eq!(claims["lastContactDateTimestamp"], last_contact.get());
        // jti = sha256(base64(ID_A) ‖ "4" ‖ latestRiskEpoch), computed here with sha2 directly.
        use sha2::Digest as _;
        let jti = hex::encode(sha2::Sha256::digest(format!(
            "{}4{}",
            id.to_base64(),
            risk_epoch.get()
        )));
        assert_eq!(claims["jti"], jti);
        let k = app.kpis().await;
        assert_eq!(
            (k["alertedUsers"].as_i64(), k["notifiedUsers"].as_i64()),
            (Some(1), Some(1))
        );
        app.clock.advance_secs(1800);
        assert_eq!(phone.risk(&app).await, 4);
        let k = app.kpis().await;
        assert_eq!(
            (k["alertedUsers"].as_i64(), k["notifiedUsers"].as_i64()),
            (Some(1), Some(1)),
            "counted once"
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn unregister_and_delete_history() {
    for app in TestApp::all("unregister").await {
        let mut phone = Phone::register(&app, "sarah").await;
        let id = phone.id_a(&app);
        let epoch = app.state.start.epoch_at(app.now());
        app.state
            .store
            .commit_contact_chunk(
                &[ContactExposure {
                    contact_id: ContactId(1),
                    id_a: id,
                    epoch,
                    score: 3.5,
                }],
                &[],
                None,
            )
            .await
            .unwrap();
        assert_eq!(app.state.store.exposures(id).await.unwrap().len(), 1);
        let r = phone.delete_history(&app).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json, json!({"success": true, "message": null}));
        assert!(app.state.store.exposures(id).await.unwrap().is_empty());
        assert_eq!(
            phone.delete_history(&app).await.status,
            200,
            "an empty history is fine too"
        );

        let r = phone.unregister(&app).await;
        assert_eq!(r.json, json!({"success": true, "message": null}));
        assert!(app.registration(id).await.is_none());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            app.stubs
                .push()
                .iter()
                .any(|(m, t)| m == "DELETE" && t == "valid-device-sarah")
        );
        let r = phone.status(&app).await;
        assert_eq!(r.status, 430);
        assert_eq!(phone.unregister(&app).await.status, 430);
        assert_eq!(phone.delete_history(&app).await.status, 430);
        app.cleanup().await;
    }
}

fn contact(n: usize) -> serde_json::Value {
    let h = json!({"timeCollectedOnDevice": 3_919_000_000u64, "timeFromHelloMessage": 1234, "mac": "AQIDBAU=", "rssiCalibrated": -60});
    json!({"ebid": "yqfVsPunrqc=", "ecc": "wg==", "ids": vec![h; n]})
}

#[tokio::test]
async fn report_stores_everything_after_checking_the_code() {
    for app in TestApp::all("report").await {
        let code = valid_code();
        let body = json!({"token": code, "contacts": [contact(3), contact(2)]});
        let r = app.post("/api/v6/report", &body).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json["success"], true);
        assert_eq!(r.json["message"], "Successful operation");
        let claims = jwt::verify(
            r.json["reportValidationToken"].as_str().unwrap(),
            JwtAlgorithm::RS256,
            &jwt_pem(&app, "report"),
        )
        .unwrap();
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            300
        );
        let pending = app.state.store.pending_contacts().await.unwrap();
        assert_eq!((pending.contacts, pending.hellos), (2, 5));
        assert_eq!(app.kpis().await["reportsCount"], 1);
        assert_eq!(app.stubs.codes(), vec![code.clone()]);

        // The code is one-time at the stub: a second use is 401.
        let r = app.post("/api/v6/report", &body).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            r.json,
            json!({"message": "Unrecognized token of length: 36"})
        );
        // An unknown code: 401.
        let r = app
            .post("/api/v6/report", &json!({"token": "nope", "contacts": []}))
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(r.message(), "Unrecognized token of length: 4");
        // A failing or timing-out code service is not a bad code: 503 with
        // Retry-After (the apps retry), counted.
        for token in ["boom-boom", "slow-code"] {
            let r = app
                .post("/api/v6/report", &json!({"token": token, "contacts": []}))
                .await;
            assert_eq!(r.status, 503, "{token}");
            assert_eq!(
                r.message(),
                "The submission-code service is unavailable: retry later"
            );
            assert_eq!(r.headers["retry-after"], "30");
        }
        let metrics = String::from_utf8(app.get("/metrics").await.bytes).unwrap();
        assert!(
            metrics.contains("robert_report_codes_unavailable_total 2"),
            "{metrics}"
        );
        // An empty token reaches the service and fails; an empty list is valid.
        assert_eq!(
            app.post("/api/v6/report", &json!({"token": "", "contacts": []}))
                .await
                .status,
            401
        );
        assert_eq!(
            app.post(
                "/api/v6/report",
                &json!({"token": valid_code(), "contacts": []})
            )
            .await
            .status,
            200
        );
        // A malformed contact is rejected before the code is spent.
        let before = app.stubs.codes().len();
        let mut bad = contact(1);
        bad["ebid"] = json!("AAAA");
        let r = app
            .post(
                "/api/v6/report",
                &json!({"token": valid_code(), "contacts": [bad]}),
            )
            .await;
        assert_eq!((r.status, r.message()), (400, "Invalid data"));
        assert_eq!(
            r.json["detail"],
            "contacts[0].ebid: must be 12 characters (base64 of 8 bytes)"
        );
        assert_eq!(app.stubs.codes().len(), before);
        assert_eq!(
            app.state.store.pending_contacts().await.unwrap().contacts,
            2,
            "nothing more stored"
        );
        assert_eq!(app.kpis().await["reportsCount"], 2);
        app.cleanup().await;
    }
}

#[tokio::test]
async fn report_accepts_the_reference_sizes() {
    for app in TestApp::all("reportsize").await {
        let big = json!({"token": valid_code(), "contacts": [contact(100_000)]});
        let r = app.post("/api/v6/report", &big).await;
        assert_eq!(r.status, 200, "1 contact × 100,000 HELLOs: {}", r.message());
        let many = json!({"token": valid_code(), "contacts": vec![contact(10); 10_000]});
        let r = app.post("/api/v6/report", &many).await;
        assert_eq!(
            r.status,
            200,
            "10,000 contacts × 10 HELLOs: {}",
            r.message()
        );
        let p = app.state.store.pending_contacts().await.unwrap();
        assert_eq!((p.contacts, p.hellos), (10_001, 200_000));
        app.cleanup().await;
    }
}

#[tokio::test]
async fn report_without_token_check() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "nocheck", |c| {
        c.codes.check_token = false
    })
    .await
    .unwrap();
    let r = app
        .post(
            "/api/v6/report",
            &json!({"token": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "contacts": [contact(1)]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(app.stubs.codes().is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn no_server_key_for_today_is_503_not_500() {
    let app = TestApp::new(robert_store::Backend::Sqlite, "nokey")
        .await
        .unwrap();
    // Registered yesterday 23:00; today every key from today on is gone.
    let yesterday_23h = app.now().utc_midnight().minus(3600);
    app.set_now(yesterday_23h);
    let mut phone = Phone::register(&app, "john").await;
    let mut set = robert_server::keystore::KeySet::default();
    let ring = app.state.keys.get();
    set.key_g = Some(ring.key_g().clone());
    set.kek = Some(ring.kek().clone());
    set.registration = Some(ring.registration().clone());
    let today = robert_core::time::UtcDate::of(super::support::today_noon());
    set.server_keys = ring
        .server_keys()
        .range(..today)
        .map(|(d, k)| (*d, k.clone()))
        .collect();
    app.state
        .keys
        .replace(robert_server::keystore::KeyRing::from_set(set).unwrap());
    app.set_now(super::support::today_noon());
    let r = app
        .post(
            "/api/v6/status",
            &phone.auth_body_at(
                app.state.start.epoch_at(yesterday_23h),
                app.now(),
                Salt::Status,
            ),
        )
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.message().contains("No server key"));
    let reg = app.registration(phone.id_a(&app)).await.unwrap();
    assert_eq!(
        reg.last_status_epoch,
        Epoch(0),
        "the failed request did not count"
    );
    let body = json!({"captcha": "x", "captchaId": "y",
        "clientPublicECDHKey": robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64()});
    assert_eq!(app.post("/api/v6/register", &body).await.status, 503);
    let r = app.get("/actuator/health/readiness").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json["status"], "DOWN");
    phone.bundle.tuples.clear();
    app.cleanup().await;
}

#[tokio::test]
async fn builtin_captcha_flow() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "captcha", |c| {
        c.captcha.mode = CaptchaMode::Builtin
    })
    .await
    .unwrap();
    // A full registration with the right answer.
    let _phone = Phone::register(&app, "john").await;
    // A wrong answer is 401 and consumes the challenge.
    let c = app
        .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
        .await;
    let id = c.json["id"].as_str().unwrap().to_owned();
    let key =
        robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64();
    let r = app
        .post(
            "/api/v6/register",
            &json!({"captcha": "WRONG1", "captchaId": id, "clientPublicECDHKey": key}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        app.get(&format!("/api/v6/captcha/{id}/image")).await.status,
        404
    );
    for bad in ["nope", "a%2Fb", "x".repeat(200).as_str()] {
        assert_eq!(
            app.get(&format!("/api/v6/captcha/{bad}/image"))
                .await
                .status,
            404,
            "{bad}"
        );
    }
    assert_eq!(
        app.post("/api/v6/captcha", &json!({"type": "VIDEO", "locale": "fr"}))
            .await
            .status,
        400
    );
    assert_eq!(
        app.post("/api/v6/captcha", &json!({"type": "IMAGE"}))
            .await
            .status,
        400
    );
    // Expiry.
    let c = app
        .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
        .await;
    let id = c.json["id"].as_str().unwrap().to_owned();
    app.clock.advance_secs(601);
    assert_eq!(
        app.get(&format!("/api/v6/captcha/{id}/image")).await.status,
        404
    );
    app.cleanup().await;
}

#[tokio::test]
async fn builtin_audio_captcha_flow() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "audiocaptcha", |c| {
        c.captcha.mode = CaptchaMode::Builtin
    })
    .await
    .unwrap();
    let peek = |id: &str| match &app.state.captcha {
        robert_server::captcha::Captcha::Builtin(b) => b.peek_answer(id),
        _ => unreachable!("built-in provider"),
    };
    let new_audio = |locale: &'static str| {
        let app = &app;
        async move {
            let c = app
                .post(
                    "/api/v6/captcha",
                    &json!({"type": "AUDIO", "locale": locale}),
                )
                .await;
            assert_eq!(c.status, 201, "{c:?}");
            assert_eq!(c.json["id"], c.json["captchaId"]);
            c.json["id"].as_str().unwrap().to_owned()
        }
    };
    let key =
        || robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64();

    // Create, listen, answer: a registration.
    let id = new_audio("fr").await;
    let wav = app.get(&format!("/api/v6/captcha/{id}/audio")).await;
    assert_eq!((wav.status, wav.content_type.as_str()), (200, "audio/wav"));
    assert_eq!(&wav.bytes[..4], b"RIFF");
    assert_eq!(&wav.bytes[8..12], b"WAVE");
    assert!(
        wav.bytes.len() > 16_000,
        "seconds of audio: {}",
        wav.bytes.len()
    );
    let again = app.get(&format!("/api/v6/captcha/{id}/audio")).await;
    assert_eq!(again.bytes, wav.bytes, "a challenge always sounds the same");
    // Its image does not exist; asking does not consume the challenge.
    let img = app.get(&format!("/api/v6/captcha/{id}/image")).await;
    assert_eq!(img.status, 404, "{img:?}");
    assert!(img.message().contains("AUDIO challenge"), "{img:?}");
    let answer = peek(&id).unwrap();
    assert_eq!(answer.len(), 6);
    assert!(answer.bytes().all(|b| b.is_ascii_digit()));
    let r = app
        .post(
            "/api/v6/register",
            &json!({"captcha": answer, "captchaId": id, "clientPublicECDHKey": key()}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert!(r.json["tuples"].is_string());
    // Single use.
    assert_eq!(
        app.get(&format!("/api/v6/captcha/{id}/audio")).await.status,
        404
    );
    let r = app
        .post(
            "/api/v6/register",
            &json!({"captcha": answer, "captchaId": id, "clientPublicECDHKey": key()}),
        )
        .await;
    assert_eq!(r.status, 401);

    // English; another challenge sounds different.
    let en = new_audio("en-GB").await;
    let en_wav = app.get(&format!("/api/v6/captcha/{en}/audio")).await;
    assert_eq!(en_wav.status, 200);
    assert_ne!(en_wav.bytes, wav.bytes);
    // A wrong answer is 401 and consumes the challenge.
    let wrong: String = peek(&en)
        .unwrap()
        .bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 1) % 10))
        .collect();
    let r = app
        .post(
            "/api/v6/register",
            &json!({"captcha": wrong, "captchaId": en, "clientPublicECDHKey": key()}),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        app.get(&format!("/api/v6/captcha/{en}/audio")).await.status,
        404
    );

    // The audio of an image challenge is a 404 too, and leaves it usable.
    let c = app
        .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
        .await;
    let img_id = c.json["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/api/v6/captcha/{img_id}/audio")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.message().contains("IMAGE challenge"), "{r:?}");
    let img = app.get(&format!("/api/v6/captcha/{img_id}/image")).await;
    assert_eq!((img.status, img.content_type.as_str()), (200, "image/png"));

    // Expiry.
    let id = new_audio("fr").await;
    app.clock.advance_secs(601);
    assert_eq!(
        app.get(&format!("/api/v6/captcha/{id}/audio")).await.status,
        404
    );
    app.cleanup().await;
}

#[tokio::test]
async fn external_captcha_flow() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "extcaptcha", |c| {
        c.captcha.mode = CaptchaMode::External
    })
    .await
    .unwrap();
    let c = app
        .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
        .await;
    assert_eq!(c.status, 201, "{:?}", c.json);
    assert_eq!(c.json, json!({"id": "5227b11f", "captchaId": "5227b11f"}));
    let img = app.get("/api/v6/captcha/5227b11f/image").await;
    assert_eq!((img.status, img.content_type.as_str()), (200, "image/png"));
    assert!(img.bytes.starts_with(b"\x89PNG"));
    let wav = app.get("/api/v6/captcha/5227b11f/audio").await;
    assert_eq!((wav.status, wav.content_type.as_str()), (200, "audio/wav"));
    assert_eq!(app.get("/api/v6/captcha/used/image").await.status, 410);
    assert_eq!(app.get("/api/v6/captcha/unknown/image").await.status, 404);
    let key =
        robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64();
    let r = app
        .post(
            "/api/v6/register",
            &json!({"captcha": "wrong", "captchaId": "5227b11f", "clientPublicECDHKey": key}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = app.post("/api/v6/register", &json!({"captcha": "valid challenge answer", "captchaId": "5227b11f", "clientPublicECDHKey": key})).await;
    assert_eq!(r.status, 201);
    let checks = app.stubs.log.lock().unwrap().captcha_checks.clone();
    assert_eq!(
        checks,
        vec![
            ("5227b11f".to_owned(), "wrong".to_owned()),
            ("5227b11f".to_owned(), "valid challenge answer".to_owned())
        ]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn operations_endpoints() {
    let app = TestApp::new(robert_store::Backend::Sqlite, "ops")
        .await
        .unwrap();
    let r = app.get("/api/v6/clock").await;
    assert_eq!(
        r.json,
        json!({"serviceStartDate": "2020-06-01", "time": "2024-03-14T12:00:00.000Z", "epoch": app.state.start.epoch_at(app.now()).get()})
    );
    let k = app.kpis().await;
    let names: Vec<&String> = k.as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 7);
    for n in robert_store::kpi::API {
        assert_eq!(k[n], 0, "{n}");
    }
    assert_eq!(
        app.get("/actuator/health").await.json,
        json!({"status": "UP"})
    );
    assert_eq!(app.get("/actuator/health/liveness").await.status, 200);
    assert_eq!(
        app.get("/actuator/health/readiness").await.json,
        json!({"status": "UP"})
    );
    let t = app.get("/status.txt").await;
    assert_eq!((t.status, t.bytes.as_slice()), (200, b"up".as_slice()));
    let m = app.get("/metrics").await;
    let text = String::from_utf8(m.bytes).unwrap();
    assert!(
        text.contains("robert_http_requests_total{route=\"/api/v6/clock\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("robert_keys_server_key_days_ahead 30"));
    app.cleanup().await;
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let app = TestApp::new(robert_store::Backend::Sqlite, "openapi")
        .await
        .unwrap();
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json;
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let routes: Vec<&str> = robert_server::metrics::ROUTES
        .iter()
        .copied()
        .filter(|r| *r != "other")
        .collect();
    assert_eq!(paths.len(), routes.len());
    for route in routes {
        let ops = paths
            .get(route)
            .unwrap_or_else(|| panic!("{route} missing from openapi.json"))
            .as_object()
            .unwrap();
        for (method, op) in ops {
            // The documented method is served (not 405) and every response has a description.
            let resp = match method.as_str() {
                "get" => app.get(&route.replace("{captchaId}", "abc")).await,
                "post" => app.post(route, &json!({})).await,
                m => panic!("unexpected method {m}"),
            };
            assert_ne!(resp.status, 405, "{method} {route}");
            for (code, r) in op["responses"].as_object().unwrap() {
                assert!(r["description"].is_string(), "{route} {code}");
                if code.starts_with('4') || code.starts_with('5') {
                    let schema = &r["content"]["application/json"]["schema"];
                    assert!(
                        schema.is_object(),
                        "{method} {route} {code} has no JSON error body"
                    );
                }
            }
        }
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/components/").skip(1) {
        let path: Vec<&str> = piece.split('"').next().unwrap().split('/').collect();
        assert!(
            doc["components"][path[0]][path[1]].is_object(),
            "dangling $ref {path:?}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn ecc_of_another_country_is_stored_for_the_batch_to_drop() {
    // /report does not judge HELLOs: any well-formed contact is queued.
    let app = TestApp::new(robert_store::Backend::Sqlite, "foreign")
        .await
        .unwrap();
    let ring = app.state.keys.get();
    let ebid = Ebid([1; 8]);
    let ecc = Ecc::encrypt(ring.key_g(), &ebid, CountryCode(49));
    let mut c = contact(1);
    c["ebid"] = json!(ebid.to_base64());
    c["ecc"] = json!(ecc.to_base64());
    assert_eq!(
        app.post(
            "/api/v6/report",
            &json!({"token": valid_code(), "contacts": [c]})
        )
        .await
        .status,
        200
    );
    let _ = NtpSeconds(0);
    app.cleanup().await;
}

/// The `Date` header follows the server's clock, not the OS clock: apps
/// compare it with their own time (±120 s), which must hold under a clock
/// offset or in a simulation.
#[tokio::test]
async fn date_header_follows_the_server_clock() {
    use tower::ServiceExt as _;
    let app = TestApp::new(robert_store::Backend::Sqlite, "date")
        .await
        .unwrap();
    let router = robert_server::api::app(app.state.clone());
    let req = axum::http::Request::get("/api/v6/clock")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let date = resp.headers()[axum::http::header::DATE].to_str().unwrap();
    // TestApp's clock stands at 2024-03-14T12:00:00Z.
    assert_eq!(date, "Thu, 14 Mar 2024 12:00:00 GMT");
    app.cleanup().await;
}

/// A code-service outage is visible: readiness goes DOWN (unless
/// `codes.in_readiness = false`), `robert_codes_up` drops to 0, and a
/// report gets 503, not the 401 of a bad code.
#[tokio::test]
async fn a_code_service_outage_marks_readiness_down() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let app = TestApp::with(robert_store::Backend::Sqlite, "codes-down", |c| {
        c.codes.url = "http://127.0.0.1:9".into();
    })
    .await
    .unwrap();
    let r = app.get("/actuator/health/readiness").await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json,
        json!({"status": "DOWN", "detail": "submission-code service unavailable"})
    );
    let metrics = String::from_utf8(app.get("/metrics").await.bytes).unwrap();
    assert!(metrics.contains("robert_codes_up 0"), "{metrics}");
    let r = app
        .post(
            "/api/v6/report",
            &json!({"token": valid_code(), "contacts": []}),
        )
        .await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    app.cleanup().await;

    let app = TestApp::with(robert_store::Backend::Sqlite, "codes-down-kept", |c| {
        c.codes.url = "http://127.0.0.1:9".into();
        c.codes.in_readiness = false;
    })
    .await
    .unwrap();
    assert_eq!(app.get("/actuator/health/readiness").await.status, 200);
    app.cleanup().await;
}

/// A code service that records what `/report` asks of it.
#[derive(Debug, Default)]
struct RecordingCodes {
    calls: std::sync::Mutex<Vec<String>>,
}

impl robert_server::codes::LocalCodeService for RecordingCodes {
    fn verify<'a>(
        &'a self,
        _code: &'a str,
    ) -> robert_server::codes::BoxFuture<'a, robert_server::codes::Verification> {
        self.calls.lock().unwrap().push("verify".into());
        Box::pin(async { robert_server::codes::Verification::Valid })
    }

    fn claim<'a>(
        &'a self,
        code: &'a str,
        key: &'a [u8; 32],
    ) -> robert_server::codes::BoxFuture<'a, robert_server::codes::Verification> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("claim {code} {}", hex::encode(key)));
        Box::pin(async { robert_server::codes::Verification::Held })
    }

    fn settle<'a>(
        &'a self,
        code: &'a str,
        key: &'a [u8; 32],
        confirm: bool,
    ) -> robert_server::codes::BoxFuture<'a, robert_server::codes::Settlement> {
        let action = if confirm { "confirm" } else { "release" };
        self.calls
            .lock()
            .unwrap()
            .push(format!("{action} {code} {}", hex::encode(key)));
        Box::pin(async { robert_server::codes::Settlement::Done })
    }

    fn ready(&self) -> robert_server::codes::BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

/// `/report` holds the code, stores the report, then confirms; when the
/// report cannot be stored it releases the code, which stays usable
/// (issue 11 item 6: a failure must not burn the patient's code).
#[tokio::test]
async fn report_holds_the_code_and_confirms_only_once_stored() {
    use sha2::Digest as _;
    // PostgreSQL: closing its pool makes the next write fail at once. The
    // code-check budgets stay in memory so that the failure reaches the
    // insertion (with them in the database the report stops earlier, 503:
    // `cluster::shared_state_failure_is_503_with_retry_after`).
    let Some(app) = TestApp::with(robert_store::Backend::Postgres, "two-phase", |c| {
        c.limits.rate_limit_state = robert_server::config::StateLocation::Memory;
    })
    .await
    else {
        return;
    };
    let codes = std::sync::Arc::new(RecordingCodes::default());
    assert!(app.state.codes.use_local(codes.clone()));
    let body = json!({"token": "valid-code-12", "contacts": [contact(1)]});
    let key = hex::encode(
        sha2::Sha256::new()
            .chain_update(b"robert-server/v1/report-claim")
            .chain_update(body.to_string().as_bytes())
            .finalize(),
    );
    assert_eq!(app.post("/api/v6/report", &body).await.status, 200);
    assert_eq!(
        *codes.calls.lock().unwrap(),
        vec![
            format!("claim valid-code-12 {key}"),
            format!("confirm valid-code-12 {key}")
        ]
    );
    // The database goes away: the report fails with 503 + Retry-After (the
    // app retries later), and the code is released.
    codes.calls.lock().unwrap().clear();
    app.state.store.close().await;
    let r = app.post("/api/v6/report", &body).await;
    assert_eq!(r.status, 503, "{:?}", r.json);
    assert_eq!(r.headers["retry-after"], "5", "{r:?}");
    assert_eq!(
        *codes.calls.lock().unwrap(),
        vec![
            format!("claim valid-code-12 {key}"),
            format!("release valid-code-12 {key}")
        ]
    );
}
