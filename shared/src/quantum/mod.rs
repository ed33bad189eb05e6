//! The 4-qubit circuit of the hybrid model, simulated exactly as PennyLane defines it.
//!
//! ```text
//! |0000> -> AngleEmbedding(features, rotation) -> StronglyEntanglingLayers(weights, ranges)
//!        -> [<Z_0>, <Z_1>, <Z_2>, <Z_3>]
//! ```
//!
//! Conventions (checked against PennyLane 0.45 golden vectors): wire 0 is the most significant
//! bit of the state index; `Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi)`;
//! `RZ(a) = diag(e^{-ia/2}, e^{ia/2})`; layer `l` applies `CNOT(i, (i + r_l) mod 4)` for
//! `i = 0..3` in order, with default ranges `r_l = (l mod 3) + 1`.
//!
//! Three ways to run it, all from one gate sequence ([`Ansatz::ops`]):
//! - [`simulate`] / [`expvals`]: gate by gate, in `f32` or `f64`;
//! - [`Unitary`]: the layers compiled to one 16x16 matrix for fixed weights (inference);
//! - [`fixed`]: integer-only arithmetic for microcontrollers without an FPU.
//!
//! [`gradient`] and [`gradient_batch`] give adjoint-method gradients of `sum_i c_i <Z_i>`.
//!
//! Beyond exact expectations: [`noise`] runs the circuit under depolarizing and readout noise
//! on the density matrix and gives the distribution finite shots sample from; [`qasm`]
//! (with `alloc`) writes the circuit as OpenQASM 3 and 2.0 for other toolchains and devices.

mod adjoint;
mod ansatz;
mod embedding;
mod error;
pub mod fixed;
mod fused;
mod matrix;
pub mod noise;
#[cfg(feature = "alloc")]
pub mod qasm;
mod state;
mod unitary;

pub use adjoint::{gradient, gradient_batch};
pub use ansatz::{Ansatz, Gate, Op, Param, Rotation, Wire, MAX_LAYERS};
pub use error::{Error, Result};
pub use state::{expvals, simulate, State};
pub use unitary::Unitary;

/// Number of qubits (wires).
pub const WIRES: usize = 4;
/// Dimension of the state space, `2^WIRES`.
pub const DIM: usize = 1 << WIRES;

/// Weights of one `StronglyEntanglingLayers` layer: `[phi, theta, omega]` per wire.
pub type LayerWeights<T> = [[T; 3]; WIRES];

/// The floating-point types the simulator runs in (`f32` and `f64`).
pub trait Real:
    num_traits::Float + num_traits::FloatConst + core::fmt::Debug + Default + Send + Sync + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

/// `(-1)^{b_i(index)}`: the eigenvalue of `Z` on `wire` for basis state `index`.
#[inline]
pub(crate) fn z_sign(index: usize, wire: usize) -> bool {
    (index >> (WIRES - 1 - wire)) & 1 == 0
}
