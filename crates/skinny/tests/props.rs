//! Property tests: every backend against the portable one, batches against
//! single blocks, decryption against encryption, and the generic `cipher`
//! multi-block API against single blocks.

use proptest::prelude::*;
use skinny::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use skinny::{Backend, Skinny64_64, Skinny64_128, Skinny64_192};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

/// Backends this machine runs, each checked to really be what it claims.
fn available<C>(
    new: impl Fn(Backend) -> Option<C>,
    backend: impl Fn(&C) -> Backend,
) -> Vec<(Backend, C)> {
    let list: Vec<_> = Backend::ALL
        .into_iter()
        .filter_map(|b| {
            let c = new(b)?;
            assert_eq!(backend(&c), b);
            Some((b, c))
        })
        .collect();
    assert_eq!(
        list[0].0,
        Backend::Portable,
        "the portable backend is always available"
    );
    list
}

macro_rules! variant_props {
    ($module:ident, $ty:ty, $len:literal) => {
        mod $module {
            use super::*;

            fn ciphers(key: &[u8; $len]) -> Vec<(Backend, $ty)> {
                available(|b| <$ty>::new_with_backend(key.into(), b), <$ty>::backend)
            }

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn decrypt_inverts_encrypt(key in any::<[u8; $len]>(), x in any::<u64>()) {
                    for (_, c) in ciphers(&key) {
                        prop_assert_eq!(c.decrypt_u64(c.encrypt_u64(x)), x);
                        prop_assert_eq!(c.encrypt_u64(c.decrypt_u64(x)), x);
                        let b = x.to_be_bytes();
                        prop_assert_eq!(c.decrypt_bytes(c.encrypt_bytes(b)), b);
                    }
                }

                #[test]
                fn every_backend_matches_portable_on_single_blocks(
                    key in any::<[u8; $len]>(),
                    xs in proptest::collection::vec(any::<u64>(), 1..8),
                ) {
                    let list = ciphers(&key);
                    let portable = &list[0].1;
                    for (backend, c) in &list {
                        for &x in &xs {
                            prop_assert_eq!(c.encrypt_u64_traced(x), (portable.encrypt_u64(x), *backend));
                            prop_assert_eq!(c.decrypt_u64_traced(x), (portable.decrypt_u64(x), *backend));
                        }
                    }
                }

                #[test]
                fn batch_equals_single_on_every_backend(
                    key in any::<[u8; $len]>(),
                    blocks in proptest::collection::vec(any::<u64>(), 0..=600),
                ) {
                    let list = ciphers(&key);
                    let portable = &list[0].1;
                    let enc: Vec<u64> = blocks.iter().map(|&x| portable.encrypt_u64(x)).collect();
                    let dec: Vec<u64> = blocks.iter().map(|&x| portable.decrypt_u64(x)).collect();
                    for (backend, c) in &list {
                        let mut v = blocks.clone();
                        prop_assert_eq!(c.encrypt_batch_traced(&mut v), *backend);
                        prop_assert_eq!(&v, &enc, "encrypt_batch on {}", backend);
                        let mut v = blocks.clone();
                        prop_assert_eq!(c.decrypt_batch_traced(&mut v), *backend);
                        prop_assert_eq!(&v, &dec, "decrypt_batch on {}", backend);

                        let mut bytes: Vec<[u8; 8]> = blocks.iter().map(|x| x.to_be_bytes()).collect();
                        c.encrypt_batch_bytes(&mut bytes);
                        prop_assert!(bytes.iter().map(|b| u64::from_be_bytes(*b)).eq(enc.iter().copied()));
                        c.decrypt_batch_bytes(&mut bytes);
                        prop_assert!(bytes.iter().map(|b| u64::from_be_bytes(*b)).eq(blocks.iter().copied()));
                    }
                }

                #[test]
                fn generic_multi_block_api_equals_single(
                    key in any::<[u8; $len]>(),
                    blocks in proptest::collection::vec(any::<u64>(), 0..=300),
                ) {
                    for (_, c) in ciphers(&key) {
                        let orig: Vec<Block<$ty>> = blocks.iter().map(|x| x.to_be_bytes().into()).collect();
                        let want: Vec<Block<$ty>> =
                            blocks.iter().map(|&x| c.encrypt_u64(x).to_be_bytes().into()).collect();

                        let mut v = orig.clone();
                        c.encrypt_blocks(&mut v);
                        prop_assert_eq!(&v, &want);
                        let mut out = vec![Block::<$ty>::default(); orig.len()];
                        c.decrypt_blocks_b2b(&v, &mut out).unwrap();
                        prop_assert_eq!(&out, &orig);
                        c.encrypt_blocks_b2b(&orig, &mut out).unwrap();
                        prop_assert_eq!(&out, &want);
                        c.decrypt_blocks(&mut v);
                        prop_assert_eq!(&v, &orig);
                    }
                }
            }
        }
    };
}

variant_props!(skinny64_64, Skinny64_64, 8);
variant_props!(skinny64_128, Skinny64_128, 16);
variant_props!(skinny64_192, Skinny64_192, 24);

/// A backend the CPU supports must be available, so a broken detection or a
/// backend compiled out by mistake cannot make the tests above vacuous.
#[test]
fn detection_agrees_with_std() {
    let accelerated = cfg!(all(
        target_arch = "x86_64",
        not(skinny_backend = "portable")
    ));
    #[cfg(target_arch = "x86_64")]
    {
        let expect =
            |b: Backend, has: bool| assert_eq!(b.is_available(), accelerated && has, "{b}");
        expect(Backend::Ssse3, std::arch::is_x86_feature_detected!("ssse3"));
        expect(Backend::Avx2, std::arch::is_x86_feature_detected!("avx2"));
        expect(
            Backend::Avx512,
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512bw"),
        );
    }
    if !accelerated {
        assert_eq!(Backend::detect(), Backend::Portable);
    }
    assert!(Backend::Portable.is_available());
    assert!(Backend::detect().is_available());
    assert_eq!(skinny::backend_name(), Backend::detect().name());
    let c = Skinny64_192::new(&[0u8; 24].into());
    assert_eq!(c.backend(), Backend::detect());
}

#[test]
fn debug_never_prints_key_material() {
    let c = Skinny64_192::new(&[0xAB; 24].into());
    assert_eq!(format!("{c:?}"), "Skinny64_192 { .. }");
    assert_eq!(
        format!("{:?}", Skinny64_64::new(&[1; 8].into())),
        "Skinny64_64 { .. }"
    );
}

/// Every tail strategy (single blocks, small padded chunk, full padded chunk)
/// of every backend, at the lengths around each chunk boundary.
#[test]
fn batch_lengths_around_chunk_boundaries() {
    let key = [0x3Cu8; 24];
    let list = available(
        |b| Skinny64_192::new_with_backend(&key.into(), b),
        Skinny64_192::backend,
    );
    let portable = &list[0].1;
    // 0..=20: every short tail, including the four-blocks-per-call ones.
    let mut lengths: Vec<usize> = (0..=20).collect();
    // 256 and 512: one and two pairs of 128-block chunks (AVX-512 decrypts
    // chunks in pairs), then a lone chunk and a tail.
    for base in [32usize, 64, 128, 256, 512] {
        lengths.extend((base.saturating_sub(2)..=base + 6).filter(|&n| n > 0));
    }
    lengths.extend([100, 200, 300, 383, 384, 385, 640, 1157]);
    for n in lengths {
        let blocks: Vec<u64> = (0..n as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5)
            .collect();
        let enc: Vec<u64> = blocks.iter().map(|&x| portable.encrypt_u64(x)).collect();
        for (backend, c) in &list {
            let mut v = blocks.clone();
            assert_eq!(c.encrypt_batch_traced(&mut v), *backend);
            assert_eq!(v, enc, "encrypt_batch of {n} on {backend}");
            assert_eq!(c.decrypt_batch_traced(&mut v), *backend);
            assert_eq!(v, blocks, "decrypt_batch of {n} on {backend}");
        }
    }
}

/// The short-tail code of SKINNY-64-128 (36 rounds: the other output
/// layout of the single-block code) on every backend.
#[test]
fn short_batches_of_36_rounds() {
    let key = [0xC3u8; 16];
    let list = available(
        |b| Skinny64_128::new_with_backend(&key.into(), b),
        Skinny64_128::backend,
    );
    let portable = &list[0].1;
    for n in 0..=20u64 {
        let blocks: Vec<u64> = (0..n)
            .map(|i| i.wrapping_mul(0xD1B5_4A32_D192_ED03))
            .collect();
        let enc: Vec<u64> = blocks.iter().map(|&x| portable.encrypt_u64(x)).collect();
        for (backend, c) in &list {
            let mut v = blocks.clone();
            c.encrypt_batch(&mut v);
            assert_eq!(v, enc, "encrypt_batch of {n} on {backend}");
            c.decrypt_batch(&mut v);
            assert_eq!(v, blocks, "decrypt_batch of {n} on {backend}");
        }
    }
}

/// `decrypt_rounds`, stepped round by round from a caller's own
/// `#[target_feature]` function (SSSE3 rounds, and AVX-512 rounds where the
/// CPU has them), equals `decrypt_u64` for every key size and SIMD back end;
/// the portable back end offers none.
#[cfg(target_arch = "x86_64")]
mod decrypt_rounds {
    use super::*;
    use skinny::DecryptRounds;

    #[target_feature(enable = "ssse3")]
    fn stepped(d: &DecryptRounds<'_>, block: u64) -> u64 {
        let mut s = d.start(block);
        for r in 0..d.rounds() {
            s = d.round(s, r);
        }
        d.finish(s)
    }

    #[target_feature(enable = "avx512f,avx512vl")]
    fn stepped_avx512(d: &DecryptRounds<'_>, block: u64) -> u64 {
        let mut s = d.start(block);
        for r in 0..d.rounds() {
            s = d.round_avx512(s, r);
        }
        d.finish(s)
    }

    #[allow(
        unsafe_code,
        reason = "calls a #[target_feature] function after detection"
    )]
    fn check(d: Option<DecryptRounds<'_>>, backend: Backend, block: u64, want: u64) {
        match d {
            None => assert_eq!(backend, Backend::Portable),
            Some(d) => {
                assert_ne!(backend, Backend::Portable);
                assert!(std::arch::is_x86_feature_detected!("ssse3"));
                // SAFETY: checked just above: this CPU has SSSE3.
                let got = unsafe { stepped(&d, block) };
                assert_eq!(got, want, "{backend}");
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    // SAFETY: checked just above: this CPU has AVX-512 F and VL.
                    let got = unsafe { stepped_avx512(&d, block) };
                    assert_eq!(got, want, "{backend}, AVX-512 rounds");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn equals_decrypt_u64(k in any::<[u8; 24]>(), block in any::<u64>()) {
            for (b, c) in available(|b| Skinny64_192::new_with_backend(&k.into(), b), Skinny64_192::backend) {
                check(c.decrypt_rounds(), b, block, c.decrypt_u64(block));
                prop_assert_eq!(c.decrypt_rounds().map(|d| d.rounds()).unwrap_or(40), 40);
            }
            for (b, c) in available(|b| Skinny64_128::new_with_backend(&<[u8; 16]>::try_from(&k[..16]).unwrap().into(), b), Skinny64_128::backend) {
                check(c.decrypt_rounds(), b, block, c.decrypt_u64(block));
            }
            for (b, c) in available(|b| Skinny64_64::new_with_backend(&<[u8; 8]>::try_from(&k[..8]).unwrap().into(), b), Skinny64_64::backend) {
                check(c.decrypt_rounds(), b, block, c.decrypt_u64(block));
            }
        }
    }
}
