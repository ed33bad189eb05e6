//! The noise model against PennyLane's `default.mixed` (`tests/data/noise-golden.json`, made by
//! `tests/data/gen_noise_golden.py`): every case's outcome distribution and `<Z_i>`.

use serde::Deserialize;
use shared::quantum::noise::NoiseModel;
use shared::quantum::{Ansatz, LayerWeights, DIM, WIRES};

#[derive(Deserialize)]
struct GoldenFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    ranges: Vec<u32>,
    features: [f64; WIRES],
    weights: Vec<LayerWeights<f64>>,
    depolarizing: f64,
    readout_flip: f64,
    probs: [f64; DIM],
    expvals: [f64; WIRES],
}

#[test]
fn noise_model_matches_pennylane_default_mixed() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/noise-golden.json");
    let golden: GoldenFile =
        serde_json::from_str(&std::fs::read_to_string(path).expect(path)).expect("golden JSON");
    assert!(golden.cases.len() >= 30, "{} cases", golden.cases.len());
    let mut worst = 0.0f64;
    for case in &golden.cases {
        let ansatz = Ansatz::with_ranges(&case.ranges).expect("valid ranges");
        let noise = NoiseModel::new(case.depolarizing, case.readout_flip).expect("probabilities in [0, 1]");
        let probs = noise.outcome_probabilities(&ansatz, &case.features, &case.weights).unwrap();
        let expvals = noise.expvals(&ansatz, &case.features, &case.weights).unwrap();
        let errors = probs
            .iter()
            .zip(&case.probs)
            .chain(expvals.iter().zip(&case.expvals))
            .map(|(a, b)| (a - b).abs());
        let error = errors.fold(0.0, f64::max);
        assert!(error < 1e-12, "{}: differs from PennyLane by {error:e}", case.id);
        worst = worst.max(error);
    }
    eprintln!("{} noisy cases, largest difference from PennyLane {worst:.1e}", golden.cases.len());
}
