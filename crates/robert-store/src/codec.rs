//! Compact binary forms of stored values.
//!
//! A contact's HELLOs are stored as one blob of 13-byte records, in upload order:
//!
//! ```text
//! offset 0: timeCollectedOnDevice  u32 big-endian (NTP seconds, low 32 bits = all of era 0)
//! offset 4: timeFromHelloMessage   u16 big-endian (Time16)
//! offset 6: mac                    5 bytes
//! offset 11: rssiCalibrated        i16 big-endian (dBm)
//! ```
//!
//! 100 000 HELLOs take 1.3 MB.

use robert_core::contact::UploadedHello;
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::mac::HelloMac;
use robert_core::time::{Epoch, NtpSeconds, Time16};

use crate::StoreError;

/// Size of one packed HELLO.
pub const HELLO_RECORD_LEN: usize = 13;

/// Packs HELLOs; fails if a reception time does not fit in 32 bits.
pub fn pack_hellos(hellos: &[UploadedHello]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(hellos.len() * HELLO_RECORD_LEN);
    for h in hellos {
        let t = u32::try_from(h.time_collected.get()).map_err(|_| {
            StoreError::InvalidInput("timeCollectedOnDevice does not fit in 32 bits")
        })?;
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&h.time_sent.to_bytes());
        out.extend_from_slice(&h.mac.0);
        out.extend_from_slice(&h.rssi_calibrated.to_be_bytes());
    }
    Ok(out)
}

/// Unpacks HELLOs; `None` if the blob is not a whole number of records.
pub fn unpack_hellos(blob: &[u8]) -> Option<Vec<UploadedHello>> {
    if !blob.len().is_multiple_of(HELLO_RECORD_LEN) {
        return None;
    }
    Some(
        blob.chunks_exact(HELLO_RECORD_LEN)
            .map(|r| {
                let mut mac = [0u8; HelloMac::LEN];
                mac.copy_from_slice(&r[6..11]);
                UploadedHello {
                    time_collected: NtpSeconds(u64::from(u32::from_be_bytes([
                        r[0], r[1], r[2], r[3],
                    ]))),
                    time_sent: Time16::from_bytes([r[4], r[5]]),
                    mac: HelloMac(mac),
                    rssi_calibrated: i16::from_be_bytes([r[11], r[12]]),
                }
            })
            .collect(),
    )
}

/// ID_A as the stored 40-bit integer.
pub(crate) fn id_to_db(id: IdA) -> i64 {
    // 40 bits always fit in i64.
    i64::try_from(id.to_u64()).unwrap_or(i64::MAX)
}

/// The stored integer back to an ID_A.
pub(crate) fn id_from_db(v: i64) -> Result<IdA, StoreError> {
    u64::try_from(v)
        .ok()
        .filter(|v| *v < (1 << 40))
        .map(IdA::from_u64)
        .ok_or(StoreError::Corrupt("ID_A out of range"))
}

/// A stored wrapped key (K_A or K_A_Tuples).
pub(crate) fn wrapped_key_from_db(raw: &[u8]) -> Result<WrappedKey, StoreError> {
    WrappedKey::from_slice(raw).map_err(|_| StoreError::Corrupt("wrapped key is not 60 bytes"))
}

pub(crate) fn ntp_to_db(t: NtpSeconds) -> i64 {
    i64::try_from(t.get()).unwrap_or(i64::MAX)
}

pub(crate) fn ntp_from_db(v: i64) -> NtpSeconds {
    NtpSeconds(u64::try_from(v).unwrap_or(0))
}

pub(crate) fn epoch_to_db(e: Epoch) -> i64 {
    i64::from(e.get())
}

pub(crate) fn epoch_from_db(v: i64) -> Result<Epoch, StoreError> {
    u32::try_from(v)
        .map(Epoch)
        .map_err(|_| StoreError::Corrupt("epoch out of range"))
}

/// An ID_A range bound as a stored integer (2^40 fits).
pub(crate) fn range_bound(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A JSON array of integers, for SQLite's `json_each` (no float involved, so exact).
pub(crate) fn json_int_array(values: impl IntoIterator<Item = i64>) -> String {
    let mut s = String::from("[");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&v.to_string());
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hello(t: u64, ts: u16, mac: [u8; 5], rssi: i16) -> UploadedHello {
        UploadedHello {
            time_collected: NtpSeconds(t),
            time_sent: Time16(ts),
            mac: HelloMac(mac),
            rssi_calibrated: rssi,
        }
    }

    #[test]
    fn layout_is_fixed() {
        let packed = pack_hellos(&[hello(0xE57A_1B84, 0x1B84, [1, 2, 3, 4, 5], -35)]).unwrap();
        assert_eq!(
            packed,
            [
                0xE5, 0x7A, 0x1B, 0x84, 0x1B, 0x84, 1, 2, 3, 4, 5, 0xFF, 0xDD
            ]
        );
    }

    #[test]
    fn rejects_times_beyond_32_bits_and_bad_blobs() {
        assert!(matches!(
            pack_hellos(&[hello(1 << 32, 0, [0; 5], 0)]),
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(unpack_hellos(&[0; 12]), None);
        assert_eq!(unpack_hellos(&[]), Some(vec![]));
        assert_eq!(json_int_array([1, -2, 3]), "[1,-2,3]");
        assert_eq!(json_int_array([]), "[]");
        assert!(id_from_db(-1).is_err());
        assert!(id_from_db(1 << 40).is_err());
        assert_eq!(id_from_db((1 << 40) - 1).unwrap(), IdA([0xFF; 5]));
    }

    proptest! {
        #[test]
        fn hellos_round_trip(raw in proptest::collection::vec(
            (0u64..=u64::from(u32::MAX), any::<u16>(), any::<[u8; 5]>(), any::<i16>()), 0..50)) {
            let hellos: Vec<_> = raw.into_iter().map(|(t, ts, m, r)| hello(t, ts, m, r)).collect();
            let packed = pack_hellos(&hellos).unwrap();
            prop_assert_eq!(packed.len(), hellos.len() * HELLO_RECORD_LEN);
            prop_assert_eq!(unpack_hellos(&packed).unwrap(), hellos);
        }

        #[test]
        fn id_a_round_trips(v in 0u64..(1 << 40)) {
            let id = IdA::from_u64(v);
            prop_assert_eq!(id_from_db(id_to_db(id)).unwrap(), id);
        }
    }
}
