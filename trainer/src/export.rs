//! Export of a trained hybrid into `models/`:
//! - `hybrid.onnx`: the encoder, image `[N, 1, 64, 64]` f32 (pixels / 255) -> angles `[N, 4]`;
//! - `quantum-head.json`: circuit weights and the 4 -> classes head, f32;
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

use crate::data::{hex, IMAGE_SIDE};
use crate::metrics::RunMetrics;
use crate::model::{Model, ModelConfig};
use crate::training::{read_json, write_atomically, write_json, TrainingError};

pub const ONNX_FILE: &str = "hybrid.onnx";
pub const QUANTUM_HEAD_FILE: &str = "quantum-head.json";
pub const MODEL_CARD_FILE: &str = "model-card.json";
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
    #[error("the model has no quantum circuit (a --model cnn run): only the hybrid exports")]
    NotHybrid,
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

/// Circuit weights and classification head, as `quantum-head.json` stores them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QuantumHead {
    /// Format name and version of this file.
    pub format: String,
    /// Embedding rotation (PennyLane `AngleEmbedding`).
    pub embedding: String,
    /// CNOT range of each `StronglyEntanglingLayers` layer.
    pub ranges: Vec<usize>,
    /// `[layer][wire][phi, theta, omega]`, radians.
    pub circuit_weights: Vec<[[f32; 3]; 4]>,
    /// `[class][wire]`: logits = head_weight . <Z> + head_bias.
    pub head_weight: Vec<[f32; 4]>,
    pub head_bias: Vec<f32>,
    pub classes: Vec<String>,
}

pub const QUANTUM_HEAD_FORMAT: &str = "qmedscan-quantum-head-json/1";

impl QuantumHead {
    /// Reads the circuit and head parameters out of a hybrid model.
    ///
    /// # Errors
    /// [`ExportFailure::NotHybrid`] for the CNN baseline.
    pub fn from_model(model: &Model, classes: &[String]) -> Result<Self, ExportFailure> {
        let circuit = model.circuit.as_ref().ok_or(ExportFailure::NotHybrid)?;
        let values = |t: Tensor<2>| t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let weights = circuit.weights.val().flatten::<2>(0, 1);
        let circuit_weights = values(weights)
            .chunks_exact(12)
            .map(|layer| std::array::from_fn(|w| std::array::from_fn(|k| layer[w * 3 + k])))
            .collect();
        // burn's Linear stores [inputs, outputs] (y = x W + b); transpose to one row per class.
        let w = values(model.head.weight.val().transpose());
        let head_weight = w.chunks_exact(4).map(|row| std::array::from_fn(|i| row[i])).collect();
        let head_bias = model
            .head
            .bias
            .as_ref()
            .map(|b| values(b.val().unsqueeze()))
            .unwrap_or_else(|| vec![0.0; classes.len()]);
        Ok(Self {
            format: QUANTUM_HEAD_FORMAT.into(),
            embedding: "X".into(),
            ranges: (0..circuit.layers()).map(|l| l % 3 + 1).collect(),
            circuit_weights,
            head_weight,
            head_bias,
            classes: classes.to_vec(),
        })
    }
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
    pub artifacts: Vec<Artifact>,
}

/// Provenance the caller supplies (the library does not run git).
pub struct Provenance {
    pub git_commit: String,
    pub command: String,
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
) -> Result<ModelCard, ExportFailure> {
    let (model, description) = load_model(run_dir, device)?;
    let metrics: RunMetrics = read_json(&run_dir.join("metrics.json"))?;
    let head = QuantumHead::from_model(&model, &description.classes)?;
    fs::create_dir_all(out_dir)
        .map_err(|source| TrainingError::Io { path: out_dir.to_path_buf(), source })?;

    let onnx = encoder_onnx(&model, device)?;
    write_atomically(&out_dir.join(ONNX_FILE), &onnx)?;
    write_json(&out_dir.join(QUANTUM_HEAD_FILE), &head)?;
    save_model(out_dir, &model, &description)?;

    let files = [
        (ONNX_FILE, "encoder: image [N,1,64,64] f32 = gray u8 / 255 -> angles [N,4] (opset 18)"),
        (
            QUANTUM_HEAD_FILE,
            "4-qubit circuit weights (4 StronglyEntanglingLayers, X embedding) and the 4 -> 6 head, f32",
        ),
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
        artifacts,
    };
    write_json(&out_dir.join(MODEL_CARD_FILE), &card)?;
    Ok(card)
}
