//! Key-store tests written once and run on both stores: the file store and
//! the PKCS#11 store on a fresh SoftHSM2 token (in a child process, see
//! [`super::pkcs11::testing`]).

use std::path::PathBuf;
use std::sync::Arc;

use robert_core::keys::{Kek, KeyS, WrappedKey};
use robert_core::registration::{ClientKeyAgreement, ServerKeyPair, parse_public_key};
use robert_core::time::UtcDate;
use zeroize::Zeroizing;

use super::admin::{self, ImportItem};
use super::file::{FileKeyStore, KdfParams};
use super::pkcs11::{Pkcs11KeyStore, Pkcs11Settings, testing};
use super::{GeneratedJwtKeys, JwtKeySet, KeyOpError, KeyRing, KeySet, KeyStore, KeyStoreError};

/// Cheap Argon2id parameters.
const TEST_PARAMS: KdfParams = KdfParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// A store under test; [`Fixture::open`] gives a new handle on it, as a
/// second server node would have.
pub(crate) enum Fixture {
    File(PathBuf),
    Pkcs11(Pkcs11Settings),
}

impl Fixture {
    pub(crate) fn file(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("robert-kst-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self::File(d)
    }

    pub(crate) fn open(&self) -> Box<dyn KeyStore> {
        match self {
            Self::File(d) => Box::new(FileKeyStore::new(
                d.join("ks.robert"),
                Zeroizing::new("pw".into()),
                TEST_PARAMS,
            )),
            Self::Pkcs11(s) => {
                Box::new(Pkcs11KeyStore::open(s, Zeroizing::new(testing::USER_PIN.into())).unwrap())
            }
        }
    }

    /// A file store beside this one (a migration source).
    fn other_file(&self, name: &str) -> (FileKeyStore, PathBuf) {
        let d = std::env::temp_dir().join(format!("robert-kst-src-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        (
            FileKeyStore::new(
                d.join("src.robert"),
                Zeroizing::new("pw2".into()),
                TEST_PARAMS,
            ),
            d,
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Self::File(d) = self {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Declares `file` and `pkcs11` variants of `fn name(f: &Fixture)`.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn file() {
                super::$name(&super::Fixture::file(stringify!($name)));
            }

            #[test]
            fn pkcs11() {
                let path = concat!(module_path!(), "::pkcs11");
                let name = path.split_once("::").map_or(path, |(_, rest)| rest);
                if let Some(settings) = super::testing::in_softhsm(name) {
                    super::$name(&super::Fixture::Pkcs11(settings));
                }
            }
        }
    )*};
}

both_stores!(
    round_trip,
    generation_is_shared,
    init_rotate_show,
    import_formats_and_conflicts,
    ring_operations_are_byte_exact,
    migrate_from_a_file_store,
);

fn day(s: &str) -> UtcDate {
    s.parse().unwrap()
}

/// RS256 keys, generated once per process (RSA key generation is slow).
fn rsa_keys() -> JwtKeySet {
    static KEYS: std::sync::OnceLock<JwtKeySet> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut s = KeySet::default();
        s.fill_missing_rsa_jwt(&mut rand::rng()).unwrap();
        s.jwt
    })
    .clone()
}

fn with_rsa(set: &mut KeySet) {
    let rsa = rsa_keys();
    set.jwt.declaration_rsa = rsa.declaration_rsa;
    set.jwt.analytics_rsa = rsa.analytics_rsa;
    set.jwt.report_rsa = rsa.report_rsa;
}

fn sample() -> KeySet {
    let mut set = KeySet::default();
    let d = day("2024-01-31");
    set.fill_missing(d, d.add_days(2), true, &mut rand::rng());
    with_rsa(&mut set);
    set
}

fn round_trip(f: &Fixture) {
    let store = f.open();
    assert!(!store.exists());
    assert!(matches!(store.load(), Err(KeyStoreError::NotFound(_))));
    let mut set = sample();
    store.save(&set).unwrap();
    assert!(store.exists());
    let back = store.load().unwrap();
    assert_eq!(back.key_g, set.key_g);
    assert_eq!(back.server_keys, set.server_keys);
    assert_eq!(
        back.kek.as_ref().unwrap().check_value().unwrap(),
        set.kek.as_ref().unwrap().check_value().unwrap()
    );
    assert_eq!(
        back.registration.as_ref().unwrap().public_key(),
        set.registration.as_ref().unwrap().public_key()
    );
    assert_eq!(back.jwt.declaration, set.jwt.declaration);
    assert_eq!(back.jwt.analytics, set.jwt.analytics);
    assert_eq!(back.jwt.report, set.jwt.report);
    // RS256 keys (PKCS#8 DER, ~1.2 KiB) too, in either store.
    assert!(back.jwt.declaration_rsa.is_some());
    assert_eq!(back.jwt.declaration_rsa, set.jwt.declaration_rsa);
    assert_eq!(back.jwt.analytics_rsa, set.jwt.analytics_rsa);
    assert_eq!(back.jwt.report_rsa, set.jwt.report_rsa);
    // Saving what was loaded changes nothing; dropping a day deletes it.
    store.save(&back).unwrap();
    let mut back = store.load().unwrap();
    back.prune_before(day("2024-02-01"));
    store.save(&back).unwrap();
    let again = store.load().unwrap();
    assert_eq!(again.server_keys.len(), 2);
    assert!(!again.server_keys.contains_key(&day("2024-01-31")));
    // Replacing a value is seen by a fresh handle.
    set = again;
    set.server_keys
        .insert(day("2024-02-01"), KeyS::from_bytes([5; 24]));
    store.save(&set).unwrap();
    let fresh = f.open().load().unwrap();
    assert_eq!(
        fresh.server_keys[&day("2024-02-01")],
        KeyS::from_bytes([5; 24])
    );
    assert_eq!(fresh.server_keys.len(), 2);
    assert!(
        format!("{:?}", store).len() < 400,
        "Debug stays short and keyless"
    );
}

fn generation_is_shared(f: &Fixture) {
    let (a, b) = (f.open(), f.open());
    admin::init(a.as_ref(), day("2024-05-01"), 1, GeneratedJwtKeys::None).unwrap();
    let g = b.generation();
    assert!(g.is_some());
    assert_eq!(a.generation(), g);
    // Another "node" rotates: the first sees the change and the new day.
    admin::rotate(b.as_ref(), day("2024-05-01"), 3, 30).unwrap();
    assert_ne!(a.generation(), g);
    assert!(
        a.load()
            .unwrap()
            .server_keys
            .contains_key(&day("2024-05-04"))
    );
    // Nothing to do: no write, same generation.
    let g = a.generation();
    let r = admin::rotate(a.as_ref(), day("2024-05-01"), 3, 30).unwrap();
    assert!(r.added.is_empty() && r.removed.is_empty());
    assert_eq!(b.generation(), g);
}

fn init_rotate_show(f: &Fixture) {
    let s = f.open();
    let s = s.as_ref();
    let r = admin::init(s, day("2024-03-10"), 5, GeneratedJwtKeys::Es256).unwrap();
    assert_eq!(r.added.len(), 3 + 6 + 3);
    assert_eq!(
        r.server_key_range,
        Some(("2024-03-10".into(), "2024-03-15".into()))
    );
    assert_eq!(r.kek_check_value.as_ref().map(String::len), Some(16));
    let pk = admin::show_public(s).unwrap();
    assert!(
        pk.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        "{pk}"
    );
    assert_eq!(r.registration_public_key.as_deref(), Some(pk.as_str()));
    // Idempotent.
    let again = admin::init(s, day("2024-03-10"), 5, GeneratedJwtKeys::Es256).unwrap();
    assert!(again.added.is_empty());
    assert_eq!(again.kek_check_value, r.kek_check_value);
    let r = admin::rotate(s, day("2024-04-01"), 2, 10).unwrap();
    assert_eq!(
        r.added,
        vec!["K_S 2024-04-01", "K_S 2024-04-02", "K_S 2024-04-03"]
    );
    assert_eq!(r.removed.len(), 6, "every March key is older than 10 days");
    assert_eq!(
        admin::show_public(s).unwrap(),
        pk,
        "rotation keeps the key pair"
    );
    let ring = KeyRing::from_set(s.load().unwrap()).unwrap();
    assert!(ring.server_key(day("2024-04-03")).is_some());
    assert!(ring.server_key(day("2024-03-15")).is_none());
}

fn import_formats_and_conflicts(f: &Fixture) {
    let s = f.open();
    let s = s.as_ref();
    let ks_hex = "00112233445566778899aabbccddeeff0011223344556677";
    let kg_b64 = robert_core::b64::encode([7u8; 32]);
    let kek_hex = hex::encode([9u8; 32]);
    let pair = ServerKeyPair::generate(&mut rand::rng());
    let pem = {
        use p256::pkcs8::EncodePrivateKey as _;
        p256::SecretKey::from_slice(pair.to_scalar_bytes().as_ref())
            .unwrap()
            .to_pkcs8_pem(Default::default())
            .unwrap()
    };
    let items = vec![
        ImportItem::ServerKey(day("2024-01-01"), Zeroizing::new(ks_hex.into())),
        ImportItem::FederationKey(Zeroizing::new(kg_b64)),
        ImportItem::Kek(Zeroizing::new(kek_hex.clone())),
        ImportItem::RegistrationKey(Zeroizing::new(pem.to_string())),
    ];
    let r = admin::import(s, items, false).unwrap();
    assert_eq!(r.added.len(), 4);
    assert_eq!(admin::show_public(s).unwrap(), pair.public_key_base64());
    assert_eq!(
        r.kek_check_value.unwrap(),
        super::KeyEncryptionKey::check_value(&Kek::from_bytes([9; 32]))
            .unwrap()
            .to_string()
    );
    let set = s.load().unwrap();
    assert_eq!(
        set.server_keys[&day("2024-01-01")]
            .expose_secret()
            .as_slice(),
        hex::decode(ks_hex).unwrap().as_slice()
    );
    // Same values again: unchanged; another value: conflict unless forced.
    let r = admin::import(s, vec![ImportItem::Kek(Zeroizing::new(kek_hex))], false).unwrap();
    assert_eq!(r.unchanged, vec!["KEK"]);
    let other = robert_core::b64::encode([1u8; 32]);
    let e = admin::import(
        s,
        vec![ImportItem::Kek(Zeroizing::new(other.clone()))],
        false,
    )
    .unwrap_err();
    assert!(matches!(e, KeyStoreError::Conflict(_)));
    let r = admin::import(s, vec![ImportItem::Kek(Zeroizing::new(other))], true).unwrap();
    assert_eq!(r.replaced, vec!["KEK"]);
    // The replacement is what a fresh handle wraps with.
    let w = Kek::from_bytes([1; 32]).wrap(&[3; 32], &mut rand::rng());
    let ring = KeyRing::from_set(f.open().load().unwrap()).unwrap();
    assert_eq!(*ring.kek().unwrap(&w).unwrap(), [3; 32]);
    // Another registration key, forced.
    let pair2 = ServerKeyPair::generate(&mut rand::rng());
    let item = || {
        vec![ImportItem::RegistrationKey(Zeroizing::new(hex::encode(
            pair2.to_scalar_bytes().as_ref(),
        )))]
    };
    assert!(matches!(
        admin::import(s, item(), false),
        Err(KeyStoreError::Conflict(_))
    ));
    admin::import(s, item(), true).unwrap();
    assert_eq!(admin::show_public(s).unwrap(), pair2.public_key_base64());
}

/// The store's ring gives the app and the file store the very bytes the
/// in-memory keys give: the same K_A / K_A_Tuples from one ECDH, the same
/// wrapped keys under one IV, unwraps in both directions.
fn ring_operations_are_byte_exact(f: &Fixture) {
    let s = f.open();
    let kek = Kek::from_bytes([0x42; 32]);
    let pair = ServerKeyPair::generate(&mut rand::rng());
    testing::import_fixed_keys(s.as_ref(), &pair).unwrap();
    let ring = KeyRing::from_set(s.load().unwrap()).unwrap();

    // ECDH: what the app computes, what the memory key computes.
    let mut rng = rand::rng();
    for _ in 0..3 {
        let app = ClientKeyAgreement::new(&mut rng);
        let app_pk = parse_public_key(&app.public_key_base64()).unwrap();
        let server = ring.registration().derive_client_keys(&app_pk).unwrap();
        assert_eq!(server, pair.derive_client_keys(&app_pk));
        assert_eq!(server, app.finish(&ring.registration().public_key()));
    }

    // Wrapping: same bytes under one IV; each side opens the other's.
    let key = [0x17; 32];
    let iv = [9u8; 12];
    let w = ring.kek().wrap_with_iv(iv, &key).unwrap();
    assert_eq!(w, kek.wrap_with_iv(iv, &key));
    assert_eq!(*kek.unwrap(&ring.kek().wrap(&key).unwrap()).unwrap(), key);
    let from_memory = kek.wrap(&key, &mut rng);
    assert_eq!(*ring.kek().unwrap(&from_memory).unwrap(), key);
    assert_eq!(
        ring.kek().unwrap_key_a(&from_memory).unwrap(),
        robert_core::keys::KeyA::from_bytes(key)
    );
    // Altered or foreign: Unwrap, never a token error.
    let mut bad = from_memory;
    bad.0[40] ^= 1;
    assert_eq!(ring.kek().unwrap(&bad).unwrap_err(), KeyOpError::Unwrap);
    let foreign = Kek::from_bytes([1; 32]).wrap(&key, &mut rng);
    assert_eq!(ring.kek().unwrap(&foreign).unwrap_err(), KeyOpError::Unwrap);
    assert_eq!(
        ring.kek().unwrap(&WrappedKey([0; 60])).unwrap_err(),
        KeyOpError::Unwrap
    );

    // Concurrent use from several threads (the session pool).
    let kek: Arc<_> = Arc::clone(ring.kek());
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let kek = Arc::clone(&kek);
            std::thread::spawn(move || {
                for i in 0..100u8 {
                    let k = [t ^ i; 32];
                    let w = kek.wrap(&k).unwrap();
                    assert_eq!(*kek.unwrap(&w).unwrap(), k);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn migrate_from_a_file_store(f: &Fixture) {
    let (src, dir) = f.other_file("migrate");
    admin::init(&src, day("2024-06-01"), 2, GeneratedJwtKeys::Es256).unwrap();
    let mut src_set = src.load().unwrap();
    with_rsa(&mut src_set);
    src.save(&src_set).unwrap();
    // A registration made under the old store.
    let wrapped = src_set.kek.as_ref().unwrap().wrap(&[0x33; 32]).unwrap();
    let to = f.open();
    let r = admin::migrate(&src, to.as_ref(), false).unwrap();
    assert_eq!(r.added.len(), 3 + 3 + 3 + 3, "{r:?}");
    let ring = KeyRing::from_set(to.load().unwrap()).unwrap();
    assert_eq!(*ring.kek().unwrap(&wrapped).unwrap(), [0x33; 32]);
    assert_eq!(
        ring.registration().public_key(),
        src_set.registration.as_ref().unwrap().public_key()
    );
    assert_eq!(ring.server_keys(), &src_set.server_keys);
    assert_eq!(ring.jwt().report, src_set.jwt.report);
    assert_eq!(ring.jwt().report_rsa, src_set.jwt.report_rsa);
    // Again: nothing changes.
    let r = admin::migrate(&src, to.as_ref(), false).unwrap();
    assert!(r.added.is_empty() && r.replaced.is_empty());
    assert_eq!(r.unchanged.len(), 12);
    std::fs::remove_dir_all(dir).unwrap();
}
