//! Report codes as the app accepts them (codes-and-push.md §1, §9 "Apps").
//!
//! | input | kind |
//! |---|---|
//! | 6 alphanumerics (doctor's short code) | [`CodeKind::Short`], upper-cased |
//! | 12 alphanumerics (test code) | [`CodeKind::Test`], kept as typed |
//! | UUID shape 8-4-4-4-12 (laboratory long code) | [`CodeKind::Long`], lower-cased |
//! | three dot-separated base64url parts (SI-DEP JWT) | [`CodeKind::Jwt`] |
//! | `https://bonjour.tousanticovid.gouv.fr/app/code/{code}` | the code inside |
//! | `https://bonjour.stopcovid.gouv.fr/app/code/{code}` | the code inside |
//! | `https://app.stopcovid.gouv.fr?code={uuid}&type=1` (lot files) | the code inside |
//!
//! Short codes are stored upper-case by the code service and long codes
//! lower-case, and its look-up is exact, so the SDK normalises their case.
//! Test codes were mixed-case in the Java era and are kept as typed.

use std::fmt;

use zeroize::Zeroizing;

/// The deep-link prefixes the app opens (Android 2022).
const DEEP_LINK_PREFIXES: [&str; 2] = [
    "https://bonjour.tousanticovid.gouv.fr/app/code/",
    "https://bonjour.stopcovid.gouv.fr/app/code/",
];

/// The lot files' QR URL (`https://app.stopcovid.gouv.fr?code=…&type=1`).
const LOT_URL_HOST: &str = "https://app.stopcovid.gouv.fr";

/// Longest input considered (a JWT is a few hundred characters).
pub const MAX_CODE_INPUT: usize = 4096;

/// What kind of code a [`ReportCode`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// 6 characters `0-9A-Z`, valid one hour (doctors).
    Short,
    /// 12 alphanumerics, valid days (tests).
    Test,
    /// 36-character UUID (laboratory QR codes).
    Long,
    /// A signed JWT (SI-DEP, 2022).
    Jwt,
}

/// A code that cannot be a report code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// Empty input.
    #[error("empty report code")]
    Empty,
    /// Longer than [`MAX_CODE_INPUT`].
    #[error("report code input too long")]
    TooLong,
    /// A URL that is not one of the app's deep links, or without a code.
    #[error("not a report-code link")]
    UnknownLink,
    /// Neither a short, test, long nor JWT code (the input is not echoed: it is a secret).
    #[error("not a valid report code (expected 6 or 12 letters/digits, a UUID or a JWT)")]
    InvalidFormat,
}

/// A parsed report code. A secret: zeroized on drop, `Debug` redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ReportCode {
    kind: CodeKind,
    value: Zeroizing<String>,
}

impl fmt::Debug for ReportCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReportCode")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ReportCode {
    /// Parses what the user typed or scanned (see the module docs).
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        if input.len() > MAX_CODE_INPUT {
            return Err(CodeError::TooLong);
        }
        let input = input.trim();
        if input.is_empty() {
            return Err(CodeError::Empty);
        }
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Self::parse_raw(extract_from_link(input)?);
        }
        Self::parse_raw(input)
    }

    /// Parses a bare code (no link).
    fn parse_raw(code: &str) -> Result<Self, CodeError> {
        let code = code.trim();
        if code.is_empty() {
            return Err(CodeError::Empty);
        }
        let alnum = code.bytes().all(|b| b.is_ascii_alphanumeric());
        let (kind, value) = if alnum && code.len() == 6 {
            (CodeKind::Short, code.to_ascii_uppercase())
        } else if alnum && code.len() == 12 {
            (CodeKind::Test, code.to_owned())
        } else if is_uuid_shape(code) {
            (CodeKind::Long, code.to_ascii_lowercase())
        } else if is_jwt_shape(code) {
            (CodeKind::Jwt, code.to_owned())
        } else {
            return Err(CodeError::InvalidFormat);
        };
        Ok(Self {
            kind,
            value: Zeroizing::new(value),
        })
    }

    /// The kind of code.
    pub fn kind(&self) -> CodeKind {
        self.kind
    }

    /// The code to send as the report's `token`.
    pub fn expose_secret(&self) -> &str {
        &self.value
    }
}

/// The code inside one of the app's links.
fn extract_from_link(url: &str) -> Result<&str, CodeError> {
    let lower = url.to_ascii_lowercase();
    for prefix in DEEP_LINK_PREFIXES {
        if lower.starts_with(prefix) {
            let rest = &url[prefix.len()..];
            // Drop a query or fragment and a trailing slash.
            let end = rest.find(['?', '#']).unwrap_or(rest.len());
            let code = rest[..end].trim_end_matches('/');
            return if code.is_empty() || code.contains('/') {
                Err(CodeError::UnknownLink)
            } else {
                Ok(code)
            };
        }
    }
    if lower.starts_with(LOT_URL_HOST) {
        let rest = &url[LOT_URL_HOST.len()..];
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        let Some(query) = rest.strip_prefix('?') else {
            return Err(CodeError::UnknownLink);
        };
        let query = query.split('#').next().unwrap_or("");
        for pair in query.split('&') {
            if let Some(v) = pair.strip_prefix("code=") {
                return if v.is_empty() {
                    Err(CodeError::UnknownLink)
                } else {
                    Ok(v)
                };
            }
        }
    }
    Err(CodeError::UnknownLink)
}

/// `[A-Za-z0-9]{8}-{4}-{4}-{4}-{12}` (the Android app's shape check).
fn is_uuid_shape(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Three non-empty base64url parts separated by dots.
fn is_jwt_shape(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(input: &str) -> (CodeKind, String) {
        let c = ReportCode::parse(input).unwrap();
        (c.kind(), c.expose_secret().to_owned())
    }

    #[test]
    fn raw_codes() {
        assert_eq!(ok("ab12cd"), (CodeKind::Short, "AB12CD".into()));
        assert_eq!(ok("  AB12CD\n"), (CodeKind::Short, "AB12CD".into()));
        assert_eq!(ok("aB3dE6gH9jK2"), (CodeKind::Test, "aB3dE6gH9jK2".into()));
        let uuid = "3D27EB2C-9A3B-4E4F-8D7C-1234567890AB";
        assert_eq!(ok(uuid), (CodeKind::Long, uuid.to_ascii_lowercase()));
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpYXQiOjF9.c2ln_-";
        assert_eq!(ok(jwt), (CodeKind::Jwt, jwt.into()));
    }

    #[test]
    fn deep_links() {
        let uuid = "3d27eb2c-9a3b-4e4f-8d7c-1234567890ab";
        for link in [
            format!("https://bonjour.tousanticovid.gouv.fr/app/code/{uuid}"),
            format!("https://bonjour.stopcovid.gouv.fr/app/code/{uuid}"),
            format!("https://bonjour.stopcovid.gouv.fr/app/code/{uuid}/"),
            format!("HTTPS://BONJOUR.TOUSANTICOVID.GOUV.FR/app/code/{uuid}?utm=x"),
            format!("https://app.stopcovid.gouv.fr?code={uuid}&type=1"),
            format!("https://app.stopcovid.gouv.fr/?type=1&code={uuid}"),
        ] {
            assert_eq!(ok(&link), (CodeKind::Long, uuid.into()), "{link}");
        }
        assert_eq!(
            ok("https://bonjour.tousanticovid.gouv.fr/app/code/ab12cd"),
            (CodeKind::Short, "AB12CD".into())
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(ReportCode::parse("   ").unwrap_err(), CodeError::Empty);
        for bad in ["ABCDE", "ABCDEFG", "AB-2CD", "12345678901", "a.b", "é12345"] {
            assert_eq!(
                ReportCode::parse(bad).unwrap_err(),
                CodeError::InvalidFormat,
                "{bad}"
            );
        }
        for bad in [
            "https://example.com/app/code/AB12CD",
            "https://bonjour.tousanticovid.gouv.fr/app/code/",
            "https://bonjour.tousanticovid.gouv.fr/app/code/a/b",
            "https://app.stopcovid.gouv.fr?type=1",
            "https://app.stopcovid.gouv.fr/somewhere",
        ] {
            assert_eq!(
                ReportCode::parse(bad).unwrap_err(),
                CodeError::UnknownLink,
                "{bad}"
            );
        }
        assert_eq!(
            ReportCode::parse(&"A".repeat(MAX_CODE_INPUT + 1)).unwrap_err(),
            CodeError::TooLong
        );
        // A link to a malformed code is a format error.
        assert_eq!(
            ReportCode::parse("https://app.stopcovid.gouv.fr?code=zz&type=1").unwrap_err(),
            CodeError::InvalidFormat
        );
    }

    #[test]
    fn debug_hides_the_code() {
        let c = ReportCode::parse("AB12CD").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("AB12CD"), "{dbg}");
        assert!(dbg.contains("Short"));
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = ReportCode::parse(&s);
        }

        #[test]
        fn six_alphanumerics_are_short_codes(s in "[a-zA-Z0-9]{6}") {
            let c = ReportCode::parse(&s).unwrap();
            prop_assert_eq!(c.kind(), CodeKind::Short);
            prop_assert_eq!(c.expose_secret(), s.to_ascii_uppercase());
        }
    }
}
