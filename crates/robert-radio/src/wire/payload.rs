//! The "BLE payload" that carries a HELLO (client-ble.md §1.2).
//!
//! ```text
//! offset size field
//!   0     16  HELLO (robert_core::hello::Hello)
//!  16      1  version (signed): 1 (StopCovid 1.x, iOS), 2 (Android from TAC 2.2.4)
//!  17      1  TX gain (signed): the SENDER's calibration tx gain in dB, e.g. -30
//!  18      1  optional partial RSSI (signed): GATT writes with RSSI only (§2.2)
//! ```

use robert_core::hello::Hello;

use super::WireError;

/// A HELLO with its BLE envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlePayload {
    /// The 16-byte ROBERT HELLO.
    pub hello: Hello,
    /// Payload format version (byte 16).
    pub version: i8,
    /// The sender's calibration TX gain in dB (byte 17). Not a transmit power.
    pub tx_gain: i8,
    /// Partially calibrated RSSI (byte 18), present only in writes from a
    /// phone that measured the receiver's advert: `raw − rxGain(writer)`.
    pub rssi: Option<i8>,
}

impl BlePayload {
    /// Length without the RSSI byte (adverts, reads, iPhone writes).
    pub const LEN: usize = 18;
    /// Length with the RSSI byte (writes from "no advertiser" Androids).
    pub const LEN_WITH_RSSI: usize = 19;
    /// Version byte of StopCovid 1.x on both OSes and of iOS TAC.
    pub const VERSION_1: i8 = 1;
    /// Version byte of Android TAC ≥ 2.2.4 (February 2021).
    pub const VERSION_2: i8 = 2;

    /// A payload without RSSI byte.
    pub const fn new(hello: Hello, version: i8, tx_gain: i8) -> Self {
        Self {
            hello,
            version,
            tx_gain,
            rssi: None,
        }
    }

    /// The same payload carrying a partial RSSI byte.
    pub const fn with_rssi(mut self, rssi: i8) -> Self {
        self.rssi = Some(rssi);
        self
    }

    /// Encoded length: 18, or 19 with the RSSI byte.
    pub const fn encoded_len(&self) -> usize {
        if self.rssi.is_some() {
            Self::LEN_WITH_RSSI
        } else {
            Self::LEN
        }
    }

    /// Appends the encoded payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hello.to_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.tx_gain.to_be_bytes());
        if let Some(r) = self.rssi {
            out.extend_from_slice(&r.to_be_bytes());
        }
    }

    /// The encoded payload (18 or 19 bytes).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut v);
        v
    }

    /// Strict decoder: exactly 18 bytes, or 19 with the RSSI byte.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > Self::LEN_WITH_RSSI {
            return Err(WireError::TooLong {
                what: "BLE payload",
                max: Self::LEN_WITH_RSSI,
                actual: bytes.len(),
            });
        }
        Self::decode_lenient(bytes)
    }

    /// The reference apps' decoder: at least 18 bytes, byte 18 read if
    /// present, anything after it ignored.
    pub fn decode_lenient(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() < Self::LEN {
            return Err(WireError::TooShort {
                what: "BLE payload",
                min: Self::LEN,
                actual: bytes.len(),
            });
        }
        let hello = Hello::from_bytes(&bytes[..Hello::LEN]).map_err(|_| WireError::TooShort {
            // Unreachable: the slice is exactly Hello::LEN bytes long.
            what: "HELLO",
            min: Hello::LEN,
            actual: bytes.len(),
        })?;
        Ok(Self {
            hello,
            version: i8::from_be_bytes([bytes[16]]),
            tx_gain: i8::from_be_bytes([bytes[17]]),
            rssi: bytes.get(18).map(|&b| i8::from_be_bytes([b])),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello::from_bytes(&[
            0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5,
        ])
        .unwrap()
    }

    #[test]
    fn known_layout_without_rssi() {
        let p = BlePayload::new(hello(), 1, -30);
        let expected: [u8; 18] = [
            0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0x01, 0xE2,
        ];
        assert_eq!(p.to_vec(), expected);
        assert_eq!(BlePayload::decode(&expected).unwrap(), p);
    }

    #[test]
    fn known_layout_with_rssi() {
        let p = BlePayload::new(hello(), 2, -25).with_rssi(-60);
        let bytes = p.to_vec();
        assert_eq!(bytes.len(), 19);
        assert_eq!(&bytes[16..], &[0x02, 0xE7, 0xC4]);
        assert_eq!(BlePayload::decode(&bytes).unwrap(), p);
    }

    #[test]
    fn strict_and_lenient_lengths() {
        let mut bytes = BlePayload::new(hello(), 1, -10).with_rssi(5).to_vec();
        assert!(matches!(
            BlePayload::decode(&bytes[..17]),
            Err(WireError::TooShort {
                min: 18,
                actual: 17,
                ..
            })
        ));
        bytes.push(0x77);
        assert!(matches!(
            BlePayload::decode(&bytes),
            Err(WireError::TooLong {
                max: 19,
                actual: 20,
                ..
            })
        ));
        let lenient = BlePayload::decode_lenient(&bytes).unwrap();
        assert_eq!(lenient.rssi, Some(5));
        assert_eq!(lenient.tx_gain, -10);
    }
}
