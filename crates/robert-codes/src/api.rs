//! HTTP API: `GET /api/v1/verify`, `POST /api/v1/claim{,/confirm,/release}`
//! (two-phase use, for ROBERT's `/report`), `GET /api/v1/generate/{short|test}`,
//! `GET /api/v1/openapi.json` (this API's OpenAPI 3 document) and the
//! internal `GET /internal/api/v1/kpi`, `GET /metrics`, `GET /health`.

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::code::CodeKind;
use crate::service::{Channel, CodesService, IssueError, KpiError};

/// API errors, each with its status; bodies never carry secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Bad parameters.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or unknown API key.
    #[error("unauthorized")]
    Unauthorized,
    /// Rate limit or quota.
    #[error("{0}")]
    TooManyRequests(&'static str),
    /// The database cannot serve for now (connection lost, failover in
    /// progress): 503 with `Retry-After`.
    #[error("database unavailable")]
    Unavailable(String),
    /// Our fault; details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A failure of the service: [`ApiError::Unavailable`] when a database
    /// error in its chain passes ([`robert_http::db::caused_by_unavailable`]),
    /// else [`ApiError::Internal`].
    fn failure(e: &(dyn std::error::Error + 'static)) -> Self {
        if robert_http::db::caused_by_unavailable(e) {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

#[derive(Serialize)]
struct MessageBody<'a> {
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.as_str()),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Self::TooManyRequests(m) => (StatusCode::TOO_MANY_REQUESTS, *m),
            Self::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable: 503");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(
                        header::RETRY_AFTER,
                        HeaderValue::from(robert_http::db::UNAVAILABLE_RETRY_SECS),
                    )],
                    Json(MessageBody {
                        message: "Database unavailable: retry later",
                    }),
                )
                    .into_response();
            }
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
        };
        (status, Json(MessageBody { message })).into_response()
    }
}

/// The client address used for rate limiting: the TCP peer, or the last
/// `X-Forwarded-For` entry when configured to trust a proxy.
pub(crate) fn client_address(
    service: &CodesService,
    headers: &HeaderMap,
    req_peer: Option<SocketAddr>,
) -> String {
    if service.config().api.trust_forwarded_for
        && let Some(v) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok())
        && let Some(last) = v.rsplit(',').next()
    {
        return last.trim().to_owned();
    }
    req_peer.map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string())
}

pub(crate) fn peer(req_ext: &axum::http::Extensions) -> Option<SocketAddr> {
    req_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

#[derive(Deserialize)]
struct VerifyParams {
    code: Option<String>,
}

#[derive(Serialize)]
struct VerifyBody {
    valid: bool,
}

async fn verify(
    State(service): State<CodesService>,
    query: Result<Query<VerifyParams>, QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let client = client_address(&service, req.headers(), peer(req.extensions()));
    check_verify_limit(&service, &client, "verify")?;
    let code = query.ok().and_then(|Query(p)| p.code).unwrap_or_default();
    let outcome = service
        .verify(&code)
        .await
        .map_err(|e| ApiError::failure(&e))?;
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(VerifyBody {
            valid: outcome.valid,
        }),
    )
        .into_response())
}

/// Body of the two-phase use endpoints (`/api/v1/claim`, `…/confirm`,
/// `…/release`).
#[derive(Deserialize)]
struct ClaimParams {
    code: String,
    /// The report's identity: 64 hex digits (a hash of the report).
    key: String,
}

impl ClaimParams {
    fn parse(
        body: Result<Json<Self>, axum::extract::rejection::JsonRejection>,
    ) -> Result<(String, zeroize::Zeroizing<[u8; 32]>), ApiError> {
        let Json(p) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(p.key.as_bytes(), &mut key[..])
            .map_err(|_| ApiError::BadRequest("key: expected 64 hex digits".into()))?;
        Ok((p.code, key))
    }
}

/// `POST /api/v1/claim`: verifies a code and holds it for one report
/// (`{"valid": bool}`); rate limited like `/api/v1/verify`.
async fn claim(
    State(service): State<CodesService>,
    headers: HeaderMap,
    ConnectInfoOpt(peer): ConnectInfoOpt,
    body: Result<Json<ClaimParams>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let client = client_address(&service, &headers, peer);
    check_verify_limit(&service, &client, "claim")?;
    let (code, key) = ClaimParams::parse(body)?;
    let outcome = service
        .claim(&code, &key)
        .await
        .map_err(|e| ApiError::failure(&e))?;
    Ok(no_store(Json(VerifyBody {
        valid: outcome.valid,
    })))
}

#[derive(Serialize)]
struct SettledBody {
    done: bool,
}

/// `POST /api/v1/claim/confirm`: the report is stored, the code is used
/// (`{"done": bool}`).
async fn claim_confirm(
    State(service): State<CodesService>,
    body: Result<Json<ClaimParams>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let (code, key) = ClaimParams::parse(body)?;
    let done = service
        .confirm(&code, &key)
        .await
        .map_err(|e| ApiError::failure(&e))?;
    Ok(no_store(Json(SettledBody { done })))
}

/// `POST /api/v1/claim/release`: the report could not be stored, the code
/// is usable again (`{"done": bool}`).
async fn claim_release(
    State(service): State<CodesService>,
    body: Result<Json<ClaimParams>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let (code, key) = ClaimParams::parse(body)?;
    let done = service
        .release(&code, &key)
        .await
        .map_err(|e| ApiError::failure(&e))?;
    Ok(no_store(Json(SettledBody { done })))
}

fn no_store(body: impl IntoResponse) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body,
    )
        .into_response()
}

/// The TCP peer, when the server was started with connection info.
struct ConnectInfoOpt(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ConnectInfoOpt {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(peer(&parts.extensions)))
    }
}

/// The per-address verify limit, shared by `/api/v1/verify` and
/// `/api/v1/claim` (both tell whether a code exists).
fn check_verify_limit(
    service: &CodesService,
    client: &str,
    endpoint: &'static str,
) -> Result<(), ApiError> {
    let exempt = client.parse::<std::net::IpAddr>().is_ok_and(|ip| {
        service
            .config()
            .api
            .verify_unlimited_addresses
            .contains(&ip)
    });
    if !exempt && !service.inner.verify_limiter.check(client) {
        service
            .metrics()
            .inc("robert_codes_rate_limited_total", &[("endpoint", endpoint)]);
        return Err(ApiError::TooManyRequests("Too many requests"));
    }
    Ok(())
}

/// The reference's generation response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateBody {
    code: String,
    valid_from: String,
    valid_until: String,
    date_generate: String,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    // `apikey` is the header of Kong's key-auth plugin, forwarded as is.
    for name in ["x-api-key", "apikey"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            return Some(v.trim());
        }
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The consumer named by the trusted gateway, when `[api.gateway]` is set,
/// the TCP peer is one of its addresses and the request carries the
/// consumer header (and is not Kong's anonymous consumer).
fn gateway_consumer(
    service: &CodesService,
    headers: &HeaderMap,
    tcp_peer: Option<SocketAddr>,
) -> Option<String> {
    let gw = service.config().api.gateway.as_ref()?;
    let peer = tcp_peer?.ip();
    // An IPv4 gateway reaching a dual-stack listener shows as ::ffff:a.b.c.d.
    let peer = match peer {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
        v4 => v4,
    };
    if !gw.addresses.contains(&peer) {
        return None;
    }
    if headers
        .get("x-anonymous-consumer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return None;
    }
    let name = headers
        .get(gw.consumer_header.as_str())?
        .to_str()
        .ok()?
        .trim();
    let printable = name.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    (!name.is_empty() && name.len() <= 128 && printable).then(|| name.to_owned())
}

async fn generate(
    State(service): State<CodesService>,
    Path(kind): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let kind = match kind.as_str() {
        "short" => CodeKind::Short,
        "test" => CodeKind::Test,
        _ => return Err(ApiError::BadRequest("Unsupported code type".into())),
    };
    let headers = req.headers();
    let channel = if let Some(index) = presented_key(headers).and_then(|k| service.api_client(k)) {
        let client = &service.inner.api_clients[index].config;
        if !service.inner.api_limiters[index].check(&client.name) {
            service.metrics().inc(
                "robert_codes_rate_limited_total",
                &[("endpoint", "generate")],
            );
            return Err(ApiError::TooManyRequests("Too many requests"));
        }
        Channel::Api(client.name.clone())
    } else if let Some(consumer) = gateway_consumer(&service, headers, peer(req.extensions())) {
        if !service.inner.gateway_limiter.check(&consumer) {
            service.metrics().inc(
                "robert_codes_rate_limited_total",
                &[("endpoint", "generate")],
            );
            return Err(ApiError::TooManyRequests("Too many requests"));
        }
        Channel::Gateway(consumer)
    } else {
        return Err(ApiError::Unauthorized);
    };
    let issued = match service.issue(kind, &channel).await {
        Ok(i) => i,
        Err(IssueError::QuotaExceeded) => {
            return Err(ApiError::TooManyRequests("Daily quota exceeded"));
        }
        Err(e) => return Err(ApiError::failure(&e)),
    };
    let body = GenerateBody {
        code: issued.code.to_string(),
        valid_from: iso(issued.validity.from),
        valid_until: iso(issued.validity.until),
        date_generate: iso(issued.generated_at),
    };
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KpiParams {
    from_date: Option<String>,
    to_date: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KpiErrorBody {
    code_exception: &'static str,
    message: &'static str,
}

async fn kpi(
    State(service): State<CodesService>,
    query: Result<Query<KpiParams>, QueryRejection>,
) -> Response {
    let bad = |code: &'static str, message: &'static str| {
        (
            StatusCode::BAD_REQUEST,
            Json(KpiErrorBody {
                code_exception: code,
                message,
            }),
        )
            .into_response()
    };
    let Ok(Query(p)) = query else {
        return bad("VALIDATION_FIELD_ERROR", "invalid query");
    };
    let parse = |s: Option<String>| s.and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok());
    let (Some(from), Some(to)) = (parse(p.from_date), parse(p.to_date)) else {
        return bad(
            "VALIDATION_FIELD_ERROR",
            "fromDate and toDate are required, as YYYY-MM-DD",
        );
    };
    match service.kpi(from, to).await {
        Ok(days) => Json(days).into_response(),
        Err(KpiError::InconsistentBounds) => bad("INCONSISTENT_BOUNDS", "fromDate is after toDate"),
        Err(KpiError::PeriodTooLarge) => bad("PERIOD_TOO_LARGE", "at most 100 days"),
        Err(e) => ApiError::failure(&e).into_response(),
    }
}

async fn metrics(State(service): State<CodesService>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        service.metrics().render(),
    )
        .into_response()
}

async fn health(State(service): State<CodesService>) -> Response {
    // A trivial query proves the database answers.
    match service.store().ping().await {
        Ok(_) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// The OpenAPI 3 document of this API, served at `/api/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_JSON,
    )
        .into_response()
}

/// Public API routes (verify, generate, and the OpenAPI document).
pub fn api_router(service: CodesService) -> Router {
    Router::new()
        .route("/api/v1/verify", get(verify))
        .route("/api/v1/claim", post(claim))
        .route("/api/v1/claim/confirm", post(claim_confirm))
        .route("/api/v1/claim/release", post(claim_release))
        .route("/api/v1/generate/{kind}", get(generate))
        .route("/api/v1/openapi.json", get(openapi))
        .with_state(service)
}

/// Internal routes: KPIs, metrics, health. Serve them on a private listener.
pub fn internal_router(service: CodesService) -> Router {
    Router::new()
        .route("/internal/api/v1/kpi", get(kpi))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(service)
}

/// Internal routes for a process that also serves another service (the
/// ROBERT server, whose `/metrics` and health paths are its own): the KPIs
/// at their usual path, metrics at `/codes/metrics`, health at `/codes/health`.
pub fn embedded_internal_router(service: CodesService) -> Router {
    Router::new()
        .route("/internal/api/v1/kpi", get(kpi))
        .route("/codes/metrics", get(metrics))
        .route("/codes/health", get(health))
        .with_state(service)
}
