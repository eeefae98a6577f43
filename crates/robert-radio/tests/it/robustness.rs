//! Decoders and parsers never panic on arbitrary input.

use proptest::prelude::*;
use robert_radio::calibration::CalibrationTable;
use robert_radio::scenario::{Scenario, TimeOfDay};
use robert_radio::wire::gatt;
use robert_radio::wire::uuid::Uuid128;
use robert_radio::wire::{
    AdvertisingData, AndroidAdvert, AppleOverflowArea, BleIds, BlePayload, ManufacturerPattern,
    ScanClass,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn byte_decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        for ids in [BleIds::STOPCOVID, BleIds::PROXIMITY_ALT] {
            let _ = AndroidAdvert::decode(&bytes, &ids);
            let _ = ScanClass::classify(&bytes, &ids);
        }
        let _ = AdvertisingData::decode(&bytes);
        let _ = BlePayload::decode(&bytes);
        let _ = BlePayload::decode_lenient(&bytes);
        let _ = gatt::decode_read(&bytes);
        let _ = gatt::decode_write(&bytes);
        let _ = AppleOverflowArea::from_bytes(&bytes);
    }

    #[test]
    fn structured_garbage_never_panics(
        chunks in prop::collection::vec((0u8..40, prop_oneof![Just(0x01u8), Just(0x03), Just(0x16), Just(0xFF), any::<u8>()], prop::collection::vec(any::<u8>(), 0..30)), 0..5)
    ) {
        // Plausible AD structures with random (often wrong) lengths.
        let mut bytes = Vec::new();
        for (len, ty, data) in chunks {
            bytes.push(len);
            bytes.push(ty);
            bytes.extend_from_slice(&data);
        }
        bytes.truncate(40);
        let _ = ScanClass::classify(&bytes, &BleIds::STOPCOVID);
        let _ = AdvertisingData::decode(&bytes);
    }

    #[test]
    fn text_parsers_never_panic(s in ".{0,80}") {
        let _ = Uuid128::parse(&s);
        let _ = ManufacturerPattern::parse_dotted(&s);
        let _ = CalibrationTable::parse_csv(&s);
        let _ = TimeOfDay::parse(&s);
        let _ = Scenario::from_toml_str(&s);
    }

    #[test]
    fn csv_like_text_never_panics(lines in prop::collection::vec("[A-Za-z0-9 ,.\"#-]{0,24}", 0..8)) {
        let _ = CalibrationTable::parse_csv(&lines.join("\n"));
    }
}
