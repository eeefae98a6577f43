//! Malformed requests: every one is a 4xx with a JSON `{"message": …}`.

use robert_core::mac::Salt;
use serde_json::json;

use super::phone::Phone;
use super::support::{API_POST_ROUTES, TestApp};

fn assert_json_error(r: &super::support::Resp, status: u16, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}: {:?}", r.json);
    assert!(
        r.content_type.starts_with("application/json"),
        "{ctx}: {}",
        r.content_type
    );
    assert!(
        r.json["message"].is_string(),
        "{ctx}: {:?}",
        String::from_utf8_lossy(&r.bytes)
    );
}

#[tokio::test]
async fn transport_level_rejections_on_every_post_route() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "errors", |c| {
        c.limits.max_body_bytes = 4096;
        c.limits.report_max_body_bytes = 8192;
    })
    .await
    .unwrap();
    for route in API_POST_ROUTES {
        let r = app.post_raw(route, None, "{}").await;
        assert_json_error(&r, 415, route);
        assert!(r.message().contains("application/json"));
        let r = app.post_raw(route, Some("text/plain"), "{}").await;
        assert_json_error(&r, 415, route);
        for bad in [
            "",
            "{",
            "{\"ebid\":",
            "nul",
            "{} {}",
            "\u{0}",
            "{\"ebid\" \"x\"}",
        ] {
            let r = app.post_raw(route, Some("application/json"), bad).await;
            assert_json_error(&r, 400, &format!("{route} {bad:?}"));
            assert_eq!(r.message(), "Malformed request", "{route} {bad:?}");
        }
        let r = app
            .post_raw(route, Some("application/json"), vec![0xFFu8, 0xFE, 0x00])
            .await;
        assert_json_error(&r, 400, route);
        for wrong in ["[]", "[1,2", "1", "\"x\"", "null", "true"] {
            let r = app.post_raw(route, Some("application/json"), wrong).await;
            assert_json_error(&r, 400, &format!("{route} {wrong}"));
        }
        let limit = if route == "/api/v6/report" {
            8192
        } else {
            4096
        };
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(limit));
        let r = app.post_raw(route, Some("application/json"), huge).await;
        assert_json_error(&r, 413, route);
        assert!(r.message().contains(&limit.to_string()), "{}", r.message());
        let r = app.get(route).await;
        assert_json_error(&r, 405, route);
        assert_eq!(r.message(), "Request method 'GET' not supported");
    }
    for route in [
        "/api/v6/clock",
        "/internal/api/v2/kpis",
        "/api/v6/captcha/abc/image",
    ] {
        let r = app.post(route, &json!({})).await;
        assert_json_error(&r, 405, route);
    }
    for route in [
        "/",
        "/api/v5/status",
        "/api/v6/status/x",
        "/api/v6/captcha/abc",
    ] {
        assert_json_error(&app.get(route).await, 404, route);
    }
    // Charset parameters and +json types are JSON.
    let r = app
        .post_raw(
            "/api/v6/status",
            Some("application/json; charset=UTF-8"),
            "{}",
        )
        .await;
    assert_json_error(&r, 400, "charset");
    assert_eq!(r.message(), "Invalid data");
    app.cleanup().await;
}

#[tokio::test]
async fn field_validation_through_http() {
    let app = TestApp::new(robert_store::Backend::Sqlite, "fields")
        .await
        .unwrap();
    let phone = Phone::register(&app, "john").await;
    let good = phone.auth_body(&app, Salt::Status);
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({}), "ebid: required"),
        (
            {
                let mut b = good.clone();
                b["ebid"] = json!(null);
                b
            },
            "ebid: required",
        ),
        (
            {
                let mut b = good.clone();
                b["ebid"] = json!("AAAA");
                b
            },
            "ebid: must be 12 characters (base64 of 8 bytes)",
        ),
        (
            {
                let mut b = good.clone();
                b["ebid"] = json!(12);
                b
            },
            "ebid: invalid type",
        ),
        (
            {
                let mut b = good.clone();
                b["ebid"] = json!("????????????");
                b
            },
            "ebid: invalid base64",
        ),
        (
            {
                let mut b = good.clone();
                b["epochId"] = json!(-1);
                b
            },
            "epochId: must be between 0 and 2147483647",
        ),
        (
            {
                let mut b = good.clone();
                b["epochId"] = json!("5");
                b
            },
            "epochId: invalid type",
        ),
        (
            {
                let mut b = good.clone();
                b["epochId"] = json!(1e30);
                b
            },
            "epochId: invalid type",
        ),
        (
            {
                let mut b = good.clone();
                b["time"] = json!("AAAAAAAAAAAA");
                b
            },
            "time: must be 8 characters (base64 of 4 bytes)",
        ),
        (
            {
                let mut b = good.clone();
                b["mac"] = json!("AAAA");
                b
            },
            "mac: must be 44 characters (base64 of 32 bytes)",
        ),
        (
            {
                let mut b = good.clone();
                b["pushInfo"] = json!("token");
                b
            },
            "pushInfo: invalid type",
        ),
    ];
    for route in [
        "/api/v6/status",
        "/api/v6/unregister",
        "/api/v6/deleteExposureHistory",
    ] {
        for (body, detail) in &cases {
            let r = app.post(route, body).await;
            assert_eq!(
                (r.status, r.message()),
                (400, "Invalid data"),
                "{route} {body}"
            );
            assert!(
                r.json["detail"].as_str().unwrap().starts_with(detail),
                "{route}: {} vs {detail}",
                r.json["detail"]
            );
        }
    }
    // Register.
    let key =
        robert_core::registration::ClientKeyAgreement::new(&mut rand::rng()).public_key_base64();
    for (body, detail) in [
        (
            json!({"captchaId": "a", "clientPublicECDHKey": key}),
            "captcha: required",
        ),
        (
            json!({"captcha": "", "captchaId": "a", "clientPublicECDHKey": key}),
            "captcha: must not be empty",
        ),
        (
            json!({"captcha": "a", "captchaId": "a", "clientPublicECDHKey": ""}),
            "clientPublicECDHKey: must not be empty",
        ),
        (
            json!({"captcha": "a", "captchaId": "a", "clientPublicECDHKey": "not base64!"}),
            "clientPublicECDHKey: not a base64",
        ),
        (
            json!({"captcha": "a", "captchaId": "a", "clientPublicECDHKey": "AAAA"}),
            "clientPublicECDHKey: not a base64",
        ),
        // A P-384 key (another curve) and an RSA key are rejected with 400, not 500.
        (
            json!({"captcha": "a", "captchaId": "a", "clientPublicECDHKey": "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEHgYcb6TJwrdx7kDq5lmGzbU6twoyrLQmNQMXIKVsGCmLAO3UMIgA57KSIHLC4BGvMU6Ze3I47iIF6SUw0Md6kYhVPuXMb+LQKNp5VewqAUUfW4tAU2yfFpSt0CIXDgX9"}),
            "clientPublicECDHKey: not a base64",
        ),
        (
            json!({"captcha": "a", "captchaId": "a", "clientPublicECDHKey": "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ=="}),
            "clientPublicECDHKey: not a base64",
        ),
        (
            json!({"captcha": "a", "captchaId": "a", "clientPublicECDHKey": key, "pushInfo": 3}),
            "pushInfo: invalid type",
        ),
    ] {
        let r = app.post("/api/v6/register", &body).await;
        assert_eq!((r.status, r.message()), (400, "Invalid data"), "{body}");
        assert!(
            r.json["detail"].as_str().unwrap().starts_with(detail),
            "{} vs {detail}",
            r.json["detail"]
        );
    }
    // Captcha.
    assert_eq!(
        app.post("/api/v6/captcha", &json!({"type": null, "locale": "fr"}))
            .await
            .status,
        400
    );
    app.cleanup().await;
}
