//! PNG pictures of a run: learning curves, the confusion matrix, the paper's Figs. 1-4 over
//! several runs (metric bars, curves, confusion matrices, one prediction),
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
    let points = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
    };
    let accuracy = points(|e| 100.0 * e.validation_accuracy);
    let train_accuracy = points(|e| 100.0 * e.train_accuracy);
    let loss = points(|e| e.train_loss);
    let panels = [
        vec![("validation", &accuracy, BLUE), ("training", &train_accuracy, RGBColor(150, 150, 150))],
        vec![("training", &loss, RED)],
    ];
    render(path, (1000, 420), |root| draw_epoch_panels(&root, panels))
}

/// Fig. 2 of the paper: validation accuracy and training loss per epoch of several runs, one
/// line per run in each panel.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn comparison_curves(path: &Path, runs: &[(&str, &[EpochRecord])]) -> Result<(), PlotError> {
    let series = |f: fn(&EpochRecord) -> f64| -> Vec<(&str, Vec<(f64, f64)>)> {
        runs.iter()
            .map(|(name, epochs)| (*name, epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()))
            .collect()
    };
    let accuracy = series(|e| 100.0 * e.validation_accuracy);
    let loss = series(|e| e.train_loss);
    let panels = [coloured(&accuracy), coloured(&loss)];
    render(path, (1200, 480), |root| draw_epoch_panels(&root, panels))
}

/// Named series as lines in [`PALETTE`]'s colours.
fn coloured<'a>(series: &'a [(&'a str, Vec<(f64, f64)>)]) -> Vec<Line<'a>> {
    series
        .iter()
        .zip(PALETTE.iter().cycle())
        .map(|((name, points), &colour)| (*name, points, colour))
        .collect()
}

/// Two charts over epochs: accuracy (%) on the left, training loss on the right.
fn draw_epoch_panels(
    root: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    [accuracy, loss]: [Vec<Line>; 2],
) -> Result<(), String> {
    let text = font_available();
    let last = accuracy.iter().chain(&loss).flat_map(|l| l.1.iter().map(|p| p.0)).fold(1.0, f64::max);
    let x_range = 0.5..last + 0.5;
    let low = accuracy.iter().flat_map(|l| l.1.iter().map(|p| p.1)).fold(100.0, f64::min);
    let acc_low = (low - 0.5).clamp(0.0, 99.0);
    let loss_high = loss.iter().flat_map(|l| l.1.iter().map(|p| p.1)).fold(0.0, f64::max) * 1.1 + 1e-6;
    let panels: [(Panel, SeriesLabelPosition); 2] = [
        (("Validation accuracy", "accuracy (%)", acc_low..100.0, accuracy), SeriesLabelPosition::LowerRight),
        (("Training loss", "cross-entropy", 0.0..loss_high, loss), SeriesLabelPosition::UpperRight),
    ];
    for (panel, ((title, y_desc, y_range, lines), legend)) in root.split_evenly((1, 2)).iter().zip(panels) {
        let mut builder = ChartBuilder::on(panel);
        builder.margin(15).x_label_area_size(if text { 40 } else { 5 }).y_label_area_size(if text {
            60
        } else {
            5
        });
        if text {
            builder.caption(title, ("sans-serif", 22));
        }
        let mut chart = builder.build_cartesian_2d(x_range.clone(), y_range).map_err(|e| e.to_string())?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc("epoch")
            .y_desc(y_desc)
            .x_labels((last as usize).clamp(2, 12))
            .x_label_formatter(&|x| format!("{x:.0}"));
        if !text {
            mesh.disable_x_mesh().x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for (label, points, color) in lines {
            draw_line(&mut chart, label, points, color, text)?;
        }
        if text {
            draw_legend(&mut chart, legend)?;
        }
    }
    Ok(())
}

/// The test-set confusion matrix, counts in the cells, shaded by row fraction.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn confusion_matrix(path: &Path, classes: &[String], evaluation: &Evaluation) -> Result<(), PlotError> {
    let title = format!("Confusion matrix (test, accuracy {:.2} %)", 100.0 * evaluation.accuracy);
    render(path, (760, 700), |root| draw_confusion(&root, &title, classes, evaluation))
}

/// Fig. 3 of the paper: the confusion matrix of each run, in a grid of up to three columns.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn confusion_matrices(
    path: &Path,
    classes: &[String],
    runs: &[(&str, &Evaluation)],
) -> Result<(), PlotError> {
    let columns = runs.len().clamp(1, 3);
    let rows = runs.len().div_ceil(columns).max(1);
    render(path, (620 * columns as u32, 580 * rows as u32), |root| {
        for (area, (name, evaluation)) in root.split_evenly((rows, columns)).iter().zip(runs) {
            let title = format!("{name}: accuracy {:.2} %", 100.0 * evaluation.accuracy);
            draw_confusion(area, &title, classes, evaluation)?;
        }
        Ok(())
    })
}

/// One confusion matrix, counts in the cells, shaded by row fraction, into `root`.
fn draw_confusion(
    root: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    classes: &[String],
    evaluation: &Evaluation,
) -> Result<(), String> {
    let text = font_available();
    let n = classes.len();
    let mut builder = ChartBuilder::on(root);
    builder.margin(20).x_label_area_size(if text { 70 } else { 5 }).y_label_area_size(if text {
        100
    } else {
        5
    });
    if text {
        builder.caption(title, ("sans-serif", 22));
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
                // Backend pixels are absolute; `root` draws relative to its own corner.
                let base = root.get_base_pixel();
                let centre = ((cell.0 + next.0) / 2 - base.0, (cell.1 + next.1) / 2 - base.1);
                root.draw_text(&count.to_string(), &style, centre).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
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

/// The metrics Fig. 1 compares, in its order.
pub const COMPARED_METRICS: [&str; 4] = ["accuracy", "precision", "recall", "F1"];

/// Fig. 1 of the paper: accuracy, macro precision, recall and F1 (%) of each run, grouped by
/// metric, one colour per run, the value above each bar. The y axis starts just below the
/// lowest value so that differences of a tenth of a point show.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn metric_bars(path: &Path, runs: &[(&str, [f64; 4])]) -> Result<(), PlotError> {
    let text = font_available();
    let low = runs.iter().flat_map(|(_, v)| v.iter().copied()).fold(100.0, f64::min);
    let high = runs.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max);
    let y_low = ((low - 0.5).floor()).clamp(0.0, 99.0);
    let y_high = (high + 0.08 * (high - y_low)).clamp(y_low + 0.5, 100.4); // room for the labels
    let group = 0.8 / runs.len().max(1) as f64;
    render(path, (1200, 560), |root| {
        let mut builder = ChartBuilder::on(&root);
        builder.margin(20).x_label_area_size(if text { 40 } else { 5 }).y_label_area_size(if text {
            60
        } else {
            5
        });
        if text {
            builder.caption(
                "Test-set metrics per model (macro averages over the 6 classes)",
                ("sans-serif", 22),
            );
        }
        let mut chart = builder.build_cartesian_2d(0.0..4.0, y_low..y_high).map_err(|e| e.to_string())?;
        let mut mesh = chart.configure_mesh();
        // Nine labels over 0..4 fall every 0.5; the group centres (x.5) carry the names.
        mesh.disable_x_mesh().y_desc("%").x_labels(9).x_label_formatter(&|x: &f64| {
            COMPARED_METRICS
                .get(x.floor() as usize)
                .filter(|_| is_centre(*x))
                .copied()
                .unwrap_or("")
                .to_string()
        });
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for (r, ((name, values), &colour)) in runs.iter().zip(PALETTE.iter().cycle()).enumerate() {
            let left = |m: usize| m as f64 + 0.1 + r as f64 * group;
            let bars = values.iter().enumerate().map(|(m, &v)| {
                Rectangle::new(
                    [(left(m) + 0.005, y_low), (left(m) + group - 0.005, v.max(y_low))],
                    colour.filled(),
                )
            });
            let drawn = chart.draw_series(bars).map_err(|e| e.to_string())?;
            if text {
                drawn
                    .label(*name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
                let style =
                    ("sans-serif", 12).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    ));
                let labels = values
                    .iter()
                    .enumerate()
                    .map(|(m, &v)| Text::new(format!("{v:.2}"), (left(m) + group / 2.0, v), style.clone()));
                chart.draw_series(labels).map_err(|e| e.to_string())?;
            }
        }
        if text {
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    })
}

/// Whether `x` is the centre of a unit cell (a bar or a group of bars).
fn is_centre(x: f64) -> bool {
    (x - x.floor() - 0.5).abs() < 1e-6
}

/// What Fig. 4 shows: one image, its true class, and a model's class probabilities.
pub struct PredictionFigure<'a> {
    /// Row-major gray pixels, `side` x `side`.
    pub pixels: &'a [u8],
    pub side: usize,
    pub file: &'a str,
    pub true_class: &'a str,
    pub model: &'a str,
    pub classes: &'a [String],
    pub probabilities: &'a [f32],
}

/// Fig. 4 of the paper: the image on the left, the model's probability for each class as
/// horizontal bars on the right, the predicted class highlighted.
///
/// # Errors
/// [`PlotError`] when drawing or writing fails.
pub fn prediction(path: &Path, figure: &PredictionFigure) -> Result<(), PlotError> {
    let text = font_available();
    let best =
        figure
            .probabilities
            .iter()
            .enumerate()
            .fold(0, |b, (i, &p)| if p > figure.probabilities[b] { i } else { b });
    let predicted = figure.classes.get(best).map_or("?", String::as_str);
    render(path, (1100, 480), |root| {
        let (left, right) = root.split_horizontally(460);
        let mut builder = ChartBuilder::on(&left);
        builder.margin(20);
        if text {
            builder
                .caption(format!("{} (true class {})", figure.file, figure.true_class), ("sans-serif", 18));
        }
        let side = figure.side;
        let mut image = builder.build_cartesian_2d(0..side, 0..side).map_err(|e| e.to_string())?;
        // Row 0 at the top, as the image is stored.
        let pixels = figure.pixels.chunks(side.max(1)).enumerate().flat_map(|(row, line)| {
            line.iter().enumerate().map(move |(column, &gray)| {
                let y = side - 1 - row;
                Rectangle::new([(column, y), (column + 1, y + 1)], RGBColor(gray, gray, gray).filled())
            })
        });
        image.draw_series(pixels).map_err(|e| e.to_string())?;

        let n = figure.classes.len();
        let mut builder = ChartBuilder::on(&right);
        builder.margin(20).x_label_area_size(if text { 40 } else { 5 }).y_label_area_size(if text {
            100
        } else {
            5
        });
        if text {
            let caption = format!(
                "{}: {} ({:.2} %)",
                figure.model,
                predicted,
                100.0 * figure.probabilities.get(best).copied().unwrap_or(0.0)
            );
            builder.caption(caption, ("sans-serif", 20));
        }
        let mut chart = builder.build_cartesian_2d(0.0..118.0, 0.0..n as f64).map_err(|e| e.to_string())?;
        // Labels every 0.5; the bar centres (y.5) carry the class names, class 0 at the top.
        let class_at = |y: &f64| {
            n.checked_sub(y.floor() as usize + 1)
                .filter(|_| is_centre(*y))
                .and_then(|c| figure.classes.get(c))
                .cloned()
                .unwrap_or_default()
        };
        let mut mesh = chart.configure_mesh();
        mesh.disable_y_mesh()
            .x_desc("probability (%)")
            .y_labels(2 * n + 1)
            .y_label_formatter(&class_at)
            .x_label_formatter(&|x| {
                if *x <= 100.0 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            });
        if !text {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(|e| e.to_string())?;
        for (c, &p) in figure.probabilities.iter().enumerate() {
            let y = (n - 1 - c) as f64;
            let percent = 100.0 * f64::from(p);
            let colour = if c == best { RGBColor(31, 119, 180) } else { RGBColor(160, 160, 160) };
            chart
                .draw_series([Rectangle::new([(0.0, y + 0.2), (percent, y + 0.8)], colour.filled())])
                .map_err(|e| e.to_string())?;
            if text {
                let style =
                    ("sans-serif", 14).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    ));
                let label =
                    if percent >= 0.01 { format!("{percent:.2} %") } else { format!("{percent:.1e} %") };
                chart
                    .draw_series([Text::new(label, (percent + 1.0, y + 0.5), style)])
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    })
}
