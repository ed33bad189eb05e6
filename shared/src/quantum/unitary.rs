//! The entangling layers compiled to one 16x16 unitary: the inference fast path.

use super::embedding::{kron, quarter_turns, times_minus_i_pow, wire_factors};
use super::fused::FusedLayer;
use super::matrix::Matrix;
use super::state::half;
use super::{z_sign, Ansatz, LayerWeights, Real, Result, Rotation, State, Wire, DIM, WIRES};
use num_complex::Complex;

/// `U = layer_L ... layer_1` for fixed weights, applied after the embedding.
///
/// Stored as `V = U D` (the embedding factorises as `psi = phase D r`, `D` quarter-turn phases), column-major
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
        for (l, w) in weights.iter().enumerate() {
            let layer = FusedLayer::new(ansatz, l, w);
            u.phase_left(&layer.phi);
            for (wire, &(s, c)) in layer.theta.iter().enumerate() {
                u.ry_left(Wire::wrapping(wire), s, c);
            }
            u.phase_left(&layer.omega);
            u.permute_left(&layer.perm);
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

    /// `V = U D` column by column, `(re, im)` with `re[k][j] = Re V[j][k]`. For the X and Y
    /// embeddings the final state is exactly `V r`, `r` the real product vector with
    /// `r_k = prod_i (bit_i(k) ? sin(x_i/2) : cos(x_i/2))` (wire 0 the most significant bit),
    /// so these two real matrices are the whole circuit for an exporter.
    pub fn folded_columns(&self) -> (&[[T; DIM]; DIM], &[[T; DIM]; DIM]) {
        (&self.re, &self.im)
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

    /// `d/dx_w` of `<psi(x)| U^dagger O U |psi(x)>` given `r` (from [`Self::real_embedding`])
    /// and `lambda = O U psi = lr + i li`: the embedding's part of the adjoint method,
    /// `Im <U^dagger lambda| P_w |psi>`.
    ///
    /// With `t = V^dagger lambda` and `psi = D r` this is real arithmetic only:
    /// `sum_k s_k Re(t_k) r_{k^m}` for X and Y (`s_k = -1` where wire `w`'s bit of `k` is 0,
    /// else `+1`; the quarter-turn phases of X cancel to the same signs as Y's `+-i`), and
    /// `-sum_k z_k r_k Im(t_k)` for Z.
    pub(crate) fn feature_gradient(&self, r: &[T; DIM], lr: &[T; DIM], li: &[T; DIM]) -> [T; WIRES] {
        // The half of t = V^dagger lambda the rotation needs; column k of V is contiguous.
        let t: [T; DIM] = core::array::from_fn(|k| {
            let (vr, vi) = (&self.re[k], &self.im[k]);
            let mut acc = T::zero();
            for j in 0..DIM {
                acc = match self.rotation {
                    Rotation::X | Rotation::Y => acc + vr[j] * lr[j] + vi[j] * li[j],
                    Rotation::Z => acc + vr[j] * li[j] - vi[j] * lr[j],
                };
            }
            acc
        });
        core::array::from_fn(|w| {
            let mask = 1 << (WIRES - 1 - w);
            (0..DIM).fold(T::zero(), |acc, k| {
                let bit_clear = k & mask == 0;
                match self.rotation {
                    Rotation::X | Rotation::Y => {
                        let v = t[k] * r[k ^ mask];
                        if bit_clear {
                            acc - v
                        } else {
                            acc + v
                        }
                    }
                    Rotation::Z => {
                        let v = r[k] * t[k];
                        if bit_clear {
                            acc - v
                        } else {
                            acc + v
                        }
                    }
                }
            })
        })
    }
}
