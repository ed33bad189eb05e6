//! The stream decoder on arbitrary bytes, fed in arbitrary pieces, as both the device
//! (`HostToDevice`) and the host (`DeviceToHost`) read them: it never panics, and every message
//! it accepts re-encodes to a frame that decodes to the same message (parse, emit, re-parse).
//! The same bytes, wrapped in a valid frame (CRC and COBS), reach the message decoder behind
//! the CRC check, which random bytes almost never pass.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::proto::{decode_from_bytes, encode_to_vec, DeviceToHost, Feed, FrameDecoder, HostToDevice};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the size of the pieces the stream arrives in.
    let Some((&piece_len, stream)) = data.split_first() else { return };
    let mut device_side = FrameDecoder::new();
    let mut host_side = FrameDecoder::new();
    for piece in stream.chunks(usize::from(piece_len).max(1)) {
        let mut input = piece;
        loop {
            match device_side.feed::<HostToDevice<'_>>(input) {
                Feed::NeedMore => break,
                Feed::Frame { message, rest } => {
                    let mut frame = encode_to_vec(&message).expect("a decoded message encodes");
                    assert_eq!(decode_from_bytes::<HostToDevice<'_>>(&mut frame), Ok(message));
                    input = rest;
                }
                Feed::Rejected { rest, .. } => input = rest,
            }
        }
        let mut input = piece;
        loop {
            match host_side.feed::<DeviceToHost>(input) {
                Feed::NeedMore => break,
                Feed::Frame { message, rest } => {
                    let mut frame = encode_to_vec(&message).expect("a decoded message encodes");
                    assert_eq!(decode_from_bytes::<DeviceToHost>(&mut frame), Ok(message));
                    input = rest;
                }
                Feed::Rejected { rest, .. } => input = rest,
            }
        }
    }
    // One frame, whole.
    let _ = decode_from_bytes::<HostToDevice<'_>>(&mut stream.to_vec());

    // The bytes as a message body in a valid frame.
    let mut body = stream.to_vec();
    body.extend_from_slice(&crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(stream).to_le_bytes());
    let mut frame = cobs::encode_vec(&body);
    if let Ok(message) = decode_from_bytes::<HostToDevice<'_>>(&mut frame.clone()) {
        let mut again = encode_to_vec(&message).expect("a decoded message encodes");
        assert_eq!(decode_from_bytes::<HostToDevice<'_>>(&mut again), Ok(message));
    }
    if let Ok(message) = decode_from_bytes::<DeviceToHost>(&mut frame) {
        let mut again = encode_to_vec(&message).expect("a decoded message encodes");
        assert_eq!(decode_from_bytes::<DeviceToHost>(&mut again), Ok(message));
    }
});
