//! The fused operations as a burn backend extension: the kernels on flex's tensors, and the
//! autodiff nodes whose backward passes call them.

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::{Tensor, TensorData};

use super::{conv, quantum, BlockShape};

/// The two fused operations; `*_forward` / `*_backward` run on the inner backend only, called
/// by the autodiff nodes.
#[backend_extension(Flex, Autodiff)]
pub trait FusedBackend: Backend {
    /// `pool(relu(conv(input) + bias))`.
    fn conv_block(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        shape: BlockShape,
    ) -> FloatTensor<Self> {
        Self::conv_block_forward(input, weight, bias, shape).0
    }

    /// The output, and what the backward pass needs.
    fn conv_block_forward(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        shape: BlockShape,
    ) -> (FloatTensor<Self>, Kept) {
        let _ = (input, weight, bias, shape);
        unreachable!("the inner backend runs the forward pass")
    }

    /// Gradients of input (empty unless `input_grad`), weight and bias.
    fn conv_block_backward(
        weight: FloatTensor<Self>,
        kept: &Kept,
        grad: FloatTensor<Self>,
        shape: BlockShape,
        input_grad: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (weight, kept, grad, shape, input_grad);
        unreachable!("the inner backend runs the backward pass")
    }

    /// `<Z_i>` for `angles [b, 4]`, `weights [layers, 4, 3]`.
    fn circuit_expvals(angles: FloatTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Gradients of angles and weights.
    fn circuit_backward(
        angles: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (angles, weights, grad);
        unreachable!("the inner backend runs the backward pass")
    }
}

pub(super) fn conv_block(
    input: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    shape: BlockShape,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::conv_block(
        input.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        shape,
    ))
}

pub(super) fn circuit(angles: Tensor<2>, weights: Tensor<3>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::circuit_expvals(angles.into_dispatch(), weights.into_dispatch()))
}

/// What a block's backward pass needs from its forward pass; shared, so the autodiff state
/// clones cheaply.
pub type Kept = Arc<conv::Kept>;

/// A flex tensor's values as `f32`, borrowed when contiguous.
fn values(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(tensor.clone().into_data().convert::<f32>().try_into_vec().unwrap_or_default()),
    }
}

fn flex<const D: usize>(values: Vec<f32>, dims: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

impl FusedBackend for Flex {
    fn conv_block_forward(
        input: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        shape: BlockShape,
    ) -> (FlexTensor, Kept) {
        // Inside a rayon worker the batch is already split across the threads.
        let parallel = rayon::current_thread_index().is_none();
        let out = conv::forward(&shape, &values(&input), &values(&weight), &values(&bias), parallel);
        (flex(out.output, shape.output_dims()), Arc::new(out.kept))
    }

    fn conv_block_backward(
        weight: FlexTensor,
        kept: &Kept,
        grad: FlexTensor,
        shape: BlockShape,
        input_grad: bool,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let grads = conv::backward(&shape, &values(&weight), kept, &values(&grad), input_grad);
        let input = match grads.input {
            Some(input) => flex(input, shape.input_dims()),
            None => flex(Vec::new(), [0]),
        };
        (input, flex(grads.weight, shape.weight_dims()), flex(grads.bias, [shape.channels_out()]))
    }

    fn circuit_expvals(angles: FlexTensor, weights: FlexTensor) -> FlexTensor {
        let dims = angles.layout().shape().dims::<2>();
        let ansatz = ansatz_of(&weights);
        flex(quantum::expvals(&ansatz, &values(&angles), &values(&weights)), dims)
    }

    fn circuit_backward(
        angles: FlexTensor,
        weights: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let (angle_dims, weight_dims) =
            (angles.layout().shape().dims::<2>(), weights.layout().shape().dims::<3>());
        let ansatz = ansatz_of(&weights);
        let (ga, gw) = quantum::backward(&ansatz, &values(&angles), &values(&weights), &values(&grad));
        (flex(ga, angle_dims), flex(gw, weight_dims))
    }
}

fn ansatz_of(weights: &FlexTensor) -> shared::quantum::Ansatz {
    let layers = weights.layout().shape().dims::<3>()[0];
    quantum::ansatz(layers).expect("layer count checked by fused::circuit")
}

#[derive(Clone, Debug)]
struct ConvBlockState<B: FusedBackend> {
    weight: FloatTensor<B>,
    kept: Kept,
    shape: BlockShape,
}

#[derive(Debug)]
struct ConvBlockBackward;

impl<B: FusedBackend> Backward<B, 3> for ConvBlockBackward {
    type State = ConvBlockState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input, weight, bias] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let state = ops.state;
        let (grad_input, grad_weight, grad_bias) =
            B::conv_block_backward(state.weight, &state.kept, grad, state.shape, input.is_some());
        for (node, grad) in [(input, grad_input), (weight, grad_weight), (bias, grad_bias)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

#[derive(Clone, Debug)]
struct CircuitState<B: FusedBackend> {
    angles: FloatTensor<B>,
    weights: FloatTensor<B>,
}

#[derive(Debug)]
struct CircuitBackward;

impl<B: FusedBackend> Backward<B, 2> for CircuitBackward {
    type State = CircuitState<B>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [angles, weights] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let state = ops.state;
        let (grad_angles, grad_weights) = B::circuit_backward(state.angles, state.weights, grad);
        for (node, grad) in [(angles, grad_angles), (weights, grad_weights)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: FusedBackend, C: CheckpointStrategy> FusedBackend for Autodiff<B, C> {
    fn conv_block(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        shape: BlockShape,
    ) -> FloatTensor<Self> {
        let (input, input_node) = input.into_parts();
        let (weight, weight_node) = weight.into_parts();
        let (bias, bias_node) = bias.into_parts();
        match ConvBlockBackward.prepare::<C>([input_node, weight_node, bias_node]).compute_bound().stateful()
        {
            OpsKind::Tracked(prep) => {
                let (output, kept) = B::conv_block_forward(input, weight.clone(), bias, shape);
                prep.finish(ConvBlockState { weight, kept, shape }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv_block(input, weight, bias, shape)),
        }
    }

    fn circuit_expvals(angles: FloatTensor<Self>, weights: FloatTensor<Self>) -> FloatTensor<Self> {
        let (angles, angles_node) = angles.into_parts();
        let (weights, weights_node) = weights.into_parts();
        match CircuitBackward.prepare::<C>([angles_node, weights_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::circuit_expvals(angles.clone(), weights.clone());
                prep.finish(CircuitState { angles, weights }, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::circuit_expvals(angles, weights)),
        }
    }
}
