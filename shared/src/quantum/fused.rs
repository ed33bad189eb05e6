//! The layers as the matrix paths apply them. Rotations on different wires commute, so a
//! layer `RZ(omega) RY(theta) RZ(phi)` on every wire, then its CNOTs, is one diagonal for the
//! four `RZ(phi)`, four `RY(theta)`, one diagonal for the four `RZ(omega)` and one
//! permutation: 7 passes over a matrix instead of 16.

use super::embedding::kron;
use super::state::half;
use super::{Ansatz, LayerWeights, Real, DIM, WIRES};
use num_complex::Complex;

/// One layer, ready to apply.
pub(crate) struct FusedLayer<T> {
    /// `diag(RZ(phi_0) x .. x RZ(phi_3))`.
    pub phi: [Complex<T>; DIM],
    /// `(sin, cos)` of each wire's `theta / 2`.
    pub theta: [(T, T); WIRES],
    /// `diag(RZ(omega_0) x .. x RZ(omega_3))`.
    pub omega: [Complex<T>; DIM],
    /// Where the CNOTs send each basis state.
    pub perm: [u8; DIM],
}

impl<T: Real> FusedLayer<T> {
    pub fn new(ansatz: &Ansatz, layer: usize, weights: &LayerWeights<T>) -> Self {
        Self {
            phi: rz_diagonal(weights.map(|w| w[0])),
            theta: weights.map(|w| (w[1] * half()).sin_cos()),
            omega: rz_diagonal(weights.map(|w| w[2])),
            perm: ansatz.cnot_permutation(layer),
        }
    }
}

/// The diagonal of `RZ(a_0) x RZ(a_1) x RZ(a_2) x RZ(a_3)`.
fn rz_diagonal<T: Real>(angles: [T; WIRES]) -> [Complex<T>; DIM] {
    let factors = angles.map(|a| {
        let (s, c) = (a * half()).sin_cos();
        [Complex::new(c, -s), Complex::new(c, s)]
    });
    kron(&factors, Complex::new(T::one(), T::zero()), |a, b| a * b)
}
