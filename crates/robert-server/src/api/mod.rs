//! The HTTP API (server-api.md §3): routes, handlers and middleware.
//!
//! [`app`] builds the whole router from an [`AppState`]; serving it is the
//! caller's business ([`crate::serve`]), so tests drive it with
//! `tower::ServiceExt::oneshot`. [`public_routes`] and [`internal_routes`]
//! split it when the internal endpoints (KPIs, metrics) listen elsewhere.

pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
mod handlers;
pub mod privacy;
mod release;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use self::error::ApiError;
use self::extract::BodyLimit;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The OpenAPI 3 document served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// The public API: `/api/v6/*`, health, `/openapi.json`.
pub fn public_routes(state: &AppState) -> Router<AppState> {
    let limits = &state.config.limits;
    let small = limits.max_body_bytes;
    let report_limit = limits.report_max_body_bytes;
    let report = Router::new()
        .route(
            REPORT_PATH,
            post(handlers::report).layer(middleware::from_fn_with_state(
                state.clone(),
                privacy::report_layer,
            )),
        )
        .layer(middleware::from_fn(move |mut req: Request, next: Next| {
            req.extensions_mut().insert(BodyLimit(report_limit));
            next.run(req)
        }))
        .layer(DefaultBodyLimit::max(report_limit));
    Router::new()
        .route("/api/v6/captcha", post(handlers::captcha_create))
        .route(
            "/api/v6/captcha/{captchaId}/image",
            get(handlers::captcha_image),
        )
        .route(
            "/api/v6/captcha/{captchaId}/audio",
            get(handlers::captcha_audio),
        )
        .route("/api/v6/register", post(handlers::register))
        .route(
            "/api/v6/status",
            post(handlers::status).layer(middleware::from_fn_with_state(
                state.clone(),
                privacy::status_layer,
            )),
        )
        .route("/api/v6/unregister", post(handlers::unregister))
        .route(
            "/api/v6/deleteExposureHistory",
            post(handlers::delete_history),
        )
        .route("/api/v6/clock", get(handlers::clock))
        .route("/actuator/health", get(handlers::health))
        .route("/actuator/health/liveness", get(handlers::health))
        .route("/actuator/health/readiness", get(handlers::readiness))
        .route("/status.txt", get(handlers::status_txt))
        .route("/openapi.json", get(handlers::openapi))
        .layer(middleware::from_fn(move |mut req: Request, next: Next| {
            req.extensions_mut().insert(BodyLimit(small));
            next.run(req)
        }))
        .layer(DefaultBodyLimit::max(small))
        .merge(report)
        .merge(crate::federation::routes(state))
}

/// The internal API: `/internal/api/v2/kpis` and `/metrics`. Unauthenticated:
/// expose them only to the operators' network.
pub fn internal_routes() -> Router<AppState> {
    Router::new()
        .route("/internal/api/v2/kpis", get(handlers::kpis))
        .route("/metrics", get(handlers::metrics))
}

/// Adds the cross-cutting layers and the state to a route set: JSON 404 and
/// 405, metrics, request body reading (limit, minimum rate), processing
/// timeout (once the body is read), panic safety net.
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs.max(1));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(state.clone(), date_header))
        .layer(middleware::from_fn_with_state(timeout, request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a handler panicked");
                ApiError::Internal("panic".into()).into_response()
            },
        ))
        .with_state(state)
}

/// The whole API on one router.
pub fn app(state: AppState) -> Router {
    let routes = public_routes(&state).merge(internal_routes());
    finish(routes, state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Stamps `Date` with the server's clock. Hyper would stamp the OS clock,
/// which differs from the server's time under a clock offset or in a
/// simulation; apps compare this header with their own clock (±120 s).
async fn date_header(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Ok(secs) = u64::try_from(state.clock.now_unix()) {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(secs);
        if let Ok(v) = axum::http::HeaderValue::from_str(&httpdate::fmt_http_date(t)) {
            resp.headers_mut().insert(axum::http::header::DATE, v);
        }
    }
    resp
}

/// Answers 408 with the API's JSON error when a request runs longer than
/// `server.request_timeout_secs` (the handler is dropped: nothing is
/// acknowledged, and a store transaction not yet committed rolls back).
async fn request_timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Timeout(limit.as_secs()).into_response(),
    }
}

/// The body limit of a route: `limits.report_max_body_bytes` for `/report`,
/// `limits.max_body_bytes` for everything else.
fn body_limit(state: &AppState, req: &Request) -> usize {
    let limits = &state.config.limits;
    match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some(REPORT_PATH) => limits.report_max_body_bytes,
        Some(crate::federation::wire::CONTACTS_PATH) => state.config.federation.max_body_bytes,
        _ => limits.max_body_bytes,
    }
}

const REPORT_PATH: &str = "/api/v6/report";

/// Reads the whole request body before the handler (and its processing
/// timeout) starts, so a slow upload holds no processing resource (a
/// `/report` slot) and is not cut by the processing timeout:
///
/// * a `Content-Length` over the route's limit is answered 413 at once,
///   before any of the body is read; a body that grows past it, 413 too;
/// * the body must arrive at `limits.body_min_bytes_per_sec` on average
///   after `limits.body_read_grace_secs`, and never pause longer than the
///   grace; else 408.
async fn read_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = body_limit(&state, &req);
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge(limit).into_response();
    }
    let limits = &state.config.limits;
    let rate = RateFloor {
        grace: Duration::from_secs(limits.body_read_grace_secs.max(1)),
        min_bytes_per_sec: limits.body_min_bytes_per_sec.max(1),
    };
    let (parts, body) = req.into_parts();
    let capacity = declared.map_or(0, |n| usize::try_from(n).unwrap_or(limit).min(limit));
    match read_at_min_rate(body, limit, capacity, rate).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(BodyReadError::TooLarge) => ApiError::PayloadTooLarge(limit).into_response(),
        Err(BodyReadError::TooSlow) => {
            state
                .metrics
                .connections()
                .slow_bodies
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::BodyTooSlow(rate.min_bytes_per_sec).into_response()
        }
        Err(BodyReadError::Read(e)) => {
            ApiError::Malformed(format!("cannot read the request body: {e}")).into_response()
        }
    }
}

/// The minimum upload rate of a request body.
#[derive(Clone, Copy, Debug)]
struct RateFloor {
    grace: Duration,
    min_bytes_per_sec: u64,
}

#[derive(Debug)]
enum BodyReadError {
    TooLarge,
    TooSlow,
    Read(axum::Error),
}

/// Reads `body` up to `limit` bytes. The deadline starts `grace` after the
/// start; every byte received extends it by `1 / min_bytes_per_sec` s, but
/// never beyond `grace` from now (no long pause, whatever was sent before).
async fn read_at_min_rate(
    body: Body,
    limit: usize,
    capacity: usize,
    rate: RateFloor,
) -> Result<bytes::Bytes, BodyReadError> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut deadline = tokio::time::Instant::now() + rate.grace;
    let mut first: Option<bytes::Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyReadError::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyReadError::Read(e)),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let received = first.as_ref().map_or(0, bytes::Bytes::len) + buf.len();
        if received + data.len() > limit {
            return Err(BodyReadError::TooLarge);
        }
        let credit = Duration::from_secs_f64(data.len() as f64 / rate.min_bytes_per_sec as f64);
        deadline = (deadline + credit).min(tokio::time::Instant::now() + rate.grace);
        // Most bodies are one frame: keep it without copying.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            Some(f) => {
                buf.reserve(capacity.max(f.len() + data.len()));
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
            None => buf.extend_from_slice(&data),
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Counts and times every request by matched route.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = Metrics::route_index(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    let started = Instant::now();
    let resp = next.run(req).await;
    state
        .metrics
        .observe_request(route, resp.status().as_u16(), started.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_slow_request_gets_a_json_408() {
        let app: Router = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/fast", get(|| async { "ok" }))
            .layer(middleware::from_fn_with_state(
                Duration::from_secs(1),
                request_timeout,
            ));
        let call = |uri: &'static str| {
            let app = app.clone();
            async move {
                let resp = app
                    .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (status, body) = call("/slow").await;
        assert_eq!(status, axum::http::StatusCode::REQUEST_TIMEOUT);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            json["message"].as_str().unwrap().contains("timed out"),
            "{body}"
        );
        assert_eq!(
            call("/fast").await,
            (axum::http::StatusCode::OK, "ok".into())
        );
    }
}
