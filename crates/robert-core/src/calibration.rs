//! BLE calibration vocabulary shared by the phone SDK and the radio model
//! (client-ble.md §2): the published per-model gain table and the
//! calibrated-RSSI formula.
//!
//! ```text
//! calibratedRssi = rawRssi − txGain(sender) − rxGain(receiver)
//! ```
//!
//! Parsing and lookup live with their users (`robert-client` for the app's
//! rules, `robert-radio` for the simulator's richer view); the data and the
//! formula live here, once.

/// StopCovid's October 2020 calibration table, 95 models:
/// `model,tx_gain_db,rx_gain_db` (model names may contain commas).
pub const OCTOBER_2020_CSV: &str = include_str!("../data/ble-calibration-2020-10.csv");

/// `raw − txGain(sender) − rxGain(receiver)`, in dB.
pub const fn calibrated_rssi(raw_rssi: i32, sender_tx_gain: i8, receiver_rx_gain: i8) -> i32 {
    raw_rssi - sender_tx_gain as i32 - receiver_rx_gain as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_and_table() {
        assert_eq!(calibrated_rssi(-60, -30, -5), -25);
        assert_eq!(calibrated_rssi(-127, 127, 127), -381);
        assert!(OCTOBER_2020_CSV.lines().count() > 95);
        assert!(OCTOBER_2020_CSV.contains("DEFAULT"));
    }
}
