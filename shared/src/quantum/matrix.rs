//! A 16x16 complex matrix with the fused layers' operations applied from either side:
//! compiles unitaries and runs the batched adjoint pass.

use super::{Gate, Real, Wire, DIM};
use num_complex::Complex;

/// Row-major, real and imaginary parts split so each row update is a vector operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Matrix<T> {
    pub re: [[T; DIM]; DIM],
    pub im: [[T; DIM]; DIM],
}

impl<T: Real> Matrix<T> {
    pub fn zero() -> Self {
        Self { re: [[T::zero(); DIM]; DIM], im: [[T::zero(); DIM]; DIM] }
    }

    pub fn identity() -> Self {
        let mut m = Self::zero();
        (0..DIM).for_each(|k| m.re[k][k] = T::one());
        m
    }

    /// `self <- RY self` on `wire`, given `(s, c)` of the half angle.
    pub fn ry_left(&mut self, wire: Wire, s: T, c: T) {
        for i in (0..DIM).filter(|i| i & wire.mask() == 0) {
            let j = i | wire.mask();
            for part in [&mut self.re, &mut self.im] {
                for l in 0..DIM {
                    let (a, b) = (part[i][l], part[j][l]);
                    (part[i][l], part[j][l]) = (c * a - s * b, s * a + c * b);
                }
            }
        }
    }

    /// `self <- self RY` on `wire`.
    pub fn ry_right(&mut self, wire: Wire, s: T, c: T) {
        // [a b] [[c, -s], [s, c]] = [c a + s b, c b - s a]
        for part in [&mut self.re, &mut self.im] {
            for row in part.iter_mut() {
                for i in (0..DIM).filter(|i| i & wire.mask() == 0) {
                    let j = i | wire.mask();
                    let (a, b) = (row[i], row[j]);
                    (row[i], row[j]) = (c * a + s * b, c * b - s * a);
                }
            }
        }
    }

    /// `self <- P self` for the permutation sending `|k>` to `|perm[k]>`.
    pub fn permute_left(&mut self, perm: &[u8; DIM]) {
        let old = self.clone();
        for k in 0..DIM {
            let to = perm[k] as usize % DIM;
            (self.re[to], self.im[to]) = (old.re[k], old.im[k]);
        }
    }

    /// `self <- P^T self P`: undoes a permutation on both sides.
    pub fn unpermute_both(&mut self, perm: &[u8; DIM]) {
        let old = self.clone();
        for j in 0..DIM {
            let pj = perm[j] as usize % DIM;
            for k in 0..DIM {
                let pk = perm[k] as usize % DIM;
                (self.re[j][k], self.im[j][k]) = (old.re[pj][pk], old.im[pj][pk]);
            }
        }
    }

    /// `self <- D self` for the diagonal `d`.
    pub fn phase_left(&mut self, d: &[Complex<T>; DIM]) {
        for k in 0..DIM {
            let (dr, di) = (d[k].re, d[k].im);
            let (re, im) = (&mut self.re[k], &mut self.im[k]);
            for l in 0..DIM {
                (re[l], im[l]) = (dr * re[l] - di * im[l], dr * im[l] + di * re[l]);
            }
        }
    }

    /// `self <- D^dagger self D` for the diagonal `d`.
    pub fn unphase_both(&mut self, d: &[Complex<T>; DIM]) {
        let (dr, di): ([T; DIM], [T; DIM]) = (d.map(|z| z.re), d.map(|z| z.im));
        for j in 0..DIM {
            // Row j times conj(d_j), column k times d_k: one multiplier per element.
            let (cr, ci) = (dr[j], -di[j]);
            let (re, im) = (&mut self.re[j], &mut self.im[j]);
            for k in 0..DIM {
                let (fr, fi) = (cr * dr[k] - ci * di[k], cr * di[k] + ci * dr[k]);
                (re[k], im[k]) = (fr * re[k] - fi * im[k], fr * im[k] + fi * re[k]);
            }
        }
    }

    /// `Im Tr(P self)` for the Pauli `P` of the rotation `gate`.
    pub fn im_trace_pauli(&self, gate: Gate) -> T {
        let mut acc = T::zero();
        match gate {
            // Tr(X M) = sum_k M[k^m][k]
            Gate::Rx(w) => (0..DIM).for_each(|k| acc = acc + self.im[k ^ w.mask()][k]),
            // Tr(Y M) = sum_k Y[k][k^m] M[k^m][k], Y[k][k^m] = -i when bit k is 0, +i when 1:
            // Im(-i z) = -Re z.
            Gate::Ry(w) => (0..DIM).for_each(|k| {
                let re = self.re[k ^ w.mask()][k];
                acc = if k & w.mask() == 0 { acc - re } else { acc + re };
            }),
            Gate::Rz(w) => (0..DIM).for_each(|k| {
                acc = if k & w.mask() == 0 { acc + self.im[k][k] } else { acc - self.im[k][k] };
            }),
            Gate::Cnot { .. } => {}
        }
        acc
    }
}
