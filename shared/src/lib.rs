//! The no_std core shared by the trainer, the edge runtime and the firmware.
//!
//! - [`quantum`]: the exact 4-qubit simulator of PennyLane's
//!   `AngleEmbedding` + `StronglyEntanglingLayers` circuit, in `f32`/`f64` and fixed point,
//!   gate by gate and as a compiled 16x16 unitary, with adjoint gradients.
//! - [`model`]: the model-artifact format (versioned, checksummed, never panics on bad bytes).
//! - [`nn`]: the integer CNN kernels (int8 weights, u8 activations, integer requantisation).
//! - [`proto`]: the serial wire protocol between host and firmware.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
// Numeric kernels index several arrays in lockstep; index loops are what vectorises.
#![allow(clippy::needless_range_loop)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

pub mod model;
pub mod nn;
pub mod proto;
pub mod quantum;
