//! Test-set figures: accuracy, macro precision / recall / F1, per-class figures, confusion
//! matrix; written as `metrics.json` with the run's curves.

use serde::{Deserialize, Serialize};

use crate::training::EpochRecord;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Test images of this class.
    pub support: usize,
}

/// Classification figures on one labelled set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub images: usize,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Figures from `(true, predicted)` label pairs over `classes`.
    pub fn new(classes: &[String], truth: &[usize], predicted: &[usize]) -> Self {
        let n = classes.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < n && p < n {
                confusion[t][p] += 1;
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = classes
            .iter()
            .enumerate()
            .map(|(c, class)| {
                let hits = confusion[c][c];
                let predicted_c: usize = confusion.iter().map(|row| row[c]).sum();
                let support: usize = confusion[c].iter().sum();
                let (precision, recall) = (ratio(hits, predicted_c), ratio(hits, support));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics { class: class.clone(), precision, recall, f1, support }
            })
            .collect();
        let mean = |f: fn(&ClassMetrics) -> f64| per_class.iter().map(f).sum::<f64>() / n.max(1) as f64;
        let correct = (0..n).map(|c| confusion[c][c]).sum();
        Self {
            images: truth.len(),
            accuracy: ratio(correct, truth.len()),
            macro_precision: mean(|m| m.precision),
            macro_recall: mean(|m| m.recall),
            macro_f1: mean(|m| m.f1),
            per_class,
            confusion,
        }
    }
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMetrics {
    pub model: String,
    pub parameters: usize,
    pub classes: Vec<String>,
    pub split: String,
    pub seed: u64,
    pub train_images: usize,
    pub dataset_sha256: String,
    pub threads: usize,
    /// Where it trained: the CPU's name and thread count, or the GPU (empty in older runs).
    #[serde(default)]
    pub hardware: String,
    /// Seconds in training steps over all epochs (validation excluded).
    pub training_seconds: f64,
    /// Seconds including the per-epoch validation passes.
    pub wall_seconds: f64,
    pub test: Evaluation,
    pub epochs: Vec<EpochRecord>,
}

impl RunMetrics {
    /// [`Self::hardware`], or the thread count where an older run did not record it.
    pub fn hardware_or_threads(&self) -> String {
        if self.hardware.is_empty() {
            format!("CPU, {} threads", self.threads)
        } else {
            self.hardware.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_from_a_small_confusion() {
        let classes = vec!["a".to_string(), "b".to_string()];
        // truth a a a b, predicted a a b b: a precision 1, recall 2/3; b precision 1/2, recall 1.
        let e = Evaluation::new(&classes, &[0, 0, 0, 1], &[0, 0, 1, 1]);
        assert_eq!(e.confusion, vec![vec![2, 1], vec![0, 1]]);
        assert!((e.accuracy - 0.75).abs() < 1e-12);
        assert!((e.per_class[0].recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.per_class[1].precision - 0.5).abs() < 1e-12);
        assert!((e.macro_precision - 0.75).abs() < 1e-12);
        assert!((e.macro_f1 - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
