//! Idempotency, crash safety (injected aborts and a real SIGKILL) and
//! mutual exclusion of batch runs.

use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng as _;
use rand::rngs::StdRng;
use robert_server::batch::{BatchConfig, BatchError, BatchProgress, BatchReport};
use robert_store::testing::TestDatabase;
use robert_store::{Backend, BatchPhase, Store, StoreOptions, UploadedContact};

use crate::both_backends;
use crate::support::{HOUR, MINUTE, Phone, World, days_ago, now, register, snapshot};

both_backends!(
    second_run_changes_nothing,
    aborted_runs_resume_to_the_uninterrupted_state,
    concurrent_runs_are_exclusive,
);

/// Registrations and reports for the crash tests: 40 phones (one never
/// registered), ~400 contacts, a few senders exposed long enough to be at risk.
struct Population {
    world: World,
    phones: Vec<Phone>,
    unregistered: Phone,
    reports: Vec<Vec<UploadedContact>>,
}

const SEED: u64 = 31;

/// Where an injected failure stops a run.
type StopAt = Box<dyn Fn(&BatchProgress) -> bool + Send + Sync>;
const FRESH_SEED: u64 = 7;

fn population() -> Population {
    let mut world = World::new(SEED);
    let phones: Vec<Phone> = (0..40).map(|_| world.phone(days_ago(20))).collect();
    let unregistered = world.phone(days_ago(20));
    let mut reports = Vec::new();
    for (i, p) in phones.iter().enumerate() {
        let mut report = Vec::new();
        if i % 8 == 0 {
            // At risk: an hour, some days ago.
            report.extend(world.proximity(p, days_ago(1 + (i as u64 % 5)), 3600));
        }
        for k in 0..10u64 {
            // Two-minute contacts spread over the last 10 days.
            let at = days_ago(k).minus(HOUR * (i as u64 % 7) + 17 * MINUTE);
            report.extend(world.proximity(p, at, 2 * MINUTE));
        }
        if i % 10 == 3 {
            report.extend(world.proximity(&unregistered, days_ago(2), 5 * MINUTE));
        }
        reports.push(report);
    }
    Population {
        world,
        phones,
        unregistered,
        reports,
    }
}

impl Population {
    async fn fill(&self, store: &dyn Store) {
        for p in &self.phones {
            register(store, p).await;
        }
        for r in &self.reports {
            store.insert_contacts(r, now()).await.unwrap();
        }
    }

    fn contacts(&self) -> u64 {
        self.reports.iter().map(|r| r.len() as u64).sum()
    }

    fn everyone(&self) -> Vec<Phone> {
        let mut all = self.phones.clone();
        all.push(self.unregistered.clone());
        all
    }

    fn config(&self, chunk: usize) -> BatchConfig {
        BatchConfig {
            chunk_contacts: Some(chunk),
            ..self.world.config.clone()
        }
    }
}

async fn run_once(store: &dyn Store, pop: &Population, chunk: usize, seed: u64) -> BatchReport {
    let mut rng = StdRng::seed_from_u64(seed);
    robert_server::batch::run(store, &pop.world.keys, &pop.config(chunk), now(), &mut rng)
        .await
        .unwrap()
}

/// The uninterrupted run everything is compared with.
async fn reference(backend: Backend, pop: &Population) -> Option<crate::support::Snapshot> {
    let db = TestDatabase::of(backend, "crash_reference")
        .await
        .unwrap()?;
    let store = db.store();
    pop.fill(&*store).await;
    let report = run_once(&*store, pop, 10_000, FRESH_SEED).await;
    assert_eq!(report.chunks, 1);
    assert!(report.registrations_at_risk >= 5, "{report:?}");
    assert!(report.contacts_rejected.unknown_registration > 0);
    let snap = snapshot(&*store, &pop.everyone()).await;
    db.cleanup().await;
    Some(snap)
}

async fn second_run_changes_nothing(store: Arc<dyn Store>, _url: String) {
    let pop = population();
    pop.fill(&*store).await;
    let first = run_once(&*store, &pop, 50, FRESH_SEED).await;
    assert_eq!(first.contacts_processed, pop.contacts());
    let before = snapshot(&*store, &pop.everyone()).await;
    let second = run_once(&*store, &pop, 50, FRESH_SEED + 1).await;
    assert!(!second.resumed);
    assert_eq!(
        (
            second.contacts_processed,
            second.registrations_evaluated,
            second.exposures_purged,
            second.risks_reset
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(snapshot(&*store, &pop.everyone()).await, before);
    assert_eq!(second.kpis, first.kpis);
}

async fn aborted_runs_resume_to_the_uninterrupted_state(store: Arc<dyn Store>, _url: String) {
    let pop = population();
    let backend = store.backend();
    let Some(expected) = reference(backend, &pop).await else {
        return;
    };
    // The harness's store is used for the first case; others get their own.
    let mut cases: Vec<(&str, StopAt)> = vec![
        (
            "after chunk 1",
            Box::new(|e| matches!(e, BatchProgress::ChunkCommitted { chunk: 1, .. })),
        ),
        (
            "after chunk 17",
            Box::new(|e| matches!(e, BatchProgress::ChunkCommitted { chunk: 17, .. })),
        ),
        (
            "after purge and reset",
            Box::new(|e| matches!(e, BatchProgress::PurgedAndReset)),
        ),
        (
            "during evaluation",
            Box::new(|e| matches!(e, BatchProgress::Evaluated { .. })),
        ),
    ];
    let mut first = Some(store);
    for (name, stop_at) in cases.drain(..) {
        let (store, db) = match first.take() {
            Some(s) => (s, None),
            None => {
                let db = TestDatabase::of(backend, name).await.unwrap().unwrap();
                (db.store(), Some(db))
            }
        };
        pop.fill(&*store).await;
        let config = pop.config(20);
        let mut observer = |e: &BatchProgress| {
            if stop_at(e) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let mut seed_bytes = [0u8; 32];
        rand::Rng::fill_bytes(&mut StdRng::seed_from_u64(FRESH_SEED), &mut seed_bytes);
        let e = robert_server::batch::run_with(
            &*store,
            &pop.world.keys,
            &config,
            now(),
            seed_bytes,
            &mut observer,
        )
        .await;
        assert!(matches!(e, Err(BatchError::Aborted)), "{name}: {e:?}");
        let state = store.batch_run_state().await.unwrap().unwrap();
        assert_ne!(state.phase, BatchPhase::Done, "{name}");
        // Resume with another RNG: the stored seed wins.
        let resumed = run_once(&*store, &pop, 20, 12_345).await;
        assert!(resumed.resumed, "{name}");
        assert_eq!(snapshot(&*store, &pop.everyone()).await, expected, "{name}");
        if let Some(db) = db {
            db.cleanup().await;
        }
    }
}

async fn concurrent_runs_are_exclusive(store: Arc<dyn Store>, url: String) {
    let pop = population();
    pop.fill(&*store).await;
    let other = robert_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let held = other.try_lock_batch().await.unwrap().unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let e = robert_server::batch::run(&*store, &pop.world.keys, &pop.config(100), now(), &mut rng)
        .await;
    assert!(matches!(e, Err(BatchError::AlreadyRunning)), "{e:?}");
    assert_eq!(
        store.pending_contacts().await.unwrap().contacts,
        pop.contacts(),
        "nothing was touched"
    );
    drop(held);
    let mut report = None;
    for _ in 0..100 {
        match robert_server::batch::run(&*store, &pop.world.keys, &pop.config(100), now(), &mut rng)
            .await
        {
            Ok(r) => {
                report = Some(r);
                break;
            }
            Err(BatchError::AlreadyRunning) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(report.unwrap().contacts_processed, pop.contacts());
    other.close().await;
}

// ------------------------------------------------------------------ SIGKILL

const CHILD_URL_ENV: &str = "ROBERT_BATCH_CHILD_URL";

/// Not a test: the batch process that `killed_batch_*` kills. It runs the
/// batch slowly (small chunks, a pause after each) on the database named by
/// `ROBERT_BATCH_CHILD_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the SIGKILL tests"]
async fn child_batch_process() {
    let Ok(url) = std::env::var(CHILD_URL_ENV) else {
        return;
    };
    let store = robert_store::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let pop = population();
    let config = pop.config(10);
    let mut observer = |e: &BatchProgress| {
        if matches!(e, BatchProgress::ChunkCommitted { .. }) {
            std::thread::sleep(Duration::from_millis(15));
        }
        ControlFlow::Continue(())
    };
    let mut seed = [0u8; 32];
    rand::Rng::fill_bytes(&mut StdRng::seed_from_u64(FRESH_SEED), &mut seed);
    // The previous child's lock may take a moment to vanish (PostgreSQL).
    for _ in 0..250 {
        let run = robert_server::batch::run_with(
            &*store,
            &pop.world.keys,
            &config,
            now(),
            seed,
            &mut observer,
        );
        match run.await {
            Err(BatchError::AlreadyRunning) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return,
        }
    }
}

async fn killed_batch_resumes_to_the_uninterrupted_state(backend: Backend) {
    let pop = population();
    let Some(expected) = reference(backend, &pop).await else {
        return;
    };
    let db = TestDatabase::of(backend, "killed").await.unwrap().unwrap();
    let store = db.store();
    pop.fill(&*store).await;
    let total = pop.contacts();
    let exe = std::env::current_exe().unwrap();
    // Kill it twice at different points, then let an in-process run finish.
    for (kill, target) in [(1u32, total - 25), (2, total / 2)] {
        let mut child = Command::new(&exe)
            .args([
                "crash::child_batch_process",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_URL_ENV, db.url())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let pending = store.pending_contacts().await.unwrap().contacts;
            if pending <= target {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "kill {kill}: the child ended early"
            );
            assert!(Instant::now() < deadline, "kill {kill}: no progress");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Land the kill at varying points of a chunk (between 0 and 12 ms).
        tokio::time::sleep(Duration::from_millis(u64::from(kill) * 6)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let pending = store.pending_contacts().await.unwrap().contacts;
        assert!(
            pending > 0 && pending < total,
            "kill {kill}: killed mid-run ({pending} left)"
        );
        let state = store.batch_run_state().await.unwrap().unwrap();
        assert_eq!(state.phase, BatchPhase::Scoring, "kill {kill}");
    }
    // The OS released the dead process's lock (PostgreSQL may take a moment).
    let mut resumed = None;
    for _ in 0..250 {
        let mut rng = StdRng::seed_from_u64(999);
        match robert_server::batch::run(&*store, &pop.world.keys, &pop.config(10), now(), &mut rng)
            .await
        {
            Ok(r) => {
                resumed = Some(r);
                break;
            }
            Err(BatchError::AlreadyRunning) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let resumed = resumed.expect("the lock of the killed run was released");
    assert!(resumed.resumed);
    assert_eq!(snapshot(&*store, &pop.everyone()).await, expected);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_batch_sqlite() {
    killed_batch_resumes_to_the_uninterrupted_state(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_batch_postgres() {
    killed_batch_resumes_to_the_uninterrupted_state(Backend::Postgres).await;
}
