#![doc = include_str!("../README.md")]

pub mod clock;
pub mod code;
pub mod config;
pub mod jwt;
pub mod metrics;
pub mod pepper;
pub mod ratelimit;
pub mod service;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use code::CodeKind;
pub use config::Config;
pub use service::CodesService;
pub use store::{CodeStore, SqlStore};
pub mod api;
pub mod cli;
pub mod letter;
pub mod lots;
pub mod portal;
pub mod qr;
pub mod sftp;

impl CodesService {
    /// Public routes: the verify and generate API (and the portal, when enabled).
    ///
    /// Serve with `into_make_service_with_connect_info::<SocketAddr>()` so
    /// rate limits see client addresses.
    pub fn router(&self) -> axum::Router {
        let api = api::api_router(self.clone());
        if self.config().portal.enabled {
            api.merge(portal::router(self.clone()))
        } else {
            api
        }
    }

    /// Internal routes: `/internal/api/v1/kpi`, `/metrics`, `/health`.
    pub fn internal_router(&self) -> axum::Router {
        api::internal_router(self.clone())
    }

    /// Internal routes when mounted inside `robert serve` (no path clashes
    /// with the ROBERT server): `/internal/api/v1/kpi`, `/codes/metrics`,
    /// `/codes/health`.
    pub fn embedded_internal_router(&self) -> axum::Router {
        api::embedded_internal_router(self.clone())
    }
}
