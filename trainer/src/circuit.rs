//! The 4-qubit circuit as a burn module. On the CPU its forward pass is `shared`'s simulator
//! with adjoint gradients ([`crate::fused::circuit`]); elsewhere it is differentiable burn
//! tensor ops, this module's [`Circuit::composed`].
//!
//! The tensor form: the same circuit as `shared::quantum` (PennyLane's `AngleEmbedding` with X rotations, then
//! `StronglyEntanglingLayers`, measuring `<Z_i>`), rewritten so a whole batch costs two small
//! matrix products and autodiff gives the gradients:
//!
//! - The embedding `RX(x_w)` on `|0000>` gives amplitudes `(-i)^popcount(k) r_k` with the real
//!   `r_k = prod_w (cos(x_w/2) if bit_w(k) = 0 else sin(x_w/2))` (wire 0 = most significant bit).
//! - The layers form one 16x16 unitary `U(weights)`, built from the 48 weights once per batch
//!   (per wire `Rot = RZ(omega) RY(theta) RZ(phi)`, Kronecker products across wires, CNOTs as row
//!   permutations, layers multiplied). The phases `(-i)^popcount(k)` fold into `V = U D`.
//! - Then `psi = V r`, `p = |psi|^2` and `<Z_i> = sum_k p_k z_i(k)`.

use std::f64::consts::TAU;

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Int, Tensor, TensorData};

use shared::quantum::{DIM, WIRES};

/// A complex tensor as its real and imaginary parts.
type Complex<const D: usize> = (Tensor<D>, Tensor<D>);

/// The variational circuit: `StronglyEntanglingLayers` weights `[layers, 4, 3]`.
#[derive(Module, Debug)]
pub struct Circuit {
    /// `[phi, theta, omega]` of each `Rot` gate, per layer and wire.
    pub weights: Param<Tensor<3>>,
    /// CNOT range of each layer (PennyLane's default `(l mod 3) + 1`).
    #[module(skip)]
    ranges: Vec<usize>,
}

impl Circuit {
    /// A circuit with `layers` entangling layers and PennyLane's default CNOT ranges, weights
    /// drawn uniformly from `[0, 2 pi)` as PennyLane's `TorchLayer` does.
    pub fn new(layers: usize, device: &Device) -> Self {
        let weights = Initializer::Uniform { min: 0.0, max: TAU }.init([layers, WIRES, 3], device);
        Self { weights, ranges: default_ranges(layers) }
    }

    /// A circuit with the given weights `[layers][wire][phi, theta, omega]`.
    pub fn from_weights(weights: &[[[f32; 3]; WIRES]], device: &Device) -> Self {
        let flat: Vec<f32> = weights.iter().flatten().flatten().copied().collect();
        let tensor = Tensor::from_data(TensorData::new(flat, [weights.len(), WIRES, 3]), device);
        Self { weights: Param::from_tensor(tensor), ranges: default_ranges(weights.len()) }
    }

    /// Number of entangling layers.
    pub fn layers(&self) -> usize {
        self.ranges.len()
    }

    /// `<Z_0..3>` for each sample's embedding angles: `shared`'s simulator on the CPU
    /// ([`crate::fused::circuit`]), the tensor form below elsewhere.
    ///
    /// # Shapes
    /// angles `[batch, 4]` -> expectation values `[batch, 4]`
    pub fn forward(&self, angles: Tensor<2>) -> Tensor<2> {
        crate::fused::circuit(&angles, self.weights.val()).unwrap_or_else(|| self.composed(angles))
    }

    /// The same from burn's tensor operations (the GPU's path): see the module docs.
    ///
    /// # Shapes
    /// angles `[batch, 4]` -> expectation values `[batch, 4]`
    pub fn composed(&self, angles: Tensor<2>) -> Tensor<2> {
        let device = angles.device();
        let (v_re, v_im) = self.phased_unitary(&device);
        let r = embedding_amplitudes(angles); // [b, 16]
                                              // One product gives real and imaginary parts of psi = V r side by side.
        let v = Tensor::cat(vec![v_re, v_im], 0); // [32, 16]
        let psi = r.matmul(v.transpose()); // [b, 32]
        psi.square().matmul(z_signs(&device)) // [b, 4]
    }

    /// The layers' unitary times the embedding phases, `V = U diag((-i)^popcount(k))`.
    fn phased_unitary(&self, device: &Device) -> Complex<2> {
        let (u_re, u_im) = self.unitary(device);
        let (d_re, d_im) = embedding_phases(device); // [1, 16] each
        let v_re = u_re.clone() * d_re.clone() - u_im.clone() * d_im.clone();
        let v_im = u_re * d_im + u_im * d_re;
        (v_re, v_im)
    }

    /// `U = M_{L-1} ... M_0`, with `M_l = CNOTs_l (Rot ⊗ Rot ⊗ Rot ⊗ Rot)_l`.
    ///
    /// # Shapes
    /// -> `([16, 16], [16, 16])`
    fn unitary(&self, device: &Device) -> Complex<2> {
        let layers = self.layers();
        let (rot_re, rot_im) = rot_matrices(self.weights.val()); // [l, 4, 2, 2]
        let wire = |t: &Tensor<4>, w: usize| t.clone().narrow(1, w, 1).reshape([layers, 2, 2]);
        let mut kron = (wire(&rot_re, 0), wire(&rot_im, 0));
        for w in 1..WIRES {
            kron = kron_product(kron, (wire(&rot_re, w), wire(&rot_im, w)));
        }
        // Apply each layer's CNOTs by gathering rows of the stacked [l * 16, 16] matrices.
        let rows =
            Tensor::<1, Int>::from_data(TensorData::new(self.cnot_source_rows(), [layers * DIM]), device);
        let permute =
            |m: Tensor<3>| m.reshape([layers * DIM, DIM]).select(0, rows.clone()).reshape([layers, DIM, DIM]);
        let (m_re, m_im) = (permute(kron.0), permute(kron.1));
        let layer = |l: usize| {
            (
                m_re.clone().narrow(0, l, 1).reshape([DIM, DIM]),
                m_im.clone().narrow(0, l, 1).reshape([DIM, DIM]),
            )
        };
        (1..layers).fold(layer(0), |u, l| complex_matmul(layer(l), u))
    }

    /// For each layer `l` and output row `j`, the row `l * 16 + f_l^{-1}(j)` of the stacked
    /// Kronecker products that the layer's CNOT permutation `f_l` moves to row `j`.
    fn cnot_source_rows(&self) -> Vec<i64> {
        let mut rows = vec![0i64; self.layers() * DIM];
        for (l, &range) in self.ranges.iter().enumerate() {
            for source in 0..DIM {
                let target = cnot_chain(source, range);
                rows[l * DIM + target] = (l * DIM + source) as i64;
            }
        }
        rows
    }
}

/// PennyLane's default CNOT ranges for `StronglyEntanglingLayers`: `(l mod 3) + 1`.
fn default_ranges(layers: usize) -> Vec<usize> {
    (0..layers).map(|l| l % 3 + 1).collect()
}

/// Where `CNOT(i, (i + range) mod 4)` for `i = 0..3`, applied in order, sends basis state `index`.
fn cnot_chain(mut index: usize, range: usize) -> usize {
    let bit = |wire: usize| 1 << (WIRES - 1 - wire);
    for control in 0..WIRES {
        if index & bit(control) != 0 {
            index ^= bit((control + range) % WIRES);
        }
    }
    index
}

/// `Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)` for every layer and wire:
/// `[[e^{-ia} c, -e^{ib} s], [e^{-ib} s, e^{ia} c]]` with `a = (phi + omega)/2`,
/// `b = (phi - omega)/2`, `c = cos(theta/2)`, `s = sin(theta/2)`.
///
/// # Shapes
/// weights `[l, 4, 3]` -> `([l, 4, 2, 2], [l, 4, 2, 2])`
fn rot_matrices(weights: Tensor<3>) -> Complex<4> {
    let [layers, wires, _] = weights.dims();
    let angle = |k: usize| weights.clone().narrow(2, k, 1).reshape([layers, wires]);
    let (phi, theta, omega) = (angle(0), angle(1), angle(2));
    let a = (phi.clone() + omega.clone()).mul_scalar(0.5);
    let b = (phi - omega).mul_scalar(0.5);
    let half_theta = theta.mul_scalar(0.5);
    let (c, s) = (half_theta.clone().cos(), half_theta.sin());
    let (ca, sa) = (a.clone().cos() * c.clone(), a.sin() * c);
    let (cb, sb) = (b.clone().cos() * s.clone(), b.sin() * s);
    let entries = |e: [Tensor<2>; 4]| Tensor::stack::<3>(e.to_vec(), 2).reshape([layers, wires, 2, 2]);
    let re = entries([ca.clone(), cb.clone().neg(), cb, ca]);
    let im = entries([sa.clone().neg(), sb.clone().neg(), sb.neg(), sa]);
    (re, im)
}

/// Batched Kronecker product `A ⊗ B` of complex matrices.
///
/// # Shapes
/// `[l, n, n]`, `[l, 2, 2]` -> `[l, 2n, 2n]`
fn kron_product((a_re, a_im): Complex<3>, (b_re, b_im): Complex<3>) -> Complex<3> {
    let [layers, n, _] = a_re.dims();
    let left = |t: Tensor<3>| t.reshape([layers, n, 1, n, 1]);
    let right = |t: Tensor<3>| t.reshape([layers, 1, 2, 1, 2]);
    let (a_re, a_im, b_re, b_im) = (left(a_re), left(a_im), right(b_re), right(b_im));
    let re = a_re.clone() * b_re.clone() - a_im.clone() * b_im.clone();
    let im = a_re * b_im + a_im * b_re;
    let square = |t: Tensor<5>| t.reshape([layers, 2 * n, 2 * n]);
    (square(re), square(im))
}

fn complex_matmul((a_re, a_im): Complex<2>, (b_re, b_im): Complex<2>) -> Complex<2> {
    let re = a_re.clone().matmul(b_re.clone()) - a_im.clone().matmul(b_im.clone());
    let im = a_re.matmul(b_im) + a_im.matmul(b_re);
    (re, im)
}

/// The real amplitudes `r_k` of the embedded state (see the module docs).
///
/// # Shapes
/// angles `[b, 4]` -> `[b, 16]`
fn embedding_amplitudes(angles: Tensor<2>) -> Tensor<2> {
    let [batch, _] = angles.dims();
    let half = angles.mul_scalar(0.5);
    let factors = Tensor::stack::<3>(vec![half.clone().cos(), half.sin()], 2); // [b, 4, 2]
    let wire = |w: usize| factors.clone().narrow(1, w, 1).reshape([batch, 1, 2]);
    (1..WIRES).fold(wire(0).reshape([batch, 2]), |r, w| {
        let n = r.dims()[1];
        (r.reshape([batch, n, 1]) * wire(w)).reshape([batch, 2 * n])
    })
}

/// `(-i)^popcount(k)` as `([1, 16], [1, 16])`.
fn embedding_phases(device: &Device) -> Complex<2> {
    let phase = |k: usize| match k.count_ones() % 4 {
        0 => (1.0, 0.0),
        1 => (0.0, -1.0),
        2 => (-1.0, 0.0),
        _ => (0.0, 1.0),
    };
    let (re, im): (Vec<f32>, Vec<f32>) = (0..DIM).map(phase).unzip();
    let row = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [1, DIM]), device);
    (row(re), row(im))
}

/// `z_i(k) = +1` if bit `i` of `k` is 0 else `-1`, stacked twice (real and imaginary parts).
///
/// # Shapes
/// -> `[32, 4]`
fn z_signs(device: &Device) -> Tensor<2> {
    let signs: Vec<f32> = (0..2 * DIM)
        .flat_map(|k| (0..WIRES).map(move |w| if (k % DIM) >> (WIRES - 1 - w) & 1 == 0 { 1.0 } else { -1.0 }))
        .collect();
    Tensor::from_data(TensorData::new(signs, [2 * DIM, WIRES]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::quantum::{expvals, gradient, Ansatz, LayerWeights};

    fn sample_weights() -> Vec<LayerWeights<f64>> {
        // Deterministic, irregular angles covering [0, 2 pi).
        (0..4)
            .map(|l| {
                let mut layer = [[0.0; 3]; WIRES];
                for (w, gate) in layer.iter_mut().enumerate() {
                    for (k, angle) in gate.iter_mut().enumerate() {
                        *angle = ((l * 12 + w * 3 + k) as f64 * 2.399_963).rem_euclid(TAU);
                    }
                }
                layer
            })
            .collect()
    }

    const FEATURES: [[f64; 4]; 3] = [[0.1, -0.7, 2.3, 1.1], [3.0, 0.0, -1.5, 0.4], [-2.2, 1.9, 0.6, -0.3]];

    fn to_f32(weights: &[LayerWeights<f64>]) -> Vec<LayerWeights<f32>> {
        weights.iter().map(|l| l.map(|g| g.map(|a| a as f32))).collect()
    }

    fn angles(device: &Device) -> Tensor<2> {
        let flat: Vec<f32> = FEATURES.iter().flatten().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(flat, [FEATURES.len(), WIRES]), device)
    }

    #[test]
    fn cnot_chain_matches_gate_by_gate_definition() {
        // Range 1: CNOT(0,1) CNOT(1,2) CNOT(2,3) CNOT(3,0) on |1000> -> |1111> -> |0111>.
        assert_eq!(cnot_chain(0b1000, 1), 0b0111);
        assert_eq!(cnot_chain(0, 2), 0);
    }

    #[test]
    fn forward_matches_shared_simulator() {
        let device = Device::flex();
        let weights = sample_weights();
        let circuit = Circuit::from_weights(&to_f32(&weights), &device);
        let got = circuit.composed(angles(&device)).into_data().try_to_vec::<f32>().unwrap();
        let ansatz = Ansatz::new(weights.len()).unwrap();
        for (b, features) in FEATURES.iter().enumerate() {
            let want = expvals(&ansatz, features, &weights).unwrap();
            for w in 0..WIRES {
                let diff = (got[b * WIRES + w] as f64 - want[w]).abs();
                assert!(diff < 1e-5, "sample {b} wire {w}: burn {} shared {}", got[b * WIRES + w], want[w]);
            }
        }
    }

    #[test]
    fn gradients_match_shared_adjoint_method() {
        let device = Device::flex().autodiff();
        let weights = sample_weights();
        let coeffs = [0.3, -1.2, 0.8, 2.0];
        let circuit = Circuit::from_weights(&to_f32(&weights), &device);
        let x = angles(&device).require_grad();
        let c =
            Tensor::<2>::from_data(TensorData::new(coeffs.map(|v| v as f32).to_vec(), [WIRES, 1]), &device);
        let loss = circuit.composed(x.clone()).matmul(c).sum();
        let grads = loss.backward();
        let grad_x = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let grad_w = circuit.weights.val().grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();

        let ansatz = Ansatz::new(weights.len()).unwrap();
        let mut want_w = vec![0.0; 48];
        for (b, features) in FEATURES.iter().enumerate() {
            let mut sample_w = vec![[[0.0; 3]; WIRES]; weights.len()];
            let want_x = gradient(&ansatz, features, &weights, &coeffs, &mut sample_w).unwrap();
            for w in 0..WIRES {
                let diff = (grad_x[b * WIRES + w] as f64 - want_x[w]).abs();
                assert!(
                    diff < 1e-4,
                    "d/dx sample {b} wire {w}: burn {} shared {}",
                    grad_x[b * WIRES + w],
                    want_x[w]
                );
            }
            for (acc, g) in want_w.iter_mut().zip(sample_w.iter().flatten().flatten()) {
                *acc += g;
            }
        }
        for (i, (got, want)) in grad_w.iter().zip(&want_w).enumerate() {
            assert!((*got as f64 - want).abs() < 1e-4, "d/dw[{i}]: burn {got} shared {want}");
        }
    }
}
