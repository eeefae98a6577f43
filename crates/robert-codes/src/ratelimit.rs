//! Keyed rate limiters (GCRA via `governor`). Keys (client addresses, API
//! client names) are hashed with a per-process secret before they reach the
//! limiter's memory, so the limiter never holds an address in clear.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng as _;
use sha2::Sha256;
use zeroize::Zeroizing;

/// A keyed limiter over hashed keys.
pub struct KeyedLimiter {
    limiter: DefaultKeyedRateLimiter<[u8; 16]>,
    secret: Zeroizing<[u8; 32]>,
    namespace: &'static str,
    checks: AtomicU64,
}

impl std::fmt::Debug for KeyedLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl KeyedLimiter {
    /// `per_second` sustained, `burst` at once, per key.
    pub fn per_second(namespace: &'static str, per_second: u32, burst: u32) -> Self {
        Self::with_quota(
            namespace,
            Quota::per_second(nz(per_second)).allow_burst(nz(burst)),
        )
    }

    /// `per_minute` sustained and as burst, per key.
    pub fn per_minute(namespace: &'static str, per_minute: u32) -> Self {
        Self::with_quota(namespace, Quota::per_minute(nz(per_minute)))
    }

    fn with_quota(namespace: &'static str, quota: Quota) -> Self {
        let mut secret = Zeroizing::new([0_u8; 32]);
        // If the OS RNG fails the key stays all-zero: keys are still hashed,
        // only no longer secret; rate limiting itself keeps working.
        let _ = rand::rngs::SysRng.try_fill_bytes(secret.as_mut());
        Self {
            limiter: RateLimiter::keyed(quota),
            secret,
            namespace,
            checks: AtomicU64::new(0),
        }
    }

    fn key(&self, key: &str) -> [u8; 16] {
        // Invariant: HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(self.namespace.as_bytes());
        mac.update(&[0]);
        mac.update(key.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0_u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// `true` if a request under `key` is allowed now.
    pub fn check(&self, key: &str) -> bool {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&self.key(key)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key() {
        let l = KeyedLimiter::per_minute("t", 3);
        assert!(l.check("1.2.3.4"));
        assert!(l.check("1.2.3.4"));
        assert!(l.check("1.2.3.4"));
        assert!(!l.check("1.2.3.4"));
        assert!(l.check("5.6.7.8"));
    }

    #[test]
    fn keys_are_hashed_per_namespace() {
        let a = KeyedLimiter::per_minute("a", 3);
        assert_ne!(a.key("1.2.3.4"), a.key("1.2.3.5"));
        assert_eq!(a.key("1.2.3.4"), a.key("1.2.3.4"));
    }
}
