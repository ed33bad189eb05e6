//! Classifies medical images (AbdomenCT, BreastMRI, CXR, ChestCT, Hand, HeadCT) on a
//! Raspberry Pi or any host: image file -> 64x64 gray -> CNN (ONNX, tract) -> 4 angles ->
//! 4-qubit circuit (`shared`) -> linear head -> class probabilities.
//!
//! ```no_run
//! use edge_runtime::{Engine, EngineKind, Options};
//! let engine = Engine::load("models", &Options::default())?;
//! let image = edge_runtime::preprocess::load("scan.png".as_ref())?;
//! let predictions = engine.classify(&[image])?;
//! println!("{}", predictions[0].class_name());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Modules: [`artifacts`] checks the model set against its card, [`engine`] runs it (the only
//! module that touches tract), [`preprocess`] turns files into model input, [`watch`] is the
//! drop-folder loop, [`receive`] the DICOM network receiver (Storage SCP), [`stream`] sends
//! images to a device running the firmware, [`record`] is the JSON line written for each
//! classified image.

pub mod artifacts;
pub mod engine;
pub mod preprocess;
pub mod receive;
pub mod record;
pub mod stream;
pub mod watch;

pub use artifacts::LoadError;
pub use engine::{Engine, EngineKind, InferenceError, Options, Prediction};
pub use preprocess::{Image, InputError};
