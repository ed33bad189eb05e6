//! Every case of every PennyLane golden file, through every simulator path.
//!
//! The directory comes from `QSIM_GOLDEN_DIR` (relative paths are taken from the workspace
//! root), by default `../shared/golden` beside the project. A missing directory or one
//! without cases fails the test: no silent pass.

use serde::Deserialize;
use shared::quantum::fixed::{self, Angle, FixedUnitary};
use shared::quantum::{self, Ansatz, LayerWeights, Rotation, Unitary};
use std::path::PathBuf;

#[derive(Deserialize)]
struct GoldenFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    rotation: String,
    ranges_resolved: Vec<u32>,
    features: [f64; 4],
    weights: Vec<LayerWeights<f64>>,
    expvals: [f64; 4],
    state_re: [f64; 16],
    state_im: [f64; 16],
    grad_coeffs: [f64; 4],
    grad_weights: Vec<LayerWeights<f64>>,
    grad_features: [f64; 4],
}

impl Case {
    fn ansatz(&self) -> Ansatz {
        let rotation = match self.rotation.as_str() {
            "X" => Rotation::X,
            "Y" => Rotation::Y,
            "Z" => Rotation::Z,
            other => panic!("{}: unknown rotation {other}", self.id),
        };
        Ansatz::with_ranges(&self.ranges_resolved).expect("valid ranges").with_rotation(rotation)
    }
}

fn golden_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("QSIM_GOLDEN_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("../shared/golden"),
    }
}

fn load_cases() -> Vec<Case> {
    let dir = golden_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("golden directory {} unreadable: {e}", dir.display()));
    let mut cases = Vec::new();
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable golden file");
            let file: GoldenFile =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            cases.extend(file.cases);
        }
    }
    assert!(!cases.is_empty(), "no golden case in {}", dir.display());
    cases
}

fn max_diff(a: impl IntoIterator<Item = f64>, b: impl IntoIterator<Item = f64>) -> f64 {
    a.into_iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn flat(w: &[LayerWeights<f64>]) -> Vec<f64> {
    w.iter().flatten().flatten().copied().collect()
}

#[test]
fn f64_matches_pennylane_to_1e_12() {
    for case in load_cases() {
        let ansatz = case.ansatz();
        let state = quantum::simulate(&ansatz, &case.features, &case.weights).unwrap();
        let re = state.amplitudes.map(|a| a.re);
        let im = state.amplitudes.map(|a| a.im);
        assert!(max_diff(re, case.state_re) < 1e-12, "{} state re", case.id);
        assert!(max_diff(im, case.state_im) < 1e-12, "{} state im", case.id);
        assert!(max_diff(state.expvals(), case.expvals) < 1e-12, "{} expvals", case.id);

        let compiled = Unitary::compile(&ansatz, &case.weights).unwrap();
        let state = compiled.state(&case.features);
        assert!(max_diff(state.amplitudes.map(|a| a.re), case.state_re) < 1e-12, "{} compiled re", case.id);
        assert!(max_diff(state.amplitudes.map(|a| a.im), case.state_im) < 1e-12, "{} compiled im", case.id);
        assert!(max_diff(compiled.expvals(&case.features), case.expvals) < 1e-12, "{} compiled", case.id);

        let mut gw = vec![[[0.0; 3]; 4]; ansatz.layers()];
        let gf =
            quantum::gradient(&ansatz, &case.features, &case.weights, &case.grad_coeffs, &mut gw).unwrap();
        assert!(max_diff(gf, case.grad_features) < 1e-12, "{} grad features", case.id);
        assert!(max_diff(flat(&gw), flat(&case.grad_weights)) < 1e-12, "{} grad weights", case.id);

        let mut gf = [[0.0; 4]];
        quantum::gradient_batch(
            &ansatz,
            &[case.features],
            &case.weights,
            &[case.grad_coeffs],
            &mut gf,
            &mut gw,
        )
        .unwrap();
        assert!(max_diff(gf[0], case.grad_features) < 1e-12, "{} batch grad features", case.id);
        assert!(max_diff(flat(&gw), flat(&case.grad_weights)) < 1e-12, "{} batch grad weights", case.id);
    }
}

#[test]
fn f32_matches_pennylane_to_1e_5() {
    let to32 = |w: &[LayerWeights<f64>]| -> Vec<LayerWeights<f32>> {
        w.iter().map(|l| l.map(|r| r.map(|x| x as f32))).collect()
    };
    for case in load_cases() {
        let ansatz = case.ansatz();
        let x = case.features.map(|v| v as f32);
        let w = to32(&case.weights);
        let c = case.grad_coeffs.map(|v| v as f32);
        let widen = |a: [f32; 4]| a.map(f64::from);

        let e = quantum::expvals(&ansatz, &x, &w).unwrap();
        assert!(max_diff(widen(e), case.expvals) < 1e-5, "{} expvals", case.id);
        let compiled = Unitary::compile(&ansatz, &w).unwrap();
        assert!(max_diff(widen(compiled.expvals(&x)), case.expvals) < 1e-5, "{} compiled", case.id);
        let state = compiled.state(&x);
        assert!(max_diff(state.amplitudes.map(|a| a.re as f64), case.state_re) < 1e-5, "{} state", case.id);

        let mut gw = vec![[[0.0f32; 3]; 4]; ansatz.layers()];
        let gf = quantum::gradient(&ansatz, &x, &w, &c, &mut gw).unwrap();
        assert!(max_diff(widen(gf), case.grad_features) < 1e-5, "{} grad features", case.id);
        let gw: Vec<LayerWeights<f64>> = gw.iter().map(|l| l.map(|r| r.map(f64::from))).collect();
        assert!(max_diff(flat(&gw), flat(&case.grad_weights)) < 1e-5, "{} grad weights", case.id);
    }
}

#[test]
fn fixed_point_within_its_documented_bound() {
    let mut worst = 0.0f64;
    for case in load_cases() {
        let ansatz = case.ansatz();
        let x = case.features.map(Angle::from_radians);
        let w: Vec<fixed::FixedLayerWeights> =
            case.weights.iter().map(|l| l.map(|r| r.map(Angle::from_radians))).collect();

        let gate_by_gate = fixed::simulate(&ansatz, &x, &w).unwrap().expvals().map(fixed::to_f64);
        let compiled = FixedUnitary::compile(&ansatz, &w).unwrap().expvals(&x).map(fixed::to_f64);
        let quantized = FixedUnitary::quantize(&Unitary::compile(&ansatz, &case.weights).unwrap())
            .expvals(&x)
            .map(fixed::to_f64);
        for (path, e) in [("gate by gate", gate_by_gate), ("compiled", compiled), ("quantized", quantized)] {
            let d = max_diff(e, case.expvals);
            assert!(d <= fixed::expval_error_bound(ansatz.layers()), "{} {path}: {d:e}", case.id);
            worst = worst.max(d);
        }
    }
    println!("fixed point: largest |d<Z>| over all golden cases = {worst:e}");
}
