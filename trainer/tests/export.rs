//! The ONNX encoder and the parameter files: tract reproduces burn's angles, and the committed
//! artifacts in models/ match their model card.

use std::fs;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Distribution};
use sha2::{Digest, Sha256};
use shared::model::{IntCnn, QuantumHead};
use tract_onnx::prelude::*;
use trainer::data::hex;
use trainer::export::{self, ModelCard};
use trainer::integer;
use trainer::model::{Model, ModelConfig};

const TOLERANCE: f32 = 1e-4;

/// Runs `onnx` in tract on `images` `[n, 1, 64, 64]` and returns the `[n, 4]` angles, flat.
fn tract_angles(onnx: &[u8], images: &[f32], n: usize) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract parses the ONNX")
        .with_input_fact(0, f32::fact([n, 1, 64, 64]).into())
        .expect("input fact")
        .into_optimized()
        .expect("tract optimizes the graph")
        .into_runnable()
        .expect("runnable");
    let input = Tensor::from_shape(&[n, 1, 64, 64], images).expect("input tensor");
    let outputs = model.run(tvec!(input.into_tvalue())).expect("tract runs");
    let view = outputs[0].to_plain_array_view::<f32>().expect("f32 output");
    assert_eq!(view.shape(), [n, 4]);
    view.iter().copied().collect()
}

fn burn_angles(model: &Model, images: &[f32], n: usize, device: &Device) -> Vec<f32> {
    let input = burn::tensor::Tensor::<4>::from_data(
        burn::tensor::TensorData::new(images.to_vec(), [n, 1, 64, 64]),
        device,
    );
    model.encoder.forward(input).into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 angles")
}

fn random_images(n: usize, device: &Device) -> Vec<f32> {
    let t = burn::tensor::Tensor::<4>::random([n, 1, 64, 64], Distribution::Uniform(0.0, 1.0), device);
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 images")
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst < TOLERANCE, "tract differs from burn by {worst}");
}

#[test]
fn tract_reproduces_the_encoder_of_a_fresh_model() {
    let device = Device::flex();
    device.seed(3);
    let model = ModelConfig::hybrid(6).init(&device);
    let onnx = export::encoder_onnx(&model, &device).expect("export");
    let images = random_images(5, &device);
    assert_close(&tract_angles(&onnx, &images, 5), &burn_angles(&model, &images, 5, &device));
}

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

#[test]
fn committed_model_matches_its_onnx_card_and_parameter_file() {
    let dir = models_dir();
    let device = Device::flex();
    let (model, description) =
        export::load_model(&dir, &device).expect("models/ holds model.bpk + model.json");

    let onnx = fs::read(dir.join(export::ONNX_FILE)).expect("models/hybrid.onnx");
    let images = random_images(3, &device);
    assert_close(&tract_angles(&onnx, &images, 3), &burn_angles(&model, &images, 3, &device));

    let head_bytes = fs::read(dir.join(export::QUANTUM_HEAD_FILE)).expect("models/quantum-head.qmed");
    let head = QuantumHead::decode_from_bytes(&head_bytes).expect("quantum-head.qmed parses");
    assert_eq!(
        head,
        integer::quantum_head(&model).expect("hybrid"),
        "parameters round-trip through the file"
    );
    let cnn_bytes = fs::read(dir.join(export::INT_CNN_FILE)).expect("models/cnn-int8.qmed");
    let cnn = IntCnn::decode_from_bytes(&cnn_bytes).expect("cnn-int8.qmed parses");
    let encoder = integer::float_encoder(&model, &description.model).expect("encoder");
    assert_eq!(cnn.layers.len(), encoder.layers.len(), "one integer layer per float layer");

    let card: ModelCard =
        serde_json::from_slice(&fs::read(dir.join(export::MODEL_CARD_FILE)).expect("model card"))
            .expect("card parses");
    assert!(card.metrics.test.accuracy >= 0.999, "committed model accuracy {}", card.metrics.test.accuracy);
    assert!(card.fixed_point.accuracy >= 0.9985, "integer model accuracy {}", card.fixed_point.accuracy);
    assert!(
        card.fixed_point.agreement_with_f32 >= 0.999,
        "integer vs f32 {}",
        card.fixed_point.agreement_with_f32
    );
    for artifact in &card.artifacts {
        let bytes = fs::read(dir.join(&artifact.file)).expect("artifact listed in the card exists");
        assert_eq!(hex(&Sha256::digest(&bytes)), artifact.sha256, "{} changed since export", artifact.file);
    }
}

#[test]
fn a_corrupted_parameter_file_is_refused_with_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("trainer-corrupt-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(export::MODEL_DESCRIPTION_FILE), b"{\"model\": 1").unwrap();
    let error =
        export::load_model(&dir, &Device::flex()).expect_err("truncated JSON must be refused").to_string();
    assert!(error.contains("model.json"), "error names the file: {error}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_damaged_artifact_is_refused_with_a_clear_error() {
    let bytes = fs::read(models_dir().join(export::QUANTUM_HEAD_FILE)).expect("models/quantum-head.qmed");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    let error =
        QuantumHead::decode_from_bytes(&flipped).expect_err("a flipped byte must be refused").to_string();
    assert!(error.contains("checksum"), "names the cause: {error}");
    let error = QuantumHead::decode_from_bytes(&bytes[..bytes.len() / 2]).expect_err("truncated").to_string();
    assert!(error.contains("truncated"), "names the cause: {error}");
    let cnn = fs::read(models_dir().join(export::INT_CNN_FILE)).expect("models/cnn-int8.qmed");
    assert!(IntCnn::decode_from_bytes(&cnn[..cnn.len() - 3]).is_err());
    assert!(QuantumHead::decode_from_bytes(&cnn).is_err(), "one kind of artifact is not taken for another");
}
