//! End-to-end tests of `robert phone` that need no server: argument errors,
//! `show` on an empty directory, settings kept between commands, network
//! errors, `wipe`.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The reference's development registration key (any valid P-256 SPKI).
const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fAxfrLtG5tXyjomCOg9r1wNnr9len4m9sTflJUHDdkwubKyidTtFkVfNLrM91yuffdrpJZe9XOkof8P+zPGDg==";

fn robert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(args)
        .env_remove("ROBERT_PHONE_SERVER")
        .env_remove("ROBERT_PHONE_SERVER_KEY")
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("robert-phone-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn d(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Kills the server when the test ends, even on failure.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two phones in two directories against a real `robert serve` (captcha in
/// accept-any mode): register, exchange HELLOs through `hello` / `receive`,
/// status, show, a refused code, delete-history, unregister, wipe.
#[test]
fn two_phones_against_robert_serve() {
    let dir = scratch("serve");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("robert.toml");
    std::fs::write(&config, "[captcha]\nmode = \"accept-any\"\n").unwrap();
    let srv = dir.join("srv");
    let common = ["-c", d(&config), "--data-dir", d(&srv)];
    let out = robert(&[&["keys", "init"][..], &common].concat());
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&[&["keys", "show-public"][..], &common].concat());
    assert!(out.status.success(), "{:?}", text(&out));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let url = format!("http://{bind}");
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_robert"))
            .args([&["serve", "--bind", &bind][..], &common].concat())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(&bind).is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let (a, b) = (dir.join("a"), dir.join("b"));
    for (p, model) in [(&a, "SM-G973F"), (&b, "Pixel 4")] {
        let out = robert(&[
            "phone",
            "--dir",
            d(p),
            "--server",
            &url,
            "--server-public-key",
            &key,
            "--model",
            model,
            "register",
            "--captcha",
            "anything",
        ]);
        assert!(out.status.success(), "{:?}", text(&out));
        assert!(text(&out).0.starts_with("registered: "));
    }
    let out = robert(&["phone", "--dir", d(&b), "hello"]);
    let payload = text(&out).0.trim().to_owned();
    assert_eq!(payload.len(), 36, "{payload}");
    let out = robert(&[
        "phone",
        "--dir",
        d(&a),
        "receive",
        &payload,
        "--rssi",
        "-55",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&["phone", "--dir", d(&a), "show"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("registered since: "), "{stdout}");
    assert!(stdout.contains(": 1 EBIDs, 1 HELLOs"), "{stdout}");

    let out = robert(&["phone", "--dir", d(&a), "status"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("not at risk"));
    // The server refuses a second status within 2 epochs: its message shows.
    let out = robert(&["phone", "--dir", d(&a), "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("HTTP 400"), "{:?}", text(&out));
    // The server has no code service here: any code is refused (401).
    let out = robert(&["phone", "--dir", d(&a), "report", "AB12CD"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("HTTP 401"), "{:?}", text(&out));

    let out = robert(&["phone", "--dir", d(&b), "delete-history"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&["phone", "--dir", d(&b), "unregister"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&["phone", "--dir", d(&b), "status"]);
    assert!(text(&out).1.contains("not registered"));
    let out = robert(&["phone", "--dir", d(&a), "wipe"]);
    assert!(out.status.success());
    assert!(!a.join("device.key").exists());
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn show_on_an_empty_dir_creates_nothing() {
    let dir = scratch("empty");
    let out = robert(&["phone", "--dir", d(&dir), "show"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("no phone state"), "{stdout}");
    assert!(!dir.exists());
    let out = robert(&["phone", "--dir", d(&dir), "wipe"]);
    assert!(out.status.success());
    assert!(!dir.exists());
}

#[test]
fn argument_errors() {
    let dir = scratch("args");
    // No subcommand / unknown subcommand / missing --dir: clap's usage error.
    for args in [
        vec!["phone", "--dir", d(&dir)],
        vec!["phone", "--dir", d(&dir), "fly"],
        vec!["phone", "status"],
        vec!["phone", "--dir", d(&dir), "--os", "symbian", "status"],
        vec![
            "phone",
            "--dir",
            d(&dir),
            "report",
            "AB12CD",
            "--onset",
            "2022-01-01",
            "--test-date",
            "2022-01-02",
        ],
    ] {
        let out = robert(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    // No server configured.
    let out = robert(&["phone", "--dir", d(&dir), "status"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no server URL"), "{stderr}");
    // Not a URL, not a key.
    let out = robert(&["phone", "--dir", d(&dir), "--server", "ftp://x", "status"]);
    assert!(text(&out).1.contains("http:// or https://"));
    let out = robert(&[
        "phone",
        "--dir",
        d(&dir),
        "--server",
        "http://127.0.0.1:9",
        "--server-public-key",
        "nope",
        "status",
    ]);
    assert!(
        text(&out).1.contains("no base64 P-256 public key"),
        "{:?}",
        text(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn settings_are_kept_and_errors_are_clear() {
    let dir = scratch("settings");
    let key_file = dir.with_extension("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    // Not registered yet: status is refused locally (no network needed).
    let out = robert(&[
        "phone",
        "--dir",
        d(&dir),
        "--server",
        "http://127.0.0.1:9/",
        "--server-public-key",
        &format!("@{}", d(&key_file)),
        "--model",
        "iPhone12,1",
        "--os",
        "ios",
        "status",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("not registered"), "{stderr}");

    // The settings were kept (encrypted): later commands need no flags.
    let out = robert(&["phone", "--dir", d(&dir), "show"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("server: http://127.0.0.1:9"), "{stdout}");
    assert!(stdout.contains("registered: no"), "{stdout}");
    assert!(stdout.contains("contacts stored: none"), "{stdout}");
    for entry in std::fs::read_dir(dir.join("data")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes.windows(9).any(|w| w == b"127.0.0.1"),
            "settings in clear"
        );
    }

    // A malformed code fails before any network access.
    let out = robert(&["phone", "--dir", d(&dir), "report", "ABC"]);
    assert!(
        text(&out).1.contains("not a valid report code"),
        "{:?}",
        text(&out)
    );
    // No HELLO without registration.
    let out = robert(&["phone", "--dir", d(&dir), "hello"]);
    assert!(text(&out).1.contains("not registered"));
    // Nothing listens on port 9: a network error after the retries.
    let out = robert(&["phone", "--dir", d(&dir), "register", "--captcha", "x"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("network error"), "{stderr}");

    // Wipe deletes everything, the device key included.
    let out = robert(&["phone", "--dir", d(&dir), "wipe"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!dir.join("device.key").exists());
    assert!(!dir.join("data").exists());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&key_file);
}
