//! Service configuration (TOML), with defaults that match the reference
//! where it had one. See the crate README for the full reference.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::pepper::{Pepper, PepperError, Peppers};

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is invalid.
    #[error("invalid configuration")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// A pepper is missing or unusable.
    #[error(transparent)]
    Pepper(#[from] PepperError),
    /// A secret (pepper, passphrase) could not be loaded; never includes the secret.
    #[error("cannot load secret {name}: {reason}")]
    Secret {
        /// Which secret.
        name: String,
        /// Why.
        reason: String,
    },
}

/// The whole configuration of the submission-code service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Database URL: `sqlite://path?mode=rwc` (default) or `postgres://…`.
    pub database_url: String,
    /// Maximum database connections.
    pub max_connections: u32,
    /// Public listener (verify, generate, portal) for `robert codes serve`.
    pub listen: SocketAddr,
    /// Internal listener (KPIs, metrics, health).
    pub internal_listen: SocketAddr,
    /// Secret peppers for code hashes; the first is current. At least one.
    pub peppers: Vec<PepperConfig>,
    /// Code validity settings.
    pub codes: CodesConfig,
    /// JWT report tokens.
    pub jwt: JwtConfig,
    /// Verify and generate API settings.
    pub api: ApiConfig,
    /// Laboratory lots.
    pub lots: LotsConfig,
    /// QR codes and letters.
    pub qr: QrConfig,
    /// Doctor portal.
    pub portal: PortalConfig,
    /// Retention and purge.
    pub retention: RetentionConfig,
    /// Log output of `robert codes serve`.
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://robert-codes.db?mode=rwc".into(),
            max_connections: 8,
            listen: SocketAddr::from(([127, 0, 0, 1], 8087)),
            internal_listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            peppers: Vec::new(),
            codes: CodesConfig::default(),
            jwt: JwtConfig::default(),
            api: ApiConfig::default(),
            lots: LotsConfig::default(),
            qr: QrConfig::default(),
            portal: PortalConfig::default(),
            retention: RetentionConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// One pepper: an identifier and where its secret (base64, ≥ 32 bytes decoded) comes from.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PepperConfig {
    /// Identifier (for operators; never stored with codes).
    pub id: String,
    /// Read the base64 secret from this file.
    pub secret_file: Option<PathBuf>,
    /// Read the base64 secret from this environment variable.
    pub secret_env: Option<String>,
    /// The base64 secret inline (tests and development only).
    pub secret: Option<String>,
}

impl std::fmt::Debug for PepperConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PepperConfig")
            .field("id", &self.id)
            .field("secret_file", &self.secret_file)
            .field("secret_env", &self.secret_env)
            .finish_non_exhaustive()
    }
}

/// Code validity settings (reference names in brackets).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodesConfig {
    /// Short-code lifetime in minutes (reference: `generation.code.shortcode.validity` = 60).
    pub short_validity_minutes: u32,
    /// Long-code validity in days after day D (reference: `generation.code.longcode.validity` = 7).
    pub long_validity_days: u32,
    /// Test-code validity in days (reference: `generation.code.testcode.validity` = 15).
    pub test_validity_days: u32,
    /// Attempts to draw a unique short/test code (reference: `generation.code.maxattempts` = 10).
    pub max_attempts: u32,
}

impl Default for CodesConfig {
    fn default() -> Self {
        Self {
            short_validity_minutes: 60,
            long_validity_days: 7,
            test_validity_days: 15,
            max_attempts: 10,
        }
    }
}

/// JWT report-token settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Maximum age (from `iat`) in days (reference: `submission.jwt-code-lifetime` = 10d).
    pub lifetime_days: u32,
    /// If set, `iss` must equal this (the reference does not check it).
    pub required_issuer: Option<String>,
    /// `kid` → P-256 public key: base64 DER SubjectPublicKeyInfo, or PEM.
    pub keys: BTreeMap<String, String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            lifetime_days: 10,
            required_issuer: None,
            keys: BTreeMap::new(),
        }
    }
}

/// A trusted caller of `/api/v1/generate/*` (e.g. the doctors' gateway).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClientConfig {
    /// Name recorded in the audit log.
    pub name: String,
    /// Lower-case hex SHA-256 of the caller's API key (`robert codes api-key` prints both).
    pub key_sha256: String,
    /// Codes this caller may issue per Paris civil day.
    pub daily_quota: u64,
    /// Requests per minute (token bucket, burst = the same number).
    pub per_minute: u32,
}

/// Verify and generate API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Verify requests per second allowed per client address.
    pub verify_per_second: u32,
    /// Burst of verify requests per client address.
    pub verify_burst: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a proxy).
    pub trust_forwarded_for: bool,
    /// Client addresses exempt from the verify rate limit (e.g. the ROBERT backend).
    pub verify_unlimited_addresses: Vec<std::net::IpAddr>,
    /// Trusted callers of the generate endpoints. Empty: generation over the API is off.
    pub clients: Vec<ApiClientConfig>,
    /// Trusted-gateway mode for the generate endpoints: an authenticating
    /// gateway (Kong) in front of the service names the consumer in a
    /// header. Unset (the default): only API keys are accepted.
    pub gateway: Option<GatewayConfig>,
    /// `robert codes serve`: seconds a connection has to send a whole
    /// request head (and an idle keep-alive connection stays open).
    pub header_read_timeout_secs: u64,
    /// `robert codes serve`: most connections open at once, both listeners
    /// together (lowered to fit the open-file limit); at the cap the oldest
    /// idle connection is closed to make room.
    pub max_connections: usize,
    /// `robert codes serve`: seconds requests in progress get to finish
    /// after SIGTERM before every connection is closed.
    pub shutdown_grace_secs: u64,
}

/// `[api.gateway]`: who may assert a consumer, and that consumer's limits.
///
/// A request to `/api/v1/generate/*` is accepted without an API key only
/// when its **TCP peer** (never `X-Forwarded-For`) is one of `addresses` and
/// it carries a non-empty `consumer_header`; the gateway must authenticate
/// every request and set that header itself (Kong's key-auth and jwt
/// plugins set `X-Consumer-Username` and overwrite a client's copy).
/// Requests marked `X-Anonymous-Consumer: true` (Kong's anonymous
/// fallback) are refused. Anyone else still needs an API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The gateway's addresses as seen by this service (TCP peer).
    pub addresses: Vec<std::net::IpAddr>,
    /// Header naming the authenticated consumer.
    #[serde(default = "default_consumer_header")]
    pub consumer_header: String,
    /// Codes each consumer may issue per Paris civil day.
    #[serde(default = "default_gateway_daily_quota")]
    pub daily_quota: u64,
    /// Requests per minute per consumer (token bucket, burst = the same number).
    #[serde(default = "default_gateway_per_minute")]
    pub per_minute: u32,
}

fn default_consumer_header() -> String {
    "X-Consumer-Username".into()
}
fn default_gateway_daily_quota() -> u64 {
    10_000
}
fn default_gateway_per_minute() -> u32 {
    600
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            verify_per_second: 50,
            verify_burst: 100,
            trust_forwarded_for: false,
            verify_unlimited_addresses: Vec::new(),
            clients: Vec::new(),
            gateway: None,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            shutdown_grace_secs: 5,
        }
    }
}

/// From `start_date` on, produce `daily_volume` long codes per day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// First validity day this volume applies to (TOML date or `"YYYY-MM-DD"`).
    #[serde(deserialize_with = "de_date")]
    pub start_date: NaiveDate,
    /// Codes per validity day.
    pub daily_volume: u64,
}

/// SFTP upload of lots.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// User name.
    pub user: String,
    /// OpenSSH private key file (Ed25519 or ECDSA).
    pub key_file: PathBuf,
    /// Environment variable holding the key's passphrase, if it is encrypted.
    pub key_passphrase_env: Option<String>,
    /// The server's host public key, OpenSSH format (`ssh-ed25519 AAAA…`): pinned.
    pub host_key: String,
    /// Remote directory to upload into.
    #[serde(default = "default_remote_dir")]
    pub remote_dir: String,
    /// Connection and transfer timeout in seconds.
    #[serde(default = "default_sftp_timeout")]
    pub timeout_seconds: u64,
    /// Write each file as `<name>.part` and rename it when complete (the
    /// default), so the recipient never picks up a partial file. Set to
    /// `false` for drop folders that forbid rename: files are then written
    /// under their final name, as the reference did, digest last.
    #[serde(default = "default_true")]
    pub atomic_rename: bool,
}

impl std::fmt::Debug for SftpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("key_file", &self.key_file)
            .field("remote_dir", &self.remote_dir)
            .field("atomic_rename", &self.atomic_rename)
            .finish_non_exhaustive()
    }
}

/// Accepts a TOML local date (`2026-01-01`) or a string (`"2026-01-01"`).
fn de_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Toml(dt) => dt.to_string(),
        Raw::Text(s) => s,
    };
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| serde::de::Error::custom(format!("expected a date YYYY-MM-DD, got {text:?}")))
}

fn default_ssh_port() -> u16 {
    22
}
fn default_remote_dir() -> String {
    ".".into()
}
fn default_sftp_timeout() -> u64 {
    60
}
fn default_true() -> bool {
    true
}

/// Laboratory lots of long codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LotsConfig {
    /// Run the daily job inside `robert codes serve`.
    pub scheduled: bool,
    /// Time of day (UTC, `HH:MM`) of the daily job (reference: cron `0 0 2 * * *` UTC).
    pub run_at_utc: String,
    /// Daily volumes by start date (reference: `submission.code.server.cron.scheduling`).
    pub schedule: Vec<ScheduleEntry>,
    /// Days covered by a run, today included (reference: 11).
    pub days_ahead: u32,
    /// Largest CSV (codes per day per lot) (reference: `maxbatchsize` = 40 000).
    pub max_batch_size: u64,
    /// Where archives and digests are written.
    pub output_dir: PathBuf,
    /// URL in the `code_pour_qr` column: `%s` placeholders (code, then type),
    /// or `{code}` / `{type}` (reference: `submission.code.server.cron.url`).
    pub qr_url_template: String,
    /// Upload each lot by SFTP; codes are committed only after the upload.
    pub sftp: Option<SftpConfig>,
}

impl Default for LotsConfig {
    fn default() -> Self {
        Self {
            scheduled: false,
            run_at_utc: "02:00".into(),
            schedule: Vec::new(),
            days_ahead: 11,
            max_batch_size: 40_000,
            output_dir: PathBuf::from("lots"),
            qr_url_template: "https://app.stopcovid.gouv.fr?code=%s&type=%s".into(),
            sftp: None,
        }
    }
}

/// QR codes and letters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QrConfig {
    /// Deep link encoded in QR codes and letters; `{code}` is replaced.
    pub url_template: String,
}

impl Default for QrConfig {
    fn default() -> Self {
        Self {
            url_template: "https://bonjour.tousanticovid.gouv.fr/app/code/{code}".into(),
        }
    }
}

/// Doctor portal.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalConfig {
    /// Serve the portal under `/portal`.
    pub enabled: bool,
    /// Mark cookies `Secure` (keep true in production, behind TLS).
    pub cookie_secure: bool,
    /// Session lifetime in minutes.
    pub session_minutes: u32,
    /// Default codes per doctor per Paris civil day.
    pub daily_quota: u64,
    /// Failed logins before the account is locked.
    pub lockout_threshold: u32,
    /// First lock duration in seconds; doubles with each further failure.
    pub lockout_base_seconds: u64,
    /// Longest lock in seconds.
    pub lockout_max_seconds: u64,
    /// Login attempts per minute per client address.
    pub login_per_minute: u32,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cookie_secure: true,
            session_minutes: 480,
            daily_quota: 100,
            lockout_threshold: 5,
            lockout_base_seconds: 60,
            lockout_max_seconds: 3600,
            login_per_minute: 20,
        }
    }
}

pub use robert_http::log::{LogConfig, LogFormat};

/// Retention.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Delete codes this many days after their expiry (reference: 2).
    pub purge_after_expiry_days: u32,
    /// Keep audit entries this many days.
    pub audit_days: u32,
    /// Keep daily KPI counters this many days.
    pub kpi_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            purge_after_expiry_days: 2,
            audit_days: 90,
            kpi_days: 400,
        }
    }
}

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.codes.short_validity_minutes == 0 || self.codes.max_attempts == 0 {
            return bad("codes.short_validity_minutes and codes.max_attempts must be positive");
        }
        if self.lots.max_batch_size == 0 || self.lots.days_ahead == 0 {
            return bad("lots.max_batch_size and lots.days_ahead must be positive");
        }
        if parse_hh_mm(&self.lots.run_at_utc).is_none() {
            return bad("lots.run_at_utc must be HH:MM");
        }
        if !self.qr.url_template.contains("{code}") {
            return bad("qr.url_template must contain {code}");
        }
        let t = &self.lots.qr_url_template;
        if !t.contains("{code}") && !t.contains("%s") {
            return bad("lots.qr_url_template must contain {code} or %s");
        }
        if self.api.verify_per_second == 0 || self.api.verify_burst == 0 {
            return bad("api.verify_per_second and api.verify_burst must be positive");
        }
        if self.portal.login_per_minute == 0 || self.portal.lockout_threshold == 0 {
            return bad("portal.login_per_minute and portal.lockout_threshold must be positive");
        }
        for c in &self.api.clients {
            if c.key_sha256.len() != 64 || hex::decode(&c.key_sha256).is_err() {
                return bad("api.clients[].key_sha256 must be 64 hex characters");
            }
            if c.per_minute == 0 {
                return bad("api.clients[].per_minute must be positive");
            }
        }
        if let Some(g) = &self.api.gateway {
            if g.addresses.is_empty() {
                return bad(
                    "api.gateway.addresses must list the gateway's addresses (requests from anywhere else need an API key)",
                );
            }
            if axum::http::HeaderName::from_bytes(g.consumer_header.as_bytes()).is_err() {
                return bad("api.gateway.consumer_header is not a valid header name");
            }
            if g.per_minute == 0 {
                return bad("api.gateway.per_minute must be positive");
            }
        }
        Ok(())
    }

    /// Loads the peppers' secrets.
    pub fn load_peppers(&self) -> Result<Peppers, ConfigError> {
        let mut list = Vec::with_capacity(self.peppers.len());
        for p in &self.peppers {
            let encoded = load_secret(
                &format!("pepper {}", p.id),
                p.secret.as_deref(),
                p.secret_env.as_deref(),
                p.secret_file.as_deref(),
            )?;
            let key = decode_b64_secret(&format!("pepper {}", p.id), encoded.trim())?;
            list.push(Pepper::new(p.id.clone(), key)?);
        }
        Ok(Peppers::new(list)?)
    }
}

/// Parses `HH:MM`.
pub fn parse_hh_mm(s: &str) -> Option<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").ok()
}

/// Loads a secret from exactly one of: inline value, environment variable, file.
pub fn load_secret(
    name: &str,
    inline: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Zeroizing<String>, ConfigError> {
    let err = |reason: &str| ConfigError::Secret {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    match (inline, env, file) {
        (Some(v), None, None) => Ok(Zeroizing::new(v.to_owned())),
        (None, Some(var), None) => std::env::var(var)
            .map(Zeroizing::new)
            .map_err(|_| err(&format!("environment variable {var} is not set"))),
        (None, None, Some(path)) => std::fs::read_to_string(path)
            .map(Zeroizing::new)
            .map_err(|e| err(&format!("cannot read {}: {}", path.display(), e.kind()))),
        _ => Err(err("give exactly one of secret, secret_env, secret_file")),
    }
}

fn decode_b64_secret(name: &str, encoded: &str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(Zeroizing::new)
        .map_err(|_| ConfigError::Secret {
            name: name.to_owned(),
            reason: "not valid base64".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.codes.short_validity_minutes, 60);
        assert_eq!(c.codes.long_validity_days, 7);
        assert_eq!(c.codes.test_validity_days, 15);
        assert_eq!(c.jwt.lifetime_days, 10);
        assert_eq!(c.lots.max_batch_size, 40_000);
        assert_eq!(c.lots.days_ahead, 11);
        assert_eq!(
            c.lots.qr_url_template,
            "https://app.stopcovid.gouv.fr?code=%s&type=%s"
        );
        assert_eq!(c.retention.purge_after_expiry_days, 2);
    }

    #[test]
    fn example_configuration_parses() {
        let c = Config::from_toml(include_str!("../codes.example.toml")).unwrap();
        assert_eq!(c.peppers.len(), 2);
        assert_eq!(c.lots.schedule.len(), 4);
        let sftp = c.lots.sftp.as_ref().unwrap();
        assert!(russh::keys::PublicKey::from_openssh(&sftp.host_key).is_ok());
        assert_eq!(
            crate::jwt::JwtVerifier::new(&c.jwt.keys, 10, None)
                .unwrap()
                .key_count(),
            1
        );
    }

    #[test]
    fn schedule_dates_as_toml_dates_or_strings() {
        let c = Config::from_toml(
            "[[lots.schedule]]\nstart_date = 2021-09-01\ndaily_volume = 300000\n\
             [[lots.schedule]]\nstart_date = \"2022-01-03\"\ndaily_volume = 500000\n",
        )
        .unwrap();
        assert_eq!(c.lots.schedule[0].start_date.to_string(), "2021-09-01");
        assert_eq!(c.lots.schedule[1].daily_volume, 500_000);
        assert!(
            Config::from_toml("[[lots.schedule]]\nstart_date = \"x\"\ndaily_volume = 1\n").is_err()
        );
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(Config::from_toml("nope = 1").is_err());
        assert!(Config::from_toml("[lots]\nrun_at_utc = \"25:00\"").is_err());
        assert!(Config::from_toml("[qr]\nurl_template = \"https://x/\"").is_err());
    }

    #[test]
    fn loads_inline_pepper_and_rejects_short_ones() {
        let c = Config::from_toml(
            "[[peppers]]\nid = \"p1\"\nsecret = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
        )
        .unwrap();
        assert_eq!(c.load_peppers().unwrap().current_id(), "p1");
        let c = Config::from_toml("[[peppers]]\nid = \"p1\"\nsecret = \"AAAA\"\n").unwrap();
        assert!(c.load_peppers().is_err());
        let c = Config::from_toml("").unwrap();
        assert!(matches!(
            c.load_peppers(),
            Err(ConfigError::Pepper(PepperError::Missing))
        ));
    }
}
