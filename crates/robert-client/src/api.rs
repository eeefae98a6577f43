//! The `/api/v6` wire format as the phone speaks it (server-api.md §1–§3):
//! JSON bodies, and how each status code maps to a [`ClientError`]. Pure:
//! builds `http::Request`s and reads `http::Response`s.

use std::time::SystemTime;

use robert_core::b64;
use robert_core::time::{NtpSeconds, UtcDate};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::identity::AuthFields;
use crate::report::ReportContact;

/// The API prefix.
pub const API_PREFIX: &str = "/api/v6";

/// `POST /captcha` body.
#[derive(Debug, Serialize)]
pub(crate) struct CaptchaRequest<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'a str,
    pub(crate) locale: &'a str,
}

/// `POST /captcha` answer: the id under `id` and/or `captchaId`.
#[derive(Debug, Deserialize)]
pub(crate) struct CaptchaResponse {
    pub(crate) id: Option<String>,
    #[serde(rename = "captchaId")]
    pub(crate) captcha_id: Option<String>,
}

/// `POST /register` body.
#[derive(Serialize)]
pub(crate) struct RegisterRequest<'a> {
    pub(crate) captcha: &'a str,
    #[serde(rename = "captchaId")]
    pub(crate) captcha_id: &'a str,
    #[serde(rename = "clientPublicECDHKey")]
    pub(crate) client_public_ecdh_key: &'a str,
}

/// `POST /register` 201 answer.
#[derive(Deserialize)]
pub(crate) struct RegisterResponse {
    pub(crate) tuples: String,
    #[serde(rename = "timeStart")]
    pub(crate) time_start: u64,
    /// The server's `config` list.
    #[serde(default)]
    pub(crate) config: Option<serde_json::Value>,
}

/// The common body of `/status`, `/unregister`, `/deleteExposureHistory`.
#[derive(Debug, Serialize)]
pub(crate) struct AuthRequest {
    ebid: String,
    #[serde(rename = "epochId")]
    epoch_id: u32,
    time: String,
    mac: String,
}

impl AuthRequest {
    /// The fields of a dummy request: the current epoch and time, a random
    /// EBID and MAC (the server drops the request unread).
    pub(crate) fn dummy(ebid: [u8; 8], epoch: u32, now: NtpSeconds, mac: [u8; 32]) -> Self {
        Self {
            ebid: b64::encode(ebid),
            epoch_id: epoch,
            time: b64::encode(now.time32().to_bytes()),
            mac: b64::encode(mac),
        }
    }
}

impl From<&AuthFields> for AuthRequest {
    fn from(f: &AuthFields) -> Self {
        Self {
            ebid: f.ebid.to_base64(),
            epoch_id: f.epoch.get(),
            time: b64::encode(f.time.to_bytes()),
            mac: f.mac.to_base64(),
        }
    }
}

/// `POST /status` body: the authenticated fields and, when the host app has
/// a push token, `pushInfo`.
#[derive(Debug, Serialize)]
pub(crate) struct StatusRequest<'a> {
    #[serde(flatten)]
    pub(crate) auth: AuthRequest,
    #[serde(rename = "pushInfo", skip_serializing_if = "Option::is_none")]
    pub(crate) push_info: Option<&'a crate::phone::PushInfo>,
}

/// `POST /unregister` body: the authenticated fields and, when known, the
/// push token to forget.
#[derive(Debug, Serialize)]
pub(crate) struct UnregisterRequest<'a> {
    #[serde(flatten)]
    pub(crate) auth: AuthRequest,
    #[serde(rename = "pushToken", skip_serializing_if = "Option::is_none")]
    pub(crate) push_token: Option<&'a str>,
}

/// A request body as JSON; `what` names it in the (unreachable in practice)
/// error: the bodies are plain structs of strings and numbers.
pub(crate) fn json_body(value: &impl Serialize, what: &str) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|_| ClientError::Config(format!("{what} request")))
}

/// An NTP date sent as a decimal string (or, tolerated, a number).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum NtpField {
    Text(String),
    Number(u64),
}

impl NtpField {
    pub(crate) fn value(&self) -> Option<NtpSeconds> {
        match self {
            Self::Text(s) => s.trim().parse().ok().map(NtpSeconds),
            Self::Number(n) => Some(NtpSeconds(*n)),
        }
    }
}

/// `POST /status` 200 answer (null fields omitted by the server).
#[derive(Deserialize)]
pub(crate) struct StatusResponse {
    #[serde(rename = "riskLevel")]
    pub(crate) risk_level: Option<f64>,
    pub(crate) tuples: Option<String>,
    #[serde(rename = "lastContactDate")]
    pub(crate) last_contact_date: Option<NtpField>,
    #[serde(rename = "lastRiskScoringDate")]
    pub(crate) last_risk_scoring_date: Option<NtpField>,
    #[serde(rename = "declarationToken")]
    pub(crate) declaration_token: Option<String>,
    #[serde(rename = "analyticsToken")]
    pub(crate) analytics_token: Option<String>,
    /// The server's `config` list.
    #[serde(default)]
    pub(crate) config: Option<serde_json::Value>,
}

/// `POST /report` body.
#[derive(Serialize)]
pub(crate) struct ReportRequest<'a> {
    pub(crate) token: &'a str,
    pub(crate) contacts: Vec<ReportContactDto>,
}

#[derive(Serialize)]
pub(crate) struct ReportContactDto {
    ebid: String,
    ecc: String,
    ids: Vec<ReportIdDto>,
}

#[derive(Serialize)]
struct ReportIdDto {
    #[serde(rename = "timeCollectedOnDevice")]
    time_collected_on_device: u64,
    #[serde(rename = "timeFromHelloMessage")]
    time_from_hello_message: u16,
    mac: String,
    #[serde(rename = "rssiRaw")]
    rssi_raw: i16,
    #[serde(rename = "rssiCalibrated")]
    rssi_calibrated: i16,
}

impl From<&ReportContact> for ReportContactDto {
    fn from(c: &ReportContact) -> Self {
        Self {
            ebid: c.key.ebid.to_base64(),
            ecc: c.key.ecc.to_base64(),
            ids: c
                .records
                .iter()
                .map(|r| ReportIdDto {
                    time_collected_on_device: r.time_collected.get(),
                    time_from_hello_message: r.hello_time.0,
                    mac: r.mac.to_base64(),
                    rssi_raw: r.rssi_raw,
                    rssi_calibrated: r.rssi_calibrated,
                })
                .collect(),
        }
    }
}

/// `POST /report` 200 answer.
#[derive(Deserialize)]
pub(crate) struct ReportResponse {
    #[serde(rename = "reportValidationToken")]
    pub(crate) report_validation_token: Option<String>,
}

/// `GET /clock` answer.
#[derive(Deserialize)]
pub(crate) struct ClockResponse {
    pub(crate) time: String,
}

/// An error body `{"message": "..."}`.
#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
}

/// Which endpoint answered, to interpret its status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Captcha,
    CaptchaImage,
    Register,
    Status,
    Report,
    Unregister,
    DeleteHistory,
    Clock,
}

impl Endpoint {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::Captcha => "/captcha",
            Self::CaptchaImage => "/captcha/{id}/image",
            Self::Register => "/register",
            Self::Status => "/status",
            Self::Report => "/report",
            Self::Unregister => "/unregister",
            Self::DeleteHistory => "/deleteExposureHistory",
            Self::Clock => "/clock",
        }
    }
}

/// The server's message from an error body, if any (bounded, printable).
fn server_message(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let m = parsed.message?;
    let m: String = m.chars().filter(|c| !c.is_control()).take(200).collect();
    (!m.is_empty()).then_some(m)
}

/// Maps a non-success status to an error (server-api.md §1, §3).
pub(crate) fn error_for(endpoint: Endpoint, status: http::StatusCode, body: &[u8]) -> ClientError {
    let message = server_message(body);
    match (endpoint, status.as_u16()) {
        (_, 430) => ClientError::RegistrationDropped,
        (Endpoint::Register, 401) => ClientError::CaptchaRejected,
        (Endpoint::Report, 401) => ClientError::InvalidCode { message },
        (Endpoint::Report, 503) => ClientError::ReportLater { message },
        (_, 400) => ClientError::BadRequest { message },
        (_, 404) => ClientError::NotFound,
        (_, code) => ClientError::Http {
            status: code,
            message,
        },
    }
}

/// Parses a JSON success body.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    endpoint: Endpoint,
    body: &[u8],
) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|_| ClientError::InvalidResponse {
        endpoint: endpoint.path(),
        reason: "unexpected JSON",
    })
}

/// The server time from an HTTP `Date` header, if present and valid.
pub(crate) fn date_header(headers: &http::HeaderMap) -> Option<NtpSeconds> {
    let value = headers.get(http::header::DATE)?.to_str().ok()?;
    let t: SystemTime = httpdate::parse_http_date(value).ok()?;
    let unix = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(NtpSeconds::from_unix(i64::try_from(unix).ok()?))
}

/// Parses the `/clock` time `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC).
pub(crate) fn parse_iso_utc(s: &str) -> Option<NtpSeconds> {
    let s = s.trim();
    let (date, rest) = s.split_once('T')?;
    let date: UtcDate = date.parse().ok()?;
    let rest = rest
        .strip_suffix('Z')
        .or_else(|| rest.strip_suffix("+00:00"))?;
    let hms = rest.split('.').next()?;
    let mut parts = hms.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(date.midnight().plus(h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_errors() {
        let s = |c| http::StatusCode::from_u16(c).unwrap();
        assert!(matches!(
            error_for(Endpoint::Status, s(430), b""),
            ClientError::RegistrationDropped
        ));
        assert!(matches!(
            error_for(Endpoint::Register, s(401), b""),
            ClientError::CaptchaRejected
        ));
        match error_for(
            Endpoint::Report,
            s(401),
            br#"{"message":"Unrecognized token of length: 6"}"#,
        ) {
            ClientError::InvalidCode { message } => {
                assert_eq!(message.as_deref(), Some("Unrecognized token of length: 6"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_for(Endpoint::Report, s(503), br#"{"message":"retry later"}"#),
            ClientError::ReportLater { .. }
        ));
        match error_for(Endpoint::Status, s(400), br#"{"message":"Invalid data"}"#) {
            ClientError::BadRequest { message } => {
                assert_eq!(message.as_deref(), Some("Invalid data"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            error_for(Endpoint::Status, s(400), b""),
            ClientError::BadRequest { message: None }
        ));
        assert!(matches!(
            error_for(Endpoint::Unregister, s(404), b""),
            ClientError::NotFound
        ));
        assert!(matches!(
            error_for(
                Endpoint::Report,
                s(500),
                br#"{"message":"An error occured"}"#
            ),
            ClientError::Http { status: 500, .. }
        ));
    }

    #[test]
    fn dates() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::DATE,
            http::HeaderValue::from_static("Fri, 13 Jan 2023 10:00:00 GMT"),
        );
        let expect = UtcDate::new(2023, 1, 13).unwrap().midnight().plus(36_000);
        assert_eq!(date_header(&h), Some(expect));
        assert_eq!(parse_iso_utc("2023-01-13T10:00:00.123Z"), Some(expect));
        assert_eq!(parse_iso_utc("2023-01-13T10:00:00Z"), Some(expect));
        assert_eq!(parse_iso_utc("2023-01-13 10:00:00"), None);
        assert_eq!(parse_iso_utc("2023-01-13T25:00:00Z"), None);
        h.insert(http::header::DATE, http::HeaderValue::from_static("nope"));
        assert_eq!(date_header(&h), None);
    }

    #[test]
    fn ntp_fields_accept_strings_and_numbers() {
        let r: StatusResponse = serde_json::from_str(
            r#"{"riskLevel":4,"tuples":"x","lastContactDate":"3900000000","lastRiskScoringDate":3900000900,"config":[]}"#,
        )
        .unwrap();
        assert_eq!(
            r.last_contact_date.and_then(|f| f.value()),
            Some(NtpSeconds(3_900_000_000))
        );
        assert_eq!(
            r.last_risk_scoring_date.and_then(|f| f.value()),
            Some(NtpSeconds(3_900_000_900))
        );
        assert_eq!(r.risk_level, Some(4.0));
    }
}
