//! BLE wire formats of StopCovid / TousAntiCovid (client-ble.md §1).
//!
//! Everything a phone puts on the air or into a GATT characteristic, as bytes,
//! with strict decoders that return a typed [`WireError`] instead of panicking:
//!
//! | module | what |
//! |---|---|
//! | [`uuid`] | 128-bit UUIDs, the SIG base UUID, the StopCovid identifiers ([`BleIds`]) |
//! | [`payload`] | the 18/19-byte "BLE payload" wrapping the 16-byte HELLO ([`BlePayload`]) |
//! | [`ad`] | generic legacy advertising data: AD structures, 31-byte limit ([`AdvertisingData`]) |
//! | [`advert`] | the Android advert, the iPhone foreground / background adverts, the Apple overflow-area mask test, scan-record classification |
//! | [`gatt`] | the GATT characteristic: iPhone → Android write, iPhone read, the "no advertiser" 19-byte write |
//!
//! # Byte layouts
//!
//! ```text
//! BLE payload (client-ble.md §1.2)
//!   0..16  HELLO (ECC ‖ EBID ‖ Time16 ‖ MAC, robert_core::hello::Hello)
//!   16     version             (signed byte; 1, or 2 from TAC 2.2.4 Android)
//!   17     TX gain             (signed byte; the sender's calibration tx gain, dB)
//!   18     partial RSSI        (signed byte; optional, GATT writes only)
//!
//! Android advertising data (29 of 31 bytes, §1.3)
//!   02 01 06                   Flags: LE General Discoverable, BR/EDR not supported
//!   03 03 64 FD                Complete list of 16-bit service UUIDs: [0xFD64]
//!   15 16 64 FD <18 bytes>     Service Data - 16-bit UUID 0xFD64: BLE payload
//!
//! iPhone, app in background (24 bytes)
//!   02 01 06                   Flags
//!   14 FF 4C 00 01 <16 bytes>  Apple manufacturer data: overflow area, 128-bit bitmap
//! ```
//!
//! Multi-byte AD fields are little-endian (Bluetooth Core Specification,
//! Vol 3 Part C §11 and the Supplement to the Core Specification, Part A).
//!
//! # Strictness
//!
//! Decoders reject short input, long input, length fields that run past the
//! end, non-zero bytes after the significant part, duplicated singleton AD
//! structures and wrong identifiers. The reference apps are more lenient in one
//! place: they accept BLE payloads of 18 *or more* bytes and ignore bytes after
//! the 19th; [`BlePayload::decode_lenient`] reproduces that, while
//! [`BlePayload::decode`] refuses trailing bytes.

pub mod ad;
pub mod advert;
pub mod gatt;
pub mod payload;
pub mod uuid;

pub use ad::{AdStructure, AdvertisingData};
pub use advert::{AndroidAdvert, AppleOverflowArea, IosAdvert, ManufacturerPattern, ScanClass};
pub use payload::BlePayload;
pub use uuid::{BleIds, Uuid128};

/// A malformed or unexpected BLE frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input is shorter than the format allows.
    #[error("{what}: {actual} bytes, at least {min} expected")]
    TooShort {
        /// Which format was being decoded.
        what: &'static str,
        /// Minimum length.
        min: usize,
        /// Length received.
        actual: usize,
    },
    /// The input is longer than the format allows (e.g. more than 31 bytes of
    /// legacy advertising data, or trailing bytes after a 19-byte payload).
    #[error("{what}: {actual} bytes, at most {max} allowed")]
    TooLong {
        /// Which format was being decoded or encoded.
        what: &'static str,
        /// Maximum length.
        max: usize,
        /// Length received (or that would have been produced).
        actual: usize,
    },
    /// An AD structure's length byte runs past the end of the data.
    #[error("AD structure at offset {offset} declares {declared} bytes, only {remaining} remain")]
    LengthOverrun {
        /// Offset of the length byte.
        offset: usize,
        /// Length declared (type byte plus data).
        declared: usize,
        /// Bytes available after the length byte.
        remaining: usize,
    },
    /// A non-zero byte follows the zero-length terminator of the significant
    /// part (the non-significant part must be all zeros).
    #[error("non-zero byte at offset {offset} after the end of the significant part")]
    TrailingBytes {
        /// Offset of the first offending byte.
        offset: usize,
    },
    /// An AD structure's data length is not valid for its type (flags must be
    /// one byte, a 16-bit UUID list an even number of bytes, service data and
    /// manufacturer data at least two bytes).
    #[error("AD type {ad_type:#04x}: invalid data length {len}")]
    BadAdLength {
        /// The AD type.
        ad_type: u8,
        /// The data length found.
        len: usize,
    },
    /// An AD structure that may appear once appears several times.
    #[error("AD type {ad_type:#04x} appears more than once")]
    DuplicateAd {
        /// The AD type.
        ad_type: u8,
    },
    /// A service UUID other than the expected one is advertised.
    #[error("service UUID {found:#06x} where {expected:#06x} was expected")]
    WrongServiceUuid {
        /// The configured service UUID.
        expected: u16,
        /// The UUID found instead.
        found: u16,
    },
    /// A required AD structure is absent.
    #[error("missing {what}")]
    Missing {
        /// What was expected.
        what: &'static str,
    },
    /// Manufacturer data from another company, or an Apple record of another type.
    #[error("manufacturer data: company {found:#06x}, expected {expected:#06x}")]
    WrongCompany {
        /// Expected company identifier.
        expected: u16,
        /// Found company identifier.
        found: u16,
    },
    /// Apple manufacturer data that is not an overflow-area record (type byte ≠ 0x01).
    #[error("Apple manufacturer data of type {found:#04x}, expected the overflow area (0x01)")]
    NotOverflowArea {
        /// The type byte found.
        found: u8,
    },
    /// A textual manufacturer pattern (`"1.0.0…"`) is malformed.
    #[error("manufacturer pattern: {reason}")]
    BadPattern {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A textual UUID is malformed.
    #[error("malformed UUID string")]
    BadUuid,
}

/// Reads exactly `N` bytes or reports the length problem.
pub(crate) fn exact<const N: usize>(
    bytes: &[u8],
    what: &'static str,
) -> Result<[u8; N], WireError> {
    match bytes.len() {
        n if n < N => Err(WireError::TooShort {
            what,
            min: N,
            actual: n,
        }),
        n if n > N => Err(WireError::TooLong {
            what,
            max: N,
            actual: n,
        }),
        _ => {
            let mut out = [0u8; N];
            out.copy_from_slice(bytes);
            Ok(out)
        }
    }
}
