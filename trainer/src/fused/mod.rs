//! Fused CPU kernels for the compact models' two hot spots, as a burn backend extension with
//! its own backward passes:
//!
//! - [`conv_block`]: convolution + bias + ReLU + max-pool as one operation
//!   ([`conv`]: one matrix product per pass for the whole batch, no pooling indices stored);
//! - [`circuit`]: the 4-qubit circuit's expectation values and adjoint gradients by `shared`'s
//!   simulator ([`quantum`]), instead of the few dozen small tensor operations of
//!   [`crate::circuit::Circuit`]'s tensor form.
//!
//! Composed from burn's operations, one training step of the default hybrid is about a hundred
//! small kernels and their autodiff nodes; fused, it is a handful (`benches/epoch.rs` times the
//! step, `docs/training-speed.md` compares). They run on burn's CPU backend (flex), with or without autodiff; elsewhere (wgpu) the
//! model composes burn's operations (each function here returns `None` there).

pub mod conv;
pub mod quantum;

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor};

pub use conv::{BlockShape, ConvGeometry};

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
}
