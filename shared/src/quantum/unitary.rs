//! The entangling layers compiled to one 16x16 unitary: the inference fast path.

use super::{Ansatz, LayerWeights, Real, Result, Rotation, State, DIM, WIRES};
use num_complex::Complex;

/// `U = layer_L ... layer_1` for fixed weights, applied after the embedding.
///
/// Stored column-major with real and imaginary parts split, so `U psi` is 16 column
/// updates that the compiler vectorises.
#[derive(Debug, Clone, PartialEq)]
pub struct Unitary<T> {
    rotation: Rotation,
    /// `re[k][j] = Re U[j][k]`.
    re: [[T; DIM]; DIM],
    /// `im[k][j] = Im U[j][k]`.
    im: [[T; DIM]; DIM],
}

impl<T: Real> Unitary<T> {
    /// Compiles the layers of `ansatz` for `weights` by running each basis state through them.
    ///
    /// # Errors
    /// [`super::Error::WeightLayers`] when `weights` does not match the circuit.
    pub fn compile(ansatz: &Ansatz, weights: &[LayerWeights<T>]) -> Result<Self> {
        ansatz.check_weights(weights)?;
        let zero = [[T::zero(); DIM]; DIM];
        let mut u = Self { rotation: ansatz.rotation(), re: zero, im: zero };
        let no_features = [T::zero(); WIRES];
        for k in 0..DIM {
            let mut column = State::basis(k);
            for op in ansatz.layer_ops() {
                column.apply(op.gate, op.angle(&no_features, weights));
            }
            for (j, a) in column.amplitudes.iter().enumerate() {
                u.re[k][j] = a.re;
                u.im[k][j] = a.im;
            }
        }
        Ok(u)
    }

    /// The embedding rotation the circuit was compiled with.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// The matrix element `U[row][col]`.
    pub fn get(&self, row: usize, col: usize) -> Complex<T> {
        Complex::new(self.re[col % DIM][row % DIM], self.im[col % DIM][row % DIM])
    }

    /// The final state for `features`.
    pub fn state(&self, features: &[T; WIRES]) -> State<T> {
        let (re, im) = self.apply(&embed(self.rotation, features));
        let mut out = State::zero();
        for (a, (r, i)) in out.amplitudes.iter_mut().zip(re.into_iter().zip(im)) {
            *a = Complex::new(r, i);
        }
        out
    }

    /// `[<Z_0>, .., <Z_3>]` for `features`.
    pub fn expvals(&self, features: &[T; WIRES]) -> [T; WIRES] {
        let (re, im) = self.apply(&embed(self.rotation, features));
        let mut p = [T::zero(); DIM];
        for k in 0..DIM {
            p[k] = re[k] * re[k] + im[k] * im[k];
        }
        z_expvals(&p)
    }

    fn apply(&self, psi: &[Complex<T>; DIM]) -> ([T; DIM], [T; DIM]) {
        let mut re = [T::zero(); DIM];
        let mut im = [T::zero(); DIM];
        for k in 0..DIM {
            let (pr, pi) = (psi[k].re, psi[k].im);
            let (ur, ui) = (&self.re[k], &self.im[k]);
            for j in 0..DIM {
                re[j] = re[j] + ur[j] * pr - ui[j] * pi;
                im[j] = im[j] + ur[j] * pi + ui[j] * pr;
            }
        }
        (re, im)
    }
}

/// The embedded product state `R(x_0)|0> (x) .. (x) R(x_3)|0>`.
fn embed<T: Real>(rotation: Rotation, features: &[T; WIRES]) -> [Complex<T>; DIM] {
    let zero = T::zero();
    let mut psi = [Complex::new(zero, zero); DIM];
    psi[0] = Complex::new(T::one(), zero);
    let half = T::one() / (T::one() + T::one());
    for (w, &x) in features.iter().enumerate() {
        let (s, c) = (x * half).sin_cos();
        // R(x)|0> as (amplitude of |0>, amplitude of |1>).
        let q = match rotation {
            Rotation::X => [Complex::new(c, zero), Complex::new(zero, -s)],
            Rotation::Y => [Complex::new(c, zero), Complex::new(s, zero)],
            Rotation::Z => [Complex::new(c, -s), Complex::new(zero, zero)],
        };
        // Extends the product over wires 0..w to wire w, the next less significant bit.
        let len = 1 << w;
        for k in (0..len).rev() {
            let a = psi[k];
            psi[2 * k] = a * q[0];
            psi[2 * k + 1] = a * q[1];
        }
    }
    psi
}

/// `<Z_i> = sum_k p_k z_i(k)` from probabilities `p`.
fn z_expvals<T: Real>(p: &[T; DIM]) -> [T; WIRES] {
    core::array::from_fn(|wire| {
        (0..DIM).fold(T::zero(), |acc, k| if super::z_sign(k, wire) { acc + p[k] } else { acc - p[k] })
    })
}
