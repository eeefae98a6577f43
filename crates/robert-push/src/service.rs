//! The service: the token API robert-server calls, and the scheduler that
//! sends the day's pushes.
//!
//! Token API (the reference's `ws-rest`, codes-and-push.md §8), under
//! `/internal/api/v1`, so that robert-server's `push.url` is
//! `http://host:9096/internal/api/v1` (it appends `/push-token`):
//!
//! * `POST /internal/api/v1/push-token` `{"token","locale","timezone"}` → 201;
//!   a missing, non-string, blank or over-255-character field → 400 with
//!   `{field: message}`; a time zone that is not an IANA name → 400, empty;
//! * `DELETE /internal/api/v1/push-token/{token}` → 202; unknown → 400;
//! * `GET /metrics` → Prometheus text.
//!
//! No authentication, as the reference: the API must be reachable from the
//! ROBERT servers only (internal network).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::SeedableRng as _;
use robert_clock::SharedClock;
use tokio::task::JoinSet;

use crate::apns::{ApnsClient, ApnsError, Outcome};
use crate::config::{Config, ConfigError};
use crate::jwt::ProviderToken;
use crate::metrics::{Metrics, inc};
use crate::schedule::Window;
use crate::store::{Recorded, StoreError, TokenStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The APNs client or key.
    #[error(transparent)]
    Apns(#[from] ApnsError),
}

/// What one scheduler scan did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Tokens due and claimed.
    pub claimed: u64,
    /// Accepted by APNs.
    pub accepted: u64,
    /// Failed.
    pub failed: u64,
    /// Deactivated.
    pub invalid: u64,
}

/// The push service.
#[derive(Clone, Debug)]
pub struct PushService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: TokenStore,
    window: Window,
    batch_size: u32,
    interval: Duration,
    apns: Arc<ApnsClient>,
    clock: SharedClock,
    metrics: Arc<Metrics>,
}

fn to_datetime(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_default()
}

impl PushService {
    /// Opens the store, reads the .p8 key and builds the APNs client.
    pub async fn open(cfg: &Config, clock: SharedClock) -> Result<Self, ServiceError> {
        cfg.validate()?;
        let jwt = ProviderToken::from_file(
            &cfg.apns.key_file,
            &cfg.apns.key_id,
            &cfg.apns.team_id,
            cfg.apns.token_refresh_secs,
        )
        .map_err(ApnsError::from)?;
        let store = TokenStore::open(&cfg.database_url, cfg.max_connections).await?;
        Self::with_parts(cfg, store, jwt, clock)
    }

    /// A service over an open store and a provider key.
    pub fn with_parts(
        cfg: &Config,
        store: TokenStore,
        jwt: ProviderToken,
        clock: SharedClock,
    ) -> Result<Self, ServiceError> {
        let metrics = Arc::new(Metrics::default());
        let apns = ApnsClient::new(&cfg.apns, jwt, clock.clone(), metrics.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                window: cfg.schedule.window().map_err(ConfigError::from)?,
                batch_size: cfg.schedule.batch_size,
                interval: Duration::from_secs(cfg.schedule.interval_secs),
                apns: Arc::new(apns),
                clock,
                metrics,
            }),
        })
    }

    /// The token store.
    pub fn store(&self) -> &TokenStore {
        &self.inner.store
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The schedule's window.
    pub fn window(&self) -> Window {
        self.inner.window
    }

    /// The token API and `/metrics`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/internal/api/v1/push-token", post(register))
            .route("/internal/api/v1/push-token/{token}", delete(unregister))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// One scan: claims every due token (rescheduling it first), pushes,
    /// records the outcomes; repeats until nothing is due.
    pub async fn scan(&self) -> Result<ScanReport, StoreError> {
        let inner = &self.inner;
        inc(&inner.metrics.scans);
        let mut report = ScanReport::default();
        let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
        loop {
            let now = inner.clock.now_unix();
            let now_dt = to_datetime(now);
            let window = inner.window;
            let claimed = inner
                .store
                .claim_due(now, inner.batch_size, |tz| {
                    // A stored zone was validated at registration; UTC if
                    // the zone database no longer knows it.
                    let tz: Tz = tz.parse().unwrap_or(Tz::UTC);
                    window.next_push(now_dt, tz, &mut rng).timestamp()
                })
                .await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            report.claimed += claimed.len() as u64;
            let mut tasks = JoinSet::new();
            for due in claimed {
                let apns = inner.apns.clone();
                tasks.spawn(async move { (due.id, apns.push(&due.token).await) });
            }
            let mut outcomes = Vec::with_capacity(tasks.len());
            while let Some(r) = tasks.join_next().await {
                // A send task does not panic; if one did, its token is
                // simply pushed at its next planned time.
                let Ok((id, outcome)) = r else { continue };
                let recorded = match outcome {
                    Outcome::Accepted => {
                        report.accepted += 1;
                        Recorded::Accepted
                    }
                    Outcome::Failed(r) => {
                        report.failed += 1;
                        Recorded::Failed(r)
                    }
                    Outcome::Invalid(r) => {
                        report.invalid += 1;
                        Recorded::Deactivated(r)
                    }
                };
                outcomes.push((id, recorded));
            }
            inner
                .store
                .record(inner.clock.now_unix(), &outcomes)
                .await?;
        }
    }

    /// Scans every `schedule.interval_secs` until `shutdown` completes.
    pub async fn run_scheduler(&self, shutdown: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.inner.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            match self.scan().await {
                Ok(r) if r.claimed > 0 => tracing::info!(
                    claimed = r.claimed,
                    accepted = r.accepted,
                    failed = r.failed,
                    invalid = r.invalid,
                    "push scan"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "push scan failed"),
            }
        }
    }
}

fn field_error(field: &str, message: &str) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(field.to_owned(), message.into());
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

async fn register(State(svc): State<PushService>, body: Bytes) -> Response {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return field_error("body", "must be a JSON object");
    };
    let mut values = [""; 3];
    for (i, name) in ["token", "locale", "timezone"].into_iter().enumerate() {
        match v.get(name).and_then(|x| x.as_str()) {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= 255 => values[i] = s,
            Some(s) if !s.trim().is_empty() => {
                return field_error(name, "size must be between 1 and 255");
            }
            _ => return field_error(name, "must not be blank"),
        }
    }
    let [token, locale, timezone] = values;
    let Ok(tz) = timezone.parse::<Tz>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let inner = &svc.inner;
    let now = inner.clock.now_unix();
    let next = inner
        .window
        .next_push(to_datetime(now), tz, &mut rand::rng())
        .timestamp();
    match inner.store.upsert(token, locale, timezone, now, next).await {
        Ok(()) => {
            inc(&inner.metrics.registrations);
            StatusCode::CREATED.into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "push token registration failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn unregister(State(svc): State<PushService>, Path(token): Path<String>) -> Response {
    match svc.inner.store.delete(&token).await {
        Ok(true) => {
            inc(&svc.inner.metrics.unregistrations);
            StatusCode::ACCEPTED.into_response()
        }
        Ok(false) => StatusCode::BAD_REQUEST.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "push token removal failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

async fn metrics(State(svc): State<PushService>) -> Response {
    let (active, total) = svc.inner.store.counts().await.unwrap_or((-1, -1));
    (
        [("content-type", "text/plain; version=0.0.4")],
        svc.inner.metrics.render(active, total),
    )
        .into_response()
}
