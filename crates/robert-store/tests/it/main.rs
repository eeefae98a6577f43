//! Store tests: each test is written once and runs on SQLite and on
//! PostgreSQL (`ROBERT_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the PostgreSQL variant
//! prints "skipped: no PostgreSQL" and passes when no server answers).

#![allow(clippy::unwrap_used, missing_docs)]

mod batch_ops;
mod contacts;
mod misc;
mod registrations;

use std::future::Future;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::time::NtpSeconds;
use robert_store::testing::TestDatabase;
use robert_store::{Backend, NewRegistration, Store};

/// Runs a test body on a fresh database of `backend`.
pub async fn run<F, Fut>(label: &str, backend: Backend, body: F)
where
    F: FnOnce(Arc<dyn Store>, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(db) = TestDatabase::of(backend, label).await.unwrap() else {
        return;
    };
    body(db.store(), db.url().to_owned()).await;
    db.cleanup().await;
}

/// Declares `sqlite` and `postgres` variants of an async test function
/// `async fn name(store: Arc<dyn Store>, url: String)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::run(stringify!($name), robert_store::Backend::Sqlite, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::run(stringify!($name), robert_store::Backend::Postgres, super::$name).await;
            }
        }
    )*};
}

/// 2023-01-13T10:00:00Z in NTP seconds.
pub const NOW: NtpSeconds = NtpSeconds(3_882_556_800 + 10 * 3600);

/// A registration with random (but well-formed) wrapped keys.
pub fn new_registration(rng: &mut StdRng, id: u64) -> NewRegistration {
    let mut k = [0u8; 60];
    rng.fill_bytes(&mut k);
    let mut t = [0u8; 60];
    rng.fill_bytes(&mut t);
    NewRegistration {
        id_a: IdA::from_u64(id),
        key_a: WrappedKey(k),
        key_a_tuples: WrappedKey(t),
        created_at: NOW,
    }
}

pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x5EED)
}
