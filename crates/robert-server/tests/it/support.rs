//! The test application: a real [`AppState`] on a throwaway database, a
//! manual clock, in-memory keys, and stub HTTP services (submission codes,
//! push server, external captcha) on port 0.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{Request, StatusCode};
use axum::routing::{delete, get, post};
use http_body_util::BodyExt as _;
use robert_core::id_a::IdA;
use robert_core::time::{NtpSeconds, UtcDate};
use robert_server::clock::ManualClock;
use robert_server::config::{CaptchaMode, Config};
use robert_server::keystore::KeySet;
use robert_server::serve::ServerBuilder;
use robert_server::state::AppState;
use robert_store::Backend;
use robert_store::testing::TestDatabase;
use serde_json::Value;
use tower::ServiceExt as _;

/// "Today" in the tests: 2024-03-14T12:00:00Z.
pub fn today_noon() -> NtpSeconds {
    UtcDate::new(2024, 3, 14)
        .unwrap()
        .midnight()
        .plus(12 * 3600)
}

/// A response: status, body bytes, and the body as JSON when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Resp {
    pub fn message(&self) -> &str {
        self.json["message"].as_str().unwrap_or("")
    }
}

/// Calls received by the stubs.
#[derive(Debug, Default)]
pub struct StubLog {
    pub codes: Vec<String>,
    pub push: Vec<(String, String)>,
    pub captcha_checks: Vec<(String, String)>,
}

/// The stub services.
#[derive(Debug, Clone)]
pub struct Stubs {
    pub base: String,
    pub log: Arc<Mutex<StubLog>>,
}

impl Stubs {
    pub fn codes(&self) -> Vec<String> {
        self.log.lock().unwrap().codes.clone()
    }

    pub fn push(&self) -> Vec<(String, String)> {
        self.log.lock().unwrap().push.clone()
    }
}

/// A submission-code server with the reference mock's semantics: codes
/// `valid` + 1, 7 or 31 characters are valid (once), others are not; `slow…`
/// sleeps past the client timeout; `boom…` answers 500.
pub async fn start_stubs() -> Stubs {
    let log = Arc::new(Mutex::new(StubLog::default()));
    let used = Arc::new(Mutex::new(std::collections::HashSet::<String>::new()));
    let l1 = log.clone();
    let l2 = log.clone();
    let l3 = log.clone();
    let l4 = log.clone();
    let app = Router::new()
        .route(
            "/api/v1/verify",
            get(
                move |Query(q): Query<std::collections::HashMap<String, String>>| {
                    let log = l1.clone();
                    let used = used.clone();
                    async move {
                        let code = q.get("code").cloned().unwrap_or_default();
                        log.lock().unwrap().codes.push(code.clone());
                        if code.starts_with("slow") {
                            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                        }
                        if code.starts_with("boom") {
                            return (StatusCode::INTERNAL_SERVER_ERROR, "{}".to_owned());
                        }
                        let valid = code.starts_with("valid")
                            && [6, 12, 36].contains(&code.len())
                            && used.lock().unwrap().insert(code);
                        (StatusCode::OK, format!("{{\"valid\":{valid}}}"))
                    }
                },
            ),
        )
        .route(
            "/internal/api/v1/push-token",
            post(move |body: String| {
                let log = l2.clone();
                async move {
                    log.lock().unwrap().push.push(("POST".into(), body));
                    StatusCode::CREATED
                }
            }),
        )
        .route(
            "/internal/api/v1/push-token/{token}",
            delete(move |Path(token): Path<String>| {
                let log = l3.clone();
                async move {
                    log.lock().unwrap().push.push(("DELETE".into(), token));
                    StatusCode::ACCEPTED
                }
            }),
        )
        .route(
            "/private/api/v1/captcha",
            post(|| async {
                (
                    StatusCode::CREATED,
                    axum::Json(serde_json::json!({"id": "5227b11f", "captchaId": "5227b11f"})),
                )
            }),
        )
        .route(
            "/private/api/v1/captcha/{id}/checkAnswer",
            post(
                move |Path(id): Path<String>, axum::Json(v): axum::Json<Value>| {
                    let log = l4.clone();
                    async move {
                        let answer = v["answer"].as_str().unwrap_or("").to_owned();
                        log.lock()
                            .unwrap()
                            .captcha_checks
                            .push((id, answer.clone()));
                        let result = if answer.starts_with("valid") {
                            "SUCCESS"
                        } else {
                            "WRONG"
                        };
                        axum::Json(serde_json::json!({ "result": result }))
                    }
                },
            ),
        )
        .route(
            "/public/api/v1/captcha/{file}",
            get(|Path(file): Path<String>| async move {
                match file.as_str() {
                    "5227b11f.png" => (
                        StatusCode::OK,
                        [("content-type", "image/png")],
                        b"\x89PNG\r\n\x1a\nstub".to_vec(),
                    ),
                    "5227b11f.wav" => (
                        StatusCode::OK,
                        [("content-type", "audio/wav")],
                        b"RIFFstub".to_vec(),
                    ),
                    "used.png" => (
                        StatusCode::GONE,
                        [("content-type", "text/plain")],
                        Vec::new(),
                    ),
                    _ => (
                        StatusCode::NOT_FOUND,
                        [("content-type", "text/plain")],
                        Vec::new(),
                    ),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Stubs {
        base: format!("http://{addr}"),
        log,
    }
}

/// A key set with K_S from 40 days before to 30 days after `today`, and
/// JWT keys of both algorithms (the RS256 ones generated once per test
/// binary: RSA key generation takes a while).
pub fn test_keys(today: UtcDate) -> KeySet {
    static RSA: std::sync::OnceLock<robert_server::keystore::JwtKeySet> =
        std::sync::OnceLock::new();
    let mut set = KeySet::default();
    set.fill_missing(
        today.add_days(-40),
        today.add_days(30),
        true,
        &mut rand::rng(),
    );
    let rsa = RSA.get_or_init(|| {
        let mut s = KeySet::default();
        s.fill_missing_rsa_jwt(&mut rand::rng()).unwrap();
        s.jwt
    });
    set.jwt.declaration_rsa = rsa.declaration_rsa.clone();
    set.jwt.analytics_rsa = rsa.analytics_rsa.clone();
    set.jwt.report_rsa = rsa.report_rsa.clone();
    set
}

/// The public API's POST routes.
pub const API_POST_ROUTES: [&str; 6] = [
    "/api/v6/captcha",
    "/api/v6/register",
    "/api/v6/status",
    "/api/v6/report",
    "/api/v6/unregister",
    "/api/v6/deleteExposureHistory",
];

/// The test application.
pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub clock: Arc<ManualClock>,
    pub stubs: Stubs,
    pub db: Option<TestDatabase>,
}

impl TestApp {
    /// The stored registration `id`, if any.
    pub async fn registration(&self, id: IdA) -> Option<robert_store::Registration> {
        self.state.store.get_registration(id).await.unwrap()
    }

    /// An app on `backend` (`None`: PostgreSQL unavailable, test skipped).
    pub async fn new(backend: Backend, label: &str) -> Option<Self> {
        Self::with(backend, label, |_| {}).await
    }

    /// The same with configuration changes.
    pub async fn with(
        backend: Backend,
        label: &str,
        customize: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        Self::with_keys(
            backend,
            label,
            test_keys(UtcDate::of(today_noon())),
            customize,
        )
        .await
    }

    /// The same with the given keys (e.g. a K_G shared with another app).
    pub async fn with_keys(
        backend: Backend,
        label: &str,
        keys: KeySet,
        customize: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let db = TestDatabase::of(backend, label).await.unwrap()?;
        let stubs = start_stubs().await;
        let mut config = Config::default();
        config.captcha.mode = CaptchaMode::AcceptAny;
        config.codes.url = stubs.base.clone();
        config.codes.timeout_ms = 1000;
        config.push.url = format!("{}/internal/api/v1", stubs.base);
        config.captcha.external.private_base_url = format!("{}/private/api/v1", stubs.base);
        config.captcha.external.public_base_url = format!("{}/public/api/v1", stubs.base);
        customize(&mut config);
        let clock = Arc::new(ManualClock::at_ntp(today_noon()));
        let state = ServerBuilder::new(config, clock.clone())
            .keys(keys)
            .store(db.store())
            .build()
            .await
            .unwrap();
        let router = robert_server::api::app(state.clone());
        Some(Self {
            state,
            router,
            clock,
            stubs,
            db: Some(db),
        })
    }

    /// Both back ends (PostgreSQL only when reachable).
    pub async fn all(label: &str) -> Vec<Self> {
        Self::all_with(label, |_| {}).await
    }

    /// Both back ends with configuration changes.
    pub async fn all_with(label: &str, customize: impl Fn(&mut Config)) -> Vec<Self> {
        let mut apps = Vec::new();
        for b in [Backend::Sqlite, Backend::Postgres] {
            if let Some(a) = Self::with(b, label, &customize).await {
                apps.push(a);
            }
        }
        apps
    }

    pub fn backend(&self) -> Backend {
        self.state.store.backend()
    }

    pub fn now(&self) -> NtpSeconds {
        use robert_server::clock::Clock as _;
        self.clock.now_ntp()
    }

    pub fn set_now(&self, t: NtpSeconds) {
        self.clock.set_ntp(t);
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            content_type,
            bytes,
            json,
        }
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Resp {
        let mut b = Request::post(path);
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.post_raw(path, Some("application/json"), body.to_string())
            .await
    }

    /// A JSON POST from the client at `from` (as if on a socket from it).
    pub async fn post_from(&self, from: &str, path: &str, body: &Value) -> Resp {
        let mut req = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut().insert(axum::extract::ConnectInfo(
            from.parse::<SocketAddr>().unwrap(),
        ));
        self.send(req).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// Runs the batch at the current test time.
    pub async fn batch(&self) -> robert_server::batch::BatchReport {
        self.state.run_batch().await.unwrap()
    }

    pub async fn kpis(&self) -> Value {
        let r = self.get("/internal/api/v2/kpis").await;
        assert_eq!(r.status, 200);
        r.json
    }

    pub async fn cleanup(mut self) {
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}
