//! The committed model as a quantum device would run it: exact expectations give the burn
//! model's classes, enough shots converge on them, full depolarization and readout noise
//! leave only the head's bias; and `models/circuit.qasm` is the committed circuit.
//!
//! Needs the data set (`common::data_dir`).

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use shared::model::{QuantumHead, CIRCUIT_QASM_FILE, QUANTUM_HEAD_FILE};
use trainer::data;
use trainer::export;
use trainer::hardware::{self, Grid};
use trainer::integer;

mod common;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

#[test]
fn committed_model_under_shots_and_noise() {
    let (listing, split) = common::split(80);
    let data::SplitImages { images, test, .. } =
        data::decode_split(&listing, &[], &split.test).expect("decode");
    assert_eq!(test.len(), 120);

    let device = Device::flex();
    let (model, _) = export::load_model(&models_dir(), &device).expect("models/ holds the burn model");
    let head = integer::quantum_head(&model).expect("hybrid");
    let angles = hardware::angles(&model, test.iter().map(|&i| images.image(i)), &device);
    let labels: Vec<usize> = test.iter().map(|&i| usize::from(images.labels[i])).collect();
    let burn_classes = trainer::training::predict_classes(&model, &images, &test, &device);
    let burn_accuracy = burn_classes.iter().zip(&labels).filter(|(a, b)| a == b).count() as f64 / 120.0;

    let grid =
        Grid { shots: vec![20_000], depolarizing: vec![0.0, 0.75], readout_flip: vec![0.0, 0.5], seed: 1 };
    let report = hardware::evaluate(&head, &angles, &labels, &grid).expect("evaluation");
    assert_eq!(report.len(), 2 * 2 * 2);
    let at = |p: f64, q: f64, shots| {
        report
            .iter()
            .find(|r| r.depolarizing == p && r.readout_flip == q && r.shots == shots)
            .unwrap()
            .accuracy
    };
    assert_eq!(at(0.0, 0.0, None), burn_accuracy, "the f64 simulator classifies as burn's f32 circuit");
    assert!((at(0.0, 0.0, Some(20_000)) - burn_accuracy).abs() <= 2.0 / 120.0, "20,000 shots are near exact");
    // <Z> = 0 everywhere: every image gets the class of the largest head bias.
    let (_, bias) = head.head();
    let bias_class = (0..bias.len()).fold(0, |b, c| if bias[c] > bias[b] { c } else { b });
    let share = labels.iter().filter(|&&l| l == bias_class).count() as f64 / 120.0;
    for (p, q) in [(0.75, 0.0), (0.0, 0.5), (0.75, 0.5)] {
        assert_eq!(at(p, q, None), share, "p = {p}, q = {q} leave only the bias");
    }

    let refused = Grid { readout_flip: vec![1.5], ..grid };
    assert!(hardware::evaluate(&head, &angles, &labels, &refused).is_err(), "q outside [0, 1] is refused");
}

#[test]
fn committed_qasm_is_the_committed_circuit() {
    let dir = models_dir();
    let head =
        QuantumHead::decode_from_bytes(&std::fs::read(dir.join(QUANTUM_HEAD_FILE)).expect("head file"))
            .expect("quantum-head.qmed parses");
    let committed = std::fs::read_to_string(dir.join(CIRCUIT_QASM_FILE)).expect("models/circuit.qasm");
    assert_eq!(
        committed,
        hardware::circuit_qasm3(&head).expect("OpenQASM 3"),
        "models/circuit.qasm is stale: rerun `cargo run -p trainer --release -- qasm`"
    );
}
