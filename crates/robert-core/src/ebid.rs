//! EBID: the ephemeral Bluetooth identifier (protocol.md §4.2).
//!
//! ```text
//! plaintext = epoch (24 bits, big-endian) ‖ ID_A (40 bits)
//! EBID      = SKINNY-64-192-Encrypt(K_S[day(epoch)], plaintext)
//! ```

use core::fmt;

use crate::id_a::IdA;
use crate::keys::KeyS;
use crate::time::Epoch;
use crate::{Error, b64};

/// An EBID: 8 bytes, unlinkable to ID_A without the day's K_S.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ebid(pub [u8; Ebid::LEN]);

/// What an EBID decrypts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EbidContent {
    /// The epoch carried on 24 bits.
    pub epoch: Epoch,
    /// The registration.
    pub id_a: IdA,
}

impl EbidContent {
    /// The 8-byte plaintext block as a big-endian integer. Fails if the epoch
    /// does not fit in 24 bits.
    pub fn to_block(self) -> Result<u64, Error> {
        if self.epoch.0 > Epoch::MAX_EBID {
            return Err(Error::EpochOutOfRange(self.epoch.0));
        }
        Ok((u64::from(self.epoch.0) << 40) | self.id_a.to_u64())
    }

    /// Splits a decrypted block.
    pub fn from_block(block: u64) -> Self {
        // The shift leaves 24 bits, which always fit in u32.
        let epoch = Epoch((block >> 40) as u32);
        Self {
            epoch,
            id_a: IdA::from_u64(block),
        }
    }
}

impl Ebid {
    /// Length in bytes.
    pub const LEN: usize = 8;

    /// Encrypts `(epoch, id_a)` under the day key. The caller picks the key of
    /// the epoch's UTC day ([`crate::time::ServiceStart::day_of`]).
    pub fn encrypt(key: &KeyS, epoch: Epoch, id_a: IdA) -> Result<Self, Error> {
        let block = EbidContent { epoch, id_a }.to_block()?;
        Ok(Self(key.cipher().encrypt_u64(block).to_be_bytes()))
    }

    /// Decrypts under a day key. Any 8 bytes decrypt to *something*: the caller
    /// must check the epoch (it is how a wrong key or a forged EBID shows).
    pub fn decrypt(&self, key: &KeyS) -> EbidContent {
        EbidContent::from_block(key.cipher().decrypt_u64(u64::from_be_bytes(self.0)))
    }

    /// Builds an EBID from a slice of exactly 8 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| Error::InvalidLength {
                what: "EBID",
                expected: Self::LEN,
                actual: bytes.len(),
            })
    }

    /// The 8 bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// Base64 form (12 characters ending in `=`).
    pub fn to_base64(&self) -> String {
        b64::encode(self.0)
    }

    /// Parses the base64 form.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        b64::decode_array(s, "ebid").map(Self)
    }
}

impl fmt::Debug for Ebid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ebid({})", self.to_base64())
    }
}

/// Decrypts many EBIDs under one day key with SKINNY's batch API.
pub fn decrypt_batch(key: &KeyS, ebids: &[Ebid]) -> Vec<EbidContent> {
    let mut blocks: Vec<u64> = ebids.iter().map(|e| u64::from_be_bytes(e.0)).collect();
    key.cipher().decrypt_batch(&mut blocks);
    blocks.into_iter().map(EbidContent::from_block).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tv5_key() -> KeyS {
        KeyS::from_base64_for_tests("/T2imPBNO8h7IR3avVJpH6frrqSrarkM")
    }

    impl KeyS {
        fn from_base64_for_tests(s: &str) -> Self {
            KeyS::from_slice(&b64::decode(s, "K_S").unwrap()).unwrap()
        }
    }

    /// TV-5: EBID of ID_A 30Liauw= at epoch 66855 under server-key-20220428.
    #[test]
    fn tv5_ebid() {
        let k = tv5_key();
        let id = IdA::from_base64("30Liauw=").unwrap();
        let e = Ebid::encrypt(&k, Epoch(66855), id).unwrap();
        assert_eq!(e.to_base64(), "yqfVsPunrqc=");
        assert_eq!(e.0, [0xca, 0xa7, 0xd5, 0xb0, 0xfb, 0xa7, 0xae, 0xa7]);
        assert_eq!(
            e.decrypt(&k),
            EbidContent {
                epoch: Epoch(66855),
                id_a: id
            }
        );
    }

    /// TV-5 negative case: a foreign EBID decrypts to an absurd epoch.
    #[test]
    fn tv5_wrong_ebid_decrypts_to_epoch_3188169() {
        let e = Ebid::from_base64("ASdbJwGbxRw=").unwrap();
        let c = e.decrypt(&tv5_key());
        assert_eq!(c.epoch, Epoch(3_188_169));
        assert_eq!(c.id_a.0, [0x13, 0x8d, 0x42, 0xac, 0xfa]);
    }

    #[test]
    fn epoch_must_fit_24_bits() {
        let k = tv5_key();
        let id = IdA([1; 5]);
        assert!(Ebid::encrypt(&k, Epoch(Epoch::MAX_EBID), id).is_ok());
        assert_eq!(
            Ebid::encrypt(&k, Epoch(Epoch::MAX_EBID + 1), id),
            Err(Error::EpochOutOfRange(0x0100_0000))
        );
    }

    #[test]
    fn batch_matches_single() {
        let k = tv5_key();
        let ebids: Vec<Ebid> = (0..300u32)
            .map(|i| {
                Ebid::encrypt(&k, Epoch(i * 7), IdA::from_u64(u64::from(i) * 0x1_0001)).unwrap()
            })
            .collect();
        let out = decrypt_batch(&k, &ebids);
        for (e, c) in ebids.iter().zip(&out) {
            assert_eq!(e.decrypt(&k), *c);
        }
    }
}
