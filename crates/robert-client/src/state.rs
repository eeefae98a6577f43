//! The phone's persistent state and its binary encoding (inside the
//! encrypted records of [`crate::storage`]).
//!
//! Record `state` (version 1), all integers big-endian:
//!
//! ```text
//! u8 version = 1
//! u8 registered (0/1)
//!   [K_A (32) ‖ K_A_Tuples (32) ‖ timeStart u64 ‖ registeredAt u64 ‖
//!    u32 n ‖ n × (epoch u32 ‖ EBID (8) ‖ ECC (1))]
//! status:   riskLevel f64 ‖ opt u64 lastContactDate ‖ opt u64 lastRiskScoringDate ‖
//!           opt str declarationToken ‖ opt str analyticsToken ‖ opt u64 lastStatusAt
//! schedule: opt u64 lastSuccess ‖ opt u64 lastAttempt ‖ u32 failures ‖ u64 nextDue
//! notify:   f64 notifiedLevel ‖ opt u64 notifiedScoring ‖ u8 pending [f64 level ‖ u64 deliverAt]
//! opt u64 reportedAt
//! ```
//!
//! Record `contacts-<NTP day>` (version 1), one per UTC day of reception:
//!
//! ```text
//! u8 version = 1 ‖ u32 n ‖ n × (EBID (8) ‖ ECC (1) ‖ timeCollected u64 ‖ Time16 u16 ‖
//!                               MAC (5) ‖ rssiRaw i16 ‖ rssiCalibrated i16)
//! ```
//!
//! `opt x` is a byte 0/1 followed by `x` when 1; `str` is `u32 length ‖ UTF-8`.
//! Buffers holding secrets are zeroized.

use std::fmt;

use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::keys::{KeyA, KeyATuples};
use robert_core::mac::HelloMac;
use robert_core::time::{Epoch, NtpSeconds, Time16};
use robert_core::tuples::{Tuple, TupleBundle};
use zeroize::Zeroizing;

use crate::contacts::{ContactKey, ContactRecord};
use crate::identity::Registration;
use crate::schedule::{Notification, RiskSnapshot, StatusSchedule};

/// The name of the main state record.
pub const STATE_RECORD: &str = "state";
/// The prefix of per-day contact records.
pub const CONTACTS_PREFIX: &str = "contacts-";
const VERSION: u8 = 1;

/// A token received from the server (JWT). Secret: zeroized, `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Zeroizing<String>);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token { .. }")
    }
}

impl Token {
    /// Wraps a token.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The token text, to hand to the service that consumes it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// What the last successful status said.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    /// `riskLevel`: 0 none, 4 high-risk contact (TousAntiCovid levels).
    pub risk_level: f64,
    /// `lastContactDate` (NTP seconds, a UTC midnight), when at risk.
    pub last_contact_date: Option<NtpSeconds>,
    /// `lastRiskScoringDate` (NTP seconds), when at risk.
    pub last_risk_scoring_date: Option<NtpSeconds>,
    /// `declarationToken` (for a sick-leave declaration), when at risk.
    pub declaration_token: Option<Token>,
    /// `analyticsToken`.
    pub analytics_token: Option<Token>,
    /// When the last successful status was received.
    pub last_status_at: Option<NtpSeconds>,
}

impl StatusInfo {
    /// Whether the server reports a risk.
    pub fn at_risk(&self) -> bool {
        self.risk_level > 0.0
    }
}

/// Everything but the received HELLOs.
#[derive(Debug, Default)]
pub(crate) struct PhoneState {
    pub(crate) registration: Option<Registration>,
    pub(crate) status: StatusInfo,
    pub(crate) schedule: StatusSchedule,
    pub(crate) notified: RiskSnapshot,
    pub(crate) pending_notification: Option<Notification>,
    pub(crate) reported_at: Option<NtpSeconds>,
}

/// A record that is not a valid encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    fn new() -> Self {
        Self(Zeroizing::new(Vec::new()))
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn len(&mut self, n: usize) {
        // Lengths are bounded far below 2^32 (tuples, tokens, daily records).
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn opt_u64(&mut self, v: Option<NtpSeconds>) {
        match v {
            Some(t) => {
                self.u8(1);
                self.u64(t.get());
            }
            None => self.u8(0),
        }
    }
    fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => {
                self.u8(1);
                self.len(s.len());
                self.bytes(s.as_bytes());
            }
            None => self.u8(0),
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        self.take(N)?.try_into().map_err(|_| Malformed)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn i16(&mut self) -> Result<i16, Malformed> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_bits(self.u64()?))
    }
    fn flag(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }
    /// A count of items of `item_len` bytes each, checked against the input left.
    fn count(&mut self, item_len: usize) -> Result<usize, Malformed> {
        let n = usize::try_from(self.u32()?).map_err(|_| Malformed)?;
        if n.checked_mul(item_len)
            .is_none_or(|total| total > self.0.len())
        {
            return Err(Malformed);
        }
        Ok(n)
    }
    fn opt_u64(&mut self) -> Result<Option<NtpSeconds>, Malformed> {
        Ok(if self.flag()? {
            Some(NtpSeconds(self.u64()?))
        } else {
            None
        })
    }
    fn opt_str(&mut self) -> Result<Option<Zeroizing<String>>, Malformed> {
        if !self.flag()? {
            return Ok(None);
        }
        let n = self.count(1)?;
        let bytes = self.take(n)?;
        let s = core::str::from_utf8(bytes).map_err(|_| Malformed)?;
        Ok(Some(Zeroizing::new(s.to_owned())))
    }
    fn end(&self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

const TUPLE_LEN: usize = 4 + 8 + 1;
const RECORD_LEN: usize = 8 + 1 + 8 + 2 + 5 + 2 + 2;

impl PhoneState {
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(VERSION);
        match &self.registration {
            Some(r) => {
                w.u8(1);
                w.bytes(r.key_a.expose_secret());
                w.bytes(r.key_a_tuples.expose_secret());
                w.u64(r.time_start.get());
                w.u64(r.registered_at.get());
                w.len(r.tuples.len());
                for t in &r.tuples {
                    w.u32(t.epoch.get());
                    w.bytes(&t.ebid.0);
                    w.u8(t.ecc.0);
                }
            }
            None => w.u8(0),
        }
        let s = &self.status;
        w.f64(s.risk_level);
        w.opt_u64(s.last_contact_date);
        w.opt_u64(s.last_risk_scoring_date);
        w.opt_str(s.declaration_token.as_ref().map(Token::expose_secret));
        w.opt_str(s.analytics_token.as_ref().map(Token::expose_secret));
        w.opt_u64(s.last_status_at);
        let sc = &self.schedule;
        w.opt_u64(sc.last_success);
        w.opt_u64(sc.last_attempt);
        w.u32(sc.consecutive_failures);
        w.u64(sc.next_due.get());
        w.f64(self.notified.level);
        w.opt_u64(self.notified.last_risk_scoring);
        match &self.pending_notification {
            Some(n) => {
                w.u8(1);
                w.f64(n.risk_level);
                w.u64(n.deliver_at.get());
            }
            None => w.u8(0),
        }
        w.opt_u64(self.reported_at);
        w.0
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(Malformed);
        }
        let registration = if r.flag()? {
            let key_a = KeyA::from_bytes(*Zeroizing::new(r.array::<32>()?));
            let key_a_tuples = KeyATuples::from_bytes(*Zeroizing::new(r.array::<32>()?));
            let time_start = NtpSeconds(r.u64()?);
            let registered_at = NtpSeconds(r.u64()?);
            let n = r.count(TUPLE_LEN)?;
            let mut tuples = Vec::with_capacity(n);
            for _ in 0..n {
                tuples.push(Tuple {
                    epoch: Epoch(r.u32()?),
                    ebid: Ebid(r.array()?),
                    ecc: Ecc(r.u8()?),
                });
            }
            Some(Registration::new(
                key_a,
                key_a_tuples,
                time_start,
                registered_at,
                TupleBundle { tuples },
            ))
        } else {
            None
        };
        let status = StatusInfo {
            risk_level: r.f64()?,
            last_contact_date: r.opt_u64()?,
            last_risk_scoring_date: r.opt_u64()?,
            declaration_token: r.opt_str()?.map(|s| Token::new(s.to_string())),
            analytics_token: r.opt_str()?.map(|s| Token::new(s.to_string())),
            last_status_at: r.opt_u64()?,
        };
        let schedule = StatusSchedule {
            last_success: r.opt_u64()?,
            last_attempt: r.opt_u64()?,
            consecutive_failures: r.u32()?,
            next_due: NtpSeconds(r.u64()?),
        };
        let notified = RiskSnapshot {
            level: r.f64()?,
            last_risk_scoring: r.opt_u64()?,
        };
        let pending_notification = if r.flag()? {
            Some(Notification {
                risk_level: r.f64()?,
                deliver_at: NtpSeconds(r.u64()?),
            })
        } else {
            None
        };
        let reported_at = r.opt_u64()?;
        r.end()?;
        Ok(Self {
            registration,
            status,
            schedule,
            notified,
            pending_notification,
            reported_at,
        })
    }
}

/// Encodes one day's contact records.
pub(crate) fn encode_contacts(records: &[(ContactKey, ContactRecord)]) -> Zeroizing<Vec<u8>> {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.len(records.len());
    for (k, r) in records {
        w.bytes(&k.ebid.0);
        w.u8(k.ecc.0);
        w.u64(r.time_collected.get());
        w.u16(r.hello_time.0);
        w.bytes(&r.mac.0);
        w.i16(r.rssi_raw);
        w.i16(r.rssi_calibrated);
    }
    w.0
}

/// Decodes one day's contact records.
pub(crate) fn decode_contacts(bytes: &[u8]) -> Result<Vec<(ContactKey, ContactRecord)>, Malformed> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return Err(Malformed);
    }
    let n = r.count(RECORD_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = ContactKey {
            ebid: Ebid(r.array()?),
            ecc: Ecc(r.u8()?),
        };
        let record = ContactRecord {
            time_collected: NtpSeconds(r.u64()?),
            hello_time: Time16(r.u16()?),
            mac: HelloMac(r.array()?),
            rssi_raw: r.i16()?,
            rssi_calibrated: r.i16()?,
        };
        out.push((key, record));
    }
    r.end()?;
    Ok(out)
}

/// The record name of an NTP day's contacts.
pub(crate) fn contacts_record(day: u64) -> String {
    format!("{CONTACTS_PREFIX}{day}")
}

/// The NTP day of a contacts record name.
pub(crate) fn contacts_day(name: &str) -> Option<u64> {
    name.strip_prefix(CONTACTS_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_state() -> PhoneState {
        let tuples = (0..5u32)
            .map(|i| Tuple {
                epoch: Epoch(100 + i),
                ebid: Ebid([i as u8; 8]),
                ecc: Ecc(i as u8),
            })
            .collect();
        PhoneState {
            registration: Some(Registration::new(
                KeyA::from_bytes([1; 32]),
                KeyATuples::from_bytes([2; 32]),
                NtpSeconds(3_799_958_400),
                NtpSeconds(3_799_958_500),
                TupleBundle { tuples },
            )),
            status: StatusInfo {
                risk_level: 4.0,
                last_contact_date: Some(NtpSeconds(5)),
                last_risk_scoring_date: None,
                declaration_token: Some(Token::new("a.b.c".into())),
                analytics_token: None,
                last_status_at: Some(NtpSeconds(9)),
            },
            schedule: StatusSchedule {
                last_success: Some(NtpSeconds(1)),
                last_attempt: None,
                consecutive_failures: 2,
                next_due: NtpSeconds(77),
            },
            notified: RiskSnapshot {
                level: 4.0,
                last_risk_scoring: Some(NtpSeconds(3)),
            },
            pending_notification: Some(Notification {
                risk_level: 4.0,
                deliver_at: NtpSeconds(8),
            }),
            reported_at: Some(NtpSeconds(11)),
        }
    }

    #[test]
    fn state_round_trips() {
        let s = sample_state();
        let bytes = s.encode();
        let d = PhoneState::decode(&bytes).unwrap();
        assert_eq!(d.encode(), bytes);
        let r = d.registration.as_ref().unwrap();
        assert_eq!(r.key_a, KeyA::from_bytes([1; 32]));
        assert_eq!(r.tuples().len(), 5);
        assert_eq!(d.status, s.status);
        assert_eq!(d.schedule, s.schedule);
        assert_eq!(d.pending_notification, s.pending_notification);
        let empty = PhoneState::default();
        assert!(
            PhoneState::decode(&empty.encode())
                .unwrap()
                .registration
                .is_none()
        );
    }

    #[test]
    fn truncated_or_extended_state_is_refused() {
        let bytes = sample_state().encode();
        for n in 0..bytes.len() {
            assert!(PhoneState::decode(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(PhoneState::decode(&longer).is_err());
        let mut v2 = bytes.to_vec();
        v2[0] = 2;
        assert!(PhoneState::decode(&v2).is_err());
    }

    #[test]
    fn contact_names() {
        assert_eq!(contacts_record(45_123), "contacts-45123");
        assert_eq!(contacts_day("contacts-45123"), Some(45_123));
        assert_eq!(contacts_day("state"), None);
        assert_eq!(contacts_day("contacts-x"), None);
    }

    proptest! {
        #[test]
        fn contacts_round_trip(rows in proptest::collection::vec(
            (any::<[u8; 8]>(), any::<u8>(), any::<u64>(), any::<u16>(), any::<[u8; 5]>(), any::<i16>(), any::<i16>()),
            0..50,
        )) {
            let records: Vec<(ContactKey, ContactRecord)> = rows
                .into_iter()
                .map(|(e, c, t, h, m, raw, cal)| {
                    (
                        ContactKey { ebid: Ebid(e), ecc: Ecc(c) },
                        ContactRecord {
                            time_collected: NtpSeconds(t),
                            hello_time: Time16(h),
                            mac: HelloMac(m),
                            rssi_raw: raw,
                            rssi_calibrated: cal,
                        },
                    )
                })
                .collect();
            let bytes = encode_contacts(&records);
            prop_assert_eq!(decode_contacts(&bytes).unwrap(), records);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = PhoneState::decode(&bytes);
            let _ = decode_contacts(&bytes);
        }
    }
}
