//! Assembling and running the server: key store bootstrap, state, listeners,
//! background tasks (key reload and rotation, periodic batch), shutdown.

use std::sync::Arc;
use std::time::Duration;

use robert_core::time::UtcDate;
use tokio::net::TcpListener;

use crate::api;
use crate::captcha::Captcha;
use crate::captcha::shared::CaptchaKeys;
use crate::client::{KeyedRateLimiter, RateLimiter, SharedRateLimiter};
use crate::clock::SharedClock;
use crate::codes::CodesClient;
use crate::config::{CaptchaMode, Config, JwtAlgorithm, KeyStoreKind};
pub use crate::connections::raise_open_file_limit;
use crate::connections::{ConnectionLimits, Connections};
use crate::http_client::ClientBuildError;
use crate::jwt::{JwtError, Tokens};
use crate::keystore::file::{FileKeyStore, KdfParams, PASSPHRASE_ENV, resolve_passphrase};
use crate::keystore::pkcs11::{PIN_ENV, Pkcs11KeyStore, Pkcs11Settings, resolve_pin};
use crate::keystore::{
    GeneratedJwtKeys, KeyRing, KeySet, KeyStore, KeyStoreError, SecretSource, admin,
};
use crate::push::PushClient;
use crate::state::{AppState, StateParts, TurnOutcome};
use robert_store::{SharedState, Store};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// [`ServerBuilder::build`] without [`ServerBuilder::keys`].
    #[error("no keys given to the server builder (use ServerBuilder::start to use the key store)")]
    NoKeys,
    /// Key store problem.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// Database problem.
    #[error("database: {0}")]
    Store(#[from] robert_store::StoreError),
    /// JWT key problem.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// Federation keys or partners.
    #[error(transparent)]
    Federation(#[from] crate::federation::FederationError),
    /// HTTP client problem.
    #[error(transparent)]
    Http(#[from] ClientBuildError),
    /// Cannot listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// The KEK does not open the registrations already in the database.
    #[error(
        "the KEK of key store {keystore} (check value {check_value}) does not unwrap the registrations \
         in the database: the key store was switched or replaced without its KEK. Bring the previous \
         store's keys over (`robert keys migrate`, or `robert keys import --kek`); refusing to start \
         rather than failing every /status"
    )]
    KekMismatch {
        /// The key store.
        keystore: String,
        /// The KEK's check value.
        check_value: String,
    },
}

/// Checks that `kek` opens a registration of the database (when there is
/// one): `Ok(true)` checked, `Ok(false)` nothing to check.
pub async fn check_kek(
    kek: &dyn crate::keystore::KeyEncryptionKey,
    keystore: &dyn KeyStore,
    store: &dyn Store,
) -> Result<bool, ServeError> {
    let Some(wrapped) = store.any_wrapped_key_a().await? else {
        return Ok(false);
    };
    match kek.unwrap(&wrapped) {
        Ok(_) => Ok(true),
        Err(crate::keystore::KeyOpError::Unwrap) => Err(ServeError::KekMismatch {
            keystore: keystore.location(),
            check_value: kek.check_value().map(|c| c.to_string()).unwrap_or_default(),
        }),
        Err(e) => Err(ServeError::KeyStore(e.into())),
    }
}

/// Which JWT keys the key store must generate: those of the configured
/// algorithm, unless every token's key comes from a file.
pub fn needs_generated_jwt_keys(config: &Config) -> GeneratedJwtKeys {
    let all_files = !(config.jwt.declaration_key_file.as_os_str().is_empty()
        || config.jwt.analytics_key_file.as_os_str().is_empty()
        || config.jwt.report_key_file.as_os_str().is_empty());
    match (all_files, config.jwt.algorithm) {
        (true, _) => GeneratedJwtKeys::None,
        (false, JwtAlgorithm::ES256) => GeneratedJwtKeys::Es256,
        (false, JwtAlgorithm::RS256) => GeneratedJwtKeys::Rs256,
    }
}

/// KDF parameters for new key stores, from the configuration.
pub fn kdf_params(config: &Config) -> KdfParams {
    KdfParams {
        memory_kib: config.keys.argon2_memory_kib,
        iterations: config.keys.argon2_iterations,
        parallelism: config.keys.argon2_parallelism,
    }
}

/// Opens the configured file key store (`keys.keystore`), whatever
/// `keys.store` says. The passphrase comes from `ROBERT_KEYSTORE_PASSPHRASE`,
/// else the passphrase file; when `create_passphrase` is true and the key
/// store does not exist yet, a missing passphrase file is generated (mode 0600).
pub fn open_file_keystore(
    config: &Config,
    create_passphrase: bool,
) -> Result<(FileKeyStore, SecretSource), KeyStoreError> {
    let data_dir = &config.server.data_dir;
    let path = config.keys.keystore_path(data_dir);
    let pass_path = config.keys.passphrase_path(data_dir);
    let generate = create_passphrase && !path.exists();
    let (pass, source) =
        resolve_passphrase(std::env::var(PASSPHRASE_ENV).ok(), &pass_path, generate)?;
    Ok((FileKeyStore::new(path, pass, kdf_params(config)), source))
}

/// Opens the configured key store (`keys.store`): the file store (see
/// [`open_file_keystore`]) or the PKCS#11 token of `[keys.pkcs11]`, logged
/// in with the PIN of `ROBERT_PKCS11_PIN`, else `keys.pkcs11.pin_file`.
pub fn open_keystore(
    config: &Config,
    create_passphrase: bool,
) -> Result<(Arc<dyn KeyStore>, SecretSource), KeyStoreError> {
    match config.keys.store {
        KeyStoreKind::File => {
            let (ks, source) = open_file_keystore(config, create_passphrase)?;
            Ok((Arc::new(ks), source))
        }
        KeyStoreKind::Pkcs11 => {
            let c = &config.keys.pkcs11;
            let (pin, source) = resolve_pin(std::env::var(PIN_ENV).ok(), Some(&c.pin_file))?;
            let settings = Pkcs11Settings {
                module: c.module.clone(),
                token_label: c.token_label.clone(),
                label_prefix: c.label_prefix.clone(),
                max_idle_sessions: c.max_idle_sessions,
            };
            Ok((Arc::new(Pkcs11KeyStore::open(&settings, pin)?), source))
        }
    }
}

/// What the server found or created at start, for the operator.
#[derive(Debug)]
pub struct Startup {
    /// The running state.
    pub state: AppState,
    /// The key store.
    pub keystore: Arc<dyn KeyStore>,
    /// The key store's generation when the ring was loaded.
    pub keystore_generation: Option<u64>,
    /// Messages to log (never secrets).
    pub notes: Vec<String>,
    /// Warnings to log at every start.
    pub warnings: Vec<String>,
}

/// The one way to assemble a server: `robert serve` ([`ServerBuilder::start`]:
/// key store and database from the configuration), and the tests and the
/// simulator ([`ServerBuilder::build`]: keys they made, a store they opened).
/// Both end in the same assembly of captcha, code-service and push clients,
/// JWT issuers and state.
#[derive(Debug)]
pub struct ServerBuilder {
    config: Config,
    clock: SharedClock,
    store: Option<Arc<dyn Store>>,
    keys: Option<KeySet>,
    node_id: Option<String>,
}

impl ServerBuilder {
    /// A server with `config`, reading time from `clock`.
    pub fn new(config: Config, clock: SharedClock) -> Self {
        Self {
            config,
            clock,
            store: None,
            keys: None,
            node_id: None,
        }
    }

    /// Uses `store` instead of opening `server.database_url` (for
    /// [`ServerBuilder::build`]).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses these keys instead of a key store (for [`ServerBuilder::build`]).
    #[must_use]
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
        self
    }

    /// A server for the workspace's end-to-end tests (feature `testing`):
    /// any captcha answer accepted, tokens signed with ES256 (RSA key
    /// generation is slow), and fresh keys from 20 days before the clock's
    /// day to 30 days after, so that phones can register, report and ask
    /// their status over a month of simulated time.
    #[cfg(any(test, feature = "testing"))]
    pub fn for_tests(mut config: Config, clock: SharedClock) -> Self {
        config.captcha.mode = CaptchaMode::AcceptAny;
        config.jwt.algorithm = JwtAlgorithm::ES256;
        let today = UtcDate::of(clock.now_ntp());
        let mut keys = KeySet::default();
        keys.fill_missing(
            today.add_days(-20),
            today.add_days(30),
            true,
            &mut rand::rng(),
        );
        Self::new(config, clock).keys(keys)
    }

    /// Starts as `robert serve` does: prepares the key store (creating it on
    /// first start, rotating it with `keys.auto_rotate`), opens the
    /// configured database and assembles the state. Keys and store given to
    /// the builder are not used: the key store and the configuration decide.
    pub async fn start(self) -> Result<Startup, ServeError> {
        let node_id = self.node_id.unwrap_or_else(new_node_id);
        prepare_from_key_store(self.config, self.clock, node_id).await
    }

    /// Assembles the state from the keys given with [`ServerBuilder::keys`]
    /// (no key store: tests and simulations) and the store given with
    /// [`ServerBuilder::store`], or else the configured database.
    pub async fn build(self) -> Result<AppState, ServeError> {
        let set = self.keys.ok_or(ServeError::NoKeys)?;
        let store = match self.store {
            Some(s) => s,
            None => {
                robert_store::open(&self.config.server.database_url(), &self.config.store).await?
            }
        };
        let tokens = Tokens::from_config(&self.config.jwt, &set.jwt)?;
        let ring = KeyRing::from_set(set)?;
        let node_id = self.node_id.unwrap_or_else(new_node_id);
        assemble(self.config, self.clock, store, ring, tokens, node_id)
    }

    /// Names this node in task claims (default: random per process).
    #[must_use]
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }
}

/// The assembly both paths of [`ServerBuilder`] end in. The state several
/// nodes share goes to the store when `captcha.state` /
/// `limits.rate_limit_state` say so (by default: on PostgreSQL), under keys
/// derived from the KEK.
fn assemble(
    config: Config,
    clock: SharedClock,
    store: Arc<dyn Store>,
    keys: KeyRing,
    tokens: Tokens,
    node_id: String,
) -> Result<AppState, ServeError> {
    let backend = store.backend();
    let captcha_db =
        config.captcha.mode == CaptchaMode::Builtin && config.captcha.state.in_database(backend);
    let rate_db = config.limits.rate_limit_state.in_database(backend);
    let shared_keys = if captcha_db || rate_db {
        Some(Arc::new(
            CaptchaKeys::derive(keys.kek().as_ref()).map_err(|e| ServeError::KeyStore(e.into()))?,
        ))
    } else {
        None
    };
    let shared: Arc<dyn SharedState> = store.clone();
    let per_minute = config.limits.code_checks_per_minute;
    let code_checks = match (&shared_keys, rate_db) {
        (Some(k), true) => RateLimiter::Shared(SharedRateLimiter::per_minute(
            shared.clone(),
            CODE_CHECKS_BUCKET,
            per_minute,
            k.clone(),
        )),
        _ => RateLimiter::Memory(KeyedRateLimiter::per_minute(per_minute)),
    };
    let captcha_shared = match (&shared_keys, captcha_db) {
        (Some(k), true) => Some((shared, k.clone())),
        _ => None,
    };
    let federation = crate::federation::FederationRuntime::from_config(
        &config.federation,
        config.protocol.country_code,
    )?;
    Ok(AppState::new(StateParts {
        captcha: Captcha::from_config(&config.captcha, captcha_shared)?,
        codes: CodesClient::new(&config.codes)?,
        push: PushClient::new(&config.push)?,
        store,
        keys,
        tokens,
        clock,
        config,
        code_checks,
        node_id,
        federation,
    }))
}

/// The rate-limit bucket of the `/report` code checks.
pub const CODE_CHECKS_BUCKET: &str = "report-code-checks";

/// The name of key rotation in the task claims (one turn per UTC day).
pub const KEY_ROTATION_TASK: &str = "key-rotation";

/// Seconds a node's claim of a key rotation holds before another node may
/// take over (a node that died mid-rotation).
const ROTATION_LEASE_SECS: i64 = 600;

/// A random name for this node in task claims.
pub fn new_node_id() -> String {
    use rand::Rng as _;
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("node-{}", hex::encode(b))
}

/// Rotates the key store for `today` unless another node on the database
/// has done it (or is doing it) today: one rotation per day across nodes
/// ([`SharedState::claim_turn`] on [`KEY_ROTATION_TASK`]). `Ok(None)`: not
/// this node's turn; the others load the new generation when the key store
/// changes.
pub async fn rotate_once(
    store: &dyn Store,
    keystore: Arc<dyn KeyStore>,
    node_id: &str,
    today: UtcDate,
    now_unix: i64,
    future_days: u32,
    retention_days: u32,
) -> Result<Option<admin::KeyReport>, ServeError> {
    let turn = today.days_since_unix_epoch();
    if !store
        .claim_turn(
            KEY_ROTATION_TASK,
            turn,
            node_id,
            now_unix,
            now_unix + ROTATION_LEASE_SECS,
        )
        .await?
    {
        return Ok(None);
    }
    let result = tokio::task::spawn_blocking(move || {
        admin::rotate(keystore.as_ref(), today, future_days, retention_days)
    })
    .await
    .map_err(|e| ServeError::Io(std::io::Error::other(e)));
    let ok = matches!(result, Ok(Ok(_)));
    if let Err(e) = store
        .finish_turn(KEY_ROTATION_TASK, turn, node_id, ok)
        .await
    {
        tracing::warn!(error = %e, "could not record the end of the key rotation");
    }
    Ok(Some(result??))
}

/// Prepares the key store (creating it on first start), opens the database
/// and assembles the state: [`ServerBuilder::start`].
pub async fn prepare(config: Config, clock: SharedClock) -> Result<Startup, ServeError> {
    ServerBuilder::new(config, clock).start().await
}

async fn prepare_from_key_store(
    config: Config,
    clock: SharedClock,
    node_id: String,
) -> Result<Startup, ServeError> {
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    std::fs::create_dir_all(&config.server.data_dir)?;
    let (ks, source) = open_keystore(&config, true)?;
    let secret = match config.keys.store {
        KeyStoreKind::File => "key store passphrase",
        KeyStoreKind::Pkcs11 => "PKCS#11 PIN",
    };
    match &source {
        SecretSource::Generated(p) => warnings.push(format!(
            "generated a random key store passphrase in {} (mode 0600). Protect it: keep it readable by the \
             server's user only and back it up apart from the key store, or move it to a secret manager and \
             pass it as {PASSPHRASE_ENV}",
            p.display()
        )),
        other => notes.push(format!("{secret} {other}")),
    }
    // The database first: several nodes on it rotate the keys once a day.
    let url = config.server.database_url();
    let store = robert_store::open(&url, &config.store).await?;
    let today = UtcDate::of(clock.now_ntp());
    let with_jwt = needs_generated_jwt_keys(&config);
    if !ks.exists() {
        let r = admin::init(ks.as_ref(), today, config.keys.future_days, with_jwt)?;
        notes.push(format!(
            "created key store {} with {} keys (K_S {} to {})",
            ks.location(),
            r.added.len(),
            r.server_key_range
                .as_ref()
                .map(|r| r.0.as_str())
                .unwrap_or("-"),
            r.server_key_range
                .as_ref()
                .map(|r| r.1.as_str())
                .unwrap_or("-"),
        ));
    } else {
        if with_jwt != GeneratedJwtKeys::None {
            let r = admin::init_jwt_only(ks.as_ref(), with_jwt)?;
            if !r.is_empty() {
                notes.push(format!("generated JWT keys: {}", r.join(", ")));
            }
        }
        if config.keys.auto_rotate {
            let rotated = rotate_once(
                store.as_ref(),
                ks.clone(),
                &node_id,
                today,
                clock.now_unix(),
                config.keys.future_days,
                config.keys.retention_days,
            )
            .await?;
            match rotated {
                Some(r) if !r.added.is_empty() || !r.removed.is_empty() => {
                    notes.push(format!(
                        "key rotation: {} added, {} removed",
                        r.added.len(),
                        r.removed.len()
                    ));
                }
                Some(_) => {}
                None => notes
                    .push("key rotation: another node on the database rotates today's keys".into()),
            }
        }
    }
    let keystore_generation = ks.generation();
    let set = ks.load()?;
    let tokens = Tokens::from_config(&config.jwt, &set.jwt)?;
    let ring = KeyRing::from_set(set)?;
    if ring.server_key(today).is_none() {
        warnings.push(format!(
            "the key store holds no K_S for today ({today}): /register and /status answer 503 until \
             `robert keys rotate` or `robert keys import` provides one"
        ));
    }
    notes.push(key_store_sentence(&ks.location(), &ring));

    notes.push(format!(
        "database: {} ({})",
        redact_url(&url),
        store.backend()
    ));
    if check_kek(ring.kek().as_ref(), ks.as_ref(), store.as_ref()).await? {
        notes.push("the KEK opens the registrations in the database".into());
    }

    match config.captcha.mode {
        CaptchaMode::AcceptAny => warnings.push(
            "captcha mode is accept-any: every captcha answer is accepted. For tests and demos only".into(),
        ),
        CaptchaMode::External => notes.push(format!(
            "captcha: external service {}",
            config.captcha.external.private_base_url
        )),
        CaptchaMode::Builtin => notes.push("captcha: built-in image challenges".into()),
    }
    if !config.codes.check_token {
        warnings.push(
            "codes.check_token = false: /report accepts any token. For tests and demos only".into(),
        );
    }
    if config.server.internal_address().is_none() {
        warnings.push(format!(
            "server.internal_bind = \"public\": /metrics and /internal/api/v2/kpis are served \
             without authentication on {}; restrict them at the network level",
            config.server.bind
        ));
    }
    if config.server.clock_offset_secs != 0 {
        warnings.push(format!(
            "the server clock is shifted by {} s (server.clock_offset_secs): testing only",
            config.server.clock_offset_secs
        ));
    }
    let state = assemble(config, clock, store, ring, tokens, node_id)?;
    Ok(Startup {
        state,
        keystore: ks,
        keystore_generation,
        notes,
        warnings,
    })
}

/// One human sentence about the keys the server starts with (never a key).
fn key_store_sentence(location: &str, ring: &KeyRing) -> String {
    let days = ring.server_keys();
    match (days.keys().next(), days.keys().next_back()) {
        (Some(first), Some(last)) if first == last => format!(
            "key store {location}: the daily server key (K_S) of {first}, the federation key, \
             the key-encryption key and the registration key pair"
        ),
        (Some(first), Some(last)) => format!(
            "key store {location}: daily server keys (K_S) for {} days, {first} to {last}, \
             the federation key, the key-encryption key and the registration key pair",
            days.len()
        ),
        _ => format!(
            "key store {location}: no daily server key (K_S) yet, the federation key, \
             the key-encryption key and the registration key pair"
        ),
    }
}

/// Hides the password of a database URL.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Reloads the key ring when the key store changes and, with
/// `keys.auto_rotate`, keeps K_S provisioned (daily). `loaded` is the
/// generation the running ring was loaded from ([`Startup::keystore_generation`]).
pub fn spawn_key_maintenance(
    state: AppState,
    keystore: Arc<dyn KeyStore>,
    loaded: Option<u64>,
) -> tokio::task::JoinHandle<()> {
    let every = state.config.keys.reload_secs;
    let mut generation = loaded;
    tokio::spawn(async move {
        if every == 0 {
            return;
        }
        let mut last_rotation_day: Option<UtcDate> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(every));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let today = UtcDate::of(state.clock.now_ntp());
            if state.config.keys.auto_rotate && last_rotation_day != Some(today) {
                match rotate_once(
                    state.store.as_ref(),
                    keystore.clone(),
                    &state.node_id,
                    today,
                    state.clock.now_unix(),
                    state.config.keys.future_days,
                    state.config.keys.retention_days,
                )
                .await
                {
                    Ok(Some(r)) => {
                        last_rotation_day = Some(today);
                        if !r.added.is_empty() || !r.removed.is_empty() {
                            tracing::info!(
                                added = r.added.len(),
                                removed = r.removed.len(),
                                "server keys rotated"
                            );
                        }
                    }
                    // Another node's turn: its new generation is loaded below.
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "server key rotation failed"),
                }
            }
            let now_gen = keystore.generation();
            if now_gen.is_some() && now_gen == generation {
                continue;
            }
            let ks = keystore.clone();
            match tokio::task::spawn_blocking(move || ks.load()).await {
                Ok(Ok(set)) => match KeyRing::from_set(set) {
                    Ok(ring) => {
                        tracing::info!(keys = ?ring, "key store reloaded");
                        state.keys.replace(ring);
                        generation = now_gen;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reloaded key store is incomplete; keeping the previous keys")
                    }
                },
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "key store reload failed; keeping the previous keys")
                }
                Err(e) => tracing::error!(error = %e, "key store reload task failed"),
            }
        }
    })
}

/// Runs the risk batch every `every` inside the server (`robert serve
/// --batch-every`). The first run starts one period after startup. Turns are
/// the periods of the server's clock since the Unix epoch; of several nodes
/// on one database, one runs each turn ([`AppState::run_batch_turn`]) and the
/// others count it as `skipped`.
pub fn spawn_periodic_batch(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
        let lease_secs = every_ms.div_euclid(1000).max(1);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let turn = state.clock.now_unix_millis().div_euclid(every_ms);
            match state.run_batch_turn(turn, lease_secs).await {
                Ok(TurnOutcome::Ran(report)) => tracing::info!(
                    report = %serde_json::to_string(&report).unwrap_or_default(),
                    "risk batch done"
                ),
                Ok(TurnOutcome::Skipped) => {
                    tracing::info!(turn, "risk batch skipped: another node has this turn");
                }
                Err(e) => tracing::error!(error = %e, "risk batch failed"),
            }
        }
    })
}

/// Sweeps the expired rows of the shared state (captcha challenges,
/// rate-limit budgets) every `every`, and refreshes the
/// `robert_captcha_outstanding` gauge of a database-backed captcha.
pub fn spawn_shared_state_sweep(state: AppState, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now_ms = state.clock.now_unix_millis();
            if let Err(e) = state.store.sweep_shared(now_ms).await {
                tracing::warn!(error = %e, "shared-state sweep failed");
            }
            if let Captcha::Shared(c) = &state.captcha
                && let Ok(n) = c.outstanding(now_ms.div_euclid(1000)).await
            {
                state.metrics.set_captcha_outstanding(n);
            }
        }
    })
}

/// Binds the configured listeners: `server.bind`, and `server.internal_bind`
/// unless it is `"public"` (then the second listener is `None`).
pub async fn bind(config: &Config) -> Result<(TcpListener, Option<TcpListener>), ServeError> {
    let bind = |addr: &str, key: &str| {
        let addr = addr.trim().to_owned();
        let key = key.to_owned();
        async move {
            TcpListener::bind(&addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: format!("{addr} ({key})"),
                    source,
                })
        }
    };
    let main = bind(&config.server.bind, "server.bind").await?;
    let internal = match config.server.internal_address() {
        None => None,
        Some(a) => Some(bind(a, "server.internal_bind").await?),
    };
    Ok((main, internal))
}

/// Routes of another service served by the same listeners, e.g. the
/// submission-code service in a one-process deployment. They must not clash
/// with the server's own paths and must not set a fallback.
#[derive(Debug, Default)]
pub struct ExtraRoutes {
    /// Served with the public API.
    pub public: axum::Router,
    /// Served with the internal endpoints (KPIs, metrics).
    pub internal: axum::Router,
}

/// Serves the API until `shutdown` resolves. With an internal listener the
/// KPI and metrics endpoints are served there only; with `None` they are
/// served on `main` too (what `server.internal_bind = "public"` asks for).
pub async fn run(
    state: AppState,
    main: TcpListener,
    internal: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run_with(state, main, internal, ExtraRoutes::default(), shutdown).await
}

/// [`run`], also serving another service's routes on the same listeners.
///
/// The listeners apply the connection limits of `[server]` (header-read
/// timeout, connection cap, shutdown grace; see [`crate::connections`]):
/// when `shutdown` resolves they stop accepting, requests in progress get
/// `server.shutdown_grace_secs` to finish, and every other connection is
/// closed at once.
pub async fn run_with(
    state: AppState,
    main: TcpListener,
    internal: Option<TcpListener>,
    extra: ExtraRoutes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let s = &state.config.server;
    let limits = ConnectionLimits::new(
        s.header_read_timeout_secs,
        s.max_connections,
        s.shutdown_grace_secs,
    );
    let connections = Connections::new(limits, state.metrics.connections());
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        shutdown_grace_secs = limits.shutdown_grace.as_secs(),
        "connection limits"
    );
    match internal {
        None => {
            let app = extra.public.merge(extra.internal).merge(api::app(state));
            connections.serve(main, app, rx).await;
        }
        Some(internal) => {
            let public = extra
                .public
                .merge(api::finish(api::public_routes(&state), state.clone()));
            let private = extra
                .internal
                .merge(api::finish(api::internal_routes(), state));
            tokio::join!(
                connections.serve(main, public, rx.clone()),
                connections.serve(internal, private, rx)
            );
        }
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (the shared HTTP shell's).
pub use robert_http::shutdown_signal;
