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
    grouped: Grouped<'a>,
    unitary: FixedUnitary,
    head: QuantumHead,
}

/// The convolution weights as [`IntCnn::group_weights`] lays them out, when there is room.
#[derive(Debug, Clone)]
enum Grouped<'a> {
    /// Not re-laid: the kernels read the artifact's `i8` weights.
    None,
    /// In a buffer the caller lends (the firmware's static RAM).
    Borrowed(&'a [i32]),
    /// On the heap (hosts).
    #[cfg(any(test, feature = "alloc"))]
    Owned(alloc::vec::Vec<i32>),
}

impl<'a> FixedClassifier<'a> {
    /// Pairs a parsed CNN with a parsed head. With the `alloc` feature (hosts) the
    /// convolution weights are re-laid on the heap for the faster kernels; either way the
    /// answers are the same integers.
    pub fn new(cnn: IntCnn<'a>, head: QuantumHead) -> Self {
        #[cfg(any(test, feature = "alloc"))]
        let grouped = {
            let mut buffer = alloc::vec![0; cnn.grouped_len()];
            match cnn.group_weights(&mut buffer) {
                Ok(()) => Grouped::Owned(buffer),
                Err(_) => Grouped::None,
            }
        };
        #[cfg(not(any(test, feature = "alloc")))]
        let grouped = Grouped::None;
        Self { unitary: head.fixed_unitary(), cnn, grouped, head }
    }

    /// [`Self::new`] with the re-laid convolution weights in `buffer` (at least
    /// [`IntCnn::grouped_len`] elements; the firmware lends static RAM).
    ///
    /// # Errors
    /// [`nn::Error::Length`] when `buffer` is too short.
    pub fn with_grouped_weights(
        cnn: IntCnn<'a>,
        head: QuantumHead,
        buffer: &'a mut [i32],
    ) -> nn::Result<Self> {
        cnn.group_weights(buffer)?;
        let grouped = Grouped::Borrowed(&buffer[..cnn.grouped_len()]);
        Ok(Self { unitary: head.fixed_unitary(), cnn, grouped, head })
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
        let angles = match &self.grouped {
            Grouped::None => self.cnn.run(image, scratch)?,
            Grouped::Borrowed(weights) => self.cnn.run_grouped(image, scratch, weights)?,
            #[cfg(any(test, feature = "alloc"))]
            Grouped::Owned(weights) => self.cnn.run_grouped(image, scratch, weights)?,
        };
        let expvals = self.unitary.expvals(&angles);
        let logits = self.head.logits_fixed(&expvals);
        let class =
            logits.iter().enumerate().fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
        Ok(FixedPrediction { class: class as u8, logits, angles, expvals })
    }
}
