//! Why an artifact was refused.

use core::fmt;

/// A refused model artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// Fewer bytes than a header.
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The file does not start with [`super::MAGIC`]: not a model artifact.
    BadMagic,
    /// Written by a newer or older, incompatible format.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
    },
    /// Another kind of artifact than the one asked for.
    WrongKind {
        /// Kind asked for.
        expected: u16,
        /// Kind in the file.
        found: u16,
    },
    /// The payload is shorter or longer than the header says.
    Length {
        /// Payload length in the header.
        declared: u32,
        /// Bytes after the header.
        available: usize,
    },
    /// The payload's CRC-32 differs from the header's: corrupted or tampered.
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the payload.
        computed: u32,
    },
    /// The payload does not decode as the artifact's structure.
    Payload,
    /// The payload decodes but is not a valid model (the field says which part).
    Invalid(&'static str),
    /// The output buffer is too small to hold the encoded artifact.
    BufferTooSmall,
}

/// Result with the model format's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::TooShort { len } => write!(f, "{len} bytes is too short for a model artifact"),
            Error::BadMagic => f.write_str("not a model artifact (bad magic bytes)"),
            Error::UnsupportedVersion { found } => {
                write!(f, "artifact format version {found}, this build reads {}", super::FORMAT_VERSION)
            }
            Error::WrongKind { expected, found } => {
                write!(f, "artifact of kind {found}, expected kind {expected}")
            }
            Error::Length { declared, available } => {
                write!(f, "payload of {declared} bytes declared, {available} present (truncated or padded)")
            }
            Error::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:08x}, computed {computed:08x}): corrupted or tampered"
            ),
            Error::Payload => f.write_str("payload does not decode"),
            Error::Invalid(what) => write!(f, "invalid model: {what}"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for Error {}
