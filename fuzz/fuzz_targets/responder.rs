//! The device side on arbitrary bytes (what a serial line can deliver): it never panics, every
//! reply it sends is a valid frame holding the message it says, and a clean handshake after
//! the garbage is still answered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::model::IMAGE_LEN;
use shared::proto::{
    decode_from_bytes, encode_to_vec, Classification, DeviceToHost, HostToDevice, ModelHash, Responder,
    PROTOCOL_VERSION,
};

/// Stands in for the model: the answer depends on the pixels, so a wrong image shows.
fn classify(image: &[u8; IMAGE_LEN]) -> shared::proto::Result<Classification> {
    let sum = image.iter().map(|&p| i32::from(p)).sum();
    Ok(Classification { class: image[0] % 6, logits: [sum, 0, 0, 0, 0, 0], elapsed_us: 1 })
}

/// Feeds `input` to the device; returns its replies after checking each frame.
fn replies(responder: &mut Responder, input: &[u8]) -> Vec<DeviceToHost> {
    let mut out = Vec::new();
    let mut rest = input;
    loop {
        let (reply, remaining) = responder.process(rest, &mut classify);
        let Some(reply) = reply else { break };
        let mut frame = reply.frame.to_vec();
        assert_eq!(decode_from_bytes::<DeviceToHost>(&mut frame), Ok(reply.message));
        out.push(reply.message);
        rest = remaining;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut responder = Responder::new(ModelHash([0x5a; 32]), true);
    replies(&mut responder, data);
    let hello = encode_to_vec(&HostToDevice::Hello { protocol_version: PROTOCOL_VERSION }).expect("encodes");
    let answers = replies(&mut responder, &hello);
    assert!(matches!(answers.last(), Some(DeviceToHost::Hello(_))), "{answers:?}");
});
