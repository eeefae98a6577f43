//! The small vocabulary shared by the run, the scoring and the recorder:
//! simulation time ↔ NTP seconds, the names used in tables, integer-keyed
//! maps. Depends on no other module of the crate.

use robert_core::time::NtpSeconds;
use robert_radio::calibration::Os;
use robert_radio::channel::EnvironmentKind;

/// Maps keyed by integers (person, place, EBID ids): robert-radio's fast
/// deterministic hasher.
pub(crate) use robert_radio::fast_map::FastMap;

/// Index of an environment kind in [`EnvironmentKind::ALL`].
pub(crate) fn env_index(kind: EnvironmentKind) -> usize {
    EnvironmentKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(0)
}

/// The OS name used in tables.
pub(crate) fn os_name(os: Os) -> &'static str {
    match os {
        Os::Android => "android",
        Os::Ios => "ios",
    }
}

/// The group name of a place (`office#3` → `office`, `line-13/car2` → `line-13`).
pub(crate) fn group_of_place(name: &str) -> String {
    name.split(['#', '/']).next().unwrap_or(name).to_owned()
}

/// Seconds of simulated time ↔ NTP seconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeBase {
    pub(crate) start: NtpSeconds,
}

impl TimeBase {
    pub(crate) fn ntp(&self, t: f64) -> NtpSeconds {
        if t >= 0.0 {
            // Simulation times are finite and below 2^53.
            self.start.plus(t.floor() as u64)
        } else {
            self.start.minus((-t).ceil() as u64)
        }
    }

    pub(crate) fn sim(&self, t: NtpSeconds) -> f64 {
        (i128::from(t.get()) - i128::from(self.start.get())) as f64
    }
}

/// `d1 14:05` style label of a simulation time.
pub fn clock_label(t: f64) -> String {
    let t = t.max(0.0);
    let day = (t / 86_400.0).floor();
    let rest = t - day * 86_400.0;
    let h = (rest / 3600.0).floor();
    let m = ((rest - h * 3600.0) / 60.0).floor();
    format!("day {} {:02}:{:02} UTC", day as u64, h as u64, m as u64)
}
