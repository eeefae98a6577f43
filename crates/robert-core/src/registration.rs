//! Registration key agreement (protocol.md §3.2, §7).
//!
//! ```text
//! app:    ephemeral P-256 key pair; sends base64(SPKI DER, uncompressed point)
//! both:   secret     = x-coordinate of ECDH(app, server), 32 bytes, no KDF
//!         K_A        = HMAC-SHA256(key = secret, msg = "mac")
//!         K_A_Tuples = HMAC-SHA256(key = secret, msg = "tuples")
//! ```
//!
//! The labels are the implementation's (`"mac"`, `"tuples"`), not the spec's
//! ("authentication key", "encryption key"): only these interoperate.

use core::fmt;

use hmac::{KeyInit as _, Mac as _};
use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::{PublicKey, SecretKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::keys::{HmacSha256, KeyA, KeyATuples};
use crate::{Error, b64};

/// The keys both sides derive from a registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientKeys {
    /// K_A, the MAC key.
    pub key_a: KeyA,
    /// K_A_Tuples, the bundle encryption key.
    pub key_a_tuples: KeyATuples,
}

impl ClientKeys {
    /// Derives both keys from the raw ECDH secret.
    pub fn derive(shared_secret: &[u8; 32]) -> Self {
        Self {
            key_a: KeyA::from_bytes(label(shared_secret, b"mac")),
            key_a_tuples: KeyATuples::from_bytes(label(shared_secret, b"tuples")),
        }
    }
}

fn label(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    m.update(label);
    m.finalize().into_bytes().into()
}

/// Parses a base64 X.509 SubjectPublicKeyInfo P-256 public key.
pub fn parse_public_key(spki_b64: &str) -> Result<PublicKey, Error> {
    if spki_b64.len() > 1024 {
        return Err(Error::InvalidPublicKey);
    }
    let der = b64::decode(spki_b64, "public key")?;
    PublicKey::from_public_key_der(&der).map_err(|_| Error::InvalidPublicKey)
}

/// Encodes a public key as base64 SPKI DER with an uncompressed point: the
/// form apps embed and send (`MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE…`).
pub fn encode_public_key(key: &PublicKey) -> String {
    match key.to_public_key_der() {
        Ok(doc) => b64::encode(doc.as_bytes()),
        Err(_) => unreachable!("a valid P-256 point always encodes"),
    }
}

/// The server's static registration key pair `(sk_S, pk_S)` (alias `register-key`).
#[derive(Clone)]
pub struct ServerKeyPair {
    secret: SecretKey,
}

impl fmt::Debug for ServerKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeyPair { .. }")
    }
}

impl ServerKeyPair {
    /// Draws a fresh key pair.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        Self {
            secret: SecretKey::generate_from_rng(rng),
        }
    }

    /// Imports the private key as a raw 32-byte big-endian scalar.
    pub fn from_scalar_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != 32 {
            return Err(Error::InvalidPrivateKey);
        }
        SecretKey::from_slice(bytes)
            .map(|secret| Self { secret })
            .map_err(|_| Error::InvalidPrivateKey)
    }

    /// Imports the private key from PKCS#8 DER (as `openssl pkcs8 -topk8 -outform DER` writes).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        SecretKey::from_pkcs8_der(der)
            .map(|secret| Self { secret })
            .map_err(|_| Error::InvalidPrivateKey)
    }

    /// The private key as PKCS#8 DER, for the key store only.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        match self.secret.to_pkcs8_der() {
            Ok(doc) => Zeroizing::new(doc.as_bytes().to_vec()),
            Err(_) => unreachable!("a valid P-256 key always encodes"),
        }
    }

    /// The private key as a raw 32-byte scalar, for the key store only.
    pub fn to_scalar_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.secret.to_bytes().into())
    }

    /// The public key pk_S.
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// pk_S as apps embed it: base64 SPKI DER.
    pub fn public_key_base64(&self) -> String {
        encode_public_key(&self.public_key())
    }

    /// Derives a new registration's keys from the app's public key.
    pub fn derive_client_keys(&self, client_public_key: &PublicKey) -> ClientKeys {
        let shared = p256::ecdh::diffie_hellman(
            self.secret.to_nonzero_scalar(),
            client_public_key.as_affine(),
        );
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(shared.raw_secret_bytes());
        ClientKeys::derive(&raw)
    }
}

/// The app's side of the key agreement: an ephemeral key pair that is used
/// once and dropped (zeroized) after [`ClientKeyAgreement::finish`].
pub struct ClientKeyAgreement {
    secret: EphemeralSecret,
}

impl fmt::Debug for ClientKeyAgreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKeyAgreement { .. }")
    }
}

impl ClientKeyAgreement {
    /// Draws the ephemeral key pair.
    pub fn new(rng: &mut impl CryptoRng) -> Self {
        Self {
            secret: EphemeralSecret::generate_from_rng(rng),
        }
    }

    /// The `clientPublicECDHKey` field of `/register`.
    pub fn public_key_base64(&self) -> String {
        encode_public_key(&self.secret.public_key())
    }

    /// Derives K_A and K_A_Tuples against the server's public key, consuming
    /// (and so erasing) the ephemeral secret.
    pub fn finish(self, server_public_key: &PublicKey) -> ClientKeys {
        let shared = self.secret.diffie_hellman(server_public_key);
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(shared.raw_secret_bytes());
        ClientKeys::derive(&raw)
    }
}
