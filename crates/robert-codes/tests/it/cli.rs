//! `robert codes …` through the library's `cli::run`: doctors, issue, QR
//! files, and the PDF letter rendered with pdftoppm and decoded back.

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::Parser;
use robert_codes::cli::{self, CodesArgs};

use crate::support::*;

#[derive(Parser)]
struct Top {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    Codes(CodesArgs),
}

async fn run(args: &[&str]) -> (ExitCode, String) {
    let mut argv = vec!["robert", "codes"];
    argv.extend_from_slice(args);
    let Cmd::Codes(a) = Top::try_parse_from(argv).unwrap().cmd;
    let mut out = Vec::new();
    let code = cli::run(a, &mut out).await.unwrap();
    (code, String::from_utf8(out).unwrap())
}

fn write_config(dir: &Path) -> String {
    let db = dir.join("codes.db");
    let text = format!(
        "database_url = \"sqlite://{}?mode=rwc\"\n[[peppers]]\nid = \"a\"\nsecret = \"{PEPPER_A}\"\n",
        db.display()
    );
    let path = dir.join("codes.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn decode_qr(png: &Path) -> String {
    let img = image::open(png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in {}", png.display());
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn doctors_issue_and_qr_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let (code, out) = run(&["-c", &cfg, "migrate"]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("sqlite"));
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "a long enough password\n").unwrap();
    let pw = pw.display().to_string();
    let (_, out) = run(&[
        "-c",
        &cfg,
        "add-doctor",
        "dr.x",
        "--daily-quota",
        "5",
        "--password-file",
        &pw,
    ])
    .await;
    assert!(out.contains("doctor dr.x created"), "{out}");
    let (code, _) = run(&["-c", &cfg, "disable-doctor", "dr.x"]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    let (code, _) = run(&["-c", &cfg, "disable-doctor", "nobody"]).await;
    assert_eq!(code, ExitCode::from(1));
    let (_, out) = run(&["-c", &cfg, "issue", "short"]).await;
    let issued = out.lines().next().unwrap().to_owned();
    assert_eq!(issued.len(), 6);
    // The QR code of the issued code, as PNG then SVG (chosen by extension).
    let [png, svg] = ["qr.png", "qr.svg"].map(|name| dir.path().join(name));
    for out in [&png, &svg] {
        let out = out.display().to_string();
        run(&["-c", &cfg, "qr", "--code", &issued, "-o", &out]).await;
    }
    assert_eq!(
        decode_qr(&png),
        format!("https://bonjour.tousanticovid.gouv.fr/app/code/{issued}")
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let (_, out) = run(&["new-pepper"]).await;
    assert_eq!(base64_len(out.trim()), 32);
    let (_, out) = run(&["new-api-key"]).await;
    assert!(out.contains("key_sha256"));
    let (_, out) = run(&["-c", &cfg, "kpi", "2020-01-01", "2020-01-02"]).await;
    assert!(out.contains("nbShortCodesGenerated"));
    let (_, out) = run(&["-c", &cfg, "purge"]).await;
    assert!(out.starts_with("purged"));
}

/// The PDF's first page at 150 dpi, as `prefix`.png (`pdftoppm`).
fn first_page_png(pdf: &Path, prefix: &Path) -> std::path::PathBuf {
    let st = Command::new("pdftoppm")
        .args(["-r", "150", "-png", "-singlefile"])
        .arg(pdf)
        .arg(prefix)
        .status()
        .unwrap();
    assert!(st.success(), "pdftoppm failed");
    prefix.with_extension("png")
}

fn base64_len(s: &str) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap()
        .len()
}

#[tokio::test]
async fn letter_pdf_renders_and_its_qr_decodes_to_the_code() {
    if !Path::new("/usr/bin/pdftoppm").exists() {
        skip_or_fail(
            "ROBERT_TEST_REQUIRE_TOOLS",
            "skipped: pdftoppm not installed (apt-get install poppler-utils)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    for (lang, phrase) in [
        (
            "fr",
            "Ces éléments ne contiennent aucune donnée vous concernant.",
        ),
        ("en", "These items contain no data about you."),
    ] {
        let pdf = dir.path().join(format!("letter-{lang}.pdf"));
        let (code, _) = run(&[
            "-c",
            &cfg,
            "letter",
            "--issue",
            "short",
            "--lang",
            lang,
            "-o",
            &pdf.display().to_string(),
        ])
        .await;
        assert_eq!(code, ExitCode::SUCCESS);
        let png = first_page_png(&pdf, &dir.path().join(format!("page-{lang}")));
        let url = decode_qr(&png);
        let code = url.rsplit('/').next().unwrap().to_owned();
        assert!(
            url.starts_with("https://bonjour.tousanticovid.gouv.fr/app/code/"),
            "{url}"
        );
        assert_eq!(code.len(), 6);
        // The same code is printed under the QR code, with the FAQ's wording.
        if Path::new("/usr/bin/pdftotext").exists() {
            let txt = Command::new("pdftotext")
                .arg(&pdf)
                .arg("-")
                .output()
                .unwrap();
            let txt = String::from_utf8(txt.stdout).unwrap();
            let flat = txt.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&code), "{flat}");
            assert!(flat.contains(phrase), "{flat}");
        }
        // And it is a live code: valid once.
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("codes.db").display()
        );
        let store = std::sync::Arc::new(robert_codes::SqlStore::open(&db, 2).await.unwrap());
        let svc = robert_codes::CodesService::new(
            robert_codes::Config::load(Path::new(&cfg)).unwrap(),
            store,
            std::sync::Arc::new(robert_codes::SystemClock),
        )
        .unwrap();
        assert!(svc.verify(&code).await.unwrap().valid);
        assert!(!svc.verify(&code).await.unwrap().valid);
    }
    // Keep one rendering for people to look at.
    let target = target_dir();
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::copy(
        dir.path().join("page-fr.png"),
        target.join("robert-codes-letter.png"),
    );
}

#[tokio::test]
async fn letter_with_a_long_code() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("l.pdf");
    let code = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    let (c, _) = run(&[
        "letter",
        "--code",
        code,
        "--valid-until",
        "02/09/2021 à 23:59",
        "-o",
        &pdf.display().to_string(),
    ])
    .await;
    assert_eq!(c, ExitCode::SUCCESS);
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-1.4"));
    assert!(bytes.windows(code.len()).any(|w| w == code.as_bytes()));
    if Path::new("/usr/bin/pdftoppm").exists() {
        let png = first_page_png(&pdf, &dir.path().join("p"));
        assert!(decode_qr(&png).ends_with(code));
    }
}

/// `robert codes lot` without a `[[lots.schedule]]` says why nothing was
/// written and how to fix it, instead of a bare "0 lot(s)".
#[tokio::test]
async fn lot_without_schedule_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}[lots]\noutput_dir = \"{}\"\n",
            dir.path().join("lots").display()
        ),
    )
    .unwrap();
    assert_eq!(run(&["-c", &cfg, "migrate"]).await.0, ExitCode::SUCCESS);
    let (code, out) = run(&["-c", &cfg, "lot"]).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("no [[lots.schedule]]"), "{out}");
    assert!(out.contains("daily_volume = 1000"), "{out}");
    // A schedule that starts after the covered days.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("{text}[[lots.schedule]]\nstart_date = 2999-01-01\ndaily_volume = 10\n"),
    )
    .unwrap();
    let (_, out) = run(&["-c", &cfg, "lot"]).await;
    assert!(out.contains("first volume starts on 2999-01-01"), "{out}");
}

/// `add-doctor` checks the configuration before asking for a password: with
/// no configuration (no pepper) it fails on that, without touching the
/// password source.
#[tokio::test]
async fn add_doctor_checks_configuration_before_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let argv = [
        "robert",
        "codes",
        "--database-url",
        &db,
        "add-doctor",
        "dr",
        "--password-file",
        "/nonexistent/password",
    ];
    let Cmd::Codes(a) = Top::try_parse_from(argv).unwrap().cmd;
    let mut out = Vec::new();
    let err = cli::run(a, &mut out).await.unwrap_err().to_string();
    assert!(err.contains("pepper"), "{err}");
    assert!(
        !err.contains("password"),
        "asked for the password first: {err}"
    );
}

/// A letter for a long code from a lot prints the code's validity date,
/// looked up in the database (without consuming the code).
#[tokio::test]
async fn long_code_letter_prints_its_validity() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let lots = dir.path().join("lots");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}[lots]\noutput_dir = \"{}\"\ndays_ahead = 1\n[[lots.schedule]]\nstart_date = 2020-01-01\ndaily_volume = 1\n",
            lots.display()
        ),
    )
    .unwrap();
    assert_eq!(run(&["-c", &cfg, "migrate"]).await.0, ExitCode::SUCCESS);
    let (_, out) = run(&["-c", &cfg, "lot"]).await;
    assert!(out.contains("1 lot(s) written"), "{out}");
    let archive = std::fs::read_dir(&lots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".tgz"))
        .unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive).unwrap(),
    ));
    let mut csv = String::new();
    std::io::Read::read_to_string(
        &mut tar.entries().unwrap().next().unwrap().unwrap(),
        &mut csv,
    )
    .unwrap();
    let row = csv.lines().nth(1).unwrap();
    let code = row.split(',').nth(1).unwrap().trim_matches('"').to_owned();
    assert_eq!(code.len(), 36);
    let pdf = dir.path().join("l.pdf");
    let (c, out) = run(&[
        "-c",
        &cfg,
        "letter",
        "--code",
        &code,
        "-o",
        &pdf.display().to_string(),
    ])
    .await;
    assert_eq!(c, ExitCode::SUCCESS, "{out}");
    let bytes = std::fs::read(&pdf).unwrap();
    let has = |s: &[u8]| bytes.windows(s.len()).any(|w| w == s);
    assert!(has(b"valable jusqu"), "no validity line");
    assert!(has(b"23:59"), "long codes end at 23:59 Paris");
    // Unknown code: a note, no validity line.
    let (_, out) = run(&[
        "-c",
        &cfg,
        "letter",
        "--code",
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "-o",
        &pdf.display().to_string(),
    ])
    .await;
    assert!(out.contains("not in the database"), "{out}");
    // The lookup did not consume the code.
    let svc = cli::build_service(robert_codes::Config::load(Path::new(&cfg)).unwrap())
        .await
        .unwrap();
    assert!(svc.verify(&code).await.unwrap().valid);
}

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `[log] format = "json"`: one JSON object per line, no colour codes; text
/// logs carry no colour codes when not on a terminal.
#[test]
fn json_logs_are_one_object_per_line() {
    let cfg: robert_codes::Config =
        toml::from_str("[log]\nformat = \"json\"\nfilter = \"info\"\n").unwrap();
    let buf = Captured::default();
    let w = buf.clone();
    tracing::subscriber::with_default(
        cli::log_subscriber(&cfg.log, move || w.clone(), true),
        || {
            tracing::info!(days = 3, "lot written");
        },
    );
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().next().expect("one line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["message"], "lot written");
    assert_eq!(v["fields"]["days"], 3);
    assert!(!text.contains('\u{1b}'));
    let text_cfg = robert_codes::config::LogConfig::default();
    let buf = Captured::default();
    let w = buf.clone();
    tracing::subscriber::with_default(
        cli::log_subscriber(&text_cfg, move || w.clone(), false),
        || {
            tracing::warn!("plain");
        },
    );
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("plain") && !text.contains('\u{1b}'),
        "{text:?}"
    );
}
