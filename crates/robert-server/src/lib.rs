//! The ROBERT backend server: the apps' REST API (`/api/v6`, wire-compatible
//! with TousAntiCovid `robert-server`), its key store, and the risk batch.
//!
//! | module | role |
//! |---|---|
//! | [`api`] | `app(state) -> Router`: routes, handlers (tuple bundles come from `robert_core::tuples`), the [`api::extract::ApiJson`] extractor, DTOs and validation, the one [`api::error::ApiError`] |
//! | [`state`] | [`state::AppState`]: store, key ring, configuration, clock, captcha, codes and push clients, JWT issuers, metrics |
//! | [`keystore`] | K_S per day, K_G, the KEK, the registration key pair; the passphrase-encrypted [`keystore::file::FileKeyStore`] behind the [`keystore::KeyStore`] trait; `robert keys` operations |
//! | [`jwt`] | `declarationToken`, `analyticsToken`, `reportValidationToken` (ES256 or RS256) |
//! | [`captcha`] | built-in PNG and spoken-digit (WAV) challenges, the reference's external protocol, `accept-any` |
//! | [`client`] | who a request comes from (peer or trusted proxy's `X-Forwarded-For`), and the keyed rate limiter of the per-client limits |
//! | [`codes`], [`push`] | submission-code verification; push-server forwarding |
//! | [`config`] | TOML + `ROBERT_*` environment configuration, with defaults |
//! | [`clock`] | injected time: system, offset and manual clocks |
//! | [`metrics`] | a small Prometheus registry |
//! | [`privacy`] | traffic privacy: padding buckets, dummy-request timing, `[privacy]` (the layer itself is [`api::privacy`]) |
//! | [`serve`] | start-up (key store bootstrap, database), listeners, background tasks |
//! | [`connections`] | the accept loop: header-read timeout, connection cap, bounded shutdown, open-file limit (from the `robert-http` crate, shared with the code service) |
//! | [`batch`] | the risk batch |
//!
//! Operators' documentation: `README.md`; differences from the reference:
//! `DEVIATIONS.md`; every setting with its default: `robert.example.toml`.

pub mod api;
pub mod batch;
pub mod captcha;
pub mod client;
pub mod clock;
pub mod codes;
pub mod config;
pub mod federation;
/// Connection limits, open-file limit (in the shared HTTP shell crate).
pub use robert_http::connections;
pub mod http_client;
pub mod jwt;
pub mod keystore;
pub mod metrics;
pub mod privacy;
pub mod push;
pub mod serve;
pub mod state;
