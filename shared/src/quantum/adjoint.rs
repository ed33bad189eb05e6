//! Gradients of `sum_i c_i <Z_i>` by the adjoint method: one forward pass, one backward pass.
//!
//! For a rotation `R(a) = exp(-i a P / 2)` with state `phi` after it and adjoint state
//! `lambda = (later gates)^dagger O |psi_final>`, the derivative is
//! `2 Re <lambda| dR/da |phi_before> = Im <lambda| P |phi>`.

use super::{simulate, Ansatz, Error, LayerWeights, Param, Real, Result, WIRES};

/// Gradient of `sum_i coeffs[i] <Z_i>` for one sample. Returns the derivative with respect to
/// the features and overwrites `grad_weights` with the derivative with respect to the weights.
///
/// # Errors
/// [`Error::WeightLayers`] when `weights` or `grad_weights` does not match the circuit.
pub fn gradient<T: Real>(
    ansatz: &Ansatz,
    features: &[T; WIRES],
    weights: &[LayerWeights<T>],
    coeffs: &[T; WIRES],
    grad_weights: &mut [LayerWeights<T>],
) -> Result<[T; WIRES]> {
    ansatz.check_weights(grad_weights)?;
    grad_weights.iter_mut().for_each(|l| *l = [[T::zero(); 3]; WIRES]);
    accumulate(ansatz, features, weights, coeffs, grad_weights)
}

/// Gradients for a batch: `grad_features[b]` is sample `b`'s feature gradient, and
/// `grad_weights` receives the weight gradient summed over the batch (what a training step
/// needs).
///
/// # Errors
/// [`Error::BatchLength`] when `coeffs` or `grad_features` differs in length from `features`;
/// [`Error::WeightLayers`] as for [`gradient`].
pub fn gradient_batch<T: Real>(
    ansatz: &Ansatz,
    features: &[[T; WIRES]],
    weights: &[LayerWeights<T>],
    coeffs: &[[T; WIRES]],
    grad_features: &mut [[T; WIRES]],
    grad_weights: &mut [LayerWeights<T>],
) -> Result<()> {
    for other in [coeffs.len(), grad_features.len()] {
        if other != features.len() {
            return Err(Error::BatchLength { expected: features.len(), found: other });
        }
    }
    ansatz.check_weights(weights)?;
    ansatz.check_weights(grad_weights)?;
    grad_weights.iter_mut().for_each(|l| *l = [[T::zero(); 3]; WIRES]);
    for ((x, c), g) in features.iter().zip(coeffs).zip(grad_features.iter_mut()) {
        *g = accumulate(ansatz, x, weights, c, grad_weights)?;
    }
    Ok(())
}

/// Adds one sample's weight gradient to `grad_weights`; returns its feature gradient.
fn accumulate<T: Real>(
    ansatz: &Ansatz,
    features: &[T; WIRES],
    weights: &[LayerWeights<T>],
    coeffs: &[T; WIRES],
    grad_weights: &mut [LayerWeights<T>],
) -> Result<[T; WIRES]> {
    let mut phi = simulate(ansatz, features, weights)?;
    let mut lambda = phi;
    lambda.apply_observable(coeffs);
    let mut grad_features = [T::zero(); WIRES];
    for op in ansatz.ops().rev() {
        if let Some(param) = op.param {
            let g = lambda.inner(&phi.pauli(op.gate)).im;
            match param {
                Param::Feature(i) => grad_features[i] = grad_features[i] + g,
                Param::Weight { layer, wire, k } => {
                    let slot = &mut grad_weights[layer][wire][k];
                    *slot = *slot + g;
                }
            }
        }
        let angle = op.angle(features, weights);
        phi.apply_inverse(op.gate, angle);
        lambda.apply_inverse(op.gate, angle);
    }
    Ok(grad_features)
}
