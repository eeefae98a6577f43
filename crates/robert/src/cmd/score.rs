//! `robert score`: score contact files with the batch's algorithm and print
//! JSON (server-api.md §4.4–§4.5).
//!
//! Each file is one contact, the HELLOs of one EBID as uploaded, in the
//! format of the reference's test vectors:
//!
//! ```text
//! mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated
//! cZPZlfpnFUI=,1589970062,26348,-70
//! ```
//!
//! Rows are taken in file order (v2 takes `t0` from the first row). The
//! output lists each contact's score and the aggregated risk of all of them:
//!
//! ```text
//! {"algorithm": 2, "contacts": [{"file", "hellos", "score", "scorePerMinute",
//!   "kmax", "nbContacts", "skippedTooLate"}, ...], "totalScore", "aggregatedRisk"}
//! ```
//!
//! Exit status: 0 on success, 2 on any error (unreadable file, bad header,
//! bad value: the message names the file and line).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use robert_core::scoring::{
    ContactScore, Scoring, ScoringInput, ScoringV0, ScoringV2, V0Params, V2Params,
};
use robert_core::time::{NtpSeconds, ServiceStart, UtcDate};
use serde::Serialize;

/// The columns a contact file must have (any order).
const COLUMNS: [&str; 4] = [
    "mac",
    "timeCollectedOnDevice",
    "timeFromHelloMessage",
    "rssiCalibrated",
];

/// Arguments of `robert score`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScoreArgs {
    /// Contact files (CSV with header `mac,timeCollectedOnDevice,timeFromHelloMessage,rssiCalibrated`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Scoring algorithm (`robert.scoring.algo-version`).
    #[arg(long, value_enum, default_value_t = Algo::V2)]
    algo: Algo,
    /// v2: the aggregation constant R0 (`robert.scoring.scoring-algo-r0`).
    #[arg(long, default_value_t = 0.0071)]
    r0: f64,
    /// v2: seconds allowed beyond 900 between the first and last HELLO
    /// (`robert.scoring.epoch-tolerance`).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    epoch_tolerance: i64,
    /// v0: calibrated RSSI at one metre (`robert.protocol.scoring-algo-rssi`).
    #[arg(long, default_value_t = -40, allow_negative_numbers = true)]
    rssi_1m: i32,
    /// v0: service start date, for single-HELLO contacts (`robert.server.time-start`).
    #[arg(long, default_value = "2020-06-01")]
    service_start: UtcDate,
}

/// The scoring algorithm to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Algo {
    /// Version 2 (production).
    V2,
    /// Version 0 (legacy WP4 formula).
    V0,
}

/// The JSON printed on success.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    algorithm: u8,
    contacts: Vec<ContactReport>,
    /// Sum of the contact scores.
    total_score: f64,
    /// v2: `1 − exp(−R0 · totalScore)`; v0: `totalScore`.
    aggregated_risk: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContactReport {
    file: String,
    hellos: usize,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_per_minute: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kmax: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nb_contacts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped_too_late: Option<bool>,
}

impl ContactReport {
    fn new(file: &Path, hellos: usize, score: &ContactScore, v2: bool) -> Self {
        Self {
            file: file.display().to_string(),
            hellos,
            score: score.score,
            score_per_minute: v2.then_some(score.score_per_minute),
            kmax: v2.then_some(score.kmax),
            nb_contacts: v2.then_some(score.nb_contacts),
            skipped_too_late: v2.then_some(score.skipped_too_late),
        }
    }
}

/// Runs `robert score`.
pub(crate) fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let scoring = match args.algo {
        Algo::V2 => Scoring::V2(
            ScoringV2::new(V2Params {
                r0: args.r0,
                epoch_tolerance_secs: args.epoch_tolerance,
                ..V2Params::default()
            })
            .context("invalid scoring parameters")?,
        ),
        Algo::V0 => Scoring::V0(ScoringV0::new(V0Params {
            rssi_1m: args.rssi_1m,
            start: ServiceStart::new(args.service_start),
        })),
    };
    let v2 = args.algo == Algo::V2;

    let mut contacts = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let hellos = read_contact(file)?;
        let score = scoring
            .score(&hellos)
            .with_context(|| format!("{}", file.display()))?;
        contacts.push(ContactReport::new(file, hellos.len(), &score, v2));
    }
    let total_score = contacts.iter().map(|c| c.score).sum();
    let aggregated_risk = scoring
        .aggregation()
        .aggregate(contacts.iter().map(|c| c.score));
    let report = Report {
        algorithm: scoring.version(),
        contacts,
        total_score,
        aggregated_risk,
    };

    let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{json}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`robert score … | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}

/// Reads one contact file: the HELLOs in file order.
fn read_contact(path: &Path) -> anyhow::Result<Vec<ScoringInput>> {
    let name = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("{name}: cannot open"))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{name}: cannot read the header"))?;
    let mut index = [0usize; 4];
    for (slot, column) in index.iter_mut().zip(COLUMNS) {
        *slot = headers.iter().position(|h| h == column).with_context(|| {
            format!(
                "{name}, line 1: missing column `{column}` (expected header {})",
                COLUMNS.join(",")
            )
        })?;
    }
    let [_, time_column, time16_column, rssi_column] = index;

    let mut hellos = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{name}: malformed CSV"))?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |column: usize, what: &str| {
            record
                .get(column)
                .with_context(|| format!("{name}, line {line}: missing field `{what}`"))
        };
        let parse_error = |what: &str, value: &str| {
            format!("{name}, line {line}: invalid `{what}` value {value:?}")
        };

        let time = field(time_column, COLUMNS[1])?;
        let time: u64 = time
            .parse()
            .with_context(|| parse_error(COLUMNS[1], time))?;
        let time16 = field(time16_column, COLUMNS[2])?;
        let _: u16 = time16
            .parse()
            .with_context(|| parse_error(COLUMNS[2], time16))?;
        let rssi = field(rssi_column, COLUMNS[3])?;
        let rssi: i32 = rssi
            .parse()
            .with_context(|| parse_error(COLUMNS[3], rssi))?;
        hellos.push(ScoringInput::new(NtpSeconds(time), rssi));
    }
    if hellos.is_empty() {
        bail!("{name}: no HELLO rows (a contact needs at least one)");
    }
    Ok(hellos)
}
