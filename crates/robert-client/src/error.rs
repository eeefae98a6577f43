//! The SDK's error type. No message contains a key, a code or a token.

use robert_core::time::{NtpSeconds, UtcDate};

use crate::code::CodeError;
use crate::identity::HelloError;
use crate::storage::StorageError;
use crate::transport::TransportError;

/// Everything a phone operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The operation needs a registration and there is none.
    #[error("not registered")]
    NotRegistered,
    /// `register` was called on a registered phone.
    #[error("already registered")]
    AlreadyRegistered,
    /// HTTP 430: the server no longer knows this registration (deleted, or
    /// dropped for inactivity). Local registration data has been wiped; the
    /// app must register again.
    #[error("the server dropped this registration (HTTP 430): register again")]
    RegistrationDropped,
    /// `/register` answered 401: the captcha answer was wrong or expired.
    #[error("wrong captcha answer (or the captcha expired): ask for a new one")]
    CaptchaRejected,
    /// The host app's captcha callback gave no answer.
    #[error("captcha cancelled")]
    CaptchaCancelled,
    /// `/report` answered 401: the code is unknown, expired or already used.
    /// The message shown to people says so in plain words; the server's
    /// own message is kept in `message` for logs.
    #[error(
        "this code was already used, has expired or is not valid: check it, or ask for a new one"
    )]
    InvalidCode {
        /// The server's message, e.g. "Unrecognized token of length: 6".
        message: Option<String>,
    },
    /// `/report` answered 503: the server cannot check codes right now (its
    /// code service is down). The code is not used: the same report can be
    /// sent again later.
    #[error(
        "the server cannot check codes right now; your code is not used: try again in a few minutes"
    )]
    ReportLater {
        /// The server's message.
        message: Option<String>,
    },
    /// This phone has already reported a positive test: like the apps, the
    /// SDK sends one report per registration (a second would burn a second
    /// code for nothing).
    #[error("this phone already reported a positive test on {}: a phone reports once", fmt_utc(*.at))]
    AlreadyReported {
        /// When the report was sent.
        at: NtpSeconds,
    },
    /// `/status` was refused because the previous status request is too
    /// recent: the server accepts one every `gap_epochs` 15-minute epochs.
    #[error("too soon after the previous status request: the server accepts one every {} minutes; try again from {}", .gap_epochs * 15, fmt_utc(*.retry_at))]
    StatusTooSoon {
        /// Epochs (15 minutes each) that must separate two status requests.
        gap_epochs: u32,
        /// The first moment the next status request is accepted.
        retry_at: NtpSeconds,
    },
    /// The report code was not in an accepted format.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// HTTP 400, with the server's message when it sent one (bad request,
    /// request too soon after the previous status, clock off by > 60 s...).
    #[error("request refused (HTTP 400){}", fmt_message(.message))]
    BadRequest {
        /// The server's `message`, if any.
        message: Option<String>,
    },
    /// HTTP 404: the server has no registration for these credentials.
    #[error("unknown registration (HTTP 404)")]
    NotFound,
    /// Another HTTP status (5xx...).
    #[error("HTTP {status}{}", fmt_message(.message))]
    Http {
        /// The status code.
        status: u16,
        /// The server's `message`, if any.
        message: Option<String>,
    },
    /// The phone's clock differs from the server's by more than the
    /// tolerance (120 s): the user must fix the time before anything else.
    #[error("clock not aligned with the server: {drift_secs} s off")]
    ClockMisaligned {
        /// Server time minus phone time, in seconds.
        drift_secs: i64,
    },
    /// The server could not be reached (after the configured retries).
    #[error("network error: {0}")]
    Network(#[from] TransportError),
    /// A success response that does not follow the API.
    #[error("invalid response from {endpoint}: {reason}")]
    InvalidResponse {
        /// The endpoint path.
        endpoint: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The tuple bundle did not decrypt: most likely the configured server
    /// public key is not the server's.
    #[error("tuple bundle does not decrypt (wrong server public key?)")]
    TuplesUndecryptable,
    /// No HELLO can be emitted now.
    #[error(transparent)]
    Hello(#[from] HelloError),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
}

fn fmt_message(m: &Option<String>) -> String {
    m.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
}

/// An instant as people read it in messages: `YYYY-MM-DD HH:MM:SS UTC`.
pub fn fmt_utc(t: NtpSeconds) -> String {
    let secs = t.seconds_into_utc_day();
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        UtcDate::of(t),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

impl ClientError {
    /// Whether the server dropped the registration (HTTP 430).
    pub fn is_registration_dropped(&self) -> bool {
        matches!(self, Self::RegistrationDropped)
    }
}

/// Why a received HELLO was not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// Not 16 bytes (or a BLE payload shorter than 18).
    #[error("malformed HELLO")]
    Malformed,
    /// RSSI 127: the platform's "not available".
    #[error("RSSI not available")]
    NoRssi,
    /// The HELLO's Time16 is further than the tolerance from the local clock
    /// (the server would discard it).
    #[error("HELLO time too far from the local clock")]
    StaleTime,
    /// The same EBID was already recorded this second.
    #[error("duplicate within the same second")]
    Duplicate,
    /// The HELLO carries one of this phone's own EBIDs.
    #[error("own HELLO")]
    Own,
}
