//! A push service on a throwaway database, a manual clock and a mock APNs
//! (the mock, its provider key and `[apns]` are [`robert_push::local`]'s).

use std::sync::Arc;

use robert_clock::ManualClock;
use robert_push::local::LocalApns;
use robert_push::mock_apns::MockApns;
use robert_push::store::TokenStore;
use robert_push::{Config, PushService};

/// 2024-03-14T10:00:00Z (11:00 in Paris).
pub const START: i64 = 1_710_410_400;

pub struct Harness {
    pub clock: ManualClock,
    pub svc: PushService,
    /// `http://127.0.0.1:port` of the token API.
    pub base: String,
    pub http: reqwest::Client,
    /// The mock APNs and the directory of the SQLite database.
    local: LocalApns,
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
        let clock = ManualClock::new(START);
        let local = LocalApns::start(Arc::new(clock.clone())).await.unwrap();
        let mut cfg = local.config.clone();
        cfg.apns.retry_base_ms = 5;
        cfg.apns.timeout_ms = 5000;
        if let Some(url) = database_url {
            cfg.database_url = url.to_owned();
        }
        tweak(&mut cfg);
        cfg.validate().unwrap();
        let store = TokenStore::open(&cfg.database_url, 4).await.unwrap();
        let jwt = local.provider_token().unwrap();
        let svc = PushService::with_parts(&cfg, store, jwt, Arc::new(clock.clone())).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = svc.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            clock,
            svc,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            local,
        }
    }

    /// The mock APNs.
    pub fn mock(&self) -> &MockApns {
        &self.local.mock
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
        self.mock()
            .received()
            .into_iter()
            .filter(|r| r.token == token && r.status == 200)
            .map(|r| r.at)
            .collect()
    }
}
