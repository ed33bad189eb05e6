//! The pooled blocks with the channels innermost, by AVX-512.
//!
//! The block's input is padded and transposed to `[batch, padded h, padded w, in]` ([`padded`]):
//! a patch is then `k x k` contiguous runs of `in` values, whole 512-bit registers for 16 or
//! 32 channels, and the weights are taken in the same `(ky, kx, in)` order.
//! - [`forward`]: from 16 or 32 channels with 2 x 2 windows by Winograd's F(2 x 2, 3 x 3)
//!   (module `winograd`: each window's four outputs from its 4 x 4 input tile with 16 multiplies
//!   per input and output channel, not 36); otherwise the convolution summed directly from
//!   that input, a tile of output positions by all output channels at a time in registers (no
//!   patch matrix). Bias and ReLU on the way out, then the max-pool sixteen channels at a time.
//! - [`backward`]: of each `p x p` pool window only the winner's activation gets a gradient
//!   (none where the ReLU was inactive), so the weight and input gradients take one patch's
//!   multiply-adds per window and output channel, where the dense products ([`super::conv`])
//!   spend them on every position: a quarter of the work for 2 x 2 windows.
//!
//! For stride-1 3 x 3 kernels from 16 or 32 channels to 32 or 64, and from one channel to 16
//! with 2 x 2 windows ([`applies`]: every pooled block of the models); other blocks and CPUs
//! take [`super::conv`]'s im2col and matrix products.

use super::conv::{BlockShape, Gradients};

#[cfg(target_arch = "x86_64")]
mod winograd;

/// Values in one 512-bit register.
const LANES: usize = 16;

/// The input channels and registers of output channels when this path is compiled for them:
/// stride-1 3 x 3 kernels from 16 or 32 channels to 32 or 64, and from one channel to 16 with
/// 2 x 2 windows.
fn compiled(shape: &BlockShape) -> Option<(usize, usize)> {
    let (channels, outs) = (shape.channels_in, shape.channels_out / LANES);
    let pooled = shape.channels_out.is_multiple_of(LANES)
        && shape.geometry.pool > 1
        && shape.geometry.stride == 1
        && shape.kernel == 3;
    let fits = pooled
        && match channels {
            16 | 32 => matches!(outs, 2 | 4),
            1 => outs == 1 && shape.geometry.pool == 2,
            _ => false,
        };
    fits.then_some((channels, outs))
}

/// Whether [`forward`] and [`backward`] run `shape`'s block on this CPU.
pub fn applies(shape: &BlockShape) -> bool {
    #[cfg(target_arch = "x86_64")]
    return compiled(shape).is_some() && std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = compiled(shape);
        false
    }
}

/// The forward pass of a block [`applies`] is true for, from its padded channels-last input
/// ([`padded`]), weights `[out, in, k, k]` and bias `[out]`: from 16 or 32 channels with 2 x 2
/// windows by Winograd's F(2 x 2, 3 x 3), otherwise the convolution summed directly from the
/// input, a few output positions by all output channels at a time in registers; bias and ReLU
/// on the way out, then the pool. The output
/// (`[batch, out, pooled h, pooled w]`) and the pool's winner bytes in the same order.
pub fn forward(shape: &BlockShape, input: &[f32], weight: &[f32], bias: &[f32]) -> (Vec<f32>, Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // 2 x 2 windows from 16 or 32 channels by Winograd's F(2 x 2, 3 x 3), the others summed
        // directly.
        let run = match (compiled(shape), shape.geometry.pool) {
            (Some((16, 2)), 2) => winograd::forward::<16, 2, 8>,
            (Some((32, 2)), 2) => winograd::forward::<32, 2, 8>,
            (Some((16, 4)), 2) => winograd::forward::<16, 4, 4>,
            (Some((32, 4)), 2) => winograd::forward::<32, 4, 4>,
            (Some((16, 2)), _) => avx512::forward::<3, 16, 2, 8>,
            (Some((32, 2)), _) => avx512::forward::<3, 32, 2, 8>,
            (Some((16, 4)), _) => avx512::forward::<3, 16, 4, 4>,
            (Some((32, 4)), _) => avx512::forward::<3, 32, 4, 4>,
            (Some((1, 1)), _) => avx512::forward::<3, 1, 1, 16>,
            _ => unreachable!("channels-last forward pass for a block it does not take: {shape:?}"),
        };
        // SAFETY: the CPU has the features `avx512::forward` and `winograd::forward` are
        // compiled for.
        #[allow(unsafe_code)]
        return unsafe { run(shape, input, weight, bias) };
    }
    let _ = (input, weight, bias);
    unreachable!("channels-last forward pass for a block it does not take: {shape:?}")
}

/// `input [batch, in, h, w]` padded, channels innermost: `[batch, h + 2 pad, w + 2 pad, in]`,
/// zero in the border. For blocks [`applies`] is true for.
pub fn padded(shape: &BlockShape, input: &[f32]) -> Vec<f32> {
    assert_eq!(input.len(), shape.input_dims().iter().product::<usize>(), "channels_last: input size");
    assert!(compiled(shape).is_some(), "channels-last input for a block this path does not take: {shape:?}");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has the features `avx512::padded` is compiled for.
        #[allow(unsafe_code)]
        return unsafe { avx512::padded(shape, input) };
    }
    unreachable!("channels-last input without AVX-512: {shape:?}")
}

/// The backward pass of a block [`applies`] is true for, from its padded channels-last input,
/// its weights `[out, in, k, k]`, the pool's winner bytes and the output's gradient
/// (`[batch, out, pooled h, pooled w]`). From 16 or 32 channels, each channel's bias gradient
/// sums its terms in the dense pass's order (image by image, window by window) and the weight
/// gradient's in window order; from one channel, both in sixteen lanes of windows, then the
/// lanes.
pub fn backward(
    shape: &BlockShape,
    weight: &[f32],
    input: &[f32],
    winners: &[u8],
    grad_output: &[f32],
    input_grad: bool,
) -> Gradients {
    let outputs = shape.output_dims().iter().product::<usize>();
    assert!(
        weight.len() == shape.channels_out * shape.patch_len()
            && winners.len() == outputs
            && grad_output.len() == outputs,
        "channels-last backward: inputs do not match their shape"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let run = match compiled(shape) {
            Some((16, _)) => avx512::backward::<3, 1, 9>,
            Some((32, _)) => avx512::backward::<3, 2, 18>,
            Some((1, _)) => avx512::backward_one_channel::<3, 9>,
            _ => unreachable!("the forward pass kept no channels-last input for {shape:?}"),
        };
        // SAFETY: the CPU has the features `avx512::backward` and `backward_one_channel` are
        // compiled for.
        #[allow(unsafe_code)]
        return unsafe { run(shape, weight, input, winners, grad_output, input_grad) };
    }
    let _ = (weight, input, winners, grad_output, input_grad);
    unreachable!("the forward pass kept no channels-last input for {shape:?}")
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, _mm512_add_epi32, _mm512_add_ps, _mm512_and_si512, _mm512_castps_si512, _mm512_castsi512_ps,
        _mm512_cmp_ps_mask, _mm512_cvtepi32_epi8, _mm512_cvtepu8_epi32, _mm512_fmadd_ps, _mm512_loadu_ps,
        _mm512_mask_blend_epi32, _mm512_mask_blend_ps, _mm512_mask_or_epi32, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_ps, _mm512_maskz_mov_ps, _mm512_max_ps, _mm512_permutex2var_ps,
        _mm512_reduce_add_ps, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps,
        _mm512_setzero_si512, _mm512_shuffle_f32x4, _mm512_shuffle_ps, _mm512_storeu_ps,
        _mm512_test_epi32_mask, _mm512_testn_epi32_mask, _mm512_unpackhi_ps, _mm512_unpacklo_ps,
        _mm_loadu_si128, _mm_storeu_si128, _CMP_GT_OQ,
    };

    use super::super::conv::{BlockShape, Gradients, MAX_POOL};
    use super::super::window::{routed, INACTIVE};
    use super::LANES;

    /// Sixteen consecutive values (channels at one position, or positions of one channel): one
    /// register.
    pub(super) type Lanes = [f32; LANES];

    /// Rows and columns of a padded input plane.
    pub(super) fn padded_sides(shape: &BlockShape) -> (usize, usize) {
        let padding = shape.geometry.padding;
        (shape.height + 2 * padding, shape.width + 2 * padding)
    }

    /// Values of a padded channels-last input.
    fn padded_len(shape: &BlockShape) -> usize {
        let (padded_h, padded_w) = padded_sides(shape);
        shape.batch * padded_h * padded_w * shape.channels_in
    }

    /// Where an input row starts in the padded channels-last input, in values.
    fn padded_row_start(shape: &BlockShape, b: usize, y: usize) -> usize {
        let (padded_h, padded_w) = padded_sides(shape);
        ((b * padded_h + y + shape.geometry.padding) * padded_w + shape.geometry.padding) * shape.channels_in
    }

    /// Calls `f(the register of the block's first position in the padded channels-last input,
    /// where its first channel's row starts in [batch, in, h, w], its positions)` for every block
    /// of [`LANES`] channels by up to [`LANES`] positions of an input row: one register transpose
    /// each way.
    fn for_each_block(shape: &BlockShape, mut f: impl FnMut(usize, usize, usize)) {
        let (channels, height, width) = (shape.channels_in, shape.height, shape.width);
        let runs = channels / LANES;
        for b in 0..shape.batch {
            for y in 0..height {
                let first = padded_row_start(shape, b, y) / LANES;
                for run in 0..runs {
                    let row = ((b * channels + run * LANES) * height + y) * width;
                    for x in (0..width).step_by(LANES) {
                        f(first + x * runs + run, row + x, LANES.min(width - x));
                    }
                }
            }
        }
    }

    /// Output channel, input channel and kernel entry of weight `i` of `[out, in, k, k]`.
    pub(super) fn weight_parts(shape: &BlockShape, i: usize) -> (usize, usize, usize) {
        let (channels, entries) = (shape.channels_in, shape.kernel * shape.kernel);
        (i / (channels * entries), i / entries % channels, i % entries)
    }

    /// Where weight `i` of `[out, in, k, k]` goes in `[out, k, k, in]`: a patch's order.
    fn patch_order(shape: &BlockShape, i: usize) -> usize {
        let (o, c, entry) = weight_parts(shape, i);
        (o * shape.kernel * shape.kernel + entry) * shape.channels_in + c
    }

    /// `weight [out, in, k, k]` as `[out, k, k, in]` in runs of [`LANES`].
    fn weights_channels_last(shape: &BlockShape, weight: &[f32]) -> Vec<Lanes> {
        let mut reordered = vec![[0.0; LANES]; weight.len() / LANES];
        for (i, &w) in weight.iter().enumerate() {
            let at = patch_order(shape, i);
            reordered[at / LANES][at % LANES] = w;
        }
        reordered
    }

    /// The inverse of [`weights_channels_last`].
    fn weights_channels_first(shape: &BlockShape, reordered: &[Lanes]) -> Vec<f32> {
        (0..reordered.len() * LANES)
            .map(|i| {
                let at = patch_order(shape, i);
                reordered[at / LANES][at % LANES]
            })
            .collect()
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn load(values: &Lanes) -> __m512 {
        // SAFETY: `values` holds the 16 values the load reads.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_ps(values.as_ptr())
        }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn store(values: &mut Lanes, register: __m512) {
        // SAFETY: `values` holds the 16 values the store writes.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_storeu_ps(values.as_mut_ptr(), register)
        }
    }

    /// `bias` (`OUTS` x [`LANES`] output channels) in registers.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn bias_registers<const OUTS: usize>(bias: &[f32]) -> [__m512; OUTS] {
        let mut biases = [_mm512_setzero_ps(); OUTS];
        for (register, bias) in biases.iter_mut().zip(bias.chunks_exact(LANES)) {
            *register = load_first(bias);
        }
        biases
    }

    /// The first `values.len()` (at most [`LANES`]) lanes from `values`, zero in the others.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn load_first(values: &[f32]) -> __m512 {
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

    /// [`super::padded`]: one channel's rows copied inside the border; more channels in
    /// blocks of 16 channels by 16 positions, transposed in registers.
    #[target_feature(enable = "avx512f")]
    pub fn padded(shape: &BlockShape, input: &[f32]) -> Vec<f32> {
        if shape.channels_in == 1 {
            let mut padded = vec![0.0; padded_len(shape)];
            for (row, values) in input.chunks_exact(shape.width).enumerate() {
                let start = padded_row_start(shape, row / shape.height, row % shape.height);
                padded[start..start + shape.width].copy_from_slice(values);
            }
            return padded;
        }
        let (plane, runs) = (shape.height * shape.width, shape.channels_in / LANES);
        let mut padded = vec![[0.0; LANES]; padded_len(shape) / LANES];
        for_each_block(shape, |first, row, positions| {
            let mut rows = [_mm512_setzero_ps(); LANES];
            for (c, channel_row) in rows.iter_mut().enumerate() {
                *channel_row = load_first(&input[row + c * plane..][..positions]);
            }
            for (x, column) in transpose(rows).into_iter().take(positions).enumerate() {
                store(&mut padded[first + x * runs], column);
            }
        });
        padded.into_flattened()
    }

    /// The inverse of [`padded`]: `[batch, in, h, w]` without the border.
    #[target_feature(enable = "avx512f")]
    pub(super) fn channels_first(shape: &BlockShape, padded: &[f32]) -> Vec<f32> {
        if shape.channels_in == 1 {
            let rows = (0..shape.batch * shape.height).map(|row| {
                let start = padded_row_start(shape, row / shape.height, row % shape.height);
                &padded[start..start + shape.width]
            });
            return rows.flatten().copied().collect();
        }
        let (plane, runs) = (shape.height * shape.width, shape.channels_in / LANES);
        let (padded, _) = padded.as_chunks::<LANES>();
        let mut input = vec![0.0; shape.input_dims().iter().product()];
        for_each_block(shape, |first, row, positions| {
            let mut columns = [_mm512_setzero_ps(); LANES];
            for (x, column) in columns.iter_mut().take(positions).enumerate() {
                *column = load(&padded[first + x * runs]);
            }
            for (c, channel_row) in transpose(columns).into_iter().enumerate() {
                store_first(&mut input[row + c * plane..][..positions], channel_row);
            }
        });
        input
    }

    /// [`super::forward`] for `K x K` kernels from `C` channels to `OUTS` registers of
    /// channels, `TILE` output positions at a time.
    #[target_feature(enable = "avx512f")]
    pub fn forward<const K: usize, const C: usize, const OUTS: usize, const TILE: usize>(
        shape: &BlockShape,
        input: &[f32],
        weight: &[f32],
        bias: &[f32],
    ) -> (Vec<f32>, Vec<u8>) {
        let [batch, out, pooled_h, pooled_w] = shape.output_dims();
        let (out_w, p) = (shape.out_width(), shape.geometry.pool);
        let (padded_h, padded_w) = padded_sides(shape);
        let (row_len, image_len) = (padded_w * C, padded_h * padded_w * C);
        assert!(
            (shape.kernel, shape.channels_in, out) == (K, C, OUTS * LANES)
                && shape.geometry.stride == 1
                && input.len() == batch * image_len
                && weight.len() == out * C * K * K
                && bias.len() == out,
            "channels-last forward: inputs do not match their shape"
        );
        // The weights as `[ky, kx, in, out]`: one entry's output channels are `OUTS` registers.
        let mut weights = vec![[0.0; LANES]; K * K * C * OUTS];
        for (i, &w) in weight.iter().enumerate() {
            let (o, c, entry) = weight_parts(shape, i);
            weights[(entry * C + c) * OUTS + o / LANES][o % LANES] = w;
        }
        let biases = bias_registers::<OUTS>(bias);
        // One row of windows at a time: its `p` rows of activations (`[p, out w, out]`, after
        // bias and ReLU) stay in the first-level cache for the pool. Rows past the last whole
        // window are not computed: the pool drops them.
        let mut band = vec![[0.0; LANES]; p * out_w * OUTS];
        let mut maxima = vec![0.0; batch * out * pooled_h * pooled_w];
        let mut winners = vec![0; maxima.len()];
        let whole = out_w - out_w % TILE;
        for b in 0..batch {
            for py in 0..pooled_h {
                for (dy, activations) in band.chunks_exact_mut(out_w * OUTS).enumerate() {
                    let start = b * image_len + (py * p + dy) * row_len;
                    for x in (0..whole).step_by(TILE) {
                        let tile = &mut activations[x * OUTS..][..TILE * OUTS];
                        conv_tile::<K, C, OUTS, TILE>(input, start + x * C, row_len, &weights, biases, tile);
                    }
                    for x in whole..out_w {
                        let tile = &mut activations[x * OUTS..][..OUTS];
                        conv_tile::<K, C, OUTS, 1>(input, start + x * C, row_len, &weights, biases, tile);
                    }
                }
                let row = (b * out * pooled_h + py) * pooled_w;
                pool_band::<OUTS>(
                    &band,
                    out_w,
                    p,
                    pooled_h * pooled_w,
                    &mut maxima[row..],
                    &mut winners[row..],
                );
            }
        }
        (maxima, winners)
    }

    /// `TILE` consecutive output positions' `OUTS` registers of channels into `activations`,
    /// from the padded input (flat, the first position's patch at `start`): the sums in
    /// registers, each input value broadcast once per tile position and kernel column.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn conv_tile<const K: usize, const C: usize, const OUTS: usize, const TILE: usize>(
        input: &[f32],
        start: usize,
        row_len: usize,
        weights: &[Lanes],
        biases: [__m512; OUTS],
        activations: &mut [Lanes],
    ) {
        let mut sums = [biases; TILE];
        for ky in 0..K {
            let row = &input[start + ky * row_len..][..(TILE + K - 1) * C];
            let weights = &weights[ky * K * C * OUTS..][..K * C * OUTS];
            for kx in 0..K {
                for c in 0..C {
                    let mut w = [_mm512_setzero_ps(); OUTS];
                    for (r, w) in w.iter_mut().enumerate() {
                        *w = load(&weights[(kx * C + c) * OUTS + r]);
                    }
                    for (t, sums) in sums.iter_mut().enumerate() {
                        let value = _mm512_set1_ps(row[(t + kx) * C + c]);
                        for (sum, &w) in sums.iter_mut().zip(&w) {
                            *sum = _mm512_fmadd_ps(value, w, *sum);
                        }
                    }
                }
            }
        }
        // The ReLU: `max` gives its second operand, zero, for NaN too.
        for (activations, sums) in activations.chunks_exact_mut(OUTS).zip(sums) {
            for (activation, sum) in activations.iter_mut().zip(sums) {
                store(activation, _mm512_max_ps(sum, _mm512_setzero_ps()));
            }
        }
    }

    /// The `p x p` max-pool of one row of windows from its channels-last activations
    /// (`band [p, out w, OUTS registers]`), sixteen channels at a time: each window's first
    /// largest activation in row-major order and its winner byte, into `maxima` and
    /// `winners` from their window row's start in `[out, pooled h, pooled w]` (each output
    /// channel's row `windows` further on).
    #[target_feature(enable = "avx512f")]
    pub(super) fn pool_band<const OUTS: usize>(
        band: &[Lanes],
        out_w: usize,
        p: usize,
        windows: usize,
        maxima: &mut [f32],
        winners: &mut [u8],
    ) {
        let pooled_w = out_w / p;
        // Where each window position's activations are from the window's first, beyond it.
        let mut offsets = [0; MAX_POOL * MAX_POOL];
        for (q, offset) in offsets.iter_mut().enumerate().take(p * p) {
            *offset = ((q / p) * out_w + q % p) * OUTS;
        }
        let offsets = &offsets[1..p * p];
        for r in 0..OUTS {
            // Sixteen windows of sixteen channels, transposed to sixteen channels' rows.
            for first in (0..pooled_w).step_by(LANES) {
                let count = LANES.min(pooled_w - first);
                let mut window_maxima = [_mm512_setzero_ps(); LANES];
                let mut window_winners = [_mm512_setzero_ps(); LANES];
                for (px, (window_max, window_winner)) in
                    (first..first + count).zip(window_maxima.iter_mut().zip(&mut window_winners))
                {
                    let window = &band[px * p * OUTS + r..];
                    let mut best = load(&window[0]);
                    let mut position = _mm512_setzero_si512();
                    for (q, &offset) in (1..).zip(offsets) {
                        let value = load(&window[offset]);
                        let larger = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(value, best);
                        best = _mm512_mask_blend_ps(larger, best, value);
                        position = _mm512_mask_blend_epi32(larger, position, _mm512_set1_epi32(q));
                    }
                    let active = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(best, _mm512_setzero_ps());
                    let inactive = _mm512_set1_epi32(i32::from(INACTIVE));
                    *window_max = best;
                    *window_winner =
                        _mm512_castsi512_ps(_mm512_mask_or_epi32(position, !active, position, inactive));
                }
                let rows = transpose(window_maxima).into_iter().zip(transpose(window_winners));
                for (c, (maxima_row, winner_row)) in rows.enumerate() {
                    let row = (r * LANES + c) * windows + first;
                    store_first(&mut maxima[row..row + count], maxima_row);
                    let mut bytes = [0u8; LANES];
                    // SAFETY: `bytes` holds the 16 bytes the store writes.
                    #[allow(unsafe_code)]
                    unsafe {
                        _mm_storeu_si128(
                            bytes.as_mut_ptr().cast(),
                            _mm512_cvtepi32_epi8(_mm512_castps_si512(winner_row)),
                        );
                    }
                    winners[row..row + count].copy_from_slice(&bytes[..count]);
                }
            }
        }
    }

    /// The 32 values of `values` from `at` on as two registers (zero past the end).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn strip(values: &[f32], at: usize) -> (__m512, __m512) {
        if let Some(strip) = values.get(at..at + 2 * LANES) {
            let (low, high) = strip.split_at(LANES);
            return (load(low.try_into().expect("16 values")), load(high.try_into().expect("16 values")));
        }
        let rest = &values[at.min(values.len())..];
        let (low, high) = rest.split_at(rest.len().min(LANES));
        (load_first(low), load_first(&high[..high.len().min(LANES)]))
    }

    /// [`super::backward`] for `K x K = N` kernels over one input channel with 2 x 2 windows.
    /// The weight gradient sixteen windows of a channel at a time, one register per kernel
    /// entry: each window's patch value is picked from the 32 values of the two rows its
    /// winner can be on (a permute by its column, a blend by its row), so no patch is built.
    /// The input gradient (which no model's first block needs) value by value.
    #[target_feature(enable = "avx512f")]
    pub fn backward_one_channel<const K: usize, const N: usize>(
        shape: &BlockShape,
        weight: &[f32],
        input: &[f32],
        winners: &[u8],
        grad_output: &[f32],
        input_grad: bool,
    ) -> Gradients {
        let [batch, out, pooled_h, pooled_w] = shape.output_dims();
        let windows = pooled_h * pooled_w;
        let (padded_h, padded_w) = padded_sides(shape);
        let plane = padded_h * padded_w;
        // The weights', winners' and gradient's sizes are checked by `super::backward`.
        assert!(
            N == K * K
                && (shape.kernel, shape.channels_in, shape.geometry.pool, shape.geometry.stride)
                    == (K, 1, 2, 1)
                && input.len() == batch * plane,
            "one-channel channels-last backward: input does not match its shape"
        );
        // Lane j's window, 2 j columns into the strip of 32 values its group reads.
        let even_columns = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let mut weight_grad = vec![0.0; out * K * K];
        let mut bias = vec![0.0; out];
        for o in 0..out {
            let mut sums = [_mm512_setzero_ps(); N];
            let mut bias_sums = _mm512_setzero_ps();
            for b in 0..batch {
                for py in 0..pooled_h {
                    let row = ((b * out + o) * pooled_h + py) * pooled_w;
                    for first in (0..pooled_w).step_by(LANES) {
                        let count = LANES.min(pooled_w - first);
                        let mut bytes = [INACTIVE; LANES];
                        bytes[..count].copy_from_slice(&winners[row + first..][..count]);
                        // SAFETY: `bytes` holds the 16 bytes the load reads.
                        #[allow(unsafe_code)]
                        let w = _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) });
                        let active = _mm512_testn_epi32_mask(w, _mm512_set1_epi32(i32::from(INACTIVE)));
                        let g = _mm512_maskz_mov_ps(active, load_first(&grad_output[row + first..][..count]));
                        bias_sums = _mm512_add_ps(bias_sums, g);
                        let columns =
                            _mm512_add_epi32(even_columns, _mm512_and_si512(w, _mm512_set1_epi32(1)));
                        let lower = _mm512_test_epi32_mask(w, _mm512_set1_epi32(2));
                        for ky in 0..K {
                            let top = b * plane + (2 * py + ky) * padded_w + 2 * first;
                            for kx in 0..K {
                                let (upper_lo, upper_hi) = strip(input, top + kx);
                                let (lower_lo, lower_hi) = strip(input, top + padded_w + kx);
                                let upper = _mm512_permutex2var_ps(upper_lo, columns, upper_hi);
                                let values = _mm512_mask_blend_ps(
                                    lower,
                                    upper,
                                    _mm512_permutex2var_ps(lower_lo, columns, lower_hi),
                                );
                                sums[ky * K + kx] = _mm512_fmadd_ps(g, values, sums[ky * K + kx]);
                            }
                        }
                    }
                }
            }
            for (grad, sum) in weight_grad[o * K * K..][..K * K].iter_mut().zip(sums) {
                *grad = _mm512_reduce_add_ps(sum);
            }
            bias[o] = _mm512_reduce_add_ps(bias_sums);
        }
        let input_grad = input_grad.then(|| {
            let mut padded_grad = vec![0.0; input.len()];
            for (at, (&g, &w)) in grad_output.iter().zip(winners).enumerate() {
                let (b, o, window) = (at / (out * windows), at / windows % out, at % windows);
                let position = usize::from(w & !INACTIVE);
                let y = 2 * (window / pooled_w) + position / 2;
                let x = 2 * (window % pooled_w) + position % 2;
                let g = routed(g, w);
                for (entry, &weight) in weight[o * K * K..][..K * K].iter().enumerate() {
                    padded_grad[b * plane + (y + entry / K) * padded_w + x + entry % K] += g * weight;
                }
            }
            channels_first(shape, &padded_grad)
        });
        Gradients { input: input_grad, weight: weight_grad, bias }
    }

    /// [`super::backward`] for `K x K` kernels over `RUNS` registers of channels: patches of
    /// `N = K x K x RUNS` registers.
    #[target_feature(enable = "avx512f")]
    pub fn backward<const K: usize, const RUNS: usize, const N: usize>(
        shape: &BlockShape,
        weight: &[f32],
        input: &[f32],
        winners: &[u8],
        grad_output: &[f32],
        input_grad: bool,
    ) -> Gradients {
        let [batch, out, pooled_h, pooled_w] = shape.output_dims();
        let windows = pooled_h * pooled_w;
        let p = shape.geometry.pool;
        let (padded_h, padded_w) = padded_sides(shape);
        let (row_len, image_len) = (padded_w * RUNS, padded_h * padded_w * RUNS);
        let (input, _) = input.as_chunks::<LANES>();
        // The weights', winners' and gradient's sizes are checked by `super::backward`.
        assert!(
            N == K * K * RUNS
                && (shape.kernel, shape.channels_in, shape.geometry.stride) == (K, RUNS * LANES, 1)
                && input.len() == batch * image_len,
            "channels-last backward: input does not match its shape"
        );
        // Row `ky` of the patch from `start` in an image's padded input: `K x RUNS` registers,
        // one bounds check, then constant offsets.
        let patch_row = |start: usize, ky: usize| start + ky * row_len..start + ky * row_len + K * RUNS;
        // Where in an image's padded input the patch of a window's first position starts, and
        // how far on each position's patch starts.
        let window_starts: Vec<usize> = (0..windows)
            .map(|window| ((window / pooled_w) * padded_w + window % pooled_w) * p * RUNS)
            .collect();
        let position_offsets: Vec<usize> =
            (0..p * p).map(|position| ((position / p) * padded_w + position % p) * RUNS).collect();

        // A row of windows at a time (its patches stay in the first-level cache), channel by
        // channel: the channel's weight-gradient sums and weights are held in registers (all
        // of them for 9-register patches, some spilled for 18) while the row's windows pass,
        // each adding its patch times its gradient to the sums and the weights times its
        // gradient to its patch's input gradient.
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
                    let start = ((b * out + o) * pooled_h + py) * pooled_w;
                    let row = start..start + pooled_w;
                    let mut weights = [_mm512_setzero_ps(); N];
                    for (register, values) in weights.iter_mut().zip(&weight[o]) {
                        *register = load(values);
                    }
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
            input: input_grad.then(|| channels_first(shape, padded_grad.as_flattened())),
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
    /// way back gives the input; for one channel, and for rows of whole, partial and several
    /// blocks of positions.
    #[test]
    fn padded_puts_each_value_at_its_position_and_channel_and_back() {
        for (input, padding) in
            [([2, 16, 5, 19], 1), ([1, 32, 4, 16], 0), ([3, 16, 8, 8], 1), ([2, 1, 7, 5], 1)]
        {
            let [batch, channels, height, width] = input;
            let geometry = ConvGeometry { stride: 1, padding, pool: 2 };
            let outputs = if channels == 1 { 16 } else { 32 };
            let shape = BlockShape::new(input, [outputs, channels, 3, 3], geometry).unwrap();
            if !applies(&shape) {
                eprintln!("no AVX-512 here: the blocks keep their patches");
                return;
            }
            let values: Vec<f32> = (1..=input.iter().product::<usize>()).map(|i| i as f32).collect();
            let padded = padded(&shape, &values);
            let (padded_h, padded_w) = (height + 2 * padding, width + 2 * padding);
            assert_eq!(padded.len(), batch * padded_h * padded_w * channels);
            for (i, &value) in values.iter().enumerate() {
                let (b, c) = (i / (channels * height * width), i / (height * width) % channels);
                let (y, x) = (i / width % height, i % width);
                let position = (b * padded_h + y + padding) * padded_w + x + padding;
                assert_eq!(padded[position * channels + c], value, "{input:?} value {i}");
            }
            let nonzero = padded.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(nonzero, values.len(), "{input:?}: the border is zero");
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: `applies` found AVX-512.
                #[allow(unsafe_code)]
                let back = unsafe { avx512::channels_first(&shape, &padded) };
                assert_eq!(back, values, "{input:?}: back to channels first");
            }
        }
    }
}
