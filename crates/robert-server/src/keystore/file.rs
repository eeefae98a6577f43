//! A key store in one file, encrypted under a passphrase.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "RBKSTORE"
//!      8     1  format version (1)
//!      9     4  Argon2id memory cost, KiB (big-endian)
//!     13     4  Argon2id iterations
//!     17     4  Argon2id parallelism
//!     21    16  salt
//!     37    12  AES-256-GCM nonce (fresh at every write)
//!     49     …  AES-256-GCM(key = Argon2id(passphrase, salt), AAD = bytes 0..49)(payload) ‖ tag(16)
//!
//! payload = 0x01 (payload version), then entries: tag (1) ‖ length (2, BE) ‖ value
//!   0x01 K_G (16/24/32)       0x02 KEK (32)          0x03 registration private scalar (32)
//!   0x04 K_S: day (4, BE, days since 1970-01-01, signed) ‖ key (24)
//!   0x05/0x06/0x07 ES256 JWT key scalar (32): declaration / analytics / report
//!   0x08/0x09/0x0A RS256 JWT key, PKCS#8 DER: declaration / analytics / report
//! ```
//!
//! The header is authenticated (GCM AAD), so the KDF parameters cannot be
//! weakened without detection. Writes are atomic (temporary file, fsync,
//! rename, fsync of the directory) and the file is created with mode 0600.
//! The derived key is cached per (salt, parameters), so reloading after a
//! rotation does not pay for Argon2id again.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit as _, Nonce};
use rand::Rng as _;
use robert_core::keys::{Kek, KeyG, KeyS};
use robert_core::registration::ServerKeyPair;
use robert_core::time::UtcDate;
use zeroize::Zeroizing;

use super::{KeySet, KeyStore, KeyStoreError, SecretSource};

const MAGIC: &[u8; 8] = b"RBKSTORE";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 49;
const TAG_LEN: usize = 16;
const PAYLOAD_VERSION: u8 = 1;
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;
const MAX_PARALLELISM: u32 = 64;

const T_KG: u8 = 0x01;
const T_KEK: u8 = 0x02;
const T_REG: u8 = 0x03;
const T_KS: u8 = 0x04;
const T_JWT_DECL: u8 = 0x05;
const T_JWT_ANALYTICS: u8 = 0x06;
const T_JWT_REPORT: u8 = 0x07;
const T_JWT_DECL_RSA: u8 = 0x08;
const T_JWT_ANALYTICS_RSA: u8 = 0x09;
const T_JWT_REPORT_RSA: u8 = 0x0A;

/// Environment variable holding the key store passphrase.
pub const PASSPHRASE_ENV: &str = "ROBERT_KEYSTORE_PASSPHRASE";

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// Finds the passphrase: the environment value if set and non-empty, else
/// the passphrase file; if neither exists and `generate` is true, a random
/// passphrase is written to the file with mode 0600.
pub fn resolve_passphrase(
    env_value: Option<String>,
    file: &Path,
    generate: bool,
) -> Result<(Zeroizing<String>, SecretSource), KeyStoreError> {
    if let Some(v) = env_value {
        let v = Zeroizing::new(v);
        if !v.is_empty() {
            return Ok((v, SecretSource::Env(PASSPHRASE_ENV)));
        }
    }
    let io = |source| KeyStoreError::Io {
        path: file.display().to_string(),
        source,
    };
    match fs::read(file) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let text = std::str::from_utf8(&bytes).map_err(|_| KeyStoreError::Malformed {
                path: file.display().to_string(),
                reason: "passphrase file is not UTF-8".into(),
            })?;
            let trimmed = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
            if trimmed.is_empty() {
                return Err(KeyStoreError::NoPassphrase(file.display().to_string()));
            }
            Ok((trimmed, SecretSource::File(file.to_path_buf())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
            let mut raw = Zeroizing::new([0u8; 32]);
            rand::rng().fill_bytes(raw.as_mut());
            let pass = Zeroizing::new(robert_core::b64::encode(raw.as_ref()));
            if let Some(dir) = file.parent() {
                fs::create_dir_all(dir).map_err(io)?;
            }
            let mut f = create_private(file, true).map_err(io)?;
            f.write_all(pass.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok((pass, SecretSource::Generated(file.to_path_buf())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(KeyStoreError::NoPassphrase(file.display().to_string()))
        }
        Err(e) => Err(io(e)),
    }
}

/// Creates a file readable only by its owner (on Unix).
fn create_private(path: &Path, create_new: bool) -> std::io::Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.write(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
}

type DerivedKey = ([u8; 16], KdfParams, Zeroizing<[u8; 32]>);

/// The file key store.
pub struct FileKeyStore {
    path: PathBuf,
    passphrase: Zeroizing<String>,
    new_params: KdfParams,
    cache: Mutex<Option<DerivedKey>>,
}

impl std::fmt::Debug for FileKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeyStore")
            .field("path", &self.path)
            .field("new_params", &self.new_params)
            .finish_non_exhaustive()
    }
}

impl FileKeyStore {
    /// A store at `path` opened with `passphrase`; `new_params` apply when
    /// the file is created.
    pub fn new(path: PathBuf, passphrase: Zeroizing<String>, new_params: KdfParams) -> Self {
        Self {
            path,
            passphrase,
            new_params,
            cache: Mutex::new(None),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn malformed(&self, reason: &str) -> KeyStoreError {
        KeyStoreError::Malformed {
            path: self.location(),
            reason: reason.into(),
        }
    }

    fn derive(
        &self,
        salt: [u8; 16],
        params: KdfParams,
    ) -> Result<Zeroizing<[u8; 32]>, KeyStoreError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, p, k)) = cache.as_ref()
            && *s == salt
            && *p == params
        {
            return Ok(k.clone());
        }
        let argon_params = argon2::Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(32),
        )
        .map_err(|e| KeyStoreError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(self.passphrase.as_bytes(), &salt, key.as_mut())
            .map_err(|e| KeyStoreError::Kdf(e.to_string()))?;
        *cache = Some((salt, params, key.clone()));
        Ok(key)
    }

    fn read_header(&self, data: &[u8]) -> Result<([u8; 16], KdfParams), KeyStoreError> {
        if data.len() < HEADER_LEN + TAG_LEN || &data[..8] != MAGIC {
            return Err(self.malformed("not a ROBERT key store file"));
        }
        if data[8] != VERSION {
            return Err(self.malformed("unsupported key store version"));
        }
        let u = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let params = KdfParams {
            memory_kib: u(9),
            iterations: u(13),
            parallelism: u(17),
        };
        // Bound the costs so an altered header cannot make us allocate
        // gigabytes before the tag check fails.
        if params.memory_kib > MAX_MEMORY_KIB
            || params.iterations > MAX_ITERATIONS
            || params.parallelism == 0
            || params.parallelism > MAX_PARALLELISM
        {
            return Err(self.malformed("key derivation parameters out of range"));
        }
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&data[21..37]);
        Ok((salt, params))
    }

    /// The salt and parameters of the existing file, if any.
    fn existing_header(&self) -> Option<([u8; 16], KdfParams)> {
        let data = fs::read(&self.path).ok()?;
        self.read_header(&data).ok()
    }
}

impl KeyStore for FileKeyStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }

    fn load(&self) -> Result<KeySet, KeyStoreError> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyStoreError::NotFound(self.location()));
            }
            Err(source) => {
                return Err(KeyStoreError::Io {
                    path: self.location(),
                    source,
                });
            }
        };
        let (salt, params) = self.read_header(&data)?;
        let key = self.derive(salt, params)?;
        let (header, body) = data.split_at(HEADER_LEN);
        let nonce = Nonce::try_from(&header[37..49]).map_err(|_| self.malformed("bad nonce"))?;
        let (ct, tag) = body.split_at(body.len() - TAG_LEN);
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| self.malformed("bad tag"))?;
        let mut plain = Zeroizing::new(ct.to_vec());
        Aes256Gcm::new(&(*key).into())
            .decrypt_inout_detached(&nonce, header, plain.as_mut_slice().into(), &tag)
            .map_err(|_| KeyStoreError::Decrypt(self.location()))?;
        decode_payload(&plain).map_err(|r| self.malformed(r))
    }

    fn save(&self, keys: &KeySet) -> Result<(), KeyStoreError> {
        let io = |source| KeyStoreError::Io {
            path: self.location(),
            source,
        };
        // Keep the salt (and so the cached derived key) of an existing file.
        let (salt, params) = match self.existing_header() {
            Some(h) => h,
            None => {
                let mut s = [0u8; 16];
                rand::rng().fill_bytes(&mut s);
                (s, self.new_params)
            }
        };
        let key = self.derive(salt, params)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.extend_from_slice(&params.memory_kib.to_be_bytes());
        header.extend_from_slice(&params.iterations.to_be_bytes());
        header.extend_from_slice(&params.parallelism.to_be_bytes());
        header.extend_from_slice(&salt);
        header.extend_from_slice(&nonce);
        let mut buf = encode_payload(keys)?;
        let tag = Aes256Gcm::new(&(*key).into())
            .encrypt_inout_detached(&Nonce::from(nonce), &header, buf.as_mut_slice().into())
            .map_err(|_| self.malformed("payload too large"))?;
        let mut out = header;
        out.extend_from_slice(&buf);
        out.extend_from_slice(&tag);

        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(io)?;
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "keystore".into());
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = create_private(&tmp, false)?;
            f.write_all(&out)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            #[cfg(unix)]
            fs::File::open(&dir)?.sync_all()?;
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(e)
        })
    }

    fn generation(&self) -> Option<u64> {
        let meta = fs::metadata(&self.path).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        // Truncation is fine: this is a change detector, not a timestamp.
        Some((mtime as u64) ^ meta.len().rotate_left(48))
    }
}

fn push_entry(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    // Every value is at most a few KiB (an RSA-2048 PKCS#8 key is ~1.2 KiB).
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
}

fn encode_payload(keys: &KeySet) -> Result<Zeroizing<Vec<u8>>, KeyStoreError> {
    // Sized up front: a reallocation would leave key bytes in freed memory.
    let rsa_len: usize = [
        &keys.jwt.declaration_rsa,
        &keys.jwt.analytics_rsa,
        &keys.jwt.report_rsa,
    ]
    .iter()
    .filter_map(|k| k.as_ref().map(|k| k.len() + 3))
    .sum();
    let mut out = Zeroizing::new(Vec::with_capacity(
        256 + keys.server_keys.len() * 31 + rsa_len,
    ));
    out.push(PAYLOAD_VERSION);
    if let Some(k) = &keys.key_g {
        push_entry(&mut out, T_KG, k.expose_secret());
    }
    if let Some(k) = &keys.kek {
        let k = k.in_memory().ok_or(KeyStoreError::NotExportable("KEK"))?;
        push_entry(&mut out, T_KEK, k.expose_secret());
    }
    if let Some(k) = &keys.registration {
        let k = k
            .in_memory()
            .ok_or(KeyStoreError::NotExportable("registration private key"))?;
        push_entry(&mut out, T_REG, k.to_scalar_bytes().as_ref());
    }
    for (day, k) in &keys.server_keys {
        let mut v = Zeroizing::new([0u8; 28]);
        // Day counts of dates in 1900..=9999 fit in i32.
        let days = i32::try_from(day.days_since_unix_epoch()).unwrap_or(0);
        v[..4].copy_from_slice(&days.to_be_bytes());
        v[4..].copy_from_slice(k.expose_secret());
        push_entry(&mut out, T_KS, v.as_ref());
    }
    for (tag, slot) in [
        (T_JWT_DECL, &keys.jwt.declaration),
        (T_JWT_ANALYTICS, &keys.jwt.analytics),
        (T_JWT_REPORT, &keys.jwt.report),
    ] {
        if let Some(k) = slot {
            push_entry(&mut out, tag, k.as_ref());
        }
    }
    for (tag, slot) in [
        (T_JWT_DECL_RSA, &keys.jwt.declaration_rsa),
        (T_JWT_ANALYTICS_RSA, &keys.jwt.analytics_rsa),
        (T_JWT_REPORT_RSA, &keys.jwt.report_rsa),
    ] {
        if let Some(k) = slot {
            push_entry(&mut out, tag, k.as_slice());
        }
    }
    Ok(out)
}

fn scalar(v: &[u8]) -> Result<Zeroizing<[u8; 32]>, &'static str> {
    let arr: [u8; 32] = v.try_into().map_err(|_| "bad JWT key length")?;
    // Check it is a valid P-256 scalar.
    ServerKeyPair::from_scalar_bytes(&arr).map_err(|_| "bad JWT key")?;
    Ok(Zeroizing::new(arr))
}

fn rsa_der(v: &[u8]) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    if !super::check_rsa_jwt_key(v) {
        return Err("bad RS256 JWT key");
    }
    Ok(Zeroizing::new(v.to_vec()))
}

fn decode_payload(p: &[u8]) -> Result<KeySet, &'static str> {
    let (&version, mut rest) = p.split_first().ok_or("empty payload")?;
    if version != PAYLOAD_VERSION {
        return Err("unsupported payload version");
    }
    let mut set = KeySet::default();
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err("truncated entry");
        }
        let tag = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let value = rest.get(3..3 + len).ok_or("truncated entry")?;
        rest = &rest[3 + len..];
        match tag {
            T_KG => set.key_g = Some(KeyG::from_slice(value).map_err(|_| "bad K_G")?),
            T_KEK => {
                let arr: [u8; 32] = value.try_into().map_err(|_| "bad KEK length")?;
                set.kek = Some(Arc::new(Kek::from_bytes(arr)));
            }
            T_REG => {
                set.registration = Some(Arc::new(
                    ServerKeyPair::from_scalar_bytes(value).map_err(|_| "bad registration key")?,
                ));
            }
            T_KS => {
                if value.len() != 28 {
                    return Err("bad K_S entry length");
                }
                let days = i32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                let day = UtcDate::from_days_since_unix_epoch(i64::from(days));
                set.server_keys
                    .insert(day, KeyS::from_slice(&value[4..]).map_err(|_| "bad K_S")?);
            }
            T_JWT_DECL => set.jwt.declaration = Some(scalar(value)?),
            T_JWT_ANALYTICS => set.jwt.analytics = Some(scalar(value)?),
            T_JWT_REPORT => set.jwt.report = Some(scalar(value)?),
            T_JWT_DECL_RSA => set.jwt.declaration_rsa = Some(rsa_der(value)?),
            T_JWT_ANALYTICS_RSA => set.jwt.analytics_rsa = Some(rsa_der(value)?),
            T_JWT_REPORT_RSA => set.jwt.report_rsa = Some(rsa_der(value)?),
            _ => return Err("unknown entry (written by a newer version?)"),
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so tests do not spend seconds in Argon2id.
    pub(crate) const TEST_PARAMS: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("robert-ks-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> KeySet {
        let mut set = KeySet::default();
        let d = UtcDate::new(2024, 1, 31).unwrap();
        set.fill_missing(d, d.add_days(2), true, &mut rand::rng());
        set
    }

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let dir = tmpdir("rt");
        let path = dir.join("ks.robert");
        let store = FileKeyStore::new(path.clone(), Zeroizing::new("pw".into()), TEST_PARAMS);
        assert!(!store.exists());
        assert!(matches!(store.load(), Err(KeyStoreError::NotFound(_))));
        let set = sample();
        store.save(&set).unwrap();
        // Every field comes back: `store_tests::round_trip` (both stores).
        let back = store.load().unwrap();
        assert_eq!(back.server_keys, set.server_keys);
        // A fresh handle (no cache) with the right passphrase reads it too.
        let again = FileKeyStore::new(
            path.clone(),
            Zeroizing::new("pw".into()),
            KdfParams::default(),
        );
        assert_eq!(again.load().unwrap().server_keys, set.server_keys);
        let wrong = FileKeyStore::new(path.clone(), Zeroizing::new("pW".into()), TEST_PARAMS);
        let err = wrong.load().unwrap_err();
        assert!(matches!(err, KeyStoreError::Decrypt(_)));
        assert!(err.to_string().contains("wrong passphrase"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tampering_is_detected_including_the_header() {
        let dir = tmpdir("tamper");
        let path = dir.join("ks.robert");
        let store = FileKeyStore::new(path.clone(), Zeroizing::new("pw".into()), TEST_PARAMS);
        store.save(&sample()).unwrap();
        let good = fs::read(&path).unwrap();
        for i in [9usize, 30, 40, 60, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            let fresh = FileKeyStore::new(path.clone(), Zeroizing::new("pw".into()), TEST_PARAMS);
            assert!(fresh.load().is_err(), "flip at {i} went unnoticed");
        }
        fs::write(&path, b"garbage").unwrap();
        assert!(matches!(store.load(), Err(KeyStoreError::Malformed { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_holds_no_key_in_clear() {
        let dir = tmpdir("clear");
        let path = dir.join("ks.robert");
        let store = FileKeyStore::new(path.clone(), Zeroizing::new("pw".into()), TEST_PARAMS);
        let set = sample();
        store.save(&set).unwrap();
        let data = fs::read(&path).unwrap();
        let kek = set
            .kek
            .as_ref()
            .unwrap()
            .in_memory()
            .unwrap()
            .expose_secret();
        assert!(!data.windows(32).any(|w| w == kek));
        let ks = set.server_keys.values().next().unwrap().expose_secret();
        assert!(!data.windows(24).any(|w| w == ks));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passphrase_resolution() {
        let dir = tmpdir("pass");
        let file = dir.join("keystore.pass");
        let (p, src) = resolve_passphrase(Some("from-env".into()), &file, true).unwrap();
        assert_eq!(
            (p.as_str(), src),
            ("from-env", SecretSource::Env(PASSPHRASE_ENV))
        );
        assert!(!file.exists());
        assert!(matches!(
            resolve_passphrase(None, &file, false),
            Err(KeyStoreError::NoPassphrase(_))
        ));
        let (p1, src) = resolve_passphrase(Some(String::new()), &file, true).unwrap();
        assert_eq!(src, SecretSource::Generated(file.clone()));
        assert_eq!(p1.len(), 44);
        let (p2, src) = resolve_passphrase(None, &file, true).unwrap();
        assert_eq!(src, SecretSource::File(file.clone()));
        assert_eq!(p1, p2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
