//! The doctor portal: log in, generate a short code, see it large with its
//! expiry and a countdown. Server-rendered pages, plain forms, CSRF tokens on
//! every form, HttpOnly SameSite=Strict session cookies (Secure behind TLS),
//! lockout with back-off, per-doctor daily quotas, an audit log without codes.

pub mod html;

use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Form, Router};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::code::CodeKind;
use crate::service::{Channel, CodesService, IssueError, LoginOutcome, random_token};
use crate::store::Doctor;

const SESSION_COOKIE: &str = "robert_codes_session";
const LOGIN_CSRF_COOKIE: &str = "robert_codes_login_csrf";
/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 8 * 1024;

#[derive(Clone, Debug)]
struct ClientAddr(String);

/// Records the client address for rate limiting (see [`crate::api`]).
async fn client_addr(
    State(service): State<CodesService>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let addr = crate::api::client_address(&service, req.headers(), peer);
    req.extensions_mut().insert(ClientAddr(addr));
    next.run(req).await
}

/// Security headers on every portal response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(
    service: &CodesService,
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
) -> HeaderValue {
    let secure = if service.config().portal.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    let v = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1; Max-Age=0"))
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn page(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "portal internal error");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        html::message(
            "Erreur",
            "Le service est momentanément indisponible. Réessayez plus tard.",
            None,
        ),
    )
}

fn bad_form() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        html::message(
            "Requête invalide",
            "Le formulaire envoyé est incomplet ou invalide.",
            None,
        ),
    )
}

fn forbidden_csrf(csrf: Option<&str>) -> Response {
    page(
        StatusCode::FORBIDDEN,
        html::message(
            "Requête refusée",
            "Le jeton de sécurité du formulaire est absent ou périmé. Rechargez la page et recommencez.",
            csrf,
        ),
    )
}

struct Session {
    doctor: Doctor,
    csrf: String,
    token: String,
}

async fn current_session(
    service: &CodesService,
    headers: &HeaderMap,
) -> Result<Option<Session>, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    match service.session(&token).await {
        Ok(Some((doctor, csrf))) => Ok(Some(Session {
            doctor,
            csrf,
            token,
        })),
        Ok(None) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

fn to_login() -> Response {
    Redirect::to("/portal/login").into_response()
}

async fn index() -> Response {
    Redirect::to("/portal/code").into_response()
}

async fn login_page(State(service): State<CodesService>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = current_session(&service, &headers).await {
        return Redirect::to("/portal/code").into_response();
    }
    login_form(&service, StatusCode::OK, None)
}

fn login_form(service: &CodesService, status: StatusCode, error: Option<&str>) -> Response {
    let csrf = match random_token() {
        Ok(t) => t,
        Err(e) => return internal(e),
    };
    let mut res = page(status, html::login(&csrf, error));
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(service, LOGIN_CSRF_COOKIE, &csrf, "/portal/login", 3600),
    );
    res
}

/// The login form; wiped from memory when dropped.
#[derive(Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
}

async fn login_submit(
    State(service): State<CodesService>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return bad_form();
    };
    // Double-submit token: the hidden field must match the cookie set with the form.
    let Some(expected) = cookie(&headers, LOGIN_CSRF_COOKIE) else {
        return login_form(
            &service,
            StatusCode::FORBIDDEN,
            Some("Session du formulaire expirée : recommencez."),
        );
    };
    if !ct_eq(&expected, &form.csrf) {
        return login_form(
            &service,
            StatusCode::FORBIDDEN,
            Some("Session du formulaire expirée : recommencez."),
        );
    }
    match service
        .login(form.username.trim(), &form.password, &client)
        .await
    {
        Ok(LoginOutcome::Success { token, .. }) => {
            let minutes = i64::from(service.config().portal.session_minutes);
            let mut res = Redirect::to("/portal/code").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&service, SESSION_COOKIE, &token, "/portal", minutes * 60),
            );
            res.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&service, LOGIN_CSRF_COOKIE, "", "/portal/login", 0),
            );
            res
        }
        Ok(LoginOutcome::Failed) => login_form(
            &service,
            StatusCode::UNAUTHORIZED,
            Some(
                "Identifiant ou mot de passe incorrect. Après plusieurs échecs, le compte est \
                 bloqué quelques minutes.",
            ),
        ),
        Ok(LoginOutcome::RateLimited) => login_form(
            &service,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Trop de tentatives depuis cette adresse. Patientez une minute."),
        ),
        Err(e) => internal(e),
    }
}

fn channel(service: &CodesService, d: &Doctor) -> Channel {
    Channel::Portal {
        id: d.id,
        username: d.username.clone(),
        daily_quota: d.daily_quota.unwrap_or(service.config().portal.daily_quota),
    }
}

async fn code_page(State(service): State<CodesService>, headers: HeaderMap) -> Response {
    let s = match current_session(&service, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(r) => return r,
    };
    let ch = channel(&service, &s.doctor);
    let Channel::Portal { daily_quota, .. } = ch else {
        return internal("unexpected channel");
    };
    let left = match service.quota_left(&ch, daily_quota).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    page(
        StatusCode::OK,
        html::request(
            &s.doctor.display_name,
            &s.csrf,
            left,
            daily_quota,
            service.config().codes.short_validity_minutes,
        ),
    )
}

/// Forms that carry only the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn code_submit(
    State(service): State<CodesService>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let s = match current_session(&service, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(r) => return r,
    };
    let Ok(Form(form)) = form else {
        return bad_form();
    };
    if !ct_eq(&s.csrf, &form.csrf) {
        return forbidden_csrf(Some(&s.csrf));
    }
    let ch = channel(&service, &s.doctor);
    let Channel::Portal { daily_quota, .. } = ch else {
        return internal("unexpected channel");
    };
    match service.issue(CodeKind::Short, &ch).await {
        Ok(issued) => {
            let left = service.quota_left(&ch, daily_quota).await.unwrap_or(0);
            page(
                StatusCode::OK,
                html::code(
                    &issued.code,
                    issued.validity.until,
                    service.now(),
                    &s.csrf,
                    left,
                ),
            )
        }
        Err(IssueError::QuotaExceeded) => page(
            StatusCode::TOO_MANY_REQUESTS,
            html::message(
                "Quota atteint",
                "Vous avez atteint le nombre maximal de codes pour aujourd'hui.",
                Some(&s.csrf),
            ),
        ),
        Err(e) => internal(e),
    }
}

async fn logout(
    State(service): State<CodesService>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let s = match current_session(&service, &headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(),
        Err(r) => return r,
    };
    let Ok(Form(form)) = form else {
        return bad_form();
    };
    if !ct_eq(&s.csrf, &form.csrf) {
        return forbidden_csrf(Some(&s.csrf));
    }
    if let Err(e) = service.logout(&s.token).await {
        return internal(e);
    }
    service
        .audit(&format!("doctor:{}", s.doctor.username), "logout", "")
        .await;
    let mut res = to_login();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&service, SESSION_COOKIE, "", "/portal", 0),
    );
    res
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/portal.css"),
    )
}

async fn js() -> Response {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/countdown.js"),
    )
}

/// The portal's routes, under `/portal`.
pub fn router(service: CodesService) -> Router {
    Router::new()
        .route("/portal", get(index))
        .route("/portal/", get(index))
        .route("/portal/login", get(login_page).post(login_submit))
        .route("/portal/code", get(code_page).post(code_submit))
        .route("/portal/logout", axum::routing::post(logout))
        .route("/portal/static/portal.css", get(css))
        .route("/portal/static/countdown.js", get(js))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn_with_state(service.clone(), client_addr))
        .layer(middleware::from_fn(security_headers))
        .with_state(service)
}
