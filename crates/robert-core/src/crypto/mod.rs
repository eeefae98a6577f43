//! The primitives of the hot paths, specialised for their fixed sizes.
//!
//! * `HmacKey`: HMAC-SHA-256 from the precomputed inner and outer states of
//!   a K_A. A message of at most 55 bytes (the 12-byte HELLO input, the
//!   17-byte request input) is one inner and one outer compression, both
//!   blocks laid out directly (no buffering, no padding logic).
//! * `Aes256Keys`: the 15 round keys of an AES-256 K_G, expanded once, for
//!   the ECC's single block.
//! * `gcm::seal_in_place`: AES-256-GCM for the tuple bundles, in one pass
//!   four blocks per instruction on AVX-512 (`aes-gcm` elsewhere).
//!
//! Each has a portable back end (the RustCrypto crates: `sha2`'s compression
//! function, the `aes` crate's cipher) and an x86-64 one (SHA-NI, AES-NI, VAES with VPCLMULQDQ; all `unsafe`
//! of the crate is in `x86.rs`), chosen at run time. The tests check every
//! back end against the portable one and against the RustCrypto crates.

use zeroize::{Zeroize, ZeroizeOnDrop};

pub(crate) mod gcm;
#[cfg(target_arch = "x86_64")]
mod x86;

/// The SHA-256 initial state (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The back ends this CPU runs for the hot paths' SHA-256 and AES-256, as
/// `robert speed` prints them (e.g. `sha-ni, aes-ni`).
pub fn backends() -> String {
    #[cfg(target_arch = "x86_64")]
    let aes = if x86::AesNi::detect().is_some() {
        "aes-ni"
    } else {
        "aes crate"
    };
    #[cfg(not(target_arch = "x86_64"))]
    let aes = "aes crate";
    format!("{}, {aes}", Sha::detect().name())
}

/// Which SHA-256 code runs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Sha {
    /// The `sha2` crate's compression function (its own dispatch: its
    /// portable code, or its SHA-NI code).
    Portable,
    /// SHA-NI.
    #[cfg(target_arch = "x86_64")]
    ShaNi(x86::ShaNi),
}

impl Sha {
    /// The fastest back end this CPU runs.
    #[inline]
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = x86::ShaNi::detect() {
            return Self::ShaNi(cpu);
        }
        Self::Portable
    }

    /// Every back end this CPU runs (tests).
    #[cfg(test)]
    pub(crate) fn all() -> Vec<Self> {
        let mut v = vec![Self::Portable];
        #[cfg(target_arch = "x86_64")]
        v.extend(x86::ShaNi::detect().map(Self::ShaNi));
        v
    }

    /// The back end's name.
    fn name(self) -> &'static str {
        match self {
            Self::Portable => "sha2 crate",
            #[cfg(target_arch = "x86_64")]
            Self::ShaNi(_) => "sha-ni",
        }
    }

    fn compress(self, state: &mut [u32; 8], w: &[u32; 16]) {
        match self {
            Self::Portable => portable_compress(state, w),
            #[cfg(target_arch = "x86_64")]
            Self::ShaNi(cpu) => cpu.compress(state, w),
        }
    }

    #[inline]
    fn hmac_one_block<const L: usize>(
        self,
        inner: &[u32; 8],
        outer: &[u32; 8],
        w: &[[u32; 16]; L],
    ) -> [[u32; 8]; L] {
        match self {
            Self::Portable => {
                let mut out = [*outer; L];
                for (o, w) in out.iter_mut().zip(w) {
                    let mut st = *inner;
                    portable_compress(&mut st, w);
                    let mut w2 = [0u32; 16];
                    w2[..8].copy_from_slice(&st);
                    w2[8] = 0x8000_0000;
                    w2[15] = (64 + 32) * 8;
                    portable_compress(o, &w2);
                    st.zeroize();
                }
                out
            }
            #[cfg(target_arch = "x86_64")]
            Self::ShaNi(cpu) => cpu.hmac_one_block(inner, outer, w),
        }
    }
}

/// One compression through `sha2` (which takes the block as bytes).
fn portable_compress(state: &mut [u32; 8], w: &[u32; 16]) {
    let mut block = [0u8; 64];
    for (b, v) in block.chunks_exact_mut(4).zip(w) {
        b.copy_from_slice(&v.to_be_bytes());
    }
    sha2::block_api::compress256(state, &[block]);
    block.zeroize();
}

/// The longest message [`HmacKey::mac`] takes: one block minus the padding
/// byte and the 8-byte length.
pub(crate) const MAX_ONE_BLOCK: usize = 55;

/// An HMAC-SHA-256 key reduced to its inner and outer states: the state after
/// compressing `key ⊕ ipad`, and after `key ⊕ opad`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct HmacKey {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacKey {
    /// The states of a 32-byte key (two compressions).
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Self::new_with(Sha::detect(), key)
    }

    pub(crate) fn new_with(sha: Sha, key: &[u8; 32]) -> Self {
        let pad = |byte: u8| {
            let mut w = [u32::from_be_bytes([byte; 4]); 16];
            for (wi, k) in w.iter_mut().zip(key.chunks_exact(4)) {
                // `chunks_exact(4)` yields 4-byte slices only.
                let k: [u8; 4] = [k[0], k[1], k[2], k[3]];
                *wi ^= u32::from_be_bytes(k);
            }
            w
        };
        let mut w = pad(0x36);
        let mut inner = IV;
        sha.compress(&mut inner, &w);
        w.zeroize();
        let mut w = pad(0x5c);
        let mut outer = IV;
        sha.compress(&mut outer, &w);
        w.zeroize();
        Self { inner, outer }
    }

    /// HMAC-SHA-256 of `msg` (at most [`MAX_ONE_BLOCK`] bytes, checked at
    /// compile time).
    #[inline]
    pub(crate) fn mac<const N: usize>(&self, msg: &[u8; N]) -> [u8; 32] {
        self.mac_with(Sha::detect(), msg)
    }

    #[inline]
    pub(crate) fn mac_with<const N: usize>(&self, sha: Sha, msg: &[u8; N]) -> [u8; 32] {
        #[cfg(target_arch = "x86_64")]
        if N <= MAX_SHORT
            && let Sha::ShaNi(cpu) = sha
        {
            let (head, len) = short_message(msg);
            return to_bytes(&cpu.hmac_short(&self.inner, &self.outer, head, len));
        }
        let [mac] = self.macs_with(sha, &[*msg]);
        mac
    }

    /// [`HmacKey::mac`] of `L` messages at once (interleaved lanes).
    #[inline]
    pub(crate) fn macs<const N: usize, const L: usize>(
        &self,
        msgs: &[[u8; N]; L],
    ) -> [[u8; 32]; L] {
        self.macs_with(Sha::detect(), msgs)
    }

    #[inline]
    pub(crate) fn macs_with<const N: usize, const L: usize>(
        &self,
        sha: Sha,
        msgs: &[[u8; N]; L],
    ) -> [[u8; 32]; L] {
        let mut w = [[0u32; 16]; L];
        for (w, msg) in w.iter_mut().zip(msgs) {
            *w = inner_block(msg);
        }
        let words = sha.hmac_one_block(&self.inner, &self.outer, &w);
        let mut out = [[0u8; 32]; L];
        for (o, words) in out.iter_mut().zip(words) {
            *o = to_bytes(&words);
        }
        out
    }
}

/// The MAC of `msg` under `hmac`, AES-256 of `aes_in` and the SKINNY
/// decryption of `block`, in one kernel with their rounds interleaved
/// ([`x86::ShaNi::hello`]), for [`crate::hello::Hello::check`]. `None` where
/// the CPU or the keys do not allow it (no SHA-NI or AES-NI, a portable SKINNY
/// back end): the caller then runs the three one after the other.
#[inline]
pub(crate) fn mac_aes_skinny<const N: usize>(
    hmac: &HmacKey,
    msg: &[u8; N],
    aes: &Aes256Keys,
    aes_in: &[u8; 16],
    skinny: &skinny::Skinny64_192,
    block: u64,
) -> Option<([u8; 32], [u8; 16], u64)> {
    #[cfg(target_arch = "x86_64")]
    {
        let Sha::ShaNi(sha) = Sha::detect() else {
            return None;
        };
        let Aes256Keys::AesNi(cpu, rk) = aes else {
            return None;
        };
        let rounds = skinny.decrypt_rounds()?;
        if rounds.rounds() != x86::SKINNY_ROUNDS {
            return None;
        }
        // The message of a HELLO MAC is public (broadcast): nothing to zeroize.
        let w = inner_block(msg);
        let (mac, out, plain) = sha.hello(
            *cpu,
            x86::Avx512::detect(),
            &hmac.inner,
            &hmac.outer,
            &w,
            rk,
            aes_in,
            &rounds,
            block,
        );
        Some((to_bytes(&mac), out, plain))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (hmac, msg, aes, aes_in, skinny, block);
        None
    }
}

/// Longest message [`short_message`] takes: its padding byte still falls in
/// the block's first 16 bytes.
const MAX_SHORT: usize = 15;

/// A message of at most [`MAX_SHORT`] bytes as the first four words of its
/// inner block (message, `0x80`, zeros) and the block's length word; the
/// words between are zero.
#[inline]
fn short_message<const N: usize>(msg: &[u8; N]) -> ([u32; 4], u32) {
    debug_assert!(N <= MAX_SHORT);
    let w = inner_block(msg);
    ([w[0], w[1], w[2], w[3]], w[15])
}

/// The inner block of a one-block message: `msg ‖ 0x80 ‖ 0… ‖ length`, as
/// big-endian words; the length covers the ipad block and the message.
#[inline]
fn inner_block<const N: usize>(msg: &[u8; N]) -> [u32; 16] {
    const { assert!(N <= MAX_ONE_BLOCK, "longer than one block") };
    let mut block = [0u8; 64];
    block[..N].copy_from_slice(msg);
    block[N] = 0x80;
    block[56..].copy_from_slice(&((64 + N as u64) * 8).to_be_bytes());
    let mut w = [0u32; 16];
    for (wi, b) in w.iter_mut().zip(block.chunks_exact(4)) {
        *wi = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    w
}

#[inline]
fn to_bytes(words: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, v) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// AES-256 round keys, expanded once (AES-NI), or the `aes` crate's cipher
/// where the CPU has no AES-NI.
#[derive(Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per K_G; the round keys stay inline, read on every ECC"
)]
pub(crate) enum Aes256Keys {
    /// The `aes` crate (portable, or its own dispatch).
    Portable(Box<aes::Aes256>),
    /// AES-NI with the 15 round keys.
    #[cfg(target_arch = "x86_64")]
    AesNi(x86::AesNi, x86::AesRoundKeys),
}

impl Aes256Keys {
    /// Expands `key` for the fastest back end of this CPU.
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(cpu) = x86::AesNi::detect() {
            return Self::AesNi(cpu, cpu.expand256(key));
        }
        Self::portable(key)
    }

    /// The `aes` crate's cipher (the reference of the tests).
    pub(crate) fn portable(key: &[u8; 32]) -> Self {
        use aes::cipher::KeyInit as _;
        Self::Portable(Box::new(aes::Aes256::new(&(*key).into())))
    }

    /// Encrypts one block.
    #[inline]
    pub(crate) fn encrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        match self {
            Self::Portable(c) => {
                use aes::cipher::BlockCipherEncrypt as _;
                let mut b = (*block).into();
                c.encrypt_block(&mut b);
                b.into()
            }
            #[cfg(target_arch = "x86_64")]
            Self::AesNi(cpu, rk) => cpu.encrypt256(rk, block),
        }
    }

    /// The first byte of `AES-256(half ‖ 0^64)` for each `half` (the ECC
    /// masks of EBIDs), several blocks in flight at a time with AES-NI.
    pub(crate) fn first_bytes(&self, halves: &[[u8; 8]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(halves.len());
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::AesNi(cpu, rk) => cpu.first_bytes256(rk, halves, &mut out),
            Self::Portable(_) => out.extend(halves.iter().map(|h| {
                let mut block = [0u8; 16];
                block[..8].copy_from_slice(h);
                self.encrypt(&block)[0]
            })),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{KeyInit as _, Mac as _};
    use proptest::prelude::*;

    fn reference_hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
        let mut m = <hmac::Hmac<sha2::Sha256>>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    /// RFC 4231 test case 2 has a 4-byte key; case 1 a 20-byte key: HMAC pads
    /// keys with zeros to 64 bytes, so both equal our 32-byte form with zeros.
    #[test]
    fn rfc4231_case_1_and_2() {
        let mut k1 = [0u8; 32];
        k1[..20].fill(0x0b);
        let mut k2 = [0u8; 32];
        k2[..4].copy_from_slice(b"Jefe");
        for sha in Sha::all() {
            assert_eq!(
                hex::encode(HmacKey::new_with(sha, &k1).mac_with(sha, b"Hi There")),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "{sha:?}"
            );
            assert_eq!(
                hex::encode(
                    HmacKey::new_with(sha, &k2).mac_with(sha, b"what do ya want for nothing?")
                ),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "{sha:?}"
            );
        }
    }

    /// FIPS-197 appendix C.3.
    #[test]
    fn fips197_aes256() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let pt: [u8; 16] = core::array::from_fn(|i| (i as u8) * 0x11);
        for k in [Aes256Keys::new(&key), Aes256Keys::portable(&key)] {
            assert_eq!(
                hex::encode(k.encrypt(&pt)),
                "8ea2b7ca516745bfeafc49904b496089"
            );
        }
    }

    proptest! {
        #[test]
        fn every_sha_back_end_equals_the_reference(
            key in any::<[u8; 32]>(),
            m1 in any::<u8>(),
            m12 in any::<[u8; 12]>(),
            m15 in any::<[u8; 15]>(),
            m16 in any::<[u8; 16]>(),
            m17 in any::<[u8; 17]>(),
            m55 in prop::collection::vec(any::<u8>(), 55),
        ) {
            let m55: [u8; 55] = m55.try_into().unwrap();
            let states: Vec<HmacKey> = Sha::all().into_iter().map(|s| HmacKey::new_with(s, &key)).collect();
            for st in &states {
                prop_assert_eq!(&st.inner, &states[0].inner);
                prop_assert_eq!(&st.outer, &states[0].outer);
            }
            for sha in Sha::all() {
                let k = HmacKey::new_with(sha, &key);
                // Up to MAX_SHORT (15) bytes the short path, from 16 the block path.
                prop_assert_eq!(k.mac_with(sha, &[m1]), reference_hmac(&key, &[m1]));
                prop_assert_eq!(k.mac_with(sha, &m12), reference_hmac(&key, &m12));
                prop_assert_eq!(k.mac_with(sha, &m15), reference_hmac(&key, &m15));
                prop_assert_eq!(k.mac_with(sha, &m16), reference_hmac(&key, &m16));
                prop_assert_eq!(k.mac_with(sha, &m17), reference_hmac(&key, &m17));
                prop_assert_eq!(k.mac_with(sha, &m55), reference_hmac(&key, &m55));
                prop_assert_eq!(k.mac_with(sha, &[]), reference_hmac(&key, &[]));
            }
        }

        #[test]
        fn lanes_equal_single_macs(key in any::<[u8; 32]>(), msgs in any::<[[u8; 12]; 4]>()) {
            for sha in Sha::all() {
                let k = HmacKey::new_with(sha, &key);
                let four = k.macs_with(sha, &msgs);
                let two = k.macs_with(sha, &[msgs[0], msgs[1]]);
                for (i, m) in msgs.iter().enumerate() {
                    prop_assert_eq!(four[i], reference_hmac(&key, m));
                }
                prop_assert_eq!(&two[..], &four[..2]);
            }
        }

        /// Both fused HELLO kernels (SKINNY rounds with SSSE3, and with
        /// AVX-512 where the CPU has it) equal the reference HMAC, the `aes`
        /// crate and SKINNY's `decrypt_u64` run separately.
        #[cfg(target_arch = "x86_64")]
        #[test]
        fn hello_kernels_equal_the_separate_operations(
            ka in any::<[u8; 32]>(),
            kg in any::<[u8; 32]>(),
            ks in any::<[u8; 24]>(),
            msg in any::<[u8; 12]>(),
            aes_in in any::<[u8; 16]>(),
            block in any::<u64>(),
        ) {
            use skinny::cipher::KeyInit as _;
            let (Some(sha), Some(aes)) = (x86::ShaNi::detect(), x86::AesNi::detect()) else {
                return Ok(());
            };
            let hmac = HmacKey::new(&ka);
            let rk = aes.expand256(&kg);
            let cipher = skinny::Skinny64_192::new(&ks.into());
            let want = (
                reference_hmac(&ka, &msg),
                Aes256Keys::portable(&kg).encrypt(&aes_in),
                cipher.decrypt_u64(block),
            );
            let fused = mac_aes_skinny(&hmac, &msg, &Aes256Keys::new(&kg), &aes_in, &cipher, block);
            // A portable SKINNY back end (forced by `--cfg skinny_backend="portable"`)
            // offers no rounds: the separate path, and nothing to compare.
            let Some(rounds) = cipher.decrypt_rounds() else {
                prop_assert_eq!(fused, None);
                return Ok(());
            };
            let w = inner_block(&msg);
            let mut kernels = vec![None];
            kernels.extend(x86::Avx512::detect().map(Some));
            for avx512 in kernels {
                let (mac, out, plain) =
                    sha.hello(aes, avx512, &hmac.inner, &hmac.outer, &w, &rk, &aes_in, &rounds, block);
                prop_assert_eq!((to_bytes(&mac), out, plain), want, "AVX-512: {}", avx512.is_some());
            }
            // The entry point `Hello::check` uses takes the fused path here and agrees.
            prop_assert_eq!(fused, Some(want));
        }

        #[test]
        fn aes_ni_equals_the_aes_crate(key in any::<[u8; 32]>(), block in any::<[u8; 16]>()) {
            prop_assert_eq!(
                Aes256Keys::new(&key).encrypt(&block),
                Aes256Keys::portable(&key).encrypt(&block)
            );
        }

        /// The multi-block first bytes (every length around the 8-block
        /// chunks) equal the first byte of each block's single encryption.
        #[test]
        fn first_bytes_equal_single_blocks(
            key in any::<[u8; 32]>(),
            halves in prop::collection::vec(any::<[u8; 8]>(), 0..30),
        ) {
            let expected: Vec<u8> = halves
                .iter()
                .map(|h| {
                    let mut block = [0u8; 16];
                    block[..8].copy_from_slice(h);
                    Aes256Keys::portable(&key).encrypt(&block)[0]
                })
                .collect();
            prop_assert_eq!(&Aes256Keys::new(&key).first_bytes(&halves), &expected);
            prop_assert_eq!(&Aes256Keys::portable(&key).first_bytes(&halves), &expected);
        }
    }
}
