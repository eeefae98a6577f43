//! One logged-in PKCS#11 token and its pool of sessions.
//!
//! A PKCS#11 module is loaded and initialised once per process (a second
//! `C_Initialize` fails, and `C_Finalize` would end every user of the
//! module), so modules are kept in a process-wide registry. Login is per
//! application and token: an *anchor* session that is never closed keeps
//! it. Operations borrow an idle session from the pool (or open one) and
//! give it back; a session the token reports broken is dropped, a lost login
//! is redone, and the operation is tried once more.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::keystore::{KeyOpError, KeyStoreError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The module loaded from `path`, initialised once per process.
fn module(path: &Path) -> Result<Pkcs11, KeyStoreError> {
    static MODULES: Mutex<Vec<(PathBuf, Pkcs11)>> = Mutex::new(Vec::new());
    let mut modules = lock(&MODULES);
    if let Some((_, ctx)) = modules.iter().find(|(p, _)| p == path) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| {
        KeyStoreError::Token(format!(
            "cannot load PKCS#11 module {}: {e}",
            path.display()
        ))
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyStoreError::Token(format!(
                "cannot initialise PKCS#11 module {}: {e}",
                path.display()
            )));
        }
    }
    modules.push((path.to_path_buf(), ctx.clone()));
    Ok(ctx)
}

/// Whether an error means the session (or the device behind it) is gone.
fn session_broken(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized,
            _
        )
    )
}

fn not_logged_in(e: &CkError) -> bool {
    matches!(e, CkError::Pkcs11(RvError::UserNotLoggedIn, _))
}

/// Maps a failed operation: a GCM tag or length failure is
/// [`KeyOpError::Unwrap`], anything else a token failure.
pub(super) fn op_error(e: CkError) -> KeyOpError {
    match e {
        CkError::Pkcs11(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange, _) => {
            KeyOpError::Unwrap
        }
        other => KeyOpError::Token(other.to_string()),
    }
}

/// A logged-in token and its sessions.
pub(super) struct Token {
    ctx: Pkcs11,
    slot: Slot,
    location: String,
    pin: AuthPin,
    anchor: Mutex<Option<Session>>,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("location", &self.location)
            .field("idle_sessions", &lock(&self.idle).len())
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads `module_path`, finds the token labelled `label` and logs in
    /// with `pin`.
    pub(super) fn open(
        module_path: &Path,
        label: &str,
        pin: Zeroizing<String>,
        max_idle: usize,
    ) -> Result<Self, KeyStoreError> {
        let ctx = module(module_path)?;
        let location = format!("pkcs11:token={label} ({})", module_path.display());
        let tok_err =
            |what: &str, e: CkError| KeyStoreError::Token(format!("{location}: {what}: {e}"));
        let mut slot = None;
        for s in ctx
            .get_slots_with_initialized_token()
            .map_err(|e| tok_err("listing slots", e))?
        {
            let info = ctx
                .get_token_info(s)
                .map_err(|e| tok_err("reading token info", e))?;
            if info.label().trim_end() == label {
                slot = Some(s);
                break;
            }
        }
        let slot = slot.ok_or_else(|| {
            KeyStoreError::NotFound(format!(
                "{location}: no initialised token has this label (create it with the HSM's tools, e.g. \
                 `softhsm2-util --init-token --free --label {label}`)"
            ))
        })?;
        let token = Self {
            ctx,
            slot,
            location,
            pin: AuthPin::from(pin.as_str().to_owned()),
            anchor: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        };
        token.login()?;
        Ok(token)
    }

    /// `pkcs11:token=LABEL (module)`, for messages.
    pub(super) fn location(&self) -> &str {
        &self.location
    }

    /// Logs in through the anchor session (reopened if it broke).
    fn login(&self) -> Result<(), KeyStoreError> {
        let mut anchor = lock(&self.anchor);
        let session = match anchor.take() {
            Some(s) => s,
            None => self.ctx.open_rw_session(self.slot).map_err(|e| {
                KeyStoreError::Token(format!("{}: open session: {e}", self.location))
            })?,
        };
        let r = session.login(UserType::User, Some(&self.pin));
        let r = match r {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(CkError::Pkcs11(
                rv @ (RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinLocked
                | RvError::PinExpired),
                _,
            )) => Err(KeyStoreError::Token(format!(
                "{}: login refused: {rv}",
                self.location
            ))),
            Err(e) => Err(KeyStoreError::Token(format!(
                "{}: login: {e}",
                self.location
            ))),
        };
        if r.is_ok() {
            *anchor = Some(session);
        }
        r
    }

    fn take_session(&self) -> Result<Session, CkError> {
        if let Some(s) = lock(&self.idle).pop() {
            return Ok(s);
        }
        self.ctx.open_rw_session(self.slot)
    }

    fn give_back(&self, s: Session) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(s);
        }
        // Otherwise `s` is dropped here, which closes it.
    }

    /// Runs `op` on a pooled session. A broken session is discarded and a
    /// lost login redone, then `op` runs once more on a fresh session.
    pub(super) fn with_session<T>(
        &self,
        op: impl Fn(&Session) -> Result<T, CkError>,
    ) -> Result<T, CkError> {
        let mut retried = false;
        loop {
            let session = self.take_session()?;
            match op(&session) {
                Ok(v) => {
                    self.give_back(session);
                    return Ok(v);
                }
                Err(e) if !retried && session_broken(&e) => {
                    drop(session);
                    // Sessions opened before the failure are likely broken too.
                    lock(&self.idle).clear();
                    *lock(&self.anchor) = None;
                    // A failed login shows up in the retry's own error.
                    let _ = self.login();
                }
                Err(e) if !retried && not_logged_in(&e) => {
                    self.give_back(session);
                    let _ = self.login();
                }
                Err(e) => {
                    if !session_broken(&e) {
                        self.give_back(session);
                    }
                    return Err(e);
                }
            }
            retried = true;
        }
    }

    /// A copy of token object `h` as a session object of the anchor session
    /// (`CKA_TOKEN` false; sensitivity and extractability are kept), or
    /// `None` if the token refuses. It lives until the anchor session
    /// closes or [`Token::destroy`] removes it.
    pub(super) fn session_copy(&self, h: ObjectHandle) -> Option<ObjectHandle> {
        let anchor = lock(&self.anchor);
        anchor
            .as_ref()?
            .copy_object(h, &[Attribute::Token(false)])
            .ok()
    }

    /// Destroys an object, ignoring failures (a session copy that vanished
    /// with its session).
    pub(super) fn destroy(&self, h: ObjectHandle) {
        let _ = self.with_session(|s| s.destroy_object(h));
    }

    /// [`Token::with_session`] for key-store operations.
    pub(super) fn run<T>(
        &self,
        what: &str,
        op: impl Fn(&Session) -> Result<T, CkError>,
    ) -> Result<T, KeyStoreError> {
        self.with_session(op)
            .map_err(|e| KeyStoreError::Token(format!("{}: {what}: {e}", self.location)))
    }
}
