//! The serial wire protocol between the host (`edge-runtime stream`, the QEMU test harness)
//! and the firmware: the single definition both sides compile. See `docs/wire-protocol.md`.
//!
//! - [`frame`]: postcard message + CRC-32, COBS-encoded between `0x00` delimiters;
//!   [`encode_to_slice`] / [`decode_from_bytes`] for one frame, [`FrameDecoder`] for a
//!   stream (resynchronises after garbage, truncated frames and bad CRCs);
//! - [`HostToDevice`] / [`DeviceToHost`]: a `Hello` handshake (protocol version, model hash),
//!   an image in [`CHUNK_LEN`]-byte chunks, the classification or an [`Error`];
//! - [`image_chunks`] / [`ImageAssembler`]: an image split on the host, reassembled on the
//!   device;
//! - [`Responder`]: the device side, board-independent (the firmware runs it; host tests run
//!   it in memory);
//! - [`HostLink`] (`std`): the host side over any byte stream.
//!
//! Nothing here allocates (except `encode_to_vec`, with `alloc`) or panics on any input.

mod error;
pub mod frame;
#[cfg(feature = "std")]
mod host;
mod image;
mod message;
mod responder;

pub use error::{Error, Result};
#[cfg(feature = "alloc")]
pub use frame::encode_to_vec;
pub use frame::{
    decode_from_bytes, encode_to_slice, Feed, FrameDecoder, MAX_DEVICE_FRAME_LEN, MAX_FRAME_LEN,
};
#[cfg(feature = "std")]
pub use host::{HostLink, LinkError};
pub use image::{image_chunks, ImageAssembler};
pub use message::{
    Classification, DeviceHello, DeviceToHost, HostToDevice, ModelHash, CHUNK_LEN, MAX_DEVICE_MESSAGE_LEN,
    MAX_HOST_MESSAGE_LEN, PROTOCOL_VERSION,
};
pub use responder::{Reply, Responder};
