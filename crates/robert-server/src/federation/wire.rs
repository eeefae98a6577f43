//! The server-to-server wire format (docs/federation.md):
//!
//! ```text
//! POST /federation/v1/contacts
//! Content-Type: application/json
//! X-Robert-Origin: 33                     the sender's country code (decimal)
//! X-Robert-Signature: <base64, 64 bytes>  ECDSA P-256 / SHA-256 over the exact body bytes, r ‖ s
//!
//! {"version":1,"origin":33,"destination":32,"batchId":"<1..64 of [A-Za-z0-9_-]>",
//!  "createdAt":<Unix seconds>,
//!  "contacts":[{"ebid":"<b64 8>","ecc":"<b64 1>","ids":[{"timeCollectedOnDevice":…,
//!     "timeFromHelloMessage":…,"mac":"<b64 5>","rssiCalibrated":…},…]},…]}
//! ```
//!
//! The contacts have the JSON form of `/api/v6/report`'s: a partner parses
//! them with the code it has. The signature covers origin, destination,
//! batch id and time, so none of them can be changed or replayed to another
//! country; the receiver checks the time against its clock.

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use robert_store::UploadedContact;
use serde::{Deserialize, Serialize};

use crate::api::dto::ContactDto;

/// The path of the inbound endpoint.
pub const CONTACTS_PATH: &str = "/federation/v1/contacts";
/// The header naming the sender's country code.
pub const ORIGIN_HEADER: &str = "x-robert-origin";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-robert-signature";
/// The version of the body.
pub const VERSION: u32 = 1;
/// Longest batch id.
pub const BATCH_ID_MAX_LEN: usize = 64;

/// A body as sent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundBody<'a> {
    /// [`VERSION`].
    pub version: u32,
    /// The sender's country code.
    pub origin: u8,
    /// The receiver's country code.
    pub destination: u8,
    /// The batch id (the same over retries).
    pub batch_id: &'a str,
    /// When this attempt was made (Unix seconds).
    pub created_at: i64,
    /// The contacts.
    pub contacts: Vec<WireContact>,
}

/// One contact as sent.
#[derive(Debug, Serialize)]
pub struct WireContact {
    ebid: String,
    ecc: String,
    ids: Vec<WireHello>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WireHello {
    time_collected_on_device: u64,
    time_from_hello_message: u16,
    mac: String,
    rssi_calibrated: i16,
}

impl WireContact {
    /// The wire form of a stored contact.
    pub fn of(c: &UploadedContact) -> Self {
        Self {
            ebid: c.ebid.to_base64(),
            ecc: c.ecc.to_base64(),
            ids: c
                .hellos
                .iter()
                .map(|h| WireHello {
                    time_collected_on_device: h.time_collected.get(),
                    time_from_hello_message: h.time_sent.0,
                    mac: h.mac.to_base64(),
                    rssi_calibrated: h.rssi_calibrated,
                })
                .collect(),
        }
    }
}

/// A body as received (every field checked by the handler).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundBody {
    /// Must be [`VERSION`].
    pub version: Option<u32>,
    /// Must equal the origin header.
    pub origin: Option<u8>,
    /// Must be this server's country.
    pub destination: Option<u8>,
    /// The batch id.
    pub batch_id: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// The contacts (`/report` form).
    pub contacts: Option<Vec<ContactDto>>,
}

/// Whether a batch id is well formed: 1 to [`BATCH_ID_MAX_LEN`] characters
/// of `[A-Za-z0-9_-]`.
pub fn valid_batch_id(id: &str) -> bool {
    (1..=BATCH_ID_MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Signs a body: base64 of `r ‖ s`.
pub fn sign(key: &SigningKey, body: &[u8]) -> String {
    let sig: Signature = key.sign(body);
    robert_core::b64::encode(sig.to_bytes())
}

/// Verifies a signature header over a body.
pub fn verify(key: &VerifyingKey, body: &[u8], signature: &str) -> bool {
    let Ok(raw) = robert_core::b64::decode(signature.trim(), "signature") else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&raw) else {
        return false;
    };
    key.verify(body, &sig).is_ok()
}

/// The digest the receiver records per batch: SHA-256 over each contact's
/// EBID, ECC and HELLOs, in order.
pub fn contacts_digest(contacts: &[UploadedContact]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"robert federation batch v1");
    for c in contacts {
        h.update(c.ebid.0);
        h.update([c.ecc.0]);
        h.update((c.hellos.len() as u64).to_be_bytes());
        for hello in &c.hellos {
            h.update(hello.time_collected.get().to_be_bytes());
            h.update(hello.time_sent.0.to_be_bytes());
            h.update(hello.mac.0);
            h.update(hello.rssi_calibrated.to_be_bytes());
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_byte() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let other = SigningKey::from_slice(&[8u8; 32]).unwrap();
        let body = br#"{"version":1,"origin":33}"#;
        let sig = sign(&key, body);
        assert!(verify(key.verifying_key(), body, &sig));
        assert!(!verify(other.verifying_key(), body, &sig));
        let mut tampered = body.to_vec();
        tampered[20] ^= 1;
        assert!(!verify(key.verifying_key(), &tampered, &sig));
        assert!(!verify(key.verifying_key(), body, "not base64!"));
        assert!(!verify(key.verifying_key(), body, "AAAA"));
    }

    #[test]
    fn batch_ids() {
        assert!(valid_batch_id("0123abcdEF-_"));
        assert!(!valid_batch_id(""));
        assert!(!valid_batch_id("a b"));
        assert!(!valid_batch_id("é"));
        assert!(!valid_batch_id(&"a".repeat(65)));
        assert!(valid_batch_id(&"a".repeat(64)));
    }
}
