//! A pooled block's backward pass from its pool windows' winners alone.
//!
//! Of each `p x p` pool window only the winner's activation gets a gradient (none where the
//! ReLU was inactive), so the weight and input gradients need one patch's multiply-adds per
//! window and output channel, where the dense products ([`super::conv`]) spend them on every
//! position: a quarter of the work for 2 x 2 windows. For that the forward pass keeps its
//! input padded with the channels innermost (`[batch, padded h, padded w, in]`): a patch is
//! then `k x k` contiguous runs of `in` values, whole 512-bit registers when `in` is a
//! multiple of 16, and the weights are taken in the same `(ky, kx, in)` order.
//!
//! AVX-512 only, for the patches [`compiled`] names (3 x 3 kernels over 16 or 32
//! channels: the pooled blocks after the first); other blocks and CPUs take the dense
//! products.

use super::conv::{BlockShape, Gradients};

/// Values in one 512-bit register.
const LANES: usize = 16;

/// Sixteen consecutive channels at one position: one register.
pub type Lanes = [f32; LANES];

/// The kernel side and registers per patch position, when this pass is compiled for them:
/// 3 x 3 kernels over 16 or 32 channels.
fn compiled(shape: &BlockShape) -> Option<(usize, usize)> {
    // Up to 64 output channels: the channels a window position won are a `u64`'s bits.
    let fits = shape.channels_in.is_multiple_of(LANES) && shape.geometry.pool > 1 && shape.channels_out <= 64;
    let (kernel, runs) = (shape.kernel, shape.channels_in / LANES);
    (fits && kernel == 3 && matches!(runs, 1 | 2)).then_some((kernel, runs))
}

/// Whether [`backward`] runs `shape`'s block on this CPU.
pub fn applies(shape: &BlockShape) -> bool {
    #[cfg(target_arch = "x86_64")]
    return compiled(shape).is_some() && std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = compiled(shape);
        false
    }
}

/// `input [batch, in, h, w]` padded, channels innermost: `[batch, h + 2 pad, w + 2 pad, in]`
/// in runs of [`LANES`] channels, zero in the border.
pub fn channels_last(shape: &BlockShape, input: &[f32]) -> Vec<Lanes> {
    let mut padded = vec![[0.0; LANES]; padded_len(shape)];
    for_each_row(shape, |first, c, row| {
        for (x, &value) in input[row].iter().enumerate() {
            padded[first + x * shape.channels_in / LANES][c % LANES] = value;
        }
    });
    padded
}

/// The inverse of [`channels_last`]: `[batch, in, h, w]` without the border.
fn channels_first(shape: &BlockShape, padded: &[Lanes]) -> Vec<f32> {
    let mut input = vec![0.0; shape.input_dims().iter().product()];
    for_each_row(shape, |first, c, row| {
        for (x, value) in input[row].iter_mut().enumerate() {
            *value = padded[first + x * shape.channels_in / LANES][c % LANES];
        }
    });
    input
}

/// Registers of a padded channels-last input.
fn padded_len(shape: &BlockShape) -> usize {
    let padding = shape.geometry.padding;
    shape.batch * (shape.height + 2 * padding) * (shape.width + 2 * padding) * shape.channels_in / LANES
}

/// Calls `f(the register of the row's first position and channel c's run in the padded
/// channels-last input, c, the row's range in [batch, in, h, w])` for every input row and
/// channel, all channels of a row before the next: the padded row's positions stay in the
/// first-level cache while each channel's row is copied in or out. (Position by position, the
/// planes' rows would be read or written in steps of a plane, whose 4 KiB apart addresses
/// the caches take badly.)
fn for_each_row(shape: &BlockShape, mut f: impl FnMut(usize, usize, std::ops::Range<usize>)) {
    let (channels, height, width, padding) =
        (shape.channels_in, shape.height, shape.width, shape.geometry.padding);
    let (padded_w, runs) = (width + 2 * padding, channels / LANES);
    for b in 0..shape.batch {
        for y in 0..height {
            let first = ((b * (height + 2 * padding) + y + padding) * padded_w + padding) * runs;
            for c in 0..channels {
                let row = ((b * channels + c) * height + y) * width;
                f(first + c / LANES, c, row..row + width);
            }
        }
    }
}

/// The backward pass of a block [`applies`] is true for, from its padded channels-last input,
/// its weights `[out, in, k, k]`, the pool's winner bytes and the output's gradient
/// (`[batch, out, pooled h, pooled w]`). Each channel's bias gradient sums its terms in the
/// dense pass's order (image by image, window by window); the weight gradient's terms come in
/// window order.
pub fn backward(
    shape: &BlockShape,
    weight: &[f32],
    input: &[Lanes],
    winners: &[u8],
    grad_output: &[f32],
    input_grad: bool,
) -> Gradients {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let run = match compiled(shape) {
            Some((3, 1)) => avx512::backward::<3, 1, 9>,
            Some((3, 2)) => avx512::backward::<3, 2, 18>,
            _ => unreachable!("the forward pass kept no channels-last input for {shape:?}"),
        };
        // SAFETY: the CPU has the features `avx512::backward` is compiled for.
        #[allow(unsafe_code)]
        return unsafe { run(shape, weight, input, winners, grad_output, input_grad) };
    }
    let _ = (weight, input, winners, grad_output, input_grad);
    unreachable!("the forward pass kept no channels-last input for {shape:?}")
}

/// `weight [out, in, k, k]` as `[out, k, k, in]` in runs of [`LANES`]: a patch's order.
fn weights_channels_last(shape: &BlockShape, weight: &[f32]) -> Vec<Lanes> {
    let (channels, entries) = (shape.channels_in, shape.kernel * shape.kernel);
    let mut reordered = vec![[0.0; LANES]; weight.len() / LANES];
    for (i, &w) in weight.iter().enumerate() {
        let (o, c, entry) = (i / (channels * entries), i / entries % channels, i % entries);
        let run = (o * entries + entry) * channels + c;
        reordered[run / LANES][run % LANES] = w;
    }
    reordered
}

/// The inverse of [`weights_channels_last`].
fn weights_channels_first(shape: &BlockShape, reordered: &[Lanes]) -> Vec<f32> {
    let (channels, entries) = (shape.channels_in, shape.kernel * shape.kernel);
    (0..reordered.len() * LANES)
        .map(|i| {
            let (o, c, entry) = (i / (channels * entries), i / entries % channels, i % entries);
            let run = (o * entries + entry) * channels + c;
            reordered[run / LANES][run % LANES]
        })
        .collect()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };

    use super::super::conv::{BlockShape, Gradients};
    use super::super::window::{routed, INACTIVE};
    use super::{channels_first, weights_channels_first, weights_channels_last, Lanes, LANES};

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load(values: &Lanes) -> __m512 {
        // SAFETY: `values` holds the 16 values the load reads.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_ps(values.as_ptr())
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store(values: &mut Lanes, register: __m512) {
        // SAFETY: `values` holds the 16 values the store writes.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_storeu_ps(values.as_mut_ptr(), register)
        }
    }

    /// [`super::backward`] for `K x K` kernels over `RUNS` registers of channels: patches of
    /// `N = K x K x RUNS` registers.
    #[target_feature(enable = "avx512f")]
    pub fn backward<const K: usize, const RUNS: usize, const N: usize>(
        shape: &BlockShape,
        weight: &[f32],
        input: &[Lanes],
        winners: &[u8],
        grad_output: &[f32],
        input_grad: bool,
    ) -> Gradients {
        let [batch, out, pooled_h, pooled_w] = shape.output_dims();
        let windows = pooled_h * pooled_w;
        let (p, stride) = (shape.geometry.pool, shape.geometry.stride);
        let padded_w = shape.width + 2 * shape.geometry.padding;
        let padded_plane = (shape.height + 2 * shape.geometry.padding) * padded_w;
        let (row_len, image_len) = (padded_w * RUNS, padded_plane * RUNS);
        assert!(
            N == K * K * RUNS
                && (shape.kernel, shape.channels_in) == (K, RUNS * LANES)
                && input.len() == batch * image_len
                && weight.len() == out * N * LANES
                && winners.len() == batch * out * windows
                && grad_output.len() == winners.len(),
            "sparse backward: inputs do not match their shape"
        );
        // Row `ky` of the patch from `start` in an image's padded input: `K x RUNS` registers,
        // one bounds check, then constant offsets.
        let patch_row = |start: usize, ky: usize| start + ky * row_len..start + ky * row_len + K * RUNS;
        // Where in an image's padded input the patch of a window's first position starts, and
        // how far on each position's patch starts.
        let window_starts: Vec<usize> = (0..windows)
            .map(|window| ((window / pooled_w) * padded_w + window % pooled_w) * p * stride * RUNS)
            .collect();
        let position_offsets: Vec<usize> =
            (0..p * p).map(|position| ((position / p) * padded_w + position % p) * stride * RUNS).collect();

        // The weight and bias gradients, a row of windows at a time (its patches stay in the
        // first-level cache), channel by channel: a channel's patch sums stay in registers
        // while the row's windows pass (stores in this loop would make its loads wait on them
        // whenever their addresses matched modulo 4 KiB).
        let mut weight_grad = vec![[[0.0; LANES]; N]; out];
        let mut bias = vec![0.0; out];
        for (b, image) in input.chunks_exact(image_len).enumerate() {
            for (py, window_starts) in window_starts.chunks_exact(pooled_w).enumerate() {
                for (o, (weight_grad, bias)) in weight_grad.iter_mut().zip(&mut bias).enumerate() {
                    let row = ((b * out + o) * pooled_h + py) * pooled_w..;
                    let row = row.start..row.start + pooled_w;
                    let mut sums = [_mm512_setzero_ps(); N];
                    for ((&g, &w), &window_start) in
                        grad_output[row.clone()].iter().zip(&winners[row]).zip(window_starts)
                    {
                        let g = routed(g, w);
                        *bias += g;
                        let start = window_start + position_offsets[usize::from(w & !INACTIVE)];
                        let g = _mm512_set1_ps(g);
                        for ky in 0..K {
                            let row = &image[patch_row(start, ky)];
                            for i in 0..K * RUNS {
                                sums[ky * K * RUNS + i] =
                                    _mm512_fmadd_ps(g, load(&row[i]), sums[ky * K * RUNS + i]);
                            }
                        }
                    }
                    for (grad, sum) in weight_grad.iter_mut().zip(sums) {
                        store(grad, _mm512_add_ps(load(grad), sum));
                    }
                }
            }
        }

        // The input gradient, window by window: each position's patch gradient is its
        // winning channels' weights times their gradients, summed in registers.
        let input_grad = input_grad.then(|| {
            let weight = weights_channels_last(shape, weight);
            let (weight, _) = weight.as_chunks::<N>();
            let mut padded_grad = vec![[0.0; LANES]; input.len()];
            // One image's winner bytes and routed gradients, window by window.
            let (mut image_winners, mut image_grads) = (vec![0; windows * out], vec![0.0; windows * out]);
            for (b, image_grad) in padded_grad.chunks_exact_mut(image_len).enumerate() {
                for o in 0..out {
                    let plane = (b * out + o) * windows..(b * out + o + 1) * windows;
                    for (window, (&g, &w)) in
                        grad_output[plane.clone()].iter().zip(&winners[plane]).enumerate()
                    {
                        image_winners[window * out + o] = w;
                        image_grads[window * out + o] = routed(g, w);
                    }
                }
                let rows = image_winners.chunks_exact(out).zip(image_grads.chunks_exact(out));
                for ((winners, grads), &window_start) in rows.zip(&window_starts) {
                    for (position, &position_offset) in position_offsets.iter().enumerate() {
                        // The channels this position won (inactive ones never match).
                        let mut won = winners
                            .iter()
                            .enumerate()
                            .fold(0u64, |won, (o, &w)| won | u64::from(usize::from(w) == position) << o);
                        let mut sums = [_mm512_setzero_ps(); N];
                        while won != 0 {
                            let o = won.trailing_zeros() as usize;
                            won &= won - 1;
                            let g = _mm512_set1_ps(grads[o]);
                            for (sum, weight) in sums.iter_mut().zip(&weight[o]) {
                                *sum = _mm512_fmadd_ps(g, load(weight), *sum);
                            }
                        }
                        for ky in 0..K {
                            let row = &mut image_grad[patch_row(window_start + position_offset, ky)];
                            for i in 0..K * RUNS {
                                let sum = _mm512_add_ps(load(&row[i]), sums[ky * K * RUNS + i]);
                                store(&mut row[i], sum);
                            }
                        }
                    }
                }
            }
            channels_first(shape, &padded_grad)
        });
        Gradients {
            input: input_grad,
            weight: weights_channels_first(shape, weight_grad.as_flattened()),
            bias,
        }
    }
}
