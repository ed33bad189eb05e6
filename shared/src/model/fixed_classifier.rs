//! The integer model end to end, as the firmware runs it and `edge-runtime --engine fixed`
//! reproduces it bit for bit: image -> int8 CNN -> angles -> Q30 circuit -> fixed-point head.

use super::{IntCnn, QuantumHead, CLASSES};
use crate::nn;
use crate::quantum::fixed::{Angle, FixedUnitary, Q30};
use crate::quantum::WIRES;

/// What the integer model says about one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FixedPrediction {
    /// Index of the largest logit (the first one on ties), into [`super::CLASS_NAMES`].
    pub class: u8,
    /// Logits with [`super::HEAD_FRAC_BITS`] fractional bits.
    pub logits: [i32; CLASSES],
    /// The CNN's angles.
    pub angles: [Angle; WIRES],
    /// The circuit's `<Z_i>` in [`Q30`].
    pub expvals: [Q30; WIRES],
}

/// The integer CNN and the quantum head, ready to classify.
#[derive(Debug, Clone)]
pub struct FixedClassifier<'a> {
    cnn: IntCnn<'a>,
    unitary: FixedUnitary,
    head: QuantumHead,
}

impl<'a> FixedClassifier<'a> {
    /// Pairs a parsed CNN with a parsed head.
    pub fn new(cnn: IntCnn<'a>, head: QuantumHead) -> Self {
        Self { unitary: head.fixed_unitary(), cnn, head }
    }

    /// Bytes of scratch memory [`Self::classify`] needs.
    pub fn scratch_len(&self) -> usize {
        self.cnn.scratch_len()
    }

    /// The integer CNN.
    pub fn cnn(&self) -> &IntCnn<'a> {
        &self.cnn
    }

    /// Classifies a 64x64 gray image.
    ///
    /// # Errors
    /// [`nn::Error::Length`] for an image that is not 64x64 or a short `scratch`.
    pub fn classify(&self, image: &[u8], scratch: &mut [u8]) -> nn::Result<FixedPrediction> {
        let angles = self.cnn.run(image, scratch)?;
        let expvals = self.unitary.expvals(&angles);
        let logits = self.head.logits_fixed(&expvals);
        let class =
            logits.iter().enumerate().fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
        Ok(FixedPrediction { class: class as u8, logits, angles, expvals })
    }
}
