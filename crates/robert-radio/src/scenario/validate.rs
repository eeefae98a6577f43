//! Range checks of a [`Scenario`] before it is built.

use std::collections::HashMap;

use super::build::{day_base, environment, model_mix, service_mean, timing, walker_params, window};
use super::{GroupKind, GroupSpec, PlacementWeights, Scenario, ScenarioError, invalid};
use crate::calibration::Os;
use crate::truth::DAY_S;

/// Upper bound on people in one group (all instances), against absurd memory use.
const MAX_PEOPLE: u32 = 5_000_000;

/// Range checks (see the module documentation of `scenario` for the fields).
pub(super) fn validate(s: &Scenario) -> Result<(), ScenarioError> {
    let finite_in = |field: &str, v: f64, lo: f64, hi: f64| {
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(invalid(field, format!("{v} not in [{lo}, {hi}]")))
        }
    };
    if s.name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    if !(1..=366).contains(&s.days) {
        return Err(invalid("days", "must be in 1..=366"));
    }
    finite_in("utc_offset_hours", s.utc_offset_hours, -14.0, 14.0)?;
    let r = &s.radio;
    finite_in("radio.sensitivity_dbm", r.sensitivity_dbm, -130.0, -30.0)?;
    let (lo, hi) = super::ANCHOR_RANGE_DB;
    finite_in("radio.anchor_db", r.anchor_db, lo, hi)?;
    if r.anchor_db.fract() != 0.0 {
        return Err(invalid(
            "radio.anchor_db",
            format!(
                "{} is not a whole number of dB (calibrated RSSI is an integer)",
                r.anchor_db
            ),
        ));
    }
    finite_in(
        "radio.default_android_tx_dbm",
        r.default_android_tx_dbm,
        -40.0,
        20.0,
    )?;
    finite_in("radio.max_pair_range_m", r.max_pair_range_m, 0.5, 10_000.0)?;
    timing(s).validate().map_err(|e| invalid("radio", e))?;
    finite_in("truth.distance_m", s.truth.distance_m, 0.01, 1000.0)?;
    finite_in(
        "truth.at_risk_minutes",
        s.truth.at_risk_minutes,
        0.0,
        1440.0,
    )?;
    let p = &s.population;
    finite_in("population.android_share", p.android_share, 0.0, 1.0)?;
    finite_in(
        "population.android_no_advertiser_share",
        p.android_no_advertiser_share,
        0.0,
        1.0,
    )?;
    finite_in(
        "population.ios_foreground_share",
        p.ios_foreground_share,
        0.0,
        1.0,
    )?;
    finite_in(
        "population.device_offset_sigma_db",
        p.device_offset_sigma_db,
        0.0,
        30.0,
    )?;
    finite_in(
        "population.unlisted_model_sigma_db",
        p.unlisted_model_sigma_db,
        0.0,
        30.0,
    )?;
    for (i, m) in p.models.iter().enumerate() {
        let f = format!("population.models[{i}]");
        finite_in(&format!("{f}.weight"), m.weight, 0.0, 1e9)?;
        if m.model.is_empty() {
            return Err(invalid(format!("{f}.model"), "must not be empty"));
        }
        for (name, v) in [
            ("true_tx_gain_db", m.true_tx_gain_db),
            ("true_rx_gain_db", m.true_rx_gain_db),
        ] {
            if let Some(v) = v {
                finite_in(&format!("{f}.{name}"), v, -100.0, 100.0)?;
            }
        }
    }
    let mix = model_mix(s);
    for (os, share) in [
        (Os::Android, p.android_share),
        (Os::Ios, 1.0 - p.android_share),
    ] {
        if share > 0.0 && !mix.iter().any(|m| m.os == os && m.weight > 0.0) {
            return Err(invalid(
                "population.models",
                format!("no {os:?} model with a positive weight"),
            ));
        }
    }
    if let Some(w) = &p.placement {
        check_placement("population.placement", w)?;
    }
    if s.groups.is_empty() {
        return Err(invalid("groups", "at least one group is needed"));
    }
    let mut sizes: HashMap<&str, u32> = HashMap::new();
    for (i, g) in s.groups.iter().enumerate() {
        let f = format!("groups[{i}] ({})", g.name);
        if g.name.trim().is_empty() {
            return Err(invalid(format!("groups[{i}].name"), "must not be empty"));
        }
        if sizes.contains_key(g.name.as_str()) {
            return Err(invalid(f, "duplicate group name"));
        }
        let size = match &g.members {
            Some(other) => {
                if g.people > 0 || g.instances.is_some() {
                    return Err(invalid(
                        f,
                        "`members` excludes `people` and `instances` (they are inherited)",
                    ));
                }
                *sizes.get(other.as_str()).ok_or_else(|| {
                    invalid(
                        format!("{f}.members"),
                        format!("no earlier group `{other}`"),
                    )
                })?
            }
            None => {
                if g.people == 0 {
                    return Err(invalid(format!("{f}.people"), "must be at least 1"));
                }
                let n = g.instances.unwrap_or(1);
                if n == 0 {
                    return Err(invalid(format!("{f}.instances"), "must be at least 1"));
                }
                g.people
                    .checked_mul(n)
                    .filter(|total| *total <= MAX_PEOPLE)
                    .ok_or_else(|| invalid(f.clone(), format!("more than {MAX_PEOPLE} people")))?
            }
        };
        sizes.insert(g.name.as_str(), size);
        validate_group(s, g, &f)?;
    }
    for (i, pos) in s.positives.iter().enumerate() {
        let f = format!("positives[{i}]");
        let size = *sizes
            .get(pos.group.as_str())
            .ok_or_else(|| invalid(format!("{f}.group"), format!("no group `{}`", pos.group)))?;
        if pos.member.is_some_and(|m| m >= size) {
            return Err(invalid(
                format!("{f}.member"),
                format!("group has {size} members"),
            ));
        }
        if pos.day >= s.days {
            return Err(invalid(format!("{f}.day"), "beyond the simulated days"));
        }
        let t = day_base(s, pos.day) + pos.time.unwrap_or(super::TimeOfDay::hm(18, 0)).seconds();
        if !(0.0..f64::from(s.days) * DAY_S).contains(&t) {
            return Err(invalid(
                format!("{f}.time"),
                "outside the simulated period in UTC",
            ));
        }
    }
    Ok(())
}

fn check_placement(field: &str, w: &PlacementWeights) -> Result<(), ScenarioError> {
    if w.values().any(|v| !v.is_finite() || *v < 0.0) || !w.values().any(|v| *v > 0.0) {
        return Err(invalid(
            field,
            "weights must be finite, non-negative, not all zero",
        ));
    }
    Ok(())
}

fn validate_group(s: &Scenario, g: &GroupSpec, f: &str) -> Result<(), ScenarioError> {
    let positive = |name: &str, v: Option<f64>| match v {
        Some(v) if !(v.is_finite() && v > 0.0) => {
            Err(invalid(format!("{f}.{name}"), "must be positive"))
        }
        _ => Ok(()),
    };
    if let Some(days) = &g.days
        && days.iter().any(|d| *d >= s.days)
    {
        return Err(invalid(
            format!("{f}.days"),
            "day index beyond the simulated days",
        ));
    }
    if !(g.arrival_jitter_minutes.is_finite() && g.arrival_jitter_minutes >= 0.0) {
        return Err(invalid(
            format!("{f}.arrival_jitter_minutes"),
            "must be ≥ 0",
        ));
    }
    if let Some(w) = &g.placement {
        check_placement(&format!("{f}.placement"), w)?;
    }
    positive("spacing_m", g.spacing_m)?;
    positive("length_m", g.length_m)?;
    positive("width_m", g.width_m)?;
    positive("speed_m_s", g.speed_m_s)?;
    positive("trip_minutes", g.trip_minutes)?;
    positive("service_minutes", g.service_minutes)?;
    if g.table_size == Some(0) || g.crossings == Some(0) || g.passengers_per_car == Some(0) {
        return Err(invalid(
            f,
            "table_size, crossings and passengers_per_car must be ≥ 1",
        ));
    }
    environment(g)
        .validate()
        .map_err(|e| invalid(format!("{f}.environment"), e))?;
    let (start, end) = window(g);
    match g.kind {
        GroupKind::Commute => {
            if g.departures.as_ref().is_some_and(Vec::is_empty) {
                return Err(invalid(format!("{f}.departures"), "must not be empty"));
            }
        }
        _ => {
            if end <= start {
                return Err(invalid(f, "end must be after start"));
            }
            let jitter = g.arrival_jitter_minutes * 60.0;
            if 2.0 * jitter >= end - start
                && g.kind != GroupKind::Walkers
                && g.kind != GroupKind::Queue
            {
                return Err(invalid(
                    f,
                    "arrival jitter leaves no time between start and end",
                ));
            }
        }
    }
    if g.kind == GroupKind::Walkers {
        let (length, _, crossings, _) = walker_params(g);
        // The slowest walker (0.8 m/s) must fit in each crossing slot.
        if (end - start) / f64::from(crossings) < length / 0.8 {
            return Err(invalid(
                f,
                "too many crossings for the time window and street length",
            ));
        }
    }
    if g.kind == GroupKind::Queue && end - start < 3.0 * service_mean(g) {
        return Err(invalid(f, "queue window shorter than three service times"));
    }
    Ok(())
}
