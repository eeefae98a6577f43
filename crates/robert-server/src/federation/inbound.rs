//! `POST /federation/v1/contacts`: batches of contacts from partner
//! countries' servers (wire format in [`super::wire`]).
//!
//! Checks, in order; the first failure answers and nothing is stored:
//!
//! | check | status |
//! |---|---|
//! | `X-Robert-Origin` is a configured partner | 401 missing or malformed, 403 not a partner |
//! | `X-Robert-Signature` verifies over the body with that partner's key | 401 |
//! | the body parses, `version` is 1, `batchId` is well formed, contacts are valid `/report` contacts | 400 |
//! | body `origin` is the header's, `destination` is this server's country | 403 |
//! | `createdAt` within `federation.max_clock_skew_secs` of this server's clock | 401 |
//! | every contact's ECC decodes (K_G) to this server's country | 400, naming the contact |
//! | (origin, batchId) not seen with other contacts | 409 |
//!
//! The body size is bounded by `federation.max_body_bytes` (413) before any
//! of this. A new batch is recorded and its contacts queued in one
//! transaction, then 200 `{"status":"stored","contacts":N}`; a batch received
//! before, 200 `{"status":"duplicate","contacts":0}` (the sender's retry
//! after a lost acknowledgement). The contacts are then the batch's to
//! validate and score like any uploaded contact.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use robert_core::time::NtpSeconds;
use robert_store::UploadedContact;
use robert_store::federation::{InboundBatch, Received};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::wire::{self, InboundBody};
use crate::api::dto::ReportRequestDto;
use crate::api::extract::parse_json;
use crate::state::AppState;

/// A refusal: status and message (never key material).
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// The handler (mounted by `crate::api::public_routes` when partners are
/// configured).
pub(crate) async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match accept(&state, &headers, body).await {
        Ok(resp) => resp,
        Err(r) => {
            if r.status != StatusCode::SERVICE_UNAVAILABLE
                && r.status != StatusCode::INTERNAL_SERVER_ERROR
            {
                state
                    .federation
                    .metrics
                    .batches_refused
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(status = r.status.as_u16(), reason = %r.message, "federation batch refused");
            r.into_response()
        }
    }
}

async fn accept(state: &AppState, headers: &HeaderMap, body: Bytes) -> Result<Response, Refusal> {
    let fed = &state.federation;
    let unauthorized = |m: &str| Refusal::new(StatusCode::UNAUTHORIZED, m);
    let origin = headers
        .get(wire::ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u8>().ok())
        .ok_or_else(|| unauthorized("missing or malformed X-Robert-Origin"))?;
    let partner = fed.partner(origin).ok_or_else(|| {
        Refusal::new(
            StatusCode::FORBIDDEN,
            format!("country {origin} is not a partner of this server"),
        )
    })?;
    let signature = headers
        .get(wire::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("missing X-Robert-Signature"))?;
    let key = partner.key;
    let sig = signature.to_owned();
    let own = fed.own_country();
    let limits = state.config.limits.clone();
    let key_g = state.keys.get().key_g().clone();
    // Signature, parsing and the ECC of every contact: CPU work off the
    // async threads (a batch is megabytes).
    let checked = tokio::task::spawn_blocking(move || {
        if !wire::verify(&key, &body, &sig) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "the signature does not verify with the partner's key",
            ));
        }
        let bad = |m: String| Refusal::new(StatusCode::BAD_REQUEST, m);
        let dto: InboundBody = parse_json(&body).map_err(|e| bad(e.to_string()))?;
        if dto.version != Some(wire::VERSION) {
            return Err(bad(format!("version: expected {}", wire::VERSION)));
        }
        let batch_id = dto.batch_id.unwrap_or_default();
        if !wire::valid_batch_id(&batch_id) {
            return Err(bad(format!(
                "batchId: 1 to {} characters of [A-Za-z0-9_-]",
                wire::BATCH_ID_MAX_LEN
            )));
        }
        if dto.origin != Some(origin) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "origin differs from the X-Robert-Origin header",
            ));
        }
        if dto.destination != Some(own) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!("destination: this server is country {own}"),
            ));
        }
        let created_at = dto
            .created_at
            .ok_or_else(|| bad("createdAt: required".into()))?;
        // Parsed as a `/report`: the same field checks and limits, except
        // the report-wide counts, which the body limit bounds here.
        #[allow(
            clippy::needless_update,
            reason = "fields the /report body may gain (padding) keep their defaults"
        )]
        let report = ReportRequestDto {
            token: Some("federation".into()),
            contacts: dto.contacts,
            ..ReportRequestDto::default()
        };
        let mut limits = limits;
        limits.max_contacts_per_report = usize::MAX;
        limits.max_hellos_per_report = usize::MAX;
        let contacts: Vec<UploadedContact> = report
            .validate(&limits)
            .map_err(|e| bad(e.to_string()))?
            .contacts;
        for (i, c) in contacts.iter().enumerate() {
            let cc = c.ecc.decrypt(&key_g, &c.ebid).0;
            if cc != own {
                return Err(bad(format!(
                    "contacts[{i}]: the ECC does not decode to this server's country {own}"
                )));
            }
        }
        let digest = wire::contacts_digest(&contacts);
        Ok((batch_id, created_at, contacts, digest))
    })
    .await
    .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (batch_id, created_at, contacts, digest) = checked;
    let now_unix = state.clock.now_unix();
    let skew = i64::try_from(fed.config().max_clock_skew_secs).unwrap_or(i64::MAX);
    if created_at.abs_diff(now_unix) > skew.unsigned_abs() {
        return Err(unauthorized(
            "createdAt is too far from this server's clock (replay or clock error)",
        ));
    }
    let now = state.clock.now_ntp();
    let retention = u64::from(fed.config().inbox_retention_days) * 86_400;
    // Stored and counted in a task of its own: a partner that hangs up (its
    // timeout) drops this handler, while the store's writer may still commit
    // the batch, and the counters must not miss what was stored.
    let (store, fed) = (Arc::clone(&state.store), Arc::clone(&state.federation));
    let stored = tokio::spawn(async move {
        let received = store
            .receive_federated(&InboundBatch {
                origin,
                batch_id: &batch_id,
                digest,
                contacts: &contacts,
                received_at: now,
                forget_before: NtpSeconds(now.get().saturating_sub(retention)),
            })
            .await?;
        let m = &fed.metrics;
        match received {
            Received::Stored => {
                m.batches_received.fetch_add(1, Ordering::Relaxed);
                m.contacts_received
                    .fetch_add(contacts.len() as u64, Ordering::Relaxed);
                tracing::info!(
                    origin,
                    batch = %batch_id,
                    contacts = contacts.len(),
                    "federation batch stored"
                );
            }
            Received::Duplicate => {
                m.batches_duplicate.fetch_add(1, Ordering::Relaxed);
                tracing::info!(origin, batch = %batch_id, "federation batch received again; not stored twice");
            }
            Received::Conflict => {}
        }
        Ok::<_, robert_store::StoreError>((received, contacts.len()))
    });
    let (received, count) = stored
        .await
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot store a federation batch");
            let status = if e.is_unavailable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Refusal::new(status, "the batch could not be stored: retry later")
        })?;
    let (status, stored) = match received {
        Received::Stored => ("stored", count),
        Received::Duplicate => ("duplicate", 0),
        Received::Conflict => {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                "this batchId was received before with other contacts",
            ));
        }
    };
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": status, "contacts": stored })),
    )
        .into_response())
}
