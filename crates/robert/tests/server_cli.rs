//! End-to-end tests of `robert keys`, `robert serve` and `robert batch`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("robert-server-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn robert(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("ROBERT_KEYS__ARGON2_MEMORY_KIB", "64")
        .env("ROBERT_KEYS__ARGON2_ITERATIONS", "1")
        .env_remove("ROBERT_KEYSTORE_PASSPHRASE")
        .env_remove("ROBERT_CONFIG")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn keys_init_show_import_rotate() {
    let d = dir("keys");
    let init = json(&robert(&d, &["keys", "init", "--future-days", "2"]));
    assert_eq!(init["added"].as_array().unwrap().len(), 3 + 3 + 3);
    assert!(d.join("keystore.robert").exists() && d.join("keystore.pass").exists());
    let show = robert(&d, &["keys", "show-public"]);
    let pk = String::from_utf8(show.stdout).unwrap();
    assert!(
        pk.trim()
            .starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        "{pk}"
    );
    assert_eq!(init["registration_public_key"], pk.trim());
    let jwt = String::from_utf8(robert(&d, &["keys", "show-public", "--jwt"]).stdout).unwrap();
    assert_eq!(jwt.matches("-----BEGIN PUBLIC KEY-----").count(), 3);

    // Import: one day inline, a file of bare keys for three days, K_G from a file.
    let file = d.join("ks.txt");
    std::fs::write(&file, "# ceremony\n000102030405060708090a0b0c0d0e0f1011121314151617\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYX\n000102030405060708090a0b0c0d0e0f1011121314151617\n").unwrap();
    let kg = d.join("kg.hex");
    std::fs::write(&kg, "aa".repeat(32)).unwrap();
    let r = json(&robert(
        &d,
        &[
            "keys",
            "import",
            "--server-key",
            "2040-01-01=000102030405060708090a0b0c0d0e0f1011121314151617",
            "--server-keys",
            file.to_str().unwrap(),
            "--from",
            "2040-02-01",
            "--to",
            "2040-02-03",
        ],
    ));
    assert_eq!(r["added"].as_array().unwrap().len(), 4);
    // K_G exists already with another value: refused without --force.
    let refused = robert(
        &d,
        &[
            "keys",
            "import",
            "--federation-key",
            &format!("@{}", kg.display()),
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("--force") && !err.contains("aaaa"), "{err}");
    let r = json(&robert(
        &d,
        &[
            "keys",
            "import",
            "--federation-key",
            &format!("@{}", kg.display()),
            "--force",
        ],
    ));
    assert_eq!(r["replaced"], serde_json::json!(["K_G"]));
    // A bad value names the key, never the value.
    let bad = robert(&d, &["keys", "import", "--kek", "0011"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("KEK") && err.contains("expected 32 bytes") && !err.contains("0011"),
        "{err}"
    );
    // Rotation drops the 2040 keys? No: they are in the future; retention 0 drops past days only.
    let r = json(&robert(
        &d,
        &[
            "keys",
            "rotate",
            "--future-days",
            "3",
            "--retention-days",
            "0",
        ],
    ));
    assert_eq!(r["added"].as_array().unwrap().len(), 1);
    assert_eq!(r["server_key_range"][1], "2040-02-03");
    // Without the passphrase file the key store cannot be opened.
    std::fs::remove_file(d.join("keystore.pass")).unwrap();
    let o = robert(&d, &["keys", "show-public"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ROBERT_KEYSTORE_PASSPHRASE"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn app_config_set_list_delete() {
    let d = dir("app-config");
    let empty = json(&robert(&d, &["app-config", "list"]));
    assert_eq!(empty, serde_json::json!([]));
    json(&robert(
        &d,
        &["app-config", "set", "app.checkStatusFrequency", "12"],
    ));
    let list = json(&robert(
        &d,
        &["app-config", "set", "ble.filterMode", "RISKS", "--string"],
    ));
    assert_eq!(
        list,
        serde_json::json!([
            {"name": "app.checkStatusFrequency", "value": 12},
            {"name": "ble.filterMode", "value": "RISKS"}
        ])
    );
    // Setting again replaces the value.
    json(&robert(
        &d,
        &["app-config", "set", "app.checkStatusFrequency", "6"],
    ));
    let list = json(&robert(&d, &["app-config", "delete", "ble.filterMode"]));
    assert_eq!(
        list,
        serde_json::json!([{"name": "app.checkStatusFrequency", "value": 6}])
    );
    // Errors exit 2 with a message, and change nothing.
    let o = robert(&d, &["app-config", "delete", "ble.filterMode"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not set"));
    let o = robert(&d, &["app-config", "set", "ble.filterMode", "RISKS"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--string"));
    let o = robert(&d, &["app-config", "set", "bad name", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        json(&robert(&d, &["app-config", "list"])),
        serde_json::json!([{"name": "app.checkStatusFrequency", "value": 6}])
    );
    let _ = std::fs::remove_dir_all(&d);
}

fn http(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn serve_with_no_configuration_then_batch() {
    let d = dir("serve");
    let common::Listening {
        mut child,
        addr,
        internal,
        log: text,
    } = common::spawn_listening(serve_command(&[]).arg("--data-dir").arg(&d));
    assert!(
        text.contains("keystore.pass") && text.contains("Protect it"),
        "{text}"
    );
    assert!(text.contains("created key store"), "{text}");
    let (status, body) = http(
        &addr,
        "GET /api/v6/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        body.contains("\"serviceStartDate\":\"2020-06-01\""),
        "{body}"
    );
    // No code service is configured or running: the server says so at
    // start, and readiness is DOWN (it cannot take declarations).
    assert!(
        text.contains("the submission-code service does not answer"),
        "{text}"
    );
    let (status, body) = http(
        &addr,
        "GET /actuator/health/readiness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 503);
    assert!(
        body.contains("submission-code service unavailable"),
        "{body}"
    );
    // KPIs and metrics are on the internal listener only.
    for path in ["/metrics", "/internal/api/v2/kpis"] {
        let get = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(http(&addr, &get).0, 404, "public {path}");
        assert_eq!(http(&internal, &get).0, 200, "internal {path}");
    }
    assert!(internal.starts_with("127.0.0.1:"), "{internal}");
    // SIGTERM: a clean shutdown, exit 0.
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // The batch on the same data: a JSON report.
    let out = Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(["batch", "--data-dir"])
        .arg(&d)
        .env_remove("ROBERT_KEYSTORE_PASSPHRASE")
        .output()
        .unwrap();
    let report = json(&out);
    assert_eq!(report["contacts_processed"], 0);
    assert!(report["epoch"].as_u64().unwrap() > 200_000);
    std::fs::remove_dir_all(&d).unwrap();
}

/// Starts `robert serve` on a free loopback port with extra arguments and
/// returns the child and the address it listens on.
fn spawn_serve(d: &Path, extra: &[&str]) -> (std::process::Child, String, String) {
    spawn_serve_with(d, extra, &[])
}

/// [`spawn_serve`] with extra environment variables.
fn spawn_serve_with(
    d: &Path,
    extra: &[&str],
    envs: &[(&str, String)],
) -> (std::process::Child, String, String) {
    let mut cmd = serve_command(extra);
    cmd.arg("--data-dir")
        .arg(d)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
    spawn_listening(cmd)
}

/// `robert serve` on free loopback ports (the internal listener at the
/// default's address, 127.0.0.1, with a free port), JSON logs, a fast key
/// store.
fn serve_command(extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_robert"));
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--internal-bind",
        "127.0.0.1:0",
    ])
    .args(extra)
    .env("ROBERT_KEYS__ARGON2_MEMORY_KIB", "64")
    .env("ROBERT_LOG__FORMAT", "json")
    .env_remove("ROBERT_KEYSTORE_PASSPHRASE")
    .env_remove("ROBERT_CODES_CONFIG")
    .env_remove("ROBERT_CONFIG")
    .env_remove("ROBERT_CLOCK_OFFSET")
    .env_remove("RUST_LOG");
    cmd
}

/// Spawns a `robert serve` command logging JSON and waits for its
/// "listening" line: the child, its address and the log lines before it.
fn spawn_listening(mut cmd: Command) -> (std::process::Child, String, String) {
    let l = common::spawn_listening(&mut cmd);
    (l.child, l.addr, l.log)
}

fn post_json(addr: &str, path: &str, body: &str) -> (u16, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// One process serves both the ROBERT API and the submission-code service:
/// a short code issued by the code service is accepted once by `/report`.
#[test]
fn serve_with_the_code_service_inside() {
    let d = dir("serve-codes");
    let codes = d.join("codes.toml");
    std::fs::write(
        &codes,
        format!(
            "database_url = \"sqlite://{}?mode=rwc\"\n\
             [[peppers]]\nid = \"p1\"\nsecret = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
             [[api.clients]]\nname = \"test\"\n\
             key_sha256 = \"62af8704764faf8ea82fc61ce9c4c3908b6cb97d463a634e9e587d7c885db0ef\"\n\
             daily_quota = 10\nper_minute = 10\n\
             [api]\nverify_per_second = 1\nverify_burst = 3\n\
             [portal]\nenabled = true\ncookie_secure = false\n",
            d.join("codes.db").display()
        ),
    )
    .unwrap();
    let codes_arg = codes.to_str().unwrap().to_owned();
    let common::Listening {
        mut child,
        addr,
        internal,
        ..
    } = common::spawn_listening(
        serve_command(&["--codes-config", &codes_arg])
            .arg("--data-dir")
            .arg(&d),
    );

    let (status, body) = http(
        &addr,
        "GET /api/v1/generate/short HTTP/1.1\r\nHost: x\r\nx-api-key: test-key\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let code = serde_json::from_str::<Value>(&body).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 6, "{code}");

    // A server killed after taking the hold on the code and before storing
    // the report (issue 11 item 6): the code is held, not spent. Here the
    // hold is taken as /report would take it, then the report "dies".
    let report = format!(r#"{{"token":"{code}","contacts":[]}}"#);
    let key = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"robert-server/v1/report-claim");
        h.update(report.as_bytes());
        hex::encode(h.finalize())
    };
    let (status, body) = post_json(
        &addr,
        "/api/v1/claim",
        &format!(r#"{{"code":"{code}","key":"{key}"}}"#),
    );
    assert_eq!((status, body.as_str()), (200, r#"{"valid":true}"#));
    // Another report cannot use the held code...
    let other = format!(r#"{{"token":"{code}", "contacts":[]}}"#);
    let (status, _) = post_json(&addr, "/api/v6/report", &other);
    assert_eq!(status, 401, "held for the interrupted report");
    // ...but the app's retry of the interrupted report goes through, once.
    let (status, body) = post_json(&addr, "/api/v6/report", &report);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"success\":true"), "{body}");
    let (status, _) = post_json(&addr, "/api/v6/report", &report);
    assert_eq!(status, 401, "a code is usable once");

    // The server reaches the code service in process, so loopback has no
    // exemption from its verify limit (here 1/s, burst 3): a guess loop on
    // /api/v1/verify from this host is limited like any other client.
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            http(
                &addr,
                "GET /api/v1/verify?code=ZZZZZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .0
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    // ...while /report still verifies (its own per-client limit aside).
    let (status, body) = http(
        &addr,
        "GET /api/v1/generate/short HTTP/1.1\r\nHost: x\r\nx-api-key: test-key\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let code = serde_json::from_str::<Value>(&body).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = post_json(
        &addr,
        "/api/v6/report",
        &format!(r#"{{"token":"{code}","contacts":[]}}"#),
    );
    assert_eq!(status, 200, "{body}");

    // The portal shares the public listener; both services' KPIs and
    // metrics share the internal one, and only it.
    let (status, body) = http(
        &addr,
        "GET /portal/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.contains("<form"), "{body}");
    for path in [
        "/codes/metrics",
        "/metrics",
        "/internal/api/v2/kpis",
        "/internal/api/v1/kpi?fromDate=2026-01-01&toDate=2026-01-02",
    ] {
        let get = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(http(&addr, &get).0, 404, "public {path}");
        assert_eq!(http(&internal, &get).0, 200, "internal {path}");
    }

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(&d).unwrap();
}

/// Text logs to a pipe (a log file, journald) carry no ANSI colour codes,
/// and the first start describes the key store in a sentence, not a Rust
/// debug dump.
#[test]
fn text_logs_to_a_pipe_are_plain_and_readable() {
    let d = dir("plain-logs");
    let mut child = serve_command(&[])
        .arg("--data-dir")
        .arg(&d)
        .env("ROBERT_LOG__FORMAT", "text")
        .env_remove("NO_COLOR")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("ROBERT server listening") {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert!(log.contains("ROBERT server listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in {log:?}");
    assert!(
        log.contains("daily server keys (K_S) for ") && log.contains("key-encryption key"),
        "{log}"
    );
    assert!(
        !log.contains("KeyRing") && !log.contains("UtcDate"),
        "{log}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// The code service's development configuration shipped in the repository.
const DEV_CODES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../robert-codes/codes.dev.toml"
);

/// The README's `robert serve --batch-every 15m --codes-config …` with the
/// shipped development example, run as is from a fresh directory: the server
/// comes up with the portal, `robert codes issue short` and the development
/// API key give codes that `/report` accepts.
#[test]
fn serve_with_the_shipped_development_codes_config() {
    let d = dir("serve-dev-codes");
    let mut cmd = serve_command(&["--batch-every", "15m", "--codes-config", DEV_CODES]);
    cmd.current_dir(&d);
    let (mut child, addr, _) = spawn_listening(cmd);
    assert!(d.join("data/robert-codes.db").exists());

    let (status, body) = http(
        &addr,
        "GET /portal/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert!(body.contains("<form"), "{body}");
    // A code from the command line, in the same database.
    let out = Command::new(env!("CARGO_BIN_EXE_robert"))
        .args(["codes", "-c", DEV_CODES, "issue", "short"])
        .current_dir(&d)
        .env_remove("ROBERT_CODES_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    // The code is the first line.
    let code = printed.lines().next().unwrap_or_default().trim().to_owned();
    assert_eq!(code.len(), 6, "{printed}");
    let (status, body) = post_json(
        &addr,
        "/api/v6/report",
        &format!(r#"{{"token":"{code}","contacts":[]}}"#),
    );
    assert_eq!(status, 200, "{body}");
    // A code from the API with the development key.
    let (status, body) = http(
        &addr,
        "GET /api/v1/generate/short HTTP/1.1\r\nHost: x\r\nx-api-key: dev-api-key\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(&d).unwrap();
}

/// A missing code-service configuration names the shipped examples.
#[test]
fn a_missing_codes_config_points_to_the_examples() {
    let d = dir("serve-no-codes");
    let out = serve_command(&["--codes-config", "codes.toml"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("codes.toml") && err.contains("crates/robert-codes/codes.dev.toml"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// An existing file key store moves into a SoftHSM2 token (`keys
/// migrate`); the key ceremony commands work on the token; `robert serve`
/// on the token registers a phone and answers its `/status`.
#[test]
fn keys_migrate_into_a_softhsm_token_and_serve_from_it() {
    use robert_core::registration::{ClientKeyAgreement, parse_public_key};
    use robert_server::keystore::pkcs11::testing;

    let Some(module) = testing::softhsm_module() else {
        testing::skip_or_fail("skipped: SoftHSM2 not installed (apt-get install softhsm2)");
        return;
    };
    let hsm = testing::SoftHsmDir::create("cli").unwrap();
    let d = dir("hsm");
    let envs: Vec<(&str, String)> = vec![
        ("ROBERT_KEYS__STORE", "pkcs11".into()),
        ("ROBERT_KEYS__PKCS11__MODULE", module.display().to_string()),
        (
            "ROBERT_KEYS__PKCS11__TOKEN_LABEL",
            testing::TOKEN_LABEL.into(),
        ),
        ("ROBERT_PKCS11_PIN", testing::USER_PIN.into()),
        ("SOFTHSM2_CONF", hsm.conf().display().to_string()),
        ("ROBERT_CAPTCHA__MODE", "accept-any".into()),
        ("ROBERT_PROTOCOL__STATUS_MIN_EPOCH_GAP", "0".into()),
    ];
    let token = |args: &[&str], with_pin: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_robert"));
        c.args(args)
            .arg("--data-dir")
            .arg(&d)
            .env("ROBERT_KEYS__ARGON2_MEMORY_KIB", "64")
            .env("ROBERT_KEYS__ARGON2_ITERATIONS", "1")
            .env_remove("ROBERT_KEYSTORE_PASSPHRASE")
            .env_remove("ROBERT_CONFIG")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        if !with_pin {
            c.env_remove("ROBERT_PKCS11_PIN");
        }
        c.output().unwrap()
    };

    // The deployment so far: a file key store.
    let file = json(&robert(&d, &["keys", "init", "--future-days", "2"]));
    let pk = file["registration_public_key"].as_str().unwrap().to_owned();
    // Into the token: the same keys, the same KEK (check value).
    let m = json(&token(&["keys", "migrate"], true));
    assert_eq!(m["added"].as_array().unwrap().len(), 9, "{m}");
    assert_eq!(m["kek_check_value"], file["kek_check_value"]);
    assert_eq!(m["registration_public_key"], pk.as_str());
    assert!(
        m["keystore"]
            .as_str()
            .unwrap()
            .starts_with("pkcs11:token=robert-test")
    );
    let shown = token(&["keys", "show-public"], true);
    assert_eq!(String::from_utf8(shown.stdout).unwrap().trim(), pk);
    let r = json(&token(&["keys", "rotate", "--future-days", "4"], true));
    assert_eq!(r["added"].as_array().unwrap().len(), 2, "{r}");
    // A different KEK is refused without --force; init adds nothing.
    let o = token(&["keys", "import", "--kek", &"11".repeat(32)], true);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert!(
        json(&token(&["keys", "init", "--future-days", "4"], true))["added"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Without a PIN: a clear error.
    let o = token(&["keys", "show-public"], false);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ROBERT_PKCS11_PIN"));

    // Serve from the token; a phone registers and asks its status.
    let (mut child, addr, text) = spawn_serve_with(&d, &[], &envs);
    assert!(
        text.contains("PKCS#11 PIN taken from ROBERT_PKCS11_PIN"),
        "{text}"
    );
    assert!(!text.contains(testing::USER_PIN), "{text}");
    let app = ClientKeyAgreement::new(&mut rand::rng());
    let (status, body) = post_json(
        &addr,
        "/api/v6/register",
        &format!(
            r#"{{"captcha":"x","captchaId":"y","clientPublicECDHKey":"{}"}}"#,
            app.public_key_base64()
        ),
    );
    assert_eq!(status, 201, "{body}");
    let keys = app.finish(&parse_public_key(&pk).unwrap());
    let body: Value = serde_json::from_str(&body).unwrap();
    let sealed = robert_core::b64::decode(body["tuples"].as_str().unwrap(), "tuples").unwrap();
    let bundle = robert_core::tuples::TupleBundle::open(&keys.key_a_tuples, &sealed).unwrap();
    let t = bundle.tuples[0];
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = robert_core::time::NtpSeconds::from_unix(i64::try_from(unix).unwrap());
    let mac = robert_core::mac::RequestMac::compute(
        &keys.key_a,
        robert_core::mac::Salt::Status,
        &t.ebid,
        t.epoch.get(),
        now.time32(),
    );
    let (status, body) = post_json(
        &addr,
        "/api/v6/status",
        &format!(
            r#"{{"ebid":"{}","epochId":{},"time":"{}","mac":"{}"}}"#,
            t.ebid.to_base64(),
            t.epoch.get(),
            robert_core::b64::encode(now.time32().to_bytes()),
            mac.to_base64()
        ),
    );
    assert_eq!(status, 200, "{body}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    std::fs::remove_dir_all(&d).unwrap();
}

/// Sends SIGTERM and waits up to `limit` for the exit; kills the child and
/// fails if it is still running then.
fn terminate_within(child: &mut std::process::Child, limit: Duration) -> Duration {
    let started = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    while started.elapsed() < limit {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("still running {limit:?} after SIGTERM");
}

/// D5: SIGTERM did not stop the server while a client held a connection
/// with unfinished headers. It now stops within the shutdown grace (5 s by
/// default) whatever the clients do.
#[test]
fn sigterm_stops_the_server_despite_half_open_connections() {
    let d = dir("sigterm");
    let (mut child, addr, _) = spawn_serve(&d, &[]);
    let mut held = Vec::new();
    for i in 0..6 {
        let mut s = TcpStream::connect(&addr).unwrap();
        if i > 0 {
            s.write_all(b"GET /api/v6/clock HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        held.push(s);
    }
    let (status, _) = http(
        &addr,
        "GET /api/v6/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let took = terminate_within(&mut child, Duration::from_secs(5));
    eprintln!(
        "stopped {took:?} after SIGTERM with {} half-open connections",
        held.len()
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&d);
}

/// D3 and D4 together: 25 clients holding connections with unfinished
/// headers and 25 trickling report bodies; a normal report still completes
/// in under 2 s (the processing timeout is 3 s here, so a report queued
/// behind the slow uploads would take longer).
#[test]
fn a_normal_report_completes_while_50_slow_clients_hold_connections() {
    let d = dir("slow50");
    let (mut child, addr, _) = spawn_serve_with(
        &d,
        &[],
        &[
            ("ROBERT_SERVER__REQUEST_TIMEOUT_SECS", "3".into()),
            ("ROBERT_CODES__CHECK_TOKEN", "false".into()),
        ],
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut slow = Vec::new();
    for i in 0..50 {
        let addr = addr.clone();
        let stop = stop.clone();
        slow.push(std::thread::spawn(move || {
            let Ok(mut s) = TcpStream::connect(&addr) else {
                return;
            };
            let head = if i % 2 == 0 {
                "GET /api/v6/clock HTTP/1.1\r\nHost: x\r\n".to_owned()
            } else {
                "POST /api/v6/report HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{\"token\":\"".to_owned()
            };
            if s.write_all(head.as_bytes()).is_err() {
                return;
            }
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if s.write_all(b"A").is_err() {
                    return;
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let (status, body) = post_json(
        &addr,
        "/api/v6/report",
        r#"{"token":"ABCDEF","contacts":[]}"#,
    );
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "a normal report took {took:?} while 50 slow clients held connections"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in slow {
        t.join().unwrap();
    }
    terminate_within(&mut child, Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&d);
}

/// D4: a connection that never finishes its headers, or never sends
/// anything, is closed after `server.header_read_timeout_secs` (1 s here);
/// the server logs its open-file limit, raised to the hard limit.
#[test]
fn the_header_timeout_closes_silent_connections() {
    let d = dir("header-timeout");
    let (mut child, addr, log) = spawn_serve_with(
        &d,
        &[],
        &[("ROBERT_SERVER__HEADER_READ_TIMEOUT_SECS", "1".into())],
    );
    assert!(log.contains("open-file limit"), "{log}");
    let silent = TcpStream::connect(&addr).unwrap();
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial
        .write_all(b"GET /api/v6/clock HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    for mut s in [silent, partial] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        // Closed (EOF or reset), not left open until the read timeout.
        let closed = match s.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(closed, "still open after {:?}", started.elapsed());
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "closed after {took:?}"
    );
    let (status, _) = http(
        &addr,
        "GET /api/v6/clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    terminate_within(&mut child, Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&d);
}
