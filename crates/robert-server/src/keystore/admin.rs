//! Key administration behind `robert keys init | import | rotate | show-public`.
//!
//! Imported values are given in hex or standard base64 (padding optional);
//! the registration private key may also be a PKCS#8 or SEC1 PEM document or
//! base64 PKCS#8 DER. A value `@path` is read from that file, which keeps
//! secrets out of shell history and process listings.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use robert_core::keys::{Kek, KeyG, KeyS};
use robert_core::registration::ServerKeyPair;
use robert_core::time::UtcDate;
use serde::Serialize;
use zeroize::Zeroizing;

use super::{GeneratedJwtKeys, KeySet, KeyStore, KeyStoreError, SharedKek, SharedRegistrationKey};

/// What an administrative command changed (never key bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyReport {
    /// The store.
    pub keystore: String,
    /// Keys added.
    pub added: Vec<String>,
    /// Keys replaced (import with `--force`).
    pub replaced: Vec<String>,
    /// Keys removed.
    pub removed: Vec<String>,
    /// Keys already present with the same value.
    pub unchanged: Vec<String>,
    /// First and last K_S date now held.
    pub server_key_range: Option<(String, String)>,
    /// The registration public key (base64 SPKI), if present.
    pub registration_public_key: Option<String>,
    /// The KEK's check value (hex), if present: equal in two stores means
    /// the same KEK, so registrations made with one open with the other.
    pub kek_check_value: Option<String>,
}

/// Saves `set` if it `changed`, then completes `report` with what the store
/// now holds.
fn finish(
    store: &dyn KeyStore,
    set: &KeySet,
    changed: bool,
    mut report: KeyReport,
) -> Result<KeyReport, KeyStoreError> {
    if changed {
        store.save(set)?;
    }
    report.keystore = store.location();
    report.server_key_range = match (
        set.server_keys.keys().next(),
        set.server_keys.keys().next_back(),
    ) {
        (Some(a), Some(b)) => Some((a.to_string(), b.to_string())),
        _ => None,
    };
    report.registration_public_key = set.registration.as_ref().map(|k| k.public_key_base64());
    report.kek_check_value = match &set.kek {
        Some(k) => Some(k.check_value()?.to_string()),
        None => None,
    };
    Ok(report)
}

fn load_or_empty(store: &dyn KeyStore) -> Result<KeySet, KeyStoreError> {
    if store.exists() {
        store.load()
    } else {
        Ok(KeySet::default())
    }
}

/// `keys init`: creates K_G, the KEK, the registration key pair, the JWT
/// keys of the configured algorithm (`jwt`) and K_S for
/// `today..=today+future_days`. On an
/// existing store only missing keys are added. The KEK and the registration
/// key are created by the store ([`KeyStore::generate_kek`]): inside the
/// token for a PKCS#11 store.
pub fn init(
    store: &dyn KeyStore,
    today: UtcDate,
    future_days: u32,
    jwt: GeneratedJwtKeys,
) -> Result<KeyReport, KeyStoreError> {
    let mut set = load_or_empty(store)?;
    let mut added = Vec::new();
    if set.kek.is_none() {
        set.kek = Some(store.generate_kek()?);
        added.push("KEK".to_owned());
    }
    if set.registration.is_none() {
        set.registration = Some(store.generate_registration_key()?);
        added.push("registration key pair".to_owned());
    }
    added.extend(set.fill_missing(
        today,
        today.add_days(i64::from(future_days)),
        jwt == GeneratedJwtKeys::Es256,
        &mut rand::rng(),
    ));
    if jwt == GeneratedJwtKeys::Rs256 {
        added.extend(set.fill_missing_rsa_jwt(&mut rand::rng())?);
    }
    let changed = !added.is_empty() || !store.exists();
    let report = KeyReport {
        added,
        ..KeyReport::default()
    };
    finish(store, &set, changed, report)
}

/// Adds the JWT keys of `jwt`'s algorithm to an existing store if they are
/// missing. Returns what was added.
pub fn init_jwt_only(
    store: &dyn KeyStore,
    jwt: GeneratedJwtKeys,
) -> Result<Vec<String>, KeyStoreError> {
    let mut set = store.load()?;
    let mut added = Vec::new();
    let mut rng = rand::rng();
    match jwt {
        GeneratedJwtKeys::None => {}
        GeneratedJwtKeys::Es256 => {
            for (slot, name) in [
                (&mut set.jwt.declaration, "JWT declaration key"),
                (&mut set.jwt.analytics, "JWT analytics key"),
                (&mut set.jwt.report, "JWT report key"),
            ] {
                if slot.is_none() {
                    *slot = Some(ServerKeyPair::generate(&mut rng).to_scalar_bytes());
                    added.push(name.to_owned());
                }
            }
        }
        GeneratedJwtKeys::Rs256 => added.extend(set.fill_missing_rsa_jwt(&mut rng)?),
    }
    if !added.is_empty() {
        store.save(&set)?;
    }
    Ok(added)
}

/// `keys rotate`: adds K_S up to `today + future_days` and deletes those
/// older than `today - retention_days`.
pub fn rotate(
    store: &dyn KeyStore,
    today: UtcDate,
    future_days: u32,
    retention_days: u32,
) -> Result<KeyReport, KeyStoreError> {
    let mut set = store.load()?;
    let mut added = Vec::new();
    let mut day = today;
    let last = today.add_days(i64::from(future_days));
    let mut rng = rand::rng();
    while day <= last {
        if let std::collections::btree_map::Entry::Vacant(e) = set.server_keys.entry(day) {
            e.insert(KeyS::generate(&mut rng));
            added.push(format!("K_S {day}"));
        }
        day = day.add_days(1);
    }
    let removed: Vec<String> = set
        .prune_before(today.add_days(-i64::from(retention_days)))
        .into_iter()
        .map(|d| format!("K_S {d}"))
        .collect();
    let changed = !added.is_empty() || !removed.is_empty();
    let report = KeyReport {
        added,
        removed,
        ..KeyReport::default()
    };
    finish(store, &set, changed, report)
}

/// `keys show-public`: the registration public key in the base64
/// SubjectPublicKeyInfo form apps embed.
pub fn show_public(store: &dyn KeyStore) -> Result<String, KeyStoreError> {
    store
        .load()?
        .registration
        .map(|k| k.public_key_base64())
        .ok_or(KeyStoreError::Missing("registration key pair"))
}

/// One key to import.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImportItem {
    /// K_S of a date.
    ServerKey(UtcDate, Zeroizing<String>),
    /// K_G.
    FederationKey(Zeroizing<String>),
    /// The KEK.
    Kek(Zeroizing<String>),
    /// The registration private key.
    RegistrationKey(Zeroizing<String>),
}

/// Reads `@path` values from their file; other values are returned as given.
pub fn resolve_value(arg: &str) -> Result<Zeroizing<String>, KeyStoreError> {
    match arg.strip_prefix('@') {
        Some(path) => {
            let bytes = Zeroizing::new(std::fs::read(Path::new(path)).map_err(|source| {
                KeyStoreError::Io {
                    path: path.to_owned(),
                    source,
                }
            })?);
            let text = std::str::from_utf8(&bytes).map_err(|_| KeyStoreError::InvalidKey {
                what: format!("value file {path}"),
                reason: "not UTF-8 text".into(),
            })?;
            Ok(Zeroizing::new(text.trim().to_owned()))
        }
        None => Ok(Zeroizing::new(arg.trim().to_owned())),
    }
}

/// Decodes a key given in hex or base64 that must be `len` bytes
/// (or one of `lens`).
pub fn decode_key(
    value: &str,
    lens: &[usize],
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    let v = value.trim();
    let invalid = |reason: &str| KeyStoreError::InvalidKey {
        what: what.to_owned(),
        reason: reason.to_owned(),
    };
    let expected = || {
        let e: Vec<String> = lens.iter().map(ToString::to_string).collect();
        e.join(" or ")
    };
    let hex = (v.len().is_multiple_of(2) && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex::decode(v).ok())
        .flatten()
        .map(Zeroizing::new);
    let b64 = robert_core::b64::DECODER
        .decode(v.as_bytes())
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.trim_end_matches('='))
        })
        .ok()
        .map(Zeroizing::new);
    let fits = |b: &Option<Zeroizing<Vec<u8>>>| b.as_ref().is_some_and(|b| lens.contains(&b.len()));
    if fits(&hex) {
        return hex.ok_or_else(|| invalid("invalid hex"));
    }
    if fits(&b64) {
        return b64.ok_or_else(|| invalid("invalid base64"));
    }
    let bytes = match (hex, b64) {
        (Some(h), _) => h,
        (None, Some(b)) => b,
        (None, None) => return Err(invalid("neither hex nor base64")),
    };
    Err(invalid(&format!(
        "expected {} bytes, got {}",
        expected(),
        bytes.len()
    )))
}

/// Parses a registration private key: a 32-byte scalar (hex or base64),
/// base64 PKCS#8 DER, or a PKCS#8 / SEC1 PEM document.
pub fn parse_registration_key(value: &str) -> Result<ServerKeyPair, KeyStoreError> {
    use p256::pkcs8::DecodePrivateKey as _;
    let invalid = |reason: &str| KeyStoreError::InvalidKey {
        what: "registration private key".into(),
        reason: reason.into(),
    };
    let v = value.trim();
    if v.starts_with("-----BEGIN") {
        let secret = if v.contains("BEGIN EC PRIVATE KEY") {
            p256::SecretKey::from_sec1_pem(v).map_err(|_| invalid("invalid SEC1 PEM"))?
        } else {
            p256::SecretKey::from_pkcs8_pem(v).map_err(|_| invalid("invalid PKCS#8 PEM"))?
        };
        let scalar = Zeroizing::new(<[u8; 32]>::from(secret.to_bytes()));
        return ServerKeyPair::from_scalar_bytes(scalar.as_ref())
            .map_err(|_| invalid("not a P-256 key"));
    }
    if let Ok(raw) = decode_key(v, &[32], "registration private key") {
        return ServerKeyPair::from_scalar_bytes(&raw)
            .map_err(|_| invalid("not a valid P-256 scalar"));
    }
    let der = Zeroizing::new(
        robert_core::b64::DECODER
            .decode(v.as_bytes())
            .map_err(|_| {
                invalid("expected a 32-byte scalar, base64 PKCS#8 DER or a PEM document")
            })?,
    );
    ServerKeyPair::from_pkcs8_der(&der).map_err(|_| invalid("invalid PKCS#8 DER"))
}

/// Parses a K_S list: lines `YYYY-MM-DD KEY` (or `YYYY-MM-DD=KEY`), or, when
/// `from` is given, bare keys for consecutive days starting at `from`.
/// Blank lines and lines starting with `#` are skipped.
pub fn parse_server_keys(
    text: &str,
    from: Option<UtcDate>,
) -> Result<Vec<(UtcDate, Zeroizing<String>)>, KeyStoreError> {
    let mut out = Vec::new();
    let mut next = from;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| KeyStoreError::InvalidKey {
            what: format!("server key list, line {}", i + 1),
            reason: reason.into(),
        };
        let mut parts = line.splitn(2, |c: char| c.is_whitespace() || c == '=');
        let first = parts.next().unwrap_or_default();
        match (first.parse::<UtcDate>(), parts.next()) {
            (Ok(date), Some(key)) => out.push((date, Zeroizing::new(key.trim().to_owned()))),
            (Ok(_), None) => return Err(bad("a date without a key")),
            (Err(_), _) => {
                let day = next.ok_or_else(|| {
                    bad("expected `YYYY-MM-DD KEY` (or give --from for bare keys)")
                })?;
                if line.contains(char::is_whitespace) {
                    return Err(bad("expected one key per line"));
                }
                out.push((day, Zeroizing::new(line.to_owned())));
                next = Some(day.add_days(1));
            }
        }
    }
    Ok(out)
}

/// `keys import`: adds the given keys. A key already present with another
/// value is an error unless `force`.
pub fn import(
    store: &dyn KeyStore,
    items: Vec<ImportItem>,
    force: bool,
) -> Result<KeyReport, KeyStoreError> {
    // Parse everything first: a bad value aborts before anything is written.
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        parsed.push(match item {
            ImportItem::ServerKey(day, v) => {
                let raw = decode_key(&v, &[KeyS::LEN], &format!("K_S {day}"))?;
                Entry::S(
                    day,
                    Box::new(
                        KeyS::from_slice(&raw).map_err(|_| KeyStoreError::InvalidKey {
                            what: format!("K_S {day}"),
                            reason: "bad length".into(),
                        })?,
                    ),
                )
            }
            ImportItem::FederationKey(v) => {
                let raw = decode_key(&v, &[16, 24, 32], "K_G")?;
                Entry::G(Box::new(KeyG::from_slice(&raw).map_err(|_| {
                    KeyStoreError::InvalidKey {
                        what: "K_G".into(),
                        reason: "bad length".into(),
                    }
                })?))
            }
            ImportItem::Kek(v) => {
                let raw = decode_key(&v, &[32], "KEK")?;
                let mut arr = Zeroizing::new([0u8; 32]);
                arr.copy_from_slice(&raw);
                Entry::K(Arc::new(Kek::from_bytes(*arr)))
            }
            ImportItem::RegistrationKey(v) => Entry::R(Arc::new(parse_registration_key(&v)?)),
        });
    }
    merge(store, parsed, force)
}

/// `keys migrate`: copies every key of `from` (K_S, K_G, the KEK, the
/// registration key pair, the JWT keys) into `to`, as [`import`] would. This
/// is how a file store's keys move into a PKCS#11 token: the KEK and the
/// registration key become non-extractable token objects, and registrations
/// wrapped under that KEK keep working. A key already in `to` with another
/// value is an error unless `force`. A token's KEK cannot be copied out
/// ([`KeyStoreError::NotExportable`]).
pub fn migrate(
    from: &dyn KeyStore,
    to: &dyn KeyStore,
    force: bool,
) -> Result<KeyReport, KeyStoreError> {
    let source = from.load()?;
    let mut entries = Vec::new();
    if let Some(k) = source.key_g {
        entries.push(Entry::G(Box::new(k)));
    }
    if let Some(k) = source.kek {
        entries.push(Entry::K(k));
    }
    if let Some(k) = source.registration {
        entries.push(Entry::R(k));
    }
    for (day, k) in source.server_keys {
        entries.push(Entry::S(day, Box::new(k)));
    }
    for (kind, slot) in [
        (JwtKind::Declaration, source.jwt.declaration),
        (JwtKind::Analytics, source.jwt.analytics),
        (JwtKind::Report, source.jwt.report),
    ] {
        if let Some(k) = slot {
            entries.push(Entry::J(kind, k));
        }
    }
    for (kind, slot) in [
        (JwtKind::Declaration, source.jwt.declaration_rsa),
        (JwtKind::Analytics, source.jwt.analytics_rsa),
        (JwtKind::Report, source.jwt.report_rsa),
    ] {
        if let Some(k) = slot {
            entries.push(Entry::JR(kind, k));
        }
    }
    merge(to, entries, force)
}

#[derive(Clone, Copy)]
enum JwtKind {
    Declaration,
    Analytics,
    Report,
}

/// One key to put into a store.
enum Entry {
    S(UtcDate, Box<KeyS>),
    G(Box<KeyG>),
    K(SharedKek),
    R(SharedRegistrationKey),
    J(JwtKind, Zeroizing<[u8; 32]>),
    JR(JwtKind, Zeroizing<Vec<u8>>),
}

/// Puts `new` in `slot`: unchanged if `same`, refused if different and not
/// `force`.
fn place<T>(
    slot: &mut Option<T>,
    new: T,
    same: impl FnOnce(&T, &T) -> Result<bool, KeyStoreError>,
    name: String,
    force: bool,
    report: &mut KeyReport,
) -> Result<(), KeyStoreError> {
    let unchanged = match slot.as_ref() {
        Some(old) => same(old, &new)?,
        None => false,
    };
    match slot {
        Some(_) if unchanged => report.unchanged.push(name),
        Some(_) if !force => return Err(KeyStoreError::Conflict(name)),
        Some(_) => {
            *slot = Some(new);
            report.replaced.push(name);
        }
        None => {
            *slot = Some(new);
            report.added.push(name);
        }
    }
    Ok(())
}

/// Adds `entries` to the store's set and saves it once; nothing is written
/// if any entry conflicts.
fn merge(
    store: &dyn KeyStore,
    entries: Vec<Entry>,
    force: bool,
) -> Result<KeyReport, KeyStoreError> {
    let mut set = load_or_empty(store)?;
    let mut report = KeyReport::default();
    for e in entries {
        match e {
            Entry::S(day, key) => {
                let mut slot = set.server_keys.remove(&day);
                let r = place(
                    &mut slot,
                    *key,
                    |a, b| Ok(a == b),
                    format!("K_S {day}"),
                    force,
                    &mut report,
                );
                if let Some(k) = slot {
                    set.server_keys.insert(day, k);
                }
                r?;
            }
            Entry::G(k) => place(
                &mut set.key_g,
                *k,
                |a, b| Ok(a == b),
                "K_G".into(),
                force,
                &mut report,
            )?,
            // A KEK in a token cannot be read: compare check values.
            Entry::K(k) => place(
                &mut set.kek,
                k,
                |a, b| Ok(a.check_value()? == b.check_value()?),
                "KEK".into(),
                force,
                &mut report,
            )?,
            // Compare through the public key.
            Entry::R(k) => place(
                &mut set.registration,
                k,
                |a, b| Ok(a.public_key() == b.public_key()),
                "registration key pair".into(),
                force,
                &mut report,
            )?,
            Entry::J(kind, k) => {
                let (slot, name) = match kind {
                    JwtKind::Declaration => (&mut set.jwt.declaration, "JWT declaration key"),
                    JwtKind::Analytics => (&mut set.jwt.analytics, "JWT analytics key"),
                    JwtKind::Report => (&mut set.jwt.report, "JWT report key"),
                };
                place(slot, k, |a, b| Ok(a == b), name.into(), force, &mut report)?;
            }
            Entry::JR(kind, k) => {
                let (slot, name) = match kind {
                    JwtKind::Declaration => {
                        (&mut set.jwt.declaration_rsa, "JWT declaration key (RS256)")
                    }
                    JwtKind::Analytics => (&mut set.jwt.analytics_rsa, "JWT analytics key (RS256)"),
                    JwtKind::Report => (&mut set.jwt.report_rsa, "JWT report key (RS256)"),
                };
                place(slot, k, |a, b| Ok(a == b), name.into(), force, &mut report)?;
            }
        }
    }
    let changed = !report.added.is_empty() || !report.replaced.is_empty();
    finish(store, &set, changed, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    fn day(s: &str) -> UtcDate {
        s.parse().unwrap()
    }

    #[test]
    fn bad_values_name_the_key_not_the_value() {
        let e = decode_key("abcd", &[24], "K_S 2024-01-01")
            .unwrap_err()
            .to_string();
        assert!(e.contains("K_S 2024-01-01") && !e.contains("abcd"), "{e}");
        assert!(decode_key("!!!!", &[32], "KEK").is_err());
        assert!(
            parse_registration_key("-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----")
                .is_err()
        );
        // The zero scalar is not a valid key.
        assert!(parse_registration_key(&hex::encode([0u8; 32])).is_err());
    }

    #[test]
    fn server_key_lists() {
        let text = "# ceremony 2024-01\n2024-01-01 AAAA\n2024-01-02=BBBB\n\n";
        let v = parse_server_keys(text, None).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].0, day("2024-01-02"));
        assert_eq!(v[1].1.as_str(), "BBBB");
        let v = parse_server_keys("k1\nk2\nk3\n", Some(day("2024-02-28"))).unwrap();
        assert_eq!(v[2].0, day("2024-03-01"));
        assert!(parse_server_keys("k1\n", None).is_err());
        assert!(parse_server_keys("2024-01-01\n", None).is_err());
    }
}
