//! Plots, drawn with `plotters` into PNG (bitmap backend, encoded with
//! `png`) and SVG. Text is rendered with an embedded DejaVu Sans font
//! through `ab_glyph`: no system font, no fontconfig.

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::error::SimError;
use crate::result::SimResult;

const W: u32 = 1000;
const H: u32 = 640;

static FONTS: Once = Once::new();

fn fonts() {
    FONTS.call_once(|| {
        // The DejaVu files are valid fonts: registration cannot fail.
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

pub(crate) fn plot_err(e: impl std::fmt::Display) -> SimError {
    SimError::Report(format!("plot: {e}"))
}

/// Colours of the environments, in `EnvironmentKind::ALL` order.
fn env_colour(name: &str) -> RGBColor {
    match name {
        "outdoor" => RGBColor(46, 139, 87),
        "indoor-high-ceiling" => RGBColor(65, 105, 225),
        "indoor-medium-ceiling" => RGBColor(255, 140, 0),
        "indoor-low-ceiling" => RGBColor(186, 85, 211),
        _ => RGBColor(178, 34, 34),
    }
}

pub(crate) type PngArea<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
pub(crate) type SvgArea<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws `draw` twice, as `<stem>.png` and `<stem>.svg`; returns both paths.
pub(crate) fn both(
    dir: &Path,
    stem: &str,
    draw: &dyn Fn(&PngArea<'_>) -> Result<(), SimError>,
    draw_svg: &dyn Fn(&SvgArea<'_>) -> Result<(), SimError>,
) -> Result<Vec<PathBuf>, SimError> {
    fonts();
    let png_path = dir.join(format!("{stem}.png"));
    let svg_path = dir.join(format!("{stem}.svg"));
    let mut buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(&root)?;
        root.present().map_err(plot_err)?;
    }
    write_png(&png_path, &buf)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw_svg(&root)?;
        root.present().map_err(plot_err)?;
    }
    std::fs::write(&svg_path, svg)?;
    Ok(vec![png_path, svg_path])
}

fn write_png(path: &Path, rgb: &[u8]) -> Result<(), SimError> {
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(plot_err)?;
    writer.write_image_data(rgb).map_err(plot_err)?;
    writer.finish().map_err(plot_err)?;
    Ok(())
}

/// RSSI (calibrated) against distance, per environment, with the per-metre
/// medians and the scoring's p0.
fn rssi_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[SimResult],
    p0: f64,
) -> Result<(), SimError>
where
    DB::ErrorType: 'static,
{
    let max_d = 10.0f32;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Calibrated RSSI vs distance, by environment",
            ("sans-serif", 24),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f32..max_d, -100f32..10f32)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("distance between the two people (m)")
        .y_desc("calibrated RSSI (dB)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    let mut envs: Vec<&'static str> = results
        .iter()
        .flat_map(|r| r.rssi_samples.iter().map(|s| s.environment))
        .collect();
    envs.sort_unstable();
    envs.dedup();
    for env in envs {
        let colour = env_colour(env);
        let pts: Vec<(f32, f32)> = results
            .iter()
            .flat_map(|r| r.rssi_samples.iter())
            .filter(|s| s.environment == env && s.distance_m <= max_d)
            .map(|s| (s.distance_m, f32::from(s.rssi_calibrated)))
            .collect();
        chart
            .draw_series(
                pts.iter()
                    .map(|&p| Circle::new(p, 1, colour.mix(0.25).filled())),
            )
            .map_err(plot_err)?;
        // Median per 0.5 m bin.
        let mut medians = Vec::new();
        let mut lo = 0.0f32;
        while lo < max_d {
            let mut v: Vec<f32> = pts
                .iter()
                .filter(|(d, _)| *d >= lo && *d < lo + 0.5)
                .map(|(_, r)| *r)
                .collect();
            if v.len() >= 5 {
                v.sort_by(f32::total_cmp);
                medians.push((lo + 0.25, v[v.len() / 2]));
            }
            lo += 0.5;
        }
        chart
            .draw_series(LineSeries::new(medians, colour.stroke_width(3)))
            .map_err(plot_err)?
            .label(env)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
    }
    let p0 = p0 as f32;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, p0), (max_d, p0)],
            BLACK.mix(0.6).stroke_width(1),
        ))
        .map_err(plot_err)?
        .label(format!("scoring p0 = {p0} dB"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Recall and precision (phone level) per scenario, as horizontal bars.
fn rates_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[SimResult],
) -> Result<(), SimError>
where
    DB::ErrorType: 'static,
{
    let n = results.len().max(1);
    let names: Vec<String> = results.iter().map(|r| r.scenario.clone()).collect();
    let label_w = names.iter().map(|s| s.chars().count()).max().unwrap_or(8) as u32 * 8 + 20;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Recall and precision per scenario (phone level)",
            ("sans-serif", 24),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(label_w.min(420))
        .build_cartesian_2d(0f64..1.0f64, 0f64..n as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(2 * n + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 1e-6 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc("rate")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(plot_err)?;
    let recall_c = RGBColor(31, 119, 180);
    let precision_c = RGBColor(255, 127, 14);
    chart
        .draw_series(results.iter().enumerate().filter_map(|(i, r)| {
            r.phones.recall().map(|v| {
                let y = i as f64;
                Rectangle::new([(0.0, y + 0.5), (v, y + 0.9)], recall_c.filled())
            })
        }))
        .map_err(plot_err)?
        .label("recall")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], recall_c.filled()));
    chart
        .draw_series(results.iter().enumerate().filter_map(|(i, r)| {
            r.phones.precision().map(|v| {
                let y = i as f64;
                Rectangle::new([(0.0, y + 0.1), (v, y + 0.5)], precision_c.filled())
            })
        }))
        .map_err(plot_err)?
        .label("precision")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], precision_c.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Cumulative alerts over simulated time (true and false), with the
/// positive declarations.
fn timeline_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[SimResult],
) -> Result<(), SimError>
where
    DB::ErrorType: 'static,
{
    let shown: Vec<&SimResult> = results.iter().take(6).collect();
    let max_t = shown
        .iter()
        .map(|r| f64::from(r.days) + 1.0 / 12.0)
        .fold(1.0, f64::max);
    let max_y = shown
        .iter()
        .map(|r| r.timeline.len())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Alert timeline: phones at risk level 4 (cumulative)",
            ("sans-serif", 24),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_t, 0f64..max_y * 1.1)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("simulated time (days since the start, UTC)")
        .y_desc("phones alerted")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
    ];
    for (r, colour) in shown.iter().zip(palette) {
        for truth in [true, false] {
            let mut pts = vec![(0.0, 0.0)];
            let mut n = 0.0;
            for a in r.timeline.iter().filter(|a| a.truth == truth) {
                let x = a.t_s / 86_400.0;
                pts.push((x, n));
                n += 1.0;
                pts.push((x, n));
            }
            pts.push((max_t, n));
            let style = if truth {
                colour.stroke_width(3)
            } else {
                colour.mix(0.5).stroke_width(2)
            };
            let label = format!(
                "{}: {} alerts",
                r.scenario,
                if truth { "true" } else { "false" }
            );
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .draw_series(r.positives.iter().map(|p| {
                let x = p.declared_at_s / 86_400.0;
                PathElement::new(vec![(x, 0.0), (x, max_y * 1.05)], colour.mix(0.35))
            }))
            .map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// Writes the three plots (PNG and SVG each) into `dir`.
pub(crate) fn write_plots(dir: &Path, results: &[SimResult]) -> Result<Vec<PathBuf>, SimError> {
    let p0 = results.first().map_or(-66.0, |r| r.knobs.scoring_p0);
    let mut files = Vec::new();
    files.extend(both(
        dir,
        "rssi_vs_distance",
        &|a| rssi_chart(a, results, p0),
        &|a| rssi_chart(a, results, p0),
    )?);
    files.extend(both(
        dir,
        "recall_precision",
        &|a| rates_chart(a, results),
        &|a| rates_chart(a, results),
    )?);
    files.extend(both(
        dir,
        "alert_timeline",
        &|a| timeline_chart(a, results),
        &|a| timeline_chart(a, results),
    )?);
    Ok(files)
}
