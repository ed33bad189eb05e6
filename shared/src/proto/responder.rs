//! The device side of the protocol, independent of any board: bytes in, reply frames out.
//! The firmware wraps it around its serial port and its classifier; host tests run it in
//! memory.

use super::frame::{encode_to_slice, Feed, FrameDecoder, MAX_DEVICE_FRAME_LEN};
use super::{
    Classification, DeviceHello, DeviceToHost, Error, HostToDevice, ImageAssembler, ModelHash, Result,
    PROTOCOL_VERSION,
};
use crate::model::IMAGE_LEN;

/// The device's protocol state: the frame being received, the handshake, the image being
/// assembled, and the buffer its reply frames are encoded into. Never allocates.
#[derive(Debug, Clone)]
pub struct Responder {
    decoder: FrameDecoder,
    assembler: ImageAssembler,
    hello: DeviceHello,
    connected: bool,
    reply: [u8; MAX_DEVICE_FRAME_LEN],
}

impl Responder {
    /// A device running the model `model_hash` identifies, waiting for a handshake.
    pub const fn new(model_hash: ModelHash, model_available: bool) -> Self {
        Self {
            decoder: FrameDecoder::new(),
            assembler: ImageAssembler::new(),
            hello: DeviceHello { protocol_version: PROTOCOL_VERSION, model_hash, model_available },
            connected: false,
            reply: [0; MAX_DEVICE_FRAME_LEN],
        }
    }

    /// Consumes `input` until a message or a bad frame calls for a reply; returns that
    /// reply (to send before calling again) and the input not consumed yet. Returns
    /// `(None, [])` once all input is consumed. `classify` runs for each complete image.
    pub fn process<'i>(
        &mut self,
        mut input: &'i [u8],
        classify: &mut impl FnMut(&[u8; IMAGE_LEN]) -> Result<Classification>,
    ) -> (Option<Reply<'_>>, &'i [u8]) {
        let Self { decoder, assembler, hello, connected, reply } = self;
        loop {
            let (answer, rest) = match decoder.feed::<HostToDevice<'_>>(input) {
                Feed::NeedMore => return (None, &[]),
                Feed::Rejected { error, rest } => (Some(DeviceToHost::Error { image_id: None, error }), rest),
                Feed::Frame { message, rest } => {
                    (answer(message, hello, connected, assembler, classify), rest)
                }
            };
            input = rest;
            if let Some(answer) = answer {
                // The buffer holds the longest device message, so encoding cannot fail.
                let frame =
                    encode_to_slice(&answer, reply).ok().map(|frame| Reply { message: answer, frame });
                return (frame, rest);
            }
        }
    }
}

/// A reply the device must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'r> {
    /// What it says (for the device's logs).
    pub message: DeviceToHost,
    /// Its frame, delimiters included: the bytes to write.
    pub frame: &'r [u8],
}

/// The reply to one well-formed message, if it calls for one.
fn answer(
    message: HostToDevice<'_>,
    hello: &DeviceHello,
    connected: &mut bool,
    assembler: &mut ImageAssembler,
    classify: &mut impl FnMut(&[u8; IMAGE_LEN]) -> Result<Classification>,
) -> Option<DeviceToHost> {
    match message {
        HostToDevice::Hello { protocol_version } => {
            assembler.reset();
            *connected = protocol_version == PROTOCOL_VERSION;
            Some(if *connected {
                DeviceToHost::Hello(*hello)
            } else {
                let error = Error::VersionMismatch { device: PROTOCOL_VERSION, host: protocol_version };
                DeviceToHost::Error { image_id: None, error }
            })
        }
        HostToDevice::ImageChunk { image_id, .. } if !*connected => {
            Some(DeviceToHost::Error { image_id: Some(image_id), error: Error::HandshakeRequired })
        }
        HostToDevice::ImageChunk { image_id, offset, data } => match assembler.accept(image_id, offset, data)
        {
            Ok(None) => None,
            Ok(Some(image)) => Some(match classify(image) {
                Ok(classification) => DeviceToHost::Classified { image_id, classification },
                Err(error) => DeviceToHost::Error { image_id: Some(image_id), error },
            }),
            Err(error) => Some(DeviceToHost::Error { image_id: Some(image_id), error }),
        },
    }
}
