//! The circuit's forward and backward pass for a batch, by `shared`'s simulator (the same code
//! the runtimes run): the layers compiled once per batch into one 16x16 unitary, and the
//! adjoint-method gradients of the whole batch in one backward walk
//! ([`shared::quantum::gradient_batch`]). In `f64`, rounded to `f32` at the end.

use shared::quantum::{gradient_batch, Ansatz, LayerWeights, Unitary, WIRES};

/// The circuit of `layers` layers with PennyLane's default CNOT ranges, as
/// [`crate::circuit::Circuit`] builds it; `None` beyond [`shared::quantum::MAX_LAYERS`].
pub fn ansatz(layers: usize) -> Option<Ansatz> {
    Ansatz::new(layers).ok()
}

fn layer_weights(weights: &[f32]) -> Vec<LayerWeights<f64>> {
    weights
        .chunks_exact(3 * WIRES)
        .map(|layer| core::array::from_fn(|w| core::array::from_fn(|k| f64::from(layer[w * 3 + k]))))
        .collect()
}

fn rows(values: &[f32]) -> Vec<[f64; WIRES]> {
    values.chunks_exact(WIRES).map(|row| core::array::from_fn(|w| f64::from(row[w]))).collect()
}

/// `<Z_0..3>` for every row of `angles [batch, 4]`, with `weights [layers, 4, 3]`.
pub fn expvals(ansatz: &Ansatz, angles: &[f32], weights: &[f32]) -> Vec<f32> {
    let unitary = Unitary::compile(ansatz, &layer_weights(weights)).expect("weights sized by the caller");
    rows(angles).iter().flat_map(|x| unitary.expvals(x)).map(|e| e as f32).collect()
}

/// Gradients of `sum_b sum_i grad[b][i] <Z_i>(angles_b)`: `([batch, 4], [layers, 4, 3])`.
pub fn backward(ansatz: &Ansatz, angles: &[f32], weights: &[f32], grad: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (features, coeffs, weights) = (rows(angles), rows(grad), layer_weights(weights));
    let mut grad_features = vec![[0.0; WIRES]; features.len()];
    let mut grad_weights = vec![[[0.0; 3]; WIRES]; weights.len()];
    gradient_batch(ansatz, &features, &weights, &coeffs, &mut grad_features, &mut grad_weights)
        .expect("batch and weights sized by the caller");
    let narrow = |v: &f64| *v as f32;
    (
        grad_features.iter().flatten().map(narrow).collect(),
        grad_weights.iter().flatten().flatten().map(narrow).collect(),
    )
}
