//! SoftHSM2 for tests.
//!
//! SoftHSM reads its configuration (`SOFTHSM2_CONF`) once, when the module
//! is initialised, and a module is initialised once per process. So each
//! PKCS#11 test runs in a child process: the test (the parent) creates a
//! temporary directory holding a `softhsm2.conf` and one fresh token, runs
//! its own test binary again on exactly this test with `SOFTHSM2_CONF`
//! pointing there, checks that the child ran and passed one test, and
//! deletes the directory (and so the token). No environment variable of the
//! test process itself is changed.
//!
//! Without SoftHSM (`apt-get install softhsm2`) a test prints a skip
//! message and passes, unless `ROBERT_TEST_REQUIRE_TOOLS=1` makes that a
//! failure (CI).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Pkcs11Settings;

/// Overrides the SoftHSM module path.
pub const MODULE_ENV: &str = "ROBERT_TEST_PKCS11_MODULE";
/// Set in the child process to the name of the test it runs.
const CHILD_ENV: &str = "ROBERT_TEST_SOFTHSM_CHILD";
/// The test token's label.
pub const TOKEN_LABEL: &str = "robert-test";
/// The test token's user PIN.
pub const USER_PIN: &str = "246810";
/// The test token's security-officer PIN.
pub const SO_PIN: &str = "13579111";

const MODULE_CANDIDATES: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM module, if installed (and `softhsm2-util` with it).
pub fn softhsm_module() -> Option<PathBuf> {
    let module = match std::env::var(MODULE_ENV) {
        Ok(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => MODULE_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    }?;
    let util = Command::new("softhsm2-util").arg("--version").output();
    (module.exists() && util.is_ok_and(|o| o.status.success())).then_some(module)
}

/// Skips (prints `message`) or, with `ROBERT_TEST_REQUIRE_TOOLS=1`, fails.
pub fn skip_or_fail(message: &str) {
    if std::env::var("ROBERT_TEST_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{message} (ROBERT_TEST_REQUIRE_TOOLS=1)");
    }
    eprintln!("{message}");
}

/// A temporary SoftHSM configuration with one initialised token; deleted
/// (with its tokens) on drop.
#[derive(Debug)]
pub struct SoftHsmDir {
    dir: PathBuf,
}

impl SoftHsmDir {
    /// Creates the directory, its `softhsm2.conf` and the token
    /// [`TOKEN_LABEL`] (PINs [`USER_PIN`], [`SO_PIN`]).
    pub fn create(name: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "robert-softhsm-{}-{}-{name}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(dir.join("tokens"))?;
        let this = Self { dir };
        std::fs::write(
            this.conf(),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                this.dir.join("tokens").display()
            ),
        )?;
        this.init_token(TOKEN_LABEL)?;
        Ok(this)
    }

    /// The `softhsm2.conf` to pass as `SOFTHSM2_CONF`.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// Initialises one more token in a free slot.
    pub fn init_token(&self, label: &str) -> std::io::Result<()> {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", USER_PIN, "--so-pin", SO_PIN])
            .env("SOFTHSM2_CONF", self.conf())
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SoftHsmDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Settings for the test token of the child process.
pub fn child_settings(module: PathBuf) -> Pkcs11Settings {
    Pkcs11Settings {
        module,
        token_label: TOKEN_LABEL.to_owned(),
        label_prefix: String::new(),
        max_idle_sessions: 8,
    }
}

/// Runs test `test_name` (its full libtest name, without the crate) against
/// a fresh SoftHSM token. In the test process it starts the child and
/// returns `None` after checking it passed (or after a skip); in the child
/// it returns the settings of the token, and the caller runs the body.
pub fn in_softhsm(test_name: &str) -> Option<Pkcs11Settings> {
    if std::env::var(CHILD_ENV).is_ok_and(|v| v == test_name) {
        let module = softhsm_module().unwrap_or_else(|| panic!("SoftHSM vanished in the child"));
        return Some(child_settings(module));
    }
    if softhsm_module().is_none() {
        skip_or_fail(&format!(
            "skipped {test_name}: SoftHSM2 not installed (apt-get install softhsm2)"
        ));
        return None;
    }
    let dir = SoftHsmDir::create(&test_name.replace("::", "-"))
        .unwrap_or_else(|e| panic!("cannot prepare SoftHSM: {e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let out = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", dir.conf())
        .env(CHILD_ENV, test_name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the test binary: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test_name} failed under SoftHSM:\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    None
}

/// For benchmarks and tools: in the first process, creates a
/// [`SoftHsmDir`], runs this executable again with the same arguments and
/// `SOFTHSM2_CONF` pointing there, and returns the child's exit status (the
/// caller exits with it); in that child, returns `None` (the caller goes
/// on, [`child_settings`] name its token). `None` too without SoftHSM.
pub fn rerun_with_softhsm(label: &str) -> Option<std::process::ExitStatus> {
    if std::env::var(CHILD_ENV).is_ok_and(|v| v == label) || softhsm_module().is_none() {
        return None;
    }
    let dir = SoftHsmDir::create(label).unwrap_or_else(|e| panic!("cannot prepare SoftHSM: {e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("SOFTHSM2_CONF", dir.conf())
        .env(CHILD_ENV, label)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {label} again: {e}"));
    Some(status)
}

/// Imports fixed test keys into `store`, as `robert keys import` would: the
/// KEK `0x42…42`, `pair` as the registration key and the federation key
/// `0x01…01` (the keystore tests and benchmark compare a store's results
/// with these keys held in memory).
///
/// # Errors
///
/// As [`crate::keystore::admin::import`].
pub fn import_fixed_keys(
    store: &dyn crate::keystore::KeyStore,
    pair: &robert_core::registration::ServerKeyPair,
) -> Result<crate::keystore::admin::KeyReport, crate::keystore::KeyStoreError> {
    use crate::keystore::admin::{self, ImportItem};
    use zeroize::Zeroizing;
    admin::import(
        store,
        vec![
            ImportItem::Kek(Zeroizing::new(hex::encode([0x42; 32]))),
            ImportItem::RegistrationKey(Zeroizing::new(hex::encode(
                pair.to_scalar_bytes().as_ref(),
            ))),
            ImportItem::FederationKey(Zeroizing::new(hex::encode([1; 32]))),
        ],
        false,
    )
}
