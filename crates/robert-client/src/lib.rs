//! The ROBERT phone SDK: what a StopCovid / TousAntiCovid app does, as a
//! library that a mobile app (through FFI), the `robert phone` command or a
//! simulator embeds.
//!
//! A [`Phone`] registers with the server, broadcasts HELLOs built from the
//! EBIDs it received, records the HELLOs of other phones, asks for its
//! exposure status, reports with a code, and deletes its data. The protocol
//! itself (keys, EBIDs, MACs, bundles, the proximity filter) comes from
//! [`robert_core`]; this crate adds the app's logic (client-ble.md §2–§4)
//! and I/O at the edges:
//!
//! | piece | trait | implementations |
//! |---|---|---|
//! | time | [`Clock`] | [`SystemClock`], [`ManualClock`] (simulated) |
//! | HTTP | [`Transport`] (async) | [`ReqwestTransport`] (reqwest + rustls/ring), [`ServiceTransport`] (any in-process `tower::Service`, e.g. an axum `Router`) |
//! | state | [`Storage`] | [`MemoryStorage`], [`NullStorage`], [`EncryptedFileStorage`] under a [`KeyProvider`] |
//! | randomness | a `StdRng` given to [`Phone::open`] | seeded (simulations, tests) or from the OS |
//!
//! The protocol decisions are pure functions with their own tests:
//! [`identity`] (which EBID, HELLO, request MACs), [`contacts`] (grouping,
//! one record per EBID per second, retention), [`report`] (report window
//! and on-device filter), [`schedule`] (status polling and the
//! notification rule), [`code`] (report codes and deep links),
//! [`calibration`] (RSSI calibration), [`server_config`] (the filter
//! parameters of the server's `config` list).
//!
//! The phone follows the server's `config` list for `ble.filterMode` and
//! `ble.filterConfig` (operators set them with `robert app-config`) and for
//! traffic privacy (`privacy.*`: [`dummy`], [`padding`]: padded `/status`
//! and `/report`, dummy reports and status requests, which the host sends
//! with [`Phone::dummy_traffic_if_due`]), and
//! sends the host's push token ([`PushInfo`], [`Phone::set_push_info`]) with
//! `/status`.
//!
//! # Privacy invariants (design rules, not options)
//!
//! These are the StopCovid FAQ's promises, kept by the shape of the API:
//!
//! * **No location.** No function takes a position, a place, a Wi-Fi or a
//!   cell identifier; nothing in the SDK can record one.
//! * **No access to contacts.** The SDK has no way to read the phone's
//!   address book, and no function accepts a name, number or address.
//! * **Only pseudonyms are captured.** [`Phone::receive_hello`] takes the
//!   16-byte HELLO, the RSSI and the sender's calibration gain, nothing else
//!   (no Bluetooth address, no device name); it stores the EBID, ECC,
//!   Time16, MAC, reception time and RSSIs.
//! * **Only encrypted data on disk.** [`EncryptedFileStorage`] encrypts every
//!   record with AES-256-GCM under a device key from a [`KeyProvider`] (the
//!   OS keystore on a phone). A test scans every file for the keys, EBIDs
//!   and HELLOs and finds none.
//! * **Deletion at any time.** [`Phone::delete_local_history`] (HELLOs on
//!   the phone), [`Phone::delete_exposure_history`] (server and phone),
//!   [`Phone::unregister`] (server identity, then all local records) and
//!   [`Phone::wipe`] (every record and the device key: uninstall).
//! * **Only what passes the filter is reported.** [`Phone::report`] sends
//!   the contacts of the report window that the on-device proximity filter
//!   accepts (CNIL, 2020), nothing else.
//! * Secrets (K_A, K_A_Tuples, tuples, device key, codes, tokens) are
//!   zeroized and their `Debug` is redacted; the ECDH private key is erased
//!   right after key derivation.
//!
//! # Embedding: an app's main loop
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use rand::SeedableRng as _;
//! use robert_client::{
//!     DeviceModel, EncryptedFileStorage, FileKeyProvider, FixedCaptchaAnswer, Phone,
//!     PhoneConfig, ReportBasis, ReqwestTransport, SystemClock,
//! };
//!
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! // The server's public key is embedded in the app.
//! let config = PhoneConfig::with_key_base64(
//!     "https://api.example.fr",
//!     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fAxfrLtG5tXyjomCOg9r1wNnr9len4m9sTflJUHDdkwubKyidTtFkVfNLrM91yuffdrpJZe9XOkof8P+zPGDg==",
//!     DeviceModel::android("SM-G973F"),
//! )?;
//! // On a phone, implement `KeyProvider` over the Android Keystore / iOS Keychain.
//! let storage = EncryptedFileStorage::open(
//!     "/data/robert",
//!     FileKeyProvider::new("/data/robert.key"),
//!     |buf: &mut [u8]| rand::fill(buf),
//! )?;
//! let mut phone = Phone::open(
//!     Arc::new(config),
//!     ReqwestTransport::new(Duration::from_secs(30))?,
//!     storage,
//!     Arc::new(SystemClock::default()),
//!     rand::make_rng(),
//! )?;
//!
//! if !phone.is_registered() {
//!     // A real app shows `challenge.media` and asks the user.
//!     phone.register(&mut FixedCaptchaAnswer("answer".into())).await?;
//! }
//! phone.ensure_identity().await?; // refills EBIDs when the stock is low
//!
//! // BLE layer: advertise this payload, refresh it at least every 30 s...
//! let payload = phone.ble_payload()?;
//! # let _ = payload;
//! // ...and hand over every HELLO received, with its RSSI.
//! # let (received, rssi) = ([0u8; 18], -70);
//! let _ = phone.receive_ble_payload(&received, rssi);
//!
//! // Periodically: persist, poll the status, deliver notifications.
//! phone.persist()?;
//! if let Some(outcome) = phone.status_if_due().await? {
//!     println!("risk level {}", outcome.risk_level);
//! }
//! if let Some(n) = phone.take_due_notification() {
//!     println!("notify: risk level {}", n.risk_level);
//! }
//! // Dummy reports and status requests, if the server asks for them.
//! phone.dummy_traffic_if_due().await?;
//!
//! // The user tests positive and scans the laboratory's QR code.
//! phone
//!     .report(
//!         "https://bonjour.tousanticovid.gouv.fr/app/code/3d27eb2c-9a3b-4e4f-8d7c-1234567890ab",
//!         ReportBasis::Unknown,
//!     )
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! A simulator shares one `Arc<PhoneConfig>` (with `retry` set to
//! [`RetryPolicy::none`]) and gives each phone a [`ManualClock`] clone, a
//! [`ServiceTransport`] over the server's `Router`, a [`NullStorage`] (or
//! [`MemoryStorage`] to test restarts) and `StdRng::seed_from_u64(i)`; it
//! calls [`Phone::receive_hello`] (memory only) as often as
//! it likes (about 0.1 µs each, `cargo bench -p robert-client`). Memory
//! per phone is dominated by its tuples (16 bytes each, about 350 after a
//! registration) and its received HELLOs (24 bytes each, plus one hash-map
//! entry per EBID heard).
//!
//! # Storage format
//!
//! Records (see [`storage`] for the file layout and [`state`] for their
//! contents): `state` holds the registration (K_A, K_A_Tuples, `timeStart`,
//! tuples), the last status, the polling schedule and the notification
//! state; `contacts-<NTP day>` holds one UTC day's received HELLOs, so that
//! a persist rewrites only the days that changed and retention deletes whole
//! files. Each file is `"RCS1" ‖ nonce ‖ AES-256-GCM(device key, record,
//! AAD = "RCS1" ‖ name) ‖ tag`, written atomically (temp file, fsync,
//! rename, directory fsync).

pub mod api;
pub mod calibration;
pub mod clock;
pub mod code;
pub mod config;
pub mod contacts;
pub mod dummy;
pub mod error;
pub mod identity;
pub mod padding;
pub mod phone;
pub mod report;
pub mod schedule;
pub mod server_config;
pub mod state;
pub mod storage;
pub mod transport;

pub use calibration::{CalibrationTable, DeviceModel, Gains, Os};
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use code::{CodeError, CodeKind, ReportCode};
pub use config::{CaptchaKind, PhoneConfig, RetryPolicy};
pub use dummy::{DummyKind, PrivacySettings};
pub use error::{ClientError, ReceiveError};
pub use phone::{
    CaptchaChallenge, CaptchaSolver, FixedCaptchaAnswer, Phone, PhoneSummary, PushInfo,
    ReportOutcome, StatusOutcome,
};
pub use report::{ReportBasis, ReportSelection, ReportSpans, ReportWindow};
pub use schedule::{Notification, NotificationRule, StatusScheduleParams};
pub use state::{StatusInfo, Token};
pub use storage::{
    DeviceKey, EncryptedFileStorage, FileKeyProvider, KeyProvider, MemoryStorage, NullStorage,
    StaticKeyProvider, Storage, StorageError,
};
#[cfg(feature = "reqwest")]
pub use transport::ReqwestTransport;
pub use transport::{ServiceTransport, Transport, TransportError, TransportErrorKind};

// Re-exported so that hosts name the same versions.
pub use rand;
pub use robert_core;
