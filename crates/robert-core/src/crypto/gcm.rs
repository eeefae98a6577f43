//! AES-256-GCM sealing of the tuple bundles (a 12-byte IV, no associated
//! data), as NIST SP 800-38D defines it.
//!
//! Where the CPU has VAES and VPCLMULQDQ on 512-bit vectors, one kernel
//! (`x86::Gcm512`) encrypts sixteen blocks with four counter vectors, writes
//! them back and hashes them while they are still in registers: GHASH four
//! blocks per carry-less instruction, one reduction per sixteen blocks.
//! RustCrypto's `aes-gcm` makes two passes (counter mode, then GHASH one
//! 128-bit `pclmulqdq` at a time: `polyval` 0.7.3 has no wider path), with
//! copies between generic block arrays, and was about half of a bundle's
//! time. Elsewhere, and for opening, `aes-gcm` itself runs. The tests check
//! the two equal.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};

/// The longest plaintext GCM takes: `2^39 − 256` bits (SP 800-38D §5.2.1.1).
const MAX_PLAINTEXT: u64 = (1 << 36) - 32;

/// Encrypts `buf` in place under `key` with `iv` and no associated data and
/// returns the 16-byte tag; `None` (and `buf` untouched) beyond GCM's
/// length limit.
pub(crate) fn seal_in_place(key: &[u8; 32], iv: &[u8; 12], buf: &mut [u8]) -> Option<[u8; 16]> {
    if buf.len() as u64 > MAX_PLAINTEXT {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = super::x86::Gcm512::detect() {
        return Some(cpu.seal(key, iv, buf));
    }
    seal_portable(key, iv, buf)
}

/// [`seal_in_place`] through RustCrypto's `aes-gcm`.
pub(crate) fn seal_portable(key: &[u8; 32], iv: &[u8; 12], buf: &mut [u8]) -> Option<[u8; 16]> {
    Aes256Gcm::new(key.into())
        .encrypt_inout_detached(&Nonce::from(*iv), &[], buf.into())
        .ok()
        .map(Into::into)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// NIST's GCM test case 16 (AES-256, 96-bit IV) without its associated
    /// data, as Python's `cryptography` computes it: key
    /// `feffe992…308308`, IV `cafebabefacedbaddecaf888`, 60-byte plaintext.
    #[test]
    fn a_known_answer() {
        let key: [u8; 32] = hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
        let iv: [u8; 12] = hex("cafebabefacedbaddecaf888");
        let mut buf: Vec<u8> = hex::<60>(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        )
        .to_vec();
        let tag = seal_in_place(&key, &iv, &mut buf).unwrap();
        assert_eq!(
            buf,
            hex::<60>(
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            )
        );
        assert_eq!(tag, hex::<16>("eb9f796c8d356fc31a8433884b696f4f"));
    }

    /// `N` bytes from hex (the `hex` crate; the length is checked).
    fn hex<const N: usize>(s: &str) -> [u8; N] {
        ::hex::decode(s).unwrap().try_into().unwrap()
    }

    /// Where the CPU has the features, the tests above ran the fast path.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_fast_path_runs_where_the_cpu_has_it() {
        use std::arch::is_x86_feature_detected as has;
        let all = has!("aes")
            && has!("pclmulqdq")
            && has!("avx512f")
            && has!("avx512bw")
            && has!("vaes")
            && has!("vpclmulqdq");
        assert_eq!(super::super::x86::Gcm512::detect().is_some(), all);
    }

    /// Lengths across the 16-block groups and partial blocks.
    fn lengths() -> impl Strategy<Value = usize> {
        prop_oneof![0usize..40, 230usize..290, 1000usize..1060, 0usize..5000]
    }

    proptest! {
        #[test]
        fn equals_aes_gcm(
            key in any::<[u8; 32]>(),
            iv in any::<[u8; 12]>(),
            msg in lengths().prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n)),
        ) {
            let mut fast = msg.clone();
            let mut want = msg;
            let tag = seal_in_place(&key, &iv, &mut fast).unwrap();
            let want_tag = seal_portable(&key, &iv, &mut want).unwrap();
            prop_assert_eq!(fast, want);
            prop_assert_eq!(tag, want_tag);
        }
    }

    /// 1,500 bytes (five 16-block groups, then 14 blocks, the last partial) under key `00 01 … 1f`, IV `00 01 … 0b`, byte `i` = `7i mod
    /// 251`, as Python's `cryptography` seals them: the ciphertext's
    /// SHA-256 and the tag.
    #[test]
    fn a_known_answer_across_groups() {
        use sha2::Digest as _;
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        let iv: [u8; 12] = core::array::from_fn(|i| i as u8);
        let mut buf: Vec<u8> = (0..1500).map(|i| (i * 7 % 251) as u8).collect();
        let tag = seal_in_place(&key, &iv, &mut buf).unwrap();
        assert_eq!(
            sha2::Sha256::digest(&buf)[..],
            hex::<32>("a0ccaa07d00b70d7c0a057e3065de985f5d8e532f30cdb617a6fe43134255038")
        );
        assert_eq!(tag, hex::<16>("cbcd51308e29bba8294cb1d896bb4ca5"));
    }
}
