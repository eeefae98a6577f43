//! The detection study's machinery (not the study itself, which is a
//! benchmark): the optimiser's fast path agrees with the exact replay, and
//! no held-out run ever reaches the optimiser.

use robert_core::filter::FilterMode;
use robert_core::scoring::WindowLevel;
use robert_radio::scenario::{Density, Scenario};
use robert_sim::study::compiled::{
    FilterSetting, ServerSetting, TypicalSetting, compile, statistic,
};
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
        server: ServerSetting::Typical(TypicalSetting {
            level_low,
            width,
            quantile,
            min_minutes,
            level,
        }),
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
                for (i, p) in run.rec.negatives() {
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

/// A static office with hand-held phones and every noise term of the
/// radio switched off: what the phones store is exactly the noiseless
/// model level the recorder notes (so the ablation reaches the phones and
/// the oracle data describe the same receptions).
#[test]
fn with_every_noise_term_off_the_phones_store_the_noiseless_level() {
    use robert_radio::channel::{Ablation, NoiseTerm};
    let text = "name = \"quiet\"\nseed = 3\n[radio]\nablate = [\"placement\", \"body\", \"device\", \"pair\", \"shadowing\", \"fading\"]\n\
                [[groups]]\nname = \"desks\"\nkind = \"office\"\npeople = 6\nspacing_m = 1.2\n\
                start = \"09:00\"\nend = \"09:30\"\narrival_jitter_minutes = 0.0\nplacement = { hand = 1.0 }\n\
                [[positives]]\ngroup = \"desks\"\nmember = 0\nday = 0\ntime = \"12:00\"\n\
                [[positives]]\ngroup = \"desks\"\nmember = 4\nday = 0\ntime = \"12:00\"\n";
    let s = Scenario::from_toml_str(text).unwrap();
    assert_eq!(s.radio.ablate, Ablation::all());
    assert!(NoiseTerm::ALL.iter().all(|t| s.radio.ablate.contains(*t)));
    let rec = robert_sim::run_scenario(&s, &recording_options())
        .unwrap()
        .recording
        .unwrap();
    let mut n = 0;
    for g in rec.reports.iter().flat_map(|r| &r.groups) {
        assert_eq!(g.distance_cm.len(), g.len());
        for i in 0..g.len() {
            let level = f64::from(g.model_level_ddb[i]) / 10.0;
            assert!(
                (f64::from(g.rssi[i]) - level).abs() <= 0.55,
                "stored {} vs noiseless {level} at {} cm",
                g.rssi[i],
                g.distance_cm[i]
            );
            n += 1;
        }
    }
    assert!(n > 500, "{n} HELLOs");
}

/// The distance oracle on the same receptions: knowing each HELLO's true
/// distance separates the contacts at risk from the others (≥ 99 % of the
/// heard ones with ≥ 99 % precision), and no HELLO lacks oracle data.
#[test]
fn the_distance_oracle_separates_contacts_on_the_same_receptions() {
    use robert_sim::study::limits::{Oracle, OracleRun, hearing, in_sample};
    let small = Scenario::from_toml_str(robert_sim::scenarios::SMALL).unwrap();
    let cells = robert_sim::scenarios::faq_matrix(21).unwrap();
    let mut runs = vec![record(&small, "offices", 0)];
    for (c, s) in &cells {
        if !c.moving && c.density == Density::High {
            runs.push(record(s, "faq-static", 0));
        }
    }
    let mut scored = Vec::new();
    let mut reachable = 0;
    for run in &runs {
        let o = OracleRun::compile(&run.rec);
        assert!(o.hellos > 100);
        assert_eq!(o.missing, 0, "{}", run.id.scenario);
        let stat = o.statistic(Oracle::Distance(1.0));
        let truth = run.rec.truth(1.0).unwrap();
        let heard = run.rec.heard();
        for (i, p) in run.rec.phones.iter().enumerate() {
            if !p.positive {
                scored.push((stat[i], truth[i]));
                reachable += u64::from(truth[i] && heard[i]);
                // Nobody is near without being heard near.
                assert!(stat[i] == 0.0 || heard[i]);
            }
        }
    }
    let all: Vec<usize> = (0..runs.len()).collect();
    let h = hearing(&runs, &all).pop().unwrap();
    assert_eq!(h.heard, reachable);
    assert!(reachable >= 10, "{reachable} heard contacts at risk");
    let (recall, precision) = in_sample(&scored, reachable, 0.99).unwrap();
    assert!(
        recall >= 0.99 && precision >= 0.99,
        "{recall} / {precision}"
    );
}
