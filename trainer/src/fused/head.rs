//! The hybrid's head, from the encoder's flattened features to the class logits: the linear
//! layer to the circuit's angles, the 4-qubit circuit ([`super::quantum`]) and the linear layer
//! to the classes, forward and backward on plain slices. In the model these are a dozen small
//! tensor operations, each with its autodiff node; here they are one.
//!
//! A linear layer's weight is burn's `[in, out]`; the kernels take it transposed, `[out, in]`,
//! so the forward pass is one contiguous dot product per output and both gradients are
//! contiguous `axpy`s.

use shared::quantum::{Ansatz, WIRES};

use super::dense::{axpy, dot, transpose};
use super::quantum;

/// The head's sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    pub batch: usize,
    /// Values per row entering the first linear layer.
    pub features: usize,
    pub classes: usize,
}

impl HeadShape {
    pub fn input_dims(&self) -> [usize; 2] {
        [self.batch, self.features]
    }
    pub fn output_dims(&self) -> [usize; 2] {
        [self.batch, self.classes]
    }
}

/// The head's parameters, as burn's modules hold them.
pub struct HeadParams<'a> {
    /// `[features, 4]`.
    pub fc_weight: &'a [f32],
    /// `[4]`.
    pub fc_bias: &'a [f32],
    /// `[layers, 4, 3]`.
    pub circuit: &'a [f32],
    /// `[4, classes]`.
    pub head_weight: &'a [f32],
    /// `[classes]`.
    pub head_bias: &'a [f32],
}

/// The forward pass: its logits, and what its backward pass needs.
pub struct Forward {
    /// `[batch, classes]`.
    pub logits: Vec<f32>,
    pub kept: Kept,
}

/// What the backward pass needs from the forward pass.
#[derive(Debug)]
pub struct Kept {
    /// The first linear layer's weight transposed, `[4, features]`.
    fc_weight: Vec<f32>,
    /// The circuit's input, `[batch, 4]`.
    angles: Vec<f32>,
    /// The circuit's output, `[batch, 4]`.
    expvals: Vec<f32>,
    /// The head's weight transposed, `[classes, 4]`.
    head_weight: Vec<f32>,
}

/// Gradients of the input and of every parameter, shaped as [`HeadParams`].
pub struct Gradients {
    /// `[batch, features]`; empty unless asked for.
    pub input: Vec<f32>,
    pub fc_weight: Vec<f32>,
    pub fc_bias: Vec<f32>,
    pub circuit: Vec<f32>,
    pub head_weight: Vec<f32>,
    pub head_bias: Vec<f32>,
}

/// `head(circuit(fc(features)))` for `features [batch, features]`.
pub fn forward(shape: &HeadShape, ansatz: &Ansatz, features: &[f32], params: &HeadParams) -> Forward {
    let fc_weight = transpose(params.fc_weight, shape.features, WIRES);
    let angles = linear(features, &fc_weight, params.fc_bias);
    let expvals = quantum::expvals(ansatz, &angles, params.circuit);
    let head_weight = transpose(params.head_weight, WIRES, shape.classes);
    let logits = linear(&expvals, &head_weight, params.head_bias);
    Forward { logits, kept: Kept { fc_weight, angles, expvals, head_weight } }
}

/// The gradients for `grad [batch, classes]` of the logits, with the circuit's `weights`
/// (the biases do not enter them); the input's only when `input_grad`.
pub fn backward(
    shape: &HeadShape,
    ansatz: &Ansatz,
    features: &[f32],
    circuit_weights: &[f32],
    kept: &Kept,
    grad: &[f32],
    input_grad: bool,
) -> Gradients {
    let (grad_expvals, head_weight, head_bias) =
        linear_backward(&kept.expvals, &kept.head_weight, grad, shape.classes, true);
    let (grad_angles, circuit) = quantum::backward(ansatz, &kept.angles, circuit_weights, &grad_expvals);
    let (input, fc_weight, fc_bias) =
        linear_backward(features, &kept.fc_weight, &grad_angles, WIRES, input_grad);
    Gradients {
        input,
        fc_weight: transpose(&fc_weight, WIRES, shape.features),
        fc_bias,
        circuit,
        head_weight: transpose(&head_weight, shape.classes, WIRES),
        head_bias,
    }
}

/// `x [rows, in] · weight^T + bias` for `weight [out, in]`, `bias [out]`.
fn linear(x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    let inputs = weight.len() / bias.len();
    x.chunks_exact(inputs)
        .flat_map(|row| weight.chunks_exact(inputs).zip(bias).map(move |(w, b)| b + dot(row, w)))
        .collect()
}

/// For `y = linear(x, weight, _)` and `dy [rows, outputs]`: the gradients of `x` (empty
/// unless `input_grad`), of `weight [outputs, in]` and of the bias.
fn linear_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    outputs: usize,
    input_grad: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inputs = weight.len() / outputs;
    let mut grad_weight = vec![0.0; weight.len()];
    let mut grad_bias = vec![0.0; outputs];
    let mut grad_x = if input_grad { vec![0.0; x.len()] } else { Vec::new() };
    for (r, (row, dy_row)) in x.chunks_exact(inputs).zip(dy.chunks_exact(outputs)).enumerate() {
        for ((&d, w), gw) in
            dy_row.iter().zip(weight.chunks_exact(inputs)).zip(grad_weight.chunks_exact_mut(inputs))
        {
            axpy(gw, d, row);
            if input_grad {
                axpy(&mut grad_x[r * inputs..(r + 1) * inputs], d, w);
            }
        }
        grad_bias.iter_mut().zip(dy_row).for_each(|(b, d)| *b += d);
    }
    (grad_x, grad_weight, grad_bias)
}
