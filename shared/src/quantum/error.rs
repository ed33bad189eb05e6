//! Errors at the simulator's public boundary.

use core::fmt;

/// A malformed circuit description or argument shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The circuit has no layers or more than [`super::MAX_LAYERS`].
    LayerCount {
        /// Layers asked for.
        layers: usize,
    },
    /// A CNOT range that is a multiple of the wire count (PennyLane refuses these too).
    Range {
        /// The layer it was given for.
        layer: usize,
        /// The range.
        range: u32,
    },
    /// The weights do not have one entry per layer of the circuit.
    WeightLayers {
        /// Layers of the circuit.
        expected: usize,
        /// Layers in the weights.
        found: usize,
    },
    /// Two batch arguments have different lengths.
    BatchLength {
        /// Length of the features batch.
        expected: usize,
        /// Length of the other batch argument.
        found: usize,
    },
    /// A noise probability outside `[0, 1]` (or NaN).
    Probability,
    /// An angle or weight that is NaN or infinite, where a finite number must be written.
    NonFinite,
}

/// Result with the simulator's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::LayerCount { layers } => {
                write!(f, "circuit needs 1 to {} layers, got {layers}", super::MAX_LAYERS)
            }
            Error::Range { layer, range } => write!(
                f,
                "range {range} of layer {layer} is a multiple of {} (CNOT onto its own wire)",
                super::WIRES
            ),
            Error::WeightLayers { expected, found } => {
                write!(f, "weights have {found} layers, the circuit has {expected}")
            }
            Error::BatchLength { expected, found } => write!(
                f,
                "batch arguments differ in length: {expected} features, {found} in another argument"
            ),
            Error::Probability => f.write_str("a noise probability must be in [0, 1]"),
            Error::NonFinite => f.write_str("an angle or weight is NaN or infinite"),
        }
    }
}

impl core::error::Error for Error {}
