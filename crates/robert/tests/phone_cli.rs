//! End-to-end tests of `robert phone` that need no server: argument errors,
//! `show` on an empty directory, settings kept between commands, network
//! errors, `wipe`.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::KillOnDrop as Server;

/// The reference's development registration key (any valid P-256 SPKI).
const KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fAxfrLtG5tXyjomCOg9r1wNnr9len4m9sTflJUHDdkwubKyidTtFkVfNLrM91yuffdrpJZe9XOkof8P+zPGDg==";

/// `robert args`, without the caller's phone, clock and configuration
/// variables, with fast key-store hashing.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robert"));
    cmd.args(args)
        .env_remove("ROBERT_PHONE_SERVER")
        .env_remove("ROBERT_PHONE_SERVER_KEY")
        .env_remove("ROBERT_CLOCK_OFFSET")
        .env_remove("ROBERT_CONFIG")
        .env("ROBERT_KEYS__ARGON2_MEMORY_KIB", "64")
        .env("ROBERT_KEYS__ARGON2_ITERATIONS", "1");
    cmd
}

fn robert(args: &[&str]) -> Output {
    command(args).output().unwrap()
}

/// [`robert`] with extra environment variables, in `cwd`, with `stdin`.
fn robert_with(args: &[&str], envs: &[(&str, &str)], cwd: &Path, stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = command(args)
        .envs(envs.iter().copied())
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Starts `robert serve` on `bind` (`127.0.0.1:0`: any free port) and waits
/// until it says it listens: the server and the address it listens on.
fn start_server(bind: &str, args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> (Server, String) {
    let listening = common::spawn_listening(
        Command::new(env!("CARGO_BIN_EXE_robert"))
            .args(
                [
                    &["serve", "--bind", bind, "--internal-bind", "127.0.0.1:0"][..],
                    args,
                ]
                .concat(),
            )
            .env_remove("ROBERT_CLOCK_OFFSET")
            .env_remove("ROBERT_CONFIG")
            .env_remove("ROBERT_CODES_CONFIG")
            .env_remove("RUST_LOG")
            .env("ROBERT_LOG__FORMAT", "json")
            .env("ROBERT_KEYS__ARGON2_MEMORY_KIB", "64")
            .env("ROBERT_KEYS__ARGON2_ITERATIONS", "1")
            .envs(envs.iter().copied())
            .current_dir(cwd)
            .stdout(std::process::Stdio::null()),
    );
    (Server(listening.child), listening.addr)
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

    let (_server, bind) = start_server("127.0.0.1:0", &common, &[], &dir);
    let url = format!("http://{bind}");

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
    // The server refuses a second status within 2 epochs: the phone says
    // when to come back, in plain words.
    let out = robert(&["phone", "--dir", d(&a), "status"]);
    assert_eq!(out.status.code(), Some(2));
    let (_, err) = text(&out);
    assert!(
        err.contains("every 30 minutes; try again from ") && err.contains(" UTC"),
        "{err}"
    );
    assert!(!err.contains("HTTP") && !err.contains("epochs"), "{err}");
    // The server's code service is not running here: the server answers
    // 503 and the phone says, in plain words, that the code is not spent.
    let out = robert(&["phone", "--dir", d(&a), "report", "AB12CD"]);
    assert_eq!(out.status.code(), Some(2));
    let (_, err) = text(&out);
    assert!(
        err.contains("cannot check codes right now; your code is not used"),
        "{err}"
    );
    assert!(!err.contains("HTTP") && !err.contains("token"), "{err}");

    let out = robert(&["phone", "--dir", d(&b), "delete-history"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&["phone", "--dir", d(&b), "unregister"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&["phone", "--dir", d(&b), "status"]);
    assert!(text(&out).1.contains("not registered"));
    assert!(text(&out).1.contains("register` first"), "{:?}", text(&out));
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

/// `register` against the built-in captcha: the image is saved, a wrong
/// answer brings a new image, an empty line asks for another one, the end
/// of standard input stops with a clear message. Against a server in
/// accept-any mode, an answer on standard input registers.
#[test]
fn register_retries_the_captcha() {
    let dir = scratch("captcha");
    std::fs::create_dir_all(&dir).unwrap();
    let srv = dir.join("srv");
    let out = robert(&["keys", "init", "--data-dir", d(&srv)]);
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert(&["keys", "show-public", "--data-dir", d(&srv)]);
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (server, bind) = start_server("127.0.0.1:0", &["--data-dir", d(&srv)], &[], &dir);
    let url = format!("http://{bind}");

    let phone = dir.join("p");
    let args = [
        "phone",
        "--dir",
        d(&phone),
        "--server",
        &url,
        "--server-public-key",
        &key,
        "register",
    ];
    let out = robert_with(&args, &[], &dir, "WRONG1\n\nWRONG2\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("captcha image saved to ").count(),
        4,
        "{stderr}"
    );
    assert_eq!(stderr.matches("wrong answer").count(), 2, "{stderr}");
    assert!(stderr.contains("standard input ended"), "{stderr}");
    let png = std::fs::read(phone.join("captcha.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    // --captcha cannot answer the built-in captcha: the error says why.
    let out = robert(&[&args[..], &["--captcha", "ABCDE"]].concat());
    assert!(text(&out).1.contains("accept-any"), "{:?}", text(&out));
    drop(server);

    // The same phone against a server that accepts any answer.
    let (_server, _) = start_server(
        &bind,
        &["--data-dir", d(&srv)],
        &[("ROBERT_CAPTCHA__MODE", "accept-any")],
        &dir,
    );
    let out = robert_with(&args, &[], &dir, "whatever\n");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("registered: "), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The code service's development configuration shipped in the repository.
const DEV_CODES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../robert-codes/codes.dev.toml"
);

/// The README's walk "A phone at risk in one minute", headless: a server and
/// two phones an hour in the past (`ROBERT_CLOCK_OFFSET=-1h`) register and
/// meet for 30 minutes; back in the present, one reports with a code from
/// the development code service, the batch runs, the other is AT RISK. A
/// phone reports once.
#[test]
fn readme_walk_a_phone_at_risk_with_a_clock_offset() {
    let dir = scratch("walk");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("robert.toml"),
        "[captcha]\nmode = \"accept-any\"\n",
    )
    .unwrap();
    let config = ["-c", "robert.toml"];
    let past = [("ROBERT_CLOCK_OFFSET", "-1h")];
    let serve_args = [&config[..], &["--codes-config", DEV_CODES]].concat();
    let (server, bind) = start_server("127.0.0.1:0", &serve_args, &past, &dir);
    let url = format!("http://{bind}");
    let out = robert_with(
        &["keys", "show-public", "-c", "robert.toml"],
        &past,
        &dir,
        "",
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    for p in ["alice", "bob"] {
        let out = robert_with(
            &[
                "phone",
                "--dir",
                p,
                "--server",
                &url,
                "--server-public-key",
                &key,
                "register",
                "--captcha",
                "any",
            ],
            &past,
            &dir,
            "",
        );
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let out = robert_with(
        &[
            "phone",
            "--dir",
            "alice",
            "meet",
            "--with",
            "bob",
            "--minutes",
            "30",
        ],
        &past,
        &dir,
        "",
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("met for 30 minutes"), "{stdout}");
    drop(server);

    // Back to the present.
    let (_server, _) = start_server(&bind, &serve_args, &[], &dir);
    let out = robert_with(&["codes", "-c", DEV_CODES, "issue", "short"], &[], &dir, "");
    assert!(out.status.success(), "{:?}", text(&out));
    let code = text(&out).0.lines().next().unwrap().trim().to_owned();
    let out = robert_with(&["phone", "--dir", "alice", "report", &code], &[], &dir, "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("reported: "), "{stdout}");
    assert!(!stdout.starts_with("reported: 0 contacts"), "{stdout}");
    // A phone reports once.
    let out = robert_with(&["phone", "--dir", "alice", "report", &code], &[], &dir, "");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("already reported"),
        "{:?}",
        text(&out)
    );

    let out = robert_with(&["batch", "-c", "robert.toml"], &[], &dir, "");
    assert!(out.status.success(), "{:?}", text(&out));
    let out = robert_with(&["phone", "--dir", "bob", "status"], &[], &dir, "");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("(AT RISK)"), "{stdout}");
    let out = robert_with(&["phone", "--dir", "alice", "show"], &[], &dir, "");
    assert!(
        text(&out).0.contains("reported positive: "),
        "{:?}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
