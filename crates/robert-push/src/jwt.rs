//! The APNs provider authentication token: an ES256 JWT signed with the
//! team's .p8 key (Apple, "Establishing a token-based connection to APNs").
//!
//! * header `{"alg":"ES256","kid":<key id>}`, claims `{"iss":<team id>,"iat":<now>}`;
//! * Apple refuses a token older than one hour (`403 ExpiredProviderToken`)
//!   and one replaced more often than every 20 minutes
//!   (`429 TooManyProviderTokenUpdates`): the token is cached and replaced
//!   when it is `refresh_secs` old (configuration keeps that in 20–60 min);
//! * after an `ExpiredProviderToken` the token is replaced at once if it is
//!   at least 20 minutes old (otherwise the clocks disagree, and replacing
//!   it would only earn a `TooManyProviderTokenUpdates`).
//!
//! The signing key is zeroized on drop (p256's `SigningKey` does it) and
//! never printed.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use serde_json::json;

/// Apple's minimum interval between two provider tokens, seconds.
pub const MIN_REFRESH_SECS: i64 = 20 * 60;
/// Apple's maximum age of a provider token, seconds.
pub const MAX_AGE_SECS: i64 = 60 * 60;

/// Why the key is not usable or a token does not verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The .p8 file could not be read.
    #[error("cannot read APNs key {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a PKCS#8 P-256 private key.
    #[error("APNs key: not a PKCS#8 P-256 (ES256) private key")]
    InvalidKey,
    /// A token is malformed or its signature is wrong.
    #[error("invalid provider token: {0}")]
    Invalid(&'static str),
}

/// The signer and its cached token.
pub struct ProviderToken {
    key: p256::ecdsa::SigningKey,
    header_prefix: String,
    team_id: String,
    refresh_secs: i64,
    cached: Mutex<Option<(i64, String)>>,
}

impl std::fmt::Debug for ProviderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderToken")
            .field("team_id", &self.team_id)
            .field("refresh_secs", &self.refresh_secs)
            .finish_non_exhaustive()
    }
}

impl ProviderToken {
    /// A signer from the .p8 text (PKCS#8 PEM).
    pub fn from_p8(
        pem: &str,
        key_id: &str,
        team_id: &str,
        refresh_secs: i64,
    ) -> Result<Self, JwtError> {
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|_| JwtError::InvalidKey)?;
        let header = json!({"alg": "ES256", "kid": key_id}).to_string();
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header.as_bytes());
        header_prefix.push('.');
        Ok(Self {
            key,
            header_prefix,
            team_id: team_id.to_owned(),
            refresh_secs: refresh_secs.clamp(MIN_REFRESH_SECS, MAX_AGE_SECS - 1),
            cached: Mutex::new(None),
        })
    }

    /// Reads the .p8 file.
    pub fn from_file(
        path: &std::path::Path,
        key_id: &str,
        team_id: &str,
        refresh_secs: i64,
    ) -> Result<Self, JwtError> {
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            JwtError::Read {
                path: path.display().to_string(),
                source,
            }
        })?);
        Self::from_p8(&pem, key_id, team_id, refresh_secs)
    }

    fn sign(&self, iat: i64) -> String {
        let claims = json!({"iss": self.team_id, "iat": iat}).to_string();
        let mut token = self.header_prefix.clone();
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut token);
        let sig: p256::ecdsa::Signature = self.key.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.to_bytes(), &mut token);
        token
    }

    /// The token to send at `now` (Unix seconds): the cached one unless it
    /// is `refresh_secs` old (or from the future: the clock went back).
    pub fn current(&self, now: i64) -> String {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((iat, token)) = cached.as_ref() {
            let age = now - iat;
            if (0..self.refresh_secs).contains(&age) {
                return token.clone();
            }
        }
        let token = self.sign(now);
        *cached = Some((now, token.clone()));
        token
    }

    /// APNs answered `ExpiredProviderToken` for `sent`: drops it if it is
    /// still the cached one and at least 20 minutes old. Returns whether
    /// the next [`ProviderToken::current`] makes a new token.
    pub fn expired(&self, sent: &str, now: i64) -> bool {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        match cached.as_ref() {
            Some((iat, token)) if token == sent => {
                if now - iat >= MIN_REFRESH_SECS {
                    *cached = None;
                    true
                } else {
                    false
                }
            }
            // Already replaced by another request.
            _ => true,
        }
    }

    /// When the cached token was signed, if there is one.
    pub fn cached_iat(&self) -> Option<i64> {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().map(|(iat, _)| *iat)
    }

    /// The public key, PEM (for the mock APNs and operators' checks).
    pub fn public_key_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap_or_default()
    }
}

/// A new P-256 key as a .p8 file's text (PKCS#8 PEM): the demo's, the
/// tests' and the benchmark's stand-in for Apple's key.
pub fn generate_p8() -> zeroize::Zeroizing<String> {
    use rand::Rng as _;
    let mut rng = rand::rng();
    loop {
        let mut scalar = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut scalar[..]);
        // A random 32-byte string is a valid scalar except with negligible
        // probability (zero or ≥ n); draw again then.
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&scalar[..])
            && let Ok(pem) = k.to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
        {
            return zeroize::Zeroizing::new(pem.to_string());
        }
    }
}

/// A verified provider token's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Header `kid`.
    pub key_id: String,
    /// Claim `iss`.
    pub team_id: String,
    /// Claim `iat`.
    pub iat: i64,
}

/// Verifies an ES256 provider token against a public key (PEM): what APNs
/// does, and what the mock does.
pub fn verify(token: &str, public_key_pem: &str) -> Result<Verified, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Invalid("not three parts"));
    };
    let decode = |part: &str, what| -> Result<serde_json::Value, JwtError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| JwtError::Invalid(what))?;
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Invalid(what))
    };
    let header = decode(h, "header")?;
    let claims = decode(c, "claims")?;
    if header["alg"] != "ES256" {
        return Err(JwtError::Invalid("algorithm is not ES256"));
    }
    let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(public_key_pem)
        .map_err(|_| JwtError::Invalid("public key"))?;
    let sig_bytes = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Invalid("signature"))?;
    let sig = p256::ecdsa::Signature::from_slice(&sig_bytes)
        .map_err(|_| JwtError::Invalid("signature"))?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    vk.verify(signed, &sig)
        .map_err(|_| JwtError::Invalid("signature"))?;
    let (Some(key_id), Some(team_id), Some(iat)) = (
        header["kid"].as_str(),
        claims["iss"].as_str(),
        claims["iat"].as_i64(),
    ) else {
        return Err(JwtError::Invalid("kid, iss or iat missing"));
    };
    Ok(Verified {
        key_id: key_id.to_owned(),
        team_id: team_id.to_owned(),
        iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(refresh: i64) -> ProviderToken {
        ProviderToken::from_p8(&generate_p8(), "KEY1234567", "TEAM123456", refresh).unwrap()
    }

    #[test]
    fn tokens_verify_and_carry_kid_iss_iat() {
        let p = signer(2400);
        let t = p.current(1_700_000_000);
        let v = verify(&t, &p.public_key_pem()).unwrap();
        assert_eq!(
            v,
            Verified {
                key_id: "KEY1234567".into(),
                team_id: "TEAM123456".into(),
                iat: 1_700_000_000
            }
        );
        // Another key's public key does not verify it; a changed claim breaks it.
        assert!(verify(&t, &signer(2400).public_key_pem()).is_err());
        let parts: Vec<&str> = t.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(br#"{"iss":"TEAM123456","iat":1800000000}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert!(verify(&forged, &p.public_key_pem()).is_err());
        assert!(verify("a.b", &p.public_key_pem()).is_err());
        assert!(ProviderToken::from_p8("not a key", "k", "t", 2400).is_err());
    }

    #[test]
    fn cached_until_refresh_age_then_replaced() {
        let p = signer(2400);
        let t0 = p.current(1000);
        assert_eq!(p.current(1000 + 2399), t0, "reused below the refresh age");
        let t1 = p.current(1000 + 2400);
        assert_ne!(t1, t0, "replaced at the refresh age");
        assert_eq!(verify(&t1, &p.public_key_pem()).unwrap().iat, 3400);
        // A clock that went back gets a fresh token, not a future-dated one.
        let t2 = p.current(100);
        assert_eq!(verify(&t2, &p.public_key_pem()).unwrap().iat, 100);
        // The refresh age is kept within Apple's bounds.
        let fast = signer(10);
        let a = fast.current(0);
        assert_eq!(fast.current(MIN_REFRESH_SECS - 1), a);
        let slow = signer(10_000);
        let b = slow.current(0);
        assert_ne!(slow.current(MAX_AGE_SECS - 1), b, "never an hour old");
    }

    #[test]
    fn expired_answer_replaces_only_tokens_20_minutes_old() {
        let p = signer(2400);
        let t0 = p.current(0);
        assert!(
            !p.expired(&t0, 600),
            "10 min old: keep, the clocks disagree"
        );
        assert_eq!(p.current(600), t0);
        assert!(p.expired(&t0, 1200));
        let t1 = p.current(1200);
        assert_ne!(t1, t0);
        assert!(p.expired(&t0, 1300), "a stale copy: already replaced");
        assert_eq!(p.current(1300), t1);
    }
}
