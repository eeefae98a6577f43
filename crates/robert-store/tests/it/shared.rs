//! The state several server nodes share (`SharedState`): captcha rows
//! consumed exactly once, GCRA budgets, task turns; concurrent callers on
//! two stores opened on one database (two nodes).

use std::sync::Arc;

use robert_store::{
    CaptchaBounds, CaptchaInsert, Gcra, NewCaptcha, RateDecision, Store, StoreOptions,
};

use super::both_backends;

both_backends!(
    captcha_is_consumed_exactly_once,
    captcha_bounds_and_sweep,
    rate_budget_is_atomic,
    one_claim_per_turn,
);

fn captcha(id: &str, client: u8, expires_unix: i64) -> NewCaptcha {
    NewCaptcha {
        id: id.to_owned(),
        client: vec![client; 16],
        kind: 1,
        sealed: vec![7; 60],
        expires_unix,
    }
}

const BOUNDS: CaptchaBounds = CaptchaBounds {
    now_unix: 1000,
    max_outstanding: 100,
    max_per_client: 10,
};

/// A second store on the same database: another node.
async fn second(url: &str) -> Arc<dyn Store> {
    robert_store::open(url, &StoreOptions::default())
        .await
        .unwrap()
}

async fn captcha_is_consumed_exactly_once(store: Arc<dyn Store>, url: String) {
    let other = second(&url).await;
    for round in 0..5 {
        let id = format!("challenge-{round}");
        assert_eq!(
            store
                .captcha_insert(&captcha(&id, 1, 2000), BOUNDS)
                .await
                .unwrap(),
            CaptchaInsert::Inserted
        );
        let got = store.captcha_get(&id, 1001).await.unwrap().unwrap();
        assert_eq!(
            (got.kind, got.expires_unix, got.sealed.len()),
            (1, 2000, 60)
        );
        assert!(
            store.captcha_get(&id, 2000).await.unwrap().is_none(),
            "expired"
        );
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                s.captcha_consume(&id).await.unwrap()
            }));
        }
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap().is_some() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}");
        assert!(store.captcha_get(&id, 1001).await.unwrap().is_none());
    }
    other.close().await;
}

async fn captcha_bounds_and_sweep(store: Arc<dyn Store>, _url: String) {
    let bounds = CaptchaBounds {
        now_unix: 1000,
        max_outstanding: 5,
        max_per_client: 2,
    };
    for (i, exp) in [(0, 1500), (1, 1600)] {
        let r = store
            .captcha_insert(&captcha(&format!("a{i}"), 1, exp), bounds)
            .await
            .unwrap();
        assert_eq!(r, CaptchaInsert::Inserted);
    }
    assert_eq!(
        store
            .captcha_insert(&captcha("a2", 1, 1700), bounds)
            .await
            .unwrap(),
        CaptchaInsert::ClientQuota {
            oldest_expires_unix: 1500
        }
    );
    for i in 0..3 {
        let r = store
            .captcha_insert(&captcha(&format!("b{i}"), 2 + i, 1700), bounds)
            .await
            .unwrap();
        assert_eq!(r, CaptchaInsert::Inserted);
    }
    assert_eq!(
        store
            .captcha_insert(&captcha("c", 9, 1700), bounds)
            .await
            .unwrap(),
        CaptchaInsert::Busy
    );
    assert_eq!(store.captcha_outstanding(1000).await.unwrap(), 5);
    // Expiry frees the slots: swept at the next insertion.
    let later = CaptchaBounds {
        now_unix: 1550,
        ..bounds
    };
    assert_eq!(
        store
            .captcha_insert(&captcha("a3", 1, 2000), later)
            .await
            .unwrap(),
        CaptchaInsert::Inserted
    );
    assert_eq!(store.captcha_outstanding(1550).await.unwrap(), 5);
    assert_eq!(store.sweep_shared(1_700_000).await.unwrap(), 4);
    assert_eq!(store.captcha_outstanding(0).await.unwrap(), 1);
}

async fn rate_budget_is_atomic(store: Arc<dyn Store>, url: String) {
    // 3 per minute: an interval of 20 s, a burst of 3.
    let rate = Gcra {
        interval_ms: 20_000,
        tolerance_ms: 40_000,
    };
    let t = 1_000_000_i64;
    let me = [1u8; 16];
    for _ in 0..3 {
        assert_eq!(
            store.rate_take("b", &me, t, rate).await.unwrap(),
            RateDecision::Allowed
        );
    }
    assert_eq!(
        store.rate_take("b", &me, t, rate).await.unwrap(),
        RateDecision::Limited {
            retry_after_ms: 20_000
        }
    );
    assert_eq!(
        store.rate_take("other-bucket", &me, t, rate).await.unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        store.rate_take("b", &me, t + 20_000, rate).await.unwrap(),
        RateDecision::Allowed
    );
    // A clock moved back does not lock the client out.
    assert_eq!(
        store
            .rate_take("b", &me, t - 86_400_000, rate)
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    // Concurrent takes on two stores: exactly the burst passes.
    let other = second(&url).await;
    let you = [2u8; 16];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            s.rate_take("b", &you, t, rate).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == RateDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
    // Rows whose time has passed are swept.
    assert!(store.sweep_shared(t + 3_600_000).await.unwrap() >= 2);
    other.close().await;
}

async fn one_claim_per_turn(store: Arc<dyn Store>, url: String) {
    let other = second(&url).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            s.claim_turn("batch", 7, &format!("node-{i}"), 100, 160)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1);
    // Turns only move forward.
    assert!(
        !store
            .claim_turn("batch", 6, "late", 100, 160)
            .await
            .unwrap()
    );
    // Another task has its own turns.
    assert!(
        store
            .claim_turn("rotation", 7, "x", 100, 160)
            .await
            .unwrap()
    );
    // A finished turn is never claimed again; an unfinished one is, after
    // its lease; one given back is at once.
    store.finish_turn("rotation", 7, "x", true).await.unwrap();
    assert!(
        !store
            .claim_turn("rotation", 7, "y", 10_000, 10_060)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_turn("rotation", 8, "y", 200, 260)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_turn("rotation", 8, "z", 259, 300)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_turn("rotation", 8, "z", 260, 300)
            .await
            .unwrap()
    );
    store.finish_turn("rotation", 8, "z", false).await.unwrap();
    assert!(
        store
            .claim_turn("rotation", 8, "w", 261, 300)
            .await
            .unwrap()
    );
    // A holder that lost its claim cannot finish the new holder's.
    store.finish_turn("rotation", 8, "z", true).await.unwrap();
    assert!(
        !store
            .claim_turn("rotation", 8, "v", 250, 400)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_turn("rotation", 8, "v", 300, 400)
            .await
            .unwrap()
    );
    other.close().await;
}
