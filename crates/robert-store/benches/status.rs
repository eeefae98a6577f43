//! The store side of `/status`: one primary-key read and one committed write
//! (`record_status_success`), from many concurrent tasks, as the API does.
//!
//! ```text
//! cargo bench -p robert-store --bench status
//! ROBERT_BENCH_REGISTRATIONS=1000000 ROBERT_BENCH_BACKEND=both cargo bench -p robert-store --bench status
//! ```
//!
//! Prints requests/s and latency percentiles. Env: `ROBERT_BENCH_REGISTRATIONS`
//! (100 000), `ROBERT_BENCH_REQUESTS` (30 000), `ROBERT_BENCH_CONCURRENCY`
//! (64), `ROBERT_BENCH_BACKEND` = sqlite | postgres | both (sqlite),
//! `ROBERT_BENCH_FULL_SYNC` = 1 | 0 (1: SQLite `synchronous=FULL`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::time::{Epoch, NtpSeconds};
use robert_store::testing::TestDatabase;
use robert_store::{Backend, NewRegistration, StatusSuccess, Store, StoreOptions};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn id(i: u64) -> IdA {
    IdA::from_u64((i * 1_099_511 + 7) % (1 << 40))
}

async fn bench(backend: Backend) {
    let n = env_u64("ROBERT_BENCH_REGISTRATIONS", 100_000);
    let requests = env_u64("ROBERT_BENCH_REQUESTS", 30_000);
    let concurrency = env_u64("ROBERT_BENCH_CONCURRENCY", 64);
    let full_sync = env_u64("ROBERT_BENCH_FULL_SYNC", 1) == 1;
    let Some(db) = TestDatabase::of(backend, "status_bench").await.unwrap() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(1);
    let t = Instant::now();
    let mut batch = Vec::with_capacity(50_000);
    for i in 0..n {
        batch.push(NewRegistration {
            id_a: id(i),
            key_a: WrappedKey(rng.random()),
            key_a_tuples: WrappedKey(rng.random()),
            created_at: NtpSeconds(3_882_556_800),
        });
        if batch.len() == 50_000 {
            db.store().insert_registrations_bulk(&batch).await.unwrap();
            batch.clear();
        }
    }
    db.store().insert_registrations_bulk(&batch).await.unwrap();
    eprintln!(
        "[{backend}] seeded {n} registrations in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // A store opened with the options under test on the same data.
    let options = StoreOptions {
        sqlite_full_sync: full_sync,
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = robert_store::open(db.url(), &options).await.unwrap();

    let started = Instant::now();
    let per_task = requests / concurrency;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut rng = StdRng::seed_from_u64(task);
            let mut latencies = Vec::with_capacity(per_task as usize);
            for k in 0..per_task {
                let id_a = id(rng.random_range(0..n));
                let t = Instant::now();
                let reg = store.get_registration(id_a).await.unwrap().unwrap();
                let out = store
                    .record_status_success(&StatusSuccess {
                        id_a,
                        epoch: Epoch(
                            reg.last_status_epoch.get() + 2 + u32::try_from(k % 3).unwrap(),
                        ),
                        drift_secs: 1,
                    })
                    .await
                    .unwrap();
                assert!(out.is_some());
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies: Vec<Duration> = Vec::new();
    while let Some(l) = tasks.join_next().await {
        latencies.extend(l.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "status/{backend} (registrations {n}, concurrency {concurrency}, {}): {:.0} req/s; p50 {:?} p99 {:?} max {:?}",
        if backend == Backend::Sqlite {
            if full_sync {
                "synchronous=FULL"
            } else {
                "synchronous=NORMAL"
            }
        } else {
            "default commit"
        },
        latencies.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1],
    );
    store.close().await;
    db.cleanup().await;
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: nothing to do.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    robert_store::testing::bench_each_backend(bench);
}
