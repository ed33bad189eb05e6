//! The host end of the link against the device side ([`Responder`]) in memory: handshake,
//! answers, a device reset, a wrong model, a silent device, a vanished port.

use shared::model::IMAGE_LEN;
use shared::proto::{Classification, HostLink, LinkError, ModelHash, Responder};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

const MODEL: ModelHash = ModelHash([7; 32]);
const TIMEOUT: Duration = Duration::from_millis(300);

/// A device in memory: bytes written are answered at once by a [`Responder`] whose
/// classifier answers with the image's pixel sum; reads time out when nothing is pending.
struct Device {
    responder: Responder,
    replies: VecDeque<u8>,
    silent: bool,
    unplugged: bool,
}

impl Device {
    fn new(model: ModelHash) -> Self {
        Self {
            responder: Responder::new(model, true),
            replies: VecDeque::new(),
            silent: false,
            unplugged: false,
        }
    }

    fn answer(image: &[u8; IMAGE_LEN]) -> Classification {
        let sum: u32 = image.iter().map(|&p| u32::from(p)).sum();
        Classification { class: (sum % 6) as u8, logits: [sum as i32; 6], elapsed_us: 1 }
    }
}

impl Write for Device {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        if self.unplugged {
            return Err(std::io::Error::new(ErrorKind::BrokenPipe, "no such device"));
        }
        let len = buf.len();
        while !buf.is_empty() {
            let (reply, rest) = self.responder.process(buf, &mut |image| Ok(Self::answer(image)));
            if let (Some(reply), false) = (reply, self.silent) {
                self.replies.extend(reply.frame);
            }
            buf = rest;
        }
        Ok(len)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for Device {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.replies.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            return Err(ErrorKind::TimedOut.into());
        }
        let n = buf.len().min(self.replies.len());
        for (b, r) in buf.iter_mut().zip(self.replies.drain(..n)) {
            *b = r;
        }
        Ok(n)
    }
}

fn image(seed: u8) -> [u8; IMAGE_LEN] {
    std::array::from_fn(|i| (i as u8).wrapping_mul(seed))
}

#[test]
fn classifies_after_a_handshake() {
    let mut link = HostLink::new(Device::new(MODEL));
    let hello = link.handshake(MODEL, TIMEOUT).expect("handshake");
    assert_eq!(hello.model_hash, MODEL);
    for (id, seed) in [3u8, 5, 200].into_iter().enumerate() {
        let got = link.classify(id as u32, &image(seed), TIMEOUT).expect("answer");
        assert_eq!(got, Device::answer(&image(seed)));
    }
    assert!(link.bytes_sent() > 3 * IMAGE_LEN as u64);
}

#[test]
fn a_reset_device_asks_for_a_new_handshake() {
    let mut link = HostLink::new(Device::new(MODEL));
    link.handshake(MODEL, TIMEOUT).expect("handshake");
    // The device reboots: a fresh responder, unconnected.
    link.port_mut().responder = Responder::new(MODEL, true);
    assert!(matches!(link.classify(1, &image(9), TIMEOUT), Err(LinkError::Reset)));
    link.handshake(MODEL, TIMEOUT).expect("second handshake");
    assert_eq!(link.classify(1, &image(9), TIMEOUT).expect("answer"), Device::answer(&image(9)));
}

#[test]
fn refuses_a_device_with_another_model() {
    let mut link = HostLink::new(Device::new(ModelHash([8; 32])));
    match link.handshake(MODEL, TIMEOUT) {
        Err(LinkError::WrongModel { device, host }) => {
            assert_eq!((device, host), (ModelHash([8; 32]), MODEL));
        }
        other => panic!("expected WrongModel, got {other:?}"),
    }
}

#[test]
fn a_silent_device_times_out() {
    let mut device = Device::new(MODEL);
    device.silent = true;
    let mut link = HostLink::new(device);
    assert!(matches!(link.handshake(MODEL, TIMEOUT), Err(LinkError::Timeout { .. })));
}

#[test]
fn an_unplugged_device_is_an_io_error() {
    let mut link = HostLink::new(Device::new(MODEL));
    link.handshake(MODEL, TIMEOUT).expect("handshake");
    link.port_mut().unplugged = true;
    let error = link.classify(0, &image(1), TIMEOUT).expect_err("unplugged");
    assert!(matches!(error, LinkError::Io(_)));
    assert!(error.to_string().contains("unplugged"), "{error}");
}
