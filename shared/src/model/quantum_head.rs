//! The circuit and the linear head: float parameters for hosts, fixed point for the firmware.

use super::container::{self, Kind};
use super::{Error, Result, CLASSES};
use crate::quantum::fixed::{FixedUnitary, Q30};
use crate::quantum::{Ansatz, LayerWeights, Rotation, Unitary, DIM, MAX_LAYERS, WIRES};
use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Fractional bits of the fixed-point head's weights, biases and logits.
pub const HEAD_FRAC_BITS: u32 = 16;

/// Largest magnitude of a fixed-point head weight or bias: keeps `sum_i w_i <Z_i>` (4 terms of
/// at most `2^28 * 2^30`) inside `i64`, and allows float weights up to 4096.
const HEAD_FIXED_LIMIT: i32 = 1 << 28;

/// The quantum part of the model and its classifier head, `angles -> <Z> -> logits`.
///
/// Holds the circuit's weights in `f32` (hosts compile them to a [`Unitary`]) and the same
/// circuit compiled and rounded to [`Q30`] (the firmware applies it as is), and the head
/// `logits = W <Z> + b` in `f32` and with [`HEAD_FRAC_BITS`] fractional bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantumHead {
    rotation: Rotation,
    ranges: Vec<u8, MAX_LAYERS>,
    weights: Vec<LayerWeights<f32>, MAX_LAYERS>,
    unitary_re: [[Q30; DIM]; DIM],
    unitary_im: [[Q30; DIM]; DIM],
    head_weight: [[f32; WIRES]; CLASSES],
    head_bias: [f32; CLASSES],
    head_weight_fixed: [[i32; WIRES]; CLASSES],
    head_bias_fixed: [i32; CLASSES],
}

fn to_head_fixed(x: f32) -> Result<i32> {
    let q = num_traits::Float::round(f64::from(x) * f64::from(1u32 << HEAD_FRAC_BITS));
    if q.abs() <= f64::from(HEAD_FIXED_LIMIT) {
        Ok(q as i32)
    } else {
        Err(Error::Invalid("head parameter outside the fixed-point range (|x| > 4096)"))
    }
}

impl QuantumHead {
    /// Builds the artifact from trained parameters (on the host: compiles and rounds the
    /// circuit in `f64`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for weights that do not match `ansatz`, non-finite values, or head
    /// parameters outside the fixed-point range.
    pub fn new(
        ansatz: &Ansatz,
        weights: &[LayerWeights<f32>],
        head_weight: [[f32; WIRES]; CLASSES],
        head_bias: [f32; CLASSES],
    ) -> Result<Self> {
        let all_finite =
            weights.iter().flatten().flatten().chain(head_weight.iter().flatten()).chain(&head_bias);
        if !all_finite.into_iter().all(|x| x.is_finite()) {
            return Err(Error::Invalid("non-finite parameter"));
        }
        let wide: Vec<LayerWeights<f64>, MAX_LAYERS> =
            weights.iter().map(|l| l.map(|r| r.map(f64::from))).collect();
        let unitary = Unitary::compile(ansatz, &wide)
            .map_err(|_| Error::Invalid("weights do not match the circuit"))?;
        let fixed = FixedUnitary::quantize(&unitary);
        let (_, re, im) = fixed.parts();
        let mut head_weight_fixed = [[0; WIRES]; CLASSES];
        for (q, w) in head_weight_fixed.iter_mut().flatten().zip(head_weight.iter().flatten()) {
            *q = to_head_fixed(*w)?;
        }
        let mut head_bias_fixed = [0; CLASSES];
        for (q, b) in head_bias_fixed.iter_mut().zip(&head_bias) {
            *q = to_head_fixed(*b)?;
        }
        Ok(Self {
            rotation: ansatz.rotation(),
            ranges: ansatz.ranges().iter().copied().collect(),
            // Cannot overflow: `Unitary::compile` checked one entry per layer.
            weights: weights.iter().copied().collect(),
            unitary_re: *re,
            unitary_im: *im,
            head_weight,
            head_bias,
            head_weight_fixed,
            head_bias_fixed,
        })
    }

    /// Parses and validates an artifact.
    ///
    /// # Errors
    /// Any container error (see [`container::open`]), [`Error::Payload`] when the payload does
    /// not decode exactly, [`Error::Invalid`] when it decodes to an invalid model.
    pub fn decode_from_bytes(bytes: &[u8]) -> Result<Self> {
        let head: Self = container::decode(bytes, Kind::QuantumHead)?;
        head.validate()?;
        Ok(head)
    }

    fn validate(&self) -> Result<()> {
        let ranges: Vec<u32, MAX_LAYERS> = self.ranges.iter().map(|&r| u32::from(r)).collect();
        let ansatz = Ansatz::with_ranges(&ranges).map_err(|_| Error::Invalid("circuit ranges"))?;
        if self.ranges.iter().any(|&r| r >= WIRES as u8) {
            return Err(Error::Invalid("circuit ranges are not reduced mod 4"));
        }
        ansatz
            .check_weights(&self.weights)
            .map_err(|_| Error::Invalid("weights do not match the circuit"))?;
        let floats = self.weights.iter().flatten().flatten().chain(self.head_weight.iter().flatten());
        if !floats.chain(&self.head_bias).all(|x| x.is_finite()) {
            return Err(Error::Invalid("non-finite parameter"));
        }
        // A unitary's entries are at most 1 in magnitude; larger ones would overflow the
        // firmware's i64 sums.
        let one = crate::quantum::fixed::ONE;
        if self.unitary_re.iter().chain(&self.unitary_im).flatten().any(|&q| !(-one..=one).contains(&q)) {
            return Err(Error::Invalid("compiled unitary entry outside [-1, 1]"));
        }
        let head = self.head_weight_fixed.iter().flatten().chain(&self.head_bias_fixed);
        if head.into_iter().any(|q| q.unsigned_abs() > HEAD_FIXED_LIMIT as u32) {
            return Err(Error::Invalid("fixed-point head parameter out of range"));
        }
        Ok(())
    }

    /// Encodes into `buf`; returns the artifact's bytes.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` cannot hold it.
    pub fn encode_to_slice<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        container::encode_into(self, Kind::QuantumHead, buf)
    }

    /// Encodes into a new vector.
    #[cfg(any(test, feature = "alloc"))]
    pub fn encode_to_vec(&self) -> alloc::vec::Vec<u8> {
        container::encode_to_vec(self, Kind::QuantumHead)
    }

    /// The circuit.
    pub fn ansatz(&self) -> Ansatz {
        Ansatz::from_validated(self.rotation, self.ranges.clone())
    }

    /// The circuit's weights.
    pub fn weights(&self) -> &[LayerWeights<f32>] {
        &self.weights
    }

    /// The circuit compiled in `f32` from [`Self::weights`] (the host inference path).
    pub fn unitary(&self) -> Unitary<f32> {
        // Cannot fail: `new` and `decode_from_bytes` checked one weight entry per layer.
        Unitary::compile(&self.ansatz(), &self.weights).unwrap_or_else(|_| unreachable!())
    }

    /// The circuit compiled and rounded to [`Q30`] (the firmware path).
    pub fn fixed_unitary(&self) -> FixedUnitary {
        FixedUnitary::from_parts(self.rotation, self.unitary_re, self.unitary_im)
    }

    /// `(W, b)` of the head in `f32`.
    pub fn head(&self) -> (&[[f32; WIRES]; CLASSES], &[f32; CLASSES]) {
        (&self.head_weight, &self.head_bias)
    }

    /// `W <Z> + b` in `f32`.
    pub fn logits(&self, expvals: &[f32; WIRES]) -> [f32; CLASSES] {
        core::array::from_fn(|j| {
            self.head_weight[j].iter().zip(expvals).fold(self.head_bias[j], |acc, (w, e)| acc + w * e)
        })
    }

    /// `W <Z> + b` in fixed point: `expvals` in [`Q30`], logits with [`HEAD_FRAC_BITS`]
    /// fractional bits.
    pub fn logits_fixed(&self, expvals: &[Q30; WIRES]) -> [i32; CLASSES] {
        core::array::from_fn(|j| {
            let acc = self.head_weight_fixed[j]
                .iter()
                .zip(expvals)
                .fold(0i64, |acc, (&w, &e)| acc + i64::from(w) * i64::from(e));
            // Both bounds (`HEAD_FIXED_LIMIT`, |e| <= 2^30) keep this within i32.
            ((acc + (1 << 29)) >> 30) as i32 + self.head_bias_fixed[j]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QuantumHead {
        let ansatz = Ansatz::new(4).unwrap();
        let weights: std::vec::Vec<LayerWeights<f32>> = (0..4)
            .map(|l| {
                core::array::from_fn(|w| core::array::from_fn(|k| (l * 12 + w * 3 + k) as f32 * 0.37 - 5.0))
            })
            .collect();
        let head_weight =
            core::array::from_fn(|j| core::array::from_fn(|i| (j as f32 - 2.5) * (i as f32 + 1.0) * 0.8));
        let head_bias = core::array::from_fn(|j| j as f32 * 0.1 - 0.3);
        QuantumHead::new(&ansatz, &weights, head_weight, head_bias).unwrap()
    }

    #[test]
    fn round_trips_through_bytes() {
        let head = sample();
        let bytes = head.encode_to_vec();
        assert_eq!(QuantumHead::decode_from_bytes(&bytes), Ok(head.clone()));
        let mut buf = [0u8; 8192];
        assert_eq!(head.encode_to_slice(&mut buf).unwrap(), &bytes[..]);
        assert_eq!(head.encode_to_slice(&mut buf[..100]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_refused() {
        let bytes = sample().encode_to_vec();
        for len in 0..bytes.len() {
            assert!(QuantumHead::decode_from_bytes(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(QuantumHead::decode_from_bytes(&bad).is_err(), "flip at {at}");
        }
    }

    #[test]
    fn fixed_path_tracks_the_float_path() {
        let head = sample();
        let (u, fu) = (head.unitary(), head.fixed_unitary());
        let x = [0.3f32, -1.2, 2.9, 0.05];
        let e = u.expvals(&x);
        let fe = fu.expvals(&x.map(|v| crate::quantum::fixed::Angle::from_radians(f64::from(v))));
        for (a, b) in e.iter().zip(&fe) {
            assert!((f64::from(*a) - crate::quantum::fixed::to_f64(*b)).abs() < 1e-5);
        }
        let (l, fl) = (head.logits(&e), head.logits_fixed(&fe));
        for (a, b) in l.iter().zip(&fl) {
            assert!((a - *b as f32 / 65536.0).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn refuses_parameters_it_cannot_represent() {
        let ansatz = Ansatz::new(1).unwrap();
        let w = [[[0.0f32; 3]; 4]];
        let mut head_weight = [[0.0f32; 4]; 6];
        head_weight[2][1] = 1e6;
        assert!(matches!(QuantumHead::new(&ansatz, &w, head_weight, [0.0; 6]), Err(Error::Invalid(_))));
        head_weight[2][1] = f32::NAN;
        assert!(matches!(QuantumHead::new(&ansatz, &w, head_weight, [0.0; 6]), Err(Error::Invalid(_))));
        assert!(QuantumHead::new(&ansatz, &[w[0], w[0]], [[0.0; 4]; 6], [0.0; 6]).is_err());
    }
}
