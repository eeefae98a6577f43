//! One plain paragraph on what the alerts of a run mean: who the false
//! alerts were (how long within 1, 2 and 3 m of a case), why contacts at
//! risk were missed, and the settings in force. `robert simulate` and
//! `robert demo` print it last.

use crate::recording::TRUTH_DISTANCES_M;
use crate::result::SimResult;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `95 min` or `6.5 h`.
fn duration(secs: f64) -> String {
    let min = secs / 60.0;
    if min < 90.0 {
        format!("{min:.0} min")
    } else {
        format!("{:.1} h", min / 60.0)
    }
}

fn index(d: f64) -> usize {
    TRUTH_DISTANCES_M
        .iter()
        .position(|x| (x - d).abs() < 1e-9)
        .unwrap_or(0)
}

/// The paragraph (module docs) for these runs, pooled.
pub fn paragraph(results: &[SimResult]) -> String {
    let Some(first) = results.first() else {
        return String::new();
    };
    let k = &first.knobs;
    let need = k.truth_minutes * 60.0;
    let (i1, i2, i3) = (index(1.0), index(2.0), index(3.0));
    let (mut tp, mut fps, mut misses) = (0u64, Vec::new(), Vec::new());
    for r in results {
        for p in r.phone_outcomes.iter().filter(|p| !p.positive) {
            let alerted = p.first_alert_s.is_some();
            match (p.truth_at_risk, alerted) {
                (true, true) => tp += 1,
                (false, true) => fps.push(p.exposure_s.clone()),
                (true, false) => misses.push(p.exposure_s.clone()),
                _ => {}
            }
        }
    }
    let at = |v: &Vec<f64>, i: usize| v.get(i).copied().unwrap_or(0.0);
    let settings = format!(
        "on-device filter {} (durationThreshold {} s, riskThreshold {}), server scoring {}, risk threshold {}",
        k.filter_mode,
        k.filter_duration_threshold_s,
        k.filter_risk_threshold,
        k.scoring_description,
        k.risk_threshold
    );
    let mut s = format!(
        "What the alerts mean (a contact at risk: {} min within {} m of a case on one day; {settings}): \
         {} phones were alerted, {tp} of them contacts at risk.",
        k.truth_minutes,
        k.truth_distance_m,
        tp + fps.len() as u64
    );
    if !fps.is_empty() {
        let within2 = fps.iter().filter(|v| at(v, i2) >= need).count();
        let beyond2 = fps.iter().filter(|v| at(v, i2) < 60.0).count();
        s.push_str(&format!(
            " The {} false alerts were people near a case for a long time but not close enough: \
             on their worst day they spent a median of {} within 1 m, {} within 2 m and {} within 3 m; \
             {} of them were within 2 m for {} minutes or more, and {} never came within 2 m \
             (received levels at 2–5 m overlap those at 1 m: a phone on a desk 3 m away can sound \
             closer than one in a pocket at 1 m).",
            fps.len(),
            duration(median(fps.iter().map(|v| at(v, i1)).collect())),
            duration(median(fps.iter().map(|v| at(v, i2)).collect())),
            duration(median(fps.iter().map(|v| at(v, i3)).collect())),
            within2,
            k.truth_minutes,
            beyond2,
        ));
    }
    if misses.is_empty() {
        s.push_str(" No contact at risk was missed.");
    } else {
        let m = results.iter().fold((0, 0, 0), |a, r| {
            (
                a.0 + r.misses.never_heard,
                a.1 + r.misses.filtered_on_phone,
                a.2 + r.misses.below_server_threshold,
            )
        });
        s.push_str(&format!(
            " The {} missed contacts spent a median of {} within 1 m; by (case, contact) pair, \
             {} were never heard by the case's phone (two iPhones in background, a phone behind a body), \
             {} were kept back by the on-device filter and {} scored below the server's threshold.",
            misses.len(),
            duration(median(misses.iter().map(|v| at(v, i1)).collect())),
            m.0,
            m.1,
            m.2
        ));
    }
    s
}
