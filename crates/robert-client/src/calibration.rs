//! BLE calibration: per-model TX and RX gains and the calibrated RSSI
//! (client-ble.md §2).
//!
//! ```text
//! calibratedRssi = rawRssi − txGain(sender) − rxGain(receiver)
//! ```
//!
//! The sender's TX gain travels in its BLE payload (byte 17); the receiver
//! looks up its own RX gain in the table. The embedded table is StopCovid's
//! October 2020 snapshot (`robert_core::calibration::OCTOBER_2020_CSV`, 95
//! models).
//!
//! Lookup (§2.1): Android: exact `Build.MODEL` → `DEFAULT` → built-in
//! (−30, −5). iOS: exact hardware id (`iPhone12,1`) → `iPhone` / `iPad` by
//! idiom → `DEFAULT` → built-in (−15, −5).

use std::collections::HashMap;
use std::sync::OnceLock;

/// The table shipped with the SDK: `model,tx_gain_db,rx_gain_db`.
pub const EMBEDDED_CSV: &str = robert_core::calibration::OCTOBER_2020_CSV;

/// A phone's operating system, which selects the lookup fallbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Os {
    /// Android: the model key is `Build.MODEL`, e.g. `SM-G973F`.
    Android,
    /// iOS: the model key is the hardware identifier, e.g. `iPhone12,1`.
    Ios,
}

impl Os {
    /// Parses `android` or `ios` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "android" => Some(Self::Android),
            "ios" => Some(Self::Ios),
            _ => None,
        }
    }
}

/// A device as the calibration table knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeviceModel {
    /// The operating system.
    pub os: Os,
    /// `Build.MODEL` on Android, the hardware identifier on iOS.
    pub model: String,
}

impl DeviceModel {
    /// An Android model.
    pub fn android(model: &str) -> Self {
        Self {
            os: Os::Android,
            model: model.to_owned(),
        }
    }

    /// An iOS hardware identifier.
    pub fn ios(model: &str) -> Self {
        Self {
            os: Os::Ios,
            model: model.to_owned(),
        }
    }
}

/// A device's calibration gains in dB (negative: calibrated > raw).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Gains {
    /// TX compensation gain, broadcast in the BLE payload's byte 17.
    pub tx: i8,
    /// RX compensation gain, subtracted from RSSIs this device measures.
    pub rx: i8,
}

impl Gains {
    /// The Android fallback when the table has no `DEFAULT` row (TAC).
    pub const ANDROID_FALLBACK: Self = Self { tx: -30, rx: -5 };
    /// The iOS fallback when the table has no `DEFAULT` row.
    pub const IOS_FALLBACK: Self = Self { tx: -15, rx: -5 };
}

/// A calibration table: model key → gains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CalibrationTable {
    rows: HashMap<String, Gains>,
}

/// A malformed calibration CSV.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// A line does not end with two integer fields in the i8 range.
    #[error("calibration line {line}: expected `model,tx,rx` with integer gains")]
    BadLine {
        /// 1-based line number.
        line: usize,
    },
}

impl CalibrationTable {
    /// The embedded October 2020 table (parsed once).
    pub fn embedded() -> &'static Self {
        static TABLE: OnceLock<CalibrationTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            // The embedded file is checked by a unit test; an empty table
            // (built-in fallbacks only) is the safe answer should it ever fail.
            Self::from_csv(EMBEDDED_CSV).unwrap_or_default()
        })
    }

    /// Parses `model,tx_gain_db,rx_gain_db` lines (a header line is
    /// skipped). Model names may contain commas (`iPhone8,4`), so the two
    /// gains are taken from the **right**. Gains are truncated to integers,
    /// as the apps do.
    pub fn from_csv(csv: &str) -> Result<Self, CalibrationError> {
        let mut rows = HashMap::new();
        for (i, line) in csv.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || (i == 0 && line.starts_with("model,")) {
                continue;
            }
            let bad = || CalibrationError::BadLine { line: i + 1 };
            let mut parts = line.rsplitn(3, ',');
            let rx = parts.next().and_then(parse_gain).ok_or_else(bad)?;
            let tx = parts.next().and_then(parse_gain).ok_or_else(bad)?;
            let model = parts.next().map(str::trim).filter(|m| !m.is_empty());
            let model = model.ok_or_else(bad)?;
            rows.insert(model.to_owned(), Gains { tx, rx });
        }
        Ok(Self { rows })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The exact row for a model key, if any.
    pub fn get(&self, key: &str) -> Option<Gains> {
        self.rows.get(key).copied()
    }

    /// The gains of a device, with the fallbacks of client-ble.md §2.1.
    pub fn lookup(&self, device: &DeviceModel) -> Gains {
        if let Some(g) = self.get(&device.model) {
            return g;
        }
        if device.os == Os::Ios {
            let idiom = if device.model.starts_with("iPad") {
                "iPad"
            } else {
                "iPhone"
            };
            if let Some(g) = self.get(idiom) {
                return g;
            }
        }
        if let Some(g) = self.get("DEFAULT") {
            return g;
        }
        match device.os {
            Os::Android => Gains::ANDROID_FALLBACK,
            Os::Ios => Gains::IOS_FALLBACK,
        }
    }
}

fn parse_gain(field: &str) -> Option<i8> {
    let field = field.trim();
    let value: f64 = field.parse().ok()?;
    if !value.is_finite() || !(-128.0..=127.0).contains(&value) {
        return None;
    }
    // Range checked just above; truncation towards zero is the apps' rule.
    Some(value.trunc() as i8)
}

/// `rawRssi − txGain(sender) − rxGain(receiver)`, in dBm.
/// ([`robert_core::calibration::calibrated_rssi`], kept in `i16`).
pub fn calibrated_rssi(raw_rssi: i16, sender_tx_gain: i8, own_rx_gain: i8) -> i16 {
    let v =
        robert_core::calibration::calibrated_rssi(i32::from(raw_rssi), sender_tx_gain, own_rx_gain);
    // From i16 and two i8, the result is within ±33,023: clamp, as before.
    i16::try_from(v.clamp(i32::from(i16::MIN), i32::from(i16::MAX))).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_with_commas_in_model_names() {
        let t = CalibrationTable::from_csv(EMBEDDED_CSV).unwrap();
        assert_eq!(t.len(), 95);
        assert_eq!(t.get("DEFAULT"), Some(Gains { tx: -30, rx: -5 }));
        assert_eq!(t.get("iPhone8,4"), Some(Gains { tx: -10, rx: -5 }));
        assert_eq!(t.get("iPhone10,3"), Some(Gains { tx: -20, rx: -15 }));
        assert_eq!(t.get("Moto G (5)"), Some(Gains { tx: -25, rx: -10 }));
        assert_eq!(t.get("Mi 9 SE"), Some(Gains { tx: -30, rx: 0 }));
        assert_eq!(t.get("SM-G935F"), Some(Gains { tx: -40, rx: -10 }));
        assert_eq!(t.get("iPhone8"), None);
        assert_eq!(CalibrationTable::embedded().len(), 95);
    }

    #[test]
    fn fallbacks() {
        let t = CalibrationTable::embedded();
        // Exact rows.
        assert_eq!(t.lookup(&DeviceModel::android("SM-G973F")).tx, -25);
        assert_eq!(t.lookup(&DeviceModel::ios("iPhone12,1")).tx, -10);
        // Unknown iOS models fall back by idiom, Android to DEFAULT.
        assert_eq!(
            t.lookup(&DeviceModel::ios("iPhone99,9")),
            Gains { tx: -15, rx: -5 }
        );
        assert_eq!(
            t.lookup(&DeviceModel::ios("iPad13,1")),
            Gains { tx: -15, rx: -5 }
        );
        assert_eq!(
            t.lookup(&DeviceModel::android("Unknown-X")),
            Gains { tx: -30, rx: -5 }
        );
        // Without DEFAULT: the built-in per-OS values.
        let empty = CalibrationTable::default();
        assert_eq!(
            empty.lookup(&DeviceModel::android("x")),
            Gains::ANDROID_FALLBACK
        );
        assert_eq!(empty.lookup(&DeviceModel::ios("x")), Gains::IOS_FALLBACK);
        let only_default = CalibrationTable::from_csv("DEFAULT,-20,-1\n").unwrap();
        assert_eq!(
            only_default.lookup(&DeviceModel::ios("iPhone1,1")),
            Gains { tx: -20, rx: -1 }
        );
    }

    #[test]
    fn malformed_rows_are_refused_and_gains_truncated() {
        assert_eq!(
            CalibrationTable::from_csv("model,tx_gain_db,rx_gain_db\nA,-1\n"),
            Err(CalibrationError::BadLine { line: 2 })
        );
        assert!(CalibrationTable::from_csv(",-1,-2").is_err());
        assert!(CalibrationTable::from_csv("A,x,-2").is_err());
        assert!(CalibrationTable::from_csv("A,-300,-2").is_err());
        let t = CalibrationTable::from_csv("X,-6.52,-19.71").unwrap();
        assert_eq!(t.get("X"), Some(Gains { tx: -6, rx: -19 }));
    }

    #[test]
    fn formula_matches_the_worked_example() {
        // Android DEFAULT ↔ DEFAULT: raw −70 → calibrated −35 (client-ble.md §2.2).
        assert_eq!(calibrated_rssi(-70, -30, -5), -35);
        assert_eq!(calibrated_rssi(i16::MIN, 127, 127), i16::MIN);
    }
}
