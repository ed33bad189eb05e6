//! The model-artifact format: what `trainer` writes into `models/` and what the edge runtime
//! and the firmware load.
//!
//! Every artifact is one container (see [`open`]): a 16-byte header (magic, format version,
//! kind, payload length, CRC-32 of the payload) followed by a postcard payload. Parsing checks
//! all of it and never panics on bad bytes; decoding borrows nothing it does not need.
//!
//! | kind | payload | used by |
//! |---|---|---|
//! | [`Kind::QuantumHead`] | [`QuantumHead`]: circuit, its weights (f32 and compiled Q30), the linear head (f32 and fixed point) | edge runtime, firmware |
//! | [`Kind::IntCnn`] | [`IntCnn`]: the int8 CNN, image to the circuit's angles | edge runtime (`--engine fixed`), firmware |

mod container;
mod error;
mod fixed_classifier;
mod int_cnn;
#[cfg(any(test, feature = "alloc"))]
mod quantize;
mod quantum_head;

#[cfg(any(test, feature = "alloc"))]
pub use container::seal_to_vec;
pub use container::{open, seal_into, Header, Kind, FORMAT_VERSION, HEADER_LEN, MAGIC};
pub use error::{Error, Result};
pub use fixed_classifier::{FixedClassifier, FixedPrediction};
pub use int_cnn::{IntCnn, Layer, Quantized, IMAGE_LEN, IMAGE_SIDE, MAX_CHANNELS, MAX_CNN_LAYERS};
#[cfg(any(test, feature = "alloc"))]
pub use quantize::{FloatCnn, FloatLayer, QuantizedCnn};
pub use quantum_head::{QuantumHead, HEAD_FRAC_BITS};

/// Number of classes the model tells apart.
pub const CLASSES: usize = 6;

/// Class names in label order (the sorted folder names of Medical MNIST).
pub const CLASS_NAMES: [&str; CLASSES] = ["AbdomenCT", "BreastMRI", "CXR", "ChestCT", "Hand", "HeadCT"];

// The files of a model directory (`models/`): the trainer writes them, the runtimes read them.
/// The CNN part as ONNX: image `[N, 1, 64, 64]` f32 (gray / 255) -> angles `[N, 4]`.
pub const ONNX_FILE: &str = "hybrid.onnx";
/// The whole hybrid as one ONNX graph: image `[N, 1, 64, 64]` f32 -> `logits` and
/// `probabilities` `[N, 6]` (the circuit and head folded into real operators).
pub const FULL_ONNX_FILE: &str = "hybrid-full.onnx";
/// The circuit weights and the head ([`QuantumHead`]).
pub const QUANTUM_HEAD_FILE: &str = "quantum-head.qmed";
/// The integer CNN the firmware runs ([`IntCnn`]).
pub const INT_CNN_FILE: &str = "cnn-int8.qmed";
/// The circuit as an OpenQASM 3 program, parametric in the embedding angles
/// ([`crate::quantum::qasm`]); for other toolchains and devices, not read by the runtimes.
pub const CIRCUIT_QASM_FILE: &str = "circuit.qasm";
/// The model card (JSON): metrics, provenance, and the size and SHA-256 of every file above.
pub const MODEL_CARD_FILE: &str = "model-card.json";
