//! The same images give the same answers everywhere: the trainer's burn model, the `shared`
//! float path, the edge runtime (tract; the encoder + `shared`, the whole model as one ONNX
//! graph, and the integer engine), and the integer path the firmware runs
//! (the firmware itself is compared with it bit for bit under QEMU: `cargo xtask firmware`).
//!
//! Real test-split images from `../shared/data` (beside the workspace) and the committed model
//! in `models/`; a missing data set fails the tests.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use shared::model::{FixedClassifier, IntCnn, QuantumHead, CLASSES};
use trainer::data::{self, Images, Listing, Split};
use trainer::export;
use trainer::model::Model;
use trainer::training;

/// Test images per class: enough to cross every class boundary, quick in CI.
const PER_CLASS: usize = 200;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed model and `PER_CLASS` seeded test images of each class.
fn setup() -> (Model, Images, Vec<usize>) {
    let root = workspace().join("../shared/data/medical-mnist");
    assert!(root.is_dir(), "data set not found at {}", root.display());
    let listing = Listing::scan(&root).expect("data set lists");
    let split =
        Split::from_file(&root.with_file_name("split-seed0.json"), &listing).expect("split-seed0.json");
    // limit_per_class keeps a quarter as many test images as training images.
    let test = split.limit_per_class(&listing, 4 * PER_CLASS, 7).test;
    let (images, report) = data::decode(&listing, &test).expect("decode");
    assert!(report.skipped.is_empty(), "unreadable test images: {:?}", report.skipped);
    let (model, _) =
        export::load_model(&workspace().join("models"), &Device::flex()).expect("committed model");
    let indices = (0..images.len()).collect();
    (model, images, indices)
}

fn read_model_file(name: &str) -> Vec<u8> {
    let path = workspace().join("models").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[test]
fn shared_float_path_reproduces_the_trained_model() {
    let (model, images, indices) = setup();
    let device = Device::flex();
    let head =
        QuantumHead::decode_from_bytes(&read_model_file(export::QUANTUM_HEAD_FILE)).expect("quantum head");
    let unitary = head.unitary();
    let want = training::predict_probabilities(&model, &images, &indices, &device);
    let angles = model
        .encoder
        .forward(data::images_tensor(indices.iter().map(|&i| images.image(i)), &device))
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 angles");
    let mut worst = 0.0f32;
    for (x, want) in angles.chunks_exact(4).zip(want.chunks_exact(CLASSES)) {
        let expvals = unitary.expvals(&[x[0], x[1], x[2], x[3]]);
        let got = softmax(&head.logits(&expvals));
        worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    assert!(worst < 1e-4, "shared's circuit and head differ from burn's by {worst}");
}

#[test]
fn integer_path_agrees_with_the_trained_model() {
    let (model, images, indices) = setup();
    let cnn_bytes = read_model_file(export::INT_CNN_FILE);
    let head =
        QuantumHead::decode_from_bytes(&read_model_file(export::QUANTUM_HEAD_FILE)).expect("quantum head");
    let classifier = FixedClassifier::new(IntCnn::decode_from_bytes(&cnn_bytes).expect("int8 CNN"), head);
    let mut scratch = vec![0u8; classifier.scratch_len()];
    let f32_classes = training::predict_classes(&model, &images, &indices, &Device::flex());
    let mut same = 0;
    for (&i, &f32_class) in indices.iter().zip(&f32_classes) {
        let fixed = classifier.classify(images.image(i), &mut scratch).expect("64x64 image");
        same += usize::from(usize::from(fixed.class) == f32_class);
    }
    let agreement = same as f64 / indices.len() as f64;
    assert!(
        agreement >= 0.995,
        "integer model agrees with f32 on {:.2} % of {} images",
        100.0 * agreement,
        indices.len()
    );
}

#[test]
fn edge_runtime_reproduces_the_trainer_and_the_integer_model() {
    use edge_runtime::{Engine, EngineKind, Image, Options};
    let (model, images, indices) = setup();
    let inputs: Vec<Image> =
        indices.iter().map(|&i| Image::from_pixels(images.image(i).to_vec()).expect("64x64")).collect();
    let models = workspace().join("models");

    let float = Engine::load(&models, &Options::default()).expect("float engine");
    let want = training::predict_probabilities(&model, &images, &indices, &Device::flex());
    let got = float.classify(&inputs).expect("float inference");
    let worst = got
        .iter()
        .zip(want.chunks_exact(CLASSES))
        .flat_map(|(p, w)| p.probabilities.iter().zip(w).map(|(a, b)| (a - b).abs()))
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "edge runtime probabilities differ from the trainer's by {worst}");

    let fixed = Engine::load(&models, &Options { kind: EngineKind::Fixed, ..Options::default() })
        .expect("fixed engine");
    let head =
        QuantumHead::decode_from_bytes(&read_model_file(export::QUANTUM_HEAD_FILE)).expect("quantum head");
    let cnn_bytes = read_model_file(export::INT_CNN_FILE);
    let classifier = FixedClassifier::new(IntCnn::decode_from_bytes(&cnn_bytes).expect("int8 CNN"), head);
    let mut scratch = vec![0u8; classifier.scratch_len()];
    for (prediction, input) in fixed.classify(&inputs).expect("fixed inference").iter().zip(&inputs) {
        let direct = classifier.classify(input.pixels(), &mut scratch).expect("64x64");
        assert_eq!(prediction.class, usize::from(direct.class), "--engine fixed is the firmware's code");
    }
}

#[test]
fn whole_model_onnx_equals_encoder_then_shared_on_the_test_split() {
    use edge_runtime::{Engine, EngineKind, Image, Options};
    let root = workspace().join("../shared/data/medical-mnist");
    let listing = Listing::scan(&root).expect("data set lists");
    let split =
        Split::from_file(&root.with_file_name("split-seed0.json"), &listing).expect("split-seed0.json");
    let (images, report) = data::decode(&listing, &split.test).expect("decode");
    assert!(report.skipped.is_empty(), "unreadable test images: {:?}", report.skipped);
    assert_eq!(images.len(), 11_791);
    let inputs: Vec<Image> =
        (0..images.len()).map(|i| Image::from_pixels(images.image(i).to_vec()).expect("64x64")).collect();
    let models = workspace().join("models");
    let options = Options { batch: 64, ..Options::default() };
    let split_engines = Engine::load(&models, &options).expect("encoder + shared");
    let whole =
        Engine::load(&models, &Options { kind: EngineKind::Onnx, ..options }).expect("hybrid-full.onnx");
    let (want, got) =
        (split_engines.classify(&inputs).expect("float"), whole.classify(&inputs).expect("onnx"));
    let mut worst = 0.0f32;
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.class, g.class, "one graph and two stages disagree on a class");
        worst =
            w.probabilities.iter().zip(&g.probabilities).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
    }
    assert!(worst < 1e-5, "hybrid-full.onnx differs from the encoder + shared by {worst}");
    eprintln!("hybrid-full.onnx on {} test images: largest probability difference {worst:.1e}", got.len());
}
