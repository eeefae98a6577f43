//! The 16-byte HELLO message broadcast over Bluetooth (protocol.md §5).
//!
//! ```text
//! offset  0: ECC      (1 byte)
//! offset  1: EBID     (8 bytes)
//! offset  9: Time16   (2 bytes, big-endian low 16 bits of the sender's NTP seconds)
//! offset 11: MAC      (5 bytes) = HMAC-SHA256(K_A, 0x01 ‖ bytes 0..11)[0..5]
//! ```

use subtle::ConstantTimeEq as _;

use crate::Error;
use crate::ebid::{Ebid, EbidContent};
use crate::ecc::{CountryCode, Ecc};
use crate::keys::{KeyA, KeyG, KeyS};
use crate::mac::{HelloMac, hello_mac_input};
use crate::time::Time16;

/// A HELLO message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// Encrypted country code of the sender's current tuple.
    pub ecc: Ecc,
    /// The sender's current EBID.
    pub ebid: Ebid,
    /// Low 16 bits of the sender's clock at emission.
    pub time: Time16,
    /// Truncated MAC under the sender's K_A.
    pub mac: HelloMac,
}

impl Hello {
    /// Length of a HELLO on the air.
    pub const LEN: usize = 16;

    /// Builds and authenticates a HELLO.
    pub fn new(key: &KeyA, ecc: Ecc, ebid: Ebid, time: Time16) -> Self {
        Self {
            ecc,
            ebid,
            time,
            mac: HelloMac::compute(key, ecc, &ebid, time),
        }
    }

    /// The 16 bytes broadcast.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.ecc.0;
        b[1..9].copy_from_slice(&self.ebid.0);
        b[9..11].copy_from_slice(&self.time.to_bytes());
        b[11..16].copy_from_slice(&self.mac.0);
        b
    }

    /// Parses exactly 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let b: &[u8; Self::LEN] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "HELLO",
            expected: Self::LEN,
            actual: bytes.len(),
        })?;
        let mut ebid = [0u8; 8];
        ebid.copy_from_slice(&b[1..9]);
        let mut mac = [0u8; 5];
        mac.copy_from_slice(&b[11..16]);
        Ok(Self {
            ecc: Ecc(b[0]),
            ebid: Ebid(ebid),
            time: Time16::from_bytes([b[9], b[10]]),
            mac: HelloMac(mac),
        })
    }

    /// Checks the MAC in constant time.
    pub fn verify_mac(&self, key: &KeyA) -> bool {
        self.mac.verify(key, self.ecc, &self.ebid, self.time)
    }

    /// Decrypts the ECC and the EBID and checks the MAC (in constant time),
    /// as [`Ecc::decrypt`], [`Ebid::decrypt`] and [`Hello::verify_mac`] do.
    ///
    /// The three are independent chains of dependent instructions, the MAC's
    /// two SHA-256 compressions the longest (the floor of a HELLO). Issued
    /// one after the other they barely overlap, so with SHA-NI and AES-NI one
    /// kernel interleaves their rounds (`crypto::mac_aes_skinny`); elsewhere
    /// the MAC is issued first, AES and SKINNY behind it, the fastest of the
    /// orders measured (figures: README, Performance).
    /// The caller judges the result (country, epoch, MAC) in its own order.
    #[inline]
    pub fn check(&self, k_g: &KeyG, k_s: &KeyS, k_a: &KeyA) -> HelloCheck {
        let msg = hello_mac_input(self.ecc, &self.ebid, self.time);
        let mut ecc_block = [0u8; 16];
        ecc_block[..8].copy_from_slice(&self.ebid.0);
        let block = u64::from_be_bytes(self.ebid.0);
        // Where the CPU has SHA-NI and AES-NI and K_G is AES-256 (the
        // protocol's K_G): one kernel interleaving the three primitives.
        if let Some((mac, mask, plain)) = k_g.aes256().and_then(|aes| {
            crate::crypto::mac_aes_skinny(k_a.hmac(), &msg, aes, &ecc_block, k_s.cipher(), block)
        }) {
            return HelloCheck {
                country: CountryCode(mask[0] ^ self.ecc.0),
                content: EbidContent::from_block(plain),
                mac_valid: mac[..HelloMac::LEN].ct_eq(&self.mac.0).into(),
            };
        }
        let mac = k_a.mac(&msg);
        let mask = k_g.ecc_mask(&self.ebid.0);
        let block = k_s.cipher().decrypt_u64(block);
        HelloCheck {
            country: CountryCode(mask ^ self.ecc.0),
            content: EbidContent::from_block(block),
            mac_valid: mac[..HelloMac::LEN].ct_eq(&self.mac.0).into(),
        }
    }
}

/// What [`Hello::check`] reads from a HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloCheck {
    /// The decrypted country code.
    pub country: CountryCode,
    /// The decrypted EBID (any key gives some content: check the epoch).
    pub content: EbidContent,
    /// Whether the MAC verifies under the K_A given.
    pub mac_valid: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_a::IdA;
    use crate::time::Epoch;
    use proptest::prelude::*;

    proptest! {
        /// `check` agrees with the three separate operations, for valid and
        /// altered HELLOs, right and wrong keys.
        #[test]
        fn check_equals_the_separate_operations(
            ks in any::<[u8; 24]>(),
            kg in any::<[u8; 32]>(),
            ka in any::<[u8; 32]>(),
            other in any::<[u8; 32]>(),
            epoch in 0u32..=Epoch::MAX_EBID,
            id in 0u64..(1 << 40),
            time in any::<u16>(),
            flip in 0usize..(Hello::LEN * 8 + 1),
        ) {
            let (k_s, k_g, k_a) = (
                KeyS::from_bytes(ks),
                KeyG::from_slice(&kg).unwrap(),
                KeyA::from_bytes(ka),
            );
            let ebid = Ebid::encrypt(&k_s, Epoch(epoch), IdA::from_u64(id)).unwrap();
            let ecc = Ecc::encrypt(&k_g, &ebid, CountryCode::FRANCE);
            let mut bytes = Hello::new(&k_a, ecc, ebid, Time16::from_bytes(time.to_be_bytes())).to_bytes();
            if flip < Hello::LEN * 8 {
                bytes[flip / 8] ^= 1 << (flip % 8);
            }
            let h = Hello::from_bytes(&bytes).unwrap();
            for key_a in [&k_a, &KeyA::from_bytes(other)] {
                let c = h.check(&k_g, &k_s, key_a);
                prop_assert_eq!(c.country, h.ecc.decrypt(&k_g, &h.ebid));
                prop_assert_eq!(c.content, h.ebid.decrypt(&k_s));
                prop_assert_eq!(c.mac_valid, h.verify_mac(key_a));
            }
            let c = h.check(&k_g, &k_s, &k_a);
            prop_assert_eq!(c.mac_valid, flip == Hello::LEN * 8);
            if flip == Hello::LEN * 8 {
                prop_assert_eq!(c.country, CountryCode::FRANCE);
                prop_assert_eq!(c.content.epoch, Epoch(epoch));
            }
        }
    }
}
