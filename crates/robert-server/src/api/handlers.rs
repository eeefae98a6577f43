//! The endpoint handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use robert_core::ecc::CountryCode;
use robert_core::id_a::IdA;
use robert_core::keys::KeyATuples;
use robert_core::mac::Salt;
use robert_core::registration::parse_public_key;
use robert_core::time::{Epoch, UtcDate};
use robert_core::tuples::BundleSpan;
use robert_store::{NewRegistration, StatusSuccess, StoreError, kpi};

use super::auth::{Authenticated, authenticate};
use super::dto::{
    AuthRequestDto, Base64Bytes, CaptchaRequestDto, CaptchaResponse, ClockResponse,
    RegisterRequestDto, RegisterResponse, ReportRequestDto, StatusResponse, SuccessResponse,
};
use super::error::ApiError;
use super::extract::{ApiJson, Client, json_body, parse_json};
use crate::captcha::{CaptchaError, CaptchaKind};
use crate::client::Limited;
use crate::codes::{Settlement, Verification};
use crate::keystore::{KeyEncryptionKey, KeyOpError, KeyRing};
use crate::state::AppState;

/// How many random ID_As `/register` tries before giving up (the reference's 10).
const ID_A_ATTEMPTS: usize = 10;

/// Generates and seals the tuple bundle of a registration from `now_epoch`.
/// No tuple at all (no K_S for today) is a 503.
pub(super) fn sealed_bundle(
    state: &AppState,
    ring: &KeyRing,
    id_a: IdA,
    key: &KeyATuples,
    now_epoch: Epoch,
) -> Result<Vec<u8>, ApiError> {
    let span = BundleSpan {
        from: now_epoch,
        days: state.config.protocol.bundle_days,
    };
    let bundle = robert_core::tuples::generate(
        id_a,
        span,
        &state.start,
        ring.key_g(),
        CountryCode(state.config.protocol.country_code),
        |day| ring.server_key(day),
    );
    if bundle.tuples.is_empty() {
        return Err(no_key_today());
    }
    Ok(bundle.seal(key, &mut rand::rng()))
}

/// A JSON response from a body written by hand.
fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn no_key_today() -> ApiError {
    ApiError::Unavailable("No server key for the current day: the key store must be rotated".into())
}

/// Maps a KEK or registration-key failure: a token that fails is a 503
/// (retry later; the cause is logged), a key that does not unwrap a 500.
pub(super) fn key_op_error(e: KeyOpError, what: &str) -> ApiError {
    match e {
        KeyOpError::Token(cause) => {
            tracing::warn!(error = %cause, operation = what, "key token failure");
            ApiError::Unavailable("The key service is unavailable, retry later".into())
        }
        KeyOpError::Unwrap => ApiError::Internal(format!(
            "a stored {what} does not unwrap under the KEK (wrong KEK in the key store?)"
        )),
    }
}

fn unwrap_tuples_key(
    kek: &dyn KeyEncryptionKey,
    reg: &robert_store::Registration,
) -> Result<KeyATuples, ApiError> {
    kek.unwrap_key_a_tuples(&reg.key_a_tuples)
        .map_err(|e| key_op_error(e, "K_A_Tuples"))
}

// ------------------------------------------------------------------ register

/// `POST /api/v6/register`.
pub(super) async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequestDto>,
) -> Result<Response, ApiError> {
    let req = body.validate()?;
    let now = state.clock.now_ntp();
    let now_epoch = state.start.epoch_at(now);
    let ring = state.keys.get();
    if ring.server_key(state.start.day_of(now_epoch)).is_none() {
        return Err(no_key_today());
    }
    if !state
        .captcha
        .verify(req.captcha_id, req.captcha, state.clock.now_unix())
        .await
        .map_err(captcha_error)?
    {
        return Err(ApiError::Unauthorized("Invalid captcha".into()));
    }
    let public_key = parse_public_key(req.client_public_key).map_err(|_| {
        ApiError::invalid(
            "clientPublicECDHKey: not a base64 X.509 SubjectPublicKeyInfo P-256 public key",
        )
    })?;
    let keys = ring
        .registration()
        .derive_client_keys(&public_key)
        .map_err(|e| key_op_error(e, "registration key agreement"))?;
    let wrap = |k: &[u8; 32]| ring.kek().wrap(k).map_err(|e| key_op_error(e, "KEK wrap"));
    let (wrapped_a, wrapped_t) = (
        wrap(keys.key_a.expose_secret())?,
        wrap(keys.key_a_tuples.expose_secret())?,
    );
    let mut inserted = None;
    for _ in 0..ID_A_ATTEMPTS {
        let id_a = IdA::random(&mut rand::rng());
        let new = NewRegistration {
            id_a,
            key_a: wrapped_a.clone(),
            key_a_tuples: wrapped_t.clone(),
            created_at: now,
        };
        match state.store.insert_registration(&new).await {
            Ok(()) => {
                inserted = Some(id_a);
                break;
            }
            Err(StoreError::DuplicateIdA) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let id_a =
        inserted.ok_or_else(|| ApiError::Internal("no free ID_A after 10 attempts".into()))?;
    let tuples = sealed_bundle(&state, &ring, id_a, &keys.key_a_tuples, now_epoch)?;
    let config = state.app_config_json().await?;
    if let Some(push) = body.push_info.as_ref().and_then(|p| p.to_registration()) {
        state.push.register(push);
    }
    let body = RegisterResponse {
        tuples: Base64Bytes(&tuples),
        time_start: state.start.ntp().get(),
        config: &config,
        message: None,
    }
    .to_json();
    Ok(json_response(StatusCode::CREATED, body))
}

// -------------------------------------------------------------------- status

/// `POST /api/v6/status`.
pub(super) async fn status(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<AuthRequestDto>,
) -> Result<Response, ApiError> {
    let padded = super::privacy::is_padded(&headers);
    let req = body.validate()?;
    let Authenticated {
        registration,
        now,
        now_epoch,
        drift_secs,
        ..
    } = authenticate(&state, &req, Salt::Status).await?;
    let id_a = registration.id_a;

    // Rate limit: reject 0 ≤ current − last < gap (a negative distance, from
    // clock changes, is accepted as the reference does).
    let gap = state.config.protocol.status_min_epoch_gap;
    let last = registration.last_status_epoch;
    if gap > 0 && now_epoch >= last && now_epoch.get() - last.get() < gap {
        let d = now_epoch.get() - last.get();
        let msg = format!(
            "Discarding ESR request because epochs are too close: last ESR request epoch {last} vs current epoch {now_epoch} => {d} < {gap} (tolerance)"
        );
        state
            .store
            .record_status_failure(id_a, now_epoch, &msg, Some(drift_secs))
            .await?;
        return Err(ApiError::BadRequest(format!(
            "Too many status requests: at least {gap} epochs must separate two requests"
        )));
    }

    // The bundle comes first: without today's key the request fails without
    // consuming the rate limit.
    let ring = state.keys.get();
    let key_t = unwrap_tuples_key(ring.kek().as_ref(), &registration)?;
    let tuples = sealed_bundle(&state, &ring, id_a, &key_t, now_epoch)?;

    let outcome = state
        .store
        .record_status_success(&StatusSuccess {
            id_a,
            epoch: now_epoch,
            drift_secs,
        })
        .await?
        .ok_or_else(|| ApiError::NotFound("Unknown registration".into()))?;
    let now_unix = now.to_unix();
    let at_risk_contact = outcome.at_risk && outcome.last_contact.get() > 0;
    let declaration = at_risk_contact.then(|| {
        state.tokens.declaration(
            id_a,
            outcome.latest_risk_epoch,
            state.start.epoch_start(now_epoch),
            outcome.last_contact,
            now_unix,
        )
    });
    if padded && declaration.is_none() {
        // The same signing work whatever the risk, so that the answer's
        // timing does not tell "at risk" (docs/traffic-privacy.md).
        let _ = state.tokens.declaration(
            id_a,
            outcome.latest_risk_epoch,
            state.start.epoch_start(now_epoch),
            outcome.last_contact,
            now_unix,
        );
    }
    let analytics = state.tokens.analytics(now_unix);
    let config = state.app_config_json().await?;
    if let Some(push) = body.push_info.as_ref().and_then(|p| p.to_registration()) {
        state.push.register(push);
    }
    let response = StatusResponse {
        risk_level: if outcome.at_risk { 4 } else { 0 },
        tuples: Base64Bytes(&tuples),
        config: &config,
        last_contact_date: at_risk_contact.then(|| outcome.last_contact.get()),
        last_risk_scoring_date: (outcome.at_risk && outcome.latest_risk_epoch.get() > 0)
            .then(|| state.start.epoch_start(outcome.latest_risk_epoch).get()),
        declaration_token: declaration.as_deref(),
        analytics_token: Some(&analytics),
    };
    let body = response.to_json();
    let risk_free_len = body.len() - response.risk_fields_len();
    let mut resp = json_response(StatusCode::OK, body);
    if padded {
        resp.extensions_mut()
            .insert(super::privacy::PadTo(crate::privacy::status_target(
                risk_free_len,
            )));
    }
    Ok(resp)
}

// ---------------------------------------------------- unregister / history

/// `POST /api/v6/unregister`.
pub(super) async fn unregister(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AuthRequestDto>,
) -> Result<Response, ApiError> {
    let req = body.validate()?;
    let auth = authenticate(&state, &req, Salt::Unregister).await?;
    if !state
        .store
        .delete_registration(auth.registration.id_a)
        .await?
    {
        return Err(ApiError::NotFound("Unknown registration".into()));
    }
    if let Some(token) = body
        .push_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        state.push.unregister(token.to_owned());
    }
    Ok(Json(SuccessResponse {
        success: true,
        message: None,
        report_validation_token: None,
    })
    .into_response())
}

/// `POST /api/v6/deleteExposureHistory`.
pub(super) async fn delete_history(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AuthRequestDto>,
) -> Result<Response, ApiError> {
    let req = body.validate()?;
    let auth = authenticate(&state, &req, Salt::DeleteHistory).await?;
    let id_a = auth.registration.id_a;
    state.store.clear_exposures(id_a).await?;
    if !state
        .store
        .record_timestamp_drift(id_a, auth.drift_secs)
        .await?
    {
        return Err(ApiError::NotFound("Unknown registration".into()));
    }
    Ok(Json(SuccessResponse {
        success: true,
        message: None,
        report_validation_token: None,
    })
    .into_response())
}

// -------------------------------------------------------------------- report

/// `Retry-After` of a 503 while the submission-code service is unavailable.
const CODES_RETRY_AFTER_SECS: u64 = 30;

/// `POST /api/v6/report`.
///
/// At most `limits.max_concurrent_reports` reports are processed at once.
/// The body has been read before (by the `read_body` middleware, at a
/// minimum rate), so a slow upload never holds a slot; the slot bounds the
/// parsing, which runs on a blocking thread (a large report takes a while).
pub(super) async fn report(
    State(state): State<AppState>,
    Client(client): Client,
    req: Request,
) -> Result<Response, ApiError> {
    let padded = super::privacy::is_padded(req.headers());
    let bytes = json_body(req, &state).await?;
    let _slot = state
        .report_slots
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    let limits = state.config.limits.clone();
    // Everything is validated before the code is checked: a malformed report
    // must not burn the user's one-time code.
    let (token, contacts, hellos, rssi_out_of_range, report_key) =
        tokio::task::spawn_blocking(move || {
            let dto: ReportRequestDto = parse_json(&bytes)?;
            // The report's identity for the two-phase use of its code: the
            // same report retried (after a crash, a timeout) takes its own
            // hold back. Hashed here, off the async threads (reports reach
            // megabytes).
            let report_key: [u8; 32] = {
                use sha2::Digest as _;
                let mut h = sha2::Sha256::new();
                h.update(b"robert-server/v1/report-claim");
                h.update(&bytes);
                h.finalize().into()
            };
            dto.validate(&limits).map(|v| {
                (
                    v.token.to_owned(),
                    v.contacts,
                    v.hellos,
                    v.rssi_out_of_range,
                    report_key,
                )
            })
        })
        .await
        .map_err(|e| ApiError::Internal(format!("report parsing task: {e}")))??;
    // Every code tried counts against its client, whatever the outcome
    // (attacks-and-faults.md D2: /report was a way around the code
    // service's per-address verify limit).
    if state.codes.checks_tokens() {
        match state
            .code_checks
            .check(client, state.clock.now_unix_millis())
            .await
        {
            Ok(()) => {}
            Err(Limited::Wait(wait)) => {
                state.metrics.observe_code_checks_limited();
                return Err(ApiError::TooManyRequests {
                    message: format!(
                        "Too many submission codes tried from this address: retry in {wait} s"
                    ),
                    retry_after_secs: wait,
                });
            }
            // The budgets' database failed: no code is tried unmetered.
            Err(Limited::Unavailable(retry_after_secs)) => {
                return Err(ApiError::RetryLater {
                    message: "The rate-limit store is unavailable: retry later".into(),
                    retry_after_secs,
                });
            }
        }
    }
    // The code is held, not spent, until the report is stored: a crash in
    // between leaves a hold that expires (codes.rs).
    let verification = state.codes.claim(&token, &report_key).await;
    match verification {
        Verification::Held | Verification::Valid | Verification::Skipped => {}
        Verification::Invalid => {
            return Err(ApiError::Unauthorized(format!(
                "Unrecognized token of length: {}",
                token.encode_utf16().count()
            )));
        }
        Verification::Unavailable => {
            state.metrics.observe_codes_unavailable();
            return Err(ApiError::RetryLater {
                message: "The submission-code service is unavailable: retry later".into(),
                retry_after_secs: CODES_RETRY_AFTER_SECS,
            });
        }
    }
    let now = state.clock.now_ntp();
    let stored = state.store.insert_contacts(&contacts, now).await;
    if verification == Verification::Held {
        let settled = state
            .codes
            .settle(&token, &report_key, stored.is_ok())
            .await;
        if settled != Settlement::Done {
            // Stored but not confirmed: the hold expires and the code could
            // serve once more (a duplicate report, harmless to scoring);
            // not stored and not released: the hold expires in ten minutes.
            tracing::warn!(
                stored = stored.is_ok(),
                outcome = ?settled,
                "could not settle the hold on a submission code"
            );
            state.metrics.observe_code_settle_failed();
        }
    }
    stored?;
    state
        .metrics
        .observe_report(contacts.len(), hellos, rssi_out_of_range);
    if padded {
        // A padding client's reports leave no line of their own, real or
        // dummy (docs/traffic-privacy.md); the metrics count them.
        tracing::debug!(contacts = contacts.len(), hellos, "report stored");
    } else {
        tracing::info!(contacts = contacts.len(), hellos, "report stored");
    }
    Ok(Json(SuccessResponse {
        success: true,
        message: Some("Successful operation"),
        report_validation_token: Some(state.tokens.report_validation(now.to_unix())),
    })
    .into_response())
}

// ------------------------------------------------------------------- captcha

/// `POST /api/v6/captcha`.
pub(super) async fn captcha_create(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<CaptchaRequestDto>,
) -> Result<Response, ApiError> {
    let type_str = body
        .kind
        .as_deref()
        .ok_or_else(|| ApiError::invalid("type: required (IMAGE or AUDIO)"))?;
    let kind = if type_str.eq_ignore_ascii_case("IMAGE") {
        CaptchaKind::Image
    } else if type_str.eq_ignore_ascii_case("AUDIO") {
        CaptchaKind::Audio
    } else {
        return Err(ApiError::invalid("type: must be IMAGE or AUDIO"));
    };
    let locale = body
        .locale
        .as_deref()
        .ok_or_else(|| ApiError::invalid("locale: required"))?;
    if locale.len() > 35 {
        return Err(ApiError::invalid("locale: longer than 35 characters"));
    }
    let id = state
        .captcha
        .create(kind, type_str, locale, client, state.clock.now_unix())
        .await
        .map_err(captcha_error)?;
    if let Some(n) = state.captcha.outstanding() {
        state.metrics.set_captcha_outstanding(n);
    }
    Ok((
        StatusCode::CREATED,
        Json(CaptchaResponse {
            id: &id,
            captcha_id: &id,
        }),
    )
        .into_response())
}

fn captcha_error(e: CaptchaError) -> ApiError {
    match e {
        CaptchaError::NotFound => ApiError::NotFound("Captcha not found or expired".into()),
        CaptchaError::Busy => ApiError::Unavailable(e.to_string()),
        CaptchaError::ClientQuota { retry_after_secs } => ApiError::TooManyRequests {
            message: e.to_string(),
            retry_after_secs,
        },
        CaptchaError::WrongKind {
            challenge: CaptchaKind::Audio,
        } => ApiError::NotFound(
            "Captcha is an AUDIO challenge: it has no image, fetch its /audio".into(),
        ),
        CaptchaError::WrongKind {
            challenge: CaptchaKind::Image,
        } => ApiError::NotFound(
            "Captcha is an IMAGE challenge: it has no audio, fetch its /image".into(),
        ),
        CaptchaError::Render => ApiError::Internal("captcha rendering failed".into()),
        // Logged, not sent; names a defective asset, never an answer.
        CaptchaError::Audio(e) => ApiError::Internal(format!("captcha audio: {e}")),
        CaptchaError::Upstream(410) => ApiError::Gone("Captcha already used".into()),
        CaptchaError::Upstream(404) => ApiError::NotFound("Captcha not found".into()),
        CaptchaError::Upstream(_) => ApiError::BadRequest("Captcha service error".into()),
        CaptchaError::Unavailable { retry_after_secs } => ApiError::RetryLater {
            message: "Captchas are unavailable: retry later".into(),
            retry_after_secs,
        },
    }
}

fn valid_captcha_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn captcha_media(
    state: &AppState,
    id: &str,
    kind: CaptchaKind,
) -> Result<Response, ApiError> {
    if !valid_captcha_id(id) {
        return Err(ApiError::NotFound("Captcha not found or expired".into()));
    }
    let media = state
        .captcha
        .media(id, kind, state.clock.now_unix())
        .await
        .map_err(captcha_error)?;
    let status = StatusCode::from_u16(media.status).unwrap_or(StatusCode::OK);
    Ok((
        status,
        [
            (header::CONTENT_TYPE, media.content_type),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        media.body,
    )
        .into_response())
}

/// `GET /api/v6/captcha/{captchaId}/image`.
pub(super) async fn captcha_image(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    captcha_media(&state, &id, CaptchaKind::Image).await
}

/// `GET /api/v6/captcha/{captchaId}/audio`.
pub(super) async fn captcha_audio(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    captcha_media(&state, &id, CaptchaKind::Audio).await
}

// --------------------------------------------------------------- operations

/// `GET /api/v6/clock`.
pub(super) async fn clock(State(state): State<AppState>) -> Json<ClockResponse> {
    let millis = state.clock.now_unix_millis();
    let now = robert_core::time::NtpSeconds::from_unix(millis.div_euclid(1000));
    Json(ClockResponse {
        service_start_date: state.start.date().to_string(),
        time: crate::clock::iso8601_millis(millis),
        epoch: state.start.epoch_at(now).get(),
    })
}

/// `GET /internal/api/v2/kpis`.
pub(super) async fn kpis(State(state): State<AppState>) -> Result<Response, ApiError> {
    let k = state.store.kpis().await?;
    let map: serde_json::Map<String, serde_json::Value> = kpi::API
        .iter()
        .map(|name| ((*name).to_owned(), serde_json::Value::from(k.get(name))))
        .collect();
    Ok(Json(map).into_response())
}

/// `GET /actuator/health` and `/actuator/health/liveness`.
pub(super) async fn health() -> Response {
    Json(serde_json::json!({"status": "UP"})).into_response()
}

/// `GET /actuator/health/readiness`: the store answers, today's K_S exists
/// and the submission-code service answers (unless `codes.in_readiness` is
/// off).
pub(super) async fn readiness(State(state): State<AppState>) -> Response {
    let today = UtcDate::of(state.clock.now_ntp());
    let store_ok = state.store.app_config().await.is_ok();
    let key_ok = state.keys.get().server_key(today).is_some();
    let codes_ok = state.codes.probe().await;
    state.metrics.set_codes_up(codes_ok);
    if store_ok && key_ok && codes_ok {
        return Json(serde_json::json!({"status": "UP"})).into_response();
    }
    let detail = if !store_ok {
        "database unavailable"
    } else if !key_ok {
        "no server key (K_S) for today"
    } else {
        "submission-code service unavailable"
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"status": "DOWN", "detail": detail})),
    )
        .into_response()
}

/// `GET /status.txt`.
pub(super) async fn status_txt() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], "up").into_response()
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let ring = state.keys.get();
    let today = UtcDate::of(state.clock.now_ntp());
    let ahead = ring
        .server_keys()
        .keys()
        .next_back()
        .map(|last| (last.days_since_unix_epoch() - today.days_since_unix_epoch()).max(0))
        .unwrap_or(0);
    state
        .metrics
        .set_key_days_ahead(u64::try_from(ahead).unwrap_or(0));
    let mut text = state.metrics.render();
    text.push_str(&state.federation.render_metrics());
    state.privacy.render(&mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /openapi.json`.
pub(super) async fn openapi() -> Response {
    static DOC: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| Arc::from(super::OPENAPI_JSON)).clone();
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}
