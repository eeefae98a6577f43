//! A small fake of the `/api/v6` server, built on robert-core, to test the
//! SDK before (and besides) the real server. It follows server-api.md §3 for
//! what the phone sees: status codes, bodies, MAC and clock checks, 430 for
//! unknown identities, the 2-epoch status rate limit.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_client::{Clock, ManualClock};
use robert_core::b64;
use robert_core::ebid::Ebid;
use robert_core::ecc::CountryCode;
use robert_core::id_a::IdA;
use robert_core::keys::{KeyA, KeyATuples, KeyG, KeyS};
use robert_core::mac::{RequestMac, Salt};
use robert_core::registration::{ServerKeyPair, parse_public_key};
use robert_core::time::{Epoch, NtpSeconds, ServiceStart, Time32};
use robert_core::tuples::{BundleSpan, generate};
use serde_json::{Value, json};

/// One registration held by the fake.
pub struct Identity {
    pub key_a: KeyA,
    pub key_a_tuples: KeyATuples,
    pub at_risk: bool,
    pub last_status_epoch: Option<u32>,
    pub deleted_history: usize,
}

/// The fake's state, inspectable by tests.
pub struct Inner {
    pub keypair: ServerKeyPair,
    pub key_s: KeyS,
    pub key_g: KeyG,
    pub start: ServiceStart,
    pub ids: HashMap<IdA, Identity>,
    pub captchas: HashMap<String, String>,
    pub valid_codes: HashSet<String>,
    pub reports: Vec<Value>,
    pub rng: StdRng,
    /// Status codes to answer before handling, one per request (any endpoint).
    pub scripted: VecDeque<(StatusCode, &'static str)>,
    /// Adds a `Date` header this many seconds off the fake's clock.
    pub date_offset: Option<i64>,
    pub requests: Vec<String>,
    pub serve_captcha_image: bool,
    /// The last accepted body per path (`/status`, `/unregister`).
    pub last_bodies: HashMap<&'static str, Value>,
    /// The `config` list returned by `/register` and `/status`.
    pub config_list: Value,
}

/// The fake server: shared state plus its clock.
#[derive(Clone)]
pub struct FakeServer {
    pub inner: Arc<Mutex<Inner>>,
    pub clock: ManualClock,
}

impl FakeServer {
    pub fn new(clock: ManualClock, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let inner = Inner {
            keypair: ServerKeyPair::generate(&mut rng),
            key_s: KeyS::generate(&mut rng),
            key_g: KeyG::generate(&mut rng),
            start: ServiceStart::REFERENCE,
            ids: HashMap::new(),
            captchas: HashMap::new(),
            valid_codes: HashSet::new(),
            reports: Vec::new(),
            rng,
            scripted: VecDeque::new(),
            date_offset: None,
            requests: Vec::new(),
            serve_captcha_image: true,
            last_bodies: HashMap::new(),
            config_list: json!([]),
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            clock,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap()
    }

    pub fn public_key_base64(&self) -> String {
        self.lock().keypair.public_key_base64()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v6/captcha", post(captcha))
            .route("/api/v6/captcha/{id}/image", get(captcha_image))
            .route("/api/v6/register", post(register))
            .route("/api/v6/status", post(status))
            .route("/api/v6/report", post(report))
            .route("/api/v6/unregister", post(unregister))
            .route("/api/v6/deleteExposureHistory", post(delete_history))
            .route("/api/v6/clock", get(clock))
            .with_state(self.clone())
    }

    /// The registration behind an EBID, if any.
    pub fn id_of(&self, ebid: &Ebid) -> IdA {
        ebid.decrypt(&self.lock().key_s).id_a
    }

    /// A crude batch: every registration with a reported contact of at
    /// least `min_hellos` HELLOs becomes at risk.
    pub fn run_batch(&self, min_hellos: usize) {
        let mut inner = self.lock();
        let reports = std::mem::take(&mut inner.reports);
        for r in &reports {
            for c in r["contacts"].as_array().unwrap() {
                let ebid = Ebid::from_base64(c["ebid"].as_str().unwrap()).unwrap();
                let n = c["ids"].as_array().unwrap().len();
                let id = ebid.decrypt(&inner.key_s).id_a;
                if n >= min_hellos
                    && let Some(ident) = inner.ids.get_mut(&id)
                {
                    ident.at_risk = true;
                }
            }
        }
        inner.reports = reports;
    }

    fn now(&self) -> NtpSeconds {
        self.clock.now_ntp()
    }

    fn finish(&self, status: StatusCode, body: Value) -> Response {
        let offset = self.lock().date_offset;
        let mut resp = if body.is_null() {
            status.into_response()
        } else {
            (status, axum::Json(body)).into_response()
        };
        if let Some(off) = offset {
            let t = self.now().to_unix() + off;
            let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64);
            resp.headers_mut().insert(
                header::DATE,
                HeaderValue::from_str(&httpdate_fmt(st)).unwrap(),
            );
        }
        resp
    }

    fn scripted(&self, path: &str) -> Option<Response> {
        let mut inner = self.lock();
        inner.requests.push(path.to_owned());
        let (code, msg) = inner.scripted.pop_front()?;
        drop(inner);
        let body = if msg.is_empty() {
            Value::Null
        } else {
            json!({ "message": msg })
        };
        Some(self.finish(code, body))
    }

    fn bundle(&self, inner: &mut Inner, id: IdA, key: &KeyATuples) -> String {
        let from = inner.start.epoch_at(self.now());
        let span = BundleSpan { from, days: 4 };
        let key_s = inner.key_s.clone();
        let b = generate(
            id,
            span,
            &inner.start,
            &inner.key_g,
            CountryCode::FRANCE,
            |_| Some(&key_s),
        );
        b64::encode(b.seal(key, &mut inner.rng))
    }

    /// Checks an authenticated request; `Err` is the response to give.
    fn authenticate(&self, body: &Bytes, salt: Salt) -> Result<IdA, Box<Response>> {
        let bad = || Box::new(self.finish(StatusCode::BAD_REQUEST, Value::Null));
        let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
        let ebid = v["ebid"].as_str().and_then(|s| Ebid::from_base64(s).ok());
        let epoch = v["epochId"].as_u64().and_then(|e| u32::try_from(e).ok());
        let time = v["time"]
            .as_str()
            .and_then(|s| b64::decode_array::<4>(s, "time").ok());
        let mac = v["mac"]
            .as_str()
            .and_then(|s| RequestMac::from_base64(s).ok());
        let (Some(ebid), Some(epoch), Some(time), Some(mac)) = (ebid, epoch, time, mac) else {
            return Err(Box::new(self.finish(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid data"}),
            )));
        };
        let time = Time32::from_bytes(time);
        if time.to_ntp().abs_diff(self.now()) > 60 {
            return Err(bad());
        }
        let inner = self.lock();
        let content = ebid.decrypt(&inner.key_s);
        if content.epoch != Epoch(epoch) {
            return Err(bad());
        }
        let Some(ident) = inner.ids.get(&content.id_a) else {
            drop(inner);
            return Err(Box::new(
                self.finish(StatusCode::from_u16(430).unwrap(), Value::Null),
            ));
        };
        if !mac.verify(&ident.key_a, salt, &ebid, epoch, time) {
            drop(inner);
            return Err(bad());
        }
        Ok(content.id_a)
    }
}

fn httpdate_fmt(t: std::time::SystemTime) -> String {
    // RFC 7231 IMF-fixdate, via the same crate the SDK parses with.
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let d = robert_core::time::UtcDate::from_days_since_unix_epoch(days);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][usize::from(d.month) - 1];
    format!(
        "{weekday}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        d.day,
        d.year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn captcha(State(s): State<FakeServer>, body: Bytes) -> Response {
    if let Some(r) = s.scripted("/captcha") {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if v["type"].as_str().is_none() || v["locale"].as_str().is_none() {
        return s.finish(StatusCode::BAD_REQUEST, json!({"message": "Invalid data"}));
    }
    let id = {
        let mut inner = s.lock();
        let id = format!("captcha{}", inner.captchas.len());
        inner.captchas.insert(id.clone(), "ok".into());
        id
    };
    s.finish(StatusCode::CREATED, json!({ "id": id, "captchaId": id }))
}

async fn captcha_image(State(s): State<FakeServer>, Path(id): Path<String>) -> Response {
    if let Some(r) = s.scripted("/captcha/image") {
        return r;
    }
    let inner = s.lock();
    if !inner.serve_captcha_image || !inner.captchas.contains_key(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [(header::CONTENT_TYPE, "image/png")],
        b"\x89PNG fake".to_vec(),
    )
        .into_response()
}

async fn register(State(s): State<FakeServer>, body: Bytes) -> Response {
    if let Some(r) = s.scripted("/register") {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (Some(captcha), Some(captcha_id), Some(key)) = (
        v["captcha"].as_str(),
        v["captchaId"].as_str(),
        v["clientPublicECDHKey"].as_str(),
    ) else {
        return s.finish(StatusCode::BAD_REQUEST, json!({"message": "Invalid data"}));
    };
    let mut inner = s.lock();
    if inner.captchas.remove(captcha_id).as_deref() != Some(captcha) {
        drop(inner);
        return s.finish(StatusCode::UNAUTHORIZED, Value::Null);
    }
    let Ok(client_key) = parse_public_key(key) else {
        drop(inner);
        return s.finish(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "An error occured"}),
        );
    };
    let keys = inner.keypair.derive_client_keys(&client_key);
    let id = IdA::random(&mut inner.rng);
    let tuples = s.bundle(&mut inner, id, &keys.key_a_tuples);
    let time_start = inner.start.ntp().get();
    let config_list = inner.config_list.clone();
    inner.ids.insert(
        id,
        Identity {
            key_a: keys.key_a,
            key_a_tuples: keys.key_a_tuples,
            at_risk: false,
            last_status_epoch: None,
            deleted_history: 0,
        },
    );
    drop(inner);
    s.finish(
        StatusCode::CREATED,
        json!({"tuples": tuples, "timeStart": time_start, "config": config_list, "message": null}),
    )
}

async fn status(State(s): State<FakeServer>, body: Bytes) -> Response {
    if let Some(r) = s.scripted("/status") {
        return r;
    }
    let id = match s.authenticate(&body, Salt::Status) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let now = s.now();
    let mut inner = s.lock();
    inner.last_bodies.insert(
        "/status",
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    );
    let current = inner.start.epoch_at(now).get();
    let ident = inner.ids.get_mut(&id).unwrap();
    if let Some(last) = ident.last_status_epoch
        && current.saturating_sub(last) < 2
    {
        drop(inner);
        return s.finish(StatusCode::BAD_REQUEST, Value::Null);
    }
    ident.last_status_epoch = Some(current);
    let at_risk = ident.at_risk;
    let key = ident.key_a_tuples.clone();
    let tuples = s.bundle(&mut inner, id, &key);
    let epoch_start = inner.start.epoch_start(Epoch(current)).get();
    let config_list = inner.config_list.clone();
    drop(inner);
    let mut body = json!({
        "riskLevel": if at_risk { 4 } else { 0 },
        "tuples": tuples,
        "config": config_list,
        "analyticsToken": "analytics.jwt.token",
    });
    if at_risk {
        body["lastContactDate"] = json!(now.utc_midnight().get().to_string());
        body["lastRiskScoringDate"] = json!(epoch_start.to_string());
        body["declarationToken"] = json!("declaration.jwt.token");
    }
    s.finish(StatusCode::OK, body)
}

async fn report(State(s): State<FakeServer>, body: Bytes) -> Response {
    if let Some(r) = s.scripted("/report") {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(token) = v["token"].as_str() else {
        return s.finish(StatusCode::BAD_REQUEST, json!({"message": "Invalid data"}));
    };
    if !v["contacts"].is_array() {
        return s.finish(StatusCode::BAD_REQUEST, Value::Null);
    }
    let mut inner = s.lock();
    if !inner.valid_codes.remove(token) {
        drop(inner);
        return s.finish(
            StatusCode::UNAUTHORIZED,
            json!({"message": format!("Unrecognized token of length: {}", token.len())}),
        );
    }
    inner.reports.push(v);
    drop(inner);
    s.finish(
        StatusCode::OK,
        json!({"success": true, "message": "Successful operation", "reportValidationToken": "validation.jwt"}),
    )
}

async fn unregister(State(s): State<FakeServer>, body: Bytes) -> Response {
    if let Some(r) = s.scripted("/unregister") {
        return r;
    }
    let id = match s.authenticate(&body, Salt::Unregister) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    let mut inner = s.lock();
    inner.ids.remove(&id);
    inner.last_bodies.insert(
        "/unregister",
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    );
    drop(inner);
    s.finish(StatusCode::OK, json!({"success": true, "message": null}))
}

async fn delete_history(State(s): State<FakeServer>, body: Bytes) -> Response {
    if let Some(r) = s.scripted("/deleteExposureHistory") {
        return r;
    }
    let id = match s.authenticate(&body, Salt::DeleteHistory) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    if let Some(ident) = s.lock().ids.get_mut(&id) {
        ident.deleted_history += 1;
    }
    s.finish(StatusCode::OK, json!({"success": true, "message": null}))
}

async fn clock(State(s): State<FakeServer>) -> Response {
    if let Some(r) = s.scripted("/clock") {
        return r;
    }
    let now = s.now();
    let offset = s.lock().date_offset.unwrap_or(0);
    let t = NtpSeconds((now.get() as i64 + offset) as u64);
    let d = robert_core::time::UtcDate::of(t);
    let secs = t.seconds_into_utc_day();
    let time = format!(
        "{d}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    let epoch = s.lock().start.epoch_at(t).get();
    s.finish(
        StatusCode::OK,
        json!({"serviceStartDate": "2020-06-01", "time": time, "epoch": epoch}),
    )
}
