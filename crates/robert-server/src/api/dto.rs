//! Request and response bodies of `/api/v6` (server-api.md §3), and their
//! validation into protocol types.
//!
//! Requests deserialize into permissive shapes (`Option` fields, wide
//! integers) so that a missing field, a `null`, a wrong length or an
//! out-of-range number all become a 400 "Invalid data" naming the field,
//! rather than a serde message about internals. Unknown fields are ignored,
//! as Jackson does.

use robert_core::b64;
use robert_core::contact::UploadedHello;
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::mac::{HelloMac, RequestMac};
use robert_core::time::{NtpSeconds, Time16, Time32};
use robert_store::UploadedContact;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::config::LimitsConfig;
use crate::push::PushRegistration;

fn required<'a>(v: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    v.as_deref()
        .ok_or_else(|| ApiError::invalid(format!("{field}: required")))
}

fn non_empty<'a>(v: &'a Option<String>, field: &str, max_len: usize) -> Result<&'a str, ApiError> {
    let s = required(v, field)?;
    if s.is_empty() {
        return Err(ApiError::invalid(format!("{field}: must not be empty")));
    }
    if s.len() > max_len {
        return Err(ApiError::invalid(format!(
            "{field}: longer than {max_len} characters"
        )));
    }
    Ok(s)
}

/// Decodes a fixed-length base64 field, first checking its character count
/// (the reference's bean validation), then its decoded length.
fn fixed_b64<const N: usize>(v: &Option<String>, field: &str) -> Result<[u8; N], ApiError> {
    let s = required(v, field)?;
    let chars = N.div_ceil(3) * 4;
    if s.len() != chars {
        return Err(ApiError::invalid(format!(
            "{field}: must be {chars} characters (base64 of {N} bytes)"
        )));
    }
    b64::decode_array::<N>(s, "field").map_err(|e| match e {
        robert_core::Error::InvalidBase64 { .. } => {
            ApiError::invalid(format!("{field}: invalid base64"))
        }
        _ => ApiError::invalid(format!("{field}: must decode to {N} bytes")),
    })
}

/// `pushInfo` (register, status).
#[derive(Debug, Default, Deserialize)]
pub struct PushInfoDto {
    /// APNs token.
    pub token: Option<String>,
    /// Locale.
    pub locale: Option<String>,
    /// IANA time zone.
    pub timezone: Option<String>,
}

impl PushInfoDto {
    /// The registration to forward, if every field is present and non-blank.
    pub fn to_registration(&self) -> Option<PushRegistration> {
        let f = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(PushRegistration {
            token: f(&self.token)?,
            locale: f(&self.locale)?,
            timezone: f(&self.timezone)?,
        })
    }
}

/// The body of `/status`, `/unregister` and `/deleteExposureHistory`
/// (`AuthentifiedRequest` plus the optional extras).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthRequestDto {
    /// Base64 of the 8-byte EBID (12 characters).
    pub ebid: Option<String>,
    /// The EBID's epoch, ≥ 0.
    pub epoch_id: Option<i64>,
    /// Base64 of Time32 (8 characters).
    pub time: Option<String>,
    /// Base64 of the 32-byte MAC (44 characters).
    pub mac: Option<String>,
    /// `/status` only.
    pub push_info: Option<PushInfoDto>,
    /// `/unregister` only.
    pub push_token: Option<String>,
}

/// A validated authenticated request.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequest {
    /// The EBID.
    pub ebid: Ebid,
    /// The claimed epoch (0..=2^31−1).
    pub epoch_id: u32,
    /// The client's clock.
    pub time: Time32,
    /// The MAC.
    pub mac: RequestMac,
}

impl AuthRequestDto {
    /// Validates the four common fields.
    pub fn validate(&self) -> Result<AuthRequest, ApiError> {
        let ebid = Ebid(fixed_b64::<8>(&self.ebid, "ebid")?);
        let epoch = self
            .epoch_id
            .ok_or_else(|| ApiError::invalid("epochId: required"))?;
        let epoch_id = u32::try_from(epoch)
            .ok()
            .filter(|e| i32::try_from(*e).is_ok())
            .ok_or_else(|| ApiError::invalid("epochId: must be between 0 and 2147483647"))?;
        let time = Time32::from_bytes(fixed_b64::<4>(&self.time, "time")?);
        let mac = RequestMac(fixed_b64::<32>(&self.mac, "mac")?);
        Ok(AuthRequest {
            ebid,
            epoch_id,
            time,
            mac,
        })
    }
}

/// `POST /register`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequestDto {
    /// The captcha answer.
    pub captcha: Option<String>,
    /// The captcha id.
    pub captcha_id: Option<String>,
    /// Base64 X.509 SubjectPublicKeyInfo of the app's P-256 key.
    #[serde(rename = "clientPublicECDHKey")]
    pub client_public_ecdh_key: Option<String>,
    /// Optional push registration.
    pub push_info: Option<PushInfoDto>,
}

/// A validated `/register`.
#[derive(Debug)]
pub struct RegisterRequest<'a> {
    /// The answer.
    pub captcha: &'a str,
    /// The challenge.
    pub captcha_id: &'a str,
    /// The key (still base64; parsed after the captcha check).
    pub client_public_key: &'a str,
}

impl RegisterRequestDto {
    /// Checks presence and sizes.
    pub fn validate(&self) -> Result<RegisterRequest<'_>, ApiError> {
        Ok(RegisterRequest {
            captcha: non_empty(&self.captcha, "captcha", 256)?,
            captcha_id: non_empty(&self.captcha_id, "captchaId", 256)?,
            client_public_key: non_empty(
                &self.client_public_ecdh_key,
                "clientPublicECDHKey",
                1024,
            )?,
        })
    }
}

/// `POST /captcha`.
#[derive(Debug, Default, Deserialize)]
pub struct CaptchaRequestDto {
    /// `IMAGE` or `AUDIO`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Locale, e.g. `fr`.
    pub locale: Option<String>,
}

/// One HELLO of a report.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloDto {
    /// NTP seconds at reception, 0..=2^32−1.
    pub time_collected_on_device: Option<i64>,
    /// The HELLO's Time16, 0..=65535.
    pub time_from_hello_message: Option<i64>,
    /// Base64 of the 5-byte HELLO MAC.
    pub mac: Option<String>,
    /// Calibrated RSSI (dBm).
    pub rssi_calibrated: Option<i64>,
}

/// One contact of a report.
#[derive(Debug, Default, Deserialize)]
pub struct ContactDto {
    /// Base64 of the 8-byte EBID.
    pub ebid: Option<String>,
    /// Base64 of the 1-byte ECC.
    pub ecc: Option<String>,
    /// The HELLOs.
    pub ids: Option<Vec<HelloDto>>,
}

/// `POST /report`.
#[derive(Debug, Default, Deserialize)]
pub struct ReportRequestDto {
    /// The submission code.
    pub token: Option<String>,
    /// The contacts (may be empty, not null).
    pub contacts: Option<Vec<ContactDto>>,
}

/// Lowest `rssiCalibrated` stored: lower values are stored as −127.
pub const RSSI_MIN: i64 = -127;
/// Highest `rssiCalibrated` of the protocol's range; values above 0 are
/// stored as 0.
pub const RSSI_MAX: i64 = 127;

/// A `/report` body that passed validation.
#[derive(Debug)]
pub struct ValidReport<'a> {
    /// The submission code.
    pub token: &'a str,
    /// The contacts, RSSIs clamped to −127..=0.
    pub contacts: Vec<UploadedContact>,
    /// HELLOs in the report.
    pub hellos: u64,
    /// HELLOs whose `rssiCalibrated` was outside −127..=127 (clamped, kept).
    pub rssi_out_of_range: u64,
}
/// Longest token accepted (JWT codes are a few hundred characters).
pub const TOKEN_MAX_LEN: usize = 4096;

impl ReportRequestDto {
    /// Checks the token's presence and converts every contact, enforcing the
    /// limits. RSSIs are clamped to −127..=0, never rejected: above 0 to 0,
    /// below −127 to −127; those outside the protocol's −127..=127 are
    /// counted in [`ValidReport::rssi_out_of_range`] (see DEVIATIONS.md).
    pub fn validate(&self, limits: &LimitsConfig) -> Result<ValidReport<'_>, ApiError> {
        let token = required(&self.token, "token")?;
        if token.len() > TOKEN_MAX_LEN {
            return Err(ApiError::invalid(format!(
                "token: longer than {TOKEN_MAX_LEN} characters"
            )));
        }
        let contacts = self
            .contacts
            .as_ref()
            .ok_or_else(|| ApiError::invalid("contacts: required (may be empty)"))?;
        if contacts.len() > limits.max_contacts_per_report {
            return Err(ApiError::invalid(format!(
                "contacts: more than {} contacts",
                limits.max_contacts_per_report
            )));
        }
        let mut total: u64 = 0;
        let mut rssi_out_of_range: u64 = 0;
        let mut out = Vec::with_capacity(contacts.len());
        for (i, c) in contacts.iter().enumerate() {
            let at = |f: &str| format!("contacts[{i}].{f}");
            let ebid = Ebid(fixed_b64::<8>(&c.ebid, &at("ebid"))?);
            let [ecc] = fixed_b64::<1>(&c.ecc, &at("ecc"))?;
            let ids = c
                .ids
                .as_ref()
                .ok_or_else(|| ApiError::invalid(format!("{}: required", at("ids"))))?;
            if ids.is_empty() {
                return Err(ApiError::invalid(format!(
                    "{}: at least one HELLO",
                    at("ids")
                )));
            }
            if ids.len() > limits.max_hellos_per_contact {
                return Err(ApiError::invalid(format!(
                    "{}: more than {} HELLOs",
                    at("ids"),
                    limits.max_hellos_per_contact
                )));
            }
            total += ids.len() as u64;
            if total > limits.max_hellos_per_report as u64 {
                return Err(ApiError::invalid(format!(
                    "contacts: more than {} HELLOs in the report",
                    limits.max_hellos_per_report
                )));
            }
            let mut hellos = Vec::with_capacity(ids.len());
            for (j, h) in ids.iter().enumerate() {
                let at = |f: &str| format!("contacts[{i}].ids[{j}].{f}");
                let need = |v: Option<i64>, f: &str| {
                    v.ok_or_else(|| ApiError::invalid(format!("{}: required", at(f))))
                };
                let tc = need(h.time_collected_on_device, "timeCollectedOnDevice")?;
                let tc = u32::try_from(tc).map_err(|_| {
                    ApiError::invalid(format!(
                        "{}: must be between 0 and 4294967295",
                        at("timeCollectedOnDevice")
                    ))
                })?;
                let t16 = need(h.time_from_hello_message, "timeFromHelloMessage")?;
                let t16 = u16::try_from(t16).map_err(|_| {
                    ApiError::invalid(format!(
                        "{}: must be between 0 and 65535",
                        at("timeFromHelloMessage")
                    ))
                })?;
                let mac = HelloMac(fixed_b64::<5>(&h.mac, &at("mac"))?);
                let rssi = need(h.rssi_calibrated, "rssiCalibrated")?;
                if !(RSSI_MIN..=RSSI_MAX).contains(&rssi) {
                    rssi_out_of_range += 1;
                }
                // In −127..=0 after the clamp, so the conversion cannot fail.
                let rssi = i16::try_from(rssi.clamp(RSSI_MIN, 0)).unwrap_or(0);
                hellos.push(UploadedHello {
                    time_collected: NtpSeconds(u64::from(tc)),
                    time_sent: Time16(t16),
                    mac,
                    rssi_calibrated: rssi,
                });
            }
            out.push(UploadedContact {
                ebid,
                ecc: Ecc(ecc),
                hellos,
            });
        }
        Ok(ValidReport {
            token,
            contacts: out,
            hellos: total,
            rssi_out_of_range,
        })
    }
}

/// One `config` entry returned to apps.
#[derive(Debug, Serialize)]
pub struct ConfigEntryDto<'a> {
    /// Name.
    pub name: &'a str,
    /// Value (any JSON).
    pub value: &'a serde_json::Value,
}

/// Bytes serialized as standard padded base64.
#[derive(Clone, Copy, Debug)]
pub struct Base64Bytes<'a>(pub &'a [u8]);

impl Serialize for Base64Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b64::encode(self.0))
    }
}

fn push_b64(out: &mut String, bytes: &[u8]) {
    use base64::Engine as _;
    b64::ENCODER.encode_string(bytes, out);
}

/// `201` of `/register`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse<'a> {
    /// The sealed tuple bundle.
    pub tuples: Base64Bytes<'a>,
    /// Service start in NTP seconds.
    pub time_start: u64,
    /// App configuration.
    pub config: &'a RawValue,
    /// Always null (kept for wire compatibility).
    pub message: Option<&'a str>,
}

impl RegisterResponse<'_> {
    /// The JSON body, written directly (no intermediate copies or escaping
    /// scans of the large base64 bundle). Equal to the serde form.
    pub fn to_json(&self) -> String {
        let mut out =
            String::with_capacity(self.tuples.0.len() * 4 / 3 + self.config.get().len() + 96);
        out.push_str("{\"tuples\":\"");
        push_b64(&mut out, self.tuples.0);
        out.push_str("\",\"timeStart\":");
        out.push_str(&self.time_start.to_string());
        out.push_str(",\"config\":");
        out.push_str(self.config.get());
        out.push_str(",\"message\":null}");
        out
    }
}

/// `200` of `/status`; absent fields are omitted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse<'a> {
    /// 4 if at risk, else 0.
    pub risk_level: u8,
    /// A fresh sealed tuple bundle.
    pub tuples: Base64Bytes<'a>,
    /// App configuration.
    pub config: &'a RawValue,
    /// NTP seconds (a decimal string in JSON) of the last risky contact's day.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_decimal")]
    pub last_contact_date: Option<u64>,
    /// NTP seconds (a decimal string in JSON) of the start of the risk detection epoch.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_decimal")]
    pub last_risk_scoring_date: Option<u64>,
    /// JWT for a sick-leave declaration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declaration_token: Option<&'a str>,
    /// Analytics JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analytics_token: Option<&'a str>,
}

mod opt_decimal {
    pub(super) fn serialize<S: serde::Serializer>(
        v: &Option<u64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_str(&n.to_string()),
            None => s.serialize_none(),
        }
    }
}

impl StatusResponse<'_> {
    /// How many bytes of [`Self::to_json`] the risk fields take
    /// (`lastContactDate`, `lastRiskScoringDate`, `declarationToken`): the
    /// answer's length without them does not depend on the risk (the
    /// `riskLevel` digit aside), which padding relies on.
    pub fn risk_fields_len(&self) -> usize {
        let date =
            |name: &str, d: Option<u64>| d.map_or(0, |d| name.len() + 6 + d.to_string().len());
        date("lastContactDate", self.last_contact_date)
            + date("lastRiskScoringDate", self.last_risk_scoring_date)
            + self
                .declaration_token
                .map_or(0, |t| "declarationToken".len() + 6 + t.len())
    }

    /// The JSON body, written directly. Every string written here is ASCII
    /// without characters JSON escapes (base64, base64url JWTs, digits), so
    /// it equals the serde form.
    pub fn to_json(&self) -> String {
        let tokens =
            self.declaration_token.map_or(0, str::len) + self.analytics_token.map_or(0, str::len);
        let mut out = String::with_capacity(
            self.tuples.0.len() * 4 / 3 + self.config.get().len() + tokens + 220,
        );
        out.push_str("{\"riskLevel\":");
        out.push_str(if self.risk_level == 4 { "4" } else { "0" });
        out.push_str(",\"tuples\":\"");
        push_b64(&mut out, self.tuples.0);
        out.push_str("\",\"config\":");
        out.push_str(self.config.get());
        if let Some(d) = self.last_contact_date {
            out.push_str(",\"lastContactDate\":\"");
            out.push_str(&d.to_string());
            out.push('"');
        }
        if let Some(d) = self.last_risk_scoring_date {
            out.push_str(",\"lastRiskScoringDate\":\"");
            out.push_str(&d.to_string());
            out.push('"');
        }
        for (name, value) in [
            ("declarationToken", self.declaration_token),
            ("analyticsToken", self.analytics_token),
        ] {
            if let Some(v) = value {
                debug_assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                );
                out.push_str(",\"");
                out.push_str(name);
                out.push_str("\":\"");
                out.push_str(v);
                out.push('"');
            }
        }
        out.push('}');
        out
    }
}

/// `200` of `/unregister`, `/deleteExposureHistory` and `/report`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SuccessResponse<'a> {
    /// Always true.
    pub success: bool,
    /// `null`, or `"Successful operation"` for `/report`.
    pub message: Option<&'a str>,
    /// `/report` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_validation_token: Option<String>,
}

/// `201` of `/captcha`: the id under both names, as the reference.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptchaResponse<'a> {
    /// The challenge id.
    pub id: &'a str,
    /// The same id.
    pub captcha_id: &'a str,
}

/// `200` of `/clock`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockResponse {
    /// `YYYY-MM-DD`.
    pub service_start_date: String,
    /// ISO-8601 UTC with milliseconds.
    pub time: String,
    /// Current epoch.
    pub epoch: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::extract::parse_json;

    fn auth(json: &str) -> Result<AuthRequest, ApiError> {
        parse_json::<AuthRequestDto>(json.as_bytes())?.validate()
    }

    const OK: &str = r#"{"ebid":"yqfVsPunrqc=","epochId":66855,"time":"5XobgA==","mac":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}"#;

    #[test]
    fn auth_validation() {
        let a = auth(OK).unwrap();
        assert_eq!(a.epoch_id, 66855);
        assert_eq!(a.time, Time32(0xE57A_1B80));
        assert_eq!(a.mac.0[31], 31);
        let cases = [
            (
                r#"{"epochId":1,"time":"5XobgA==","mac":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}"#,
                "ebid: required",
            ),
            (
                r#"{"ebid":null,"epochId":1,"time":"5XobgA==","mac":"x"}"#,
                "ebid: required",
            ),
            (
                r#"{"ebid":"yqfVsPunrq=","epochId":1}"#,
                "ebid: must be 12 characters",
            ),
            (
                r#"{"ebid":"yqfVsPunrqc==","epochId":1}"#,
                "ebid: must be 12 characters",
            ),
            (
                r#"{"ebid":"yqfVsPunr!c=","epochId":1}"#,
                "ebid: invalid base64",
            ),
            (
                r#"{"ebid":"yqfVsPunrqc=","epochId":-1}"#,
                "epochId: must be between",
            ),
            (
                r#"{"ebid":"yqfVsPunrqc=","epochId":2147483648}"#,
                "epochId: must be between",
            ),
            (
                r#"{"ebid":"yqfVsPunrqc=","epochId":1,"time":"5XobgAE="}"#,
                "time: must decode to 4 bytes",
            ),
            (
                r#"{"ebid":"yqfVsPunrqc=","epochId":1,"time":"5XobgA==","mac":"AAAA"}"#,
                "mac: must be 44 characters",
            ),
        ];
        for (json, expected) in cases {
            match auth(json) {
                Err(ApiError::InvalidData(m)) => assert!(m.starts_with(expected), "{json}: {m}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        assert!(
            matches!(auth(r#"{"ebid":"yqfVsPunrqc=","epochId":"1"}"#), Err(ApiError::InvalidData(m)) if m.starts_with("epochId: invalid type"))
        );
        assert!(matches!(
            auth(r#"{"ebid":"yqfVsPunrqc=","epochId":1.5}"#),
            Err(ApiError::InvalidData(_))
        ));
    }

    fn report(json: &str) -> Result<(String, Vec<UploadedContact>, u64), ApiError> {
        let dto = parse_json::<ReportRequestDto>(json.as_bytes())?;
        dto.validate(&LimitsConfig::default())
            .map(|v| (v.token.to_owned(), v.contacts, v.hellos))
    }

    #[test]
    fn report_validation() {
        let hello = |tc: &str, t16: &str, mac: &str, rssi: &str| {
            format!(
                r#"{{"timeCollectedOnDevice":{tc},"timeFromHelloMessage":{t16},"mac":{mac},"rssiCalibrated":{rssi}}}"#
            )
        };
        let good = hello("3860000000", "12345", r#""AQIDBAU=""#, "-60");
        let body = |ids: &str| {
            format!(
                r#"{{"token":"t","contacts":[{{"ebid":"yqfVsPunrqc=","ecc":"wg==","ids":[{ids}]}}]}}"#
            )
        };
        let (_, c, n) = report(&body(&good)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(c[0].ecc, Ecc(0xc2));
        assert_eq!(c[0].hellos[0].time_sent, Time16(12345));
        assert_eq!(c[0].hellos[0].mac.0, [1, 2, 3, 4, 5]);
        // Positive RSSI is clamped to 0.
        let (_, c, _) = report(&body(&hello("1", "1", r#""AQIDBAU=""#, "2"))).unwrap();
        assert_eq!(c[0].hellos[0].rssi_calibrated, 0);
        let (_, c, _) = report(&body(&hello(
            "4294967295",
            "65535",
            r#""AQIDBAU=""#,
            "-127",
        )))
        .unwrap();
        assert_eq!(c[0].hellos[0].time_collected, NtpSeconds(4_294_967_295));
        let bad = [
            (
                body(&hello("4294967296", "1", r#""AQIDBAU=""#, "-60")),
                "contacts[0].ids[0].timeCollectedOnDevice",
            ),
            (
                body(&hello("-1", "1", r#""AQIDBAU=""#, "-60")),
                "contacts[0].ids[0].timeCollectedOnDevice",
            ),
            (
                body(&hello("1", "65536", r#""AQIDBAU=""#, "-60")),
                "contacts[0].ids[0].timeFromHelloMessage",
            ),
            (
                body(&hello("1", "1", r#""AQIDBA==""#, "-60")),
                "contacts[0].ids[0].mac: must decode to 5 bytes",
            ),
            (
                body(&hello("1", "1", r#""AQIDBAUG""#, "-60")),
                "contacts[0].ids[0].mac: must decode to 5 bytes",
            ),
            (
                body(&hello("1", "1", r#""AQIDBAU""#, "-60")),
                "contacts[0].ids[0].mac: must be 8 characters",
            ),
            (
                body(&hello("1", "1", "null", "-60")),
                "contacts[0].ids[0].mac: required",
            ),
            (
                body(&hello("1", "1", r#""AQIDBAU=""#, "null")),
                "contacts[0].ids[0].rssiCalibrated: required",
            ),
            (
                body(&hello("1", "1", r#""AQIDBAU=""#, "-60.5")),
                "contacts[0].ids[0].rssiCalibrated: invalid type",
            ),
            (body(""), "contacts[0].ids: at least one"),
            (
                r#"{"token":"t","contacts":[{"ebid":"yqfVsPunrqc=","ecc":"wg=="}]}"#.into(),
                "contacts[0].ids: required",
            ),
            (
                r#"{"token":"t","contacts":[{"ebid":"yqfVsPunrq==","ecc":"wg==","ids":[]}]}"#
                    .into(),
                "contacts[0].ebid",
            ),
            (
                r#"{"token":"t","contacts":[{"ebid":"yqfVsPunrqc=","ecc":"wgA=","ids":[]}]}"#
                    .into(),
                "contacts[0].ecc",
            ),
            (r#"{"token":"t"}"#.into(), "contacts: required"),
            (r#"{"contacts":[]}"#.into(), "token: required"),
        ];
        for (json, expected) in bad {
            match report(&json) {
                Err(ApiError::InvalidData(m)) => assert!(m.starts_with(expected), "{json}: {m}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        assert!(
            report(r#"{"token":"","contacts":[]}"#).is_ok(),
            "empty token reaches the code check"
        );
    }

    /// Compatibility report M3: a peer's Int8 byte minus a gain can be
    /// −128 or below; one such HELLO must not reject the declaration.
    #[test]
    fn out_of_range_rssi_is_clamped_and_counted() {
        let hello = |rssi: &str| {
            format!(
                r#"{{"timeCollectedOnDevice":1,"timeFromHelloMessage":1,"mac":"AQIDBAU=","rssiCalibrated":{rssi}}}"#
            )
        };
        let ids: Vec<String> = ["-128", "500", "-60", "127", "-127", "-9223372036854775808"]
            .iter()
            .map(|r| hello(r))
            .collect();
        let json = format!(
            r#"{{"token":"t","contacts":[{{"ebid":"yqfVsPunrqc=","ecc":"wg==","ids":[{}]}}]}}"#,
            ids.join(",")
        );
        let dto = parse_json::<ReportRequestDto>(json.as_bytes()).unwrap();
        let v = dto.validate(&LimitsConfig::default()).unwrap();
        let rssi: Vec<i16> = v.contacts[0]
            .hellos
            .iter()
            .map(|h| h.rssi_calibrated)
            .collect();
        assert_eq!(rssi, [-127, 0, -60, 0, -127, -127]);
        assert_eq!((v.hellos, v.rssi_out_of_range), (6, 3));
    }

    #[test]
    fn report_limits() {
        let limits = LimitsConfig {
            max_contacts_per_report: 2,
            max_hellos_per_contact: 2,
            max_hellos_per_report: 3,
            ..LimitsConfig::default()
        };
        let h = r#"{"timeCollectedOnDevice":1,"timeFromHelloMessage":1,"mac":"AQIDBAU=","rssiCalibrated":-50}"#;
        let c = |n: usize| {
            format!(
                r#"{{"ebid":"yqfVsPunrqc=","ecc":"wg==","ids":[{}]}}"#,
                vec![h; n].join(",")
            )
        };
        let r = |contacts: Vec<String>| {
            let json = format!(r#"{{"token":"t","contacts":[{}]}}"#, contacts.join(","));
            parse_json::<ReportRequestDto>(json.as_bytes())
                .unwrap()
                .validate(&limits)
                .map(|v| v.hellos)
        };
        assert_eq!(r(vec![c(2), c(1)]).unwrap(), 3);
        assert!(r(vec![c(3)]).is_err());
        assert!(r(vec![c(2), c(2)]).is_err());
        assert!(r(vec![c(1), c(1), c(1)]).is_err());
    }

    #[test]
    fn register_validation() {
        let v = |j: &str| {
            parse_json::<RegisterRequestDto>(j.as_bytes())
                .unwrap()
                .validate()
                .map(|_| ())
        };
        assert!(v(r#"{"captcha":"a","captchaId":"b","clientPublicECDHKey":"c"}"#).is_ok());
        assert!(
            matches!(v(r#"{"captcha":"","captchaId":"b","clientPublicECDHKey":"c"}"#), Err(ApiError::InvalidData(m)) if m == "captcha: must not be empty")
        );
        assert!(
            matches!(v(r#"{"captcha":"a","clientPublicECDHKey":"c"}"#), Err(ApiError::InvalidData(m)) if m == "captchaId: required")
        );
    }

    #[test]
    fn direct_json_equals_serde() {
        let config =
            RawValue::from_string(r#"[{"name":"a","value":{"b":[1,"x"]}}]"#.to_owned()).unwrap();
        let sealed: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let r = RegisterResponse {
            tuples: Base64Bytes(&sealed),
            time_start: 3_799_958_400,
            config: &config,
            message: None,
        };
        let direct: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(direct, serde_json::to_value(&r).unwrap());
        for (risk, last, scoring, decl, analytics) in [
            (0u8, None, None, None, Some("eyJh.eyJi.c2ln")),
            (
                4,
                Some(3_920_000_000u64),
                Some(3_920_100_000u64),
                Some("a-b_c.d.e"),
                Some("x.y.z"),
            ),
            (0, None, None, None, None),
        ] {
            let s = StatusResponse {
                risk_level: risk,
                tuples: Base64Bytes(&sealed),
                config: &config,
                last_contact_date: last,
                last_risk_scoring_date: scoring,
                declaration_token: decl,
                analytics_token: analytics,
            };
            let direct: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
            assert_eq!(direct, serde_json::to_value(&s).unwrap());
            let stripped = StatusResponse {
                last_contact_date: None,
                last_risk_scoring_date: None,
                declaration_token: None,
                ..s
            };
            assert_eq!(
                s.to_json().len() - s.risk_fields_len(),
                stripped.to_json().len()
            );
            if let Some(l) = last {
                assert_eq!(direct["lastContactDate"], serde_json::json!(l.to_string()));
            } else {
                assert!(direct.get("lastContactDate").is_none());
            }
        }
    }

    #[test]
    fn push_info_needs_every_field() {
        let p = PushInfoDto {
            token: Some("t".into()),
            locale: Some("fr-FR".into()),
            timezone: Some(" ".into()),
        };
        assert!(p.to_registration().is_none());
        let p = PushInfoDto {
            timezone: Some("Europe/Paris".into()),
            ..p
        };
        assert_eq!(p.to_registration().unwrap().timezone, "Europe/Paris");
    }
}
