//! Images to a device over a serial port (`edge-runtime stream`): the firmware classifies,
//! the host sends and collects. The protocol is `shared::proto`'s [`HostLink`]; this module
//! adds the port and what to do when the link breaks:
//!
//! - the device was reset (it asks for a handshake, or stops answering but answers a new
//!   handshake): handshake again and send the image again;
//! - a frame was damaged on the line (the device says so): send the image again;
//! - the port vanished (USB unplugged, or a Pico re-enumerating after a reset): reopen it by
//!   its path for [`Link::REOPEN_WINDOW`], then give up with a clear error.
//!
//! An image is tried at most [`ATTEMPTS`] times.

use crate::engine::Prediction;
use crate::preprocess::Image;
use serialport::SerialPort;
use shared::proto::{Classification, DeviceHello, HostLink, LinkError, ModelHash};
use std::time::{Duration, Instant};

/// Tries per image before giving up on the device.
pub const ATTEMPTS: usize = 3;

/// Longest a single read may block: bounds how late a deadline is noticed.
const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// How to reach the device.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// The port: `/dev/ttyACM0` (a Pico over USB), `/dev/ttyUSB0`, `COM3`, a pty.
    pub port: String,
    /// Line rate of a UART; USB CDC and ptys ignore it.
    pub baud: u32,
    /// Longest wait for an answer to one image or to a handshake.
    pub timeout: Duration,
}

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The port could not be opened.
    #[error("cannot open {port}: {reason}")]
    Open {
        /// The port.
        port: String,
        /// The driver's reason.
        reason: serialport::Error,
    },
    /// The link failed and recovering did not help.
    #[error("{port}: {problem}")]
    Link {
        /// The port.
        port: String,
        /// What failed last.
        problem: LinkError,
    },
}

/// The device's answer for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    /// Its class and scores, as [`Prediction`] (probabilities: the softmax of its logits).
    pub prediction: Prediction,
    /// Exactly what the device sent.
    pub classification: Classification,
    /// From the first byte sent to the answer, retries included.
    pub round_trip: Duration,
}

/// Something the link recovered from; the stream went on.
#[derive(Debug)]
pub struct Recovered {
    /// What went wrong.
    pub problem: LinkError,
    /// What the host did about it.
    pub action: &'static str,
}

/// An open link to a device that answered the handshake for the host's model.
pub struct Link {
    options: LinkOptions,
    model: ModelHash,
    link: HostLink<Box<dyn SerialPort>>,
    hello: DeviceHello,
    next_id: u32,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("options", &self.options)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// How long a vanished port is waited for (a Pico re-enumerates in about a second).
    pub const REOPEN_WINDOW: Duration = Duration::from_secs(5);

    /// Opens the port and shakes hands with the device, which must run `model`.
    ///
    /// # Errors
    /// [`StreamError::Open`] or [`StreamError::Link`] (no answer, another protocol version,
    /// another model, the device's model unavailable).
    pub fn connect(options: LinkOptions, model: ModelHash) -> Result<Self, StreamError> {
        let port = open(&options)?;
        let mut link = HostLink::new(port);
        let hello = link
            .handshake(model, options.timeout)
            .map_err(|problem| StreamError::Link { port: options.port.clone(), problem })?;
        Ok(Self { options, model, link, hello, next_id: 0 })
    }

    /// What the device said in the handshake.
    pub fn hello(&self) -> &DeviceHello {
        &self.hello
    }

    /// Bytes written to the device so far (frames, retries included).
    pub fn bytes_sent(&self) -> u64 {
        self.link.bytes_sent()
    }

    /// Sends one image and returns the device's answer, recovering from resets, damaged
    /// frames and a port that comes back; `on_recover` hears of each recovery.
    ///
    /// # Errors
    /// [`StreamError`] when the device stays unreachable or refuses the image [`ATTEMPTS`]
    /// times, or runs another model after a reset.
    pub fn classify(
        &mut self,
        image: &Image,
        mut on_recover: impl FnMut(Recovered),
    ) -> Result<Answer, StreamError> {
        let started = Instant::now();
        for _ in 0..ATTEMPTS {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let problem = match self.link.classify(id, image.pixels(), self.options.timeout) {
                Ok(classification) => {
                    return Ok(Answer {
                        prediction: Prediction::from_fixed(classification.class, classification.logits),
                        classification,
                        round_trip: started.elapsed(),
                    });
                }
                Err(problem) => problem,
            };
            let action = match &problem {
                LinkError::Reset | LinkError::Timeout { .. } => {
                    // A device that reset while classifying says nothing: a handshake tells
                    // a reset (it answers) from a dead device (it does not).
                    self.handshake()?;
                    "shook hands again, sent the image again"
                }
                LinkError::Refused(_) => "sent the image again",
                LinkError::Io(cause) => {
                    self.reopen(cause)?;
                    "reopened the port, shook hands, sent the image again"
                }
                LinkError::VersionMismatch { .. }
                | LinkError::WrongModel { .. }
                | LinkError::ModelUnavailable => {
                    return Err(self.error(problem));
                }
            };
            on_recover(Recovered { problem, action });
        }
        Err(self.error(LinkError::Timeout {
            waiting_for: "valid answer after repeated tries",
            waited: started.elapsed(),
        }))
    }

    fn handshake(&mut self) -> Result<(), StreamError> {
        self.hello = self.link.handshake(self.model, self.options.timeout).map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Reopens the port by its path until [`Self::REOPEN_WINDOW`] has passed.
    fn reopen(&mut self, cause: &std::io::Error) -> Result<(), StreamError> {
        let give_up = Instant::now() + Self::REOPEN_WINDOW;
        loop {
            if let Ok(port) = open(&self.options) {
                self.link = HostLink::new(port);
                return self.handshake();
            }
            if Instant::now() >= give_up {
                let gone = std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    format!("{cause}; the port did not come back within {} s", Self::REOPEN_WINDOW.as_secs()),
                );
                return Err(self.error(LinkError::Io(gone)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn error(&self, problem: LinkError) -> StreamError {
        StreamError::Link { port: self.options.port.clone(), problem }
    }
}

fn open(options: &LinkOptions) -> Result<Box<dyn SerialPort>, StreamError> {
    serialport::new(&options.port, options.baud)
        .timeout(READ_TIMEOUT)
        .open()
        .map_err(|reason| StreamError::Open { port: options.port.clone(), reason })
}
