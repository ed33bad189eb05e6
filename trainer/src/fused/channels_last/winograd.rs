//! The forward pass of the pooled blocks from 16 or 32 channels with 2 x 2 windows, by
//! Winograd's minimal filtering F(2 x 2, 3 x 3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016): each pool window's four outputs come from its 4 x 4
//! input tile `d` and each 3 x 3 kernel `g` as
//!
//! `Y = Aᵀ [Σ over input channels (G g Gᵀ) ⊙ (Bᵀ d B)] A`
//!
//! with `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`, `G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]`
//! and `Aᵀ = [1 1 1 0; 0 1 -1 -1]`: 16 multiply-adds per window, input and output channel,
//! where the direct sum takes 36. The sum over input channels is 16 matrix products
//! `[windows, in] x [in, out]`, one per entry of the transformed tile; the transforms are adds.
//!
//! The outputs differ from the direct sum's by rounding alone. Where a tile is constant in
//! each channel, `Bᵀ d B` is exactly zero but for one entry, which `Aᵀ M A` passes unchanged
//! to all four outputs: a constant image's windows tie exactly as in the direct sum (and
//! burn's first largest wins), inside and along the zero border, where pairs of equal rows or
//! columns give pairs of equal outputs the same way. Other ties of the direct sum (an image
//! whose one output's patch is a shifted copy of another's) are not kept exactly.

use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_fmadd_ps, _mm512_max_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_sub_ps,
};

use super::super::conv::BlockShape;
use super::avx512::{bias_registers, load, padded_sides, pool_band, store, weight_parts, Lanes};
use super::LANES;

/// Entries of a transformed 4 x 4 tile.
const ENTRIES: usize = 16;

/// The kernels transformed, `G g Gᵀ` for each output and input channel, as
/// `[entry, in, OUTS registers of out]`: one entry's and input channel's output channels are
/// `OUTS` registers.
fn transformed_weights<const C: usize, const OUTS: usize>(shape: &BlockShape, weight: &[f32]) -> Vec<Lanes> {
    let mut transformed = vec![[0.0; LANES]; ENTRIES * C * OUTS];
    for (first, g) in weight.chunks_exact(9).enumerate() {
        let (o, c, _) = weight_parts(shape, first * 9);
        // `G g`, 4 x 3, then `(G g) Gᵀ`, 4 x 4.
        let column = |j: usize| {
            let (top, middle, bottom) = (g[j], g[3 + j], g[6 + j]);
            [top, 0.5 * (top + middle + bottom), 0.5 * (top - middle + bottom), bottom]
        };
        let (left, middle, right) = (column(0), column(1), column(2));
        for i in 0..4 {
            let row = [
                left[i],
                0.5 * (left[i] + middle[i] + right[i]),
                0.5 * (left[i] - middle[i] + right[i]),
                right[i],
            ];
            for (j, value) in row.into_iter().enumerate() {
                transformed[((i * 4 + j) * C + c) * OUTS + o / LANES][o % LANES] = value;
            }
        }
    }
    transformed
}

/// [`super::forward`] for 3 x 3 kernels from `C` channels to `OUTS` registers of channels with
/// 2 x 2 windows, `TILES` windows' products at a time.
#[target_feature(enable = "avx512f")]
pub fn forward<const C: usize, const OUTS: usize, const TILES: usize>(
    shape: &BlockShape,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> (Vec<f32>, Vec<u8>) {
    let [batch, out, pooled_h, pooled_w] = shape.output_dims();
    let out_w = shape.out_width();
    let (padded_h, padded_w) = padded_sides(shape);
    let runs = C / LANES;
    // Rows and images of the padded input in registers.
    let (row_registers, image_registers) = (padded_w * runs, padded_h * padded_w * runs);
    assert!(
        (shape.kernel, shape.channels_in, out, shape.geometry.stride, shape.geometry.pool)
            == (3, C, OUTS * LANES, 1, 2)
            && input.len() == batch * image_registers * LANES
            && weight.len() == out * C * 9
            && bias.len() == out,
        "Winograd forward: inputs do not match their shape"
    );
    let (input, _) = input.as_chunks::<LANES>();
    let weights = transformed_weights::<C, OUTS>(shape, weight);
    let biases = bias_registers::<OUTS>(bias);
    // For `TILES` windows of a row at a time, in the cache (16 to 32 KiB): their transformed
    // tiles `[entry, window, in]` and the products `[entry, window, OUTS registers]`; then the
    // row's activations (`[2, out w, OUTS registers]`, after bias and ReLU) for the pool.
    let mut tiles = vec![[0.0; LANES]; ENTRIES * TILES * runs];
    let mut products = vec![[0.0; LANES]; ENTRIES * TILES * OUTS];
    let mut band = vec![[0.0; LANES]; 2 * out_w * OUTS];
    let mut maxima = vec![0.0; batch * out * pooled_h * pooled_w];
    let mut winners = vec![0; maxima.len()];
    for (b, image) in input.chunks_exact(image_registers).enumerate() {
        for py in 0..pooled_h {
            let rows = &image[2 * py * row_registers..][..4 * row_registers];
            for first in (0..pooled_w).step_by(TILES) {
                let count = TILES.min(pooled_w - first);
                for t in 0..count {
                    transform_tile::<C>(
                        rows,
                        row_registers,
                        2 * (first + t) * runs,
                        &mut tiles,
                        t * runs,
                        TILES * runs,
                    );
                }
                let mut done = 0;
                while done < count {
                    done += match count - done {
                        n if n >= TILES => {
                            multiply::<C, OUTS, TILES, TILES>(&tiles, &weights, &mut products, done)
                        }
                        n if n >= 4 => multiply::<C, OUTS, TILES, 4>(&tiles, &weights, &mut products, done),
                        n if n >= 2 => multiply::<C, OUTS, TILES, 2>(&tiles, &weights, &mut products, done),
                        _ => multiply::<C, OUTS, TILES, 1>(&tiles, &weights, &mut products, done),
                    };
                }
                for t in 0..count {
                    activations::<OUTS, TILES>(&products, t, biases, &mut band, out_w, 2 * (first + t));
                }
            }
            let row = (b * out * pooled_h + py) * pooled_w;
            pool_band::<OUTS>(&band, out_w, 2, pooled_h * pooled_w, &mut maxima[row..], &mut winners[row..]);
        }
    }
    (maxima, winners)
}

/// `Bᵀ d B` of the 4 x 4 tile whose top left is register `left` of `rows` (four padded input
/// rows of `row_registers` registers), into `tiles` from register `at` on, each entry `stride`
/// registers after the last.
#[target_feature(enable = "avx512f")]
#[inline]
fn transform_tile<const C: usize>(
    rows: &[Lanes],
    row_registers: usize,
    left: usize,
    tiles: &mut [Lanes],
    at: usize,
    stride: usize,
) {
    let runs = C / LANES;
    for run in 0..runs {
        let mut d = [[_mm512_setzero_ps(); 4]; 4];
        for (i, row) in d.iter_mut().enumerate() {
            let values = &rows[i * row_registers + left..][..4 * runs];
            for (j, value) in row.iter_mut().enumerate() {
                *value = load(&values[j * runs + run]);
            }
        }
        // `Bᵀ d`: rows combined, each column alike.
        let mut t = [[_mm512_setzero_ps(); 4]; 4];
        for j in 0..4 {
            t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
            t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
            t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
            t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
        }
        // `(Bᵀ d) B`: columns combined, each row alike.
        for (i, row) in t.iter().enumerate() {
            let entries = [
                _mm512_sub_ps(row[0], row[2]),
                _mm512_add_ps(row[1], row[2]),
                _mm512_sub_ps(row[2], row[1]),
                _mm512_sub_ps(row[1], row[3]),
            ];
            for (j, entry) in entries.into_iter().enumerate() {
                store(&mut tiles[at + (i * 4 + j) * stride + run], entry);
            }
        }
    }
}

/// For `N` windows from window `first` of the `TILES` in `tiles`: each entry's transformed
/// tiles times the transformed weights, summed over input channels, into `products`. The
/// sums in registers, each tile value broadcast once. Returns `N`.
#[target_feature(enable = "avx512f")]
#[inline]
fn multiply<const C: usize, const OUTS: usize, const TILES: usize, const N: usize>(
    tiles: &[Lanes],
    weights: &[Lanes],
    products: &mut [Lanes],
    first: usize,
) -> usize {
    let runs = C / LANES;
    for entry in 0..ENTRIES {
        let tiles = &tiles[(entry * TILES + first) * runs..][..N * runs];
        let weights = &weights[entry * C * OUTS..][..C * OUTS];
        let mut sums = [[_mm512_setzero_ps(); OUTS]; N];
        for c in 0..C {
            let mut w = [_mm512_setzero_ps(); OUTS];
            for (r, w) in w.iter_mut().enumerate() {
                *w = load(&weights[c * OUTS + r]);
            }
            for (t, sums) in sums.iter_mut().enumerate() {
                let value = _mm512_set1_ps(tiles[t * runs + c / LANES][c % LANES]);
                for (sum, &w) in sums.iter_mut().zip(&w) {
                    *sum = _mm512_fmadd_ps(value, w, *sum);
                }
            }
        }
        let products = &mut products[(entry * TILES + first) * OUTS..][..N * OUTS];
        for (products, sums) in products.chunks_exact_mut(OUTS).zip(sums) {
            for (product, sum) in products.iter_mut().zip(sums) {
                store(product, sum);
            }
        }
    }
    N
}

/// Window `t`'s four outputs, `Aᵀ M A` of its products, plus the bias and through the ReLU,
/// into `band` (`[2, out w, OUTS registers]`) at columns `x` and `x + 1`.
#[target_feature(enable = "avx512f")]
#[inline]
fn activations<const OUTS: usize, const TILES: usize>(
    products: &[Lanes],
    t: usize,
    biases: [__m512; OUTS],
    band: &mut [Lanes],
    out_w: usize,
    x: usize,
) {
    for (r, bias) in biases.into_iter().enumerate() {
        let mut m = [[_mm512_setzero_ps(); 4]; 4];
        for (i, row) in m.iter_mut().enumerate() {
            for (j, value) in row.iter_mut().enumerate() {
                *value = load(&products[((i * 4 + j) * TILES + t) * OUTS + r]);
            }
        }
        // `Aᵀ M`: rows combined, each column alike.
        let mut s = [[_mm512_setzero_ps(); 4]; 2];
        for j in 0..4 {
            s[0][j] = _mm512_add_ps(_mm512_add_ps(m[0][j], m[1][j]), m[2][j]);
            s[1][j] = _mm512_sub_ps(_mm512_sub_ps(m[1][j], m[2][j]), m[3][j]);
        }
        // `(Aᵀ M) A`: columns combined; then the bias, and the ReLU (`max` gives its second
        // operand, zero, for NaN too).
        for (dy, row) in s.iter().enumerate() {
            let outputs = [
                _mm512_add_ps(_mm512_add_ps(row[0], row[1]), row[2]),
                _mm512_sub_ps(_mm512_sub_ps(row[1], row[2]), row[3]),
            ];
            for (dx, output) in outputs.into_iter().enumerate() {
                let activation = _mm512_max_ps(_mm512_add_ps(output, bias), _mm512_setzero_ps());
                store(&mut band[(dy * out_w + x + dx) * OUTS + r], activation);
            }
        }
    }
}
