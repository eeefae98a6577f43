use super::*;
use crate::keystore::KeyEncryptionKey as _;

#[test]
fn names_and_points() {
    let d = UtcDate::new(2024, 3, 9).unwrap();
    assert_eq!(day_name(d), "server-key-20240309");
    assert_eq!(parse_day("server-key-20240309"), Some(d));
    assert_eq!(parse_day("server-key-2024039"), None);
    assert_eq!(parse_day("server-key-2024-3-9"), None);
    assert!(is_extractable_name("federation-key") && !is_extractable_name(KEK));
    let pair = ServerKeyPair::generate(&mut rand::rng());
    let der = der_ec_point(&pair.public_key());
    assert_eq!(parse_ec_point(&der), Some(pair.public_key()));
    assert_eq!(parse_ec_point(&der[2..]), Some(pair.public_key()));
    assert_eq!(parse_ec_point(&der[..40]), None);
    let a = new_id();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(a < new_id(), "ids sort by creation time");
}

fn in_softhsm(test: &str) -> Option<Pkcs11Settings> {
    testing::in_softhsm(&format!("keystore::pkcs11::tests::{test}"))
}

fn open(settings: &Pkcs11Settings) -> Pkcs11KeyStore {
    Pkcs11KeyStore::open(settings, Zeroizing::new(testing::USER_PIN.into())).unwrap()
}

fn bool_attrs(store: &Pkcs11KeyStore, h: ObjectHandle) -> Vec<(AttributeType, bool)> {
    store
        .token
        .run("attrs", |s| {
            s.get_attributes(
                h,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::Local,
                ],
            )
        })
        .unwrap()
        .into_iter()
        .filter_map(|a| match a {
            Attribute::Sensitive(b) => Some((AttributeType::Sensitive, b)),
            Attribute::Extractable(b) => Some((AttributeType::Extractable, b)),
            Attribute::NeverExtractable(b) => Some((AttributeType::NeverExtractable, b)),
            Attribute::Local(b) => Some((AttributeType::Local, b)),
            _ => None,
        })
        .collect()
}

fn today() -> UtcDate {
    UtcDate::new(2024, 3, 10).unwrap()
}

/// The KEK and the registration private key are generated in the
/// token, sensitive and never extractable: their value cannot be read,
/// and neither can a file store receive them.
#[test]
fn sealed_keys_stay_in_the_token() {
    let Some(settings) = in_softhsm("sealed_keys_stay_in_the_token") else {
        return;
    };
    let store = open(&settings);
    crate::keystore::admin::init(&store, today(), 1, crate::keystore::GeneratedJwtKeys::Es256)
        .unwrap();
    let index = store.run_index().unwrap();
    let kek = index.secret[KEK][0].handle;
    let reg = index.private[REGISTRATION][0].handle;
    for h in [kek, reg] {
        assert_eq!(
            bool_attrs(&store, h),
            vec![
                (AttributeType::Sensitive, true),
                (AttributeType::Extractable, false),
                (AttributeType::NeverExtractable, true),
                (AttributeType::Local, true),
            ]
        );
        assert!(
            store
                .token
                .run("value", |s| value_of(s, h))
                .map_or(true, |v| v.is_none()),
            "the token gave out a sealed key's value"
        );
    }
    // The session copies used for speed keep those attributes.
    let kek_copy = store.token_kek(&index).unwrap().unwrap();
    let reg_copy = store.token_registration(&index).unwrap().unwrap();
    for (copy, original) in [
        (kek_copy.key.current(), kek),
        (reg_copy.private.current(), reg),
    ] {
        assert_ne!(copy, original, "SoftHSM allows session copies");
        let attrs = bool_attrs(&store, copy);
        assert!(
            attrs.contains(&(AttributeType::Sensitive, true)),
            "{attrs:?}"
        );
        assert!(
            attrs.contains(&(AttributeType::Extractable, false)),
            "{attrs:?}"
        );
    }
    // A lost copy (its session closed): the token object serves, a new
    // copy is made.
    let w = kek_copy.wrap(&[1; 32]).unwrap();
    let lost = kek_copy.key.current();
    store.token.destroy(lost);
    assert_eq!(*kek_copy.unwrap(&w).unwrap(), [1; 32]);
    assert_ne!(kek_copy.key.current(), lost);
    assert_eq!(*kek_copy.unwrap(&w).unwrap(), [1; 32]);
    // K_S are extractable by design.
    let ks = index.secret[&day_name(today())][0].handle;
    assert_eq!(
        store
            .token
            .run("v", |s| value_of(s, ks))
            .unwrap()
            .unwrap()
            .len(),
        24
    );
    // No way out through a file store.
    let dir = std::env::temp_dir().join(format!("robert-sealed-{}", std::process::id()));
    let file = crate::keystore::file::FileKeyStore::new(
        dir.join("ks"),
        Zeroizing::new("pw".into()),
        crate::keystore::file::KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    );
    let e = crate::keystore::admin::migrate(&store, &file, false).unwrap_err();
    assert!(matches!(e, KeyStoreError::NotExportable("KEK")), "{e}");
    assert!(!file.exists());
    // An imported KEK is sealed too (but was not generated there).
    crate::keystore::admin::import(
        &store,
        vec![crate::keystore::admin::ImportItem::Kek(Zeroizing::new(
            hex::encode([4; 32]),
        ))],
        true,
    )
    .unwrap();
    let kek = store.run_index().unwrap().secret[KEK][0].handle;
    let attrs = bool_attrs(&store, kek);
    assert!(attrs.contains(&(AttributeType::Sensitive, true)));
    assert!(attrs.contains(&(AttributeType::Extractable, false)));
    let _ = std::fs::remove_dir_all(dir);
}

/// A wrong PIN or token label is a clear error without the PIN; two
/// label prefixes are two key stores; duplicate labels resolve the
/// same way for every reader.
#[test]
fn login_prefixes_and_duplicates() {
    let Some(settings) = in_softhsm("login_prefixes_and_duplicates") else {
        return;
    };
    let e = Pkcs11KeyStore::open(&settings, Zeroizing::new("999999".into())).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("login refused") && !msg.contains("999999"),
        "{msg}"
    );
    let other = Pkcs11Settings {
        token_label: "no-such-token".into(),
        ..settings.clone()
    };
    let e = Pkcs11KeyStore::open(&other, Zeroizing::new(testing::USER_PIN.into())).unwrap_err();
    assert!(matches!(e, KeyStoreError::NotFound(_)), "{e}");

    let a = open(&settings);
    let b = open(&Pkcs11Settings {
        label_prefix: "site-b/".into(),
        ..settings
    });
    crate::keystore::admin::init(&a, today(), 0, crate::keystore::GeneratedJwtKeys::None).unwrap();
    assert!(a.exists() && !b.exists());
    crate::keystore::admin::init(&b, today(), 0, crate::keystore::GeneratedJwtKeys::None).unwrap();
    let (ka, kb) = (a.load().unwrap(), b.load().unwrap());
    assert_ne!(
        ka.kek.as_ref().unwrap().check_value().unwrap(),
        kb.kek.as_ref().unwrap().check_value().unwrap()
    );
    assert_eq!(ka.server_keys.len(), 1);

    // A second K_S object for today, created later: the first one wins,
    // and the next save removes the extra.
    let first = ka.server_keys[&today()].clone();
    a.create_extractable(&day_name(today()), &[9; 24]).unwrap();
    assert_eq!(a.load().unwrap().server_keys[&today()], first);
    a.save(&a.load().unwrap()).unwrap();
    assert_eq!(a.run_index().unwrap().secret[&day_name(today())].len(), 1);
    assert_eq!(a.load().unwrap().server_keys[&today()], first);
    // Two KEKs cannot be told apart: refused.
    a.import_kek(&Kek::from_bytes([8; 32])).unwrap();
    let e = a.load().unwrap_err().to_string();
    assert!(e.contains("2 objects labelled key-encryption-key"), "{e}");
}

#[test]
fn pin_resolution() {
    let dir = std::env::temp_dir().join(format!("robert-pin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pin");
    let (p, src) = resolve_pin(Some("1234".into()), Some(&file)).unwrap();
    assert_eq!((p.as_str(), src), ("1234", SecretSource::Env(PIN_ENV)));
    assert!(matches!(
        resolve_pin(None, None),
        Err(KeyStoreError::NoPin(_))
    ));
    assert!(matches!(
        resolve_pin(Some(String::new()), Some(&file)),
        Err(KeyStoreError::Io { .. })
    ));
    std::fs::write(&file, "98765\n").unwrap();
    let (p, src) = resolve_pin(None, Some(&file)).unwrap();
    assert_eq!(
        (p.as_str(), src),
        ("98765", SecretSource::File(file.clone()))
    );
    std::fs::write(&file, "\n").unwrap();
    let e = resolve_pin(None, Some(&file)).unwrap_err().to_string();
    assert!(e.contains("ROBERT_PKCS11_PIN"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
