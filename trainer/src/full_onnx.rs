//! The whole hybrid as one ONNX graph: the circuit and the head appended to the encoder's graph,
//! in real-valued standard operators that any ONNX runtime has.
//!
//! The embedded state is a product state: `psi = V r` with `r_k = prod_i f_i(bit_i(k))`,
//! `f_i = (cos(x_i/2), sin(x_i/2))`, and `V` the trained layers compiled to one 16x16 unitary
//! with the embedding's phases folded in (`shared::quantum::Unitary::folded_columns`). So:
//!
//! ```text
//! angles [N,4] -> Mul 0.5 -> Cos, Sin -> Concat [N,8] -> Gather (16x4 table) [N,16,4]
//!   -> ReduceProd [N,16] = r -> MatMul [16,32] = (Re psi | Im psi) -> square [N,32]
//!   -> MatMul [32,6] (Z signs times head weights) -> Add bias = logits [N,6] -> Softmax
//! ```
//!
//! `<Z_i> = sum_k z_i(k) |psi_k|^2` and the head is linear, so the last MatMul folds both.
//! burn-onnx cannot add nodes; the graph is edited through its own protobuf types (`onnx-ir`).

use onnx_ir::{AttributeProto, AttributeType, Message, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use shared::model::{QuantumHead, CLASSES};
use shared::quantum::{Rotation, Unitary, DIM, WIRES};

use crate::hardware::circuit_f64;

/// The graph's input, `[N, 1, 64, 64]` f32 = gray u8 / 255.
pub const IMAGE: &str = "image";
/// The graph's outputs, `[N, 6]`.
pub const LOGITS: &str = "logits";
pub const PROBABILITIES: &str = "probabilities";

/// ONNX `TensorProto.DataType` codes (the enum itself is private to `onnx-ir`).
const FLOAT: i32 = 1;
const INT64: i32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum FullOnnxError {
    #[error("the encoder's ONNX does not parse: {0}")]
    Parse(String),
    #[error("the encoder's ONNX {0}")]
    Shape(&'static str),
    #[error(transparent)]
    Circuit(#[from] shared::quantum::Error),
    #[error("{0:?} embedding has no real product form; only X and Y export")]
    Rotation(Rotation),
    #[error("writing the ONNX: {0}")]
    Write(String),
}

/// `encoder_onnx` (image -> angles `[N,4]`, opset 18 or later) with `head`'s circuit and
/// classifier appended: image -> `logits` and `probabilities` `[N,6]`.
///
/// # Errors
/// [`FullOnnxError`] for an encoder graph without exactly one `[N,4]` output or an older
/// opset, or a circuit that cannot be folded.
pub fn hybrid_onnx(encoder_onnx: &[u8], head: &QuantumHead) -> Result<Vec<u8>, FullOnnxError> {
    let mut model =
        ModelProto::parse_from_bytes(encoder_onnx).map_err(|e| FullOnnxError::Parse(e.to_string()))?;
    // ReduceProd takes its axes as an input from opset 18 on.
    let opset = model.opset_import.iter().filter(|o| o.domain.is_empty()).map(|o| o.version).max();
    if opset.unwrap_or(0) < 18 {
        return Err(FullOnnxError::Shape("uses an opset before 18"));
    }
    let graph = model.graph.mut_or_insert_default();
    let [angles] = &graph.output[..] else {
        return Err(FullOnnxError::Shape("does not have exactly one output"));
    };
    let angles = angles.clone();
    let dims = &angles.type_.tensor_type().shape.dim;
    if dims.len() != 2 || dims[1].dim_value() != WIRES as i64 {
        return Err(FullOnnxError::Shape("output is not [N, 4] angles"));
    }

    let (ansatz, weights) = circuit_f64(head);
    if ansatz.rotation() == Rotation::Z {
        return Err(FullOnnxError::Rotation(Rotation::Z));
    }
    let unitary = Unitary::compile(&ansatz, &weights)?;
    let (re, im) = unitary.folded_columns();
    let (head_weight, head_bias) = head.head();

    let bit = |k: usize, wire: usize| (k >> (WIRES - 1 - wire)) & 1 == 1;
    // Factor i of r_k: cos(x_i/2) at column i of [cos | sin], sin(x_i/2) at column 4 + i.
    let factor_index: Vec<i64> = (0..DIM)
        .flat_map(|k| (0..WIRES).map(move |i| (i + if bit(k, i) { WIRES } else { 0 }) as i64))
        .collect();
    // Row k: [Re V[.][k] | Im V[.][k]]: r [N,16] times this is [Re psi | Im psi].
    let state: Vec<f32> = (0..DIM).flat_map(|k| re[k].iter().chain(&im[k]).map(|&v| v as f32)).collect();
    // Row m reads |psi_{m mod 16}|^2's real or imaginary part; logit c = sum_i W_ci z_i(k) + b_c.
    let readout: Vec<f32> = (0..2 * DIM)
        .flat_map(|m| {
            let k = m % DIM;
            (0..CLASSES).map(move |c| {
                (0..WIRES)
                    .map(|i| f64::from(head_weight[c][i]) * if bit(k, i) { -1.0 } else { 1.0 })
                    .sum::<f64>() as f32
            })
        })
        .collect();

    graph.initializer.extend([
        float_tensor("qmed_half", &[], vec![0.5]),
        int64_tensor("qmed_factor_index", &[DIM as i64, WIRES as i64], factor_index),
        int64_tensor("qmed_product_axis", &[1], vec![2]),
        float_tensor("qmed_state_matrix", &[DIM as i64, 2 * DIM as i64], state),
        float_tensor("qmed_readout", &[2 * DIM as i64, CLASSES as i64], readout),
        float_tensor("qmed_bias", &[CLASSES as i64], head_bias.to_vec()),
    ]);
    let x = angles.name.as_str();
    graph.node.extend([
        node("Mul", &[x, "qmed_half"], "qmed_half_angles", vec![]),
        node("Cos", &["qmed_half_angles"], "qmed_cos", vec![]),
        node("Sin", &["qmed_half_angles"], "qmed_sin", vec![]),
        node("Concat", &["qmed_cos", "qmed_sin"], "qmed_factors", vec![int_attribute("axis", 1)]),
        node(
            "Gather",
            &["qmed_factors", "qmed_factor_index"],
            "qmed_factor_table",
            vec![int_attribute("axis", 1)],
        ),
        node(
            "ReduceProd",
            &["qmed_factor_table", "qmed_product_axis"],
            "qmed_product",
            vec![int_attribute("keepdims", 0)],
        ),
        node("MatMul", &["qmed_product", "qmed_state_matrix"], "qmed_state", vec![]),
        node("Mul", &["qmed_state", "qmed_state"], "qmed_state_squared", vec![]),
        node("MatMul", &["qmed_state_squared", "qmed_readout"], "qmed_head", vec![]),
        node("Add", &["qmed_head", "qmed_bias"], LOGITS, vec![]),
        node("Softmax", &[LOGITS], PROBABILITIES, vec![int_attribute("axis", 1)]),
    ]);
    graph.output = vec![class_output(&angles, LOGITS), class_output(&angles, PROBABILITIES)];
    // The exporter numbers its tensors ("tensor_8"); users feed a name that says what it is.
    if let [input] = &mut graph.input[..] {
        let old = std::mem::replace(&mut input.name, IMAGE.into());
        for name in graph.node.iter_mut().flat_map(|n| n.input.iter_mut()).filter(|n| **n == old) {
            *name = IMAGE.into();
        }
    }
    graph.name = "qmedscan hybrid".into();
    model.doc_string = "qmedscan hybrid: image [N,1,64,64] f32 = gray u8 / 255 -> CNN -> 4-qubit circuit \
        (folded to real operators) -> head -> logits, probabilities [N,6]"
        .into();
    model.write_to_bytes().map_err(|e| FullOnnxError::Write(e.to_string()))
}

fn float_tensor(name: &str, dims: &[i64], values: Vec<f32>) -> TensorProto {
    let mut t = TensorProto::new();
    (t.name, t.dims, t.data_type, t.float_data) = (name.into(), dims.to_vec(), FLOAT, values);
    t
}

fn int64_tensor(name: &str, dims: &[i64], values: Vec<i64>) -> TensorProto {
    let mut t = TensorProto::new();
    (t.name, t.dims, t.data_type, t.int64_data) = (name.into(), dims.to_vec(), INT64, values);
    t
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    (a.name, a.type_, a.i) = (name.into(), AttributeType::INT.into(), value);
    a
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("qmed/{output}");
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n.attribute = attribute;
    n
}

/// An output like `angles` (same element type, same batch axis) with one column per class.
fn class_output(angles: &ValueInfoProto, name: &str) -> ValueInfoProto {
    let mut out = angles.clone();
    out.name = name.into();
    if let Some(classes) =
        out.type_.mut_or_insert_default().mut_tensor_type().shape.mut_or_insert_default().dim.get_mut(1)
    {
        classes.set_dim_value(CLASSES as i64);
    }
    out
}
