//! The privacy layer of `/status` and `/report` (see [`crate::privacy`]):
//! pads the answers of marked requests (body and head, errors included),
//! answers marked dummies itself, holds every marked answer, real or dummy,
//! until a release deadline drawn at its arrival, and records the handling
//! times of real requests on which the deadlines are based.
//!
//! A request without the [`FAKE_HEADER`] passes through untouched (its
//! handling time is still recorded when it succeeds).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use robert_core::id_a::IdA;
use robert_core::keys::KeyATuples;

use super::dto::{Base64Bytes, StatusResponse, SuccessResponse};
use super::error::ApiError;
use crate::privacy::{
    FAKE_HEADER, PADDING_HEADER, PADDING_HEADER_OVERHEAD, PrivateRoute, head_target,
    pad_json_object, response_target, status_target,
};
use crate::state::AppState;

/// What the [`FAKE_HEADER`] of a request says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// No header: a client that does not pad (the reference apps).
    None,
    /// `0`: a real request from a padding client.
    Real,
    /// `1`: a dummy.
    Dummy,
}

/// Reads the mark of a request; `Err` for a value other than `0` or `1`.
pub fn mark(headers: &HeaderMap) -> Result<Mark, ApiError> {
    match headers.get(FAKE_HEADER) {
        None => Ok(Mark::None),
        Some(v) if v.as_bytes() == b"0" => Ok(Mark::Real),
        Some(v) if v.as_bytes() == b"1" => Ok(Mark::Dummy),
        Some(_) => Err(ApiError::invalid(format!("{FAKE_HEADER}: must be 0 or 1"))),
    }
}

/// Whether a request asked for padding (a real request with the mark).
pub fn is_padded(headers: &HeaderMap) -> bool {
    matches!(mark(headers), Ok(Mark::Real))
}

/// The padded length a handler chose for its answer (`/status`: a target
/// that does not depend on the risk); without it the layer pads to
/// [`response_target`].
#[derive(Clone, Copy, Debug)]
pub struct PadTo(pub usize);

/// The `/status` layer.
pub(super) async fn status_layer(state: State<AppState>, req: Request, next: Next) -> Response {
    layer(state, PrivateRoute::Status, req, next).await
}

/// The `/report` layer.
pub(super) async fn report_layer(state: State<AppState>, req: Request, next: Next) -> Response {
    layer(state, PrivateRoute::Report, req, next).await
}

/// Runs the real handler and records its handling time when it succeeded
/// (the times dummies and release deadlines are drawn from).
async fn run_timed(
    state: &AppState,
    route: PrivateRoute,
    body_len: usize,
    started: Instant,
    req: Request,
    next: Next,
) -> Response {
    let resp = next.run(req).await;
    if resp.status().is_success() {
        state
            .privacy
            .timing
            .record(route, body_len, started.elapsed());
    }
    resp
}

/// How long after it is ready an answer that overran its deadline leaves,
/// real or dummy: long enough that the release thread sleeps on a timer for
/// both, whose wake-up (~0.1 ms late, the kernel's timer slack) would
/// otherwise delay only the dummies.
const LATE_STEP: Duration = Duration::from_micros(100);

async fn layer(
    State(state): State<AppState>,
    route: PrivateRoute,
    req: Request,
    next: Next,
) -> Response {
    // The real clock, not tokio's (which tests may pause): the release
    // thread runs on it.
    let started = Instant::now();
    // The body was read before (`read_body`): its length is exact.
    let body_len = req
        .body()
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mark = match mark(req.headers()) {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    if mark == Mark::None {
        // The reference apps: served as before, only timed.
        return run_timed(&state, route, body_len, started, req, next).await;
    }
    // The release deadline, drawn at arrival from a distribution that does
    // not depend on the mark. Never past the processing timeout (a real
    // request would be cut there).
    let cap = Duration::from_secs(state.config.server.request_timeout_secs.max(1))
        .saturating_sub(Duration::from_millis(100));
    let hold = state
        .privacy
        .hold(route, body_len, &mut rand::rng())
        .min(cap);
    let deadline = started + hold;
    let resp = if mark == Mark::Real {
        state.privacy.observe_padded(route);
        run_timed(&state, route, body_len, started, req, next).await
    } else {
        drop(req);
        state.privacy.observe_dummy(route);
        match dummy_response(&state, route).await {
            Ok(r) => r,
            // Only without today's key, where a real request fails alike.
            Err(e) => e.into_response(),
        }
    };
    let resp = pad(&state, resp).await;
    if mark == Mark::Real {
        let now = Instant::now();
        let late = now.saturating_duration_since(deadline);
        state.privacy.record_lateness(route, late);
        if late.is_zero() {
            // To the scheduler's precision, not on tokio's millisecond grid.
            super::release::release_at(deadline).await;
        } else {
            // Released when ready, by the same timed wake-up as a dummy held
            // late (below); the operator sees how often in the metrics (a
            // deadline too tight for the node: raise the margin).
            state.privacy.observe_overrun(route);
            super::release::release_at(now + LATE_STEP).await;
        }
    } else {
        // As late as a recent real answer was, so that leaving late does
        // not tell a real request (`TrafficPrivacy::dummy_lateness`).
        let late = state.privacy.dummy_lateness(route, &mut rand::rng());
        let hold = if late.is_zero() {
            hold
        } else {
            (hold + late + LATE_STEP).min(cap)
        };
        super::release::release_at(started + hold).await;
    }
    resp
}

/// Pads an answer to a marked request (a success or an error): its JSON
/// body to its target, and its head to [`head_target`] with the
/// [`PADDING_HEADER`].
async fn pad(state: &AppState, resp: Response) -> Response {
    let target = resp.extensions().get::<PadTo>().map(|p| p.0);
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::Internal("reading an answer to pad".into()).into_response();
    };
    let target = target.unwrap_or_else(|| response_target(bytes.len()));
    let padded = match pad_json_object(&bytes, target) {
        Some(p) => p,
        None => {
            // Longer than its target (or not an object): pad to the next
            // bucket rather than not at all.
            state.privacy.observe_overflow();
            pad_json_object(&bytes, response_target(bytes.len())).unwrap_or_else(|| bytes.to_vec())
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(PADDING_HEADER);
    if let Ok(v) = HeaderValue::from_str(&padded.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, v);
    }
    let head = head_len(parts.status, &parts.headers);
    let fill = head_target(head) - head - PADDING_HEADER_OVERHEAD;
    if let Ok(v) = HeaderValue::from_str(&"0".repeat(fill)) {
        parts.headers.insert(PADDING_HEADER, v);
    }
    Response::from_parts(parts, Body::from(padded))
}

/// The length of the head HTTP/1.1 writes for `status` and `headers`:
/// `HTTP/1.1 200 OK\r\n`, `name: value\r\n` per header, `\r\n`. The
/// headers added later are the same for every answer (`date`, of fixed
/// length).
fn head_len(status: StatusCode, headers: &HeaderMap) -> usize {
    let line = "HTTP/1.1 ".len() + 3 + 1 + status.canonical_reason().map_or(0, str::len) + 2;
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + fields + 2
}

/// The answer to a dummy: what a real request gets when it succeeds, with
/// nothing read from or written to the store.
async fn dummy_response(state: &AppState, route: PrivateRoute) -> Result<Response, ApiError> {
    let now = state.clock.now_ntp();
    match route {
        PrivateRoute::Report => {
            // A token of the real length that validates nothing: a dummy
            // must not obtain a report validation token without a code.
            let token = scrambled_signature(&state.tokens.report_validation(now.to_unix()));
            Ok(axum::Json(SuccessResponse {
                success: true,
                message: Some("Successful operation"),
                report_validation_token: Some(token),
            })
            .into_response())
        }
        PrivateRoute::Status => {
            // A "not at risk" answer with a fresh bundle for a random
            // identity: the length of a real one at this epoch.
            let now_epoch = state.start.epoch_at(now);
            let ring = state.keys.get();
            let (id_a, key) = {
                let mut rng = rand::rng();
                let mut raw = [0u8; 32];
                rand::Rng::fill_bytes(&mut rng, &mut raw);
                (IdA::random(&mut rng), KeyATuples::from_bytes(raw))
            };
            let tuples = super::handlers::sealed_bundle(state, &ring, id_a, &key, now_epoch)?;
            let analytics = state.tokens.analytics(now.to_unix());
            let config = state.app_config_json().await?;
            let resp = StatusResponse {
                risk_level: 0,
                tuples: Base64Bytes(&tuples),
                config: &config,
                last_contact_date: None,
                last_risk_scoring_date: None,
                declaration_token: None,
                analytics_token: Some(&analytics),
            };
            let body = resp.to_json();
            let target = status_target(body.len() - resp.risk_fields_len());
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            r.extensions_mut().insert(PadTo(target));
            Ok(r)
        }
    }
}

/// `token` with its signature replaced by random base64url characters of
/// the same length.
fn scrambled_signature(token: &str) -> String {
    use rand::RngExt as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let Some(dot) = token.rfind('.') else {
        return token.to_owned();
    };
    let mut rng = rand::rng();
    let mut out = String::with_capacity(token.len());
    out.push_str(&token[..=dot]);
    for _ in dot + 1..token.len() {
        out.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks() {
        let mut h = HeaderMap::new();
        assert_eq!(mark(&h).unwrap(), Mark::None);
        h.insert(FAKE_HEADER, HeaderValue::from_static("0"));
        assert_eq!(mark(&h).unwrap(), Mark::Real);
        assert!(is_padded(&h));
        h.insert(FAKE_HEADER, HeaderValue::from_static("1"));
        assert_eq!(mark(&h).unwrap(), Mark::Dummy);
        assert!(!is_padded(&h));
        h.insert(FAKE_HEADER, HeaderValue::from_static("yes"));
        assert!(matches!(mark(&h), Err(ApiError::InvalidData(_))));
    }

    #[test]
    fn heads_are_padded_to_one_size_whatever_the_status() {
        let mut ok = HeaderMap::new();
        ok.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ok.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1024"));
        let mut err = ok.clone();
        err.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        let a = head_len(StatusCode::OK, &ok);
        let b = head_len(StatusCode::UNAUTHORIZED, &err);
        assert_eq!(
            a,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1024\r\n\r\n"
                .len()
        );
        assert_ne!(a, b);
        assert_eq!(head_target(a), head_target(b));
    }

    #[test]
    fn a_scrambled_token_keeps_its_length_and_header() {
        let t = "eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let s = scrambled_signature(t);
        assert_eq!(s.len(), t.len());
        assert!(s.starts_with("eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9."));
        assert_ne!(s, t);
    }
}
