//! x86-64 SIMD backends: SSSE3, AVX2 and AVX-512.
//!
//! All `unsafe` of the crate lives here. The SIMD functions are safe
//! `#[target_feature]` functions (Rust >= 1.87 lets them call intrinsics
//! safely); the only `unsafe` operations are
//!
//! * calling such a function from [`Cpu`] methods, which is sound because a
//!   [`Cpu`] value can only be created by [`Cpu::new`] after runtime
//!   detection confirmed the features, and
//! * unaligned vector loads and stores from and to `[u64; N]` arrays whose
//!   bounds are checked by the surrounding slicing.
//!
//! # Single block (one cell per byte)
//!
//! The state is 16 bytes of an XMM register, one cell per byte (low nibble).
//! A round is `y = pshufb(S, x)` then `x' = y ^ K ^ A(y) ^ B(y)` where `A` and
//! `B` are byte shuffles (`pshufb` with zeroing lanes). ShiftRows and
//! MixColumns give every output cell 1 to 3 input cells; one of them is always
//! taken "in place" (byte `j` of `y` stays byte `j`), which means that the
//! byte holding each cell changes from round to round. That relabelling is a
//! permutation of order 8, so eight pairs of shuffle constants serve every
//! round; the round keys are stored in the layout of their round. The
//! layouts and constants are computed at compile time from the round
//! function's term lists (see [`schedule::schedule`]).

#![allow(unsafe_code, reason = "SIMD intrinsics behind runtime CPU detection")]

use crate::Backend;
use crate::bitslice::{self, bitsliced};
use crate::portable::{self, MAX_ROUNDS};
use core::arch::x86_64::*;
use zeroize::Zeroize;

cpufeatures::new!(cpuid_ssse3, "ssse3");
cpufeatures::new!(cpuid_avx2, "avx2");
cpufeatures::new!(cpuid_avx512, "avx512f", "avx512vl", "avx512bw");

#[derive(Clone, Copy)]
enum Level {
    Ssse3,
    Avx2,
    Avx512,
}

/// Proof that this CPU supports a SIMD level.
///
/// The field is private: the only constructor is [`Cpu::new`], which checks
/// the CPU first. Every `unsafe` call below relies on this.
#[derive(Clone, Copy)]
pub(crate) struct Cpu(Level);

impl Cpu {
    /// Detects support for `backend`; `None` if unsupported or not SIMD.
    pub(crate) fn new(backend: Backend) -> Option<Self> {
        let level = match backend {
            Backend::Ssse3 if cpuid_ssse3::get() => Level::Ssse3,
            Backend::Avx2 if cpuid_avx2::get() => Level::Avx2,
            Backend::Avx512 if cpuid_avx512::get() => Level::Avx512,
            _ => return None,
        };
        Some(Self(level))
    }

    pub(crate) fn backend(self) -> Backend {
        match self.0 {
            Level::Ssse3 => Backend::Ssse3,
            Level::Avx2 => Backend::Avx2,
            Level::Avx512 => Backend::Avx512,
        }
    }

    #[inline]
    pub(crate) fn encrypt_block(self, k: &SimdKeys, n: usize, x: u64) -> (u64, Backend) {
        let y = match self.0 {
            // SAFETY: `self` proves SSSE3 support (see `Cpu`).
            Level::Ssse3 => unsafe { ssse3::encrypt_block(k, n, x) },
            // SAFETY: `self` proves AVX2 support (see `Cpu`).
            Level::Avx2 => unsafe { avx2::encrypt_block(k, n, x) },
            // SAFETY: `self` proves AVX-512 F, VL and BW support (see `Cpu`).
            Level::Avx512 => unsafe { avx512::encrypt_block(k, n, x) },
        };
        (y, self.backend())
    }

    #[inline]
    pub(crate) fn decrypt_block(self, k: &SimdKeys, n: usize, x: u64) -> (u64, Backend) {
        let y = match self.0 {
            // SAFETY: `self` proves SSSE3 support (see `Cpu`).
            Level::Ssse3 => unsafe { ssse3::decrypt_block(k, n, x) },
            // SAFETY: `self` proves AVX2 support (see `Cpu`).
            Level::Avx2 => unsafe { avx2::decrypt_block(k, n, x) },
            // SAFETY: `self` proves AVX-512 F, VL and BW support (see `Cpu`).
            Level::Avx512 => unsafe { avx512::decrypt_block(k, n, x) },
        };
        (y, self.backend())
    }

    pub(crate) fn encrypt_batch(
        self,
        bs: &[[u64; 8]],
        k: &SimdKeys,
        blocks: &mut [u64],
    ) -> Backend {
        match self.0 {
            // SAFETY: `self` proves SSSE3 support (see `Cpu`).
            Level::Ssse3 => unsafe { ssse3::encrypt_batch(bs, k, blocks) },
            // SAFETY: `self` proves AVX2 support (see `Cpu`).
            Level::Avx2 => unsafe { avx2::encrypt_batch(bs, k, blocks) },
            // SAFETY: `self` proves AVX-512 F, VL and BW support (see `Cpu`).
            Level::Avx512 => unsafe { avx512::encrypt_batch(bs, k, blocks) },
        }
        self.backend()
    }

    pub(crate) fn decrypt_batch(
        self,
        bs: &[[u64; 8]],
        k: &SimdKeys,
        blocks: &mut [u64],
    ) -> Backend {
        match self.0 {
            // SAFETY: `self` proves SSSE3 support (see `Cpu`).
            Level::Ssse3 => unsafe { ssse3::decrypt_batch(bs, k, blocks) },
            // SAFETY: `self` proves AVX2 support (see `Cpu`).
            Level::Avx2 => unsafe { avx2::decrypt_batch(bs, k, blocks) },
            // SAFETY: `self` proves AVX-512 F, VL and BW support (see `Cpu`).
            Level::Avx512 => unsafe { avx512::decrypt_batch(bs, k, blocks) },
        }
        self.backend()
    }
}

mod schedule;
use schedule::{DEC, DEC_GATHER, DEC_PACK, ENC, ENC_GATHER, ENC_PACK, SBOX, SBOX_INV};

/// Round keys of the single-block SIMD code, in the layout of their round.
#[derive(Clone)]
pub(crate) struct SimdKeys {
    /// `enc[r]`: `MixColumns(ShiftRows(rk[r]))`, laid out for round `r + 1`.
    enc: [[u64; 2]; MAX_ROUNDS],
    /// `dec[i]`: `rk[n - 1 - i]`, laid out for the output of step `i`.
    dec: [[u64; 2]; MAX_ROUNDS],
}

/// Lays the cells of packed `x` out one per byte, byte `k` taking cell
/// `gather[k]` (a public index).
fn spread(x: u64, gather: &[u8; 16]) -> [u64; 2] {
    let cell = |c: u8| (x >> (60 - 4 * u32::from(c))) & 0xF;
    let word = |g: &[u8]| {
        g.iter()
            .enumerate()
            .fold(0, |w, (k, &c)| w | (cell(c) << (8 * k)))
    };
    [word(&gather[..8]), word(&gather[8..])]
}

impl SimdKeys {
    pub(crate) fn new(rk: &[u64]) -> Self {
        let n = rk.len();
        let mut enc = [[0u64; 2]; MAX_ROUNDS];
        let mut dec = [[0u64; 2]; MAX_ROUNDS];
        for (r, &k) in rk.iter().enumerate() {
            enc[r] = spread(portable::shift_mix(k), &ENC_GATHER[(r + 1) % 8]);
            let i = n - 1 - r;
            dec[i] = spread(k, &DEC_GATHER[(i + 1) % 8]);
        }
        Self { enc, dec }
    }
}

impl Zeroize for SimdKeys {
    fn zeroize(&mut self) {
        self.enc.zeroize();
        self.dec.zeroize();
    }
}

/// Two words as a vector, lane 0 = `w[0]`.
#[target_feature(enable = "ssse3")]
#[inline]
fn v(w: [u64; 2]) -> __m128i {
    _mm_set_epi64x(w[1] as i64, w[0] as i64)
}

/// Unpacks a big-endian block into one cell per byte ([`schedule::load_layout`]).
#[target_feature(enable = "ssse3")]
#[inline]
fn load_cells(x: u64) -> __m128i {
    let b = _mm_cvtsi64_si128(x as i64);
    let hi = _mm_srli_epi16::<4>(b);
    _mm_and_si128(_mm_unpacklo_epi8(hi, b), _mm_set1_epi8(0x0F))
}

/// Packs one cell per byte (layout given by the `pshufb` indices) back.
#[target_feature(enable = "ssse3")]
#[inline]
fn store_cells(s: __m128i, pack: &[[u64; 2]; 2]) -> u64 {
    let e = _mm_shuffle_epi8(s, v(pack[0]));
    let o = _mm_shuffle_epi8(s, v(pack[1]));
    _mm_cvtsi128_si64(_mm_or_si128(_mm_slli_epi16::<4>(e), o)) as u64
}

/// Defines `encrypt_block`/`decrypt_block` for one feature set; `$xor3`
/// combines the three terms of a round.
macro_rules! single_block {
    ($feat:literal, $xor3:path) => {
        /// Encrypts one block with `n` rounds (`n` a multiple of 4).
        #[target_feature(enable = $feat)]
        pub(super) fn encrypt_block(k: &SimdKeys, n: usize, x: u64) -> u64 {
            let sbox = v(SBOX);
            let mut s = load_cells(x);
            for (i, keys) in k.enc[..n].chunks_exact(4).enumerate() {
                let base = 4 * (i % 2);
                for (t, key) in keys.iter().enumerate() {
                    let y = _mm_shuffle_epi8(sbox, s);
                    let a = _mm_shuffle_epi8(y, v(ENC.a[base + t]));
                    let b = _mm_shuffle_epi8(y, v(ENC.b[base + t]));
                    s = $xor3(_mm_xor_si128(y, v(*key)), a, b);
                }
            }
            store_cells(s, &ENC_PACK[(n % 8) / 4])
        }

        /// Decrypts one block with `n` rounds (`n` a multiple of 4).
        #[target_feature(enable = $feat)]
        pub(super) fn decrypt_block(k: &SimdKeys, n: usize, x: u64) -> u64 {
            let sbox = v(SBOX_INV);
            let mut s = load_cells(x);
            for (i, keys) in k.dec[..n].chunks_exact(4).enumerate() {
                let base = 4 * (i % 2);
                for (t, key) in keys.iter().enumerate() {
                    let a = _mm_shuffle_epi8(s, v(DEC.a[base + t]));
                    let b = _mm_shuffle_epi8(s, v(DEC.b[base + t]));
                    s = _mm_shuffle_epi8(sbox, $xor3(_mm_xor_si128(s, v(*key)), a, b));
                }
            }
            store_cells(s, &DEC_PACK[(n % 8) / 4])
        }
    };
}

/// Defines the bitsliced primitives over 128- or 256-bit words without
/// AVX-512 (three-input functions cost two or three instructions).
macro_rules! vector_primitives {
    (
        $feat:literal, $w:ty, $xor:ident, $or:ident, $andnot:ident, $and:ident,
        $set1:ident, $shuf8:ident, $shuf32:ident, $srli:ident, $slli:ident, $setr8:ident
    ) => {
        type W = $w;

        #[target_feature(enable = $feat)]
        #[inline]
        fn xor(a: W, b: W) -> W {
            $xor(a, b)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn xor3(a: W, b: W, c: W) -> W {
            $xor($xor(a, b), c)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn nor_xor(x: W, a: W, b: W) -> W {
            $xor(x, $andnot($or(a, b), $set1(-1)))
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn or_xor(x: W, a: W, b: W) -> W {
            $xor(x, $or(a, b))
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn andnot_xor(x: W, a: W, b: W) -> W {
            $xor(x, $andnot(a, b))
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn splat(k: u64) -> W {
            $set1(k as i64)
        }

        /// Rotates every 64-bit lane right by 16 bits.
        #[target_feature(enable = $feat)]
        #[inline]
        fn rotr16(a: W) -> W {
            $shuf8(a, rot_bytes::<2>())
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn rotr32(a: W) -> W {
            $shuf32::<0b10_11_00_01>(a)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn rotr48(a: W) -> W {
            $shuf8(a, rot_bytes::<6>())
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn swapmove<const S: i32>(a: W, b: W, m: u64) -> (W, W) {
            let t = $and($xor($srli::<S>(a), b), splat(m));
            ($xor(a, $slli::<S>(t)), $xor(b, t))
        }

        /// `pshufb` indices rotating each 64-bit lane right by `B` bytes.
        #[target_feature(enable = $feat)]
        #[inline]
        fn rot_bytes<const B: i8>() -> W {
            let r = |i: i8| (i + B) % 8;
            let q = |i: i8| r(i) + 8;
            $setr8!(r, q)
        }
    };
}

macro_rules! setr8_128 {
    ($r:ident, $q:ident) => {
        _mm_setr_epi8(
            $r(0),
            $r(1),
            $r(2),
            $r(3),
            $r(4),
            $r(5),
            $r(6),
            $r(7),
            $q(0),
            $q(1),
            $q(2),
            $q(3),
            $q(4),
            $q(5),
            $q(6),
            $q(7),
        )
    };
}

macro_rules! setr8_256 {
    ($r:ident, $q:ident) => {
        _mm256_setr_epi8(
            $r(0),
            $r(1),
            $r(2),
            $r(3),
            $r(4),
            $r(5),
            $r(6),
            $r(7),
            $q(0),
            $q(1),
            $q(2),
            $q(3),
            $q(4),
            $q(5),
            $q(6),
            $q(7),
            $r(0),
            $r(1),
            $r(2),
            $r(3),
            $r(4),
            $r(5),
            $r(6),
            $r(7),
            $q(0),
            $q(1),
            $q(2),
            $q(3),
            $q(4),
            $q(5),
            $q(6),
            $q(7),
        )
    };
}

/// Defines the chunk and batch functions of a bitsliced instance with `L`
/// 64-bit lanes per word, given `load`/`store` of one word.
macro_rules! chunk_functions {
    ($feat:literal, $lanes:literal) => {
        pub(super) const CHUNK: usize = 16 * $lanes;

        #[target_feature(enable = $feat)]
        #[inline]
        fn load_chunk(blocks: &[u64; CHUNK]) -> [W; 16] {
            let mut s = [splat(0); 16];
            for (w, lanes) in s.iter_mut().zip(blocks.chunks_exact($lanes)) {
                *w = load(lanes);
            }
            s
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn store_chunk(s: &[W; 16], blocks: &mut [u64; CHUNK]) {
            for (w, lanes) in s.iter().zip(blocks.chunks_exact_mut($lanes)) {
                store(*w, lanes);
            }
        }

        #[target_feature(enable = $feat)]
        pub(super) fn encrypt_chunk(keys: &[[u64; 8]], blocks: &mut [u64; CHUNK]) {
            let mut s = load_chunk(blocks);
            transpose(&mut s);
            encrypt_rounds(&mut s, keys);
            untranspose(&mut s);
            store_chunk(&s, blocks);
        }

        #[target_feature(enable = $feat)]
        pub(super) fn decrypt_chunk(keys: &[[u64; 8]], blocks: &mut [u64; CHUNK]) {
            let mut s = load_chunk(blocks);
            transpose(&mut s);
            decrypt_rounds(&mut s, keys);
            untranspose(&mut s);
            store_chunk(&s, blocks);
        }
    };
}

/// Defines `encrypt_batch`/`decrypt_batch` from the chunk functions in scope,
/// with tails of at most `$single_max` blocks done one block at a time.
macro_rules! batch_functions {
    ($feat:literal, $single_max:literal) => {
        #[target_feature(enable = $feat)]
        pub(super) fn encrypt_batch(bs: &[[u64; 8]], k: &SimdKeys, blocks: &mut [u64]) {
            let n = bs.len();
            bitslice::drive::<CHUNK, CHUNK>(
                blocks,
                $single_max,
                |c| encrypt_chunk(bs, c),
                |c| encrypt_chunk(bs, c),
                |t| bitslice::one_by_one(t, |x| encrypt_block(k, n, x)),
            );
        }

        #[target_feature(enable = $feat)]
        pub(super) fn decrypt_batch(bs: &[[u64; 8]], k: &SimdKeys, blocks: &mut [u64]) {
            let n = bs.len();
            bitslice::drive::<CHUNK, CHUNK>(
                blocks,
                $single_max,
                |c| decrypt_chunk(bs, c),
                |c| decrypt_chunk(bs, c),
                |t| bitslice::one_by_one(t, |x| decrypt_block(k, n, x)),
            );
        }
    };
}

/// Three-way XOR without AVX-512.
#[target_feature(enable = "sse2")]
#[inline]
fn sse_xor3(a: __m128i, b: __m128i, c: __m128i) -> __m128i {
    _mm_xor_si128(_mm_xor_si128(b, c), a)
}

mod ssse3 {
    use super::*;

    single_block!("ssse3", sse_xor3);
    vector_primitives!(
        "ssse3",
        __m128i,
        _mm_xor_si128,
        _mm_or_si128,
        _mm_andnot_si128,
        _mm_and_si128,
        _mm_set1_epi64x,
        _mm_shuffle_epi8,
        _mm_shuffle_epi32,
        _mm_srli_epi64,
        _mm_slli_epi64,
        setr8_128
    );
    bitsliced!(#[target_feature(enable = "ssse3")] #[inline]);

    #[target_feature(enable = "ssse3")]
    #[inline]
    fn load(lanes: &[u64]) -> W {
        assert!(lanes.len() >= 2);
        // SAFETY: `lanes` holds at least 16 readable bytes; `loadu` accepts
        // any alignment.
        unsafe { _mm_loadu_si128(lanes.as_ptr().cast()) }
    }

    #[target_feature(enable = "ssse3")]
    #[inline]
    fn store(w: W, lanes: &mut [u64]) {
        assert!(lanes.len() >= 2);
        // SAFETY: `lanes` holds at least 16 writable bytes; `storeu` accepts
        // any alignment.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), w) }
    }

    chunk_functions!("ssse3", 2);
    batch_functions!("ssse3", 4);
}

mod avx2 {
    use super::*;

    single_block!("avx2", sse_xor3);
    vector_primitives!(
        "avx2",
        __m256i,
        _mm256_xor_si256,
        _mm256_or_si256,
        _mm256_andnot_si256,
        _mm256_and_si256,
        _mm256_set1_epi64x,
        _mm256_shuffle_epi8,
        _mm256_shuffle_epi32,
        _mm256_srli_epi64,
        _mm256_slli_epi64,
        setr8_256
    );
    bitsliced!(#[target_feature(enable = "avx2")] #[inline]);

    #[target_feature(enable = "avx2")]
    #[inline]
    fn load(lanes: &[u64]) -> W {
        assert!(lanes.len() >= 4);
        // SAFETY: `lanes` holds at least 32 readable bytes; `loadu` accepts
        // any alignment.
        unsafe { _mm256_loadu_si256(lanes.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn store(w: W, lanes: &mut [u64]) {
        assert!(lanes.len() >= 4);
        // SAFETY: `lanes` holds at least 32 writable bytes; `storeu` accepts
        // any alignment.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), w) }
    }

    chunk_functions!("avx2", 4);
    batch_functions!("avx2", 4);
}

/// `vpternlogq` immediates: bit `4x + 2a + b` of an immediate is the
/// function's value for bits `x`, `a`, `b` of its first, second and third
/// operand. Checked against the functions by a test, which matters because
/// CI's machines may have no AVX-512 to run them on.
mod tern {
    /// `x ^ a ^ b`.
    pub(super) const XOR3: i32 = 0x96;
    /// `x ^ !(a | b)`.
    pub(super) const NOR_XOR: i32 = 0xE1;
    /// `x ^ (a | b)`.
    pub(super) const OR_XOR: i32 = 0x1E;
    /// `x ^ (!a & b)`.
    pub(super) const ANDNOT_XOR: i32 = 0xD2;
    /// `(x ^ a) & b`.
    pub(super) const XOR_AND: i32 = 0x28;

    #[cfg(test)]
    mod tests {
        /// The immediate of `f`, evaluated bit by bit.
        fn imm(f: impl Fn(bool, bool, bool) -> bool) -> i32 {
            (0..8)
                .filter(|i| f(i & 4 != 0, i & 2 != 0, i & 1 != 0))
                .map(|i| 1 << i)
                .sum()
        }

        #[test]
        fn immediates_compute_their_functions() {
            assert_eq!(super::XOR3, imm(|x, a, b| x ^ a ^ b));
            assert_eq!(super::NOR_XOR, imm(|x, a, b| x ^ !(a | b)));
            assert_eq!(super::OR_XOR, imm(|x, a, b| x ^ (a | b)));
            assert_eq!(super::ANDNOT_XOR, imm(|x, a, b| x ^ (!a & b)));
            assert_eq!(super::XOR_AND, imm(|x, a, b| (x ^ a) & b));
        }
    }
}

/// Defines the AVX-512 bitsliced primitives (`vpternlogq`, `vprorq`) and
/// the chunk functions for 256- or 512-bit words.
macro_rules! avx512_instance {
    (
        $w:ty, $lanes:literal, $xor:ident, $tern:ident, $ror:ident, $shuf32:ident,
        $set1:ident, $srli:ident, $slli:ident, $shift:ty, $loadu:ident, $storeu:ident
    ) => {
        use super::*;

        type W = $w;

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn xor(a: W, b: W) -> W {
            $xor(a, b)
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn xor3(a: W, b: W, c: W) -> W {
            $tern::<{ tern::XOR3 }>(a, b, c)
        }

        /// `x ^ !(a | b)` in one `vpternlogq`.
        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn nor_xor(x: W, a: W, b: W) -> W {
            $tern::<{ tern::NOR_XOR }>(x, a, b)
        }

        /// `x ^ (a | b)` in one `vpternlogq`.
        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn or_xor(x: W, a: W, b: W) -> W {
            $tern::<{ tern::OR_XOR }>(x, a, b)
        }

        /// `x ^ (!a & b)` in one `vpternlogq`.
        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn andnot_xor(x: W, a: W, b: W) -> W {
            $tern::<{ tern::ANDNOT_XOR }>(x, a, b)
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn splat(k: u64) -> W {
            $set1(k as i64)
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn rotr16(a: W) -> W {
            $ror::<16>(a)
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn rotr32(a: W) -> W {
            // `vpshufd` runs on other ports than `vprorq`.
            $shuf32::<0b10_11_00_01>(a)
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn rotr48(a: W) -> W {
            $ror::<48>(a)
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn swapmove<const S: $shift>(a: W, b: W, m: u64) -> (W, W) {
            // t = ((a >> S) ^ b) & m
            let t = $tern::<{ tern::XOR_AND }>($srli::<S>(a), b, splat(m));
            (xor(a, $slli::<S>(t)), xor(b, t))
        }

        bitsliced!(#[target_feature(enable = "avx512f,avx512vl")] #[inline]);

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn load(lanes: &[u64]) -> W {
            assert!(lanes.len() >= $lanes);
            // SAFETY: `lanes` holds at least `$lanes` readable u64s; `loadu`
            // accepts any alignment.
            unsafe { $loadu(lanes.as_ptr().cast()) }
        }

        #[target_feature(enable = "avx512f,avx512vl")]
        #[inline]
        fn store(w: W, lanes: &mut [u64]) {
            assert!(lanes.len() >= $lanes);
            // SAFETY: `lanes` holds at least `$lanes` writable u64s; `storeu`
            // accepts any alignment.
            unsafe { $storeu(lanes.as_mut_ptr().cast(), w) }
        }

        chunk_functions!("avx512f,avx512vl", $lanes);
    };
}

mod avx512 {
    use super::*;

    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    fn xor3_128(a: __m128i, b: __m128i, c: __m128i) -> __m128i {
        _mm_ternarylogic_epi64::<{ tern::XOR3 }>(a, b, c)
    }

    single_block!("avx512f,avx512vl", xor3_128);

    /// 512-bit words: 128 blocks per chunk.
    mod z {
        avx512_instance!(
            __m512i,
            8,
            _mm512_xor_si512,
            _mm512_ternarylogic_epi64,
            _mm512_ror_epi64,
            _mm512_shuffle_epi32,
            _mm512_set1_epi64,
            _mm512_srli_epi64,
            _mm512_slli_epi64,
            u32,
            _mm512_loadu_si512,
            _mm512_storeu_si512
        );

        /// Decrypts two chunks, their rounds interleaved. One chunk's round
        /// is a dependency chain of seven vector operations (MixColumns⁻¹,
        /// a rotation, the four S-box steps) for 44 instructions: where
        /// those operations take two cycles (Zen 5) the chain, 14 cycles,
        /// is longer than the 11 the core needs to issue the round, and the
        /// other chunk's round fills the gap.
        #[target_feature(enable = "avx512f,avx512vl")]
        pub(super) fn decrypt_chunk_pair(
            keys: &[[u64; 8]],
            a: &mut [u64; CHUNK],
            b: &mut [u64; CHUNK],
        ) {
            let (mut sa, mut sb) = (load_chunk(a), load_chunk(b));
            transpose(&mut sa);
            transpose(&mut sb);
            complement_planes(&mut sa);
            complement_planes(&mut sb);
            for k in keys.iter().rev() {
                decrypt_round(&mut sa, k);
                decrypt_round(&mut sb, k);
            }
            complement_planes(&mut sa);
            complement_planes(&mut sb);
            untranspose(&mut sa);
            untranspose(&mut sb);
            store_chunk(&sa, a);
            store_chunk(&sb, b);
        }
    }

    /// 256-bit words with AVX-512VL: 64 blocks per chunk, for short tails.
    mod y {
        avx512_instance!(
            __m256i,
            4,
            _mm256_xor_si256,
            _mm256_ternarylogic_epi64,
            _mm256_ror_epi64,
            _mm256_shuffle_epi32,
            _mm256_set1_epi64x,
            _mm256_srli_epi64,
            _mm256_slli_epi64,
            i32,
            _mm256_loadu_si256,
            _mm256_storeu_si256
        );
    }

    /// Up to four blocks at once, one per 128-bit lane of a 512-bit
    /// register: the single-block rounds on 512-bit `vpshufb` and
    /// `vpternlogq`, which take no longer than their 128-bit forms, so four
    /// blocks cost about the latency of one.
    mod quad {
        use super::*;

        /// A 128-bit constant in all four lanes.
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        fn v4(w: [u64; 2]) -> __m512i {
            _mm512_broadcast_i32x4(_mm_set_epi64x(w[1] as i64, w[0] as i64))
        }

        /// Block `i` of `x` into lane `i`, one cell per byte as
        /// `load_cells` lays out a single block.
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        fn load_cells(x: &[u64; 4]) -> __m512i {
            let b = _mm512_set_epi64(
                0,
                x[3] as i64,
                0,
                x[2] as i64,
                0,
                x[1] as i64,
                0,
                x[0] as i64,
            );
            let hi = _mm512_srli_epi16::<4>(b);
            _mm512_and_si512(_mm512_unpacklo_epi8(hi, b), _mm512_set1_epi8(0x0F))
        }

        /// Packs lane `i` back into block `i` of `x`.
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        fn store_cells(s: __m512i, pack: &[[u64; 2]; 2], x: &mut [u64; 4]) {
            let e = _mm512_shuffle_epi8(s, v4(pack[0]));
            let o = _mm512_shuffle_epi8(s, v4(pack[1]));
            let w = _mm512_or_si512(_mm512_slli_epi16::<4>(e), o);
            x[0] = _mm_cvtsi128_si64(_mm512_castsi512_si128(w)) as u64;
            x[1] = _mm_cvtsi128_si64(_mm512_extracti32x4_epi32::<1>(w)) as u64;
            x[2] = _mm_cvtsi128_si64(_mm512_extracti32x4_epi32::<2>(w)) as u64;
            x[3] = _mm_cvtsi128_si64(_mm512_extracti32x4_epi32::<3>(w)) as u64;
        }

        /// Encrypts four blocks with `n` rounds (`n` a multiple of 4).
        #[target_feature(enable = "avx512f,avx512bw")]
        pub(super) fn encrypt(k: &SimdKeys, n: usize, x: &mut [u64; 4]) {
            let sbox = v4(SBOX);
            let mut s = load_cells(x);
            for (i, keys) in k.enc[..n].chunks_exact(4).enumerate() {
                let base = 4 * (i % 2);
                for (t, key) in keys.iter().enumerate() {
                    let y = _mm512_shuffle_epi8(sbox, s);
                    let a = _mm512_shuffle_epi8(y, v4(ENC.a[base + t]));
                    let b = _mm512_shuffle_epi8(y, v4(ENC.b[base + t]));
                    s = _mm512_ternarylogic_epi64::<{ tern::XOR3 }>(
                        _mm512_xor_si512(y, v4(*key)),
                        a,
                        b,
                    );
                }
            }
            store_cells(s, &ENC_PACK[(n % 8) / 4], x);
        }

        /// Decrypts four blocks with `n` rounds (`n` a multiple of 4).
        #[target_feature(enable = "avx512f,avx512bw")]
        pub(super) fn decrypt(k: &SimdKeys, n: usize, x: &mut [u64; 4]) {
            let sbox = v4(SBOX_INV);
            let mut s = load_cells(x);
            for (i, keys) in k.dec[..n].chunks_exact(4).enumerate() {
                let base = 4 * (i % 2);
                for (t, key) in keys.iter().enumerate() {
                    let a = _mm512_shuffle_epi8(s, v4(DEC.a[base + t]));
                    let b = _mm512_shuffle_epi8(s, v4(DEC.b[base + t]));
                    let m = _mm512_ternarylogic_epi64::<{ tern::XOR3 }>(
                        _mm512_xor_si512(s, v4(*key)),
                        a,
                        b,
                    );
                    s = _mm512_shuffle_epi8(sbox, m);
                }
            }
            store_cells(s, &DEC_PACK[(n % 8) / 4], x);
        }

        /// Runs `f` over `blocks` four at a time (the last group zero-padded).
        #[target_feature(enable = "avx512f,avx512bw")]
        #[inline]
        pub(super) fn each(blocks: &mut [u64], f: impl Fn(&mut [u64; 4])) {
            for group in blocks.chunks_mut(4) {
                let mut buf = [0u64; 4];
                buf[..group.len()].copy_from_slice(group);
                f(&mut buf);
                group.copy_from_slice(&buf[..group.len()]);
                buf.zeroize();
            }
        }
    }

    /// Longest batch tail done by the single-block code, four blocks per
    /// call ([`quad`]); longer tails go through a 64-block chunk. Measured
    /// on an Intel Xeon (2026-12-06): 4 blocks 75 ns, 12 blocks ~225 ns,
    /// a 64-block chunk ~345 ns.
    const SINGLE_MAX: usize = 12;

    #[target_feature(enable = "avx512f,avx512vl,avx512bw")]
    pub(super) fn encrypt_batch(bs: &[[u64; 8]], k: &SimdKeys, blocks: &mut [u64]) {
        let n = bs.len();
        bitslice::drive::<{ z::CHUNK }, { y::CHUNK }>(
            blocks,
            SINGLE_MAX,
            |c| z::encrypt_chunk(bs, c),
            |c| y::encrypt_chunk(bs, c),
            |t| quad::each(t, |x| quad::encrypt(k, n, x)),
        );
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512bw")]
    pub(super) fn decrypt_batch(bs: &[[u64; 8]], k: &SimdKeys, blocks: &mut [u64]) {
        let n = bs.len();
        let mut pairs = blocks.chunks_exact_mut(2 * z::CHUNK);
        for pair in &mut pairs {
            let (a, b) = pair.split_at_mut(z::CHUNK);
            // Both halves of an exact 2 × CHUNK slice are CHUNK long.
            if let (Ok(a), Ok(b)) = (a.try_into(), b.try_into()) {
                z::decrypt_chunk_pair(bs, a, b);
            }
        }
        bitslice::drive::<{ z::CHUNK }, { y::CHUNK }>(
            pairs.into_remainder(),
            SINGLE_MAX,
            |c| z::decrypt_chunk(bs, c),
            |c| y::decrypt_chunk(bs, c),
            |t| quad::each(t, |x| quad::decrypt(k, n, x)),
        );
    }
}

/// One block's decryption a round at a time, for a caller that interleaves
/// it with other work: a single block's rounds are one long dependency
/// chain, and the CPU can only overlap independent work with it when the
/// two are issued side by side (one after the other, the first fills the
/// vector scheduler). Obtained from a cipher with `decrypt_rounds`.
///
/// The methods are `#[target_feature(enable = "ssse3")]` and `#[inline]`:
/// called from the caller's own `#[target_feature]` function (whose
/// features include SSSE3) they are safe and inline into it. A value exists
/// only for a cipher running a SIMD back end, so the CPU has SSSE3.
#[derive(Clone, Copy)]
pub struct DecryptRounds<'k> {
    keys: &'k SimdKeys,
    rounds: usize,
}

/// The state of a block between rounds of [`DecryptRounds`]: one cell per
/// byte of a vector register.
#[derive(Clone, Copy)]
pub struct DecryptState(__m128i);

impl core::fmt::Debug for DecryptRounds<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The round keys stay out of logs.
        f.debug_struct("DecryptRounds")
            .field("rounds", &self.rounds)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for DecryptState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DecryptState(..)")
    }
}

impl<'k> DecryptRounds<'k> {
    pub(crate) fn new(keys: &'k SimdKeys, rounds: usize) -> Self {
        Self { keys, rounds }
    }

    /// The number of rounds: call [`DecryptRounds::round`] with `0 ..
    /// rounds()` in order.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The state of `block` (a big-endian `u64`) before the first round.
    ///
    /// # Safety
    ///
    /// The CPU must have SSSE3; it does whenever a `DecryptRounds` exists.
    /// Called from a function compiled with SSSE3 enabled, the call is safe.
    #[target_feature(enable = "ssse3")]
    #[inline]
    pub fn start(&self, block: u64) -> DecryptState {
        DecryptState(load_cells(block))
    }

    /// Round `r` (counted from 0) of the decryption; the same steps as the
    /// single-block back ends' loop (see the module docs).
    ///
    /// # Safety
    ///
    /// The CPU must have SSSE3; it does whenever a `DecryptRounds` exists.
    /// Called from a function compiled with SSSE3 enabled, the call is safe.
    #[target_feature(enable = "ssse3")]
    #[inline]
    pub fn round(&self, s: DecryptState, r: usize) -> DecryptState {
        let s = s.0;
        let a = _mm_shuffle_epi8(s, v(DEC.a[r % 8]));
        let b = _mm_shuffle_epi8(s, v(DEC.b[r % 8]));
        let t = sse_xor3(_mm_xor_si128(s, v(self.keys.dec[r])), a, b);
        DecryptState(_mm_shuffle_epi8(v(SBOX_INV), t))
    }

    /// [`DecryptRounds::round`] with AVX-512's three-way XOR (`vpternlogq`):
    /// one instruction fewer on the round's dependency chain.
    ///
    /// # Safety
    ///
    /// The CPU must have AVX-512 F and VL (check before calling, e.g.
    /// `is_x86_feature_detected!`). Called from a function compiled with
    /// both enabled, the call is safe.
    #[target_feature(enable = "avx512f,avx512vl")]
    #[inline]
    pub fn round_avx512(&self, s: DecryptState, r: usize) -> DecryptState {
        let s = s.0;
        let a = _mm_shuffle_epi8(s, v(DEC.a[r % 8]));
        let b = _mm_shuffle_epi8(s, v(DEC.b[r % 8]));
        let t =
            _mm_ternarylogic_epi64::<{ tern::XOR3 }>(_mm_xor_si128(s, v(self.keys.dec[r])), a, b);
        DecryptState(_mm_shuffle_epi8(v(SBOX_INV), t))
    }

    /// The plaintext block (a big-endian `u64`) after the last round.
    ///
    /// # Safety
    ///
    /// The CPU must have SSSE3; it does whenever a `DecryptRounds` exists.
    /// Called from a function compiled with SSSE3 enabled, the call is safe.
    #[target_feature(enable = "ssse3")]
    #[inline]
    pub fn finish(&self, s: DecryptState) -> u64 {
        store_cells(s.0, &DEC_PACK[(self.rounds % 8) / 4])
    }
}
