//! Mean cross-entropy of a batch's logits against its labels, with its gradient, on plain
//! slices: what burn's `CrossEntropyLoss` computes in about ten tensor operations forward and
//! as many backward.

/// The loss, and its gradient with respect to the logits.
pub struct CrossEntropy {
    pub loss: f32,
    /// `(softmax(logits) - one_hot(labels)) / rows`, `[rows, classes]`.
    pub grad: Vec<f32>,
}

/// `mean_r (logsumexp(logits_r) - logits_r[labels_r])` for `logits [rows, classes]`, in `f64`
/// inside; `None` when a label is not a class or the sizes disagree.
pub fn cross_entropy(logits: &[f32], labels: &[usize], classes: usize) -> Option<CrossEntropy> {
    let rows = labels.len();
    if classes == 0 || rows == 0 || logits.len() != rows * classes || labels.iter().any(|&l| l >= classes) {
        return None;
    }
    let mut grad = Vec::with_capacity(logits.len());
    let mut loss = 0.0f64;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let exps: Vec<f64> = row.iter().map(|&v| f64::from(v - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        loss += sum.ln() - f64::from(row[label] - max);
        grad.extend(exps.iter().enumerate().map(|(c, e)| {
            let target = if c == label { 1.0 } else { 0.0 };
            ((e / sum - target) / rows as f64) as f32
        }));
    }
    Some(CrossEntropy { loss: (loss / rows as f64) as f32, grad })
}
