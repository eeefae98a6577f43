//! KPIs, app config, URLs.

use std::sync::Arc;

use robert_store::{AppConfigEntry, Store, StoreError, StoreOptions, kpi};
use serde_json::json;

use crate::both_backends;

both_backends!(kpi_counters, app_config_entries);

async fn kpi_counters(store: Arc<dyn Store>, _url: String) {
    let kpis = store.kpis().await.unwrap();
    for name in kpi::API {
        assert_eq!(kpis.get(name), 0, "missing counters read as 0");
    }
    store.increment_kpi(kpi::REPORTS_COUNT, 1).await.unwrap();
    store.increment_kpi(kpi::REPORTS_COUNT, 2).await.unwrap();
    store
        .set_kpis(&[
            (kpi::INFECTED_USERS_NOT_NOTIFIED, 7),
            (kpi::EXPOSED_BUT_NOT_AT_RISK_USERS, 9),
        ])
        .await
        .unwrap();
    store
        .set_kpis(&[(kpi::INFECTED_USERS_NOT_NOTIFIED, 4)])
        .await
        .unwrap();
    let kpis = store.kpis().await.unwrap();
    assert_eq!(kpis.get(kpi::REPORTS_COUNT), 3);
    assert_eq!(kpis.get(kpi::INFECTED_USERS_NOT_NOTIFIED), 4);
    assert_eq!(kpis.get(kpi::EXPOSED_BUT_NOT_AT_RISK_USERS), 9);
    assert_eq!(kpis.0.len(), 3);
}

async fn app_config_entries(store: Arc<dyn Store>, _url: String) {
    assert!(store.app_config().await.unwrap().is_empty());
    store
        .set_app_config("zeta", &json!({"a": [1, 2.5, null], "b": "x"}))
        .await
        .unwrap();
    store.set_app_config("alpha", &json!(3)).await.unwrap();
    store.set_app_config("zeta", &json!(false)).await.unwrap();
    assert_eq!(
        store.app_config().await.unwrap(),
        vec![
            AppConfigEntry {
                name: "alpha".into(),
                value: json!(3)
            },
            AppConfigEntry {
                name: "zeta".into(),
                value: json!(false)
            },
        ]
    );
    assert!(store.delete_app_config("alpha").await.unwrap());
    assert!(!store.delete_app_config("alpha").await.unwrap());
    assert_eq!(store.app_config().await.unwrap().len(), 1);
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://x", "", "file:/tmp/x.db", "postgres:/x"] {
        let e = robert_store::open(url, &StoreOptions::default()).await;
        assert!(matches!(e, Err(StoreError::UnsupportedUrl)), "{url}");
    }
}

#[tokio::test]
async fn in_memory_sqlite_works_for_tests() {
    let store = robert_store::open("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    store.increment_kpi(kpi::REPORTS_COUNT, 1).await.unwrap();
    assert_eq!(store.kpis().await.unwrap().get(kpi::REPORTS_COUNT), 1);
    let lock = store.try_lock_batch().await.unwrap();
    assert!(lock.is_some());
    assert!(store.try_lock_batch().await.unwrap().is_none());

    // Behind it, a temporary file: gone, with its companions, once dropped.
    let ours = format!("robert-memory-{}-", std::process::id());
    let files = || {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&ours))
            .count()
    };
    assert!(files() > 0);
    drop(lock);
    drop(store);
    assert_eq!(files(), 0);
}

#[test]
fn options_deserialize_with_defaults() {
    let o: StoreOptions =
        serde_json::from_value(json!({"sqlite_full_sync": false, "busy_timeout": 3})).unwrap();
    assert!(!o.sqlite_full_sync);
    assert_eq!(o.busy_timeout, std::time::Duration::from_secs(3));
    assert_eq!(o.max_connections, StoreOptions::default().max_connections);
    assert!(serde_json::from_value::<StoreOptions>(json!({"nope": 1})).is_err());
}
