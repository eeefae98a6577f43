//! The parameters an app takes from the server's `config` list (returned by
//! `/register` and `/status`, set with `robert app-config`): the on-device
//! proximity filter, `ble.filterMode` and `ble.filterConfig`
//! (client-ble.md §4).
//!
//! `ble.filterMode` is `"FULL"`, `"MEDIUM"` or `"RISKS"`. `ble.filterConfig`
//! is a JSON object — or a string holding one, as the apps received it —
//! with any of `durationThreshold`, `rssiThreshold`, `deltas`, `p0`, `a`,
//! `b`, `timeWindow`, `timeOverlap`, `riskThreshold`; numbers may be given
//! as strings. Missing keys keep the phone's configured value. A value that
//! does not parse, or gives an invalid filter, is ignored as a whole: the
//! phone keeps filtering as before rather than with half a configuration.

use robert_core::filter::{FilterConfig, FilterMode, ProximityFilter};
use serde_json::Value;

/// The filter parameters found in a `config` list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerFilter {
    /// `ble.filterMode`, if present and valid.
    pub mode: Option<FilterMode>,
    /// `ble.filterConfig` applied over the phone's configuration, if present
    /// and valid (the filter built from it; `filter.config()` reads it).
    pub filter: Option<ProximityFilter>,
}

impl ServerFilter {
    /// Reads `list` (`[{"name": …, "value": …}, …]`; anything else gives
    /// nothing), applying `ble.filterConfig` over `base`.
    pub fn from_list(list: &Value, base: &FilterConfig) -> Self {
        let Some(entries) = list.as_array() else {
            return Self::default();
        };
        let value_of = |name: &str| {
            entries
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|e| e.get("value"))
        };
        let mode = value_of("ble.filterMode")
            .and_then(Value::as_str)
            .and_then(FilterMode::from_config);
        let filter = value_of("ble.filterConfig").and_then(|v| filter_config(v, base));
        Self { mode, filter }
    }

    /// Whether the list said anything about the filter.
    pub fn is_empty(&self) -> bool {
        self.mode.is_none() && self.filter.is_none()
    }
}

/// A number, or a string holding one.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|x: &f64| x.is_finite())
}

/// A non-negative whole number of seconds.
fn seconds(v: &Value) -> Option<u64> {
    number(v)
        .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x <= 1e9)
        .map(|x| x as u64)
}

/// The filter of `ble.filterConfig` over `base`; `None` if anything is
/// malformed.
fn filter_config(value: &Value, base: &FilterConfig) -> Option<ProximityFilter> {
    let parsed;
    let obj = match value {
        Value::Object(o) => o,
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).ok()?;
            parsed.as_object()?
        }
        _ => return None,
    };
    let mut c = base.clone();
    for (key, v) in obj {
        match key.as_str() {
            "durationThreshold" => c.duration_threshold_secs = seconds(v)?,
            "rssiThreshold" => {
                let x = number(v)?;
                if x.fract() != 0.0 || !(-200.0..=200.0).contains(&x) {
                    return None;
                }
                c.rssi_threshold = x as i32;
            }
            "deltas" => {
                c.deltas = v
                    .as_array()?
                    .iter()
                    .map(number)
                    .collect::<Option<Vec<f64>>>()?;
            }
            "p0" => c.p0 = number(v)?,
            "a" => c.a = number(v)?,
            "b" => c.b = number(v)?,
            "timeWindow" => c.time_window_secs = seconds(v)?,
            "timeOverlap" => c.time_overlap_secs = seconds(v)?,
            "riskThreshold" => c.risk_threshold = number(v)?,
            // Other keys (future ones) are not the filter's business.
            _ => {}
        }
    }
    ProximityFilter::new(c).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> FilterConfig {
        FilterConfig::app_2020()
    }

    #[test]
    fn reads_mode_and_config_in_both_forms() {
        let list = json!([
            {"name": "app.checkStatusFrequency", "value": 12},
            {"name": "ble.filterMode", "value": "MEDIUM"},
            {"name": "ble.filterConfig", "value": "{\"durationThreshold\": 90, \"riskThreshold\": \"0.2\", \"deltas\": [\"39.0\", 27]}"}
        ]);
        let f = ServerFilter::from_list(&list, &base());
        assert_eq!(f.mode, Some(FilterMode::Medium));
        let c = f.filter.unwrap().config().clone();
        assert_eq!(c.duration_threshold_secs, 90);
        assert_eq!(c.risk_threshold, 0.2);
        assert_eq!(c.deltas, vec![39.0, 27.0]);
        // Untouched keys keep the base's values.
        assert_eq!(c.p0, base().p0);
        assert_eq!(c.time_window_secs, base().time_window_secs);

        let object = json!([{"name": "ble.filterConfig", "value": {"p0": -60, "timeOverlap": 30}}]);
        let c = ServerFilter::from_list(&object, &base())
            .filter
            .unwrap()
            .config()
            .clone();
        assert_eq!((c.p0, c.time_overlap_secs), (-60.0, 30));
    }

    #[test]
    fn anything_malformed_is_ignored_as_a_whole() {
        for bad in [
            json!("not json"),
            json!(42),
            json!({"durationThreshold": -5}),
            json!({"durationThreshold": 1.5}),
            json!({"deltas": []}),
            json!({"deltas": ["x"]}),
            json!({"rssiThreshold": "loud"}),
            // The overlap must be shorter than the window.
            json!({"timeWindow": 60, "timeOverlap": 60}),
        ] {
            let list = json!([{"name": "ble.filterConfig", "value": bad.clone()}]);
            assert_eq!(
                ServerFilter::from_list(&list, &base()).filter,
                None,
                "{bad}"
            );
        }
        let list = json!([{"name": "ble.filterMode", "value": "LOOSE"}]);
        assert!(ServerFilter::from_list(&list, &base()).is_empty());
        assert!(ServerFilter::from_list(&json!({"config": 1}), &base()).is_empty());
        assert!(ServerFilter::from_list(&json!([]), &base()).is_empty());
    }
}
