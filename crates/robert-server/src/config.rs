//! Server configuration: a TOML file overlaid with environment variables.
//!
//! Every setting has a default, so `robert serve` runs with no file at all.
//! The annotated reference of every key, with its default, is
//! `crates/robert-server/robert.example.toml` (a test checks that it parses
//! to exactly [`Config::default`]).
//!
//! Environment variables override the file: `ROBERT_<SECTION>__<KEY>`, with
//! `__` separating nesting levels, e.g. `ROBERT_PROTOCOL__BUNDLE_DAYS=20`,
//! `ROBERT_CAPTCHA__EXTERNAL__PRIVATE_BASE_URL=http://…`. Values are read as
//! integers, floats, booleans or TOML arrays when they parse as such, else
//! as strings. Variables without `__` (such as `ROBERT_KEYSTORE_PASSPHRASE`)
//! are not configuration keys.

use std::fmt;
use std::path::{Path, PathBuf};

use robert_core::time::{ServiceStart, UtcDate};
use serde::{Deserialize, Deserializer};

use crate::batch::BatchConfig;

pub use robert_http::log::{LogConfig, LogFormat};

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "ROBERT_";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file or an environment variable is not valid for the schema.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listening address, storage, data directory.
    pub server: ServerConfig,
    /// Protocol parameters shared with the apps.
    pub protocol: ProtocolConfig,
    /// The key store.
    pub keys: KeysConfig,
    /// Captcha provider for `/register`.
    pub captcha: CaptchaConfig,
    /// Submission-code verification for `/report`.
    pub codes: CodesConfig,
    /// Push-notification server.
    pub push: PushConfig,
    /// Tokens (JWT) issued by `/status` and `/report`.
    pub jwt: JwtConfig,
    /// Request size and count limits.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Database connection settings (defined by `robert-store`).
    pub store: robert_store::StoreOptions,
    /// The risk batch (defined by [`crate::batch`]). Its `service_start`
    /// and `country_code` follow `[protocol]`.
    pub batch: BatchConfig,
    /// Federation with other countries' servers (defined by
    /// [`crate::federation`]).
    pub federation: crate::federation::FederationConfig,
    /// Traffic privacy: padding and dummy requests (defined by
    /// [`crate::privacy`]).
    pub privacy: crate::privacy::PrivacyConfig,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Directory holding the embedded database and the key store.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite:<path>` or `postgres://…`. Empty: the embedded
    /// SQLite database `<data_dir>/robert.db`.
    pub database_url: String,
    /// Shift of the server clock in seconds (testing and demos only; a
    /// non-zero value logs a warning at start).
    pub clock_offset_secs: i64,
    /// Timeout of processing a request once its body is read, in seconds
    /// (408 beyond; the upload itself is bounded by
    /// `limits.body_min_bytes_per_sec`, not by this timeout).
    pub request_timeout_secs: u64,
    /// A connection that has not sent a complete request head (line and
    /// headers) within this many seconds is closed. It also closes idle
    /// keep-alive connections after as long.
    pub header_read_timeout_secs: u64,
    /// Most connections open at once, both listeners together. At the cap
    /// the oldest connection without a request in progress is closed to
    /// make room; when every connection has one, new connections wait in
    /// the listen backlog. Also kept below the open-file limit.
    pub max_connections: usize,
    /// The open-file limit (`RLIMIT_NOFILE`) `robert serve` sets at start:
    /// 0 raises the soft limit to the hard limit; another value sets the
    /// soft limit to it (at most the hard limit).
    pub open_files_limit: u64,
    /// On Ctrl-C or SIGTERM the server stops accepting, lets requests in
    /// progress finish for at most this many seconds, then closes every
    /// connection (those without a request in progress at once).
    pub shutdown_grace_secs: u64,
    /// Address of the internal endpoints (`/internal/api/v2/kpis`,
    /// `/metrics`, and the embedded code service's KPIs and metrics), which
    /// have no authentication. Default [`DEFAULT_INTERNAL_BIND`] (loopback),
    /// so a default install never exposes them; [`INTERNAL_ON_PUBLIC`]
    /// (`"public"`) serves them on `bind` instead, as the reference served
    /// its KPIs (protect them at the network level then).
    pub internal_bind: String,
    /// Reverse proxies whose `X-Forwarded-For` is believed: for a request
    /// from one of these addresses, the client (for the per-client limits)
    /// is the rightmost forwarded address that is not one of them. Empty:
    /// the client is always the TCP peer.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8086".into(),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            clock_offset_secs: 0,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            open_files_limit: 0,
            shutdown_grace_secs: 5,
            internal_bind: DEFAULT_INTERNAL_BIND.into(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Default `server.internal_bind`: loopback, so that the unauthenticated KPI
/// and metrics endpoints are reachable only from the machine itself, on
/// port 8081, the reference's management port (Spring actuator, where its
/// Prometheus scraped), which clashes with none of the other ROBERT ports
/// (8086 API, 8087/8088 code service, 9090 crypto, 9096 push).
pub const DEFAULT_INTERNAL_BIND: &str = "127.0.0.1:8081";

/// `server.internal_bind` value that serves the internal endpoints on the
/// public listener (`bind`), the behaviour before they had their own.
pub const INTERNAL_ON_PUBLIC: &str = "public";

impl ServerConfig {
    /// The address of the internal listener, or `None` when the internal
    /// endpoints are served on `bind` (`internal_bind = "public"`).
    pub fn internal_address(&self) -> Option<&str> {
        let a = self.internal_bind.trim();
        (!a.eq_ignore_ascii_case(INTERNAL_ON_PUBLIC)).then_some(a)
    }

    /// The effective database URL.
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            robert_store::default_sqlite_url(&self.data_dir)
        } else {
            self.database_url.clone()
        }
    }
}

/// `[protocol]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Service start date, 00:00 UTC (`robert.server.time-start`).
    #[serde(deserialize_with = "de_date")]
    pub service_start: UtcDate,
    /// This server's country code (telephone prefix; France 33 = 0x21).
    pub country_code: u8,
    /// Days of tuples in each bundle (`robert.epoch-bundle-duration-in-days`).
    pub bundle_days: u32,
    /// Maximum |server clock − request `time`| in seconds
    /// (`robert.server.request-time-delta-tolerance`).
    pub request_time_tolerance_secs: u64,
    /// Minimum epochs between two accepted `/status` of one registration
    /// (`robert.server.status-request-minimum-epoch-gap`); 0 disables the
    /// limit (the reference's `ESR_LIMIT=0`).
    pub status_min_epoch_gap: u32,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        Self {
            service_start: ServiceStart::REFERENCE.date(),
            country_code: 33,
            bundle_days: 4,
            request_time_tolerance_secs: 60,
            status_min_epoch_gap: 2,
        }
    }
}

impl ProtocolConfig {
    /// The service start.
    pub fn start(&self) -> ServiceStart {
        ServiceStart::new(self.service_start)
    }
}

fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<UtcDate, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|_| serde::de::Error::custom(format!("invalid date {s:?}: expected YYYY-MM-DD")))
}

/// `[keys]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Where the keys live: `file` (a passphrase-encrypted file, the
    /// default) or `pkcs11` (a PKCS#11 token, see `[keys.pkcs11]`).
    pub store: KeyStoreKind,
    /// The PKCS#11 token, when `store = "pkcs11"`.
    pub pkcs11: Pkcs11Config,
    /// Key store file. Empty: `<data_dir>/keystore.robert`.
    pub keystore: PathBuf,
    /// File holding the key-store passphrase, used when the environment
    /// variable `ROBERT_KEYSTORE_PASSPHRASE` is not set. Empty:
    /// `<data_dir>/keystore.pass` (generated with mode 0600 on first start).
    pub passphrase_file: PathBuf,
    /// Days of K_S created ahead of today by `keys init`, `keys rotate` and
    /// the server's first start.
    pub future_days: u32,
    /// Past days of K_S kept by `keys rotate`; older ones are deleted. Must
    /// cover the contagious period (14 days) plus the upload delay.
    pub retention_days: u32,
    /// Whether the server itself keeps K_S provisioned: at start and then
    /// daily it adds the days up to `future_days` ahead and deletes those
    /// older than `retention_days` (what `robert keys rotate` does). Set it to
    /// false when keys come from a key ceremony or are shared by several
    /// sites, and run `robert keys rotate`/`import` there instead.
    pub auto_rotate: bool,
    /// How often the server checks the key store file for changes (made by
    /// `robert keys rotate` or `import`), in seconds; 0 disables reloading.
    pub reload_secs: u64,
    /// Argon2id memory cost in KiB for new key stores.
    pub argon2_memory_kib: u32,
    /// Argon2id iterations for new key stores.
    pub argon2_iterations: u32,
    /// Argon2id parallelism for new key stores.
    pub argon2_parallelism: u32,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            store: KeyStoreKind::File,
            pkcs11: Pkcs11Config::default(),
            keystore: PathBuf::new(),
            passphrase_file: PathBuf::new(),
            future_days: 5,
            retention_days: 21,
            auto_rotate: true,
            reload_secs: 60,
            argon2_memory_kib: 64 * 1024,
            argon2_iterations: 3,
            argon2_parallelism: 1,
        }
    }
}

impl KeysConfig {
    /// The effective key store path.
    pub fn keystore_path(&self, data_dir: &Path) -> PathBuf {
        if self.keystore.as_os_str().is_empty() {
            data_dir.join("keystore.robert")
        } else {
            self.keystore.clone()
        }
    }

    /// The effective passphrase file path.
    pub fn passphrase_path(&self, data_dir: &Path) -> PathBuf {
        if self.passphrase_file.as_os_str().is_empty() {
            data_dir.join("keystore.pass")
        } else {
            self.passphrase_file.clone()
        }
    }
}

/// Which key store `[keys]` uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyStoreKind {
    /// The passphrase-encrypted file `keys.keystore`.
    #[default]
    File,
    /// A PKCS#11 token (`[keys.pkcs11]`).
    Pkcs11,
}

/// `[keys.pkcs11]`: the token of the PKCS#11 key store. The user PIN comes
/// from `ROBERT_PKCS11_PIN` or `pin_file`, never from the command line.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The HSM's PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The label of the token holding the keys.
    pub token_label: String,
    /// A file holding the user PIN (used when `ROBERT_PKCS11_PIN` is not set).
    pub pin_file: PathBuf,
    /// Prepended to every object label, so that several deployments can
    /// share one token. Empty: the reference's aliases (`register-key`, …).
    pub label_prefix: String,
    /// PKCS#11 sessions kept open for reuse (more are opened under load).
    pub max_idle_sessions: usize,
}

impl Default for Pkcs11Config {
    fn default() -> Self {
        Self {
            module: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            token_label: "robert".into(),
            pin_file: PathBuf::new(),
            label_prefix: String::new(),
            max_idle_sessions: 16,
        }
    }
}

/// Captcha provider mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptchaMode {
    /// Built-in provider: PNG image challenges, one-time expiring answers.
    #[default]
    Builtin,
    /// An external captcha service speaking the reference's protocol.
    External,
    /// Development only: every answer is accepted (a warning is logged at start).
    AcceptAny,
}

impl fmt::Display for CaptchaMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Builtin => "builtin",
            Self::External => "external",
            Self::AcceptAny => "accept-any",
        })
    }
}

/// `[captcha]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaConfig {
    /// `builtin`, `external` or `accept-any`.
    pub mode: CaptchaMode,
    /// Built-in: seconds a challenge stays valid.
    pub ttl_secs: u64,
    /// Built-in: maximum outstanding challenges (new ones are refused with
    /// 503 beyond it).
    pub max_outstanding: usize,
    /// Built-in: maximum outstanding challenges of one client (an IPv4
    /// address or an IPv6 /64, see `server.trusted_proxies`); beyond it that
    /// client gets 429 until one of its challenges is answered or expires.
    /// Must be below `max_outstanding`, so one client cannot exhaust it.
    pub max_outstanding_per_client: usize,
    /// Built-in: rendered PNGs kept in memory (about 15 kB each); others
    /// are rendered again, identical, at their next fetch.
    pub image_cache_entries: usize,
    /// Built-in: characters in an answer (digits for audio challenges).
    pub length: usize,
    /// Built-in: where the challenges live: `memory` (this process only),
    /// `database` (the store, sealed under a key derived from the KEK:
    /// several nodes on one database share them), or `auto` (default:
    /// `database` on PostgreSQL, `memory` on SQLite).
    pub state: StateLocation,
    /// External provider settings.
    pub external: ExternalCaptchaConfig,
}

impl Default for CaptchaConfig {
    fn default() -> Self {
        Self {
            mode: CaptchaMode::Builtin,
            ttl_secs: 600,
            max_outstanding: 100_000,
            max_outstanding_per_client: 50,
            image_cache_entries: 1000,
            length: 6,
            state: StateLocation::Auto,
            external: ExternalCaptchaConfig::default(),
        }
    }
}

/// `[captcha.external]`: the reference's "Orange captcha" protocol.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalCaptchaConfig {
    /// Base URL of the private API (`robert.captcha.private-base-url`):
    /// `POST {url}/captcha`, `POST {url}/captcha/{id}/checkAnswer`.
    pub private_base_url: String,
    /// Base URL of the public API (`robert.captcha.public-base-url`):
    /// `GET {url}/captcha/{id}.png` and `.wav`.
    pub public_base_url: String,
    /// The `result` value meaning success (`robert.captcha.success-code`).
    pub success_code: String,
    /// Request timeout in milliseconds.
    pub timeout_ms: u64,
}

impl Default for ExternalCaptchaConfig {
    fn default() -> Self {
        Self {
            private_base_url: "http://localhost/private/api/v1".into(),
            public_base_url: "http://localhost/public/api/v1".into(),
            success_code: "SUCCESS".into(),
            timeout_ms: 5000,
        }
    }
}

/// `[codes]`: the submission-code service that checks `/report` tokens.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodesConfig {
    /// Base URL (`submission.code.server.url`); the server calls
    /// `POST {url}/api/v1/claim` then `…/claim/confirm` or `…/claim/release`,
    /// or, on a service without them, `GET {url}/api/v1/verify?code=…`.
    pub url: String,
    /// Whether to verify tokens at all. `false` (the reference's
    /// `disable-check-token`, development only) accepts every token and logs
    /// a warning at start.
    pub check_token: bool,
    /// Request timeout in milliseconds; a failure or timeout of the service
    /// answers 503 at `/report` (the apps retry), never 401.
    pub timeout_ms: u64,
    /// Whether readiness (`/actuator/health/readiness`) goes DOWN while the
    /// service does not answer. Default `true`: a node that cannot take
    /// declarations says so. Set `false` if the load balancer should keep
    /// sending `/status` and `/register` to nodes during a code-service
    /// outage (reports then get 503 one by one).
    pub in_readiness: bool,
}

impl Default for CodesConfig {
    fn default() -> Self {
        Self {
            url: "http://localhost:8087".into(),
            check_token: true,
            timeout_ms: 5000,
            in_readiness: true,
        }
    }
}

/// `[push]`: the push-notification server (codes-and-push.md §8).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Base URL of its internal API, e.g. `http://localhost:9096/internal/api/v1`;
    /// the server calls `POST {url}/push-token` and `DELETE {url}/push-token/{token}`.
    /// Empty: push information is accepted and ignored.
    pub url: String,
    /// Request timeout in milliseconds.
    pub timeout_ms: u64,
    /// Maximum concurrent calls; beyond it new calls are dropped (and logged).
    pub max_in_flight: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 10_000,
            max_in_flight: 256,
        }
    }
}

/// JWT signature algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    /// ECDSA P-256 with SHA-256 (smaller, faster tokens; only for consumers
    /// you configure yourself).
    ES256,
    /// RSA PKCS#1 v1.5 with SHA-256 (default): the reference's algorithm, the
    /// only one its consumers verify (the analytics server accepts nothing
    /// else, and CNAM was set up for the reference's RSA key).
    #[default]
    RS256,
}

/// `[jwt]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Signature algorithm of every token: `RS256` (default) or `ES256`.
    pub algorithm: JwtAlgorithm,
    /// `kid` header of the declaration token (`robert.jwt.declare.public-kid`).
    pub declaration_kid: String,
    /// PKCS#8 private key signing `declarationToken`: a PEM file, or a file
    /// holding the reference's base64 DER value
    /// (`robert.jwt.declare.private-key`). Empty: a key of the configured
    /// algorithm generated into the key store on first start.
    pub declaration_key_file: PathBuf,
    /// PKCS#8 private key signing `analyticsToken`
    /// (`robert.jwt.analytics.token.private-key`). Empty: generated into the
    /// key store.
    pub analytics_key_file: PathBuf,
    /// PKCS#8 private key signing `reportValidationToken`
    /// (`robert.jwt.privatekey`). Empty: generated into the key store.
    pub report_key_file: PathBuf,
    /// Lifetime of the analytics token in minutes (`robert.jwt.analytics.token.lifetime`);
    /// `exp` is one minute more, as in the reference.
    pub analytics_lifetime_mins: u64,
    /// Lifetime of the report validation token in seconds (`robert.jwt.lifetime`).
    pub report_lifetime_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::RS256,
            declaration_kid: "robert-declaration".into(),
            declaration_key_file: PathBuf::new(),
            analytics_key_file: PathBuf::new(),
            report_key_file: PathBuf::new(),
            analytics_lifetime_mins: 360,
            report_lifetime_secs: 300,
        }
    }
}

/// Where a piece of per-client state lives (`captcha.state`,
/// `limits.rate_limit_state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateLocation {
    /// `database` on PostgreSQL (several nodes), `memory` on SQLite (one).
    #[default]
    Auto,
    /// In this process: fastest, but each node keeps its own.
    Memory,
    /// In the store, shared by every node on the database.
    Database,
}

impl StateLocation {
    /// Whether the state goes to the database of back end `backend`.
    pub fn in_database(self, backend: robert_store::Backend) -> bool {
        match self {
            Self::Auto => backend == robert_store::Backend::Postgres,
            Self::Memory => false,
            Self::Database => true,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Maximum body size of every endpoint except `/report`, in bytes.
    pub max_body_bytes: usize,
    /// Maximum body size of `/report`, in bytes (a HELLO takes about 110
    /// bytes of JSON).
    pub report_max_body_bytes: usize,
    /// Maximum contacts in one report.
    pub max_contacts_per_report: usize,
    /// Maximum HELLOs in one contact.
    pub max_hellos_per_contact: usize,
    /// Maximum HELLOs in one report, all contacts together.
    pub max_hellos_per_report: usize,
    /// Maximum reports processed at once (they are large; others wait). A
    /// report takes its slot once its body is read.
    pub max_concurrent_reports: usize,
    /// A request body may take this many seconds before it must keep up
    /// `body_min_bytes_per_sec`, and may never pause longer than this.
    pub body_read_grace_secs: u64,
    /// Minimum upload rate of a request body after the grace (each byte
    /// received extends the deadline by `1 / rate` s): a body that falls
    /// behind is answered 408.
    pub body_min_bytes_per_sec: u64,
    /// Submission codes one client (an IPv4 address or an IPv6 /64, see
    /// `server.trusted_proxies`) may try per minute at `/report`, as a
    /// burst or sustained; beyond it 429 with `Retry-After`. 0: unlimited.
    pub code_checks_per_minute: u32,
    /// Where the per-client rate-limit budgets (`code_checks_per_minute`)
    /// live: `memory` (per process: each node of several counts its own),
    /// `database` (one atomic upsert per request: a budget is shared by
    /// every node on the database), or `auto` (default: `database` on
    /// PostgreSQL, `memory` on SQLite).
    pub rate_limit_state: StateLocation,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            report_max_body_bytes: 128 * 1024 * 1024,
            max_contacts_per_report: 100_000,
            max_hellos_per_contact: 200_000,
            max_hellos_per_report: 1_000_000,
            max_concurrent_reports: 2,
            body_read_grace_secs: 20,
            body_min_bytes_per_sec: 500,
            code_checks_per_minute: 20,
            rate_limit_state: StateLocation::Auto,
        }
    }
}

impl Config {
    /// Loads the configuration: defaults, then `file` (if any), then the
    /// `ROBERT_*__*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Invalid(format!(
                    "environment variable {name}: empty key segment"
                )));
            }
            insert(&mut table, &path, env_value(&value))
                .map_err(|e| ConfigError::Invalid(format!("environment variable {name}: {e}")))?;
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.sync_batch()?;
        config.validate()?;
        Ok(config)
    }

    /// Makes `[batch]` use the protocol's service start and country code.
    /// Setting them in `[batch]` to other values than `[protocol]` is an error.
    fn sync_batch(&mut self) -> Result<(), ConfigError> {
        let defaults = BatchConfig::default();
        if self.batch.service_start != defaults.service_start
            && self.batch.service_start != self.protocol.service_start
        {
            return Err(ConfigError::Invalid(
                "batch.service_start differs from protocol.service_start: set it in [protocol] only".into(),
            ));
        }
        if self.batch.country_code != defaults.country_code
            && self.batch.country_code != self.protocol.country_code
        {
            return Err(ConfigError::Invalid(
                "batch.country_code differs from protocol.country_code: set it in [protocol] only"
                    .into(),
            ));
        }
        self.batch.service_start = self.protocol.service_start;
        self.batch.country_code = self.protocol.country_code;
        self.batch.forwarded_countries = self.federation.forwarded_countries();
        Ok(())
    }

    /// Loads from a file and the process environment.
    pub fn from_env_and_file(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load(file, std::env::vars())
    }

    /// Checks cross-field constraints.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.protocol.bundle_days == 0 {
            return bad("protocol.bundle_days must be at least 1");
        }
        if self.protocol.bundle_days > 60 {
            return bad("protocol.bundle_days must be at most 60");
        }
        if self.captcha.length == 0 || self.captcha.length > 12 {
            return bad("captcha.length must be between 1 and 12");
        }
        if self.captcha.max_outstanding_per_client == 0
            || self.captcha.max_outstanding_per_client >= self.captcha.max_outstanding
        {
            return bad(
                "captcha.max_outstanding_per_client must be at least 1 and below captcha.max_outstanding \
                 (one client must not be able to take every captcha)",
            );
        }
        if self.limits.max_body_bytes < 1024 {
            return bad("limits.max_body_bytes must be at least 1024");
        }
        if self.limits.report_max_body_bytes < self.limits.max_body_bytes {
            return bad("limits.report_max_body_bytes must be at least limits.max_body_bytes");
        }
        if self.limits.max_concurrent_reports == 0 {
            return bad("limits.max_concurrent_reports must be at least 1");
        }
        if self.limits.body_read_grace_secs == 0 || self.limits.body_min_bytes_per_sec == 0 {
            return bad(
                "limits.body_read_grace_secs and limits.body_min_bytes_per_sec must be at least 1",
            );
        }
        if self.server.header_read_timeout_secs == 0 {
            return bad("server.header_read_timeout_secs must be at least 1");
        }
        match self.server.internal_address() {
            Some("") => {
                return bad(&format!(
                    "server.internal_bind is empty: give the address of the internal endpoints \
                     (KPIs, metrics), e.g. \"{DEFAULT_INTERNAL_BIND}\", or \"{INTERNAL_ON_PUBLIC}\" \
                     to serve them on server.bind"
                ));
            }
            Some(a) if a == self.server.bind.trim() && !a.ends_with(":0") => {
                return bad(&format!(
                    "server.internal_bind is server.bind ({a}): use \"{INTERNAL_ON_PUBLIC}\" to \
                     serve the internal endpoints on the public listener, or another address"
                ));
            }
            _ => {}
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections must be at least 1");
        }
        if self.push.max_in_flight == 0 {
            return bad("push.max_in_flight must be at least 1");
        }
        if self.keys.argon2_memory_kib < 8 || self.keys.argon2_iterations == 0 {
            return bad("keys.argon2_memory_kib must be ≥ 8 and keys.argon2_iterations ≥ 1");
        }
        if self.keys.store == KeyStoreKind::Pkcs11
            && (self.keys.pkcs11.module.as_os_str().is_empty()
                || self.keys.pkcs11.token_label.is_empty())
        {
            return bad(
                "keys.store = \"pkcs11\" needs keys.pkcs11.module and keys.pkcs11.token_label",
            );
        }
        if let Err(e) = self.batch.settings() {
            return Err(ConfigError::Invalid(e.to_string()));
        }
        if let Err(e) = self.federation.validate(self.protocol.country_code) {
            return Err(ConfigError::Invalid(e));
        }
        self.privacy.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

/// Reads an environment value as a TOML scalar or array when it parses as
/// one, else as a string.
fn env_value(raw: &str) -> toml::Value {
    let t = raw.trim();
    if let Ok(i) = t.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if t.bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && let Ok(f) = t.parse::<f64>()
    {
        return toml::Value::Float(f);
    }
    match t {
        "true" => return toml::Value::Boolean(true),
        "false" => return toml::Value::Boolean(false),
        _ => {}
    }
    if t.starts_with('[')
        && let Ok(mut tbl) = toml::from_str::<toml::Table>(&format!("v = {t}"))
        && let Some(v) = tbl.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_owned())
}

fn insert(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("{p} is not a section")),
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
