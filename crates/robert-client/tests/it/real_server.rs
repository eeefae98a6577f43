//! The SDK against the real server (`robert_server::api::app`, on a
//! throwaway SQLite database, manual clock, captcha in `accept-any` mode)
//! and the real code service (`robert_codes::CodesService`, whose verify API
//! the server calls over HTTP on 127.0.0.1), with the real risk batch.
//!
//! The phones reach the server in process through [`ServiceTransport`]; the
//! server and the code service share one clock, the phones have theirs, and
//! both move together.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use robert_client::contacts::ContactKey;
use robert_client::{
    DeviceModel, FixedCaptchaAnswer, ManualClock, MemoryStorage, Phone, PhoneConfig, ReportBasis,
    RetryPolicy, ServiceTransport, Storage as _,
};
use robert_codes::service::Channel;
use robert_codes::{CodeKind, CodesService};
use robert_core::ebid::Ebid;
use robert_core::id_a::IdA;
use robert_core::time::{NtpSeconds, UtcDate};
use robert_server::config::Config;
use robert_server::serve::ServerBuilder;
use robert_server::state::AppState;
use robert_store::testing::TestDatabase;

pub(crate) type RealPhone = Phone<ServiceTransport<Router>, MemoryStorage>;

/// 2024-03-14 08:00:00 UTC.
pub(crate) fn start() -> NtpSeconds {
    UtcDate::new(2024, 3, 14).unwrap().midnight().plus(8 * 3600)
}

pub(crate) struct Real {
    pub(crate) state: AppState,
    pub(crate) router: Router,
    backend_clock: ManualClock,
    pub(crate) codes: CodesService,
    pub(crate) phone_clock: ManualClock,
    pub(crate) config: Arc<PhoneConfig>,
    db: Option<TestDatabase>,
    _codes_dir: tempfile::TempDir,
}

impl Real {
    pub(crate) async fn new(label: &str) -> Self {
        Self::new_with(label, |_| {}).await
    }

    /// The same with changes to the server's configuration.
    pub(crate) async fn new_with(label: &str, customize: impl FnOnce(&mut Config)) -> Self {
        let t = start();
        // The code service on 127.0.0.1:0.
        let codes_dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            codes_dir.path().join("codes.db").display()
        );
        let mut codes_config = robert_codes::Config::from_toml(
            r#"
[[peppers]]
id = "a"
secret = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="

[api]
verify_per_second = 10000
verify_burst = 10000
"#,
        )
        .unwrap();
        codes_config.database_url = url;
        codes_config.max_connections = 4;
        let backend_clock = ManualClock::at_ntp(t);
        let codes = CodesService::open(codes_config, Arc::new(backend_clock.clone()))
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let codes_router = codes.router();
        tokio::spawn(async move {
            axum::serve(
                listener,
                codes_router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });

        // The server.
        let db = TestDatabase::sqlite(label).await.unwrap();
        let mut config = Config::default();
        config.codes.url = format!("http://{addr}");
        config.codes.timeout_ms = 5000;
        customize(&mut config);
        let state = ServerBuilder::for_tests(config, Arc::new(backend_clock.clone()))
            .store(db.store())
            .build()
            .await
            .unwrap();
        let public_key = state.keys.get().registration().public_key_base64();
        let router = robert_server::api::app(state.clone());

        let mut phone_config = PhoneConfig::with_key_base64(
            "http://robert.test",
            &public_key,
            DeviceModel::android("DEFAULT"),
        )
        .unwrap();
        phone_config.retry = RetryPolicy::none();
        Self {
            state,
            router,
            backend_clock,
            codes,
            phone_clock: ManualClock::at_ntp(t),
            config: Arc::new(phone_config),
            db: Some(db),
            _codes_dir: codes_dir,
        }
    }

    pub(crate) fn now(&self) -> NtpSeconds {
        robert_client::Clock::now_ntp(&self.phone_clock)
    }

    pub(crate) fn advance(&self, secs: u64) {
        let t = self.now().plus(secs);
        self.phone_clock.set_ntp(t);
        self.backend_clock.set_ntp(t);
    }

    fn phone_with(&self, seed: u64, storage: MemoryStorage) -> RealPhone {
        Phone::open(
            self.config.clone(),
            ServiceTransport::new(self.router.clone()),
            storage,
            Arc::new(self.phone_clock.clone()),
            StdRng::seed_from_u64(seed),
        )
        .unwrap()
    }

    pub(crate) async fn registered(&self, seed: u64) -> RealPhone {
        let mut p = self.phone_with(seed, MemoryStorage::new());
        p.register(&mut FixedCaptchaAnswer("anything".into()))
            .await
            .unwrap();
        p
    }

    /// A doctor's 6-character code, issued now.
    async fn issue_code(&self) -> String {
        let issued = self
            .codes
            .issue(CodeKind::Short, &Channel::Cli)
            .await
            .unwrap();
        issued.code.to_string()
    }

    /// The registration behind an EBID (server keys).
    fn id_of(&self, ebid: &Ebid, epoch_day: UtcDate) -> IdA {
        let ring = self.state.keys.get();
        ebid.decrypt(ring.server_key(epoch_day).unwrap()).id_a
    }

    fn phone_id(&self, p: &RealPhone) -> IdA {
        let reg = p.registration().unwrap();
        let t = reg.tuples()[0];
        let day = UtcDate::of(reg.epoch_start(t.epoch));
        self.id_of(&t.ebid, day)
    }

    pub(crate) async fn finish(mut self) {
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

/// Each side hears the other every `step` seconds; raw RSSI `rssi`.
fn meet(a: &mut RealPhone, b: &mut RealPhone, rssi: i16) {
    let pa = a.ble_payload().unwrap();
    let pb = b.ble_payload().unwrap();
    a.receive_ble_payload(&pb, rssi).unwrap();
    b.receive_ble_payload(&pa, rssi).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_close_by_is_at_risk_five_minutes_is_not() {
    let w = Real::new("client_hour").await;
    let mut reporter = w.registered(1).await;
    let mut hour = w.registered(2).await;
    let mut five = w.registered(3).await;
    let mut brief = w.registered(4).await;
    assert_eq!(reporter.current_tuple().unwrap().epoch, {
        let e = (start().get() - 3_799_958_400) / 900;
        robert_core::time::Epoch(u32::try_from(e).unwrap())
    });

    // 60 minutes at close range with `hour`, HELLOs every 5 s; `five` is
    // there for the first 5 minutes. Raw −60 dBm between DEFAULT Androids
    // (tx −30, rx −5): calibrated −25.
    for i in 0..720u64 {
        meet(&mut reporter, &mut hour, -60);
        if i < 60 {
            meet(&mut reporter, &mut five, -60);
        }
        w.advance(5);
    }
    // Then 90 seconds with `brief`: below the filter's 120 s.
    for _ in 0..18 {
        meet(&mut reporter, &mut brief, -60);
        w.advance(5);
    }

    // What the filter keeps: `hour` and `five`, never `brief`.
    let selection = reporter.prepare_report(ReportBasis::Unknown);
    let kept: std::collections::HashSet<ContactKey> =
        selection.contacts.iter().map(|c| c.key).collect();
    let brief_keys: Vec<ContactKey> = reporter
        .contacts()
        .groups()
        .map(|(k, _)| *k)
        .filter(|k| {
            brief
                .registration()
                .unwrap()
                .tuples()
                .iter()
                .any(|t| t.ebid == k.ebid)
        })
        .collect();
    assert!(!brief_keys.is_empty());
    assert!(brief_keys.iter().all(|k| !kept.contains(k)));
    assert!(selection.rejected_groups >= 1);

    let code = w.issue_code().await;
    let out = reporter.report(&code, ReportBasis::Unknown).await.unwrap();
    assert_eq!(out.contacts_sent, selection.contacts.len());
    assert!(out.report_validation_token.is_some());

    // The server queued exactly what the filter kept.
    let store = w.state.store.clone();
    let queued = store
        .next_contacts(None, usize::MAX, u64::MAX)
        .await
        .unwrap();
    let queued_keys: std::collections::HashSet<ContactKey> = queued
        .iter()
        .map(|c| ContactKey {
            ebid: c.ebid,
            ecc: c.ecc,
        })
        .collect();
    assert_eq!(queued_keys, kept);
    let queued_hellos: usize = queued.iter().map(|c| c.hellos.len()).sum();
    assert_eq!(queued_hellos, out.hellos_sent);
    for k in &brief_keys {
        assert!(!queued_keys.contains(k), "a filtered-out contact was sent");
    }

    // The batch, then each phone asks for its status.
    let report = w.state.run_batch().await.unwrap();
    let _ = report;
    w.advance(3600);
    let hour_status = hour.status().await.unwrap();
    let five_status = five.status().await.unwrap();
    let reporter_status = reporter.status().await.unwrap();
    let brief_status = brief.status().await.unwrap();
    assert_eq!(hour_status.risk_level, 4.0, "an hour at close range");
    assert!(hour.status_info().last_contact_date.is_some());
    assert!(hour.status_info().declaration_token.is_some());
    assert!(hour_status.notification.is_some());
    assert_eq!(five_status.risk_level, 0.0, "five minutes");
    assert_eq!(reporter_status.risk_level, 0.0, "the reporter");
    assert_eq!(brief_status.risk_level, 0.0);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_unregister_status_answers_430() {
    let w = Real::new("client_unregister").await;
    let mut phone = w.registered(1).await;
    w.advance(3600);
    // The real server takes pushInfo with /status and pushToken with /unregister.
    phone.set_push_info(Some(robert_client::PushInfo {
        token: "apns-token".into(),
        locale: "fr-FR".into(),
        timezone: "Europe/Paris".into(),
    }));
    phone.status().await.unwrap();

    // A copy of the credentials, as a restored backup would hold.
    phone.persist().unwrap();
    let mut copy = MemoryStorage::new();
    let state = phone.storage_mut().read("state").unwrap().unwrap();
    copy.write("state", &state).unwrap();
    let mut stale = w.phone_with(2, copy);

    let id = w.phone_id(&phone);
    assert!(w.state.store.get_registration(id).await.unwrap().is_some());
    phone.unregister().await.unwrap();
    assert!(!phone.is_registered());
    assert!(w.state.store.get_registration(id).await.unwrap().is_none());

    w.advance(3600);
    let err = stale.status().await.unwrap_err();
    assert!(err.is_registration_dropped(), "{err:?}");
    assert!(!stale.is_registered(), "wiped locally after 430");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_history_removes_the_exposure_on_the_server() {
    let w = Real::new("client_delete").await;
    let mut reporter = w.registered(1).await;
    let mut contact = w.registered(2).await;
    for _ in 0..360u64 {
        meet(&mut reporter, &mut contact, -60);
        w.advance(5);
    }
    let code = w.issue_code().await;
    reporter.report(&code, ReportBasis::Unknown).await.unwrap();
    w.state.run_batch().await.unwrap();

    let id = w.phone_id(&contact);
    assert!(!w.state.store.exposures(id).await.unwrap().is_empty());
    assert!(!contact.contacts().is_empty());
    w.advance(3600);
    contact.delete_exposure_history().await.unwrap();
    assert!(
        w.state.store.exposures(id).await.unwrap().is_empty(),
        "exposures cleared on the server"
    );
    assert!(contact.contacts().is_empty(), "and the HELLOs on the phone");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_in_every_form_and_errors_from_the_real_server() {
    let w = Real::new("client_codes").await;
    let mut reporter = w.registered(1).await;
    // An unknown code: 401 with the server's message.
    match reporter.report("ZZ99ZZ", ReportBasis::Unknown).await {
        Err(robert_client::ClientError::InvalidCode { .. }) => {}
        other => panic!("{other:?}"),
    }
    // A real code typed in lower case, through a deep link.
    let code = w.issue_code().await;
    let link = format!(
        "https://bonjour.tousanticovid.gouv.fr/app/code/{}",
        code.to_lowercase()
    );
    let out = reporter.report(&link, ReportBasis::Unknown).await.unwrap();
    assert_eq!(out.contacts_sent, 0);
    // The same code twice (from another phone: this one has reported): refused,
    // in plain words.
    let mut other = w.registered(2).await;
    let err = other.report(&code, ReportBasis::Unknown).await.unwrap_err();
    assert!(
        matches!(err, robert_client::ClientError::InvalidCode { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("already used"), "{text}");
    assert!(!text.contains("HTTP") && !text.contains("token"), "{text}");
    // The clock endpoint agrees with the phone.
    reporter.check_clock().await.unwrap();
    w.finish().await;
}

/// A phone reports once, as the apps do: the second report is refused on
/// the phone, nothing is sent and the second code stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_reports_once() {
    let w = Real::new("client_report_once").await;
    let mut reporter = w.registered(1).await;
    let first = w.issue_code().await;
    reporter.report(&first, ReportBasis::Unknown).await.unwrap();
    let reported_at = reporter.reported_at().unwrap();

    w.advance(600);
    let second = w.issue_code().await;
    let err = reporter
        .report(&second, ReportBasis::Unknown)
        .await
        .unwrap_err();
    match &err {
        robert_client::ClientError::AlreadyReported { at } => assert_eq!(*at, reported_at),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("already reported"), "{err}");
    // The second code was not spent: another phone can use it.
    let mut other = w.registered(2).await;
    other.report(&second, ReportBasis::Unknown).await.unwrap();
    w.finish().await;
}

/// A second status within two epochs: the error says when to come back,
/// and at that time the request is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_early_status_says_when_to_retry() {
    let w = Real::new("client_too_soon").await;
    let mut phone = w.registered(1).await;
    phone.status().await.unwrap();
    w.advance(60);
    let err = phone.status().await.unwrap_err();
    let robert_client::ClientError::StatusTooSoon {
        gap_epochs,
        retry_at,
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(gap_epochs, 2);
    let reg = phone.registration().unwrap();
    let epoch = reg.epoch_at(start()).unwrap();
    assert_eq!(
        retry_at,
        reg.epoch_start(robert_core::time::Epoch(epoch.get() + 2))
    );
    let text = err.to_string();
    assert!(text.contains("every 30 minutes"), "{text}");
    assert!(text.contains(" UTC"), "{text}");
    assert!(!text.contains("epochs"), "{text}");
    // One second before: still refused; at `retry_at`: accepted.
    w.advance(retry_at.get() - w.now().get() - 1);
    assert!(matches!(
        phone.status().await,
        Err(robert_client::ClientError::StatusTooSoon { .. })
    ));
    w.advance(1);
    phone.status().await.unwrap();
    w.finish().await;
}
