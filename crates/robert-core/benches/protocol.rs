//! Criterion benchmarks of the protocol hot paths (issue targets in the README).
#![allow(clippy::unwrap_used, reason = "benchmark setup on fixed, valid inputs")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_core::contact::{ContactValidator, HelloPolicy, UploadedHello};
use robert_core::ebid::{self, Ebid};
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::hello::Hello;
use robert_core::id_a::IdA;
use robert_core::keys::{KeyA, KeyATuples, KeyG, KeyS};
use robert_core::time::{Epoch, ServiceStart};
use robert_core::tuples::{self, BundleSpan};

fn protocol(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let k_s = KeyS::generate(&mut rng);
    let k_g = KeyG::generate(&mut rng);
    let k_a = KeyA::from_bytes([7; 32]);
    let k_t = KeyATuples::from_bytes([8; 32]);
    let start = ServiceStart::REFERENCE;
    let epoch = Epoch(66_816);
    let id_a = IdA([1, 2, 3, 4, 5]);
    let ebid = Ebid::encrypt(&k_s, epoch, id_a).unwrap();
    let ecc = Ecc::encrypt(&k_g, &ebid, CountryCode::FRANCE);
    let hello = Hello::new(&k_a, ecc, ebid, start.epoch_start(epoch).time16()).to_bytes();

    c.bench_function("ebid_generate", |b| {
        b.iter(|| Ebid::encrypt(&k_s, black_box(epoch), black_box(id_a)))
    });
    c.bench_function("ecc_encode", |b| {
        b.iter(|| Ecc::encrypt(&k_g, black_box(&ebid), CountryCode::FRANCE))
    });
    // The three parts of a HELLO verification, to show where the time goes.
    c.bench_function("hello_verify_parts/ecc_decrypt", |b| {
        b.iter(|| black_box(ecc).decrypt(&k_g, black_box(&ebid)))
    });
    c.bench_function("hello_verify_parts/ebid_decrypt", |b| {
        b.iter(|| black_box(&ebid).decrypt(&k_s))
    });
    let parsed = Hello::from_bytes(&hello).unwrap();
    c.bench_function("hello_verify_parts/mac_verify", |b| {
        b.iter(|| black_box(&parsed).verify_mac(&k_a))
    });
    // The same two parts through the RustCrypto crates as before the
    // `crypto` module (HMAC state cloned per MAC; `aes` 0.9 dispatch), for a
    // side-by-side ratio in one run.
    let hmac_keyed = {
        use hmac::KeyInit as _;
        <hmac::Hmac<sha2::Sha256>>::new_from_slice(&[7; 32]).unwrap()
    };
    let mut input = [0u8; 12];
    input[0] = 1;
    input[1] = ecc.0;
    input[2..10].copy_from_slice(&ebid.0);
    c.bench_function("hello_verify_parts/mac_hmac_crate", |b| {
        use hmac::Mac as _;
        b.iter(|| {
            let mut m = hmac_keyed.clone();
            m.update(black_box(&input));
            m.finalize().into_bytes()[0]
        })
    });
    let aes_crate = {
        use aes::cipher::KeyInit as _;
        aes::Aes256::new_from_slice(k_g.expose_secret()).unwrap()
    };
    c.bench_function("hello_verify_parts/ecc_aes_crate", |b| {
        use aes::cipher::BlockCipherEncrypt as _;
        b.iter(|| {
            let mut block = aes::Block::default();
            block[..8].copy_from_slice(black_box(&ebid.0));
            aes_crate.encrypt_block(&mut block);
            block[0]
        })
    });
    c.bench_function("hello_verify", |b| {
        b.iter(|| {
            let h = Hello::from_bytes(black_box(&hello)).unwrap();
            h.ecc.decrypt(&k_g, &h.ebid) == CountryCode::FRANCE
                && h.ebid.decrypt(&k_s).epoch == epoch
                && h.verify_mac(&k_a)
        })
    });
    c.bench_function("hello_check", |b| {
        b.iter(|| {
            let h = Hello::from_bytes(black_box(&hello)).unwrap();
            let c = h.check(&k_g, &k_s, &k_a);
            c.country == CountryCode::FRANCE && c.content.epoch == epoch && c.mac_valid
        })
    });
    // The batch's per-HELLO work: a contact of 10 HELLOs from one sender,
    // checked one by one or with the MACs in interleaved lanes.
    let validator = ContactValidator {
        key_g: k_g.clone(),
        country: CountryCode::FRANCE,
        start,
        policy: HelloPolicy::default(),
    };
    let t0 = start.epoch_start(epoch);
    let hellos: Vec<UploadedHello> = (0..10u64)
        .map(|i| UploadedHello::received(&k_a, ecc, &ebid, t0.plus(i * 6), t0.plus(i * 6), -50))
        .collect();
    let who = validator
        .identify(&ebid, ecc, &hellos, |_| Some(ebid.decrypt(&k_s)))
        .unwrap();
    let mut g = c.benchmark_group("contact_10_hellos");
    g.throughput(Throughput::Elements(hellos.len() as u64));
    g.bench_function("verify_hello_each", |b| {
        b.iter(|| {
            black_box(&hellos)
                .iter()
                .filter(|h| validator.verify_hello(&who, &ebid, ecc, &k_a, h).is_ok())
                .count()
        })
    });
    g.bench_function("verify_hellos", |b| {
        b.iter(|| {
            validator
                .verify_hellos(&who, &ebid, ecc, &k_a, black_box(&hellos))
                .iter()
                .filter(|r| r.is_ok())
                .count()
        })
    });
    g.finish();
    let batch: Vec<Ebid> = (0..1024u32)
        .map(|i| Ebid::encrypt(&k_s, epoch, IdA::from_u64(u64::from(i))).unwrap())
        .collect();
    let mut g = c.benchmark_group("ebid_decrypt_batch");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("1024", |b| {
        b.iter(|| ebid::decrypt_batch(&k_s, black_box(&batch)))
    });
    g.finish();
    c.bench_function("bundle_4_days_384_tuples", |b| {
        let span = BundleSpan {
            from: epoch,
            days: 4,
        };
        b.iter(|| {
            tuples::generate(id_a, span, &start, &k_g, CountryCode::FRANCE, |_| {
                Some(&k_s)
            })
            .seal(&k_t, &mut rng)
        })
    });
    // Its two halves, to show where the time goes.
    let span = BundleSpan {
        from: epoch,
        days: 4,
    };
    let bundle = tuples::generate(id_a, span, &start, &k_g, CountryCode::FRANCE, |_| {
        Some(&k_s)
    });
    let mut g = c.benchmark_group("bundle_parts");
    g.bench_function("generate", |b| {
        b.iter(|| {
            tuples::generate(id_a, span, &start, &k_g, CountryCode::FRANCE, |_| {
                Some(&k_s)
            })
        })
    });
    g.bench_function("json", |b| b.iter(|| black_box(&bundle).to_json()));
    let mut rng = StdRng::seed_from_u64(2);
    g.bench_function("seal", |b| {
        b.iter(|| black_box(&bundle).seal(&k_t, &mut rng))
    });
    // The AES-256-GCM part of `seal` alone (RustCrypto's aes-gcm, in place on
    // a buffer of the bundle's JSON length, key set-up included as in `seal`).
    g.bench_function("aes_256_gcm", |b| {
        use aes_gcm::aead::{AeadInOut as _, KeyInit as _};
        let mut buf = bundle.to_json().into_bytes();
        b.iter(|| {
            let gcm = aes_gcm::Aes256Gcm::new(&[8u8; 32].into());
            gcm.encrypt_inout_detached(&[0u8; 12].into(), &[], buf.as_mut_slice().into())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = protocol
}
criterion_main!(benches);
