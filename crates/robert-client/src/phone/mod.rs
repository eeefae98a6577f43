//! [`Phone`]: one app installation, tying the pure protocol pieces to a
//! clock, a transport and a storage.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use rand::rngs::StdRng;
use robert_core::filter::{FilterMode, ProximityFilter};
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY, UtcDate};

use crate::calibration::{CalibrationTable, Gains};
use crate::clock::Clock;
use crate::config::{CaptchaKind, PhoneConfig};
use crate::contacts::{ContactStore, DayCount, day_of};
use crate::error::ClientError;
use crate::identity::Registration;
use crate::schedule::{Notification, StatusSchedule};
use crate::state::{
    PhoneState, STATE_RECORD, StatusInfo, Token, contacts_day, contacts_record, decode_contacts,
    encode_contacts,
};
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;

mod ble;
mod dummy;
mod network;
mod registration;
mod report;
mod status;

/// Version byte of the BLE payload the SDK builds (client-ble.md §1.2).
pub const BLE_PAYLOAD_VERSION: u8 = 1;
/// Length of the BLE payload: HELLO (16) ‖ version (1) ‖ TX gain (1).
pub const BLE_PAYLOAD_LEN: usize = 18;
/// The platforms' "RSSI not available" value.
pub const RSSI_UNAVAILABLE: i16 = 127;

/// A captcha to show the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptchaChallenge {
    /// The captcha id.
    pub id: String,
    /// Picture or recording.
    pub kind: CaptchaKind,
    /// The PNG (or WAV) bytes, if the server served them.
    pub media: Option<Vec<u8>>,
}

/// The host app's side of registration: show the captcha, return the
/// user's answer (`None` if the user gave up).
pub trait CaptchaSolver: Send {
    /// Answers a captcha.
    fn solve(
        &mut self,
        challenge: &CaptchaChallenge,
    ) -> impl Future<Output = Option<String>> + Send;
}

/// A solver that always gives the same answer (tests, servers whose
/// captcha check is disabled).
#[derive(Clone, Debug)]
pub struct FixedCaptchaAnswer(pub String);

impl CaptchaSolver for FixedCaptchaAnswer {
    async fn solve(&mut self, _challenge: &CaptchaChallenge) -> Option<String> {
        Some(self.0.clone())
    }
}

/// What a successful status request brought.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusOutcome {
    /// The risk level (0 none, 4 high-risk contact).
    pub risk_level: f64,
    /// Number of tuples in the new bundle.
    pub tuples_received: usize,
    /// A notification to deliver, if the risk rose.
    pub notification: Option<Notification>,
}

/// What a successful report sent.
#[derive(Debug)]
pub struct ReportOutcome {
    /// Contacts (EBID groups) sent.
    pub contacts_sent: usize,
    /// HELLOs sent.
    pub hellos_sent: usize,
    /// Groups the on-device filter kept back.
    pub rejected_groups: usize,
    /// The server's `reportValidationToken`, if any.
    pub report_validation_token: Option<Token>,
}

/// A human-oriented view of the state (no secrets).
#[derive(Clone, Debug, PartialEq)]
pub struct PhoneSummary {
    /// When the phone registered, if it is.
    pub registered_since: Option<NtpSeconds>,
    /// Tuples (EBIDs) left from the current epoch on.
    pub ebids_left: usize,
    /// End of the last stored EBID's epoch.
    pub ebids_until: Option<NtpSeconds>,
    /// Received HELLOs per UTC day.
    pub contacts_per_day: BTreeMap<UtcDate, DayCount>,
    /// The last status answer.
    pub risk_level: f64,
    /// `lastContactDate` of the last status.
    pub last_contact_date: Option<NtpSeconds>,
    /// When the last successful status was received.
    pub last_status_at: Option<NtpSeconds>,
    /// When the next status is due.
    pub next_status_due: Option<NtpSeconds>,
    /// When the user reported, if they did.
    pub reported_at: Option<NtpSeconds>,
    /// A notification waiting for its delivery time.
    pub pending_notification: Option<Notification>,
}

/// What `/status` forwards to the push service so that an iPhone app is
/// woken up to ask its status (TousAntiCovid's `pushInfo`): the APNs token,
/// the user's locale and IANA time zone. The server forwards it only when
/// all three are present and non-blank.
///
/// Not persisted: the operating system hands the app its token at every
/// launch; set it with [`Phone::set_push_info`].
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushInfo {
    /// The push (APNs) token.
    pub token: String,
    /// Locale, e.g. `fr-FR`.
    pub locale: String,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub timezone: String,
}

impl fmt::Debug for PushInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token identifies the device to Apple: keep it out of logs.
        f.debug_struct("PushInfo")
            .field("token", &"<redacted>")
            .field("locale", &self.locale)
            .field("timezone", &self.timezone)
            .finish()
    }
}

/// Whether a failed request may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Safe to repeat after any network failure.
    Always,
    /// Repeat only if the request surely did not reach the server
    /// (register: a duplicate creates a second identity; report: a
    /// duplicate would be refused as the code is used).
    IfNotSent,
}

/// One app installation: registration, HELLOs, status, report, deletion.
///
/// `T` carries requests, `S` keeps state. Time comes from the [`Clock`],
/// randomness from a seeded or OS-seeded `StdRng` (ChaCha12).
///
/// Received HELLOs live in memory; [`Phone::persist`] writes what changed
/// (the host calls it periodically, e.g. every 15 s, and when going to the
/// background). Operations that talk to the server persist by themselves.
pub struct Phone<T, S> {
    config: Arc<PhoneConfig>,
    transport: T,
    storage: S,
    clock: Arc<dyn Clock>,
    rng: StdRng,
    filter: ProximityFilter,
    gains: Gains,
    state: PhoneState,
    contacts: ContactStore,
    state_dirty: bool,
    dirty_days: BTreeSet<u64>,
    stored_days: BTreeSet<u64>,
    last_dirty_day: Option<u64>,
    push_info: Option<PushInfo>,
    /// The filter mode in force (the configuration's, or the server's).
    filter_mode: FilterMode,
    /// Traffic privacy from the server's `config` list.
    privacy: crate::dummy::PrivacySettings,
    /// When the next dummies are due (memory only: the process is
    /// memoryless, a restart draws again).
    dummies: crate::dummy::DummySchedule,
}

/// The storage record of the server's last `config` list (JSON).
const SERVER_CONFIG_RECORD: &str = "server-config";

impl<T, S> fmt::Debug for Phone<T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Phone")
            .field("registered", &self.state.registration.is_some())
            .field("contacts", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl<T: Transport, S: Storage> Phone<T, S> {
    /// Opens a phone: loads the state kept in `storage` (if any).
    ///
    /// The calibration table is the embedded one; see
    /// [`Phone::open_with_calibration`].
    pub fn open(
        config: Arc<PhoneConfig>,
        transport: T,
        storage: S,
        clock: Arc<dyn Clock>,
        rng: StdRng,
    ) -> Result<Self, ClientError> {
        Self::open_with_calibration(
            config,
            transport,
            storage,
            clock,
            rng,
            CalibrationTable::embedded(),
        )
    }

    /// As [`Phone::open`] with another calibration table (e.g. the
    /// server's newer `calibrationBle.json`).
    pub fn open_with_calibration(
        config: Arc<PhoneConfig>,
        transport: T,
        storage: S,
        clock: Arc<dyn Clock>,
        rng: StdRng,
        calibration: &CalibrationTable,
    ) -> Result<Self, ClientError> {
        let filter = config.proximity_filter()?;
        let filter_mode = config.filter_mode;
        let gains = calibration.lookup(&config.device);
        let mut phone = Self {
            config,
            transport,
            storage,
            clock,
            rng,
            filter,
            gains,
            state: PhoneState::default(),
            contacts: ContactStore::new(),
            state_dirty: false,
            dirty_days: BTreeSet::new(),
            stored_days: BTreeSet::new(),
            push_info: None,
            last_dirty_day: None,
            filter_mode,
            privacy: crate::dummy::PrivacySettings::OFF,
            dummies: crate::dummy::DummySchedule::default(),
        };
        phone.load()?;
        phone.purge();
        Ok(phone)
    }

    pub(super) fn load(&mut self) -> Result<(), ClientError> {
        if let Some(bytes) = self.storage.read(SERVER_CONFIG_RECORD)? {
            // A record that does not parse is dropped: the next answer
            // brings the list again.
            if let Ok(list) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                self.apply_server_filter(&list);
                self.apply_server_privacy(&list);
            }
        }
        if let Some(bytes) = self.storage.read(STATE_RECORD)? {
            self.state = PhoneState::decode(&bytes)
                .map_err(|_| StorageError::Corrupt(STATE_RECORD.to_owned()))?;
        }
        for name in self.storage.list()? {
            let Some(day) = contacts_day(&name) else {
                continue;
            };
            let Some(bytes) = self.storage.read(&name)? else {
                continue;
            };
            let records = decode_contacts(&bytes).map_err(|_| StorageError::Corrupt(name))?;
            for (key, record) in records {
                self.contacts.insert(key, record);
            }
            self.stored_days.insert(day);
        }
        Ok(())
    }

    // ----------------------------------------------------------------- state

    /// The configuration.
    pub fn config(&self) -> &PhoneConfig {
        &self.config
    }

    /// This device's calibration gains.
    pub fn gains(&self) -> Gains {
        self.gains
    }

    /// Whether the phone holds a registration.
    pub fn is_registered(&self) -> bool {
        self.state.registration.is_some()
    }

    /// The registration, if any (`Debug` redacted).
    pub fn registration(&self) -> Option<&Registration> {
        self.state.registration.as_ref()
    }

    /// What the last successful status said.
    pub fn status_info(&self) -> &StatusInfo {
        &self.state.status
    }

    /// The status polling state.
    pub fn schedule(&self) -> &StatusSchedule {
        &self.state.schedule
    }

    /// The received HELLOs.
    pub fn contacts(&self) -> &ContactStore {
        &self.contacts
    }

    /// When the user reported, if they did.
    pub fn reported_at(&self) -> Option<NtpSeconds> {
        self.state.reported_at
    }

    /// A summary for display.
    pub fn summary(&self) -> PhoneSummary {
        let now = self.clock.now_ntp();
        let reg = self.state.registration.as_ref();
        PhoneSummary {
            registered_since: reg.map(Registration::registered_at),
            ebids_left: reg.map_or(0, |r| r.tuples_left(now)),
            ebids_until: reg.and_then(Registration::covered_until),
            contacts_per_day: self
                .contacts
                .per_day()
                .into_iter()
                .map(|(day, c)| (UtcDate::of(NtpSeconds(day * SECONDS_PER_DAY)), c))
                .collect(),
            risk_level: self.state.status.risk_level,
            last_contact_date: self.state.status.last_contact_date,
            last_status_at: self.state.status.last_status_at,
            next_status_due: reg.map(|_| self.state.schedule.next_due),
            reported_at: self.state.reported_at,
            pending_notification: self.state.pending_notification,
        }
    }

    /// Writes what changed since the last call: the state record and the
    /// contact records of the days that changed. Each record write is atomic.
    pub fn persist(&mut self) -> Result<(), ClientError> {
        if self.state_dirty {
            let bytes = self.state.encode();
            self.storage.write(STATE_RECORD, &bytes)?;
            self.state_dirty = false;
        }
        let days = std::mem::take(&mut self.dirty_days);
        self.last_dirty_day = None;
        for (i, &day) in days.iter().enumerate() {
            let result = self.persist_day(day);
            if let Err(e) = result {
                // Keep the remaining days dirty for the next attempt.
                self.dirty_days.extend(days.iter().skip(i));
                return Err(e);
            }
        }
        Ok(())
    }

    pub(super) fn persist_day(&mut self, day: u64) -> Result<(), ClientError> {
        let name = contacts_record(day);
        let records = self.contacts.records_of_day(day);
        if records.is_empty() {
            self.storage.remove(&name)?;
            self.stored_days.remove(&day);
        } else {
            self.storage.write(&name, &encode_contacts(&records))?;
            self.stored_days.insert(day);
        }
        Ok(())
    }

    /// Deletes received HELLOs older than the retention period (14 days).
    pub fn purge(&mut self) {
        let now = self.clock.now_ntp();
        let cutoff = now.minus(self.config.retention_days * SECONDS_PER_DAY);
        if self.contacts.purge_before(cutoff) > 0 {
            let cutoff_day = day_of(cutoff);
            let old: Vec<u64> = self
                .stored_days
                .iter()
                .copied()
                .filter(|&d| d <= cutoff_day)
                .collect();
            self.dirty_days.extend(old);
        }
        // Stored days may also be old without in-memory records (loaded then purged).
        let cutoff_day = day_of(cutoff);
        let stale: Vec<u64> = self
            .stored_days
            .iter()
            .copied()
            .filter(|&d| d < cutoff_day)
            .collect();
        self.dirty_days.extend(stale);
    }
}
