//! The 16-amplitude state vector and gate-by-gate simulation in `f32` / `f64`.

use super::{z_sign, Ansatz, Gate, LayerWeights, Real, Result, Wire, DIM, WIRES};
use num_complex::Complex;

/// A 4-qubit state vector; index `8 b0 + 4 b1 + 2 b2 + b3` (wire 0 most significant).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State<T> {
    /// The amplitudes.
    pub amplitudes: [Complex<T>; DIM],
}

impl<T: Real> Default for State<T> {
    fn default() -> Self {
        Self::zero()
    }
}

impl<T: Real> State<T> {
    /// `|0000>`.
    pub fn zero() -> Self {
        Self::basis(0)
    }

    /// The basis state `|index>` (`index` is taken mod 16).
    pub fn basis(index: usize) -> Self {
        let mut amplitudes = [Complex::new(T::zero(), T::zero()); DIM];
        amplitudes[index % DIM] = Complex::new(T::one(), T::zero());
        Self { amplitudes }
    }

    /// Applies `gate` with `angle` (ignored for CNOT).
    #[inline]
    pub fn apply(&mut self, gate: Gate, angle: T) {
        let (s, c) = (angle * half()).sin_cos();
        match rotation_matrix(gate, s, c) {
            Some((wire, m)) => self.apply_single(wire, &m),
            None => {
                if let Gate::Cnot { control, target } = gate {
                    self.cnot(control, target);
                }
            }
        }
    }

    /// Applies the inverse of `gate` with `angle`.
    #[inline]
    pub fn apply_inverse(&mut self, gate: Gate, angle: T) {
        self.apply(gate, -angle);
    }

    /// Applies a 2x2 matrix to one wire.
    pub fn apply_single(&mut self, wire: Wire, m: &[[Complex<T>; 2]; 2]) {
        let mask = wire.mask();
        for i in (0..DIM).filter(|i| i & mask == 0) {
            let (a, b) = (self.amplitudes[i], self.amplitudes[i | mask]);
            self.amplitudes[i] = m[0][0] * a + m[0][1] * b;
            self.amplitudes[i | mask] = m[1][0] * a + m[1][1] * b;
        }
    }

    /// Applies `CNOT(control, target)`; a no-op when both are the same wire.
    pub fn cnot(&mut self, control: Wire, target: Wire) {
        if control == target {
            return;
        }
        let (cm, tm) = (control.mask(), target.mask());
        for i in (0..DIM).filter(|i| i & cm != 0 && i & tm == 0) {
            self.amplitudes.swap(i, i | tm);
        }
    }

    /// `P|psi>` for the Pauli of the rotation `gate` (identity for CNOT).
    pub(crate) fn pauli(&self, gate: Gate) -> Self {
        let mut out = *self;
        let i = Complex::new(T::zero(), T::one());
        match gate {
            Gate::Rx(w) => (0..DIM).for_each(|k| out.amplitudes[k] = self.amplitudes[k ^ w.mask()]),
            Gate::Ry(w) => (0..DIM).for_each(|k| {
                // Y|0> = i|1>, Y|1> = -i|0>.
                let sign = if k & w.mask() == 0 { -T::one() } else { T::one() };
                out.amplitudes[k] = i * self.amplitudes[k ^ w.mask()] * sign;
            }),
            Gate::Rz(w) => (0..DIM).for_each(|k| {
                if k & w.mask() != 0 {
                    out.amplitudes[k] = -self.amplitudes[k];
                }
            }),
            Gate::Cnot { .. } => {}
        }
        out
    }

    /// `<self|other>`.
    pub fn inner(&self, other: &Self) -> Complex<T> {
        self.amplitudes
            .iter()
            .zip(&other.amplitudes)
            .fold(Complex::new(T::zero(), T::zero()), |acc, (a, b)| acc + a.conj() * b)
    }

    /// `sum_k |psi_k|^2`.
    pub fn norm_sqr(&self) -> T {
        self.amplitudes.iter().fold(T::zero(), |acc, a| acc + a.norm_sqr())
    }

    /// `[<Z_0>, <Z_1>, <Z_2>, <Z_3>]`.
    pub fn expvals(&self) -> [T; WIRES] {
        let mut out = [T::zero(); WIRES];
        for (k, a) in self.amplitudes.iter().enumerate() {
            let p = a.norm_sqr();
            for (wire, e) in out.iter_mut().enumerate() {
                *e = if z_sign(k, wire) { *e + p } else { *e - p };
            }
        }
        out
    }

    /// Multiplies amplitude `k` by `sum_i c_i z_i(k)`: the observable `sum_i c_i Z_i` applied.
    pub(crate) fn apply_observable(&mut self, coeffs: &[T; WIRES]) {
        let o = super::adjoint::observable_diagonal(coeffs);
        for (a, w) in self.amplitudes.iter_mut().zip(o) {
            *a = *a * w;
        }
    }
}

/// The 2x2 matrix `cos(a/2) I - i sin(a/2) P` of the rotation `gate` about Pauli `P`, given
/// `(s, c) = (sin a/2, cos a/2)`, in the basis `(|0>, |1>)` of its wire; `None` for CNOT.
pub(crate) fn rotation_matrix<T: Real>(gate: Gate, s: T, c: T) -> Option<(Wire, [[Complex<T>; 2]; 2])> {
    let z = T::zero();
    let m = |re: T, im: T| Complex::new(re, im);
    Some(match gate {
        Gate::Rx(w) => (w, [[m(c, z), m(z, -s)], [m(z, -s), m(c, z)]]),
        Gate::Ry(w) => (w, [[m(c, z), m(-s, z)], [m(s, z), m(c, z)]]),
        Gate::Rz(w) => (w, [[m(c, -s), m(z, z)], [m(z, z), m(c, s)]]),
        Gate::Cnot { .. } => return None,
    })
}

#[inline]
pub(crate) fn half<T: Real>() -> T {
    T::one() / (T::one() + T::one())
}

/// The final state of the circuit, gate by gate.
///
/// # Errors
/// [`super::Error::WeightLayers`] when `weights` does not match the circuit's layers.
pub fn simulate<T: Real>(
    ansatz: &Ansatz,
    features: &[T; WIRES],
    weights: &[LayerWeights<T>],
) -> Result<State<T>> {
    ansatz.check_weights(weights)?;
    let mut state = State::zero();
    for op in ansatz.ops() {
        state.apply(op.gate, op.angle(features, weights));
    }
    Ok(state)
}

/// `[<Z_0>, .., <Z_3>]` of the circuit, gate by gate.
///
/// # Errors
/// As [`simulate`].
pub fn expvals<T: Real>(
    ansatz: &Ansatz,
    features: &[T; WIRES],
    weights: &[LayerWeights<T>],
) -> Result<[T; WIRES]> {
    simulate(ansatz, features, weights).map(|s| s.expvals())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauli_x_on_wire_0_sets_the_most_significant_bit() {
        let mut s = State::<f64>::zero();
        s.apply(Gate::Rx(Wire::wrapping(0)), core::f64::consts::PI);
        // RX(pi)|0> = -i|1>
        assert!((s.amplitudes[8] - Complex::new(0.0, -1.0)).norm() < 1e-15);
    }

    #[test]
    fn bell_pair_from_ry_and_cnot() {
        let mut s = State::<f64>::zero();
        s.apply(Gate::Ry(Wire::wrapping(0)), core::f64::consts::FRAC_PI_2);
        s.cnot(Wire::wrapping(0), Wire::wrapping(1));
        let h = core::f64::consts::FRAC_1_SQRT_2;
        assert!((s.amplitudes[0].re - h).abs() < 1e-15);
        assert!((s.amplitudes[12].re - h).abs() < 1e-15);
        assert_eq!(s.expvals().map(|e| e.abs() < 1e-15), [true, true, false, false]);
    }
}
