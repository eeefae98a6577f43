//! Tuple bundles: the EBIDs and ECCs a phone receives (protocol.md §6).
//!
//! ```text
//! plaintext = [{"epochId":N,"key":{"ebid":b64(8),"ecc":b64(1)}}, ...]   (compact JSON, ascending epochId)
//! bundle    = IV (12) ‖ AES-256-GCM(K_A_Tuples, plaintext) ‖ tag (16)  (no AAD)
//! ```
//!
//! A bundle generated at epoch `e` covers `e` to the end of UTC day
//! `day(e) + N - 1` (N = 4 by default), each day's tuples encrypted under that
//! day's K_S; days without a key are skipped.

use core::fmt::Write as _;

use aes_gcm::Nonce;
use aes_gcm::aead::AeadInOut;
use rand_core::CryptoRng;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ebid::Ebid;
use crate::ecc::{CountryCode, Ecc};
use crate::id_a::IdA;
use crate::keys::{KeyATuples, KeyG, KeyS};
use crate::time::{EPOCHS_PER_DAY, Epoch, ServiceStart, UtcDate};
use crate::{Error, b64};

/// IV length of a sealed bundle.
pub const IV_LEN: usize = 12;
/// GCM tag length of a sealed bundle.
pub const TAG_LEN: usize = 16;

/// One `(epoch, EBID, ECC)` tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// The epoch during which the EBID is broadcast.
    pub epoch: Epoch,
    /// The EBID.
    pub ebid: Ebid,
    /// The ECC to broadcast with it.
    pub ecc: Ecc,
}

/// A list of tuples sorted by ascending epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TupleBundle {
    /// The tuples.
    pub tuples: Vec<Tuple>,
}

#[derive(Deserialize)]
struct JsonTuple {
    #[serde(rename = "epochId")]
    epoch_id: u32,
    key: JsonKey,
}

#[derive(Deserialize)]
struct JsonKey {
    ebid: String,
    ecc: String,
}

impl TupleBundle {
    /// The compact JSON the reference writes (byte-identical field order).
    pub fn to_json(&self) -> String {
        // 58 bytes per tuple with a 5-digit epoch: reserve a little more.
        let mut out = String::with_capacity(2 + self.tuples.len() * 64);
        out.push('[');
        let mut ebid_b64 = [0u8; 12];
        let mut ecc_b64 = [0u8; 4];
        for (i, t) in self.tuples.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{{\"epochId\":{},\"key\":{{\"ebid\":\"", t.epoch.0);
            out.push_str(encode_into(&t.ebid.0, &mut ebid_b64));
            out.push_str("\",\"ecc\":\"");
            out.push_str(encode_into(&[t.ecc.0], &mut ecc_b64));
            out.push_str("\"}}");
        }
        out.push(']');
        out
    }

    /// Parses the JSON (any field order and whitespace) and sorts by epoch.
    pub fn from_json(json: &[u8]) -> Result<Self, Error> {
        let raw: Vec<JsonTuple> = serde_json::from_slice(json).map_err(|_| Error::InvalidTuples)?;
        let mut tuples = raw
            .into_iter()
            .map(|t| {
                Ok(Tuple {
                    epoch: Epoch(t.epoch_id),
                    ebid: Ebid::from_base64(&t.key.ebid)?,
                    ecc: Ecc::from_base64(&t.key.ecc)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        tuples.sort_by_key(|t| t.epoch);
        Ok(Self { tuples })
    }

    /// Encrypts the JSON under K_A_Tuples with a fresh IV: `IV ‖ ciphertext ‖ tag`.
    pub fn seal(&self, key: &KeyATuples, rng: &mut impl CryptoRng) -> Vec<u8> {
        let json = self.to_json();
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let mut out = Vec::with_capacity(IV_LEN + json.len() + TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(json.as_bytes());
        // GCM only fails for messages beyond 2^36 bytes; bundles are kilobytes.
        match key
            .aead()
            .encrypt_inout_detached(&Nonce::from(iv), &[], (&mut out[IV_LEN..]).into())
        {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => unreachable!("bundle far below the GCM length limit"),
        }
        out
    }

    /// Decrypts and parses a sealed bundle.
    pub fn open(key: &KeyATuples, sealed: &[u8]) -> Result<Self, Error> {
        if sealed.len() < IV_LEN + TAG_LEN {
            return Err(Error::InvalidLength {
                what: "tuple bundle",
                expected: IV_LEN + TAG_LEN,
                actual: sealed.len(),
            });
        }
        let (iv, rest) = sealed.split_at(IV_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let nonce = Nonce::try_from(iv).map_err(|_| Error::Decrypt)?;
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| Error::Decrypt)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        key.aead()
            .decrypt_inout_detached(&nonce, &[], buf.as_mut_slice().into(), &tag)
            .map_err(|_| Error::Decrypt)?;
        Self::from_json(&buf)
    }

    /// The tuple whose epoch is `epoch`, if any.
    pub fn get(&self, epoch: Epoch) -> Option<&Tuple> {
        self.tuples
            .binary_search_by_key(&epoch, |t| t.epoch)
            .ok()
            .map(|i| &self.tuples[i])
    }
}

/// Base64 of up to 8 bytes into a stack buffer.
fn encode_into<'a>(bytes: &[u8], buf: &'a mut [u8]) -> &'a str {
    use base64::Engine as _;
    let n = b64::ENCODER.encode_slice(bytes, buf).unwrap_or(0);
    // Base64 output is ASCII.
    core::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// What a generated bundle covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleSpan {
    /// First epoch (the server's current epoch).
    pub from: Epoch,
    /// Number of UTC days, counting `from`'s day (`robert.epoch-bundle-duration-in-days`, 4).
    pub days: u32,
}

impl BundleSpan {
    /// The days covered, each with its first and last epoch (inclusive).
    pub fn days(&self, start: &ServiceStart) -> impl Iterator<Item = (UtcDate, Epoch, Epoch)> + '_ {
        let first_day = self.from.day_index();
        let s = *start;
        let from = self.from;
        (0..self.days).filter_map(move |i| {
            let day_index = first_day.checked_add(i)?;
            let day_first = Epoch(day_index.checked_mul(EPOCHS_PER_DAY)?);
            let day_last = Epoch(day_first.0.checked_add(EPOCHS_PER_DAY - 1)?);
            let first = day_first.max(from);
            (day_last.0 <= Epoch::MAX_EBID).then(|| (s.day_of(day_first), first, day_last))
        })
    }
}

/// Generates the bundle of a registration (protocol.md §6.3).
///
/// `day_key(date)` returns that day's K_S, or `None` to skip the day.
pub fn generate<'k>(
    id_a: IdA,
    span: BundleSpan,
    start: &ServiceStart,
    key_g: &KeyG,
    country: CountryCode,
    mut day_key: impl FnMut(UtcDate) -> Option<&'k KeyS>,
) -> TupleBundle {
    let mut tuples = Vec::with_capacity(span.days as usize * EPOCHS_PER_DAY as usize);
    let id = id_a.to_u64();
    for (day, first, last) in span.days(start) {
        let Some(key) = day_key(day) else { continue };
        // `days` bounds every epoch by Epoch::MAX_EBID, so the 24-bit packing is exact.
        let mut blocks: Vec<u64> = (first.0..=last.0)
            .map(|e| (u64::from(e) << 40) | id)
            .collect();
        key.cipher().encrypt_batch(&mut blocks);
        let ebids: Vec<[u8; 8]> = blocks.iter().map(|b| b.to_be_bytes()).collect();
        let masks = key_g.ecc_masks(&ebids);
        for ((e, ebid), mask) in (first.0..=last.0).zip(ebids).zip(masks) {
            tuples.push(Tuple {
                epoch: Epoch(e),
                ebid: Ebid(ebid),
                ecc: Ecc(mask ^ country.0),
            });
        }
    }
    TupleBundle { tuples }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// TV-7: the AES-256-GCM bundle layout check from AesGcmCipherTest.
    #[test]
    fn tv7_gcm_layout() {
        let key = KeyATuples::from_bytes(*b"256 bits AES key for java unit t");
        let sealed = b64::decode(
            "zF95PZaO7BKhWMzcX7jFvppalbEvBLbuynL0gDMUcstviUdyPFLEgDDCy0qb2A==",
            "t",
        )
        .unwrap();
        assert_eq!(sealed.len(), 46);
        let (iv, rest) = sealed.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        let mut buf = ct.to_vec();
        key.aead()
            .decrypt_inout_detached(
                &Nonce::try_from(iv).unwrap(),
                &[],
                buf.as_mut_slice().into(),
                &aes_gcm::Tag::try_from(tag).unwrap(),
            )
            .unwrap();
        assert_eq!(buf, b"clear text message");
        // Not a tuple JSON, so `open` reports a parse error, not a crypto error.
        assert_eq!(TupleBundle::open(&key, &sealed), Err(Error::InvalidTuples));
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert_eq!(TupleBundle::open(&key, &bad), Err(Error::Decrypt));
    }

    #[test]
    fn json_is_compact_and_exact() {
        let b = TupleBundle {
            tuples: vec![Tuple {
                epoch: Epoch(66855),
                ebid: Ebid::from_base64("yqfVsPunrqc=").unwrap(),
                ecc: Ecc(0xc2),
            }],
        };
        assert_eq!(
            b.to_json(),
            r#"[{"epochId":66855,"key":{"ebid":"yqfVsPunrqc=","ecc":"wg=="}}]"#
        );
        assert_eq!(TupleBundle { tuples: vec![] }.to_json(), "[]");
        let reordered =
            br#" [ {"key": {"ecc":"wg==", "ebid":"yqfVsPunrqc="}, "epochId": 66855} ] "#;
        assert_eq!(TupleBundle::from_json(reordered).unwrap(), b);
    }

    #[test]
    fn span_at_66855_covers_345_tuples() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let start = ServiceStart::REFERENCE;
        let ks = KeyS::generate(&mut rng);
        let kg = KeyG::generate(&mut rng);
        let span = BundleSpan {
            from: Epoch(66855),
            days: 4,
        };
        let b = generate(IdA([1; 5]), span, &start, &kg, CountryCode::FRANCE, |_| {
            Some(&ks)
        });
        assert_eq!(b.tuples.len(), 57 + 288);
        assert_eq!(b.tuples.first().unwrap().epoch, Epoch(66855));
        assert_eq!(b.tuples.last().unwrap().epoch, Epoch(66816 + 4 * 96 - 1));
        // A missing day is skipped.
        let skip = start.day_of(Epoch(66855)).add_days(1);
        let b2 = generate(IdA([1; 5]), span, &start, &kg, CountryCode::FRANCE, |d| {
            (d != skip).then_some(&ks)
        });
        assert_eq!(b2.tuples.len(), 57 + 192);
    }
}
