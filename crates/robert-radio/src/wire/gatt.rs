//! The GATT side: one primary service (the 16-bit service UUID) with one
//! characteristic (`a8f12d00-ee67-478b-b95f-65d599407756`) carrying a
//! [`BlePayload`] (client-ble.md §1.3, §1.5–1.7).
//!
//! | server | properties | who uses it |
//! |---|---|---|
//! | Android | WRITE | an iPhone writes its 18-byte payload; a "no advertiser" Android writes 19 bytes |
//! | iOS 1.x | READ | a central reads the 18-byte payload, built fresh on each read |
//! | iOS TAC 4.x | READ + WRITE | as 1.x, and accepts ≥ 19-byte writes carrying an RSSI byte |
//!
//! Every payload fits a single ATT Write Request with the default ATT_MTU of
//! 23 bytes (20 bytes of value; Core Specification Vol 3 Part F §3.2.9, §3.4.5.1).

use robert_core::hello::Hello;

use super::WireError;
use super::payload::BlePayload;
use crate::calibration;

/// Largest attribute value in one ATT Write Request at the default ATT_MTU
/// (23 − 1 opcode − 2 handle).
pub const MAX_SINGLE_WRITE: usize = 20;

/// The properties a phone's GATT characteristic exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CharacteristicProperties {
    /// Readable: returns the 18-byte payload.
    pub read: bool,
    /// Writable: accepts a payload.
    pub write: bool,
    /// Minimum length of an accepted write.
    pub min_write_len: usize,
}

impl CharacteristicProperties {
    /// Android (all versions): WRITE only, payloads of ≥ 18 bytes.
    pub const ANDROID: Self = Self {
        read: false,
        write: true,
        min_write_len: BlePayload::LEN,
    };
    /// iOS StopCovid 1.x: READ only.
    pub const IOS_1: Self = Self {
        read: true,
        write: false,
        min_write_len: usize::MAX,
    };
    /// iOS TousAntiCovid 4.x: READ, and WRITE of payloads carrying an RSSI byte.
    pub const IOS_4: Self = Self {
        read: true,
        write: true,
        min_write_len: BlePayload::LEN_WITH_RSSI,
    };

    /// Whether a write of `payload` would be accepted.
    pub fn accepts_write(&self, payload: &BlePayload) -> bool {
        self.write && payload.encoded_len() >= self.min_write_len
    }
}

/// Decodes a value written into the characteristic: 18 bytes, or 19 with the
/// RSSI byte (strict: trailing bytes are an error).
pub fn decode_write(bytes: &[u8]) -> Result<BlePayload, WireError> {
    BlePayload::decode(bytes)
}

/// Decodes a value read from the characteristic: exactly 18 bytes (a read
/// never carries an RSSI byte).
pub fn decode_read(bytes: &[u8]) -> Result<BlePayload, WireError> {
    if bytes.len() > BlePayload::LEN {
        return Err(WireError::TooLong {
            what: "GATT read payload",
            max: BlePayload::LEN,
            actual: bytes.len(),
        });
    }
    BlePayload::decode(bytes)
}

/// The 19-byte payload a "no advertiser" Android (TAC ≥ 2.2.4, §1.7) writes to
/// a peer after measuring `measured_raw_rssi` (dBm) on the peer's advert.
///
/// Byte 17 is the writer's TX gain; byte 18 the partial RSSI
/// `measured_raw_rssi − writer_rx_gain`, saturated to a signed byte. The
/// receiver finishes with [`calibration::finish_partial`].
pub fn no_advertiser_write(
    hello: Hello,
    version: i8,
    writer_tx_gain: i8,
    measured_raw_rssi: i32,
    writer_rx_gain: i8,
) -> BlePayload {
    BlePayload::new(hello, version, writer_tx_gain).with_rssi(calibration::saturate_i8(
        calibration::partial_rssi(measured_raw_rssi, writer_rx_gain),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello::from_bytes(&[7u8; 16]).unwrap()
    }

    #[test]
    fn payloads_fit_one_att_write() {
        let p = no_advertiser_write(hello(), BlePayload::VERSION_2, -30, -70, -5);
        assert!(p.encoded_len() <= MAX_SINGLE_WRITE);
        assert_eq!(p.to_vec().len(), 19);
        // partial = -70 - (-5) = -65
        assert_eq!(p.to_vec()[18], (-65i8).to_be_bytes()[0]);
        assert_eq!(p.rssi, Some(-65));
    }

    #[test]
    fn partial_rssi_saturates() {
        let p = no_advertiser_write(hello(), 2, -30, -126, 20);
        assert_eq!(p.rssi, Some(-128));
        let p = no_advertiser_write(hello(), 2, -30, 120, -30);
        assert_eq!(p.rssi, Some(127));
    }

    #[test]
    fn read_and_write_lengths() {
        let p18 = BlePayload::new(hello(), 1, -15);
        let p19 = p18.with_rssi(-50);
        assert_eq!(decode_read(&p18.to_vec()).unwrap(), p18);
        assert!(matches!(
            decode_read(&p19.to_vec()),
            Err(WireError::TooLong { max: 18, .. })
        ));
        assert_eq!(decode_write(&p19.to_vec()).unwrap(), p19);
        assert!(matches!(
            decode_write(&p18.to_vec()[..17]),
            Err(WireError::TooShort { .. })
        ));
    }

    #[test]
    fn characteristic_properties() {
        let p18 = BlePayload::new(hello(), 1, -15);
        let p19 = p18.with_rssi(-50);
        assert!(CharacteristicProperties::ANDROID.accepts_write(&p18));
        assert!(CharacteristicProperties::ANDROID.accepts_write(&p19));
        assert!(!CharacteristicProperties::IOS_1.accepts_write(&p19));
        assert!(!CharacteristicProperties::IOS_4.accepts_write(&p18));
        assert!(CharacteristicProperties::IOS_4.accepts_write(&p19));
        const { assert!(!CharacteristicProperties::ANDROID.read) };
    }
}
