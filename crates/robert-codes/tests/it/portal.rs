//! Doctor portal over HTTP (forms, cookies, CSRF, lockout, quotas, audit).

use std::net::SocketAddr;

use robert_codes::{CodesService, ManualClock};

use crate::support::*;

const PW: &str = "correct horse battery staple";

struct Portal {
    addr: SocketAddr,
    svc: CodesService,
    clock: ManualClock,
    _db: TestDb,
}

async fn portal(cfg: robert_codes::Config) -> Portal {
    let db = sqlite().await;
    let clock = manual_at(utc("2026-01-10T10:00:00Z"));
    let svc = service_with(&db, cfg, &clock);
    svc.add_doctor("dr.martin", "Dr Martin", PW, Some(2))
        .await
        .unwrap();
    let addr = serve(svc.router()).await;
    Portal {
        addr,
        svc,
        clock,
        _db: db,
    }
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

/// GET the login form: (csrf cookie value, csrf field value).
async fn login_form(p: &Portal) -> (String, String) {
    let r = http(p.addr, "GET", "/portal/login", &[], "").await;
    assert_eq!(r.status, 200);
    (
        r.cookie("robert_codes_login_csrf").unwrap(),
        csrf_of(&r.body),
    )
}

async fn try_login(p: &Portal, password: &str) -> Resp {
    let (cookie, field) = login_form(p).await;
    let body = format!(
        "csrf={field}&username=dr.martin&password={}",
        encode_query(password)
    );
    let c = format!("robert_codes_login_csrf={cookie}");
    post_form(p.addr, "/portal/login", &c, &body).await
}

/// Posts a form to the portal with a cookie.
async fn post_form(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> Resp {
    http(addr, "POST", path, &[FORM, ("Cookie", cookie)], body).await
}

async fn login(p: &Portal) -> String {
    let r = try_login(p, PW).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/portal/code"));
    r.cookie("robert_codes_session").unwrap()
}

#[tokio::test]
async fn login_generate_verify_and_logout() {
    let p = portal(config()).await;
    let r = http(p.addr, "GET", "/portal/code", &[], "").await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/portal/login"))
    );

    let session = login(&p).await;
    let cookie = format!("robert_codes_session={session}");
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Dr Martin"));
    assert_eq!(element_text(&r.body, "quota-left").as_deref(), Some("2"));
    let csrf = csrf_of(&r.body);
    // Without or with a wrong CSRF token: refused.
    let r = post_form(p.addr, "/portal/code", &cookie, "csrf=nope").await;
    assert_eq!(r.status, 403);
    let r = post_form(p.addr, "/portal/code", &cookie, "").await;
    assert_eq!(r.status, 400);
    let r = post_form(p.addr, "/portal/code", &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let code = element_text(&r.body, "code").unwrap();
    assert_eq!(code.len(), 6);
    assert_eq!(element_text(&r.body, "expiry").as_deref(), Some("12:00")); // 11:00 UTC = 12:00 Paris
    assert!(r.body.contains("data-expires=\"1768042800\""));
    assert_eq!(
        element_text(&r.body, "countdown").as_deref(),
        Some("60 min 00 s")
    );
    let (_, body) = http_get(p.addr, &format!("/api/v1/verify?code={code}"), &[]).await;
    assert_eq!(body, r#"{"valid":true}"#);
    let (_, body) = http_get(p.addr, &format!("/api/v1/verify?code={code}"), &[]).await;
    assert_eq!(body, r#"{"valid":false}"#);

    // Quota of 2: one more, then 429.
    let form = format!("csrf={csrf}");
    assert_eq!(
        post_form(p.addr, "/portal/code", &cookie, &form)
            .await
            .status,
        200
    );
    let r = post_form(p.addr, "/portal/code", &cookie, &form).await;
    assert_eq!(r.status, 429);
    assert!(r.body.contains("Quota atteint"));

    // Audit: who and when, never the code.
    let audit = p.svc.store().audit_entries(50).await.unwrap();
    let issued: Vec<_> = audit.iter().filter(|e| e.action == "issue_code").collect();
    assert_eq!(issued.len(), 2);
    assert!(issued.iter().all(|e| e.actor == "doctor:dr.martin"));
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.contains(&code) && !e.actor.contains(&code))
    );

    // Logout needs the CSRF token, then the session is gone.
    let r = post_form(p.addr, "/portal/logout", &cookie, "csrf=x").await;
    assert_eq!(r.status, 403);
    let r = post_form(p.addr, "/portal/logout", &cookie, &form).await;
    assert_eq!(r.status, 303);
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/portal/login"))
    );
}

#[tokio::test]
async fn cookies_and_headers_are_hardened() {
    let mut cfg = config();
    cfg.portal.cookie_secure = true;
    let p = portal(cfg).await;
    let r = http(p.addr, "GET", "/portal/login", &[], "").await;
    let set = r.all("set-cookie").join("\n");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure"),
        "{set}"
    );
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(r.body.contains("<label for=\"username\">"));
    let r = try_login(&p, PW).await;
    let session = r
        .all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("robert_codes_session="))
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/portal"] {
        assert!(session.contains(attr), "{session}");
    }
    let css = http(p.addr, "GET", "/portal/static/portal.css", &[], "").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    let js = http(p.addr, "GET", "/portal/static/countdown.js", &[], "").await;
    assert!(js.body.contains("data-expires"));
}

#[tokio::test]
async fn login_csrf_is_required() {
    let p = portal(config()).await;
    let body = format!("csrf=abc&username=dr.martin&password={}", encode_query(PW));
    let r = http(p.addr, "POST", "/portal/login", &[FORM], &body).await;
    assert_eq!(r.status, 403);
    let r = post_form(
        p.addr,
        "/portal/login",
        "robert_codes_login_csrf=xyz",
        &body,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.cookie("robert_codes_session").is_none());
}

#[tokio::test]
async fn lockout_with_back_off() {
    let p = portal(config()).await;
    for i in 0..5 {
        let r = try_login(&p, "wrong password!").await;
        assert_eq!(r.status, 401, "attempt {i}");
        assert!(r.body.contains("role=\"alert\""));
    }
    // Locked for 60 s: even the right password fails.
    assert_eq!(try_login(&p, PW).await.status, 401);
    p.clock.advance_secs(61);
    // Another failure: locked for 120 s now.
    assert_eq!(try_login(&p, "wrong again!!").await.status, 401);
    p.clock.advance_secs(100);
    assert_eq!(try_login(&p, PW).await.status, 401, "still locked");
    p.clock.advance_secs(21);
    login(&p).await;
    // Success resets the counter.
    let d = p
        .svc
        .store()
        .doctor_by_username("dr.martin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.failed_logins, d.locked_until), (0, None));
    let audit = p.svc.store().audit_entries(50).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "account_locked"));
    assert!(audit.iter().any(|e| e.action == "login_refused_locked"));
}

#[tokio::test]
async fn unknown_and_disabled_doctors_cannot_log_in() {
    let p = portal(config()).await;
    let session = login(&p).await;
    assert!(p.svc.disable_doctor("dr.martin").await.unwrap());
    let cookie = format!("robert_codes_session={session}");
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 303, "session ended");
    assert_eq!(try_login(&p, PW).await.status, 401);
    let (c, f) = login_form(&p).await;
    let body = format!("csrf={f}&username=nobody&password=whatever1234");
    let r = post_form(
        p.addr,
        "/portal/login",
        &format!("robert_codes_login_csrf={c}"),
        &body,
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn malformed_portal_requests_get_4xx_pages() {
    let p = portal(config()).await;
    let (c, _) = login_form(&p).await;
    let cookie = format!("robert_codes_login_csrf={c}");
    for (headers, body) in [
        (vec![FORM, ("Cookie", cookie.as_str())], "username=%ZZ&&&"),
        (vec![FORM, ("Cookie", cookie.as_str())], ""),
        (
            vec![
                ("Content-Type", "application/json"),
                ("Cookie", cookie.as_str()),
            ],
            "{}",
        ),
        (
            vec![("Cookie", cookie.as_str())],
            "csrf=a&username=b&password=c",
        ),
    ] {
        let r = http(p.addr, "POST", "/portal/login", &headers, body).await;
        assert!((400..500).contains(&r.status), "{} for {body}", r.status);
    }
    let big = "a".repeat(20_000);
    let r = post_form(p.addr, "/portal/login", &cookie, &format!("csrf={big}")).await;
    assert!((400..500).contains(&r.status), "{}", r.status);
    let r = http(p.addr, "GET", "/portal/nope", &[], "").await;
    assert_eq!(r.status, 404);
    let r = post_form(
        p.addr,
        "/portal/code",
        "robert_codes_session=forged",
        "csrf=x",
    )
    .await;
    assert_eq!(r.status, 303);
}

/// A locked account is told it is locked and until when, even with the
/// right password (the reference's wording "mot de passe incorrect" sent
/// doctors hunting for a password that was right).
#[tokio::test]
async fn locked_account_is_told_until_when() {
    let p = portal(config()).await;
    for _ in 0..4 {
        let r = try_login(&p, "wrong password!").await;
        assert!(r.body.contains("Identifiant ou mot de passe incorrect"));
    }
    // The fifth failure locks for 60 s: 10:01 UTC = 11:01 Paris.
    let r = try_login(&p, "wrong password!").await;
    assert_eq!(r.status, 401);
    assert!(
        r.body.contains("Compte bloqué") && r.body.contains("11:01"),
        "{}",
        r.body
    );
    let r = try_login(&p, PW).await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("jusqu&#39;à 11:01"), "{}", r.body);
    assert!(r.body.contains("Account locked") && r.body.contains("lang=\"en\""));
    assert!(r.cookie("robert_codes_session").is_none());
}

/// Plain HTTP on a host other than localhost with `Secure` cookies: the
/// browser drops the form's cookie, so instead of "form session expired"
/// forever the page says what to do.
#[tokio::test]
async fn plain_http_with_secure_cookies_says_what_to_do() {
    let mut cfg = config();
    cfg.portal.cookie_secure = true;
    let p = portal(cfg).await;
    let (_, field) = login_form(&p).await;
    let body = format!(
        "csrf={field}&username=dr.martin&password={}",
        encode_query(PW)
    );
    // What a browser sends after dropping the Secure cookie.
    let r = http(
        p.addr,
        "POST",
        "/portal/login",
        &[FORM, ("Origin", "http://192.168.1.20:8087")],
        &body,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("HTTPS") && r.body.contains("portal.cookie_secure = false"),
        "{}",
        r.body
    );
    // On http://localhost browsers keep Secure cookies: the usual message.
    let r = http(
        p.addr,
        "POST",
        "/portal/login",
        &[FORM, ("Origin", "http://localhost:8087")],
        &body,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(!r.body.contains("cookie_secure"), "{}", r.body);
    assert!(r.body.contains("Session du formulaire expirée"));
}

/// The code page shows the code's QR (the app's deep link), copy and print
/// buttons and English beside French; the quota page says when the quota
/// resets.
#[tokio::test]
async fn code_page_has_qr_copy_print_and_quota_reset() {
    let p = portal(config()).await;
    let cookie = format!("robert_codes_session={}", login(&p).await);
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    // 10:00 UTC = 11:00 Paris: the quota resets at midnight Paris.
    assert_eq!(
        element_text(&r.body, "quota-reset").as_deref(),
        Some("00:00")
    );
    assert!(r.body.contains("lang=\"en\"") && r.body.contains("Generate a code"));
    let form = format!("csrf={}", csrf_of(&r.body));
    let r = post_form(p.addr, "/portal/code", &cookie, &form).await;
    assert_eq!(r.status, 200);
    let code = element_text(&r.body, "code").unwrap();
    let link = robert_codes::qr::deep_link(&p.svc.config().qr.url_template, &code);
    let svg = robert_codes::qr::QrMatrix::encode(&link)
        .unwrap()
        .to_svg(6, "QR code · TousAntiCovid");
    let svg = &svg[svg.find("<svg").unwrap()..];
    assert!(
        r.body.contains(svg),
        "the page's QR is the code's deep link"
    );
    assert!(
        r.body
            .contains(&format!("id=\"copy\" data-code=\"{code}\""))
    );
    assert!(r.body.contains("id=\"print\""));
    assert!(r.body.contains("Copy the code"));
    // Quota of 2: the second code, then the reset time.
    post_form(p.addr, "/portal/code", &cookie, &form).await;
    let r = post_form(p.addr, "/portal/code", &cookie, &form).await;
    assert_eq!(r.status, 429);
    assert!(
        r.body.contains("repart à zéro à 00:00") && r.body.contains("dans 13 h 00 min"),
        "{}",
        r.body
    );
    assert!(r.body.contains("resets at 00:00"));
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    assert!(
        !r.body.contains("id=\"generate\""),
        "no button once the quota is used"
    );
    assert!(r.body.contains("Daily quota reached"));
    let js = http(p.addr, "GET", "/portal/static/countdown.js", &[], "").await;
    assert!(js.body.contains("clipboard") && js.body.contains("window.print"));
}

/// A database that cannot serve is 503 with `Retry-After` on the portal
/// (the page asks to retry later), not 500.
#[tokio::test]
async fn an_unavailable_database_is_503_on_the_portal() {
    let p = portal(config()).await;
    let session = login(&p).await;
    let cookie = format!("robert_codes_session={session}");
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 200);
    p.svc.store().close().await;
    let r = http(p.addr, "GET", "/portal/code", &[("Cookie", &cookie)], "").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(r.body.contains("Réessayez plus tard"), "{}", r.body);
}
