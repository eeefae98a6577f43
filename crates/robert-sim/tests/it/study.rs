//! The detection study's machinery (not the study itself, which is a
//! benchmark): the optimiser's fast path agrees with the exact replay, and
//! no held-out run ever reaches the optimiser.

use robert_core::filter::FilterMode;
use robert_core::scoring::WindowLevel;
use robert_radio::scenario::{Density, Scenario};
use robert_sim::study::compiled::{FilterSetting, ServerSetting, compile, statistic};
use robert_sim::study::corpus::RunId;
use robert_sim::study::evaluate::{Workspace, cross_validate_family, folds};
use robert_sim::study::{Family, Run, Setting, recording_options};

fn record(s: &Scenario, family: &'static str, draw: u32) -> Run {
    let mut s = s.clone();
    s.seed = s
        .seed
        .wrapping_add(u64::from(draw) * robert_sim::study::corpus::DRAW_STRIDE);
    let mut r = robert_sim::run_scenario(&s, &recording_options()).unwrap();
    Run {
        id: RunId {
            scenario: s.name,
            draw,
        },
        family,
        target_set: true,
        rec: *r.recording.take().unwrap(),
    }
}

fn runs() -> Vec<Run> {
    let small = Scenario::from_toml_str(robert_sim::scenarios::SMALL).unwrap();
    let cells = robert_sim::scenarios::faq_matrix(11).unwrap();
    let cell = |density, moving| {
        cells
            .iter()
            .find(|(c, _)| c.density == density && c.moving == moving)
            .unwrap()
            .1
            .clone()
    };
    let mut out = Vec::new();
    for draw in [0, 2] {
        out.push(record(&small, "offices", draw));
        out.push(record(&cell(Density::High, false), "faq-static", draw));
        out.push(record(&cell(Density::Low, false), "faq-static", draw));
    }
    out
}

fn settings() -> Vec<Setting> {
    let typical = |level_low, width, quantile, min_minutes, level, cut| Setting {
        server: ServerSetting::Typical {
            level_low,
            width,
            quantile,
            min_minutes,
            level,
        },
        cut,
        ..Setting::reference()
    };
    let mut v = vec![
        Setting::reference(),
        typical(-60.0, 5.0, 0.5, 3.0, WindowLevel::Mean, 10.0),
        typical(-50.0, 0.0, 0.8, 0.0, WindowLevel::PowerMean, 5.0),
    ];
    v.push(Setting {
        filter: FilterSetting {
            mode: FilterMode::Full,
            duration_s: 60,
            risk_threshold: 0.0,
            p0: -66.0,
        },
        server: ServerSetting::V2 {
            p0: -58.0,
            delta_scale: 1.4,
        },
        cut: 6.0,
        ..Setting::reference()
    });
    v.push(Setting {
        filter: FilterSetting {
            mode: FilterMode::Medium,
            duration_s: 300,
            risk_threshold: 0.0,
            p0: -66.0,
        },
        clip: -45,
        ..typical(-62.0, 8.0, 0.3, 2.0, WindowLevel::Mean, 8.0)
    });
    v
}

#[test]
fn the_fast_path_agrees_with_the_exact_replay() {
    let runs = runs();
    let mut alerts = 0;
    for run in &runs {
        for shift in [0, -12] {
            for s in settings() {
                let c = compile(&run.rec, shift, s.clip, -35);
                let mut fast = Vec::new();
                statistic(&c, &s.filter, &s.server, &mut fast);
                let exact =
                    robert_sim::replay::replay(&run.rec, &s.replay_settings(shift).unwrap());
                let (_, r0) = s.risk_threshold_and_r0();
                for (i, p) in run
                    .rec
                    .phones
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !p.positive)
                {
                    // The exact statistic: S for v2, the worst day for typical.
                    let exact_stat = match s.server {
                        ServerSetting::V2 { .. } => exact.score_sum[i],
                        ServerSetting::Typical { .. } => -(1.0 - exact.final_risk[i]).ln() / r0,
                    };
                    assert!(
                        (fast[i] - exact_stat).abs() <= 1e-4 * exact_stat.abs().max(1.0),
                        "{} Δ {shift} {}: phone {i}: fast {} exact {exact_stat}",
                        run.id.scenario,
                        s.describe(),
                        fast[i]
                    );
                    // One-day runs: the batch timing cannot change an alert.
                    if (fast[i] - s.cut).abs() > 1e-6 * s.cut {
                        assert_eq!(
                            fast[i] >= s.cut && fast[i] > 0.0,
                            exact.alerted[i],
                            "phone {i}"
                        );
                    }
                    alerts += usize::from(exact.alerted[i]);
                    let _ = p;
                }
            }
        }
    }
    assert!(
        alerts > 20,
        "settings that alert nobody would prove little: {alerts}"
    );
}

#[test]
fn no_held_out_run_reaches_the_optimiser() {
    let runs = runs();
    let folds = folds(&runs, &[0], &[2]);
    assert_eq!(folds.len(), 2);
    let held_out: Vec<usize> = (0..runs.len()).filter(|&i| runs[i].id.draw == 2).collect();
    for f in &folds {
        assert!(!f.test.is_empty() && !f.train.is_empty());
        for &t in &f.test {
            assert_eq!(runs[t].family, f.family);
            assert_eq!(runs[t].id.draw, 2);
            assert!(!f.train.contains(&t));
        }
        for &t in &f.train {
            assert_ne!(runs[t].family, f.family);
            assert_eq!(runs[t].id.draw, 0);
        }
    }
    let mut ws = Workspace::new(&runs);
    for family in [Family::Typical, Family::V2] {
        let cv = cross_validate_family(&mut ws, &folds, family, 0.9, 40, 1, &mut |_| {}).unwrap();
        assert_eq!(cv.tuned.per_run.len(), held_out.len());
    }
    assert!(!ws.tuned_on.is_empty());
    for i in &held_out {
        assert!(
            !ws.tuned_on.contains(i),
            "held-out run {i} reached the optimiser"
        );
    }
}
