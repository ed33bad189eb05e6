//! Fused CPU kernels for the compact models' hot spots, as a burn backend extension with its
//! own backward passes:
//!
//! - [`conv_block`]: convolution + bias + ReLU + max-pool as one operation
//!   ([`conv`]: one matrix product per pass for the whole batch, no pooling indices stored;
//!   [`phases`]: strided rows in their phases; [`window`]: the pool windows;
//!   [`channels_last`]: the models' pooled blocks with AVX-512, a Winograd or direct
//!   convolution forward and the gradients from the pool windows' winners alone);
//! - [`circuit`]: the 4-qubit circuit's expectation values and adjoint gradients by `shared`'s
//!   simulator ([`quantum`]), instead of the few dozen small tensor operations of
//!   [`crate::circuit::Circuit`]'s tensor form;
//! - [`hybrid_head`]: the hybrid's last linear layer, circuit and head as one operation
//!   ([`head`]);
//! - [`cross_entropy`]: the training loss ([`loss`]);
//! - [`adam::FusedAdam`]: burn's Adam with each parameter's step as one operation.
//!
//! Composed from burn's operations, one training step of the default hybrid is about a hundred
//! small kernels and their autodiff nodes; fused, it is a handful (`benches/epoch.rs` times the
//! step, `docs/training-speed.md` compares). They run on burn's CPU backend (flex), with or
//! without autodiff; elsewhere (wgpu) the model composes burn's operations (each function here
//! returns `None` there).

pub mod adam;
pub mod channels_last;
pub mod conv;
pub mod dense;
pub mod head;
pub mod loss;
pub mod phases;
pub mod quantum;
pub mod window;

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor};
use shared::quantum::WIRES;

use crate::circuit::Circuit;

pub use conv::{BlockShape, ConvGeometry};
pub use head::HeadShape;

#[cfg(feature = "flex")]
mod backend;

/// Whether the fused kernels run on `device`: burn's CPU backend, with or without autodiff.
pub fn runs_on(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    return matches!(device.as_dispatch().clone().inner(), burn::backend::DispatchDevice::Flex(_));
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

/// The geometry of `conv` followed by `pool`, when the fused block can run it: square
/// kernel, stride and padding, no dilation or groups, and a pool whose stride is its window.
fn geometry(conv: &Conv2d, pool: Option<&MaxPool2d>) -> Option<ConvGeometry> {
    let [stride, stride_w] = conv.stride;
    let padding = match conv.padding {
        PaddingConfig2d::Valid => 0,
        PaddingConfig2d::Explicit(top, left, bottom, right) if [left, bottom, right] == [top; 3] => top,
        _ => return None,
    };
    let pool = match pool {
        None => 1,
        Some(p) => {
            let [window, window_w] = p.kernel_size;
            let plain = p.stride == p.kernel_size
                && window == window_w
                && matches!(p.padding, PaddingConfig2d::Valid)
                && p.dilation == [1, 1]
                && !p.ceil_mode;
            plain.then_some(window)?
        }
    };
    let plain = stride == stride_w && conv.dilation == [1, 1] && conv.groups == 1;
    plain.then_some(ConvGeometry { stride, padding, pool })
}

/// `pool(relu(conv(input)))` as one operation, or `None` when it cannot run here (see
/// [`runs_on`]) or on this block (its geometry, or a convolution without bias); the caller
/// then composes burn's ops.
///
/// # Shapes
/// input `[b, in, h, w]` -> `[b, out, h', w']`
pub fn conv_block(input: &Tensor<4>, conv: &Conv2d, pool: Option<&MaxPool2d>) -> Option<Tensor<4>> {
    let shape = geometry(conv, pool)
        .filter(|_| runs_on(&input.device()))
        .and_then(|geometry| BlockShape::new(input.dims(), conv.weight.dims(), geometry));
    let (shape, bias) = (shape?, conv.bias.as_ref()?);
    #[cfg(feature = "flex")]
    return Some(backend::conv_block(input.clone(), conv.weight.val(), bias.val(), shape));
    #[cfg(not(feature = "flex"))]
    {
        let _ = (shape, bias);
        None
    }
}

/// The circuit's `<Z_0..3>` for `angles [b, 4]` and `weights [layers, 4, 3]` (PennyLane's
/// default CNOT ranges), or `None` when it cannot run here.
///
/// # Shapes
/// angles `[b, 4]` -> `[b, 4]`
pub fn circuit(angles: &Tensor<2>, weights: Tensor<3>) -> Option<Tensor<2>> {
    let [_, wires] = angles.dims();
    let [layers, weight_wires, angles_per_gate] = weights.dims();
    let shaped = wires == shared::quantum::WIRES && weight_wires == wires && angles_per_gate == 3;
    if !shaped || quantum::ansatz(layers).is_none() || !runs_on(&angles.device()) {
        return None;
    }
    #[cfg(feature = "flex")]
    return Some(backend::circuit(angles.clone(), weights));
    #[cfg(not(feature = "flex"))]
    {
        let _ = weights;
        None
    }
}

/// The hybrid's logits from the encoder's flattened `features [b, n]`: `head(circuit(fc(x)))`
/// as one operation, or `None` when it cannot run here (see [`runs_on`]) or on these layers
/// (a layer without bias, `fc` not to the circuit's 4 angles, more layers than the simulator
/// takes); the caller then composes the modules.
///
/// # Shapes
/// features `[b, n]` -> logits `[b, classes]`
pub fn hybrid_head(features: &Tensor<2>, fc: &Linear, circuit: &Circuit, head: &Linear) -> Option<Tensor<2>> {
    let [batch, width] = features.dims();
    let [fc_in, fc_out] = fc.weight.dims();
    let [head_in, classes] = head.weight.dims();
    let [layers, wires, angles_per_gate] = circuit.weights.dims();
    let shaped = batch > 0
        && fc_in == width
        && [fc_out, head_in, wires] == [WIRES; 3]
        && angles_per_gate == 3
        && classes > 0;
    if !shaped || quantum::ansatz(layers).is_none() || !runs_on(&features.device()) {
        return None;
    }
    let (fc_bias, head_bias) = (fc.bias.as_ref()?, head.bias.as_ref()?);
    let shape = HeadShape { batch, features: width, classes };
    #[cfg(feature = "flex")]
    return Some(backend::hybrid_head(
        features.clone(),
        fc.weight.val(),
        fc_bias.val(),
        circuit.weights.val(),
        head.weight.val(),
        head_bias.val(),
        shape,
    ));
    #[cfg(not(feature = "flex"))]
    {
        let _ = (shape, fc_bias, head_bias);
        None
    }
}

/// The mean cross-entropy `[1]` of `logits [b, classes]` against `labels`, or `None` when it
/// cannot run here or the labels do not fit the logits.
pub fn cross_entropy(logits: &Tensor<2>, labels: &[usize]) -> Option<Tensor<1>> {
    let [rows, classes] = logits.dims();
    let fits = rows > 0 && rows == labels.len() && labels.iter().all(|&label| label < classes);
    if !fits || !runs_on(&logits.device()) {
        return None;
    }
    #[cfg(feature = "flex")]
    return Some(backend::cross_entropy(logits.clone(), labels.to_vec()));
    #[cfg(not(feature = "flex"))]
    None
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    use super::*;
    use crate::circuit::Circuit;
    use crate::model::ConvBlock;

    fn vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    }

    /// `got` equals `want` to `tol` of `want`'s largest magnitude.
    fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= tol * scale, "{what}[{i}]: fused {g}, burn {w} (scale {scale})");
        }
    }

    /// Outputs and the gradients of input, weights and bias, fused and composed, equal for the
    /// blocks of the default hybrid and the paper's, under a loss that weights every output; on
    /// random images, and on a constant one, whose pool windows tie (the first largest wins).
    #[test]
    fn conv_block_equals_burns_conv_relu_pool_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(7);
        for ((input, channels, kernel, stride, padding, pool), constant) in [
            ([3, 1, 64, 64], 8, 6, 4, 1, 1),
            ([3, 8, 16, 16], 16, 3, 2, 1, 1),
            ([3, 16, 8, 8], 32, 3, 1, 1, 2),
            ([2, 1, 64, 64], 16, 3, 1, 1, 2),
            ([2, 3, 9, 11], 4, 3, 2, 0, 2),
            ([2, 3, 7, 5], 4, 3, 1, 1, 1),
            ([2, 2, 7, 9], 3, 2, 1, 0, 3),
            // The channels-last path's blocks: from 16 and 32 channels to 32 and 64, unpadded,
            // with rows and columns past the last whole window, windows of 3.
            ([2, 16, 9, 11], 32, 3, 1, 0, 2),
            ([2, 32, 8, 7], 64, 3, 1, 1, 3),
            // Winograd's forward pass from 32 channels to 64, rows of windows past its tiles.
            ([2, 32, 6, 14], 64, 3, 1, 1, 2),
        ]
        .into_iter()
        .flat_map(|block| [(block, false), (block, true)])
        {
            let conv = Conv2dConfig::new([input[1], channels], [kernel; 2])
                .with_stride([stride; 2])
                .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
                .init(&device);
            let pool = (pool > 1).then(|| MaxPool2dConfig::new([pool; 2]).init());
            let block = ConvBlock { conv, pool };
            let x = if constant {
                Tensor::<4>::ones(input, &device)
            } else {
                Tensor::<4>::random(input, Distribution::Normal(0.0, 1.0), &device)
            }
            .require_grad();
            let kind = if constant { "constant" } else { "random" };
            let fused = conv_block(&x, &block.conv, block.pool.as_ref()).expect("runs on flex");
            let composed = block.composed(x.clone());
            let coeffs = Tensor::<4>::random(fused.dims(), Distribution::Normal(0.0, 1.0), &device);
            let run = |y: Tensor<4>| {
                let grads = (y.clone() * coeffs.clone()).sum().backward();
                let grad = |t: Option<Tensor<4>>| t.map(vec).unwrap_or_default();
                (
                    vec(y),
                    grad(x.grad(&grads)),
                    vec(block.conv.weight.val().grad(&grads).unwrap()),
                    vec(block.conv.bias.as_ref().unwrap().val().grad(&grads).unwrap()),
                )
            };
            let (f, c) = (run(fused), run(composed));
            let what = |part: &str| format!("{kind} {input:?} k{kernel} s{stride} p{padding}: {part}");
            assert_close(&what("output"), &f.0, &c.0, 1e-5);
            assert_close(&what("input gradient"), &f.1, &c.1, 1e-5);
            assert_close(&what("weight gradient"), &f.2, &c.2, 1e-5);
            assert_close(&what("bias gradient"), &f.3, &c.3, 1e-5);
        }
    }

    #[test]
    fn conv_block_without_autodiff_equals_burns_and_declines_what_it_cannot_run() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([2, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let block = ConvBlock { conv, pool: Some(MaxPool2dConfig::new([2, 2]).init()) };
        let x = Tensor::<4>::random([5, 2, 10, 10], Distribution::Normal(0.0, 1.0), &device);
        let fused = conv_block(&x, &block.conv, block.pool.as_ref()).expect("runs on flex");
        assert_close("inference output", &vec(fused), &vec(block.composed(x.clone())), 1e-5);

        // A pool that overlaps (stride 1) is not the fused block's: the caller composes burn's.
        let overlapping = MaxPool2dConfig::new([2, 2]).with_strides([1, 1]).init();
        assert!(conv_block(&x, &block.conv, Some(&overlapping)).is_none());
    }

    #[test]
    fn circuit_equals_the_tensor_form_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let circuit = Circuit::new(4, &device);
        let angles = Tensor::<2>::random([9, 4], Distribution::Uniform(-3.0, 3.0), &device).require_grad();
        let coeffs = Tensor::<2>::random([9, 4], Distribution::Normal(0.0, 1.0), &device);
        let run = |y: Tensor<2>| {
            let grads = (y.clone() * coeffs.clone()).sum().backward();
            (vec(y), vec(angles.grad(&grads).unwrap()), vec(circuit.weights.val().grad(&grads).unwrap()))
        };
        let fused = run(super::circuit(&angles, circuit.weights.val()).expect("runs on flex"));
        let composed = run(circuit.composed(angles.clone()));
        assert_close("expectation values", &fused.0, &composed.0, 1e-5);
        assert_close("angle gradient", &fused.1, &composed.1, 1e-4);
        assert_close("weight gradient", &fused.2, &composed.2, 1e-4);
        // More layers than the simulator takes: the tensor form runs instead.
        let deep = Tensor::<3>::zeros([shared::quantum::MAX_LAYERS + 1, 4, 3], &device);
        assert!(super::circuit(&angles, deep).is_none());
    }

    /// The logits and the gradients of the features and of all five parameters, fused and
    /// composed from the modules, equal; on the default hybrid's head and a small one.
    #[test]
    fn hybrid_head_equals_the_modules_with_gradients() {
        let device = Device::flex().autodiff();
        device.seed(11);
        for (batch, width, classes, layers) in [(16, 512, 6, 4), (3, 7, 2, 1)] {
            let fc = burn::nn::LinearConfig::new(width, WIRES).init(&device);
            let head = burn::nn::LinearConfig::new(WIRES, classes).init(&device);
            let circuit = Circuit::new(layers, &device);
            let x =
                Tensor::<2>::random([batch, width], Distribution::Normal(0.0, 1.0), &device).require_grad();
            let coeffs = Tensor::<2>::random([batch, classes], Distribution::Normal(0.0, 1.0), &device);
            let run = |y: Tensor<2>| {
                let grads = (y.clone() * coeffs.clone()).sum().backward();
                let grad = |t: Option<Tensor<2>>| t.map(vec).unwrap();
                let bias = |l: &burn::nn::Linear| vec(l.bias.as_ref().unwrap().val().grad(&grads).unwrap());
                [
                    vec(y),
                    grad(x.grad(&grads)),
                    grad(fc.weight.val().grad(&grads)),
                    bias(&fc),
                    vec(circuit.weights.val().grad(&grads).unwrap()),
                    grad(head.weight.val().grad(&grads)),
                    bias(&head),
                ]
            };
            let fused = run(hybrid_head(&x, &fc, &circuit, &head).expect("runs on flex"));
            let composed = run(head.forward(circuit.composed(fc.forward(x.clone()))));
            let parts = ["logits", "input", "fc weight", "fc bias", "circuit", "head weight", "head bias"];
            for ((part, f), c) in parts.iter().zip(&fused).zip(&composed) {
                assert_close(&format!("{batch}x{width} -> {classes}, {layers} layers: {part}"), f, c, 1e-4);
            }
        }
    }

    #[test]
    fn hybrid_head_declines_layers_it_does_not_take() {
        let device = Device::flex();
        let x = Tensor::<2>::zeros([2, 8], &device);
        let head = burn::nn::LinearConfig::new(WIRES, 3).init(&device);
        let circuit = Circuit::new(2, &device);
        let to_five = burn::nn::LinearConfig::new(8, 5).init(&device);
        assert!(hybrid_head(&x, &to_five, &circuit, &head).is_none(), "fc not to 4 angles");
        let no_bias = burn::nn::LinearConfig::new(8, WIRES).with_bias(false).init(&device);
        assert!(hybrid_head(&x, &no_bias, &circuit, &head).is_none(), "fc without bias");
        let fc = burn::nn::LinearConfig::new(8, WIRES).init(&device);
        let logits = hybrid_head(&x, &fc, &circuit, &head).expect("runs without autodiff too");
        assert_close("inference", &vec(logits), &vec(head.forward(circuit.composed(fc.forward(x)))), 1e-5);
    }

    /// The loss and its gradient equal burn's `CrossEntropyLoss`; labels that are not classes
    /// are declined.
    #[test]
    fn cross_entropy_equals_burns_with_gradient() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let labels = [0usize, 5, 2, 2, 4, 1, 3];
        let logits = Tensor::<2>::random([7, 6], Distribution::Normal(0.0, 3.0), &device).require_grad();
        let run = |loss: Tensor<1>| {
            let grads = (loss.clone() * 0.5).backward();
            (vec(loss), vec(logits.grad(&grads).unwrap()))
        };
        let targets = Tensor::<1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [7]),
            &device,
        );
        let burns =
            burn::nn::loss::CrossEntropyLossConfig::new().init(&device).forward(logits.clone(), targets);
        let (fused, burns) = (run(cross_entropy(&logits, &labels).expect("runs on flex")), run(burns));
        assert_close("loss", &fused.0, &burns.0, 1e-6);
        assert_close("gradient", &fused.1, &burns.1, 1e-6);
        assert!(cross_entropy(&logits, &[0, 1, 2, 3, 4, 5, 6]).is_none(), "label 6 of 6 classes");
        assert!(cross_entropy(&logits, &labels[..3]).is_none(), "fewer labels than rows");
    }
}
