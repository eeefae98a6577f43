//! Criterion benchmarks of the phone's hot paths: recording a received
//! HELLO (what a simulator does millions of times), building the HELLO to
//! broadcast, persisting a day of HELLOs, selecting a report.
#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "benchmark setup on fixed, valid inputs"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_client::identity::Registration;
use robert_client::{
    Clock as _, DeviceModel, ManualClock, MemoryStorage, Phone, PhoneConfig, ReportBasis,
    Transport, TransportError, TransportErrorKind,
};
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::hello::Hello;
use robert_core::keys::{KeyA, KeyATuples};
use robert_core::registration::ServerKeyPair;
use robert_core::time::{Epoch, NtpSeconds};
use robert_core::tuples::{Tuple, TupleBundle};

/// No network: receiving needs none.
struct Offline;

impl Transport for Offline {
    async fn send(
        &self,
        _request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        Err(TransportError::new(TransportErrorKind::Connect, "offline"))
    }
}

const START: NtpSeconds = NtpSeconds(3_799_958_400);
/// 2022-04-28 09:45 UTC, start of epoch 66855.
const T0: NtpSeconds = NtpSeconds(3_799_958_400 + 66_855 * 900);

fn phone(clock: &ManualClock) -> Phone<Offline, MemoryStorage> {
    let key = ServerKeyPair::generate(&mut StdRng::seed_from_u64(1)).public_key();
    let mut config = PhoneConfig::new("http://bench", key, DeviceModel::android("SM-G973F"));
    // The pre-computed HELLOs are reused cyclically: accept any Time16.
    config.hello_time_tolerance_secs = 65_535;
    Phone::open(
        Arc::new(config),
        Offline,
        MemoryStorage::new(),
        Arc::new(clock.clone()),
        StdRng::seed_from_u64(2),
    )
    .unwrap()
}

/// HELLOs of `senders` phones at time `t`.
fn hellos(senders: u8, t: NtpSeconds) -> Vec<[u8; 16]> {
    let k_a = KeyA::from_bytes([3; 32]);
    (0..senders)
        .map(|i| Hello::new(&k_a, Ecc(i), Ebid([i; 8]), t.time16()).to_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    // Receive: 50 senders in range, one HELLO each per second (HELLOs
    // computed beforehand: the MAC is the sender's cost, not the receiver's).
    let clock = ManualClock::at_ntp(T0);
    let mut p = phone(&clock);
    let senders = hellos(50, T0);
    let mut i = 0usize;
    let mut group = c.benchmark_group("phone");
    group.throughput(Throughput::Elements(1));
    group.bench_function("receive_hello", |b| {
        b.iter(|| {
            if i.is_multiple_of(senders.len()) {
                clock.advance_secs(1);
            }
            let h = &senders[i % senders.len()];
            i += 1;
            p.receive_hello(black_box(h), -60, -30).unwrap();
        })
    });

    // Emit: the HELLO of the current epoch (a registration with 4 days of tuples).
    let tuples = (0..384u32)
        .map(|e| Tuple {
            epoch: Epoch(66_816 + e),
            ebid: Ebid((u64::from(e) * 0x9E37).to_be_bytes()),
            ecc: Ecc(1),
        })
        .collect();
    let reg = Registration::new(
        KeyA::from_bytes([1; 32]),
        KeyATuples::from_bytes([2; 32]),
        START,
        START,
        TupleBundle { tuples },
    );
    group.bench_function("hello", |b| b.iter(|| reg.hello(black_box(T0)).unwrap()));

    // Persist one day of 20 000 HELLOs (encode + write to memory storage).
    let clock = ManualClock::at_ntp(T0);
    let mut p = phone(&clock);
    for _ in 0..400 {
        for h in hellos(50, clock.now_ntp()) {
            p.receive_hello(&h, -60, -30).unwrap();
        }
        clock.advance_secs(1);
    }
    group.throughput(Throughput::Elements(20_000));
    group.bench_function("persist_day_20000", |b| {
        b.iter(|| {
            // Mark the day dirty again with one more HELLO each time.
            clock.advance_secs(1);
            let h = hellos(1, clock.now_ntp());
            p.receive_hello(&h[0], -60, -30).unwrap();
            p.persist().unwrap()
        })
    });
    group.bench_function("prepare_report_20000", |b| {
        b.iter(|| p.prepare_report(black_box(ReportBasis::Unknown)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
