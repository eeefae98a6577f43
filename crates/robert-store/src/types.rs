//! The values the store reads and writes.

use core::fmt;
use std::collections::{BTreeMap, HashMap};

use robert_core::contact::UploadedHello;
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::time::{Epoch, NtpSeconds};

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The embedded SQLite store (a file in the data directory, WAL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// A registration to insert (`/register`, protocol.md §7, §11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRegistration {
    /// The new, random ID_A.
    pub id_a: IdA,
    /// K_A wrapped under the KEK.
    pub key_a: WrappedKey,
    /// K_A_Tuples wrapped under the KEK.
    pub key_a_tuples: WrappedKey,
    /// Registration time (NTP seconds).
    pub created_at: NtpSeconds,
}

/// A stored registration (server-api.md §5, `idTable`), without its exposures
/// (read them with [`crate::Store::exposures`]): `/status` never needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// ID_A.
    pub id_a: IdA,
    /// K_A wrapped under the KEK.
    pub key_a: WrappedKey,
    /// K_A_Tuples wrapped under the KEK.
    pub key_a_tuples: WrappedKey,
    /// Registration time (NTP seconds).
    pub created_at: NtpSeconds,
    /// `isNotified`: the app was told "at risk" at least once.
    pub is_notified: bool,
    /// `atRisk`: set by the batch's risk evaluation, cleared by its reset.
    pub at_risk: bool,
    /// `notifiedForCurrentRisk`: a successful `/status` happened since the
    /// current risk was detected.
    pub notified_for_current_risk: bool,
    /// `lastStatusRequestEpoch` (0 before the first successful `/status`).
    pub last_status_epoch: Epoch,
    /// `latestRiskEpoch`: the epoch of the last risk detection (0 if never).
    pub latest_risk_epoch: Epoch,
    /// `lastContactTimestamp`: randomised UTC midnight of the last risky
    /// contact, NTP seconds (0 if never).
    pub last_contact: NtpSeconds,
    /// `lastFailedStatusRequestEpoch` / `...Message`.
    pub last_failed_status: Option<FailedStatus>,
    /// `lastTimestampDrift`: server − client seconds of the last authenticated request.
    pub last_timestamp_drift: i64,
    /// `outdatedRisk`: new scores wait for the batch's risk evaluation.
    pub outdated_risk: bool,
}

/// The last rejected `/status` of a registration (diagnostics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedStatus {
    /// The server's epoch at the rejection.
    pub epoch: Epoch,
    /// Why (e.g. "Invalid MAC" or the rate-limit message).
    pub message: String,
}

/// A successful `/status` to record (server-api.md §3.5 step 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusSuccess {
    /// The registration.
    pub id_a: IdA,
    /// The server's current epoch: the new `lastStatusRequestEpoch`.
    pub epoch: Epoch,
    /// The new `lastTimestampDrift` (server − client, seconds).
    pub drift_secs: i64,
}

/// What [`crate::Store::record_status_success`] did, read and written in one
/// transaction, so the response matches the stored state even when the batch
/// runs concurrently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusOutcome {
    /// `atRisk` at the time of the update (riskLevel 4 if true, else 0).
    pub at_risk: bool,
    /// `lastContactTimestamp` (NTP seconds, 0 if never).
    pub last_contact: NtpSeconds,
    /// `latestRiskEpoch` (0 if never).
    pub latest_risk_epoch: Epoch,
    /// KPI `alertedUsers` was incremented (at risk and not notified before).
    pub alerted: bool,
    /// KPI `notifiedUsers` was incremented (at risk and not notified for this risk).
    pub notified: bool,
}

/// One contact of a `/report`: the HELLOs received from one (EBID, ECC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedContact {
    /// The sender's EBID.
    pub ebid: Ebid,
    /// The sender's ECC.
    pub ecc: Ecc,
    /// The HELLOs, in upload order. `time_collected` must fit in 32 bits
    /// (the API validates `timeCollectedOnDevice` as an unsigned 32-bit value).
    pub hellos: Vec<UploadedHello>,
}

/// The identifier of a queued contact. Increasing in insertion order and
/// never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContactId(pub i64);

/// A contact waiting for the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredContact {
    /// Queue identifier.
    pub id: ContactId,
    /// When the report was stored (NTP seconds).
    pub received_at: NtpSeconds,
    /// The sender's EBID.
    pub ebid: Ebid,
    /// The sender's ECC.
    pub ecc: Ecc,
    /// The HELLOs in upload order.
    pub hellos: Vec<UploadedHello>,
    /// The stored row could not be decoded (wrong EBID/ECC size or HELLO
    /// blob length); `hellos` is then empty. The batch discards such contacts.
    pub malformed: bool,
}

/// How many contacts and HELLOs wait for the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingContacts {
    /// Contacts.
    pub contacts: u64,
    /// HELLOs over all contacts.
    pub hellos: u64,
}

/// A half-open range `[start, end)` of ID_As taken as 40-bit integers: the
/// unit the batch partitions its work by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdARange {
    /// First ID_A of the range.
    pub start: u64,
    /// One past the last ID_A of the range (at most 2^40).
    pub end: u64,
}

impl IdARange {
    /// One past the largest ID_A.
    pub const LIMIT: u64 = 1 << 40;

    /// Every ID_A.
    pub const ALL: Self = Self {
        start: 0,
        end: Self::LIMIT,
    };

    /// Splits the ID_A space into `n` (at least 1) contiguous ranges of equal size.
    pub fn partitions(n: u32) -> Vec<Self> {
        let n = u64::from(n.max(1));
        (0..n)
            .map(|i| Self {
                start: Self::LIMIT / n * i,
                end: if i + 1 == n {
                    Self::LIMIT
                } else {
                    Self::LIMIT / n * (i + 1)
                },
            })
            .collect()
    }

    /// Whether the range holds this ID_A.
    pub fn contains(&self, id_a: IdA) -> bool {
        (self.start..self.end).contains(&id_a.to_u64())
    }
}

/// How many registrations the store had deleted when a batch read the
/// senders' K_A ([`crate::Store::wrapped_keys_a`]), handed back with the
/// chunk's commit ([`crate::Store::commit_contact_chunk`]). If none has been
/// deleted since, every registration whose key the read found still exists,
/// and the commit need not look them up again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeletionMark(pub(crate) i64);

/// The wrapped K_A that [`crate::Store::wrapped_keys_a`] found.
#[derive(Debug, Default)]
pub struct WrappedKeysA {
    /// The wrapped K_A of each listed registration that exists.
    pub keys: HashMap<IdA, WrappedKey>,
    /// What the read saw of registration deletions: `None` where the back
    /// end keeps no count (PostgreSQL, where one counter row written by
    /// every `/unregister` would tie all shards together).
    pub deletions: Option<DeletionMark>,
}

/// A contact's score, ready to be appended to its sender's exposures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContactExposure {
    /// The contact it came from.
    pub contact_id: ContactId,
    /// The sender's registration.
    pub id_a: IdA,
    /// The EBID's epoch (`exposedEpochs[].epochId`).
    pub epoch: Epoch,
    /// The contact score.
    pub score: f64,
}

/// A registration whose new scores await risk evaluation (`outdatedRisk`).
#[derive(Clone, Debug, PartialEq)]
pub struct RiskCandidate {
    /// The registration.
    pub id_a: IdA,
    /// `latestRiskEpoch`.
    pub latest_risk_epoch: Epoch,
    /// `lastContactTimestamp`.
    pub last_contact: NtpSeconds,
    /// `exposedEpochs`, by ascending epoch; scores in insertion order.
    pub exposures: Vec<robert_core::scoring::EpochExposure>,
}

/// The result of one risk evaluation, to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskUpdate {
    /// The registration.
    pub id_a: IdA,
    /// `Some` when the registration is (again) at risk: sets `atRisk`, clears
    /// `notifiedForCurrentRisk`, stores these values. `None` only clears
    /// `outdatedRisk`.
    pub at_risk: Option<NewRisk>,
}

/// A risk detection (server-api.md §4.5 step 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewRisk {
    /// The new `lastContactTimestamp`.
    pub last_contact: NtpSeconds,
    /// The new `latestRiskEpoch`.
    pub latest_risk_epoch: Epoch,
}

/// Registration counts behind the batch KPIs (server-api.md §6.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PopulationCounts {
    /// `atRisk && !isNotified`: KPI `infectedUsersNotNotified`.
    pub at_risk_not_notified: i64,
    /// `!atRisk && isNotified && exposures non-empty`: KPI `notifiedUsersScoredAgain`.
    pub notified_scored_again: i64,
    /// `!atRisk && !isNotified && exposures non-empty`: KPI `exposedButNotAtRiskUsers`.
    pub exposed_not_at_risk: i64,
}

/// Where the last batch run stands (for resumption after a crash).
#[derive(Clone, PartialEq, Eq)]
pub struct BatchRunState {
    /// The `now` the run started with (NTP seconds).
    pub run_at: NtpSeconds,
    /// The run's random seed (last-contact randomisation).
    pub seed: [u8; 32],
    /// How far it got.
    pub phase: BatchPhase,
}

impl fmt::Debug for BatchRunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchRunState")
            .field("run_at", &self.run_at)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// The durable milestones of a batch run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchPhase {
    /// Started: purge and risk reset may not be complete.
    Started,
    /// Purge and risk reset are complete; scoring and evaluation are under way.
    Scoring,
    /// The run completed.
    Done,
}

impl BatchPhase {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Scoring => "scoring",
            Self::Done => "done",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "started" => Some(Self::Started),
            "scoring" => Some(Self::Scoring),
            "done" => Some(Self::Done),
            _ => None,
        }
    }
}

/// KPI names (server-api.md §3.10, §6.6).
pub mod kpi {
    /// `/status`: first alert ever of an at-risk user.
    pub const ALERTED_USERS: &str = "alertedUsers";
    /// `/status`: first status of an at-risk user for the current risk.
    pub const NOTIFIED_USERS: &str = "notifiedUsers";
    /// `/report`: one per successful report.
    pub const REPORTS_COUNT: &str = "reportsCount";
    /// Batch: risk ≥ threshold but the last exposure is too old.
    pub const USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED: &str =
        "usersAboveRiskThresholdButRetentionPeriodExpired";
    /// Batch (set): atRisk && !isNotified.
    pub const INFECTED_USERS_NOT_NOTIFIED: &str = "infectedUsersNotNotified";
    /// Batch (set): !atRisk && isNotified && exposures non-empty.
    pub const NOTIFIED_USERS_SCORED_AGAIN: &str = "notifiedUsersScoredAgain";
    /// Batch (set): !atRisk && !isNotified && exposures non-empty. The
    /// reference batch (master) writes it as `exposedUsersNotAtRisk` while its
    /// API reads this name; we use the name the API reads.
    pub const EXPOSED_BUT_NOT_AT_RISK_USERS: &str = "exposedButNotAtRiskUsers";

    /// The seven KPIs of `GET /internal/api/v2/kpis`, in response order.
    pub const API: [&str; 7] = [
        ALERTED_USERS,
        EXPOSED_BUT_NOT_AT_RISK_USERS,
        INFECTED_USERS_NOT_NOTIFIED,
        NOTIFIED_USERS_SCORED_AGAIN,
        NOTIFIED_USERS,
        USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED,
        REPORTS_COUNT,
    ];
}

/// All stored KPI counters; a missing counter reads as 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kpis(pub BTreeMap<String, i64>);

impl Kpis {
    /// The value of a counter (0 if absent).
    pub fn get(&self, name: &str) -> i64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

/// One entry of the `config` list returned to apps.
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfigEntry {
    /// The parameter name.
    pub name: String,
    /// Its JSON value.
    pub value: serde_json::Value,
}
