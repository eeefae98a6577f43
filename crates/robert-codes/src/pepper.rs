//! Keyed hashes of codes at rest.
//!
//! A code is stored only as `HMAC-SHA256(pepper, "robert-codes/v1" ‖ kind ‖ code)`.
//! The first configured pepper is *current* (used for new codes); older ones
//! stay *active* for lookups until every code hashed under them has expired,
//! so a pepper can be rotated without invalidating live codes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::code::CodeKind;

/// Minimum pepper length in bytes.
pub const MIN_PEPPER_LEN: usize = 32;

/// A keyed hash of a code (32 bytes).
pub type CodeHash = [u8; 32];

/// One secret pepper.
pub struct Pepper {
    id: String,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pepper")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Errors building peppers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PepperError {
    /// No pepper is configured.
    #[error(
        "no pepper configured: at least one [[peppers]] entry is required (pass the configuration with -c codes.toml; `robert codes new-pepper` makes a secret)"
    )]
    Missing,
    /// A pepper is shorter than [`MIN_PEPPER_LEN`] bytes.
    #[error("pepper {id:?} is too short: at least {MIN_PEPPER_LEN} bytes are required")]
    TooShort {
        /// The pepper's identifier.
        id: String,
    },
    /// Two peppers share an identifier.
    #[error("pepper id {0:?} is used twice")]
    DuplicateId(String),
}

impl Pepper {
    /// A pepper named `id` with secret `key` (at least 32 bytes).
    pub fn new(id: impl Into<String>, key: Zeroizing<Vec<u8>>) -> Result<Self, PepperError> {
        let id = id.into();
        if key.len() < MIN_PEPPER_LEN {
            return Err(PepperError::TooShort { id });
        }
        Ok(Self { id, key })
    }

    /// The pepper's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self) -> Hmac<Sha256> {
        // Invariant: HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    fn hash(&self, domain: &[u8], kind: u8, value: &[u8]) -> CodeHash {
        let mut mac = self.mac();
        mac.update(domain);
        mac.update(&[kind]);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

/// The active peppers: the current one first, then older ones still accepted.
#[derive(Debug)]
pub struct Peppers {
    list: Vec<Pepper>,
}

const CODE_DOMAIN: &[u8] = b"robert-codes/v1/code";

impl Peppers {
    /// Builds the set; the first pepper is current.
    pub fn new(list: Vec<Pepper>) -> Result<Self, PepperError> {
        if list.is_empty() {
            return Err(PepperError::Missing);
        }
        for (i, p) in list.iter().enumerate() {
            if list[..i].iter().any(|q| q.id == p.id) {
                return Err(PepperError::DuplicateId(p.id.clone()));
            }
        }
        Ok(Self { list })
    }

    /// The current pepper's identifier.
    pub fn current_id(&self) -> &str {
        &self.list[0].id
    }

    /// The hash under which a new code of `kind` is stored.
    pub fn hash_new(&self, kind: CodeKind, code: &str) -> CodeHash {
        self.list[0].hash(CODE_DOMAIN, code_kind_byte(kind), code.as_bytes())
    }

    /// The hashes under every active pepper, current first (for lookups).
    pub fn hash_candidates(&self, kind: CodeKind, code: &str) -> Vec<CodeHash> {
        self.list
            .iter()
            .map(|p| p.hash(CODE_DOMAIN, code_kind_byte(kind), code.as_bytes()))
            .collect()
    }
}

fn code_kind_byte(kind: CodeKind) -> u8 {
    match kind {
        CodeKind::Long => 1,
        CodeKind::Short => 2,
        CodeKind::Test => 3,
    }
}

/// SHA-256 with a domain prefix, for values that must be unlinkable but need
/// no secret (JWT `jti`, session tokens, limiter keys with their own secret).
pub fn domain_hash(domain: &str, value: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0_u8]);
    h.update(value);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper(id: &str, byte: u8) -> Pepper {
        Pepper::new(id, Zeroizing::new(vec![byte; 32])).unwrap()
    }

    #[test]
    fn rotation_keeps_old_hashes_reachable() {
        let old = Peppers::new(vec![pepper("a", 1)]).unwrap();
        let stored = old.hash_new(CodeKind::Short, "ABC123");
        let rotated = Peppers::new(vec![pepper("b", 2), pepper("a", 1)]).unwrap();
        let candidates = rotated.hash_candidates(CodeKind::Short, "ABC123");
        assert_eq!(candidates.len(), 2);
        assert_ne!(candidates[0], stored);
        assert_eq!(candidates[1], stored);
        assert_eq!(rotated.hash_new(CodeKind::Short, "ABC123"), candidates[0]);
    }

    #[test]
    fn kind_separates_hashes() {
        let p = Peppers::new(vec![pepper("a", 1)]).unwrap();
        assert_ne!(
            p.hash_new(CodeKind::Short, "ABC123"),
            p.hash_new(CodeKind::Test, "ABC123")
        );
    }

    #[test]
    fn rejects_short_missing_and_duplicate_peppers() {
        assert!(matches!(
            Pepper::new("x", Zeroizing::new(vec![0; 31])),
            Err(PepperError::TooShort { .. })
        ));
        assert!(matches!(Peppers::new(vec![]), Err(PepperError::Missing)));
        assert!(matches!(
            Peppers::new(vec![pepper("a", 1), pepper("a", 2)]),
            Err(PepperError::DuplicateId(_))
        ));
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        // RFC 4231 test case 2 checks our HMAC wiring (key "Jefe").
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        let s = format!("{:?}", pepper("id1", 0xAB));
        assert!(s.contains("id1"));
        assert!(!s.contains("171") && !s.to_lowercase().contains("ab, "));
    }
}
