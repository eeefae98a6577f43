//! Risk batch throughput.
//!
//! ```text
//! cargo bench -p robert-server --bench batch
//! ```
//!
//! 1. Criterion: the CPU stages alone (identify + verify/score) on a chunk of
//!    10 000 contacts × 10 HELLOs, with 1 and 2 worker threads.
//! 2. End to end (printed, not criterion): a store seeded with
//!    `ROBERT_BENCH_REGISTRATIONS` registrations (1 000 000) and
//!    `ROBERT_BENCH_HELLOS` uploaded HELLOs (1 000 000) in contacts of
//!    `ROBERT_BENCH_HELLOS_PER_CONTACT` (10), then one batch run; prints the
//!    batch report (HELLOs per second of the scoring step, step timings).
//!    `ROBERT_BENCH_CHUNK_CONTACTS` sets the batch's contacts per chunk
//!    (unset: the store's default, 20 000 on SQLite, 10 000 on PostgreSQL).
//!    `ROBERT_BENCH_BACKEND=sqlite|postgres|both` (sqlite) picks the store;
//!    `ROBERT_BENCH_E2E=0` skips it.
//!
//! `ROBERT_BENCH_KEK=softhsm` runs both with the KEK in a SoftHSM2 token
//! (the PKCS#11 store; the bench runs itself again with its own temporary
//! token): every K_A the batch unwraps goes through the token.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use robert_core::contact::UploadedHello;
use robert_core::ebid::Ebid;
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::id_a::IdA;
use robert_core::keys::{Kek, KeyA, KeyG, KeyS, WrappedKey};
use robert_core::time::{NtpSeconds, ServiceStart, UtcDate};
use robert_server::batch::{
    BatchConfig, BatchKeys, BatchProgress, Validation, identify, verify_and_score,
};
use robert_server::keystore::SharedKek;
use robert_store::testing::TestDatabase;
use robert_store::{Backend, ContactId, NewRegistration, StoredContact, UploadedContact};

/// 2023-01-13T10:00:00Z.
const NOW: NtpSeconds = NtpSeconds(3_882_556_800 + 10 * 3600);

struct World {
    keys: BatchKeys,
    /// The KEK in memory, for seeding (`keys.kek` may be its token copy).
    seal: Kek,
    start: ServiceStart,
    rng: StdRng,
}

impl World {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(1);
        let today = UtcDate::of(NOW);
        let day_keys: BTreeMap<_, _> = (-5..=1)
            .map(|d| (today.add_days(d), KeyS::generate(&mut rng)))
            .collect();
        let seal = Kek::generate(&mut rng);
        let keys = BatchKeys {
            kek: kek_under_test(&seal),
            key_g: KeyG::generate(&mut rng),
            day_keys,
        };
        Self {
            keys,
            seal,
            start: ServiceStart::REFERENCE,
            rng,
        }
    }

    /// Registration `i`: a spread-out ID_A and a random K_A.
    fn registration(&mut self, i: u64) -> (NewRegistration, [u8; 32]) {
        let id_a = IdA::from_u64((i * 1_099_511 + 7) % (1 << 40));
        let k: [u8; 32] = self.rng.random();
        let t: [u8; 32] = self.rng.random();
        let reg = NewRegistration {
            id_a,
            key_a: self.seal.wrap(&k, &mut self.rng),
            key_a_tuples: self.seal.wrap(&t, &mut self.rng),
            created_at: NOW,
        };
        (reg, k)
    }

    /// A contact of `n` HELLOs from `sender`, 6 s apart, in the last 2 days.
    fn contact(&mut self, sender: IdA, key_a: &KeyA, n: usize) -> UploadedContact {
        let t0 = NOW.minus(self.rng.random_range(3600..2 * 86_400));
        let epoch = self.start.epoch_at(t0);
        let ebid = Ebid::encrypt(
            &self.keys.day_keys[&self.start.day_of(epoch)],
            epoch,
            sender,
        )
        .unwrap();
        let ecc = Ecc::encrypt(&self.keys.key_g, &ebid, CountryCode::FRANCE);
        let t0 = self.start.epoch_start(epoch);
        let hellos = (0..n as u64)
            .map(|k| {
                let t = t0.plus(k * 6 % 900);
                UploadedHello::received(key_a, ecc, &ebid, t, t, self.rng.random_range(-80..=-30))
            })
            .collect();
        UploadedContact { ebid, ecc, hellos }
    }
}

fn cpu_stages(c: &mut Criterion) {
    let mut w = World::new();
    let regs: Vec<_> = (0..20_000).map(|i| w.registration(i)).collect();
    let mut wrapped: HashMap<IdA, WrappedKey> = HashMap::new();
    let contacts: Vec<StoredContact> = (0..10_000)
        .map(|i| {
            let (reg, k) = &regs[w.rng.random_range(0..regs.len())];
            // The chunk's senders only, as the batch fetches them.
            wrapped.insert(reg.id_a, reg.key_a.clone());
            let u = w.contact(reg.id_a, &KeyA::from_bytes(*k), 10);
            StoredContact {
                id: ContactId(i),
                received_at: NOW,
                ebid: u.ebid,
                ecc: u.ecc,
                hellos: u.hellos,
                malformed: false,
            }
        })
        .collect();
    let hellos: u64 = contacts.iter().map(|c| c.hellos.len() as u64).sum();
    let mut group = c.benchmark_group("batch_cpu");
    group.throughput(Throughput::Elements(hellos));
    group.sample_size(20);
    for threads in [1usize, 2] {
        let ctx = Validation::for_bench(&w.keys, threads).unwrap();
        group.bench_with_input(
            BenchmarkId::new(
                if softhsm() {
                    "identify_verify_score_softhsm"
                } else {
                    "identify_verify_score"
                },
                threads,
            ),
            &threads,
            |b, _| {
                b.iter_batched(
                    || contacts.clone(),
                    |chunk| {
                        let identified = identify(&ctx, chunk);
                        let out = verify_and_score(&ctx, identified, &wrapped).unwrap();
                        assert_eq!(out.hellos_valid, hellos);
                        black_box(out)
                    },
                    criterion::BatchSize::LargeInput,
                );
            },
        );
    }
    group.finish();
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn end_to_end(backend: Backend) {
    let registrations = env_u64("ROBERT_BENCH_REGISTRATIONS", 1_000_000);
    let total_hellos = env_u64("ROBERT_BENCH_HELLOS", 1_000_000);
    let per_contact = env_u64("ROBERT_BENCH_HELLOS_PER_CONTACT", 10).max(1);
    let Some(db) = TestDatabase::of(backend, "bench").await.unwrap() else {
        return;
    };
    let store = db.store();
    let mut w = World::new();

    let t = Instant::now();
    let mut keys = Vec::with_capacity(registrations as usize);
    let mut batch = Vec::with_capacity(50_000);
    for i in 0..registrations {
        let (reg, k) = w.registration(i);
        keys.push((reg.id_a, k));
        batch.push(reg);
        if batch.len() == 50_000 {
            store.insert_registrations_bulk(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.insert_registrations_bulk(&batch).await.unwrap();
    eprintln!(
        "[{backend}] seeded {registrations} registrations in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let contacts = total_hellos / per_contact;
    let mut report = Vec::with_capacity(1000);
    for _ in 0..contacts {
        let (id, k) = keys[w.rng.random_range(0..keys.len())];
        report.push(w.contact(id, &KeyA::from_bytes(k), per_contact as usize));
        if report.len() == 1000 {
            store.insert_contacts(&report, NOW).await.unwrap();
            report.clear();
        }
    }
    store.insert_contacts(&report, NOW).await.unwrap();
    eprintln!(
        "[{backend}] uploaded {contacts} contacts × {per_contact} HELLOs in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let config = BatchConfig {
        chunk_contacts: std::env::var("ROBERT_BENCH_CHUNK_CONTACTS")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..BatchConfig::default()
    };
    // CPU time at the start of the scoring step and after each chunk's commit.
    let (mut scoring_start, mut scoring_end) = (None, None);
    let t = Instant::now();
    let out =
        robert_server::batch::run_with(&*store, &w.keys, &config, NOW, [3; 32], &mut |event| {
            match event {
                BatchProgress::PurgedAndReset => scoring_start = CpuTimes::now(),
                BatchProgress::ChunkCommitted { .. } => scoring_end = CpuTimes::now(),
                _ => {}
            }
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    if let (Some(before), Some(after)) = (scoring_start, scoring_end) {
        let per_million = 1e6 / out.hellos_processed.max(1) as f64;
        let ms = |s: f64| s * 1e3 * per_million;
        let cpu = after.minus(&before);
        println!(
            "batch/{backend} scoring step, CPU per million HELLOs: {:.0} ms in all = \
             SQLite writer thread {:.0} + reader threads {:.0} + the rest {:.0} \
             (tokio, validation, scoring); {:.2} cores busy on average",
            ms(cpu.process),
            ms(cpu.writer),
            ms(cpu.readers),
            ms(cpu.process - cpu.writer - cpu.readers),
            cpu.process / (out.scoring_ms.max(1) as f64 / 1e3),
        );
    }
    assert_eq!(out.hellos_valid, contacts * per_contact);
    eprintln!(
        "[{backend}] batch run {secs:.2} s: {}",
        serde_json::to_string_pretty(&out).unwrap()
    );
    println!(
        "batch/{backend}{}: {} HELLOs validated+scored in {:.2} s (scoring step) = {:.0} HELLOs/s; whole run {secs:.2} s",
        if softhsm() { "+softhsm" } else { "" },
        out.hellos_processed,
        out.scoring_ms as f64 / 1000.0,
        out.hellos_per_second
    );
    db.cleanup().await;
}

/// CPU time the process has used, in seconds (Linux: `/proc`): in all
/// (every thread, living or gone), and on SQLite's connection threads,
/// which run every statement (the store names them).
#[derive(Clone, Copy, Debug)]
struct CpuTimes {
    process: f64,
    writer: f64,
    readers: f64,
}

impl CpuTimes {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After "pid (comm) ": state is field 3; utime and stime are 14 and 15.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let (mut writer, mut readers) = (0.0, 0.0);
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let read = |name: &str| std::fs::read_to_string(task.path().join(name));
            let (Ok(comm), Ok(sched)) = (read("comm"), read("schedstat")) else {
                continue;
            };
            // schedstat: nanoseconds on a CPU, first.
            let ns: f64 = sched.split(' ').next()?.parse().ok()?;
            if comm.trim_end() == robert_store::SQLITE_WRITER_THREAD {
                writer += ns / 1e9;
            } else if comm.starts_with(robert_store::SQLITE_READER_THREAD) {
                readers += ns / 1e9;
            }
        }
        // USER_HZ: /proc reports ticks of 1/100 s on Linux.
        Some(Self {
            process: ticks / 100.0,
            writer,
            readers,
        })
    }

    fn minus(&self, earlier: &Self) -> Self {
        Self {
            process: self.process - earlier.process,
            writer: self.writer - earlier.writer,
            readers: self.readers - earlier.readers,
        }
    }
}

fn softhsm() -> bool {
    std::env::var("ROBERT_BENCH_KEK").is_ok_and(|v| v == "softhsm")
}

/// `seal` itself, or (`ROBERT_BENCH_KEK=softhsm`) the same KEK imported
/// into the SoftHSM token.
fn kek_under_test(seal: &Kek) -> SharedKek {
    if !softhsm() {
        return Arc::new(seal.clone());
    }
    use robert_server::keystore::KeyStore as _;
    use robert_server::keystore::pkcs11::{Pkcs11KeyStore, testing};
    let module = testing::softhsm_module().expect("ROBERT_BENCH_KEK=softhsm needs SoftHSM2");
    let store = Pkcs11KeyStore::open(
        &testing::child_settings(module),
        zeroize::Zeroizing::new(testing::USER_PIN.into()),
    )
    .unwrap();
    let set = robert_server::keystore::KeySet {
        kek: Some(Arc::new(seal.clone())),
        ..Default::default()
    };
    store.save(&set).unwrap();
    let kek = store.load().unwrap().kek.unwrap();
    assert!(kek.in_memory().is_none());
    kek
}

fn main() {
    if softhsm()
        && let Some(status) =
            robert_server::keystore::pkcs11::testing::rerun_with_softhsm("bench-batch")
    {
        std::process::exit(status.code().unwrap_or(1));
    }
    let mut c = Criterion::default().configure_from_args();
    cpu_stages(&mut c);
    c.final_summary();
    // `cargo test --benches` runs this binary without `--bench`: skip the long part.
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching || std::env::var("ROBERT_BENCH_E2E").is_ok_and(|v| v == "0") {
        return;
    }
    robert_store::testing::bench_each_backend(end_to_end);
}
