//! The built-in captcha with its challenges in the database
//! (`captcha.state = database`, the default on PostgreSQL): a challenge made
//! on one node is fetched and answered on any other, and consumed once
//! whichever node checks it.
//!
//! * A challenge is a random 32-byte seed. Its answer and its media are
//!   derived from the seed ([`derive`]), so the database holds the seed
//!   only, sealed with AES-256-GCM under a key derived from the KEK (the id
//!   and kind as associated data): neither the answer nor the seed is ever
//!   stored in clear, and a row moved under another id does not open.
//! * The client's address is stored as a keyed hash (HMAC-SHA-256 under
//!   another key derived from the KEK, 16 bytes), for the per-client quota.
//! * A check deletes the row and reads it back in one statement (`DELETE …
//!   RETURNING`): of concurrent checks on several nodes exactly one sees
//!   the challenge, right or wrong.
//! * Expired rows are swept at each creation and by the server's
//!   maintenance task.
//! * Every node derives the same keys: they share the key store (or HSM).
//!   A database failure is [`CaptchaError::Unavailable`] (503 with
//!   `Retry-After`), never a 500.
//!
//! Rendered PNGs are cached per node (the same seed renders the same bytes
//! on every node; the cache is checked only after the row is found).

use std::sync::{Arc, Mutex};

use aes_gcm::aead::AeadInOut as _;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use robert_store::{CaptchaBounds, CaptchaInsert, NewCaptcha, SharedState};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::audio::{self, AudioLocale};
use super::builtin::{BuiltinLimits, ImageCache, render_png_with};
use super::{CaptchaError, CaptchaKind, font};
use crate::client::ClientKey;
use crate::keystore::{KeyEncryptionKey, KeyOpError};

/// The IV of the one KEK operation the captcha keys are derived from (never
/// used by a wrap: random wrap IVs equal it with probability 2⁻⁹⁶).
const DERIVE_IV: [u8; 12] = *b"robertcaptch";

/// Length of a sealed seed: nonce, seed, tag.
const SEALED_LEN: usize = 12 + 32 + 16;

/// Seconds a client is told to wait when the database fails.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// The keys a node derives from the KEK for the state it shares with the
/// other nodes: the seal of captcha seeds, and the keyed hashes of client
/// addresses (one key for captcha quotas, one for rate limits).
pub struct CaptchaKeys {
    seal: Zeroizing<[u8; 32]>,
    client: Zeroizing<[u8; 32]>,
    rate: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for CaptchaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaptchaKeys(..)")
    }
}

impl CaptchaKeys {
    /// Derives the keys from `kek`: one deterministic AES-256-GCM
    /// encryption under the KEK (a PRF of the KEK, done in the token for an
    /// HSM), hashed with a label per key. Every node with the same KEK
    /// derives the same keys.
    pub fn derive(kek: &dyn KeyEncryptionKey) -> Result<Self, KeyOpError> {
        let w = kek.wrap_with_iv(DERIVE_IV, b"robert-server/v1/captcha-keys/--")?;
        let key = |label: &[u8]| {
            let mut h = sha2::Sha256::new();
            h.update(label);
            h.update(w.0);
            Zeroizing::new(<[u8; 32]>::from(h.finalize()))
        };
        Ok(Self {
            seal: key(b"robert-server/v1/captcha-seal"),
            client: key(b"robert-server/v1/captcha-client"),
            rate: key(b"robert-server/v1/rate-limit-client"),
        })
    }

    /// Keys for tests, from fixed bytes.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub fn for_tests(bytes: [u8; 32]) -> Self {
        let (mut c, mut r) = (bytes, bytes);
        c[0] ^= 0xFF;
        r[0] ^= 0x0F;
        Self {
            seal: Zeroizing::new(bytes),
            client: Zeroizing::new(c),
            rate: Zeroizing::new(r),
        }
    }

    /// The keyed hash of a client for the captcha quota (16 bytes).
    pub fn client_hash(&self, client: ClientKey) -> Vec<u8> {
        Self::hash(&self.client[..], client)
    }

    /// The keyed hash of a client for the rate limits (16 bytes).
    pub fn rate_hash(&self, client: ClientKey) -> Vec<u8> {
        Self::hash(&self.rate[..], client)
    }

    fn hash(key: &[u8], client: ClientKey) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(9);
        match client {
            ClientKey::V4(a) => {
                bytes.push(4);
                bytes.extend_from_slice(&a);
            }
            ClientKey::V6(p) => {
                bytes.push(6);
                bytes.extend_from_slice(&p);
            }
            ClientKey::Unknown => bytes.push(0),
        }
        hmac_sha256(key, &bytes)[..16].to_vec()
    }

    fn aad(id: &str, kind: i64) -> Vec<u8> {
        let mut aad = kind.to_be_bytes().to_vec();
        aad.extend_from_slice(id.as_bytes());
        aad
    }

    fn seal(&self, id: &str, kind: i64, seed: &[u8; 32]) -> Result<Vec<u8>, CaptchaError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = seed.to_vec();
        let tag = Aes256Gcm::new(&(*self.seal).into())
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                &Self::aad(id, kind),
                buf.as_mut_slice().into(),
            )
            .map_err(|_| CaptchaError::Render)?;
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The seed of a sealed row, or `None` if it does not open (altered, or
    /// sealed under another KEK).
    fn open(&self, id: &str, kind: i64, sealed: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
        if sealed.len() != SEALED_LEN {
            return None;
        }
        let nonce = Nonce::try_from(&sealed[..12]).ok()?;
        let tag = aes_gcm::Tag::try_from(&sealed[44..]).ok()?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&sealed[12..44]);
        Aes256Gcm::new(&(*self.seal).into())
            .decrypt_inout_detached(
                &nonce,
                &Self::aad(id, kind),
                seed.as_mut_slice().into(),
                &tag,
            )
            .ok()?;
        Some(seed)
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac as _};
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// What a seed yields: the answer and the seed of the media's randomness.
fn derive(kind: CaptchaKind, length: usize, seed: &[u8; 32]) -> (Zeroizing<Vec<u8>>, [u8; 32]) {
    let sub = |label: &[u8]| {
        let mut h = sha2::Sha256::new();
        h.update(label);
        h.update(seed);
        <[u8; 32]>::from(h.finalize())
    };
    let mut rng = StdRng::from_seed(sub(b"robert-server/v1/captcha-answer"));
    let symbols: &[u8] = match kind {
        CaptchaKind::Image => font::ALPHABET,
        CaptchaKind::Audio => b"0123456789",
    };
    let mut answer = Zeroizing::new(Vec::with_capacity(length));
    for _ in 0..length {
        answer.push(symbols[rng.random_range(0..symbols.len())]);
    }
    (answer, sub(b"robert-server/v1/captcha-media"))
}

/// The stored code of a challenge's kind (and audio locale).
fn kind_code(kind: CaptchaKind, locale: AudioLocale) -> i64 {
    match (kind, locale) {
        (CaptchaKind::Image, _) => 0,
        (CaptchaKind::Audio, AudioLocale::Fr) => 1,
        (CaptchaKind::Audio, AudioLocale::En) => 2,
    }
}

fn kind_of(code: i64) -> Option<(CaptchaKind, AudioLocale)> {
    match code {
        0 => Some((CaptchaKind::Image, AudioLocale::Fr)),
        1 => Some((CaptchaKind::Audio, AudioLocale::Fr)),
        2 => Some((CaptchaKind::Audio, AudioLocale::En)),
        _ => None,
    }
}

fn unavailable(e: &robert_store::StoreError) -> CaptchaError {
    tracing::warn!(error = %e, "captcha store failure");
    CaptchaError::Unavailable {
        retry_after_secs: UNAVAILABLE_RETRY_SECS,
    }
}

/// The built-in provider on the shared store (see the module docs).
pub struct SharedCaptcha {
    store: Arc<dyn SharedState>,
    keys: Arc<CaptchaKeys>,
    limits: BuiltinLimits,
    ttl_secs: i64,
    images: Mutex<ImageCache>,
}

impl std::fmt::Debug for SharedCaptcha {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCaptcha")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SharedCaptcha {
    /// A provider storing its challenges in `store`, sealed under `keys`.
    pub fn new(store: Arc<dyn SharedState>, keys: Arc<CaptchaKeys>, limits: BuiltinLimits) -> Self {
        Self {
            store,
            keys,
            ttl_secs: i64::try_from(limits.ttl_secs).unwrap_or(i64::MAX / 4),
            limits,
            images: Mutex::new(ImageCache::default()),
        }
    }

    fn images(&self) -> std::sync::MutexGuard<'_, ImageCache> {
        self.images
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a challenge (see [`super::builtin::BuiltinCaptcha::create`]).
    pub async fn create(
        &self,
        kind: CaptchaKind,
        locale: &str,
        client: ClientKey,
        now_unix: i64,
    ) -> Result<String, CaptchaError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut id_bytes = [0u8; 16];
        {
            let mut rng = rand::rng();
            rng.fill_bytes(seed.as_mut_slice());
            rng.fill_bytes(&mut id_bytes);
        }
        let id = hex::encode(id_bytes);
        let code = kind_code(kind, AudioLocale::from_tag(locale));
        let row = NewCaptcha {
            sealed: self.keys.seal(&id, code, &seed)?,
            id: id.clone(),
            client: self.keys.client_hash(client),
            kind: code,
            expires_unix: now_unix.saturating_add(self.ttl_secs),
        };
        let bounds = CaptchaBounds {
            now_unix,
            max_outstanding: u64::try_from(self.limits.max_outstanding).unwrap_or(u64::MAX),
            max_per_client: u64::try_from(self.limits.max_outstanding_per_client)
                .unwrap_or(u64::MAX),
        };
        match self
            .store
            .captcha_insert(&row, bounds)
            .await
            .map_err(|e| unavailable(&e))?
        {
            CaptchaInsert::Inserted => Ok(id),
            CaptchaInsert::Busy => Err(CaptchaError::Busy),
            CaptchaInsert::ClientQuota {
                oldest_expires_unix,
            } => Err(CaptchaError::ClientQuota {
                retry_after_secs: u64::try_from(oldest_expires_unix - now_unix)
                    .unwrap_or(1)
                    .max(1),
            }),
        }
    }

    /// The live challenge `id`: its kind, locale and seed.
    async fn live(
        &self,
        id: &str,
        now_unix: i64,
    ) -> Result<(CaptchaKind, AudioLocale, Zeroizing<[u8; 32]>), CaptchaError> {
        let row = self
            .store
            .captcha_get(id, now_unix)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or(CaptchaError::NotFound)?;
        let (kind, locale) = kind_of(row.kind).ok_or(CaptchaError::NotFound)?;
        let seed = self
            .keys
            .open(id, row.kind, &row.sealed)
            .ok_or(CaptchaError::NotFound)?;
        Ok((kind, locale, seed))
    }

    /// The PNG of an image challenge.
    pub async fn image(&self, id: &str, now_unix: i64) -> Result<Arc<Vec<u8>>, CaptchaError> {
        let (kind, _, seed) = self.live(id, now_unix).await?;
        if kind != CaptchaKind::Image {
            return Err(CaptchaError::WrongKind { challenge: kind });
        }
        if let Some(png) = self.images().get(id) {
            return Ok(png);
        }
        let (answer, media) = derive(kind, self.limits.length, &seed);
        let png = Arc::new(render_png_with(&answer, &mut StdRng::from_seed(media))?);
        self.images()
            .insert(id.to_owned(), png.clone(), self.limits.image_cache_entries);
        Ok(png)
    }

    /// The WAV of an audio challenge.
    pub async fn audio(&self, id: &str, now_unix: i64) -> Result<Vec<u8>, CaptchaError> {
        let (kind, locale, seed) = self.live(id, now_unix).await?;
        if kind != CaptchaKind::Audio {
            return Err(CaptchaError::WrongKind { challenge: kind });
        }
        let (answer, media) = derive(kind, self.limits.length, &seed);
        Ok(audio::render_wav(
            &answer,
            locale,
            &mut StdRng::from_seed(media),
        )?)
    }

    /// Checks an answer and consumes the challenge, on whichever node.
    pub async fn check(&self, id: &str, answer: &str, now_unix: i64) -> Result<bool, CaptchaError> {
        let row = self
            .store
            .captcha_consume(id)
            .await
            .map_err(|e| unavailable(&e))?;
        self.images().remove(id);
        let Some(row) = row else {
            return Ok(false);
        };
        if row.expires_unix <= now_unix {
            return Ok(false);
        }
        let (Some((kind, _)), Some(seed)) =
            (kind_of(row.kind), self.keys.open(id, row.kind, &row.sealed))
        else {
            return Ok(false);
        };
        let (expected, _) = derive(kind, self.limits.length, &seed);
        let given = Zeroizing::new(answer.trim().to_ascii_uppercase().into_bytes());
        Ok(given.len() == expected.len() && bool::from(given.ct_eq(&expected)))
    }

    /// Outstanding challenges, all nodes together.
    pub async fn outstanding(&self, now_unix: i64) -> Result<u64, CaptchaError> {
        self.store
            .captcha_outstanding(now_unix)
            .await
            .map_err(|e| unavailable(&e))
    }

    /// Test hook: the answer of a live challenge, without consuming it.
    #[cfg(any(test, feature = "testing"))]
    #[doc(hidden)]
    pub async fn peek_answer(&self, id: &str, now_unix: i64) -> Option<String> {
        let (kind, _, seed) = self.live(id, now_unix).await.ok()?;
        let (answer, _) = derive(kind, self.limits.length, &seed);
        Some(String::from_utf8_lossy(&answer).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn seals_open_only_under_their_id_and_key() {
        let keys = CaptchaKeys::for_tests([7; 32]);
        let seed = [9u8; 32];
        let sealed = keys.seal("abc", 0, &seed).unwrap();
        assert_eq!(sealed.len(), SEALED_LEN);
        assert!(!sealed.windows(32).any(|w| w == seed), "never in clear");
        assert_eq!(*keys.open("abc", 0, &sealed).unwrap(), seed);
        assert!(keys.open("abd", 0, &sealed).is_none(), "bound to its id");
        assert!(keys.open("abc", 1, &sealed).is_none(), "bound to its kind");
        assert!(
            CaptchaKeys::for_tests([8; 32])
                .open("abc", 0, &sealed)
                .is_none()
        );
        // The same seed always gives the same answer and media.
        assert_eq!(
            derive(CaptchaKind::Image, 6, &seed).0,
            derive(CaptchaKind::Image, 6, &seed).0
        );
        assert_ne!(
            keys.client_hash(ClientKey::Unknown),
            keys.client_hash(ClientKey::V4([0; 4]))
        );
    }
}
