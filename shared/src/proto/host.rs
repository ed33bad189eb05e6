//! The host end of the link, over any byte stream (a serial port, a pty, a pipe): the
//! handshake, one image at a time, typed errors. `edge-runtime stream` adds the recovery
//! policy (re-handshake after a reset, reopen after a USB re-enumeration); the QEMU test
//! harness uses the same link, plus [`HostLink::send_bytes`] to put damaged frames on the wire.
//!
//! Reads must time out rather than block for ever: a `serialport` port opened with a
//! timeout does, and `std::io::ErrorKind::TimedOut` / `WouldBlock` count as "nothing yet".

use super::frame::{encode_to_vec, Feed, FrameDecoder};
use super::{
    image_chunks, Classification, DeviceHello, DeviceToHost, Error, HostToDevice, ModelHash, PROTOCOL_VERSION,
};
use crate::model::IMAGE_LEN;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

/// How often an unanswered `Hello` is repeated: a device still booting, or one whose input
/// buffer held a partial frame, misses the first.
const HELLO_RETRY: Duration = Duration::from_millis(500);
/// How long answers to repeated `Hello`s may keep arriving after the first one.
const HELLO_DRAIN: Duration = Duration::from_millis(200);

/// Why the link failed.
#[derive(Debug)]
pub enum LinkError {
    /// Reading or writing the port failed: the device is gone (unplugged, or re-enumerating
    /// after a reset over USB).
    Io(std::io::Error),
    /// Nothing came back in time.
    Timeout {
        /// What the host was waiting for.
        waiting_for: &'static str,
        /// For how long.
        waited: Duration,
    },
    /// The device speaks another protocol version.
    VersionMismatch {
        /// The device's version.
        device: u16,
    },
    /// The device runs another model than the host expects.
    WrongModel {
        /// What the device embeds.
        device: ModelHash,
        /// What the host holds.
        host: ModelHash,
    },
    /// The device's embedded model failed to load.
    ModelUnavailable,
    /// The device asks for a new handshake: it was reset since the last one.
    Reset,
    /// The device could not read one of the host's frames (damaged on the line), or refused
    /// the image; the image was dropped.
    Refused(Error),
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "the device is gone (unplugged, or reset over USB): {e}"),
            Self::Timeout { waiting_for, waited } => {
                write!(f, "no {waiting_for} from the device in {:.1} s", waited.as_secs_f64())
            }
            Self::VersionMismatch { device } => {
                write!(f, "the device speaks protocol version {device}, this host {PROTOCOL_VERSION}")
            }
            Self::WrongModel { device, host } => write!(
                f,
                "the device runs model {device}, the host's model is {host} (flash the firmware built from this model)"
            ),
            Self::ModelUnavailable => f.write_str("the device reports its embedded model failed to load"),
            Self::Reset => f.write_str("the device was reset (it asks for a new handshake)"),
            Self::Refused(e) => write!(f, "the device refused the image: {e}"),
        }
    }
}

// The causes are part of the message (`Display`), so `source` stays `None`.
impl std::error::Error for LinkError {}

impl From<std::io::Error> for LinkError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// The host end of one serial link.
#[derive(Debug)]
pub struct HostLink<P> {
    port: P,
    decoder: FrameDecoder,
    received: VecDeque<DeviceToHost>,
    bytes_sent: u64,
    bytes_received: u64,
}

impl<P: Read + Write> HostLink<P> {
    /// A link over `port`; nothing is sent until [`Self::handshake`].
    pub fn new(port: P) -> Self {
        Self {
            port,
            decoder: FrameDecoder::new(),
            received: VecDeque::new(),
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    /// The port, e.g. to change its settings.
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Bytes written so far.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes read so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Writes raw bytes: a frame, or (in tests) damage.
    ///
    /// # Errors
    /// [`LinkError::Io`] when the port fails.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.port.write_all(bytes)?;
        self.port.flush()?;
        self.bytes_sent += bytes.len() as u64;
        Ok(())
    }

    /// Encodes and writes one message.
    ///
    /// # Errors
    /// [`LinkError::Io`] when the port fails.
    pub fn send(&mut self, message: &HostToDevice<'_>) -> Result<(), LinkError> {
        // Every host message fits a frame (the bounds are tested), so encoding cannot fail.
        let frame = encode_to_vec(message).map_err(LinkError::Refused)?;
        self.send_bytes(&frame)
    }

    /// The next message from the device, or `None` once `deadline` has passed.
    ///
    /// # Errors
    /// [`LinkError::Io`] when the port fails.
    pub fn recv(&mut self, deadline: Instant) -> Result<Option<DeviceToHost>, LinkError> {
        let mut buf = [0u8; 512];
        while self.received.is_empty() {
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let n = match self.port.read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Err(e) => return Err(e.into()),
            };
            self.bytes_received += n as u64;
            let mut input = &buf[..n];
            loop {
                match self.decoder.feed::<DeviceToHost>(input) {
                    Feed::NeedMore => break,
                    Feed::Frame { message, rest } => {
                        self.received.push_back(message);
                        input = rest;
                    }
                    // A damaged frame from the device (bytes it sent before the host opened
                    // the port arrive cut): dropped; what the host waits for times out.
                    Feed::Rejected { rest, .. } => input = rest,
                }
            }
        }
        Ok(self.received.pop_front())
    }

    /// Opens a session: sends `Hello` (again every half second) until the device answers
    /// within `timeout`, and checks it runs `model`. Drops whatever the device said before.
    ///
    /// # Errors
    /// [`LinkError::Timeout`], [`LinkError::VersionMismatch`], [`LinkError::WrongModel`],
    /// [`LinkError::ModelUnavailable`], or [`LinkError::Io`].
    pub fn handshake(&mut self, model: ModelHash, timeout: Duration) -> Result<DeviceHello, LinkError> {
        let give_up = Instant::now() + timeout;
        while Instant::now() < give_up {
            self.send(&HostToDevice::Hello { protocol_version: PROTOCOL_VERSION })?;
            let retry = (Instant::now() + HELLO_RETRY).min(give_up);
            while let Some(message) = self.recv(retry)? {
                let hello = match message {
                    DeviceToHost::Hello(hello) => hello,
                    DeviceToHost::Error { error: Error::VersionMismatch { device, .. }, .. } => {
                        return Err(LinkError::VersionMismatch { device });
                    }
                    // Answers to whatever the host sent before (a reset cuts a conversation).
                    _ => continue,
                };
                if hello.protocol_version != PROTOCOL_VERSION {
                    return Err(LinkError::VersionMismatch { device: hello.protocol_version });
                }
                if hello.model_hash != model {
                    return Err(LinkError::WrongModel { device: hello.model_hash, host: model });
                }
                if !hello.model_available {
                    return Err(LinkError::ModelUnavailable);
                }
                // Answers to the repeated hellos.
                while self.recv(Instant::now() + HELLO_DRAIN)?.is_some() {}
                return Ok(hello);
            }
        }
        Err(LinkError::Timeout { waiting_for: "answer to the handshake", waited: timeout })
    }

    /// Sends `image` in chunks under `image_id`, without waiting for the answer.
    ///
    /// # Errors
    /// [`LinkError::Io`] when the port fails.
    pub fn send_image(&mut self, image_id: u32, image: &[u8; IMAGE_LEN]) -> Result<(), LinkError> {
        image_chunks(image_id, image).try_for_each(|chunk| self.send(&chunk))
    }

    /// Sends `image` and waits up to `timeout` for the device's answer. Answers for other
    /// image ids (left over from an earlier, abandoned image) are dropped.
    ///
    /// # Errors
    /// [`LinkError::Reset`] when the device lost the session, [`LinkError::Refused`] when it
    /// could not read the image (a frame damaged on the line) or refused it,
    /// [`LinkError::Timeout`], [`LinkError::Io`].
    pub fn classify(
        &mut self,
        image_id: u32,
        image: &[u8; IMAGE_LEN],
        timeout: Duration,
    ) -> Result<Classification, LinkError> {
        self.send_image(image_id, image)?;
        let deadline = Instant::now() + timeout;
        while let Some(message) = self.recv(deadline)? {
            match message {
                DeviceToHost::Classified { image_id: id, classification } if id == image_id => {
                    return Ok(classification);
                }
                DeviceToHost::Error { image_id: Some(id), error } if id == image_id => {
                    return Err(match error {
                        Error::HandshakeRequired => LinkError::Reset,
                        Error::ModelUnavailable => LinkError::ModelUnavailable,
                        other => LinkError::Refused(other),
                    });
                }
                // A frame of this image was damaged on the line: it will not be answered.
                DeviceToHost::Error { image_id: None, error } => return Err(LinkError::Refused(error)),
                _ => {}
            }
        }
        Err(LinkError::Timeout { waiting_for: "answer for the image", waited: timeout })
    }
}
