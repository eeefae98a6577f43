//! Legacy advertising data: a sequence of AD structures, at most 31 bytes.
//!
//! ```text
//! AD structure = length (1 byte, = 1 + data length) ‖ AD type (1 byte) ‖ data
//! ```
//!
//! A length byte of zero ends the significant part; the rest of the 31 bytes
//! (the non-significant part) must then be zeros (Bluetooth Core
//! Specification Vol 3 Part C §11). AD type values are from the Bluetooth
//! SIG "Assigned Numbers" (§2.3, Common Data Types).

use super::WireError;

/// AD type values used here.
pub mod ad_type {
    /// Flags.
    pub const FLAGS: u8 = 0x01;
    /// Incomplete list of 16-bit service UUIDs.
    pub const INCOMPLETE_UUID16: u8 = 0x02;
    /// Complete list of 16-bit service UUIDs.
    pub const COMPLETE_UUID16: u8 = 0x03;
    /// Service Data - 16-bit UUID.
    pub const SERVICE_DATA16: u8 = 0x16;
    /// Manufacturer Specific Data.
    pub const MANUFACTURER: u8 = 0xFF;
}

/// Flags value Android and iOS put in connectable adverts: LE General
/// Discoverable Mode (0x02) | BR/EDR Not Supported (0x04).
pub const FLAGS_GENERAL_DISCOVERABLE: u8 = 0x06;

/// One AD structure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AdStructure {
    /// Flags (one byte).
    Flags(u8),
    /// A list of 16-bit service UUIDs.
    Uuid16List {
        /// `true` for "complete list" (0x03), `false` for "incomplete" (0x02).
        complete: bool,
        /// The UUIDs.
        uuids: Vec<u16>,
    },
    /// Service data for a 16-bit UUID.
    ServiceData16 {
        /// The service UUID.
        uuid: u16,
        /// Service data after the UUID.
        data: Vec<u8>,
    },
    /// Manufacturer specific data.
    Manufacturer {
        /// Company identifier.
        company: u16,
        /// Data after the company identifier.
        data: Vec<u8>,
    },
    /// Any other AD type, kept as raw bytes. Its type must not be one of the
    /// types above, otherwise it would decode as that type.
    Other {
        /// The AD type.
        ad_type: u8,
        /// Raw data.
        data: Vec<u8>,
    },
}

impl AdStructure {
    /// The AD type byte.
    pub fn ad_type(&self) -> u8 {
        match self {
            Self::Flags(_) => ad_type::FLAGS,
            Self::Uuid16List { complete: true, .. } => ad_type::COMPLETE_UUID16,
            Self::Uuid16List {
                complete: false, ..
            } => ad_type::INCOMPLETE_UUID16,
            Self::ServiceData16 { .. } => ad_type::SERVICE_DATA16,
            Self::Manufacturer { .. } => ad_type::MANUFACTURER,
            Self::Other { ad_type, .. } => *ad_type,
        }
    }

    /// Number of data bytes (excluding length and type bytes).
    pub fn data_len(&self) -> usize {
        match self {
            Self::Flags(_) => 1,
            Self::Uuid16List { uuids, .. } => 2 * uuids.len(),
            Self::ServiceData16 { data, .. } | Self::Manufacturer { data, .. } => 2 + data.len(),
            Self::Other { data, .. } => data.len(),
        }
    }

    /// Encoded length including the length and type bytes.
    pub fn encoded_len(&self) -> usize {
        2 + self.data_len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let len = u8::try_from(1 + self.data_len()).map_err(|_| WireError::TooLong {
            what: "AD structure",
            max: AdvertisingData::MAX_LEN,
            actual: self.encoded_len(),
        })?;
        out.push(len);
        out.push(self.ad_type());
        match self {
            Self::Flags(f) => out.push(*f),
            Self::Uuid16List { uuids, .. } => {
                for u in uuids {
                    out.extend_from_slice(&u.to_le_bytes());
                }
            }
            Self::ServiceData16 { uuid: id, data } | Self::Manufacturer { company: id, data } => {
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(data);
            }
            Self::Other { data, .. } => out.extend_from_slice(data),
        }
        Ok(())
    }

    fn decode(ad_type: u8, data: &[u8]) -> Result<Self, WireError> {
        let bad = || WireError::BadAdLength {
            ad_type,
            len: data.len(),
        };
        Ok(match ad_type {
            ad_type::FLAGS => match data {
                [f] => Self::Flags(*f),
                _ => return Err(bad()),
            },
            ad_type::COMPLETE_UUID16 | ad_type::INCOMPLETE_UUID16 => {
                if !data.len().is_multiple_of(2) {
                    return Err(bad());
                }
                Self::Uuid16List {
                    complete: ad_type == ad_type::COMPLETE_UUID16,
                    uuids: data
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect(),
                }
            }
            ad_type::SERVICE_DATA16 | ad_type::MANUFACTURER => {
                let [lo, hi, rest @ ..] = data else {
                    return Err(bad());
                };
                let id = u16::from_le_bytes([*lo, *hi]);
                if ad_type == ad_type::SERVICE_DATA16 {
                    Self::ServiceData16 {
                        uuid: id,
                        data: rest.to_vec(),
                    }
                } else {
                    Self::Manufacturer {
                        company: id,
                        data: rest.to_vec(),
                    }
                }
            }
            other => Self::Other {
                ad_type: other,
                data: data.to_vec(),
            },
        })
    }
}

/// Legacy advertising data (the significant part).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AdvertisingData {
    /// The AD structures in on-air order.
    pub structures: Vec<AdStructure>,
}

impl AdvertisingData {
    /// Legacy advertising PDUs carry at most 31 bytes of advertising data.
    pub const MAX_LEN: usize = 31;

    /// Encoded length of the significant part.
    pub fn encoded_len(&self) -> usize {
        self.structures.iter().map(AdStructure::encoded_len).sum()
    }

    /// Encodes the significant part; fails if it exceeds 31 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let len = self.encoded_len();
        if len > Self::MAX_LEN {
            return Err(WireError::TooLong {
                what: "advertising data",
                max: Self::MAX_LEN,
                actual: len,
            });
        }
        let mut out = Vec::with_capacity(len);
        for s in &self.structures {
            s.encode_into(&mut out)?;
        }
        Ok(out)
    }

    /// Decodes up to 31 bytes: AD structures, then optionally a zero
    /// terminator followed only by zero padding.
    ///
    /// Flags and the complete 16-bit UUID list may appear at most once.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(WireError::TooLong {
                what: "advertising data",
                max: Self::MAX_LEN,
                actual: bytes.len(),
            });
        }
        let mut structures = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let len = usize::from(bytes[i]);
            if len == 0 {
                if let Some(off) = bytes[i..].iter().position(|&b| b != 0) {
                    return Err(WireError::TrailingBytes { offset: i + off });
                }
                break;
            }
            let remaining = bytes.len() - i - 1;
            if len > remaining {
                return Err(WireError::LengthOverrun {
                    offset: i,
                    declared: len,
                    remaining,
                });
            }
            let ty = bytes[i + 1];
            let s = AdStructure::decode(ty, &bytes[i + 2..i + 1 + len])?;
            if matches!(ty, ad_type::FLAGS | ad_type::COMPLETE_UUID16)
                && structures.iter().any(|x: &AdStructure| x.ad_type() == ty)
            {
                return Err(WireError::DuplicateAd { ad_type: ty });
            }
            structures.push(s);
            i += 1 + len;
        }
        Ok(Self { structures })
    }

    /// The flags byte, if present.
    pub fn flags(&self) -> Option<u8> {
        self.structures.iter().find_map(|s| match s {
            AdStructure::Flags(f) => Some(*f),
            _ => None,
        })
    }

    /// The complete list of 16-bit service UUIDs, if present.
    pub fn complete_uuid16(&self) -> Option<&[u16]> {
        self.structures.iter().find_map(|s| match s {
            AdStructure::Uuid16List {
                complete: true,
                uuids,
            } => Some(uuids.as_slice()),
            _ => None,
        })
    }

    /// Whether any 16-bit UUID list (complete or not) is present.
    pub fn has_uuid16_list(&self) -> bool {
        self.structures
            .iter()
            .any(|s| matches!(s, AdStructure::Uuid16List { .. }))
    }

    /// Whether `uuid` is in any 16-bit UUID list.
    pub fn lists_uuid16(&self, uuid: u16) -> bool {
        self.structures.iter().any(|s| match s {
            AdStructure::Uuid16List { uuids, .. } => uuids.contains(&uuid),
            _ => false,
        })
    }

    /// Service data for `uuid` (first occurrence).
    pub fn service_data16(&self, uuid: u16) -> Option<&[u8]> {
        self.structures.iter().find_map(|s| match s {
            AdStructure::ServiceData16 { uuid: u, data } if *u == uuid => Some(data.as_slice()),
            _ => None,
        })
    }

    /// Manufacturer data of `company` (first occurrence), after the company id.
    pub fn manufacturer_data(&self, company: u16) -> Option<&[u8]> {
        self.structures.iter().find_map(|s| match s {
            AdStructure::Manufacturer { company: c, data } if *c == company => {
                Some(data.as_slice())
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_known_bytes() {
        let bytes = [
            0x02, 0x01, 0x06, 0x03, 0x03, 0x64, 0xFD, 0x04, 0x16, 0x64, 0xFD, 0x99, 0x00, 0x00,
        ];
        let ad = AdvertisingData::decode(&bytes).unwrap();
        assert_eq!(ad.flags(), Some(0x06));
        assert_eq!(ad.complete_uuid16(), Some(&[0xFD64u16][..]));
        assert_eq!(ad.service_data16(0xFD64), Some(&[0x99u8][..]));
        assert_eq!(ad.encode().unwrap(), &bytes[..12]);
    }

    #[test]
    fn rejects_malformed_structures() {
        assert_eq!(
            AdvertisingData::decode(&[0x05, 0x01, 0x06]),
            Err(WireError::LengthOverrun {
                offset: 0,
                declared: 5,
                remaining: 2
            })
        );
        assert_eq!(
            AdvertisingData::decode(&[0x03, 0x01, 0x06, 0x06]),
            Err(WireError::BadAdLength {
                ad_type: 0x01,
                len: 2
            })
        );
        assert_eq!(
            AdvertisingData::decode(&[0x02, 0x03, 0x64]),
            Err(WireError::BadAdLength {
                ad_type: 0x03,
                len: 1
            })
        );
        assert_eq!(
            AdvertisingData::decode(&[0x02, 0x16, 0x64]),
            Err(WireError::BadAdLength {
                ad_type: 0x16,
                len: 1
            })
        );
        assert_eq!(
            AdvertisingData::decode(&[0x02, 0x01, 0x06, 0x00, 0x00, 0x01]),
            Err(WireError::TrailingBytes { offset: 5 })
        );
        assert_eq!(
            AdvertisingData::decode(&[0x02, 0x01, 0x06, 0x02, 0x01, 0x04]),
            Err(WireError::DuplicateAd { ad_type: 0x01 })
        );
        assert!(matches!(
            AdvertisingData::decode(&[0u8; 32]),
            Err(WireError::TooLong {
                max: 31,
                actual: 32,
                ..
            })
        ));
        // A lone length byte: declares one byte (the type) but none remains.
        assert!(matches!(
            AdvertisingData::decode(&[0x01]),
            Err(WireError::LengthOverrun { .. })
        ));
    }

    #[test]
    fn zero_padding_and_empty_input_are_fine() {
        assert_eq!(AdvertisingData::decode(&[]).unwrap().structures.len(), 0);
        let ad = AdvertisingData::decode(&[0x02, 0x01, 0x06, 0, 0, 0, 0]).unwrap();
        assert_eq!(ad.structures, vec![AdStructure::Flags(6)]);
    }

    #[test]
    fn encode_refuses_more_than_31_bytes() {
        let ad = AdvertisingData {
            structures: vec![AdStructure::Other {
                ad_type: 0x09,
                data: vec![b'x'; 30],
            }],
        };
        assert!(matches!(
            ad.encode(),
            Err(WireError::TooLong {
                max: 31,
                actual: 32,
                ..
            })
        ));
    }
}
