//! Integer CNN kernels for microcontrollers without an FPU (and hosts, bit-identically).
//!
//! Activations are `u8` with zero point 0 (inputs are pixels, every hidden layer ends in
//! ReLU), weights are per-output-channel symmetric `i8`, accumulators `i32`, and each layer's
//! output is requantised by an integer multiplier and shift ([`Requant`]). Tensors are
//! channel-major (`[C][H][W]`), as in ONNX, so flattening before a dense layer is free.

mod conv;
mod dense;
mod error;
mod pool;
mod requant;

pub use conv::{conv2d_relu, conv2d_relu_grouped, group_weights, Conv2dOptions, GROUP};
pub use dense::{dense, dense_relu, DenseOptions};
pub use error::{Error, Result};
pub use pool::{max_pool, MaxPoolOptions};
pub use requant::Requant;
