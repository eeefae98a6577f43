//! Traffic privacy (docs/traffic-privacy.md): requests without the
//! `robert-fake` mark are served as before; marked ones get padded answers
//! whose size does not tell "at risk"; marked dummies are answered like
//! real requests and dropped: no row, no code check, no log line, only a
//! counter.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::Request;
use robert_core::mac::Salt;
use robert_server::privacy::{LIST_DUMMY_REPORTS, LIST_DUMMY_STATUS, LIST_PADDING};
use robert_store::Backend;
use serde_json::{Value, json};

use super::phone::{Phone, proximity, valid_code};
use super::support::{Resp, TestApp};

const HOUR: u64 = 3600;

/// POSTs `body` with the mark `robert-fake: <mark>` and, as the SDK does, a
/// `padding` field (the DTOs ignore it).
async fn post_marked(app: &TestApp, path: &str, body: &Value, mark: &str) -> Resp {
    let mut body = body.clone();
    body["padding"] = json!("0".repeat(100));
    let req = Request::post(path)
        .header("content-type", "application/json")
        .header("robert-fake", mark)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(req).await
}

fn content_length(r: &Resp) -> usize {
    r.headers["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_config_list_announces_padding_and_dummy_rates() {
    for app in TestApp::all("privacy_list").await {
        let list = |r: &Resp| r.json["config"].as_array().unwrap().clone();
        let mut p = Phone::register(&app, "bob").await;
        let s = p.status(&app).await;
        let entries = list(&s);
        let value = |name: &str| {
            entries
                .iter()
                .find(|e| e["name"] == name)
                .map(|e| e["value"].clone())
        };
        assert_eq!(value(LIST_PADDING), Some(json!(true)));
        assert_eq!(value(LIST_DUMMY_REPORTS), Some(json!(0.1)));
        assert_eq!(value(LIST_DUMMY_STATUS), Some(json!(1.0)));
        // An entry set in the database wins over `[privacy]`.
        app.state
            .store
            .set_app_config(LIST_DUMMY_REPORTS, &json!(0.5))
            .await
            .unwrap();
        app.state.invalidate_app_config();
        let json = app.state.app_config_json().await.unwrap();
        let entries: Vec<Value> = serde_json::from_str(json.get()).unwrap();
        let reports: Vec<&Value> = entries
            .iter()
            .filter(|e| e["name"] == LIST_DUMMY_REPORTS)
            .collect();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0]["value"], json!(0.5));
        app.cleanup().await;
    }
    // `publish = false`: nothing added.
    let app = TestApp::with(Backend::Sqlite, "privacy_nolist", |c| {
        c.privacy.publish = false;
    })
    .await
    .unwrap();
    let json = app.state.app_config_json().await.unwrap();
    assert_eq!(json.get(), "[]");
    app.cleanup().await;
}

#[tokio::test]
async fn unmarked_requests_are_not_padded() {
    let app = TestApp::new(Backend::Sqlite, "privacy_plain")
        .await
        .unwrap();
    let mut phone = Phone::register(&app, "plain").await;
    let s = phone.status(&app).await;
    assert_eq!(s.status, 200, "{s:?}");
    assert!(s.json.get("padding").is_none());
    assert_eq!(content_length(&s), s.bytes.len());
    let r = phone.report(&app, &valid_code()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["message", "reportValidationToken", "success"]);
    // A mark other than 0 or 1 is refused.
    let bad = post_marked(&app, "/api/v6/status", &json!({}), "yes").await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert!(bad.json["detail"].as_str().unwrap().contains("robert-fake"));
    app.cleanup().await;
}

#[tokio::test]
async fn padded_status_answers_have_one_size_at_risk_or_not() {
    for app in TestApp::all("privacy_status").await {
        let t0 = app.now();
        app.set_now(t0.minus(2 * HOUR));
        let mut john = Phone::register(&app, "john").await;
        let mut sarah = Phone::register(&app, "sarah").await;
        let mut paul = Phone::register(&app, "paul").await;
        app.set_now(t0);
        proximity(&app, &mut [&mut john, &mut sarah], t0.minus(HOUR), HOUR);
        let r = john.report(&app, &valid_code()).await;
        assert_eq!(r.status, 200, "{r:?}");
        app.batch().await;

        // Unmarked, the size tells the risk.
        let at_risk = sarah.status(&app).await;
        let not = paul.status(&app).await;
        assert_eq!(
            (
                at_risk.json["riskLevel"].clone(),
                not.json["riskLevel"].clone()
            ),
            (json!(4), json!(0))
        );
        assert!(at_risk.bytes.len() > not.bytes.len() + 200);

        // Marked, it does not.
        app.set_now(t0.plus(HOUR));
        let body = |p: &Phone| p.auth_body(&app, Salt::Status);
        let at_risk = post_marked(&app, "/api/v6/status", &body(&sarah), "0").await;
        let not = post_marked(&app, "/api/v6/status", &body(&paul), "0").await;
        assert_eq!(
            (at_risk.status, not.status),
            (200, 200),
            "{at_risk:?} {not:?}"
        );
        assert_eq!(at_risk.json["riskLevel"], 4);
        assert_eq!(not.json["riskLevel"], 0);
        assert!(at_risk.json["declarationToken"].is_string());
        assert_eq!(at_risk.bytes.len(), not.bytes.len());
        assert_eq!(
            at_risk.bytes.len() % robert_server::privacy::STATUS_BUCKET,
            0
        );
        assert_eq!(content_length(&at_risk), at_risk.bytes.len());
        assert!(not.json["padding"].as_str().unwrap().len() > 2000);

        // A dummy status: the same size, no registration touched, the
        // rate limit untouched.
        app.set_now(t0.plus(2 * HOUR));
        let before = app.registration(paul.id_a(&app)).await.unwrap();
        let dummy = post_marked(&app, "/api/v6/status", &json!({"ebid": "x"}), "1").await;
        assert_eq!(dummy.status, 200, "{dummy:?}");
        assert_eq!(dummy.json["riskLevel"], 0);
        let after = app.registration(paul.id_a(&app)).await.unwrap();
        assert_eq!(before.last_status_epoch, after.last_status_epoch);
        let real = post_marked(&app, "/api/v6/status", &body(&paul), "0").await;
        assert_eq!(real.status, 200, "{real:?}");
        assert_eq!(dummy.bytes.len(), real.bytes.len());
        assert_eq!(
            app.state
                .privacy
                .dummies(robert_server::privacy::PrivateRoute::Status),
            1
        );
        app.cleanup().await;
    }
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// The lines at INFO or above.
fn info_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|lvl| l.contains(lvl))
        })
        // Drop the timestamp.
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

// current_thread: the subscriber below is the default of this thread only,
// which runs the whole server.
#[tokio::test]
async fn a_dummy_report_is_answered_like_a_real_one_and_leaves_no_trace() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::new(Backend::Sqlite, "privacy_dummy")
        .await
        .unwrap();
    let t0 = app.now();
    app.set_now(t0.minus(2 * HOUR));
    let mut john = Phone::register(&app, "john").await;
    let mut sarah = Phone::register(&app, "sarah").await;
    app.set_now(t0);
    proximity(&app, &mut [&mut john, &mut sarah], t0.minus(HOUR), HOUR);
    let queued = |app: &TestApp| {
        let store = app.state.store.clone();
        async move {
            store
                .next_contacts(None, usize::MAX, u64::MAX)
                .await
                .unwrap()
                .len()
        }
    };
    // A first report: one-time lines (the stub code service has no claim
    // API, which the server notes once) are out of the way.
    let first = valid_code();
    let r = post_marked(&app, "/api/v6/report", &sarah.report_body(&first), "0").await;
    assert_eq!(r.status, 200, "{r:?}");
    let before = queued(&app).await;
    captured.take();

    // A real report from a padding client.
    let code = valid_code();
    let real = post_marked(&app, "/api/v6/report", &john.report_body(&code), "0").await;
    assert_eq!(real.status, 200, "{real:?}");
    let real_log = captured.take();
    let stored = queued(&app).await;
    assert_eq!(stored - before, john.heard.len());
    assert_eq!(app.stubs.codes(), [first.clone(), code.clone()]);

    // A dummy: a random code, no contact.
    let dummy_body = json!({"token": "3d27eb2c-9a3b-4e4f-8d7c-1234567890ab", "contacts": []});
    let dummy = post_marked(&app, "/api/v6/report", &dummy_body, "1").await;
    let dummy_log = captured.take();
    assert_eq!(dummy.status, 200, "{dummy:?}");
    // Same size, same fields, same status; a token that validates nothing.
    assert_eq!(dummy.bytes.len(), real.bytes.len());
    assert_eq!(
        dummy.bytes.len() % robert_server::privacy::RESPONSE_BUCKET,
        0
    );
    let keys = |r: &Resp| {
        let mut k: Vec<String> = r.json.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&dummy), keys(&real));
    assert_eq!(dummy.json["message"], real.json["message"]);
    let (rt, dt) = (
        real.json["reportValidationToken"].as_str().unwrap(),
        dummy.json["reportValidationToken"].as_str().unwrap(),
    );
    assert_eq!(rt.len(), dt.len());
    assert_ne!(
        rt.rsplit('.').next(),
        dt.rsplit('.').next(),
        "the dummy's signature is random"
    );

    // Nothing stored, no code checked.
    assert_eq!(queued(&app).await, stored);
    assert_eq!(app.stubs.codes(), [first, code]);
    assert_eq!(app.kpis().await["reportsCount"], 2);

    // The logs: nothing at INFO and above that tells them apart (neither
    // writes a line of its own), and nothing anywhere that names a dummy.
    assert_eq!(
        info_lines(&dummy_log),
        info_lines(&real_log),
        "{real_log}\n---\n{dummy_log}"
    );
    for word in ["dummy", "fake", "Dummy", "Fake"] {
        assert!(!dummy_log.contains(word), "{dummy_log}");
    }
    assert!(
        real_log.contains("report stored"),
        "the real one's line is at DEBUG: {real_log}"
    );

    // Only the counter moves.
    let metrics = app.get("/metrics").await;
    let text = String::from_utf8(metrics.bytes).unwrap();
    assert!(
        text.contains("robert_privacy_dummy_requests_total{route=\"/api/v6/report\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("robert_privacy_padded_requests_total{route=\"/api/v6/report\"} 2"),
        "{text}"
    );
    app.cleanup().await;
}
