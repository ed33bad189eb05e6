//! The firmware's application, independent of the board: the embedded model, the protocol
//! state machine ([`shared::proto::Responder`]) and the loop that ties them to a serial link.
//! The binaries (`src/bin/qemu.rs`, `src/bin/pico.rs`) only supply a [`Link`] and a [`Clock`].
#![no_std]

use shared::model::{FixedClassifier, IntCnn, QuantumHead, IMAGE_LEN};
use shared::proto::{Classification, Error, ModelHash, Responder};

/// The integer CNN, embedded at build time.
pub static CNN_ARTIFACT: &[u8] = include_bytes!("../../models/cnn-int8.qmed");
/// The quantum head, embedded at build time.
pub static HEAD_ARTIFACT: &[u8] = include_bytes!("../../models/quantum-head.qmed");
/// SHA-256 of the two artifacts (CNN first), computed by `build.rs`.
pub const MODEL_HASH: ModelHash = ModelHash(include!(concat!(env!("OUT_DIR"), "/model_hash.rs")));

/// Bytes of classifier scratch the firmware reserves; checked against the model at boot.
pub const SCRATCH_LEN: usize = 24 * 1024;

/// `i32` elements reserved for the convolution weights re-laid at boot
/// ([`IntCnn::group_weights`]: one word per weight, output channels in groups of 4), which
/// the fast kernels read. A model that needs more runs on its `i8` weights (same answers,
/// slower).
pub const GROUPED_LEN: usize = 6 * 1024;

/// A byte stream to the host.
pub trait Link {
    /// Copies the bytes already received (none if nothing is waiting) into `buf`; never blocks.
    fn read(&mut self, buf: &mut [u8]) -> usize;
    /// Sends all of `bytes`.
    fn write_all(&mut self, bytes: &[u8]);
}

/// The device's own time.
pub trait Clock {
    /// Microseconds since an arbitrary origin (wraps).
    fn now_us(&mut self) -> u32;
}

/// Marks the start of one classification for the instruction-counting QEMU plugin (`insn-count/`).
#[inline(never)]
#[allow(unsafe_code)] // `no_mangle` only: a stable symbol for the plugin to find.
#[no_mangle]
pub extern "C" fn qmed_classify_begin() {
    // An opaque use of a distinct value: neither removed as dead nor merged with the other.
    core::hint::black_box(1u32);
}

/// Marks the end of one classification for the instruction-counting QEMU plugin (`insn-count/`).
#[inline(never)]
#[allow(unsafe_code)] // `no_mangle` only: a stable symbol for the plugin to find.
#[no_mangle]
pub extern "C" fn qmed_classify_end() {
    core::hint::black_box(2u32);
}

/// The embedded model, parsed, or `None` when the artifacts do not load (the device then
/// answers every image with [`Error::ModelUnavailable`] instead of rebooting).
pub fn load_model(grouped: &'static mut [i32; GROUPED_LEN]) -> Option<FixedClassifier<'static>> {
    let cnn = match IntCnn::decode_from_bytes(CNN_ARTIFACT) {
        Ok(cnn) => cnn,
        Err(e) => {
            defmt::error!("embedded CNN does not load: {}", e);
            return None;
        }
    };
    let head = match QuantumHead::decode_from_bytes(HEAD_ARTIFACT) {
        Ok(head) => head,
        Err(e) => {
            defmt::error!("embedded quantum head does not load: {}", e);
            return None;
        }
    };
    let classifier = if cnn.grouped_len() <= GROUPED_LEN {
        match FixedClassifier::with_grouped_weights(cnn, head, grouped) {
            Ok(classifier) => classifier,
            Err(e) => {
                defmt::error!("re-laying the CNN weights failed: {}", e);
                return None;
            }
        }
    } else {
        // Same answers from the artifact's i8 weights, about 1.5 times the instructions.
        defmt::warn!(
            "model needs {} words for its re-laid weights, firmware has {}: slower kernels",
            cnn.grouped_len(),
            GROUPED_LEN
        );
        FixedClassifier::new(cnn, head)
    };
    if classifier.scratch_len() > SCRATCH_LEN {
        defmt::error!(
            "model needs {} bytes of scratch, firmware has {}",
            classifier.scratch_len(),
            SCRATCH_LEN
        );
        return None;
    }
    Some(classifier)
}

/// The application: protocol state, model and scratch. Lives in a `static` (it is large).
pub struct App {
    responder: Responder,
    classifier: Option<FixedClassifier<'static>>,
    scratch: [u8; SCRATCH_LEN],
    rx: [u8; 64],
}

impl App {
    /// Loads the embedded model, its convolution weights re-laid into `grouped`, and waits
    /// for a handshake.
    pub fn new(grouped: &'static mut [i32; GROUPED_LEN]) -> Self {
        let classifier = load_model(grouped);
        defmt::info!("model {} available: {}", defmt::Display2Format(&MODEL_HASH), classifier.is_some());
        Self {
            responder: Responder::new(MODEL_HASH, classifier.is_some()),
            classifier,
            scratch: [0; SCRATCH_LEN],
            rx: [0; 64],
        }
    }

    /// Reads what the link has, answers every complete frame in it. Call in a loop.
    pub fn poll(&mut self, link: &mut impl Link, clock: &mut impl Clock) {
        let Self { responder, classifier, scratch, rx } = self;
        let n = link.read(rx);
        let mut input = &rx[..n];
        let mut classify = |image: &[u8; IMAGE_LEN]| -> Result<Classification, Error> {
            let classifier = classifier.as_ref().ok_or(Error::ModelUnavailable)?;
            let start = clock.now_us();
            qmed_classify_begin();
            let prediction = classifier.classify(image, scratch);
            qmed_classify_end();
            let elapsed_us = clock.now_us().wrapping_sub(start);
            match prediction {
                Ok(prediction) => {
                    defmt::debug!("class {} in {} us", prediction.class, elapsed_us);
                    Ok(Classification::from_prediction(&prediction, elapsed_us))
                }
                Err(e) => {
                    defmt::error!("classification failed: {}", e);
                    Err(Error::ModelUnavailable)
                }
            }
        };
        while !input.is_empty() {
            let (reply, rest) = responder.process(input, &mut classify);
            if let Some(reply) = reply {
                link.write_all(reply.frame);
            }
            input = rest;
        }
    }
}
