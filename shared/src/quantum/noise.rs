//! The circuit as noisy hardware would run it, simulated exactly on the 16x16 density matrix.
//!
//! The noise model ([`NoiseModel`]), gate by gate as the OpenQASM export lists the gates
//! (each `Rot` as `RZ`, `RY`, `RZ`):
//! - after every rotation, a depolarizing channel with probability `p` on its wire,
//!   `rho -> (1 - p) rho + p/3 (X rho X + Y rho Y + Z rho Z)` (PennyLane's `DepolarizingChannel`);
//! - after every CNOT, the same channel on the control, then on the target;
//! - at readout, every measured bit flips with probability `q` (PennyLane's `BitFlip` before
//!   measurement).
//!
//! At `p = q = 0` this is the exact simulator. [`NoiseModel::outcome_probabilities`] gives the
//! distribution of the 16 measured bit strings, which finite-shot estimates sample from.

use super::state::{half, rotation_matrix};
use super::{z_sign, Ansatz, Error, Gate, LayerWeights, Real, Result, Wire, DIM, WIRES};
use num_complex::Complex;

/// Depolarizing probability after each gate and readout flip probability per measured bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseModel<T> {
    depolarizing: T,
    readout_flip: T,
}

impl<T: Real> NoiseModel<T> {
    /// No noise: the exact circuit.
    pub fn noiseless() -> Self {
        Self { depolarizing: T::zero(), readout_flip: T::zero() }
    }

    /// Depolarizing probability `depolarizing` after each gate, readout flip `readout_flip`.
    ///
    /// # Errors
    /// [`Error::Probability`] unless both are in `[0, 1]`.
    pub fn new(depolarizing: T, readout_flip: T) -> Result<Self> {
        for p in [depolarizing, readout_flip] {
            if !(p >= T::zero() && p <= T::one()) {
                return Err(Error::Probability);
            }
        }
        Ok(Self { depolarizing, readout_flip })
    }

    /// The depolarizing probability after each gate.
    pub fn depolarizing(&self) -> T {
        self.depolarizing
    }

    /// The probability that a measured bit reads flipped.
    pub fn readout_flip(&self) -> T {
        self.readout_flip
    }

    /// The density matrix after the circuit's last gate (before readout).
    ///
    /// # Errors
    /// [`Error::WeightLayers`] when `weights` does not match the circuit.
    pub fn final_state(
        &self,
        ansatz: &Ansatz,
        features: &[T; WIRES],
        weights: &[LayerWeights<T>],
    ) -> Result<DensityMatrix<T>> {
        ansatz.check_weights(weights)?;
        let mut rho = DensityMatrix::zero();
        for op in ansatz.ops() {
            rho.apply(op.gate, op.angle(features, weights));
            if self.depolarizing > T::zero() {
                match op.gate {
                    Gate::Rx(w) | Gate::Ry(w) | Gate::Rz(w) => rho.depolarize(w, self.depolarizing),
                    Gate::Cnot { control, target } => {
                        rho.depolarize(control, self.depolarizing);
                        rho.depolarize(target, self.depolarizing);
                    }
                }
            }
        }
        Ok(rho)
    }

    /// Probabilities of the 16 bit strings read out (index as the state's: wire 0 is the
    /// most significant bit), readout errors included.
    ///
    /// # Errors
    /// As [`Self::final_state`].
    pub fn outcome_probabilities(
        &self,
        ansatz: &Ansatz,
        features: &[T; WIRES],
        weights: &[LayerWeights<T>],
    ) -> Result<[T; DIM]> {
        Ok(self.read_out(self.final_state(ansatz, features, weights)?.probabilities()))
    }

    /// The distribution of the bits read from a state with basis-state `probabilities`: each
    /// bit flipped independently with the readout flip probability.
    pub fn read_out(&self, mut probabilities: [T; DIM]) -> [T; DIM] {
        let q = self.readout_flip;
        if q > T::zero() {
            for w in 0..WIRES {
                let mask = Wire::wrapping(w).mask();
                let before = probabilities;
                for k in 0..DIM {
                    probabilities[k] = (T::one() - q) * before[k] + q * before[k ^ mask];
                }
            }
        }
        probabilities
    }

    /// `[<Z_0>, .., <Z_3>]` as the noisy device reports them with infinitely many shots.
    ///
    /// # Errors
    /// As [`Self::final_state`].
    pub fn expvals(
        &self,
        ansatz: &Ansatz,
        features: &[T; WIRES],
        weights: &[LayerWeights<T>],
    ) -> Result<[T; WIRES]> {
        self.outcome_probabilities(ansatz, features, weights).map(|p| expvals_of_distribution(&p))
    }
}

/// `<Z_i> = sum_k z_i(k) p_k` of a distribution (or of counts, normalised by the caller)
/// over the 16 bit strings.
pub fn expvals_of_distribution<T: Real>(p: &[T; DIM]) -> [T; WIRES] {
    core::array::from_fn(|wire| {
        (0..DIM).fold(T::zero(), |acc, k| if z_sign(k, wire) { acc + p[k] } else { acc - p[k] })
    })
}

/// The mean of the measured `Z_i = +-1` over shots: `<Z_i>` estimated from the number of
/// times each bit string was read. All zero when there are no shots.
pub fn expvals_of_counts<T: Real>(counts: &[u32; DIM]) -> [T; WIRES] {
    let shots: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let Some(n) = T::from(shots).filter(|_| shots > 0) else {
        return [T::zero(); WIRES];
    };
    let p = counts.map(|c| T::from(c).unwrap_or_else(T::zero) / n);
    expvals_of_distribution(&p)
}

/// A 4-qubit density matrix, indexed as the state vector (wire 0 most significant).
#[derive(Debug, Clone, PartialEq)]
pub struct DensityMatrix<T> {
    /// `rho[j][k] = <j| rho |k>`.
    pub rho: [[Complex<T>; DIM]; DIM],
}

impl<T: Real> DensityMatrix<T> {
    /// `|0000><0000|`.
    pub fn zero() -> Self {
        let mut rho = [[Complex::new(T::zero(), T::zero()); DIM]; DIM];
        rho[0][0] = Complex::new(T::one(), T::zero());
        Self { rho }
    }

    /// `rho <- G rho G^dagger` for `gate` with `angle` (ignored for CNOT).
    pub fn apply(&mut self, gate: Gate, angle: T) {
        let (s, c) = (angle * half()).sin_cos();
        match (rotation_matrix(gate, s, c), gate) {
            (Some((wire, m)), _) => {
                let mask = wire.mask();
                for i in (0..DIM).filter(|i| i & mask == 0) {
                    let j = i | mask;
                    // Rows: rho <- M rho.
                    for col in 0..DIM {
                        let (a, b) = (self.rho[i][col], self.rho[j][col]);
                        self.rho[i][col] = m[0][0] * a + m[0][1] * b;
                        self.rho[j][col] = m[1][0] * a + m[1][1] * b;
                    }
                }
                for row in self.rho.iter_mut() {
                    // Columns: rho <- rho M^dagger.
                    for i in (0..DIM).filter(|i| i & mask == 0) {
                        let j = i | mask;
                        let (a, b) = (row[i], row[j]);
                        row[i] = a * m[0][0].conj() + b * m[0][1].conj();
                        row[j] = a * m[1][0].conj() + b * m[1][1].conj();
                    }
                }
            }
            (None, Gate::Cnot { control, target }) if control != target => {
                let (cm, tm) = (control.mask(), target.mask());
                let flip = |k: usize| if k & cm != 0 { k ^ tm } else { k };
                let old = self.rho;
                for j in 0..DIM {
                    for k in 0..DIM {
                        self.rho[flip(j)][flip(k)] = old[j][k];
                    }
                }
            }
            (None, _) => {}
        }
    }

    /// The depolarizing channel with probability `p` on `wire`. Uses
    /// `X rho X + Y rho Y + Z rho Z = 2 I (x) Tr_w(rho) - rho`, so the channel is
    /// `(1 - 4p/3) rho + 4p/3 (I/2 (x) Tr_w rho)`.
    pub fn depolarize(&mut self, wire: Wire, p: T) {
        let three = T::one() + T::one() + T::one();
        let lambda = (three + T::one()) * p / three;
        let keep = T::one() - lambda;
        let mask = wire.mask();
        let old = self.rho;
        for j in 0..DIM {
            for k in 0..DIM {
                let mut value = old[j][k] * keep;
                if (j ^ k) & mask == 0 {
                    // The reduced state on the other wires, spread evenly over this one.
                    let traced = old[j & !mask][k & !mask] + old[j | mask][k | mask];
                    value = value + traced * (lambda * half());
                }
                self.rho[j][k] = value;
            }
        }
    }

    /// `Tr rho` (1 up to rounding for every state this module makes).
    pub fn trace(&self) -> T {
        (0..DIM).fold(T::zero(), |acc, k| acc + self.rho[k][k].re)
    }

    /// The probabilities of the 16 basis states, `rho[k][k]`.
    pub fn probabilities(&self) -> [T; DIM] {
        core::array::from_fn(|k| self.rho[k][k].re)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantum::{simulate, Ansatz};

    fn weights(layers: usize) -> std::vec::Vec<LayerWeights<f64>> {
        (0..layers)
            .map(|l| {
                core::array::from_fn(|w| core::array::from_fn(|k| 0.3 + 0.7 * (l * 12 + w * 3 + k) as f64))
            })
            .collect()
    }

    #[test]
    fn noiseless_density_matrix_is_the_pure_state() {
        let ansatz = Ansatz::new(4).unwrap();
        let (features, weights) = ([0.1, -0.4, 2.0, 3.1], weights(4));
        let psi = simulate(&ansatz, &features, &weights).unwrap();
        let rho = NoiseModel::noiseless().final_state(&ansatz, &features, &weights).unwrap();
        for j in 0..DIM {
            for k in 0..DIM {
                let pure = psi.amplitudes[j] * psi.amplitudes[k].conj();
                assert!((rho.rho[j][k] - pure).norm() < 1e-13, "rho[{j}][{k}]");
            }
        }
    }

    #[test]
    fn noise_keeps_the_trace_and_shrinks_expectations() {
        let ansatz = Ansatz::new(2).unwrap();
        let (features, weights) = ([0.9, 0.2, -1.3, 0.5], weights(2));
        let exact = NoiseModel::noiseless().expvals(&ansatz, &features, &weights).unwrap();
        let readout = NoiseModel::new(0.0, 0.1).unwrap().expvals(&ansatz, &features, &weights).unwrap();
        for (e, r) in exact.iter().zip(readout) {
            assert!((r - 0.8 * e).abs() < 1e-13, "readout flips scale <Z> by 1 - 2q");
        }
        let noisy = NoiseModel::new(0.05, 0.0).unwrap();
        assert!((noisy.final_state(&ansatz, &features, &weights).unwrap().trace() - 1.0).abs() < 1e-13);
        let full = NoiseModel::new(0.75, 0.0).unwrap().expvals(&ansatz, &features, &weights).unwrap();
        assert!(full.iter().all(|z| z.abs() < 1e-13), "p = 3/4 leaves the maximally mixed state");
    }

    #[test]
    fn probabilities_outside_0_1_are_refused() {
        assert_eq!(NoiseModel::new(-0.1, 0.0), Err(Error::Probability));
        assert_eq!(NoiseModel::new(0.0, 1.5), Err(Error::Probability));
        assert_eq!(NoiseModel::new(f64::NAN, 0.0), Err(Error::Probability));
    }

    #[test]
    fn counts_estimate_the_mean_of_z() {
        let mut counts = [0u32; DIM];
        (counts[0], counts[0b1000]) = (3, 1);
        assert_eq!(expvals_of_counts::<f64>(&counts), [0.5, 1.0, 1.0, 1.0]);
        assert_eq!(expvals_of_counts::<f64>(&[0; DIM]), [0.0; WIRES]);
    }
}
