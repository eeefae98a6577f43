//! Client of an external captcha service in the reference's protocol
//! (the "Orange captcha" API, server-api.md §3.2–§3.4, §6.7):
//!
//! | operation | request | success |
//! |---|---|---|
//! | create | `POST {private}/captcha` `{"type","locale"}` | 2xx `{"id": …}` |
//! | image / audio | `GET {public}/captcha/{id}.png` / `.wav` | 200 bytes |
//! | check | `POST {private}/captcha/{id}/checkAnswer` `{"answer": …}` | `{"result": "<success code>"}` |
//!
//! Upstream failures map as the reference maps them: creation → 400, media
//! → the upstream 4xx status or 404, check → "wrong" (401 at `/register`).

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::{CaptchaError, CaptchaKind, Media};
use crate::config::ExternalCaptchaConfig;
use crate::http_client::{self, ClientBuildError};

/// The external provider.
#[derive(Debug)]
pub struct ExternalCaptcha {
    client: reqwest::Client,
    private_base: String,
    public_base: String,
    success_code: String,
}

#[derive(Deserialize)]
struct Created {
    id: Option<String>,
    #[serde(rename = "captchaId")]
    captcha_id: Option<String>,
}

#[derive(Deserialize)]
struct Checked {
    result: Option<String>,
}

impl ExternalCaptcha {
    /// A client for the configured service.
    pub fn new(cfg: &ExternalCaptchaConfig) -> Result<Self, ClientBuildError> {
        Ok(Self {
            client: http_client::client(Duration::from_millis(cfg.timeout_ms))?,
            private_base: cfg.private_base_url.clone(),
            public_base: cfg.public_base_url.clone(),
            success_code: cfg.success_code.clone(),
        })
    }

    /// Creates a challenge upstream.
    pub async fn create(&self, type_str: &str, locale: &str) -> Result<String, CaptchaError> {
        let url = http_client::url_with_segments(&self.private_base, &["captcha"])
            .ok_or(CaptchaError::Upstream(400))?;
        let resp = self
            .client
            .post(url)
            .json(&serde_json::json!({"type": type_str, "locale": locale}))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "captcha service unreachable");
                CaptchaError::Upstream(400)
            })?;
        if !resp.status().is_success() {
            tracing::warn!(
                status = resp.status().as_u16(),
                "captcha service refused creation"
            );
            return Err(CaptchaError::Upstream(400));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|_| CaptchaError::Upstream(400))?;
        let created: Created =
            serde_json::from_slice(&body).map_err(|_| CaptchaError::Upstream(400))?;
        let id = created.id.or(created.captcha_id).unwrap_or_default();
        if id.is_empty() || id.len() > 256 {
            return Err(CaptchaError::Upstream(400));
        }
        Ok(id)
    }

    /// Fetches a challenge's image or audio.
    pub async fn media(&self, id: &str, kind: CaptchaKind) -> Result<Media, CaptchaError> {
        let (file, accept, content_type) = match kind {
            CaptchaKind::Image => (format!("{id}.png"), "image/png", "image/png"),
            CaptchaKind::Audio => (format!("{id}.wav"), "*/*", "audio/wav"),
        };
        let url = http_client::url_with_segments(&self.public_base, &["captcha", &file])
            .ok_or(CaptchaError::NotFound)?;
        let resp = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "captcha service unreachable");
                CaptchaError::NotFound
            })?;
        let status = resp.status().as_u16();
        if (400..500).contains(&status) {
            return Err(CaptchaError::Upstream(status));
        }
        if status != 200 {
            return Err(CaptchaError::NotFound);
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(content_type)
            .to_owned();
        let body: Bytes = resp.bytes().await.map_err(|_| CaptchaError::NotFound)?;
        Ok(Media {
            status,
            content_type,
            body,
        })
    }

    /// Checks an answer upstream; any failure counts as a wrong answer.
    pub async fn check(&self, id: &str, answer: &str) -> bool {
        let Some(url) =
            http_client::url_with_segments(&self.private_base, &["captcha", id, "checkAnswer"])
        else {
            return false;
        };
        let resp = match self
            .client
            .post(url)
            .json(&serde_json::json!({ "answer": answer }))
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "captcha service unreachable");
                return false;
            }
        };
        if !resp.status().is_success() {
            return false;
        }
        match resp
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Checked>(b.as_ref()).ok())
        {
            Some(Checked { result: Some(r) }) => r == self.success_code,
            _ => false,
        }
    }
}
