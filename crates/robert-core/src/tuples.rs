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

use aes_gcm::Nonce;
use aes_gcm::aead::AeadInOut;
use rand_core::CryptoRng;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::crypto;
use crate::ebid::Ebid;
use crate::ecc::{CountryCode, Ecc};
use crate::id_a::IdA;
use crate::keys::{KeyATuples, KeyG, KeyS};
use crate::time::{EPOCHS_PER_DAY, Epoch, ServiceStart, UtcDate};

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

/// What precedes a tuple's epoch in the JSON.
const TUPLE_HEAD: &[u8; 11] = b"{\"epochId\":";
/// What follows a tuple's epoch, with placeholders for the EBID's 12 and the
/// ECC's 4 base64 characters at [`EBID_AT`] and [`ECC_AT`].
const TUPLE_TAIL: &[u8; 44] = b",\"key\":{\"ebid\":\"EEEEEEEEEEEE\",\"ecc\":\"CCCC\"}}";
/// Where the EBID's base64 starts in [`TUPLE_TAIL`].
const EBID_AT: usize = 16;
/// Where the ECC's base64 starts in [`TUPLE_TAIL`].
const ECC_AT: usize = 37;

/// The standard base64 alphabet (RFC 4648 §4), the one [`crate::b64::ENCODER`] writes.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The number of decimal digits of `n` (1 for 0).
fn decimal_len(n: u32) -> usize {
    match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1_000..=9_999 => 4,
        10_000..=99_999 => 5,
        100_000..=999_999 => 6,
        1_000_000..=9_999_999 => 7,
        10_000_000..=99_999_999 => 8,
        100_000_000..=999_999_999 => 9,
        _ => 10,
    }
}

/// Writes `n` in decimal over all of `dst` (`decimal_len(n)` bytes long).
fn write_decimal(dst: &mut [u8], mut n: u32) {
    for d in dst.iter_mut().rev() {
        // `n % 10` < 10: the cast is exact.
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The 4 base64 characters of the 24-bit group `x`.
fn b64_group(x: u32) -> [u8; 4] {
    [
        B64[(x >> 18) as usize & 63],
        B64[(x >> 12) as usize & 63],
        B64[(x >> 6) as usize & 63],
        B64[x as usize & 63],
    ]
}

/// Padded base64 of an EBID: two 3-byte groups, then 2 bytes and one `=`.
fn ebid_b64(e: &[u8; 8]) -> [u8; 12] {
    let group = |a: u8, b: u8, c: u8| (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
    let [a, b, c, d] = b64_group(group(e[0], e[1], e[2]));
    let [f, g, h, i] = b64_group(group(e[3], e[4], e[5]));
    let [j, k, l, _] = b64_group(group(e[6], e[7], 0));
    [a, b, c, d, f, g, h, i, j, k, l, b'=']
}

/// Padded base64 of a one-byte ECC: two characters and `==`.
fn ecc_b64(ecc: u8) -> [u8; 4] {
    [
        B64[usize::from(ecc >> 2)],
        B64[usize::from(ecc & 3) << 4],
        b'=',
        b'=',
    ]
}

impl TupleBundle {
    /// The compact JSON the reference writes (byte-identical field order).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(self.json_len());
        self.write_json(&mut out);
        // `write_json` writes ASCII only: the conversion cannot fail, and the
        // lossy branch (which would copy) is never taken.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The exact length in bytes of [`TupleBundle::to_json`].
    pub fn json_len(&self) -> usize {
        let tuples: usize = self
            .tuples
            .iter()
            .map(|t| 1 + TUPLE_HEAD.len() + decimal_len(t.epoch.0) + TUPLE_TAIL.len())
            .sum();
        // A separator before each tuple (`[` or `,`) and the closing `]`; `[]`
        // when there is none.
        tuples + if self.tuples.is_empty() { 2 } else { 1 }
    }

    /// Appends the JSON of [`TupleBundle::to_json`] to `out`, base64 included,
    /// with no intermediate string: `out` grows once by
    /// [`TupleBundle::json_len`] bytes and each tuple is written in place.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let len = self.json_len();
        out.resize(start + len, 0);
        let buf = &mut out[start..];
        let mut at = 0;
        let mut sep = b'[';
        for t in &self.tuples {
            let digits = decimal_len(t.epoch.0);
            // One bounds check per tuple: the fixed-length parts below are
            // sub-slices of known length.
            let rec = &mut buf[at..at + 1 + TUPLE_HEAD.len() + digits + TUPLE_TAIL.len()];
            let (head, rest) = rec.split_at_mut(1 + TUPLE_HEAD.len());
            head[0] = sep;
            head[1..].copy_from_slice(TUPLE_HEAD);
            let (num, tail) = rest.split_at_mut(digits);
            write_decimal(num, t.epoch.0);
            tail.copy_from_slice(TUPLE_TAIL);
            tail[EBID_AT..EBID_AT + 12].copy_from_slice(&ebid_b64(&t.ebid.0));
            tail[ECC_AT..ECC_AT + 4].copy_from_slice(&ecc_b64(t.ecc.0));
            at += 1 + TUPLE_HEAD.len() + digits + TUPLE_TAIL.len();
            sep = b',';
        }
        if self.tuples.is_empty() {
            buf[0] = b'[';
            at = 1;
        }
        buf[at] = b']';
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
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        self.seal_with_iv(key, iv)
    }

    /// [`TupleBundle::seal`] with a given IV, for tests and vectors. Never
    /// reuse an IV under the same key: GCM then leaks the plaintexts' XOR
    /// and the authentication key.
    ///
    /// The JSON is written straight into the output buffer, allocated once at
    /// its final size, and encrypted there in place.
    pub fn seal_with_iv(&self, key: &KeyATuples, iv: [u8; IV_LEN]) -> Vec<u8> {
        let json_len = self.json_len();
        let mut out = Vec::with_capacity(IV_LEN + json_len + TAG_LEN);
        out.extend_from_slice(&iv);
        self.write_json(&mut out);
        debug_assert_eq!(out.len(), IV_LEN + json_len);
        // GCM only refuses messages beyond 2^36 bytes; bundles are kilobytes.
        match crypto::gcm::seal_in_place(key.expose_secret(), &iv, &mut out[IV_LEN..]) {
            Some(tag) => out.extend_from_slice(&tag),
            None => unreachable!("bundle far below the GCM length limit"),
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
    use crate::b64;
    use proptest::prelude::*;
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

    /// The JSON as serde_json writes it from the reference's field order: the
    /// path the hand-written [`TupleBundle::write_json`] must match byte for byte.
    fn serde_json_reference(b: &TupleBundle) -> String {
        #[derive(serde::Serialize)]
        struct Key {
            ebid: String,
            ecc: String,
        }
        #[derive(serde::Serialize)]
        struct T {
            #[serde(rename = "epochId")]
            epoch_id: u32,
            key: Key,
        }
        let v: Vec<T> = b
            .tuples
            .iter()
            .map(|t| T {
                epoch_id: t.epoch.0,
                key: Key {
                    ebid: b64::encode(t.ebid.0),
                    ecc: b64::encode([t.ecc.0]),
                },
            })
            .collect();
        serde_json::to_string(&v).unwrap()
    }

    /// The former seal: JSON in its own string, copied after the IV, sealed.
    fn seal_reference(b: &TupleBundle, key: &KeyATuples, iv: [u8; IV_LEN]) -> Vec<u8> {
        let json = serde_json_reference(b);
        let mut out = iv.to_vec();
        out.extend_from_slice(json.as_bytes());
        let tag = key
            .aead()
            .encrypt_inout_detached(&Nonce::from(iv), &[], (&mut out[IV_LEN..]).into())
            .unwrap();
        out.extend_from_slice(&tag);
        out
    }

    fn arb_tuple() -> impl Strategy<Value = Tuple> {
        (
            prop_oneof![any::<u32>(), 0u32..100_000, Just(0), Just(u32::MAX)],
            any::<[u8; 8]>(),
            any::<u8>(),
        )
            .prop_map(|(e, ebid, ecc)| Tuple {
                epoch: Epoch(e),
                ebid: Ebid(ebid),
                ecc: Ecc(ecc),
            })
    }

    proptest! {
        /// The direct writer and in-place seal give exactly the bytes of the
        /// serde_json path: same JSON, same ciphertext and tag for one key and IV.
        #[test]
        fn direct_json_and_seal_match_serde_path(
            tuples in proptest::collection::vec(arb_tuple(), 0..40),
            key in any::<[u8; 32]>(),
            iv in any::<[u8; IV_LEN]>(),
        ) {
            let b = TupleBundle { tuples };
            let json = b.to_json();
            prop_assert_eq!(&json, &serde_json_reference(&b));
            prop_assert_eq!(json.len(), b.json_len());
            let key = KeyATuples::from_bytes(key);
            let sealed = b.seal_with_iv(&key, iv);
            prop_assert_eq!(sealed.len(), IV_LEN + b.json_len() + TAG_LEN);
            prop_assert_eq!(&sealed, &seal_reference(&b, &key, iv));
            prop_assert_eq!(TupleBundle::open(&key, &sealed).map(|o| o.tuples.len()), Ok(b.tuples.len()));
        }

        /// `write_json` appends: what is already in the buffer stays.
        #[test]
        fn write_json_appends(prefix in any::<Vec<u8>>(), tuples in proptest::collection::vec(arb_tuple(), 0..4)) {
            let b = TupleBundle { tuples };
            let mut out = prefix.clone();
            b.write_json(&mut out);
            prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
            let json = b.to_json();
            prop_assert_eq!(&out[prefix.len()..], json.as_bytes());
        }
    }

    /// A full 4-day bundle of generated tuples, sealed both ways.
    #[test]
    fn generated_bundle_matches_serde_path() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let ks = KeyS::generate(&mut rng);
        let kg = KeyG::generate(&mut rng);
        let span = BundleSpan {
            from: Epoch(66816),
            days: 4,
        };
        let b = generate(
            IdA([7; 5]),
            span,
            &ServiceStart::REFERENCE,
            &kg,
            CountryCode::FRANCE,
            |_| Some(&ks),
        );
        assert_eq!(b.tuples.len(), 384);
        let key = KeyATuples::from_bytes([9; 32]);
        assert_eq!(b.to_json(), serde_json_reference(&b));
        assert_eq!(
            b.seal_with_iv(&key, [4; IV_LEN]),
            seal_reference(&b, &key, [4; IV_LEN])
        );
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
