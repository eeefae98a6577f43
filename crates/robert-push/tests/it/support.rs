//! A push service on a throwaway database, a manual clock and a mock APNs.

use std::sync::Arc;

use robert_clock::ManualClock;
use robert_push::jwt::{ProviderToken, generate_p8};
use robert_push::mock_apns::{MockApns, MockApnsConfig};
use robert_push::store::TokenStore;
use robert_push::{Config, PushService};

/// 2024-03-14T10:00:00Z (11:00 in Paris).
pub const START: i64 = 1_710_410_400;

pub const TEAM: &str = "TEAM123456";
pub const KID: &str = "KEY1234567";
pub const TOPIC: &str = "fr.gouv.stopcovid.ios";

pub struct Harness {
    pub clock: ManualClock,
    pub mock: MockApns,
    pub svc: PushService,
    /// `http://127.0.0.1:port` of the token API.
    pub base: String,
    pub http: reqwest::Client,
    pub _dir: tempfile::TempDir,
}

/// A device token: 64 hex digits.
pub fn device(n: u32) -> String {
    format!("{n:064x}")
}

impl Harness {
    /// On SQLite, or on `database_url` when given.
    pub async fn new(database_url: Option<&str>) -> Self {
        Self::with(database_url, |_| {}).await
    }

    pub async fn with(database_url: Option<&str>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let p8 = generate_p8();
        let jwt = ProviderToken::from_p8(&p8, KID, TEAM, 2400).unwrap();
        let mock = MockApns::start(MockApnsConfig {
            team_id: TEAM.into(),
            key_id: KID.into(),
            topic: TOPIC.into(),
            public_key_pem: jwt.public_key_pem(),
            clock: Arc::new(clock.clone()),
        })
        .await
        .unwrap();
        let ca = dir.path().join("mock-apns.pem");
        std::fs::write(&ca, mock.cert_pem()).unwrap();
        let mut cfg = Config::default();
        cfg.apns.urls = vec![mock.url()];
        cfg.apns.team_id = TEAM.into();
        cfg.apns.key_id = KID.into();
        cfg.apns.topic = TOPIC.into();
        cfg.apns.ca_file = Some(ca);
        cfg.apns.retry_base_ms = 5;
        cfg.apns.timeout_ms = 5000;
        cfg.database_url = database_url.map_or_else(
            || format!("sqlite://{}?mode=rwc", dir.path().join("push.db").display()),
            str::to_owned,
        );
        tweak(&mut cfg);
        cfg.validate().unwrap();
        let store = TokenStore::open(&cfg.database_url, 4).await.unwrap();
        let svc = PushService::with_parts(&cfg, store, jwt, Arc::new(clock.clone())).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = svc.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            clock,
            mock,
            svc,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `http://…/internal/api/v1`: robert-server's `push.url`.
    pub fn push_url(&self) -> String {
        format!("{}/internal/api/v1", self.base)
    }

    pub async fn register(&self, token: &str, tz: &str) -> u16 {
        self.http
            .post(format!("{}/push-token", self.push_url()))
            .json(&serde_json::json!({"token": token, "locale": "fr-FR", "timezone": tz}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn unregister(&self, token: &str) -> u16 {
        self.http
            .delete(format!("{}/push-token/{token}", self.push_url()))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Moves the clock by `secs` in steps of `step`, scanning at each.
    pub async fn run_for(&self, secs: i64, step: i64) {
        let end = robert_clock::Clock::now_unix(&self.clock) + secs;
        while robert_clock::Clock::now_unix(&self.clock) < end {
            self.clock.advance_secs(step);
            self.svc.scan().await.unwrap();
        }
    }

    /// Accepted pushes per token seen by the mock.
    pub fn accepted_for(&self, token: &str) -> Vec<i64> {
        self.mock
            .received()
            .into_iter()
            .filter(|r| r.token == token && r.status == 200)
            .map(|r| r.at)
            .collect()
    }
}
