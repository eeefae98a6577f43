//! JWT report tokens signed by the laboratory system (codes-and-push.md §4).
//!
//! Only ES256 is accepted: the algorithm is pinned, never taken from the
//! token. `kid` selects a configured P-256 key; `iat` must be a number, not
//! in the future, at most `lifetime` old; `jti` must be non-blank (its one-time
//! use is enforced by the store). `exp` is ignored, as in the reference.

use std::collections::BTreeMap;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde_json::Value;

use crate::code::MAX_INPUT_LEN;

/// Why a token is rejected (for metrics and debug logs; never includes the token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtRejection {
    /// Not three base64url parts, or header/claims are not JSON objects.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not ES256.
    #[error("algorithm is not ES256")]
    Algorithm,
    /// `kid` missing or unknown.
    #[error("unknown key id")]
    UnknownKey,
    /// Signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `iat` missing or not a number.
    #[error("iat missing or not numeric")]
    IssuedAt,
    /// `iat` in the future.
    #[error("iat in the future")]
    Future,
    /// Older than the lifetime.
    #[error("token too old")]
    Expired,
    /// `jti` missing, not a string, or blank.
    #[error("jti missing or blank")]
    Jti,
    /// `iss` differs from the configured issuer.
    #[error("unexpected issuer")]
    Issuer,
}

/// Errors in the JWT key configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtKeyError {
    /// A key is neither base64 DER SPKI nor PEM of a P-256 key.
    #[error("JWT key {kid:?} is not a P-256 public key (base64 DER SubjectPublicKeyInfo or PEM)")]
    BadKey {
        /// The key id.
        kid: String,
    },
}

/// A verified token's claims that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedJwt {
    /// The `jti` claim.
    pub jti: String,
    /// The `iat` claim (Unix seconds).
    pub iat: i64,
    /// When the token stops being accepted (`iat + lifetime`, Unix seconds).
    pub expires_at: i64,
}

/// Verifies ES256 report tokens against configured keys.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: BTreeMap<String, VerifyingKey>,
    lifetime: Duration,
    issuer: Option<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn b64url(part: &str) -> Result<Vec<u8>, JwtRejection> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtRejection::Malformed)
}

impl JwtVerifier {
    /// Builds a verifier from `kid` → key text (base64 DER SPKI or PEM).
    pub fn new(
        keys: &BTreeMap<String, String>,
        lifetime_days: u32,
        issuer: Option<String>,
    ) -> Result<Self, JwtKeyError> {
        let mut parsed = BTreeMap::new();
        for (kid, text) in keys {
            let text = text.trim();
            let key = if text.starts_with("-----BEGIN") {
                VerifyingKey::from_public_key_pem(text).ok()
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()
                    .and_then(|der| VerifyingKey::from_public_key_der(&der).ok())
            };
            let key = key.ok_or_else(|| JwtKeyError::BadKey { kid: kid.clone() })?;
            parsed.insert(kid.clone(), key);
        }
        Ok(Self {
            keys: parsed,
            lifetime: Duration::days(i64::from(lifetime_days)),
            issuer,
        })
    }

    /// Number of configured keys.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Checks a compact JWS at `now`. Does not record the `jti`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedJwt, JwtRejection> {
        if token.len() > MAX_INPUT_LEN {
            return Err(JwtRejection::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(c64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtRejection::Malformed);
        };
        let header: Value =
            serde_json::from_slice(&b64url(h64)?).map_err(|_| JwtRejection::Malformed)?;
        let claims: Value =
            serde_json::from_slice(&b64url(c64)?).map_err(|_| JwtRejection::Malformed)?;
        let (Some(header), Some(claims)) = (header.as_object(), claims.as_object()) else {
            return Err(JwtRejection::Malformed);
        };
        let sig = b64url(s64)?;

        // Algorithm pinned: the header must say ES256, and ES256 is all we run.
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(JwtRejection::Algorithm);
        }
        let key = header
            .get("kid")
            .and_then(Value::as_str)
            .and_then(|kid| self.keys.get(kid))
            .ok_or(JwtRejection::UnknownKey)?;
        // JWS ES256 signatures are the 64-byte r ‖ s, not DER.
        if sig.len() != 64 {
            return Err(JwtRejection::Signature);
        }
        let sig = Signature::from_slice(&sig).map_err(|_| JwtRejection::Signature)?;
        let signing_input = &token[..h64.len() + 1 + c64.len()];
        key.verify(signing_input.as_bytes(), &sig)
            .map_err(|_| JwtRejection::Signature)?;

        let iat = match claims.get("iat") {
            Some(Value::Number(n)) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.floor() as i64)
                })
                .ok_or(JwtRejection::IssuedAt)?,
            _ => return Err(JwtRejection::IssuedAt),
        };
        let now_s = now.timestamp();
        if iat > now_s {
            return Err(JwtRejection::Future);
        }
        let expires_at = iat.saturating_add(self.lifetime.num_seconds());
        if expires_at < now_s {
            return Err(JwtRejection::Expired);
        }
        let jti = match claims.get("jti") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            _ => return Err(JwtRejection::Jti),
        };
        if let Some(expected) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(expected.as_str())
        {
            return Err(JwtRejection::Issuer);
        }
        Ok(VerifiedJwt {
            jti,
            iat,
            expires_at,
        })
    }
}

/// Test helpers: sign ES256 tokens (this crate's tests and callers that need
/// fixtures; feature `testing`, never in a production build).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey as _;

    /// A deterministic P-256 signing key from a 32-byte seed (must be a valid scalar).
    pub fn signing_key(seed: u8) -> SigningKey {
        let mut bytes = [seed; 32];
        bytes[0] = 0x01; // keeps the scalar well below the group order
        #[expect(
            clippy::unwrap_used,
            reason = "0x01 followed by any bytes is a valid P-256 scalar"
        )]
        SigningKey::from_slice(&bytes).unwrap()
    }

    /// The base64 DER SPKI of `key`'s public key, as configured in `[jwt.keys]`.
    pub fn public_key_b64(key: &SigningKey) -> String {
        #[expect(clippy::unwrap_used, reason = "encoding a valid P-256 key cannot fail")]
        let der = key.verifying_key().to_public_key_der().unwrap();
        base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
    }

    /// Signs a compact JWS with `header` and `claims` (JSON texts) using ES256.
    pub fn sign(key: &SigningKey, header: &str, claims: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!("{}.{}", e.encode(header), e.encode(claims));
        let sig: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", e.encode(sig.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    fn verifier() -> JwtVerifier {
        let mut keys = BTreeMap::new();
        keys.insert("D99DA442".to_owned(), public_key_b64(&signing_key(7)));
        JwtVerifier::new(&keys, 10, None).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn token(header: &str, claims: &str) -> String {
        sign(&signing_key(7), header, claims)
    }

    const H: &str = r#"{"alg":"ES256","kid":"D99DA442","typ":"JWT"}"#;

    #[test]
    fn accepts_a_good_token() {
        let t = token(H, r#"{"iss":"SIDEP","iat":1699999000,"jti":"abc"}"#);
        let v = verifier().verify(&t, now()).unwrap();
        assert_eq!(v.jti, "abc");
        assert_eq!(v.expires_at, 1_699_999_000 + 10 * 86_400);
    }

    #[test]
    fn rejects_each_defect() {
        let v = verifier();
        let check = |t: &str, want: JwtRejection| assert_eq!(v.verify(t, now()), Err(want), "{t}");
        let c = r#"{"iat":1699999000,"jti":"abc"}"#;
        check(
            &token(r#"{"alg":"ES384","kid":"D99DA442"}"#, c),
            JwtRejection::Algorithm,
        );
        check(
            &token(r#"{"alg":"none","kid":"D99DA442"}"#, c),
            JwtRejection::Algorithm,
        );
        check(
            &token(r#"{"alg":"HS256","kid":"D99DA442"}"#, c),
            JwtRejection::Algorithm,
        );
        check(&token(r#"{"alg":"ES256"}"#, c), JwtRejection::UnknownKey);
        check(
            &token(r#"{"alg":"ES256","kid":"other"}"#, c),
            JwtRejection::UnknownKey,
        );
        check(
            &token(H, r#"{"iat":"2022-01-01T00:00:00Z","jti":"a"}"#),
            JwtRejection::IssuedAt,
        );
        check(&token(H, r#"{"jti":"a"}"#), JwtRejection::IssuedAt);
        check(
            &token(H, r#"{"iat":1700000001,"jti":"a"}"#),
            JwtRejection::Future,
        );
        check(
            &token(
                H,
                &format!(r#"{{"iat":{},"jti":"a"}}"#, 1_700_000_000 - 10 * 86_400 - 1),
            ),
            JwtRejection::Expired,
        );
        check(
            &token(H, r#"{"iat":1699999000,"jti":"  "}"#),
            JwtRejection::Jti,
        );
        check(
            &token(H, r#"{"iat":1699999000,"jti":5}"#),
            JwtRejection::Jti,
        );
        check(&token(H, r#"{"iat":1699999000}"#), JwtRejection::Jti);
        // Signed by another key.
        let other = sign(&signing_key(9), H, c);
        check(&other, JwtRejection::Signature);
        // Claims swapped after signing.
        let good = token(H, c);
        let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"iat":1699999000,"jti":"zzz"}"#);
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[1] = &forged_claims;
        check(&parts.join("."), JwtRejection::Signature);
        check("a.b.c", JwtRejection::Malformed);
        check("e30.e30", JwtRejection::Malformed);
        check(&format!("{}.", good), JwtRejection::Malformed);
        check("W10.W10.AAAA", JwtRejection::Malformed); // arrays, not objects
    }

    #[test]
    fn exact_age_limit_is_accepted() {
        let t = token(
            H,
            &format!(r#"{{"iat":{},"jti":"a"}}"#, 1_700_000_000 - 10 * 86_400),
        );
        assert!(verifier().verify(&t, now()).is_ok());
        let t = token(H, r#"{"iat":1700000000,"jti":"a"}"#);
        assert!(verifier().verify(&t, now()).is_ok());
    }

    #[test]
    fn issuer_is_checked_only_when_configured() {
        let mut keys = BTreeMap::new();
        keys.insert("k".to_owned(), public_key_b64(&signing_key(7)));
        let v = JwtVerifier::new(&keys, 10, Some("SIDEP".into())).unwrap();
        let h = r#"{"alg":"ES256","kid":"k"}"#;
        let ok = token(h, r#"{"iss":"SIDEP","iat":1699999000,"jti":"a"}"#);
        assert!(v.verify(&ok, now()).is_ok());
        let bad = token(h, r#"{"iss":"X","iat":1699999000,"jti":"a"}"#);
        assert_eq!(v.verify(&bad, now()), Err(JwtRejection::Issuer));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_are_rejected_without_panic(s in "[A-Za-z0-9_.=+/-]{0,300}") {
            proptest::prop_assert!(verifier().verify(&s, now()).is_err());
        }

        #[test]
        fn any_bit_flip_in_the_signature_is_rejected(byte in 0_usize..64, bit in 0_u8..8) {
            let t = token(H, r#"{"iat":1699999000,"jti":"abc"}"#);
            let (input, sig) = t.rsplit_once('.').unwrap();
            let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
            raw[byte] ^= 1 << bit;
            let forged = format!("{input}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
            proptest::prop_assert!(verifier().verify(&forged, now()).is_err());
        }
    }

    #[test]
    fn rejects_bad_key_config() {
        let mut keys = BTreeMap::new();
        keys.insert("k".to_owned(), "bm90IGEga2V5".to_owned());
        assert!(JwtVerifier::new(&keys, 10, None).is_err());
    }
}
