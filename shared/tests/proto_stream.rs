//! The protocol as a byte stream: the decoder resynchronises after garbage, truncated frames
//! and bad CRCs, keeps "need more" apart from "malformed", and never panics; the device side
//! ([`Responder`]) answers every frame, good or bad, without hanging.

use proptest::prelude::*;
use shared::model::IMAGE_LEN;
use shared::proto::{
    encode_to_vec, image_chunks, Classification, DeviceToHost, Error, Feed, FrameDecoder, HostToDevice,
    ModelHash, Responder, CHUNK_LEN, MAX_FRAME_LEN, PROTOCOL_VERSION,
};

/// Decodes every frame in `bytes`, fed in pieces of `split` bytes: messages and rejections.
fn decode_stream<T>(bytes: &[u8], split: usize) -> Vec<Result<T, Error>>
where
    T: for<'d> serde::Deserialize<'d>,
{
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(split.max(1)) {
        let mut input = piece;
        loop {
            match decoder.feed::<T>(input) {
                Feed::NeedMore => break,
                Feed::Frame { message, rest } => {
                    out.push(Ok(message));
                    input = rest;
                }
                Feed::Rejected { error, rest } => {
                    out.push(Err(error));
                    input = rest;
                }
            }
        }
    }
    out
}

/// [`decode_stream`] for host messages, which borrow the decoder: their owned debug form.
fn decode_host_stream(bytes: &[u8], split: usize) -> Vec<Result<String, Error>> {
    let mut decoder = FrameDecoder::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(split.max(1)) {
        let mut input = piece;
        loop {
            match decoder.feed::<HostToDevice<'_>>(input) {
                Feed::NeedMore => break,
                Feed::Frame { message, rest } => {
                    out.push(Ok(format!("{message:?}")));
                    input = rest;
                }
                Feed::Rejected { error, rest } => {
                    out.push(Err(error));
                    input = rest;
                }
            }
        }
    }
    out
}

fn frame(message: &DeviceToHost) -> Vec<u8> {
    encode_to_vec(message).unwrap()
}

fn error(image_id: Option<u32>, error: Error) -> DeviceToHost {
    DeviceToHost::Error { image_id, error }
}

const HASH: ModelHash = ModelHash([7; 32]);

/// A stand-in classifier: class = first pixel mod 6, logits from the pixel sum.
fn fake_classify(image: &[u8; IMAGE_LEN]) -> shared::proto::Result<Classification> {
    let sum: i32 = image.iter().map(|&p| i32::from(p)).sum();
    Ok(Classification { class: image[0] % 6, logits: [sum, -sum, 0, 1, 2, 3], elapsed_us: 42 })
}

/// Runs a responder over `input` fed in pieces of `split` bytes; returns its decoded replies.
fn respond(responder: &mut Responder, input: &[u8], split: usize) -> Vec<DeviceToHost> {
    let (mut wire, mut messages) = (Vec::new(), Vec::new());
    for piece in input.chunks(split.max(1)) {
        let mut rest = piece;
        loop {
            let (reply, remaining) = responder.process(rest, &mut fake_classify);
            let Some(reply) = reply else { break };
            wire.extend_from_slice(reply.frame);
            messages.push(reply.message);
            rest = remaining;
        }
    }
    let decoded: Vec<_> =
        decode_stream::<DeviceToHost>(&wire, wire.len().max(1)).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(decoded, messages, "each reply's frame holds its message");
    decoded
}

fn host_frame(message: &HostToDevice<'_>) -> Vec<u8> {
    encode_to_vec(message).unwrap()
}

fn hello() -> Vec<u8> {
    host_frame(&HostToDevice::Hello { protocol_version: PROTOCOL_VERSION })
}

fn image_frames(image_id: u32, image: &[u8; IMAGE_LEN]) -> Vec<Vec<u8>> {
    image_chunks(image_id, image).map(|m| host_frame(&m)).collect()
}

fn test_image(seed: u8) -> [u8; IMAGE_LEN] {
    core::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
}

#[test]
fn a_partial_frame_needs_more_bytes_and_then_decodes() {
    let bytes = frame(&error(None, Error::BadCrc));
    let mut decoder = FrameDecoder::new();
    let (head, tail) = bytes.split_at(5);
    assert_eq!(decoder.feed::<DeviceToHost>(head), Feed::NeedMore);
    assert_eq!(
        decoder.feed::<DeviceToHost>(tail),
        Feed::Frame { message: error(None, Error::BadCrc), rest: &[] }
    );
}

#[test]
fn garbage_truncated_frames_and_bad_crcs_are_rejected_and_the_next_frame_decodes() {
    let good = frame(&error(Some(1), Error::ModelUnavailable));
    let mut flipped = good.clone();
    flipped[4] ^= 0x40;
    let mut stream = Vec::new();
    stream.extend_from_slice(b"\x00garbage\x00");
    stream.extend_from_slice(&good[..good.len() - 3]); // truncated: the next leading 0x00 ends it
    stream.extend_from_slice(&flipped);
    stream.extend_from_slice(&good);
    let decoded = decode_stream::<DeviceToHost>(&stream, 3);
    assert_eq!(decoded.len(), 4, "{decoded:?}");
    assert!(decoded[0].is_err() && decoded[1].is_err(), "{decoded:?}");
    assert_eq!(decoded[2], Err(Error::BadCrc));
    assert_eq!(decoded[3], Ok(error(Some(1), Error::ModelUnavailable)));
}

#[test]
fn an_overlong_frame_is_rejected_once_and_the_next_frame_decodes() {
    let good = frame(&error(None, Error::BadFraming));
    let mut stream = vec![0x55; 3 * MAX_FRAME_LEN];
    stream.extend_from_slice(&good);
    let decoded = decode_stream::<DeviceToHost>(&stream, 100);
    assert_eq!(decoded, [Err(Error::FrameTooLong), Ok(error(None, Error::BadFraming))]);
}

#[test]
fn a_frame_of_another_direction_is_a_bad_message() {
    // A valid CRC around bytes that are not a `DeviceToHost`: a host Hello has variant 0 but
    // too few bytes for a `DeviceHello`.
    let decoded = decode_stream::<DeviceToHost>(&hello(), 64);
    assert_eq!(decoded, [Err(Error::BadMessage)]);
}

#[test]
fn the_device_answers_the_handshake_and_classifies_an_image() {
    let mut responder = Responder::new(HASH, true);
    let image = test_image(3);
    let mut input = hello();
    image_frames(10, &image).iter().for_each(|f| input.extend_from_slice(f));
    let replies = respond(&mut responder, &input, 7);
    let DeviceToHost::Hello(device) = replies[0] else { panic!("{replies:?}") };
    assert_eq!(
        (device.protocol_version, device.model_hash, device.model_available),
        (PROTOCOL_VERSION, HASH, true)
    );
    assert_eq!(
        replies[1..],
        [DeviceToHost::Classified { image_id: 10, classification: fake_classify(&image).unwrap() }]
    );
}

#[test]
fn images_before_the_handshake_or_with_another_version_are_refused() {
    let mut responder = Responder::new(HASH, true);
    let first_chunk = &image_frames(4, &test_image(0))[0];
    let replies = respond(&mut responder, first_chunk, 64);
    assert_eq!(replies, [error(Some(4), Error::HandshakeRequired)]);

    let other_version = host_frame(&HostToDevice::Hello { protocol_version: PROTOCOL_VERSION + 1 });
    let mut input = other_version;
    input.extend_from_slice(first_chunk);
    let replies = respond(&mut responder, &input, 64);
    assert_eq!(
        replies,
        [
            error(None, Error::VersionMismatch { device: PROTOCOL_VERSION, host: PROTOCOL_VERSION + 1 }),
            error(Some(4), Error::HandshakeRequired),
        ]
    );
}

#[test]
fn the_device_reports_its_classifier_errors() {
    let mut responder = Responder::new(HASH, false);
    let mut input = hello();
    image_frames(1, &test_image(1)).iter().for_each(|f| input.extend_from_slice(f));
    let mut wire = Vec::new();
    let mut rest: &[u8] = &input;
    loop {
        let (reply, remaining) = responder.process(rest, &mut |_| Err(Error::ModelUnavailable));
        match reply {
            Some(reply) => wire.extend_from_slice(reply.frame),
            None => break,
        }
        rest = remaining;
    }
    let replies: Vec<_> = decode_stream::<DeviceToHost>(&wire, 64).into_iter().map(Result::unwrap).collect();
    assert!(matches!(replies[0], DeviceToHost::Hello(h) if !h.model_available));
    assert_eq!(replies[1..], [error(Some(1), Error::ModelUnavailable)]);
}

#[test]
fn a_lost_chunk_is_reported_and_the_resent_image_is_classified() {
    let mut responder = Responder::new(HASH, true);
    let image = test_image(9);
    let frames = image_frames(2, &image);
    let mut input = hello();
    input.extend_from_slice(&frames[0]);
    input.extend_from_slice(&frames[2]); // frames[1] lost
    frames.iter().for_each(|f| input.extend_from_slice(f));
    let replies = respond(&mut responder, &input, 1000);
    assert_eq!(
        replies[1..],
        [
            error(Some(2), Error::ChunkOutOfOrder { expected_offset: CHUNK_LEN as u16 }),
            DeviceToHost::Classified { image_id: 2, classification: fake_classify(&image).unwrap() },
        ]
    );
}

fn arb_host_message() -> impl Strategy<Value = (u8, u32, u16, Vec<u8>)> {
    (0u8..2, any::<u32>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..=CHUNK_LEN))
}

fn build_host_message(kind: u8, id: u32, n: u16, data: &[u8]) -> HostToDevice<'_> {
    if kind == 0 {
        HostToDevice::Hello { protocol_version: n }
    } else {
        HostToDevice::ImageChunk { image_id: id, offset: n, data }
    }
}

fn arb_error() -> impl Strategy<Value = Error> {
    (0u8..10, any::<u16>(), any::<u16>()).prop_map(|(k, a, b)| match k {
        0 => Error::FrameTooLong,
        1 => Error::BadFraming,
        2 => Error::BadCrc,
        3 => Error::BadMessage,
        4 => Error::HandshakeRequired,
        5 => Error::VersionMismatch { device: a, host: b },
        6 => Error::ChunkOutOfOrder { expected_offset: a },
        7 => Error::ChunkOutOfBounds { offset: a, len: b },
        8 => Error::ModelUnavailable,
        _ => Error::BufferTooSmall,
    })
}

fn arb_device_message() -> impl Strategy<Value = DeviceToHost> {
    prop_oneof![
        (any::<u16>(), any::<[u8; 32]>(), any::<bool>()).prop_map(|(v, h, a)| DeviceToHost::Hello(
            shared::proto::DeviceHello { protocol_version: v, model_hash: ModelHash(h), model_available: a }
        )),
        (any::<u32>(), any::<u8>(), any::<[i32; 6]>(), any::<u32>()).prop_map(|(id, class, logits, us)| {
            DeviceToHost::Classified {
                image_id: id,
                classification: Classification { class, logits, elapsed_us: us },
            }
        }),
        (proptest::option::of(any::<u32>()), arb_error())
            .prop_map(|(image_id, error)| DeviceToHost::Error { image_id, error }),
    ]
}

proptest! {
    #[test]
    fn host_messages_round_trip((kind, id, n, data) in arb_host_message()) {
        let message = build_host_message(kind, id, n, &data);
        let mut frame = encode_to_vec(&message).unwrap();
        prop_assert!(frame.len() <= MAX_FRAME_LEN);
        prop_assert_eq!(shared::proto::decode_from_bytes::<HostToDevice<'_>>(&mut frame), Ok(message));
    }

    #[test]
    fn device_messages_round_trip(message in arb_device_message()) {
        let mut frame = encode_to_vec(&message).unwrap();
        prop_assert!(frame.len() <= shared::proto::MAX_DEVICE_FRAME_LEN);
        prop_assert_eq!(shared::proto::decode_from_bytes::<DeviceToHost>(&mut frame), Ok(message));
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..4000),
        split in 1usize..300,
    ) {
        let decoded = decode_host_stream(&bytes, split);
        // A frame needs a delimiter after it: at most one result per zero byte.
        prop_assert!(decoded.len() <= bytes.iter().filter(|&&b| b == 0).count());
        let mut copy = bytes.clone();
        let _ = shared::proto::decode_from_bytes::<HostToDevice<'_>>(&mut copy);
    }

    /// Every valid frame survives any garbage (including zeros and partial frames) before it.
    #[test]
    fn valid_frames_survive_interleaved_garbage(
        messages in proptest::collection::vec(arb_device_message(), 1..8),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 8),
        split in 1usize..120,
    ) {
        let mut stream = Vec::new();
        for (message, noise) in messages.iter().zip(&garbage) {
            stream.extend_from_slice(noise);
            stream.extend_from_slice(&frame(message));
        }
        let decoded: Vec<_> = decode_stream::<DeviceToHost>(&stream, split).into_iter().filter_map(Result::ok).collect();
        // Garbage could hold a valid frame only with a matching CRC-32: the messages come through in order.
        let mut expected = messages.iter();
        let mut found = 0;
        for message in &decoded {
            if expected.clone().next() == Some(message) {
                expected.next();
                found += 1;
            }
        }
        prop_assert_eq!(found, messages.len(), "{:?}", decoded);
    }

    /// The device answers arbitrary bytes without panicking, and still serves a valid image after them.
    #[test]
    fn the_device_survives_arbitrary_bytes(
        noise in proptest::collection::vec(any::<u8>(), 0..3000),
        split in 1usize..500,
    ) {
        let mut responder = Responder::new(HASH, true);
        let image = test_image(5);
        let mut input = noise.clone();
        input.extend_from_slice(&hello());
        image_frames(77, &image).iter().for_each(|f| input.extend_from_slice(f));
        let replies = respond(&mut responder, &input, split);
        prop_assert_eq!(
            replies.last(),
            Some(&DeviceToHost::Classified { image_id: 77, classification: fake_classify(&image).unwrap() })
        );
    }
}
