//! Attacks and faults of issue 11 (docs/reports/attacks-and-faults.md,
//! compatibility.md), each reproduced against the real router.

use serde_json::json;

use super::phone::valid_code;
use super::support::TestApp;

fn hello(rssi: i64) -> serde_json::Value {
    json!({"timeCollectedOnDevice": 3_919_000_000u64, "timeFromHelloMessage": 1234, "mac": "AQIDBAU=", "rssiCalibrated": rssi})
}

/// Compatibility M3: Android can record `rssiCalibrated` −128 (a peer's Int8
/// byte minus a gain), so anyone nearby could make a later declaration
/// impossible. The report is kept, the values stored clamped to −127..=0,
/// and counted.
#[tokio::test]
async fn an_out_of_range_rssi_does_not_reject_the_report() {
    for app in TestApp::all("rssi").await {
        let contact = json!({"ebid": "yqfVsPunrqc=", "ecc": "wg==", "ids": [hello(-128), hello(500), hello(-60)]});
        let r = app
            .post(
                "/api/v6/report",
                &json!({"token": valid_code(), "contacts": [contact]}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let stored = app.state.store.next_contacts(None, 10, 1000).await.unwrap();
        let rssi: Vec<i16> = stored[0].hellos.iter().map(|h| h.rssi_calibrated).collect();
        assert_eq!(rssi, [-127, 0, -60]);
        let metrics = String::from_utf8(app.get("/metrics").await.bytes).unwrap();
        assert!(
            metrics.contains("\nrobert_report_rssi_out_of_range_total 2\n"),
            "{metrics}"
        );
        app.cleanup().await;
    }
}

/// D1: one client creating challenges as fast as it can filled the global
/// table (100,000) and every other client got 503 for 10 minutes; fetching
/// the images of the full table took the server from 41 MB to 1.77 GB.
/// Now one address gets 429 at its quota, the others still get captchas,
/// and rendered images in memory stay under their cap.
#[tokio::test]
async fn one_client_cannot_exhaust_the_captchas() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "captchaflood", |c| {
        c.captcha.mode = robert_server::config::CaptchaMode::Builtin;
        c.captcha.max_outstanding = 100;
        c.captcha.max_outstanding_per_client = 10;
        c.captcha.image_cache_entries = 8;
    })
    .await
    .unwrap();
    let body = json!({"type": "IMAGE", "locale": "fr"});
    let mut ids = Vec::new();
    let refused = loop {
        let r = app
            .post_from("203.0.113.7:40000", "/api/v6/captcha", &body)
            .await;
        if r.status != 201 {
            break r;
        }
        ids.push(r.json["id"].as_str().unwrap().to_owned());
        assert!(ids.len() <= 100, "never refused");
    };
    assert_eq!(ids.len(), 10, "the per-client quota");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("too many outstanding captchas from this address"),
        "{refused:?}"
    );
    assert_eq!(refused.headers["retry-after"], "600");
    // Another port of the same address is the same client; another address
    // (or another IPv6 /64) is not.
    assert_eq!(
        app.post_from("203.0.113.7:40001", "/api/v6/captcha", &body)
            .await
            .status,
        429
    );
    for other in ["198.51.100.20:5000", "[2001:db8:0:1::5]:5000"] {
        let r = app.post_from(other, "/api/v6/captcha", &body).await;
        assert_eq!(r.status, 201, "{other}: {r:?}");
    }
    // Fetching every image keeps at most `image_cache_entries` in memory.
    for id in &ids {
        let r = app.get(&format!("/api/v6/captcha/{id}/image")).await;
        assert_eq!((r.status, &r.content_type[..]), (200, "image/png"));
    }
    let robert_server::captcha::Captcha::Builtin(b) = &app.state.captcha else {
        unreachable!("built-in provider")
    };
    assert_eq!(b.cached_images(), 8);
    // Its quota comes back when its challenges expire.
    app.clock.advance_secs(601);
    assert_eq!(
        app.post_from("203.0.113.7:40000", "/api/v6/captcha", &body)
            .await
            .status,
        201
    );
    app.cleanup().await;
}

/// Behind a trusted reverse proxy, clients are told apart by the proxy's
/// `X-Forwarded-For`; an untrusted peer cannot pick its identity with it.
#[tokio::test]
async fn captcha_quota_follows_the_trusted_proxy() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "captchaproxy", |c| {
        c.captcha.mode = robert_server::config::CaptchaMode::Builtin;
        c.captcha.max_outstanding = 100;
        c.captcha.max_outstanding_per_client = 2;
        c.server.trusted_proxies = vec!["10.0.0.2".parse().unwrap()];
    })
    .await
    .unwrap();
    let create = |peer: &'static str, xff: &'static str| {
        let app = &app;
        async move {
            let mut req = axum::http::Request::post("/api/v6/captcha")
                .header("content-type", "application/json")
                .header("x-forwarded-for", xff)
                .body(axum::body::Body::from(r#"{"type":"IMAGE","locale":"fr"}"#))
                .unwrap();
            req.extensions_mut().insert(axum::extract::ConnectInfo(
                peer.parse::<std::net::SocketAddr>().unwrap(),
            ));
            app.send(req).await.status
        }
    };
    for _ in 0..2 {
        assert_eq!(create("10.0.0.2:1", "198.51.100.1").await, 201);
    }
    assert_eq!(create("10.0.0.2:1", "198.51.100.1").await, 429);
    assert_eq!(create("10.0.0.2:1", "198.51.100.2").await, 201);
    // A forged entry on the left is ignored.
    assert_eq!(
        create("10.0.0.2:1", "198.51.100.2, 198.51.100.1").await,
        429
    );
    // An untrusted peer is itself, whatever it forwards.
    for _ in 0..2 {
        assert_eq!(create("203.0.113.9:1", "198.51.100.3").await, 201);
    }
    assert_eq!(create("203.0.113.9:1", "198.51.100.4").await, 429);
    app.cleanup().await;
}

/// D2: codes could be guessed through /report without limit (3,759/s from
/// one client), the server's own verify calls being exempt from the code
/// service's per-address limit. Every code tried at /report now counts
/// against the client that sent the report.
#[tokio::test]
async fn code_guessing_through_report_is_limited_per_client() {
    let app = TestApp::with(robert_store::Backend::Sqlite, "guess", |c| {
        c.limits.code_checks_per_minute = 5;
    })
    .await
    .unwrap();
    let guess = |n: usize| json!({"token": format!("{n:06}"), "contacts": []});
    let attacker = "203.0.113.66:1234";
    let mut answered = Vec::new();
    for n in 0..8 {
        answered.push(app.post_from(attacker, "/api/v6/report", &guess(n)).await);
    }
    let statuses: Vec<u16> = answered.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    let limited = &answered[5];
    assert_eq!(limited.headers["retry-after"], "12", "one more every 12 s");
    assert!(
        limited
            .message()
            .contains("Too many submission codes tried"),
        "{limited:?}"
    );
    assert_eq!(
        app.stubs.codes().len(),
        5,
        "refused guesses never reach the code service"
    );
    // Another client still reports.
    let r = app
        .post_from(
            "198.51.100.8:999",
            "/api/v6/report",
            &json!({"token": valid_code(), "contacts": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // The attacker gets one more try per 12 s.
    app.clock.advance_secs(12);
    assert_eq!(
        app.post_from(attacker, "/api/v6/report", &guess(9))
            .await
            .status,
        401
    );
    assert_eq!(
        app.post_from(attacker, "/api/v6/report", &guess(10))
            .await
            .status,
        429
    );
    let metrics = String::from_utf8(app.get("/metrics").await.bytes).unwrap();
    assert!(
        metrics.contains("\nrobert_report_code_checks_limited_total 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("robert_http_requests_total{route=\"/api/v6/report\",status=\"429\"} 4")
    );
    app.cleanup().await;
}
