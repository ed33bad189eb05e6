//! Why a frame or a message was refused. The same enum travels back to the host inside
//! [`super::DeviceToHost::Error`], so its variants are part of the wire format: new ones go
//! at the end.

use core::fmt;
use serde::{Deserialize, Serialize};

/// A refused frame, message or image chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// More than [`super::MAX_FRAME_LEN`] bytes arrived without a delimiter; they were
    /// dropped up to the next delimiter.
    FrameTooLong,
    /// The bytes between two delimiters are not valid COBS, or too short to hold a CRC.
    BadFraming,
    /// The frame's CRC-32 does not match its content (corrupted on the line).
    BadCrc,
    /// The CRC matches but the content is not a message of this protocol version (unknown
    /// variant, missing or trailing bytes).
    BadMessage,
    /// A message other than `Hello` arrived before a successful handshake (the device was
    /// reset, or the host skipped the handshake).
    HandshakeRequired,
    /// The host speaks another protocol version; the device stays unconnected.
    VersionMismatch {
        /// [`super::PROTOCOL_VERSION`] of the device.
        device: u16,
        /// Version the host announced.
        host: u16,
    },
    /// An image chunk does not continue the image being received (lost or repeated chunk,
    /// or a first chunk with `offset != 0`); the partial image was dropped.
    ChunkOutOfOrder {
        /// Offset the device expected (0 when no image of that id is in progress).
        expected_offset: u16,
    },
    /// An image chunk is empty, longer than [`super::CHUNK_LEN`] or reaches past the end of
    /// the 64x64 image; the partial image was dropped.
    ChunkOutOfBounds {
        /// Offset of the chunk.
        offset: u16,
        /// Length of the chunk.
        len: u16,
    },
    /// The device has no usable model (its embedded model failed to load); no image can
    /// be classified.
    ModelUnavailable,
    /// The output buffer cannot hold the encoded frame (an encoder-side error, never sent).
    BufferTooSmall,
}

/// Result with the protocol's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::FrameTooLong => {
                write!(f, "frame longer than {} bytes without a delimiter", super::MAX_FRAME_LEN)
            }
            Error::BadFraming => f.write_str("bytes between delimiters are not a COBS frame"),
            Error::BadCrc => f.write_str("frame CRC mismatch (corrupted on the line)"),
            Error::BadMessage => f.write_str("frame holds no valid message of this protocol version"),
            Error::HandshakeRequired => f.write_str("handshake required before any other message"),
            Error::VersionMismatch { device, host } => {
                write!(f, "protocol version mismatch: device speaks {device}, host {host}")
            }
            Error::ChunkOutOfOrder { expected_offset } => {
                write!(f, "image chunk out of order (expected offset {expected_offset}); image dropped")
            }
            Error::ChunkOutOfBounds { offset, len } => write!(
                f,
                "image chunk of {len} bytes at offset {offset} does not fit a {}-byte image; image dropped",
                crate::model::IMAGE_LEN
            ),
            Error::ModelUnavailable => f.write_str("the device has no usable model"),
            Error::BufferTooSmall => f.write_str("output buffer too small for the frame"),
        }
    }
}

impl core::error::Error for Error {}
