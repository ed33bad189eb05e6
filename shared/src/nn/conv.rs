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
}

/// `output = relu(requant[o](bias[o] + sum input * weights))`.
///
/// `weights` holds `i8` values as bytes (two's complement), as the model artifact stores
/// them.
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
) -> Result<()> {
    options.validate()?;
    check_len("input", options.input_len(), input.len())?;
    check_len("weights", options.weights_len(), weights.len())?;
    check_len("output", options.output_len(), output.len())?;
    let (c_in, h, w) = (options.in_channels as usize, options.in_height as usize, options.in_width as usize);
    let (k, stride, pad) = (options.kernel as usize, options.stride as usize, options.padding as usize);
    let (oh, ow) = (options.out_height(), options.out_width());
    let plane = h * w;
    for (o, (out_plane, kernel)) in
        output.chunks_exact_mut(oh * ow).zip(weights.chunks_exact(c_in * k * k)).enumerate()
    {
        let (b, rq) = (bias(o), requant(o));
        for oy in 0..oh {
            // The kernel rows that land inside the input (padding contributes zeros).
            let y0 = (oy * stride) as isize - pad as isize;
            let ky_lo = (-y0).max(0) as usize;
            let ky_hi = ((h as isize - y0).min(k as isize)).max(0) as usize;
            for ox in 0..ow {
                let x0 = (ox * stride) as isize - pad as isize;
                let kx_lo = (-x0).max(0) as usize;
                let kx_hi = ((w as isize - x0).min(k as isize)).max(0) as usize;
                let mut acc = b;
                for ci in 0..c_in {
                    let in_plane = &input[ci * plane..(ci + 1) * plane];
                    let kern = &kernel[ci * k * k..(ci + 1) * k * k];
                    for ky in ky_lo..ky_hi {
                        let row = (y0 + ky as isize) as usize * w;
                        let x_start = (x0 + kx_lo as isize) as usize;
                        let pixels = &in_plane[row + x_start..row + x_start + (kx_hi - kx_lo)];
                        let taps = &kern[ky * k + kx_lo..ky * k + kx_hi];
                        for (&p, &t) in pixels.iter().zip(taps) {
                            acc = acc.wrapping_add(i32::from(p) * i32::from(t as i8));
                        }
                    }
                }
                out_plane[oy * ow + ox] = rq.apply_relu_u8(acc);
            }
        }
    }
    Ok(())
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
        for (stride, padding, kernel) in [(1, 1, 3), (2, 1, 3), (2, 0, 2), (1, 0, 1), (3, 2, 5)] {
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
            conv2d_relu(&o, &input, &weights, |c| bias[c], |c| rq[c], &mut out).unwrap();
            assert_eq!(
                out,
                reference(&o, &input, &weights, &bias, &rq),
                "stride {stride} padding {padding} kernel {kernel}"
            );
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
            conv2d_relu(&o, &[0; 15], &[0; 9], |_| 0, |_| rq, &mut out),
            Err(Error::Length { buffer: "input", .. })
        ));
        let bad = Conv2dOptions { kernel: 9, ..o };
        assert!(matches!(
            conv2d_relu(&bad, &[0; 16], &[0; 81], |_| 0, |_| rq, &mut out),
            Err(Error::Options(_))
        ));
    }
}
