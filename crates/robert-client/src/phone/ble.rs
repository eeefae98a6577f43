//! [`Phone`]: Radio side: the HELLOs the phone sends and records (BLE).

use robert_core::hello::Hello;
use robert_core::tuples::Tuple;

use crate::calibration::calibrated_rssi;
use crate::clock::Clock;
use crate::contacts::{ContactKey, ContactRecord, day_of};
use crate::error::{ClientError, ReceiveError};
use crate::storage::Storage;
use crate::transport::Transport;

use super::{BLE_PAYLOAD_LEN, BLE_PAYLOAD_VERSION, Phone, RSSI_UNAVAILABLE};

impl<T: Transport, S: Storage> Phone<T, S> {
    /// The tuple whose epoch contains now (§3.4), if any.
    pub fn current_tuple(&self) -> Option<Tuple> {
        let now = self.clock.now_ntp();
        self.state
            .registration
            .as_ref()?
            .current_tuple(now)
            .copied()
    }

    /// Whether the tuple stock is low and a status request should refill it.
    pub fn needs_refill(&self) -> bool {
        let now = self.clock.now_ntp();
        self.state
            .registration
            .as_ref()
            .is_some_and(|r| r.needs_refill(now, self.config.tuple_low_water))
    }

    /// Refills the tuples with a status request when the stock is low (and
    /// the last attempt is not too recent), then returns the current tuple.
    pub async fn ensure_identity(&mut self) -> Result<Tuple, ClientError> {
        if !self.is_registered() {
            return Err(ClientError::NotRegistered);
        }
        let now = self.clock.now_ntp();
        let recent =
            self.state.schedule.last_attempt.is_some_and(|t| {
                now.get() < t.get().saturating_add(self.config.min_status_gap_secs)
            });
        if self.needs_refill() && !recent {
            self.status().await?;
        }
        self.current_tuple().ok_or(ClientError::Hello(
            crate::identity::HelloError::NoCurrentEbid,
        ))
    }

    /// The 16-byte HELLO to broadcast now (§3.5). Refused when no stored
    /// EBID covers the current epoch.
    pub fn hello(&self) -> Result<[u8; Hello::LEN], ClientError> {
        let now = self.clock.now_ntp();
        let reg = self.registration().ok_or(ClientError::NotRegistered)?;
        Ok(reg.hello(now)?.to_bytes())
    }

    /// The 18-byte BLE payload: HELLO ‖ version ‖ this device's TX gain.
    pub fn ble_payload(&self) -> Result<[u8; BLE_PAYLOAD_LEN], ClientError> {
        let hello = self.hello()?;
        let mut out = [0u8; BLE_PAYLOAD_LEN];
        out[..16].copy_from_slice(&hello);
        out[16] = BLE_PAYLOAD_VERSION;
        out[17] = self.gains.tx.to_be_bytes()[0];
        Ok(out)
    }

    /// Records a received HELLO with the RSSI measured and the sender's TX
    /// gain (byte 17 of its BLE payload). In memory only: cheap.
    pub fn receive_hello(
        &mut self,
        hello: &[u8],
        raw_rssi: i16,
        sender_tx_gain: i8,
    ) -> Result<(), ReceiveError> {
        let hello = Hello::from_bytes(hello).map_err(|_| ReceiveError::Malformed)?;
        if raw_rssi == RSSI_UNAVAILABLE {
            return Err(ReceiveError::NoRssi);
        }
        let now = self.clock.now_ntp();
        if !hello
            .time
            .within(now.time16(), self.config.hello_time_tolerance_secs)
        {
            return Err(ReceiveError::StaleTime);
        }
        if let Some(reg) = &self.state.registration
            && reg.current_tuple(now).is_some_and(|t| t.ebid == hello.ebid)
        {
            return Err(ReceiveError::Own);
        }
        let key = ContactKey {
            ebid: hello.ebid,
            ecc: hello.ecc,
        };
        let record = ContactRecord {
            time_collected: now,
            hello_time: hello.time,
            mac: hello.mac,
            rssi_raw: raw_rssi,
            rssi_calibrated: calibrated_rssi(raw_rssi, sender_tx_gain, self.gains.rx),
        };
        if !self.contacts.insert(key, record) {
            return Err(ReceiveError::Duplicate);
        }
        let day = day_of(now);
        if self.last_dirty_day != Some(day) {
            self.dirty_days.insert(day);
            self.last_dirty_day = Some(day);
        }
        Ok(())
    }

    /// Records a received BLE payload (≥ 18 bytes: HELLO ‖ version ‖ TX gain).
    pub fn receive_ble_payload(
        &mut self,
        payload: &[u8],
        raw_rssi: i16,
    ) -> Result<(), ReceiveError> {
        if payload.len() < BLE_PAYLOAD_LEN {
            return Err(ReceiveError::Malformed);
        }
        let tx = i8::from_be_bytes([payload[17]]);
        self.receive_hello(&payload[..16], raw_rssi, tx)
    }
}
