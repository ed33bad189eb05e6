//! One JSON object per classified image, the same wherever it is written: `classify --json`,
//! `stream --json`, `watch --json` and the `receive` journal.

use crate::engine::Prediction;
use shared::model::CLASS_NAMES;
use shared::proto::Classification;

/// `{"file", "class", "probabilities": {class name: p}, "ms"}`, and `"device": {"logits",
/// "ms"}` when a device classified too.
pub fn json(
    file: &str,
    prediction: &Prediction,
    ms: f64,
    device: Option<&Classification>,
) -> serde_json::Value {
    let probabilities: serde_json::Map<String, serde_json::Value> = CLASS_NAMES
        .iter()
        .zip(prediction.probabilities)
        .map(|(n, p)| (n.to_string(), f64::from(p).into()))
        .collect();
    let mut record = serde_json::json!({
        "file": file,
        "class": prediction.class_name(),
        "probabilities": probabilities,
        "ms": ms,
    });
    if let Some(d) = device {
        record["device"] = serde_json::json!({ "logits": d.logits, "ms": f64::from(d.elapsed_us) / 1e3 });
    }
    record
}
