//! The two keys whose operations may run inside a token: the KEK and the
//! registration key pair.
//!
//! The server never needs their bytes, only two operations each:
//!
//! | key | operations |
//! |---|---|
//! | KEK | wrap / unwrap a registration's K_A and K_A_Tuples (`IV(12) ‖ AES-256-GCM ‖ tag(16)`, protocol.md §11) |
//! | registration key pair | the public key pk_S; ECDH with an app's key and the HMAC-SHA256 derivation of K_A and K_A_Tuples (protocol.md §3.2) |
//!
//! [`KeyEncryptionKey`] and [`RegistrationKey`] are those operations. The
//! in-memory keys of `robert-core` ([`Kek`], [`ServerKeyPair`]) implement
//! them for the file store; [`super::pkcs11`] implements them with a
//! PKCS#11 token, where the keys never leave the token. Both produce the
//! same bytes: a registration made with one answers to the other once the
//! same keys are in both.

use std::fmt;
use std::sync::Arc;

use rand::Rng as _;
use robert_core::keys::{Kek, KeyA, KeyATuples, WrappedKey};
use robert_core::registration::{ClientKeys, ServerKeyPair, encode_public_key};
use sha2::Digest as _;
use zeroize::Zeroizing;

/// Why a KEK or registration-key operation failed. Never contains key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyOpError {
    /// The wrapped key was altered or was wrapped under another KEK.
    #[error("the wrapped key does not open under this KEK")]
    Unwrap,
    /// The token failed or is unreachable (device, session, login): the
    /// operation may succeed later.
    #[error("key token unavailable: {0}")]
    Token(String),
}

/// A short fingerprint of a KEK: SHA-256 of the KEK's wrap of 32 zero bytes
/// under the all-zero IV, first 8 bytes. Equal KEKs give equal values;
/// computing it needs no access to the key bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KekCheckValue(pub [u8; 8]);

impl fmt::Debug for KekCheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KekCheckValue({self})")
    }
}

impl fmt::Display for KekCheckValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The KEK's operations.
pub trait KeyEncryptionKey: Send + Sync + fmt::Debug {
    /// Encrypts `key` under `iv`: `iv ‖ AES-256-GCM(KEK, key) ‖ tag`.
    fn wrap_with_iv(&self, iv: [u8; 12], key: &[u8; 32]) -> Result<WrappedKey, KeyOpError>;

    /// Decrypts a wrapped key.
    fn unwrap(&self, wrapped: &WrappedKey) -> Result<Zeroizing<[u8; 32]>, KeyOpError>;

    /// The key itself when it is held in memory (what the file store
    /// writes); `None` for a key that lives in a token.
    fn in_memory(&self) -> Option<&Kek>;

    /// Encrypts `key` under a fresh random IV.
    fn wrap(&self, key: &[u8; 32]) -> Result<WrappedKey, KeyOpError> {
        let mut iv = [0u8; 12];
        rand::rng().fill_bytes(&mut iv);
        self.wrap_with_iv(iv, key)
    }

    /// Unwraps a K_A.
    fn unwrap_key_a(&self, wrapped: &WrappedKey) -> Result<KeyA, KeyOpError> {
        self.unwrap(wrapped).map(|k| KeyA::from_bytes(*k))
    }

    /// Unwraps a K_A_Tuples.
    fn unwrap_key_a_tuples(&self, wrapped: &WrappedKey) -> Result<KeyATuples, KeyOpError> {
        self.unwrap(wrapped).map(|k| KeyATuples::from_bytes(*k))
    }

    /// The KEK's [`KekCheckValue`]. The all-zero IV is used for this one
    /// known plaintext only; a random wrap IV equals it with probability 2⁻⁹⁶.
    fn check_value(&self) -> Result<KekCheckValue, KeyOpError> {
        let w = self.wrap_with_iv([0; 12], &[0; 32])?;
        let digest = sha2::Sha256::digest(w.0);
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        Ok(KekCheckValue(out))
    }
}

/// The registration key pair's operations.
pub trait RegistrationKey: Send + Sync + fmt::Debug {
    /// The public key pk_S.
    fn public_key(&self) -> p256::PublicKey;

    /// ECDH with an app's public key, then K_A = HMAC-SHA256(secret, "mac")
    /// and K_A_Tuples = HMAC-SHA256(secret, "tuples").
    fn derive_client_keys(&self, client: &p256::PublicKey) -> Result<ClientKeys, KeyOpError>;

    /// The key pair itself when it is held in memory (what the file store
    /// writes); `None` for a key that lives in a token.
    fn in_memory(&self) -> Option<&ServerKeyPair>;

    /// pk_S as apps embed it: base64 SubjectPublicKeyInfo DER.
    fn public_key_base64(&self) -> String {
        encode_public_key(&self.public_key())
    }
}

/// A KEK shared by the ring, the batch and the key store.
pub type SharedKek = Arc<dyn KeyEncryptionKey>;

/// A registration key shared by the ring and the key store.
pub type SharedRegistrationKey = Arc<dyn RegistrationKey>;

impl KeyEncryptionKey for Kek {
    fn wrap_with_iv(&self, iv: [u8; 12], key: &[u8; 32]) -> Result<WrappedKey, KeyOpError> {
        Ok(Kek::wrap_with_iv(self, iv, key))
    }

    fn unwrap(&self, wrapped: &WrappedKey) -> Result<Zeroizing<[u8; 32]>, KeyOpError> {
        Kek::unwrap(self, wrapped).map_err(|_| KeyOpError::Unwrap)
    }

    fn in_memory(&self) -> Option<&Kek> {
        Some(self)
    }
}

impl RegistrationKey for ServerKeyPair {
    fn public_key(&self) -> p256::PublicKey {
        ServerKeyPair::public_key(self)
    }

    fn derive_client_keys(&self, client: &p256::PublicKey) -> Result<ClientKeys, KeyOpError> {
        Ok(ServerKeyPair::derive_client_keys(self, client))
    }

    fn in_memory(&self) -> Option<&ServerKeyPair> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_kek_check_value_tells_keks_apart() {
        let a = Kek::from_bytes([1; 32]);
        let b = Kek::from_bytes([2; 32]);
        let ca = KeyEncryptionKey::check_value(&a).unwrap();
        assert_eq!(
            ca,
            KeyEncryptionKey::check_value(&Kek::from_bytes([1; 32])).unwrap()
        );
        assert_ne!(ca, KeyEncryptionKey::check_value(&b).unwrap());
        assert_eq!(ca.to_string().len(), 16);
        let w = KeyEncryptionKey::wrap(&a, &[7; 32]).unwrap();
        assert_eq!(*KeyEncryptionKey::unwrap(&a, &w).unwrap(), [7; 32]);
        assert_eq!(
            KeyEncryptionKey::unwrap(&b, &w).unwrap_err(),
            KeyOpError::Unwrap
        );
    }
}
