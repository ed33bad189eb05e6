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
    let fits = shape.channels_in.is_multiple_of(LANES) && shape.geometry.pool > 1;
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
/// in runs of [`LANES`] channels, zero in the border. For blocks [`applies`] is true for.
pub fn channels_last(shape: &BlockShape, input: &[f32]) -> Vec<Lanes> {
    assert_eq!(input.len(), shape.input_dims().iter().product::<usize>(), "channels_last: input size");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has the features `avx512::channels_last` is compiled for.
        #[allow(unsafe_code)]
        return unsafe { avx512::channels_last(shape, input) };
    }
    unreachable!("channels-last input for a block the sparse backward pass does not take: {shape:?}")
}

/// Registers of a padded channels-last input.
fn padded_len(shape: &BlockShape) -> usize {
    let padding = shape.geometry.padding;
    shape.batch * (shape.height + 2 * padding) * (shape.width + 2 * padding) * shape.channels_in / LANES
}

/// Calls `f(the register of the block's first position in the padded channels-last input,
/// where its first channel's row starts in [batch, in, h, w], its positions)` for every block
/// of [`LANES`] channels by up to [`LANES`] positions of an input row: one register transpose
/// each way.
fn for_each_block(shape: &BlockShape, mut f: impl FnMut(usize, usize, usize)) {
    let (channels, height, width, padding) =
        (shape.channels_in, shape.height, shape.width, shape.geometry.padding);
    let (padded_w, runs) = (width + 2 * padding, channels / LANES);
    for b in 0..shape.batch {
        for y in 0..height {
            let first = ((b * (height + 2 * padding) + y + padding) * padded_w + padding) * runs;
            for run in 0..runs {
                let row = ((b * channels + run * LANES) * height + y) * width;
                for x in (0..width).step_by(LANES) {
                    f(first + x * runs + run, row + x, LANES.min(width - x));
                }
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
        __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_shuffle_f32x4, _mm512_shuffle_ps,
        _mm512_storeu_ps, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
    };

    use super::super::conv::{BlockShape, Gradients};
    use super::super::window::{routed, INACTIVE};
    use super::{for_each_block, padded_len, weights_channels_first, weights_channels_last, Lanes, LANES};

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

    /// The first `values.len()` (at most [`LANES`]) lanes from `values`, zero in the others.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn load_first(values: &[f32]) -> __m512 {
        debug_assert!(values.len() <= LANES);
        // SAFETY: the mask loads the slice's values only; masked-off lanes touch no memory.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_maskz_loadu_ps(((1u32 << values.len()) - 1) as u16, values.as_ptr())
        }
    }

    /// The first `values.len()` (at most [`LANES`]) lanes of `register` into `values`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn store_first(values: &mut [f32], register: __m512) {
        debug_assert!(values.len() <= LANES);
        // SAFETY: the mask stores the slice's values only; masked-off lanes touch no memory.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_mask_storeu_ps(values.as_mut_ptr(), ((1u32 << values.len()) - 1) as u16, register)
        }
    }

    /// The transpose of a 16 x 16 matrix held a row per register: pairs of rows interleaved,
    /// then pairs of pairs, then 128-bit lanes swapped between groups of four and of eight.
    #[target_feature(enable = "avx512f")]
    fn transpose(rows: [__m512; LANES]) -> [__m512; LANES] {
        let mut t = rows;
        let mut r = rows;
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
        }
        for i in 0..4 {
            r[4 * i] = _mm512_shuffle_ps::<0x44>(t[4 * i], t[4 * i + 2]);
            r[4 * i + 1] = _mm512_shuffle_ps::<0xee>(t[4 * i], t[4 * i + 2]);
            r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(t[4 * i + 1], t[4 * i + 3]);
            r[4 * i + 3] = _mm512_shuffle_ps::<0xee>(t[4 * i + 1], t[4 * i + 3]);
        }
        for h in 0..2 {
            for i in 0..4 {
                t[8 * h + i] = _mm512_shuffle_f32x4::<0x88>(r[8 * h + i], r[8 * h + 4 + i]);
                t[8 * h + 4 + i] = _mm512_shuffle_f32x4::<0xdd>(r[8 * h + i], r[8 * h + 4 + i]);
            }
        }
        for i in 0..8 {
            r[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[8 + i]);
            r[8 + i] = _mm512_shuffle_f32x4::<0xdd>(t[i], t[8 + i]);
        }
        r
    }

    /// [`super::channels_last`]: blocks of 16 channels by 16 positions, transposed in registers.
    #[target_feature(enable = "avx512f")]
    pub fn channels_last(shape: &BlockShape, input: &[f32]) -> Vec<Lanes> {
        let (plane, runs) = (shape.height * shape.width, shape.channels_in / LANES);
        let mut padded = vec![[0.0; LANES]; padded_len(shape)];
        for_each_block(shape, |first, row, positions| {
            let mut rows = [_mm512_setzero_ps(); LANES];
            for (c, rows) in rows.iter_mut().enumerate() {
                *rows = load_first(&input[row + c * plane..][..positions]);
            }
            for (x, column) in transpose(rows).into_iter().take(positions).enumerate() {
                store(&mut padded[first + x * runs], column);
            }
        });
        padded
    }

    /// The inverse of [`channels_last`]: `[batch, in, h, w]` without the border.
    #[target_feature(enable = "avx512f")]
    pub(super) fn channels_first(shape: &BlockShape, padded: &[Lanes]) -> Vec<f32> {
        let (plane, runs) = (shape.height * shape.width, shape.channels_in / LANES);
        let mut input = vec![0.0; shape.input_dims().iter().product()];
        for_each_block(shape, |first, row, positions| {
            let mut columns = [_mm512_setzero_ps(); LANES];
            for (x, column) in columns.iter_mut().take(positions).enumerate() {
                *column = load(&padded[first + x * runs]);
            }
            for (c, rows) in transpose(columns).into_iter().enumerate() {
                store_first(&mut input[row + c * plane..][..positions], rows);
            }
        });
        input
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

        // A row of windows at a time (its patches stay in the first-level cache), channel by
        // channel: the channel's weight-gradient sums and weights stay in registers while the
        // row's windows pass, each adding its patch times its gradient to the sums and the
        // weights times its gradient to its patch's input gradient.
        let weight = weights_channels_last(shape, weight);
        let (weight, _) = weight.as_chunks::<N>();
        let mut weight_grad = vec![[[0.0; LANES]; N]; out];
        let mut bias = vec![0.0; out];
        let mut padded_grad = vec![[0.0; LANES]; if input_grad { input.len() } else { 0 }];
        let mut image_grads = padded_grad.chunks_exact_mut(image_len);
        for (b, image) in input.chunks_exact(image_len).enumerate() {
            let mut image_grad = image_grads.next();
            for (py, window_starts) in window_starts.chunks_exact(pooled_w).enumerate() {
                for o in 0..out {
                    let row = ((b * out + o) * pooled_h + py) * pooled_w..;
                    let row = row.start..row.start + pooled_w;
                    let weights = weight[o].map(|values| load(&values));
                    let mut sums = [_mm512_setzero_ps(); N];
                    // In a register: through memory, each window's add would wait on the last.
                    let mut bias_sum = bias[o];
                    for ((&g, &w), &window_start) in
                        grad_output[row.clone()].iter().zip(&winners[row]).zip(window_starts)
                    {
                        let g = routed(g, w);
                        bias_sum += g;
                        let start = window_start + position_offsets[usize::from(w & !INACTIVE)];
                        let g = _mm512_set1_ps(g);
                        for ky in 0..K {
                            let values = &image[patch_row(start, ky)];
                            for i in 0..K * RUNS {
                                sums[ky * K * RUNS + i] =
                                    _mm512_fmadd_ps(g, load(&values[i]), sums[ky * K * RUNS + i]);
                            }
                            if let Some(image_grad) = image_grad.as_deref_mut() {
                                let grads = &mut image_grad[patch_row(start, ky)];
                                for i in 0..K * RUNS {
                                    let sum = _mm512_fmadd_ps(g, weights[ky * K * RUNS + i], load(&grads[i]));
                                    store(&mut grads[i], sum);
                                }
                            }
                        }
                    }
                    bias[o] = bias_sum;
                    for (grad, sum) in weight_grad[o].iter_mut().zip(sums) {
                        store(grad, _mm512_add_ps(load(grad), sum));
                    }
                }
            }
        }
        Gradients {
            input: input_grad.then(|| channels_first(shape, &padded_grad)),
            weight: weights_channels_first(shape, weight_grad.as_flattened()),
            bias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::ConvGeometry;
    use super::*;

    /// Every value lands at its padded position and channel, the border stays zero, and the
    /// way back gives the input; for rows of whole, partial and several blocks of positions.
    #[test]
    fn channels_last_puts_each_value_at_its_position_and_channel_and_back() {
        for (input, padding) in [([2, 16, 5, 19], 1), ([1, 32, 4, 16], 0), ([3, 16, 8, 8], 1)] {
            let [batch, channels, height, width] = input;
            let geometry = ConvGeometry { stride: 1, padding, pool: 2 };
            let shape = BlockShape::new(input, [32, channels, 3, 3], geometry).unwrap();
            if !applies(&shape) {
                eprintln!("no AVX-512 here: the blocks keep their patches");
                return;
            }
            let values: Vec<f32> = (1..=input.iter().product::<usize>()).map(|i| i as f32).collect();
            let padded = channels_last(&shape, &values);
            let (padded_h, padded_w, runs) = (height + 2 * padding, width + 2 * padding, channels / LANES);
            assert_eq!(padded.len(), batch * padded_h * padded_w * runs);
            for (i, &value) in values.iter().enumerate() {
                let (b, c, y, x) = (
                    i / (channels * height * width),
                    i / (height * width) % channels,
                    i / width % height,
                    i % width,
                );
                let position = (b * padded_h + y + padding) * padded_w + x + padding;
                assert_eq!(padded[position * runs + c / LANES][c % LANES], value, "{input:?} value {i}");
            }
            let nonzero = padded.as_flattened().iter().filter(|&&v| v != 0.0).count();
            assert_eq!(nonzero, values.len(), "{input:?}: the border is zero");
            // SAFETY: `applies` found AVX-512.
            #[allow(unsafe_code)]
            let back = unsafe { avx512::channels_first(&shape, &padded) };
            assert_eq!(back, values, "{input:?}: back to channels first");
        }
    }
}
