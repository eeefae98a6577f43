//! Captchas for `/register` (server-api.md §3.2–§3.4).
//!
//! Three modes ([`crate::config::CaptchaMode`]):
//! * `builtin`: [`builtin::BuiltinCaptcha`], PNG image challenges served by
//!   this server (audio is not offered: `type: AUDIO` gets a 400);
//! * `external`: [`external::ExternalCaptcha`], a captcha service speaking
//!   the reference's protocol;
//! * `accept-any`: development only; every answer passes (a warning is
//!   logged at every start). Creation and images still work, so clients run
//!   their normal flow.

pub mod builtin;
pub mod external;
pub mod font;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{CaptchaConfig, CaptchaMode};

/// Why a captcha operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptchaError {
    /// Unknown or expired challenge.
    #[error("captcha not found or expired")]
    NotFound,
    /// Too many outstanding challenges.
    #[error("too many outstanding captchas, retry later")]
    Busy,
    /// The image could not be rendered.
    #[error("captcha rendering failed")]
    Render,
    /// This provider offers no audio challenges.
    #[error("audio captchas are not available with the built-in provider")]
    AudioUnsupported,
    /// The external service failed or refused; the status to answer with.
    #[error("captcha service error (HTTP {0})")]
    Upstream(u16),
}

/// Challenge kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptchaKind {
    /// A PNG image.
    Image,
    /// A WAV recording.
    Audio,
}

/// A challenge's media.
#[derive(Clone, Debug)]
pub struct Media {
    /// HTTP status to answer with (200 normally; upstream's otherwise).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The bytes.
    pub body: Bytes,
}

/// The configured provider.
#[derive(Debug)]
pub enum Captcha {
    /// Built-in challenges.
    Builtin(builtin::BuiltinCaptcha),
    /// An external service.
    External(external::ExternalCaptcha),
    /// Every answer accepted (development only).
    AcceptAny,
}

impl Captcha {
    /// Builds the provider of a configuration.
    pub fn from_config(cfg: &CaptchaConfig) -> Result<Self, crate::http_client::ClientBuildError> {
        Ok(match cfg.mode {
            CaptchaMode::Builtin => Self::Builtin(builtin::BuiltinCaptcha::new(
                cfg.ttl_secs,
                cfg.max_outstanding,
                cfg.length,
            )),
            CaptchaMode::External => Self::External(external::ExternalCaptcha::new(&cfg.external)?),
            CaptchaMode::AcceptAny => Self::AcceptAny,
        })
    }

    /// The mode.
    pub fn mode(&self) -> CaptchaMode {
        match self {
            Self::Builtin(_) => CaptchaMode::Builtin,
            Self::External(_) => CaptchaMode::External,
            Self::AcceptAny => CaptchaMode::AcceptAny,
        }
    }

    /// Creates a challenge; returns its id.
    pub async fn create(
        &self,
        kind: CaptchaKind,
        type_str: &str,
        locale: &str,
        now_unix: i64,
    ) -> Result<String, CaptchaError> {
        match self {
            Self::Builtin(b) => {
                if kind == CaptchaKind::Audio {
                    return Err(CaptchaError::AudioUnsupported);
                }
                b.create(now_unix)
            }
            Self::External(e) => e.create(type_str, locale).await,
            Self::AcceptAny => {
                use rand::Rng as _;
                let mut id = [0u8; 16];
                rand::rng().fill_bytes(&mut id);
                Ok(hex::encode(id))
            }
        }
    }

    /// The image or audio of a challenge.
    pub async fn media(
        &self,
        id: &str,
        kind: CaptchaKind,
        now_unix: i64,
    ) -> Result<Media, CaptchaError> {
        match (self, kind) {
            (Self::Builtin(b), CaptchaKind::Image) => Ok(Media {
                status: 200,
                content_type: "image/png".into(),
                body: Bytes::from(Arc::unwrap_or_clone(b.image(id, now_unix)?)),
            }),
            (Self::Builtin(_) | Self::AcceptAny, CaptchaKind::Audio) => Err(CaptchaError::NotFound),
            (Self::AcceptAny, CaptchaKind::Image) => Ok(Media {
                status: 200,
                content_type: "image/png".into(),
                body: Bytes::from(builtin::render_png(b"??????")?),
            }),
            (Self::External(e), kind) => e.media(id, kind).await,
        }
    }

    /// Checks an answer (`captcha`) for a challenge (`captchaId`).
    pub async fn verify(&self, id: &str, answer: &str, now_unix: i64) -> bool {
        match self {
            Self::Builtin(b) => b.check(id, answer, now_unix),
            Self::External(e) => e.check(id, answer).await,
            Self::AcceptAny => true,
        }
    }
}
