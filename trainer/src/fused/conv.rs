//! One encoder block, convolution + bias + ReLU + max-pool, forward and backward on plain
//! slices.
//!
//! The pooled blocks [`channels_last::applies`] names run there (with AVX-512: a Winograd or
//! direct convolution, the gradients at the pool windows' winners alone). Every other block: the
//! whole batch is one matrix product per pass: the input's patches (im2col) form a
//! `[patch, columns]` matrix (`columns` = batch x output positions), so the convolution is
//! `weights [out, patch] x patches`, the weight gradient `dz [out, columns] x patches^T`
//! ([`dense::row_products`]) and the input gradient `weights^T x dz`, folded back onto the
//! image. Patches and activations keep the output positions innermost, so the copies between
//! layouts run along rows. The forward pass keeps, for each output value, where its gradient
//! goes back to (the pool window's winner, or none where the ReLU was inactive) in one byte.

use std::mem::MaybeUninit;

use gemm::Parallelism;

use super::window::{self, inactive_unless, routed, INACTIVE};
use super::{channels_last, dense, phases};

/// Stride, padding (the same on all four sides) and max-pool window of a block; the pool's
/// stride is its window, as in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub stride: usize,
    pub padding: usize,
    /// Max-pool window and stride (1 = no pool).
    pub pool: usize,
}

/// Everything that fixes a block's sizes: the input, the weights and the geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockShape {
    pub(super) batch: usize,
    pub(super) channels_in: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) channels_out: usize,
    pub(super) kernel: usize,
    pub(super) geometry: ConvGeometry,
}

impl BlockShape {
    /// The shape, or `None` when the kernel does not fit the padded input, a size is zero or
    /// the pool window is over [`MAX_POOL`].
    pub fn new(input: [usize; 4], weights: [usize; 4], geometry: ConvGeometry) -> Option<Self> {
        let [batch, channels_in, height, width] = input;
        let [channels_out, weight_channels, kernel, kernel_w] = weights;
        let fits = |side: usize| side + 2 * geometry.padding >= kernel;
        let shape = Self { batch, channels_in, height, width, channels_out, kernel, geometry };
        let valid = channels_in > 0
            && channels_out > 0
            && weight_channels == channels_in
            && kernel == kernel_w
            && kernel > 0
            && geometry.stride > 0
            && (1..=MAX_POOL).contains(&geometry.pool)
            && fits(height)
            && fits(width)
            && shape.pooled_height() > 0
            && shape.pooled_width() > 0
            && shape.columns() > 0;
        valid.then_some(shape)
    }

    fn out_side(&self, side: usize) -> usize {
        (side + 2 * self.geometry.padding - self.kernel) / self.geometry.stride + 1
    }
    fn out_height(&self) -> usize {
        self.out_side(self.height)
    }
    pub(super) fn out_width(&self) -> usize {
        self.out_side(self.width)
    }
    /// Rows and columns of one of a padded plane's `stride x stride` phases ([`phase`]).
    fn phase_height(&self) -> usize {
        (self.height + 2 * self.geometry.padding).div_ceil(self.geometry.stride)
    }
    fn phase_width(&self) -> usize {
        (self.width + 2 * self.geometry.padding).div_ceil(self.geometry.stride)
    }
    /// Values of one phase of a padded plane.
    fn phase_len(&self) -> usize {
        self.phase_height() * self.phase_width()
    }
    /// Values of one padded plane split into its phases.
    fn phased_plane_len(&self) -> usize {
        self.geometry.stride * self.geometry.stride * self.phase_len()
    }
    fn pooled_height(&self) -> usize {
        self.out_height() / self.geometry.pool
    }
    fn pooled_width(&self) -> usize {
        self.out_width() / self.geometry.pool
    }
    /// Output positions per image.
    fn positions(&self) -> usize {
        self.out_height() * self.out_width()
    }
    pub fn channels_out(&self) -> usize {
        self.channels_out
    }
    /// Batch x output positions: the columns of the activations.
    pub fn columns(&self) -> usize {
        self.batch * self.positions()
    }
    /// Length of one patch: input channels x kernel x kernel.
    pub fn patch_len(&self) -> usize {
        self.channels_in * self.kernel * self.kernel
    }
    pub fn input_dims(&self) -> [usize; 4] {
        [self.batch, self.channels_in, self.height, self.width]
    }
    pub fn weight_dims(&self) -> [usize; 4] {
        [self.channels_out, self.channels_in, self.kernel, self.kernel]
    }
    /// `[batch, out, pooled height, pooled width]`.
    pub fn output_dims(&self) -> [usize; 4] {
        [self.batch, self.channels_out, self.pooled_height(), self.pooled_width()]
    }
}

/// The largest max-pool window the block takes: a window's positions fit in 7 bits of a
/// `Kept::winners` byte.
pub const MAX_POOL: usize = 11;

/// The forward pass: its output, and what its backward pass needs.
pub struct Forward {
    /// `[batch, out, pooled height, pooled width]`.
    pub output: Vec<f32>,
    pub kept: Kept,
}

/// What the backward pass needs from the forward pass.
#[derive(Debug)]
pub struct Kept {
    source: Source,
    /// For each output value (`[batch, out, pooled h, pooled w]`), the position of its window's
    /// first largest activation in row-major order (as burn's max-pool picks it), `dy * pool +
    /// dx`, or'ed with [`INACTIVE`] where that activation was not positive.
    winners: Vec<u8>,
}

/// What the weight and input gradients are computed from.
#[derive(Debug)]
enum Source {
    /// `[patch, columns]`, for the dense products.
    Patches(Vec<f32>),
    /// The input, padded and channels last, for [`channels_last::backward`].
    ChannelsLast(Vec<f32>),
}

/// Gradients of the three inputs.
pub struct Gradients {
    /// `[batch, in, height, width]`, when asked for.
    pub input: Option<Vec<f32>>,
    /// `[out, in, kernel, kernel]`.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// `input [batch, in, h, w]`, `weight [out, in, k, k]`, `bias [out]`, all row-major. The
/// blocks [`channels_last::applies`] is true for run channels last, the others by im2col and a
/// matrix product, which `parallel` spreads over rayon's threads (for large batches outside
/// the thread pool; training and prediction already run one batch part per thread).
pub fn forward(shape: &BlockShape, input: &[f32], weight: &[f32], bias: &[f32], parallel: bool) -> Forward {
    let dims = |d: [usize; 4]| d.iter().product::<usize>();
    assert!(
        input.len() == dims(shape.input_dims())
            && weight.len() == dims(shape.weight_dims())
            && bias.len() == shape.channels_out,
        "conv block: inputs do not match their shape"
    );
    if channels_last::applies(shape) {
        let input = channels_last::padded(shape, input);
        let (output, winners) = channels_last::forward(shape, &input, weight, bias);
        return Forward { output, kept: Kept { source: Source::ChannelsLast(input), winners } };
    }
    dense_forward(shape, input, weight, bias, parallel)
}

/// [`forward`] by im2col and a matrix product.
fn dense_forward(shape: &BlockShape, input: &[f32], weight: &[f32], bias: &[f32], parallel: bool) -> Forward {
    let (columns, patch_len, out) = (shape.columns(), shape.patch_len(), shape.channels_out);
    let patches = im2col(shape, input);
    let mut activations = matmul(
        Matrix { data: weight, rows: out, cols: patch_len, row_stride: patch_len, col_stride: 1 },
        Matrix { data: &patches, rows: patch_len, cols: columns, row_stride: columns, col_stride: 1 },
        parallel,
    );
    for (row, &b) in activations.chunks_exact_mut(columns).zip(bias) {
        row.iter_mut().for_each(|a| *a = (*a + b).max(0.0));
    }
    let (output, winners) = pool(shape, &activations);
    Forward { output, kept: Kept { source: Source::Patches(patches), winners } }
}

/// Backward pass from the output's gradient `[batch, out, pooled h, pooled w]`.
pub fn backward(
    shape: &BlockShape,
    weight: &[f32],
    kept: &Kept,
    grad_output: &[f32],
    input_grad: bool,
) -> Gradients {
    let (columns, patch_len, out) = (shape.columns(), shape.patch_len(), shape.channels_out);
    let outputs = shape.output_dims().iter().product::<usize>();
    assert!(
        weight.len() == out * patch_len && kept.winners.len() == outputs && grad_output.len() == outputs,
        "conv block: backward inputs do not match their shape"
    );
    let patches = match &kept.source {
        Source::Patches(patches) => patches,
        Source::ChannelsLast(input) => {
            return channels_last::backward(shape, weight, input, &kept.winners, grad_output, input_grad)
        }
    };
    assert_eq!(patches.len(), patch_len * columns, "conv block: patches do not match their shape");
    let (dz, bias) = unpool(shape, &kept.winners, grad_output); // [out, columns], [out]

    // dz x patches^T: few rows of thousands of columns, row by row where the CPU allows.
    let weight_grad = dense::row_products(&dz, patches, columns).unwrap_or_else(|| {
        // By gemm, computed transposed (patches x dz^T): gemm then packs dz ([out, columns])
        // where for dz x patches^T it packs the patches, 4.5 times as many values.
        let weight_grad_transposed = matmul(
            Matrix { data: patches, rows: patch_len, cols: columns, row_stride: columns, col_stride: 1 },
            Matrix { data: &dz, rows: columns, cols: out, row_stride: 1, col_stride: columns },
            false,
        );
        dense::transpose(&weight_grad_transposed, patch_len, out)
    });
    let input = input_grad.then(|| {
        let grad_patches = matmul(
            Matrix { data: weight, rows: patch_len, cols: out, row_stride: 1, col_stride: patch_len },
            Matrix { data: &dz, rows: out, cols: columns, row_stride: columns, col_stride: 1 },
            false,
        );
        col2im(shape, &grad_patches)
    });
    Gradients { input, weight: weight_grad, bias }
}

/// Row `(c, ky, kx)` of the patch matrix holds, for every output position, the input value
/// that kernel entry covers (zero in the padding). One input plane at a time: its padded,
/// phased copy stays in L1 while its rows are copied out.
fn im2col(shape: &BlockShape, input: &[f32]) -> Vec<f32> {
    let len = shape.patch_len() * shape.columns();
    let mut patches = Vec::with_capacity(len);
    let spare = &mut patches.spare_capacity_mut()[..len];
    let mut plane = PhasedPlane::new(shape);
    let plane_len = shape.height * shape.width;
    let (out_w, phase_w) = (shape.out_width(), shape.phase_width());
    for index in plane.indices() {
        plane.fill(&input[index * plane_len..][..plane_len]);
        plane.for_each_kernel_entry(index, |runs, columns| {
            let dst = &mut spare[columns];
            // The default hybrid's rows (16 and 8 values) as fixed-size copies, one vector move
            // each, where a `memcpy` call or a loop of unknown length costs more than the copy.
            match out_w {
                16 => copy_rows::<16>(runs, phase_w, dst),
                8 => copy_rows::<8>(runs, phase_w, dst),
                _ => dst.chunks_exact_mut(out_w).zip(runs.chunks(phase_w)).for_each(|(dst, src)| {
                    dst.write_copy_of_slice(&src[..out_w]);
                }),
            }
        });
    }
    // SAFETY: `for_each_kernel_entry` calls the closure once for each kernel entry of each
    // plane with the entry's `out_h x out_w` columns of that image, which the closure writes
    // whole: patch_len x batch x out_h x out_w = `len` values in disjoint ranges.
    #[allow(unsafe_code)]
    unsafe {
        patches.set_len(len);
    }
    patches
}

/// `dst`'s rows of `W` values from `src`'s rows, `src_stride` apart.
#[inline(always)]
fn copy_rows<const W: usize>(src: &[f32], src_stride: usize, dst: &mut [MaybeUninit<f32>]) {
    for (y, dst) in dst.chunks_exact_mut(W).enumerate() {
        let src: &[f32; W] = src[y * src_stride..][..W].try_into().expect("W values");
        let dst: &mut [MaybeUninit<f32>; W] = dst.try_into().expect("W values");
        *dst = src.map(MaybeUninit::new);
    }
}

/// `dst = src`, as fixed-size copies for the default hybrid's rows of 8 and 16 values.
#[inline(always)]
fn copy_row(src: &[f32], dst: &mut [f32]) {
    match dst.len() {
        16 => *<&mut [f32; 16]>::try_from(dst).expect("16") = src.try_into().expect("16"),
        8 => *<&mut [f32; 8]>::try_from(dst).expect("8") = src.try_into().expect("8"),
        _ => dst.copy_from_slice(src),
    }
}

/// `src`'s rows of `W` values added to `dst`'s rows, `dst_stride` apart.
#[inline(always)]
fn add_rows<const W: usize>(src: &[f32], dst: &mut [f32], dst_stride: usize) {
    for (y, src) in src.chunks_exact(W).enumerate() {
        let src: &[f32; W] = src.try_into().expect("W values");
        let dst: &mut [f32; W] = (&mut dst[y * dst_stride..][..W]).try_into().expect("W values");
        // Whole arrays loaded, added and stored: element by element the compiler keeps it scalar.
        let sum = std::array::from_fn(|i| dst[i] + src[i]);
        *dst = sum;
    }
}

/// The inverse of [`im2col`]: each patch entry's gradient added to the input value it came
/// from, one input plane at a time (each value's terms in the same order as row by row).
fn col2im(shape: &BlockShape, grad_patches: &[f32]) -> Vec<f32> {
    let mut input = Vec::with_capacity(shape.input_dims().iter().product());
    let mut plane = PhasedPlane::new(shape);
    let (out_w, phase_w) = (shape.out_width(), shape.phase_width());
    // Image by image, channel by channel: `input`'s order.
    for index in 0..shape.batch * shape.channels_in {
        plane.values.fill(0.0);
        plane.for_each_kernel_entry(index, |runs, columns| {
            let src = &grad_patches[columns];
            match out_w {
                16 => add_rows::<16>(src, runs, phase_w),
                8 => add_rows::<8>(src, runs, phase_w),
                _ => src.chunks_exact(out_w).zip(runs.chunks_mut(phase_w)).for_each(|(src, dst)| {
                    dst.iter_mut().zip(src).for_each(|(g, &p)| *g += p);
                }),
            }
        });
        plane.append_to(&mut input);
    }
    input
}

/// One input plane inside a border of zeros, `padding` wide, split into its `stride x stride`
/// phases (`[stride, stride, phase h, phase w]`; phase `(ry, rx)` holds the padded rows `ry`,
/// `ry + stride`, ... and their columns `rx`, `rx + stride`, ...), so every output row of a
/// kernel entry reads one contiguous run. With stride 1, the padded plane.
struct PhasedPlane<'a> {
    shape: &'a BlockShape,
    values: Vec<f32>,
    /// Where each input row's padded row starts in `values`: row `y + padding` of phase
    /// `((y + padding) % stride, 0)`; the other phases' runs follow [`BlockShape::phase_len`]
    /// apart. Computed once: a division per row otherwise.
    row_starts: Vec<usize>,
    /// For each kernel entry `(ky, kx)`, where its first output row reads from in `values`.
    kernel_starts: Vec<usize>,
}

impl<'a> PhasedPlane<'a> {
    fn new(shape: &'a BlockShape) -> Self {
        let (stride, padding, k) = (shape.geometry.stride, shape.geometry.padding, shape.kernel);
        let (phase_len, phase_w) = (shape.phase_len(), shape.phase_width());
        let row_starts = (padding..padding + shape.height)
            .map(|y| (y % stride) * stride * phase_len + (y / stride) * phase_w)
            .collect();
        // Padded row oy * stride + ky, column ox * stride + kx: in phase (ky, kx) modulo the
        // stride, at row oy + ky / stride and column ox + kx / stride.
        let kernel_starts = (0..k * k)
            .map(|entry| {
                let (ky, kx) = (entry / k, entry % k);
                ((ky % stride) * stride + kx % stride) * phase_len + (ky / stride) * phase_w + kx / stride
            })
            .collect();
        Self { shape, values: vec![0.0; shape.phased_plane_len()], row_starts, kernel_starts }
    }

    /// The plane `[h, w]` into the phases; the borders stay zero.
    fn fill(&mut self, image: &[f32]) {
        let (stride, padding, width) =
            (self.shape.geometry.stride, self.shape.geometry.padding, self.shape.width);
        let phase_len = self.shape.phase_len();
        for (row, &start) in image.chunks_exact(width).zip(&self.row_starts) {
            if stride == 1 {
                copy_row(row, &mut self.values[start + padding..][..width]);
            } else {
                phases::split(row, &mut self.values[start..], phase_len, stride, padding);
            }
        }
    }

    /// The inverse of [`Self::fill`]: the plane's values without the border appended to
    /// `input`, row by row.
    fn append_to(&self, input: &mut Vec<f32>) {
        let (stride, padding, width) =
            (self.shape.geometry.stride, self.shape.geometry.padding, self.shape.width);
        let phase_len = self.shape.phase_len();
        for &start in &self.row_starts {
            if stride == 1 {
                input.extend_from_slice(&self.values[start + padding..][..width]);
            } else {
                let row = input.len();
                input.resize(row + width, 0.0);
                phases::join(&self.values[start..], &mut input[row..], phase_len, stride, padding);
            }
        }
    }

    /// The planes' indices (`image * in + channel`) channel by channel: each kernel entry's
    /// patch row is then written front to back.
    fn indices(&self) -> impl Iterator<Item = usize> + use<> {
        let (batch, channels) = (self.shape.batch, self.shape.channels_in);
        (0..channels).flat_map(move |c| (0..batch).map(move |b| b * channels + c))
    }

    /// Calls `f(the plane from the entry's first run, the entry's patch columns)` for each
    /// kernel entry of plane `index` (image `index / in`, channel `index % in`): the entry's
    /// output row `oy` reads the plane's contiguous run `oy` phase rows further, into the
    /// columns' `oy`-th `out_w` values.
    fn for_each_kernel_entry(&mut self, index: usize, mut f: impl FnMut(&mut [f32], std::ops::Range<usize>)) {
        let Self { shape, values, kernel_starts, .. } = self;
        let (b, c) = (index / shape.channels_in, index % shape.channels_in);
        let (columns, positions) = (shape.columns(), shape.positions());
        let first_entry = c * shape.kernel * shape.kernel;
        for (entry, &start) in kernel_starts.iter().enumerate() {
            let first = (first_entry + entry) * columns + b * positions;
            f(&mut values[start..], first..first + positions);
        }
    }
}

/// `[out, columns]` activations -> `[batch, out, pooled h, pooled w]`: the largest of each
/// window, and its [`Kept::winners`].
fn pool(shape: &BlockShape, activations: &[f32]) -> (Vec<f32>, Vec<u8>) {
    let [batch, out, ph, pw] = shape.output_dims();
    let (p, out_w) = (shape.geometry.pool, shape.out_width());
    // The models' 2 x 2 windows four at a time, the others one by one.
    let grouped = if p == 2 { pw / 4 * 4 } else { 0 };
    let mut output = vec![0.0; batch * out * ph * pw];
    let mut winners = vec![0; output.len()];
    // Channel by channel: the activations' rows are read front to back (image by image, they
    // would be read in steps of a row, which the caches take badly).
    for (o, b) in (0..out).flat_map(|o| (0..batch).map(move |b| (o, b))) {
        let plane = (b * out + o) * ph * pw..(b * out + o + 1) * ph * pw;
        let (maxima, winners) = (&mut output[plane.clone()], &mut winners[plane]);
        let image = &activations[image_columns(shape, b, o)];
        if p == 1 {
            maxima.copy_from_slice(image);
            winners.iter_mut().zip(image).for_each(|(w, &a)| *w = inactive_unless(a));
            continue;
        }
        let rows = maxima.chunks_exact_mut(pw).zip(winners.chunks_exact_mut(pw));
        for (py, (maxima, winners)) in rows.enumerate() {
            let rows = |dy: usize| image[(py * p + dy) * out_w..][..2 * grouped].chunks_exact(8);
            let outputs = maxima[..grouped].chunks_exact_mut(4).zip(winners[..grouped].chunks_exact_mut(4));
            for ((m, w), (top, bottom)) in outputs.zip(rows(0).zip(rows(1))) {
                let (group_maxima, group_winners) =
                    window::pool_2x2(top.try_into().expect("8"), bottom.try_into().expect("8"));
                m.copy_from_slice(&group_maxima);
                w.copy_from_slice(&group_winners);
            }
            for px in grouped..pw {
                let (dy, dx) = window_winner(shape, image, py, px);
                let m = image[(py * p + dy) * out_w + px * p + dx];
                // dy * p + dx < MAX_POOL^2 < INACTIVE
                (maxima[px], winners[px]) = (m, (dy * p + dx) as u8 | inactive_unless(m));
            }
        }
    }
    (output, winners)
}

/// The gradient at the pool's winners where the ReLU was active, zero elsewhere
/// (`[out, columns]`), and its sum per output channel (the bias gradient).
fn unpool(shape: &BlockShape, winners: &[u8], grad_output: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let [_, out, ph, pw] = shape.output_dims();
    let (p, out_w) = (shape.geometry.pool, shape.out_width());
    // Appended in order, channel by channel and image by image ([`image_columns`]): no zero
    // fill of the whole gradient, whose windows mostly cover it.
    let mut dz = Vec::with_capacity(out * shape.columns());
    let mut bias = vec![0.0; out];
    // One row of windows, `p` rows of activations, at a time.
    let mut window_rows = vec![0.0; p * out_w];
    // As in `pool`: the 2 x 2 windows four at a time (writing all their positions), the others
    // one by one (writing their winner's).
    let grouped = if p == 2 { pw / 4 * 4 } else { 0 };
    // Each channel's bias gradient sums its terms image by image, window by window.
    for (o, bias) in bias.iter_mut().enumerate() {
        for b in 0..shape.batch {
            debug_assert_eq!(dz.len(), image_columns(shape, b, o).start);
            let plane = (b * out + o) * ph * pw..(b * out + o + 1) * ph * pw;
            let (grad, winners) = (&grad_output[plane.clone()], &winners[plane]);
            if p == 1 {
                dz.extend(grad.iter().zip(winners).map(|(&g, &w)| routed(g, w)));
                *bias += dense::sum(&dz[image_columns(shape, b, o)]);
                continue;
            }
            for (grad, winners) in grad.chunks_exact(pw).zip(winners.chunks_exact(pw)) {
                window_rows.fill(0.0);
                let (top, bottom) = window_rows.split_at_mut(out_w);
                let rows =
                    top[..2 * grouped].chunks_exact_mut(8).zip(bottom[..2 * grouped].chunks_exact_mut(8));
                let inputs = grad[..grouped].chunks_exact(4).zip(winners[..grouped].chunks_exact(4));
                for ((g, w), (top, bottom)) in inputs.zip(rows) {
                    let (g, w) = (g.try_into().expect("4"), w.try_into().expect("4"));
                    let routed =
                        window::unpool_2x2(g, w, top.try_into().expect("8"), bottom.try_into().expect("8"));
                    routed.iter().for_each(|g| *bias += g);
                }
                for px in grouped..pw {
                    let position = usize::from(winners[px] & !INACTIVE);
                    let (dy, dx) = (position / p, position % p);
                    let g = routed(grad[px], winners[px]);
                    window_rows[dy * out_w + px * p + dx] = g;
                    *bias += g;
                }
                dz.extend_from_slice(&window_rows);
            }
            // Rows below the last whole window get no gradient.
            dz.resize(image_columns(shape, b, o).end, 0.0);
        }
    }
    (dz, bias)
}

/// Where image `b`'s columns of output channel `o` lie in an `[out, columns]` matrix.
fn image_columns(shape: &BlockShape, b: usize, o: usize) -> std::ops::Range<usize> {
    let start = o * shape.columns() + b * shape.positions();
    start..start + shape.positions()
}

/// The first largest activation of pool window `(py, px)` of one image (`[out h, out w]`),
/// as `(dy, dx)` within the window.
fn window_winner(shape: &BlockShape, image: &[f32], py: usize, px: usize) -> (usize, usize) {
    let (p, out_w) = (shape.geometry.pool, shape.out_width());
    let at = |dy: usize, dx: usize| image[(py * p + dy) * out_w + px * p + dx];
    let mut best = (0, 0);
    for dy in 0..p {
        for dx in 0..p {
            if at(dy, dx) > at(best.0, best.1) {
                best = (dy, dx);
            }
        }
    }
    best
}

/// A strided view of a row-major buffer.
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl Matrix<'_> {
    /// Whether every element the strides address lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// Multiply-adds from which [`matmul`] spreads a product over the threads when asked to.
const PARALLEL_MULTIPLY_ADDS: usize = 1 << 24;

/// `lhs x rhs` as a row-major `[lhs.rows, rhs.cols]` matrix, by the `gemm` crate
/// (runtime-selected SIMD kernels).
fn matmul(lhs: Matrix, rhs: Matrix, parallel: bool) -> Vec<f32> {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert!(rhs.rows == k && lhs.in_bounds() && rhs.in_bounds(), "matmul: inconsistent shapes");
    // Splitting pays only for products far larger than a training step's.
    let large = m * n * k >= PARALLEL_MULTIPLY_ADDS;
    let parallelism =
        if parallel && large { Parallelism::Rayon(rayon::current_num_threads()) } else { Parallelism::None };
    let stride = |s: usize| s as isize;
    let mut product = Vec::with_capacity(m * n);
    // SAFETY: the destination is the vector's m x n reserved elements, addressed with row
    // stride n and column stride 1; `in_bounds` checked that every element of lhs (m x k) and
    // rhs (k x n) that their strides address lies inside their slices; nothing else refers to
    // the new buffer. With `read_dst` false and `alpha` zero, gemm writes every destination
    // element (zeros when k is 0) without reading it, so all m x n are initialised for `set_len`.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            product.as_mut_ptr(),
            1,
            stride(n),
            false,
            lhs.data.as_ptr(),
            stride(lhs.col_stride),
            stride(lhs.row_stride),
            rhs.data.as_ptr(),
            stride(rhs.col_stride),
            stride(rhs.row_stride),
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        product.set_len(m * n);
    }
    product
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition: every output of conv + bias + ReLU + pool from its sum.
    fn reference(shape: &BlockShape, input: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
        let (k, s, pad, p) =
            (shape.kernel, shape.geometry.stride, shape.geometry.padding, shape.geometry.pool);
        let (h, w) = (shape.height as isize, shape.width as isize);
        let conv = |b: usize, o: usize, oy: usize, ox: usize| {
            let mut sum = bias[o];
            for c in 0..shape.channels_in {
                for ky in 0..k {
                    for kx in 0..k {
                        let y = (oy * s + ky) as isize - pad as isize;
                        let x = (ox * s + kx) as isize - pad as isize;
                        if (0..h).contains(&y) && (0..w).contains(&x) {
                            let i = ((b * shape.channels_in + c) as isize * h + y) * w + x;
                            sum +=
                                input[i as usize] * weight[((o * shape.channels_in + c) * k + ky) * k + kx];
                        }
                    }
                }
            }
            sum.max(0.0)
        };
        let [batch, out, ph, pw] = shape.output_dims();
        let mut v = Vec::new();
        for b in 0..batch {
            for o in 0..out {
                for py in 0..ph {
                    for px in 0..pw {
                        let window = (0..p * p).map(|i| conv(b, o, py * p + i / p, px * p + i % p));
                        v.push(window.fold(f32::MIN, f32::max));
                    }
                }
            }
        }
        v
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) as f32 / 8e6 - 1.0)
            .collect()
    }

    #[test]
    fn forward_equals_the_direct_sum_for_the_models_geometries() {
        for (input, weights, stride, padding, pool) in [
            ([2, 1, 64, 64], [8, 1, 6, 6], 4, 1, 1),
            ([2, 8, 16, 16], [16, 8, 3, 3], 2, 1, 1),
            ([3, 16, 8, 8], [32, 16, 3, 3], 1, 1, 2),
            ([1, 2, 7, 9], [3, 2, 3, 3], 1, 0, 2),
            ([2, 3, 5, 6], [4, 3, 3, 3], 1, 1, 1),
        ] {
            let shape = BlockShape::new(input, weights, ConvGeometry { stride, padding, pool }).unwrap();
            let x = values(input.iter().product(), 1);
            let wt = values(weights.iter().product(), 2);
            let b = values(weights[0], 3);
            let got = forward(&shape, &x, &wt, &b, false).output;
            let want = reference(&shape, &x, &wt, &b);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{input:?} output {i}: {g} vs {w}");
            }
        }
    }

    /// Where the channels-last path runs, it gives the dense path's outputs, winners and
    /// gradients.
    #[test]
    fn channels_last_path_equals_the_dense_products() {
        let geometry = ConvGeometry { stride: 1, padding: 1, pool: 2 };
        if !channels_last::applies(&BlockShape::new([1, 16, 8, 8], [32, 16, 3, 3], geometry).unwrap()) {
            eprintln!("no AVX-512 here: every block takes the dense products");
            return;
        }
        // The models' blocks; unpadded, with rows and columns past the last whole window and
        // positions past the last whole tile; windows of 3; 64 outputs; 32 inputs; rows of
        // windows past the last whole 16, from one channel and to four registers of outputs;
        // Winograd's forward passes with every tail of their products (8 windows at a time,
        // then 4, 2, 1): 23 windows from 16 channels to 32, 15 from 32 to 32, 7 from 32 to 64
        // unpadded.
        for (input, weights, padding, pool) in [
            ([3, 16, 8, 8], [32, 16, 3, 3], 1, 2),
            ([2, 16, 9, 11], [32, 16, 3, 3], 0, 2),
            ([2, 32, 8, 7], [32, 32, 3, 3], 1, 3),
            ([2, 16, 10, 6], [64, 16, 3, 3], 1, 2),
            ([1, 32, 6, 21], [64, 32, 3, 3], 1, 2),
            ([1, 16, 4, 38], [64, 16, 3, 3], 1, 2),
            ([1, 16, 4, 46], [32, 16, 3, 3], 1, 2),
            ([2, 32, 4, 30], [32, 32, 3, 3], 1, 2),
            ([2, 32, 5, 16], [64, 32, 3, 3], 0, 2),
            ([2, 1, 64, 64], [16, 1, 3, 3], 1, 2),
            ([3, 1, 9, 11], [16, 1, 3, 3], 0, 2),
            ([1, 1, 10, 70], [16, 1, 3, 3], 1, 2),
        ] {
            let shape = BlockShape::new(input, weights, ConvGeometry { stride: 1, padding, pool }).unwrap();
            assert!(channels_last::applies(&shape), "{input:?} {weights:?}");
            let x = values(input.iter().product(), 4);
            let (wt, b) = (values(weights.iter().product(), 5), values(weights[0], 6));
            let (last, dense) =
                (forward(&shape, &x, &wt, &b, false), dense_forward(&shape, &x, &wt, &b, false));
            assert!(matches!(last.kept.source, Source::ChannelsLast(_)));
            assert_eq!(last.kept.winners, dense.kept.winners, "{input:?} winners");
            let grad = values(shape.output_dims().iter().product(), 7);
            let (s, d) = (
                backward(&shape, &wt, &last.kept, &grad, true),
                backward(&shape, &wt, &dense.kept, &grad, true),
            );
            // Without the input gradient (a model's first block): the same weight and bias
            // gradients.
            let without = backward(&shape, &wt, &last.kept, &grad, false);
            assert!(without.input.is_none(), "{input:?}: no input gradient asked for");
            assert_eq!(
                (&without.weight, &without.bias),
                (&s.weight, &s.bias),
                "{input:?} without input gradient"
            );
            for (part, s, d) in [
                ("output", last.output, dense.output),
                ("input gradient", s.input.unwrap(), d.input.unwrap()),
                ("weight gradient", s.weight, d.weight),
                ("bias gradient", s.bias, d.bias),
            ] {
                assert_eq!(s.len(), d.len(), "{input:?} {part}");
                for (i, (s, d)) in s.iter().zip(&d).enumerate() {
                    assert!((s - d).abs() < 1e-4 * (1.0 + d.abs()), "{input:?} {part} {i}: {s} vs {d}");
                }
            }
        }
    }

    #[test]
    fn shapes_that_cannot_run_are_refused() {
        let geometry = ConvGeometry { stride: 1, padding: 0, pool: 1 };
        assert!(BlockShape::new([1, 1, 2, 2], [1, 1, 3, 3], geometry).is_none());
        assert!(BlockShape::new([1, 2, 4, 4], [1, 1, 3, 3], geometry).is_none());
        assert!(BlockShape::new([1, 1, 4, 4], [1, 1, 3, 3], ConvGeometry { pool: 3, ..geometry }).is_none());
        assert!(BlockShape::new([0, 1, 4, 4], [1, 1, 3, 3], geometry).is_none());
        let large_pool = ConvGeometry { pool: MAX_POOL + 1, ..geometry };
        assert!(BlockShape::new([1, 1, 40, 40], [1, 1, 3, 3], large_pool).is_none());
        assert!(BlockShape::new([1, 1, 40, 40], [1, 1, 3, 3], ConvGeometry { pool: MAX_POOL, ..geometry })
            .is_some());
    }
}
