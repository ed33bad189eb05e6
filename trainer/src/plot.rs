//! PNG pictures of a run: learning curves (the paper's Fig. 2), the confusion matrix (Fig. 3),
//! and the accuracy of the circuit under shot and gate noise.
//!
//! Drawn with plotters' bitmap backend and encoded with `image`, so no system library is
//! needed. Text uses a TrueType font found at run time (`TRAINER_FONT`, else common system
//! paths); without one the pictures are drawn without text and a warning says so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::hardware::NoiseReport;
use crate::metrics::Evaluation;
use crate::training::EpochRecord;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {path}: {reason}")]
    Draw { path: PathBuf, reason: String },
    #[error("writing {path}: {source}")]
    Encode { path: PathBuf, source: image::ImageError },
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a system font for plotters once; false when none was found.
fn font_available() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let candidates =
            std::env::var("TRAINER_FONT").into_iter().chain(FONT_PATHS.iter().map(|p| p.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the whole process, so the bytes must live as long.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!("warning: no TrueType font found (set TRAINER_FONT=path.ttf); plots have no text");
        false
    })
}

/// One line of a chart: legend label, points, colour.
type Line<'a> = (&'a str, &'a Vec<(f64, f64)>, RGBColor);
/// One chart: title, y-axis description, y range, lines.
type Panel<'a> = (&'a str, &'a str, std::ops::Range<f64>, Vec<Line<'a>>);

fn draw_err(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |reason| PlotError::Draw { path: path.to_path_buf(), reason }
}

/// Renders `draw` into a `width` x `height` RGB buffer and saves it as PNG.
fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), PlotError> {
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(path)(e.to_string()))?;
        draw(root.clone()).map_err(draw_err(path))?;
        root.present().map_err(|e| draw_err(path)(e.to_string()))?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| draw_err(path)("buffer size mismatch".into()))?;
    image.save(path).map_err(|source| PlotError::Encode { path: path.to_path_buf(), source })
}

/// A chart of `f64` points on linear or logarithmic axes.
type Chart<'a, 'b, X, Y> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>;

/// One line with a dot at each point, in the legend as `label` when there is text.
fn draw_line<X, Y>(
    chart: &mut Chart<'_, '_, X, Y>,
    label: &str,
    points: &[(f64, f64)],
    colour: RGBColor,
    text: bool,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let drawn = chart
        .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    if text {
        drawn
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The legend of every labelled series, boxed, at `position`.
fn draw_legend<'a, 'b: 'a, X, Y>(
    chart: &mut Chart<'a, 'b, X, Y>,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(|e| e.to_string())
}

/// Validation accuracy and training loss per epoch, side by side.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn learning_curves(path: &Path, epochs: &[EpochRecord]) -> Result<(), PlotError> {
    let text = font_available();
    render(path, (1000, 420), |root| {
        let panels = root.split_evenly((1, 2));
        let last = epochs.len().max(1) as f64;
        let x_range = 0.5..last + 0.5;
        let accuracy: Vec<(f64, f64)> =
            epochs.iter().map(|e| (e.epoch as f64, 100.0 * e.validation_accuracy)).collect();
        let train_accuracy: Vec<(f64, f64)> =
            epochs.iter().map(|e| (e.epoch as f64, 100.0 * e.train_accuracy)).collect();
        let low = accuracy.iter().chain(&train_accuracy).map(|p| p.1).fold(100.0, f64::min);
        let acc_low = (low - 0.5).clamp(0.0, 99.0);
        let loss: Vec<(f64, f64)> = epochs.iter().map(|e| (e.epoch as f64, e.train_loss)).collect();
        let loss_high = loss.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1 + 1e-6;

        let series: [Panel; 2] = [
            (
                "Validation accuracy",
                "accuracy (%)",
                acc_low..100.0,
                vec![("validation", &accuracy, BLUE), ("training", &train_accuracy, RGBColor(150, 150, 150))],
            ),
            ("Training loss", "cross-entropy", 0.0..loss_high, vec![("training", &loss, RED)]),
        ];
        for (panel, (title, y_desc, y_range, lines)) in panels.iter().zip(series) {
            let mut builder = ChartBuilder::on(panel);
            builder.margin(15).x_label_area_size(if text { 40 } else { 5 }).y_label_area_size(if text {
                60
            } else {
                5
            });
            if text {
                builder.caption(title, ("sans-serif", 22));
            }
            let mut chart =
                builder.build_cartesian_2d(x_range.clone(), y_range).map_err(|e| e.to_string())?;
            let mut mesh = chart.configure_mesh();
            mesh.x_desc("epoch")
                .y_desc(y_desc)
                .x_labels(epochs.len().clamp(2, 12))
                .x_label_formatter(&|x| format!("{x:.0}"));
            if !text {
                mesh.disable_x_mesh().x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(|e| e.to_string())?;
            for (label, points, color) in lines {
                draw_line(&mut chart, label, points, color, text)?;
            }
            if text {
                draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
            }
        }
        Ok(())
    })
}

/// The test-set confusion matrix, counts in the cells, shaded by row fraction.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn confusion_matrix(path: &Path, classes: &[String], evaluation: &Evaluation) -> Result<(), PlotError> {
    let text = font_available();
    let n = classes.len();
    render(path, (760, 700), |root| {
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20).x_label_area_size(if text { 70 } else { 5 }).y_label_area_size(if text {
            100
        } else {
            5
        });
        if text {
            builder.caption(
                format!("Confusion matrix (test, accuracy {:.2} %)", 100.0 * evaluation.accuracy),
                ("sans-serif", 22),
            );
        }
        let mut chart = builder.build_cartesian_2d(0..n, 0..n).map_err(|e| e.to_string())?;
        let (width, height) = chart.plotting_area().dim_in_pixel();
        let half_cell = (width as i32 / (2 * n.max(1) as i32), height as i32 / (2 * n.max(1) as i32));
        let name = |i: &usize| classes.get(*i).cloned().unwrap_or_default();
        // Row 0 (first class) at the top, as confusion matrices are usually read.
        let row_name = |i: &usize| n.checked_sub(i + 1).map(|r| name(&r)).unwrap_or_default();
        let mut mesh = chart.configure_mesh();
        mesh.disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&name)
            .y_label_formatter(&row_name);
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        // Labels sit at the left/bottom edge of each cell; centre them with an offset.
        mesh.x_label_offset(half_cell.0).y_label_offset(-half_cell.1);
        mesh.draw().map_err(|e| e.to_string())?;
        for (t, row) in evaluation.confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let y = n - 1 - t;
                let shade = (255.0 * (1.0 - count as f64 / total)) as u8;
                let fill = if t == p {
                    RGBColor(shade, shade, 255)
                } else if count > 0 {
                    RGBColor(255, shade.min(200), shade.min(200))
                } else {
                    WHITE
                };
                chart
                    .draw_series([Rectangle::new([(p, y), (p + 1, y + 1)], fill.filled())])
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series([Rectangle::new([(p, y), (p + 1, y + 1)], BLACK.mix(0.3))])
                    .map_err(|e| e.to_string())?;
                if text {
                    let colour = if t == p && count as f64 / total > 0.5 { WHITE } else { BLACK };
                    let style = ("sans-serif", 20).into_font().color(&colour).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    );
                    let cell = chart.backend_coord(&(p, y + 1));
                    let next = chart.backend_coord(&(p + 1, y));
                    let centre = ((cell.0 + next.0) / 2, (cell.1 + next.1) / 2);
                    root.draw_text(&count.to_string(), &style, centre).map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}

/// Colours of successive lines in one chart.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(127, 127, 127),
];

/// The noise study in two panels, both on log x axes: test accuracy against shots (no gate
/// noise, one line per readout flip probability) and against the depolarizing probability
/// (no readout error, one line for exact expectations and one per shot count).
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn noise_curves(path: &Path, report: &NoiseReport) -> Result<(), PlotError> {
    let text = font_available();
    let grid = &report.grid;
    let percent = |a: Option<f64>| a.map(|a| 100.0 * a);
    let noiseless = grid.depolarizing.iter().copied().find(|&p| p == 0.0);
    let shots_lines: Vec<(String, Vec<(f64, f64)>)> = match noiseless {
        Some(p) => grid
            .readout_flip
            .iter()
            .map(|&q| {
                let points = grid
                    .shots
                    .iter()
                    .filter_map(|&s| percent(report.accuracy(p, q, Some(s))).map(|a| (f64::from(s), a)))
                    .collect();
                (format!("readout flip q = {q}"), points)
            })
            .collect(),
        None => Vec::new(),
    };
    let readout_free = grid.readout_flip.iter().copied().find(|&q| q == 0.0);
    let noise_lines: Vec<(String, Vec<(f64, f64)>)> = match readout_free {
        Some(q) => std::iter::once(None)
            .chain(grid.shots.iter().map(|&s| Some(s)))
            .map(|shots| {
                let points = grid
                    .depolarizing
                    .iter()
                    .filter(|&&p| p > 0.0)
                    .filter_map(|&p| percent(report.accuracy(p, q, shots)).map(|a| (p, a)))
                    .collect();
                let label = shots.map_or_else(|| "exact <Z>".to_string(), |s| format!("{s} shots"));
                (label, points)
            })
            .collect(),
        None => Vec::new(),
    };
    let exact = percent(noiseless.and_then(|p| report.accuracy(p, 0.0, None)));
    let panels = [
        ("Accuracy against shots (no gate noise)", "shots per image", shots_lines),
        ("Accuracy against gate noise (no readout error)", "depolarizing probability per gate", noise_lines),
    ];
    render(path, (1200, 480), |root| {
        for (area, (title, x_desc, lines)) in root.split_evenly((1, 2)).iter().zip(panels) {
            let xs = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.0));
            let (x_low, x_high) = xs.fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(x), h.max(x)));
            if x_low > x_high {
                continue; // nothing evaluated for this panel
            }
            let low = lines.iter().flat_map(|(_, p)| p.iter().map(|p| p.1)).fold(100.0, f64::min);
            let y_range = (low - 2.0).clamp(0.0, 98.0)..100.5;
            let mut builder = ChartBuilder::on(area);
            builder.margin(15).x_label_area_size(if text { 40 } else { 5 }).y_label_area_size(if text {
                60
            } else {
                5
            });
            if text {
                builder.caption(title, ("sans-serif", 20));
            }
            let x_range = (x_low / 1.5..x_high * 1.5).log_scale();
            let mut chart = builder.build_cartesian_2d(x_range, y_range).map_err(|e| e.to_string())?;
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(x_desc).y_desc("test accuracy (%)").x_label_formatter(&|x| format!("{x:e}"));
            if !text {
                mesh.disable_x_mesh().x_labels(0).y_labels(0);
            }
            mesh.draw().map_err(|e| e.to_string())?;
            if let Some(exact) = exact {
                let dashed = DashedLineSeries::new(
                    [(x_low / 1.5, exact), (x_high * 1.5, exact)],
                    6,
                    4,
                    BLACK.mix(0.6).stroke_width(1),
                );
                let drawn = chart.draw_series(dashed).map_err(|e| e.to_string())?;
                if text {
                    drawn.label(format!("exact, noiseless ({exact:.3} %)")).legend(|(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.6).stroke_width(1))
                    });
                }
            }
            for ((label, points), &colour) in lines.iter().zip(PALETTE.iter().cycle()) {
                draw_line(&mut chart, label, points, colour, text)?;
            }
            if text {
                draw_legend(&mut chart, SeriesLabelPosition::LowerLeft)?;
            }
        }
        Ok(())
    })
}
