//! Laboratory lots: planning, export format, idempotence, SFTP, purge.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use robert_codes::config::{ScheduleEntry, SftpConfig};
use robert_codes::lots::{CSV_HEADER, LotError};
use robert_codes::sftp::SftpError;
use robert_codes::{CodeStore as _, CodesService};
use sha2::Digest as _;

use crate::both_backends;
use crate::support::*;

fn lot_config(out: &Path, volume: u64) -> robert_codes::Config {
    let mut cfg = config();
    cfg.lots.output_dir = out.to_path_buf();
    cfg.lots.days_ahead = 3;
    cfg.lots.max_batch_size = 4;
    cfg.lots.schedule = vec![ScheduleEntry {
        start_date: chrono::NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
        daily_volume: volume,
    }];
    cfg
}

/// Reads an archive: (entry name, content) in order.
fn read_tgz(path: &Path) -> Vec<(String, String)> {
    let f = std::fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            (name, s)
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn codes_of(csv: &str) -> Vec<String> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().trim_matches('"').to_owned())
        .collect()
}

// The scheduled job (`spawn_daily_jobs`, what `robert codes serve` runs):
// nothing before `run_at_utc`, the lots at that time, and no duplicate lots
// from later turns of the loop. The service clock stands 6 s before 10:00;
// the wait is real.
both_backends!(scheduled_daily_job_writes_lots_at_its_time, |db| {
    let out = tempfile::tempdir().unwrap();
    let clock = manual_at(utc("2026-03-28T09:59:54Z"));
    let mut cfg = lot_config(out.path(), 6);
    cfg.lots.scheduled = true;
    cfg.lots.run_at_utc = "10:00".into();
    let svc = service_with(&db, cfg, &clock);
    let job = svc.spawn_daily_jobs();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(files_in(out.path()).is_empty(), "ran before its time");
    let mut names = Vec::new();
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        names = files_in(out.path());
        if names.len() >= 4 {
            break;
        }
    }
    // 6 codes a day in lots of at most 4: two lots, each .tgz + .sha256.
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".tgz")).count(), 2);
    // Later turns (the loop may run once more before the clock moves on;
    // then tomorrow) find the days topped up: no new lots.
    set_manual(&clock, utc("2026-03-28T10:00:05Z"));
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert_eq!(files_in(out.path()).len(), 4);
    job.abort();
    let _ = job.await;
});

both_backends!(lot_job_writes_reference_format_and_is_idempotent, |db| {
    let out = tempfile::tempdir().unwrap();
    // 2026-03-28 10:00 UTC: days 28, 29 (DST change), 30 of March.
    let clock = manual_at(utc("2026-03-28T10:00:00Z"));
    let svc = service_with(&db, lot_config(out.path(), 6), &clock);
    let report = svc.run_lot_job().await.unwrap();
    // 6 per day in batches of 4: a 4-code lot and a 2-code lot, each over 3 days.
    assert_eq!(report.lots.len(), 2);
    assert_eq!(report.lots[0].codes_per_day, 4);
    assert_eq!(report.lots[1].codes_per_day, 2);
    let names = files_in(out.path());
    assert_eq!(
        names,
        vec![
            "20260328110000_stopcovid_qrcode_batch.sha256",
            "20260328110000_stopcovid_qrcode_batch.tgz",
            "20260328110001_stopcovid_qrcode_batch.sha256",
            "20260328110001_stopcovid_qrcode_batch.tgz",
        ]
    );
    let tgz = out.path().join(&names[1]);
    let digest = std::fs::read_to_string(out.path().join(&names[0])).unwrap();
    assert_eq!(
        digest,
        hex::encode(sha2::Sha256::digest(std::fs::read(&tgz).unwrap()))
    );
    assert_eq!(digest.len(), 64);
    let first = read_tgz(&tgz);
    let second = read_tgz(&out.path().join(&names[3]));
    let entry_names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        entry_names,
        ["27260328.csv", "27260329.csv", "27260330.csv"]
    );
    let entry_names: Vec<&str> = second.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        entry_names,
        ["28260328.csv", "28260329.csv", "28260330.csv"]
    );
    // Exact lines: header, quoting, URL, Paris-midnight bounds across the DST change.
    let expected_bounds = [
        ("2026-03-27T23:00:00.000Z", "2026-04-04T21:59:00.000Z"),
        ("2026-03-28T23:00:00.000Z", "2026-04-05T21:59:00.000Z"),
        ("2026-03-29T22:00:00.000Z", "2026-04-06T21:59:00.000Z"),
    ];
    for (i, (_, csv)) in first.iter().enumerate() {
        assert!(csv.starts_with(CSV_HEADER));
        assert!(csv.ends_with('\n') && !csv.contains('\r'));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 5);
        for line in &lines[1..] {
            let code = line.split(',').nth(1).unwrap().trim_matches('"');
            assert_eq!(
                *line,
                format!(
                    "\"https://app.stopcovid.gouv.fr?code={code}&type=1\",\"{code}\",\"{}\",\"{}\"",
                    expected_bounds[i].0, expected_bounds[i].1
                )
            );
        }
    }
    for (day, _) in expected_bounds {
        let from = utc(&day.replace(".000Z", "Z"));
        assert_eq!(
            db.store.count_long_codes(from.timestamp()).await.unwrap(),
            6
        );
    }
    // Rerun: nothing missing, nothing written.
    assert!(svc.run_lot_job().await.unwrap().lots.is_empty());
    assert_eq!(files_in(out.path()).len(), 4);
    // Next day: only the new last day (03-31) is topped up.
    set_manual(&clock, utc("2026-03-29T10:00:00Z"));
    let report = svc.run_lot_job().await.unwrap();
    assert_eq!(report.lots.len(), 2);
    assert!(report.lots.iter().all(|l| l.days.len() == 1));
    assert_eq!(report.lots[0].csv_names, ["27260331.csv"]);
    // A volume increase tops up every day by the difference.
    let svc2 = service_with(&db, lot_config(out.path(), 7), &clock);
    let report = svc2.run_lot_job().await.unwrap();
    assert_eq!(report.lots.len(), 1);
    assert_eq!(report.lots[0].codes_per_day, 1);
    assert_eq!(report.lots[0].days.len(), 3);
    assert_eq!(report.lots[0].csv_names[0], "29260329.csv");

    // Codes from the archive verify on their day, once.
    let codes = codes_of(&first[2].1);
    set_manual(&clock, utc("2026-03-29T21:59:59Z")); // the day before 03-30 (Paris)
    assert!(!svc.verify(&codes[0]).await.unwrap().valid);
    set_manual(&clock, utc("2026-03-29T22:00:00Z"));
    assert!(svc.verify(&codes[0]).await.unwrap().valid);
    assert!(!svc.verify(&codes[0]).await.unwrap().valid);
    set_manual(&clock, utc("2026-04-06T21:59:00Z"));
    assert!(svc.verify(&codes[1]).await.unwrap().valid);
    set_manual(&clock, utc("2026-04-06T21:59:01Z"));
    assert!(!svc.verify(&codes[2]).await.unwrap().valid);
    // Purge two days after expiry: the unused codes of day 03-30 go.
    set_manual(&clock, utc("2026-04-08T22:00:00Z"));
    let r = svc.purge().await.unwrap();
    assert!(r.expired_unused >= 5, "{r:?}");
    assert_eq!(r.used, 2);
});

both_backends!(failed_upload_leaves_no_codes_and_no_files, |db| {
    let out = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (client_key, _) = keygen(keys.path(), "client");
    let (_, host_pub) = keygen(keys.path(), "host");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let mut cfg = lot_config(out.path(), 3);
    cfg.lots.sftp = Some(sftp_config(closed, &client_key, &host_pub, "/nonexistent"));
    let svc = service_with(&db, cfg, &clock);
    let err = svc.run_lot_job().await.unwrap_err();
    assert!(matches!(err, LotError::Sftp(_)), "{err}");
    assert!(files_in(out.path()).is_empty());
    assert!(files_in(&out.path().join(".staging")).is_empty());
    let midnight = utc("2026-01-09T23:00:00Z").timestamp();
    assert_eq!(db.store.count_long_codes(midnight).await.unwrap(), 0);
    // The lock was released: a later run may proceed (and fails the same way).
    assert!(matches!(svc.run_lot_job().await, Err(LotError::Sftp(_))));
});

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    keygen_type(dir, name, "ed25519")
}

/// An OpenSSH key pair of `kind` (`ed25519`, `ecdsa` = P-256).
fn keygen_type(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen (openssh-client) is needed");
    assert!(st.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

fn sftp_config(port: u16, key: &Path, host_pub: &str, remote: &str) -> SftpConfig {
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let text = format!(
        "host = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\nkey_file = \"{}\"\nhost_key = \"{host_pub}\"\nremote_dir = \"{remote}\"\ntimeout_seconds = 20\n",
        key.display()
    );
    toml::from_str(&text).unwrap()
}

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sshd` on a free loopback port with its own host key and an
/// authorized client key; `None` (with a message) when sshd is absent.
fn start_sshd(dir: &Path, host_key: &Path, authorized: &str) -> Option<Sshd> {
    start_sshd_with(dir, host_key, authorized, "Subsystem sftp internal-sftp\n")
}

/// [`start_sshd`] with `extra` sshd_config lines (which must include the
/// `Subsystem sftp` line).
fn start_sshd_with(dir: &Path, host_key: &Path, authorized: &str, extra: &str) -> Option<Sshd> {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.exists() {
        skip_or_fail(
            "ROBERT_TEST_REQUIRE_TOOLS",
            "skipped: /usr/sbin/sshd not installed (apt-get install openssh-server)",
        );
        return None;
    }
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let auth = dir.join("authorized_keys");
    std::fs::write(&auth, format!("{authorized}\n")).unwrap();
    let conf = dir.join("sshd_config");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n{extra}\
             LogLevel ERROR\n",
            host_key.display(),
            dir.join("sshd.pid").display(),
            auth.display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let d = Sshd { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(d);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("sshd did not start on port {port}");
}

#[tokio::test]
async fn sftp_upload_to_local_openssh_server() {
    let keys = tempfile::tempdir().unwrap();
    let (client_key, client_pub) = keygen(keys.path(), "client");
    let (host_key, host_pub) = keygen(keys.path(), "host");
    let Some(sshd) = start_sshd(keys.path(), &host_key, &client_pub) else {
        return;
    };
    let remote = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let db = sqlite().await;
    let clock = manual_at(utc("2026-10-24T10:00:00Z"));
    let mut cfg = lot_config(out.path(), 3);
    cfg.lots.sftp = Some(sftp_config(
        sshd.port,
        &client_key,
        &host_pub,
        &remote.path().display().to_string(),
    ));
    let svc: CodesService = service_with(&db, cfg.clone(), &clock);
    let report = svc.run_lot_job().await.unwrap();
    assert_eq!(report.lots.len(), 1);
    // Same files remotely and locally, no leftover .part file.
    let local = files_in(out.path());
    assert_eq!(files_in(remote.path()), local);
    for n in &local {
        assert_eq!(
            std::fs::read(remote.path().join(n)).unwrap(),
            std::fs::read(out.path().join(n)).unwrap()
        );
    }
    // A server presenting another host key is refused, and nothing is committed.
    let (_, other_pub) = keygen(keys.path(), "other");
    let mut bad = cfg.clone();
    bad.lots.sftp = Some(sftp_config(sshd.port, &client_key, &other_pub, "/tmp"));
    bad.lots.schedule[0].daily_volume = 5;
    let svc_bad = service_with(&db, bad, &clock);
    let err = svc_bad.run_lot_job().await.unwrap_err();
    assert!(
        matches!(err, LotError::Sftp(SftpError::HostKeyMismatch(_))),
        "{err:?}"
    );
    // An unknown client key is refused too.
    let (stranger, _) = keygen(keys.path(), "stranger");
    let mut bad = cfg;
    bad.lots.sftp = Some(sftp_config(
        sshd.port,
        &stranger,
        &host_pub,
        &remote.path().display().to_string(),
    ));
    bad.lots.schedule[0].daily_volume = 5;
    let svc_bad = service_with(&db, bad, &clock);
    let err = svc_bad.run_lot_job().await.unwrap_err();
    assert!(matches!(err, LotError::Sftp(SftpError::Auth(_))), "{err:?}");
    let midnight = utc("2026-10-23T22:00:00Z").timestamp();
    assert_eq!(db.store.count_long_codes(midnight).await.unwrap(), 3);
    assert_eq!(files_in(remote.path()).len(), 2);
    db.finish().await;
}

/// SI-DEP's server accepts what the reference's JSch client offered: key
/// exchange `ecdh-sha2-nistp256/384/521` only, ciphers `aes256-ctr` /
/// `aes256-cbc`, MAC `hmac-sha2-256`, host key `ecdsa-sha2-nistp256`
/// (codes-and-push.md §2.5). An sshd restricted to that list, and to each
/// of the three key exchanges alone, accepts our upload.
#[tokio::test]
async fn sftp_upload_to_sshd_limited_to_the_reference_algorithms() {
    let keys = tempfile::tempdir().unwrap();
    let (client_key, client_pub) = keygen(keys.path(), "client");
    let (host_key, host_pub) = keygen_type(keys.path(), "host", "ecdsa");
    assert!(host_pub.starts_with("ecdsa-sha2-nistp256 "), "{host_pub}");
    for kex in [
        "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
    ] {
        let extra = format!(
            "KexAlgorithms {kex}\nCiphers aes256-ctr,aes256-cbc\nMACs hmac-sha2-256\n\
             HostKeyAlgorithms ecdsa-sha2-nistp256\nSubsystem sftp internal-sftp\n"
        );
        let Some(sshd) = start_sshd_with(keys.path(), &host_key, &client_pub, &extra) else {
            return;
        };
        let remote = tempfile::tempdir().unwrap();
        let cfg = sftp_config(
            sshd.port,
            &client_key,
            &host_pub,
            &remote.path().display().to_string(),
        );
        robert_codes::sftp::upload(&cfg, &[("a.tgz", b"archive"), ("a.sha256", b"digest")])
            .await
            .unwrap_or_else(|e| panic!("kex {kex}: {e}"));
        assert_eq!(
            files_in(remote.path()),
            vec!["a.sha256", "a.tgz"],
            "kex {kex}"
        );
        assert_eq!(
            std::fs::read(remote.path().join("a.tgz")).unwrap(),
            b"archive"
        );
    }
}

/// A drop folder that forbids rename (`internal-sftp -P rename,posix-rename`,
/// a common write-only setting): the default `.part` + rename upload fails
/// with a message naming the option and leaves no stale `.part`; with
/// `atomic_rename = false` the files are written under their final names.
#[tokio::test]
async fn sftp_drop_folder_that_forbids_rename() {
    let keys = tempfile::tempdir().unwrap();
    let (client_key, client_pub) = keygen(keys.path(), "client");
    let (host_key, host_pub) = keygen(keys.path(), "host");
    let Some(sshd) = start_sshd_with(
        keys.path(),
        &host_key,
        &client_pub,
        "Subsystem sftp internal-sftp -P rename,posix-rename\n",
    ) else {
        return;
    };
    let remote = tempfile::tempdir().unwrap();
    let mut cfg = sftp_config(
        sshd.port,
        &client_key,
        &host_pub,
        &remote.path().display().to_string(),
    );
    assert!(cfg.atomic_rename, "rename is the default");
    let files: [(&str, &[u8]); 2] = [("b.tgz", b"archive"), ("b.sha256", b"digest")];
    let err = robert_codes::sftp::upload(&cfg, &files).await.unwrap_err();
    assert!(
        matches!(&err, SftpError::Transfer { file, .. } if file == "b.tgz"),
        "{err:?}"
    );
    assert!(err.to_string().contains("atomic_rename"), "{err}");
    assert!(
        files_in(remote.path()).is_empty(),
        "no stale .part: {:?}",
        files_in(remote.path())
    );
    cfg.atomic_rename = false;
    robert_codes::sftp::upload(&cfg, &files).await.unwrap();
    assert_eq!(files_in(remote.path()), vec!["b.sha256", "b.tgz"]);
    assert_eq!(
        std::fs::read(remote.path().join("b.sha256")).unwrap(),
        b"digest"
    );
}

#[test]
fn sftp_offers_the_nistp_key_exchanges() {
    let names: Vec<String> = robert_codes::sftp::kex_algorithms()
        .iter()
        .map(|n| AsRef::<str>::as_ref(n).to_owned())
        .collect();
    for n in [
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "curve25519-sha256",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    // The protocol markers stay last.
    assert!(
        names.last().unwrap().starts_with("kex-strict-")
            || names.last().unwrap().starts_with("ext-info-")
    );
}

/// Lot archives hold live codes: the directory is created 0700 and the
/// archive and digest 0600.
#[cfg(unix)]
#[tokio::test]
async fn lot_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("lots");
    let db = sqlite().await;
    let clock = manual_at(utc("2026-10-24T10:00:00Z"));
    let svc = service_with(&db, lot_config(&dir, 3), &clock);
    svc.run_lot_job().await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(".staging")), 0o700);
    let files = files_in(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        assert_eq!(mode(&dir.join(&f)), 0o600, "{f}");
    }
}
