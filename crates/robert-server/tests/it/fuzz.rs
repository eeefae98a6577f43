//! Property test: arbitrary bodies on every route never yield a 5xx.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::support::{API_POST_ROUTES, TestApp};

/// JSON values built from the API's own field names, so the generator
/// reaches past the first "missing field" check.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ebid"),
        Just("epochId"),
        Just("time"),
        Just("mac"),
        Just("pushInfo"),
        Just("pushToken"),
        Just("token"),
        Just("contacts"),
        Just("ecc"),
        Just("ids"),
        Just("timeCollectedOnDevice"),
        Just("timeFromHelloMessage"),
        Just("rssiCalibrated"),
        Just("captcha"),
        Just("captchaId"),
        Just("clientPublicECDHKey"),
        Just("type"),
        Just("locale"),
        Just("locale"),
        Just("x"),
    ]
    .prop_map(str::to_owned)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(65535)),
        Just(json!(65536)),
        Just(json!(4294967296u64)),
        Just(json!("yqfVsPunrqc=")),
        Just(json!("wg==")),
        Just(json!("AQIDBAU=")),
        Just(json!("IMAGE")),
        Just(json!("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")),
        Just(json!("5XobgA==")),
        "[ -~]{0,50}".prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| {
            let mut s = v.to_string().into_bytes();
            s.truncate(s.len() / 2);
            s
        }),
    ]
}

#[test]
fn arbitrary_bodies_never_cause_a_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt
        .block_on(TestApp::new(robert_store::Backend::Sqlite, "fuzz"))
        .unwrap();
    // Register one phone so that some generated EBIDs can be real ones.
    rt.block_on(super::phone::Phone::register(&app, "fuzz"));
    let routes: Vec<&str> = API_POST_ROUTES
        .into_iter()
        .chain(["/internal/api/v2/kpis"])
        .collect();
    let cfg = ProptestConfig {
        cases: 384,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(route in 0..routes.len(), body in body(), ct in prop_oneof![Just(Some("application/json")), Just(None), Just(Some("text/plain"))])| {
        let r = rt.block_on(app.post_raw(routes[route], ct, body.clone()));
        prop_assert!(r.status < 500, "{} {:?} -> {} {:?}", routes[route], String::from_utf8_lossy(&body), r.status, r.json);
        prop_assert!(r.status == 200 || r.status == 201 || r.json["message"].is_string(), "{} gave no JSON error", routes[route]);
    });
    rt.block_on(app.cleanup());
}
