//! A 16x16 complex matrix with gates applied from either side: compiles unitaries and runs
//! the batched adjoint pass.

use super::state::rotation_matrix;
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

    /// `self <- G self` for `gate` rotated by the half angle with `(sin, cos) = (s, c)`.
    pub fn gate_left(&mut self, gate: Gate, s: T, c: T) {
        match gate {
            Gate::Cnot { control, target } => self.cnot_rows(control, target),
            // The layers' gates get row-vector code; RX (embedding only) the general path.
            Gate::Rz(w) => {
                for k in 0..DIM {
                    // Row k times e^{-ia/2} = c - is (bit clear) or e^{ia/2} = c + is (bit set).
                    let sk = if k & w.mask() == 0 { s } else { -s };
                    let (re, im) = (&mut self.re[k], &mut self.im[k]);
                    for l in 0..DIM {
                        (re[l], im[l]) = (c * re[l] + sk * im[l], c * im[l] - sk * re[l]);
                    }
                }
            }
            Gate::Ry(w) => {
                for i in (0..DIM).filter(|i| i & w.mask() == 0) {
                    let j = i | w.mask();
                    for part in [&mut self.re, &mut self.im] {
                        for l in 0..DIM {
                            let (a, b) = (part[i][l], part[j][l]);
                            (part[i][l], part[j][l]) = (c * a - s * b, s * a + c * b);
                        }
                    }
                }
            }
            Gate::Rx(_) => {
                let Some((wire, g)) = rotation_matrix(gate, s, c) else { return };
                let mask = wire.mask();
                for i in (0..DIM).filter(|i| i & mask == 0) {
                    let j = i | mask;
                    for col in 0..DIM {
                        let a = Complex::new(self.re[i][col], self.im[i][col]);
                        let b = Complex::new(self.re[j][col], self.im[j][col]);
                        let (x, y) = (g[0][0] * a + g[0][1] * b, g[1][0] * a + g[1][1] * b);
                        (self.re[i][col], self.im[i][col], self.re[j][col], self.im[j][col]) =
                            (x.re, x.im, y.re, y.im);
                    }
                }
            }
        }
    }

    /// `self <- self G`.
    pub fn gate_right(&mut self, gate: Gate, s: T, c: T) {
        match gate {
            Gate::Cnot { control, target } => {
                // CNOT is a symmetric permutation: right-multiplying swaps columns.
                let (cm, tm) = (control.mask(), target.mask());
                if cm == tm {
                    return;
                }
                for row in 0..DIM {
                    for i in (0..DIM).filter(|i| i & cm != 0 && i & tm == 0) {
                        self.re[row].swap(i, i | tm);
                        self.im[row].swap(i, i | tm);
                    }
                }
            }
            Gate::Rz(w) => {
                // Column l times c - is or c + is, as in `gate_left`.
                let sl: [T; DIM] = core::array::from_fn(|l| if l & w.mask() == 0 { s } else { -s });
                for k in 0..DIM {
                    let (re, im) = (&mut self.re[k], &mut self.im[k]);
                    for l in 0..DIM {
                        (re[l], im[l]) = (c * re[l] + sl[l] * im[l], c * im[l] - sl[l] * re[l]);
                    }
                }
            }
            Gate::Ry(w) => {
                // [a b] [[c, -s], [s, c]] = [c a + s b, c b - s a]
                for part in [&mut self.re, &mut self.im] {
                    for row in part.iter_mut() {
                        for i in (0..DIM).filter(|i| i & w.mask() == 0) {
                            let j = i | w.mask();
                            let (a, b) = (row[i], row[j]);
                            (row[i], row[j]) = (c * a + s * b, c * b - s * a);
                        }
                    }
                }
            }
            Gate::Rx(_) => {
                let Some((wire, g)) = rotation_matrix(gate, s, c) else { return };
                let mask = wire.mask();
                for row in 0..DIM {
                    for i in (0..DIM).filter(|i| i & mask == 0) {
                        let j = i | mask;
                        let a = Complex::new(self.re[row][i], self.im[row][i]);
                        let b = Complex::new(self.re[row][j], self.im[row][j]);
                        let (x, y) = (a * g[0][0] + b * g[1][0], a * g[0][1] + b * g[1][1]);
                        (self.re[row][i], self.im[row][i], self.re[row][j], self.im[row][j]) =
                            (x.re, x.im, y.re, y.im);
                    }
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

    fn cnot_rows(&mut self, control: Wire, target: Wire) {
        let (cm, tm) = (control.mask(), target.mask());
        if cm == tm {
            return;
        }
        for i in (0..DIM).filter(|i| i & cm != 0 && i & tm == 0) {
            self.re.swap(i, i | tm);
            self.im.swap(i, i | tm);
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
