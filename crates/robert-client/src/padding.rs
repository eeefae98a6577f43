//! Request padding (docs/traffic-privacy.md): `/status` and `/report`
//! bodies get a `"padding"` JSON field that brings them to a fixed size
//! bucket, so that their size on the wire says as little as possible. Pure.
//!
//! * `/status`: a multiple of [`STATUS_BUCKET`] (512 bytes: every status
//!   body, with or without `pushInfo`, in one or two buckets).
//! * `/report`: the smallest size of the series [`REPORT_MIN`] × 2^(k/4)
//!   (rounded up to 256 bytes) that holds the body: steps of about 19 %, so
//!   padding costs at most a fifth of the report, and a report's size tells
//!   only its order of magnitude. A dummy report is padded to the size the
//!   phone's real report would have now (see `Phone::send_dummy_report`).
//!
//! Servers ignore the field (unknown fields are ignored by the reference's
//! Jackson and by our server's DTOs); the phone pads only for a server
//! whose `config` list announces `privacy.padding`.

/// The request header of the traffic-privacy mark: `0` on a real request,
/// `1` on a dummy; it also asks the server to pad its answer.
pub const FAKE_HEADER: &str = "robert-fake";

/// `/status` bodies are padded to a multiple of this many bytes.
pub const STATUS_BUCKET: usize = 512;
/// The smallest padded `/report` body.
pub const REPORT_MIN: usize = 2048;

/// The overhead of an empty padding field, `,"padding":""`.
pub const FIELD_OVERHEAD: usize = r#","padding":"""#.len();

/// The padded size of a `/status` body of `len` bytes.
pub fn status_target(len: usize) -> usize {
    (len + FIELD_OVERHEAD).div_ceil(STATUS_BUCKET) * STATUS_BUCKET
}

/// The padded size of a `/report` body of `len` bytes.
pub fn report_target(len: usize) -> usize {
    let need = len + FIELD_OVERHEAD;
    let mut k = 0u32;
    loop {
        let size = REPORT_MIN as f64 * 2f64.powf(f64::from(k) / 4.0);
        // Beyond 2^60 bytes nothing is sent anyway: stop growing.
        if !size.is_finite() || size > 1e18 {
            return need.div_ceil(256) * 256;
        }
        let size = (size as usize).div_ceil(256) * 256;
        if size >= need {
            return size;
        }
        k += 1;
    }
}

/// Inserts `"padding":"000…"` into the JSON object `body` so that it is
/// exactly `target` bytes long. A body that is not an object, or that
/// `target` cannot hold, is returned unchanged.
pub fn pad_json_object(mut body: Vec<u8>, target: usize) -> Vec<u8> {
    let Some(end) = body.iter().rposition(|b| !b.is_ascii_whitespace()) else {
        return body;
    };
    if body.first() != Some(&b'{') || body[end] != b'}' {
        return body;
    }
    let empty = body[1..end].iter().all(u8::is_ascii_whitespace);
    let field: &[u8] = if empty {
        br#""padding":""#
    } else {
        br#","padding":""#
    };
    let Some(fill) = target.checked_sub(end + field.len() + 2) else {
        return body;
    };
    body.truncate(end);
    body.reserve(target - end);
    body.extend_from_slice(field);
    body.resize(body.len() + fill, b'0');
    body.extend_from_slice(b"\"}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_reach_their_bucket_exactly() {
        let body = br#"{"ebid":"yqfVsPunrqc=","epochId":66855,"time":"5XobgA==","mac":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}"#.to_vec();
        let t = status_target(body.len());
        assert_eq!(t, 512);
        let padded = pad_json_object(body.clone(), t);
        assert_eq!(padded.len(), 512);
        let mut v: serde_json::Value = serde_json::from_slice(&padded).unwrap();
        v.as_object_mut().unwrap().remove("padding");
        assert_eq!(
            v,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        );
        assert_eq!(pad_json_object(b"{}".to_vec(), 20).len(), 20);
        assert_eq!(pad_json_object(b"[1]".to_vec(), 20), b"[1]");
        assert_eq!(pad_json_object(b"{\"a\":1}".to_vec(), 3), b"{\"a\":1}");
    }

    #[test]
    fn report_buckets_grow_by_about_a_fifth() {
        assert_eq!(report_target(0), 2048);
        assert_eq!(report_target(2048 - FIELD_OVERHEAD), 2048);
        let mut prev = report_target(0);
        let mut len = 0;
        while len < 50_000_000 {
            let t = report_target(len);
            assert!(t >= len + FIELD_OVERHEAD);
            assert_eq!(t % 256, 0);
            assert!(t >= prev);
            // At most one step (2^¼ ≈ 1.19, plus the 256-byte rounding) above the need.
            let bound = ((len + FIELD_OVERHEAD) as f64 * 1.19 + 512.0).max(REPORT_MIN as f64);
            assert!(t as f64 <= bound, "{len} {t}");
            prev = t;
            len = len * 11 / 10 + 97;
        }
        // Few sizes: the same bucket for neighbouring lengths.
        assert_eq!(report_target(100_000), report_target(101_000));
    }
}
