//! The hardware's side of the README's "limit on this CPU" column: the
//! latency of the instructions on the hot paths' dependency chains, as
//! chains of 100 dependent instructions per iteration, each iteration fed by
//! the last so that the CPU cannot overlap them (x86-64 only; each chain
//! skipped where the CPU lacks its feature).
//!
//! `cargo bench -p robert-core --bench latency`; divide the time per
//! iteration by 100 for one instruction, and by the clock period for cycles.
//! `skinny_round_x40` is the single-block SKINNY kernel's round chain
//! (`pshufb` → `vpternlogq` → `pshufb`) forty times: one block's floor.
//!
//! One probe measures throughput rather than latency:
//! `bitsliced_round_mix_x40` issues the instruction mix of the bitsliced
//! AVX-512 kernel's decryption round (skinny's `decrypt_round`: 32 logic
//! operations, here all `vpternlogq`, 8 `vprorq`, 4 `vpshufd`, 512-bit words)
//! forty times over sixteen words, each operation waiting only on results
//! two or more operations old (most eleven or more): what the core can issue
//! of one 128-block chunk's forty rounds when no dependency holds it back.
//! Divided by 128, the per-block floor of that kernel's rounds on this CPU.

use criterion::{Criterion, criterion_group, criterion_main};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "calls #[target_feature] chains after detection")]
mod chains {
    use core::arch::x86_64::*;
    use std::hint::black_box;

    /// Repeats `$body` ten times, ten times.
    macro_rules! x100 {
        ($body:expr) => {{
            for _ in 0..10 {
                $body;
                $body;
                $body;
                $body;
                $body;
                $body;
                $body;
                $body;
                $body;
                $body;
            }
        }};
    }

    #[target_feature(enable = "ssse3")]
    pub fn pshufb(x: __m128i, t: __m128i) -> __m128i {
        let mut x = x;
        x100!(x = _mm_shuffle_epi8(t, x));
        x
    }

    #[target_feature(enable = "avx512f,avx512vl")]
    pub fn vpternlogq(x: __m128i, k: __m128i, t: __m128i) -> __m128i {
        let mut x = x;
        x100!(x = _mm_ternarylogic_epi64::<0x96>(x, k, t));
        x
    }

    #[target_feature(enable = "aes")]
    pub fn aesenc(x: __m128i, k: __m128i) -> __m128i {
        let mut x = x;
        x100!(x = _mm_aesenc_si128(x, k));
        x
    }

    #[target_feature(enable = "sha,sse2")]
    pub fn sha256rnds2(x: __m128i, y: __m128i, k: __m128i) -> __m128i {
        let mut x = x;
        x100!(x = _mm_sha256rnds2_epu32(x, y, k));
        x
    }

    #[target_feature(enable = "ssse3,avx512f,avx512vl")]
    pub fn skinny_round_x40(x: __m128i, t: __m128i, k: __m128i) -> __m128i {
        let mut x = x;
        for _ in 0..40 {
            x = _mm_shuffle_epi8(x, t);
            x = _mm_ternarylogic_epi64::<0x96>(x, k, t);
            x = _mm_shuffle_epi8(t, x);
        }
        x
    }

    /// One round's worth of the bitsliced kernel's instruction mix on `s`:
    /// four groups of eight `vpternlogq`, two `vprorq` and one `vpshufd`,
    /// every operation writing the word after the last one written.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn round_mix(s: &mut [__m512i; 16], k: __m512i) {
        let mut j = 0;
        for _ in 0..4 {
            for _ in 0..8 {
                s[j] = _mm512_ternarylogic_epi64::<0x96>(s[j], s[(j + 5) % 16], k);
                j = (j + 1) % 16;
            }
            // Each permutation reads a `vpternlogq` result (of the last
            // eight), so that no two permutations fold into one.
            for _ in 0..2 {
                s[j] = _mm512_ror_epi64::<16>(s[(j + 14) % 16]);
                j = (j + 1) % 16;
            }
            s[j] = _mm512_shuffle_epi32::<0b10_11_00_01>(s[(j + 11) % 16]);
            j = (j + 1) % 16;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub fn bitsliced_round_mix_x40(s: &mut [__m512i; 16], k: __m512i) {
        for _ in 0..40 {
            round_mix(s, k);
        }
    }

    fn v(b: u8) -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        black_box(unsafe { _mm_set1_epi8(b as i8) })
    }

    pub fn bench(c: &mut criterion::Criterion) {
        let has = |f: &str| match f {
            "ssse3" => is_x86_feature_detected!("ssse3"),
            "avx512" => is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl"),
            "aes" => is_x86_feature_detected!("aes"),
            "sha" => is_x86_feature_detected!("sha"),
            _ => false,
        };
        let mut g = c.benchmark_group("latency");
        if has("ssse3") {
            let (mut x, t) = (v(3), v(7));
            g.bench_function("pshufb_x100", |b| {
                b.iter(|| {
                    // SAFETY: SSSE3 detected above.
                    x = unsafe { pshufb(x, t) };
                    x
                })
            });
        }
        if has("avx512") {
            let (mut x, k, t) = (v(3), v(9), v(7));
            g.bench_function("vpternlogq_x100", |b| {
                b.iter(|| {
                    // SAFETY: AVX-512 F and VL detected above.
                    x = unsafe { vpternlogq(x, k, t) };
                    x
                })
            });
            g.bench_function("skinny_round_x40", |b| {
                b.iter(|| {
                    // SAFETY: SSSE3 (implied) and AVX-512 F and VL detected above.
                    x = unsafe { skinny_round_x40(x, t, k) };
                    x
                })
            });
        }
        if has("avx512") {
            // SAFETY: AVX-512 F detected above.
            let k = black_box(unsafe { _mm512_set1_epi64(0x5A5A) });
            // SAFETY: as above.
            let mut s: [__m512i; 16] =
                core::array::from_fn(|i| unsafe { _mm512_set1_epi64(i as i64) });
            g.bench_function("bitsliced_round_mix_x40", |b| {
                b.iter(|| {
                    // SAFETY: AVX-512 F detected above.
                    unsafe { bitsliced_round_mix_x40(&mut s, k) };
                    black_box(&mut s);
                })
            });
        }
        if has("aes") {
            let (mut x, k) = (v(3), v(9));
            g.bench_function("aesenc_x100", |b| {
                b.iter(|| {
                    // SAFETY: AES-NI detected above.
                    x = unsafe { aesenc(x, k) };
                    x
                })
            });
        }
        if has("sha") {
            let (mut x, y, k) = (v(1), v(2), v(3));
            g.bench_function("sha256rnds2_x100", |b| {
                b.iter(|| {
                    // SAFETY: SHA-NI detected above (SSE2 is x86-64's baseline).
                    x = unsafe { sha256rnds2(x, y, k) };
                    x
                })
            });
        }
        g.finish();
    }
}

fn latency(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    chains::bench(c);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = c;
}

criterion_group!(benches, latency);
criterion_main!(benches);
