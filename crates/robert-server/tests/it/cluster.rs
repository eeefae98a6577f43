//! Several server nodes on one PostgreSQL database behave as one server:
//! three nodes, each built with `ServerBuilder` on its own connection pool
//! to one database, sharing the keys (as nodes sharing a key store or an
//! HSM do) and nothing else. Skipped ("skipped: no PostgreSQL") when no
//! server answers, unless `ROBERT_TEST_REQUIRE_PG=1`.

use std::sync::Arc;
use std::time::Duration;

use robert_core::time::UtcDate;
use robert_server::clock::{Clock as _, ManualClock};
use robert_server::config::{CaptchaMode, Config, StateLocation};
use robert_server::serve::ServerBuilder;
use robert_server::state::TurnOutcome;
use robert_store::testing::TestDatabase;
use robert_store::{Backend, StoreOptions};
use serde_json::json;

use super::phone::{Phone, proximity, valid_code};
use super::support::{TestApp, start_stubs, test_keys, today_noon};

/// Three nodes on one fresh PostgreSQL database (`None`: no PostgreSQL),
/// with the built-in captcha, the settings left at `auto` (so the shared
/// state is in the database), `customize` applied to every node.
async fn cluster(
    label: &str,
    customize: impl Fn(&mut Config),
) -> Option<(Vec<TestApp>, TestDatabase)> {
    let db = TestDatabase::of(Backend::Postgres, label).await.unwrap()?;
    let stubs = start_stubs().await;
    let clock = Arc::new(ManualClock::at_ntp(today_noon()));
    let keys = test_keys(UtcDate::of(today_noon()));
    let mut nodes = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let mut config = Config::default();
        config.captcha.mode = CaptchaMode::Builtin;
        config.codes.url = stubs.base.clone();
        config.codes.timeout_ms = 1000;
        config.push.url = format!("{}/internal/api/v1", stubs.base);
        customize(&mut config);
        // Node A uses the test database's pool; B and C open their own.
        let store = if i == 0 {
            db.store()
        } else {
            robert_store::open(db.url(), &StoreOptions::default())
                .await
                .unwrap()
        };
        let state = ServerBuilder::new(config, clock.clone())
            .keys(keys.clone())
            .store(store)
            .node_id(format!("node-{name}"))
            .build()
            .await
            .unwrap();
        if state.config.captcha.mode == CaptchaMode::Builtin {
            assert!(
                matches!(state.captcha, robert_server::captcha::Captcha::Shared(_)),
                "auto = database on PostgreSQL"
            );
        }
        let router = robert_server::api::app(state.clone());
        nodes.push(TestApp {
            state,
            router,
            clock: clock.clone(),
            stubs: stubs.clone(),
            db: None,
        });
    }
    Some((nodes, db))
}

async fn finish(nodes: Vec<TestApp>, db: TestDatabase) {
    for n in nodes.iter().skip(1) {
        n.state.store.close().await;
    }
    db.cleanup().await;
}

/// A captcha made on node A is fetched and solved on node B; replayed on
/// node C it is refused. The database never holds the answer in clear.
#[tokio::test]
async fn captcha_made_on_a_is_solved_on_b_and_refused_on_c() {
    let Some((nodes, db)) = cluster("cluster_captcha", |_| {}).await else {
        return;
    };
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let made = a
        .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.json["captchaId"].as_str().unwrap().to_owned();
    // Every node renders the same image.
    let on_b = b.get(&format!("/api/v6/captcha/{id}/image")).await;
    let on_c = c.get(&format!("/api/v6/captcha/{id}/image")).await;
    assert_eq!(
        (on_b.status, on_b.content_type.as_str()),
        (200, "image/png")
    );
    assert_eq!(on_b.bytes, on_c.bytes);
    let answer = c
        .state
        .captcha
        .peek_answer(&id, c.clock.now_unix())
        .await
        .unwrap();
    // The stored row holds neither the answer nor the client's address.
    let row = a
        .state
        .store
        .captcha_get(&id, a.clock.now_unix())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !row.sealed
            .windows(answer.len())
            .any(|w| w == answer.as_bytes())
    );
    let register = |captcha: &str| {
        json!({
            "captcha": captcha,
            "captchaId": id,
            "clientPublicECDHKey": robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64(),
        })
    };
    let r = b.post("/api/v6/register", &register(&answer)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let replay = c.post("/api/v6/register", &register(&answer)).await;
    assert_eq!(replay.status, 401, "{replay:?}");
    assert_eq!(
        a.get(&format!("/api/v6/captcha/{id}/image")).await.status,
        404,
        "consumed on every node"
    );
    // Concurrent answers to one challenge on three nodes: exactly one wins.
    let made = c
        .post("/api/v6/captcha", &json!({"type": "AUDIO", "locale": "en"}))
        .await;
    let id = made.json["captchaId"].as_str().unwrap().to_owned();
    let answer = a
        .state
        .captcha
        .peek_answer(&id, a.clock.now_unix())
        .await
        .unwrap();
    let now = a.clock.now_unix();
    let (x, y, z) = tokio::join!(
        a.state.captcha.verify(&id, &answer, now),
        b.state.captcha.verify(&id, &answer, now),
        c.state.captcha.verify(&id, &answer, now),
    );
    let wins = [x.unwrap(), y.unwrap(), z.unwrap()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
    finish(nodes, db).await;
}

/// The per-client captcha quota is one quota across nodes.
#[tokio::test]
async fn captcha_quota_is_shared() {
    let Some((nodes, db)) = cluster("cluster_quota", |c| {
        c.captcha.max_outstanding_per_client = 3;
    })
    .await
    else {
        return;
    };
    let body = json!({"type": "IMAGE", "locale": "fr"});
    for n in &nodes {
        let r = n
            .post_from("203.0.113.9:1000", "/api/v6/captcha", &body)
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    for n in &nodes {
        let r = n
            .post_from("203.0.113.9:1000", "/api/v6/captcha", &body)
            .await;
        assert_eq!(r.status, 429, "{r:?}");
        assert_eq!(r.headers["retry-after"], "600");
    }
    let r = nodes[1]
        .post_from("198.51.100.1:1000", "/api/v6/captcha", &body)
        .await;
    assert_eq!(r.status, 201, "another client");
    finish(nodes, db).await;
}

/// Register on A, status on B, report on C, batch on A: the same server.
#[tokio::test]
async fn register_on_a_status_on_b_report_on_c_batch_on_a() {
    let Some((nodes, db)) = cluster("cluster_flow", |_| {}).await else {
        return;
    };
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.set_now(today_noon().minus(86_400));
    let mut alice = Phone::register(a, "alice").await;
    let mut bob = Phone::register(a, "bob").await;
    a.set_now(today_noon());
    for p in [&mut alice, &mut bob] {
        let r = p.status(b).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json["riskLevel"], 0);
    }
    proximity(
        c,
        &mut [&mut alice, &mut bob],
        today_noon().minus(3600),
        3600,
    );
    let r = bob.report(c, &valid_code()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let report = a.batch().await;
    assert_eq!(report.contacts_rejected.total(), 0, "{report:?}");
    // Past the minimum gap between two /status of one app.
    a.set_now(today_noon().plus(3600));
    assert_eq!(alice.risk(b).await, 4);
    assert_eq!(bob.risk(c).await, 0);
    finish(nodes, db).await;
}

/// The `/report` code-check budget of a client is one budget across nodes.
#[tokio::test]
async fn rate_budget_is_shared_across_nodes() {
    let Some((nodes, db)) = cluster("cluster_rate", |c| {
        c.limits.code_checks_per_minute = 4;
        c.captcha.mode = CaptchaMode::AcceptAny;
    })
    .await
    else {
        return;
    };
    let body = json!({"token": "000001", "contacts": []});
    let mut statuses = Vec::new();
    for i in 0..6 {
        let n = &nodes[i % 3];
        let r = n
            .post_from("203.0.113.5:1000", "/api/v6/report", &body)
            .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.headers["retry-after"], "15");
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "4 per minute across three nodes: {statuses:?}"
    );
    assert_eq!(&statuses[4..], &[429, 429]);
    // Another client has its own budget.
    let r = nodes[2]
        .post_from("198.51.100.5:1000", "/api/v6/report", &body)
        .await;
    assert_ne!(r.status, 429);
    // In memory (the setting forced), each node counts its own.
    finish(nodes, db).await;
    let Some((nodes, db)) = cluster("cluster_rate_mem", |c| {
        c.limits.code_checks_per_minute = 4;
        c.limits.rate_limit_state = StateLocation::Memory;
    })
    .await
    else {
        return;
    };
    for i in 0..6 {
        let r = nodes[i % 3]
            .post_from("203.0.113.5:1000", "/api/v6/report", &body)
            .await;
        assert_ne!(r.status, 429, "per-node budgets");
    }
    finish(nodes, db).await;
}

/// Two nodes started with `--batch-every` (the same task the command
/// spawns): each turn, exactly one runs the batch, the other counts it
/// `skipped`.
#[tokio::test]
async fn periodic_batch_runs_once_per_turn_across_nodes() {
    let Some((nodes, db)) = cluster("cluster_batch", |_| {}).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    // Direct turns first: one winner per turn, whatever the order.
    let turn = a.clock.now_unix() / 60;
    let (x, y) = tokio::join!(
        a.state.run_batch_turn(turn, 60),
        b.state.run_batch_turn(turn, 60)
    );
    let ran = [x.unwrap(), y.unwrap()]
        .iter()
        .filter(|o| matches!(o, TurnOutcome::Ran(_)))
        .count();
    assert_eq!(ran, 1);
    assert!(matches!(
        a.state.run_batch_turn(turn, 60).await.unwrap(),
        TurnOutcome::Skipped
    ));
    // The periodic tasks: three turns of 1 s of the manual clock.
    let every = Duration::from_millis(300);
    let tasks = [
        robert_server::serve::spawn_periodic_batch(a.state.clone(), every),
        robert_server::serve::spawn_periodic_batch(b.state.clone(), every),
    ];
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        a.clock.advance_secs(1);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    for t in &tasks {
        t.abort();
    }
    let count = |n: &TestApp, outcome: &str| -> u64 {
        let text = n.state.metrics.render();
        let needle = format!("robert_batch_runs_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .unwrap()
            .parse()
            .unwrap()
    };
    let ok = count(a, "ok") + count(b, "ok");
    // The clock took four values while the tasks ran (it moves only when
    // the test moves it), so at most four periodic turns, plus the direct
    // one above; without the turn claims both nodes would run at every
    // 300 ms tick (about 24 runs).
    assert!((3..=5).contains(&ok), "ok {ok}: at most one run per turn");
    assert_eq!(count(a, "failed") + count(b, "failed"), 0);
    assert!(count(a, "skipped") + count(b, "skipped") >= 4);
    finish(nodes, db).await;
}

/// Key rotation with `keys.auto_rotate` happens once per day across nodes:
/// the first node to claim the day rotates, the others do not.
#[tokio::test]
async fn key_rotation_happens_once_per_day() {
    let Some((nodes, db)) = cluster("cluster_rotation", |_| {}).await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("robert-cluster-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keystore.bin");
    let ks: Arc<dyn robert_server::keystore::KeyStore> =
        Arc::new(robert_server::keystore::file::FileKeyStore::new(
            path.clone(),
            zeroize::Zeroizing::new("cluster test passphrase".to_owned()),
            robert_server::keystore::file::KdfParams {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
        ));
    let today = UtcDate::of(today_noon());
    robert_server::keystore::admin::init(
        ks.as_ref(),
        today.add_days(-1),
        1,
        robert_server::keystore::GeneratedJwtKeys::None,
    )
    .unwrap();
    let now = nodes[0].clock.now_unix();
    let rotate = |n: &TestApp| {
        let ks = ks.clone();
        let store = n.state.store.clone();
        let node = n.state.node_id.clone();
        async move {
            robert_server::serve::rotate_once(store.as_ref(), ks, &node, today, now, 5, 21)
                .await
                .unwrap()
        }
    };
    let (x, y, z) = tokio::join!(rotate(&nodes[0]), rotate(&nodes[1]), rotate(&nodes[2]));
    let rotated: Vec<_> = [x, y, z].into_iter().flatten().collect();
    assert_eq!(rotated.len(), 1, "one node rotates");
    assert!(!rotated[0].added.is_empty());
    // The others find the new keys in the key store.
    let set = ks.load().unwrap();
    assert!(set.server_keys.contains_key(&today.add_days(5)));
    // Later the same day: nobody rotates again; the next day: one does.
    assert!(rotate(&nodes[1]).await.is_none());
    let next = today.add_days(1);
    let again = robert_server::serve::rotate_once(
        nodes[2].state.store.as_ref(),
        ks.clone(),
        &nodes[2].state.node_id,
        next,
        now + 86_400,
        5,
        21,
    )
    .await
    .unwrap();
    assert!(again.is_some());
    let _ = std::fs::remove_dir_all(&dir);
    finish(nodes, db).await;
}

/// The database fails during the captcha or rate-limit step: 503 with
/// `Retry-After`, never 500 (the PostgreSQL pool closed under the server).
#[tokio::test]
async fn shared_state_failure_is_503_with_retry_after() {
    let Some(app) = TestApp::with(Backend::Postgres, "shared_down", |c| {
        c.captcha.mode = CaptchaMode::Builtin;
        c.captcha.state = StateLocation::Database;
        c.limits.rate_limit_state = StateLocation::Database;
    })
    .await
    else {
        return;
    };
    assert!(matches!(
        app.state.captcha,
        robert_server::captcha::Captcha::Shared(_)
    ));
    let made = app
        .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.json["captchaId"].as_str().unwrap().to_owned();
    app.state.store.close().await;
    let checks = [
        app.post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
            .await,
        app.get(&format!("/api/v6/captcha/{id}/image")).await,
        app.post(
            "/api/v6/register",
            &json!({
                "captcha": "ABCDEF",
                "captchaId": id,
                "clientPublicECDHKey": robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64(),
            }),
        )
        .await,
        app.post_from(
            "203.0.113.5:1000",
            "/api/v6/report",
            &json!({"token": valid_code(), "contacts": []}),
        )
        .await,
    ];
    for r in checks {
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.headers["retry-after"], "5", "{r:?}");
    }
    app.cleanup().await;
}
