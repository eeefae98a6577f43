//! Known answers and properties of the protocol messages.
//!
//! The MAC and ECDH expected values were computed independently with Python's
//! `hmac` and `cryptography` 48 (script in the comment of each test), never
//! with this crate.

#![allow(clippy::unwrap_used, reason = "test helpers on fixed, valid inputs")]

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use robert_core::contact::{
    ContactRejection, ContactValidator, HelloPolicy, HelloRejection, UploadedHello, candidate_days,
};
use robert_core::ebid::Ebid;
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::hello::Hello;
use robert_core::id_a::IdA;
use robert_core::keys::{KeyA, KeyATuples, KeyG, KeyS};
use robert_core::mac::{HelloMac, RequestMac, Salt};
use robert_core::registration::{
    ClientKeyAgreement, ClientKeys, ServerKeyPair, encode_public_key, parse_public_key,
};
use robert_core::time::{Epoch, NtpSeconds, ServiceStart, Time16, Time32, UtcDate};
use robert_core::tuples::{self, BundleSpan, TupleBundle};
use robert_core::{Error, b64};

/// `hmac.new(b"\x03"*32, b"\x01\xc2" + ebid + (14528).to_bytes(2,"big"), sha256).digest()[:5]`
#[test]
fn hello_mac_known_answer() {
    let ka = KeyA::from_bytes([3; 32]);
    let ebid = Ebid::from_base64("yqfVsPunrqc=").unwrap();
    let mac = HelloMac::compute(&ka, Ecc(0xc2), &ebid, Time16(14528));
    assert_eq!(hex::encode(mac.0), "903e69905b");
    let hello = Hello::new(&ka, Ecc(0xc2), ebid, Time16(14528));
    assert_eq!(
        hex::encode(hello.to_bytes()),
        format!("c2{}38c0903e69905b", hex::encode(ebid.0))
    );
    assert!(hello.verify_mac(&ka));
}

/// `hmac.new(b"\x03"*32, bytes([salt]) + ebid + (66855).to_bytes(4,"big") + bytes.fromhex("E57A1B84"), sha256)`
#[test]
fn request_mac_known_answers() {
    let ka = KeyA::from_bytes([3; 32]);
    let ebid = Ebid::from_base64("yqfVsPunrqc=").unwrap();
    let t = Time32(0xE57A_1B84);
    let cases = [
        (Salt::Status, "W+kS+tHxbxnCcBHHT2BN9rR5bQt9vLf2CzlyT8Ezggs="),
        (
            Salt::Unregister,
            "i3cQpsrXKmYwyIjNrS1LBcteP06VIH9NMO5HTqwwznI=",
        ),
        (
            Salt::DeleteHistory,
            "+WxhIHtuPBE5hJZmugQnqGNLy3f9TOAWeCjplNA+JDI=",
        ),
    ];
    for (salt, expected) in cases {
        let mac = RequestMac::compute(&ka, salt, &ebid, 66855, t);
        assert_eq!(mac.to_base64(), expected);
        let parsed = RequestMac::from_base64(expected).unwrap();
        assert!(parsed.verify(&ka, salt, &ebid, 66855, t));
        assert!(
            !parsed.verify(&ka, Salt::Hello, &ebid, 66855, t),
            "salt separates request types"
        );
        assert!(!parsed.verify(&ka, salt, &ebid, 66856, t));
        assert!(!parsed.verify(&ka, salt, &ebid, 66855, Time32(t.0 + 1)));
    }
}

/// Fixed scalars 0x11..11 (server) and 0x22..22 (app):
/// `sk_s.exchange(ECDH(), sk_c.public_key())`, then HMAC with "mac" / "tuples".
#[test]
fn key_agreement_known_answer() {
    let server = ServerKeyPair::from_scalar_bytes(&[0x11; 32]).unwrap();
    assert_eq!(
        server.public_key_base64(),
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAhfmF/C2RDkoJ4+WmZ5pojpPLBUr321s32bluAKC1O0ZSn3ry5dxLS3aPKhaqHZaVvRfx1hZllLyiXxlMG5XlA=="
    );
    let client_pub = parse_public_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1lqTl3yqPRsIGFL/V6eeRl8WYFdzBLrq1QXdOkhYnPNQGF6JU3LfYiHqOhN1V+Rz/dtnVfBb1QfDxTP86ckShQ==",
    )
    .unwrap();
    let keys = server.derive_client_keys(&client_pub);
    assert_eq!(
        hex::encode(keys.key_a.expose_secret()),
        "e6623e8df73f6838b7b84b38a2fa84c040eb66d698cc893fec1d337011a93cdc"
    );
    assert_eq!(
        hex::encode(keys.key_a_tuples.expose_secret()),
        "88889714208121bb8daf31fe1c4c197717f5d2ffc189a0400508ef87f945eeda"
    );
    let shared: [u8; 32] =
        hex::decode("ccfc261f58193c98ca4ad4a53bbac6f0ee29bc4d48438090446908622ca79af6")
            .unwrap()
            .try_into()
            .unwrap();
    assert_eq!(ClientKeys::derive(&shared), keys);
}

#[test]
fn key_agreement_both_sides_agree_and_spki_has_the_reference_prefix() {
    let mut rng = StdRng::seed_from_u64(3);
    let server = ServerKeyPair::generate(&mut rng);
    let app = ClientKeyAgreement::new(&mut rng);
    let spki = app.public_key_base64();
    assert!(
        spki.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        "{spki}"
    );
    assert_eq!(b64::decode(&spki, "k").unwrap().len(), 91);
    let server_keys = server.derive_client_keys(&parse_public_key(&spki).unwrap());
    let app_keys = app.finish(&server.public_key());
    assert_eq!(server_keys, app_keys);
    // The reference's dev pk_S parses and re-encodes identically.
    let dev = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7fAxfrLtG5tXyjomCOg9r1wNnr9len4m9sTflJUHDdkwubKyidTtFkVfNLrM91yuffdrpJZe9XOkof8P+zPGDg==";
    assert_eq!(encode_public_key(&parse_public_key(dev).unwrap()), dev);
    // PKCS#8 round trip of the server key.
    let again = ServerKeyPair::from_pkcs8_der(&server.to_pkcs8_der()).unwrap();
    assert_eq!(again.public_key_base64(), server.public_key_base64());
}

#[test]
fn bad_public_keys_are_typed_errors() {
    for bad in [
        "",
        "!!!",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        "aGVsbG8=",
        &"A".repeat(5000),
    ] {
        assert!(
            matches!(
                parse_public_key(bad),
                Err(Error::InvalidPublicKey | Error::InvalidBase64 { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        ServerKeyPair::from_scalar_bytes(&[0; 32]).unwrap_err(),
        Error::InvalidPrivateKey
    );
    assert_eq!(
        ServerKeyPair::from_scalar_bytes(&[1; 31]).unwrap_err(),
        Error::InvalidPrivateKey
    );
}

#[test]
fn bundle_seal_open_round_trip_and_wrong_key() {
    let mut rng = StdRng::seed_from_u64(9);
    let ks = KeyS::generate(&mut rng);
    let kg = KeyG::generate(&mut rng);
    let kt = KeyATuples::from_bytes([5; 32]);
    let id = IdA([9, 8, 7, 6, 5]);
    let start = ServiceStart::REFERENCE;
    let b = tuples::generate(
        id,
        BundleSpan {
            from: Epoch(70_000),
            days: 4,
        },
        &start,
        &kg,
        CountryCode::FRANCE,
        |_| Some(&ks),
    );
    let sealed = b.seal(&kt, &mut rng);
    let opened = TupleBundle::open(&kt, &sealed).unwrap();
    assert_eq!(opened, b);
    for t in &opened.tuples {
        assert_eq!(t.ebid.decrypt(&ks).epoch, t.epoch);
        assert_eq!(t.ebid.decrypt(&ks).id_a, id);
        assert_eq!(t.ecc.decrypt(&kg, &t.ebid), CountryCode::FRANCE);
    }
    assert_eq!(
        TupleBundle::open(&KeyATuples::from_bytes([6; 32]), &sealed),
        Err(Error::Decrypt)
    );
    assert!(matches!(
        TupleBundle::open(&kt, &sealed[..20]),
        Err(Error::InvalidLength { .. })
    ));
}

fn setup() -> (ContactValidator, KeyS, KeyS, KeyA, IdA) {
    let mut rng = StdRng::seed_from_u64(11);
    let v = ContactValidator {
        key_g: KeyG::generate(&mut rng),
        country: CountryCode::FRANCE,
        start: ServiceStart::REFERENCE,
        policy: HelloPolicy::default(),
    };
    (
        v,
        KeyS::generate(&mut rng),
        KeyS::generate(&mut rng),
        KeyA::from_bytes([4; 32]),
        IdA([1, 1, 2, 3, 5]),
    )
}

/// A day boundary: 2022-04-28T00:00Z is epoch 66816.
fn midnight() -> NtpSeconds {
    UtcDate::new(2022, 4, 28).unwrap().midnight()
}

fn uploaded(
    key_a: &KeyA,
    ecc: Ecc,
    ebid: &Ebid,
    sent: NtpSeconds,
    received: NtpSeconds,
) -> UploadedHello {
    UploadedHello::received(key_a, ecc, ebid, sent, received, -50)
}

#[test]
fn contact_from_previous_day_is_identified_just_after_midnight() {
    let (v, day_before, day_of, ka, id) = setup();
    let sent = midnight().minus(30); // 23:59:30, epoch 66815
    let ebid = Ebid::encrypt(&day_before, v.start.epoch_at(sent), id).unwrap();
    let ecc = Ecc::encrypt(&v.key_g, &ebid, CountryCode::FRANCE);
    let received = midnight().plus(60); // 00:01:00 the next day
    let h = uploaded(&ka, ecc, &ebid, sent, received);
    let d0 = UtcDate::new(2022, 4, 28).unwrap();
    let keys = |d: UtcDate| {
        if d == d0 {
            Some(&day_of)
        } else if d == d0.add_days(-1) {
            Some(&day_before)
        } else {
            None
        }
    };
    let who = v
        .identify(&ebid, ecc, &[h], |d| keys(d).map(|k| ebid.decrypt(k)))
        .unwrap();
    assert_eq!(who.id_a, id);
    assert_eq!(who.epoch, Epoch(66815));
    assert!(v.verify_hello(&who, &ebid, ecc, &ka, &h).is_ok());
    // Far from midnight the previous day's key is not tried.
    let late = uploaded(&ka, ecc, &ebid, sent, midnight().plus(600));
    assert_eq!(
        v.identify(&ebid, ecc, &[late], |d| keys(d).map(|k| ebid.decrypt(k))),
        Err(ContactRejection::EbidNotDecrypted)
    );
    assert_eq!(
        candidate_days(midnight().plus(179), &v.policy),
        (d0, Some(d0.add_days(-1)))
    );
    assert_eq!(candidate_days(midnight().plus(180), &v.policy), (d0, None));
    assert_eq!(
        candidate_days(midnight().minus(180), &v.policy),
        (d0.add_days(-1), Some(d0))
    );
}

#[test]
fn contact_rejections() {
    let (v, ks, _, ka, id) = setup();
    let t = midnight().plus(3600 * 10);
    let ebid = Ebid::encrypt(&ks, v.start.epoch_at(t), id).unwrap();
    let ecc = Ecc::encrypt(&v.key_g, &ebid, CountryCode::FRANCE);
    let dec = |_: UtcDate| Some(ebid.decrypt(&ks));
    assert_eq!(
        v.identify(&ebid, ecc, &[], dec),
        Err(ContactRejection::NoHellos)
    );
    let foreign = Ecc::encrypt(&v.key_g, &ebid, CountryCode(49));
    let h = uploaded(&ka, foreign, &ebid, t, t);
    assert_eq!(
        v.identify(&ebid, foreign, &[h], dec),
        Err(ContactRejection::ForeignCountry(CountryCode(49)))
    );
    // Received two epochs after the EBID's epoch: not decryptable as plausible.
    let h = uploaded(&ka, ecc, &ebid, t, t.plus(1800));
    assert_eq!(
        v.identify(&ebid, ecc, &[h], dec),
        Err(ContactRejection::EbidNotDecrypted)
    );

    let ok = uploaded(&ka, ecc, &ebid, t, t.plus(10));
    let who = v.identify(&ebid, ecc, &[ok], dec).unwrap();
    let mut bad_mac = ok;
    bad_mac.mac.0[0] ^= 1;
    assert_eq!(
        v.verify_hello(&who, &ebid, ecc, &ka, &bad_mac),
        Err(HelloRejection::Mac)
    );
    assert_eq!(
        v.verify_hello(&who, &ebid, ecc, &KeyA::from_bytes([5; 32]), &ok),
        Err(HelloRejection::Mac)
    );
    // Time16 181 s away from the reception time.
    let skewed = uploaded(&ka, ecc, &ebid, t, t.plus(181));
    assert_eq!(
        v.verify_hello(&who, &ebid, ecc, &ka, &skewed),
        Err(HelloRejection::TimeTolerance)
    );
    let edge = uploaded(&ka, ecc, &ebid, t, t.plus(180));
    assert!(v.verify_hello(&who, &ebid, ecc, &ka, &edge).is_ok());
    // Sent at the right time but received (and stamped) two epochs later.
    let sent_late = t.plus(1800);
    let h = uploaded(&ka, ecc, &ebid, sent_late, sent_late);
    assert_eq!(
        v.verify_hello(&who, &ebid, ecc, &ka, &h),
        Err(HelloRejection::EpochTolerance)
    );
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), s in ".{0,80}") {
        let _ = Hello::from_bytes(&bytes);
        let _ = Ebid::from_slice(&bytes);
        let _ = IdA::from_slice(&bytes);
        let _ = KeyG::from_slice(&bytes);
        let _ = KeyS::from_slice(&bytes);
        let _ = Ebid::from_base64(&s);
        let _ = Ecc::from_base64(&s);
        let _ = HelloMac::from_base64(&s);
        let _ = RequestMac::from_base64(&s);
        let _ = IdA::from_base64(&s);
        let _ = parse_public_key(&s);
        let _ = TupleBundle::from_json(&bytes);
        let _ = TupleBundle::open(&KeyATuples::from_bytes([1; 32]), &bytes);
        let _ = s.parse::<UtcDate>();
    }

    #[test]
    fn ebid_round_trips(key in any::<[u8; 24]>(), epoch in 0u32..=0xFF_FFFF, id in any::<[u8; 5]>()) {
        let k = KeyS::from_bytes(key);
        let e = Ebid::encrypt(&k, Epoch(epoch), IdA(id)).unwrap();
        let c = e.decrypt(&k);
        prop_assert_eq!(c.epoch, Epoch(epoch));
        prop_assert_eq!(c.id_a, IdA(id));
        prop_assert_eq!(Ebid::from_base64(&e.to_base64()).unwrap(), e);
    }

    #[test]
    fn ecc_round_trips(key in any::<[u8; 32]>(), ebid in any::<[u8; 8]>(), cc in any::<u8>()) {
        let kg = KeyG::from_slice(&key).unwrap();
        let ebid = Ebid(ebid);
        let ecc = Ecc::encrypt(&kg, &ebid, CountryCode(cc));
        prop_assert_eq!(ecc.decrypt(&kg, &ebid), CountryCode(cc));
        prop_assert_eq!(Ecc::from_base64(&ecc.to_base64()).unwrap(), ecc);
    }

    #[test]
    fn hello_round_trips_and_any_bit_flip_fails(bytes in any::<[u8; 11]>(), key in any::<[u8; 32]>(), bit in 0usize..128) {
        let ka = KeyA::from_bytes(key);
        let h = Hello::new(&ka, Ecc(bytes[0]), Ebid(bytes[1..9].try_into().unwrap()), Time16(u16::from_be_bytes([bytes[9], bytes[10]])));
        let wire = h.to_bytes();
        let parsed = Hello::from_bytes(&wire).unwrap();
        prop_assert_eq!(parsed, h);
        prop_assert!(parsed.verify_mac(&ka));
        let mut flipped = wire;
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(!Hello::from_bytes(&flipped).unwrap().verify_mac(&ka));
    }

    #[test]
    fn time_conversions_round_trip(unix in 0i64..4_000_000_000, days in -100_000i64..100_000) {
        let t = NtpSeconds::from_unix(unix);
        prop_assert_eq!(t.to_unix(), unix);
        prop_assert_eq!(Time32::from_bytes(t.time32().to_bytes()), t.time32());
        prop_assert_eq!(Time16::from_bytes(t.time16().to_bytes()), t.time16());
        let d = UtcDate::from_days_since_unix_epoch(days);
        prop_assert_eq!(d.to_string().parse::<UtcDate>().ok().filter(|_| d.year >= 1900), (d.year >= 1900).then_some(d));
        let start = ServiceStart::REFERENCE;
        let e = start.epoch_at(t);
        if start.has_started(t) {
            prop_assert!(start.epoch_start(e) <= t && t < start.epoch_start(e.next()));
        }
    }

    #[test]
    fn bundle_json_round_trips(epochs in proptest::collection::btree_set(0u32..20_000_000, 0..50), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        let b = TupleBundle {
            tuples: epochs.into_iter().map(|e| {
                let mut ebid = [0u8; 8];
                rng.fill_bytes(&mut ebid);
                tuples::Tuple { epoch: Epoch(e), ebid: Ebid(ebid), ecc: Ecc((e % 251) as u8) }
            }).collect(),
        };
        prop_assert_eq!(TupleBundle::from_json(b.to_json().as_bytes()).unwrap(), b.clone());
        let kt = KeyATuples::from_bytes([seed as u8; 32]);
        prop_assert_eq!(TupleBundle::open(&kt, &b.seal(&kt, &mut rng)).unwrap(), b);
    }
}

/// The batch's grouped check gives `verify_hello`'s result for every HELLO,
/// in order, whatever the count (groups of `MAC_LANES` and a remainder) and
/// the mix of valid, altered and mistimed HELLOs.
#[test]
fn verify_hellos_equals_verify_hello_one_by_one() {
    let (v, ks, _, ka, id) = setup();
    let t = midnight().plus(3600 * 10);
    let ebid = Ebid::encrypt(&ks, v.start.epoch_at(t), id).unwrap();
    let ecc = Ecc::encrypt(&v.key_g, &ebid, CountryCode::FRANCE);
    let dec = |_: UtcDate| Some(ebid.decrypt(&ks));
    let base = uploaded(&ka, ecc, &ebid, t, t.plus(10));
    let who = v.identify(&ebid, ecc, &[base], dec).unwrap();
    let mut all = Vec::new();
    for i in 0..23u64 {
        let mut h = uploaded(&ka, ecc, &ebid, t.plus(i * 7), t.plus(i * 7 + (i % 5) * 50));
        if i % 3 == 1 {
            h.mac.0[(i % 5) as usize] ^= 0x10;
        }
        all.push(h);
    }
    for n in 0..all.len() {
        let hellos = &all[..n];
        let grouped = v.verify_hellos(&who, &ebid, ecc, &ka, hellos);
        let single: Vec<_> = hellos
            .iter()
            .map(|h| v.verify_hello(&who, &ebid, ecc, &ka, h))
            .collect();
        assert_eq!(grouped, single, "{n} HELLOs");
    }
    let results = v.verify_hellos(&who, &ebid, ecc, &ka, &all);
    assert!(results.iter().any(|r| r.is_ok()));
    assert!(results.contains(&Err(HelloRejection::Mac)));
    assert!(results.contains(&Err(HelloRejection::TimeTolerance)));
}
