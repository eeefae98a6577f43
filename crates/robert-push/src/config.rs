//! `push.toml`: the push service's configuration (docs/push.md lists every
//! key). Every key has a default except the APNs identity (team id, key id,
//! key file, topic), which a real deployment must set.

use std::path::PathBuf;

use serde::Deserialize;

use crate::schedule::{Window, WindowError};

/// Why a configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse or has unknown keys.
    #[error("push configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The window is not valid.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// Another value is out of range.
    #[error("push configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the token API and `/metrics` (the reference's port 9096).
    pub listen: String,
    /// `sqlite://path?mode=rwc` (default, embedded) or `postgres://…`.
    pub database_url: String,
    /// Database connections in the pool.
    pub max_connections: u32,
    /// The daily schedule.
    pub schedule: ScheduleConfig,
    /// The APNs provider.
    pub apns: ApnsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9096".into(),
            database_url: "sqlite://push.db?mode=rwc".into(),
            max_connections: 8,
            schedule: ScheduleConfig::default(),
            apns: ApnsConfig::default(),
        }
    }
}

/// `[schedule]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// First local hour of the daily window (inclusive), 0–23.
    pub window_start_hour: u8,
    /// Last local hour of the daily window (exclusive), 0–23; smaller than
    /// the start wraps past midnight.
    pub window_end_hour: u8,
    /// Seconds between two scans for due tokens (the reference's 30 s).
    pub interval_secs: u64,
    /// Tokens claimed per database round.
    pub batch_size: u32,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            window_start_hour: 8,
            window_end_hour: 20,
            interval_secs: 30,
            batch_size: 5000,
        }
    }
}

impl ScheduleConfig {
    /// The window.
    pub fn window(&self) -> Result<Window, WindowError> {
        Window::new(self.window_start_hour, self.window_end_hour)
    }
}

/// `[apns]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApnsConfig {
    /// APNs servers tried in order: a token that the first calls
    /// `BadDeviceToken`/`DeviceTokenNotForTopic` is tried on the next (the
    /// reference's production → sandbox fallback for TestFlight builds).
    pub urls: Vec<String>,
    /// The Apple developer team id (the JWT's `iss`).
    pub team_id: String,
    /// The key id of the .p8 key (the JWT header's `kid`).
    pub key_id: String,
    /// The .p8 file (PKCS#8 PEM, ES256 / P-256) downloaded from Apple.
    pub key_file: PathBuf,
    /// `apns-topic`: the app's bundle id.
    pub topic: String,
    /// An extra trusted root certificate (PEM), for the mock APNs only.
    pub ca_file: Option<PathBuf>,
    /// Age at which the provider token is replaced, seconds. Apple refuses
    /// updates more often than every 20 minutes and tokens older than 60.
    pub token_refresh_secs: i64,
    /// Notifications sent per second at most (all servers together).
    pub max_per_second: u32,
    /// Requests awaiting an answer at most.
    pub max_in_flight: usize,
    /// Retries of one notification after 429, 5xx or a transport error.
    pub max_retries: u32,
    /// First retry delay, milliseconds; doubled on each retry (plus jitter).
    pub retry_base_ms: u64,
    /// Timeout of one request, milliseconds.
    pub timeout_ms: u64,
    /// `apns-expiration`: now + this many seconds (the reference's one day).
    pub expiration_secs: i64,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        Self {
            urls: vec![
                "https://api.push.apple.com".into(),
                "https://api.sandbox.push.apple.com".into(),
            ],
            team_id: String::new(),
            key_id: String::new(),
            key_file: PathBuf::from("/srv/token.p8"),
            topic: String::new(),
            ca_file: None,
            token_refresh_secs: 40 * 60,
            max_per_second: 1000,
            max_in_flight: 1000,
            max_retries: 3,
            retry_base_ms: 200,
            timeout_ms: 10_000,
            expiration_secs: 86_400,
        }
    }
}

impl Config {
    /// Parses TOML and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let c: Self = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    /// Reads and validates a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks ranges and required keys.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        self.schedule.window()?;
        if self.schedule.interval_secs == 0 || self.schedule.batch_size == 0 {
            return bad("schedule.interval_secs and schedule.batch_size must be at least 1");
        }
        let a = &self.apns;
        if a.urls.is_empty() {
            return bad("apns.urls must name at least one server");
        }
        if a.team_id.trim().is_empty() || a.key_id.trim().is_empty() || a.topic.trim().is_empty() {
            return bad("apns.team_id, apns.key_id and apns.topic are required");
        }
        if !(20 * 60..60 * 60).contains(&a.token_refresh_secs) {
            return bad(
                "apns.token_refresh_secs must be between 1200 and 3599 (Apple: at most one new token per 20 min, none older than 60 min)",
            );
        }
        if a.max_per_second == 0 || a.max_in_flight == 0 || self.max_connections == 0 {
            return bad(
                "apns.max_per_second, apns.max_in_flight and max_connections must be at least 1",
            );
        }
        if a.expiration_secs < 0 {
            return bad("apns.expiration_secs must not be negative");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[apns]
team_id = "TEAM123456"
key_id = "KEY1234567"
topic = "fr.gouv.stopcovid.ios"
"#;

    #[test]
    fn defaults_and_validation() {
        let c = Config::from_toml(MIN).unwrap();
        assert_eq!(c.schedule.window().unwrap(), Window::default());
        assert_eq!(c.apns.urls.len(), 2);
        assert!(Config::from_toml("").is_err(), "APNs identity required");
        assert!(Config::from_toml(&format!("{MIN}\ntoken_refresh_secs = 600")).is_err());
        assert!(Config::from_toml(&format!("{MIN}\ntoken_refresh_secs = 3600")).is_err());
        assert!(Config::from_toml(&format!("{MIN}\nbogus = 1")).is_err());
        let wrap = format!("[schedule]\nwindow_start_hour = 20\nwindow_end_hour = 6\n{MIN}");
        assert_eq!(
            Config::from_toml(&wrap)
                .unwrap()
                .schedule
                .window()
                .unwrap()
                .len_secs(),
            36000
        );
        let same = format!("[schedule]\nwindow_start_hour = 8\nwindow_end_hour = 8\n{MIN}");
        assert!(Config::from_toml(&same).is_err());
    }
}
