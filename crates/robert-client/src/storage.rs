//! Where a phone keeps its state: a small key–value [`Storage`] trait with an
//! in-memory backend and an encrypted-file backend.
//!
//! # Encrypted files
//!
//! [`EncryptedFileStorage`] writes one file per record, `<dir>/<name>.rcs`:
//!
//! ```text
//! "RCS1" (4) ‖ nonce (12, random) ‖ AES-256-GCM(device key, plaintext, AAD = "RCS1" ‖ name) ‖ tag (16)
//! ```
//!
//! The AAD binds a file to its record name, so files cannot be swapped. The
//! device key comes from a [`KeyProvider`]: the OS keystore on a phone
//! (Android Keystore, iOS Keychain, implemented by the host app), a file
//! for Linux and tests ([`FileKeyProvider`]). Writes are atomic and
//! crash-safe: write a temporary file, `fsync` it, rename it over the old
//! one, `fsync` the directory. A crash leaves either the old or the new
//! version, never a mix; stray temporary files are removed on open.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand_core::Rng;
use zeroize::Zeroizing;

/// File magic and format version of encrypted records.
const MAGIC: &[u8; 4] = b"RCS1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const EXTENSION: &str = "rcs";
const TEMP_PREFIX: &str = ".tmp-";

/// A storage failure. Messages name records and paths, never contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A record name outside `[a-z0-9-]{1,64}`.
    #[error("invalid record name {0:?}")]
    InvalidName(String),
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A record failed authentication: wrong device key, or altered or
    /// truncated file.
    #[error("record {0:?} does not decrypt (wrong device key or altered file)")]
    Decrypt(String),
    /// A record decrypted but its contents are not a valid state.
    #[error("record {0:?} is corrupt")]
    Corrupt(String),
    /// The key provider failed.
    #[error("device key unavailable: {0}")]
    Key(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Checks a record name: 1 to 64 characters of `[a-z0-9-]`.
pub fn check_name(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::InvalidName(name.to_owned()))
    }
}

/// A key–value store of whole records (small blobs).
pub trait Storage: Send {
    /// Reads a record; `None` if absent.
    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError>;
    /// Writes (replaces) a record atomically.
    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError>;
    /// Deletes a record (absent is fine).
    fn remove(&mut self, name: &str) -> Result<(), StorageError>;
    /// Names of all records.
    fn list(&self) -> Result<Vec<String>, StorageError>;
    /// Deletes every record and any key material the backend owns.
    fn wipe(&mut self) -> Result<(), StorageError>;
}

/// Records in memory, for tests and simulators.
#[derive(Default)]
pub struct MemoryStorage {
    records: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("records", &self.records.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        check_name(name)?;
        Ok(self.records.get(name).cloned())
    }

    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        check_name(name)?;
        self.records
            .insert(name.to_owned(), Zeroizing::new(data.to_vec()));
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<(), StorageError> {
        check_name(name)?;
        self.records.remove(name);
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, StorageError> {
        Ok(self.records.keys().cloned().collect())
    }

    fn wipe(&mut self) -> Result<(), StorageError> {
        self.records.clear();
        Ok(())
    }
}

/// A storage that keeps nothing: for simulations of many phones that never
/// restart (saves a copy of each phone's state in memory).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullStorage;

impl Storage for NullStorage {
    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        check_name(name)?;
        Ok(None)
    }

    fn write(&mut self, name: &str, _data: &[u8]) -> Result<(), StorageError> {
        check_name(name)
    }

    fn remove(&mut self, name: &str) -> Result<(), StorageError> {
        check_name(name)
    }

    fn list(&self) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn wipe(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// The 256-bit key that encrypts a phone's files. Zeroized on drop.
#[derive(Clone)]
pub struct DeviceKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKey { .. }")
    }
}

impl DeviceKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Draws a fresh key.
    pub fn generate(rng: &mut impl Rng) -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// The raw bytes, for a key provider only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Supplies the device key: the OS keystore on a phone.
pub trait KeyProvider: Send {
    /// The device key, created (with `rng`) on first use.
    fn device_key(&mut self, rng: &mut dyn FnMut(&mut [u8])) -> Result<DeviceKey, StorageError>;
    /// Destroys the key (wipe / uninstall): the files become unreadable.
    fn destroy(&mut self) -> Result<(), StorageError>;
}

/// A fixed key held in memory (tests, or a host that manages its own key).
#[derive(Clone, Debug)]
pub struct StaticKeyProvider(pub DeviceKey);

impl KeyProvider for StaticKeyProvider {
    fn device_key(&mut self, _rng: &mut dyn FnMut(&mut [u8])) -> Result<DeviceKey, StorageError> {
        Ok(self.0.clone())
    }

    fn destroy(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A key kept in a file with mode 0600 (Linux; what the `robert phone`
/// command uses). This protects the data files only as well as the key
/// file's permissions do: on a phone, implement [`KeyProvider`] over the
/// OS keystore instead.
#[derive(Clone, Debug)]
pub struct FileKeyProvider {
    path: PathBuf,
}

impl FileKeyProvider {
    /// A provider keeping the key at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl KeyProvider for FileKeyProvider {
    fn device_key(&mut self, rng: &mut dyn FnMut(&mut [u8])) -> Result<DeviceKey, StorageError> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    StorageError::Key(format!("{}: not a 32-byte key", self.path.display()))
                })?;
                Ok(DeviceKey::from_bytes(arr))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut k = Zeroizing::new([0u8; 32]);
                rng(k.as_mut());
                atomic_write(&self.path, k.as_ref())?;
                Ok(DeviceKey::from_bytes(*k))
            }
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }

    fn destroy(&mut self) -> Result<(), StorageError> {
        if let Ok(meta) = fs::metadata(&self.path) {
            // Overwrite before unlinking (best effort on journaling file systems).
            let len = usize::try_from(meta.len()).unwrap_or(0);
            let _ = fs::write(&self.path, vec![0u8; len]);
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.path)(e)),
        }
    }
}

/// Writes `data` to `path` atomically: temp file in the same directory,
/// `fsync`, rename, `fsync` of the directory. New files get mode 0600.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{TEMP_PREFIX}{file_name}-{}", std::process::id()));
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A source of random bytes (nonces, new device keys).
pub type RandomFill = dyn FnMut(&mut [u8]) + Send;

/// Records encrypted under the device key, one file each (module docs).
pub struct EncryptedFileStorage<K: KeyProvider> {
    dir: PathBuf,
    provider: K,
    cipher: Aes256Gcm,
    rng: Box<RandomFill>,
}

impl<K: KeyProvider> fmt::Debug for EncryptedFileStorage<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedFileStorage")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl<K: KeyProvider> EncryptedFileStorage<K> {
    /// Opens (creating) `dir` with mode 0700, obtains the device key, and
    /// removes temporary files left by an interrupted write. `fill` fills
    /// buffers with random bytes (nonces, a new device key).
    pub fn open(
        dir: impl Into<PathBuf>,
        mut provider: K,
        mut fill: impl FnMut(&mut [u8]) + Send + 'static,
    ) -> Result<Self, StorageError> {
        let dir = dir.into();
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder.create(&dir).map_err(io_err(&dir))?;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let key = provider.device_key(&mut fill)?;
        let cipher = Aes256Gcm::new(&(*key.expose_secret()).into());
        Ok(Self {
            dir,
            provider,
            cipher,
            rng: Box::new(fill),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.{EXTENSION}"))
    }

    fn aad(name: &str) -> Vec<u8> {
        let mut aad = MAGIC.to_vec();
        aad.extend_from_slice(name.as_bytes());
        aad
    }
}

impl<K: KeyProvider> Storage for EncryptedFileStorage<K> {
    fn read(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StorageError> {
        check_name(name)?;
        let path = self.path_of(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let bad = || StorageError::Decrypt(name.to_owned());
        if bytes.len() < MAGIC.len() + NONCE_LEN + TAG_LEN || &bytes[..4] != MAGIC {
            return Err(bad());
        }
        let nonce = Nonce::try_from(&bytes[4..4 + NONCE_LEN]).map_err(|_| bad())?;
        let aad = Self::aad(name);
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &bytes[4 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| bad())?;
        Ok(Some(Zeroizing::new(plain)))
    }

    fn write(&mut self, name: &str, data: &[u8]) -> Result<(), StorageError> {
        check_name(name)?;
        let mut nonce = [0u8; NONCE_LEN];
        (self.rng)(&mut nonce);
        let aad = Self::aad(name);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: data,
                    aad: &aad,
                },
            )
            .map_err(|_| StorageError::Corrupt(name.to_owned()))?;
        let mut out = Vec::with_capacity(4 + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        atomic_write(&self.path_of(name), &out)
    }

    fn remove(&mut self, name: &str) -> Result<(), StorageError> {
        check_name(name)?;
        let path = self.path_of(name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn list(&self) -> Result<Vec<String>, StorageError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(&format!(".{EXTENSION}"))
                && check_name(name).is_ok()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn wipe(&mut self) -> Result<(), StorageError> {
        for name in self.list()? {
            self.remove(&name)?;
        }
        self.provider.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn filler(seed: u64) -> impl FnMut(&mut [u8]) + Send + 'static {
        let mut rng = StdRng::seed_from_u64(seed);
        move |buf: &mut [u8]| rng.fill_bytes(buf)
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("state").is_ok());
        assert!(check_name("contacts-45000").is_ok());
        for bad in ["", "../x", "A", "a.b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let mut m = MemoryStorage::new();
        assert!(m.write("../etc", b"x").is_err());
    }

    #[test]
    fn null_storage_keeps_nothing() {
        let mut n = NullStorage;
        n.write("state", b"x").unwrap();
        assert!(n.read("state").unwrap().is_none());
        assert!(n.list().unwrap().is_empty());
        assert!(n.write("../x", b"x").is_err());
    }

    #[test]
    fn memory_round_trip() {
        let mut m = MemoryStorage::new();
        m.write("a", b"1").unwrap();
        m.write("b", b"2").unwrap();
        assert_eq!(m.read("a").unwrap().unwrap().as_slice(), b"1");
        assert_eq!(m.list().unwrap(), vec!["a", "b"]);
        m.remove("a").unwrap();
        assert!(m.read("a").unwrap().is_none());
        m.wipe().unwrap();
        assert!(m.list().unwrap().is_empty());
    }

    #[test]
    fn encrypted_files_round_trip_and_hide_contents() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("device.key");
        let data_dir = dir.path().join("data");
        let secret = b"the quick brown fox: K_A and EBIDs";
        {
            let mut s =
                EncryptedFileStorage::open(&data_dir, FileKeyProvider::new(&key_path), filler(1))
                    .unwrap();
            s.write("state", secret).unwrap();
            s.write("state", secret).unwrap(); // replace
            assert_eq!(s.read("state").unwrap().unwrap().as_slice(), secret);
            assert_eq!(s.list().unwrap(), vec!["state"]);
        }
        let raw = fs::read(data_dir.join("state.rcs")).unwrap();
        assert_eq!(&raw[..4], MAGIC);
        assert!(!raw.windows(9).any(|w| w == b"the quick"));
        assert_eq!(raw.len(), 4 + 12 + secret.len() + 16);

        // Reopen with the same key file.
        let s = EncryptedFileStorage::open(&data_dir, FileKeyProvider::new(&key_path), filler(2))
            .unwrap();
        assert_eq!(s.read("state").unwrap().unwrap().as_slice(), secret);

        // A different key cannot read it.
        let other = EncryptedFileStorage::open(
            &data_dir,
            StaticKeyProvider(DeviceKey::from_bytes([7; 32])),
            filler(3),
        )
        .unwrap();
        assert!(matches!(other.read("state"), Err(StorageError::Decrypt(_))));
    }

    #[test]
    fn tampering_swapping_and_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = StaticKeyProvider(DeviceKey::from_bytes([1; 32]));
        let mut s = EncryptedFileStorage::open(dir.path(), key.clone(), filler(1)).unwrap();
        s.write("a", b"alpha").unwrap();
        s.write("b", b"beta").unwrap();
        // Swap files: the AAD binds the name.
        fs::copy(dir.path().join("a.rcs"), dir.path().join("b.rcs")).unwrap();
        assert!(matches!(s.read("b"), Err(StorageError::Decrypt(_))));
        // Flip a bit.
        let mut raw = fs::read(dir.path().join("a.rcs")).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        fs::write(dir.path().join("a.rcs"), &raw).unwrap();
        assert!(matches!(s.read("a"), Err(StorageError::Decrypt(_))));
        // Truncated.
        fs::write(dir.path().join("a.rcs"), b"RCS1").unwrap();
        assert!(matches!(s.read("a"), Err(StorageError::Decrypt(_))));
        // A leftover temp file from a crash is removed on open and never listed.
        fs::write(dir.path().join(".tmp-a.rcs-1"), b"partial").unwrap();
        assert!(!s.list().unwrap().iter().any(|n| n.contains("tmp")));
        let s2 = EncryptedFileStorage::open(dir.path(), key, filler(2)).unwrap();
        assert!(!dir.path().join(".tmp-a.rcs-1").exists());
        drop(s2);
    }

    #[test]
    fn wipe_removes_records_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("device.key");
        let mut s = EncryptedFileStorage::open(
            dir.path().join("d"),
            FileKeyProvider::new(&key_path),
            filler(1),
        )
        .unwrap();
        s.write("state", b"x").unwrap();
        assert!(key_path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        s.wipe().unwrap();
        assert!(!key_path.exists());
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", DeviceKey::from_bytes([9; 32])),
            "DeviceKey { .. }"
        );
    }
}
