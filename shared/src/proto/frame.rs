//! Framing: postcard message + CRC-32, COBS-encoded, between two `0x00` delimiters.
//!
//! ```text
//! 0x00 | COBS( postcard(message) | CRC-32 little-endian ) | 0x00
//! ```
//!
//! The leading delimiter ends whatever garbage or truncated frame came before, so a valid
//! frame is never lost to the bytes in front of it; the decoder skips the empty frames that
//! back-to-back delimiters make.

use super::{Error, Result, MAX_DEVICE_MESSAGE_LEN, MAX_HOST_MESSAGE_LEN};
use postcard::ser_flavors::{crc::CrcModifier, Cobs, Slice};
use serde::{Deserialize, Serialize};

/// The byte that separates frames.
pub const DELIMITER: u8 = 0x00;
/// Bytes of the CRC-32 after the message.
pub const CRC_LEN: usize = 4;

/// CRC-32/ISO-HDLC (zlib's), over the postcard bytes of the message.
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Wire bytes of a frame holding a message of `message_len` bytes at most: two delimiters
/// and the COBS encoding of the message and its CRC.
pub const fn max_frame_len(message_len: usize) -> usize {
    let len = message_len + CRC_LEN;
    // One code byte per full 254-byte block, plus the last block's. Not
    // `cobs::max_encoding_length`: postcard's encoder starts a new block after a full one even
    // at the end, one byte more than that bound when `len` is a multiple of 254.
    2 + len + len / 254 + 1
}

/// Longest frame either side sends (an image chunk of [`super::CHUNK_LEN`] bytes).
pub const MAX_FRAME_LEN: usize = max_frame_len(MAX_HOST_MESSAGE_LEN);
/// Longest frame the device sends; the size of its reply buffer.
pub const MAX_DEVICE_FRAME_LEN: usize = max_frame_len(MAX_DEVICE_MESSAGE_LEN);

/// Encodes `message` as one frame (both delimiters included) into `buf`; returns the
/// frame's bytes.
///
/// # Errors
/// [`Error::BufferTooSmall`] when the frame does not fit `buf` (a buffer of
/// [`MAX_FRAME_LEN`] holds every message of this protocol).
pub fn encode_to_slice<'b, T: Serialize + ?Sized>(message: &T, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
    let (first, body) = buf.split_first_mut().ok_or(Error::BufferTooSmall)?;
    *first = DELIMITER;
    let cobs = Cobs::try_new(Slice::new(body)).map_err(|_| Error::BufferTooSmall)?;
    // The protocol's types serialise infallibly: the only way postcard fails is a full buffer.
    let encoded = postcard::serialize_with_flavor(message, CrcModifier::new(cobs, CRC.digest()))
        .map_err(|_| Error::BufferTooSmall)?;
    let len = 1 + encoded.len();
    Ok(&mut buf[..len])
}

/// Encodes `message` as one frame (both delimiters included) into a new vector.
///
/// # Errors
/// None for the protocol's types; the `Result` covers `T`s whose `Serialize` fails.
#[cfg(feature = "alloc")]
pub fn encode_to_vec<T: Serialize + ?Sized>(message: &T) -> Result<alloc::vec::Vec<u8>> {
    let message_len = postcard::experimental::serialized_size(message).map_err(|_| Error::BufferTooSmall)?;
    let mut buf = alloc::vec![0; max_frame_len(message_len)];
    let len = encode_to_slice(message, &mut buf)?.len();
    buf.truncate(len);
    Ok(buf)
}

/// Decodes one frame, as [`encode_to_slice`] writes it (the delimiters are optional). The
/// COBS decoding happens in place, so `frame` is overwritten and the message may borrow it.
///
/// # Errors
/// [`Error::BadFraming`], [`Error::BadCrc`] or [`Error::BadMessage`], checked in that order.
pub fn decode_from_bytes<'a, T: Deserialize<'a>>(frame: &'a mut [u8]) -> Result<T> {
    let frame = match frame {
        [DELIMITER, rest @ ..] => rest,
        all => all,
    };
    let frame = match frame {
        [rest @ .., DELIMITER] => rest,
        all => all,
    };
    if frame.contains(&DELIMITER) {
        return Err(Error::BadFraming);
    }
    decode_cobs(frame)
}

/// Decodes the COBS bytes between two delimiters (none of them zero).
fn decode_cobs<'a, T: Deserialize<'a>>(encoded: &'a mut [u8]) -> Result<T> {
    let len = cobs::decode_in_place(encoded).map_err(|_| Error::BadFraming)?;
    let body_len = len.checked_sub(CRC_LEN).ok_or(Error::BadFraming)?;
    let (body, crc) = encoded[..len].split_at(body_len);
    if crc != CRC.checksum(body).to_le_bytes() {
        return Err(Error::BadCrc);
    }
    match postcard::take_from_bytes(body) {
        Ok((message, [])) => Ok(message),
        _ => Err(Error::BadMessage),
    }
}

/// What [`FrameDecoder::feed`] found in its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Feed<'i, T> {
    /// All input was consumed and no frame is complete yet: feed more bytes.
    NeedMore,
    /// A frame decoded to `message`; `rest` is the input after it.
    Frame {
        /// The message (it may borrow the decoder's buffer).
        message: T,
        /// Input not consumed yet.
        rest: &'i [u8],
    },
    /// A complete frame was malformed and dropped; the decoder is already synchronised on
    /// the next frame. `rest` is the input after the bad frame.
    Rejected {
        /// Why the frame was dropped.
        error: Error,
        /// Input not consumed yet.
        rest: &'i [u8],
    },
}

/// Reassembles frames from a byte stream that may hold garbage, truncated frames and
/// corrupted bytes; holds one frame of at most [`MAX_FRAME_LEN`] bytes and never allocates.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// COBS bytes of the frame being received (delimiters excluded).
    buf: [u8; MAX_FRAME_LEN - 2],
    len: usize,
    /// More bytes than `buf` holds arrived since the last delimiter: drop them all.
    overflowed: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder waiting for the first delimiter-terminated frame.
    pub const fn new() -> Self {
        Self { buf: [0; MAX_FRAME_LEN - 2], len: 0, overflowed: false }
    }

    /// Drops any partially received frame.
    pub fn reset(&mut self) {
        self.len = 0;
        self.overflowed = false;
    }

    /// Consumes `input` up to the end of the first complete non-empty frame, and decodes it
    /// as a `T`. Call again with `rest` until [`Feed::NeedMore`].
    pub fn feed<'d, 'i, T: Deserialize<'d>>(&'d mut self, mut input: &'i [u8]) -> Feed<'i, T> {
        loop {
            let Some(end) = input.iter().position(|&b| b == DELIMITER) else {
                self.push(input);
                return Feed::NeedMore;
            };
            self.push(&input[..end]);
            let rest = &input[end + 1..];
            let (len, overflowed) = (self.len, self.overflowed);
            self.reset();
            if overflowed {
                return Feed::Rejected { error: Error::FrameTooLong, rest };
            }
            if len == 0 {
                input = rest;
                continue;
            }
            return match decode_cobs(&mut self.buf[..len]) {
                Ok(message) => Feed::Frame { message, rest },
                Err(error) => Feed::Rejected { error, rest },
            };
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(free) if !self.overflowed => {
                free.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            _ => self.overflowed = true,
        }
    }
}
