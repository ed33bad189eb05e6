//! The circuit as OpenQASM programs, for toolchains and devices outside this project.
//!
//! Gate for gate what [`Ansatz::ops`] lists: the embedding rotation on each wire, then per
//! layer each `Rot(phi, theta, omega)` as `rz(phi); ry(theta); rz(omega);` and the CNOTs as
//! `cx`, then every qubit measured into `c`. Qubit `q[i]` is wire `i`, so `c[i]` reads
//! `Z_i`. Numbers are written in the shortest form that reads back as the same `f64`.
//!
//! - [`qasm3`]: OpenQASM 3, the embedding angles as `input angle[32] x0 .. x3` (one program
//!   for every image);
//! - [`qasm2`]: OpenQASM 2.0, which has no inputs: one program per image, its angles inlined.

use super::{Ansatz, Error, Gate, LayerWeights, Param, Result, Rotation, WIRES};
use alloc::string::String;
use core::fmt::Write;

/// The OpenQASM 3 program of the circuit with `weights`, parametric in the embedding angles.
///
/// # Errors
/// [`Error::WeightLayers`] when `weights` does not match the circuit, [`Error::NonFinite`]
/// for a NaN or infinite weight.
pub fn qasm3(ansatz: &Ansatz, weights: &[LayerWeights<f64>]) -> Result<String> {
    let mut out = String::from("OPENQASM 3.0;\ninclude \"stdgates.inc\";\n");
    header(&mut out, ansatz);
    for i in 0..WIRES {
        let _ = writeln!(out, "input angle[32] x{i};");
    }
    out.push_str("qubit[4] q;\nbit[4] c;\n");
    body(&mut out, ansatz, weights, |out, i| {
        let _ = write!(out, "x{i}");
        Ok(())
    })?;
    out.push_str("c = measure q;\n");
    Ok(out)
}

/// The OpenQASM 2.0 program of the circuit with `weights` for one image's `features`.
///
/// # Errors
/// As [`qasm3`], and [`Error::NonFinite`] for a NaN or infinite feature.
pub fn qasm2(ansatz: &Ansatz, features: &[f64; WIRES], weights: &[LayerWeights<f64>]) -> Result<String> {
    let mut out = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\n");
    header(&mut out, ansatz);
    out.push_str("qreg q[4];\ncreg c[4];\n");
    body(&mut out, ansatz, weights, |out, i| real(out, features[i]))?;
    out.push_str("measure q -> c;\n");
    Ok(out)
}

fn header(out: &mut String, ansatz: &Ansatz) {
    let rotation = match ansatz.rotation() {
        Rotation::X => "RX",
        Rotation::Y => "RY",
        Rotation::Z => "RZ",
    };
    let _ = write!(
        out,
        "// qmedscan circuit: AngleEmbedding ({rotation}), {} StronglyEntanglingLayers (CNOT ranges",
        ansatz.layers()
    );
    for (l, r) in ansatz.ranges().iter().enumerate() {
        let _ = write!(out, "{}{r}", if l == 0 { " " } else { ", " });
    }
    out.push_str("), trained weights inlined.\n");
    out.push_str(
        "// The embedding angles are the encoder's outputs in radians; c[i] measures Z on wire i.\n",
    );
}

/// Every gate, one per line; `feature` writes the angle of embedding rotation `i`.
fn body(
    out: &mut String,
    ansatz: &Ansatz,
    weights: &[LayerWeights<f64>],
    mut feature: impl FnMut(&mut String, usize) -> Result<()>,
) -> Result<()> {
    ansatz.check_weights(weights)?;
    for op in ansatz.ops() {
        let (name, wire) = match op.gate {
            Gate::Rx(w) => ("rx", w),
            Gate::Ry(w) => ("ry", w),
            Gate::Rz(w) => ("rz", w),
            Gate::Cnot { control, target } => {
                let _ = writeln!(out, "cx q[{}], q[{}];", control.index(), target.index());
                continue;
            }
        };
        let _ = write!(out, "{name}(");
        match op.param {
            Some(Param::Feature(i)) => feature(out, i)?,
            Some(Param::Weight { layer, wire, k }) => real(out, weights[layer][wire][k])?,
            None => out.push('0'),
        }
        let _ = writeln!(out, ") q[{}];", wire.index());
    }
    Ok(())
}

/// `x` in the shortest form that reads back as the same `f64`, with a decimal point before
/// any exponent (`1.0e-7`, as OpenQASM 2's grammar wants).
fn real(out: &mut String, x: f64) -> Result<()> {
    if !x.is_finite() {
        return Err(Error::NonFinite);
    }
    let start = out.len();
    let _ = write!(out, "{x:?}");
    if let Some(e) = out[start..].find('e') {
        if !out[start..].contains('.') {
            out.insert_str(start + e, ".0");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> std::vec::Vec<LayerWeights<f64>> {
        std::vec![[[0.5, -1.0e-7, 3.0], [1.0e16, 0.25, 2.5], [0.0, 1.0, -2.0], [0.1, 0.2, 0.3]]; 2]
    }

    #[test]
    fn qasm3_lists_every_gate_with_inputs() {
        let text = qasm3(&Ansatz::new(2).unwrap(), &weights()).unwrap();
        assert!(text.starts_with("OPENQASM 3.0;\n"));
        assert!(text.contains("input angle[32] x3;\nqubit[4] q;\n"));
        assert!(text.contains("rx(x2) q[2];\n"));
        assert!(text.contains("rz(0.5) q[0];\nry(-1.0e-7) q[0];\nrz(3.0) q[0];\nrz(1.0e16) q[1];\n"));
        // Layer 1 has range 2: CNOT(i, i + 2).
        assert!(text.contains("cx q[3], q[0];\nrz(0.5) q[0];"), "layer 0's last CNOT, then layer 1");
        assert!(text.ends_with("cx q[2], q[0];\ncx q[3], q[1];\nc = measure q;\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("rz(") || l.starts_with("ry(")).count(), 24);
    }

    #[test]
    fn qasm2_inlines_the_features() {
        let text = qasm2(&Ansatz::new(2).unwrap(), &[0.125, -1.5, 2.0, 1e-9], &weights()).unwrap();
        assert!(text.starts_with("OPENQASM 2.0;\ninclude \"qelib1.inc\";\n"));
        assert!(text.contains(
            "qreg q[4];\ncreg c[4];\nrx(0.125) q[0];\nrx(-1.5) q[1];\nrx(2.0) q[2];\nrx(1.0e-9) q[3];\n"
        ));
        assert!(text.ends_with("measure q -> c;\n"));
    }

    #[test]
    fn non_finite_numbers_and_wrong_shapes_are_refused() {
        let ansatz = Ansatz::new(2).unwrap();
        assert_eq!(qasm2(&ansatz, &[f64::NAN, 0.0, 0.0, 0.0], &weights()), Err(Error::NonFinite));
        let mut bad = weights();
        bad[1][2][1] = f64::INFINITY;
        assert_eq!(qasm3(&ansatz, &bad), Err(Error::NonFinite));
        assert!(matches!(qasm3(&Ansatz::new(3).unwrap(), &weights()), Err(Error::WeightLayers { .. })));
    }
}
