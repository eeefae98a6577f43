//! MACs of HELLO messages and authenticated requests (protocol.md §5, §8.2).
//!
//! ```text
//! HELLO MAC   = HMAC-SHA256(K_A, 0x01 ‖ ECC ‖ EBID ‖ Time16)[0..5]
//! request MAC = HMAC-SHA256(K_A, salt ‖ EBID ‖ epochId (4 bytes BE) ‖ Time32)   (all 32 bytes)
//! ```
//!
//! The salt (the spec's prefix "c1".."c4") separates the message types, so a
//! MAC for one request cannot be replayed as another.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::ebid::Ebid;
use crate::ecc::Ecc;
use crate::keys::KeyA;
use crate::time::{Time16, Time32};
use crate::{Error, b64};

/// The one-byte salt that prefixes every MAC input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Salt {
    /// HELLO messages (0x01).
    Hello = 0x01,
    /// Exposure status request, `/status` (0x02).
    Status = 0x02,
    /// `/unregister` (0x03).
    Unregister = 0x03,
    /// `/deleteExposureHistory` (0x04).
    DeleteHistory = 0x04,
}

/// The 5-byte truncated MAC of a HELLO.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HelloMac(pub [u8; HelloMac::LEN]);

impl HelloMac {
    /// Length in bytes.
    pub const LEN: usize = 5;

    /// Computes the MAC of a HELLO's first 11 bytes.
    pub fn compute(key: &KeyA, ecc: Ecc, ebid: &Ebid, time: Time16) -> Self {
        let out = key.mac(&hello_mac_input(ecc, ebid, time));
        let mut mac = [0u8; Self::LEN];
        mac.copy_from_slice(&out[..Self::LEN]);
        Self(mac)
    }

    /// Checks the MAC in constant time.
    pub fn verify(&self, key: &KeyA, ecc: Ecc, ebid: &Ebid, time: Time16) -> bool {
        Self::compute(key, ecc, ebid, time).0.ct_eq(&self.0).into()
    }

    /// Base64 form (8 characters).
    pub fn to_base64(self) -> String {
        b64::encode(self.0)
    }

    /// Parses the base64 form.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        b64::decode_array(s, "mac").map(Self)
    }
}

impl fmt::Debug for HelloMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HelloMac({})", self.to_base64())
    }
}

pub(crate) fn hello_mac_input(ecc: Ecc, ebid: &Ebid, time: Time16) -> [u8; 12] {
    let mut input = [0u8; 12];
    input[0] = Salt::Hello as u8;
    input[1] = ecc.0;
    input[2..10].copy_from_slice(&ebid.0);
    input[10..12].copy_from_slice(&time.to_bytes());
    input
}

/// The full 32-byte MAC of an authenticated request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestMac(pub [u8; RequestMac::LEN]);

impl RequestMac {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// Computes the MAC of a status, unregister or delete-history request.
    ///
    /// `epoch_id` is the request's `epochId`, taken as a 32-bit big-endian
    /// integer (the implementation's format; the spec's 24 bits do not
    /// interoperate).
    pub fn compute(key: &KeyA, salt: Salt, ebid: &Ebid, epoch_id: u32, time: Time32) -> Self {
        let mut input = [0u8; 17];
        input[0] = salt as u8;
        input[1..9].copy_from_slice(&ebid.0);
        input[9..13].copy_from_slice(&epoch_id.to_be_bytes());
        input[13..17].copy_from_slice(&time.to_bytes());
        Self(key.mac(&input))
    }

    /// Checks the MAC in constant time.
    pub fn verify(&self, key: &KeyA, salt: Salt, ebid: &Ebid, epoch_id: u32, time: Time32) -> bool {
        Self::compute(key, salt, ebid, epoch_id, time)
            .0
            .ct_eq(&self.0)
            .into()
    }

    /// Base64 form (44 characters).
    pub fn to_base64(self) -> String {
        b64::encode(self.0)
    }

    /// Parses the base64 form.
    pub fn from_base64(s: &str) -> Result<Self, Error> {
        b64::decode_array(s, "mac").map(Self)
    }
}

impl fmt::Debug for RequestMac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestMac { .. }")
    }
}
