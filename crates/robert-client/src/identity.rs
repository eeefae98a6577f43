//! The registration a phone holds: K_A, K_A_Tuples, the service start and
//! the stock of `(epoch, EBID, ECC)` tuples; which EBID to use when
//! (client-ble.md §3.4, §3.5, §3.7). Pure: time is an argument.

use std::fmt;

use robert_core::ebid::Ebid;
use robert_core::hello::Hello;
use robert_core::keys::{KeyA, KeyATuples};
use robert_core::mac::{RequestMac, Salt};
use robert_core::time::{EPOCH_DURATION_SECS, Epoch, NtpSeconds, Time32};
use robert_core::tuples::{Tuple, TupleBundle};
use zeroize::Zeroize;

/// A phone's registration with the server. Secret: zeroized on drop, `Debug`
/// redacted.
pub struct Registration {
    pub(crate) key_a: KeyA,
    pub(crate) key_a_tuples: KeyATuples,
    /// `timeStart` of `/register`: the service start in NTP seconds.
    pub(crate) time_start: NtpSeconds,
    /// When this phone registered (its own clock).
    pub(crate) registered_at: NtpSeconds,
    /// Sorted by epoch, one tuple per epoch.
    pub(crate) tuples: Vec<Tuple>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("registered_at", &self.registered_at)
            .field("tuples", &self.tuples.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        wipe_tuples(&mut self.tuples);
    }
}

/// Overwrites tuples before their memory is released.
pub(crate) fn wipe_tuples(tuples: &mut Vec<Tuple>) {
    for t in tuples.iter_mut() {
        t.ebid.0.zeroize();
        t.ecc.0.zeroize();
        t.epoch = Epoch(0);
    }
    tuples.clear();
}

/// Why no HELLO can be emitted now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// No stored tuple's epoch contains the current time: a status request
    /// must refill the stock first.
    #[error("no EBID for the current epoch")]
    NoCurrentEbid,
    /// The time is outside the given EBID's epoch.
    #[error("time outside the EBID's epoch")]
    OutsideEpoch,
}

/// The four fields of an authenticated request (`/status`, `/unregister`,
/// `/deleteExposureHistory`), protocol.md §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFields {
    /// The EBID used.
    pub ebid: Ebid,
    /// Its epoch.
    pub epoch: Epoch,
    /// The phone's time.
    pub time: Time32,
    /// `HMAC-SHA256(K_A, salt ‖ EBID ‖ epochId ‖ Time32)`.
    pub mac: RequestMac,
}

impl Registration {
    /// A registration from derived keys and an opened bundle.
    pub fn new(
        key_a: KeyA,
        key_a_tuples: KeyATuples,
        time_start: NtpSeconds,
        registered_at: NtpSeconds,
        bundle: TupleBundle,
    ) -> Self {
        let mut r = Self {
            key_a,
            key_a_tuples,
            time_start,
            registered_at,
            tuples: Vec::new(),
        };
        r.replace_tuples(bundle);
        r
    }

    /// The service start (`timeStart`).
    pub fn time_start(&self) -> NtpSeconds {
        self.time_start
    }

    /// When the phone registered.
    pub fn registered_at(&self) -> NtpSeconds {
        self.registered_at
    }

    /// K_A_Tuples, to open the bundles of `/status`.
    pub(crate) fn key_a_tuples(&self) -> &KeyATuples {
        &self.key_a_tuples
    }

    /// The epoch containing `t` (`None` before the service start or beyond
    /// the 32-bit epoch range).
    pub fn epoch_at(&self, t: NtpSeconds) -> Option<Epoch> {
        let secs = t.get().checked_sub(self.time_start.get())?;
        u32::try_from(secs / EPOCH_DURATION_SECS).ok().map(Epoch)
    }

    /// The first second of `epoch`.
    pub fn epoch_start(&self, epoch: Epoch) -> NtpSeconds {
        self.time_start
            .plus(u64::from(epoch.get()) * EPOCH_DURATION_SECS)
    }

    /// Every stored tuple, by ascending epoch.
    pub fn tuples(&self) -> &[Tuple] {
        &self.tuples
    }

    /// The tuple whose epoch contains `now` (§3.4).
    pub fn current_tuple(&self, now: NtpSeconds) -> Option<&Tuple> {
        let epoch = self.epoch_at(now)?;
        self.tuples
            .binary_search_by_key(&epoch, |t| t.epoch)
            .ok()
            .map(|i| &self.tuples[i])
    }

    /// Number of tuples for the current epoch and later: the stock left.
    pub fn tuples_left(&self, now: NtpSeconds) -> usize {
        let Some(epoch) = self.epoch_at(now) else {
            return self.tuples.len();
        };
        let first = self.tuples.partition_point(|t| t.epoch < epoch);
        self.tuples.len() - first
    }

    /// Whether the stock should be refilled by a status request: no
    /// current tuple, or fewer than `low_water` left.
    pub fn needs_refill(&self, now: NtpSeconds, low_water: usize) -> bool {
        self.current_tuple(now).is_none() || self.tuples_left(now) < low_water
    }

    /// The tuple to authenticate a request with (§3.4): the current one,
    /// else the latest past one, else the first future one.
    pub fn auth_tuple(&self, now: NtpSeconds) -> Option<&Tuple> {
        if let Some(t) = self.current_tuple(now) {
            return Some(t);
        }
        let epoch = self.epoch_at(now).unwrap_or(Epoch(0));
        let first_future = self.tuples.partition_point(|t| t.epoch <= epoch);
        if first_future > 0 {
            self.tuples.get(first_future - 1)
        } else {
            self.tuples.first()
        }
    }

    /// The authenticated-request fields for `salt` at `now`.
    pub fn auth_fields(&self, salt: Salt, now: NtpSeconds) -> Option<AuthFields> {
        let t = self.auth_tuple(now)?;
        let time = now.time32();
        Some(AuthFields {
            ebid: t.ebid,
            epoch: t.epoch,
            time,
            mac: RequestMac::compute(&self.key_a, salt, &t.ebid, t.epoch.get(), time),
        })
    }

    /// The HELLO to broadcast at `now` (§3.5).
    pub fn hello(&self, now: NtpSeconds) -> Result<Hello, HelloError> {
        let t = self.current_tuple(now).ok_or(HelloError::NoCurrentEbid)?;
        self.hello_with(t, now)
    }

    /// The HELLO for a given tuple at `now`; refuses when `now` is outside the
    /// tuple's epoch.
    pub fn hello_with(&self, tuple: &Tuple, now: NtpSeconds) -> Result<Hello, HelloError> {
        if self.epoch_at(now) != Some(tuple.epoch) {
            return Err(HelloError::OutsideEpoch);
        }
        Ok(Hello::new(&self.key_a, tuple.ecc, tuple.ebid, now.time16()))
    }

    /// Replaces the stored tuples with a new bundle (§3.7). An empty bundle
    /// leaves the stock unchanged.
    pub fn replace_tuples(&mut self, mut bundle: TupleBundle) {
        if bundle.tuples.is_empty() {
            return;
        }
        bundle.tuples.sort_by_key(|t| t.epoch);
        bundle.tuples.dedup_by_key(|t| t.epoch);
        wipe_tuples(&mut self.tuples);
        // The bundle was collected without a size hint (a quarter spare
        // capacity: 2 kB for 4 days of tuples) and the stock is kept for
        // days: keep an exact copy and wipe the bundle's buffer (a
        // `shrink_to_fit` could free it unwiped).
        self.tuples = bundle.tuples.to_vec();
        wipe_tuples(&mut bundle.tuples);
    }

    /// Drops tuples of past epochs, always keeping the latest tuple (§3.4).
    pub fn purge_expired(&mut self, now: NtpSeconds) {
        let Some(epoch) = self.epoch_at(now) else {
            return;
        };
        let past = self.tuples.partition_point(|t| t.epoch < epoch);
        let drop = past.min(self.tuples.len().saturating_sub(1));
        if drop > 0 {
            let mut old: Vec<Tuple> = self.tuples.drain(..drop).collect();
            wipe_tuples(&mut old);
        }
    }

    /// The end (exclusive) of the last stored tuple's epoch.
    pub fn covered_until(&self) -> Option<NtpSeconds> {
        self.tuples.last().map(|t| self.epoch_start(t.epoch.next()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use robert_core::ecc::Ecc;

    const START: NtpSeconds = NtpSeconds(3_799_958_400);

    fn tuple(e: u32) -> Tuple {
        let b = e.to_be_bytes();
        Tuple {
            epoch: Epoch(e),
            ebid: Ebid([b[0], b[1], b[2], b[3], 1, 2, 3, 4]),
            ecc: Ecc(b[3]),
        }
    }

    fn reg(epochs: impl IntoIterator<Item = u32>) -> Registration {
        Registration::new(
            KeyA::from_bytes([1; 32]),
            KeyATuples::from_bytes([2; 32]),
            START,
            START,
            TupleBundle {
                tuples: epochs.into_iter().map(tuple).collect(),
            },
        )
    }

    fn at(epoch: u32, secs: u64) -> NtpSeconds {
        START.plus(u64::from(epoch) * 900 + secs)
    }

    #[test]
    fn current_tuple_is_the_one_whose_epoch_contains_now() {
        let r = reg([12, 10, 11]);
        assert_eq!(r.tuples()[0].epoch, Epoch(10), "sorted");
        assert_eq!(r.current_tuple(at(10, 0)).unwrap().epoch, Epoch(10));
        assert_eq!(r.current_tuple(at(10, 899)).unwrap().epoch, Epoch(10));
        assert_eq!(r.current_tuple(at(11, 0)).unwrap().epoch, Epoch(11));
        assert!(r.current_tuple(at(13, 0)).is_none());
        assert!(r.current_tuple(at(9, 899)).is_none());
        assert!(r.current_tuple(NtpSeconds(5)).is_none(), "before start");
        assert_eq!(r.tuples_left(at(11, 3)), 2);
        assert_eq!(r.tuples_left(at(20, 3)), 0);
        assert!(r.needs_refill(at(11, 0), 3));
        assert!(!r.needs_refill(at(10, 0), 3));
        assert!(r.needs_refill(at(13, 0), 0), "no current tuple");
    }

    #[test]
    fn hello_refuses_outside_the_epoch() {
        let r = reg([10, 11]);
        let h = r.hello(at(10, 17)).unwrap();
        assert_eq!(h.ebid, tuple(10).ebid);
        assert_eq!(h.time, at(10, 17).time16());
        assert!(h.verify_mac(&KeyA::from_bytes([1; 32])));
        assert_eq!(
            r.hello_with(&tuple(10), at(11, 0)),
            Err(HelloError::OutsideEpoch)
        );
        assert_eq!(
            r.hello_with(&tuple(10), at(9, 899)),
            Err(HelloError::OutsideEpoch)
        );
        assert_eq!(r.hello(at(12, 0)), Err(HelloError::NoCurrentEbid));
    }

    #[test]
    fn auth_tuple_falls_back_to_latest_then_first() {
        let r = reg([10, 11]);
        assert_eq!(r.auth_tuple(at(11, 5)).unwrap().epoch, Epoch(11));
        assert_eq!(r.auth_tuple(at(40, 5)).unwrap().epoch, Epoch(11));
        assert_eq!(r.auth_tuple(at(3, 5)).unwrap().epoch, Epoch(10));
        let f = r.auth_fields(Salt::Status, at(11, 5)).unwrap();
        assert_eq!(f.time, at(11, 5).time32());
        assert!(f.mac.verify(
            &KeyA::from_bytes([1; 32]),
            Salt::Status,
            &f.ebid,
            11,
            f.time
        ));
        assert!(reg([]).auth_fields(Salt::Status, at(1, 1)).is_none());
    }

    #[test]
    fn purge_keeps_the_latest_and_replace_ignores_empty_bundles() {
        let mut r = reg([10, 11, 12]);
        r.purge_expired(at(12, 1));
        assert_eq!(r.tuples().len(), 1);
        r.purge_expired(at(50, 1));
        assert_eq!(r.tuples().len(), 1, "latest kept");
        r.replace_tuples(TupleBundle::default());
        assert_eq!(r.tuples().len(), 1);
        r.replace_tuples(TupleBundle {
            tuples: vec![tuple(51), tuple(50), tuple(50)],
        });
        assert_eq!(
            r.tuples().iter().map(|t| t.epoch.0).collect::<Vec<_>>(),
            vec![50, 51]
        );
        assert_eq!(r.covered_until(), Some(at(52, 0)));
        assert!(format!("{r:?}").starts_with("Registration {"));
        assert!(!format!("{r:?}").contains("ebid"));
    }
}
