//! Test world: server keys, registered phones, and the HELLOs they exchange,
//! all built with robert-core exactly as real phones and the server do.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, RngExt as _, SeedableRng as _};
use robert_core::contact::UploadedHello;
use robert_core::ebid::Ebid;
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::id_a::IdA;
use robert_core::keys::{Kek, KeyA, KeyG, KeyS};
use robert_core::scoring::EpochExposure;
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY, ServiceStart, UtcDate};
use robert_server::batch::{BatchConfig, BatchKeys, BatchReport};
use robert_store::{Kpis, NewRegistration, PendingContacts, Registration, Store, UploadedContact};

/// 2023-01-13T00:00:00Z, NTP seconds.
pub const TODAY: NtpSeconds = NtpSeconds(3_882_556_800);
pub const HOUR: u64 = 3600;
pub const DAY: u64 = SECONDS_PER_DAY;
pub const MINUTE: u64 = 60;

/// "now" in most tests: today 10:00 UTC.
pub fn now() -> NtpSeconds {
    TODAY.plus(10 * HOUR)
}

pub fn days_ago(d: u64) -> NtpSeconds {
    now().minus(d * DAY)
}

/// Server keys and settings.
pub struct World {
    pub keys: BatchKeys,
    pub start: ServiceStart,
    pub config: BatchConfig,
    rng: StdRng,
}

/// A registered app.
#[derive(Clone, Debug)]
pub struct Phone {
    pub id_a: IdA,
    pub key_a: KeyA,
    pub registration: NewRegistration,
}

impl World {
    /// Day keys from 40 days before `TODAY` to 2 days after.
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut day_keys = BTreeMap::new();
        let today = UtcDate::of(TODAY);
        for d in -40..=2 {
            day_keys.insert(today.add_days(d), KeyS::generate(&mut rng));
        }
        let keys = BatchKeys {
            kek: Arc::new(Kek::generate(&mut rng)),
            key_g: KeyG::generate(&mut rng),
            day_keys,
        };
        let config = BatchConfig {
            parallelism: 2,
            ..BatchConfig::default()
        };
        Self {
            keys,
            start: ServiceStart::REFERENCE,
            config,
            rng,
        }
    }

    /// A new phone (not yet stored), registered at `created_at`.
    pub fn phone(&mut self, created_at: NtpSeconds) -> Phone {
        let id_a = IdA::random(&mut self.rng);
        let mut k = [0u8; 32];
        self.rng.fill_bytes(&mut k);
        let key_a = KeyA::from_bytes(k);
        let mut t = [0u8; 32];
        self.rng.fill_bytes(&mut t);
        let registration = NewRegistration {
            id_a,
            key_a: self.keys.kek.in_memory().unwrap().wrap(&k, &mut self.rng),
            key_a_tuples: self.keys.kek.in_memory().unwrap().wrap(&t, &mut self.rng),
            created_at,
        };
        Phone {
            id_a,
            key_a,
            registration,
        }
    }

    /// The (EBID, ECC) a phone broadcasts at `t`, for a country.
    pub fn ebid_ecc(&self, phone: &Phone, t: NtpSeconds, country: CountryCode) -> (Ebid, Ecc) {
        let epoch = self.start.epoch_at(t);
        let key = &self.keys.day_keys[&self.start.day_of(epoch)];
        let ebid = Ebid::encrypt(key, epoch, phone.id_a).unwrap();
        (ebid, Ecc::encrypt(&self.keys.key_g, &ebid, country))
    }

    /// A HELLO emitted at `sent` and collected at `collected`.
    pub fn hello(
        &self,
        phone: &Phone,
        ebid: Ebid,
        ecc: Ecc,
        sent: NtpSeconds,
        collected: NtpSeconds,
        rssi: i16,
    ) -> UploadedHello {
        UploadedHello::received(&phone.key_a, ecc, &ebid, sent, collected, rssi)
    }

    /// What a receiver records when `sender` is near it from `from` for
    /// `secs` seconds: one HELLO per second, collected when emitted, RSSI
    /// uniform in [−10, 2] (the e2e harness); one contact per EBID.
    pub fn proximity(
        &mut self,
        sender: &Phone,
        from: NtpSeconds,
        secs: u64,
    ) -> Vec<UploadedContact> {
        let mut contacts: Vec<UploadedContact> = Vec::new();
        for s in 0..secs {
            let t = from.plus(s);
            let (ebid, ecc) = self.ebid_ecc(sender, t, CountryCode::FRANCE);
            let rssi = self.rng.random_range(-10..=2);
            let hello = self.hello(sender, ebid, ecc, t, t, rssi);
            match contacts.last_mut() {
                Some(c) if c.ebid == ebid => c.hellos.push(hello),
                _ => contacts.push(UploadedContact {
                    ebid,
                    ecc,
                    hellos: vec![hello],
                }),
            }
        }
        contacts
    }

    /// Runs the batch at `now` with a seed derived from `seed`.
    pub async fn batch(&self, store: &dyn Store, now: NtpSeconds, seed: u64) -> BatchReport {
        let mut rng = StdRng::seed_from_u64(seed);
        robert_server::batch::run(store, &self.keys, &self.config, now, &mut rng)
            .await
            .unwrap()
    }
}

pub async fn register(store: &dyn Store, phone: &Phone) {
    store
        .insert_registration(&phone.registration)
        .await
        .unwrap();
}

pub async fn reg(store: &dyn Store, phone: &Phone) -> Registration {
    store.get_registration(phone.id_a).await.unwrap().unwrap()
}

/// Everything observable about a set of phones, to compare two databases.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub registrations: Vec<Option<Registration>>,
    pub exposures: Vec<Vec<EpochExposure>>,
    pub kpis: Kpis,
    pub pending: PendingContacts,
}

pub async fn snapshot(store: &dyn Store, phones: &[Phone]) -> Snapshot {
    let mut registrations = Vec::new();
    let mut exposures = Vec::new();
    for p in phones {
        registrations.push(store.get_registration(p.id_a).await.unwrap());
        exposures.push(store.exposures(p.id_a).await.unwrap());
    }
    Snapshot {
        registrations,
        exposures,
        kpis: store.kpis().await.unwrap(),
        pending: store.pending_contacts().await.unwrap(),
    }
}
