//! Store tests: each test is written once and runs on SQLite and on
//! PostgreSQL (`ROBERT_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; the PostgreSQL variant
//! prints "skipped: no PostgreSQL" and passes when no server answers).

#![allow(clippy::unwrap_used, missing_docs)]

mod batch_ops;
mod contacts;
mod federation;
mod misc;
mod registrations;
mod shared;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::time::NtpSeconds;
use robert_store::{NewRegistration, NewRisk, RiskUpdate, StatusOutcome, StatusSuccess, Store};
// The tests below declare their SQLite and PostgreSQL variants with it.
use robert_core::time::Epoch;
use robert_store::both_backends;

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

/// Marks one registration at risk, as the batch does.
pub async fn set_risk(store: &dyn Store, id_a: IdA, risk: NewRisk) {
    let update = RiskUpdate {
        id_a,
        at_risk: Some(risk),
    };
    store.apply_risk_updates(&[update], 0).await.unwrap();
}

/// Records a successful `/status` of an existing registration.
pub async fn status(store: &dyn Store, id_a: IdA, epoch: u32, drift_secs: i64) -> StatusOutcome {
    let status = StatusSuccess {
        id_a,
        epoch: Epoch(epoch),
        drift_secs,
    };
    store.record_status_success(&status).await.unwrap().unwrap()
}
