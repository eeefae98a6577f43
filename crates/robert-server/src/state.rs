//! The application state shared by every handler.

use std::fmt;
use std::sync::{Arc, RwLock};

use rand::SeedableRng as _;
use robert_core::time::ServiceStart;
use robert_store::Store;
use serde_json::value::RawValue;

use crate::captcha::Captcha;
use crate::client::RateLimiter;
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
    /// (`limits.code_checks_per_minute`), in memory or in the database
    /// (`limits.rate_limit_state`).
    pub code_checks: RateLimiter,
    /// This node's name in the claims of periodic tasks (random per
    /// process; never a secret).
    pub node_id: String,
    /// Federation with partner countries' servers (off without partners).
    pub federation: Arc<crate::federation::FederationRuntime>,
    /// Traffic privacy: real handling times for the dummies' delays, and
    /// the counters.
    pub privacy: crate::privacy::TrafficPrivacy,
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
    /// The `/report` code-check limiter.
    pub code_checks: RateLimiter,
    /// This node's name in task claims.
    pub node_id: String,
    /// Federation keys and partners.
    pub federation: crate::federation::FederationRuntime,
}

/// The name of the risk batch in the task claims ([`robert_store::SharedState::claim_turn`]).
pub const BATCH_TASK: &str = "risk-batch";

/// What [`AppState::run_batch_turn`] did.
#[derive(Debug)]
pub enum TurnOutcome {
    /// This node ran the batch.
    Ran(Box<crate::batch::BatchReport>),
    /// Another node has the turn, or the batch lock (another run in progress).
    Skipped,
}

impl AppState {
    /// Assembles the state.
    pub(crate) fn new(parts: StateParts) -> Self {
        let slots = parts.config.limits.max_concurrent_reports;
        let mut config = parts.config;
        // The batch forwards what the federation delivers, whoever built
        // the configuration.
        config.batch.forwarded_countries = config.federation.forwarded_countries();
        let privacy = crate::privacy::TrafficPrivacy::new(&config.privacy);
        Self(Arc::new(Inner {
            start: config.protocol.start(),
            store: parts.store,
            keys: KeyRingHandle::new(parts.keys),
            config,
            clock: parts.clock,
            captcha: parts.captcha,
            codes: parts.codes,
            push: parts.push,
            tokens: parts.tokens,
            metrics: Metrics::new(),
            report_slots: tokio::sync::Semaphore::new(slots),
            code_checks: parts.code_checks,
            node_id: parts.node_id,
            federation: Arc::new(parts.federation),
            privacy,
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
        // `[privacy]`'s entries, unless the database sets the same name.
        let privacy = self.config.privacy.list_entries();
        let list: Vec<crate::api::dto::ConfigEntryDto<'_>> = entries
            .iter()
            .map(|e| crate::api::dto::ConfigEntryDto {
                name: &e.name,
                value: &e.value,
            })
            .chain(
                privacy
                    .iter()
                    .filter(|(name, _)| !entries.iter().any(|e| e.name == *name))
                    .map(|(name, value)| crate::api::dto::ConfigEntryDto { name, value }),
            )
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
            Err(crate::batch::BatchError::AlreadyRunning) => self.metrics.observe_batch_skipped(),
            Err(_) => self.metrics.observe_batch(false, None),
        }
        result
    }

    /// Runs the risk batch once for turn `turn` (`--batch-every`: the
    /// period's index since the Unix epoch) across every node on the
    /// database: the node that claims the turn first runs it
    /// ([`robert_store::SharedState::claim_turn`]); the others, and a run
    /// that finds the batch lock taken, count as `skipped`. A claim not
    /// finished within `lease_secs` (its node died) may be taken again in
    /// the same turn; a failed run gives its turn back.
    pub async fn run_batch_turn(
        &self,
        turn: i64,
        lease_secs: i64,
    ) -> Result<TurnOutcome, crate::batch::BatchError> {
        let now = self.clock.now_unix();
        let claimed = self
            .store
            .claim_turn(
                BATCH_TASK,
                turn,
                &self.node_id,
                now,
                now.saturating_add(lease_secs.max(1)),
            )
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => {
                self.metrics.observe_batch_skipped();
                return Ok(TurnOutcome::Skipped);
            }
            Err(e) => {
                self.metrics.observe_batch(false, None);
                return Err(e.into());
            }
        }
        let result = self.run_batch().await;
        let done = result.is_ok();
        if let Err(e) = self
            .store
            .finish_turn(BATCH_TASK, turn, &self.node_id, done)
            .await
        {
            tracing::warn!(error = %e, "could not record the end of the batch turn");
        }
        match result {
            Ok(report) => Ok(TurnOutcome::Ran(Box::new(report))),
            Err(crate::batch::BatchError::AlreadyRunning) => Ok(TurnOutcome::Skipped),
            Err(e) => Err(e),
        }
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
