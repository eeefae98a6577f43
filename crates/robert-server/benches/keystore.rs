//! Cost of the KEK and registration-key operations: in memory (the file
//! store) and in a SoftHSM2 token (the PKCS#11 store).
//!
//! ```text
//! cargo bench -p robert-server --bench keystore
//! ```
//!
//! Criterion groups (one operation per iteration, one thread):
//! `kek_wrap`, `kek_unwrap`, `register_keys` (ECDH + K_A/K_A_Tuples
//! derivation + two wraps: the key work of one `/register`) and
//! `status_keys` (two unwraps: the key work of one `/status`), each with a
//! `memory` and a `softhsm` variant. Then, printed: unwraps per second from
//! 1, 2 and 4 threads sharing one store (the session pool), for
//! `ROBERT_BENCH_SECS` (2) seconds each.
//!
//! Without SoftHSM (`apt-get install softhsm2`) only the memory variants
//! run. The bench runs itself again in a child process with its own
//! temporary `SOFTHSM2_CONF` and token.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use robert_core::keys::Kek;
use robert_core::registration::{ClientKeyAgreement, ServerKeyPair, parse_public_key};
use robert_server::keystore::pkcs11::{Pkcs11KeyStore, testing};
use robert_server::keystore::{KeyRing, SharedKek, SharedRegistrationKey};
use zeroize::Zeroizing;

fn backends() -> Vec<(&'static str, SharedKek, SharedRegistrationKey)> {
    let kek = Kek::from_bytes([0x42; 32]);
    let pair = ServerKeyPair::generate(&mut rand::rng());
    let mut out: Vec<(&'static str, SharedKek, SharedRegistrationKey)> =
        vec![("memory", Arc::new(kek), Arc::new(pair.clone()))];
    let Some(module) = testing::softhsm_module() else {
        eprintln!("SoftHSM2 not installed: memory only");
        return out;
    };
    let store = Pkcs11KeyStore::open(
        &testing::child_settings(module),
        Zeroizing::new(testing::USER_PIN.into()),
    )
    .unwrap();
    testing::import_fixed_keys(&store, &pair).unwrap();
    let ring = KeyRing::from_set(robert_server::keystore::KeyStore::load(&store).unwrap()).unwrap();
    out.push(("softhsm", ring.kek().clone(), ring.registration().clone()));
    out
}

fn benches(c: &mut Criterion, backends: &[(&'static str, SharedKek, SharedRegistrationKey)]) {
    let key = [7u8; 32];
    let app = ClientKeyAgreement::new(&mut rand::rng());
    let app_pk = parse_public_key(&app.public_key_base64()).unwrap();
    let mut g = c.benchmark_group("kek_wrap");
    for (name, kek, _) in backends {
        g.bench_function(*name, |b| b.iter(|| black_box(kek.wrap(&key).unwrap())));
    }
    g.finish();
    let mut g = c.benchmark_group("kek_unwrap");
    for (name, kek, _) in backends {
        let w = kek.wrap(&key).unwrap();
        g.bench_function(*name, |b| b.iter(|| black_box(kek.unwrap(&w).unwrap())));
    }
    g.finish();
    let mut g = c.benchmark_group("register_keys");
    for (name, kek, reg) in backends {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let k = reg.derive_client_keys(&app_pk).unwrap();
                black_box((
                    kek.wrap(k.key_a.expose_secret()).unwrap(),
                    kek.wrap(k.key_a_tuples.expose_secret()).unwrap(),
                ))
            });
        });
    }
    g.finish();
    let mut g = c.benchmark_group("status_keys");
    for (name, kek, _) in backends {
        let (wa, wt) = (kek.wrap(&key).unwrap(), kek.wrap(&[8; 32]).unwrap());
        g.bench_function(*name, |b| {
            b.iter(|| {
                black_box((
                    kek.unwrap_key_a(&wa).unwrap(),
                    kek.unwrap_key_a_tuples(&wt).unwrap(),
                ))
            });
        });
    }
    g.finish();
}

/// Unwraps per second from `threads` threads sharing one KEK.
fn parallel_unwraps(kek: &SharedKek, threads: usize, secs: u64) -> f64 {
    let w = kek.wrap(&[9; 32]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..64 {
                            black_box(kek.unwrap(&w).unwrap());
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    if let Some(status) = testing::rerun_with_softhsm("bench-keystore") {
        std::process::exit(status.code().unwrap_or(1));
    }
    let backends = backends();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &backends);
    c.final_summary();
    let secs = std::env::var("ROBERT_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    for (name, kek, _) in &backends {
        for threads in [1, 2, 4] {
            println!(
                "[{name}] {threads} thread(s): {:.0} unwraps/s",
                parallel_unwraps(kek, threads, secs)
            );
        }
    }
}
