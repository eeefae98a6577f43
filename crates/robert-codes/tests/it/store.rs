//! Storage behaviour through the service, on both back ends.

use robert_codes::code::{self, CodeKind};
use robert_codes::jwt::testing;
use robert_codes::service::{Channel, IssueError};
use robert_codes::store::{AuditEntry, CodeStore, NewCode, NewDoctor};
use robert_codes::{Clock as _, ManualClock, pepper::Peppers};

use crate::both_backends;
use crate::support::*;

both_backends!(short_code_is_valid_once_within_its_hour, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let issued = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    assert_eq!(issued.code.len(), 6);
    assert_eq!(issued.validity.until, utc("2026-01-10T11:00:00Z"));
    // A second code to check kinds and hashes do not mix.
    let other = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    set_manual(&clock, utc("2026-01-10T11:00:00Z")); // last valid second
    assert!(svc.verify(&issued.code).await.unwrap().valid);
    assert!(!svc.verify(&issued.code).await.unwrap().valid, "used twice");
    set_manual(&clock, utc("2026-01-10T11:00:01Z"));
    assert!(!svc.verify(&other.code).await.unwrap().valid, "expired");
    assert!(!svc.verify(&issued.code.to_lowercase()).await.unwrap().valid);
    assert!(!svc.verify("ZZZZZZ").await.unwrap().valid, "unknown");
    assert!(!svc.verify("").await.unwrap().valid);
    assert!(!svc.verify("a'; DROP TABLE x; --").await.unwrap().valid);
});

both_backends!(test_code_lasts_to_end_of_utc_day_15_days_ahead, |db| {
    let clock = manual_at(utc("2026-01-10T23:30:00Z"));
    let svc = service(&db, &clock);
    let issued = svc.issue(CodeKind::Test, &Channel::Cli).await.unwrap();
    assert_eq!(issued.code.len(), 12);
    assert_eq!(issued.validity.until, utc("2026-01-25T23:59:59Z"));
    let other = svc.issue(CodeKind::Test, &Channel::Cli).await.unwrap();
    set_manual(&clock, utc("2026-01-25T23:59:59Z"));
    assert!(svc.verify(&issued.code).await.unwrap().valid);
    set_manual(&clock, utc("2026-01-26T00:00:00Z"));
    assert!(!svc.verify(&other.code).await.unwrap().valid);
});

both_backends!(long_code_window_follows_paris_civil_days, |db| {
    // Store a long code for day 2026-03-25 (DST starts on 03-29).
    let clock = manual_at(utc("2026-03-20T12:00:00Z"));
    let svc = service(&db, &clock);
    let peppers = svc.config().load_peppers().unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 25).unwrap();
    let v = code::long_validity(day, 7);
    let mut codes = Vec::new();
    for _ in 0..4 {
        let c = code::random_uuid_v4(&mut rand::rngs::SysRng).unwrap();
        let row = NewCode {
            hash: peppers.hash_new(CodeKind::Long, &c),
            kind: CodeKind::Long,
            available_from: v.from.timestamp(),
            valid_until: v.until.timestamp(),
            generated_at: clock.now_unix(),
        };
        assert!(db.store.insert_code(&row).await.unwrap());
        codes.push(c);
    }
    set_manual(&clock, utc("2026-03-24T22:59:59Z")); // 23:59:59 CET on the 24th
    assert!(!svc.verify(&codes[0]).await.unwrap().valid, "not yet");
    set_manual(&clock, utc("2026-03-24T23:00:00Z")); // Paris midnight
    assert!(svc.verify(&codes[0]).await.unwrap().valid);
    set_manual(&clock, utc("2026-04-01T21:59:00Z")); // 23:59 CEST on D+7
    assert!(svc.verify(&codes[1]).await.unwrap().valid);
    set_manual(&clock, utc("2026-04-01T21:59:01Z"));
    assert!(!svc.verify(&codes[2]).await.unwrap().valid, "expired");
    assert_eq!(
        db.store.count_long_codes(v.from.timestamp()).await.unwrap(),
        4
    );
});

both_backends!(pepper_rotation_keeps_live_codes_valid, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let old = service(&db, &clock);
    let a = old.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    let b = old.issue(CodeKind::Test, &Channel::Cli).await.unwrap();
    let mut cfg = config();
    let text = format!(
        "[[peppers]]\nid = \"b\"\nsecret = \"{PEPPER_B}\"\n[[peppers]]\nid = \"a\"\nsecret = \"{PEPPER_A}\"\n"
    );
    cfg.peppers = robert_codes::Config::from_toml(&text).unwrap().peppers;
    let rotated = service_with(&db, cfg, &clock);
    let c = rotated.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    assert!(rotated.verify(&a.code).await.unwrap().valid);
    assert!(rotated.verify(&b.code).await.unwrap().valid);
    assert!(rotated.verify(&c.code).await.unwrap().valid);
    // The old service (pepper a only) cannot find codes hashed under b.
    let d = rotated.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    assert!(!old.verify(&d.code).await.unwrap().valid);
});

both_backends!(codes_are_stored_only_as_keyed_hashes, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let issued = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    let peppers: Peppers = svc.config().load_peppers().unwrap();
    let expected = peppers.hash_new(CodeKind::Short, &issued.code);
    // Read the raw table: one row, whose key is the HMAC, and no column holds the code.
    let rows = raw_code_rows(&db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0], expected.to_vec());
    assert!(!rows[0].windows(6).any(|w| w == issued.code.as_bytes()));
    // The audit log names the actor, never the code.
    let audit = db.store.audit_entries(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "issue_code" && e.actor == "cli")
    );
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.contains(issued.code.as_str()))
    );
});

async fn raw_code_rows(db: &TestDb) -> Vec<Vec<u8>> {
    // The same query through either back end's pool type.
    macro_rules! code_hashes {
        ($pool:ty) => {{
            let pool = <$pool>::connect(&db.url).await.unwrap();
            let rows = sqlx::query_scalar::<_, Vec<u8>>("SELECT code_hash FROM submission_code")
                .fetch_all(&pool)
                .await
                .unwrap();
            pool.close().await;
            rows
        }};
    }
    if db.backend == "sqlite" {
        code_hashes!(sqlx::SqlitePool)
    } else {
        code_hashes!(sqlx::PgPool)
    }
}

both_backends!(fifty_concurrent_verifications_accept_exactly_one, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let addr = serve(svc.router()).await;
    for kind in [CodeKind::Short, CodeKind::Test] {
        let issued = svc.issue(kind, &Channel::Cli).await.unwrap();
        let path = format!("/api/v1/verify?code={}", issued.code.as_str());
        let mut valid = 0;
        for (status, body) in get_fifty_at_once(addr, &path).await {
            assert_eq!(status, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            if v["valid"] == serde_json::Value::Bool(true) {
                valid += 1;
            } else {
                assert_eq!(v["valid"], serde_json::Value::Bool(false));
            }
        }
        assert_eq!(valid, 1, "{kind:?} on {}", db.backend);
    }
    // Same for a JWT's jti.
    let token = jwt_for(&clock, "lab-42");
    let path = format!("/api/v1/verify?code={}", encode_query(&token));
    let mut valid = 0;
    for (status, body) in get_fifty_at_once(addr, &path).await {
        assert_eq!(status, 200);
        if body.contains("true") {
            valid += 1;
        }
    }
    assert_eq!(valid, 1, "JWT on {}", db.backend);
    assert_eq!(
        svc.metrics().get(
            "submission_verify_code_total",
            "valid=\"true\",code_type=\"JWT\""
        ),
        1
    );
});

both_backends!(quota_is_atomic_and_per_day, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let channel = Channel::Portal {
        id: 1,
        username: "dr".into(),
        daily_quota: 3,
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            let channel = channel.clone();
            tokio::spawn(async move { svc.issue(CodeKind::Short, &channel).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(IssueError::QuotaExceeded) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(svc.quota_left(&channel, 3).await.unwrap(), 0);
    // Next Paris day (midnight Paris = 23:00 UTC in winter).
    set_manual(&clock, utc("2026-01-10T23:00:00Z"));
    assert_eq!(svc.quota_left(&channel, 3).await.unwrap(), 3);
    assert!(svc.issue(CodeKind::Short, &channel).await.is_ok());
});

both_backends!(
    purge_removes_codes_two_days_after_expiry_and_counts_kpis,
    |db| {
        let clock = manual_at(utc("2026-01-10T10:00:00Z"));
        let svc = service(&db, &clock);
        let used = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
        let _unused = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
        let live = svc.issue(CodeKind::Test, &Channel::Cli).await.unwrap();
        assert!(svc.verify(&used.code).await.unwrap().valid);
        // Expired at 11:00 on the 10th; still kept on the 12th at 10:59:59.
        set_manual(&clock, utc("2026-01-12T10:59:59Z"));
        let r = svc.purge().await.unwrap();
        assert_eq!((r.expired_unused, r.used), (0, 0));
        set_manual(&clock, utc("2026-01-12T11:00:01Z"));
        let r = svc.purge().await.unwrap();
        assert_eq!((r.expired_unused, r.used), (1, 1));
        assert!(
            svc.verify(&live.code).await.unwrap().valid,
            "live code kept"
        );
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
        let kpi = svc.kpi(day, day.succ_opt().unwrap()).await.unwrap();
        assert_eq!(kpi.len(), 2);
        assert_eq!(kpi[0].nb_short_codes_generated, 2);
        assert_eq!(kpi[0].nb_short_codes_used, 1);
        assert_eq!(kpi[0].nb_short_expired_codes, 1);
        assert_eq!(kpi[0].nb_test_codes_generated, 1);
        assert_eq!(
            kpi[1],
            robert_codes::service::KpiDay {
                date: day.succ_opt().unwrap(),
                ..Default::default()
            }
        );
    }
);

both_backends!(jwt_ids_are_purged_after_token_lifetime, |db| {
    let now = 1_700_000_000;
    assert!(db.store.use_jti(&[1; 32], now, now + 100).await.unwrap());
    assert!(!db.store.use_jti(&[1; 32], now, now + 100).await.unwrap());
    let cutoffs = robert_codes::store::PurgeCutoffs {
        codes_before: 0,
        jti_before: now + 101,
        sessions_before: 0,
        audit_before: 0,
        kpi_before_day: 0,
    };
    assert_eq!(db.store.purge(&cutoffs).await.unwrap().jti, 1);
});

both_backends!(doctors_sessions_audit_and_locks, |db| {
    let s = &db.store;
    let d = NewDoctor {
        username: "dr.house".into(),
        display_name: "Dr House".into(),
        password_hash: "$argon2id$x".into(),
        daily_quota: Some(7),
        created_at: 1,
    };
    let id = s.create_doctor(&d).await.unwrap();
    assert!(matches!(
        s.create_doctor(&d).await,
        Err(robert_codes::store::StoreError::Conflict(_))
    ));
    let got = s.doctor_by_username("dr.house").await.unwrap().unwrap();
    assert_eq!((got.id, got.daily_quota, got.enabled), (id, Some(7), true));
    assert_eq!(s.increment_failed_logins(id).await.unwrap(), 1);
    assert_eq!(s.increment_failed_logins(id).await.unwrap(), 2);
    s.set_locked_until(id, Some(99)).await.unwrap();
    let got = s.doctor_by_username("dr.house").await.unwrap().unwrap();
    assert_eq!((got.failed_logins, got.locked_until), (2, Some(99)));
    s.reset_failed_logins(id).await.unwrap();
    let got = s.doctor_by_username("dr.house").await.unwrap().unwrap();
    assert_eq!((got.failed_logins, got.locked_until), (0, None));

    s.create_session(&[9; 32], id, "csrf", 100, 200)
        .await
        .unwrap();
    let (doc, csrf) = s.session(&[9; 32], 150).await.unwrap().unwrap();
    assert_eq!((doc.id, csrf.as_str()), (id, "csrf"));
    assert!(s.session(&[9; 32], 200).await.unwrap().is_none(), "expired");
    assert!(s.set_doctor_enabled("dr.house", false).await.unwrap());
    assert!(
        s.session(&[9; 32], 150).await.unwrap().is_none(),
        "disabled ends sessions"
    );
    assert!(!s.set_doctor_enabled("nobody", false).await.unwrap());

    s.audit(&AuditEntry {
        at: 5,
        actor: "a".into(),
        action: "x".into(),
        detail: "".into(),
    })
    .await
    .unwrap();
    assert_eq!(s.audit_entries(5).await.unwrap()[0].action, "x");

    assert!(s.try_lock("job", "h1", 100, 200).await.unwrap());
    assert!(!s.try_lock("job", "h2", 150, 250).await.unwrap());
    assert!(
        s.try_lock("job", "h2", 201, 300).await.unwrap(),
        "expired lock taken over"
    );
    s.unlock("job", "h1").await.unwrap(); // not the holder: no effect
    assert!(!s.try_lock("job", "h3", 250, 300).await.unwrap());
    s.unlock("job", "h2").await.unwrap();
    assert!(s.try_lock("job", "h3", 250, 300).await.unwrap());

    let day = chrono::NaiveDate::from_ymd_opt(2021, 8, 25).unwrap();
    assert_eq!(s.next_file_sequence(day, 22).await.unwrap(), 22);
    assert_eq!(s.next_file_sequence(day, 22).await.unwrap(), 23);
    let other = chrono::NaiveDate::from_ymd_opt(2021, 8, 26).unwrap();
    assert_eq!(s.next_file_sequence(other, 22).await.unwrap(), 22);
});

/// Fifty concurrent GETs of `path`: (status, body) each.
async fn get_fifty_at_once(addr: std::net::SocketAddr, path: &str) -> Vec<(u16, String)> {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let path = path.to_owned();
            tokio::spawn(async move { http_get(addr, &path, &[]).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn jwt_for(clock: &ManualClock, jti: &str) -> String {
    testing::sign(
        &testing::signing_key(7),
        r#"{"alg":"ES256","kid":"K1","typ":"JWT"}"#,
        &format!(
            r#"{{"iss":"SIDEP","iat":{},"jti":"{jti}"}}"#,
            clock.now_unix() - 60
        ),
    )
}

both_backends!(a_claim_holds_a_code_for_one_report_until_settled, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let (a, b) = ([0xAA; 32], [0xBB; 32]);
    for kind in [CodeKind::Short, CodeKind::Test] {
        // Held: nobody else can use it, the same report can take it again.
        let released = svc.issue(kind, &Channel::Cli).await.unwrap().code;
        assert!(svc.claim(&released, &a).await.unwrap().valid);
        assert!(!svc.claim(&released, &b).await.unwrap().valid, "held by a");
        assert!(!svc.verify(&released).await.unwrap().valid, "held by a");
        assert!(svc.claim(&released, &a).await.unwrap().valid, "a retried");
        assert!(!svc.release(&released, &b).await.unwrap(), "not b's hold");
        assert!(!svc.confirm(&released, &b).await.unwrap(), "not b's hold");
        // Released: usable again, by anyone.
        assert!(svc.release(&released, &a).await.unwrap());
        assert!(!svc.release(&released, &a).await.unwrap(), "once");
        assert!(svc.verify(&released).await.unwrap().valid);
        assert!(!svc.claim(&released, &a).await.unwrap().valid, "used");

        // Confirmed: used.
        let confirmed = svc.issue(kind, &Channel::Cli).await.unwrap().code;
        assert!(svc.claim(&confirmed, &a).await.unwrap().valid);
        assert!(svc.confirm(&confirmed, &a).await.unwrap());
        assert!(!svc.confirm(&confirmed, &a).await.unwrap(), "once");
        assert!(!svc.claim(&confirmed, &a).await.unwrap().valid, "used");
        assert!(!svc.claim(&confirmed, &b).await.unwrap().valid, "used");
        assert!(!svc.verify(&confirmed).await.unwrap().valid, "used");
        assert!(!svc.release(&confirmed, &a).await.unwrap(), "used");
    }
    // Two codes used (one verified, one confirmed) per kind, in the KPIs.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 10).unwrap();
    let kpi = svc.kpi(day, day).await.unwrap();
    assert_eq!(kpi[0].nb_short_codes_used, 2);
    assert_eq!(kpi[0].nb_test_codes_used, 2);

    // A JWT: the same rules on its jti.
    let token = jwt_for(&clock, "lab-7");
    assert!(svc.claim(&token, &a).await.unwrap().valid);
    assert!(!svc.claim(&token, &b).await.unwrap().valid, "held by a");
    assert!(!svc.verify(&token).await.unwrap().valid, "held by a");
    assert!(svc.claim(&token, &a).await.unwrap().valid, "a retried");
    assert!(svc.release(&token, &a).await.unwrap());
    assert!(svc.claim(&token, &b).await.unwrap().valid, "free again");
    assert!(!svc.confirm(&token, &a).await.unwrap(), "b's hold");
    assert!(svc.confirm(&token, &b).await.unwrap());
    assert!(!svc.claim(&token, &b).await.unwrap().valid, "used");
    assert!(!svc.verify(&token).await.unwrap().valid, "used");
    assert!(!svc.release(&token, &b).await.unwrap(), "used");
    assert_eq!(
        svc.metrics()
            .get("submission_claim_settled_total", "outcome=\"confirmed\""),
        3
    );
});

both_backends!(an_unsettled_claim_expires, |db| {
    // What a server killed between claim and confirm leaves behind.
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let hold = chrono::Duration::seconds(robert_codes::service::CLAIM_HOLD_SECS);
    let (a, b) = ([1; 32], [2; 32]);
    let taken = svc.issue(CodeKind::Test, &Channel::Cli).await.unwrap().code;
    let kept = svc.issue(CodeKind::Test, &Channel::Cli).await.unwrap().code;
    let token = jwt_for(&clock, "lab-8");
    for code in [&taken, &kept, &token] {
        assert!(svc.claim(code, &a).await.unwrap().valid);
    }
    set_manual(&clock, utc("2026-01-10T10:00:00Z") + hold);
    assert!(
        !svc.claim(&taken, &b).await.unwrap().valid,
        "last held second"
    );
    assert!(!svc.verify(&taken).await.unwrap().valid, "last held second");
    clock.advance_secs(1);
    // Expired: another report takes it, the first can no longer confirm.
    assert!(svc.claim(&taken, &b).await.unwrap().valid);
    assert!(!svc.confirm(&taken, &a).await.unwrap());
    assert!(svc.confirm(&taken, &b).await.unwrap());
    // Expired but untouched: the late confirm still uses it.
    assert!(svc.confirm(&kept, &a).await.unwrap());
    assert!(!svc.verify(&kept).await.unwrap().valid);
    // An expired hold on a JWT: a plain verify takes it.
    assert!(svc.verify(&token).await.unwrap().valid);
    assert!(!svc.confirm(&token, &a).await.unwrap());
});

both_backends!(fifty_concurrent_claims_hold_exactly_one, |db| {
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let addr = serve(svc.router()).await;
    let token = jwt_for(&clock, "lab-9");
    for code in [
        svc.issue(CodeKind::Short, &Channel::Cli)
            .await
            .unwrap()
            .code
            .to_string(),
        token,
    ] {
        let tasks: Vec<_> = (0..50u8)
            .map(|i| {
                let body =
                    serde_json::json!({"code": code, "key": hex::encode([i; 32])}).to_string();
                tokio::spawn(async move {
                    http(
                        addr,
                        "POST",
                        "/api/v1/claim",
                        &[("Content-Type", "application/json")],
                        &body,
                    )
                    .await
                })
            })
            .collect();
        let mut held = 0;
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            held += usize::from(v["valid"] == serde_json::Value::Bool(true));
        }
        assert_eq!(held, 1, "on {}", db.backend);
    }
    // Malformed bodies are 400s, not 500s.
    for body in [
        "",
        "{}",
        r#"{"code":"x","key":"zz"}"#,
        r#"{"code":"x","key":"00"}"#,
    ] {
        let r = http(
            addr,
            "POST",
            "/api/v1/claim/confirm",
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
});
