//! [`ApiJson`]: the JSON body extractor whose every rejection is an
//! [`ApiError`], so axum's plain-text rejections never reach a client.
//!
//! * no or another `Content-Type` → 415;
//! * body over the route's limit ([`axum::extract::DefaultBodyLimit`]) → 413;
//! * JSON syntax error or trailing data → 400 "Malformed request";
//! * wrong type, missing required field, out-of-range number → 400
//!   "Invalid data", the detail naming the field path
//!   (`contacts[3].ids[0].rssiCalibrated: …`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::client::ClientKey;
use crate::state::AppState;

/// A JSON body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

/// Whether a `Content-Type` value is JSON (`application/json`, optionally
/// with parameters, or any `application/*+json`).
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    ty.eq_ignore_ascii_case("application")
        && (sub.eq_ignore_ascii_case("json")
            || sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Parses JSON bytes into `T` with our error classification.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        // Drop serde_json's " at line L column C" suffix for data errors: the
        // path names the field better.
        let msg = match msg.find(" at line ") {
            Some(i) if inner.is_data() => msg[..i].to_owned(),
            _ => msg,
        };
        if inner.is_data() {
            if path == "." {
                ApiError::InvalidData(msg)
            } else {
                ApiError::InvalidData(format!("{path}: {msg}"))
            }
        } else {
            ApiError::Malformed(msg)
        }
    })?;
    de.end()
        .map_err(|_| ApiError::Malformed("trailing data after the JSON value".into()))?;
    Ok(value)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The raw body of a JSON request: checks the content type and reads the
/// body within the route's limit (413 beyond).
pub async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or_default();
        Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status().as_u16() == 413 {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::Malformed(format!("cannot read the request body: {rejection}"))
            }
        })
    }
}

/// The client of a request, for the per-client limits: the peer address, or
/// the forwarded one behind a trusted proxy (see [`ClientKey`]).
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientKey);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(Self(ClientKey::from_parts(
            peer,
            &parts.headers,
            &state.config.server.trusted_proxies,
        )))
    }
}

/// The body limit of a route, recorded as a request extension so the 413
/// message can name it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code, reason = "fields are only deserialized")]
    struct T {
        a: u8,
        b: Vec<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code, reason = "fields are only deserialized")]
    struct Inner {
        c: i16,
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.x+json",
        ] {
            assert!(is_json_content_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "json",
        ] {
            assert!(!is_json_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn classification_names_the_path() {
        let e = parse_json::<T>(br#"{"a":1,"b":[{"c":1},{"c":"x"}]}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidData(m) if m.starts_with("b[1].c: invalid type")),
            "{e:?}"
        );
        let e = parse_json::<T>(br#"{"a":300,"b":[]}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidData(m) if m.starts_with("a: invalid value")),
            "{e:?}"
        );
        let e = parse_json::<T>(br#"{"b":[]}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::InvalidData(m) if m.contains("missing field `a`")),
            "{e:?}"
        );
        let e = parse_json::<T>(br#"{"a":1,"b":[]"#).unwrap_err();
        assert!(matches!(e, ApiError::Malformed(_)));
        let e = parse_json::<T>(br#"{"a":1,"b":[]} x"#).unwrap_err();
        assert!(matches!(e, ApiError::Malformed(_)));
        assert!(parse_json::<T>(br#"{"a":1,"b":[{"c":-5}],"extra":true}"#).is_ok());
    }
}
