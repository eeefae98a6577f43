//! [`Phone`]: one app installation, tying the pure protocol pieces to a
//! clock, a transport and a storage.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use rand::rngs::StdRng;
use robert_core::b64;
use robert_core::filter::{FilterMode, ProximityFilter};
use robert_core::hello::Hello;
use robert_core::mac::Salt;
use robert_core::registration::ClientKeyAgreement;
use robert_core::time::{EPOCH_DURATION_SECS, NtpSeconds, SECONDS_PER_DAY, UtcDate};
use robert_core::tuples::{Tuple, TupleBundle};

use crate::api::{self, Endpoint};
use crate::calibration::{CalibrationTable, Gains, calibrated_rssi};
use crate::clock::Clock;
use crate::config::{CaptchaKind, PhoneConfig};
use crate::contacts::{ContactKey, ContactRecord, ContactStore, DayCount, day_of};
use crate::error::{ClientError, ReceiveError};
use crate::identity::Registration;
use crate::report::{ReportBasis, ReportSelection, report_window, select_contacts};
use crate::schedule::{Notification, RiskSnapshot, StatusSchedule};
use crate::server_config::ServerFilter;
use crate::state::{
    PhoneState, STATE_RECORD, StatusInfo, Token, contacts_day, contacts_record, decode_contacts,
    encode_contacts,
};
use crate::storage::{Storage, StorageError};
use crate::transport::Transport;

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
        };
        phone.load()?;
        phone.purge();
        Ok(phone)
    }

    fn load(&mut self) -> Result<(), ClientError> {
        if let Some(bytes) = self.storage.read(SERVER_CONFIG_RECORD)? {
            // A record that does not parse is dropped: the next answer
            // brings the list again.
            if let Ok(list) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                self.apply_server_filter(&list);
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
        let now = self.clock.now();
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

    fn persist_day(&mut self, day: u64) -> Result<(), ClientError> {
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
        let now = self.clock.now();
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

    // --------------------------------------------------------------- BLE

    /// The tuple whose epoch contains now (§3.4), if any.
    pub fn current_tuple(&self) -> Option<Tuple> {
        let now = self.clock.now();
        self.state
            .registration
            .as_ref()?
            .current_tuple(now)
            .copied()
    }

    /// Whether the tuple stock is low and a status request should refill it.
    pub fn needs_refill(&self) -> bool {
        let now = self.clock.now();
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
        let now = self.clock.now();
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
        let now = self.clock.now();
        let reg = self
            .state
            .registration
            .as_ref()
            .ok_or(ClientError::NotRegistered)?;
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
        let now = self.clock.now();
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

    // ----------------------------------------------------------- network

    async fn call(
        &mut self,
        endpoint: Endpoint,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        // The body may hold a report code: erase our copy when done.
        let body = body.map(zeroize::Zeroizing::new);
        let url = format!("{}{}{}", self.config.server_url, api::API_PREFIX, path);
        let policy = self.config.retry.clone();
        let attempts = policy.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(http::header::ACCEPT, "application/json");
            if body.is_some() {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            }
            let request = builder
                .body(body.as_deref().cloned().unwrap_or_default())
                .map_err(|_| ClientError::Config("invalid server URL".to_owned()))?;
            let result = self.transport.send(request).await;
            let retryable = match &result {
                Err(e) => retry == Retry::Always || e.not_sent(),
                Ok(r) => retry == Retry::Always && matches!(r.status().as_u16(), 502..=504),
            };
            if retryable && attempt < attempts {
                let delay = policy.delay(attempt);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                continue;
            }
            let response = result?;
            self.check_date(response.headers())?;
            if response.status().is_success() {
                return Ok(response);
            }
            return Err(api::error_for(endpoint, response.status(), response.body()));
        }
    }

    fn check_date(&self, headers: &http::HeaderMap) -> Result<(), ClientError> {
        if let Some(server) = api::date_header(headers) {
            self.check_drift(server)?;
        }
        Ok(())
    }

    fn check_drift(&self, server: NtpSeconds) -> Result<(), ClientError> {
        let now = self.clock.now();
        let drift = i64::try_from(server.get()).unwrap_or(i64::MAX)
            - i64::try_from(now.get()).unwrap_or(i64::MAX);
        if drift.unsigned_abs() > self.config.clock_tolerance_secs {
            return Err(ClientError::ClockMisaligned { drift_secs: drift });
        }
        Ok(())
    }

    /// Compares the phone's clock with the server's (`GET /clock`); fails
    /// with [`ClientError::ClockMisaligned`] beyond the tolerance (120 s).
    /// Every request also checks the HTTP `Date` header when there is one.
    pub async fn check_clock(&mut self) -> Result<(), ClientError> {
        let response = self
            .call(
                Endpoint::Clock,
                http::Method::GET,
                "/clock",
                None,
                Retry::Always,
            )
            .await?;
        let clock: api::ClockResponse = api::parse(Endpoint::Clock, response.body())?;
        let server = api::parse_iso_utc(&clock.time).ok_or(ClientError::InvalidResponse {
            endpoint: "/clock",
            reason: "bad time",
        })?;
        self.check_drift(server)
    }

    // ------------------------------------------------------ registration

    /// Registers (§3.2): asks for a captcha, lets `solver` answer it,
    /// generates a P-256 key pair, posts `/register`, derives K_A and
    /// K_A_Tuples (the private key is erased right after), decrypts and
    /// stores the tuples and `timeStart`.
    pub async fn register<C: CaptchaSolver>(&mut self, solver: &mut C) -> Result<(), ClientError> {
        if self.is_registered() {
            return Err(ClientError::AlreadyRegistered);
        }
        let kind = self.config.captcha;
        let body = api::json_body(
            &api::CaptchaRequest {
                kind: kind.wire(),
                locale: &self.config.locale,
            },
            "captcha",
        )?;
        let response = self
            .call(
                Endpoint::Captcha,
                http::Method::POST,
                "/captcha",
                Some(body),
                Retry::Always,
            )
            .await?;
        let captcha: api::CaptchaResponse = api::parse(Endpoint::Captcha, response.body())?;
        let id = captcha
            .captcha_id
            .or(captcha.id)
            .filter(|id| !id.is_empty() && id.len() <= 256 && !id.contains(['/', '?', '#']))
            .ok_or(ClientError::InvalidResponse {
                endpoint: "/captcha",
                reason: "no captcha id",
            })?;
        // The media is best effort: a server with the captcha check disabled may not serve it.
        let media = self
            .call(
                Endpoint::CaptchaImage,
                http::Method::GET,
                &format!("/captcha/{id}/{}", kind.resource()),
                None,
                Retry::Always,
            )
            .await
            .ok()
            .map(http::Response::into_body);
        let challenge = CaptchaChallenge { id, kind, media };
        let answer = solver
            .solve(&challenge)
            .await
            .ok_or(ClientError::CaptchaCancelled)?;

        let agreement = ClientKeyAgreement::new(&mut self.rng);
        let public_key = agreement.public_key_base64();
        let body = api::json_body(
            &api::RegisterRequest {
                captcha: &answer,
                captcha_id: &challenge.id,
                client_public_ecdh_key: &public_key,
            },
            "register",
        )?;
        let response = self
            .call(
                Endpoint::Register,
                http::Method::POST,
                "/register",
                Some(body),
                Retry::IfNotSent,
            )
            .await?;
        let registered: api::RegisterResponse = api::parse(Endpoint::Register, response.body())?;
        self.take_server_config(registered.config.as_ref())?;
        // `finish` consumes the ephemeral private key: it is erased here.
        let keys = agreement.finish(&self.config.server_public_key);
        let sealed = b64::decode(&registered.tuples, "tuples").map_err(|_| {
            ClientError::InvalidResponse {
                endpoint: "/register",
                reason: "tuples not base64",
            }
        })?;
        let bundle = TupleBundle::open(&keys.key_a_tuples, &sealed)
            .map_err(|_| ClientError::TuplesUndecryptable)?;
        let now = self.clock.now();
        let robert_core::registration::ClientKeys {
            key_a,
            key_a_tuples,
        } = keys;
        let registration = Registration::new(
            key_a,
            key_a_tuples,
            NtpSeconds(registered.time_start),
            now,
            bundle,
        );
        self.state.registration = Some(registration);
        self.state.status = StatusInfo::default();
        self.state.notified = RiskSnapshot::default();
        self.state.pending_notification = None;
        self.state.reported_at = None;
        self.state.schedule =
            StatusSchedule::after_registration(now, &self.config.status_schedule, &mut self.rng);
        self.state_dirty = true;
        self.persist()
    }

    fn auth_body(&self, salt: Salt) -> Result<Vec<u8>, ClientError> {
        let auth = self.auth_request(salt)?;
        api::json_body(&auth, "auth")
    }

    /// The authenticated fields of a request for now.
    fn auth_request(&self, salt: Salt) -> Result<api::AuthRequest, ClientError> {
        let now = self.clock.now();
        let reg = self
            .state
            .registration
            .as_ref()
            .ok_or(ClientError::NotRegistered)?;
        let fields = reg.auth_fields(salt, now).ok_or(ClientError::Hello(
            crate::identity::HelloError::NoCurrentEbid,
        ))?;
        Ok(api::AuthRequest::from(&fields))
    }

    /// Applies the filter parameters of the server's `config` list (see
    /// [`crate::server_config`]) and keeps the list for the next start.
    fn take_server_config(&mut self, list: Option<&serde_json::Value>) -> Result<(), ClientError> {
        let Some(list) = list else {
            return Ok(());
        };
        if self.apply_server_filter(list) {
            let bytes = api::json_body(list, "server config")?;
            self.storage.write(SERVER_CONFIG_RECORD, &bytes)?;
        }
        Ok(())
    }

    /// Sets the filter from `list` when allowed and present; whether it did.
    fn apply_server_filter(&mut self, list: &serde_json::Value) -> bool {
        if !self.config.follow_server_filter {
            return false;
        }
        let found = ServerFilter::from_list(list, &self.config.filter);
        if found.is_empty() {
            return false;
        }
        if let Some(mode) = found.mode {
            self.filter_mode = mode;
        }
        if let Some(filter) = found.filter {
            self.filter = filter;
        }
        true
    }

    /// The on-device filter in force: mode and parameters (the
    /// configuration's, or the server's `ble.filterMode` / `ble.filterConfig`).
    pub fn proximity_filter(&self) -> (FilterMode, &robert_core::filter::FilterConfig) {
        (self.filter_mode, self.filter.config())
    }

    /// Sets (or clears) the push information sent with every `/status`
    /// and, as `pushToken`, with `/unregister`.
    pub fn set_push_info(&mut self, push: Option<PushInfo>) {
        self.push_info = push;
    }

    /// The push information in use.
    pub fn push_info(&self) -> Option<&PushInfo> {
        self.push_info.as_ref()
    }

    /// Forgets the registration after a 430 (keys, tuples, status), keeping
    /// received HELLOs so that the user can still report.
    fn drop_registration(&mut self) -> Result<(), ClientError> {
        self.state.registration = None;
        self.state.status = StatusInfo::default();
        self.state.schedule = StatusSchedule::default();
        self.state.notified = RiskSnapshot::default();
        self.state.pending_notification = None;
        self.state_dirty = true;
        self.persist()
    }

    // ------------------------------------------------------------ status

    /// When the next status request is due (`None` if not registered).
    pub fn next_status_due(&self) -> Option<NtpSeconds> {
        self.is_registered().then_some(self.state.schedule.next_due)
    }

    /// Sends a status request if the schedule says one is due.
    pub async fn status_if_due(&mut self) -> Result<Option<StatusOutcome>, ClientError> {
        let now = self.clock.now();
        if self.is_registered() && self.state.schedule.is_due(now) {
            self.status().await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// The exposure status request (§3.7): refills the tuples, updates the
    /// risk, schedules the next request and decides on a notification.
    ///
    /// On HTTP 430 the registration is wiped locally and
    /// [`ClientError::RegistrationDropped`] returned: register again.
    pub async fn status(&mut self) -> Result<StatusOutcome, ClientError> {
        let body = api::json_body(
            &api::StatusRequest {
                auth: self.auth_request(Salt::Status)?,
                push_info: self.push_info.as_ref(),
            },
            "status",
        )?;
        let result = self
            .call(
                Endpoint::Status,
                http::Method::POST,
                "/status",
                Some(body),
                Retry::Always,
            )
            .await;
        let now = self.clock.now();
        let response = match result {
            Ok(r) => r,
            Err(ClientError::RegistrationDropped) => {
                self.drop_registration()?;
                return Err(ClientError::RegistrationDropped);
            }
            Err(e) => {
                self.state
                    .schedule
                    .on_failure(now, &self.config.status_schedule);
                self.state_dirty = true;
                self.persist()?;
                return Err(self.too_soon(e, now));
            }
        };
        let parsed: api::StatusResponse = api::parse(Endpoint::Status, response.body())?;
        self.take_server_config(parsed.config.as_ref())?;
        let reg = self
            .state
            .registration
            .as_mut()
            .ok_or(ClientError::NotRegistered)?;
        let mut tuples_received = 0;
        if let Some(t) = parsed.tuples.as_deref() {
            let sealed = b64::decode(t, "tuples").map_err(|_| ClientError::InvalidResponse {
                endpoint: "/status",
                reason: "tuples not base64",
            })?;
            let bundle = TupleBundle::open(reg.key_a_tuples(), &sealed)
                .map_err(|_| ClientError::TuplesUndecryptable)?;
            tuples_received = bundle.tuples.len();
            reg.replace_tuples(bundle);
        }
        reg.purge_expired(now);

        let risk_level = parsed.risk_level.unwrap_or(0.0);
        let risk_level = if risk_level.is_finite() {
            risk_level
        } else {
            0.0
        };
        let last_risk_scoring = parsed.last_risk_scoring_date.and_then(|f| f.value());
        self.state.status = StatusInfo {
            risk_level,
            last_contact_date: parsed.last_contact_date.and_then(|f| f.value()),
            last_risk_scoring_date: last_risk_scoring,
            declaration_token: parsed.declaration_token.map(Token::new),
            analytics_token: parsed.analytics_token.map(Token::new),
            last_status_at: Some(now),
        };
        let snapshot = RiskSnapshot {
            level: risk_level,
            last_risk_scoring,
        };
        let rule = self.config.notification;
        let mut notification = None;
        if rule.should_notify(&self.state.notified, &snapshot) {
            let n = Notification {
                risk_level,
                deliver_at: rule.delivery_time(now, self.clock.utc_offset_secs(now)),
            };
            self.state.pending_notification = Some(n);
            notification = Some(n);
        }
        self.state.notified = snapshot;
        self.state
            .schedule
            .on_success(now, &self.config.status_schedule, &mut self.rng);
        self.state_dirty = true;
        self.purge();
        self.persist()?;
        Ok(StatusOutcome {
            risk_level,
            tuples_received,
            notification,
        })
    }

    /// Turns the server's "too many status requests" refusal (HTTP 400)
    /// into [`ClientError::StatusTooSoon`] with the time the next request is
    /// accepted: the start of the epoch `gap` epochs after the last
    /// successful status (the server's rule, server-api.md §3.7).
    fn too_soon(&self, e: ClientError, now: NtpSeconds) -> ClientError {
        let ClientError::BadRequest { message } = &e else {
            return e;
        };
        let default_gap = self.config.min_status_gap_secs / EPOCH_DURATION_SECS;
        let last = self.state.status.last_status_at;
        let gap = match message.as_deref() {
            // This server's wording: "... at least 2 epochs must separate two requests".
            Some(m)
                if m.contains("Too many status requests") || m.contains("epochs are too close") =>
            {
                m.split("at least ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(u32::try_from(default_gap).unwrap_or(2))
            }
            // A server that sends no message: too soon if our last status is recent.
            None if last.is_some_and(|t| {
                now.get() < t.get().saturating_add(self.config.min_status_gap_secs)
            }) =>
            {
                u32::try_from(default_gap).unwrap_or(2)
            }
            _ => return e,
        };
        let Some(reg) = self.state.registration.as_ref() else {
            return e;
        };
        let Some(last_epoch) = reg.epoch_at(last.unwrap_or(now)) else {
            return e;
        };
        let next = robert_core::time::Epoch(last_epoch.get().saturating_add(gap));
        ClientError::StatusTooSoon {
            gap_epochs: gap,
            retry_at: reg.epoch_start(next),
        }
    }

    /// Takes the pending notification if its delivery time has come.
    pub fn take_due_notification(&mut self) -> Option<Notification> {
        let now = self.clock.now();
        let n = self.state.pending_notification?;
        if n.deliver_at <= now {
            self.state.pending_notification = None;
            self.state_dirty = true;
            Some(n)
        } else {
            None
        }
    }

    // ------------------------------------------------------------ report

    /// What a report would send now (window and filter applied), without
    /// sending anything.
    pub fn prepare_report(&self, basis: ReportBasis) -> ReportSelection {
        let now = self.clock.now();
        let window = report_window(now, basis, &self.config.report_spans);
        select_contacts(&self.contacts, window, &self.filter, self.filter_mode)
    }

    /// Reports the user positive with a code (§3.9): parses the code (6 or
    /// 12 characters, UUID, JWT or deep link), selects the contacts of the
    /// window given by `basis`, keeps only those the on-device proximity
    /// filter accepts, and posts `/report`. On success the local HELLOs
    /// are deleted (they have been handed over) and the report date kept.
    ///
    /// A phone reports once per registration, as the apps do: a second call
    /// fails with [`ClientError::AlreadyReported`] without sending anything.
    pub async fn report(
        &mut self,
        code: &str,
        basis: ReportBasis,
    ) -> Result<ReportOutcome, ClientError> {
        if let Some(at) = self.state.reported_at {
            return Err(ClientError::AlreadyReported { at });
        }
        let code = crate::code::ReportCode::parse(code)?;
        let selection = self.prepare_report(basis);
        let body = {
            let request = api::ReportRequest {
                token: code.expose_secret(),
                contacts: selection.contacts.iter().map(Into::into).collect(),
            };
            api::json_body(&request, "report")?
        };
        let response = self
            .call(
                Endpoint::Report,
                http::Method::POST,
                "/report",
                Some(body),
                Retry::IfNotSent,
            )
            .await?;
        let parsed: Option<api::ReportResponse> = serde_json::from_slice(response.body()).ok();
        let now = self.clock.now();
        self.state.reported_at = Some(now);
        self.state_dirty = true;
        self.clear_local_history();
        self.persist()?;
        Ok(ReportOutcome {
            contacts_sent: selection.contacts.len(),
            hellos_sent: selection.hellos_sent(),
            rejected_groups: selection.rejected_groups,
            report_validation_token: parsed
                .and_then(|p| p.report_validation_token)
                .filter(|t| !t.is_empty())
                .map(Token::new),
        })
    }

    // ---------------------------------------------------------- deletion

    fn clear_local_history(&mut self) {
        self.contacts.clear();
        self.dirty_days.extend(self.stored_days.iter().copied());
        self.last_dirty_day = None;
    }

    /// Deletes the received HELLOs on the phone ("erase local history").
    pub fn delete_local_history(&mut self) -> Result<(), ClientError> {
        self.clear_local_history();
        self.persist()
    }

    /// Deletes the exposure history on the server (`/deleteExposureHistory`)
    /// and the received HELLOs on the phone. The local deletion happens
    /// first, whatever the server answers.
    pub async fn delete_exposure_history(&mut self) -> Result<(), ClientError> {
        self.delete_local_history()?;
        let body = self.auth_body(Salt::DeleteHistory)?;
        let result = self
            .call(
                Endpoint::DeleteHistory,
                http::Method::POST,
                "/deleteExposureHistory",
                Some(body),
                Retry::Always,
            )
            .await;
        if let Err(ClientError::RegistrationDropped) = result {
            self.drop_registration()?;
        }
        result.map(|_| ())
    }

    /// Unregisters (`/unregister`), then deletes every local record: keys,
    /// tuples, status, received HELLOs. The device key is kept, so the same
    /// `Phone` can register again. If the server no longer knows the
    /// registration (430 / 404) the local deletion still happens.
    pub async fn unregister(&mut self) -> Result<(), ClientError> {
        let body = api::json_body(
            &api::UnregisterRequest {
                auth: self.auth_request(Salt::Unregister)?,
                push_token: self.push_info.as_ref().map(|p| p.token.as_str()),
            },
            "unregister",
        )?;
        let result = self
            .call(
                Endpoint::Unregister,
                http::Method::POST,
                "/unregister",
                Some(body),
                Retry::Always,
            )
            .await;
        match result {
            Ok(_) | Err(ClientError::RegistrationDropped | ClientError::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.reset_local()?;
        for name in self.storage.list()? {
            if name == STATE_RECORD || contacts_day(&name).is_some() {
                self.storage.remove(&name)?;
            }
        }
        Ok(())
    }

    fn reset_local(&mut self) -> Result<(), ClientError> {
        self.state = PhoneState::default();
        self.contacts.clear();
        self.dirty_days.clear();
        self.stored_days.clear();
        self.last_dirty_day = None;
        self.state_dirty = false;
        Ok(())
    }

    /// Deletes everything on the phone (uninstall): every record and the
    /// device key. Nothing is sent to the server. Consumes the phone.
    pub fn wipe(mut self) -> Result<(), ClientError> {
        self.reset_local()?;
        self.storage.wipe()?;
        Ok(())
    }

    /// The storage (e.g. for host-owned records).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }
}
