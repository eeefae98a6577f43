//! The server's long-term keys (protocol.md §3) and where they live.
//!
//! | key | size | use |
//! |---|---|---|
//! | K_S, one per UTC day | 192 bits | SKINNY-64-192 key of that day's EBIDs |
//! | K_G | AES-256 | encrypts the country code into the ECC |
//! | registration key pair | P-256 | ECDH with the apps at `/register` |
//! | KEK | AES-256-GCM | wraps each registration's K_A and K_A_Tuples at rest |
//! | JWT keys (optional) | RSA-2048 or P-256 | RS256 (default) or ES256 signatures of the tokens, when not configured from files |
//!
//! A [`KeyStore`] persists a [`KeySet`]. Two implementations:
//! [`file::FileKeyStore`], a passphrase-encrypted file (Argon2id +
//! AES-256-GCM, the default), and [`pkcs11::Pkcs11KeyStore`], a PKCS#11
//! token (an HSM, or SoftHSM2) where the KEK and the registration private
//! key are generated and used without ever leaving the token. The KEK and
//! the registration key are reached through their operations only
//! ([`sealed::KeyEncryptionKey`], [`sealed::RegistrationKey`]); K_S, K_G and
//! the JWT keys are read into memory (SKINNY is not a token mechanism).
//! The running server works from a [`KeyRing`], an immutable snapshot with
//! every key prepared (SKINNY round keys, AES schedules, token handles),
//! reloaded when the store changes.
//!
//! Key bytes never appear in logs, errors or `Debug` output.

pub mod admin;
pub mod file;
pub mod pkcs11;
pub mod sealed;
#[cfg(test)]
mod store_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rand::CryptoRng;
use robert_core::keys::{Kek, KeyG, KeyS};
use robert_core::registration::ServerKeyPair;
use robert_core::time::UtcDate;
use zeroize::Zeroizing;

pub use sealed::{
    KekCheckValue, KeyEncryptionKey, KeyOpError, RegistrationKey, SharedKek, SharedRegistrationKey,
};

/// Why a key store operation failed. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The key store does not exist yet.
    #[error("key store {0} does not exist (create it with `robert keys init`)")]
    NotFound(String),
    /// The passphrase is wrong or the file was altered.
    #[error("cannot decrypt key store {0}: wrong passphrase or corrupted file")]
    Decrypt(String),
    /// The file is not a key store of a version we read.
    #[error("key store {path} is malformed: {reason}")]
    Malformed {
        /// The store.
        path: String,
        /// What is wrong (never key bytes).
        reason: String,
    },
    /// No PKCS#11 PIN is available.
    #[error("no PKCS#11 PIN: set ROBERT_PKCS11_PIN or keys.pkcs11.pin_file ({0})")]
    NoPin(String),
    /// No passphrase is available.
    #[error(
        "no key store passphrase: set ROBERT_KEYSTORE_PASSPHRASE or create the passphrase file {0}"
    )]
    NoPassphrase(String),
    /// Reading or writing failed.
    #[error("key store I/O on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A required key is missing.
    #[error("the key store has no {0} (run `robert keys init` or `robert keys import`)")]
    Missing(&'static str),
    /// An imported value is not a valid key.
    #[error("invalid {what}: {reason}")]
    InvalidKey {
        /// Which key.
        what: String,
        /// Why (never the value).
        reason: String,
    },
    /// An import would replace an existing, different key.
    #[error("the key store already holds a different {0} (use --force to replace it)")]
    Conflict(String),
    /// Key derivation failed (bad Argon2 parameters).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// A key that lives in a token cannot be written elsewhere.
    #[error("the {0} lives in a PKCS#11 token and cannot be exported to a file key store")]
    NotExportable(&'static str),
    /// The PKCS#11 module, token or session failed.
    #[error("PKCS#11 token: {0}")]
    Token(String),
}

impl From<KeyOpError> for KeyStoreError {
    fn from(e: KeyOpError) -> Self {
        Self::Token(e.to_string())
    }
}

/// Where a key store passphrase or PIN came from (never the secret).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// This environment variable.
    Env(&'static str),
    /// An existing file.
    File(std::path::PathBuf),
    /// A file generated just now (mode 0600).
    Generated(std::path::PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(var) => write!(f, "taken from {var}"),
            Self::File(p) => write!(f, "read from {}", p.display()),
            Self::Generated(p) => write!(f, "generated in {}", p.display()),
        }
    }
}

/// Everything a key store holds.
#[derive(Clone, Default)]
pub struct KeySet {
    /// K_S by UTC date.
    pub server_keys: BTreeMap<UtcDate, KeyS>,
    /// K_G.
    pub key_g: Option<KeyG>,
    /// The KEK: in memory (file store) or a token key.
    pub kek: Option<SharedKek>,
    /// The registration key pair: in memory (file store) or a token key.
    pub registration: Option<SharedRegistrationKey>,
    /// JWT signing keys generated on first start (RS256 and/or ES256).
    pub jwt: JwtKeySet,
}

/// Generated JWT signing keys, one per token kind and algorithm: ES256 keys
/// as P-256 scalars, RS256 keys as PKCS#8 DER (RSA-2048).
#[derive(Clone, Default)]
pub struct JwtKeySet {
    /// ES256: signs `declarationToken`.
    pub declaration: Option<Zeroizing<[u8; 32]>>,
    /// ES256: signs `analyticsToken`.
    pub analytics: Option<Zeroizing<[u8; 32]>>,
    /// ES256: signs `reportValidationToken`.
    pub report: Option<Zeroizing<[u8; 32]>>,
    /// RS256: signs `declarationToken` (PKCS#8 DER).
    pub declaration_rsa: Option<Zeroizing<Vec<u8>>>,
    /// RS256: signs `analyticsToken` (PKCS#8 DER).
    pub analytics_rsa: Option<Zeroizing<Vec<u8>>>,
    /// RS256: signs `reportValidationToken` (PKCS#8 DER).
    pub report_rsa: Option<Zeroizing<Vec<u8>>>,
}

/// Which JWT keys the key store must generate for a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneratedJwtKeys {
    /// Every token key comes from a file.
    None,
    /// ES256 keys (P-256 scalars).
    Es256,
    /// RS256 keys (RSA-2048, PKCS#8 DER).
    Rs256,
}

/// Size of generated RS256 keys (the reference's `jwt_keygen` made 2048-bit keys).
pub const RSA_JWT_BITS: usize = 2048;

/// A new RSA private key for RS256 tokens, as PKCS#8 DER.
pub fn generate_rsa_jwt_key(rng: &mut impl CryptoRng) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::PrivateKey::new(rng, RSA_JWT_BITS).map_err(|e| KeyStoreError::InvalidKey {
        what: "generated RSA JWT key".into(),
        reason: e.to_string(),
    })?;
    let der = key.to_pkcs8_der().map_err(|e| KeyStoreError::InvalidKey {
        what: "generated RSA JWT key".into(),
        reason: e.to_string(),
    })?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

/// Checks that `der` is a PKCS#8 RSA private key (for loading a store).
pub fn check_rsa_jwt_key(der: &[u8]) -> bool {
    use rsa::pkcs8::DecodePrivateKey as _;
    rsa::PrivateKey::from_pkcs8_der(der).is_ok()
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("server_key_days", &self.server_keys.len())
            .field("first_day", &self.server_keys.keys().next())
            .field("last_day", &self.server_keys.keys().next_back())
            .field("key_g", &self.key_g.is_some())
            .field("kek", &self.kek.is_some())
            .field("registration", &self.registration.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for JwtKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKeySet { .. }")
    }
}

fn random_scalar(rng: &mut impl CryptoRng) -> Zeroizing<[u8; 32]> {
    // A P-256 scalar drawn through the curve library, so it is always valid.
    ServerKeyPair::generate(rng).to_scalar_bytes()
}

impl KeySet {
    /// Adds whatever is missing for a serving key store: K_G, KEK, the
    /// registration key pair, K_S for `from..=to`, and (when `with_jwt`) the
    /// three ES256 JWT keys. Existing keys are kept. Returns what was added.
    pub fn fill_missing(
        &mut self,
        from: UtcDate,
        to: UtcDate,
        with_jwt: bool,
        rng: &mut impl CryptoRng,
    ) -> Vec<String> {
        let mut added = Vec::new();
        if self.key_g.is_none() {
            self.key_g = Some(KeyG::generate(rng));
            added.push("K_G".to_owned());
        }
        if self.kek.is_none() {
            self.kek = Some(Arc::new(Kek::generate(rng)));
            added.push("KEK".to_owned());
        }
        if self.registration.is_none() {
            self.registration = Some(Arc::new(ServerKeyPair::generate(rng)));
            added.push("registration key pair".to_owned());
        }
        let mut day = from;
        while day <= to {
            if let std::collections::btree_map::Entry::Vacant(e) = self.server_keys.entry(day) {
                e.insert(KeyS::generate(rng));
                added.push(format!("K_S {day}"));
            }
            day = day.add_days(1);
        }
        if with_jwt {
            for (slot, name) in [
                (&mut self.jwt.declaration, "JWT declaration key"),
                (&mut self.jwt.analytics, "JWT analytics key"),
                (&mut self.jwt.report, "JWT report key"),
            ] {
                if slot.is_none() {
                    *slot = Some(random_scalar(rng));
                    added.push(name.to_owned());
                }
            }
        }
        added
    }

    /// Adds the three RS256 JWT keys if they are missing (RSA-2048; about a
    /// second of CPU in all). Returns what was added.
    pub fn fill_missing_rsa_jwt(
        &mut self,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<String>, KeyStoreError> {
        let mut added = Vec::new();
        for (slot, name) in [
            (&mut self.jwt.declaration_rsa, "JWT declaration key (RS256)"),
            (&mut self.jwt.analytics_rsa, "JWT analytics key (RS256)"),
            (&mut self.jwt.report_rsa, "JWT report key (RS256)"),
        ] {
            if slot.is_none() {
                *slot = Some(generate_rsa_jwt_key(rng)?);
                added.push(name.to_owned());
            }
        }
        Ok(added)
    }

    /// Deletes K_S of days before `keep_from`. Returns the deleted dates.
    pub fn prune_before(&mut self, keep_from: UtcDate) -> Vec<UtcDate> {
        let old: Vec<UtcDate> = self
            .server_keys
            .range(..keep_from)
            .map(|(d, _)| *d)
            .collect();
        for d in &old {
            self.server_keys.remove(d);
        }
        old
    }
}

/// Persistent storage of a [`KeySet`].
///
/// Implementations must make [`KeyStore::save`] atomic: a crash leaves either
/// the old or the new set, never a mix.
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// A human-readable location (for messages; never secret).
    fn location(&self) -> String;

    /// Whether the store exists.
    fn exists(&self) -> bool;

    /// Reads the whole set.
    fn load(&self) -> Result<KeySet, KeyStoreError>;

    /// Replaces the whole set (creating the store if needed).
    fn save(&self, keys: &KeySet) -> Result<(), KeyStoreError>;

    /// An opaque token that changes whenever the stored set changes, so the
    /// server reloads only when needed. `None` means "unknown: reload".
    fn generation(&self) -> Option<u64>;

    /// Creates a new KEK where this store keeps it. The default draws it in
    /// memory, to be written by the next [`KeyStore::save`]; a token store
    /// generates it inside the token, non-extractable, at once.
    fn generate_kek(&self) -> Result<SharedKek, KeyStoreError> {
        Ok(Arc::new(Kek::generate(&mut rand::rng())))
    }

    /// Creates a new registration key pair where this store keeps it (see
    /// [`KeyStore::generate_kek`]).
    fn generate_registration_key(&self) -> Result<SharedRegistrationKey, KeyStoreError> {
        Ok(Arc::new(ServerKeyPair::generate(&mut rand::rng())))
    }
}

/// The keys the server works with: an immutable, prepared snapshot of a
/// [`KeySet`] that has every key a server needs.
#[derive(Clone)]
pub struct KeyRing {
    server_keys: BTreeMap<UtcDate, KeyS>,
    key_g: KeyG,
    kek: SharedKek,
    registration: SharedRegistrationKey,
    jwt: JwtKeySet,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("server_key_days", &self.server_keys.len())
            .field("first_day", &self.server_keys.keys().next())
            .field("last_day", &self.server_keys.keys().next_back())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Builds a ring from a set; fails if K_G, the KEK or the registration key is missing.
    pub fn from_set(set: KeySet) -> Result<Self, KeyStoreError> {
        let key_g = set
            .key_g
            .ok_or(KeyStoreError::Missing("K_G (federation key)"))?;
        Ok(Self {
            key_g,
            kek: set
                .kek
                .ok_or(KeyStoreError::Missing("KEK (key-encryption key)"))?,
            registration: set
                .registration
                .ok_or(KeyStoreError::Missing("registration key pair"))?,
            server_keys: set.server_keys,
            jwt: set.jwt,
        })
    }

    /// The K_S of a UTC date.
    pub fn server_key(&self, day: UtcDate) -> Option<&KeyS> {
        self.server_keys.get(&day)
    }

    /// Every K_S, by date.
    pub fn server_keys(&self) -> &BTreeMap<UtcDate, KeyS> {
        &self.server_keys
    }

    /// K_G.
    pub fn key_g(&self) -> &KeyG {
        &self.key_g
    }

    /// The KEK's operations.
    pub fn kek(&self) -> &SharedKek {
        &self.kek
    }

    /// The registration key pair's operations.
    pub fn registration(&self) -> &SharedRegistrationKey {
        &self.registration
    }

    /// Generated JWT keys.
    pub fn jwt(&self) -> &JwtKeySet {
        &self.jwt
    }

    /// The keys the risk batch needs.
    pub fn batch_keys(&self) -> crate::batch::BatchKeys {
        crate::batch::BatchKeys {
            kek: self.kek.clone(),
            key_g: self.key_g.clone(),
            day_keys: self.server_keys.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_prune() {
        let mut rng = rand::rng();
        let mut set = KeySet::default();
        let d0 = UtcDate::new(2024, 2, 27).unwrap();
        let added = set.fill_missing(d0, d0.add_days(3), true, &mut rng);
        assert_eq!(added.len(), 3 + 4 + 3);
        assert_eq!(set.server_keys.len(), 4);
        assert!(
            set.server_keys
                .contains_key(&UtcDate::new(2024, 3, 1).unwrap())
        );
        let kg = set.key_g.clone();
        assert!(
            set.fill_missing(d0, d0.add_days(3), true, &mut rng)
                .is_empty()
        );
        assert_eq!(set.key_g, kg, "existing keys are kept");
        assert_eq!(set.prune_before(d0.add_days(2)).len(), 2);
        assert_eq!(set.server_keys.len(), 2);
        let dbg = format!("{set:?}");
        assert!(dbg.contains("server_key_days: 2"), "{dbg}");
        let ring = KeyRing::from_set(set).unwrap();
        assert!(ring.server_key(d0.add_days(2)).is_some());
        assert!(ring.server_key(d0).is_none());
        assert!(matches!(
            KeyRing::from_set(KeySet::default()),
            Err(KeyStoreError::Missing(_))
        ));
    }
}
