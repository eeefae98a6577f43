//! A mock APNs for the tests, the benchmark and `robert demo`: an HTTP/2
//! server over TLS on 127.0.0.1 (a self-signed certificate made at start,
//! for `localhost` and `127.0.0.1`; ALPN `h2` only, as Apple's servers).
//!
//! It checks what APNs checks, in Apple's order, and answers Apple's
//! documented status codes and reasons:
//!
//! | check | answer when it fails |
//! |---|---|
//! | `POST /3/device/{token}` | 405 `MethodNotAllowed`, 404 `BadPath` |
//! | token is hex | 400 `BadDeviceToken` |
//! | `authorization: bearer <jwt>` present | 403 `MissingProviderToken` |
//! | ES256 signature by the configured public key, `kid`, `iss` | 403 `InvalidProviderToken` |
//! | `iat` at most one hour old | 403 `ExpiredProviderToken` |
//! | `apns-topic` present and the configured one | 400 `MissingTopic`, 400 `BadTopic` |
//! | `apns-push-type: background` | 400 `InvalidPushType` |
//! | `apns-priority: 5` | 400 `BadPriority` |
//! | `apns-expiration` a number | 400 `BadExpirationDate` |
//! | body ≤ 4 KiB, JSON with `aps.content-available = 1` | 413 `PayloadTooLarge`, 400 `PayloadEmpty` |
//!
//! then answers, in order: a scripted failure if one is queued
//! ([`MockApns::fail_next`]: 429 `TooManyRequests`, 500
//! `InternalServerError`, 503 `ServiceUnavailable`, …), 400
//! `BadDeviceToken` for tokens marked bad, 410 `Unregistered` (with a
//! `timestamp`) for tokens marked unregistered, and 200 with an `apns-id`.
//!
//! It stands in for Apple's `api.push.apple.com`; what it cannot stand in
//! for is the phone: nothing is delivered anywhere. Every request is
//! recorded for assertions (or only counted, [`MockApns::set_recording`]).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use robert_clock::SharedClock;
use tokio_rustls::TlsAcceptor;

use crate::jwt;

/// What the mock expects of a provider.
#[derive(Clone, Debug)]
pub struct MockApnsConfig {
    /// The team id (`iss`).
    pub team_id: String,
    /// The key id (`kid`).
    pub key_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// The provider key's public half (PEM).
    pub public_key_pem: String,
    /// The clock the `iat` age is measured with.
    pub clock: SharedClock,
}

/// One request as the mock saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The device token in the path.
    pub token: String,
    /// The status answered.
    pub status: u16,
    /// The reason answered (empty for 200).
    pub reason: String,
    /// The mock clock's time, Unix seconds.
    pub at: i64,
    /// The provider token's `iat`, when it verified.
    pub iat: Option<i64>,
}

#[derive(Debug)]
struct State {
    cfg: MockApnsConfig,
    bad: Mutex<HashSet<String>>,
    unregistered: Mutex<HashSet<String>>,
    script: Mutex<VecDeque<(u16, &'static str)>>,
    received: Mutex<Vec<Received>>,
    by_status: Mutex<BTreeMap<u16, u64>>,
    total: AtomicU64,
    recording: AtomicBool,
}

/// A running mock APNs; stops when dropped.
#[derive(Debug)]
pub struct MockApns {
    addr: SocketAddr,
    cert_pem: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockApns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Certificate generation.
    #[error("mock APNs certificate: {0}")]
    Cert(String),
    /// Binding the port.
    #[error("mock APNs: {0}")]
    Io(#[from] std::io::Error),
}

impl MockApns {
    /// Starts the mock on 127.0.0.1 (a free port).
    pub async fn start(cfg: MockApnsConfig) -> Result<Self, MockError> {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .map_err(|e| MockError::Cert(e.to_string()))?;
        let cert_pem = certified.cert.pem();
        let cert_der = certified.cert.der().clone();
        let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| MockError::Cert(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert_der], key_der)
            .map_err(|e| MockError::Cert(e.to_string()))?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            cfg,
            bad: Mutex::default(),
            unregistered: Mutex::default(),
            script: Mutex::default(),
            received: Mutex::default(),
            by_status: Mutex::default(),
            total: AtomicU64::new(0),
            recording: AtomicBool::new(true),
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(1000)
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            cert_pem,
            state,
            task,
        })
    }

    /// `https://127.0.0.1:port`, for `apns.urls`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The self-signed certificate (PEM), for `apns.ca_file`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Marks a token as one APNs answers 400 `BadDeviceToken` for.
    pub fn set_bad(&self, token: &str) {
        lock(&self.state.bad).insert(token.to_owned());
    }

    /// Marks a token as one APNs answers 410 `Unregistered` for.
    pub fn set_unregistered(&self, token: &str) {
        lock(&self.state.unregistered).insert(token.to_owned());
    }

    /// The next `n` well-formed requests get `status` with `reason`
    /// (e.g. 429 `TooManyRequests`, 503 `ServiceUnavailable`).
    pub fn fail_next(&self, n: usize, status: u16, reason: &'static str) {
        let mut s = lock(&self.state.script);
        for _ in 0..n {
            s.push_back((status, reason));
        }
    }

    /// Records each request (default) or only counts them.
    pub fn set_recording(&self, on: bool) {
        self.state.recording.store(on, Ordering::Relaxed);
    }

    /// The requests recorded so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.state.received).clear();
    }

    /// Requests answered per status code.
    pub fn by_status(&self) -> BTreeMap<u16, u64> {
        lock(&self.state.by_status).clone()
    }

    /// Requests answered in all.
    pub fn total(&self) -> u64 {
        self.state.total.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn answer(status: u16, reason: &str) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("apns-id", uuid_like());
    let body = if status == 200 {
        Bytes::new()
    } else {
        b = b.header("content-type", "application/json");
        let v = if status == 410 {
            serde_json::json!({"reason": reason, "timestamp": 1_700_000_000_000_i64})
        } else {
            serde_json::json!({ "reason": reason })
        };
        Bytes::from(v.to_string())
    };
    b.body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn uuid_like() -> String {
    use rand::Rng as _;
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    let h = hex::encode_upper(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Checks a request as APNs would: `Err((status, reason))` on the first
/// failed check, `Ok((token, iat))` otherwise.
async fn check(
    st: &State,
    req: Request<Incoming>,
) -> Result<(String, Option<i64>), (u16, &'static str, String, Option<i64>)> {
    let path = req.uri().path().to_owned();
    let token = path.strip_prefix("/3/device/").unwrap_or("").to_owned();
    let fail = |s, r, iat| (s, r, token.clone(), iat);
    if req.method() != hyper::Method::POST {
        return Err(fail(405, "MethodNotAllowed", None));
    }
    if token.is_empty() || token.contains('/') {
        return Err(fail(404, "BadPath", None));
    }
    if !token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(fail(400, "BadDeviceToken", None));
    }
    let h = req.headers();
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(auth) = header("authorization") else {
        return Err(fail(403, "MissingProviderToken", None));
    };
    let Some(bearer) = auth.strip_prefix("bearer ") else {
        return Err(fail(403, "MissingProviderToken", None));
    };
    let verified = match jwt::verify(bearer, &st.cfg.public_key_pem) {
        Ok(v) if v.key_id == st.cfg.key_id && v.team_id == st.cfg.team_id => v,
        _ => return Err(fail(403, "InvalidProviderToken", None)),
    };
    let iat = Some(verified.iat);
    let now = st.cfg.clock.now_unix();
    if verified.iat > now + 60 {
        return Err(fail(403, "InvalidProviderToken", iat));
    }
    if now - verified.iat > jwt::MAX_AGE_SECS {
        return Err(fail(403, "ExpiredProviderToken", iat));
    }
    match header("apns-topic") {
        None => return Err(fail(400, "MissingTopic", iat)),
        Some(t) if t != st.cfg.topic => return Err(fail(400, "BadTopic", iat)),
        Some(_) => {}
    }
    if header("apns-push-type").as_deref() != Some("background") {
        return Err(fail(400, "InvalidPushType", iat));
    }
    if header("apns-priority").as_deref() != Some("5") {
        return Err(fail(400, "BadPriority", iat));
    }
    if let Some(e) = header("apns-expiration")
        && e.parse::<i64>().is_err()
    {
        return Err(fail(400, "BadExpirationDate", iat));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(fail(400, "PayloadEmpty", iat)),
    };
    if body.len() > 4096 {
        return Err(fail(413, "PayloadTooLarge", iat));
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if v["aps"]["content-available"] != 1 {
        return Err(fail(400, "PayloadEmpty", iat));
    }
    Ok((token, iat))
}

async fn handle(st: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (token, status, reason, iat) = match check(st, req).await {
        Err((s, r, token, iat)) => (token, s, r, iat),
        Ok((token, iat)) => {
            let scripted = lock(&st.script).pop_front();
            let (s, r) = if let Some(s) = scripted {
                s
            } else if lock(&st.bad).contains(&token) {
                (400, "BadDeviceToken")
            } else if lock(&st.unregistered).contains(&token) {
                (410, "Unregistered")
            } else {
                (200, "")
            };
            (token, s, r, iat)
        }
    };
    st.total.fetch_add(1, Ordering::Relaxed);
    *lock(&st.by_status).entry(status).or_default() += 1;
    if st.recording.load(Ordering::Relaxed) {
        lock(&st.received).push(Received {
            token,
            status,
            reason: reason.to_owned(),
            at: st.cfg.clock.now_unix(),
            iat,
        });
    }
    answer(status, reason)
}
