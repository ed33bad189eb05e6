//! The entangling layers compiled to one 16x16 unitary: the inference fast path.

use super::embedding::{kron, quarter_turns, times_minus_i_pow, wire_factors};
use super::matrix::Matrix;
use super::state::half;
use super::{z_sign, Ansatz, LayerWeights, Real, Result, Rotation, State, DIM, WIRES};
use num_complex::Complex;

/// `U = layer_L ... layer_1` for fixed weights, applied after the embedding.
///
/// Stored as `V = U D` (see [`super::embedding`]'s factorisation `psi = phase D r`), column-major
/// with real and imaginary parts split: `V r` is 16 real-times-complex column updates that
/// the compiler vectorises.
#[derive(Debug, Clone, PartialEq)]
pub struct Unitary<T> {
    rotation: Rotation,
    /// `re[k][j] = Re V[j][k]`.
    re: [[T; DIM]; DIM],
    /// `im[k][j] = Im V[j][k]`.
    im: [[T; DIM]; DIM],
}

impl<T: Real> Unitary<T> {
    /// Compiles the layers of `ansatz` for `weights`.
    ///
    /// # Errors
    /// [`super::Error::WeightLayers`] when `weights` does not match the circuit.
    pub fn compile(ansatz: &Ansatz, weights: &[LayerWeights<T>]) -> Result<Self> {
        ansatz.check_weights(weights)?;
        let mut u = Matrix::identity();
        for op in ansatz.layer_ops() {
            let (s, c) = (op.angle(&[T::zero(); WIRES], weights) * half()).sin_cos();
            u.gate_left(op.gate, s, c);
        }
        let rotation = ansatz.rotation();
        let mut v = Self { rotation, re: [[T::zero(); DIM]; DIM], im: [[T::zero(); DIM]; DIM] };
        for k in 0..DIM {
            for j in 0..DIM {
                (v.re[k][j], v.im[k][j]) =
                    times_minus_i_pow(u.re[j][k], u.im[j][k], quarter_turns(rotation, k));
            }
        }
        Ok(v)
    }

    /// The embedding rotation the circuit was compiled with.
    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    /// The matrix element `U[row][col]` (indices taken mod 16).
    pub fn get(&self, row: usize, col: usize) -> Complex<T> {
        let (row, col) = (row % DIM, col % DIM);
        // U = V D^-1 and D^-1 = (-i)^(4 - n).
        let n = 4 - quarter_turns(self.rotation, col);
        let (re, im) = times_minus_i_pow(self.re[col][row], self.im[col][row], n);
        Complex::new(re, im)
    }

    /// The final state for `features`.
    pub fn state(&self, features: &[T; WIRES]) -> State<T> {
        let (re, im) = self.apply_real(&self.real_embedding(features));
        let phase = match self.rotation {
            // RZ(x)|0> = e^{-ix/2}|0>: a global phase the real factorisation leaves out.
            Rotation::Z => {
                let (s, c) = (features.iter().fold(T::zero(), |a, &x| a + x) * half()).sin_cos();
                Complex::new(c, -s)
            }
            Rotation::X | Rotation::Y => Complex::new(T::one(), T::zero()),
        };
        let mut out = State::zero();
        for (a, (r, i)) in out.amplitudes.iter_mut().zip(re.into_iter().zip(im)) {
            *a = Complex::new(r, i) * phase;
        }
        out
    }

    /// `[<Z_0>, .., <Z_3>]` for `features`.
    pub fn expvals(&self, features: &[T; WIRES]) -> [T; WIRES] {
        let (re, im) = self.apply_real(&self.real_embedding(features));
        let mut p = [T::zero(); DIM];
        for k in 0..DIM {
            p[k] = re[k] * re[k] + im[k] * im[k];
        }
        core::array::from_fn(|wire| {
            (0..DIM).fold(T::zero(), |acc, k| if z_sign(k, wire) { acc + p[k] } else { acc - p[k] })
        })
    }

    /// The real vector `r` of the embedded state `psi = phase D r`.
    pub(crate) fn real_embedding(&self, features: &[T; WIRES]) -> [T; DIM] {
        let sc = features.map(|x| (x * half()).sin_cos());
        kron(&wire_factors(self.rotation, sc, T::zero(), T::one()), T::one(), |a, b| a * b)
    }

    /// `V r` for a real `r`, as `(re, im)`.
    pub(crate) fn apply_real(&self, r: &[T; DIM]) -> ([T; DIM], [T; DIM]) {
        let mut re = [T::zero(); DIM];
        let mut im = [T::zero(); DIM];
        for k in 0..DIM {
            let (vr, vi, x) = (&self.re[k], &self.im[k], r[k]);
            for j in 0..DIM {
                re[j] = re[j] + vr[j] * x;
                im[j] = im[j] + vi[j] * x;
            }
        }
        (re, im)
    }

    /// `U^dagger lambda = D V^dagger lambda` for `lambda = lr + i li`.
    pub(crate) fn adjoint_apply(&self, lr: &[T; DIM], li: &[T; DIM]) -> State<T> {
        let mut out = State::zero();
        for (k, a) in out.amplitudes.iter_mut().enumerate() {
            // (V^dagger lambda)_k = sum_j conj(V[j][k]) lambda_j: column k of V, contiguous.
            let (vr, vi) = (&self.re[k], &self.im[k]);
            let (mut re, mut im) = (T::zero(), T::zero());
            for j in 0..DIM {
                re = re + vr[j] * lr[j] + vi[j] * li[j];
                im = im + vr[j] * li[j] - vi[j] * lr[j];
            }
            let (re, im) = times_minus_i_pow(re, im, quarter_turns(self.rotation, k));
            *a = Complex::new(re, im);
        }
        out
    }

    /// `D r` as a state (the embedded state without its global phase).
    pub(crate) fn phased(&self, r: &[T; DIM]) -> State<T> {
        let mut out = State::zero();
        for (k, a) in out.amplitudes.iter_mut().enumerate() {
            let (re, im) = times_minus_i_pow(r[k], T::zero(), quarter_turns(self.rotation, k));
            *a = Complex::new(re, im);
        }
        out
    }
}
