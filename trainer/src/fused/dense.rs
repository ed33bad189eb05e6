//! The dense loops the kernels share: sums and dot products in lanes (so they vectorise, in a
//! fixed order), `axpy`, transposes, and the products of the rows of two matrices with few,
//! long rows.

/// Lanes of the dot products: one 512-bit register of `f32`.
const LANES: usize = 16;

/// The sum of `values` in eight interleaved lanes (so it vectorises), in a fixed order.
pub fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += v);
    }
    lanes.iter().sum::<f32>() + rest
}

/// `a · b` in `LANES` interleaved lanes.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        lanes.iter_mut().zip(x.iter().zip(y)).for_each(|(l, (x, y))| *l += x * y);
    }
    lanes.iter().sum::<f32>() + rest
}

/// `y += a x`.
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// The `[cols, rows]` transpose of a row-major `[rows, cols]` matrix.
pub fn transpose(matrix: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut transposed = vec![0.0; rows * cols];
    for (r, row) in matrix.chunks_exact(cols).take(rows).enumerate() {
        for (c, &value) in row.iter().enumerate() {
            transposed[c * rows + r] = value;
        }
    }
    transposed
}

/// Rows at least this long make [`row_products`] pay: each result's lanes are summed once at
/// the end (about 15 cycles), against `len / 32` cycles of multiply-adds.
pub const MIN_ROW_PRODUCT_LEN: usize = 2048;

/// At most this many values in both operands together (1 MiB), so they stay in a core's
/// second-level cache while every block of rows passes over them; larger products are
/// `gemm`'s, which blocks them for the caches (measured: the paper's hybrid's blocks, 2.4 to
/// 6.4 MiB, ran 15 to 30 % slower here).
pub const MAX_ROW_PRODUCT_VALUES: usize = 1 << 18;

/// `a · bᵀ`, row-major `[a rows, b rows]`, for row-major `a` and `b` with rows of `len`
/// values: each result the dot product of two rows, in lanes, eight rows of `a` by two of `b`
/// at a time so the partial sums stay in registers. For the weight gradient of a convolution
/// (output gradients `[out, columns]` by patches `[patch, columns]`: a few dozen rows of
/// thousands of columns), where a general matrix product spends its time packing. `None`
/// for rows shorter than [`MIN_ROW_PRODUCT_LEN`], operands over [`MAX_ROW_PRODUCT_VALUES`] or
/// a CPU without AVX-512 (with narrower registers the partial sums would not fit): the caller
/// then multiplies by `gemm`.
pub fn row_products(a: &[f32], b: &[f32], len: usize) -> Option<Vec<f32>> {
    let fits = len >= MIN_ROW_PRODUCT_LEN && a.len() + b.len() <= MAX_ROW_PRODUCT_VALUES;
    if !fits || !a.len().is_multiple_of(len) || !b.len().is_multiple_of(len) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `row_products_avx512` is compiled for.
        #[allow(unsafe_code)]
        return Some(unsafe { row_products_avx512(a, b, len) });
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
unsafe fn row_products_avx512(a: &[f32], b: &[f32], len: usize) -> Vec<f32> {
    let (a_rows, b_rows) = (a.len() / len, b.len() / len);
    let mut products = vec![0.0; a_rows * b_rows];
    fn row(m: &[f32], r: usize, len: usize) -> &[f32] {
        &m[r * len..][..len]
    }
    for i in 0..a_rows {
        for j in 0..b_rows {
            products[i * b_rows + j] = tail_product(row(a, i, len), row(b, j, len));
        }
    }
    let mut i = 0;
    while i < a_rows {
        let a_block = if a_rows - i >= 8 { 8 } else { 1 };
        let mut j = 0;
        while j < b_rows {
            let b_block = if a_block == 8 && b_rows - j >= 2 { 2 } else { 1 };
            let out = &mut products[i * b_rows + j..];
            let a8 = || [0, 1, 2, 3, 4, 5, 6, 7].map(|k| row(a, i + k, len));
            match (a_block, b_block) {
                (8, 2) => row_block::<8, 2>(a8(), [row(b, j, len), row(b, j + 1, len)], out, b_rows),
                (8, _) => row_block::<8, 1>(a8(), [row(b, j, len)], out, b_rows),
                _ => row_block::<1, 1>([row(a, i, len)], [row(b, j, len)], out, b_rows),
            }
            j += b_block;
        }
        i += a_block;
    }
    products
}

/// The products of the values past the last whole [`LANES`] chunk, in order.
#[cfg(target_arch = "x86_64")]
fn tail_product(a: &[f32], b: &[f32]) -> f32 {
    let whole = a.len() - a.len() % LANES;
    a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum()
}

/// Adds to `out[k * out_stride + l]` the dot product of `a[k]` and `b[l]` over their whole
/// [`LANES`] chunks: the `A x B` partial sums stay in registers, a multiply-add per chunk,
/// then each register's lanes are summed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(unsafe_code)]
unsafe fn row_block<const A: usize, const B: usize>(
    a: [&[f32]; A],
    b: [&[f32]; B],
    out: &mut [f32],
    out_stride: usize,
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_reduce_add_ps, _mm512_setzero_ps,
    };
    let len = a[0].len();
    let mut sums: [[__m512; B]; A] = [[_mm512_setzero_ps(); B]; A];
    let mut b_chunks: [__m512; B] = [_mm512_setzero_ps(); B];
    let mut at = 0;
    while at + LANES <= len {
        for l in 0..B {
            // SAFETY (every load): `at + LANES <= len`, and every row holds `len` values.
            b_chunks[l] = _mm512_loadu_ps(b[l][at..at + LANES].as_ptr());
        }
        for k in 0..A {
            let a_chunk = _mm512_loadu_ps(a[k][at..at + LANES].as_ptr());
            for l in 0..B {
                sums[k][l] = _mm512_fmadd_ps(a_chunk, b_chunks[l], sums[k][l]);
            }
        }
        at += LANES;
    }
    for k in 0..A {
        for l in 0..B {
            out[k * out_stride + l] += _mm512_reduce_add_ps(sums[k][l]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block size and tail: the products equal the plain dot products.
    #[test]
    fn row_products_equal_the_dot_products() {
        let values = |n: usize, seed: f32| (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect::<Vec<_>>();
        for (a_rows, b_rows, len) in [(8, 36, 4096), (16, 9, 2048), (9, 3, 2061), (1, 1, 2050), (17, 5, 4096)]
        {
            assert!((a_rows + b_rows) * len <= MAX_ROW_PRODUCT_VALUES);
            let (a, b) = (values(a_rows * len, 0.1), values(b_rows * len, 0.7));
            let Some(products) = row_products(&a, &b, len) else {
                eprintln!("no AVX-512 here: gemm multiplies instead");
                return;
            };
            for i in 0..a_rows {
                for j in 0..b_rows {
                    let want: f64 =
                        (0..len).map(|k| f64::from(a[i * len + k]) * f64::from(b[j * len + k])).sum();
                    let got = products[i * b_rows + j];
                    assert!(
                        (f64::from(got) - want).abs() < 1e-3,
                        "{a_rows}x{b_rows}x{len} [{i}][{j}]: {got} vs {want}"
                    );
                }
            }
        }
        let long = MIN_ROW_PRODUCT_LEN;
        assert!(row_products(&vec![1.0; 2 * long], &vec![1.0; 3 * long - 1], long).is_none(), "ragged rows");
        assert!(row_products(&[1.0; 10], &[1.0; 10], 5).is_none(), "rows too short to pay");
        let (many, few) = (vec![1.0; 16 * 8 * long], vec![1.0; 9 * 8 * long]);
        assert!(row_products(&many, &few, 8 * long).is_none(), "operands larger than the cache");
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        assert_eq!(transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
