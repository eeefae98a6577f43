//! The API's one error type and its mapping to HTTP.
//!
//! | variant | status | body `message` |
//! |---|---|---|
//! | [`ApiError::InvalidData`] | 400 | `"Invalid data"` (the reference's bean-validation body), plus `detail` |
//! | [`ApiError::Malformed`] | 400 | `"Malformed request"`, plus `detail` (bad JSON syntax, trailing data) |
//! | [`ApiError::BadRequest`] | 400 | the reason (clock skew, authentication, rate limit) |
//! | [`ApiError::Unauthorized`] | 401 | the reason (`"Unrecognized token of length: N"` at `/report`) |
//! | [`ApiError::NotFound`] | 404 | the reason |
//! | [`ApiError::MethodNotAllowed`] | 405 | `"Request method 'X' not supported"` (as the reference) |
//! | [`ApiError::Gone`] | 410 | the reason |
//! | [`ApiError::PayloadTooLarge`] | 413 | the limit |
//! | [`ApiError::UnsupportedMediaType`] | 415 | what is expected |
//! | [`ApiError::Timeout`], [`ApiError::BodyTooSlow`] | 408 | the limit |
//! | [`ApiError::UnknownIdentity`] | 430 | "register again" (the reference's non-standard status) |
//! | [`ApiError::TooManyRequests`] | 429, `Retry-After` | the reason (per-client captcha quota, code checks at `/report`) |
//! | [`ApiError::Unavailable`] | 503 | the reason (no K_S for today, captcha capacity) |
//! | [`ApiError::RetryLater`] | 503, `Retry-After` | the reason (a report with this code still in progress; the database unreachable) |
//! | [`ApiError::Internal`] | 500 | `"An error occurred"`; the cause is logged, never sent |
//!
//! Every body is JSON: `{"message": "...", "detail": "..."?}`. Messages
//! never contain keys, tokens, codes or MACs.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The non-standard status meaning "unknown identity or key: re-register".
pub const STATUS_430: u16 = 430;

/// An API error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A field is missing, of the wrong type, or out of range.
    #[error("Invalid data: {0}")]
    InvalidData(String),
    /// The body is not well-formed JSON.
    #[error("Malformed request: {0}")]
    Malformed(String),
    /// A well-formed request was rejected.
    #[error("{0}")]
    BadRequest(String),
    /// Captcha or token rejected.
    #[error("{0}")]
    Unauthorized(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Wrong method on an existing path.
    #[error("Request method '{0}' not supported")]
    MethodNotAllowed(String),
    /// The resource existed but is used up.
    #[error("{0}")]
    Gone(String),
    /// Body over the limit (bytes).
    #[error("Request body too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    /// Not `application/json`.
    #[error("Unsupported content type: expected application/json")]
    UnsupportedMediaType,
    /// Unknown identity or no server key for the epoch: HTTP 430.
    #[error("Unknown identity or expired key: register again")]
    UnknownIdentity,
    /// 408: the request took longer than `server.request_timeout_secs`.
    #[error("Request timed out after {0} s")]
    Timeout(u64),
    /// 408: the request body came in below `limits.body_min_bytes_per_sec`
    /// (bytes per second).
    #[error("Request body too slow (below {0} bytes/s)")]
    BodyTooSlow(u64),
    /// A per-client limit: retry after `retry_after_secs`.
    #[error("{message}")]
    TooManyRequests {
        /// What was limited.
        message: String,
        /// Seconds before a retry can succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// Temporarily unable to serve.
    #[error("{0}")]
    Unavailable(String),
    /// Temporarily unable to serve: retry after `retry_after_secs`.
    #[error("{message}")]
    RetryLater {
        /// Why.
        message: String,
        /// Seconds before a retry (`Retry-After`).
        retry_after_secs: u64,
    },
    /// Our fault; details are logged.
    #[error("An error occurred")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidData(_) | Self::Malformed(_) | Self::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Gone(_) => StatusCode::GONE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnknownIdentity => {
                StatusCode::from_u16(STATUS_430).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Timeout(_) | Self::BodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::RetryLater { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A shorthand for [`ApiError::InvalidData`].
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::InvalidData(detail.into())
    }
}

impl From<robert_store::StoreError> for ApiError {
    /// A database that cannot serve for now (connection lost, failover in
    /// progress: [`robert_store::StoreError::is_unavailable`]) is 503 with
    /// `Retry-After`, as the shared state's failures are; anything else is
    /// an internal error.
    fn from(e: robert_store::StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable: 503");
            return Self::RetryLater {
                message: "Database unavailable: retry later".into(),
                retry_after_secs: robert_http::db::UNAVAILABLE_RETRY_SECS,
            };
        }
        Self::Internal(format!("store: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, detail): (String, Option<&str>) = match &self {
            Self::InvalidData(d) => ("Invalid data".into(), Some(d)),
            Self::Malformed(d) => ("Malformed request".into(), Some(d)),
            Self::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                ("An error occurred".into(), None)
            }
            other => (other.to_string(), None),
        };
        let mut resp = (
            status,
            Json(Body {
                message: &message,
                detail,
            }),
        )
            .into_response();
        if let Self::TooManyRequests {
            retry_after_secs, ..
        }
        | Self::RetryLater {
            retry_after_secs, ..
        } = &self
        {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after_secs),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(ApiError::UnknownIdentity.status().as_u16(), 430);
        assert_eq!(ApiError::invalid("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::UnsupportedMediaType.status().as_u16(), 415);
        assert_eq!(ApiError::PayloadTooLarge(1).status().as_u16(), 413);
        assert_eq!(
            ApiError::MethodNotAllowed("GET".into()).to_string(),
            "Request method 'GET' not supported"
        );
    }

    #[test]
    fn an_unreachable_database_is_503_with_retry_after() {
        let lost = robert_store::StoreError::Closed;
        let resp = ApiError::from(lost).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[axum::http::header::RETRY_AFTER], "5");
        let other = ApiError::from(robert_store::StoreError::Corrupt("x"));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
