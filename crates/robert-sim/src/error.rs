//! The simulator's error type.

use robert_radio::scenario::ScenarioError;

/// Why a simulation could not run or finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The scenario is invalid (parse or expansion error).
    #[error("scenario: {0}")]
    Scenario(#[from] ScenarioError),
    /// An option is out of range.
    #[error("options: {0}")]
    Options(String),
    /// The in-process server or code service could not start or failed.
    #[error("backend: {0}")]
    Backend(String),
    /// A phone operation failed where the simulation cannot go on (e.g. a
    /// positive case could not report).
    #[error("phone {person}: {message}")]
    Phone {
        /// The person (scenario id).
        person: u32,
        /// What failed.
        message: String,
    },
    /// Writing the report failed.
    #[error("report: {0}")]
    Report(String),
    /// The detection study could not go on (a recording, a setting).
    #[error("study: {0}")]
    Study(String),
    /// An I/O error (report files, runtime).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
