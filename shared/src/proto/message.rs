//! The messages, in both directions, and the bounds on their encoded size.
//!
//! postcard encodes every integer wider than a byte as a varint (signed ones zigzag first),
//! an enum as its variant index (one byte here), a `&[u8]` as a varint length and the bytes,
//! an `Option` as one byte (0 = `None`) and the value. The `MAX_*` bounds below follow from
//! that and are checked by tests against the worst case of every variant.

use super::Error;
use crate::model::{FixedPrediction, CLASSES, CLASS_NAMES, IMAGE_LEN};
use core::fmt;
use serde::{Deserialize, Serialize};

/// Image bytes per [`HostToDevice::ImageChunk`]: a 64x64 image travels in 8 chunks, and the
/// device holds at most one chunk's frame in RAM.
pub const CHUNK_LEN: usize = 512;

// Offsets into the image travel as u16.
const _: () = assert!(IMAGE_LEN <= u16::MAX as usize && CHUNK_LEN <= IMAGE_LEN);

const U16_VARINT_MAX: usize = 3;
const U32_VARINT_MAX: usize = 5;
const I32_VARINT_MAX: usize = 5;
const VARIANT_TAG: usize = 1;

const fn varint_len(mut value: usize) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Largest encoded [`HostToDevice`]: an image chunk of [`CHUNK_LEN`] bytes
/// (tag, `image_id`, `offset`, length prefix, bytes).
pub const MAX_HOST_MESSAGE_LEN: usize =
    VARIANT_TAG + U32_VARINT_MAX + U16_VARINT_MAX + varint_len(CHUNK_LEN) + CHUNK_LEN;

/// Largest encoded [`DeviceToHost`]: a classification (tag, `image_id`, class, logits,
/// elapsed time).
pub const MAX_DEVICE_MESSAGE_LEN: usize =
    VARIANT_TAG + U32_VARINT_MAX + 1 + CLASSES * I32_VARINT_MAX + U32_VARINT_MAX;

/// The version of this wire format; the handshake refuses any other.
pub const PROTOCOL_VERSION: u16 = 1;

/// Identifies the model a device runs: SHA-256 of the integer CNN artifact's bytes
/// (`models/cnn-int8.qmed`) followed by the quantum head artifact's bytes
/// (`models/quantum-head.qmed`), exactly as embedded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ModelHash(pub [u8; 32]);

impl ModelHash {
    /// The hash of a model made of these two artifacts.
    #[cfg(feature = "std")]
    pub fn of_artifacts(int_cnn: &[u8], quantum_head: &[u8]) -> Self {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(int_cnn);
        hasher.update(quantum_head);
        Self(hasher.finalize().into())
    }
}

impl fmt::Display for ModelHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ModelHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelHash({self})")
    }
}

/// What the host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HostToDevice<'a> {
    /// Opens (or reopens) a session; the device answers [`DeviceToHost::Hello`] or a
    /// [`Error::VersionMismatch`] error. Frozen across versions: variant 0, one field.
    Hello {
        /// The host's [`PROTOCOL_VERSION`].
        protocol_version: u16,
    },
    /// Part of a 64x64 gray image (row-major `u8`); chunks of one image arrive in order
    /// from offset 0, and the device answers once the last byte has arrived.
    ImageChunk {
        /// Chosen by the host; echoed in the answer.
        image_id: u32,
        /// Index of the chunk's first byte in the image.
        offset: u16,
        /// 1 to [`CHUNK_LEN`] bytes, borrowed from the frame buffer when decoded.
        #[serde(borrow)]
        data: &'a [u8],
    },
}

/// The device's answer to [`HostToDevice::Hello`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceHello {
    /// The device's [`PROTOCOL_VERSION`]. Frozen across versions: the first field.
    pub protocol_version: u16,
    /// The model the device embeds.
    pub model_hash: ModelHash,
    /// `false` when the embedded model failed to load: every image will be answered with
    /// [`Error::ModelUnavailable`].
    pub model_available: bool,
}

/// What the device's integer model says about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Classification {
    /// Index of the largest logit (the first on ties) into [`CLASS_NAMES`].
    pub class: u8,
    /// Logits in fixed point with [`crate::model::HEAD_FRAC_BITS`] fractional bits, bit for
    /// bit those of [`crate::model::FixedClassifier`].
    pub logits: [i32; CLASSES],
    /// Microseconds the device spent classifying, by its own clock.
    pub elapsed_us: u32,
}

impl Classification {
    /// The wire form of a prediction that took `elapsed_us` microseconds.
    pub fn from_prediction(prediction: &FixedPrediction, elapsed_us: u32) -> Self {
        Self { class: prediction.class, logits: prediction.logits, elapsed_us }
    }

    /// Name of the predicted class; `None` for an index no class has.
    pub fn class_name(&self) -> Option<&'static str> {
        CLASS_NAMES.get(usize::from(self.class)).copied()
    }
}

/// What the device sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DeviceToHost {
    /// Handshake accepted. Frozen across versions: variant 0.
    Hello(DeviceHello),
    /// The answer for a complete image.
    Classified {
        /// The image's id, as the host sent it.
        image_id: u32,
        /// The model's answer.
        classification: Classification,
    },
    /// A frame, message or chunk was refused. Frozen across versions: variant 2, and
    /// [`Error::VersionMismatch`] keeps its index and fields.
    Error {
        /// The image the error concerns; `None` for frames that could not be read and for
        /// handshake errors.
        image_id: Option<u32>,
        /// Why.
        error: Error,
    },
}
