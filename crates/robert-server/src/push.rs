//! Forwarding of push information to the push-notification server
//! (codes-and-push.md §8, "How robert-server talks to PNS").
//!
//! * `/register` and `/status` with `pushInfo {token, locale, timezone}` →
//!   `POST {url}/push-token` with that JSON;
//! * `/unregister` with `pushToken` → `DELETE {url}/push-token/{token}`.
//!
//! Calls are fire-and-forget: spawned after the response is decided, bounded
//! by `push.max_in_flight` (beyond it a call is dropped and logged), and a
//! failure is only logged. A call is skipped when a field is blank, as the
//! reference does. Tokens are never logged.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::PushConfig;
use crate::http_client::{self, ClientBuildError};

/// Push information from an app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PushRegistration {
    /// The APNs device token.
    pub token: String,
    /// Locale, e.g. `fr-FR`.
    pub locale: String,
    /// IANA time zone, e.g. `Europe/Paris`.
    pub timezone: String,
}

/// The push client; a no-op when no URL is configured.
#[derive(Clone, Debug)]
pub struct PushClient {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    base: String,
    slots: Arc<Semaphore>,
}

impl PushClient {
    /// A client for the configured server (disabled if `url` is empty).
    pub fn new(cfg: &PushConfig) -> Result<Self, ClientBuildError> {
        if cfg.url.trim().is_empty() {
            return Ok(Self::disabled());
        }
        Ok(Self {
            inner: Some(Arc::new(Inner {
                client: http_client::client(Duration::from_millis(cfg.timeout_ms))?,
                base: cfg.url.trim().to_owned(),
                slots: Arc::new(Semaphore::new(cfg.max_in_flight)),
            })),
        })
    }

    /// A client that forwards nothing.
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Whether a push server is configured.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Registers (or refreshes) a token, in the background.
    pub fn register(&self, info: PushRegistration) {
        let Some(inner) = &self.inner else { return };
        if info.token.trim().is_empty()
            || info.locale.trim().is_empty()
            || info.timezone.trim().is_empty()
        {
            return;
        }
        let Some(url) = http_client::url_with_segments(&inner.base, &["push-token"]) else {
            tracing::error!("push.url is not a valid URL");
            return;
        };
        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
            tracing::warn!("push server calls saturated: registration dropped");
            return;
        };
        let client = inner.client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match client.post(url).json(&info).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    "push server refused a token registration"
                ),
                Err(e) => tracing::warn!(error = %e.without_url(), "push server unreachable"),
            }
        });
    }

    /// Unregisters a token, in the background.
    pub fn unregister(&self, token: String) {
        let Some(inner) = &self.inner else { return };
        if token.trim().is_empty() {
            return;
        }
        let Some(url) = http_client::url_with_segments(&inner.base, &["push-token", &token]) else {
            tracing::error!("push.url is not a valid URL");
            return;
        };
        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
            tracing::warn!("push server calls saturated: unregistration dropped");
            return;
        };
        let client = inner.client.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match client.delete(url).send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    "push server refused a token deletion"
                ),
                Err(e) => tracing::warn!(error = %e.without_url(), "push server unreachable"),
            }
        });
    }
}
