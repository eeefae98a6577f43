//! Who a request comes from, for the per-client limits (captcha quota, code
//! checks at `/report`), and a keyed rate limiter on the server's clock.
//!
//! * The client is the TCP peer, or, when the peer is one of
//!   `server.trusted_proxies`, the rightmost `X-Forwarded-For` entry that is
//!   not itself a trusted proxy (entries further left are written by the
//!   client and cannot be trusted).
//! * IPv6 clients are keyed by their /64 prefix: one subscriber usually holds
//!   a whole /64, so keying by address would give an attacker 2^64 clients.
//!   IPv4-mapped IPv6 addresses count as their IPv4 address.
//! * Keys live in memory only and are never logged; a limiter whose state
//!   is in the database ([`RateLimiter::Shared`], several nodes) stores a
//!   keyed hash of the key, never the address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use robert_store::{Gcra, RateDecision, SharedState};

use crate::captcha::shared::CaptchaKeys;

use axum::extract::ConnectInfo;
use axum::http::Request;

/// A client, as the per-client limits count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address.
    V4([u8; 4]),
    /// The /64 prefix of an IPv6 address.
    V6([u8; 8]),
    /// No address known (requests not coming from a socket, e.g. in-process
    /// tests): all such requests share this key.
    Unknown,
}

impl ClientKey {
    /// The key of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Self::V6(prefix)
                }
            },
        }
    }

    /// The client of a request: its peer address (axum's
    /// `ConnectInfo<SocketAddr>`), or the forwarded address when the peer
    /// is a trusted proxy.
    pub fn of_request<B>(req: &Request<B>, trusted_proxies: &[IpAddr]) -> Self {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Self::from_parts(peer, req.headers(), trusted_proxies)
    }

    /// [`ClientKey::of_request`] from the peer address and the headers.
    pub fn from_parts(
        peer: Option<IpAddr>,
        headers: &axum::http::HeaderMap,
        trusted_proxies: &[IpAddr],
    ) -> Self {
        let Some(peer) = peer else {
            return Self::Unknown;
        };
        if !trusted_proxies.contains(&peer) {
            return Self::of(peer);
        }
        // All X-Forwarded-For headers, in order, as one list; walk it from
        // the right past our own proxies.
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for entry in entries.iter().rev() {
            match entry.parse::<IpAddr>() {
                Ok(ip) if trusted_proxies.contains(&ip) => continue,
                Ok(ip) => return Self::of(ip),
                // Not an address: the chain cannot be followed further.
                Err(_) => break,
            }
        }
        Self::of(peer)
    }
}

/// Why a [`RateLimiter`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// Over budget: seconds to wait (at least 1).
    Wait(u64),
    /// The database holding the budgets failed: seconds before a retry.
    Unavailable(u64),
}

/// Seconds a client is told to wait when the budgets' database fails.
pub const RATE_UNAVAILABLE_RETRY_SECS: u64 = 5;

/// A per-client limit of `per_minute` requests per minute (burst and
/// sustained), its budgets kept in this process or in the database
/// (`limits.rate_limit_state`).
#[derive(Debug)]
pub enum RateLimiter {
    /// Budgets in this process.
    Memory(KeyedRateLimiter),
    /// Budgets in the store, shared by every node on it.
    Shared(SharedRateLimiter),
}

impl RateLimiter {
    /// Takes one request of `key` at `now_ms` (Unix milliseconds).
    pub async fn check(&self, key: ClientKey, now_ms: i64) -> Result<(), Limited> {
        match self {
            Self::Memory(m) => m.check(key, now_ms).map_err(Limited::Wait),
            Self::Shared(s) => s.check(key, now_ms).await,
        }
    }
}

/// The GCRA of `per_minute` requests per minute, as burst and sustained
/// rate (`None`: unlimited).
fn gcra_per_minute(per_minute: u32) -> Option<Gcra> {
    if per_minute == 0 {
        return None;
    }
    let interval_ms = (60_000 / i64::from(per_minute)).max(1);
    Some(Gcra {
        interval_ms,
        tolerance_ms: interval_ms * (i64::from(per_minute) - 1).max(0),
    })
}

/// A rate limiter whose budgets are rows of the store (one atomic upsert per
/// request, [`SharedState::rate_take`]), keyed by a keyed hash of the
/// client: a client's budget is the same whichever node it reaches.
pub struct SharedRateLimiter {
    store: Arc<dyn SharedState>,
    bucket: &'static str,
    rate: Option<Gcra>,
    keys: Arc<CaptchaKeys>,
}

impl std::fmt::Debug for SharedRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRateLimiter")
            .field("bucket", &self.bucket)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl SharedRateLimiter {
    /// `per_minute` requests per minute per client in `bucket` of `store`
    /// (0: unlimited), clients hashed under `keys`.
    pub fn per_minute(
        store: Arc<dyn SharedState>,
        bucket: &'static str,
        per_minute: u32,
        keys: Arc<CaptchaKeys>,
    ) -> Self {
        Self {
            store,
            bucket,
            rate: gcra_per_minute(per_minute),
            keys,
        }
    }

    /// Takes one request of `key` at `now_ms`; a database failure is
    /// [`Limited::Unavailable`] (the caller answers 503, never 500).
    pub async fn check(&self, key: ClientKey, now_ms: i64) -> Result<(), Limited> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let client = self.keys.rate_hash(key);
        match self
            .store
            .rate_take(self.bucket, &client, now_ms, rate)
            .await
        {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after_ms }) => Err(Limited::Wait(
                u64::try_from((retry_after_ms + 999).div_euclid(1000))
                    .unwrap_or(1)
                    .max(1),
            )),
            Err(e) => {
                tracing::warn!(error = %e, bucket = self.bucket, "rate-limit store failure");
                Err(Limited::Unavailable(RATE_UNAVAILABLE_RETRY_SECS))
            }
        }
    }
}

/// A keyed rate limiter (GCRA) on an injected clock: per key, `per_minute`
/// requests per minute sustained, and as many at once.
///
/// Memory: one entry per key seen within the last minute; entries older are
/// dropped when the table has doubled since the last sweep.
#[derive(Debug)]
pub struct KeyedRateLimiter {
    /// Milliseconds between two requests at the sustained rate; 0 disables.
    interval_ms: i64,
    /// How far ahead of now a key's theoretical arrival time may run.
    tolerance_ms: i64,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Theoretical arrival time (Unix ms) of each key's next request.
    tat: HashMap<ClientKey, i64>,
    sweep_at: usize,
}

impl KeyedRateLimiter {
    /// A limiter of `per_minute` requests per minute per key (0: unlimited).
    pub fn per_minute(per_minute: u32) -> Self {
        let rate = gcra_per_minute(per_minute).unwrap_or(Gcra {
            interval_ms: 0,
            tolerance_ms: 0,
        });
        Self {
            interval_ms: rate.interval_ms,
            tolerance_ms: rate.tolerance_ms,
            table: Mutex::new(Table {
                tat: HashMap::new(),
                sweep_at: 1024,
            }),
        }
    }

    /// Takes one request of `key` at `now_ms` (Unix milliseconds): `Ok`, or
    /// `Err(seconds)` to wait before the next one is allowed (at least 1).
    pub fn check(&self, key: ClientKey, now_ms: i64) -> Result<(), u64> {
        if self.interval_ms == 0 {
            return Ok(());
        }
        let mut t = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.tat.len() >= t.sweep_at {
            t.tat.retain(|_, tat| *tat > now_ms);
            t.sweep_at = (t.tat.len() * 2).max(1024);
        }
        let mut tat = t.tat.get(&key).copied().unwrap_or(now_ms).max(now_ms);
        if tat - now_ms > self.tolerance_ms + self.interval_ms {
            // Further ahead than requests can push it: the clock moved back.
            tat = now_ms;
        }
        let ahead = tat - now_ms;
        if ahead > self.tolerance_ms {
            let wait_ms = ahead - self.tolerance_ms;
            // Rounded up to whole seconds, at least 1.
            return Err(u64::try_from((wait_ms + 999).div_euclid(1000))
                .unwrap_or(1)
                .max(1));
        }
        t.tat.insert(key, tat + self.interval_ms);
        Ok(())
    }

    /// Keys currently held (for tests).
    pub fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .tat
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys() {
        assert_eq!(
            ClientKey::of(ip("192.0.2.1")),
            ClientKey::V4([192, 0, 2, 1])
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.1")),
            ClientKey::of(ip("192.0.2.1"))
        );
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9")),
            "one /64, one client"
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let proxy = ip("10.0.0.1");
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 198.51.100.7".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        // Untrusted peer: its own address, whatever it claims.
        assert_eq!(
            ClientKey::from_parts(Some(ip("203.0.113.5")), &h, &[proxy]),
            ClientKey::of(ip("203.0.113.5"))
        );
        // Trusted peer: the rightmost entry that is not a trusted proxy;
        // what the client wrote further left is ignored.
        assert_eq!(
            ClientKey::from_parts(Some(proxy), &h, &[proxy]),
            ClientKey::of(ip("198.51.100.7"))
        );
        // Garbage on the right: the proxy itself.
        let mut g = HeaderMap::new();
        g.append("x-forwarded-for", "1.2.3.4, junk".parse().unwrap());
        assert_eq!(
            ClientKey::from_parts(Some(proxy), &g, &[proxy]),
            ClientKey::of(proxy)
        );
        assert_eq!(
            ClientKey::from_parts(None, &h, &[proxy]),
            ClientKey::Unknown
        );
    }

    #[test]
    fn rate_limit_per_key() {
        let l = KeyedRateLimiter::per_minute(3);
        let (a, b) = (ClientKey::V4([1; 4]), ClientKey::V4([2; 4]));
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(l.check(a, t), Ok(()));
        }
        assert_eq!(l.check(a, t), Err(20), "one more every 20 s");
        assert_eq!(l.check(b, t), Ok(()), "another client is not limited");
        assert_eq!(l.check(a, t + 19_999), Err(1));
        assert_eq!(l.check(a, t + 20_000), Ok(()));
        assert!(l.check(a, t + 20_000).is_err());
        // A clock moved back does not lock a client out for the difference.
        assert_eq!(l.check(a, t - 86_400_000), Ok(()));
        // Unlimited.
        let u = KeyedRateLimiter::per_minute(0);
        for _ in 0..1000 {
            assert_eq!(u.check(a, t), Ok(()));
        }
        // Entries of idle keys are swept as new ones come.
        for i in 0..3000u32 {
            let _ = l.check(ClientKey::V4(i.to_be_bytes()), t);
        }
        for i in 3000..4500u32 {
            let _ = l.check(ClientKey::V4(i.to_be_bytes()), t + 3_600_000);
        }
        assert!(l.tracked() <= 1500, "{}", l.tracked());
    }
}
