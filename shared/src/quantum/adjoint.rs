//! Gradients of `sum_i c_i <Z_i>` by the adjoint method.
//!
//! For a rotation `R(a) = exp(-i a P / 2)` with state `phi` after it and adjoint state
//! `lambda = (later gates)^dagger O |psi_final>`, the derivative is
//! `2 Re <lambda| dR/da |phi_before> = Im <lambda| P |phi>`.
//!
//! [`gradient`] walks one sample gate by gate. [`gradient_batch`] sums the weight gradients
//! of a batch in one pass: `sum_b Im <lambda_b|P|phi_b> = Im Tr(P M)` with
//! `M = sum_b phi_b lambda_b^dagger`, and undoing a gate `G` maps `M` to `G^dagger M G`, so
//! one 16x16 matrix replaces the batch's 2 x B state vectors.

use super::fused::FusedLayer;
use super::matrix::Matrix;
use super::{
    simulate, z_sign, Ansatz, Error, Gate, LayerWeights, Param, Real, Result, Unitary, Wire, DIM, WIRES,
};

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
    let mut phi = simulate(ansatz, features, weights)?;
    let mut lambda = phi;
    lambda.apply_observable(coeffs);
    let mut grad_features = [T::zero(); WIRES];
    grad_weights.iter_mut().for_each(|l| *l = [[T::zero(); 3]; WIRES]);
    for op in ansatz.ops().rev() {
        if let Some(param) = op.param {
            let g = lambda.inner(&phi.pauli(op.gate)).im;
            match param {
                Param::Feature(i) => grad_features[i] = g,
                Param::Weight { layer, wire, k } => grad_weights[layer][wire][k] = g,
            }
        }
        let angle = op.angle(features, weights);
        phi.apply_inverse(op.gate, angle);
        lambda.apply_inverse(op.gate, angle);
    }
    Ok(grad_features)
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
    ansatz.check_weights(grad_weights)?;
    let u = Unitary::compile(ansatz, weights)?;

    // Forward per sample; M = sum_b phi_b lambda_b^dagger at the end of the circuit.
    let mut m = Matrix::zero();
    for ((x, c), g) in features.iter().zip(coeffs).zip(grad_features.iter_mut()) {
        let r = u.real_embedding(x);
        let (pr, pi) = u.apply_real(&r);
        // lambda = O phi, with O = sum_i c_i Z_i diagonal.
        let o = observable_diagonal(c);
        let lr: [T; DIM] = core::array::from_fn(|l| o[l] * pr[l]);
        let li: [T; DIM] = core::array::from_fn(|l| o[l] * pi[l]);
        for k in 0..DIM {
            let (row_re, row_im) = (&mut m.re[k], &mut m.im[k]);
            for l in 0..DIM {
                row_re[l] = row_re[l] + pr[k] * lr[l] + pi[k] * li[l];
                row_im[l] = row_im[l] + pi[k] * lr[l] - pr[k] * li[l];
            }
        }
        // The embedding's rotations commute, so each sees the adjoint state U^dagger lambda.
        *g = u.feature_gradient(&r, &lr, &li);
    }

    // Backward through the layers, once for the whole batch. Within a layer the four
    // rotations of each kind sit on different wires and commute with each other's Paulis, so
    // they share one M.
    for (l, (w, g)) in weights.iter().zip(grad_weights.iter_mut()).enumerate().rev() {
        let layer = FusedLayer::new(ansatz, l, w);
        m.unpermute_both(&layer.perm);
        let wires = || (0..WIRES).map(Wire::wrapping);
        for (wire, gw) in wires().zip(g.iter_mut()) {
            gw[2] = m.im_trace_pauli(Gate::Rz(wire));
        }
        m.unphase_both(&layer.omega);
        for (wire, gw) in wires().zip(g.iter_mut()) {
            gw[1] = m.im_trace_pauli(Gate::Ry(wire));
        }
        for (wire, &(s, c)) in wires().zip(&layer.theta) {
            m.ry_left(wire, -s, c);
            m.ry_right(wire, s, c);
        }
        for (wire, gw) in wires().zip(g.iter_mut()) {
            gw[0] = m.im_trace_pauli(Gate::Rz(wire));
        }
        m.unphase_both(&layer.phi);
    }
    Ok(())
}

/// The diagonal of `sum_i c_i Z_i`.
pub(crate) fn observable_diagonal<T: Real>(coeffs: &[T; WIRES]) -> [T; DIM] {
    core::array::from_fn(|k| {
        (0..WIRES).fold(T::zero(), |acc, i| if z_sign(k, i) { acc + coeffs[i] } else { acc - coeffs[i] })
    })
}
