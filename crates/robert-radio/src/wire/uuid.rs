//! UUIDs and the StopCovid BLE identifiers (client-ble.md §1.1).

use std::fmt;

use super::WireError;
use super::advert::ManufacturerPattern;

/// A 128-bit UUID, bytes in the usual textual (big-endian) order.
///
/// On the air, Bluetooth sends 128-bit UUIDs little-endian: see
/// [`Uuid128::to_le_bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid128(pub [u8; 16]);

/// The Bluetooth SIG base UUID `00000000-0000-1000-8000-00805f9b34fb` from
/// which 16-bit UUIDs are expanded (Core Specification Vol 3 Part B §2.5.1).
pub const BLUETOOTH_BASE_UUID: Uuid128 = Uuid128([
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0x80, 0x5f, 0x9b, 0x34, 0xfb,
]);

impl Uuid128 {
    /// Expands a 16-bit SIG UUID: `0000xxxx-0000-1000-8000-00805f9b34fb`.
    pub const fn from_u16(short: u16) -> Self {
        let mut b = BLUETOOTH_BASE_UUID.0;
        let s = short.to_be_bytes();
        b[2] = s[0];
        b[3] = s[1];
        Self(b)
    }

    /// The 16-bit form, if this UUID is built on the SIG base UUID with a
    /// 16-bit value.
    pub fn as_u16(&self) -> Option<u16> {
        let mut base = self.0;
        base[2] = 0;
        base[3] = 0;
        (base == BLUETOOTH_BASE_UUID.0).then(|| u16::from_be_bytes([self.0[2], self.0[3]]))
    }

    /// The 16 bytes in on-air (little-endian) order.
    pub fn to_le_bytes(&self) -> [u8; 16] {
        let mut b = self.0;
        b.reverse();
        b
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits of either case).
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(WireError::BadUuid);
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0usize;
        for (i, &c) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(WireError::BadUuid);
                }
                continue;
            }
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(WireError::BadUuid),
            };
            let byte = &mut out[nibbles / 2];
            *byte = (*byte << 4) | v;
            nibbles += 1;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Uuid128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// StopCovid's 16-bit service UUID 0xFD64 (`0000fd64-0000-1000-8000-00805f9b34fb`).
pub const SERVICE_UUID16: u16 = 0xFD64;

/// The alternative service UUID 0xF061 of TAC ≥ 2.2.1 (`useProximityBleIds()`).
pub const ALT_SERVICE_UUID16: u16 = 0xF061;

/// The GATT characteristic `a8f12d00-ee67-478b-b95f-65d599407756`.
pub const CHARACTERISTIC_UUID: Uuid128 = Uuid128([
    0xa8, 0xf1, 0x2d, 0x00, 0xee, 0x67, 0x47, 0x8b, 0xb9, 0x5f, 0x65, 0xd5, 0x99, 0x40, 0x77, 0x56,
]);

/// Apple's Bluetooth SIG company identifier (76).
pub const APPLE_COMPANY_ID: u16 = 0x004C;

/// The identifiers a phone is configured with (server config keys
/// `ble.serviceUUID`, `ble.characteristicUUID`,
/// `ble.backgroundServiceManufacturerData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BleIds {
    /// 16-bit service UUID advertised and used as GATT service.
    pub service: u16,
    /// The GATT characteristic carrying the payload.
    pub characteristic: Uuid128,
    /// The Apple overflow-area pattern of a backgrounded iPhone advertising
    /// [`BleIds::service`].
    pub background_pattern: ManufacturerPattern,
}

impl BleIds {
    /// The identifiers of every StopCovid / TousAntiCovid version (default).
    ///
    /// Pattern `"1.0.0.0.0.0.0.0.0.0.0.8.0.0.0.0.0"`: overflow type 0x01, bit 0x08 of byte 11.
    pub const STOPCOVID: Self = Self {
        service: SERVICE_UUID16,
        characteristic: CHARACTERISTIC_UUID,
        background_pattern: ManufacturerPattern([
            0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0,
        ]),
    };

    /// The alternative set of TAC ≥ 2.2.1 (`useProximityBleIds()`, off by
    /// default): service 0xF061, pattern `"1.0.0.0.0.0.0.0.0.0.64.0.0.0.0.0.0"`.
    ///
    /// Assumption: the characteristic UUID is unchanged (client-ble.md lists
    /// only the service and the pattern as alternative values).
    pub const PROXIMITY_ALT: Self = Self {
        service: ALT_SERVICE_UUID16,
        characteristic: CHARACTERISTIC_UUID,
        background_pattern: ManufacturerPattern([
            0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0,
        ]),
    };

    /// The 128-bit form of the service UUID.
    pub const fn service_uuid128(&self) -> Uuid128 {
        Uuid128::from_u16(self.service)
    }
}

impl Default for BleIds {
    fn default() -> Self {
        Self::STOPCOVID
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_uuid_expands_to_the_documented_string() {
        assert_eq!(
            Uuid128::from_u16(SERVICE_UUID16).to_string(),
            "0000fd64-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(
            Uuid128::from_u16(ALT_SERVICE_UUID16).to_string(),
            "0000f061-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(
            BleIds::STOPCOVID.service_uuid128(),
            Uuid128::parse("0000FD64-0000-1000-8000-00805F9B34FB").unwrap()
        );
    }

    #[test]
    fn characteristic_round_trips_through_text() {
        let s = "a8f12d00-ee67-478b-b95f-65d599407756";
        assert_eq!(Uuid128::parse(s).unwrap(), CHARACTERISTIC_UUID);
        assert_eq!(CHARACTERISTIC_UUID.to_string(), s);
        assert_eq!(CHARACTERISTIC_UUID.as_u16(), None);
        assert_eq!(Uuid128::from_u16(0xFD64).as_u16(), Some(0xFD64));
        assert_eq!(CHARACTERISTIC_UUID.to_le_bytes()[0], 0x56);
        assert_eq!(CHARACTERISTIC_UUID.to_le_bytes()[15], 0xa8);
    }

    #[test]
    fn malformed_uuid_strings_are_rejected() {
        for s in [
            "",
            "a8f12d00ee67478bb95f65d599407756",
            "a8f12d00-ee67-478b-b95f-65d59940775",
            "a8f12d00-ee67-478b-b95f-65d5994077567",
            "a8f12d00+ee67-478b-b95f-65d599407756",
            "g8f12d00-ee67-478b-b95f-65d599407756",
            "a8f12d00-ee67-478b-b95f-65d59940775é",
        ] {
            assert_eq!(Uuid128::parse(s), Err(WireError::BadUuid), "{s}");
        }
    }
}
