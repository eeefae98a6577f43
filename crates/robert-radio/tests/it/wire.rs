//! Round trips of every wire type.

use proptest::prelude::*;
use robert_core::hello::Hello;
use robert_radio::wire::ad::ad_type;
use robert_radio::wire::gatt;
use robert_radio::wire::uuid::Uuid128;
use robert_radio::wire::{
    AdStructure, AdvertisingData, AndroidAdvert, BleIds, BlePayload, IosAdvert,
    ManufacturerPattern, ScanClass,
};

fn arb_hello() -> impl Strategy<Value = Hello> {
    any::<[u8; 16]>().prop_map(|b| Hello::from_bytes(&b).unwrap())
}

fn arb_payload() -> impl Strategy<Value = BlePayload> {
    (arb_hello(), any::<i8>(), any::<i8>(), any::<Option<i8>>()).prop_map(|(h, v, tx, r)| {
        let p = BlePayload::new(h, v, tx);
        match r {
            Some(r) => p.with_rssi(r),
            None => p,
        }
    })
}

fn arb_ids() -> impl Strategy<Value = BleIds> {
    prop_oneof![Just(BleIds::STOPCOVID), Just(BleIds::PROXIMITY_ALT)]
}

fn arb_structure() -> impl Strategy<Value = AdStructure> {
    let known = [
        ad_type::FLAGS,
        ad_type::INCOMPLETE_UUID16,
        ad_type::COMPLETE_UUID16,
        ad_type::SERVICE_DATA16,
        ad_type::MANUFACTURER,
    ];
    prop_oneof![
        any::<u8>().prop_map(AdStructure::Flags),
        (any::<bool>(), prop::collection::vec(any::<u16>(), 0..4))
            .prop_map(|(complete, uuids)| AdStructure::Uuid16List { complete, uuids }),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(uuid, data)| AdStructure::ServiceData16 { uuid, data }),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(company, data)| AdStructure::Manufacturer { company, data }),
        (
            any::<u8>().prop_filter("not a typed AD type", move |t| !known.contains(t)),
            prop::collection::vec(any::<u8>(), 0..20)
        )
            .prop_map(|(ad_type, data)| AdStructure::Other { ad_type, data }),
    ]
}

fn arb_advertising_data() -> impl Strategy<Value = AdvertisingData> {
    prop::collection::vec(arb_structure(), 0..6).prop_map(|structures| {
        // Keep what fits in 31 bytes, with flags / complete list at most once.
        let mut out: Vec<AdStructure> = Vec::new();
        let mut len = 0;
        for s in structures {
            let singleton = matches!(s.ad_type(), ad_type::FLAGS | ad_type::COMPLETE_UUID16);
            if singleton && out.iter().any(|o| o.ad_type() == s.ad_type()) {
                continue;
            }
            if len + s.encoded_len() <= AdvertisingData::MAX_LEN {
                len += s.encoded_len();
                out.push(s);
            }
        }
        AdvertisingData { structures: out }
    })
}

proptest! {
    #[test]
    fn payload_round_trip(p in arb_payload(), tail in prop::collection::vec(any::<u8>(), 1..8)) {
        let bytes = p.to_vec();
        prop_assert_eq!(bytes.len(), p.encoded_len());
        prop_assert_eq!(BlePayload::decode(&bytes)?, p);
        prop_assert_eq!(gatt::decode_write(&bytes)?, p);
        if p.rssi.is_none() {
            prop_assert_eq!(gatt::decode_read(&bytes)?, p);
        } else {
            prop_assert!(gatt::decode_read(&bytes).is_err());
        }
        // Lenient decoding ignores what follows byte 18; strict refuses it.
        let mut long = p.with_rssi(p.rssi.unwrap_or(0)).to_vec();
        long.extend_from_slice(&tail);
        prop_assert!(BlePayload::decode(&long).is_err());
        prop_assert_eq!(BlePayload::decode_lenient(&long)?, p.with_rssi(p.rssi.unwrap_or(0)));
    }

    #[test]
    fn android_advert_round_trip(h in arb_hello(), version in any::<i8>(), tx in any::<i8>(), ids in arb_ids()) {
        let adv = AndroidAdvert { hello: h, version, tx_gain: tx };
        let bytes = adv.encode(&ids);
        prop_assert_eq!(bytes.len(), 29);
        prop_assert_eq!(adv.to_advertising_data(&ids).encode()?, bytes.to_vec());
        prop_assert_eq!(AndroidAdvert::decode(&bytes, &ids)?, adv);
        prop_assert_eq!(ScanClass::classify(&bytes, &ids)?, ScanClass::Android(adv));
        prop_assert_eq!(adv.payload().rssi, None);
    }

    #[test]
    fn advertising_data_round_trip(ad in arb_advertising_data(), pad in 0usize..8) {
        let mut bytes = ad.encode()?;
        prop_assert_eq!(bytes.len(), ad.encoded_len());
        prop_assert_eq!(&AdvertisingData::decode(&bytes)?, &ad);
        let padded = (bytes.len() + pad).min(AdvertisingData::MAX_LEN);
        bytes.resize(padded, 0);
        prop_assert_eq!(AdvertisingData::decode(&bytes)?, ad);
    }

    #[test]
    fn pattern_and_uuid_round_trips(b in any::<[u8; 17]>(), u in any::<[u8; 16]>(), short in any::<u16>()) {
        let p = ManufacturerPattern(b);
        prop_assert_eq!(ManufacturerPattern::parse_dotted(&p.to_dotted())?, p);
        let id = Uuid128(u);
        prop_assert_eq!(Uuid128::parse(&id.to_string())?, id);
        prop_assert_eq!(Uuid128::parse(&id.to_string().to_uppercase())?, id);
        prop_assert_eq!(Uuid128::from_u16(short).as_u16(), Some(short));
    }

    #[test]
    fn mask_test_accepts_supersets_only(other in any::<[u8; 17]>(), ids in arb_ids()) {
        let pat = ids.background_pattern;
        let mut superset = other;
        for (s, p) in superset.iter_mut().zip(pat.0) {
            *s |= p;
        }
        prop_assert!(pat.matches(&superset));
        // Clearing any bit of the pattern breaks the match.
        for (i, p) in pat.0.iter().enumerate() {
            for bit in 0..8 {
                if p & (1 << bit) != 0 {
                    let mut broken = superset;
                    broken[i] &= !(1 << bit);
                    prop_assert!(!pat.matches(&broken));
                }
            }
        }
        // A background iPhone advert carrying that bitmap is recognised.
        let mut bytes = IosAdvert::Background.encode(&ids);
        bytes[7..24].copy_from_slice(&superset);
        bytes[7] = 0x01;
        prop_assert_eq!(ScanClass::classify(&bytes, &ids)?, ScanClass::IosBackground);
    }

    #[test]
    fn no_advertiser_write_fits_and_carries_partial(h in arb_hello(), tx in any::<i8>(), raw in -127i32..20, rx in -30i8..30) {
        let p = gatt::no_advertiser_write(h, BlePayload::VERSION_2, tx, raw, rx);
        prop_assert_eq!(p.encoded_len(), 19);
        prop_assert!(p.encoded_len() <= gatt::MAX_SINGLE_WRITE);
        prop_assert_eq!(i32::from(p.rssi.unwrap()), (raw - i32::from(rx)).clamp(-128, 127));
        prop_assert_eq!(gatt::decode_write(&p.to_vec())?, p);
    }
}
