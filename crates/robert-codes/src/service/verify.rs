//! Verifying a code: at once (`verify`, the reference's API) or in two
//! phases for ROBERT's `/report` (`claim`, then `confirm` or `release`).

use chrono::{DateTime, Duration, Utc};

use super::{CodesService, unix};
use crate::code::{CodeKind, Shape, classify};
use crate::pepper::domain_hash;
use crate::store::{StoreError, UseTarget};

/// How long a claim holds a code without confirmation, in seconds: far
/// longer than storing a report takes, short enough that a code held by a
/// server that crashed mid-report is usable again while its owner still
/// tries (the same report retried takes its own claim back at once).
pub const CLAIM_HOLD_SECS: i64 = 600;

/// What a submitted code designates in the store.
enum Resolved {
    Code {
        hashes: Vec<crate::pepper::CodeHash>,
        kind: CodeKind,
    },
    Jwt {
        jti_hash: [u8; 32],
        expires_at: i64,
    },
}

impl Resolved {
    fn as_target(&self) -> UseTarget<'_> {
        match self {
            Self::Code { hashes, kind } => UseTarget::Code {
                hashes,
                kind: *kind,
            },
            Self::Jwt {
                jti_hash,
                expires_at,
            } => UseTarget::Jwt {
                jti_hash,
                expires_at: *expires_at,
            },
        }
    }
}

/// Outcome of a verification (for metrics; the API only says valid or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// Whether the code was valid and is now consumed.
    pub valid: bool,
    /// The inferred type: `LONG`, `SHORT`, `TEST`, `JWT` or `MALFORMED`.
    pub code_type: &'static str,
}

impl CodesService {
    /// Finds what a submitted code or JWT designates: `None` when it is
    /// malformed or a JWT that does not verify at `now`. Also returns its
    /// type for the metrics.
    fn resolve(&self, submitted: &str, now: DateTime<Utc>) -> (Option<Resolved>, &'static str) {
        match classify(submitted) {
            Shape::Malformed => (None, "MALFORMED"),
            Shape::Code(kind) => (
                Some(Resolved::Code {
                    hashes: self.inner.peppers.hash_candidates(kind, submitted),
                    kind,
                }),
                kind.label(),
            ),
            Shape::Jwt => match self.inner.jwt.verify(submitted, now) {
                Ok(v) => (
                    Some(Resolved::Jwt {
                        jti_hash: domain_hash("robert-codes/v1/jti", v.jti.as_bytes()),
                        expires_at: v.expires_at,
                    }),
                    "JWT",
                ),
                Err(reason) => {
                    tracing::debug!(%reason, "JWT rejected");
                    (None, "JWT")
                }
            },
        }
    }

    fn count_verification(&self, valid: bool, code_type: &'static str) {
        self.inner.metrics.inc(
            "submission_verify_code_total",
            &[
                ("valid", if valid { "true" } else { "false" }),
                ("code_type", code_type),
            ],
        );
        tracing::debug!(code_type, valid, "verify");
    }

    /// Verifies and consumes a submitted code or JWT. Unknown, expired, used,
    /// claimed and malformed codes are all simply invalid.
    pub async fn verify(&self, submitted: &str) -> Result<VerifyOutcome, StoreError> {
        let now = self.now();
        let (target, code_type) = self.resolve(submitted, now);
        let valid = match &target {
            None => false,
            Some(Resolved::Code { hashes, kind }) => {
                self.inner.store.burn(hashes, *kind, unix(now)).await?
            }
            Some(Resolved::Jwt {
                jti_hash,
                expires_at,
            }) => {
                self.inner
                    .store
                    .use_jti(jti_hash, unix(now), *expires_at)
                    .await?
            }
        };
        self.count_verification(valid, code_type);
        Ok(VerifyOutcome { valid, code_type })
    }

    /// Verifies a code or JWT and holds it for one report, identified by
    /// `key`, for [`CLAIM_HOLD_SECS`] seconds: the first phase of a two-phase use
    /// ([`CodesService::confirm`] or [`CodesService::release`] follows).
    /// While held, the code is invalid for anyone else; a claim with the
    /// same key (the same report, retried) succeeds again. `valid` says
    /// whether the hold was taken.
    pub async fn claim(
        &self,
        submitted: &str,
        key: &[u8; 32],
    ) -> Result<VerifyOutcome, StoreError> {
        let now = self.now();
        let (target, code_type) = self.resolve(submitted, now);
        let valid = match &target {
            None => false,
            Some(t) => {
                let until = unix(now).saturating_add(CLAIM_HOLD_SECS);
                self.inner
                    .store
                    .claim(t.as_target(), key, unix(now), until)
                    .await?
            }
        };
        self.count_verification(valid, code_type);
        self.inner.metrics.inc(
            "submission_claim_total",
            &[("outcome", if valid { "held" } else { "refused" })],
        );
        Ok(VerifyOutcome { valid, code_type })
    }

    /// Confirms the claim `key` holds on a code: the code is now used.
    /// `false` when no such claim holds it any more (released, or expired
    /// and taken by another claim).
    pub async fn confirm(&self, submitted: &str, key: &[u8; 32]) -> Result<bool, StoreError> {
        let now = self.now();
        let confirmed = match self.resolve_held(submitted, now) {
            Some(t) => {
                self.inner
                    .store
                    .confirm(t.as_target(), key, unix(now))
                    .await?
            }
            None => false,
        };
        self.inner.metrics.inc(
            "submission_claim_settled_total",
            &[(
                "outcome",
                if confirmed {
                    "confirmed"
                } else {
                    "confirm_failed"
                },
            )],
        );
        Ok(confirmed)
    }

    /// Drops the claim `key` holds on a code, which is usable again (the
    /// report it was for could not be stored).
    pub async fn release(&self, submitted: &str, key: &[u8; 32]) -> Result<bool, StoreError> {
        let now = self.now();
        let released = match self.resolve_held(submitted, now) {
            Some(t) => self.inner.store.release(t.as_target(), key).await?,
            None => false,
        };
        self.inner.metrics.inc(
            "submission_claim_settled_total",
            &[(
                "outcome",
                if released {
                    "released"
                } else {
                    "release_failed"
                },
            )],
        );
        Ok(released)
    }

    /// [`CodesService::resolve`] for a code already claimed: a JWT that
    /// expired since its claim still designates its `jti`.
    fn resolve_held(&self, submitted: &str, now: DateTime<Utc>) -> Option<Resolved> {
        let hold = Duration::seconds(CLAIM_HOLD_SECS);
        self.resolve(submitted, now)
            .0
            .or_else(|| self.resolve(submitted, now - hold).0)
    }
}
