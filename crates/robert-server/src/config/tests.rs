//! The configuration's defaults, files, environment overrides and checks.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_match_the_reference() {
    let c = Config::load(None, env(&[])).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.protocol.start().ntp().get(), 3_799_958_400);
    assert_eq!(c.protocol.bundle_days, 4);
    assert_eq!(c.protocol.request_time_tolerance_secs, 60);
    assert_eq!(c.protocol.status_min_epoch_gap, 2);
    assert_eq!(c.server.bind, "127.0.0.1:8086");
    assert_eq!(c.server.database_url(), "sqlite:./data/robert.db");
}

#[test]
fn the_example_file_documents_exactly_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("robert.example.toml");
    let c = Config::load(Some(&path), env(&[])).unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn env_overrides_file_and_nests() {
    let dir = std::env::temp_dir().join(format!("robert-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "[protocol]\nbundle_days = 20\nservice_start = \"2022-01-01\"\n[captcha]\nmode = \"accept-any\"\n",
    )
    .unwrap();
    let c = Config::load(
        Some(&file),
        env(&[
            ("ROBERT_PROTOCOL__BUNDLE_DAYS", "7"),
            ("ROBERT_CAPTCHA__EXTERNAL__SUCCESS_CODE", "OK"),
            ("ROBERT_SERVER__BIND", "0.0.0.0:9000"),
            ("ROBERT_KEYSTORE_PASSPHRASE", "not a config key"),
            ("OTHER__THING", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.protocol.bundle_days, 7);
    assert_eq!(c.protocol.service_start, UtcDate::new(2022, 1, 1).unwrap());
    assert_eq!(c.captcha.mode, CaptchaMode::AcceptAny);
    assert_eq!(c.captcha.external.success_code, "OK");
    assert_eq!(c.server.bind, "0.0.0.0:9000");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_are_clear() {
    let e = Config::load(None, env(&[("ROBERT_PROTOCOL__BUNDLE_DAYZ", "7")])).unwrap_err();
    assert!(e.to_string().contains("bundle_dayz"), "{e}");
    let e = Config::load(
        None,
        env(&[("ROBERT_PROTOCOL__SERVICE_START", "2020-13-01")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
    let e = Config::load(None, env(&[("ROBERT_PROTOCOL__BUNDLE_DAYS", "0")])).unwrap_err();
    assert!(e.to_string().contains("bundle_days"), "{e}");
    let e = Config::load(None, env(&[("ROBERT_BATCH__RISK_THRESHOLD", "-1.0")])).unwrap_err();
    assert!(e.to_string().contains("batch"), "{e}");
    let e = Config::load(None, env(&[("ROBERT_JWT__ALGORITHM", "HS256")])).unwrap_err();
    assert!(e.to_string().contains("algorithm"), "{e}");
}

#[test]
fn env_values_are_typed() {
    assert_eq!(env_value("12"), toml::Value::Integer(12));
    assert_eq!(env_value("-3"), toml::Value::Integer(-3));
    assert_eq!(env_value("0.0071"), toml::Value::Float(0.0071));
    assert_eq!(env_value("true"), toml::Value::Boolean(true));
    assert_eq!(
        env_value("2020-06-01"),
        toml::Value::String("2020-06-01".into())
    );
    assert_eq!(
        env_value("http://x:1/a"),
        toml::Value::String("http://x:1/a".into())
    );
    assert!(matches!(env_value("[1.0, 2.5]"), toml::Value::Array(a) if a.len() == 2));
}
