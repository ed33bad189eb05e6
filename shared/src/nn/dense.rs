//! Fully connected layers on `u8` activations with per-output symmetric `i8` weights.

use super::error::{check_len, Result};
use super::Requant;
use serde::{Deserialize, Serialize};

/// Shape of a fully connected layer: weights `[outputs][inputs]` (as ONNX `Gemm` with
/// `transB`, and burn's `Linear` transposed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DenseOptions {
    /// Input features.
    pub inputs: u16,
    /// Output features.
    pub outputs: u16,
}

impl DenseOptions {
    /// Weight elements.
    pub fn weights_len(&self) -> usize {
        self.inputs as usize * self.outputs as usize
    }

    fn check(&self, input: &[u8], weights: &[u8], outputs: usize) -> Result<()> {
        check_len("input", self.inputs as usize, input.len())?;
        check_len("weights", self.weights_len(), weights.len())?;
        check_len("output", self.outputs as usize, outputs)
    }
}

/// `acc[o] = bias(o) + sum_i input[i] * weights[o][i]`, the raw `i32` accumulators (the
/// last layer's, which the caller turns into angles).
///
/// # Errors
/// [`super::Error::Length`] when a buffer does not match `options`.
pub fn dense(
    options: &DenseOptions,
    input: &[u8],
    weights: &[u8],
    bias: impl Fn(usize) -> i32,
    acc: &mut [i32],
) -> Result<()> {
    options.check(input, weights, acc.len())?;
    for (o, (a, row)) in acc.iter_mut().zip(weights.chunks_exact(options.inputs as usize)).enumerate() {
        *a = dot(input, row, bias(o));
    }
    Ok(())
}

/// `output[o] = relu(requant(o)(acc[o]))` with `acc` as in [`dense`].
///
/// # Errors
/// [`super::Error::Length`] when a buffer does not match `options`.
pub fn dense_relu(
    options: &DenseOptions,
    input: &[u8],
    weights: &[u8],
    bias: impl Fn(usize) -> i32,
    requant: impl Fn(usize) -> Requant,
    output: &mut [u8],
) -> Result<()> {
    options.check(input, weights, output.len())?;
    for (o, (y, row)) in output.iter_mut().zip(weights.chunks_exact(options.inputs as usize)).enumerate() {
        *y = requant(o).apply_relu_u8(dot(input, row, bias(o)));
    }
    Ok(())
}

/// `bias + sum x * w` with `w` as `i8` bytes.
#[inline]
fn dot(input: &[u8], row: &[u8], bias: i32) -> i32 {
    input.iter().zip(row).fold(bias, |s, (&x, &w)| s.wrapping_add(i32::from(x) * i32::from(w as i8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_signed_weights() {
        let o = DenseOptions { inputs: 3, outputs: 2 };
        let mut acc = [0; 2];
        dense(&o, &[1, 2, 3], &[1, 0xFF, 2, 0x80, 0, 1], |i| [10, -10][i], &mut acc).unwrap();
        assert_eq!(acc, [10 + 1 - 2 + 6, -10 - 128 + 3]);
        assert!(dense(&o, &[1, 2], &[0; 6], |_| 0, &mut acc).is_err());
    }
}
