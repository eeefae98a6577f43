//! Client of the submission-code service that checks `/report` tokens
//! (codes-and-push.md §5): `GET {url}/api/v1/verify?code=<token>` answering
//! `{"valid": true|false}`. A `true` consumes the code.
//!
//! Anything but a well-formed `{"valid": true}` (HTTP error, timeout, other
//! JSON) counts as invalid, which `/report` answers with 401, as the
//! reference does.
//!
//! When the code service runs in the same process,
//! [`CodesClient::use_local`] can send verifications to it directly instead
//! of over HTTP, so that the server's own calls need no loopback exemption
//! from the code service's verify rate limit. (`robert serve
//! --codes-config` does not use it yet: it still verifies over loopback.)

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::config::CodesConfig;
use crate::http_client::{self, ClientBuildError};

/// A submission-code service running in this process.
pub trait LocalCodeService: Send + Sync + std::fmt::Debug {
    /// Verifies (and so consumes) a code: [`Verification::Valid`],
    /// [`Verification::Invalid`] or [`Verification::Unavailable`].
    fn verify<'a>(
        &'a self,
        code: &'a str,
    ) -> Pin<Box<dyn Future<Output = Verification> + Send + 'a>>;
}

/// The verification client.
#[derive(Debug)]
pub struct CodesClient {
    client: reqwest::Client,
    verify_url: Option<reqwest::Url>,
    check: bool,
    local: OnceLock<Arc<dyn LocalCodeService>>,
}

#[derive(Deserialize)]
struct Verified {
    valid: bool,
}

/// Outcome of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The code was valid and is now consumed.
    Valid,
    /// The service said no.
    Invalid,
    /// The service failed or timed out.
    Unavailable,
    /// Checking is disabled (`codes.check_token = false`).
    Skipped,
}

impl CodesClient {
    /// A client for the configured service.
    pub fn new(cfg: &CodesConfig) -> Result<Self, ClientBuildError> {
        Ok(Self {
            client: http_client::client(Duration::from_millis(cfg.timeout_ms))?,
            verify_url: http_client::url_with_segments(&cfg.url, &["api", "v1", "verify"]),
            check: cfg.check_token,
            local: OnceLock::new(),
        })
    }

    /// Sends every later verification to `service`, in this process,
    /// instead of `codes.url`. Only the first call has an effect; returns
    /// whether it was this one.
    pub fn use_local(&self, service: Arc<dyn LocalCodeService>) -> bool {
        self.local.set(service).is_ok()
    }

    /// Whether tokens are checked at all.
    pub fn checks_tokens(&self) -> bool {
        self.check
    }

    /// Verifies (and so consumes) a code. The code is never logged.
    pub async fn verify(&self, code: &str) -> Verification {
        if !self.check {
            return Verification::Skipped;
        }
        if let Some(local) = self.local.get() {
            return local.verify(code).await;
        }
        let Some(url) = &self.verify_url else {
            tracing::error!("codes.url is not a valid URL");
            return Verification::Unavailable;
        };
        let mut url = url.clone();
        url.query_pairs_mut().append_pair("code", code);
        let resp = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                // reqwest errors carry the URL, which holds the code: drop it.
                tracing::warn!(error = %e.without_url(), "submission-code service unreachable");
                return Verification::Unavailable;
            }
        };
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
}
