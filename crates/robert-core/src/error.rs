//! Errors of the protocol core.
//!
//! Following the rustls split, a [`Error`] is either *malformed* input (wrong
//! length, bad base64, bad JSON, out-of-range value) or a *rejected* input
//! (well formed, but a check failed: MAC, epoch window, key agreement). No
//! message ever contains key material.

/// Everything that can go wrong in the protocol core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A fixed-size value had the wrong length.
    #[error("{what}: expected {expected} bytes, got {actual}")]
    InvalidLength {
        /// Which value.
        what: &'static str,
        /// Expected length in bytes.
        expected: usize,
        /// Actual length in bytes.
        actual: usize,
    },
    /// A value was not valid standard base64 (RFC 4648, padded).
    #[error("{what}: invalid base64")]
    InvalidBase64 {
        /// Which value.
        what: &'static str,
    },
    /// A date was not a valid `YYYY-MM-DD` (or `YYYYMMDD`) calendar date.
    #[error("invalid date (expected YYYY-MM-DD)")]
    InvalidDate,
    /// A public key was not a valid base64 SubjectPublicKeyInfo of a P-256 point.
    #[error("invalid P-256 public key (expected base64 X.509 SubjectPublicKeyInfo)")]
    InvalidPublicKey,
    /// A private key was not a valid P-256 scalar or PKCS#8 document.
    #[error("invalid P-256 private key")]
    InvalidPrivateKey,
    /// A tuple bundle's plaintext was not the expected JSON.
    #[error("invalid tuple bundle JSON")]
    InvalidTuples,
    /// A tuple bundle did not decrypt under the given key (wrong key or altered data).
    #[error("tuple bundle does not decrypt")]
    Decrypt,
    /// A wrapped key did not decrypt under the KEK (wrong KEK or altered data).
    #[error("wrapped key does not decrypt under the KEK")]
    Unwrap,
    /// An epoch does not fit in the 24 bits an EBID carries.
    #[error("epoch {0} does not fit in 24 bits")]
    EpochOutOfRange(u32),
}
