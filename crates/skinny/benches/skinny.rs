//! Criterion benchmarks for the SKINNY-64 ciphers: single blocks (independent
//! calls, and decryption chained: each call fed by the last), batches of
//! 1024 blocks (reported per block) and key setup, on the detected backend
//! and, for SKINNY-64-192, on every available backend.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use skinny::cipher::KeyInit;
use skinny::{Backend, Skinny64_64, Skinny64_128, Skinny64_192};
use std::hint::black_box;

const BATCH: usize = 1024;

macro_rules! bench_variant {
    ($c:expr, $ty:ty, $name:literal, $len:literal) => {{
        let c = $c;
        let key = [0x5Au8; $len];
        let cipher = <$ty>::new(&key.into());
        let x = 0x0123_4567_89ab_cdefu64;
        let mut g = c.benchmark_group(concat!("single/", $name));
        g.throughput(Throughput::Elements(1));
        g.bench_function("encrypt", |b| b.iter(|| cipher.encrypt_u64(black_box(x))));
        g.bench_function("decrypt", |b| b.iter(|| cipher.decrypt_u64(black_box(x))));
        // Each call waits for the one before: the latency of one block, where
        // the calls above may overlap in a large out-of-order window.
        g.bench_function("decrypt-chained", |b| {
            let mut y = x;
            b.iter(|| {
                y = cipher.decrypt_u64(black_box(y));
                y
            })
        });
        g.finish();

        let mut g = c.benchmark_group(concat!("batch1024/", $name));
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut blocks: Vec<u64> = (0..BATCH as u64).collect();
        g.bench_function("encrypt", |b| {
            b.iter(|| cipher.encrypt_batch(black_box(&mut blocks)))
        });
        g.bench_function("decrypt", |b| {
            b.iter(|| cipher.decrypt_batch(black_box(&mut blocks)))
        });
        g.finish();

        let mut g = c.benchmark_group("key_setup");
        g.bench_function($name, |b| b.iter(|| <$ty>::new(black_box(&key.into()))));
        g.finish();
    }};
}

fn variants(c: &mut Criterion) {
    eprintln!("skinny backend: {}", skinny::backend_name());
    bench_variant!(&mut *c, Skinny64_64, "64-64", 8);
    bench_variant!(&mut *c, Skinny64_128, "64-128", 16);
    bench_variant!(&mut *c, Skinny64_192, "64-192", 24);
}

fn backends(c: &mut Criterion) {
    let key = [0x5Au8; 24];
    let x = 0x0123_4567_89ab_cdefu64;
    let mut single = c.benchmark_group("backend/64-192/single-decrypt");
    for backend in Backend::ALL {
        let Some(cipher) = Skinny64_192::new_with_backend(&key.into(), backend) else {
            continue;
        };
        single.bench_function(BenchmarkId::from_parameter(backend), |b| {
            b.iter(|| cipher.decrypt_u64(black_box(x)))
        });
    }
    single.finish();
    let mut batch = c.benchmark_group("backend/64-192/batch-decrypt");
    for len in [1usize, 16, 100, 256, BATCH] {
        batch.throughput(Throughput::Elements(len as u64));
        for backend in Backend::ALL {
            let Some(cipher) = Skinny64_192::new_with_backend(&key.into(), backend) else {
                continue;
            };
            let mut blocks: Vec<u64> = (0..len as u64).collect();
            batch.bench_function(BenchmarkId::new(backend.name(), len), |b| {
                b.iter(|| cipher.decrypt_batch(black_box(&mut blocks)))
            });
        }
    }
    batch.finish();
}

criterion_group!(benches, variants, backends);
criterion_main!(benches);
