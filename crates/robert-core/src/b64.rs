//! Base64 as the reference speaks it: the standard RFC 4648 alphabet.
//!
//! We always *write* padded base64 (Java's `Base64.getEncoder()`), and *read*
//! with padding optional, as Java's `Base64.getDecoder()` does.

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::Error;

/// Padded standard base64 for output.
pub const ENCODER: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Standard base64 accepting input with or without padding.
pub const DECODER: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as padded standard base64.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    ENCODER.encode(bytes)
}

/// Decodes standard base64 of any length.
pub fn decode(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    DECODER
        .decode(s.as_bytes())
        .map_err(|_| Error::InvalidBase64 { what })
}

/// Decodes standard base64 that must hold exactly `N` bytes.
pub fn decode_array<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], Error> {
    // Reject absurd inputs before allocating: N bytes need at most 4*ceil(N/3) chars.
    if s.len() > N.div_ceil(3) * 4 {
        return Err(Error::InvalidLength {
            what,
            expected: N,
            actual: s.len() * 3 / 4,
        });
    }
    let bytes = decode(s, what)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| Error::InvalidLength {
        what,
        expected: N,
        actual: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_optional_on_input_and_always_written() {
        assert_eq!(
            decode_array::<8>("yqfVsPunrqc=", "ebid").unwrap(),
            decode_array::<8>("yqfVsPunrqc", "ebid").unwrap()
        );
        assert_eq!(encode([0xc2]), "wg==");
        assert!(matches!(
            decode_array::<8>("yqfVsPunrq==", "ebid"),
            Err(Error::InvalidLength { .. } | Error::InvalidBase64 { .. })
        ));
        assert_eq!(
            decode_array::<8>("@@@@@@@@@@@=", "ebid"),
            Err(Error::InvalidBase64 { what: "ebid" })
        );
        assert!(matches!(
            decode_array::<1>("yqfVsPunrqc=", "ecc"),
            Err(Error::InvalidLength { .. })
        ));
    }
}
