//! The adverts StopCovid phones emit and how a scanner tells them apart
//! (client-ble.md §1.3–1.6).
//!
//! * An **Android** advertises the complete 16-bit UUID list `[service]` and
//!   service data `service → BLE payload (18 bytes)`: 29 of 31 bytes.
//! * An **iPhone with the app in the foreground** advertises the service UUID
//!   only (iOS apps cannot advertise service data).
//! * An **iPhone with the app in the background** advertises no UUID list at
//!   all: iOS moves the service into Apple's "overflow area", manufacturer data
//!   of company 0x004C whose first byte is 0x01 followed by a 128-bit bitmap
//!   where one bit stands for the hashed service UUID. Androids recognise it
//!   with a mask test against the configured pattern.

use robert_core::hello::Hello;

use super::ad::{AdStructure, AdvertisingData, FLAGS_GENERAL_DISCOVERABLE};
use super::payload::BlePayload;
use super::uuid::{APPLE_COMPANY_ID, BleIds};
use super::{WireError, exact};

/// The Apple manufacturer-data pattern (after the company id) that marks a
/// background iPhone advertising the service: 17 bytes, type 0x01 then the
/// 16-byte overflow bitmap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ManufacturerPattern(pub [u8; 17]);

impl ManufacturerPattern {
    /// Length of the pattern (and of matching manufacturer data).
    pub const LEN: usize = 17;

    /// Parses the server-config form: 17 decimal byte values separated by dots,
    /// e.g. `"1.0.0.0.0.0.0.0.0.0.0.8.0.0.0.0.0"`.
    pub fn parse_dotted(s: &str) -> Result<Self, WireError> {
        let mut out = [0u8; Self::LEN];
        let mut n = 0usize;
        for part in s.split('.') {
            let slot = out.get_mut(n).ok_or(WireError::BadPattern {
                reason: "more than 17 values",
            })?;
            if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WireError::BadPattern {
                    reason: "values must be decimal numbers 0..=255",
                });
            }
            *slot = part.parse().map_err(|_| WireError::BadPattern {
                reason: "values must be decimal numbers 0..=255",
            })?;
            n += 1;
        }
        if n != Self::LEN {
            return Err(WireError::BadPattern {
                reason: "fewer than 17 values",
            });
        }
        Ok(Self(out))
    }

    /// The dotted textual form.
    pub fn to_dotted(&self) -> String {
        self.0
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The reference mask test: `data` (Apple manufacturer data after the
    /// company id) has the pattern's length and every bit set in the pattern
    /// is set in `data`. Other bits (other apps' services) are ignored.
    pub fn matches(&self, data: &[u8]) -> bool {
        data.len() == Self::LEN && self.0.iter().zip(data).all(|(p, d)| p & d == *p)
    }
}

/// Apple's overflow-area manufacturer data: type byte 0x01 and a 128-bit
/// bitmap of hashed service UUIDs advertised by backgrounded apps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AppleOverflowArea {
    /// The 16-byte bitmap.
    pub bitmap: [u8; 16],
}

impl AppleOverflowArea {
    /// Apple manufacturer-data type byte of the overflow area.
    pub const TYPE: u8 = 0x01;

    /// The overflow area of an iPhone whose only backgrounded service is the
    /// one `pattern` stands for.
    pub fn for_pattern(pattern: &ManufacturerPattern) -> Self {
        let mut bitmap = [0u8; 16];
        bitmap.copy_from_slice(&pattern.0[1..]);
        Self { bitmap }
    }

    /// Manufacturer data after the company id: `0x01 ‖ bitmap`.
    pub fn to_bytes(&self) -> [u8; 17] {
        let mut out = [0u8; 17];
        out[0] = Self::TYPE;
        out[1..].copy_from_slice(&self.bitmap);
        out
    }

    /// Parses manufacturer data after the company id.
    pub fn from_bytes(data: &[u8]) -> Result<Self, WireError> {
        let b: [u8; 17] = exact(data, "Apple overflow area")?;
        if b[0] != Self::TYPE {
            return Err(WireError::NotOverflowArea { found: b[0] });
        }
        let mut bitmap = [0u8; 16];
        bitmap.copy_from_slice(&b[1..]);
        Ok(Self { bitmap })
    }

    /// Parses a manufacturer-data record given as company id and data;
    /// fails unless the company is Apple.
    pub fn from_manufacturer(company: u16, data: &[u8]) -> Result<Self, WireError> {
        if company != APPLE_COMPANY_ID {
            return Err(WireError::WrongCompany {
                expected: APPLE_COMPANY_ID,
                found: company,
            });
        }
        Self::from_bytes(data)
    }

    /// Sets the bits of `pattern` (several backgrounded apps share one bitmap).
    pub fn merge(&mut self, pattern: &ManufacturerPattern) {
        for (b, p) in self.bitmap.iter_mut().zip(&pattern.0[1..]) {
            *b |= p;
        }
    }
}

/// The advert of an Android phone running the app with an advertiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AndroidAdvert {
    /// The HELLO currently advertised (frozen for up to 30 s, §1.3).
    pub hello: Hello,
    /// Payload version byte.
    pub version: i8,
    /// The advertiser's calibration TX gain.
    pub tx_gain: i8,
}

impl AndroidAdvert {
    /// Encoded size of the Android advertising data.
    pub const ENCODED_LEN: usize = 29;

    /// The BLE payload carried in the service data (never with RSSI byte).
    pub fn payload(&self) -> BlePayload {
        BlePayload::new(self.hello, self.version, self.tx_gain)
    }

    /// The AD structures: flags, complete UUID list, service data.
    pub fn to_advertising_data(&self, ids: &BleIds) -> AdvertisingData {
        AdvertisingData {
            structures: vec![
                AdStructure::Flags(FLAGS_GENERAL_DISCOVERABLE),
                AdStructure::Uuid16List {
                    complete: true,
                    uuids: vec![ids.service],
                },
                AdStructure::ServiceData16 {
                    uuid: ids.service,
                    data: self.payload().to_vec(),
                },
            ],
        }
    }

    /// The 29 advertising-data bytes.
    pub fn encode(&self, ids: &BleIds) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[..7].copy_from_slice(&[
            0x02,
            0x01,
            FLAGS_GENERAL_DISCOVERABLE,
            0x03,
            0x03,
            ids.service.to_le_bytes()[0],
            ids.service.to_le_bytes()[1],
        ]);
        out[7] = 0x15; // type + UUID + 18-byte payload
        out[8] = 0x16;
        out[9..11].copy_from_slice(&ids.service.to_le_bytes());
        out[11..].copy_from_slice(&self.payload().to_vec());
        out
    }

    /// Decodes an Android advert: the service must be in the complete 16-bit
    /// UUID list and its service data must be an 18-byte payload. Flags are
    /// optional; unrelated AD structures are ignored.
    pub fn decode(bytes: &[u8], ids: &BleIds) -> Result<Self, WireError> {
        Self::from_advertising_data(&AdvertisingData::decode(bytes)?, ids)
    }

    /// Same as [`AndroidAdvert::decode`], on already-parsed AD structures.
    pub fn from_advertising_data(ad: &AdvertisingData, ids: &BleIds) -> Result<Self, WireError> {
        let uuids = ad.complete_uuid16().ok_or(WireError::Missing {
            what: "complete list of 16-bit service UUIDs",
        })?;
        if !uuids.contains(&ids.service) {
            return Err(WireError::WrongServiceUuid {
                expected: ids.service,
                found: uuids.first().copied().unwrap_or(0),
            });
        }
        let mut ours = ad.structures.iter().filter_map(|s| match s {
            AdStructure::ServiceData16 { uuid, data } if *uuid == ids.service => Some(data),
            _ => None,
        });
        let data = match ours.next() {
            Some(d) => d,
            None => {
                return Err(
                    match ad.structures.iter().find_map(|s| match s {
                        AdStructure::ServiceData16 { uuid, .. } => Some(*uuid),
                        _ => None,
                    }) {
                        Some(found) => WireError::WrongServiceUuid {
                            expected: ids.service,
                            found,
                        },
                        None => WireError::Missing {
                            what: "service data for the service UUID",
                        },
                    },
                );
            }
        };
        if ours.next().is_some() {
            return Err(WireError::DuplicateAd {
                ad_type: super::ad::ad_type::SERVICE_DATA16,
            });
        }
        let b: [u8; BlePayload::LEN] = exact(data, "advert service data")?;
        let p = BlePayload::decode(&b)?;
        Ok(Self {
            hello: p.hello,
            version: p.version,
            tx_gain: p.tx_gain,
        })
    }
}

/// The adverts of an iPhone running the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IosAdvert {
    /// App in the foreground: flags and the complete UUID list `[service]`.
    Foreground,
    /// App in the background: flags and Apple overflow-area manufacturer data.
    Background,
}

impl IosAdvert {
    /// The AD structures of this advert.
    pub fn to_advertising_data(&self, ids: &BleIds) -> AdvertisingData {
        let second = match self {
            Self::Foreground => AdStructure::Uuid16List {
                complete: true,
                uuids: vec![ids.service],
            },
            Self::Background => AdStructure::Manufacturer {
                company: APPLE_COMPANY_ID,
                data: AppleOverflowArea::for_pattern(&ids.background_pattern)
                    .to_bytes()
                    .to_vec(),
            },
        };
        AdvertisingData {
            structures: vec![AdStructure::Flags(FLAGS_GENERAL_DISCOVERABLE), second],
        }
    }

    /// The advertising-data bytes (7 bytes in foreground, 24 in background).
    pub fn encode(&self, ids: &BleIds) -> Vec<u8> {
        let mut out = vec![0x02, 0x01, FLAGS_GENERAL_DISCOVERABLE];
        match self {
            Self::Foreground => {
                out.extend_from_slice(&[0x03, 0x03]);
                out.extend_from_slice(&ids.service.to_le_bytes());
            }
            Self::Background => {
                out.extend_from_slice(&[0x14, 0xFF]);
                out.extend_from_slice(&APPLE_COMPANY_ID.to_le_bytes());
                out.extend_from_slice(
                    &AppleOverflowArea::for_pattern(&ids.background_pattern).to_bytes(),
                );
            }
        }
        out
    }
}

/// What a StopCovid scanner makes of a scan record (client-ble.md §1.4–1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanClass {
    /// An Android advert: the HELLO is in the service data.
    Android(AndroidAdvert),
    /// The service UUID without service data: an iPhone in the foreground,
    /// whose payload must be read over GATT (or, on Android, awaited as a write).
    IosForeground,
    /// No UUID list and Apple manufacturer data passing the mask test: a
    /// backgrounded iPhone.
    IosBackground,
    /// Not a StopCovid phone.
    Unrelated,
}

impl ScanClass {
    /// Classifies raw advertising data as the apps do:
    /// 1. service data for the service → Android (decoded strictly);
    /// 2. else the service in a UUID list → iPhone in the foreground;
    /// 3. else, without any 16-bit UUID list, Apple manufacturer data passing
    ///    [`ManufacturerPattern::matches`] → iPhone in the background;
    /// 4. else unrelated.
    ///
    /// Errors only on malformed advertising data or a malformed Android advert.
    pub fn classify(bytes: &[u8], ids: &BleIds) -> Result<Self, WireError> {
        let ad = AdvertisingData::decode(bytes)?;
        if ad.service_data16(ids.service).is_some() {
            return AndroidAdvert::from_advertising_data(&ad, ids).map(Self::Android);
        }
        if ad.lists_uuid16(ids.service) {
            return Ok(Self::IosForeground);
        }
        if !ad.has_uuid16_list()
            && ad
                .manufacturer_data(APPLE_COMPANY_ID)
                .is_some_and(|d| ids.background_pattern.matches(d))
        {
            return Ok(Self::IosBackground);
        }
        Ok(Self::Unrelated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello::from_bytes(&[
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0x01, 0x02, 0xAB, 0xCD, 0xEF,
            0x01, 0x23,
        ])
        .unwrap()
    }

    #[test]
    fn android_advert_known_bytes() {
        let adv = AndroidAdvert {
            hello: hello(),
            version: 1,
            tx_gain: -30,
        };
        let expected: [u8; 29] = [
            0x02, 0x01, 0x06, // flags
            0x03, 0x03, 0x64, 0xFD, // complete 16-bit UUID list [FD64]
            0x15, 0x16, 0x64, 0xFD, // service data FD64, 21 = 1 + 2 + 18
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0x01, 0x02, 0xAB, 0xCD, 0xEF,
            0x01, 0x23, // HELLO
            0x01, 0xE2, // version 1, tx -30
        ];
        assert_eq!(adv.encode(&BleIds::STOPCOVID), expected);
        assert_eq!(
            adv.to_advertising_data(&BleIds::STOPCOVID)
                .encode()
                .unwrap(),
            expected
        );
        assert_eq!(
            AndroidAdvert::decode(&expected, &BleIds::STOPCOVID).unwrap(),
            adv
        );
        assert_eq!(
            ScanClass::classify(&expected, &BleIds::STOPCOVID).unwrap(),
            ScanClass::Android(adv)
        );
        // Zero padding to 31 bytes is accepted.
        let mut padded = expected.to_vec();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(
            AndroidAdvert::decode(&padded, &BleIds::STOPCOVID).unwrap(),
            adv
        );
    }

    #[test]
    fn android_advert_errors() {
        let adv = AndroidAdvert {
            hello: hello(),
            version: 1,
            tx_gain: -30,
        };
        let good = adv.encode(&BleIds::STOPCOVID);
        // Other ids: the alternative service.
        assert_eq!(
            AndroidAdvert::decode(&good, &BleIds::PROXIMITY_ALT),
            Err(WireError::WrongServiceUuid {
                expected: 0xF061,
                found: 0xFD64
            })
        );
        // Service data for another UUID.
        let mut wrong_sd = good;
        wrong_sd[9] = 0x65;
        assert_eq!(
            AndroidAdvert::decode(&wrong_sd, &BleIds::STOPCOVID),
            Err(WireError::WrongServiceUuid {
                expected: 0xFD64,
                found: 0xFD65
            })
        );
        // No UUID list.
        let no_list: Vec<u8> = good[..3].iter().chain(&good[7..]).copied().collect();
        assert!(matches!(
            AndroidAdvert::decode(&no_list, &BleIds::STOPCOVID),
            Err(WireError::Missing { .. })
        ));
        // Service data one byte short: length field says 20.
        let mut short: Vec<u8> = good[..28].to_vec();
        short[7] = 0x14;
        assert_eq!(
            AndroidAdvert::decode(&short, &BleIds::STOPCOVID),
            Err(WireError::TooShort {
                what: "advert service data",
                min: 18,
                actual: 17
            })
        );
        // Service data with a 19th byte: not allowed in an advert.
        let mut long = good.to_vec();
        long[7] = 0x16;
        long.push(0x42);
        assert!(matches!(
            AndroidAdvert::decode(&long, &BleIds::STOPCOVID),
            Err(WireError::TooLong { max: 18, .. })
        ));
        // Length field overruns.
        let mut overrun = good;
        overrun[7] = 0x17;
        assert!(matches!(
            AndroidAdvert::decode(&overrun, &BleIds::STOPCOVID),
            Err(WireError::LengthOverrun { offset: 7, .. })
        ));
        // Trailing garbage after a terminator.
        let mut trailing = good.to_vec();
        trailing.extend_from_slice(&[0x00, 0x01]);
        assert_eq!(
            AndroidAdvert::decode(&trailing, &BleIds::STOPCOVID),
            Err(WireError::TrailingBytes { offset: 30 })
        );
    }

    #[test]
    fn reference_pattern_parses_to_documented_bytes() {
        let p = ManufacturerPattern::parse_dotted("1.0.0.0.0.0.0.0.0.0.0.8.0.0.0.0.0").unwrap();
        assert_eq!(
            p.0,
            [
                0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
                0x00, 0x00, 0x00
            ]
        );
        assert_eq!(p, BleIds::STOPCOVID.background_pattern);
        let alt = ManufacturerPattern::parse_dotted("1.0.0.0.0.0.0.0.0.0.64.0.0.0.0.0.0").unwrap();
        assert_eq!(alt, BleIds::PROXIMITY_ALT.background_pattern);
        assert_eq!(alt.0[10], 0x40);
        assert_eq!(alt.to_dotted(), "1.0.0.0.0.0.0.0.0.0.64.0.0.0.0.0.0");
    }

    #[test]
    fn bad_patterns() {
        for s in [
            "",
            "1.0.0",
            "1.0.0.0.0.0.0.0.0.0.0.8.0.0.0.0.0.0",
            "1.0.0.0.0.0.0.0.0.0.0.256.0.0.0.0.0",
            "1.0.0.0.0.0.0.0.0.0.0.-8.0.0.0.0.0",
            "1.0.0.0.0.0.0.0.0.0.0.x.0.0.0.0.0",
            "1..0.0.0.0.0.0.0.0.0.8.0.0.0.0.0",
        ] {
            assert!(
                matches!(
                    ManufacturerPattern::parse_dotted(s),
                    Err(WireError::BadPattern { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn mask_test() {
        let p = BleIds::STOPCOVID.background_pattern;
        let mut data = p.0;
        assert!(p.matches(&data));
        // Other apps' bits do not matter.
        data[3] = 0xFF;
        data[11] |= 0x81;
        assert!(p.matches(&data));
        // Our bit cleared: no match.
        data[11] = 0x81;
        assert!(!p.matches(&data));
        // Length must be equal.
        assert!(!p.matches(&p.0[..16]));
        let mut longer = p.0.to_vec();
        longer.push(0);
        assert!(!p.matches(&longer));
        // The alternative pattern does not match StopCovid's bitmap.
        assert!(!BleIds::PROXIMITY_ALT.background_pattern.matches(&p.0));
    }

    #[test]
    fn ios_adverts_known_bytes_and_classification() {
        let ids = BleIds::STOPCOVID;
        let fg = IosAdvert::Foreground.encode(&ids);
        assert_eq!(fg, [0x02, 0x01, 0x06, 0x03, 0x03, 0x64, 0xFD]);
        assert_eq!(
            IosAdvert::Foreground
                .to_advertising_data(&ids)
                .encode()
                .unwrap(),
            fg
        );
        assert_eq!(
            ScanClass::classify(&fg, &ids).unwrap(),
            ScanClass::IosForeground
        );

        let bg = IosAdvert::Background.encode(&ids);
        let mut expected = vec![0x02, 0x01, 0x06, 0x14, 0xFF, 0x4C, 0x00, 0x01];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0]);
        assert_eq!(bg, expected);
        assert_eq!(bg.len(), 24);
        assert_eq!(
            IosAdvert::Background
                .to_advertising_data(&ids)
                .encode()
                .unwrap(),
            bg
        );
        assert_eq!(
            ScanClass::classify(&bg, &ids).unwrap(),
            ScanClass::IosBackground
        );
        // With the alternative ids this iPhone is unrelated.
        assert_eq!(
            ScanClass::classify(&bg, &BleIds::PROXIMITY_ALT).unwrap(),
            ScanClass::Unrelated
        );
        // Apple data from another company id is unrelated.
        let mut other = bg;
        other[5] = 0x4D;
        assert_eq!(
            ScanClass::classify(&other, &ids).unwrap(),
            ScanClass::Unrelated
        );
    }

    #[test]
    fn overflow_area_parsing() {
        let ids = BleIds::STOPCOVID;
        let mut area = AppleOverflowArea::for_pattern(&ids.background_pattern);
        area.merge(&BleIds::PROXIMITY_ALT.background_pattern);
        let bytes = area.to_bytes();
        assert!(ids.background_pattern.matches(&bytes));
        assert!(BleIds::PROXIMITY_ALT.background_pattern.matches(&bytes));
        assert_eq!(AppleOverflowArea::from_bytes(&bytes).unwrap(), area);
        let mut not_overflow = bytes;
        not_overflow[0] = 0x10;
        assert_eq!(
            AppleOverflowArea::from_bytes(&not_overflow),
            Err(WireError::NotOverflowArea { found: 0x10 })
        );
        assert_eq!(
            AppleOverflowArea::from_manufacturer(0x0006, &bytes),
            Err(WireError::WrongCompany {
                expected: 0x004C,
                found: 0x0006
            })
        );
        assert_eq!(
            AppleOverflowArea::from_manufacturer(0x004C, &bytes).unwrap(),
            area
        );
        assert!(matches!(
            AppleOverflowArea::from_bytes(&bytes[..10]),
            Err(WireError::TooShort { .. })
        ));
    }
}
