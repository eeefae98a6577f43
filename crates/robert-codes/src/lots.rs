//! Laboratory lots of long codes (codes-and-push.md §2.2–§2.4).
//!
//! A run tops up the next `days_ahead` Paris civil days (today included) to
//! the scheduled daily volume, in CSV files of at most `max_batch_size`
//! codes. Batches with the same index and size on consecutive days are merged
//! into one lot, as the reference did: one lot = one `.tgz` archive holding
//! one CSV per day, plus a `.sha256` file.
//!
//! A lot's codes are committed only after its files are written (and
//! uploaded, when SFTP is configured): a failure leaves no orphan codes, and
//! the next run adds exactly what is missing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike as _, Days, Duration, NaiveDate, Utc};
use chrono_tz::Europe::Paris;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::code::{self, CodeKind, RngFailure};
use crate::config::ScheduleEntry;
use crate::service::CodesService;
use crate::sftp::{self, SftpError};
use crate::store::{NewCode, NewLot, PurgeReport, StoreError};

/// The CSV header line, exactly as the reference wrote it (comma + space, unquoted).
pub const CSV_HEADER: &str = "code_pour_qr, code_brut, validite_debut, validite_fin\n";
/// Archive suffix (`<yyyyMMddHHmmss>` + this).
pub const ARCHIVE_SUFFIX: &str = "_stopcovid_qrcode_batch.tgz";
/// Digest suffix.
pub const DIGEST_SUFFIX: &str = "_stopcovid_qrcode_batch.sha256";
/// Job lock name (the reference's ShedLock name).
pub const LOCK_NAME: &str = "dailyProductionCodeScheduler";

/// Lot failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LotError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The upload failed; the lot's codes were not committed.
    #[error("upload failed, lot not committed")]
    Sftp(#[from] SftpError),
    /// The OS random generator failed.
    #[error(transparent)]
    Rng(#[from] RngFailure),
    /// Another run holds the job lock.
    #[error("another lot job is running (lock {LOCK_NAME})")]
    Locked,
}

/// One planned lot: the same number of codes for each of consecutive days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLot {
    /// Consecutive validity days, one CSV each.
    pub days: Vec<NaiveDate>,
    /// Codes per day.
    pub codes_per_day: u64,
}

/// The daily volume that applies to `day`: the latest entry starting on or before it.
pub fn target_volume(schedule: &[ScheduleEntry], day: NaiveDate) -> u64 {
    schedule
        .iter()
        .filter(|e| e.start_date <= day)
        .max_by_key(|e| e.start_date)
        .map_or(0, |e| e.daily_volume)
}

/// Plans the lots needed so that each of `days` reaches its scheduled volume,
/// given `existing[i]` codes already stored for `days[i]`.
pub fn plan(
    days: &[NaiveDate],
    existing: &[u64],
    schedule: &[ScheduleEntry],
    max_batch: u64,
) -> Vec<PlannedLot> {
    let max_batch = max_batch.max(1);
    let mut done: Vec<(usize, PlannedLot)> = Vec::new();
    // Open lots by batch index.
    let mut open: BTreeMap<usize, PlannedLot> = BTreeMap::new();
    for (i, day) in days.iter().enumerate() {
        let missing =
            target_volume(schedule, *day).saturating_sub(existing.get(i).copied().unwrap_or(0));
        let mut sizes = vec![max_batch; usize::try_from(missing / max_batch).unwrap_or(usize::MAX)];
        if missing % max_batch > 0 {
            sizes.push(missing % max_batch);
        }
        let mut still_open = BTreeMap::new();
        for (bi, size) in sizes.into_iter().enumerate() {
            let continues = open.get(&bi).is_some_and(|l| {
                l.codes_per_day == size && l.days.last().and_then(|d| d.succ_opt()) == Some(*day)
            });
            if continues {
                if let Some(mut l) = open.remove(&bi) {
                    l.days.push(*day);
                    still_open.insert(bi, l);
                }
            } else {
                if let Some(l) = open.remove(&bi) {
                    done.push((bi, l));
                }
                still_open.insert(
                    bi,
                    PlannedLot {
                        days: vec![*day],
                        codes_per_day: size,
                    },
                );
            }
        }
        for (bi, l) in std::mem::take(&mut open) {
            done.push((bi, l));
        }
        open = still_open;
    }
    done.extend(open);
    done.sort_by_key(|(bi, l)| (l.days[0], *bi));
    done.into_iter().map(|(_, l)| l).collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Fills a QR URL template: `{code}`/`{type}` placeholders, or the
/// reference's printf style where the first `%s` is the code and the second the type.
pub fn fill_url_template(template: &str, code: &str, type_code: &str) -> String {
    if template.contains("{code}") {
        return template
            .replace("{code}", &url_encode(code))
            .replace("{type}", &url_encode(type_code));
    }
    let mut out = String::new();
    let mut args = [url_encode(code), url_encode(type_code)].into_iter();
    let mut rest = template;
    while let Some(i) = rest.find("%s") {
        out.push_str(&rest[..i]);
        out.push_str(&args.next().unwrap_or_default());
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    out
}

/// `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` in UTC, as in the reference CSV.
pub fn csv_instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// CSV file name `<sequence><yyMMdd>.csv` (`%d%s.csv`).
pub fn csv_name(sequence: i64, day: NaiveDate) -> String {
    format!("{sequence}{}.csv", day.format("%y%m%d"))
}

/// The first sequence number for a validity day: (yy + 1) mod 100 (22 for 2021).
pub fn initial_sequence(day: NaiveDate) -> i64 {
    i64::from((day.year().rem_euclid(100) + 1) % 100)
}

/// Writes one CSV document for `codes` valid on `validity`.
pub fn write_csv(
    out: &mut Vec<u8>,
    codes: &[Zeroizing<String>],
    validity: code::Validity,
    url_template: &str,
) {
    out.extend_from_slice(CSV_HEADER.as_bytes());
    let from = csv_instant(validity.from);
    let until = csv_instant(validity.until);
    for c in codes {
        let url = Zeroizing::new(fill_url_template(url_template, c, "1"));
        for (i, v) in [url.as_str(), c.as_str(), &from, &until].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(v.replace('"', "\"\"").as_bytes());
            out.push(b'"');
        }
        out.push(b'\n');
    }
}

/// A lot written (and committed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLot {
    /// Database id.
    pub lot_id: i64,
    /// Archive path in the output directory.
    pub archive: PathBuf,
    /// Digest path.
    pub digest: PathBuf,
    /// CSV names inside the archive.
    pub csv_names: Vec<String>,
    /// Days covered.
    pub days: Vec<NaiveDate>,
    /// Codes per day.
    pub codes_per_day: u64,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct LotRunReport {
    /// Lots written.
    pub lots: Vec<WrittenLot>,
    /// Purge results.
    pub purge: PurgeReport,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LotError + '_ {
    move |source| LotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn paris_stamp(t: DateTime<Utc>) -> String {
    t.with_timezone(&Paris).format("%Y%m%d%H%M%S").to_string()
}

impl CodesService {
    /// The daily job: takes the job lock, tops up lots, then purges.
    pub async fn run_lot_job(&self) -> Result<LotRunReport, LotError> {
        let holder = crate::service::random_token()?;
        let now = self.now().timestamp();
        let store = self.store().clone();
        if !store
            .try_lock(LOCK_NAME, &holder, now, now + 100 * 60)
            .await?
        {
            return Err(LotError::Locked);
        }
        let result = async {
            let lots = self.top_up_lots().await?;
            let purge = self.purge().await?;
            Ok::<_, LotError>(LotRunReport { lots, purge })
        }
        .await;
        if let Err(e) = store.unlock(LOCK_NAME, &holder).await {
            tracing::error!(error = %e, "cannot release the lot job lock");
        }
        result
    }

    /// Writes the lots missing for the next `days_ahead` days. Stops at the
    /// first failing lot (the next run resumes).
    pub async fn top_up_lots(&self) -> Result<Vec<WrittenLot>, LotError> {
        let cfg = &self.config().lots;
        let today = code::paris_date(self.now());
        let mut days = Vec::new();
        let mut existing = Vec::new();
        for i in 0..cfg.days_ahead {
            let Some(day) = today.checked_add_days(Days::new(u64::from(i))) else {
                break;
            };
            existing.push(
                self.store()
                    .count_long_codes(code::paris_midnight(day).timestamp())
                    .await?,
            );
            days.push(day);
        }
        let planned = plan(&days, &existing, &cfg.schedule, cfg.max_batch_size);
        let mut written = Vec::new();
        let mut last_stamp: Option<DateTime<Utc>> = None;
        for lot in planned {
            match self.write_lot(&lot, &mut last_stamp).await {
                Ok(w) => {
                    self.metrics()
                        .inc("robert_codes_lots_total", &[("outcome", "written")]);
                    tracing::info!(
                        archive = %w.archive.display(),
                        days = w.days.len(),
                        codes_per_day = w.codes_per_day,
                        "lot written"
                    );
                    written.push(w);
                }
                Err(e) => {
                    self.metrics()
                        .inc("robert_codes_lots_total", &[("outcome", "failed")]);
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    async fn write_lot(
        &self,
        lot: &PlannedLot,
        last_stamp: &mut Option<DateTime<Utc>>,
    ) -> Result<WrittenLot, LotError> {
        let cfg = &self.config().lots;
        let validity_days = self.config().codes.long_validity_days;
        let now = self.now();
        let peppers = &self.inner.peppers;
        let mut rng = rand::rngs::SysRng;

        // File names: a stamp unique in this run and in the output directory.
        create_private_dir(&cfg.output_dir)?;
        let mut at = match last_stamp {
            Some(prev) if *prev >= now => *prev + Duration::seconds(1),
            _ => now,
        };
        while cfg
            .output_dir
            .join(format!("{}{ARCHIVE_SUFFIX}", paris_stamp(at)))
            .exists()
        {
            at += Duration::seconds(1);
        }
        *last_stamp = Some(at);
        let stamp = paris_stamp(at);
        let archive_name = format!("{stamp}{ARCHIVE_SUFFIX}");
        let digest_name = format!("{stamp}{DIGEST_SUFFIX}");

        // Codes and CSVs.
        let mut rows = Vec::new();
        let mut csv_names = Vec::new();
        let mut tgz = Zeroizing::new(Vec::new());
        {
            let gz = flate2::write::GzEncoder::new(&mut *tgz, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            for day in &lot.days {
                let validity = code::long_validity(*day, validity_days);
                let mut codes = Vec::with_capacity(usize::try_from(lot.codes_per_day).unwrap_or(0));
                for _ in 0..lot.codes_per_day {
                    let c = code::random_uuid_v4(&mut rng)?;
                    rows.push(NewCode {
                        hash: peppers.hash_new(CodeKind::Long, &c),
                        kind: CodeKind::Long,
                        available_from: validity.from.timestamp(),
                        valid_until: validity.until.timestamp(),
                        generated_at: now.timestamp(),
                    });
                    codes.push(c);
                }
                let mut csv = Zeroizing::new(Vec::new());
                write_csv(&mut csv, &codes, validity, &cfg.qr_url_template);
                let seq = self
                    .store()
                    .next_file_sequence(*day, initial_sequence(*day))
                    .await?;
                let name = csv_name(seq, *day);
                let mut header = tar::Header::new_ustar();
                header.set_size(u64::try_from(csv.len()).unwrap_or(u64::MAX));
                header.set_mode(0o644);
                header.set_mtime(u64::try_from(now.timestamp()).unwrap_or(0));
                header.set_cksum();
                tar.append_data(&mut header, &name, csv.as_slice())
                    .map_err(io_err(Path::new(&name)))?;
                csv_names.push(name);
            }
            let gz = tar.into_inner().map_err(io_err(Path::new(&archive_name)))?;
            gz.finish().map_err(io_err(Path::new(&archive_name)))?;
        }
        let digest = hex::encode(Sha256::digest(tgz.as_slice()));

        // Write to a staging directory, then upload, then publish, then commit.
        let staging = cfg.output_dir.join(".staging");
        create_private_dir(&staging)?;
        let staged_archive = staging.join(&archive_name);
        let staged_digest = staging.join(&digest_name);
        let cleanup = |paths: &[&Path]| {
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
        };
        // The archive holds live codes: readable by the service's user only.
        let write = |path: &Path, data: &[u8]| -> Result<(), LotError> {
            let mut f = private_file(path).map_err(io_err(path))?;
            f.write_all(data).map_err(io_err(path))?;
            f.sync_all().map_err(io_err(path))
        };
        if let Err(e) =
            write(&staged_archive, &tgz).and_then(|()| write(&staged_digest, digest.as_bytes()))
        {
            cleanup(&[&staged_archive, &staged_digest]);
            return Err(e);
        }
        if let Some(sftp_cfg) = &cfg.sftp
            && let Err(e) = sftp::upload(
                sftp_cfg,
                &[(&archive_name, &tgz), (&digest_name, digest.as_bytes())],
            )
            .await
        {
            cleanup(&[&staged_archive, &staged_digest]);
            return Err(e.into());
        }
        let archive = cfg.output_dir.join(&archive_name);
        let digest_path = cfg.output_dir.join(&digest_name);
        let publish = std::fs::rename(&staged_archive, &archive)
            .and_then(|()| std::fs::rename(&staged_digest, &digest_path));
        if let Err(e) = publish {
            cleanup(&[&staged_archive, &staged_digest, &archive, &digest_path]);
            return Err(io_err(&archive)(e));
        }
        let new_lot = NewLot {
            created_at: now.timestamp(),
            first_day: lot.days[0],
            last_day: lot.days[lot.days.len() - 1],
            codes_per_day: lot.codes_per_day,
            archive_name: archive_name.clone(),
        };
        let lot_id = match self.store().insert_lot(&new_lot, &rows).await {
            Ok(id) => id,
            Err(e) => {
                cleanup(&[&archive, &digest_path]);
                if cfg.sftp.is_some() {
                    tracing::error!(
                        archive = %archive_name,
                        "lot uploaded but its codes could not be committed: the recipient must discard it"
                    );
                }
                return Err(e.into());
            }
        };
        self.audit(
            "lot_job",
            "lot_written",
            &format!(
                "{archive_name}: {} day(s) x {}",
                lot.days.len(),
                lot.codes_per_day
            ),
        )
        .await;
        Ok(WrittenLot {
            lot_id,
            archive,
            digest: digest_path,
            csv_names,
            days: lot.days.clone(),
            codes_per_day: lot.codes_per_day,
        })
    }
}

/// The next instant strictly after `now` at time of day `at` (UTC).
pub fn next_run(now: DateTime<Utc>, at: chrono::NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

impl CodesService {
    /// Spawns the daily job: at `lots.run_at_utc` every day, the lot job
    /// (when `lots.scheduled` and a schedule is configured) or else the purge.
    /// Several instances may run it: the database lock lets one work at a time.
    pub fn spawn_daily_jobs(&self) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            loop {
                let now = svc.now();
                let at = crate::config::parse_hh_mm(&svc.config().lots.run_at_utc)
                    .unwrap_or(chrono::NaiveTime::MIN);
                let wait = (next_run(now, at) - now)
                    .to_std()
                    .unwrap_or(std::time::Duration::from_secs(60));
                tokio::time::sleep(wait).await;
                let lots = &svc.config().lots;
                if lots.scheduled && !lots.schedule.is_empty() {
                    match svc.run_lot_job().await {
                        Ok(r) => tracing::info!(lots = r.lots.len(), "daily lot job done"),
                        Err(e) => tracing::error!(error = %e, "daily lot job failed"),
                    }
                } else if let Err(e) = svc.purge().await {
                    tracing::error!(error = %e, "daily purge failed");
                }
            }
        })
    }
}

/// Creates `path` (and missing parents) with mode 0700, as lots hold live
/// codes. An existing directory keeps its mode, with a warning when others
/// can read it.
fn create_private_dir(path: &Path) -> Result<(), LotError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io_err(path))?;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                dir = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the lots directory is readable by other users: lots hold live codes (chmod 700 it)"
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(path).map_err(io_err(path))
    }
}

/// Creates (truncates) `path` with mode 0600.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn days(from: &str, n: u64) -> Vec<NaiveDate> {
        (0..n)
            .map(|i| d(from).checked_add_days(Days::new(i)).unwrap())
            .collect()
    }

    fn sched(v: &[(&str, u64)]) -> Vec<ScheduleEntry> {
        v.iter()
            .map(|(s, n)| ScheduleEntry {
                start_date: d(s),
                daily_volume: *n,
            })
            .collect()
    }

    #[test]
    fn first_run_merges_consecutive_days() {
        let ds = days("2022-01-01", 11);
        let p = plan(&ds, &[0; 11], &sched(&[("2021-09-01", 100_000)]), 40_000);
        // Per day: 40k, 40k, 20k → three lots covering all 11 days.
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].days, ds);
        assert_eq!(p[0].codes_per_day, 40_000);
        assert_eq!(p[1].codes_per_day, 40_000);
        assert_eq!(p[2].codes_per_day, 20_000);
    }

    #[test]
    fn steady_state_only_tops_up_the_last_day() {
        let ds = days("2022-01-01", 11);
        let mut existing = [100_000; 11];
        existing[10] = 0;
        let p = plan(&ds, &existing, &sched(&[("2021-09-01", 100_000)]), 40_000);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|l| l.days == vec![ds[10]]));
        assert_eq!(p.iter().map(|l| l.codes_per_day).sum::<u64>(), 100_000);
    }

    #[test]
    fn volume_increase_and_partial_days() {
        let ds = days("2022-01-01", 11);
        let s = sched(&[("2021-09-01", 300), ("2022-01-05", 800)]);
        let mut existing = [300; 11];
        existing[2] = 100; // partial run
        let p = plan(&ds, &existing, &s, 1000);
        // Day 3 needs 200; days 5..=11 need 500 each (merged).
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].days.clone(), p[0].codes_per_day), (vec![ds[2]], 200));
        assert_eq!(p[1].days, ds[4..].to_vec());
        assert_eq!(p[1].codes_per_day, 500);
        // Nothing missing: nothing planned.
        let full: Vec<u64> = ds.iter().map(|x| target_volume(&s, *x)).collect();
        assert!(plan(&ds, &full, &s, 1000).is_empty());
    }

    #[test]
    fn csv_format_is_exact() {
        let v = code::long_validity(d("2021-08-26"), 7);
        let mut out = Vec::new();
        let codes = vec![Zeroizing::new(
            "3fa85f64-5717-4562-b3fc-2c963f66afa6".to_owned(),
        )];
        write_csv(
            &mut out,
            &codes,
            v,
            "https://app.stopcovid.gouv.fr?code=%s&type=%s",
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "code_pour_qr, code_brut, validite_debut, validite_fin\n\
             \"https://app.stopcovid.gouv.fr?code=3fa85f64-5717-4562-b3fc-2c963f66afa6&type=1\",\
             \"3fa85f64-5717-4562-b3fc-2c963f66afa6\",\
             \"2021-08-25T22:00:00.000Z\",\"2021-09-02T21:59:00.000Z\"\n"
        );
    }

    #[test]
    fn next_run_is_strictly_later() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let two = chrono::NaiveTime::from_hms_opt(2, 0, 0).unwrap();
        assert_eq!(
            next_run(t("2026-01-10T01:59:59Z"), two),
            t("2026-01-10T02:00:00Z")
        );
        assert_eq!(
            next_run(t("2026-01-10T02:00:00Z"), two),
            t("2026-01-11T02:00:00Z")
        );
        assert_eq!(
            next_run(t("2026-01-10T23:00:00Z"), two),
            t("2026-01-11T02:00:00Z")
        );
    }

    #[test]
    fn names_and_templates() {
        assert_eq!(csv_name(22, d("2021-08-25")), "22210825.csv");
        assert_eq!(initial_sequence(d("2021-08-25")), 22);
        assert_eq!(initial_sequence(d("2099-01-01")), 0);
        assert_eq!(
            fill_url_template("https://x/app/code/{code}", "AB C", "1"),
            "https://x/app/code/AB%20C"
        );
        assert_eq!(fill_url_template("a%sb%sc%s", "x", "1"), "axb1c");
        let t = DateTime::parse_from_rfc3339("2021-08-25T22:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(paris_stamp(t), "20210826000000");
    }
}
