//! Server-side validation of uploaded contacts (protocol.md §9, server-api.md §4.2–4.3).
//!
//! A report carries *contacts*: the HELLOs a phone received from one EBID,
//! grouped as `(ECC, EBID, [(timeCollected, Time16, MAC, RSSI)])`. The batch
//! validates each contact in two stages:
//!
//! 1. [`ContactValidator::identify`]: decrypt the ECC (the country must be ours) and the EBID.
//!    The EBID key is the K_S of the UTC day of each HELLO's reception; within
//!    `day_boundary` seconds of midnight the adjacent day's key is tried too,
//!    since the sender's clock may already (or still) be on the other day. A
//!    decryption is accepted when its epoch lies in the key's day and within
//!    `epoch_tolerance` of the reception epoch of at least one HELLO.
//! 2. [`ContactValidator::verify_hello`], per HELLO, under the registration's K_A: the MAC; the
//!    circular distance between Time16 and the reception time (≤ 180 s); and
//!    the distance between the reception epoch and the EBID epoch (≤ 1). Only
//!    a [`VerifiedHello`] reaches scoring.
//!
//! Looking up K_A for the identified ID_A is I/O and belongs to the caller.

use subtle::ConstantTimeEq as _;

use crate::ebid::{Ebid, EbidContent};
use crate::ecc::{CountryCode, Ecc};
use crate::id_a::IdA;
use crate::keys::{KeyA, KeyG};
use crate::mac::{HelloMac, hello_mac_input};
use crate::time::{Epoch, NtpSeconds, SECONDS_PER_DAY, ServiceStart, Time16, UtcDate};

/// Tolerances applied to received HELLOs (reference defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloPolicy {
    /// Maximum circular distance between Time16 and the reception time, in
    /// seconds (`robert.protocol.hello-message-timestamp-tolerance`, 180).
    pub time_tolerance_secs: u32,
    /// Maximum distance between the reception epoch and the EBID epoch (1).
    pub epoch_tolerance: u32,
    /// Seconds around UTC midnight within which the adjacent day's K_S is
    /// also tried (180).
    pub day_boundary_secs: u64,
}

impl Default for HelloPolicy {
    fn default() -> Self {
        Self {
            time_tolerance_secs: 180,
            epoch_tolerance: 1,
            day_boundary_secs: 180,
        }
    }
}

/// One HELLO as uploaded in a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadedHello {
    /// The receiver's clock at reception (`timeCollectedOnDevice`, NTP seconds).
    pub time_collected: NtpSeconds,
    /// The HELLO's Time16 (`timeFromHelloMessage`).
    pub time_sent: Time16,
    /// The HELLO's MAC.
    pub mac: HelloMac,
    /// The calibrated RSSI in dBm (`rssiCalibrated`).
    pub rssi_calibrated: i16,
}

impl UploadedHello {
    /// The HELLO the holder of `key_a` sends at `sent` (its Time16 and MAC
    /// over `ecc` and `ebid`), as a receiver records it at `collected`
    /// with `rssi_calibrated`: what an honest phone uploads. For tests,
    /// benchmarks and the simulator.
    pub fn received(
        key_a: &KeyA,
        ecc: Ecc,
        ebid: &Ebid,
        sent: NtpSeconds,
        collected: NtpSeconds,
        rssi_calibrated: i16,
    ) -> Self {
        let time_sent = sent.time16();
        Self {
            time_collected: collected,
            time_sent,
            mac: HelloMac::compute(key_a, ecc, ebid, time_sent),
            rssi_calibrated,
        }
    }
}

/// Who sent a contact's HELLOs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactIdentity {
    /// The sender's registration.
    pub id_a: IdA,
    /// The epoch inside the EBID.
    pub epoch: Epoch,
}

/// Why a whole contact is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContactRejection {
    /// The contact carries no HELLO.
    #[error("no HELLO in contact")]
    NoHellos,
    /// The ECC decrypts to another country (federation forwarding is not implemented).
    #[error("country code {} is not managed by this server", .0.0)]
    ForeignCountry(CountryCode),
    /// No day key decrypts the EBID to a plausible epoch.
    #[error("could not decrypt EBID")]
    EbidNotDecrypted,
}

/// Why one HELLO is discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloRejection {
    /// The MAC does not verify under the sender's K_A.
    #[error("invalid HELLO MAC")]
    Mac,
    /// Time16 is too far from the reception time.
    #[error("HELLO time outside tolerance")]
    TimeTolerance,
    /// The reception epoch is too far from the EBID epoch.
    #[error("HELLO epoch outside tolerance")]
    EpochTolerance,
}

/// A HELLO that passed every check: the only input scoring accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedHello {
    time_collected: NtpSeconds,
    rssi_calibrated: i16,
}

impl VerifiedHello {
    /// Reception time (NTP seconds).
    pub fn time_collected(&self) -> NtpSeconds {
        self.time_collected
    }

    /// Calibrated RSSI (dBm).
    pub fn rssi_calibrated(&self) -> i16 {
        self.rssi_calibrated
    }
}

/// The UTC days whose K_S may have encrypted an EBID received at `t`:
/// the day of `t`, plus the previous day within `day_boundary_secs` after
/// midnight, or the next day within `day_boundary_secs` before midnight.
pub fn candidate_days(t: NtpSeconds, policy: &HelloPolicy) -> (UtcDate, Option<UtcDate>) {
    let day = UtcDate::of(t);
    let into = t.seconds_into_utc_day();
    let adjacent = if into < policy.day_boundary_secs {
        Some(day.add_days(-1))
    } else if SECONDS_PER_DAY - into <= policy.day_boundary_secs {
        Some(day.add_days(1))
    } else {
        None
    };
    (day, adjacent)
}

/// Validation context: the keys and settings shared by every contact of a batch.
#[derive(Clone, Debug)]
pub struct ContactValidator {
    /// The federation key.
    pub key_g: KeyG,
    /// This server's country code.
    pub country: CountryCode,
    /// The service start.
    pub start: ServiceStart,
    /// Tolerances.
    pub policy: HelloPolicy,
}

impl ContactValidator {
    /// Decodes a contact's sender (stage 1 above).
    ///
    /// `decrypt(day)` returns the EBID decrypted under that day's K_S, or
    /// `None` when the key store has no key for the day; the caller may serve
    /// it from a batch decryption.
    pub fn identify(
        &self,
        ebid: &Ebid,
        ecc: Ecc,
        hellos: &[UploadedHello],
        mut decrypt: impl FnMut(UtcDate) -> Option<EbidContent>,
    ) -> Result<ContactIdentity, ContactRejection> {
        if hellos.is_empty() {
            return Err(ContactRejection::NoHellos);
        }
        let cc = ecc.decrypt(&self.key_g, ebid);
        if cc != self.country {
            return Err(ContactRejection::ForeignCountry(cc));
        }
        let mut tried: Vec<(UtcDate, Option<EbidContent>)> = Vec::with_capacity(2);
        for h in hellos {
            let received = self.start.epoch_at(h.time_collected);
            let (day, adjacent) = candidate_days(h.time_collected, &self.policy);
            for d in core::iter::once(day).chain(adjacent) {
                let content = match tried.iter().find(|(t, _)| *t == d) {
                    Some((_, c)) => *c,
                    None => {
                        let c = decrypt(d);
                        tried.push((d, c));
                        c
                    }
                };
                if let Some(c) = content
                    && self.start.day_of(c.epoch) == d
                    && c.epoch.distance(received) <= self.policy.epoch_tolerance
                {
                    return Ok(ContactIdentity {
                        id_a: c.id_a,
                        epoch: c.epoch,
                    });
                }
            }
        }
        Err(ContactRejection::EbidNotDecrypted)
    }

    /// Checks one HELLO of an identified contact (stage 2 above), in the
    /// reference's order: MAC, then Time16 tolerance, then epoch tolerance.
    pub fn verify_hello(
        &self,
        identity: &ContactIdentity,
        ebid: &Ebid,
        ecc: Ecc,
        key_a: &KeyA,
        hello: &UploadedHello,
    ) -> Result<VerifiedHello, HelloRejection> {
        let mac_ok = hello.mac.verify(key_a, ecc, ebid, hello.time_sent);
        self.after_mac(identity, hello, mac_ok)
    }

    /// [`ContactValidator::verify_hello`] for every HELLO of a contact, in
    /// order, with the same results; the MACs are computed [`MAC_LANES`] at a
    /// time (the rest two at a time), their SHA-256 compressions interleaved
    /// (the batch's path).
    pub fn verify_hellos(
        &self,
        identity: &ContactIdentity,
        ebid: &Ebid,
        ecc: Ecc,
        key_a: &KeyA,
        hellos: &[UploadedHello],
    ) -> Vec<Result<VerifiedHello, HelloRejection>> {
        let mut out = Vec::with_capacity(hellos.len());
        let mut groups = hellos.chunks_exact(MAC_LANES);
        for group in &mut groups {
            self.verify_group::<MAC_LANES>(identity, ebid, ecc, key_a, group, &mut out);
        }
        let mut pairs = groups.remainder().chunks_exact(2);
        for pair in &mut pairs {
            self.verify_group::<2>(identity, ebid, ecc, key_a, pair, &mut out);
        }
        for h in pairs.remainder() {
            out.push(self.verify_hello(identity, ebid, ecc, key_a, h));
        }
        out
    }

    /// The checks of `L` HELLOs (`group.len() == L`), their MACs in lanes.
    fn verify_group<const L: usize>(
        &self,
        identity: &ContactIdentity,
        ebid: &Ebid,
        ecc: Ecc,
        key_a: &KeyA,
        group: &[UploadedHello],
        out: &mut Vec<Result<VerifiedHello, HelloRejection>>,
    ) {
        let mut msgs = [[0u8; 12]; L];
        for (m, h) in msgs.iter_mut().zip(group) {
            *m = hello_mac_input(ecc, ebid, h.time_sent);
        }
        let macs = key_a.macs(&msgs);
        for (h, mac) in group.iter().zip(&macs) {
            let mac_ok = mac[..HelloMac::LEN].ct_eq(&h.mac.0).into();
            out.push(self.after_mac(identity, h, mac_ok));
        }
    }

    /// The checks after the MAC's, in the reference's order.
    fn after_mac(
        &self,
        identity: &ContactIdentity,
        hello: &UploadedHello,
        mac_ok: bool,
    ) -> Result<VerifiedHello, HelloRejection> {
        if !mac_ok {
            return Err(HelloRejection::Mac);
        }
        let tol = self.policy.time_tolerance_secs;
        if !hello.time_sent.within(hello.time_collected.time16(), tol) {
            return Err(HelloRejection::TimeTolerance);
        }
        let received = self.start.epoch_at(hello.time_collected);
        if received.distance(identity.epoch) > self.policy.epoch_tolerance {
            return Err(HelloRejection::EpochTolerance);
        }
        Ok(VerifiedHello {
            time_collected: hello.time_collected,
            rssi_calibrated: hello.rssi_calibrated,
        })
    }
}

/// HELLO MACs per group in [`ContactValidator::verify_hellos`].
pub const MAC_LANES: usize = 4;
