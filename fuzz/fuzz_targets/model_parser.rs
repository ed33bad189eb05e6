//! The model-artifact parsers on arbitrary bytes, both as a whole artifact (container checks)
//! and as a payload sealed in a valid container (so the fuzzer reaches the payload decoder and
//! the validation behind the CRC): they never panic; an artifact they accept re-encodes to
//! bytes that parse and re-encode identically, and an accepted CNN runs on an image.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::model::{seal_to_vec, IntCnn, Kind, QuantumHead, IMAGE_LEN};

/// Largest scratch a run is tried with (the committed model needs 8 KB); bigger valid models
/// are parsed but not run, to keep each input fast.
const MAX_SCRATCH: usize = 256 * 1024;

fn check_cnn(bytes: &[u8]) {
    let Ok(cnn) = IntCnn::decode_from_bytes(bytes) else { return };
    let encoded = cnn.encode_to_vec();
    assert_eq!(IntCnn::decode_from_bytes(&encoded).as_ref(), Ok(&cnn));
    if cnn.scratch_len() <= MAX_SCRATCH {
        let mut scratch = vec![0; cnn.scratch_len()];
        cnn.run(&[128; IMAGE_LEN], &mut scratch).expect("a validated CNN runs on a 64x64 image");
    }
}

fn check_head(bytes: &[u8]) {
    let Ok(head) = QuantumHead::decode_from_bytes(bytes) else { return };
    // Compared as bytes: the head holds f32s, and NaN != NaN.
    let encoded = head.encode_to_vec();
    let reparsed = QuantumHead::decode_from_bytes(&encoded).expect("an encoded head parses");
    assert_eq!(reparsed.encode_to_vec(), encoded);
}

fuzz_target!(|data: &[u8]| {
    check_cnn(data);
    check_head(data);
    check_cnn(&seal_to_vec(Kind::IntCnn, data));
    check_head(&seal_to_vec(Kind::QuantumHead, data));
});
