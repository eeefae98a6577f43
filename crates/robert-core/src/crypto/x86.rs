//! x86-64 kernels: SHA-256 with SHA-NI, AES-256 with AES-NI, AES-256-GCM
//! with VAES and VPCLMULQDQ.
//!
//! All `unsafe` of robert-core lives here, audited like `skinny/src/x86.rs`.
//! The kernels are safe `#[target_feature]` functions (Rust ≥ 1.87 lets them
//! call intrinsics safely); the only `unsafe` operation is calling such a
//! function from a method of a proof type ([`ShaNi`], [`AesNi`]), which is
//! sound because a proof value can only be created by its `detect`
//! constructor after runtime detection confirmed the features.
//!
//! Data goes in and out of vectors by value (`_mm_set_epi32`,
//! `_mm_set_epi64x`, `_mm_extract_*`), never through pointers: no unsafe
//! loads or stores, and no pointer checks in the debug build, where the
//! instruction-count guard runs. One exception: AES-256-GCM reads and
//! writes the message 64 bytes at a time within a 256-byte group
//! (`xor_group`, bounds proven by the group's type); it only runs with
//! AVX-512, which valgrind, and so the guard, does not emulate.

#![allow(unsafe_code, reason = "SIMD intrinsics behind runtime CPU detection")]

use core::arch::x86_64::*;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

cpufeatures::new!(cpuid_sha, "sha", "sse2", "ssse3", "sse4.1");
cpufeatures::new!(cpuid_aes, "aes", "sse2", "sse4.1");
cpufeatures::new!(cpuid_avx512, "avx512f", "avx512vl");

/// Proof that this CPU has SHA-NI (and SSE4.1).
///
/// The field is private: the only constructor is [`ShaNi::detect`], which
/// checks the CPU first. Every `unsafe` call below relies on this.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShaNi(());

impl ShaNi {
    /// `Some` when the CPU has SHA-NI.
    #[inline]
    pub(crate) fn detect() -> Option<Self> {
        cpuid_sha::get().then_some(Self(()))
    }

    /// One SHA-256 compression ([`super::portable::compress`]).
    #[inline]
    pub(crate) fn compress(self, state: &mut [u32; 8], w: &[u32; 16]) {
        // SAFETY: `self` proves SHA-NI and SSE4.1 support (see `ShaNi`).
        unsafe { sha_compress(state, w) }
    }

    /// HMAC-SHA-256 of `L` one-block inner messages under one key: the
    /// inner compression of each `w` from `inner`, then the outer compression
    /// of its digest from `outer`, without leaving the vector registers in
    /// between, the `L` lanes interleaved. Returns the MACs as big-endian words.
    #[inline]
    pub(crate) fn hmac_one_block<const L: usize>(
        self,
        inner: &[u32; 8],
        outer: &[u32; 8],
        w: &[[u32; 16]; L],
    ) -> [[u32; 8]; L] {
        // SAFETY: `self` proves SHA-NI and SSE4.1 support (see `ShaNi`).
        unsafe { sha_hmac_one_block(inner, outer, w) }
    }

    /// [`ShaNi::hmac_one_block`] of one short message (at most
    /// [`super::MAX_SHORT`] bytes), given by value: the first four words of
    /// its padded block (`head`) and its length word. The words travel in
    /// registers: a block the caller had just written word by word and the
    /// kernel read back 16 bytes at a time stalled the CPU's store-to-load
    /// forwarding (perf, Zen 3).
    #[inline]
    pub(crate) fn hmac_short(
        self,
        inner: &[u32; 8],
        outer: &[u32; 8],
        head: [u32; 4],
        len_bits: u32,
    ) -> [u32; 8] {
        // SAFETY: `self` proves SHA-NI and SSE4.1 support (see `ShaNi`).
        unsafe { sha_hmac_short(inner, outer, head, len_bits) }
    }
}

impl ShaNi {
    /// A HELLO's three primitives in one kernel, their rounds interleaved:
    /// the HMAC-SHA-256 of the one-block message `w` (inner and outer states
    /// precomputed), AES-256 of `aes_in` under `rk`, and the SKINNY
    /// decryption of `block` (`skinny` has [`SKINNY_ROUNDS`] rounds). Each is
    /// a chain of dependent instructions; issued one after the other they
    /// barely overlap, interleaved the HELLO costs about its longest chain,
    /// the MAC's. Returns the MAC (big-endian words), the AES block and the
    /// SKINNY plaintext.
    ///
    /// With `avx512`, SKINNY's rounds use AVX-512's three-way XOR (one
    /// instruction fewer on its chain; figures: README, Performance).
    ///
    /// The kernel writes the HMAC's two compressions out rather than calling
    /// the body of [`ShaNi::hmac_one_block`] with a hook: sharing that body
    /// (lane arrays, another unrolling) measured 131 ns against 110.
    #[allow(clippy::too_many_arguments, reason = "one kernel, three primitives")]
    #[inline]
    pub(crate) fn hello(
        self,
        _aes: AesNi,
        avx512: Option<Avx512>,
        inner: &[u32; 8],
        outer: &[u32; 8],
        w: &[u32; 16],
        rk: &AesRoundKeys,
        aes_in: &[u8; 16],
        skinny: &skinny::DecryptRounds<'_>,
        block: u64,
    ) -> ([u32; 8], [u8; 16], u64) {
        debug_assert_eq!(skinny.rounds(), SKINNY_ROUNDS);
        match avx512 {
            // SAFETY: `self` proves SHA-NI, SSSE3 and SSE4.1 (see `ShaNi`),
            // `_aes` AES-NI (see `AesNi`), `Some(Avx512)` AVX-512 F and VL
            // (see `Avx512`).
            Some(_) => unsafe { hello_kernel_avx512(inner, outer, w, rk, aes_in, skinny, block) },
            // SAFETY: `self` proves SHA-NI, SSSE3 and SSE4.1 (see `ShaNi`),
            // `_aes` proves AES-NI (see `AesNi`).
            None => unsafe { hello_kernel(inner, outer, w, rk, aes_in, skinny, block) },
        }
    }
}

/// Proof that this CPU has AVX-512 F and VL.
///
/// The field is private: the only constructor is [`Avx512::detect`], which
/// checks the CPU first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512(());

impl Avx512 {
    /// `Some` when the CPU has AVX-512 F and VL.
    #[inline]
    pub(crate) fn detect() -> Option<Self> {
        cpuid_avx512::get().then_some(Self(()))
    }
}

/// The rounds of SKINNY-64/192, the EBID cipher ([`ShaNi::hello`]).
pub(crate) const SKINNY_ROUNDS: usize = 40;

/// Proof that this CPU has AES-NI (and SSE4.1).
///
/// The field is private: the only constructor is [`AesNi::detect`], which
/// checks the CPU first. Every `unsafe` call below relies on this.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNi(());

impl AesNi {
    /// `Some` when the CPU has AES-NI.
    #[inline]
    pub(crate) fn detect() -> Option<Self> {
        cpuid_aes::get().then_some(Self(()))
    }

    /// The 15 AES-256 round keys of `key`.
    pub(crate) fn expand256(self, key: &[u8; 32]) -> AesRoundKeys {
        // SAFETY: `self` proves AES-NI support (see `AesNi`).
        unsafe { aes256_expand(key) }
    }

    /// AES-256 encryption of one block under expanded round keys.
    #[inline]
    pub(crate) fn encrypt256(self, rk: &AesRoundKeys, block: &[u8; 16]) -> [u8; 16] {
        // SAFETY: `self` proves AES-NI support (see `AesNi`).
        unsafe { aes256_encrypt(rk, block) }
    }

    /// The first byte of `AES-256(half ‖ 0^64)` for each `half`, appended to
    /// `out`: the ECC masks of EBIDs, eight blocks at a time.
    pub(crate) fn first_bytes256(self, rk: &AesRoundKeys, halves: &[[u8; 8]], out: &mut Vec<u8>) {
        // SAFETY: `self` proves AES-NI support (see `AesNi`).
        unsafe { aes256_first_bytes(rk, halves, out) }
    }
}

// ---------------------------------------------------------------- SHA-256

/// The 64 rounds of one block in each of `L` independent lanes (message
/// words in `w`, lane 0 = word 0). The lanes' instructions alternate, so
/// the CPU overlaps their dependency chains (`sha256rnds2` has a latency of
/// several cycles but issues more often).
///
/// Each lane's message schedule is a window of the last four groups of
/// words that slides by one group every four rounds, indexed only by
/// constants, so it stays in registers. (Indexing it by `round % 4` kept it
/// on the stack: every schedule step waited on a store and a reload, and
/// one MAC took 146 ns instead of 97 on Zen 4.)
///
/// `between(r)` runs after the rounds of group `r` (four rounds): a caller
/// with independent work issues it there, beside the rounds' chain.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn rounds64<const L: usize>(
    abef: &mut [__m128i; L],
    cdgh: &mut [__m128i; L],
    mut w: [[__m128i; 4]; L],
    between: &mut impl FnMut(usize),
) {
    let (abef_in, cdgh_in) = (*abef, *cdgh);
    for r in 0..16 {
        let rk = _mm_set_epi32(
            K[4 * r + 3] as i32,
            K[4 * r + 2] as i32,
            K[4 * r + 1] as i32,
            K[4 * r] as i32,
        );
        for l in 0..L {
            let [w0, w1, w2, w3] = w[l];
            let cur = if r < 4 {
                w0
            } else {
                let t1 = _mm_sha256msg1_epu32(w0, w1);
                let t2 = _mm_alignr_epi8::<4>(w3, w2);
                _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), w3)
            };
            let t1 = _mm_add_epi32(cur, rk);
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], t1);
            let t2 = _mm_shuffle_epi32::<0x0E>(t1);
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], t2);
            w[l] = [w1, w2, w3, cur];
        }
        between(r);
    }
    for l in 0..L {
        abef[l] = _mm_add_epi32(abef[l], abef_in[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], cdgh_in[l]);
    }
}

/// Four words, lane 0 = `w[0]` (built from values: no pointer arithmetic).
#[inline]
#[target_feature(enable = "sse2")]
fn words4(w0: u32, w1: u32, w2: u32, w3: u32) -> __m128i {
    _mm_set_epi32(w3 as i32, w2 as i32, w1 as i32, w0 as i32)
}

#[inline]
#[target_feature(enable = "sse2")]
fn load_words(w: &[u32; 16]) -> [__m128i; 4] {
    [
        words4(w[0], w[1], w[2], w[3]),
        words4(w[4], w[5], w[6], w[7]),
        words4(w[8], w[9], w[10], w[11]),
        words4(w[12], w[13], w[14], w[15]),
    ]
}

/// `[a, b, c, d, e, f, g, h]` → the (ABEF, CDGH) register pair of SHA-NI.
#[inline]
#[target_feature(enable = "sse2")]
fn load_state(s: &[u32; 8]) -> (__m128i, __m128i) {
    (
        words4(s[5], s[4], s[1], s[0]),
        words4(s[7], s[6], s[3], s[2]),
    )
}

/// The (ABEF, CDGH) pair → `[a, b, c, d]`, `[e, f, g, h]` as two vectors.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn unpack_state(abef: __m128i, cdgh: __m128i) -> (__m128i, __m128i) {
    let feba = _mm_shuffle_epi32::<0x1B>(abef);
    let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
    (
        _mm_blend_epi16::<0xF0>(feba, dchg),
        _mm_alignr_epi8::<8>(dchg, feba),
    )
}

/// The (ABEF, CDGH) pair → `[a, b, c, d, e, f, g, h]`.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn store_state(abef: __m128i, cdgh: __m128i) -> [u32; 8] {
    let (abcd, efgh) = unpack_state(abef, cdgh);
    [
        _mm_extract_epi32::<0>(abcd) as u32,
        _mm_extract_epi32::<1>(abcd) as u32,
        _mm_extract_epi32::<2>(abcd) as u32,
        _mm_extract_epi32::<3>(abcd) as u32,
        _mm_extract_epi32::<0>(efgh) as u32,
        _mm_extract_epi32::<1>(efgh) as u32,
        _mm_extract_epi32::<2>(efgh) as u32,
        _mm_extract_epi32::<3>(efgh) as u32,
    ]
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_compress(state: &mut [u32; 8], w: &[u32; 16]) {
    let (abef, cdgh) = load_state(state);
    let (mut abef, mut cdgh) = ([abef], [cdgh]);
    rounds64(&mut abef, &mut cdgh, [load_words(w)], &mut |_| {});
    *state = store_state(abef[0], cdgh[0]);
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_hmac_one_block<const L: usize>(
    inner: &[u32; 8],
    outer: &[u32; 8],
    w: &[[u32; 16]; L],
) -> [[u32; 8]; L] {
    let mut inner_w = [[_mm_setzero_si128(); 4]; L];
    for (iw, w) in inner_w.iter_mut().zip(w) {
        *iw = load_words(w);
    }
    hmac_blocks(inner, outer, inner_w)
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn sha_hmac_short(inner: &[u32; 8], outer: &[u32; 8], head: [u32; 4], len_bits: u32) -> [u32; 8] {
    let [mac] = hmac_blocks(inner, outer, [short_block(head, len_bits)]);
    mac
}

/// The block of a short message: `head`, zeros, the length word.
#[inline]
#[target_feature(enable = "sse2")]
fn short_block(head: [u32; 4], len_bits: u32) -> [__m128i; 4] {
    let zero = _mm_setzero_si128();
    [
        words4(head[0], head[1], head[2], head[3]),
        zero,
        zero,
        words4(0, 0, 0, len_bits),
    ]
}

/// HMAC-SHA-256 of `L` one-block inner messages, their blocks as vectors.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn hmac_blocks<const L: usize>(
    inner: &[u32; 8],
    outer: &[u32; 8],
    inner_w: [[__m128i; 4]; L],
) -> [[u32; 8]; L] {
    let (i_abef, i_cdgh) = load_state(inner);
    let (o_abef, o_cdgh) = load_state(outer);
    let (mut abef, mut cdgh) = ([i_abef; L], [i_cdgh; L]);
    rounds64(&mut abef, &mut cdgh, inner_w, &mut |_| {});
    // The inner digest's words are the outer block's first eight message
    // words; then the padding (0x80 …) and the length, (64 + 32) · 8 bits.
    let w2 = _mm_set_epi32(0, 0, 0, 0x8000_0000_u32 as i32);
    let w3 = _mm_set_epi32(768, 0, 0, 0);
    let mut outer_w = [[w2; 4]; L];
    for l in 0..L {
        let (w0, w1) = unpack_state(abef[l], cdgh[l]);
        outer_w[l] = [w0, w1, w2, w3];
    }
    let (mut abef, mut cdgh) = ([o_abef; L], [o_cdgh; L]);
    rounds64(&mut abef, &mut cdgh, outer_w, &mut |_| {});
    let mut out = [[0u32; 8]; L];
    for (o, (abef, cdgh)) in out.iter_mut().zip(abef.into_iter().zip(cdgh)) {
        *o = store_state(abef, cdgh);
    }
    out
}

/// Defines a [`ShaNi::hello`] kernel for one feature set; `$round` is the
/// SKINNY round of [`skinny::DecryptRounds`] it uses.
macro_rules! hello_kernel {
    ($name:ident, $feat:literal, $round:ident) => {
        #[target_feature(enable = $feat)]
        fn $name(
            inner: &[u32; 8],
            outer: &[u32; 8],
            w: &[u32; 16],
            rk: &AesRoundKeys,
            aes_in: &[u8; 16],
            skinny: &skinny::DecryptRounds<'_>,
            block: u64,
        ) -> ([u32; 8], [u8; 16], u64) {
            let rk = &rk.0;
            let mut x = _mm_xor_si128(load16(aes_in), rk[0]);
            let mut s = skinny.start(block);
            // 32 groups of four SHA rounds (16 inner, 16 outer): after group
            // g, the AES round g (rounds 1 – 14 in groups 1 – 14) and the
            // SKINNY rounds up to (g + 1) · 40 / 32, so SKINNY's chain (40
            // rounds) is spread over the MAC's whole chain and AES's over its
            // first half. (Measured: spreading SKINNY over fewer groups is
            // slower.)
            let mut step = |g: usize| {
                if (1..14).contains(&g) {
                    x = _mm_aesenc_si128(x, rk[g]);
                } else if g == 14 {
                    x = _mm_aesenclast_si128(x, rk[14]);
                }
                for r in g * SKINNY_ROUNDS / 32..(g + 1) * SKINNY_ROUNDS / 32 {
                    s = skinny.$round(s, r);
                }
            };
            let (i_abef, i_cdgh) = load_state(inner);
            let (mut abef, mut cdgh) = ([i_abef], [i_cdgh]);
            rounds64(&mut abef, &mut cdgh, [load_words(w)], &mut step);
            let (w0, w1) = unpack_state(abef[0], cdgh[0]);
            let w2 = _mm_set_epi32(0, 0, 0, 0x8000_0000_u32 as i32);
            let w3 = _mm_set_epi32(768, 0, 0, 0);
            let (o_abef, o_cdgh) = load_state(outer);
            let (mut abef, mut cdgh) = ([o_abef], [o_cdgh]);
            rounds64(&mut abef, &mut cdgh, [[w0, w1, w2, w3]], &mut |g| {
                step(16 + g)
            });
            (store_state(abef[0], cdgh[0]), store16(x), skinny.finish(s))
        }
    };
}

hello_kernel!(hello_kernel, "sha,sse2,ssse3,sse4.1,aes", round);
hello_kernel!(
    hello_kernel_avx512,
    "sha,sse2,ssse3,sse4.1,aes,avx512f,avx512vl",
    round_avx512
);

// ---------------------------------------------------------------- AES-256

/// `k ⊕ (k ≪ 32) ⊕ (k ≪ 64) ⊕ (k ≪ 96) ⊕ t`: one half-step of the AES-256
/// key expansion, `t` the broadcast `SubWord(RotWord(·)) ⊕ rcon` word.
#[inline]
#[target_feature(enable = "sse2")]
fn expand_mix(k: __m128i, t: __m128i) -> __m128i {
    let mut k = k;
    let mut s = _mm_slli_si128::<4>(k);
    k = _mm_xor_si128(k, s);
    s = _mm_slli_si128::<4>(s);
    k = _mm_xor_si128(k, s);
    s = _mm_slli_si128::<4>(s);
    k = _mm_xor_si128(k, s);
    _mm_xor_si128(k, t)
}

/// A 16-byte block as a vector (by value: no pointer arithmetic).
#[inline]
#[target_feature(enable = "sse2")]
fn load16(b: &[u8; 16]) -> __m128i {
    let lo = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let hi = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    _mm_set_epi64x(hi as i64, lo as i64)
}

/// A vector as a 16-byte block.
#[inline]
#[target_feature(enable = "sse2,sse4.1")]
fn store16(x: __m128i) -> [u8; 16] {
    let lo = (_mm_cvtsi128_si64(x) as u64).to_le_bytes();
    let hi = (_mm_extract_epi64::<1>(x) as u64).to_le_bytes();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&lo);
    out[8..].copy_from_slice(&hi);
    out
}

/// The 15 round keys of AES-256 in vector registers' layout, zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct AesRoundKeys([__m128i; 15]);

#[target_feature(enable = "aes,sse2")]
fn aes256_expand(key: &[u8; 32]) -> AesRoundKeys {
    let mut halves = [[0u8; 16]; 2];
    halves[0].copy_from_slice(&key[..16]);
    halves[1].copy_from_slice(&key[16..]);
    let (mut k0, mut k1) = (load16(&halves[0]), load16(&halves[1]));
    halves.zeroize();
    let mut rk = AesRoundKeys([_mm_setzero_si128(); 15]);
    rk.0[0] = k0;
    rk.0[1] = k1;
    // Round key 2j from 2j-2 and 2j-1 (SubWord(RotWord) and rcon), round key
    // 2j+1 from 2j-1 and 2j (SubWord only).
    macro_rules! even {
        ($i:expr, $rcon:expr) => {
            let t = _mm_aeskeygenassist_si128::<$rcon>(k1);
            k0 = expand_mix(k0, _mm_shuffle_epi32::<0xFF>(t));
            rk.0[$i] = k0;
        };
    }
    macro_rules! odd {
        ($i:expr) => {
            let t = _mm_aeskeygenassist_si128::<0>(k0);
            k1 = expand_mix(k1, _mm_shuffle_epi32::<0xAA>(t));
            rk.0[$i] = k1;
        };
    }
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);
    k0.zeroize();
    k1.zeroize();
    rk
}

#[target_feature(enable = "aes,sse2,sse4.1")]
fn aes256_encrypt(rk: &AesRoundKeys, block: &[u8; 16]) -> [u8; 16] {
    let rk = &rk.0;
    let mut x = _mm_xor_si128(load16(block), rk[0]);
    for k in &rk[1..14] {
        x = _mm_aesenc_si128(x, *k);
    }
    store16(_mm_aesenclast_si128(x, rk[14]))
}

/// How many blocks [`aes256_first_bytes`] keeps in flight: AES-NI issues an
/// `aesenc` every cycle or two with a latency of several, so eight
/// independent blocks keep the unit busy where one block waits.
const AES_LANES: usize = 8;

#[target_feature(enable = "aes,sse2")]
fn aes256_first_bytes(rk: &AesRoundKeys, halves: &[[u8; 8]], out: &mut Vec<u8>) {
    let rk = &rk.0;
    let block = |h: &[u8; 8]| _mm_xor_si128(_mm_set_epi64x(0, i64::from_le_bytes(*h)), rk[0]);
    let mut chunks = halves.chunks_exact(AES_LANES);
    for c in &mut chunks {
        let mut x: [__m128i; AES_LANES] = core::array::from_fn(|i| block(&c[i]));
        for k in &rk[1..14] {
            for v in &mut x {
                *v = _mm_aesenc_si128(*v, *k);
            }
        }
        for v in x {
            // The low byte of the low lane is the block's first byte.
            out.push(_mm_cvtsi128_si32(_mm_aesenclast_si128(v, rk[14])) as u8);
        }
    }
    for h in chunks.remainder() {
        let mut v = block(h);
        for k in &rk[1..14] {
            v = _mm_aesenc_si128(v, *k);
        }
        out.push(_mm_cvtsi128_si32(_mm_aesenclast_si128(v, rk[14])) as u8);
    }
}

// ---------------------------------------------------------------- AES-256-GCM

cpufeatures::new!(
    cpuid_gcm512,
    "aes",
    "pclmulqdq",
    "sse4.1",
    "avx2",
    "avx512f",
    "avx512bw",
    "vaes",
    "vpclmulqdq"
);

/// Proof that this CPU has VAES and VPCLMULQDQ on 512-bit vectors (with
/// AVX-512 F and BW), AES-NI and PCLMULQDQ: AES-256-GCM four blocks per
/// instruction.
///
/// The field is private: the only constructor is [`Gcm512::detect`], which
/// checks the CPU first. Every `unsafe` call below relies on this.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gcm512(());

impl Gcm512 {
    /// `Some` when the CPU has 512-bit VAES and VPCLMULQDQ.
    #[inline]
    pub(crate) fn detect() -> Option<Self> {
        cpuid_gcm512::get().then_some(Self(()))
    }

    /// AES-256-GCM of `buf` in place under `key` with the 12-byte `iv` and
    /// no associated data; returns the tag. `buf` must be shorter than 2^36
    /// − 32 bytes (GCM's limit; the caller checks), so the 32-bit block
    /// counter never wraps.
    pub(crate) fn seal(self, key: &[u8; 32], iv: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
        // SAFETY: `self` proves the features (see `Gcm512`).
        unsafe { gcm_seal(key, iv, buf) }
    }
}

/// A GHASH key: `H^16 … H^1` in four 512-bit vectors (first block's power in
/// the lowest lane) and `H` alone, in POLYVAL's bit order (RFC 8452,
/// Appendix A: GHASH is POLYVAL of the byte-reversed blocks under
/// `mulX(ByteReverse(H))`, byte-reversed). Zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
struct GhashKey {
    powers: [__m512i; 4],
    h: __m128i,
}

/// POLYVAL's modulus `x^128 + x^127 + x^126 + x^121 + 1` without its top
/// term, as the reduction uses it: `0xC2 << 56` in the high word, 1 in the
/// low word.
const POLYVAL_LOW: i64 = 1;
const POLYVAL_HIGH: u64 = 0xC200_0000_0000_0000;

/// The 256-bit carry-less product of `a` and `b` in three parts: low,
/// middle (to be shifted by 64 bits) and high.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn clmul128(a: __m128i, b: __m128i) -> (__m128i, __m128i, __m128i) {
    let lo = _mm_clmulepi64_si128::<0x00>(a, b);
    let hi = _mm_clmulepi64_si128::<0x11>(a, b);
    let mid = _mm_xor_si128(
        _mm_clmulepi64_si128::<0x01>(a, b),
        _mm_clmulepi64_si128::<0x10>(a, b),
    );
    (lo, mid, hi)
}

/// POLYVAL's product (`a·b·x^-128` mod the modulus) from the unreduced
/// parts: the middle part folded in, then two Montgomery steps by the
/// modulus's low word.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn polyval_reduce(lo: __m128i, mid: __m128i, hi: __m128i) -> __m128i {
    let lo = _mm_xor_si128(lo, _mm_slli_si128::<8>(mid));
    let hi = _mm_xor_si128(hi, _mm_srli_si128::<8>(mid));
    let poly = _mm_set_epi64x(POLYVAL_HIGH as i64, POLYVAL_LOW);
    let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
    let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
    let t = _mm_clmulepi64_si128::<0x10>(lo, poly);
    let lo = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), t);
    _mm_xor_si128(hi, lo)
}

/// POLYVAL's field product of `a` and `b`.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn polyval_mul(a: __m128i, b: __m128i) -> __m128i {
    let (lo, mid, hi) = clmul128(a, b);
    polyval_reduce(lo, mid, hi)
}

/// The byte reversal of each 128-bit lane, as a `pshufb` mask.
#[inline]
#[target_feature(enable = "sse2")]
fn reverse_mask() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

#[target_feature(enable = "pclmulqdq,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512bw,vpclmulqdq")]
fn ghash_expand(h: &[u8; 16]) -> GhashKey {
    // mulX(ByteReverse(H)) in POLYVAL's field: shift left by one, and fold
    // the bit shifted out back in as the modulus (without a branch on H).
    let mut v = u128::from_be_bytes(*h);
    let carry = 0u128.wrapping_sub(v >> 127);
    v = (v << 1) ^ (carry & ((u128::from(POLYVAL_HIGH) << 64) | 1));
    let mut bytes = v.to_le_bytes();
    let h1 = load16(&bytes);
    bytes.zeroize();
    v.zeroize();
    // p[k] = H^(k+1).
    let mut p = [h1; 16];
    for k in 1..16 {
        p[k] = polyval_mul(p[k - 1], h1);
    }
    let lanes = |a: __m128i, b: __m128i, c: __m128i, d: __m128i| {
        let v = _mm512_castsi128_si512(a);
        let v = _mm512_inserti32x4::<1>(v, b);
        let v = _mm512_inserti32x4::<2>(v, c);
        _mm512_inserti32x4::<3>(v, d)
    };
    let key = GhashKey {
        powers: [
            lanes(p[15], p[14], p[13], p[12]),
            lanes(p[11], p[10], p[9], p[8]),
            lanes(p[7], p[6], p[5], p[4]),
            lanes(p[3], p[2], p[1], p[0]),
        ],
        h: h1,
    };
    p.zeroize();
    key
}

/// The three parts of the carry-less products of four lanes by four lanes
/// ([`clmul128`] per 128-bit lane).
#[inline]
#[target_feature(enable = "avx512f,vpclmulqdq")]
fn clmul512(a: __m512i, b: __m512i) -> (__m512i, __m512i, __m512i) {
    let lo = _mm512_clmulepi64_epi128::<0x00>(a, b);
    let hi = _mm512_clmulepi64_epi128::<0x11>(a, b);
    let mid = _mm512_xor_si512(
        _mm512_clmulepi64_epi128::<0x01>(a, b),
        _mm512_clmulepi64_epi128::<0x10>(a, b),
    );
    (lo, mid, hi)
}

/// The XOR of a vector's four 128-bit lanes.
#[inline]
#[target_feature(enable = "avx2,avx512f")]
fn xor_lanes(v: __m512i) -> __m128i {
    let v = _mm256_xor_si256(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v));
    _mm_xor_si128(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
}

/// Sixteen blocks, byte-reversed, four to a vector, into the running
/// GHASH `s`: `(s ⊕ X0)·H^16 ⊕ X1·H^15 ⊕ … ⊕ X15·H`, one reduction.
#[inline]
#[target_feature(enable = "pclmulqdq,sse2,avx,avx2,avx512f,vpclmulqdq")]
fn ghash_group(key: &GhashKey, s: __m128i, x: [__m512i; 4]) -> __m128i {
    let x0 = _mm512_xor_si512(x[0], _mm512_zextsi128_si512(s));
    let (mut lo, mut mid, mut hi) = clmul512(x0, key.powers[0]);
    for (x, power) in x.into_iter().zip(&key.powers).skip(1) {
        let (l, m, h) = clmul512(x, *power);
        lo = _mm512_xor_si512(lo, l);
        mid = _mm512_xor_si512(mid, m);
        hi = _mm512_xor_si512(hi, h);
    }
    polyval_reduce(xor_lanes(lo), xor_lanes(mid), xor_lanes(hi))
}

/// Whole blocks into the running GHASH `s`, one at a time (the message's
/// last blocks, the lengths block).
#[inline]
#[target_feature(enable = "pclmulqdq,sse2,ssse3")]
fn ghash_blocks(key: &GhashKey, mut s: __m128i, blocks: &[[u8; 16]]) -> __m128i {
    for b in blocks {
        let x = _mm_shuffle_epi8(load16(b), reverse_mask());
        s = polyval_mul(_mm_xor_si128(s, x), key.h);
    }
    s
}

/// The counter blocks' byte order within each 128-bit lane: the IV's 12
/// bytes as they are, the 32-bit counter (kept little-endian for the
/// additions) big-endian.
#[inline]
#[target_feature(enable = "sse2")]
fn counter_mask() -> __m128i {
    _mm_set_epi8(12, 13, 14, 15, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
}

#[target_feature(
    enable = "aes,pclmulqdq,sse2,ssse3,sse4.1,avx,avx2,avx512f,avx512bw,vaes,vpclmulqdq"
)]
fn gcm_seal(key: &[u8; 32], iv: &[u8; 12], buf: &mut [u8]) -> [u8; 16] {
    let rk = aes256_expand(key);
    let mut h = aes256_encrypt(&rk, &[0u8; 16]);
    let ghash = ghash_expand(&h);
    h.zeroize();
    let mut block = [0u8; 16];
    block[..12].copy_from_slice(iv);
    // J0 = IV ‖ 1 masks the tag; the message's counters start at 2.
    block[15] = 1;
    let mut mask = aes256_encrypt(&rk, &block);
    block[15] = 0;
    let mut rk512: [__m512i; 15] = core::array::from_fn(|i| _mm512_broadcast_i32x4(rk.0[i]));
    let be = _mm512_broadcast_i32x4(counter_mask());
    let rev = _mm512_broadcast_i32x4(reverse_mask());
    // Lane i of the first vector holds counter 2 + i; each vector adds 4.
    let mut ctr = _mm512_add_epi32(
        _mm512_broadcast_i32x4(load16(&block)),
        _mm512_set_epi32(5, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0),
    );
    let four = _mm512_set_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0);
    // Sixteen blocks' keystream, one 512-bit vector per four blocks.
    let mut keystream = || -> [__m512i; 4] {
        let mut x: [__m512i; 4] = core::array::from_fn(|_| {
            let c = _mm512_xor_si512(_mm512_shuffle_epi8(ctr, be), rk512[0]);
            ctr = _mm512_add_epi32(ctr, four);
            c
        });
        for k in &rk512[1..14] {
            for v in &mut x {
                *v = _mm512_aesenc_epi128(*v, *k);
            }
        }
        for v in &mut x {
            *v = _mm512_aesenclast_epi128(*v, rk512[14]);
        }
        x
    };
    let mut s = _mm_setzero_si128();
    let len = buf.len();
    let (groups, tail) = buf.as_chunks_mut::<256>();
    for g in groups {
        let x = xor_group(g, keystream(), rev);
        s = ghash_group(&ghash, s, x);
    }
    if !tail.is_empty() {
        // The last blocks through a zero-padded copy: encrypted there, the
        // message's bytes copied back, the rest zeroed again for GHASH.
        let mut last = [0u8; 256];
        last[..tail.len()].copy_from_slice(tail);
        xor_group(&mut last, keystream(), rev);
        tail.copy_from_slice(&last[..tail.len()]);
        last[tail.len()..].fill(0);
        let (blocks, _) = last.as_chunks::<16>();
        s = ghash_blocks(&ghash, s, &blocks[..tail.len().div_ceil(16)]);
        last.zeroize();
    }
    // The lengths block: 0 bits of associated data, the message's bits.
    let mut lengths = [0u8; 16];
    lengths[8..].copy_from_slice(&(len as u64 * 8).to_be_bytes());
    s = ghash_blocks(&ghash, s, &[lengths]);
    let mut tag = store16(_mm_shuffle_epi8(s, reverse_mask()));
    for (t, m) in tag.iter_mut().zip(&mask) {
        *t ^= m;
    }
    mask.zeroize();
    rk512.zeroize();
    s.zeroize();
    ctr.zeroize();
    tag
}

/// XORs 256 bytes in place with sixteen blocks of keystream and returns the
/// result byte-reversed per block, as GHASH takes it.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn xor_group(g: &mut [u8; 256], ks: [__m512i; 4], rev: __m512i) -> [__m512i; 4] {
    let at = g.as_mut_ptr().cast::<__m512i>();
    let mut x = [_mm512_setzero_si512(); 4];
    for (i, (x, k)) in x.iter_mut().zip(ks).enumerate() {
        // SAFETY: `g` is 256 contiguous bytes: the four unaligned 64-byte
        // accesses at 0, 64, 128 and 192 stay in it.
        let c = unsafe {
            let c = _mm512_xor_si512(_mm512_loadu_si512(at.add(i)), k);
            _mm512_storeu_si512(at.add(i), c);
            c
        };
        *x = _mm512_shuffle_epi8(c, rev);
    }
    x
}
