//! The 16-byte HELLO message broadcast over Bluetooth (protocol.md §5).
//!
//! ```text
//! offset  0: ECC      (1 byte)
//! offset  1: EBID     (8 bytes)
//! offset  9: Time16   (2 bytes, big-endian low 16 bits of the sender's NTP seconds)
//! offset 11: MAC      (5 bytes) = HMAC-SHA256(K_A, 0x01 ‖ bytes 0..11)[0..5]
//! ```

use crate::Error;
use crate::ebid::Ebid;
use crate::ecc::Ecc;
use crate::keys::KeyA;
use crate::mac::HelloMac;
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
}
