//! The application state shared by every handler.

use std::fmt;
use std::sync::{Arc, RwLock};

use rand::SeedableRng as _;
use robert_core::time::ServiceStart;
use robert_store::Store;
use serde_json::value::RawValue;

use crate::captcha::Captcha;
use crate::client::KeyedRateLimiter;
use crate::clock::SharedClock;
use crate::codes::CodesClient;
use crate::config::Config;
use crate::jwt::Tokens;
use crate::keystore::KeyRing;
use crate::metrics::Metrics;
use crate::push::PushClient;

/// Seconds between refreshes of the cached app `config` list.
const APP_CONFIG_TTL_SECS: i64 = 60;

/// The current key ring, swapped atomically when the key store changes.
#[derive(Debug)]
pub struct KeyRingHandle(RwLock<Arc<KeyRing>>);

impl KeyRingHandle {
    /// A handle on `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    /// The current ring.
    pub fn get(&self) -> Arc<KeyRing> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the ring.
    pub fn replace(&self, ring: KeyRing) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
    }
}

struct AppConfigCache {
    fetched_unix: i64,
    json: Arc<RawValue>,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of an [`AppState`].
pub struct Inner {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Keys.
    pub keys: KeyRingHandle,
    /// Configuration.
    pub config: Config,
    /// The service start (from the configuration).
    pub start: ServiceStart,
    /// The clock.
    pub clock: SharedClock,
    /// Captcha provider.
    pub captcha: Captcha,
    /// Submission-code client.
    pub codes: CodesClient,
    /// Push client.
    pub push: PushClient,
    /// JWT issuers.
    pub tokens: Tokens,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Bounds concurrent `/report` processing.
    pub report_slots: tokio::sync::Semaphore,
    /// Per-client limit of the submission codes tried at `/report`
    /// (`limits.code_checks_per_minute`).
    pub code_checks: KeyedRateLimiter,
    app_config: RwLock<Option<AppConfigCache>>,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("keys", &self.keys)
            .field("captcha", &self.captcha.mode())
            .finish_non_exhaustive()
    }
}

/// What [`AppState::new`] takes.
#[derive(Debug)]
pub(crate) struct StateParts {
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Initial key ring.
    pub keys: KeyRing,
    /// Configuration.
    pub config: Config,
    /// Clock.
    pub clock: SharedClock,
    /// Captcha provider.
    pub captcha: Captcha,
    /// Submission-code client.
    pub codes: CodesClient,
    /// Push client.
    pub push: PushClient,
    /// JWT issuers.
    pub tokens: Tokens,
}

impl AppState {
    /// Assembles the state.
    pub(crate) fn new(parts: StateParts) -> Self {
        let slots = parts.config.limits.max_concurrent_reports;
        let code_checks = KeyedRateLimiter::per_minute(parts.config.limits.code_checks_per_minute);
        Self(Arc::new(Inner {
            start: parts.config.protocol.start(),
            store: parts.store,
            keys: KeyRingHandle::new(parts.keys),
            config: parts.config,
            clock: parts.clock,
            captcha: parts.captcha,
            codes: parts.codes,
            push: parts.push,
            tokens: parts.tokens,
            metrics: Metrics::new(),
            report_slots: tokio::sync::Semaphore::new(slots),
            code_checks,
            app_config: RwLock::new(None),
        }))
    }

    /// The `config` list returned to apps, as raw JSON, cached for a minute.
    pub async fn app_config_json(&self) -> Result<Arc<RawValue>, robert_store::StoreError> {
        let now = self.clock.now_unix();
        if let Some(c) = self
            .app_config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            && (0..APP_CONFIG_TTL_SECS).contains(&(now - c.fetched_unix))
        {
            return Ok(c.json.clone());
        }
        let entries = self.store.app_config().await?;
        let list: Vec<crate::api::dto::ConfigEntryDto<'_>> = entries
            .iter()
            .map(|e| crate::api::dto::ConfigEntryDto {
                name: &e.name,
                value: &e.value,
            })
            .collect();
        let text = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        let json: Arc<RawValue> = RawValue::from_string(text)
            .map(Arc::from)
            .unwrap_or_else(|_| empty_list());
        *self
            .app_config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(AppConfigCache {
            fetched_unix: now,
            json: json.clone(),
        });
        Ok(json)
    }

    /// Runs the risk batch once with the current keys, the `[batch]`
    /// configuration and the state's clock, and records its metrics.
    pub async fn run_batch(&self) -> Result<crate::batch::BatchReport, crate::batch::BatchError> {
        let keys = self.keys.get().batch_keys();
        let now = self.clock.now_ntp();
        let mut seed = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
        let result = crate::batch::run(
            self.store.as_ref(),
            &keys,
            &self.config.batch,
            now,
            &mut rand::rngs::StdRng::from_seed(seed),
        )
        .await;
        match &result {
            Ok(report) => {
                let json = serde_json::to_value(report).ok();
                self.metrics.observe_batch(true, json.as_ref());
            }
            Err(crate::batch::BatchError::AlreadyRunning) => {}
            Err(_) => self.metrics.observe_batch(false, None),
        }
        result
    }

    /// Drops the cached `config` list (after an administrative change).
    pub fn invalidate_app_config(&self) {
        *self
            .app_config
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

fn empty_list() -> Arc<RawValue> {
    match RawValue::from_string("[]".to_owned()) {
        Ok(v) => Arc::from(v),
        Err(_) => unreachable!("[] is valid JSON"),
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
