//! Shared helpers: a world with one fake server, a clock and phones.

use std::sync::Arc;

use axum::Router;
use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_client::{
    DeviceModel, ManualClock, MemoryStorage, Phone, PhoneConfig, RetryPolicy, ServiceTransport,
    Storage,
};
use robert_core::time::{NtpSeconds, UtcDate};

use crate::fake::FakeServer;

pub type TestPhone<S = MemoryStorage> = Phone<ServiceTransport<Router>, S>;

/// 2022-04-28 09:45:00 UTC: the start of epoch 66855.
pub fn t0() -> NtpSeconds {
    UtcDate::new(2022, 4, 28)
        .unwrap()
        .midnight()
        .plus(9 * 3600 + 45 * 60)
}

pub struct World {
    pub server: FakeServer,
    pub clock: ManualClock,
    pub config: Arc<PhoneConfig>,
}

impl World {
    pub fn new() -> Self {
        let clock = ManualClock::at_ntp(t0());
        let server = FakeServer::new(clock.clone(), 42);
        let mut config = PhoneConfig::with_key_base64(
            "http://robert.test",
            &server.public_key_base64(),
            DeviceModel::android("SM-G973F"),
        )
        .unwrap();
        config.retry = RetryPolicy::none();
        Self {
            server,
            clock,
            config: Arc::new(config),
        }
    }

    pub fn transport(&self) -> ServiceTransport<Router> {
        ServiceTransport::new(self.server.router())
    }

    pub fn phone(&self, seed: u64) -> TestPhone {
        self.phone_with(seed, MemoryStorage::new())
    }

    pub fn phone_with<S: Storage>(&self, seed: u64, storage: S) -> TestPhone<S> {
        Phone::open(
            self.config.clone(),
            self.transport(),
            storage,
            Arc::new(self.clock.clone()),
            StdRng::seed_from_u64(seed),
        )
        .unwrap()
    }

    pub async fn registered(&self, seed: u64) -> TestPhone {
        self.registered_with(seed, MemoryStorage::new()).await
    }

    pub async fn registered_with<S: Storage>(&self, seed: u64, storage: S) -> TestPhone<S> {
        let mut p = self.phone_with(seed, storage);
        p.register(&mut robert_client::FixedCaptchaAnswer("ok".into()))
            .await
            .unwrap();
        p
    }
}

/// Two phones a metre apart exchange HELLOs every `step` seconds for
/// `minutes`; raw RSSI −60 dBm.
pub fn exchange<T, S1, S2>(
    a: &mut Phone<T, S1>,
    b: &mut Phone<T, S2>,
    clock: &ManualClock,
    minutes: i64,
    step: i64,
) where
    T: robert_client::Transport,
    S1: Storage,
    S2: Storage,
{
    let mut elapsed = 0;
    while elapsed < minutes * 60 {
        let pa = a.ble_payload().unwrap();
        let pb = b.ble_payload().unwrap();
        a.receive_ble_payload(&pb, -60).unwrap();
        b.receive_ble_payload(&pa, -60).unwrap();
        clock.advance_secs(step);
        elapsed += step;
    }
}
