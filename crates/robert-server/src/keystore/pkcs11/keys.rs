//! The KEK and the registration key as token objects.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use robert_core::keys::{Kek, KeyA, KeyATuples, WrappedKey};
use robert_core::registration::{ClientKeys, ServerKeyPair};
use zeroize::{Zeroize as _, Zeroizing};

use super::token::{Token, op_error};
use crate::keystore::{KeyEncryptionKey, KeyOpError, RegistrationKey};

/// GCM tag length in bits (the 16-byte tag of the stored format).
const TAG_BITS: u64 = 128;

/// A token key used through a session-object copy when the token allows
/// one: SoftHSM2 re-reads its object files on every use of a token object,
/// which doubles the cost of an unwrap (18 µs → 8 µs measured). The copy
/// keeps the key's attributes (sensitive, never extractable), lives in the
/// token like the original, and is destroyed with this handle. If it is
/// lost (the anchor session was reopened), the operation falls back to
/// the token object and a new copy is made.
pub(super) struct TokenKey {
    token: Arc<Token>,
    object: ObjectHandle,
    copy: Mutex<Option<ObjectHandle>>,
}

impl TokenKey {
    pub(super) fn new(token: Arc<Token>, object: ObjectHandle) -> Self {
        let copy = token.session_copy(object);
        Self {
            token,
            object,
            copy: Mutex::new(copy),
        }
    }

    /// The handle operations use: the session copy, else the token object.
    pub(super) fn current(&self) -> ObjectHandle {
        self.copy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(self.object)
    }

    /// Runs `op` with the key's handle on a pooled session.
    fn with_key<T>(
        &self,
        op: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        let h = self.current();
        match self.token.with_session(|s| op(s, h)) {
            Err(CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _))
                if h != self.object =>
            {
                let r = self.token.with_session(|s| op(s, self.object));
                *self.copy.lock().unwrap_or_else(PoisonError::into_inner) =
                    self.token.session_copy(self.object);
                r
            }
            r => r,
        }
    }

    pub(super) fn token(&self) -> &Token {
        &self.token
    }
}

impl Drop for TokenKey {
    fn drop(&mut self) {
        if let Some(h) = self
            .copy
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            self.token.destroy(h);
        }
    }
}

/// The KEK: an AES-256 key that never leaves the token. Wrapping is
/// `CKM_AES_GCM` with a caller-chosen random IV, so the output is the file
/// store's `IV ‖ ciphertext ‖ tag` byte for byte.
pub struct TokenKek {
    pub(super) key: TokenKey,
}

impl fmt::Debug for TokenKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKek({})", self.key.token().location())
    }
}

impl KeyEncryptionKey for TokenKek {
    fn wrap_with_iv(&self, iv: [u8; 12], key: &[u8; 32]) -> Result<WrappedKey, KeyOpError> {
        let mut out = self
            .key
            .with_key(|s, h| {
                let mut iv = iv;
                let params = GcmParams::new(&mut iv, &[], TAG_BITS.into())?;
                s.encrypt(&Mechanism::AesGcm(params), h, key)
            })
            .map_err(|e| match op_error(e) {
                // An encryption has no tag to fail: report the token.
                KeyOpError::Unwrap => KeyOpError::Token("AES-GCM encryption failed".into()),
                other => other,
            })?;
        let result = if out.len() == WrappedKey::LEN - 12 {
            let mut w = [0u8; WrappedKey::LEN];
            w[..12].copy_from_slice(&iv);
            w[12..].copy_from_slice(&out);
            Ok(WrappedKey(w))
        } else {
            Err(KeyOpError::Token(format!(
                "AES-GCM returned {} bytes, expected {}",
                out.len(),
                WrappedKey::LEN - 12
            )))
        };
        out.zeroize();
        result
    }

    /// A failed tag check is `CKR_ENCRYPTED_DATA_INVALID` on most tokens but
    /// a bare `CKR_GENERAL_ERROR` on SoftHSM. Any failure other than the
    /// former is therefore followed by a probe (a wrap and unwrap of a
    /// known value): if the token handles that, the data was at fault
    /// ([`KeyOpError::Unwrap`]); if not, the token is ([`KeyOpError::Token`]).
    fn unwrap(&self, wrapped: &WrappedKey) -> Result<Zeroizing<[u8; 32]>, KeyOpError> {
        let mut plain = match self.decrypt(wrapped).map_err(op_error) {
            Ok(p) => p,
            Err(KeyOpError::Token(cause)) => {
                let probe = self.wrap_with_iv([0xA5; 12], &[0x5A; 32]);
                return Err(match probe.map(|w| self.decrypt(&w)) {
                    Ok(Ok(mut p)) if p.as_slice() == [0x5A; 32] => {
                        p.zeroize();
                        KeyOpError::Unwrap
                    }
                    _ => KeyOpError::Token(cause),
                });
            }
            Err(e) => return Err(e),
        };
        let result = <[u8; 32]>::try_from(plain.as_slice())
            .map(Zeroizing::new)
            .map_err(|_| KeyOpError::Unwrap);
        plain.zeroize();
        result
    }

    fn in_memory(&self) -> Option<&Kek> {
        None
    }
}

impl TokenKek {
    fn decrypt(&self, wrapped: &WrappedKey) -> Result<Vec<u8>, CkError> {
        self.key.with_key(|s, h| {
            let mut iv: [u8; 12] = [0; 12];
            iv.copy_from_slice(&wrapped.0[..12]);
            let params = GcmParams::new(&mut iv, &[], TAG_BITS.into())?;
            s.decrypt(&Mechanism::AesGcm(params), h, &wrapped.0[12..])
        })
    }
}

/// The registration key pair: a P-256 private key that never leaves the
/// token, and its public key (read once, from the public-key object).
pub struct TokenRegistrationKey {
    pub(super) private: TokenKey,
    pub(super) public: p256::PublicKey,
}

impl fmt::Debug for TokenRegistrationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenRegistrationKey({})",
            self.private.token().location()
        )
    }
}

impl RegistrationKey for TokenRegistrationKey {
    fn public_key(&self) -> p256::PublicKey {
        self.public
    }

    /// `CKM_ECDH1_DERIVE` (no KDF) into a sensitive session secret, then two
    /// `CKM_SHA256_HMAC` signatures of "mac" and "tuples" with it; the
    /// shared secret stays in the token and is destroyed at once.
    fn derive_client_keys(&self, client: &p256::PublicKey) -> Result<ClientKeys, KeyOpError> {
        use p256::elliptic_curve::sec1::ToSec1Point as _;
        let point = client.to_sec1_point(false);
        let (mut mac, mut tuples) = self
            .private
            .with_key(|s, private| {
                let params = Ecdh1DeriveParams::new(EcKdf::null(), point.as_bytes());
                let secret = s.derive_key(
                    &Mechanism::Ecdh1Derive(params),
                    private,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::GENERIC_SECRET),
                        Attribute::Token(false),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Sign(true),
                        Attribute::ValueLen(32.into()),
                    ],
                )?;
                let macs = s
                    .sign(&Mechanism::Sha256Hmac, secret, b"mac")
                    .and_then(|a| Ok((a, s.sign(&Mechanism::Sha256Hmac, secret, b"tuples")?)));
                let destroyed = s.destroy_object(secret);
                let macs = macs?;
                destroyed?;
                Ok(macs)
            })
            .map_err(|e| KeyOpError::Token(e.to_string()))?;
        let result = match (
            <[u8; 32]>::try_from(mac.as_slice()),
            <[u8; 32]>::try_from(tuples.as_slice()),
        ) {
            (Ok(a), Ok(t)) => Ok(ClientKeys {
                key_a: KeyA::from_bytes(a),
                key_a_tuples: KeyATuples::from_bytes(t),
            }),
            _ => Err(KeyOpError::Token(
                "HMAC-SHA256 returned a wrong length".into(),
            )),
        };
        mac.zeroize();
        tuples.zeroize();
        result
    }

    fn in_memory(&self) -> Option<&ServerKeyPair> {
        None
    }
}
