//! Captchas for `/register` (server-api.md §3.2–§3.4).
//!
//! Three modes ([`crate::config::CaptchaMode`]):
//! * `builtin`: [`builtin::BuiltinCaptcha`], challenges served by this
//!   server: PNG images (`type: IMAGE`) and spoken digits in French or
//!   English (`type: AUDIO`, [`audio`]);
//! * `external`: [`external::ExternalCaptcha`], a captcha service speaking
//!   the reference's protocol;
//! * `accept-any`: development only; every answer passes (a warning is
//!   logged at every start). Creation, images and audio still work, so
//!   clients run their normal flow.

pub mod audio;
pub mod builtin;
pub mod external;
pub mod font;
pub mod shared;

use std::sync::Arc;

use bytes::Bytes;

use crate::client::ClientKey;
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
    /// This client already holds its quota of outstanding challenges.
    #[error(
        "too many outstanding captchas from this address: answer one of them or retry in {retry_after_secs} s"
    )]
    ClientQuota {
        /// Seconds until the client's oldest challenge expires.
        retry_after_secs: u64,
    },
    /// The image could not be rendered.
    #[error("captcha rendering failed")]
    Render,
    /// The audio could not be rendered.
    #[error("captcha audio rendering failed: {0}")]
    Audio(#[from] audio::AudioError),
    /// The media asked for is not the challenge's: the image of an audio
    /// challenge or the audio of an image one.
    #[error("this captcha is an {challenge} challenge")]
    WrongKind {
        /// The challenge's kind.
        challenge: CaptchaKind,
    },
    /// The external service failed or refused; the status to answer with.
    #[error("captcha service error (HTTP {0})")]
    Upstream(u16),
    /// The database holding the challenges failed: retry later (503).
    #[error("captchas are unavailable, retry in {retry_after_secs} s")]
    Unavailable {
        /// Seconds before a retry (`Retry-After`).
        retry_after_secs: u64,
    },
}

/// Challenge kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptchaKind {
    /// A PNG image.
    Image,
    /// A WAV recording.
    Audio,
}

impl std::fmt::Display for CaptchaKind {
    /// The request's `type`: `IMAGE` or `AUDIO`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Image => "IMAGE",
            Self::Audio => "AUDIO",
        })
    }
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
    /// Built-in challenges, kept in this process.
    Builtin(builtin::BuiltinCaptcha),
    /// Built-in challenges, kept in the database (several nodes).
    Shared(shared::SharedCaptcha),
    /// An external service.
    External(external::ExternalCaptcha),
    /// Every answer accepted (development only).
    AcceptAny,
}

impl Captcha {
    /// Builds the provider of a configuration. The built-in and
    /// `accept-any` providers parse the embedded audio recordings now, and
    /// log an error if one is unusable (audio requests then fail with 500;
    /// images still work). With `shared` (a store and the keys derived from
    /// the KEK), the built-in provider keeps its challenges in the store.
    pub fn from_config(
        cfg: &CaptchaConfig,
        shared: Option<(Arc<dyn robert_store::SharedState>, Arc<shared::CaptchaKeys>)>,
    ) -> Result<Self, crate::http_client::ClientBuildError> {
        if cfg.mode != CaptchaMode::External
            && let Err(e) = audio::validate_assets()
        {
            tracing::error!(error = %e, "built-in audio captchas unavailable");
        }
        let limits = builtin::BuiltinLimits {
            ttl_secs: cfg.ttl_secs,
            max_outstanding: cfg.max_outstanding,
            max_outstanding_per_client: cfg.max_outstanding_per_client,
            image_cache_entries: cfg.image_cache_entries,
            length: cfg.length,
        };
        Ok(match cfg.mode {
            CaptchaMode::Builtin => match shared {
                Some((store, keys)) => {
                    Self::Shared(shared::SharedCaptcha::new(store, keys, limits))
                }
                None => Self::Builtin(builtin::BuiltinCaptcha::new(limits)),
            },
            CaptchaMode::External => Self::External(external::ExternalCaptcha::new(&cfg.external)?),
            CaptchaMode::AcceptAny => Self::AcceptAny,
        })
    }

    /// The mode.
    pub fn mode(&self) -> CaptchaMode {
        match self {
            Self::Builtin(_) | Self::Shared(_) => CaptchaMode::Builtin,
            Self::External(_) => CaptchaMode::External,
            Self::AcceptAny => CaptchaMode::AcceptAny,
        }
    }

    /// Creates a challenge for `client`; returns its id. The built-in
    /// provider enforces its per-client quota; an external service applies
    /// its own limits.
    pub async fn create(
        &self,
        kind: CaptchaKind,
        type_str: &str,
        locale: &str,
        client: ClientKey,
        now_unix: i64,
    ) -> Result<String, CaptchaError> {
        match self {
            Self::Builtin(b) => b.create(kind, locale, client, now_unix),
            Self::Shared(b) => b.create(kind, locale, client, now_unix).await,
            Self::External(e) => e.create(type_str, locale).await,
            Self::AcceptAny => {
                use rand::Rng as _;
                let mut id = [0u8; 16];
                rand::rng().fill_bytes(&mut id);
                Ok(hex::encode(id))
            }
        }
    }

    /// The image or audio of a challenge. With `accept-any`, the image
    /// reads `??????` and the audio random digits in French.
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
            (Self::Builtin(b), CaptchaKind::Audio) => Ok(Media {
                status: 200,
                content_type: audio::CONTENT_TYPE.into(),
                body: Bytes::from(b.audio(id, now_unix)?),
            }),
            (Self::Shared(b), CaptchaKind::Image) => Ok(Media {
                status: 200,
                content_type: "image/png".into(),
                body: Bytes::from(Arc::unwrap_or_clone(b.image(id, now_unix).await?)),
            }),
            (Self::Shared(b), CaptchaKind::Audio) => Ok(Media {
                status: 200,
                content_type: audio::CONTENT_TYPE.into(),
                body: Bytes::from(b.audio(id, now_unix).await?),
            }),
            (Self::AcceptAny, CaptchaKind::Audio) => {
                use rand::RngExt as _;
                let mut rng = rand::rng();
                let digits: Vec<u8> = (0..6).map(|_| rng.random_range(b'0'..=b'9')).collect();
                Ok(Media {
                    status: 200,
                    content_type: audio::CONTENT_TYPE.into(),
                    body: Bytes::from(audio::render_wav(
                        &digits,
                        audio::AudioLocale::Fr,
                        &mut rng,
                    )?),
                })
            }
            (Self::AcceptAny, CaptchaKind::Image) => Ok(Media {
                status: 200,
                content_type: "image/png".into(),
                body: Bytes::from(builtin::render_png(b"??????")?),
            }),
            (Self::External(e), kind) => e.media(id, kind).await,
        }
    }

    /// Checks an answer (`captcha`) for a challenge (`captchaId`).
    /// [`CaptchaError::Unavailable`] when the challenges' database fails.
    pub async fn verify(
        &self,
        id: &str,
        answer: &str,
        now_unix: i64,
    ) -> Result<bool, CaptchaError> {
        Ok(match self {
            Self::Builtin(b) => b.check(id, answer, now_unix),
            Self::Shared(b) => b.check(id, answer, now_unix).await?,
            Self::External(e) => e.check(id, answer).await,
            Self::AcceptAny => true,
        })
    }

    /// Test hook: the answer of a built-in challenge (in memory or in the
    /// database), without consuming it; `None` for other providers.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub async fn peek_answer(&self, id: &str, now_unix: i64) -> Option<String> {
        match self {
            Self::Builtin(b) => b.peek_answer(id),
            Self::Shared(b) => b.peek_answer(id, now_unix).await,
            Self::External(_) | Self::AcceptAny => None,
        }
    }

    /// Outstanding built-in challenges, when cheap to know (in memory);
    /// `None` for other providers and for the shared one, whose count the
    /// maintenance task reads ([`crate::serve::spawn_shared_state_sweep`]).
    pub fn outstanding(&self) -> Option<u64> {
        match self {
            Self::Builtin(b) => Some(b.outstanding() as u64),
            Self::Shared(_) | Self::External(_) | Self::AcceptAny => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn media_of_each_kind() {
        let b = Captcha::Builtin(builtin::BuiltinCaptcha::new(builtin::BuiltinLimits {
            ttl_secs: 60,
            max_outstanding: 10,
            max_outstanding_per_client: 5,
            image_cache_entries: 10,
            length: 6,
        }));
        for (kind, content_type, magic) in [
            (CaptchaKind::Image, "image/png", &b"\x89PNG"[..]),
            (CaptchaKind::Audio, "audio/wav", &b"RIFF"[..]),
        ] {
            let id = b
                .create(kind, &kind.to_string(), "en", ClientKey::Unknown, 0)
                .await
                .unwrap();
            let m = b.media(&id, kind, 1).await.unwrap();
            assert_eq!((m.status, m.content_type.as_str()), (200, content_type));
            assert!(m.body.starts_with(magic));
            let other = match kind {
                CaptchaKind::Image => CaptchaKind::Audio,
                CaptchaKind::Audio => CaptchaKind::Image,
            };
            assert!(matches!(
                b.media(&id, other, 1).await,
                Err(CaptchaError::WrongKind { challenge }) if challenge == kind
            ));
        }
        // accept-any serves both kinds for any id.
        let any = Captcha::AcceptAny;
        let m = any.media("x", CaptchaKind::Audio, 0).await.unwrap();
        assert_eq!(m.content_type, "audio/wav");
        assert_eq!(&m.body[8..12], b"WAVE");
        assert!(any.verify("x", "whatever", 0).await.unwrap());
    }
}
