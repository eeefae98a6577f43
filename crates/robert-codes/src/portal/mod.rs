//! The doctor portal: log in, generate a short code, see it large with its
//! expiry, a countdown, its QR code, copy and print buttons; French with
//! English beside it. Server-rendered pages, plain forms, CSRF tokens on
//! every form, HttpOnly SameSite=Strict session cookies (Secure behind TLS),
//! lockout with back-off, per-doctor daily quotas, an audit log without codes.

pub mod html;

use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
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

/// Whether the browser says (in `Origin`, sent with form posts) that the
/// page is plain HTTP on a host other than localhost, where browsers drop
/// `Secure` cookies (they keep them on `http://localhost`).
fn insecure_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            rest
        }
    });
    !matches!(host, "localhost" | "127.0.0.1" | "[::1]") && !host.ends_with(".localhost")
}

fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn page(status: StatusCode, body: String) -> Response {
    (status, Html(body)).into_response()
}

/// A failure of the service: 503 with `Retry-After` when a database error
/// in its chain passes ([`robert_http::db::caused_by_unavailable`]), else
/// [`internal`]. The page says the same either way.
fn failure(e: &(dyn std::error::Error + 'static)) -> Response {
    if !robert_http::db::caused_by_unavailable(e) {
        return internal(e);
    }
    tracing::warn!(error = %e, "portal: database unavailable: 503");
    let mut resp = page(StatusCode::SERVICE_UNAVAILABLE, unavailable_page());
    resp.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(robert_http::db::UNAVAILABLE_RETRY_SECS),
    );
    resp
}

fn unavailable_page() -> String {
    html::message(
        "Erreur",
        "Le service est momentanément indisponible. Réessayez plus tard.",
        None,
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "portal internal error");
    page(StatusCode::INTERNAL_SERVER_ERROR, unavailable_page())
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
        Err(e) => Err(failure(&e)),
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
        Err(e) => return failure(&e),
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
        if service.config().portal.cookie_secure && insecure_origin(&headers) {
            // The browser dropped our Secure cookie: retrying cannot help.
            return login_form(
                &service,
                StatusCode::FORBIDDEN,
                Some(
                    "Ce portail est ouvert en HTTP simple : le navigateur refuse ses cookies \
                     sécurisés. Ouvrez-le en HTTPS, ou réglez portal.cookie_secure = false \
                     (développement seulement). · This portal was opened over plain HTTP, so the \
                     browser drops its Secure cookies: use HTTPS, or set \
                     portal.cookie_secure = false (development only).",
                ),
            );
        }
        return login_form(
            &service,
            StatusCode::FORBIDDEN,
            Some("Session du formulaire expirée : recommencez. · Form session expired: try again."),
        );
    };
    if !ct_eq(&expected, &form.csrf) {
        return login_form(
            &service,
            StatusCode::FORBIDDEN,
            Some("Session du formulaire expirée : recommencez. · Form session expired: try again."),
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
                 bloqué quelques minutes. · Wrong user name or password. After several failures \
                 the account is locked for a few minutes.",
            ),
        ),
        Ok(LoginOutcome::Locked { until }) => {
            let (hhmm, date) = html::paris_time(until);
            login_form(
                &service,
                StatusCode::UNAUTHORIZED,
                Some(&format!(
                    "Compte bloqué après plusieurs échecs de connexion, jusqu'à {hhmm} (heure de \
                     Paris, le {date}). Réessayez ensuite. · Account locked after several failed \
                     logins, until {hhmm} (Paris time, {date}). Try again then."
                )),
            )
        }
        Ok(LoginOutcome::RateLimited) => login_form(
            &service,
            StatusCode::TOO_MANY_REQUESTS,
            Some(
                "Trop de tentatives depuis cette adresse. Patientez une minute. · Too many \
                 attempts from this address. Wait a minute.",
            ),
        ),
        Err(e) => failure(&e),
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
        Err(e) => return failure(&e),
    };
    page(
        StatusCode::OK,
        html::request(
            &s.doctor.display_name,
            &s.csrf,
            left,
            daily_quota,
            service.config().codes.short_validity_minutes,
            service.quota_reset_at(),
        ),
    )
}

/// Forms that carry only the CSRF token.
#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// The session behind a posted form that carries only the CSRF token.
/// Rejected with the login page without a session, 400 for a malformed
/// form, 403 when the token is not the session's (checked in this order).
struct CsrfSession(Session);

impl FromRequest<CodesService> for CsrfSession {
    type Rejection = Response;

    async fn from_request(req: Request, service: &CodesService) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let form = Form::<CsrfForm>::from_request(req, service).await;
        let s = match current_session(service, &headers).await? {
            Some(s) => s,
            None => return Err(to_login()),
        };
        let Ok(Form(form)) = form else {
            return Err(bad_form());
        };
        if !ct_eq(&s.csrf, &form.csrf) {
            return Err(forbidden_csrf(Some(&s.csrf)));
        }
        Ok(Self(s))
    }
}

async fn code_submit(State(service): State<CodesService>, CsrfSession(s): CsrfSession) -> Response {
    let ch = channel(&service, &s.doctor);
    let Channel::Portal { daily_quota, .. } = ch else {
        return internal("unexpected channel");
    };
    match service.issue(CodeKind::Short, &ch).await {
        Ok(issued) => {
            let left = service.quota_left(&ch, daily_quota).await.unwrap_or(0);
            let link = crate::qr::deep_link(&service.config().qr.url_template, &issued.code);
            let qr = match crate::qr::QrMatrix::encode(&link) {
                // Inline in the page: drop the XML prolog.
                Ok(m) => {
                    let svg = m.to_svg(6, "QR code · TousAntiCovid");
                    svg.find("<svg")
                        .map_or(svg.clone(), |i| svg[i..].to_owned())
                }
                Err(e) => return failure(&e),
            };
            page(
                StatusCode::OK,
                html::code(
                    &issued.code,
                    issued.validity.until,
                    service.now(),
                    &s.csrf,
                    left,
                    &qr,
                ),
            )
        }
        Err(IssueError::QuotaExceeded) => {
            let reset = service.quota_reset_at();
            let (hhmm, date) = html::paris_time(reset);
            let wait = (reset - service.now()).num_minutes().max(0);
            page(
                StatusCode::TOO_MANY_REQUESTS,
                html::message(
                    "Quota atteint",
                    &format!(
                        "Vous avez atteint le nombre maximal de codes pour aujourd'hui. Le quota \
                         repart à zéro à {hhmm} (heure de Paris, le {date}), dans {} h {:02} min. \
                         · Daily quota reached: it resets at {hhmm} (Paris time, {date}), in {} h \
                         {:02} min.",
                        wait / 60,
                        wait % 60,
                        wait / 60,
                        wait % 60
                    ),
                    Some(&s.csrf),
                ),
            )
        }
        Err(e) => failure(&e),
    }
}

async fn logout(State(service): State<CodesService>, CsrfSession(s): CsrfSession) -> Response {
    if let Err(e) = service.logout(&s.token).await {
        return failure(&e);
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
