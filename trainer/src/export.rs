//! Export of a trained hybrid into `models/`:
//! - `hybrid.onnx`: the encoder, image `[N, 1, 64, 64]` f32 (pixels / 255) -> angles `[N, 4]`;
//! - `hybrid-full.onnx`: the whole model in one graph, image -> logits, probabilities `[N, 6]`;
//! - `quantum-head.qmed`: circuit weights and the 4 -> classes head, f32 and fixed point
//!   (`shared::model::QuantumHead`);
//! - `cnn-int8.qmed`: the encoder quantised to int8 for microcontrollers (`shared::model::IntCnn`),
//!   calibrated on training images;
//! - `circuit.qasm`: the circuit as OpenQASM 3 for other toolchains and quantum devices;
//! - `model.json` + `model.bpk`: the burn model itself, for `trainer predict` and re-export;
//! - `model-card.json`: metrics, split, seed, data set hash, git commit, SHA-256 of each file.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::RecordError;
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, ExportError, InputSpec, OnnxExporter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{hex, Images, IMAGE_SIDE};
use crate::integer::{self, FixedReport, IntegerError};
use crate::metrics::RunMetrics;
use crate::model::{Model, ModelConfig};
use crate::training::{read_json, write_atomically, write_json, TrainingError};

pub use shared::model::{
    CIRCUIT_QASM_FILE, FULL_ONNX_FILE, INT_CNN_FILE, MODEL_CARD_FILE, ONNX_FILE, QUANTUM_HEAD_FILE,
};
/// The burn weights of a trained model (burnpack), beside [`MODEL_DESCRIPTION_FILE`].
pub const MODEL_WEIGHTS_FILE: &str = "model.bpk";
/// What a [`MODEL_WEIGHTS_FILE`] holds: the model configuration and the class names.
pub const MODEL_DESCRIPTION_FILE: &str = "model.json";

#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    #[error(transparent)]
    Files(#[from] TrainingError),
    #[error("ONNX export: {0}")]
    Onnx(#[from] ExportError),
    #[error("model weights {path}: {source}")]
    Weights { path: PathBuf, source: RecordError },
    #[error(transparent)]
    Integer(#[from] IntegerError),
    #[error(transparent)]
    FullOnnx(#[from] crate::full_onnx::FullOnnxError),
    #[error(transparent)]
    Qasm(#[from] crate::hardware::HardwareError),
}

/// The configuration and class names that go with saved weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelDescription {
    pub model: ModelConfig,
    pub classes: Vec<String>,
}

/// Saves `model` as `dir/model.bpk` + `dir/model.json` (each written then renamed).
///
/// # Errors
/// [`ExportFailure`] when a file cannot be written.
pub fn save_model(dir: &Path, model: &Model, description: &ModelDescription) -> Result<(), ExportFailure> {
    let path = dir.join(MODEL_WEIGHTS_FILE);
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|source| ExportFailure::Weights { path: path.clone(), source })?;
    write_atomically(&path, &bytes)?;
    write_json(&dir.join(MODEL_DESCRIPTION_FILE), description)?;
    Ok(())
}

/// Loads what [`save_model`] wrote.
///
/// # Errors
/// [`ExportFailure`] when a file is missing, malformed or does not match its description.
pub fn load_model(dir: &Path, device: &Device) -> Result<(Model, ModelDescription), ExportFailure> {
    let description: ModelDescription = read_json(&dir.join(MODEL_DESCRIPTION_FILE))?;
    let path = dir.join(MODEL_WEIGHTS_FILE);
    let model = description
        .model
        .init(device)
        .try_load_file(&path)
        .map_err(|source| ExportFailure::Weights { path, source })?;
    Ok((model, description))
}

/// The encoder as ONNX bytes, with a dynamic batch axis.
///
/// # Errors
/// [`ExportFailure::Onnx`] when burn-onnx cannot lower an operation.
pub fn encoder_onnx(model: &Model, device: &Device) -> Result<Vec<u8>, ExportFailure> {
    let encoder = model.encoder.valid();
    let sample = |n| Tensor::<4>::zeros([n, 1, IMAGE_SIDE, IMAGE_SIDE], device);
    let specs =
        [InputSpec::new([AxisSpec::dynamic("batch"), AxisSpec::Static, AxisSpec::Static, AxisSpec::Static])];
    let onnx =
        OnnxExporter::new().export_dynamic(&encoder, sample(1), sample(2), &specs, |e, x| e.forward(x))?;
    Ok(onnx.into_bytes())
}

/// One exported file and its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    pub file: String,
    pub sha256: String,
    pub bytes: usize,
    pub description: String,
}

/// `model-card.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub description: String,
    pub input: String,
    pub classes: Vec<String>,
    pub parameters: usize,
    pub git_commit: String,
    pub command: String,
    pub seed: u64,
    pub split: String,
    pub dataset_sha256: String,
    pub metrics: RunMetrics,
    /// The integer model (firmware, `edge-runtime --engine fixed`) on the same test images.
    pub fixed_point: FixedReport,
    pub artifacts: Vec<Artifact>,
}

/// Provenance the caller supplies (the library does not run git).
pub struct Provenance {
    pub git_commit: String,
    pub command: String,
}

/// The images export needs: training images to calibrate the int8 encoder on, and the test
/// images the integer model is measured on (indices into `images`).
pub struct ExportData<'a> {
    pub images: &'a Images,
    pub calibration: &'a [usize],
    pub test: &'a [usize],
}

/// Writes every export artifact of the run in `run_dir` into `out_dir`.
///
/// # Errors
/// [`ExportFailure`] when the run is incomplete, not a hybrid, or a file cannot be written.
pub fn export_run(
    run_dir: &Path,
    out_dir: &Path,
    device: &Device,
    provenance: &Provenance,
    data: &ExportData<'_>,
) -> Result<ModelCard, ExportFailure> {
    let (model, description) = load_model(run_dir, device)?;
    let metrics: RunMetrics = read_json(&run_dir.join("metrics.json"))?;
    let head = integer::quantum_head(&model)?;
    let encoder = integer::float_encoder(&model, &description.model)?;
    let int_cnn = integer::quantize_encoder(&encoder, data.images, data.calibration)?;
    let int_cnn_bytes = int_cnn.as_int_cnn().map_err(IntegerError::from)?.encode_to_vec();
    let fixed_point = {
        let cnn = shared::model::IntCnn::decode_from_bytes(&int_cnn_bytes).map_err(IntegerError::from)?;
        let classifier = shared::model::FixedClassifier::new(cnn, head.clone());
        let f32_predictions = crate::training::predict_classes(&model, data.images, data.test, device);
        integer::evaluate_fixed(&classifier, data.images, data.test, &f32_predictions)?
    };
    fs::create_dir_all(out_dir)
        .map_err(|source| TrainingError::Io { path: out_dir.to_path_buf(), source })?;

    let onnx = encoder_onnx(&model, device)?;
    write_atomically(&out_dir.join(ONNX_FILE), &onnx)?;
    write_atomically(&out_dir.join(FULL_ONNX_FILE), &crate::full_onnx::hybrid_onnx(&onnx, &head)?)?;
    write_atomically(&out_dir.join(QUANTUM_HEAD_FILE), &head.encode_to_vec())?;
    write_atomically(&out_dir.join(INT_CNN_FILE), &int_cnn_bytes)?;
    write_atomically(&out_dir.join(CIRCUIT_QASM_FILE), crate::hardware::circuit_qasm3(&head)?.as_bytes())?;
    save_model(out_dir, &model, &description)?;

    let files = [
        (ONNX_FILE, "encoder: image [N,1,64,64] f32 = gray u8 / 255 -> angles [N,4] (opset 18)"),
        (
            FULL_ONNX_FILE,
            "the whole hybrid: image [N,1,64,64] f32 = gray u8 / 255 -> logits, probabilities [N,6] (opset 18)",
        ),
        (
            QUANTUM_HEAD_FILE,
            "4-qubit circuit (4 StronglyEntanglingLayers, X embedding) and the 4 -> 6 head, f32 + fixed point (shared::model::QuantumHead)",
        ),
        (INT_CNN_FILE, "the encoder quantised to int8, calibrated on training images (shared::model::IntCnn)"),
        (CIRCUIT_QASM_FILE, "the circuit as OpenQASM 3, the 4 embedding angles as inputs (for other toolchains)"),
        (MODEL_WEIGHTS_FILE, "the whole model as burn 0.22 burnpack (for `trainer predict` / re-export)"),
        (MODEL_DESCRIPTION_FILE, "model configuration and class names for model.bpk"),
    ];
    let mut artifacts = Vec::new();
    for (file, what) in files {
        let path = out_dir.join(file);
        let bytes = fs::read(&path).map_err(|source| TrainingError::Io { path: path.clone(), source })?;
        artifacts.push(Artifact {
            file: file.into(),
            sha256: hex(&Sha256::digest(&bytes)),
            bytes: bytes.len(),
            description: what.into(),
        });
    }
    let card = ModelCard {
        name: "qmedscan hybrid".into(),
        description:
            "CNN encoder -> 4 angles -> 4-qubit VQC (<Z> x4) -> linear 4 -> 6, trained on Medical MNIST"
                .into(),
        input: "64x64 gray u8, scaled to [0,1] by /255; no other normalization".into(),
        classes: description.classes.clone(),
        parameters: model.num_params(),
        git_commit: provenance.git_commit.clone(),
        command: provenance.command.clone(),
        seed: metrics.seed,
        split: metrics.split.clone(),
        dataset_sha256: metrics.dataset_sha256.clone(),
        metrics,
        fixed_point,
        artifacts,
    };
    write_json(&out_dir.join(MODEL_CARD_FILE), &card)?;
    Ok(card)
}
