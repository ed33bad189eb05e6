//! The model set in a directory and its card: every artifact the engine loads must be listed
//! in `model-card.json` with its SHA-256 and size, or the set is refused.
//!
//! The `.qmed` containers carry a CRC that catches accidental corruption; the card's hashes
//! also catch deliberate edits and a mix of files from different training runs.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub use shared::model::{FULL_ONNX_FILE, INT_CNN_FILE, MODEL_CARD_FILE, ONNX_FILE, QUANTUM_HEAD_FILE};

/// Why a model directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// `model-card.json` is not the card this runtime understands.
    #[error("{path} is not a valid model card: {source}")]
    Card {
        /// The card.
        path: PathBuf,
        /// The parser's reason.
        source: serde_json::Error,
    },
    /// The card was written for another set of classes.
    #[error("the model card lists classes {found:?}; this runtime knows {expected:?}")]
    Classes {
        /// The card's classes.
        found: Vec<String>,
        /// `shared::model::CLASS_NAMES`.
        expected: Vec<String>,
    },
    /// An artifact the engine needs is not in the card, so its integrity cannot be checked.
    #[error("{file} is not listed in {card}; refusing an unverified artifact")]
    NotListed {
        /// The artifact's file name.
        file: String,
        /// The card.
        card: PathBuf,
    },
    /// An artifact's bytes differ from what the card recorded.
    #[error(
        "{path}: {what} is {actual}, the model card says {expected} (damaged, truncated or tampered file)"
    )]
    Mismatch {
        /// The artifact.
        path: PathBuf,
        /// `"size"` or `"sha256"`.
        what: &'static str,
        /// The card's value.
        expected: String,
        /// The file's value.
        actual: String,
    },
    /// A `.qmed` artifact passed its checksum but does not parse as a valid model.
    #[error("{path}: {source}")]
    Artifact {
        /// The artifact.
        path: PathBuf,
        /// `shared`'s reason.
        source: shared::model::Error,
    },
    /// tract could not load or optimise the ONNX graph.
    #[error("{path}: ONNX graph refused by tract: {reason}")]
    Onnx {
        /// The graph.
        path: PathBuf,
        /// tract's error chain.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
struct Card {
    classes: Vec<String>,
    artifacts: Vec<Listed>,
}

#[derive(Debug, Deserialize)]
struct Listed {
    file: String,
    sha256: String,
    bytes: u64,
}

/// A model directory whose card has been read; hands out artifacts only after checking them.
#[derive(Debug)]
pub struct ModelDir {
    dir: PathBuf,
    card_path: PathBuf,
    card: Card,
}

impl ModelDir {
    /// Reads and checks `dir/model-card.json`.
    ///
    /// # Errors
    /// [`LoadError::Io`], [`LoadError::Card`] or [`LoadError::Classes`].
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        let card_path = dir.join(MODEL_CARD_FILE);
        let text =
            std::fs::read(&card_path).map_err(|source| LoadError::Io { path: card_path.clone(), source })?;
        let card: Card = serde_json::from_slice(&text)
            .map_err(|source| LoadError::Card { path: card_path.clone(), source })?;
        if card.classes.iter().map(String::as_str).ne(shared::model::CLASS_NAMES) {
            return Err(LoadError::Classes {
                found: card.classes,
                expected: shared::model::CLASS_NAMES.iter().map(|c| c.to_string()).collect(),
            });
        }
        Ok(Self { dir: dir.to_path_buf(), card_path, card })
    }

    /// The path of `file` in this directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Reads `file` and returns its bytes once its size and SHA-256 match the card.
    ///
    /// # Errors
    /// [`LoadError::NotListed`], [`LoadError::Io`] or [`LoadError::Mismatch`].
    pub fn read_verified(&self, file: &str) -> Result<Vec<u8>, LoadError> {
        let listed =
            self.card.artifacts.iter().find(|a| a.file == file).ok_or_else(|| LoadError::NotListed {
                file: file.to_string(),
                card: self.card_path.clone(),
            })?;
        let path = self.path(file);
        let bytes = std::fs::read(&path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
        // The size check first gives a truncated file a clearer message than a hash mismatch.
        if bytes.len() as u64 != listed.bytes {
            return Err(LoadError::Mismatch {
                path,
                what: "size",
                expected: listed.bytes.to_string(),
                actual: bytes.len().to_string(),
            });
        }
        let actual = hex(&Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&listed.sha256) {
            return Err(LoadError::Mismatch {
                path,
                what: "sha256",
                expected: listed.sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
