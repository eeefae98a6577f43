//! The service core: verify, issue, doctors and logins, KPIs, purge. HTTP
//! handlers ([`crate::api`], [`crate::portal`]), the lot job ([`crate::lots`])
//! and the CLI all go through [`CodesService`].

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::TryRng as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::code::{self, CodeKind, RngFailure, Validity};
use crate::config::{ApiClientConfig, Config, ConfigError};
use crate::jwt::{JwtKeyError, JwtVerifier};
use crate::metrics::Metrics;
use crate::pepper::{Peppers, domain_hash};
use crate::ratelimit::KeyedLimiter;
use crate::store::{
    AuditEntry, CodeStore, Doctor, KPI_KIND_JWT, KpiRow, NewCode, NewDoctor, PurgeCutoffs,
    PurgeReport, SqlStore, StoreError,
};

pub use verify::{CLAIM_HOLD_SECS, VerifyOutcome};

/// Errors building the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// JWT key problem.
    #[error(transparent)]
    JwtKey(#[from] JwtKeyError),
    /// Storage problem.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors issuing a code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The caller's daily quota is used up.
    #[error("daily quota exceeded")]
    QuotaExceeded,
    /// No unused code was found after the configured attempts.
    #[error("no unique code could be generated")]
    GenerationFailed,
    /// Only short and test codes are issued on demand.
    #[error("this kind of code is not issued on demand")]
    UnsupportedKind,
    /// The OS random generator failed.
    #[error(transparent)]
    Rng(#[from] RngFailure),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors in doctor administration and login.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoctorError {
    /// User name not allowed.
    #[error("user names are 1 to 64 characters among letters, digits and . _ @ -")]
    BadUsername,
    /// Password too short.
    #[error("passwords need at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    /// Hashing failed.
    #[error("password hashing failed")]
    Hash,
    /// The OS random generator failed.
    #[error(transparent)]
    Rng(#[from] RngFailure),
    /// Storage failed (including a duplicate user name).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors in KPI queries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KpiError {
    /// `fromDate` after `toDate` (reference code `INCONSISTENT_BOUNDS`).
    #[error("INCONSISTENT_BOUNDS")]
    InconsistentBounds,
    /// More than [`MAX_KPI_DAYS`] days (reference code `PERIOD_TOO_LARGE`).
    #[error("PERIOD_TOO_LARGE")]
    PeriodTooLarge,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Minimum doctor password length.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Largest KPI period in days (reference: 100).
pub const MAX_KPI_DAYS: i64 = 100;

/// Who asks for a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// A trusted API caller, by configured name.
    Api(String),
    /// A consumer authenticated by the trusted gateway (`[api.gateway]`),
    /// by the name the gateway gave.
    Gateway(String),
    /// A doctor on the portal.
    Portal {
        /// Doctor id.
        id: i64,
        /// User name (for the audit log).
        username: String,
        /// The doctor's daily quota.
        daily_quota: u64,
    },
    /// The operator's command line.
    Cli,
}

impl Channel {
    fn actor(&self) -> String {
        match self {
            Self::Api(name) => format!("api:{name}"),
            Self::Gateway(name) => format!("gateway:{name}"),
            Self::Portal { username, .. } => format!("doctor:{username}"),
            Self::Cli => "cli".into(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Api(_) => "api",
            Self::Gateway(_) => "gateway",
            Self::Portal { .. } => "portal",
            Self::Cli => "cli",
        }
    }
}

/// A freshly issued code. The clear code lives only here (zeroized on drop).
pub struct IssuedCode {
    /// The code.
    pub code: Zeroizing<String>,
    /// Its kind.
    pub kind: CodeKind,
    /// Validity window.
    pub validity: Validity,
    /// Generation instant.
    pub generated_at: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("kind", &self.kind)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

/// One KPI day in the reference's JSON shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KpiDay {
    /// The UTC date.
    pub date: NaiveDate,
    /// Long codes generated.
    pub nb_long_codes_generated: u64,
    /// Long codes used.
    pub nb_long_codes_used: u64,
    /// Long codes expired unused.
    pub nb_long_expired_codes: u64,
    /// Short codes generated.
    pub nb_short_codes_generated: u64,
    /// Short codes used.
    pub nb_short_codes_used: u64,
    /// Short codes expired unused.
    pub nb_short_expired_codes: u64,
    /// Test codes generated.
    pub nb_test_codes_generated: u64,
    /// Test codes used.
    pub nb_test_codes_used: u64,
    /// Test codes expired unused.
    pub nb_test_expired_codes: u64,
    /// JWT report tokens used.
    pub nb_jwt_used: u64,
}

/// Result of a login attempt.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: the new session's cookie token and CSRF token.
    Success {
        /// Session token for the cookie (secret).
        token: Zeroizing<String>,
        /// The doctor.
        doctor: Box<Doctor>,
    },
    /// Wrong user name or password, or disabled account.
    Failed,
    /// The account is locked after repeated failures (whatever the
    /// password), until this instant.
    Locked {
        /// End of the lock.
        until: DateTime<Utc>,
    },
    /// Too many attempts from this address.
    RateLimited,
}

/// A configured API client with its key hash.
#[derive(Debug)]
pub(crate) struct ApiClient {
    pub(crate) config: ApiClientConfig,
    key_hash: [u8; 32],
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn CodeStore>,
    pub(crate) peppers: Peppers,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) jwt: JwtVerifier,
    pub(crate) config: Config,
    pub(crate) metrics: Metrics,
    pub(crate) verify_limiter: KeyedLimiter,
    pub(crate) login_limiter: KeyedLimiter,
    pub(crate) api_limiters: Vec<KeyedLimiter>,
    pub(crate) api_clients: Vec<ApiClient>,
    /// Per-consumer limiter of the trusted-gateway mode.
    pub(crate) gateway_limiter: KeyedLimiter,
    dummy_password_hash: String,
}

/// The submission-code service. Cheap to clone.
#[derive(Clone)]
pub struct CodesService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for CodesService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodesService")
            .field("store", &self.inner.store)
            .field("peppers", &self.inner.peppers)
            .finish_non_exhaustive()
    }
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The Paris civil day number of `t` (quota days).
fn paris_day_number(t: DateTime<Utc>) -> i64 {
    let d = code::paris_date(t);
    (d - NaiveDate::default()).num_days()
}

fn utc_day_number(d: NaiveDate) -> i64 {
    (d - NaiveDate::default()).num_days()
}

/// Random URL-safe token of 32 bytes.
pub(crate) fn random_token() -> Result<Zeroizing<String>, RngFailure> {
    let mut b = Zeroizing::new([0_u8; 32]);
    rand::rngs::SysRng
        .try_fill_bytes(b.as_mut())
        .map_err(|_| RngFailure)?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b.as_ref()),
    ))
}

/// Hashes a password with Argon2id (default parameters: 19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, DoctorError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| DoctorError::Hash)
}

fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

impl CodesService {
    /// Opens the configured store (`database_url`, `max_connections`,
    /// migrated) and builds the service on `clock`: the one assembly of a
    /// code service from its configuration, used by `robert codes`,
    /// `robert serve --codes-config` and the simulator. Tests that make
    /// their own store call [`CodesService::new`].
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Self, SetupError> {
        let store = SqlStore::open(&config.database_url, config.max_connections).await?;
        Self::new(config, Arc::new(store), clock)
    }

    /// Builds the service from a loaded configuration and an opened store.
    pub fn new(
        config: Config,
        store: Arc<dyn CodeStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SetupError> {
        config.validate()?;
        let peppers = config.load_peppers()?;
        let jwt = JwtVerifier::new(
            &config.jwt.keys,
            config.jwt.lifetime_days,
            config.jwt.required_issuer.clone(),
        )?;
        let mut api_clients = Vec::new();
        let mut api_limiters = Vec::new();
        for c in &config.api.clients {
            let mut key_hash = [0_u8; 32];
            hex::decode_to_slice(&c.key_sha256, &mut key_hash)
                .map_err(|_| ConfigError::Invalid("api.clients[].key_sha256".into()))?;
            api_limiters.push(KeyedLimiter::per_minute("api-client", c.per_minute));
            api_clients.push(ApiClient {
                config: c.clone(),
                key_hash,
            });
        }
        let config_gateway_per_minute = config.api.gateway.as_ref().map_or(1, |g| g.per_minute);
        // Compared against when the user name is unknown, so that a login
        // takes the same time whether or not the account exists.
        let dummy_password_hash = hash_password("not a real password, never matches")
            .map_err(|_| ConfigError::Invalid("argon2 unavailable".into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                verify_limiter: KeyedLimiter::per_second(
                    "verify",
                    config.api.verify_per_second,
                    config.api.verify_burst,
                ),
                login_limiter: KeyedLimiter::per_minute("login", config.portal.login_per_minute),
                store,
                peppers,
                clock,
                jwt,
                config,
                metrics: Metrics::new(),
                api_limiters,
                api_clients,
                gateway_limiter: KeyedLimiter::per_minute("gateway", config_gateway_per_minute),
                dummy_password_hash,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CodeStore> {
        &self.inner.store
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Whether the service can answer: its database responds.
    pub async fn ready(&self) -> bool {
        self.inner.store.ping().await.is_ok()
    }

    /// Current instant from the injected clock.
    pub fn now(&self) -> DateTime<Utc> {
        crate::clock::utc_now(&*self.inner.clock)
    }

    /// Issues a short or test code for `channel`, enforcing its daily quota.
    pub async fn issue(&self, kind: CodeKind, channel: &Channel) -> Result<IssuedCode, IssueError> {
        if kind == CodeKind::Long {
            return Err(IssueError::UnsupportedKind);
        }
        let now = self.now();
        let quota = match channel {
            Channel::Api(name) => self
                .inner
                .api_clients
                .iter()
                .find(|c| &c.config.name == name)
                .map(|c| c.config.daily_quota),
            Channel::Gateway(_) => self
                .inner
                .config
                .api
                .gateway
                .as_ref()
                .map(|g| g.daily_quota),
            Channel::Portal { daily_quota, .. } => Some(*daily_quota),
            Channel::Cli => None,
        };
        if let Some(limit) = quota {
            let subject = domain_hash("robert-codes/v1/quota", channel.actor().as_bytes());
            if !self
                .inner
                .store
                .consume_quota(&subject, paris_day_number(now), limit)
                .await?
            {
                self.inner.metrics.inc(
                    "robert_codes_quota_exceeded_total",
                    &[("channel", channel.label())],
                );
                self.audit(&channel.actor(), "quota_exceeded", kind.label())
                    .await;
                return Err(IssueError::QuotaExceeded);
            }
        }
        let cfg = &self.inner.config.codes;
        let validity = match kind {
            CodeKind::Short => code::short_validity(now, cfg.short_validity_minutes),
            _ => code::test_validity(now, cfg.test_validity_days),
        };
        let mut rng = rand::rngs::SysRng;
        for _ in 0..cfg.max_attempts {
            let candidate = code::generate(&mut rng, kind)?;
            let hashes = self.inner.peppers.hash_candidates(kind, &candidate);
            // Unique among live codes under older peppers too.
            if hashes.len() > 1
                && self
                    .inner
                    .store
                    .live_code_exists(&hashes[1..], kind, unix(now))
                    .await?
            {
                continue;
            }
            let row = NewCode {
                hash: hashes[0],
                kind,
                available_from: unix(validity.from),
                valid_until: unix(validity.until),
                generated_at: unix(now),
            };
            if self.inner.store.insert_code(&row).await? {
                self.inner.metrics.inc(
                    "robert_codes_issued_total",
                    &[("code_type", kind.label()), ("channel", channel.label())],
                );
                self.audit(&channel.actor(), "issue_code", kind.label())
                    .await;
                return Ok(IssuedCode {
                    code: candidate,
                    kind,
                    validity,
                    generated_at: now,
                });
            }
        }
        Err(IssueError::GenerationFailed)
    }

    /// Codes `channel` may still issue today (portal display), if it has a quota.
    pub async fn quota_left(&self, channel: &Channel, limit: u64) -> Result<u64, StoreError> {
        let subject = domain_hash("robert-codes/v1/quota", channel.actor().as_bytes());
        let used = self
            .inner
            .store
            .quota_used(&subject, paris_day_number(self.now()))
            .await?;
        Ok(limit.saturating_sub(used))
    }

    /// When daily quotas start again: the next midnight in Paris.
    pub fn quota_reset_at(&self) -> DateTime<Utc> {
        let today = code::paris_date(self.now());
        today
            .succ_opt()
            .map_or_else(|| self.now(), code::paris_midnight)
    }

    /// Appends to the audit log; failures are logged, not returned.
    pub async fn audit(&self, actor: &str, action: &str, detail: &str) {
        let entry = AuditEntry {
            at: unix(self.now()),
            actor: actor.to_owned(),
            action: action.to_owned(),
            detail: detail.to_owned(),
        };
        if let Err(e) = self.inner.store.audit(&entry).await {
            tracing::error!(error = %e, action, "audit log write failed");
        }
    }

    /// The API client whose key is `presented`, compared in constant time.
    pub(crate) fn api_client(&self, presented: &str) -> Option<usize> {
        use sha2::Digest as _;
        let h: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (i, c) in self.inner.api_clients.iter().enumerate() {
            if bool::from(c.key_hash.ct_eq(&h)) {
                found = Some(i);
            }
        }
        found
    }

    /// Creates a doctor account.
    pub async fn add_doctor(
        &self,
        username: &str,
        display_name: &str,
        password: &str,
        daily_quota: Option<u64>,
    ) -> Result<i64, DoctorError> {
        if !valid_username(username) {
            return Err(DoctorError::BadUsername);
        }
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(DoctorError::WeakPassword);
        }
        let pw = Zeroizing::new(password.to_owned());
        let password_hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|_| DoctorError::Hash)??;
        let id = self
            .inner
            .store
            .create_doctor(&NewDoctor {
                username: username.to_owned(),
                display_name: display_name.to_owned(),
                password_hash,
                daily_quota,
                created_at: unix(self.now()),
            })
            .await?;
        self.audit("cli", "doctor_added", username).await;
        Ok(id)
    }

    /// Disables a doctor account and ends its sessions; `false` if unknown.
    pub async fn disable_doctor(&self, username: &str) -> Result<bool, DoctorError> {
        let done = self.inner.store.set_doctor_enabled(username, false).await?;
        if done {
            self.audit("cli", "doctor_disabled", username).await;
        }
        Ok(done)
    }

    /// Checks a doctor's credentials with lockout and back-off.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &str,
    ) -> Result<LoginOutcome, DoctorError> {
        let m = &self.inner.metrics;
        if !self.inner.login_limiter.check(client) {
            m.inc(
                "robert_codes_portal_logins_total",
                &[("outcome", "rate_limited")],
            );
            return Ok(LoginOutcome::RateLimited);
        }
        let now = self.now();
        let doctor = if valid_username(username) {
            self.inner.store.doctor_by_username(username).await?
        } else {
            None
        };
        let doctor = doctor.filter(|d| d.enabled);
        let locked = doctor
            .as_ref()
            .and_then(|d| d.locked_until)
            .is_some_and(|until| until > unix(now));
        let phc = match &doctor {
            Some(d) if !locked => d.password_hash.clone(),
            _ => self.inner.dummy_password_hash.clone(),
        };
        let pw = Zeroizing::new(password.to_owned());
        let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &phc))
            .await
            .unwrap_or(false);
        let Some(doctor) = doctor else {
            m.inc(
                "robert_codes_portal_logins_total",
                &[("outcome", "failure")],
            );
            self.audit("unknown", "login_failed", "").await;
            return Ok(LoginOutcome::Failed);
        };
        let actor = format!("doctor:{}", doctor.username);
        if locked {
            m.inc("robert_codes_portal_logins_total", &[("outcome", "locked")]);
            self.audit(&actor, "login_refused_locked", "").await;
            let until = doctor
                .locked_until
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .unwrap_or(now);
            return Ok(LoginOutcome::Locked { until });
        }
        if !ok {
            let p = &self.inner.config.portal;
            let failures = self.inner.store.increment_failed_logins(doctor.id).await?;
            if failures >= p.lockout_threshold {
                let steps = (failures - p.lockout_threshold).min(20);
                let secs = p
                    .lockout_base_seconds
                    .saturating_mul(1_u64 << steps)
                    .min(p.lockout_max_seconds);
                let until = unix(now).saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
                self.inner
                    .store
                    .set_locked_until(doctor.id, Some(until))
                    .await?;
                self.audit(
                    &actor,
                    "account_locked",
                    &format!("{secs} s after {failures} failures"),
                )
                .await;
                m.inc(
                    "robert_codes_portal_logins_total",
                    &[("outcome", "failure")],
                );
                self.audit(&actor, "login_failed", "").await;
                return Ok(LoginOutcome::Locked {
                    until: DateTime::from_timestamp(until, 0).unwrap_or(now),
                });
            }
            m.inc(
                "robert_codes_portal_logins_total",
                &[("outcome", "failure")],
            );
            self.audit(&actor, "login_failed", "").await;
            return Ok(LoginOutcome::Failed);
        }
        self.inner.store.reset_failed_logins(doctor.id).await?;
        let token = random_token()?;
        let csrf = random_token()?;
        let minutes = i64::from(self.inner.config.portal.session_minutes);
        self.inner
            .store
            .create_session(
                &domain_hash("robert-codes/v1/session", token.as_bytes()),
                doctor.id,
                &csrf,
                unix(now),
                unix(now + Duration::minutes(minutes)),
            )
            .await?;
        m.inc(
            "robert_codes_portal_logins_total",
            &[("outcome", "success")],
        );
        self.audit(&actor, "login", "").await;
        Ok(LoginOutcome::Success {
            token,
            doctor: Box::new(doctor),
        })
    }

    /// The doctor and CSRF token of a live session.
    pub async fn session(&self, token: &str) -> Result<Option<(Doctor, String)>, StoreError> {
        self.inner
            .store
            .session(
                &domain_hash("robert-codes/v1/session", token.as_bytes()),
                unix(self.now()),
            )
            .await
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<(), StoreError> {
        self.inner
            .store
            .delete_session(&domain_hash("robert-codes/v1/session", token.as_bytes()))
            .await
    }

    /// KPIs for each UTC day of `from..=to` (at most [`MAX_KPI_DAYS`] days).
    pub async fn kpi(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<KpiDay>, KpiError> {
        if from > to {
            return Err(KpiError::InconsistentBounds);
        }
        if (to - from).num_days() >= MAX_KPI_DAYS {
            return Err(KpiError::PeriodTooLarge);
        }
        let rows: Vec<KpiRow> = self
            .inner
            .store
            .kpi(utc_day_number(from), utc_day_number(to))
            .await?;
        let mut out = Vec::new();
        let mut d = from;
        while d <= to {
            let n = utc_day_number(d);
            let mut day = KpiDay {
                date: d,
                ..KpiDay::default()
            };
            for r in rows.iter().filter(|r| r.day == n) {
                match (CodeKind::from_db(r.kind), r.kind) {
                    (Some(CodeKind::Long), _) => {
                        day.nb_long_codes_generated = r.issued;
                        day.nb_long_codes_used = r.used;
                        day.nb_long_expired_codes = r.expired;
                    }
                    (Some(CodeKind::Short), _) => {
                        day.nb_short_codes_generated = r.issued;
                        day.nb_short_codes_used = r.used;
                        day.nb_short_expired_codes = r.expired;
                    }
                    (Some(CodeKind::Test), _) => {
                        day.nb_test_codes_generated = r.issued;
                        day.nb_test_codes_used = r.used;
                        day.nb_test_expired_codes = r.expired;
                    }
                    (None, KPI_KIND_JWT) => day.nb_jwt_used = r.used,
                    (None, _) => {}
                }
            }
            out.push(day);
            match d.succ_opt() {
                Some(next) => d = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// Deletes codes two days (configurable) after expiry, spent JWT ids,
    /// expired sessions and old audit entries.
    pub async fn purge(&self) -> Result<PurgeReport, StoreError> {
        let now = self.now();
        let r = &self.inner.config.retention;
        let cutoffs = PurgeCutoffs {
            codes_before: unix(now - Duration::days(i64::from(r.purge_after_expiry_days))),
            jti_before: unix(now - Duration::days(2)),
            sessions_before: unix(now),
            audit_before: unix(now - Duration::days(i64::from(r.audit_days))),
            kpi_before_day: utc_day_number(now.date_naive()) - i64::from(r.kpi_days),
        };
        let report = self.inner.store.purge(&cutoffs).await?;
        let m = &self.inner.metrics;
        m.add(
            "robert_codes_purged_total",
            &[("table", "codes_expired_unused")],
            report.expired_unused,
        );
        m.add(
            "robert_codes_purged_total",
            &[("table", "codes_used")],
            report.used,
        );
        m.add(
            "robert_codes_purged_total",
            &[("table", "jwt_used")],
            report.jti,
        );
        tracing::info!(
            expired_unused = report.expired_unused,
            used = report.used,
            jti = report.jti,
            sessions = report.sessions,
            audit = report.audit,
            "purge done"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
mod verify;
