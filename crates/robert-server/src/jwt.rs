//! The JSON Web Tokens the server issues (server-api.md §3.5, §3.6).
//!
//! | token | endpoint | claims |
//! |---|---|---|
//! | `declarationToken` | `/status`, at risk | `jti`, `iat`, `iss = "tac"`, `notificationDateTimestamp`, `lastContactDateTimestamp`; header `kid`; no `exp` |
//! | `analyticsToken` | `/status` | `iss = "robert-server"`, `iat` (truncated to the minute), `exp = iat + lifetime + 60 s` |
//! | `reportValidationToken` | `/report` | `iat`, `exp = iat + lifetime` |
//!
//! Signatures are RS256 (RSASSA-PKCS1-v1_5 / SHA-256, signed with blinding)
//! by default, the reference's algorithm and the only one its consumers
//! verify (the analytics server is hard-wired to RS256), or ES256 (ECDSA
//! P-256 / SHA-256, RFC 7518 §3.4) when configured. Keys are PKCS#8, PEM or
//! base64 DER as the reference's `robert.jwt.*.private-key`, or generated
//! into the key store. The algorithm is fixed by configuration:
//! a signer never emits, and [`verify`] never accepts, another one (no
//! `alg` negotiation, no `none`).
//!
//! The header is the standard `{"alg":…,"typ":"JWT"}` (the reference wrote
//! the non-standard parameter name `type`; verifiers ignore both).

use std::fmt;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{RandomizedSigner as _, Signer as _, Verifier as _};
use robert_core::id_a::IdA;
use robert_core::time::{Epoch, NtpSeconds};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::sync::Arc;

use crate::config::{JwtAlgorithm, JwtConfig};
use crate::keystore::JwtKeySet;

/// Why a JWT key could not be loaded or a token not verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The key file could not be read.
    #[error("cannot read JWT key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key is not a PKCS#8 key of the configured algorithm.
    #[error("JWT key {0}: not a PKCS#8 private key for the configured algorithm")]
    InvalidKey(String),
    /// No key is available for a token.
    #[error(
        "no {0} JWT key: configure jwt.{0}_key_file or let the key store generate one (`robert keys init`)"
    )]
    MissingKey(&'static str),
    /// A token is malformed, uses another algorithm, or its signature is wrong.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
}

enum Key {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
}

/// Signs tokens of one kind with one key and one algorithm.
pub struct JwtSigner {
    key: Key,
    /// `base64url(header) + "."`, computed once.
    header_prefix: String,
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl JwtSigner {
    fn new(key: Key, kid: Option<&str>) -> Self {
        let alg = match key {
            Key::Es256(_) => "ES256",
            Key::Rs256(_) => "RS256",
        };
        let header = match kid {
            Some(kid) => serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid}),
            None => serde_json::json!({"alg": alg, "typ": "JWT"}),
        };
        let mut header_prefix = b64url(header.to_string().as_bytes());
        header_prefix.push('.');
        Self { key, header_prefix }
    }

    /// An ES256 signer from a P-256 scalar.
    pub fn es256_from_scalar(scalar: &[u8; 32], kid: Option<&str>) -> Result<Self, JwtError> {
        let key = p256::ecdsa::SigningKey::from_slice(scalar)
            .map_err(|_| JwtError::InvalidKey("scalar".into()))?;
        Ok(Self::new(Key::Es256(key), kid))
    }

    /// An RS256 signer from a PKCS#8 DER RSA private key (as the key store
    /// holds it).
    pub fn rs256_from_der(der: &[u8], kid: Option<&str>) -> Result<Self, JwtError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        let k = rsa::PrivateKey::from_pkcs8_der(der)
            .map_err(|_| JwtError::InvalidKey("generated RS256 key".into()))?;
        Ok(Self::new(
            Key::Rs256(Box::new(rsa::pkcs1v15::SigningKey::<Sha256>::new(k))),
            kid,
        ))
    }

    /// A signer from a PKCS#8 private key, PEM or base64 DER (the reference's
    /// `robert.jwt.*.private-key` form), for the given algorithm.
    pub fn from_pkcs8(
        text: &str,
        alg: JwtAlgorithm,
        kid: Option<&str>,
        what: &str,
    ) -> Result<Self, JwtError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let invalid = || JwtError::InvalidKey(what.to_owned());
        let text = text.trim();
        let der = if text.starts_with("-----BEGIN") {
            let (_, der) = pem_rfc7468_decode(text).ok_or_else(invalid)?;
            zeroize::Zeroizing::new(der)
        } else {
            zeroize::Zeroizing::new(robert_core::b64::decode(text, "key").map_err(|_| invalid())?)
        };
        let key = match alg {
            JwtAlgorithm::ES256 => {
                Key::Es256(p256::ecdsa::SigningKey::from_pkcs8_der(&der).map_err(|_| invalid())?)
            }
            JwtAlgorithm::RS256 => {
                let k = rsa::PrivateKey::from_pkcs8_der(&der).map_err(|_| invalid())?;
                Key::Rs256(Box::new(rsa::pkcs1v15::SigningKey::<Sha256>::new(k)))
            }
        };
        Ok(Self::new(key, kid))
    }

    /// Reads a PKCS#8 PEM (or base64 DER) file.
    pub fn from_file(path: &Path, alg: JwtAlgorithm, kid: Option<&str>) -> Result<Self, JwtError> {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            JwtError::Read {
                path: path.display().to_string(),
                source,
            }
        })?);
        Self::from_pkcs8(&text, alg, kid, &path.display().to_string())
    }

    /// The algorithm.
    pub fn algorithm(&self) -> JwtAlgorithm {
        match self.key {
            Key::Es256(_) => JwtAlgorithm::ES256,
            Key::Rs256(_) => JwtAlgorithm::RS256,
        }
    }

    /// The public key as a PEM SubjectPublicKeyInfo, for token consumers.
    pub fn public_key_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        let pem = match &self.key {
            Key::Es256(k) => k
                .verifying_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF),
            Key::Rs256(k) => {
                let public: rsa::PublicKey = k.as_ref().as_ref().to_public_key();
                public.to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            }
        };
        pem.unwrap_or_default()
    }

    /// Signs serialized claims.
    pub fn sign_claims(&self, claims: &impl Serialize) -> String {
        // Our claim structs always serialize.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(self.header_prefix.len() + json.len() * 4 / 3 + 100);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let sig: Vec<u8> = match &self.key {
            Key::Es256(k) => {
                let s: p256::ecdsa::Signature = k.sign(token.as_bytes());
                s.to_bytes().to_vec()
            }
            Key::Rs256(k) => {
                let s: rsa::pkcs1v15::Signature =
                    k.sign_with_rng(&mut rand::rng(), token.as_bytes());
                rsa::signature::SignatureEncoding::to_vec(&s)
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut token);
        token
    }
}

/// Minimal RFC 7468 decoding (one PEM block) without pulling another crate.
fn pem_rfc7468_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let mut lines = text.lines().map(str::trim);
    let first = lines.next()?;
    let label = first
        .strip_prefix("-----BEGIN ")?
        .strip_suffix("-----")?
        .to_owned();
    let end = format!("-----END {label}-----");
    let mut body = zeroize::Zeroizing::new(String::new());
    for l in lines {
        if l == end {
            let der = robert_core::b64::decode(&body, "pem").ok()?;
            return Some((label, der));
        }
        body.push_str(l);
    }
    None
}

/// Verifies a token's signature with a pinned algorithm and returns its
/// claims. Used by tests and by consumers' tooling.
pub fn verify(
    token: &str,
    alg: JwtAlgorithm,
    public_key_pem: &str,
) -> Result<serde_json::Value, JwtError> {
    use p256::pkcs8::DecodePublicKey as _;
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Invalid("not three parts"));
    };
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| JwtError::Invalid("header encoding"))?,
    )
    .map_err(|_| JwtError::Invalid("header JSON"))?;
    let expected = match alg {
        JwtAlgorithm::ES256 => "ES256",
        JwtAlgorithm::RS256 => "RS256",
    };
    if header.get("alg").and_then(|a| a.as_str()) != Some(expected) {
        return Err(JwtError::Invalid("algorithm not accepted"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Invalid("signature encoding"))?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    let ok = match alg {
        JwtAlgorithm::ES256 => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(public_key_pem)
                .map_err(|_| JwtError::Invalid("public key"))?;
            let sig = p256::ecdsa::Signature::from_slice(&sig)
                .map_err(|_| JwtError::Invalid("signature"))?;
            vk.verify(signed, &sig).is_ok()
        }
        JwtAlgorithm::RS256 => {
            let pk = rsa::PublicKey::from_public_key_pem(public_key_pem)
                .map_err(|_| JwtError::Invalid("public key"))?;
            let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk);
            let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                .map_err(|_| JwtError::Invalid("signature"))?;
            vk.verify(signed, &sig).is_ok()
        }
    };
    if !ok {
        return Err(JwtError::Invalid("bad signature"));
    }
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(c)
            .map_err(|_| JwtError::Invalid("claims encoding"))?,
    )
    .map_err(|_| JwtError::Invalid("claims JSON"))
}

#[derive(Serialize)]
struct DeclarationClaims<'a> {
    jti: &'a str,
    iat: i64,
    iss: &'static str,
    #[serde(rename = "notificationDateTimestamp")]
    notification_date_timestamp: u64,
    #[serde(rename = "lastContactDateTimestamp")]
    last_contact_date_timestamp: u64,
}

#[derive(Serialize)]
struct AnalyticsClaims {
    iss: &'static str,
    iat: i64,
    exp: i64,
}

#[derive(Serialize)]
struct ReportClaims {
    iat: i64,
    exp: i64,
}

/// The three signers plus the per-minute analytics token cache.
pub struct Tokens {
    declaration: JwtSigner,
    analytics: JwtSigner,
    report: JwtSigner,
    analytics_lifetime_secs: i64,
    report_lifetime_secs: i64,
    analytics_cache: Mutex<Option<(i64, Arc<str>)>>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("algorithm", &self.declaration.algorithm())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// Builds the signers: from the configured key files, else from the key
    /// store's generated keys of the configured algorithm.
    pub fn from_config(cfg: &JwtConfig, generated: &JwtKeySet) -> Result<Self, JwtError> {
        type Stored<'a> = (
            &'a Option<zeroize::Zeroizing<[u8; 32]>>,
            &'a Option<zeroize::Zeroizing<Vec<u8>>>,
        );
        let load = |file: &Path,
                    (es256, rs256): Stored<'_>,
                    kid: Option<&str>,
                    name: &'static str|
         -> Result<JwtSigner, JwtError> {
            if !file.as_os_str().is_empty() {
                return JwtSigner::from_file(file, cfg.algorithm, kid);
            }
            match (cfg.algorithm, es256, rs256) {
                (JwtAlgorithm::ES256, Some(s), _) => JwtSigner::es256_from_scalar(s, kid),
                (JwtAlgorithm::RS256, _, Some(der)) => JwtSigner::rs256_from_der(der, kid),
                _ => Err(JwtError::MissingKey(name)),
            }
        };
        Ok(Self {
            declaration: load(
                &cfg.declaration_key_file,
                (&generated.declaration, &generated.declaration_rsa),
                Some(&cfg.declaration_kid),
                "declaration",
            )?,
            analytics: load(
                &cfg.analytics_key_file,
                (&generated.analytics, &generated.analytics_rsa),
                None,
                "analytics",
            )?,
            report: load(
                &cfg.report_key_file,
                (&generated.report, &generated.report_rsa),
                None,
                "report",
            )?,
            analytics_lifetime_secs: i64::try_from(cfg.analytics_lifetime_mins.saturating_mul(60))
                .unwrap_or(i64::MAX / 2),
            report_lifetime_secs: i64::try_from(cfg.report_lifetime_secs).unwrap_or(i64::MAX / 2),
            analytics_cache: Mutex::new(None),
        })
    }

    /// The signers, for publishing their public keys.
    pub fn signers(&self) -> [(&'static str, &JwtSigner); 3] {
        [
            ("declaration", &self.declaration),
            ("analytics", &self.analytics),
            ("report", &self.report),
        ]
    }

    /// `declarationToken` for a registration at risk.
    ///
    /// `jti` = lowercase hex SHA-256 of `base64(ID_A) ‖ "4" ‖ latestRiskEpoch`.
    pub fn declaration(
        &self,
        id_a: IdA,
        latest_risk_epoch: Epoch,
        notification: NtpSeconds,
        last_contact: NtpSeconds,
        now_unix: i64,
    ) -> String {
        let mut h = Sha256::new();
        h.update(id_a.to_base64().as_bytes());
        h.update(b"4");
        h.update(latest_risk_epoch.get().to_string().as_bytes());
        let jti = hex::encode(h.finalize());
        self.declaration.sign_claims(&DeclarationClaims {
            jti: &jti,
            iat: now_unix,
            iss: "tac",
            notification_date_timestamp: notification.get(),
            last_contact_date_timestamp: last_contact.get(),
        })
    }

    /// `analyticsToken`: identical for every request within a minute.
    pub fn analytics(&self, now_unix: i64) -> Arc<str> {
        let minute = now_unix.div_euclid(60) * 60;
        let mut cache = self
            .analytics_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((m, t)) = cache.as_ref()
            && *m == minute
        {
            return t.clone();
        }
        let token: Arc<str> = self
            .analytics
            .sign_claims(&AnalyticsClaims {
                iss: "robert-server",
                iat: minute,
                exp: minute + self.analytics_lifetime_secs + 60,
            })
            .into();
        *cache = Some((minute, token.clone()));
        token
    }

    /// `reportValidationToken`.
    pub fn report_validation(&self, now_unix: i64) -> String {
        self.report.sign_claims(&ReportClaims {
            iat: now_unix,
            exp: now_unix + self.report_lifetime_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let mut set = crate::keystore::KeySet::default();
        let d = robert_core::time::UtcDate::new(2024, 1, 1).unwrap();
        set.fill_missing(d, d, true, &mut rand::rng());
        let cfg = JwtConfig {
            algorithm: JwtAlgorithm::ES256,
            ..JwtConfig::default()
        };
        Tokens::from_config(&cfg, &set.jwt).unwrap()
    }

    #[test]
    fn declaration_claims_and_signature() {
        let t = tokens();
        let id = IdA::from_base64("30Liauw=").unwrap();
        let tok = t.declaration(
            id,
            Epoch(66855),
            NtpSeconds(3_860_000_100),
            NtpSeconds(3_859_948_800),
            1_651_000_000,
        );
        let pem = t.declaration.public_key_pem();
        let claims = verify(&tok, JwtAlgorithm::ES256, &pem).unwrap();
        // jti = sha256("30Liauw=" + "4" + "66855"), computed independently:
        // printf '30Liauw=466855' | sha256sum
        assert_eq!(
            claims["jti"],
            "974bfa9074e2d99ede452331ad23be6a67f94565496aa19ef1fef1263cf30cdd"
        );
        assert_eq!(claims["iss"], "tac");
        assert_eq!(claims["iat"], 1_651_000_000);
        assert_eq!(claims["notificationDateTimestamp"], 3_860_000_100u64);
        assert_eq!(claims["lastContactDateTimestamp"], 3_859_948_800u64);
        assert!(claims.get("exp").is_none());
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(tok.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "robert-declaration");
        // Pinned algorithm: an ES256 token is not accepted as RS256, and a
        // token signed by another key fails.
        assert!(verify(&tok, JwtAlgorithm::RS256, &pem).is_err());
        assert!(verify(&tok, JwtAlgorithm::ES256, &t.report.public_key_pem()).is_err());
        let mut forged = tok;
        forged.push('A');
        assert!(verify(&forged, JwtAlgorithm::ES256, &pem).is_err());
    }

    #[test]
    fn analytics_is_cached_per_minute() {
        let t = tokens();
        let a = t.analytics(1_700_000_040);
        let b = t.analytics(1_700_000_099);
        assert_eq!(a, b, "same minute, same token");
        let c = t.analytics(1_700_000_100);
        assert_ne!(a, c);
        let claims = verify(&a, JwtAlgorithm::ES256, &t.analytics.public_key_pem()).unwrap();
        assert_eq!(claims["iss"], "robert-server");
        assert_eq!(claims["iat"], 1_700_000_040i64 / 60 * 60);
        assert_eq!(claims["exp"], 1_700_000_040i64 / 60 * 60 + 360 * 60 + 60);
    }

    #[test]
    fn report_token() {
        let t = tokens();
        let tok = t.report_validation(1_700_000_000);
        let claims = verify(&tok, JwtAlgorithm::ES256, &t.report.public_key_pem()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"iat": 1_700_000_000i64, "exp": 1_700_000_300i64})
        );
    }

    /// One RSA key for the RS256 tests, generated once (it is slow).
    fn rsa_der() -> &'static [u8] {
        static DER: std::sync::OnceLock<zeroize::Zeroizing<Vec<u8>>> = std::sync::OnceLock::new();
        DER.get_or_init(|| crate::keystore::generate_rsa_jwt_key(&mut rand::rng()).unwrap())
    }

    fn split(token: &str) -> (&str, Vec<u8>) {
        let (signed, sig) = token.rsplit_once('.').unwrap();
        (signed, URL_SAFE_NO_PAD.decode(sig).unwrap())
    }

    /// The default is RS256 and the generated key store keys sign with it.
    #[test]
    fn rs256_is_the_default_and_uses_generated_keys() {
        assert_eq!(JwtConfig::default().algorithm, JwtAlgorithm::RS256);
        let mut set = JwtKeySet::default();
        assert!(matches!(
            Tokens::from_config(&JwtConfig::default(), &set),
            Err(JwtError::MissingKey("declaration"))
        ));
        let der = zeroize::Zeroizing::new(rsa_der().to_vec());
        set.declaration_rsa = Some(der.clone());
        set.analytics_rsa = Some(der.clone());
        set.report_rsa = Some(der);
        let t = Tokens::from_config(&JwtConfig::default(), &set).unwrap();
        let tok = t.report_validation(1_700_000_000);
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(tok.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "RS256");
        let claims = verify(&tok, JwtAlgorithm::RS256, &t.report.public_key_pem()).unwrap();
        assert_eq!(claims["exp"], 1_700_000_300i64);
    }

    /// Our RS256 tokens verify with an implementation that is not ours:
    /// ring (BoringSSL's RSA code) with the public key it derives itself
    /// from the private key, and, when installed, the `openssl` command with
    /// the PEM we publish for consumers (`robert keys show-public --jwt`).
    #[test]
    fn rs256_tokens_verify_with_independent_verifiers() {
        let der = rsa_der();
        let s = JwtSigner::rs256_from_der(der, Some("TousAntiCovidKID")).unwrap();
        let tok = s.sign_claims(&DeclarationClaims {
            jti: "974bfa9074e2d99ede452331ad23be6a67f94565496aa19ef1fef1263cf30cdd",
            iat: 1_651_000_000,
            iss: "tac",
            notification_date_timestamp: 3_860_000_100,
            last_contact_date_timestamp: 3_859_948_800,
        });
        let (signed, sig) = split(&tok);
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der).unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            ring::signature::KeyPair::public_key(&pair)
                .as_ref()
                .to_vec(),
        );
        public.verify(signed.as_bytes(), &sig).unwrap();
        let mut tampered = signed.as_bytes().to_vec();
        tampered[signed.len() - 1] ^= 1;
        assert!(public.verify(&tampered, &sig).is_err());
        // openssl, with the published SubjectPublicKeyInfo PEM.
        let dir = std::env::temp_dir().join(format!("robert-jwt-openssl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pub.pem"), s.public_key_pem()).unwrap();
        std::fs::write(dir.join("data"), signed).unwrap();
        std::fs::write(dir.join("sig"), &sig).unwrap();
        match std::process::Command::new("openssl")
            .args([
                "dgst",
                "-sha256",
                "-verify",
                "pub.pem",
                "-signature",
                "sig",
                "data",
            ])
            .current_dir(&dir)
            .output()
        {
            Ok(out) => assert!(
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
                "openssl: {out:?}"
            ),
            Err(e) => eprintln!("skipped the openssl check: {e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A token as the reference issued it (jjwt: header `{"type":"JWT",
    /// "kid":…,"alg":"RS256"}`, key given as base64 PKCS#8 DER in
    /// `robert.jwt.declare.private-key`), signed by ring, verifies with our
    /// verifier and the public key of the same configured key.
    #[test]
    fn reference_style_rs256_tokens_verify_with_ours() {
        let der = rsa_der();
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der).unwrap();
        let header = br#"{"type":"JWT","kid":"TousAntiCovidKID","alg":"RS256"}"#;
        let claims = br#"{"jti":"abc","iat":1651000000,"iss":"tac","notificationDateTimestamp":3860000100,"lastContactDateTimestamp":3859948800}"#;
        let signed = format!("{}.{}", b64url(header), b64url(claims));
        let mut sig = vec![0; pair.public().modulus_len()];
        pair.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &ring::rand::SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let token = format!("{signed}.{}", b64url(&sig));
        // The key in the reference's configuration format.
        let b64 = robert_core::b64::encode(der);
        let ours = JwtSigner::from_pkcs8(&b64, JwtAlgorithm::RS256, None, "test").unwrap();
        let got = verify(&token, JwtAlgorithm::RS256, &ours.public_key_pem()).unwrap();
        assert_eq!(got["iss"], "tac");
        assert_eq!(got["notificationDateTimestamp"], 3_860_000_100u64);
        // Pinned algorithm: not accepted as ES256; a flipped byte fails.
        assert!(verify(&token, JwtAlgorithm::ES256, &ours.public_key_pem()).is_err());
        let mut bad = token.into_bytes();
        let i = signed.len() + 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(verify(&bad, JwtAlgorithm::RS256, &ours.public_key_pem()).is_err());
    }

    #[test]
    fn rs256_from_pkcs8() {
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::PrivateKey::new(&mut rand::rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let s = JwtSigner::from_pkcs8(&pem, JwtAlgorithm::RS256, Some("k1"), "test").unwrap();
        let tok = s.sign_claims(&ReportClaims { iat: 1, exp: 2 });
        let claims = verify(&tok, JwtAlgorithm::RS256, &s.public_key_pem()).unwrap();
        assert_eq!(claims["exp"], 2);
        assert!(verify(&tok, JwtAlgorithm::ES256, &s.public_key_pem()).is_err());
        // The reference's form: base64 PKCS#8 DER without PEM armour.
        let der = key.to_pkcs8_der().unwrap();
        let b64 = robert_core::b64::encode(der.as_bytes());
        assert!(JwtSigner::from_pkcs8(&b64, JwtAlgorithm::RS256, None, "test").is_ok());
        assert!(JwtSigner::from_pkcs8(&b64, JwtAlgorithm::ES256, None, "test").is_err());
    }
}
