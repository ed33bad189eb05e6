//! Trains the hybrid CNN + 4-qubit circuit classifier on Medical MNIST and exports it.

pub mod circuit;
