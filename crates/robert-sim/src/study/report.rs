//! The study's tables, verdict, configuration lines and plots.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use robert_core::filter::FilterMode;

use super::compiled::ServerSetting;
use super::evaluate::{CvResult, HeldOut};
use super::metrics::{Curves, ratio};
use super::{Setting, StudyResult};
use crate::error::SimError;
use crate::report::plots::{both, plot_err};

/// `x %` with one decimal, or `—`.
pub fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |v| format!("{:.1} %", 100.0 * v))
}

fn row(s: &mut String, name: &str, label: &str, h: &HeldOut, curves: Option<&Curves>) {
    let c = &h.confusion[0];
    let c2 = &h.confusion[1];
    let (roc, pr) = curves.map_or((String::new(), String::new()), |c| {
        (format!("{:.3}", c.roc_auc()), format!("{:.3}", c.pr_auc()))
    });
    let _ = writeln!(
        s,
        "| {name} | {label} | {} | {} | {} | {} | {} | {} | {} | {} | {roc} | {pr} |",
        c.tp,
        c.fp,
        c.fn_,
        c.tn,
        pct(c.recall()),
        pct(h.recall_of_heard()),
        pct(c.precision()),
        pct(c2.precision()),
    );
}

const HEADER: &str = "| method | threshold | TP | FP | FN | TN | recall | recall of heard | precision | precision at 2 m | ROC AUC | PR AUC |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// One row per method: held-out confusion at the cut chosen on training
/// folds (and at the rule's own threshold), at 1 m (and precision at 2 m),
/// with the curves' areas.
pub fn methods_table(results: &[CvResult]) -> String {
    let mut s = HEADER.to_owned();
    for r in results {
        let curves = Curves::new(&r.tuned.normalised);
        row(
            &mut s,
            &r.method,
            "for 90 % of heard (training)",
            &r.tuned,
            Some(&curves),
        );
        if let Some(n) = &r.native {
            row(&mut s, &r.method, "its own", n, None);
        }
    }
    s
}

/// Best precision among cuts with recall ≥ `recall` on held-out curves.
pub fn precision_at_recall(c: &Curves, recall: f64) -> Option<f64> {
    c.points
        .iter()
        .filter(|p| ratio(p.tp, c.positives) + 1e-12 >= recall)
        .map(|p| ratio(p.tp, p.tp + p.fp))
        .max_by(f64::total_cmp)
}

/// Bootstrap resamples of the held-out runs behind the verdict.
pub const RESAMPLES: usize = 1000;

/// Does ours (the first method) beat every other method's precision at its
/// own held-out recall? Each rival gets its best held-out cut reaching that
/// recall (an advantage to the rival). A win must also hold in at least
/// 95 % of [`RESAMPLES`] paired bootstrap resamples of the held-out runs
/// (scenario × draw), so that a difference within the noise of the draws
/// is not called a win.
pub fn verdict(methods: &[CvResult]) -> (bool, Vec<String>) {
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt as _, SeedableRng as _};
    let Some(ours) = methods.first() else {
        return (false, vec!["no method".into()]);
    };
    let c = &ours.tuned.confusion[0];
    let (Some(recall), Some(precision)) = (c.recall(), c.precision()) else {
        return (false, vec!["our method alerts nobody".into()]);
    };
    let runs = ours.tuned.per_run.len();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let samples: Vec<Vec<usize>> = (0..RESAMPLES)
        .map(|_| (0..runs).map(|_| rng.random_range(0..runs)).collect())
        .collect();
    let mut wins = true;
    let mut lines = vec![format!(
        "{}: recall {} with precision {} (held out)",
        ours.method,
        pct(Some(recall)),
        pct(Some(precision))
    )];
    for m in &methods[1..] {
        let curves = Curves::new(&m.tuned.normalised);
        let theirs = precision_at_recall(&curves, recall);
        let point = theirs.is_none_or(|p| precision > p);
        let aligned = m.tuned.run_stats.len() == runs && runs > 0;
        let share = if aligned {
            let won = samples
                .iter()
                .filter(|idx| {
                    let mut conf = crate::confusion::Confusion::default();
                    let mut pooled = Vec::new();
                    for &i in idx.iter() {
                        conf += ours.tuned.per_run[i].2;
                        pooled.extend_from_slice(&m.tuned.run_stats[i]);
                    }
                    match (conf.recall(), conf.precision()) {
                        (Some(r), Some(p)) => {
                            precision_at_recall(&Curves::new(&pooled), r).is_none_or(|q| p > q)
                        }
                        _ => false,
                    }
                })
                .count();
            ratio(won as u64, RESAMPLES as u64)
        } else {
            0.0
        };
        let beat = point && share >= 0.95;
        wins &= beat;
        lines.push(format!(
            "{} {}: its best precision at recall ≥ {} is {}; ours higher in {} of resamples",
            if beat {
                "beats"
            } else {
                "does NOT clearly beat"
            },
            m.method,
            pct(Some(recall)),
            pct(theirs),
            pct(Some(share))
        ));
    }
    (wins, lines)
}

/// The lines that put a setting in force: the apps' filter through
/// `robert app-config`, the server's scoring in its TOML.
pub fn config_lines(s: &Setting) -> String {
    let (threshold, r0) = s.risk_threshold_and_r0();
    let mode = match s.filter.mode {
        FilterMode::Full => "FULL",
        FilterMode::Medium => "MEDIUM",
        FilterMode::Risks => "RISKS",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The apps' on-device filter (config list served by /status):"
    );
    let _ = writeln!(out, "robert app-config set ble.filterMode {mode} --string");
    let _ = writeln!(
        out,
        "robert app-config set ble.filterConfig '{{\"durationThreshold\": {}, \"riskThreshold\": {}, \"p0\": {}, \"rssiThreshold\": {}}}' --string",
        s.filter.duration_s,
        tidy(s.filter.risk_threshold),
        tidy(s.filter.p0),
        s.clip
    );
    let _ = writeln!(
        out,
        "\n# The server (robert serve / robert batch configuration TOML):"
    );
    let _ = writeln!(out, "[batch]\nrisk_threshold = {threshold}");
    match s.server {
        ServerSetting::V2 { p0, delta_scale } => {
            let deltas: Vec<String> = [39.0, 27.0, 23.0, 21.0, 20.0, 15.0]
                .iter()
                .map(|d| format!("{}", d * delta_scale))
                .collect();
            let _ = writeln!(
                out,
                "[batch.scoring]\npreset = \"reference-2020\"\np0 = {p0}\ndeltas = [{}]\nr0 = {r0}",
                deltas.join(", ")
            );
        }
        ServerSetting::Typical(t) => {
            let p = t.params(r0);
            let _ = writeln!(
                out,
                "[batch.scoring]\npreset = \"typical-level\"\n[batch.scoring.typical]\n\
                 level_low = {}\nlevel_high = {}\nquantile = {}\n\
                 min_minutes = {}\nrssi_max = {}\nlevel = \"{}\"\nr0 = {r0}",
                tidy(p.level_low),
                tidy(p.level_high),
                tidy(p.quantile),
                tidy(p.min_minutes),
                p.rssi_max,
                p.level.name()
            );
        }
    }
    out
}

/// A searched value without the float noise of its grid arithmetic.
fn tidy(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn alerted_share(a: (u64, u64)) -> String {
    format!("{} of {} ({})", a.0, a.1, pct(Some(ratio(a.0, a.1))))
}

/// The whole report as Markdown.
pub fn markdown(r: &StudyResult) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Detection study\n");
    let _ = writeln!(
        s,
        "{} recorded runs; families (cross-validation folds): {}; training draws {:?}, held-out draws {:?}. \
         Offline = online check (reference settings): {} of {} phones differ.\n",
        r.runs,
        r.families.join(", "),
        r.draws.0,
        r.draws.1,
        r.online_mismatches,
        r.online_phones
    );
    let _ = writeln!(
        s,
        "## Held out (leave one family out, held-out draws), truth ≥ 15 min within 1 m\n"
    );
    s.push_str(&methods_table(&r.methods));
    let _ = writeln!(
        s,
        "\nVerdict ({}):\n",
        if r.wins {
            "ours wins"
        } else {
            "ours does not win everywhere"
        }
    );
    for l in &r.verdict {
        let _ = writeln!(s, "- {l}");
    }
    let _ = writeln!(
        s,
        "\n## Recommended setting ({})\n\n{}\n",
        if r.wins {
            "wins on held-out data: the new default"
        } else {
            "does not win everywhere: the reference stays the default"
        },
        r.chosen
    );
    let _ = writeln!(
        s,
        "- chosen at the model's anchor (−35 dBm at 1 m): {}",
        r.chosen_at_model_anchor
    );
    let _ = writeln!(
        s,
        "- one setting for every anchor (worst anchor): {}",
        r.robust
    );
    let _ = writeln!(s, "- ROBERT v2 tuned the same way: {}\n", r.v2_tuned);
    let _ = writeln!(
        s,
        "Against the reference at equal recall, at each anchor ({}):\n",
        if r.holds_across_anchors {
            "holds"
        } else {
            "does not hold"
        }
    );
    for l in &r.anchor_checks {
        let _ = writeln!(s, "- {l}");
    }
    if let Some(c) = &r.chosen_setting {
        let _ = writeln!(s, "\n```sh\n{}```\n", config_lines(c));
    }
    if let Some((anchor, setting, h)) = &r.deployment {
        let _ = writeln!(
            s,
            "### For a deployment whose anchor is {anchor} dBm\n\n{} — held out at that anchor: recall {}, precision {}.\n\n```sh\n{}```\n",
            setting.describe(),
            pct(h.confusion[0].recall()),
            pct(h.confusion[0].precision()),
            config_lines(setting)
        );
    }
    let t = &r.targets;
    let _ = writeln!(s, "## Targets (held-out draws, model anchor)\n");
    let _ = writeln!(
        s,
        "| target | wanted | recommended | reference |\n|---|---|---|---|"
    );
    let c = &t.target_set.confusion[0];
    let cr = &t.target_set_reference.confusion[0];
    let _ = writeln!(
        s,
        "| examples + FAQ matrix: recall / precision at 1 m | ≥ 90 % / ≥ 40 % | {} / {} | {} / {} |",
        pct(c.recall()),
        pct(c.precision()),
        pct(cr.recall()),
        pct(cr.precision())
    );
    let _ = writeln!(
        s,
        "| … recall among heard contacts | | {} | {} |",
        pct(t.target_set.recall_of_heard()),
        pct(t.target_set_reference.recall_of_heard())
    );
    let _ = writeln!(
        s,
        "| offices with desks ≥ 2.5 m: phones alerted | ≤ 10 % | {} | {} |",
        alerted_share(t.far_offices),
        alerted_share(t.far_offices_reference)
    );
    let _ = writeln!(
        s,
        "| moving FAQ cells: phones alerted | ≈ 0 | {} | {} |",
        alerted_share(t.moving_cells),
        alerted_share(t.moving_cells_reference)
    );
    let _ = writeln!(s, "\n## Sensitivity to the anchor (held-out draws)\n");
    let _ = writeln!(
        s,
        "| anchor (dBm at 1 m) | reference | chosen at −35 | one setting for all anchors | optimum at this anchor | its setting |\n|---:|---|---|---|---|---|"
    );
    for a in &r.anchors {
        let f = |h: &HeldOut| {
            format!(
                "{} / {}",
                pct(h.confusion[0].recall()),
                pct(h.confusion[0].precision())
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            a.anchor_db,
            f(&a.reference),
            f(&a.model_anchor),
            f(&a.robust),
            f(&a.optimum),
            a.optimum_setting
        );
    }
    let _ = writeln!(
        s,
        "\n## Peers at their own thresholds against GAEN's calibration offset A (held-out draws, all families)\n\n\
         | rule | A = 8 dB | A = 13 dB | A = 18 dB |\n|---|---|---|---|"
    );
    for chunk in r.peers_by_a.chunks(3) {
        let cells: Vec<String> = chunk
            .iter()
            .map(|(_, _, m)| format!("{} / {}", pct(m.recall()), pct(m.precision())))
            .collect();
        let _ = writeln!(s, "| {} | {} |", chunk[0].0, cells.join(" | "));
    }
    s.push_str(&limits_markdown(&r.limits));
    let _ = writeln!(s, "\n## Settings chosen per fold\n");
    for m in r.methods.iter().filter(|m| !m.settings.is_empty()) {
        let _ = writeln!(s, "{}:\n", m.method);
        for (f, d) in &m.settings {
            let _ = writeln!(s, "- without {f}: {d}");
        }
        s.push('\n');
    }
    s
}

/// Precision–recall and ROC curves of every method (held-out, pooled over
/// folds; statistics divided by each fold's cut), as PNG and SVG.
pub fn write_plots(dir: &Path, r: &StudyResult) -> Result<Vec<PathBuf>, SimError> {
    let curves: Vec<(String, Curves)> = r
        .methods
        .iter()
        .map(|m| (m.method.clone(), Curves::new(&m.tuned.normalised)))
        .collect();
    let mut files = both(dir, "study_pr", &|a| curve_chart(a, &curves, false), &|a| {
        curve_chart(a, &curves, false)
    })?;
    files.extend(both(
        dir,
        "study_roc",
        &|a| curve_chart(a, &curves, true),
        &|a| curve_chart(a, &curves, true),
    )?);
    let l = &r.limits;
    let mut bounds: Vec<(String, Curves)> = Vec::new();
    for o in l.distance_oracle.iter().chain(&l.level_oracle) {
        bounds.push((o.oracle.describe(), Curves::new(&o.held.normalised)));
    }
    bounds.extend(curves);
    let ceiling = l.hearing.last().and_then(|h| h.ceiling()).unwrap_or(1.0);
    files.extend(both(
        dir,
        "study_limits_pr",
        &|a| limits_pr_chart(a, &bounds, ceiling, l.target),
        &|a| limits_pr_chart(a, &bounds, ceiling, l.target),
    )?);
    files.extend(both(
        dir,
        "study_offices",
        &|a| office_chart(a, &l.offices),
        &|a| office_chart(a, &l.offices),
    )?);
    Ok(files)
}

fn pair(x: Option<(f64, f64)>) -> String {
    x.map_or_else(
        || "—".to_owned(),
        |(r, p)| format!("{} / {}", pct(Some(r)), pct(Some(p))),
    )
}

/// The section "Why the targets are out of reach" ([`super::limits`]).
pub fn limits_markdown(l: &super::limits::Limits) -> String {
    let mut s = String::new();
    let t = pct(Some(l.target));
    let _ = writeln!(s, "\n## Why the targets are out of reach\n");
    let _ = writeln!(
        s,
        "### 1. Ceiling from hearing (held-out draws, truth ≥ 15 min within 1 m)\n\n\
         A contact whose HELLOs the case's phone never stored cannot be alerted by any rule on the receptions.\n\n\
         | family | contacts at risk | heard | never heard | of which both iPhones | max recall (any rule) |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for h in &l.hearing {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            h.family,
            h.at_risk,
            h.heard,
            h.never_heard(),
            h.never_heard_iphones,
            pct(h.ceiling())
        );
    }
    let ts = &l.hearing_target_set;
    if let (Some(all), Some(c)) = (l.hearing.last(), ts.ceiling()) {
        let _ = writeln!(
            s,
            "\nTarget set (examples + FAQ matrix): {} of {} contacts at risk heard, max recall {}. \
             Recall ≥ 90 % of *all* contacts would need {} of the heard ones{}; \
             the study's constraint, {t} of the *heard* contacts, is {} of all ({} over every family).",
            ts.heard,
            ts.at_risk,
            pct(Some(c)),
            pct(Some(0.9 / c)),
            if c < 0.9 {
                " — more than all of them: out of reach for any rule"
            } else {
                ""
            },
            pct(Some(l.target * c)),
            pct(all.ceiling().map(|x| l.target * x)),
        );
    }
    let _ = writeln!(
        s,
        "\n### 2. Bounds on the same receptions (held-out draws)\n\n\
         Oracles count the minutes with a HELLO judged near, per case, phone and UTC day; their parameter and cut are chosen \
         on the training draws (all families) for {t} of the heard contacts. \"in-sample\" is the best cut chosen on the held-out \
         phones themselves for {t} of the heard contacts: an upper bound, **never a result**.\n\n\
         | rule | held out: recall of heard / precision | in-sample at {t} of heard: recall of heard / precision |\n|---|---|---|"
    );
    for o in l.distance_oracle.iter().chain(&l.level_oracle) {
        let _ = writeln!(
            s,
            "| {} (≥ {:.0} near-minutes; {} HELLOs without oracle data) | {} | {} |",
            o.oracle.describe(),
            o.cut,
            o.missing,
            pair(Some((
                o.held.recall_of_heard().unwrap_or(0.0),
                o.held.confusion[0].precision().unwrap_or(0.0)
            ))),
            pair(o.in_sample)
        );
    }
    for (name, held, ins) in &l.in_sample {
        let _ = writeln!(s, "| {name} | {} | {} |", pair(Some(*held)), pair(*ins));
    }
    if !l.ablation.is_empty() {
        let _ = writeln!(
            s,
            "\n### 3. Radio ablation (quick study per ablation: draws 0 / 2, leave one family out)\n\n\
             Each row re-records the corpus with the named noise terms of the radio switched off (`[radio] ablate`). \
             \"3 m ≥ 1 m median\": share of the HELLOs received at 2.5–3.5 m (true distance) at least as loud as the median \
             HELLO at 0.5–1 m; \"windows\": the same on two-minute means of one pair. Typical level and reference: held out \
             (cut chosen on training folds) and in-sample at {t} of heard (recall of heard / precision).\n\n\
             | switched off | heard | median 1 m / 3 m (dB) | 3 m ≥ 1 m median: HELLOs / windows | typical level, held out | typical level, in-sample | reference, held out | reference, in-sample | noiseless-level oracle, held out |\n\
             |---|---:|---|---|---|---|---|---|---|"
        );
        for a in &l.ablation {
            let o = &a.overlap;
            let db = |x: Option<f64>| x.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} | {} / {} | {} | {} | {} | {} | {} |",
                a.ablation,
                pct(a.hearing.ceiling()),
                db(o.median_1m),
                db(o.median_3m),
                pct(o.hellos_above),
                pct(o.windows_above),
                pair(Some(a.typical)),
                pair(a.typical_in_sample),
                pair(Some(a.reference)),
                pair(a.reference_in_sample),
                pair(a.level_oracle),
            );
        }
    }
    let _ = writeln!(
        s,
        "\n### 4. The far offices (desks ≥ 2.5 m apart; held-out draws)\n\n\
         Share of the far offices' phones alerted as each method's cut moves (out-of-fold statistics divided by each fold's cut), \
         at a given recall of the heard contacts (all families); the target is ≤ 10 %.\n\n\
         | method | phones | at its cut: recall of heard / far alerted | far alerted at 50 % / 70 % / 80 % / 90 % of heard | best recall of heard with ≤ 10 % far alerted (precision) |\n\
         |---|---:|---|---|---|"
    );
    for c in &l.offices {
        let at: Vec<String> = [0.5, 0.7, 0.8, 0.9]
            .iter()
            .map(|&r| pct(c.far_at_recall(r)))
            .collect();
        let best = c.best_recall_with_far(0.10).map_or_else(
            || "—".to_owned(),
            |(r, p)| format!("{} ({})", pct(Some(r)), pct(Some(p))),
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} | {} | {} |",
            c.method,
            c.far_phones,
            pct(Some(c.operating.0)),
            pct(Some(c.operating.1)),
            at.join(" / "),
            best
        );
    }
    s
}

fn limits_pr_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &[(String, Curves)],
    ceiling: f64,
    target: f64,
) -> Result<(), SimError>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Precision–recall with the bounds, held out (truth: 15 min within 1 m)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("recall (all contacts at risk)")
        .y_desc("precision")
        .draw()
        .map_err(plot_err)?;
    for (i, (name, c)) in curves.iter().enumerate() {
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| (ratio(p.tp, c.positives), ratio(p.tp, p.tp + p.fp)))
            .collect();
        let style = ShapeStyle {
            color: colour(i).to_rgba(),
            filled: false,
            stroke_width: if i < 2 { 3 } else { 1 },
        };
        chart
            .draw_series(LineSeries::new(pts, style))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour(i)));
    }
    let grey = ShapeStyle {
        color: RGBColor(90, 90, 90).to_rgba(),
        filled: false,
        stroke_width: 2,
    };
    chart
        .draw_series(DashedLineSeries::new(
            vec![(ceiling, 0.0), (ceiling, 1.0)],
            6,
            4,
            grey,
        ))
        .map_err(plot_err)?
        .label(format!("hearing ceiling ({:.0} %)", 100.0 * ceiling))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
    chart
        .draw_series([
            Cross::new((0.9, 0.4), 7, BLACK.stroke_width(2)),
            Cross::new(
                (target * ceiling, 0.4),
                7,
                RGBColor(200, 30, 30).stroke_width(2),
            ),
        ])
        .map_err(plot_err)?
        .label("targets: 90 % / 40 % (black); 90 % of heard (red)")
        .legend(|(x, y)| Cross::new((x + 9, y), 5, BLACK));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn office_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &[super::limits::OfficeCurve],
) -> Result<(), SimError>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Far offices (desks ≥ 2.5 m): phones alerted against recall, held out",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("recall of heard contacts at risk (all families)")
        .y_desc("share of far-office phones alerted")
        .draw()
        .map_err(plot_err)?;
    for (i, c) in curves.iter().enumerate() {
        let pts: Vec<(f64, f64)> = c.points.iter().map(|p| (p.0, p.1)).collect();
        let style = ShapeStyle {
            color: colour(i).to_rgba(),
            filled: false,
            stroke_width: if i < 2 { 3 } else { 1 },
        };
        chart
            .draw_series(LineSeries::new(pts, style))
            .map_err(plot_err)?
            .label(c.method.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour(i)));
        chart
            .draw_series(std::iter::once(Circle::new(
                (c.operating.0, c.operating.1),
                4,
                colour(i).filled(),
            )))
            .map_err(plot_err)?;
    }
    let grey = ShapeStyle {
        color: RGBColor(90, 90, 90).to_rgba(),
        filled: false,
        stroke_width: 2,
    };
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, 0.1), (1.0, 0.1)],
            6,
            4,
            grey,
        ))
        .map_err(plot_err)?
        .label("target: ≤ 10 % alerted")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(200, 30, 30),
        RGBColor(30, 90, 200),
        RGBColor(20, 20, 20),
        RGBColor(120, 120, 120),
        RGBColor(46, 139, 87),
        RGBColor(255, 140, 0),
        RGBColor(186, 85, 211),
        RGBColor(0, 160, 160),
        RGBColor(160, 110, 40),
        RGBColor(90, 200, 90),
    ];
    C[i % C.len()]
}

fn curve_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    curves: &[(String, Curves)],
    roc: bool,
) -> Result<(), SimError>
where
    DB::ErrorType: 'static,
{
    let (title, xl, yl) = if roc {
        (
            "ROC, held out (truth: 15 min within 1 m)",
            "false positive rate",
            "recall",
        )
    } else {
        (
            "Precision–recall, held out (truth: 15 min within 1 m)",
            "recall",
            "precision",
        )
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(xl)
        .y_desc(yl)
        .draw()
        .map_err(plot_err)?;
    for (i, (name, c)) in curves.iter().enumerate() {
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|p| {
                let recall = ratio(p.tp, c.positives);
                if roc {
                    (ratio(p.fp, c.negatives), recall)
                } else {
                    (recall, ratio(p.tp, p.tp + p.fp))
                }
            })
            .collect();
        let style = ShapeStyle {
            color: colour(i).to_rgba(),
            filled: false,
            stroke_width: if i == 0 { 3 } else { 1 },
        };
        chart
            .draw_series(LineSeries::new(pts, style))
            .map_err(plot_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour(i)));
        // The operating point (statistic / cut = 1).
        let m = c.at(1.0);
        let op = if roc {
            (ratio(m.fp, c.negatives), ratio(m.tp, c.positives))
        } else {
            (ratio(m.tp, c.positives), ratio(m.tp, m.tp + m.fp))
        };
        chart
            .draw_series(std::iter::once(Circle::new(op, 4, colour(i).filled())))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .position(if roc {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}
