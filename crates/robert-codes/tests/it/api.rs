//! HTTP API behaviour (SQLite; storage semantics are covered on both back ends in `store`).

use robert_codes::CodeStore as _;
use robert_codes::code::CodeKind;
use robert_codes::service::Channel;

use crate::support::*;

#[tokio::test]
async fn verify_answers_valid_false_for_anything_malformed() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let addr = serve(svc.router()).await;
    for path in [
        "/api/v1/verify",
        "/api/v1/verify?code=",
        "/api/v1/verify?code=%FF%FE",
        "/api/v1/verify?code=abc&code=def",
        "/api/v1/verify?code=a.b.c",
        "/api/v1/verify?code=eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.",
        "/api/v1/verify?code=ABCDEF&type=2",
        "/api/v1/verify?code=%00%00%00%00%00%00",
    ] {
        let (status, body) = http_get(addr, path, &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (200, r#"{"valid":false}"#),
            "{path}"
        );
    }
    let long = "x".repeat(10_000);
    let (status, body) = http_get(addr, &format!("/api/v1/verify?code={long}"), &[]).await;
    assert_eq!((status, body.as_str()), (200, r#"{"valid":false}"#));
    // A real code with the ignored legacy `type` parameter.
    let issued = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    let (status, body) = http_get(
        addr,
        &format!("/api/v1/verify?code={}&type=2", issued.code.as_str()),
        &[],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"valid":true}"#));
}

#[tokio::test]
async fn generate_requires_a_key_and_returns_the_reference_shape() {
    let db = sqlite().await;
    let clock = manual_at(utc("2022-01-11T18:28:30Z"));
    let svc = service(&db, &clock);
    let addr = serve(svc.router()).await;
    let (status, _) = http_get(addr, "/api/v1/generate/short", &[]).await;
    assert_eq!(status, 401);
    let (status, _) = http_get(
        addr,
        "/api/v1/generate/short",
        &[("Authorization", "Bearer wrong")],
    )
    .await;
    assert_eq!(status, 401);
    let auth = format!("Bearer {API_KEY}");
    let (status, _) = http_get(addr, "/api/v1/generate/long", &[("Authorization", &auth)]).await;
    assert_eq!(status, 400);
    let (status, body) =
        http_get(addr, "/api/v1/generate/short", &[("Authorization", &auth)]).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["dateGenerate"], "2022-01-11T18:28:30Z");
    assert_eq!(v["validFrom"], "2022-01-11T18:28:30Z");
    assert_eq!(v["validUntil"], "2022-01-11T19:28:30Z");
    let code = v["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    let (status, body) = http_get(addr, "/api/v1/generate/test", &[("X-Api-Key", API_KEY)]).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"].as_str().unwrap().len(), 12);
    assert_eq!(v["validUntil"], "2022-01-26T23:59:59Z");
    let (_, body) = http_get(addr, &format!("/api/v1/verify?code={code}"), &[]).await;
    assert_eq!(body, r#"{"valid":true}"#);
    // Audit: the gateway issued two codes; no code in the log.
    let audit = db.store.audit_entries(10).await.unwrap();
    let issued: Vec<_> = audit.iter().filter(|e| e.action == "issue_code").collect();
    assert_eq!(issued.len(), 2);
    assert!(
        issued
            .iter()
            .all(|e| e.actor == "api:gateway" && !e.detail.contains(&code))
    );
}

#[tokio::test]
async fn api_quota_and_rate_limits() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let mut cfg = config();
    cfg.api.clients[0].daily_quota = 2;
    cfg.api.clients[0].per_minute = 3;
    cfg.api.verify_per_second = 1;
    cfg.api.verify_burst = 3;
    let svc = service_with(&db, cfg, &clock);
    let addr = serve(svc.router()).await;
    let h = [("X-Api-Key", API_KEY)];
    assert_eq!(http_get(addr, "/api/v1/generate/short", &h).await.0, 200);
    assert_eq!(http_get(addr, "/api/v1/generate/short", &h).await.0, 200);
    let (status, body) = http_get(addr, "/api/v1/generate/short", &h).await;
    assert_eq!(status, 429);
    assert!(body.contains("quota"), "{body}");
    let (status, body) = http_get(addr, "/api/v1/generate/short", &h).await;
    assert_eq!(status, 429);
    assert!(body.contains("Too many requests"), "{body}");
    // Verify: a burst of 3 per address, refilled at 1/s. Of 10 quick
    // requests the first 3 pass and most of the rest are refused.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(http_get(addr, "/api/v1/verify?code=AAAAAA", &[]).await.0);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 5, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429));
    assert!(svc.metrics().render().contains(&format!(
        "robert_codes_rate_limited_total{{endpoint=\"verify\"}} {refused}"
    )));
    // Claims tell whether a code exists too: they draw on the same budget,
    // so switching endpoints buys a guesser nothing.
    let body = format!(r#"{{"code":"AAAAAA","key":"{}"}}"#, "00".repeat(32));
    let mut claims = Vec::new();
    for _ in 0..3 {
        let r = http(
            addr,
            "POST",
            "/api/v1/claim",
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
        claims.push(r.status);
    }
    assert!(
        claims.iter().filter(|s| **s == 429).count() >= 2,
        "{claims:?}"
    );
    assert!(
        svc.metrics()
            .render()
            .contains("robert_codes_rate_limited_total{endpoint=\"claim\"}")
    );

    // The backend's address can be exempted.
    let mut cfg = config();
    cfg.api.verify_per_second = 1;
    cfg.api.verify_burst = 1;
    cfg.api.verify_unlimited_addresses = vec!["127.0.0.1".parse().unwrap()];
    let svc = service_with(&db, cfg, &clock);
    let addr = serve(svc.router()).await;
    for _ in 0..5 {
        assert_eq!(
            http_get(addr, "/api/v1/verify?code=AAAAAA", &[]).await.0,
            200
        );
    }
}

#[tokio::test]
async fn kpi_endpoint_bounds_and_shape() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let c = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    assert!(svc.verify(&c.code).await.unwrap().valid);
    let addr = serve(svc.internal_router()).await;
    let (status, body) = http_get(
        addr,
        "/internal/api/v1/kpi?fromDate=2026-01-09&toDate=2026-01-10",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[1]["date"], "2026-01-10");
    assert_eq!(v[1]["nbShortCodesGenerated"], 1);
    assert_eq!(v[1]["nbShortCodesUsed"], 1);
    assert_eq!(v[1]["nbJwtUsed"], 0);
    let (status, body) = http_get(
        addr,
        "/internal/api/v1/kpi?fromDate=2026-01-10&toDate=2026-01-09",
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("INCONSISTENT_BOUNDS"));
    let (status, body) = http_get(
        addr,
        "/internal/api/v1/kpi?fromDate=2025-01-01&toDate=2026-01-09",
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("PERIOD_TOO_LARGE"));
    assert_eq!(
        http_get(addr, "/internal/api/v1/kpi?fromDate=x&toDate=y", &[])
            .await
            .0,
        400
    );
    assert_eq!(http_get(addr, "/internal/api/v1/kpi", &[]).await.0, 400);
    let (status, body) = http_get(addr, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("submission_verify_code_total{valid=\"true\",code_type=\"SHORT\"} 1"));
    assert!(body.contains("robert_codes_issued_total{code_type=\"SHORT\",channel=\"cli\"} 1"));
    assert_eq!(http_get(addr, "/health", &[]).await.0, 200);
}

/// `robert codes serve` keeps KPIs, metrics and health off the public
/// listener: by default both listeners are on loopback, and the public
/// router (API and portal) answers 404 for the internal paths.
#[tokio::test]
async fn internal_endpoints_are_not_on_the_public_router() {
    let defaults = robert_codes::Config::default();
    assert!(defaults.internal_listen.ip().is_loopback());
    assert!(defaults.listen.ip().is_loopback());
    assert_ne!(defaults.listen, defaults.internal_listen);
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let addr = serve(svc.router()).await;
    for path in [
        "/metrics",
        "/health",
        "/internal/api/v1/kpi?fromDate=2026-01-01&toDate=2026-01-09",
    ] {
        assert_eq!(http_get(addr, path, &[]).await.0, 404, "{path}");
    }
    db.finish().await;
}

/// Arbitrary query strings on the verify route never yield anything but 200/valid:false.
#[test]
fn verify_route_never_fails_on_arbitrary_input() {
    use proptest::test_runner::{Config as PtConfig, TestRunner};
    use tower::ServiceExt as _;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (router, _db) = rt.block_on(async {
        let db = sqlite().await;
        let clock = manual_at(utc("2026-01-10T10:00:00Z"));
        (service(&db, &clock).router(), db)
    });
    let mut runner = TestRunner::new(PtConfig {
        cases: 200,
        ..PtConfig::default()
    });
    runner
        .run(&"[ -~]{0,120}", |q| {
            let uri = format!("/api/v1/verify?code={}", encode_query(&q));
            let req = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let res = rt.block_on(router.clone().oneshot(req)).unwrap();
            proptest::prop_assert_eq!(res.status(), 200);
            let raw = format!("/api/v1/verify?{q}");
            if let Ok(req) = axum::http::Request::get(raw).body(axum::body::Body::empty()) {
                let res = rt.block_on(router.clone().oneshot(req)).unwrap();
                proptest::prop_assert!(res.status().as_u16() < 500);
            }
            Ok(())
        })
        .unwrap();
}

/// GET from a chosen loopback source address (Linux routes all of
/// 127.0.0.0/8 to `lo`), so tests can play the gateway and a stranger.
async fn get_from(
    source: &str,
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = sock.connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

/// Default mode: an API key is required; a gateway's consumer header alone
/// is refused; Kong's `apikey` header carries a key like `X-Api-Key`.
#[tokio::test]
async fn generate_api_key_mode_ignores_gateway_headers() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    assert!(
        svc.config().api.gateway.is_none(),
        "API keys only by default"
    );
    let addr = serve(svc.router()).await;
    let consumer = [("X-Consumer-Username", "doctor-portal")];
    assert_eq!(
        http_get(addr, "/api/v1/generate/short", &consumer).await.0,
        401
    );
    assert_eq!(
        get_from("127.0.0.2", addr, "/api/v1/generate/short", &consumer)
            .await
            .0,
        401
    );
    assert_eq!(
        http_get(addr, "/api/v1/generate/short", &[("apikey", "wrong")])
            .await
            .0,
        401
    );
    let (status, body) = http_get(addr, "/api/v1/generate/short", &[("apikey", API_KEY)]).await;
    assert_eq!(status, 200, "{body}");
}

/// Trusted-gateway mode: the consumer header is honoured only from the
/// configured gateway address (the TCP peer, not `X-Forwarded-For`), never
/// for Kong's anonymous consumer, with a per-consumer daily quota; API
/// keys keep working from anywhere.
#[tokio::test]
async fn generate_trusted_gateway_mode() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let mut cfg = config();
    cfg.api.trust_forwarded_for = true;
    cfg.api.gateway = Some(
        toml::from_str(
            "addresses = [\"127.0.0.2\"]\nconsumer_header = \"X-Consumer-Username\"\ndaily_quota = 2\nper_minute = 100\n",
        )
        .unwrap(),
    );
    let svc = service_with(&db, cfg, &clock);
    let addr = serve(svc.router()).await;
    let path = "/api/v1/generate/short";
    let alice = [("X-Consumer-Username", "doctor-portal")];
    // From the gateway: accepted, audited under the consumer's name.
    let (status, body) = get_from("127.0.0.2", addr, path, &alice).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"].as_str().unwrap().len(), 6);
    let audit = db.store.audit_entries(10).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "issue_code" && e.actor == "gateway:doctor-portal")
    );
    // From anywhere else, even claiming the gateway in X-Forwarded-For: refused.
    assert_eq!(get_from("127.0.0.1", addr, path, &alice).await.0, 401);
    let spoof = [
        ("X-Consumer-Username", "doctor-portal"),
        ("X-Forwarded-For", "127.0.0.2"),
    ];
    assert_eq!(get_from("127.0.0.3", addr, path, &spoof).await.0, 401);
    // From the gateway without a consumer, with an empty one, or anonymous: refused.
    assert_eq!(get_from("127.0.0.2", addr, path, &[]).await.0, 401);
    assert_eq!(
        get_from("127.0.0.2", addr, path, &[("X-Consumer-Username", " ")])
            .await
            .0,
        401
    );
    let anonymous = [
        ("X-Consumer-Username", "anonymous"),
        ("X-Anonymous-Consumer", "true"),
    ];
    assert_eq!(get_from("127.0.0.2", addr, path, &anonymous).await.0, 401);
    // Per-consumer daily quota.
    assert_eq!(get_from("127.0.0.2", addr, path, &alice).await.0, 200);
    let (status, body) = get_from("127.0.0.2", addr, path, &alice).await;
    assert_eq!(status, 429, "{body}");
    let bob = [("X-Consumer-Username", "other-portal")];
    assert_eq!(get_from("127.0.0.2", addr, path, &bob).await.0, 200);
    // API keys keep working, from any address.
    assert_eq!(
        get_from("127.0.0.3", addr, path, &[("X-Api-Key", API_KEY)])
            .await
            .0,
        200
    );
}

#[test]
fn gateway_mode_needs_addresses() {
    let mut cfg = config();
    cfg.api.gateway = Some(toml::from_str("addresses = []\n").unwrap());
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("api.gateway.addresses"), "{err}");
    cfg.api.gateway = Some(
        toml::from_str("addresses = [\"10.0.0.5\"]\nconsumer_header = \"bad header\"\n").unwrap(),
    );
    assert!(cfg.validate().is_err());
    let g: robert_codes::config::GatewayConfig =
        toml::from_str("addresses = [\"10.0.0.5\"]\n").unwrap();
    assert_eq!(g.consumer_header, "X-Consumer-Username");
}

/// The service serves its OpenAPI document; it describes every route, its
/// references resolve, and real answers use its property names.
#[tokio::test]
async fn openapi_document_is_served_and_matches_the_api() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let addr = serve(svc.router()).await;
    let (status, body) = http_get(addr, "/api/v1/openapi.json", &[]).await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    for path in [
        "/api/v1/verify",
        "/api/v1/generate/{kind}",
        "/api/v1/openapi.json",
        "/internal/api/v1/kpi",
        "/metrics",
        "/health",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} undocumented");
    }
    // Every $ref points at a schema.
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        out.push(x.as_str().unwrap().to_owned());
                    }
                    refs(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "{r}");
    }
    // Real answers carry exactly the documented properties.
    let props = |schema: &str| -> std::collections::BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let (_, body) = http_get(addr, "/api/v1/generate/short", &[("X-Api-Key", API_KEY)]).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys: std::collections::BTreeSet<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, props("GeneratedCode"));
    let kpi = serde_json::to_value(
        svc.kpi(
            chrono::NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 1, 10).unwrap(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let keys: std::collections::BTreeSet<String> =
        kpi[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, props("KpiDay"));
}

/// A database that cannot serve (here: its pool closed, as a lost
/// connection or a failover would leave it) is 503 with `Retry-After`,
/// not 500, on the verify API and the two-phase use (the portal: in
/// `portal.rs`).
#[tokio::test]
async fn an_unavailable_database_is_503_with_retry_after() {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service(&db, &clock);
    let issued = svc.issue(CodeKind::Short, &Channel::Cli).await.unwrap();
    let addr = serve(svc.router()).await;
    let code = issued.code.as_str().to_owned();
    let verify = format!("/api/v1/verify?code={code}");
    assert_eq!(http_get(addr, &verify, &[]).await.0, 200);

    svc.store().close().await;

    let r = http(addr, "GET", &verify, &[], "").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.body.contains("retry later"), "{}", r.body);
    let claim = format!(r#"{{"code":"{code}","key":"{}"}}"#, "ab".repeat(32));
    let json = [("Content-Type", "application/json")];
    for path in ["/api/v1/claim", "/api/v1/claim/confirm"] {
        let r = http(addr, "POST", path, &json, &claim).await;
        assert_eq!(
            (r.status, r.header("retry-after")),
            (503, Some("5")),
            "{path}"
        );
    }
}
