//! Files -> model input, the trainer's way (`trainer/src/data.rs::decode_gray64`): decode,
//! convert to 8-bit luma with `image`'s `to_luma8` (Rec. 709 weights for colour; 16-bit
//! samples scaled by 255/65535), resize to 64x64 with the triangle (bilinear) filter when the
//! size differs, and feed `pixel / 255` to the model. Calling the same `image` functions
//! keeps the conversion identical to the one the model was trained and tested with.
//!
//! DICOM (detected by its `DICM` preamble marker; see `preprocess/dicom.rs`): the first frame,
//! decompressed, then for grayscale the modality LUT (rescale slope and intercept) and the
//! file's first window or VOI LUT, or without one its whole stored range (`BitsStored`) mapped
//! linearly, MONOCHROME1 inverted so that bright is dense as in every other format, rounded
//! to 8 bits (`preprocess/grayscale.rs`); then the same luma and resize steps.

use image::{DynamicImage, ImageReader};
use std::io::Cursor;
use std::path::{Path, PathBuf};

pub(crate) mod dicom;
mod grayscale;

/// Side of the model's square input.
pub const SIDE: usize = 64;
/// Pixels of the model's input.
pub const PIXELS: usize = SIDE * SIDE;

/// A 64x64 gray image, row-major, as the model takes it (before the `/ 255`).
#[derive(Clone, PartialEq, Eq)]
pub struct Image(Box<[u8; PIXELS]>);

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image(64x64 gray)")
    }
}

impl Image {
    /// Wraps 64x64 gray pixels.
    ///
    /// # Errors
    /// Hands the pixels back when there are not exactly [`PIXELS`] of them.
    pub fn from_pixels(pixels: Vec<u8>) -> Result<Self, Vec<u8>> {
        pixels.into_boxed_slice().try_into().map(Self).map_err(|p: Box<[u8]>| p.into_vec())
    }

    /// The pixels, row-major.
    pub fn pixels(&self) -> &[u8; PIXELS] {
        &self.0
    }
}

/// Why one input file could not be turned into an image.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file has no bytes.
    #[error("{path}: empty file")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The bytes are not a supported image (unknown format, corrupt or truncated).
    #[error("{path}: not a readable image: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        source: image::ImageError,
    },
    /// The image decodes to zero pixels.
    #[error("{path}: the image has no pixels")]
    NoPixels {
        /// The file.
        path: PathBuf,
    },
    /// A DICOM file that cannot be read or holds no displayable image.
    #[error("{path}: unreadable DICOM: {reason}")]
    Dicom {
        /// The file.
        path: PathBuf,
        /// dicom-rs's reason.
        reason: String,
    },
    /// A decoder panicked on the file (a decoder bug, caught so the rest still runs).
    #[error("{path}: the decoder failed on this file: {reason}")]
    DecoderPanic {
        /// The file.
        path: PathBuf,
        /// The panic's message.
        reason: String,
    },
}

impl InputError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Empty { path }
            | Self::NoPixels { path }
            | Self::Decode { path, .. }
            | Self::Dicom { path, .. }
            | Self::DecoderPanic { path, .. } => path,
        }
    }
}

/// Reads and converts one file.
///
/// # Errors
/// Any [`InputError`]; never panics on the file's content.
pub fn load(path: &Path) -> Result<Image, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Io { path: path.to_path_buf(), source })?;
    decode(&bytes, path)
}

/// Fewest files worth a decoding thread (64 small JPEGs are about 2 ms of work).
const FILES_PER_THREAD: usize = 64;

/// [`load`] for each of `paths` on up to `threads` threads, results in order. Decoding a
/// 64x64 JPEG takes about as long as classifying it, so decoding on one thread would halve a
/// multi-core machine's throughput.
pub fn load_all<P: AsRef<Path> + Sync>(paths: &[P], threads: usize) -> Vec<Result<Image, InputError>> {
    let threads = threads.min(paths.len() / FILES_PER_THREAD).max(1);
    let load_each = |paths: &[P]| paths.iter().map(|p| load(p.as_ref())).collect::<Vec<_>>();
    if threads == 1 {
        return load_each(paths);
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(paths.len().div_ceil(threads))
            .map(|share| scope.spawn(move || load_each(share)))
            .collect();
        // `load` catches decoder panics, so a worker's panic is a bug of ours: pass it on.
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// Converts one file's bytes; `path` only names the file in errors.
///
/// # Errors
/// Any [`InputError`]; never panics on `bytes`.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Image, InputError> {
    if bytes.is_empty() {
        return Err(InputError::Empty { path: path.to_path_buf() });
    }
    // The decoders are third-party parsers of untrusted bytes: a panic in one (dicom-rs has
    // asserts on header values; `dicom` checks the ones fuzzing found) becomes this file's
    // error instead of ending the batch or the drop-folder service.
    let decoded = std::panic::catch_unwind(|| {
        if dicom::is_dicom(bytes) {
            dicom::decode(bytes).map_err(|reason| InputError::Dicom { path: path.to_path_buf(), reason })
        } else {
            decode_image(bytes).map_err(|source| InputError::Decode { path: path.to_path_buf(), source })
        }
    })
    .map_err(|panic| InputError::DecoderPanic {
        path: path.to_path_buf(),
        reason: panic_message(&*panic),
    })??;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(InputError::NoPixels { path: path.to_path_buf() });
    }
    Ok(to_model_input(&decoded))
}

fn decode_image(bytes: &[u8]) -> Result<DynamicImage, image::ImageError> {
    // `ImageReader` applies `image`'s default limits (512 MiB per allocation), so a header that
    // claims a huge size is an error rather than an out-of-memory abort.
    ImageReader::new(Cursor::new(bytes)).with_guessed_format()?.decode()
}

/// Exactly `trainer::data::decode_gray64` after decoding; `decoded` has at least one pixel.
fn to_model_input(decoded: &DynamicImage) -> Image {
    let side = SIDE as u32;
    let gray = decoded.to_luma8();
    let resized = if gray.width() == side && gray.height() == side {
        gray
    } else {
        image::imageops::resize(&gray, side, side, image::imageops::FilterType::Triangle)
    };
    let mut pixels = Box::new([0; PIXELS]);
    // Both hold side x side pixels: `resize` returns exactly the size it was asked for.
    pixels.copy_from_slice(resized.as_raw());
    Image(pixels)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".into())
}
