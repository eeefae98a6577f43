//! The simulated phones: one real [`robert_client::Phone`] per person, each
//! on its own [`ManualClock`] so that HELLOs are built and received at their
//! exact simulated instants.

use std::sync::Arc;

use axum::Router;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use robert_client::{
    CalibrationTable, ClientError, ManualClock, NullStorage, Phone, PhoneConfig, ReqwestTransport,
    ServiceTransport, Transport, TransportError,
};
use robert_core::time::NtpSeconds;

/// How a phone's requests travel: in process or over loopback HTTP.
#[derive(Clone, Debug)]
pub(crate) enum SimTransport {
    /// The server's router, called directly.
    InProcess(ServiceTransport<Router>),
    /// reqwest over 127.0.0.1.
    Http(ReqwestTransport),
}

impl Transport for SimTransport {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        match self {
            Self::InProcess(t) => t.send(request).await,
            Self::Http(t) => t.send(request).await,
        }
    }
}

/// The phone type of the simulator.
pub(crate) type SdkPhone = Phone<SimTransport, NullStorage>;

/// A payload cached by a sender: built at `at` (NTP seconds).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CachedPayload {
    pub(crate) at: u64,
    pub(crate) payload: Option<[u8; 18]>,
}

/// One person's phone.
pub(crate) struct SimPhone {
    pub(crate) phone: SdkPhone,
    pub(crate) clock: ManualClock,
    /// The payload on air (Android adverts: rebuilt every 30 s).
    pub(crate) advert: CachedPayload,
    /// The last payload built on demand (GATT read or write).
    pub(crate) fresh: CachedPayload,
}

impl std::fmt::Debug for SimPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPhone").finish_non_exhaustive()
    }
}

impl SimPhone {
    /// Opens a phone (not registered yet) with the apps' calibration table
    /// of the scenario (the October 2020 table shifted by its anchor).
    pub(crate) fn open(
        config: Arc<PhoneConfig>,
        transport: SimTransport,
        start: NtpSeconds,
        seed: u64,
        calibration: &CalibrationTable,
    ) -> Result<Self, ClientError> {
        let clock = ManualClock::at_ntp(start);
        let phone = Phone::open_with_calibration(
            config,
            transport,
            NullStorage,
            Arc::new(clock.clone()),
            StdRng::seed_from_u64(seed),
            calibration,
        )?;
        Ok(Self {
            phone,
            clock,
            advert: CachedPayload::default(),
            fresh: CachedPayload::default(),
        })
    }

    /// Sets this phone's clock.
    pub(crate) fn at(&mut self, t: NtpSeconds) -> &mut SdkPhone {
        self.clock.set_ntp(t);
        &mut self.phone
    }

    /// The BLE payload this phone builds at `t` (cached in `slot`): `None`
    /// when it has no EBID for that epoch.
    pub(crate) fn payload_at(&mut self, t: NtpSeconds, advert: bool) -> Option<[u8; 18]> {
        let cached = if advert { self.advert } else { self.fresh };
        if cached.at == t.get() && cached.at != 0 {
            return cached.payload;
        }
        self.clock.set_ntp(t);
        let payload = self.phone.ble_payload().ok();
        let entry = CachedPayload {
            at: t.get(),
            payload,
        };
        if advert {
            self.advert = entry;
        } else {
            self.fresh = entry;
        }
        payload
    }
}
