//! The fused operations as a burn backend extension: the kernels on flex's tensors, and the
//! autodiff nodes whose backward passes call them.

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex};
use burn::tensor::{Tensor, TensorData};
use shared::quantum::WIRES;

use super::adam::{self, AdamScalars};
use super::{conv, head, loss, quantum, BlockShape, HeadShape};

/// The fused operations; `*_forward` / `*_backward` run on the inner backend only, called
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

    /// The hybrid's logits from the encoder's flattened features ([`head`]).
    #[allow(clippy::too_many_arguments)]
    fn hybrid_head(
        features: FloatTensor<Self>,
        fc_weight: FloatTensor<Self>,
        fc_bias: FloatTensor<Self>,
        circuit: FloatTensor<Self>,
        head_weight: FloatTensor<Self>,
        head_bias: FloatTensor<Self>,
        shape: HeadShape,
    ) -> FloatTensor<Self> {
        Self::hybrid_head_forward(features, fc_weight, fc_bias, circuit, head_weight, head_bias, shape).0
    }

    /// The logits, and what the backward pass needs.
    #[allow(clippy::too_many_arguments)]
    fn hybrid_head_forward(
        features: FloatTensor<Self>,
        fc_weight: FloatTensor<Self>,
        fc_bias: FloatTensor<Self>,
        circuit: FloatTensor<Self>,
        head_weight: FloatTensor<Self>,
        head_bias: FloatTensor<Self>,
        shape: HeadShape,
    ) -> (FloatTensor<Self>, HeadKept) {
        let _ = (features, fc_weight, fc_bias, circuit, head_weight, head_bias, shape);
        unreachable!("the inner backend runs the forward pass")
    }

    /// Gradients of the features (empty unless `input_grad`) and of the parameters, in
    /// [`Self::hybrid_head`]'s order ([`HeadGradients`]: the extension macro reads the tuple
    /// from the signature, not through an alias).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn hybrid_head_backward(
        features: FloatTensor<Self>,
        circuit: FloatTensor<Self>,
        kept: &HeadKept,
        grad: FloatTensor<Self>,
        shape: HeadShape,
        input_grad: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
    ) {
        let _ = (features, circuit, kept, grad, shape, input_grad);
        unreachable!("the inner backend runs the backward pass")
    }

    /// The mean cross-entropy `[1]` of `logits [b, classes]` against `labels`, each a class.
    fn cross_entropy(logits: FloatTensor<Self>, labels: Vec<usize>) -> FloatTensor<Self> {
        Self::cross_entropy_forward(logits, labels).0
    }

    /// The loss, and its gradient with respect to the logits.
    fn cross_entropy_forward(
        logits: FloatTensor<Self>,
        labels: Vec<usize>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (logits, labels);
        unreachable!("the inner backend runs the forward pass")
    }

    /// `gradient` (the loss's, kept by the forward pass) times the scalar `grad [1]`.
    fn cross_entropy_backward(gradient: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let _ = (gradient, grad);
        unreachable!("the inner backend runs the backward pass")
    }

    /// One Adam step of a parameter: the parameter and both moments updated ([`adam`]). Only
    /// on the inner backend: optimizers step parameters outside the autodiff graph.
    fn adam_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        scalars: AdamScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (param, grad, moment_1, moment_2, scalars);
        unreachable!("optimizers step the inner backend's tensors")
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

pub(super) fn hybrid_head(
    features: Tensor<2>,
    fc_weight: Tensor<2>,
    fc_bias: Tensor<1>,
    circuit: Tensor<3>,
    head_weight: Tensor<2>,
    head_bias: Tensor<1>,
    shape: HeadShape,
) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::hybrid_head(
        features.into_dispatch(),
        fc_weight.into_dispatch(),
        fc_bias.into_dispatch(),
        circuit.into_dispatch(),
        head_weight.into_dispatch(),
        head_bias.into_dispatch(),
        shape,
    ))
}

pub(super) fn cross_entropy(logits: Tensor<2>, labels: Vec<usize>) -> Tensor<1> {
    Tensor::from_dispatch(Dispatch::cross_entropy(logits.into_dispatch(), labels))
}

pub(super) fn adam_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moment_1: Tensor<D>,
    moment_2: Tensor<D>,
    scalars: AdamScalars,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (param, moment_1, moment_2) = Dispatch::adam_step(
        param.into_dispatch(),
        grad.into_dispatch(),
        moment_1.into_dispatch(),
        moment_2.into_dispatch(),
        scalars,
    );
    (Tensor::from_dispatch(param), Tensor::from_dispatch(moment_1), Tensor::from_dispatch(moment_2))
}

/// What a block's backward pass needs from its forward pass; shared, so the autodiff state
/// clones cheaply.
pub type Kept = Arc<conv::Kept>;

/// The gradients of the head's features and parameters, in [`FusedBackend::hybrid_head`]'s
/// order.
pub type HeadGradients<B> =
    (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// What the head's backward pass needs from its forward pass.
pub type HeadKept = Arc<head::Kept>;

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

    fn hybrid_head_forward(
        features: FlexTensor,
        fc_weight: FlexTensor,
        fc_bias: FlexTensor,
        circuit: FlexTensor,
        head_weight: FlexTensor,
        head_bias: FlexTensor,
        shape: HeadShape,
    ) -> (FlexTensor, HeadKept) {
        let (fc_weight, fc_bias, circuit_weights) = (values(&fc_weight), values(&fc_bias), values(&circuit));
        let (head_weight, head_bias) = (values(&head_weight), values(&head_bias));
        let params = head::HeadParams {
            fc_weight: &fc_weight,
            fc_bias: &fc_bias,
            circuit: &circuit_weights,
            head_weight: &head_weight,
            head_bias: &head_bias,
        };
        let out = head::forward(&shape, &ansatz_of(&circuit), &values(&features), &params);
        (flex(out.logits, shape.output_dims()), Arc::new(out.kept))
    }

    fn hybrid_head_backward(
        features: FlexTensor,
        circuit: FlexTensor,
        kept: &HeadKept,
        grad: FlexTensor,
        shape: HeadShape,
        input_grad: bool,
    ) -> HeadGradients<Flex> {
        let (ansatz, circuit_dims) = (ansatz_of(&circuit), circuit.layout().shape().dims::<3>());
        let (features, circuit, grad) = (values(&features), values(&circuit), values(&grad));
        let grads = head::backward(&shape, &ansatz, &features, &circuit, kept, &grad, input_grad);
        let input = if input_grad { flex(grads.input, shape.input_dims()) } else { flex(Vec::new(), [0]) };
        (
            input,
            flex(grads.fc_weight, [shape.features, WIRES]),
            flex(grads.fc_bias, [WIRES]),
            flex(grads.circuit, circuit_dims),
            flex(grads.head_weight, [WIRES, shape.classes]),
            flex(grads.head_bias, [shape.classes]),
        )
    }

    fn cross_entropy_forward(logits: FlexTensor, labels: Vec<usize>) -> (FlexTensor, FlexTensor) {
        let dims = logits.layout().shape().dims::<2>();
        let out = loss::cross_entropy(&values(&logits), &labels, dims[1])
            .expect("labels checked by fused::cross_entropy");
        (flex(vec![out.loss], [1]), flex(out.grad, dims))
    }

    fn cross_entropy_backward(gradient: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let dims = gradient.layout().shape().dims::<2>();
        let scale = values(&grad).first().copied().unwrap_or(0.0);
        flex(values(&gradient).iter().map(|g| g * scale).collect(), dims)
    }

    fn adam_step(
        param: FlexTensor,
        grad: FlexTensor,
        moment_1: FlexTensor,
        moment_2: FlexTensor,
        scalars: AdamScalars,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = param.layout().shape().clone();
        let (param, moment_1, moment_2) =
            adam::step(&values(&param), &values(&grad), &values(&moment_1), &values(&moment_2), &scalars);
        let tensor = |values: Vec<f32>| FlexTensor::from_data(TensorData::new(values, shape.clone()));
        (tensor(param), tensor(moment_1), tensor(moment_2))
    }
}

fn ansatz_of(weights: &FlexTensor) -> shared::quantum::Ansatz {
    let layers = weights.layout().shape().dims::<3>()[0];
    quantum::ansatz(layers).expect("layer count checked by fused::circuit")
}

/// Hands each parent that tracks gradients (its node id, in the operation's order) its
/// gradient.
fn register<B: FusedBackend, const N: usize>(
    grads: &mut Gradients,
    parents: [Option<NodeId>; N],
    computed: [FloatTensor<B>; N],
) {
    for (id, grad) in parents.into_iter().zip(computed) {
        if let Some(id) = id {
            grads.register::<B>(id, grad);
        }
    }
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
        let parents = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<B>(&ops.node);
        let state = ops.state;
        let (input, weight, bias) =
            B::conv_block_backward(state.weight, &state.kept, grad, state.shape, parents[0].is_some());
        register::<B, 3>(grads, parents, [input, weight, bias]);
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
        let parents = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<B>(&ops.node);
        let (angles, weights) = B::circuit_backward(ops.state.angles, ops.state.weights, grad);
        register::<B, 2>(grads, parents, [angles, weights]);
    }
}

#[derive(Clone, Debug)]
struct HeadState<B: FusedBackend> {
    features: FloatTensor<B>,
    circuit: FloatTensor<B>,
    kept: HeadKept,
    shape: HeadShape,
}

#[derive(Debug)]
struct HeadBackward;

impl<B: FusedBackend> Backward<B, 6> for HeadBackward {
    type State = HeadState<B>;

    fn backward(self, ops: Ops<Self::State, 6>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<B>(&ops.node);
        let state = ops.state;
        let (input, fc_weight, fc_bias, circuit, head_weight, head_bias) = B::hybrid_head_backward(
            state.features,
            state.circuit,
            &state.kept,
            grad,
            state.shape,
            parents[0].is_some(),
        );
        register::<B, 6>(grads, parents, [input, fc_weight, fc_bias, circuit, head_weight, head_bias]);
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: FusedBackend> Backward<B, 1> for CrossEntropyBackward {
    /// The loss's gradient with respect to the logits.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let parents = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<B>(&ops.node);
        register::<B, 1>(grads, parents, [B::cross_entropy_backward(ops.state, grad)]);
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

    fn hybrid_head(
        features: FloatTensor<Self>,
        fc_weight: FloatTensor<Self>,
        fc_bias: FloatTensor<Self>,
        circuit: FloatTensor<Self>,
        head_weight: FloatTensor<Self>,
        head_bias: FloatTensor<Self>,
        shape: HeadShape,
    ) -> FloatTensor<Self> {
        let (features, features_node) = features.into_parts();
        let (fc_weight, fc_weight_node) = fc_weight.into_parts();
        let (fc_bias, fc_bias_node) = fc_bias.into_parts();
        let (circuit, circuit_node) = circuit.into_parts();
        let (head_weight, head_weight_node) = head_weight.into_parts();
        let (head_bias, head_bias_node) = head_bias.into_parts();
        let nodes =
            [features_node, fc_weight_node, fc_bias_node, circuit_node, head_weight_node, head_bias_node];
        match HeadBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (logits, kept) = B::hybrid_head_forward(
                    features.clone(),
                    fc_weight,
                    fc_bias,
                    circuit.clone(),
                    head_weight,
                    head_bias,
                    shape,
                );
                prep.finish(HeadState { features, circuit, kept, shape }, logits)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::hybrid_head(
                features,
                fc_weight,
                fc_bias,
                circuit,
                head_weight,
                head_bias,
                shape,
            )),
        }
    }

    fn cross_entropy(logits: FloatTensor<Self>, labels: Vec<usize>) -> FloatTensor<Self> {
        let (logits, logits_node) = logits.into_parts();
        match CrossEntropyBackward.prepare::<C>([logits_node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (loss, gradient) = B::cross_entropy_forward(logits, labels);
                prep.finish(gradient, loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cross_entropy(logits, labels)),
        }
    }
}
