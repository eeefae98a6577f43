//! Authentication of `/status`, `/unregister` and `/deleteExposureHistory`
//! (protocol.md §8.3, server-api.md §2 "Authentication by the crypto server"
//! and §3.5 steps 2–6), in the reference's order and with its results:
//!
//! 1. K_S of the UTC day of the claimed `epochId`; none → **430**.
//! 2. The EBID decrypts to that same epoch; otherwise → 400.
//! 3. The decrypted ID_A has a registration; otherwise → **430**.
//! 4. The MAC (salt of the request type) verifies under its K_A; otherwise
//!    → 400 (`/status` also records "Invalid MAC" as its last failure).
//! 5. The clock check, `|now − time| ≤ tolerance` (60 s), which takes
//!    precedence over every failure above: → 400. The drift (server − client)
//!    is recorded whenever the identity is known.
//!
//! Unlike the reference's master branch, day keys are always UTC days (no
//! Europe/Paris dates or previous-day retry for the first epochs).
//! Authentication failures all read "Authentication failed" so a client
//! cannot tell a forged EBID from a forged MAC.

use robert_core::ebid::EbidContent;
use robert_core::id_a::IdA;
use robert_core::keys::KeyA;
use robert_core::mac::Salt;
use robert_core::time::{Epoch, NtpSeconds};
use robert_store::Registration;

use super::dto::AuthRequest;
use super::error::ApiError;
use crate::state::AppState;

/// A request that passed every check.
#[derive(Debug)]
pub struct Authenticated {
    /// The registration, as read before the request.
    pub registration: Registration,
    /// Its K_A.
    pub key_a: KeyA,
    /// The server time of the request.
    pub now: NtpSeconds,
    /// The server's current epoch.
    pub now_epoch: Epoch,
    /// Server − client, seconds.
    pub drift_secs: i64,
}

enum Failure {
    /// No K_S for the claimed epoch's day.
    NoServerKey,
    /// The EBID does not decrypt to the claimed epoch.
    EbidMismatch,
    /// No registration for the decrypted ID_A.
    UnknownIdentity,
    /// The MAC does not verify.
    InvalidMac(IdA),
}

/// Message of a failed MAC or EBID check.
pub const AUTH_FAILED: &str = "Authentication failed";

/// Runs the checks above for a request of type `salt`.
pub async fn authenticate(
    state: &AppState,
    req: &AuthRequest,
    salt: Salt,
) -> Result<Authenticated, ApiError> {
    let now = state.clock.now_ntp();
    let now_epoch = state.start.epoch_at(now);
    let drift_secs = i64::try_from(now.get()).unwrap_or(i64::MAX) - i64::from(req.time.0);

    let crypto = crypto_checks(state, req, salt).await?;

    let tolerance =
        i64::try_from(state.config.protocol.request_time_tolerance_secs).unwrap_or(i64::MAX);
    if drift_secs.abs() > tolerance {
        let known = match &crypto {
            Ok((reg, _)) => Some(reg.id_a),
            Err(Failure::InvalidMac(id)) => Some(*id),
            Err(_) => None,
        };
        if let Some(id) = known
            && let Err(e) = state.store.record_timestamp_drift(id, drift_secs).await
        {
            tracing::warn!(error = %e, "could not record the timestamp drift");
        }
        return Err(ApiError::BadRequest(format!(
            "Request time differs from the server time by more than {tolerance} seconds"
        )));
    }

    match crypto {
        Ok((registration, key_a)) => Ok(Authenticated {
            registration,
            key_a,
            now,
            now_epoch,
            drift_secs,
        }),
        Err(Failure::NoServerKey | Failure::UnknownIdentity) => Err(ApiError::UnknownIdentity),
        Err(Failure::EbidMismatch) => Err(ApiError::BadRequest(AUTH_FAILED.into())),
        Err(Failure::InvalidMac(id)) => {
            let recorded = if salt == Salt::Status {
                state
                    .store
                    .record_status_failure(id, now_epoch, "Invalid MAC", Some(drift_secs))
                    .await
            } else {
                state.store.record_timestamp_drift(id, drift_secs).await
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "could not record the failed request");
            }
            Err(ApiError::BadRequest(AUTH_FAILED.into()))
        }
    }
}

async fn crypto_checks(
    state: &AppState,
    req: &AuthRequest,
    salt: Salt,
) -> Result<Result<(Registration, KeyA), Failure>, ApiError> {
    let ring = state.keys.get();
    let claimed = Epoch(req.epoch_id);
    let Some(key) = ring.server_key(state.start.day_of(claimed)) else {
        return Ok(Err(Failure::NoServerKey));
    };
    let EbidContent { epoch, id_a } = req.ebid.decrypt(key);
    if epoch != claimed {
        return Ok(Err(Failure::EbidMismatch));
    }
    let Some(registration) = state.store.get_registration(id_a).await? else {
        return Ok(Err(Failure::UnknownIdentity));
    };
    let key_a = ring
        .kek()
        .unwrap_key_a(&registration.key_a)
        .map_err(|e| super::handlers::key_op_error(e, "K_A"))?;
    if !req
        .mac
        .verify(&key_a, salt, &req.ebid, req.epoch_id, req.time)
    {
        return Ok(Err(Failure::InvalidMac(id_a)));
    }
    Ok(Ok((registration, key_a)))
}
