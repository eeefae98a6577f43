//! The protocol's secret keys (protocol.md §3).
//!
//! | key | size | role |
//! |---|---|---|
//! | [`KeyS`] | 192 bits, one per UTC day | SKINNY-64-192 key of the EBIDs |
//! | [`KeyG`] | AES-128/192/256 | federation key of the ECC |
//! | [`KeyA`] | 256 bits, per registration | HMAC-SHA256 key of HELLO and request MACs |
//! | [`KeyATuples`] | 256 bits, per registration | AES-256-GCM key of the tuple bundles |
//! | [`Kek`] | 256 bits | AES-256-GCM key wrapping each K_A and K_A_Tuples at rest |
//!
//! Every key is zeroized on drop, compares in constant time, and prints as
//! `KeyX { .. }`. Expanded forms (SKINNY round keys, AES schedules, the keyed
//! HMAC state) are computed once at construction and zeroized with the key.

use core::fmt;

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::Hmac;
use rand_core::CryptoRng;
use sha2::Sha256;
use skinny::Skinny64_192;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::{Error, crypto};

/// HMAC-SHA256.
pub(crate) type HmacSha256 = Hmac<Sha256>;

macro_rules! secret_debug_eq {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), " { .. }"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.raw.as_slice().ct_eq(other.raw.as_slice()).into()
            }
        }

        impl Eq for $name {}

        impl ZeroizeOnDrop for $name {}
    };
}

/// K_S: the per-day server key, 24 bytes, used with SKINNY-64-192 (protocol.md §3, §4.2).
///
/// Holds the expanded cipher so that EBID encryption costs one block operation.
#[derive(Clone)]
pub struct KeyS {
    raw: Zeroizing<[u8; 24]>,
    cipher: Skinny64_192,
}

secret_debug_eq!(KeyS);

impl KeyS {
    /// Length of K_S in bytes.
    pub const LEN: usize = 24;

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 24]) -> Self {
        let raw = Zeroizing::new(bytes);
        let cipher = Skinny64_192::new(&(*raw).into());
        Self { raw, cipher }
    }

    /// Builds a key from a slice of exactly 24 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; 24] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "K_S",
            expected: 24,
            actual: bytes.len(),
        })?;
        let k = Self::from_bytes(arr);
        let mut arr = arr;
        arr.zeroize();
        Ok(k)
    }

    /// Draws a fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut b = Zeroizing::new([0u8; 24]);
        rng.fill_bytes(b.as_mut());
        Self::from_bytes(*b)
    }

    /// The raw key, for the key store only.
    pub fn expose_secret(&self) -> &[u8; 24] {
        &self.raw
    }

    /// The prepared SKINNY-64-192 cipher.
    pub fn cipher(&self) -> &Skinny64_192 {
        &self.cipher
    }
}

/// The prepared AES cipher of a [`KeyG`]. AES-256 (production) has its round
/// keys expanded once for AES-NI ([`crypto::Aes256Keys`]).
#[derive(Clone)]
enum EccAes {
    Aes128(aes::Aes128),
    Aes192(aes::Aes192),
    Aes256(crypto::Aes256Keys),
}

/// K_G: the federation key (AES-128, -192 or -256), which encrypts country codes
/// into ECCs (protocol.md §4.3). Production uses AES-256.
#[derive(Clone)]
pub struct KeyG {
    raw: Zeroizing<Vec<u8>>,
    aes: EccAes,
}

secret_debug_eq!(KeyG);

impl KeyG {
    /// Builds K_G from 16, 24 or 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let bad = || Error::InvalidLength {
            what: "K_G",
            expected: 32,
            actual: bytes.len(),
        };
        let aes = match bytes.len() {
            16 => EccAes::Aes128(aes::Aes128::new_from_slice(bytes).map_err(|_| bad())?),
            24 => EccAes::Aes192(aes::Aes192::new_from_slice(bytes).map_err(|_| bad())?),
            32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(bytes);
                let aes = EccAes::Aes256(crypto::Aes256Keys::new(&key));
                key.zeroize();
                aes
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            raw: Zeroizing::new(bytes.to_vec()),
            aes,
        })
    }

    /// Draws a fresh random AES-256 key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(b.as_mut());
        // A 32-byte slice is always a valid AES-256 key.
        match Self::from_slice(b.as_ref()) {
            Ok(k) => k,
            Err(_) => unreachable!("32 bytes is a valid K_G length"),
        }
    }

    /// The raw key, for the key store only.
    pub fn expose_secret(&self) -> &[u8] {
        &self.raw
    }

    /// First byte of `AES(K_G, ebid ‖ 0^64)`: the keystream byte the ECC XORs with.
    pub fn ecc_mask(&self, ebid: &[u8; 8]) -> u8 {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(ebid);
        self.ecc_block(&block)[0]
    }

    #[inline]
    fn ecc_block(&self, block: &[u8; 16]) -> [u8; 16] {
        let mut b = aes::Block::from(*block);
        match &self.aes {
            EccAes::Aes128(c) => c.encrypt_block(&mut b),
            EccAes::Aes192(c) => c.encrypt_block(&mut b),
            EccAes::Aes256(k) => return k.encrypt(block),
        }
        b.into()
    }

    /// The AES-256 round keys, when K_G is an AES-256 key.
    #[inline]
    pub(crate) fn aes256(&self) -> Option<&crypto::Aes256Keys> {
        match &self.aes {
            EccAes::Aes256(k) => Some(k),
            _ => None,
        }
    }

    /// [`KeyG::ecc_mask`] for many EBIDs at once (AES pipelined over the blocks).
    pub fn ecc_masks(&self, ebids: &[[u8; 8]]) -> Vec<u8> {
        if let EccAes::Aes256(k) = &self.aes {
            // Independent blocks: several in flight at once.
            return k.first_bytes(ebids);
        }
        let mut blocks: Vec<aes::Block> = ebids
            .iter()
            .map(|e| {
                let mut block = [0u8; 16];
                block[..8].copy_from_slice(e);
                block.into()
            })
            .collect();
        match &self.aes {
            EccAes::Aes128(c) => c.encrypt_blocks(&mut blocks),
            EccAes::Aes192(c) => c.encrypt_blocks(&mut blocks),
            EccAes::Aes256(_) => {}
        }
        blocks.iter().map(|b| b[0]).collect()
    }
}

/// K_A (the spec's K^auth_A): the per-registration HMAC-SHA256 key of HELLO and
/// request MACs (protocol.md §3.2, §5, §8).
///
/// Construction also computes the HMAC inner and outer states, so a MAC of a
/// HELLO or a request costs two SHA-256 compressions instead of four.
#[derive(Clone)]
pub struct KeyA {
    raw: Zeroizing<[u8; 32]>,
    hmac: crypto::HmacKey,
}

secret_debug_eq!(KeyA);

impl KeyA {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let raw = Zeroizing::new(bytes);
        let hmac = crypto::HmacKey::new(&raw);
        Self { raw, hmac }
    }

    /// The raw key, for wrapping and storage only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.raw
    }

    /// HMAC-SHA-256 under this key of a message of at most 55 bytes.
    #[inline]
    pub(crate) fn mac<const N: usize>(&self, msg: &[u8; N]) -> [u8; 32] {
        self.hmac.mac(msg)
    }

    /// The HMAC states of this key.
    #[inline]
    pub(crate) fn hmac(&self) -> &crypto::HmacKey {
        &self.hmac
    }

    /// [`KeyA::mac`] of `L` messages at once, their compressions interleaved.
    #[inline]
    pub(crate) fn macs<const N: usize, const L: usize>(
        &self,
        msgs: &[[u8; N]; L],
    ) -> [[u8; 32]; L] {
        self.hmac.macs(msgs)
    }
}

/// K_A_Tuples (the spec's K^enc_A): the per-registration AES-256-GCM key of the
/// tuple bundles (protocol.md §3.2, §6).
#[derive(Clone)]
pub struct KeyATuples {
    raw: Zeroizing<[u8; 32]>,
}

secret_debug_eq!(KeyATuples);

impl KeyATuples {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            raw: Zeroizing::new(bytes),
        }
    }

    /// The raw key, for wrapping and storage only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.raw
    }

    pub(crate) fn aead(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.raw).into())
    }
}

/// A 32-byte key wrapped under the [`Kek`]: `IV(12) ‖ AES-256-GCM(KEK, key)(32) ‖ tag(16)`,
/// the reference's `identity.key_for_mac` / `key_for_tuples` layout (protocol.md §11).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(pub [u8; WrappedKey::LEN]);

impl WrappedKey {
    /// Length of a wrapped key: 12 + 32 + 16.
    pub const LEN: usize = 60;

    /// Parses the 60-byte form.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| Error::InvalidLength {
                what: "wrapped key",
                expected: Self::LEN,
                actual: bytes.len(),
            })
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrappedKey { .. }")
    }
}

/// KEK: the AES-256-GCM key-encryption key protecting each registration's
/// K_A and K_A_Tuples at rest (protocol.md §11).
///
/// Holds the expanded cipher (AES round keys and the GHASH key, zeroized on
/// drop like the raw key): every `/status` and every sender in the risk
/// batch unwraps a K_A, and expanding the key at each unwrap took a third
/// of its time.
#[derive(Clone)]
pub struct Kek {
    raw: Zeroizing<[u8; 32]>,
    aead: Aes256Gcm,
}

secret_debug_eq!(Kek);

impl Kek {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let raw = Zeroizing::new(bytes);
        let aead = Aes256Gcm::new(&(*raw).into());
        Self { raw, aead }
    }

    /// Draws a fresh random key.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut b = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(b.as_mut());
        Self::from_bytes(*b)
    }

    /// The raw key, for the key store only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.raw
    }

    /// Encrypts a 32-byte key with a fresh random IV.
    pub fn wrap(&self, key: &[u8; 32], rng: &mut impl CryptoRng) -> WrappedKey {
        let mut iv = [0u8; 12];
        rng.fill_bytes(&mut iv);
        self.wrap_with_iv(iv, key)
    }

    /// Encrypts a 32-byte key with the given IV. The IV must never repeat
    /// under one KEK for different keys: use [`Kek::wrap`] unless the IV is
    /// fresh and random (or the call is a fixed known-answer check).
    pub fn wrap_with_iv(&self, iv: [u8; 12], key: &[u8; 32]) -> WrappedKey {
        let nonce = Nonce::from(iv);
        let mut out = [0u8; WrappedKey::LEN];
        let (iv_out, rest) = out.split_at_mut(12);
        iv_out.copy_from_slice(&iv);
        let (body, tag_out) = rest.split_at_mut(32);
        body.copy_from_slice(key);
        // GCM only fails for messages beyond 2^36 bytes; a 32-byte key is far below.
        if let Ok(tag) = self.aead.encrypt_inout_detached(&nonce, &[], body.into()) {
            tag_out.copy_from_slice(&tag);
        }
        WrappedKey(out)
    }

    /// Decrypts a wrapped key; fails if it was not wrapped under this KEK or was altered.
    pub fn unwrap(&self, wrapped: &WrappedKey) -> Result<Zeroizing<[u8; 32]>, Error> {
        let (iv, rest) = wrapped.0.split_at(12);
        let (body, tag) = rest.split_at(32);
        let nonce = Nonce::try_from(iv).map_err(|_| Error::Unwrap)?;
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| Error::Unwrap)?;
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(body);
        self.aead
            .decrypt_inout_detached(&nonce, &[], out.as_mut_slice().into(), &tag)
            .map_err(|_| Error::Unwrap)?;
        Ok(out)
    }

    /// Unwraps a K_A.
    pub fn unwrap_key_a(&self, wrapped: &WrappedKey) -> Result<KeyA, Error> {
        self.unwrap(wrapped).map(|k| KeyA::from_bytes(*k))
    }

    /// Unwraps a K_A_Tuples.
    pub fn unwrap_key_a_tuples(&self, wrapped: &WrappedKey) -> Result<KeyATuples, Error> {
        self.unwrap(wrapped).map(|k| KeyATuples::from_bytes(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn debug_never_prints_key_bytes() {
        let k = KeyS::from_bytes([0xAB; 24]);
        assert_eq!(format!("{k:?}"), "KeyS { .. }");
        let g = KeyG::from_slice(&[0xCD; 32]).unwrap();
        assert_eq!(format!("{g:?}"), "KeyG { .. }");
        assert_eq!(format!("{:?}", KeyA::from_bytes([1; 32])), "KeyA { .. }");
        assert_eq!(format!("{:?}", Kek::from_bytes([1; 32])), "Kek { .. }");
    }

    #[test]
    fn kg_sizes() {
        for n in [16, 24, 32] {
            assert!(KeyG::from_slice(&vec![7; n]).is_ok());
        }
        for n in [0, 15, 20, 33] {
            assert!(matches!(
                KeyG::from_slice(&vec![7; n]),
                Err(Error::InvalidLength { .. })
            ));
        }
        assert!(KeyS::from_slice(&[0; 23]).is_err());
    }

    #[test]
    fn kek_wrap_round_trips_and_detects_tampering() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let kek = Kek::generate(&mut rng);
        let key = [0x42u8; 32];
        let w = kek.wrap(&key, &mut rng);
        assert_eq!(*kek.unwrap(&w).unwrap(), key);
        let w2 = kek.wrap(&key, &mut rng);
        assert_ne!(w.0, w2.0, "fresh IV per wrap");
        let mut bad = w.clone();
        bad.0[30] ^= 1;
        assert_eq!(kek.unwrap(&bad), Err(Error::Unwrap));
        assert_eq!(Kek::from_bytes([0; 32]).unwrap(&w), Err(Error::Unwrap));
        // wrap = wrap_with_iv under the IV it drew, which leads the output.
        let iv: [u8; 12] = w.0[..12].try_into().unwrap();
        assert_eq!(kek.wrap_with_iv(iv, &key), w);
        assert_ne!(kek.wrap_with_iv([0; 12], &key), w);
    }

    /// The KEK keeps an expanded `Aes256Gcm`: it must wipe its round keys
    /// and GHASH key on drop (the `zeroize` features of `aes` and
    /// `aes-gcm`); without them this does not compile.
    #[test]
    fn the_kek_cipher_zeroizes_on_drop() {
        fn zeroizes_on_drop<T: ZeroizeOnDrop>() {}
        zeroizes_on_drop::<Aes256Gcm>();
        zeroizes_on_drop::<Kek>();
    }

    /// AES-256-GCM known answer (computed with Python's `cryptography`),
    /// wrapped by a clone that is then dropped and unwrapped by the original:
    /// the expanded cipher each keeps is its own key's.
    #[test]
    fn kek_wrap_matches_an_independent_aes_gcm() {
        let expected = "2424242424242424242424244fcb9e1bb39c9c647cb278f0e768c9fc\
                        36a1692aecf10a37eafe96000c9fbd497194aafcdc6994ed95f17692c265a0b9";
        let kek = Kek::from_bytes([0x42; 32]);
        let copy = kek.clone();
        let w = copy.wrap_with_iv([0x24; 12], &[0x5A; 32]);
        drop(copy);
        let hex: String = w.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert_eq!(*kek.unwrap(&w).unwrap(), [0x5A; 32]);
    }
}
