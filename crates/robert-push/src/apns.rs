//! The APNs provider client: HTTP/2 over TLS with token-based
//! authentication (Apple, "Sending notification requests to APNs").
//!
//! One request per notification: `POST {server}/3/device/{token}` with
//!
//! * `authorization: bearer <provider JWT>` ([`crate::jwt`]);
//! * `apns-push-type: background`, `apns-priority: 5`, `apns-topic: <bundle id>`,
//!   `apns-expiration: now + expiration_secs`;
//! * body `{"aps":{"content-available":1}}`.
//!
//! The reference sent priority 10 ("IMMEDIATE") and a `"badge":0`; Apple
//! requires 5 for background pushes (10 is refused or throttled), as
//! issue 15 asks, so this client sends 5 and no badge.
//!
//! Outcomes (Apple's documented status codes and reasons):
//!
//! * 200 → accepted;
//! * 410 `Unregistered` / `ExpiredToken` → the token is deactivated;
//! * 400 `BadDeviceToken` / `DeviceTokenNotForTopic` → tried on the next
//!   configured server (production → sandbox, for TestFlight builds); if
//!   every server says so, deactivated;
//! * 429, 500, 503 and transport errors → retried with exponential backoff
//!   and jitter, up to `max_retries`; then failed;
//! * 403 `ExpiredProviderToken` → a new provider token, once, then retried;
//! * anything else → failed, with the reason.
//!
//! Concurrency is bounded by `max_in_flight` requests and the rate by
//! `max_per_second` (a pacer: one request every 1/rate s). reqwest keeps
//! one HTTP/2 connection per server and multiplexes the requests on it.
//! Tokens are never logged.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt as _;
use robert_clock::SharedClock;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::config::ApnsConfig;
use crate::jwt::{JwtError, ProviderToken};
use crate::metrics::{Metrics, inc};

/// The payload of a background (silent) push.
pub const PAYLOAD: &str = r#"{"aps":{"content-available":1}}"#;
/// `apns-priority` of background pushes.
pub const PRIORITY: &str = "5";

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApnsError {
    /// The provider key.
    #[error(transparent)]
    Key(#[from] JwtError),
    /// The extra root certificate.
    #[error("apns.ca_file: {0}")]
    Ca(String),
    /// The HTTP client.
    #[error("cannot build the APNs HTTP/2 client: {0}")]
    Client(String),
}

/// What became of one notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// APNs accepted it.
    Accepted,
    /// The token is invalid (reasons, comma-joined across servers).
    Invalid(String),
    /// Not delivered (reasons or error, comma-joined).
    Failed(String),
}

/// Paces requests: at most `rate` per second.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(rate: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / rate.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            // No credit for idle time beyond one interval: no bursts.
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// The client.
#[derive(Debug)]
pub struct ApnsClient {
    http: reqwest::Client,
    servers: Vec<String>,
    topic: String,
    expiration_secs: i64,
    max_retries: u32,
    retry_base: Duration,
    jwt: ProviderToken,
    pacer: Pacer,
    slots: Arc<Semaphore>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
}

/// The answer to one request.
enum Answer {
    Status(u16, String),
    Transport(String),
}

/// Keeps only the hex digits, lower-cased (the reference's sanitizing).
pub fn sanitize_token(token: &str) -> String {
    token
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl ApnsClient {
    /// A client for `cfg`, signing with `jwt`.
    pub fn new(
        cfg: &ApnsConfig,
        jwt: ProviderToken,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ApnsError> {
        // reqwest is built with `rustls-no-provider`: install ring once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(3600))
            .http2_keep_alive_interval(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| ApnsError::Ca(e.to_string()))?;
            let cert =
                reqwest::Certificate::from_pem(&pem).map_err(|e| ApnsError::Ca(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| ApnsError::Client(e.to_string()))?;
        Ok(Self {
            http,
            servers: cfg
                .urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            topic: cfg.topic.clone(),
            expiration_secs: cfg.expiration_secs,
            max_retries: cfg.max_retries,
            retry_base: Duration::from_millis(cfg.retry_base_ms),
            jwt,
            pacer: Pacer::new(cfg.max_per_second),
            slots: Arc::new(Semaphore::new(cfg.max_in_flight)),
            clock,
            metrics,
        })
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    async fn send_once(&self, server: &str, token: &str, jwt: &str) -> Answer {
        let Ok(_slot) = self.slots.acquire().await else {
            return Answer::Transport("client closed".into());
        };
        self.pacer.wait().await;
        let now = self.clock.now_unix();
        inc(&self.metrics.sent);
        let r = self
            .http
            .post(format!("{server}/3/device/{token}"))
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-push-type", "background")
            .header("apns-priority", PRIORITY)
            .header("apns-topic", &self.topic)
            .header("apns-expiration", (now + self.expiration_secs).to_string())
            .header("content-type", "application/json")
            .body(PAYLOAD)
            .send()
            .await;
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                if status == 200 {
                    return Answer::Status(200, String::new());
                }
                let reason = r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["reason"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("HTTP {status}"));
                Answer::Status(status, reason)
            }
            // `without_url`: the URL holds the token.
            Err(e) => Answer::Transport(e.without_url().to_string()),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.retry_base.saturating_mul(1u32 << attempt.min(10));
        let jitter = rand::rng().random_range(0..=base.as_millis().max(1) as u64 / 2);
        base + Duration::from_millis(jitter)
    }

    /// Sends one background push to `token` and says what became of it.
    pub async fn push(&self, token: &str) -> Outcome {
        let outcome = self.push_inner(token).await;
        match &outcome {
            Outcome::Accepted => inc(&self.metrics.accepted),
            Outcome::Invalid(_) => inc(&self.metrics.invalid),
            Outcome::Failed(_) => inc(&self.metrics.failed),
        }
        outcome
    }

    async fn push_inner(&self, token: &str) -> Outcome {
        let token = sanitize_token(token);
        if token.is_empty() {
            return Outcome::Invalid("BadDeviceToken".into());
        }
        let mut reasons: Vec<String> = Vec::new();
        'servers: for server in &self.servers {
            let mut attempt = 0u32;
            let mut refreshed = false;
            loop {
                let jwt = self.current_jwt();
                let answer = self.send_once(server, &token, &jwt).await;
                let retry = match answer {
                    Answer::Status(200, _) => return Outcome::Accepted,
                    Answer::Status(410, reason) => {
                        reasons.push(reason);
                        return Outcome::Invalid(reasons.join(","));
                    }
                    Answer::Status(400, reason)
                        if reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic" =>
                    {
                        reasons.push(reason);
                        continue 'servers;
                    }
                    Answer::Status(403, reason) if reason == "ExpiredProviderToken" => {
                        let now = self.clock.now_unix();
                        if !refreshed && self.jwt.expired(&jwt, now) {
                            refreshed = true;
                            inc(&self.metrics.retries);
                            continue;
                        }
                        reasons.push(reason);
                        return Outcome::Failed(reasons.join(","));
                    }
                    Answer::Status(429 | 500 | 503, reason) => reason,
                    Answer::Status(_, reason) => {
                        reasons.push(reason);
                        return Outcome::Failed(reasons.join(","));
                    }
                    Answer::Transport(e) => e,
                };
                if attempt >= self.max_retries {
                    reasons.push(retry);
                    return Outcome::Failed(reasons.join(","));
                }
                inc(&self.metrics.retries);
                tokio::time::sleep(self.backoff(attempt)).await;
                attempt += 1;
            }
        }
        Outcome::Invalid(reasons.join(","))
    }

    fn current_jwt(&self) -> String {
        let now = self.clock.now_unix();
        let before = self.jwt.cached_iat();
        let t = self.jwt.current(now);
        if before != self.jwt.cached_iat() {
            inc(&self.metrics.provider_tokens);
        }
        t
    }

    /// The provider key's public half, PEM.
    pub fn public_key_pem(&self) -> String {
        self.jwt.public_key_pem()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_sanitized_as_the_reference_did() {
        assert_eq!(sanitize_token("<AB cd 01>"), "abcd01");
        assert_eq!(sanitize_token("zz"), "");
    }
}
