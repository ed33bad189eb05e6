//! Shape errors of the integer kernels.

use core::fmt;

/// A buffer whose length does not match the layer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// A buffer has the wrong length.
    Length {
        /// Which buffer (`"input"`, `"weights"`, ...).
        buffer: &'static str,
        /// Length the shape needs.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// The layer's options describe no valid layer (zero sizes, kernel larger than input).
    Options(&'static str),
}

/// Result with the kernels' [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Length { buffer, expected, found } => {
                write!(f, "{buffer} has {found} elements, the layer needs {expected}")
            }
            Error::Options(what) => write!(f, "invalid layer options: {what}"),
        }
    }
}

impl core::error::Error for Error {}

/// `Ok` when `found == expected`.
pub(crate) fn check_len(buffer: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::Length { buffer, expected, found })
    }
}
