//! Client of the submission-code service that checks `/report` tokens
//! (codes-and-push.md §5).
//!
//! The reference calls `GET {url}/api/v1/verify?code=<token>`, answering
//! `{"valid": true|false}`; a `true` consumes the code at once. If the
//! server then dies before the report is stored, the patient's code is
//! spent and the declaration lost. So `/report` uses a **two-phase use**
//! when the service offers it (ours does, see robert-codes' OpenAPI):
//!
//! 1. `POST {url}/api/v1/claim` `{"code", "key"}` holds the code for this
//!    report (`key`: a hash of the report body) for ten minutes;
//! 2. the report is stored;
//! 3. `POST …/claim/confirm` uses the code, or, when storing failed,
//!    `POST …/claim/release` makes it usable again.
//!
//! A server killed between 1 and 3 leaves a hold that expires by itself;
//! the app's retry of the same report carries the same key and takes the
//! hold back at once. A service without `/api/v1/claim` (404 or 405, e.g.
//! the reference's) is remembered and verified the reference's way.
//!
//! A service that fails or times out is [`Verification::Unavailable`]:
//! `/report` answers 503 (the apps retry) rather than the 401 of a bad code,
//! counts it, and readiness probes the service ([`CodesClient::probe`]).
//!
//! When the code service runs in the same process,
//! [`CodesClient::use_local`] sends all of this to it directly instead of
//! over HTTP, so the server's own calls need no loopback exemption from the
//! code service's rate limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::CodesConfig;
use crate::http_client::{self, ClientBuildError};

/// A boxed future, for the object-safe [`LocalCodeService`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A submission-code service running in this process.
pub trait LocalCodeService: Send + Sync + std::fmt::Debug {
    /// Verifies (and so consumes) a code: [`Verification::Valid`],
    /// [`Verification::Invalid`] or [`Verification::Unavailable`].
    fn verify<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Verification>;

    /// Verifies a code and holds it for the report `key`:
    /// [`Verification::Held`], [`Verification::Invalid`] or
    /// [`Verification::Unavailable`].
    fn claim<'a>(&'a self, code: &'a str, key: &'a [u8; 32]) -> BoxFuture<'a, Verification>;

    /// Settles the hold `key` has on a code: uses the code (`confirm`) or
    /// makes it usable again.
    fn settle<'a>(
        &'a self,
        code: &'a str,
        key: &'a [u8; 32],
        confirm: bool,
    ) -> BoxFuture<'a, Settlement>;

    /// Whether the service can answer (its store is reachable).
    fn ready(&self) -> BoxFuture<'_, bool>;
}

/// The verification client.
#[derive(Debug)]
pub struct CodesClient {
    client: reqwest::Client,
    urls: Option<Urls>,
    check: bool,
    in_readiness: bool,
    local: OnceLock<Arc<dyn LocalCodeService>>,
    /// Set once the service answered 404/405 to a claim: verify only.
    no_claims: AtomicBool,
    /// The last probe: (milliseconds since `epoch`, 1 = up / 0 = down), to
    /// probe at most once per [`PROBE_EVERY`].
    last_probe: AtomicI64,
    epoch: Instant,
}

/// The service's endpoints, built once from `codes.url`.
#[derive(Debug)]
struct Urls {
    verify: reqwest::Url,
    claim: reqwest::Url,
    confirm: reqwest::Url,
    release: reqwest::Url,
    health: reqwest::Url,
}

impl Urls {
    fn new(base: &str) -> Option<Self> {
        let at = |segments: &[&str]| http_client::url_with_segments(base, segments);
        Some(Self {
            verify: at(&["api", "v1", "verify"])?,
            claim: at(&["api", "v1", "claim"])?,
            confirm: at(&["api", "v1", "claim", "confirm"])?,
            release: at(&["api", "v1", "claim", "release"])?,
            health: at(&["health"])?,
        })
    }
}

/// How long a probe's answer is reused by readiness.
const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Verified {
    valid: bool,
}

#[derive(Deserialize)]
struct Settled {
    done: bool,
}

#[derive(Serialize)]
struct ClaimBody<'a> {
    code: &'a str,
    key: &'a str,
}

/// Outcome of a verification or claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The code is valid and held for this report: settle it with
    /// [`CodesClient::settle`].
    Held,
    /// The code was valid and is now consumed.
    Valid,
    /// The service said no.
    Invalid,
    /// The service failed or timed out.
    Unavailable,
    /// Checking is disabled (`codes.check_token = false`).
    Skipped,
}

/// Outcome of settling a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// Done: the code is used (confirm) or free again (release).
    Done,
    /// The hold was no longer there (expired and taken, or settled).
    NotHeld,
    /// The service failed or timed out.
    Unavailable,
}

impl CodesClient {
    /// A client for the configured service.
    pub fn new(cfg: &CodesConfig) -> Result<Self, ClientBuildError> {
        Ok(Self {
            client: http_client::client(Duration::from_millis(cfg.timeout_ms))?,
            urls: Urls::new(&cfg.url),
            check: cfg.check_token,
            in_readiness: cfg.in_readiness,
            local: OnceLock::new(),
            no_claims: AtomicBool::new(false),
            last_probe: AtomicI64::new(i64::MIN),
            epoch: Instant::now(),
        })
    }

    /// Sends every later call to `service`, in this process, instead of
    /// `codes.url`. Only the first call has an effect; returns whether it
    /// was this one.
    pub fn use_local(&self, service: Arc<dyn LocalCodeService>) -> bool {
        self.local.set(service).is_ok()
    }

    /// Whether tokens are checked at all.
    pub fn checks_tokens(&self) -> bool {
        self.check
    }

    /// One endpoint, cloned to be sent (`None`: `codes.url` is not a URL).
    fn url(&self, pick: impl Fn(&Urls) -> &reqwest::Url) -> Option<reqwest::Url> {
        self.urls.as_ref().map(|u| pick(u).clone())
    }

    /// Verifies (and so consumes) a code, the reference's way. The code is
    /// never logged.
    pub async fn verify(&self, code: &str) -> Verification {
        if !self.check {
            return Verification::Skipped;
        }
        if let Some(local) = self.local.get() {
            return local.verify(code).await;
        }
        let Some(mut url) = self.url(|u| &u.verify) else {
            tracing::error!("codes.url is not a valid URL");
            return Verification::Unavailable;
        };
        url.query_pairs_mut().append_pair("code", code);
        match self.send(self.client.get(url)).await {
            Ok(resp) => verdict(resp).await,
            Err(()) => Verification::Unavailable,
        }
    }

    /// Verifies a code and holds it for the report `key` (the first phase
    /// of a two-phase use): [`Verification::Held`] then needs
    /// [`CodesClient::settle`]. Against a service without the claim API
    /// this is [`CodesClient::verify`] (the code is consumed at once:
    /// [`Verification::Valid`]).
    pub async fn claim(&self, code: &str, key: &[u8; 32]) -> Verification {
        if !self.check {
            return Verification::Skipped;
        }
        if let Some(local) = self.local.get() {
            return local.claim(code, key).await;
        }
        if self.no_claims.load(Ordering::Relaxed) {
            return self.verify(code).await;
        }
        let Some(url) = self.url(|u| &u.claim) else {
            tracing::error!("codes.url is not a valid URL");
            return Verification::Unavailable;
        };
        let key = hex::encode(key);
        let req = self.client.post(url).json(&ClaimBody { code, key: &key });
        let resp = match self.send(req).await {
            Ok(r) => r,
            Err(()) => return Verification::Unavailable,
        };
        if matches!(resp.status().as_u16(), 404 | 405) {
            tracing::warn!(
                "the submission-code service has no claim API: codes are consumed \
                 before the report is stored (the reference's way)"
            );
            self.no_claims.store(true, Ordering::Relaxed);
            return self.verify(code).await;
        }
        match verdict(resp).await {
            Verification::Valid => Verification::Held,
            other => other,
        }
    }

    /// Settles the hold `key` has on `code`: `confirm` once the report is
    /// stored, release otherwise.
    pub async fn settle(&self, code: &str, key: &[u8; 32], confirm: bool) -> Settlement {
        if let Some(local) = self.local.get() {
            return local.settle(code, key, confirm).await;
        }
        let action = if confirm { "confirm" } else { "release" };
        let Some(url) = self.url(|u| if confirm { &u.confirm } else { &u.release }) else {
            return Settlement::Unavailable;
        };
        let key = hex::encode(key);
        let req = self.client.post(url).json(&ClaimBody { code, key: &key });
        let Ok(resp) = self.send(req).await else {
            return Settlement::Unavailable;
        };
        if !resp.status().is_success() {
            tracing::warn!(
                status = resp.status().as_u16(),
                action,
                "submission-code service error"
            );
            return Settlement::Unavailable;
        }
        match resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Settled>(b.as_ref()).ok())
        {
            Some(Settled { done: true }) => Settlement::Done,
            Some(Settled { done: false }) => Settlement::NotHeld,
            None => Settlement::Unavailable,
        }
    }

    /// Sends a request; a transport error is logged without its URL (which
    /// may hold the code).
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ()> {
        req.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "submission-code service unreachable");
        })
    }

    /// Whether the code service can answer, for readiness: always `true`
    /// when tokens are not checked or `codes.in_readiness` is off. Over
    /// HTTP, `GET {url}/health`: any answer but a 5xx counts as up (a
    /// service without that path still answers 404). One probe per five
    /// seconds at most; later calls reuse its answer.
    pub async fn probe(&self) -> bool {
        if !self.check || !self.in_readiness {
            return true;
        }
        if let Some(local) = self.local.get() {
            return local.ready().await;
        }
        let now_ms = i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX);
        let last = self.last_probe.load(Ordering::Relaxed);
        let period = i64::try_from(PROBE_EVERY.as_millis()).unwrap_or(i64::MAX);
        if last != i64::MIN && now_ms.saturating_sub(last >> 1) < period {
            return last & 1 == 1;
        }
        let up = match self.url(|u| &u.health) {
            Some(url) => match self.send(self.client.get(url)).await {
                Ok(resp) => !resp.status().is_server_error(),
                Err(()) => false,
            },
            None => false,
        };
        self.last_probe
            .store((now_ms << 1) | i64::from(up), Ordering::Relaxed);
        up
    }
}

/// Reads a `{"valid": bool}` answer.
async fn verdict(resp: reqwest::Response) -> Verification {
    if !resp.status().is_success() {
        tracing::warn!(
            status = resp.status().as_u16(),
            "submission-code service error"
        );
        return Verification::Unavailable;
    }
    match resp
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Verified>(b.as_ref()).ok())
    {
        Some(Verified { valid: true }) => Verification::Valid,
        Some(Verified { valid: false }) => Verification::Invalid,
        None => Verification::Unavailable,
    }
}
