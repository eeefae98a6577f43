//! A phone's configuration: server, device model, and the tunables of the
//! app configuration (with TousAntiCovid's values as defaults).

use std::fmt;
use std::time::Duration;

use p256::PublicKey;
use robert_core::filter::{FilterConfig, FilterMode, ProximityFilter};

use crate::calibration::DeviceModel;
use crate::error::ClientError;
use crate::report::ReportSpans;
use crate::schedule::{NotificationRule, StatusScheduleParams};

/// The kind of captcha to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptchaKind {
    /// A picture (`IMAGE`), fetched from `/captcha/{id}/image`.
    Image,
    /// A recording (`AUDIO`), fetched from `/captcha/{id}/audio`.
    Audio,
}

impl CaptchaKind {
    pub(crate) fn wire(self) -> &'static str {
        match self {
            Self::Image => "IMAGE",
            Self::Audio => "AUDIO",
        }
    }

    pub(crate) fn resource(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Audio => "audio",
        }
    }
}

/// Retries of requests that failed on the network or with 502/503/504.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further retry.
    pub first_delay: Duration,
    /// Longest delay between attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// No retry (simulators, tests).
    pub fn none() -> Self {
        Self {
            attempts: 1,
            first_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The delay before retry number `retry` (1-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

impl Default for RetryPolicy {
    /// Three attempts, 1 s then 2 s apart.
    fn default() -> Self {
        Self {
            attempts: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Everything a [`crate::Phone`] needs to know that is not state.
///
/// Share one `Arc<PhoneConfig>` between the phones of a simulation.
#[derive(Clone)]
pub struct PhoneConfig {
    /// Base URL of the server, e.g. `https://api.example.fr` (the `/api/v6`
    /// prefix is added).
    pub server_url: String,
    /// The server's registration public key (P-256), embedded in the app.
    pub server_public_key: PublicKey,
    /// This phone's model, for the calibration table.
    pub device: DeviceModel,
    /// The on-device proximity filter (`ble.filterConfig`).
    pub filter: FilterConfig,
    /// The filter mode (`ble.filterMode`, RISKS in the app).
    pub filter_mode: FilterMode,
    /// Take `ble.filterMode` and `ble.filterConfig` from the server's
    /// `config` list when it carries them (as the apps do; default true).
    /// `filter` and `filter_mode` above are then the starting values.
    pub follow_server_filter: bool,
    /// Take the traffic-privacy settings (`privacy.padding`,
    /// `privacy.dummyReportsPerDay`, `privacy.dummyStatusPerDay`) from the
    /// server's `config` list (default true). Off, or with a server that
    /// announces none, the phone neither pads nor sends dummies.
    pub follow_server_privacy: bool,
    /// Status polling.
    pub status_schedule: StatusScheduleParams,
    /// Refill the tuples (status request) when fewer than this many epochs
    /// are left (96 = one day).
    pub tuple_low_water: usize,
    /// Do not send a status sooner than this after the previous attempt,
    /// even to refill tuples (the server refuses two within 2 epochs).
    pub min_status_gap_secs: u64,
    /// Local retention of received HELLOs, in days (14).
    pub retention_days: u64,
    /// The report window's spans.
    pub report_spans: ReportSpans,
    /// Largest tolerated difference between the phone's and the server's
    /// clocks (120 s).
    pub clock_tolerance_secs: u64,
    /// Received HELLOs whose Time16 is further than this from the local
    /// clock are dropped (180 s, the server's tolerance).
    pub hello_time_tolerance_secs: u32,
    /// Network retries.
    pub retry: RetryPolicy,
    /// Captcha kind and locale.
    pub captcha: CaptchaKind,
    /// Captcha locale (`fr`, `en`...).
    pub locale: String,
    /// When and how to notify a risk.
    pub notification: NotificationRule,
}

impl fmt::Debug for PhoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneConfig")
            .field("server_url", &self.server_url)
            .field("device", &self.device)
            .field("filter_mode", &self.filter_mode)
            .finish_non_exhaustive()
    }
}

impl PhoneConfig {
    /// A configuration with the app's defaults.
    pub fn new(server_url: &str, server_public_key: PublicKey, device: DeviceModel) -> Self {
        Self {
            server_url: server_url.trim_end_matches('/').to_owned(),
            server_public_key,
            device,
            filter: FilterConfig::app_2020(),
            filter_mode: FilterMode::Risks,
            follow_server_filter: true,
            follow_server_privacy: true,
            status_schedule: StatusScheduleParams::default(),
            tuple_low_water: 96,
            min_status_gap_secs: 1800,
            retention_days: 14,
            report_spans: ReportSpans::default(),
            clock_tolerance_secs: 120,
            hello_time_tolerance_secs: 180,
            retry: RetryPolicy::default(),
            captcha: CaptchaKind::Image,
            locale: "fr".to_owned(),
            notification: NotificationRule::default(),
        }
    }

    /// As [`PhoneConfig::new`], with the key as apps embed it (base64
    /// X.509 SubjectPublicKeyInfo).
    pub fn with_key_base64(
        server_url: &str,
        server_public_key_b64: &str,
        device: DeviceModel,
    ) -> Result<Self, ClientError> {
        let key = robert_core::registration::parse_public_key(server_public_key_b64.trim())
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Self::new(server_url, key, device))
    }

    /// Checks the configuration and builds the filter.
    pub(crate) fn proximity_filter(&self) -> Result<ProximityFilter, ClientError> {
        ProximityFilter::new(self.filter.clone()).map_err(|e| ClientError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_secs(1));
        assert_eq!(p.delay(2), Duration::from_secs(2));
        assert_eq!(p.delay(3), Duration::from_secs(4));
        assert_eq!(p.delay(40), Duration::from_secs(30));
        assert_eq!(RetryPolicy::none().delay(1), Duration::ZERO);
    }

    #[test]
    fn key_parsing() {
        let dev = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fAxfrLtG5tXyjomCOg9r1wNnr9len4m9sTflJUHDdkwubKyidTtFkVfNLrM91yuffdrpJZe9XOkof8P+zPGDg==";
        let c = PhoneConfig::with_key_base64("http://x/", dev, DeviceModel::android("A")).unwrap();
        assert_eq!(c.server_url, "http://x");
        assert!(
            PhoneConfig::with_key_base64("http://x", "AAAA", DeviceModel::android("A")).is_err()
        );
        assert!(!format!("{c:?}").contains("MFkw"));
    }
}
