//! Code kinds, their shapes, generation from a CSPRNG and validity windows
//! (codes-and-push.md §1, §2.1, §3).

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use rand::TryCryptoRng;
use zeroize::Zeroizing;

/// The 36 symbols a short or test code may hold when verified: `0-9A-Z`,
/// upper case (the reference's alphabet, so codes it or an earlier version
/// issued still verify).
pub const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The 31 symbols new short and test codes are drawn from: [`ALPHABET`]
/// without `0`, `O`, `1`, `I` and `L`, which people misread when a code is
/// read out or copied by hand (CWA dropped them from its phone-read codes
/// for the same reason). Still upper-case alphanumerics, so the apps'
/// 6-character input (`[A-Za-z0-9]{6}`) accepts every code.
pub const UNAMBIGUOUS_ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// Length of a short (doctor) code.
pub const SHORT_LEN: usize = 6;
/// Length of a test code.
pub const TEST_LEN: usize = 12;
/// Length of a long (laboratory, UUID v4) code.
pub const LONG_LEN: usize = 36;
/// Longest input the verify endpoint looks at (a JWT report token is far shorter).
pub const MAX_INPUT_LEN: usize = 4096;

/// The kinds of stored codes. The discriminant is the reference's `type_code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CodeKind {
    /// UUID v4 printed by laboratories as a QR code, valid 8 civil days (Paris).
    Long = 1,
    /// 6 symbols issued to a doctor, valid 60 minutes.
    Short = 2,
    /// 12 symbols, valid to the end of the UTC day 15 days ahead.
    Test = 3,
}

impl CodeKind {
    /// All stored kinds.
    pub const ALL: [CodeKind; 3] = [CodeKind::Long, CodeKind::Short, CodeKind::Test];

    /// The database value (the reference's `type_code`).
    pub fn db_value(self) -> i64 {
        self as i64
    }

    /// Parses a database value.
    pub fn from_db(value: i64) -> Option<Self> {
        match value {
            1 => Some(Self::Long),
            2 => Some(Self::Short),
            3 => Some(Self::Test),
            _ => None,
        }
    }

    /// Name used in metrics and logs (`LONG`, `SHORT`, `TEST`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Long => "LONG",
            Self::Short => "SHORT",
            Self::Test => "TEST",
        }
    }
}

/// What the verify endpoint infers from a submitted string's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A stored code of this kind.
    Code(CodeKind),
    /// Three non-empty dot-separated parts: a compact JWS report token.
    Jwt,
    /// Nothing we issue looks like this.
    Malformed,
}

/// Infers a submitted code's kind from its length and alphabet, as the
/// reference does since 2021-10 (36 → UUID, 6 → short, 12 → test, JWS → JWT).
///
/// Long codes must be lower-case hex UUIDs and short/test codes upper case
/// `0-9A-Z`: codes are compared exactly, as the reference's database did.
pub fn classify(input: &str) -> Shape {
    let bytes = input.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_INPUT_LEN {
        return Shape::Malformed;
    }
    match bytes.len() {
        SHORT_LEN if bytes.iter().all(|b| ALPHABET.contains(b)) => Shape::Code(CodeKind::Short),
        TEST_LEN if bytes.iter().all(|b| ALPHABET.contains(b)) => Shape::Code(CodeKind::Test),
        LONG_LEN if is_lower_uuid(bytes) => Shape::Code(CodeKind::Long),
        _ if is_jws_shape(input) => Shape::Jwt,
        _ => Shape::Malformed,
    }
}

fn is_lower_uuid(bytes: &[u8]) -> bool {
    bytes.len() == LONG_LEN
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
}

fn is_jws_shape(input: &str) -> bool {
    let mut parts = input.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    };
    ok(parts.next()) && ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Failure of the operating system's random generator.
#[derive(Debug, thiserror::Error)]
#[error("the operating system random generator failed")]
pub struct RngFailure;

/// Draws `len` symbols uniformly from [`UNAMBIGUOUS_ALPHABET`] (rejection
/// sampling, no bias).
pub fn random_symbols<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    len: usize,
) -> Result<Zeroizing<String>, RngFailure> {
    const N: u8 = 31;
    // 248 = 8 × 31: bytes at or above it are rejected so every symbol is equally likely.
    const LIMIT: u8 = N * 8;
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0_u8; 32]);
    while out.len() < len {
        rng.try_fill_bytes(buf.as_mut()).map_err(|_| RngFailure)?;
        for &b in buf.iter() {
            if b < LIMIT && out.len() < len {
                out.push(char::from(UNAMBIGUOUS_ALPHABET[usize::from(b % N)]));
            }
        }
    }
    Ok(out)
}

/// A random UUID v4 in the canonical lower-case hyphenated form.
pub fn random_uuid_v4<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
) -> Result<Zeroizing<String>, RngFailure> {
    let mut b = Zeroizing::new([0_u8; 16]);
    rng.try_fill_bytes(b.as_mut()).map_err(|_| RngFailure)?;
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = Zeroizing::new(hex::encode(b.as_ref()));
    let mut out = Zeroizing::new(String::with_capacity(LONG_LEN));
    for (i, c) in hex.chars().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(c);
    }
    Ok(out)
}

/// Generates a fresh code of `kind`.
pub fn generate<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    kind: CodeKind,
) -> Result<Zeroizing<String>, RngFailure> {
    match kind {
        CodeKind::Long => random_uuid_v4(rng),
        CodeKind::Short => random_symbols(rng, SHORT_LEN),
        CodeKind::Test => random_symbols(rng, TEST_LEN),
    }
}

/// A validity window, both ends inclusive (`from ≤ now ≤ until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant at which the code is accepted.
    pub from: DateTime<Utc>,
    /// Last instant at which the code is accepted.
    pub until: DateTime<Utc>,
}

/// 00:00 in Europe/Paris on the civil date `day`, as a UTC instant.
///
/// Computed for that date (not with today's offset), so it is right on both
/// sides of a DST change. Paris changes at 02:00/03:00, so midnight always exists.
pub fn paris_midnight(day: NaiveDate) -> DateTime<Utc> {
    paris_local(day, NaiveTime::MIN)
}

/// `day` at `time` in Europe/Paris as a UTC instant; for a time inside a DST
/// gap the first valid instant after it, for an ambiguous time the earlier one.
pub fn paris_local(day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = day.and_time(time);
    match Paris.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => {
            // In a spring-forward gap: an hour later is always valid in Paris.
            let later = local + Duration::hours(1);
            Paris
                .from_local_datetime(&later)
                .earliest()
                .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc))
        }
    }
}

/// The civil date in Paris at instant `t`.
pub fn paris_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&Paris).date_naive()
}

/// Validity of a long code for civil day `day`: from Paris midnight of `day`
/// to `day + validity_days` at 23:59 Paris (§2.1), each bound computed for its
/// own civil date.
pub fn long_validity(day: NaiveDate, validity_days: u32) -> Validity {
    let last = day
        .checked_add_days(Days::new(u64::from(validity_days)))
        .unwrap_or(NaiveDate::MAX);
    let until_time = NaiveTime::from_hms_opt(23, 59, 0).unwrap_or(NaiveTime::MIN);
    Validity {
        from: paris_midnight(day),
        until: paris_local(last, until_time),
    }
}

/// Validity of a short code issued at `now`: `validity_minutes` from now.
pub fn short_validity(now: DateTime<Utc>, validity_minutes: u32) -> Validity {
    Validity {
        from: now,
        until: now + Duration::minutes(i64::from(validity_minutes)),
    }
}

/// Validity of a test code issued at `now`: to the end (23:59:59) of the UTC
/// day `validity_days` ahead.
pub fn test_validity(now: DateTime<Utc>, validity_days: u32) -> Validity {
    let last = now
        .date_naive()
        .checked_add_days(Days::new(u64::from(validity_days)))
        .unwrap_or(NaiveDate::MAX);
    let end = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
    Validity {
        from: now,
        until: Utc.from_utc_datetime(&last.and_time(end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics_and_is_consistent(s in "\\PC{0,80}") {
            match classify(&s) {
                Shape::Code(CodeKind::Short) => proptest::prop_assert_eq!(s.len(), SHORT_LEN),
                Shape::Code(CodeKind::Test) => proptest::prop_assert_eq!(s.len(), TEST_LEN),
                Shape::Code(CodeKind::Long) => proptest::prop_assert_eq!(s.len(), LONG_LEN),
                Shape::Jwt => proptest::prop_assert_eq!(s.matches('.').count(), 2),
                Shape::Malformed => {}
            }
        }

        #[test]
        fn random_alphanumerics_of_code_lengths_classify(s in "[0-9A-Z]{6}|[0-9A-Z]{12}") {
            proptest::prop_assert!(matches!(classify(&s), Shape::Code(_)));
        }
    }

    #[test]
    fn classify_shapes() {
        assert_eq!(classify("AS3F5Z"), Shape::Code(CodeKind::Short));
        assert_eq!(classify("as3f5z"), Shape::Malformed);
        assert_eq!(classify("ABCDEF123456"), Shape::Code(CodeKind::Test));
        assert_eq!(
            classify("3fa85f64-5717-4562-b3fc-2c963f66afa6"),
            Shape::Code(CodeKind::Long)
        );
        assert_eq!(
            classify("3FA85F64-5717-4562-B3FC-2C963F66AFA6"),
            Shape::Malformed
        );
        assert_eq!(
            classify("3fa85f645717-4562-b3fc-2c963f66afa6-"),
            Shape::Malformed
        );
        assert_eq!(classify("eyJh.eyJp.c2ln"), Shape::Jwt);
        assert_eq!(classify("a..b"), Shape::Malformed);
        assert_eq!(classify("a.b.c.d"), Shape::Malformed);
        assert_eq!(classify(""), Shape::Malformed);
        assert_eq!(classify("ABCDE"), Shape::Malformed);
        assert_eq!(classify("ABCDE!"), Shape::Malformed);
        assert_eq!(classify("ÀBCDE"), Shape::Malformed);
    }

    #[test]
    fn generated_codes_have_their_shape() {
        let mut rng = rand::rngs::SysRng;
        for _ in 0..200 {
            for kind in CodeKind::ALL {
                let c = generate(&mut rng, kind).unwrap();
                assert_eq!(classify(&c), Shape::Code(kind), "{kind:?}");
            }
        }
        let u = random_uuid_v4(&mut rng).unwrap();
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn symbols_cover_the_alphabet_roughly_uniformly() {
        let mut rng = rand::rngs::SysRng;
        let mut counts = [0_u32; 31];
        for _ in 0..2583 {
            for b in random_symbols(&mut rng, 12).unwrap().bytes() {
                let i = UNAMBIGUOUS_ALPHABET.iter().position(|a| *a == b).unwrap();
                counts[i] += 1;
            }
        }
        // 30 996 draws: 1000 expected per symbol; a symbol that is never
        // drawn (reference bug #3) or drawn twice as often would fail.
        for (i, c) in counts.iter().enumerate() {
            assert!((800..1200).contains(c), "symbol {i}: {c}");
        }
    }

    #[test]
    fn new_codes_avoid_ambiguous_symbols_and_fit_the_apps_input() {
        for b in b"0O1IL" {
            assert!(!UNAMBIGUOUS_ALPHABET.contains(b));
        }
        assert!(UNAMBIGUOUS_ALPHABET.iter().all(|b| ALPHABET.contains(b)));
        let mut rng = rand::rngs::SysRng;
        for _ in 0..500 {
            let c = generate(&mut rng, CodeKind::Short).unwrap();
            // The Android app's short-code pattern: 6 alphanumerics.
            assert!(
                c.len() == 6 && c.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{}",
                &*c
            );
            assert!(!c.bytes().any(|b| b"0O1IL".contains(&b)), "{}", &*c);
        }
        // Codes from the full alphabet (issued before) still classify.
        assert_eq!(classify("0O1IL0"), Shape::Code(CodeKind::Short));
    }

    #[test]
    fn long_validity_outside_dst() {
        // Summer (CEST, UTC+2): the reference's CSV example.
        let v = long_validity(date("2021-08-26"), 7);
        assert_eq!(v.from, utc("2021-08-25T22:00:00Z"));
        assert_eq!(v.until, utc("2021-09-02T21:59:00Z"));
        // Winter (CET, UTC+1).
        let v = long_validity(date("2022-01-10"), 7);
        assert_eq!(v.from, utc("2022-01-09T23:00:00Z"));
        assert_eq!(v.until, utc("2022-01-17T22:59:00Z"));
    }

    #[test]
    fn long_validity_across_march_transition() {
        // DST starts on Sunday 2026-03-29 at 02:00 CET.
        let v = long_validity(date("2026-03-25"), 7);
        assert_eq!(v.from, utc("2026-03-24T23:00:00Z")); // CET
        assert_eq!(v.until, utc("2026-04-01T21:59:00Z")); // CEST
        let v = long_validity(date("2026-03-29"), 7);
        assert_eq!(v.from, utc("2026-03-28T23:00:00Z"));
        assert_eq!(v.until, utc("2026-04-05T21:59:00Z"));
        let v = long_validity(date("2026-03-30"), 7);
        assert_eq!(v.from, utc("2026-03-29T22:00:00Z"));
        // The day before the change ends on the change day, still CEST at 23:59.
        let v = long_validity(date("2026-03-21"), 7);
        assert_eq!(v.from, utc("2026-03-20T23:00:00Z"));
        assert_eq!(v.until, utc("2026-03-28T22:59:00Z"));
        let v = long_validity(date("2026-03-22"), 7);
        assert_eq!(v.until, utc("2026-03-29T21:59:00Z"));
    }

    #[test]
    fn long_validity_across_october_transition() {
        // DST ends on Sunday 2026-10-25 at 03:00 CEST.
        let v = long_validity(date("2026-10-20"), 7);
        assert_eq!(v.from, utc("2026-10-19T22:00:00Z")); // CEST
        assert_eq!(v.until, utc("2026-10-27T22:59:00Z")); // CET
        let v = long_validity(date("2026-10-25"), 7);
        assert_eq!(v.from, utc("2026-10-24T22:00:00Z"));
        assert_eq!(v.until, utc("2026-11-01T22:59:00Z"));
        let v = long_validity(date("2026-10-26"), 7);
        assert_eq!(v.from, utc("2026-10-25T23:00:00Z"));
        let v = long_validity(date("2026-10-18"), 7);
        assert_eq!(v.until, utc("2026-10-25T22:59:00Z"));
    }

    #[test]
    fn paris_date_around_midnight() {
        assert_eq!(paris_date(utc("2026-03-28T22:59:59Z")), date("2026-03-28"));
        assert_eq!(paris_date(utc("2026-03-28T23:00:00Z")), date("2026-03-29"));
        assert_eq!(paris_date(utc("2026-07-01T21:59:59Z")), date("2026-07-01"));
        assert_eq!(paris_date(utc("2026-07-01T22:00:00Z")), date("2026-07-02"));
    }

    #[test]
    fn short_and_test_validity() {
        let now = utc("2022-01-11T18:28:30Z");
        let v = short_validity(now, 60);
        assert_eq!(v.from, now);
        assert_eq!(v.until, utc("2022-01-11T19:28:30Z"));
        let v = test_validity(now, 15);
        assert_eq!(v.until, utc("2022-01-26T23:59:59Z"));
        // Just before UTC midnight: still the same UTC day.
        let v = test_validity(utc("2022-01-11T23:59:59Z"), 15);
        assert_eq!(v.until, utc("2022-01-26T23:59:59Z"));
    }
}
