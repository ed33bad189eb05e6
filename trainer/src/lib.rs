//! Trains the hybrid CNN + 4-qubit circuit classifier on Medical MNIST and exports it.
//!
//! Layout as burn's `examples/guide`: [`data`] (files -> u8 images -> batches), [`model`] (the
//! hybrid and the CNN baseline, [`circuit`] being the quantum layer), [`baselines`] (the
//! paper's ResNet-18 and VGG-16), [`network`] (any of them, as one type), [`training`] (the loop
//! and checkpoints), [`fused`] (the CPU kernels a training step spends its time in), [`metrics`] and [`plot`] (a run's figures and pictures), [`report`] (the
//! paper's Table I over several runs), [`export`] (ONNX
//! encoder, model card), [`full_onnx`] (the whole hybrid as one ONNX graph), [`integer`] (the `shared` artifacts: circuit + head, int8 encoder) and
//! [`hardware`] (the circuit under shot and gate noise, as a quantum device would run it).

pub mod baselines;
pub mod circuit;
pub mod data;
pub mod export;
pub mod full_onnx;
pub mod fused;
pub mod hardware;
pub mod integer;
pub mod metrics;
pub mod model;
pub mod network;
pub mod plot;
pub mod report;
pub mod training;

/// Every binary built on this crate (the trainer, its bench, the tests) allocates through
/// mimalloc on Linux: a training step frees and reallocates the same large buffers, which
/// glibc returns to the system and faults in again every step (15 to 20 % of a step here;
/// docs/training-speed.md). Elsewhere the system allocator.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
