//! 2-D convolution + ReLU on `u8` activations with per-output-channel symmetric `i8` weights.

use super::error::{check_len, Error, Result};
use super::Requant;
use serde::{Deserialize, Serialize};

/// Shape of a convolution; tensors are channel-major (`[C][H][W]`, weights `[O][C][K][K]`,
/// as in ONNX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Conv2dOptions {
    /// Input channels.
    pub in_channels: u16,
    /// Output channels.
    pub out_channels: u16,
    /// Input height.
    pub in_height: u16,
    /// Input width.
    pub in_width: u16,
    /// Square kernel size.
    pub kernel: u8,
    /// Stride in both directions.
    pub stride: u8,
    /// Zero padding on every side.
    pub padding: u8,
}

impl Conv2dOptions {
    /// Checks that the options describe a layer with a non-empty output.
    ///
    /// # Errors
    /// [`Error::Options`] otherwise.
    pub fn validate(&self) -> Result<()> {
        if self.in_channels == 0 || self.out_channels == 0 || self.kernel == 0 || self.stride == 0 {
            return Err(Error::Options("zero channels, kernel or stride"));
        }
        let (ph, pw) = (
            self.in_height as usize + 2 * self.padding as usize,
            self.in_width as usize + 2 * self.padding as usize,
        );
        if (self.kernel as usize) > ph || (self.kernel as usize) > pw {
            return Err(Error::Options("kernel larger than the padded input"));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_height(&self) -> usize {
        (self.in_height as usize + 2 * self.padding as usize).saturating_sub(self.kernel as usize)
            / self.stride.max(1) as usize
            + 1
    }

    /// Output width.
    pub fn out_width(&self) -> usize {
        (self.in_width as usize + 2 * self.padding as usize).saturating_sub(self.kernel as usize)
            / self.stride.max(1) as usize
            + 1
    }

    /// Input elements.
    pub fn input_len(&self) -> usize {
        self.in_channels as usize * self.in_height as usize * self.in_width as usize
    }

    /// Weight elements.
    pub fn weights_len(&self) -> usize {
        self.out_channels as usize * self.in_channels as usize * (self.kernel as usize).pow(2)
    }

    /// Output elements.
    pub fn output_len(&self) -> usize {
        self.out_channels as usize * self.out_height() * self.out_width()
    }

    /// Elements of the zero-padded copy of the input [`conv2d_relu`] works on (0 without
    /// padding: it reads the input in place).
    pub fn padded_len(&self) -> usize {
        if self.padding == 0 {
            return 0;
        }
        let p = 2 * self.padding as usize;
        self.in_channels as usize * (self.in_height as usize + p) * (self.in_width as usize + p)
    }
}

/// The input as the convolution reads it: itself without padding, else its zero-padded copy
/// in `padded`.
fn padded_input<'a>(options: &Conv2dOptions, input: &'a [u8], padded: &'a mut [u8]) -> Result<&'a [u8]> {
    let (c, h, w, p) = (
        options.in_channels as usize,
        options.in_height as usize,
        options.in_width as usize,
        options.padding as usize,
    );
    if p == 0 {
        return Ok(input);
    }
    let need = options.padded_len();
    let found = padded.len();
    let buffer = padded.get_mut(..need).ok_or(Error::Length { buffer: "padded", expected: need, found })?;
    // The model's inputs with constant sizes: rows copied inline, not by `memcpy` calls.
    match (c, h, w, p) {
        (1, 64, 64, 1) => pad(input, 1, 64, 64, 1, buffer),
        (8, 16, 16, 1) => pad(input, 8, 16, 16, 1, buffer),
        (16, 8, 8, 1) => pad(input, 16, 8, 8, 1, buffer),
        _ => pad(input, c, h, w, p, buffer),
    }
    Ok(buffer)
}

/// The start both convolutions share: `options` valid; `input`, the weights (`weights_len`:
/// name, expected and found length) and `output` the sizes `options` says, checked in that
/// order; then the input with its zero border (itself when unpadded) and that input's shape.
fn prepare<'a>(
    options: &Conv2dOptions,
    input: &'a [u8],
    weights_len: (&'static str, usize, usize),
    output: &[u8],
    padded: &'a mut [u8],
) -> Result<(&'a [u8], Valid)> {
    options.validate()?;
    check_len("input", options.input_len(), input.len())?;
    check_len(weights_len.0, weights_len.1, weights_len.2)?;
    check_len("output", options.output_len(), output.len())?;
    let border = 2 * options.padding as usize;
    let shape = Valid {
        channels: options.in_channels as usize,
        height: options.in_height as usize + border,
        width: options.in_width as usize + border,
    };
    Ok((padded_input(options, input, padded)?, shape))
}

/// `output = relu(requant[o](bias[o] + sum input * weights))`.
///
/// `weights` holds `i8` values as bytes (two's complement), as the model artifact stores
/// them. A padded layer first copies its input into `padded` (at least
/// [`Conv2dOptions::padded_len`] bytes) with zero borders, so every window lies inside the
/// buffer and the inner loops need no bounds logic: on a Cortex-M0+ that halves the
/// instructions per multiply-accumulate.
///
/// # Errors
/// [`Error::Length`] when a buffer does not match `options`; [`Error::Options`] for invalid
/// options.
pub fn conv2d_relu(
    options: &Conv2dOptions,
    input: &[u8],
    weights: &[u8],
    bias: impl Fn(usize) -> i32,
    requant: impl Fn(usize) -> Requant,
    output: &mut [u8],
    padded: &mut [u8],
) -> Result<()> {
    let weights_len = ("weights", options.weights_len(), weights.len());
    let (source, valid) = prepare(options, input, weights_len, output, padded)?;
    // The model's layers (6x6 stride 4, 3x3 stride 2, 3x3 stride 1) get fully unrolled
    // windows; any other shape runs the same loops with runtime sizes.
    match (options.kernel, options.stride) {
        (6, 4) => valid.convolve::<6, 4>(6, 4, source, weights, bias, requant, output),
        (3, 2) => valid.convolve::<3, 2>(3, 2, source, weights, bias, requant, output),
        (3, 1) => valid.convolve::<3, 1>(3, 1, source, weights, bias, requant, output),
        (k, s) => valid.convolve::<0, 0>(k as usize, s as usize, source, weights, bias, requant, output),
    }
    Ok(())
}

/// Copies `[c][h][w]` `input` into `out` as `[c][h + 2p][w + 2p]` with zero borders.
#[inline(always)]
fn pad(input: &[u8], c: usize, h: usize, w: usize, p: usize, out: &mut [u8]) {
    let pw = w + 2 * p;
    out.fill(0);
    for (plane_in, plane_out) in input.chunks_exact(h * w).zip(out.chunks_exact_mut((h + 2 * p) * pw)).take(c)
    {
        for (row_in, row_out) in plane_in.chunks_exact(w).zip(plane_out.chunks_exact_mut(pw).skip(p)) {
            // In pieces of 8 bytes (inline byte moves: the padded rows are misaligned, where
            // `memcpy` takes over 10 instructions per byte on a Cortex-M0+), then the rest.
            let row_out = &mut row_out[p..p + w];
            let (head, tail) = (w / 8 * 8, w % 8);
            for (d, s) in row_out[..head].chunks_exact_mut(8).zip(row_in[..head].chunks_exact(8)) {
                d.copy_from_slice(s);
            }
            row_out[head..head + tail].copy_from_slice(&row_in[head..head + tail]);
        }
    }
}

/// A convolution without padding over an input every window fits in.
struct Valid {
    channels: usize,
    height: usize,
    width: usize,
}

/// Output pixels of one row computed together: each weight is loaded (and sign-extended)
/// once per block and its `BLOCK` accumulators stay in registers.
const BLOCK: usize = 4;

impl Valid {
    /// `K` and `S` are the kernel size and stride when known at compile time, 0 to use `k`
    /// and `s`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn convolve<const K: usize, const S: usize>(
        &self,
        k: usize,
        s: usize,
        input: &[u8],
        weights: &[u8],
        bias: impl Fn(usize) -> i32,
        requant: impl Fn(usize) -> Requant,
        output: &mut [u8],
    ) {
        let k = if K == 0 { k } else { K };
        let s = if S == 0 { s } else { S };
        let (oh, ow) = ((self.height - k) / s + 1, (self.width - k) / s + 1);
        let taps = self.channels * k * k;
        let window = Window { k, s, width: self.width, plane: self.height * self.width, taps };
        for o in 0..output.len() / (oh * ow) {
            let kernel = &weights[o * taps..][..taps];
            let out_plane = &mut output[o * oh * ow..][..oh * ow];
            let (b, rq) = (bias(o), requant(o));
            for oy in 0..oh {
                let out_row = &mut out_plane[oy * ow..][..ow];
                let mut ox = 0;
                while ox + BLOCK <= ow {
                    let acc = window.sum::<K, S, BLOCK>(input, kernel, oy * s * self.width + ox * s, b);
                    for (y, a) in out_row[ox..][..BLOCK].iter_mut().zip(acc) {
                        *y = rq.apply_relu_u8(a);
                    }
                    ox += BLOCK;
                }
                while ox < ow {
                    let [a] = window.sum::<K, S, 1>(input, kernel, oy * s * self.width + ox * s, b);
                    out_row[ox] = rq.apply_relu_u8(a);
                    ox += 1;
                }
            }
        }
    }
}

/// Where the windows of a convolution lie in its (padded) input.
struct Window {
    k: usize,
    s: usize,
    width: usize,
    plane: usize,
    /// Weights of one output channel (`channels * k * k`).
    taps: usize,
}

impl Window {
    /// `bias + sum input * kernel` for `P` horizontally adjacent windows, the first with its
    /// top left corner at `corner`.
    #[inline(always)]
    fn sum<const K: usize, const S: usize, const P: usize>(
        &self,
        input: &[u8],
        kernel: &[u8],
        corner: usize,
        bias: i32,
    ) -> [i32; P] {
        let k = if K == 0 { self.k } else { K };
        let s = if S == 0 { self.s } else { S };
        let span = (P - 1) * s + k;
        let mut acc = [bias; P];
        let mut start = corner;
        let mut t = 0;
        while t < self.taps {
            for ky in 0..k {
                let row = &input[start + ky * self.width..][..span];
                let w = &kernel[t + ky * k..][..k];
                for kx in 0..k {
                    let wt = i32::from(w[kx] as i8);
                    for p in 0..P {
                        acc[p] = acc[p].wrapping_add(i32::from(row[p * s + kx]) * wt);
                    }
                }
            }
            start += self.plane;
            t += k * k;
        }
        acc
    }
}

/// Output channels [`conv2d_relu_grouped`] computes together: each input pixel is loaded once
/// for all of them and their accumulators stay in registers.
pub const GROUP: usize = 4;

impl Conv2dOptions {
    /// `i32` elements of the weights re-laid by [`group_weights`].
    pub fn grouped_weights_len(&self) -> usize {
        (self.out_channels as usize).div_ceil(GROUP)
            * GROUP
            * self.in_channels as usize
            * (self.kernel as usize).pow(2)
    }
}

/// Re-lays a convolution's `i8` weights (`[O][C][K][K]` bytes, the artifact's layout) for
/// [`conv2d_relu_grouped`]: `[O / GROUP][C][K][K][GROUP]` as `i32`, the missing channels of a
/// last partial group zero. Done once when a model is loaded: the kernel then reads each
/// weight with one word load, already sign-extended.
///
/// # Errors
/// [`Error::Length`] when a buffer does not match `options`.
pub fn group_weights(options: &Conv2dOptions, weights: &[u8], grouped: &mut [i32]) -> Result<()> {
    check_len("weights", options.weights_len(), weights.len())?;
    check_len("grouped weights", options.grouped_weights_len(), grouped.len())?;
    let taps = options.in_channels as usize * (options.kernel as usize).pow(2);
    grouped.fill(0);
    for (o, kernel) in weights.chunks_exact(taps).enumerate() {
        let group = &mut grouped[o / GROUP * GROUP * taps..][..GROUP * taps];
        for (t, &w) in kernel.iter().enumerate() {
            group[t * GROUP + o % GROUP] = i32::from(w as i8);
        }
    }
    Ok(())
}

/// [`conv2d_relu`] with the weights as [`group_weights`] lays them out: the same integers,
/// computed [`GROUP`] output channels at a time (on a Cortex-M0+ about 3.3 instructions per
/// multiply-accumulate: one byte load per input pixel, then a word load, a multiply and an
/// add per channel).
///
/// # Errors
/// [`Error::Length`] when a buffer does not match `options`; [`Error::Options`] for invalid
/// options.
pub fn conv2d_relu_grouped(
    options: &Conv2dOptions,
    input: &[u8],
    grouped: &[i32],
    bias: impl Fn(usize) -> i32,
    requant: impl Fn(usize) -> Requant,
    output: &mut [u8],
    padded: &mut [u8],
) -> Result<()> {
    let weights_len = ("grouped weights", options.grouped_weights_len(), grouped.len());
    let (source, valid) = prepare(options, input, weights_len, output, padded)?;
    let g = Grouped {
        channels: valid.channels,
        outputs: options.out_channels as usize,
        height: valid.height,
        width: valid.width,
        kernel: options.kernel as usize,
        stride: options.stride as usize,
    };
    // The model's layers (padded widths 66, 18, 10; 1, 8, 16 input channels) get fully
    // unrolled windows with constant offsets; any other shape runs the same loops with
    // runtime sizes.
    match (g.kernel, g.stride, g.width, g.channels) {
        (6, 4, 66, 1) => g.convolve::<6, 4, 66, 1>(source, grouped, bias, requant, output),
        (3, 2, 18, 8) => g.convolve::<3, 2, 18, 8>(source, grouped, bias, requant, output),
        (3, 1, 10, 16) => g.convolve::<3, 1, 10, 16>(source, grouped, bias, requant, output),
        _ => g.convolve::<0, 0, 0, 0>(source, grouped, bias, requant, output),
    }
    Ok(())
}

/// The accumulators, unchanged, through an empty `asm!` block on 32-bit Arm: LLVM cannot
/// see through it, so it keeps each tap's four multiply-adds together instead of regrouping
/// the sums per channel (which keeps all of a window's pixels live at once and, with the
/// eight low registers of Thumb-1, spills them to the stack: 4.2 instead of 3.3 instructions
/// per multiply-accumulate on a Cortex-M0+). The identity elsewhere.
#[inline(always)]
fn in_registers(acc: [i32; GROUP]) -> [i32; GROUP] {
    #[cfg(target_arch = "arm")]
    {
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        // SAFETY: an empty instruction sequence; it reads and writes only these registers.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                "/* {0} {1} {2} {3} */",
                inout(reg) a0,
                inout(reg) a1,
                inout(reg) a2,
                inout(reg) a3,
                options(pure, nomem, nostack, preserves_flags)
            );
        }
        [a0, a1, a2, a3]
    }
    #[cfg(not(target_arch = "arm"))]
    acc
}

/// `acc` plus one input channel's `k x k` window (rows `w` apart) times its weights
/// (`[k][k][GROUP]`), [`GROUP`] output channels at once.
#[inline(always)]
fn window_sum<const K: usize, const W: usize>(
    k: usize,
    w: usize,
    window: &[u8],
    weights: &[i32],
    acc: [i32; GROUP],
) -> [i32; GROUP] {
    let (k, w) = (if K == 0 { k } else { K }, if W == 0 { w } else { W });
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    for ky in 0..k {
        for kx in 0..k {
            let x = i32::from(window[ky * w + kx]);
            let t = &weights[(ky * k + kx) * GROUP..][..GROUP];
            a0 = a0.wrapping_add(x * t[0]);
            a1 = a1.wrapping_add(x * t[1]);
            a2 = a2.wrapping_add(x * t[2]);
            a3 = a3.wrapping_add(x * t[3]);
            [a0, a1, a2, a3] = in_registers([a0, a1, a2, a3]);
        }
    }
    [a0, a1, a2, a3]
}

/// A convolution over a padded input, weights grouped by [`group_weights`].
struct Grouped {
    channels: usize,
    outputs: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
}

impl Grouped {
    /// `K`, `S`, `W`, `C`: kernel, stride, (padded) input width and input channels when known
    /// at compile time, 0 for the runtime values.
    #[inline(always)]
    fn convolve<const K: usize, const S: usize, const W: usize, const C: usize>(
        &self,
        input: &[u8],
        grouped: &[i32],
        bias: impl Fn(usize) -> i32,
        requant: impl Fn(usize) -> Requant,
        output: &mut [u8],
    ) {
        let k = if K == 0 { self.kernel } else { K };
        let s = if S == 0 { self.stride } else { S };
        let w = if W == 0 { self.width } else { W };
        let channels = if C == 0 { self.channels } else { C };
        let (oh, ow) = ((self.height - k) / s + 1, (self.width - k) / s + 1);
        let (plane, span, taps) = (self.height * w, (k - 1) * w + k, k * k * GROUP);
        for (g, weights) in grouped.chunks_exact(channels * taps).enumerate() {
            let first = g * GROUP;
            let n = GROUP.min(self.outputs - first);
            let mut b = [0; GROUP];
            let mut rq = [Requant { multiplier: 0, shift: 0 }; GROUP];
            for j in 0..n {
                (b[j], rq[j]) = (bias(first + j), requant(first + j));
            }
            let planes = &mut output[first * oh * ow..][..n * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let corner = oy * s * w + ox * s;
                    let mut acc = b;
                    macro_rules! channel {
                        ($($ci:expr),*) => {$(
                            let window = &input[$ci * plane + corner..][..span];
                            acc = window_sum::<K, W>(k, w, window, &weights[$ci * taps..][..taps], acc);
                        )*};
                    }
                    // The model's channel counts fully unrolled: no loop to carry the sums
                    // around (Thumb-1 would spill them at every turn).
                    match C {
                        1 => {
                            channel!(0);
                        }
                        8 => {
                            channel!(0, 1, 2, 3, 4, 5, 6, 7);
                        }
                        16 => {
                            channel!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
                        }
                        _ => {
                            for ci in 0..channels {
                                channel!(ci);
                            }
                        }
                    }
                    let at = oy * ow + ox;
                    for (j, a) in acc.into_iter().enumerate().take(n) {
                        planes[j * oh * ow + at] = rq[j].apply_relu_u8(a);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition with explicit zero padding, in i64, for comparison.
    fn reference(
        o: &Conv2dOptions,
        input: &[u8],
        weights: &[u8],
        bias: &[i32],
        rq: &[Requant],
    ) -> std::vec::Vec<u8> {
        let (h, w, k, s, p) =
            (o.in_height as i64, o.in_width as i64, o.kernel as i64, o.stride as i64, o.padding as i64);
        let mut out = std::vec::Vec::new();
        for oc in 0..o.out_channels as i64 {
            for oy in 0..o.out_height() as i64 {
                for ox in 0..o.out_width() as i64 {
                    let mut acc = bias[oc as usize] as i64;
                    for ic in 0..o.in_channels as i64 {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (y, x) = (oy * s + ky - p, ox * s + kx - p);
                                if (0..h).contains(&y) && (0..w).contains(&x) {
                                    let px = input[(ic * h * w + y * w + x) as usize] as i64;
                                    let wt = weights
                                        [(((oc * o.in_channels as i64 + ic) * k + ky) * k + kx) as usize]
                                        as i8 as i64;
                                    acc += px * wt;
                                }
                            }
                        }
                    }
                    out.push(rq[oc as usize].apply_relu_u8(acc as i32));
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_direct_definition_with_stride_and_padding() {
        for (stride, padding, kernel) in
            [(1, 1, 3), (2, 1, 3), (2, 0, 2), (1, 0, 1), (3, 2, 5), (4, 1, 6), (1, 0, 3)]
        {
            let o = Conv2dOptions {
                in_channels: 3,
                out_channels: 4,
                in_height: 9,
                in_width: 7,
                kernel,
                stride,
                padding,
            };
            let input: std::vec::Vec<u8> = (0..o.input_len()).map(|i| (i * 37 % 251) as u8).collect();
            let weights: std::vec::Vec<u8> = (0..o.weights_len()).map(|i| (i * 91 % 256) as u8).collect();
            let bias = [100, -2000, 0, 31];
            let rq: std::vec::Vec<Requant> =
                [0.01, 0.002, 0.05, 0.3].iter().map(|&s| Requant::from_scale(s)).collect();
            let mut out = std::vec![0u8; o.output_len()];
            let mut padded = std::vec![0xAAu8; o.padded_len()];
            conv2d_relu(&o, &input, &weights, |c| bias[c], |c| rq[c], &mut out, &mut padded).unwrap();
            let want = reference(&o, &input, &weights, &bias, &rq);
            assert_eq!(out, want, "stride {stride} padding {padding} kernel {kernel}");
            let mut grouped = std::vec![0; o.grouped_weights_len()];
            group_weights(&o, &weights, &mut grouped).unwrap();
            let mut out = std::vec![0u8; o.output_len()];
            conv2d_relu_grouped(&o, &input, &grouped, |c| bias[c], |c| rq[c], &mut out, &mut padded).unwrap();
            assert_eq!(out, want, "grouped: stride {stride} padding {padding} kernel {kernel}");
        }
    }

    #[test]
    fn grouped_kernels_match_the_direct_definition_on_the_model_shapes() {
        // The model's three layers (unrolled paths), a partial last group, random values.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (c, o, h, kernel, stride, padding) in [
            (1, 8, 64, 6, 4, 1),
            (8, 16, 16, 3, 2, 1),
            (16, 32, 8, 3, 1, 1),
            (3, 6, 8, 3, 1, 1),
            (2, 7, 11, 6, 4, 1),
        ] {
            let o = Conv2dOptions {
                in_channels: c,
                out_channels: o,
                in_height: h,
                in_width: h,
                kernel,
                stride,
                padding,
            };
            for round in 0..4 {
                let input: std::vec::Vec<u8> = (0..o.input_len()).map(|_| next() as u8).collect();
                // Round 0: extreme weights (-128 and 127) for the largest sums.
                let weights: std::vec::Vec<u8> = (0..o.weights_len())
                    .map(|i| if round == 0 { [0x80, 0x7F][i % 2] } else { next() as u8 })
                    .collect();
                let bias: std::vec::Vec<i32> =
                    (0..o.out_channels).map(|_| (next() % 200_001) as i32 - 100_000).collect();
                let rq: std::vec::Vec<Requant> = (0..o.out_channels)
                    .map(|_| Requant::from_scale((next() % 10_000 + 1) as f64 * 1e-6))
                    .collect();
                let want = reference(&o, &input, &weights, &bias, &rq);
                let mut grouped = std::vec![0; o.grouped_weights_len()];
                group_weights(&o, &weights, &mut grouped).unwrap();
                let mut out = std::vec![0u8; o.output_len()];
                let mut padded = std::vec![0u8; o.padded_len()];
                conv2d_relu_grouped(&o, &input, &grouped, |i| bias[i], |i| rq[i], &mut out, &mut padded)
                    .unwrap();
                assert_eq!(out, want, "{o:?} round {round}");
                conv2d_relu(&o, &input, &weights, |i| bias[i], |i| rq[i], &mut out, &mut padded).unwrap();
                assert_eq!(out, want, "{o:?} round {round} (i8 weights)");
            }
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let o = Conv2dOptions {
            in_channels: 1,
            out_channels: 1,
            in_height: 4,
            in_width: 4,
            kernel: 3,
            stride: 1,
            padding: 0,
        };
        let rq = Requant::from_scale(1.0);
        let mut out = [0u8; 4];
        assert!(matches!(
            conv2d_relu(&o, &[0; 15], &[0; 9], |_| 0, |_| rq, &mut out, &mut []),
            Err(Error::Length { buffer: "input", .. })
        ));
        let bad = Conv2dOptions { kernel: 9, ..o };
        assert!(matches!(
            conv2d_relu(&bad, &[0; 16], &[0; 81], |_| 0, |_| rq, &mut out, &mut []),
            Err(Error::Options(_))
        ));
        let padded = Conv2dOptions { padding: 1, ..o };
        let mut out = [0u8; 16];
        assert!(matches!(
            conv2d_relu(&padded, &[0; 16], &[0; 9], |_| 0, |_| rq, &mut out, &mut [0; 35]),
            Err(Error::Length { buffer: "padded", expected: 36, found: 35 })
        ));
    }
}
