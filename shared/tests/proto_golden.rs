//! The wire format, frozen: every message below must encode to exactly these bytes and
//! decode back. The bytes come from `proto_golden.py` beside this file, which encodes by hand
//! (postcard's rules, zlib's CRC-32, a textbook COBS), independently of postcard; a failure
//! here means the format changed, which needs a new `PROTOCOL_VERSION`.

use shared::proto::{
    decode_from_bytes, encode_to_slice, encode_to_vec, frame::max_frame_len, Classification, DeviceHello,
    DeviceToHost, Error, HostToDevice, ModelHash, CHUNK_LEN, MAX_DEVICE_FRAME_LEN, MAX_DEVICE_MESSAGE_LEN,
    MAX_FRAME_LEN, MAX_HOST_MESSAGE_LEN, PROTOCOL_VERSION,
};

const HOST_FRAMES: &[(HostToDevice<'static>, &[u8])] = &[
    (HostToDevice::Hello { protocol_version: 1 }, &[0x00, 0x01, 0x06, 0x01, 0x69, 0x22, 0xde, 0x36, 0x00]),
    (
        HostToDevice::ImageChunk { image_id: 7, offset: 1024, data: &[1, 2, 3] },
        &[0x00, 0x0d, 0x01, 0x07, 0x80, 0x08, 0x03, 0x01, 0x02, 0x03, 0x81, 0x48, 0xa7, 0xfa, 0x00],
    ),
];

const DEVICE_FRAMES: &[(DeviceToHost, &[u8])] = &[
    (
        DeviceToHost::Hello(DeviceHello {
            protocol_version: 1,
            model_hash: ModelHash([0x11; 32]),
            model_available: true,
        }),
        &[
            0x00, 0x01, 0x27, 0x01, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
            0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
            0x11, 0x11, 0x11, 0x11, 0x01, 0x51, 0xf0, 0xb7, 0x7a, 0x00,
        ],
    ),
    (
        DeviceToHost::Classified {
            image_id: 300,
            classification: Classification {
                class: 2,
                logits: [-1, 0, 1, 65536, -65536, i32::MAX],
                elapsed_us: 123_456,
            },
        },
        &[
            0x00, 0x06, 0x01, 0xac, 0x02, 0x02, 0x01, 0x14, 0x02, 0x80, 0x80, 0x08, 0xff, 0xff, 0x07, 0xfe,
            0xff, 0xff, 0xff, 0x0f, 0xc0, 0xc4, 0x07, 0xf2, 0xc8, 0xe4, 0x36, 0x00,
        ],
    ),
    (
        DeviceToHost::Error { image_id: None, error: Error::BadCrc },
        &[0x00, 0x02, 0x02, 0x06, 0x02, 0x50, 0x6c, 0xcb, 0x12, 0x00],
    ),
    (
        DeviceToHost::Error { image_id: Some(5), error: Error::ChunkOutOfOrder { expected_offset: 2048 } },
        &[0x00, 0x0b, 0x02, 0x01, 0x05, 0x06, 0x80, 0x10, 0xb7, 0x2d, 0x0d, 0xd4, 0x00],
    ),
    (
        DeviceToHost::Error { image_id: None, error: Error::VersionMismatch { device: 1, host: 2 } },
        &[0x00, 0x02, 0x02, 0x08, 0x05, 0x01, 0x02, 0xfb, 0x36, 0x3c, 0x4d, 0x00],
    ),
];

#[test]
fn host_messages_encode_to_the_golden_bytes_and_back() {
    for (message, bytes) in HOST_FRAMES {
        let mut buf = [0u8; MAX_FRAME_LEN];
        assert_eq!(encode_to_slice(message, &mut buf).unwrap(), *bytes, "{message:?}");
        assert_eq!(encode_to_vec(message).unwrap(), *bytes, "{message:?}");
        let mut frame = bytes.to_vec();
        assert_eq!(decode_from_bytes::<HostToDevice<'_>>(&mut frame), Ok(*message));
    }
}

#[test]
fn device_messages_encode_to_the_golden_bytes_and_back() {
    for (message, bytes) in DEVICE_FRAMES {
        let mut buf = [0u8; MAX_DEVICE_FRAME_LEN];
        assert_eq!(encode_to_slice(message, &mut buf).unwrap(), *bytes, "{message:?}");
        let mut frame = bytes.to_vec();
        assert_eq!(decode_from_bytes::<DeviceToHost>(&mut frame), Ok(*message));
    }
}

#[test]
fn frame_bounds_are_pinned() {
    assert_eq!(PROTOCOL_VERSION, 1);
    assert_eq!(CHUNK_LEN, 512);
    assert_eq!(MAX_HOST_MESSAGE_LEN, 523);
    assert_eq!(MAX_FRAME_LEN, 532);
    assert_eq!(MAX_DEVICE_MESSAGE_LEN, 42);
    assert_eq!(MAX_DEVICE_FRAME_LEN, 49);
}

/// Worst cases: every varint at its longest, bytes that make COBS add the most.
#[test]
fn the_largest_messages_fit_the_bounds() {
    let data = [0xffu8; CHUNK_LEN];
    let chunk = HostToDevice::ImageChunk { image_id: u32::MAX, offset: u16::MAX, data: &data };
    let frame = encode_to_vec(&chunk).unwrap();
    assert_eq!(postcard::to_allocvec(&chunk).unwrap().len(), MAX_HOST_MESSAGE_LEN);
    assert!(frame.len() <= MAX_FRAME_LEN, "{} > {MAX_FRAME_LEN}", frame.len());

    let logits = [i32::MIN; 6];
    let device = [
        DeviceToHost::Classified {
            image_id: u32::MAX,
            classification: Classification { class: u8::MAX, logits, elapsed_us: u32::MAX },
        },
        DeviceToHost::Hello(DeviceHello {
            protocol_version: u16::MAX,
            model_hash: ModelHash([0xff; 32]),
            model_available: true,
        }),
        DeviceToHost::Error {
            image_id: Some(u32::MAX),
            error: Error::ChunkOutOfBounds { offset: u16::MAX, len: u16::MAX },
        },
        DeviceToHost::Error {
            image_id: Some(u32::MAX),
            error: Error::VersionMismatch { device: u16::MAX, host: u16::MAX },
        },
    ];
    for message in device {
        let len = postcard::to_allocvec(&message).unwrap().len();
        assert!(len <= MAX_DEVICE_MESSAGE_LEN, "{message:?}: {len}");
        assert!(encode_to_vec(&message).unwrap().len() <= MAX_DEVICE_FRAME_LEN, "{message:?}");
    }
}

/// COBS adds a byte per 254 non-zero bytes: check the bound for every chunk length, with the
/// shortest and the longest varints around it (the blocks then end at every position).
#[test]
fn frame_bound_holds_for_every_message_length() {
    let data = [0x5a; CHUNK_LEN];
    for len in 1..=CHUNK_LEN {
        for (image_id, offset) in [(0, 0), (u32::MAX, u16::MAX), (1 << 28, 128)] {
            let chunk = HostToDevice::ImageChunk { image_id, offset, data: &data[..len] };
            let message_len = postcard::to_allocvec(&chunk).unwrap().len();
            let mut buf = [0u8; MAX_FRAME_LEN];
            let frame = encode_to_slice(&chunk, &mut buf).unwrap();
            assert!(
                frame.len() <= max_frame_len(message_len),
                "{len}: {} > {}",
                frame.len(),
                max_frame_len(message_len)
            );
            assert_eq!(encode_to_vec(&chunk).unwrap(), frame);
        }
    }
}

#[test]
fn too_small_a_buffer_is_an_error_not_a_truncated_frame() {
    let (message, bytes) = &DEVICE_FRAMES[0];
    let mut buf = vec![0u8; bytes.len() - 1];
    assert_eq!(encode_to_slice(message, &mut buf), Err(Error::BufferTooSmall));
    assert_eq!(encode_to_slice(message, &mut []), Err(Error::BufferTooSmall));
}

#[test]
fn model_hash_is_sha256_of_both_artifacts_in_order() {
    // sha256(b"abc"), split across the two artifacts.
    let hash = ModelHash::of_artifacts(b"a", b"bc");
    assert_eq!(hash.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
