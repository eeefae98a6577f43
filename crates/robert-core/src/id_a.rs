//! ID_A: the permanent, secret, per-registration identifier (protocol.md §4.1).

use core::fmt;

use rand_core::CryptoRng;

use crate::{Error, b64};

/// ID_A: 40 random bits identifying a registration on the server. It never
/// leaves the server in clear: phones only ever see it inside EBIDs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdA(pub [u8; IdA::LEN]);

impl IdA {
    /// Length in bytes.
    pub const LEN: usize = 5;

    /// Draws a random ID_A.
    pub fn random(rng: &mut impl CryptoRng) -> Self {
        let mut b = [0u8; Self::LEN];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// Builds an ID_A from a slice of exactly 5 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| Error::InvalidLength {
                what: "ID_A",
                expected: Self::LEN,
                actual: bytes.len(),
            })
    }

    /// The 5 bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// As a 40-bit big-endian integer (useful to partition work by ID_A ranges).
    pub fn to_u64(self) -> u64 {
        self.0.iter().fold(0, |acc, b| (acc << 8) | u64::from(*b))
    }

    /// From the low 40 bits of a big-endian integer.
    pub fn from_u64(v: u64) -> Self {
        let b = v.to_be_bytes();
        Self([b[3], b[4], b[5], b[6], b[7]])
    }

    /// Base64 form (8 characters), as the reference's `identity.ida` column.
    pub fn to_base64(&self) -> String {
        b64::encode(self.0)
    }

    /// Parses the base64 form.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        b64::decode_array(s, "ID_A").map(Self)
    }
}

/// ID_A is a pseudonym but still personal data: debug output shows only its
/// first byte, enough to correlate log lines without enumerating identities.
impl fmt::Debug for IdA {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdA({:02x}…)", self.0[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_integer_forms() {
        let id = IdA::from_base64("30Liauw=").unwrap();
        assert_eq!(id.0, [0xdf, 0x42, 0xe2, 0x6a, 0xec]);
        assert_eq!(id.to_base64(), "30Liauw=");
        assert_eq!(id.to_u64(), 0xdf42e26aec);
        assert_eq!(IdA::from_u64(0xdf42e26aec), id);
        assert!(IdA::from_slice(&[1, 2, 3]).is_err());
    }
}
