//! The paper's comparison from finished run folders: Table I as Markdown, CSV and JSON.
//! (`trainer report` draws Figs. 1-4 beside it with [`crate::plot`].)
//!
//! Runs may differ in epochs and training images (a big baseline trained on part of the data
//! on a small machine), so the table says what each row ran, and the time comparison is per
//! image and epoch: seconds per training image per epoch, as a ratio to the hybrid's, and
//! extrapolated to 10 epochs on the full training set.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::RunMetrics;
use crate::training::{read_json, TrainingError};

/// The run folder file this module reads.
pub const METRICS_FILE: &str = "metrics.json";

/// One finished run: its folder and its `metrics.json`.
pub struct Run {
    pub dir: PathBuf,
    pub metrics: RunMetrics,
}

impl Run {
    /// Reads `dir/metrics.json`.
    ///
    /// # Errors
    /// [`TrainingError`] when the file is missing (the run has not finished) or malformed.
    pub fn load(dir: &Path) -> Result<Self, TrainingError> {
        Ok(Self { dir: dir.to_path_buf(), metrics: read_json(&dir.join(METRICS_FILE))? })
    }
}

/// One row of Table I.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableRow {
    pub model: String,
    pub parameters: usize,
    /// Test-set accuracy and macro precision, recall, F1, in %.
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub test_images: usize,
    pub epochs: usize,
    pub train_images: usize,
    /// Seconds in training steps, all epochs.
    pub training_seconds: f64,
    /// `training_seconds` per epoch per training image, divided by the hybrid's (1 for it;
    /// absent without a hybrid row).
    pub time_vs_hybrid: Option<f64>,
    /// `training_seconds` scaled to 10 epochs over the largest training set of the table.
    pub ten_epoch_seconds: f64,
    pub hardware: String,
}

/// The model every time is compared with.
pub const REFERENCE_MODEL: &str = "hybrid";

/// Table I from `runs`, in their order.
pub fn table(runs: &[Run]) -> Vec<TableRow> {
    let per_image_epoch =
        |m: &RunMetrics| m.training_seconds / (m.epochs.len().max(1) * m.train_images.max(1)) as f64;
    let full_train = runs.iter().map(|r| r.metrics.train_images).max().unwrap_or(0);
    let reference =
        runs.iter().find(|r| r.metrics.model == REFERENCE_MODEL).map(|r| per_image_epoch(&r.metrics));
    runs.iter()
        .map(|run| {
            let m = &run.metrics;
            TableRow {
                model: m.model.clone(),
                parameters: m.parameters,
                accuracy: 100.0 * m.test.accuracy,
                precision: 100.0 * m.test.macro_precision,
                recall: 100.0 * m.test.macro_recall,
                f1: 100.0 * m.test.macro_f1,
                test_images: m.test.images,
                epochs: m.epochs.len(),
                train_images: m.train_images,
                training_seconds: m.training_seconds,
                time_vs_hybrid: reference.filter(|&r| r > 0.0).map(|r| per_image_epoch(m) / r),
                ten_epoch_seconds: per_image_epoch(m) * 10.0 * full_train as f64,
                hardware: m.hardware_or_threads(),
            }
        })
        .collect()
}

const HEADER: [&str; 13] = [
    "model",
    "parameters",
    "accuracy %",
    "precision %",
    "recall %",
    "F1 %",
    "test images",
    "epochs",
    "train images",
    "training s",
    "time vs hybrid",
    "10 epochs, full set, s",
    "hardware",
];

/// `n` with a comma between thousands, as the paper and the README print counts.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A row's fields, counts written by `count` (with separators for people, without for CSV).
fn cells(row: &TableRow, count: fn(usize) -> String) -> [String; 13] {
    [
        row.model.clone(),
        count(row.parameters),
        format!("{:.3}", row.accuracy),
        format!("{:.3}", row.precision),
        format!("{:.3}", row.recall),
        format!("{:.3}", row.f1),
        count(row.test_images),
        row.epochs.to_string(),
        count(row.train_images),
        count(row.training_seconds.round() as usize),
        row.time_vs_hybrid.map_or_else(|| "-".into(), |r| format!("{r:.1}x")),
        count(row.ten_epoch_seconds.round() as usize),
        row.hardware.clone(),
    ]
}

/// Table I as a Markdown table.
pub fn markdown(rows: &[TableRow]) -> String {
    let mut out = format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", cells(row, thousands).join(" | "));
    }
    out
}

/// Table I as CSV (RFC 4180: fields with a comma or quote are quoted).
pub fn csv(rows: &[TableRow]) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let line = |fields: &[String]| fields.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\n";
    let mut out = line(&HEADER.map(String::from));
    for row in rows {
        out += &line(&cells(row, |n| n.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, parameters: usize) -> TableRow {
        TableRow {
            model: model.into(),
            parameters,
            accuracy: 99.5,
            precision: 99.4,
            recall: 99.3,
            f1: 99.35,
            test_images: 11_791,
            epochs: 10,
            train_images: 47_163,
            training_seconds: 1234.4,
            time_vs_hybrid: None,
            ten_epoch_seconds: 1234.4,
            hardware: "CPU, 2 threads".into(),
        }
    }

    #[test]
    fn markdown_and_csv_hold_every_row() {
        let rows = [row("hybrid", 8_234), row("vgg16", 134_283_974)];
        let markdown = markdown(&rows);
        assert!(
            markdown.lines().nth(3).is_some_and(|l| l.starts_with("| vgg16 | 134,283,974 | 99.500 |")),
            "{markdown}"
        );
        let csv = csv(&rows);
        assert_eq!(csv.lines().count(), 3);
        assert!(csv.lines().nth(2).is_some_and(|l| l.starts_with("vgg16,134283974,99.500,")), "{csv}");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_000), "1,000");
    }
}
