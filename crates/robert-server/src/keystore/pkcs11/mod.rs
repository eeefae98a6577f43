//! A key store in a PKCS#11 token: an HSM in production, SoftHSM2 in tests.
//!
//! | object (label, after `label_prefix`) | class / type | attributes | use |
//! |---|---|---|---|
//! | `key-encryption-key` | secret key, AES-256 | sensitive, never extractable; encrypt/decrypt only | `CKM_AES_GCM` wrap/unwrap of K_A and K_A_Tuples |
//! | `register-key` | EC P-256 private key + public key | private: sensitive, never extractable, derive only | `CKM_ECDH1_DERIVE` at `/register` |
//! | `federation-key` | secret key, generic | extractable | K_G, read into memory |
//! | `server-key-YYYYMMDD` | secret key, generic (24 bytes) | extractable | K_S of that UTC day, read into memory |
//! | `jwt-declaration-key`, `jwt-analytics-key`, `jwt-report-key` | secret key, generic (32 bytes) | extractable | ES256 token keys, read into memory |
//! | `jwt-declaration-rsa-key`, `jwt-analytics-rsa-key`, `jwt-report-rsa-key` | secret key, generic (PKCS#8 DER of an RSA-2048 key, ~1.2 KiB) | extractable | RS256 token keys, read into memory |
//! | `robert-keystore-generation` | data object | 8 random bytes, replaced at every save | change detection |
//!
//! The labels follow the reference's keystore aliases. The KEK and the
//! registration key are generated inside the token ([`KeyStore::generate_kek`],
//! [`KeyStore::generate_registration_key`]) or imported into it once (`robert
//! keys import` / `keys migrate`), and are then used through their handles
//! only. K_S, K_G and the JWT keys are extractable: SKINNY-64-192 and the
//! per-request AES-ECB of the ECC are not token mechanisms, and reading
//! them once per reload costs nothing per request.
//!
//! Several servers may share one token: every object is found by its
//! label, and the generation object tells each of them when to reload. When
//! two writers race and leave two objects with one label, the one with the
//! smallest `CKA_ID` (creation time first) wins for every reader, and the
//! next save deletes the others; two KEKs or registration keys are refused.
//!
//! Saving is not atomic across objects (PKCS#11 has no transactions): a
//! replaced key is destroyed before its successor is created, so a crash in
//! between leaves a key missing (run the command again), never two.

mod keys;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
mod token;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rand::Rng as _;
use robert_core::keys::{Kek, KeyG, KeyS};
use robert_core::registration::ServerKeyPair;
use robert_core::time::UtcDate;
use zeroize::{Zeroize as _, Zeroizing};

use keys::TokenKey;
pub use keys::{TokenKek, TokenRegistrationKey};
use token::Token;

use super::{KeySet, KeyStore, KeyStoreError, SecretSource, SharedKek, SharedRegistrationKey};

/// Environment variable holding the token's user PIN.
pub const PIN_ENV: &str = "ROBERT_PKCS11_PIN";

const KEK: &str = "key-encryption-key";
const REGISTRATION: &str = "register-key";
const KEY_G: &str = "federation-key";
const KEY_S: &str = "server-key-";
const JWT_DECLARATION: &str = "jwt-declaration-key";
const JWT_ANALYTICS: &str = "jwt-analytics-key";
const JWT_REPORT: &str = "jwt-report-key";
const JWT_DECLARATION_RSA: &str = "jwt-declaration-rsa-key";
const JWT_ANALYTICS_RSA: &str = "jwt-analytics-rsa-key";
const JWT_REPORT_RSA: &str = "jwt-report-rsa-key";
const GENERATION: &str = "robert-keystore-generation";

/// DER of the OID prime256v1 (CKA_EC_PARAMS).
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// Where the token is and how its objects are named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkcs11Settings {
    /// The PKCS#11 module (shared library) of the HSM.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// Prepended to every object label (several deployments in one token).
    pub label_prefix: String,
    /// Idle sessions kept open for reuse.
    pub max_idle_sessions: usize,
}

/// Finds the token PIN: the environment value if set and non-empty, else
/// the PIN file. Never from the command line; never logged.
pub fn resolve_pin(
    env_value: Option<String>,
    file: Option<&Path>,
) -> Result<(Zeroizing<String>, SecretSource), KeyStoreError> {
    if let Some(v) = env_value {
        let v = Zeroizing::new(v);
        if !v.is_empty() {
            return Ok((v, SecretSource::Env(PIN_ENV)));
        }
    }
    let Some(file) = file.filter(|f| !f.as_os_str().is_empty()) else {
        return Err(KeyStoreError::NoPin(
            "no keys.pkcs11.pin_file configured".into(),
        ));
    };
    let bytes = Zeroizing::new(std::fs::read(file).map_err(|source| KeyStoreError::Io {
        path: file.display().to_string(),
        source,
    })?);
    let text = std::str::from_utf8(&bytes).map_err(|_| KeyStoreError::Malformed {
        path: file.display().to_string(),
        reason: "PIN file is not UTF-8".into(),
    })?;
    let pin = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if pin.is_empty() {
        return Err(KeyStoreError::NoPin(format!("{} is empty", file.display())));
    }
    Ok((pin, SecretSource::File(file.to_path_buf())))
}

/// One object found in the token.
#[derive(Clone, Copy, Debug)]
struct Found {
    handle: ObjectHandle,
}

/// Our objects in the token, by name (label without the prefix); each list
/// is sorted by `CKA_ID`, the winner first.
#[derive(Debug, Default)]
struct Index {
    secret: BTreeMap<String, Vec<Found>>,
    private: BTreeMap<String, Vec<Found>>,
    public: BTreeMap<String, Vec<Found>>,
    data: BTreeMap<String, Vec<Found>>,
}

impl Index {
    fn is_empty(&self) -> bool {
        self.secret.is_empty() && self.private.is_empty() && self.data.is_empty()
    }
}

/// The PKCS#11 key store.
pub struct Pkcs11KeyStore {
    token: Arc<Token>,
    prefix: String,
}

impl std::fmt::Debug for Pkcs11KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11KeyStore")
            .field("token", &self.token)
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn value_of(s: &Session, h: ObjectHandle) -> Result<Option<Zeroizing<Vec<u8>>>, CkError> {
    let mut attrs = s.get_attributes(h, &[AttributeType::Value])?;
    let mut out = None;
    for a in &mut attrs {
        if let Attribute::Value(v) = a {
            out = Some(Zeroizing::new(std::mem::take(v)));
        }
    }
    Ok(out)
}

fn ec_point_of(s: &Session, h: ObjectHandle) -> Result<Option<Vec<u8>>, CkError> {
    Ok(s.get_attributes(h, &[AttributeType::EcPoint])?
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(v) => Some(v),
            _ => None,
        }))
}

/// A `CKA_EC_POINT`: DER OCTET STRING of the uncompressed point (as
/// PKCS#11 specifies) or the bare point (as some modules return).
fn parse_ec_point(v: &[u8]) -> Option<p256::PublicKey> {
    let raw = match v {
        [0x04, 0x41, rest @ ..] if v.len() == 67 => rest,
        _ => v,
    };
    p256::PublicKey::from_sec1_bytes(raw).ok()
}

fn der_ec_point(key: &p256::PublicKey) -> Vec<u8> {
    use p256::elliptic_curve::sec1::ToSec1Point as _;
    let point = key.to_sec1_point(false);
    let mut out = Vec::with_capacity(67);
    out.extend_from_slice(&[0x04, 0x41]);
    out.extend_from_slice(point.as_bytes());
    out
}

/// A fresh `CKA_ID`: creation time (ns, big-endian) then 8 random bytes, so
/// that the earliest of two same-named objects sorts first.
fn new_id() -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Truncation is fine: an ordering hint, not a timestamp.
    let mut id = (nanos as u64).to_be_bytes().to_vec();
    let mut r = [0u8; 8];
    rand::rng().fill_bytes(&mut r);
    id.extend_from_slice(&r);
    id
}

fn day_name(day: UtcDate) -> String {
    format!("{KEY_S}{}", day.to_string().replace('-', ""))
}

fn parse_day(name: &str) -> Option<UtcDate> {
    let d = name.strip_prefix(KEY_S)?;
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]).parse().ok()
}

/// The extractable keys of a set, by object name.
fn extractable_values(keys: &KeySet) -> BTreeMap<String, Zeroizing<Vec<u8>>> {
    let mut out = BTreeMap::new();
    if let Some(k) = &keys.key_g {
        out.insert(KEY_G.to_owned(), Zeroizing::new(k.expose_secret().to_vec()));
    }
    for (day, k) in &keys.server_keys {
        out.insert(day_name(*day), Zeroizing::new(k.expose_secret().to_vec()));
    }
    for (name, slot) in [
        (JWT_DECLARATION, &keys.jwt.declaration),
        (JWT_ANALYTICS, &keys.jwt.analytics),
        (JWT_REPORT, &keys.jwt.report),
    ] {
        if let Some(k) = slot {
            out.insert(name.to_owned(), Zeroizing::new(k.to_vec()));
        }
    }
    for (name, slot) in [
        (JWT_DECLARATION_RSA, &keys.jwt.declaration_rsa),
        (JWT_ANALYTICS_RSA, &keys.jwt.analytics_rsa),
        (JWT_REPORT_RSA, &keys.jwt.report_rsa),
    ] {
        if let Some(k) = slot {
            out.insert(name.to_owned(), k.clone());
        }
    }
    out
}

fn is_extractable_name(name: &str) -> bool {
    matches!(
        name,
        KEY_G
            | JWT_DECLARATION
            | JWT_ANALYTICS
            | JWT_REPORT
            | JWT_DECLARATION_RSA
            | JWT_ANALYTICS_RSA
            | JWT_REPORT_RSA
    ) || parse_day(name).is_some()
}

impl Pkcs11KeyStore {
    /// Opens the token of `settings` and logs in with `pin`.
    pub fn open(settings: &Pkcs11Settings, pin: Zeroizing<String>) -> Result<Self, KeyStoreError> {
        let token = Token::open(
            &settings.module,
            &settings.token_label,
            pin,
            settings.max_idle_sessions,
        )?;
        Ok(Self {
            token: Arc::new(token),
            prefix: settings.label_prefix.clone(),
        })
    }

    fn label(&self, name: &str) -> Vec<u8> {
        format!("{}{name}", self.prefix).into_bytes()
    }

    fn malformed(&self, reason: String) -> KeyStoreError {
        KeyStoreError::Malformed {
            path: self.location(),
            reason,
        }
    }

    /// Lists our objects.
    fn index(&self, s: &Session) -> Result<Index, CkError> {
        let mut index = Index::default();
        for class in [
            ObjectClass::SECRET_KEY,
            ObjectClass::PRIVATE_KEY,
            ObjectClass::PUBLIC_KEY,
            ObjectClass::DATA,
        ] {
            let mut found: Vec<(String, Vec<u8>, Found)> = Vec::new();
            for handle in s.find_objects(&[Attribute::Class(class), Attribute::Token(true)])? {
                let mut label = None;
                let mut id = Vec::new();
                for a in s.get_attributes(handle, &[AttributeType::Label, AttributeType::Id])? {
                    match a {
                        Attribute::Label(l) => label = String::from_utf8(l).ok(),
                        Attribute::Id(i) => id = i,
                        _ => {}
                    }
                }
                let Some(name) = label.as_deref().and_then(|l| l.strip_prefix(&self.prefix)) else {
                    continue;
                };
                found.push((name.to_owned(), id, Found { handle }));
            }
            found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            let map = match class {
                ObjectClass::SECRET_KEY => &mut index.secret,
                ObjectClass::PRIVATE_KEY => &mut index.private,
                ObjectClass::PUBLIC_KEY => &mut index.public,
                _ => &mut index.data,
            };
            for (name, _, f) in found {
                map.entry(name).or_default().push(f);
            }
        }
        Ok(index)
    }

    fn run_index(&self) -> Result<Index, KeyStoreError> {
        self.token.run("listing objects", |s| self.index(s))
    }

    fn single<'a>(
        &self,
        map: &'a BTreeMap<String, Vec<Found>>,
        name: &str,
    ) -> Result<Option<&'a Found>, KeyStoreError> {
        match map.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => Ok(Some(one)),
            Some(many) => Err(self.malformed(format!(
                "the token holds {} objects labelled {}{name}: remove the wrong ones with the HSM's tools",
                many.len(),
                self.prefix
            ))),
        }
    }

    fn token_kek(&self, index: &Index) -> Result<Option<TokenKek>, KeyStoreError> {
        Ok(self.single(&index.secret, KEK)?.map(|f| TokenKek {
            key: TokenKey::new(Arc::clone(&self.token), f.handle),
        }))
    }

    fn token_registration(
        &self,
        index: &Index,
    ) -> Result<Option<TokenRegistrationKey>, KeyStoreError> {
        let Some(private) = self.single(&index.private, REGISTRATION)? else {
            return Ok(None);
        };
        let public = index
            .public
            .get(REGISTRATION)
            .and_then(|v| v.first())
            .ok_or_else(|| {
                self.malformed(format!(
                    "{}{REGISTRATION} has no public-key object",
                    self.prefix
                ))
            })?;
        let point = self
            .token
            .run("reading the registration public key", |s| {
                ec_point_of(s, public.handle)
            })?
            .and_then(|p| parse_ec_point(&p))
            .ok_or_else(|| {
                self.malformed(format!(
                    "{}{REGISTRATION}: not a P-256 public key",
                    self.prefix
                ))
            })?;
        Ok(Some(TokenRegistrationKey {
            private: TokenKey::new(Arc::clone(&self.token), private.handle),
            public: point,
        }))
    }

    fn read_value(&self, f: &Found, name: &str) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
        self.token
            .run("reading a key", |s| value_of(s, f.handle))?
            .ok_or_else(|| {
                self.malformed(format!(
                    "{}{name} cannot be read (not extractable?)",
                    self.prefix
                ))
            })
    }

    fn create(&self, what: &str, template: &[Attribute]) -> Result<ObjectHandle, KeyStoreError> {
        self.token.run(what, |s| s.create_object(template))
    }

    fn destroy_all(&self, found: &[Found]) -> Result<(), KeyStoreError> {
        for f in found {
            self.token
                .run("deleting an object", |s| s.destroy_object(f.handle))?;
        }
        Ok(())
    }

    fn create_extractable(&self, name: &str, value: &[u8]) -> Result<(), KeyStoreError> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Label(self.label(name)),
            Attribute::Id(new_id()),
            Attribute::Value(value.to_vec()),
        ];
        let r = self.create("creating a key", &template);
        zeroize_template(template);
        r.map(|_| ())
    }

    fn kek_template(&self) -> Vec<Attribute> {
        vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(self.label(KEK)),
            Attribute::Id(new_id()),
        ]
    }

    fn registration_templates(&self) -> (Vec<Attribute>, Vec<Attribute>) {
        let id = new_id();
        let public = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(self.label(REGISTRATION)),
            Attribute::Id(id.clone()),
        ];
        let private = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Derive(true),
            Attribute::Sign(false),
            Attribute::Label(self.label(REGISTRATION)),
            Attribute::Id(id),
        ];
        (public, private)
    }

    fn import_kek(&self, kek: &Kek) -> Result<(), KeyStoreError> {
        let mut template = self.kek_template();
        template.push(Attribute::Value(kek.expose_secret().to_vec()));
        let r = self.create("importing the KEK", &template);
        zeroize_template(template);
        r.map(|_| ())
    }

    fn import_registration(&self, pair: &ServerKeyPair) -> Result<(), KeyStoreError> {
        let (mut public, mut private) = self.registration_templates();
        // CKA_EC_PARAMS goes on both halves of an imported pair.
        private.push(Attribute::EcParams(P256_PARAMS.to_vec()));
        private.push(Attribute::Value(pair.to_scalar_bytes().to_vec()));
        public.push(Attribute::EcPoint(der_ec_point(&pair.public_key())));
        let r = self
            .create("importing the registration key", &private)
            .and_then(|_| self.create("importing the registration public key", &public));
        zeroize_template(private);
        r.map(|_| ())
    }

    /// Replaces the generation object by one with a new random value (a
    /// data object's value cannot be modified on every token).
    fn bump_generation(&self, index: &Index) -> Result<(), KeyStoreError> {
        let mut value = [0u8; 8];
        rand::rng().fill_bytes(&mut value);
        self.create(
            "creating the generation object",
            &[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(self.label(GENERATION)),
                Attribute::Application(b"robert".to_vec()),
                Attribute::Value(value.to_vec()),
            ],
        )?;
        self.destroy_all(index.data.get(GENERATION).map_or(&[], Vec::as_slice))
    }
}

/// Wipes the key bytes a template carried.
fn zeroize_template(template: impl IntoIterator<Item = Attribute>) {
    for a in template {
        if let Attribute::Value(mut v) = a {
            v.zeroize();
        }
    }
}

impl KeyStore for Pkcs11KeyStore {
    fn location(&self) -> String {
        self.token.location().to_owned()
    }

    fn exists(&self) -> bool {
        self.run_index().is_ok_and(|i| !i.is_empty())
    }

    fn load(&self) -> Result<KeySet, KeyStoreError> {
        let index = self.run_index()?;
        if index.is_empty() {
            return Err(KeyStoreError::NotFound(self.location()));
        }
        let mut set = KeySet {
            kek: self.token_kek(&index)?.map(|k| Arc::new(k) as SharedKek),
            registration: self
                .token_registration(&index)?
                .map(|k| Arc::new(k) as SharedRegistrationKey),
            ..KeySet::default()
        };
        let bad = |name: &str| self.malformed(format!("{}{name} has a wrong length", self.prefix));
        for (name, found) in &index.secret {
            let Some(first) = found.first() else { continue };
            if !is_extractable_name(name) {
                continue;
            }
            let value = self.read_value(first, name)?;
            if let Some(day) = parse_day(name) {
                set.server_keys
                    .insert(day, KeyS::from_slice(&value).map_err(|_| bad(name))?);
                continue;
            }
            match name.as_str() {
                KEY_G => set.key_g = Some(KeyG::from_slice(&value).map_err(|_| bad(name))?),
                JWT_DECLARATION | JWT_ANALYTICS | JWT_REPORT => {
                    let arr: [u8; 32] = value.as_slice().try_into().map_err(|_| bad(name))?;
                    let arr = Zeroizing::new(arr);
                    ServerKeyPair::from_scalar_bytes(arr.as_ref()).map_err(|_| bad(name))?;
                    let slot = match name.as_str() {
                        JWT_DECLARATION => &mut set.jwt.declaration,
                        JWT_ANALYTICS => &mut set.jwt.analytics,
                        _ => &mut set.jwt.report,
                    };
                    *slot = Some(arr);
                }
                JWT_DECLARATION_RSA | JWT_ANALYTICS_RSA | JWT_REPORT_RSA => {
                    if !super::check_rsa_jwt_key(&value) {
                        return Err(bad(name));
                    }
                    let slot = match name.as_str() {
                        JWT_DECLARATION_RSA => &mut set.jwt.declaration_rsa,
                        JWT_ANALYTICS_RSA => &mut set.jwt.analytics_rsa,
                        _ => &mut set.jwt.report_rsa,
                    };
                    *slot = Some(Zeroizing::new(value.to_vec()));
                }
                _ => {}
            }
        }
        Ok(set)
    }

    fn save(&self, keys: &KeySet) -> Result<(), KeyStoreError> {
        let index = self.run_index()?;
        // K_S, K_G, JWT keys: make the token hold exactly the set's values.
        let wanted = extractable_values(keys);
        for (name, found) in &index.secret {
            if !is_extractable_name(name) {
                continue;
            }
            match (wanted.get(name), found.split_first()) {
                (None, _) => self.destroy_all(found)?,
                (Some(v), Some((first, rest))) => {
                    if self.read_value(first, name)?.as_slice() == v.as_slice() {
                        self.destroy_all(rest)?;
                    } else {
                        self.destroy_all(found)?;
                        self.create_extractable(name, v)?;
                    }
                }
                (Some(_), None) => {}
            }
        }
        for (name, v) in &wanted {
            if index.secret.get(name).is_none_or(Vec::is_empty) {
                self.create_extractable(name, v)?;
            }
        }
        // The KEK and the registration key: a key in memory (an import) is
        // put into the token, replacing a different one; a token key is
        // already there. An absent key deletes nothing.
        if let Some(mem) = keys.kek.as_ref().and_then(|k| k.in_memory()) {
            let existing = self.token_kek(&index)?;
            let same = match &existing {
                Some(t) => {
                    use super::KeyEncryptionKey as _;
                    t.check_value()? == mem.check_value()?
                }
                None => false,
            };
            if !same {
                self.destroy_all(index.secret.get(KEK).map_or(&[], Vec::as_slice))?;
                self.import_kek(mem)?;
            }
        }
        if let Some(mem) = keys.registration.as_ref().and_then(|k| k.in_memory()) {
            let existing = self.token_registration(&index)?;
            if existing.is_none_or(|t| t.public != mem.public_key()) {
                self.destroy_all(index.private.get(REGISTRATION).map_or(&[], Vec::as_slice))?;
                self.destroy_all(index.public.get(REGISTRATION).map_or(&[], Vec::as_slice))?;
                self.import_registration(mem)?;
            }
        }
        self.bump_generation(&index)
    }

    fn generation(&self) -> Option<u64> {
        let label = self.label(GENERATION);
        self.token
            .with_session(|s| {
                let found = s.find_objects(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Label(label.clone()),
                ])?;
                match found.first() {
                    Some(h) => value_of(s, *h),
                    None => Ok(None),
                }
            })
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map(u64::from_be_bytes)
    }

    fn generate_kek(&self) -> Result<SharedKek, KeyStoreError> {
        let mut template = self.kek_template();
        template.push(Attribute::ValueLen(32.into()));
        let handle = self.token.run("generating the KEK", |s| {
            s.generate_key(&Mechanism::AesKeyGen, &template)
        })?;
        Ok(Arc::new(TokenKek {
            key: TokenKey::new(Arc::clone(&self.token), handle),
        }))
    }

    fn generate_registration_key(&self) -> Result<SharedRegistrationKey, KeyStoreError> {
        let (public, private) = self.registration_templates();
        let (pub_handle, priv_handle) = self.token.run("generating the registration key", |s| {
            s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        })?;
        let point = self
            .token
            .run("reading the registration public key", |s| {
                ec_point_of(s, pub_handle)
            })?
            .and_then(|p| parse_ec_point(&p))
            .ok_or_else(|| {
                self.malformed("the generated public key is not a P-256 point".into())
            })?;
        Ok(Arc::new(TokenRegistrationKey {
            private: TokenKey::new(Arc::clone(&self.token), priv_handle),
            public: point,
        }))
    }
}

#[cfg(test)]
mod tests;
