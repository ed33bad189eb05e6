//! From the trained `f32` CNN to the [`IntCnn`] (host side): a float reference forward pass,
//! calibration of activation ranges on real images, and per-channel quantisation.
//!
//! Scheme: pixels `u8` with scale `1/255`; weights symmetric per output channel,
//! `s_w = max |w| / 127`; bias in accumulator scale `s_in s_w`; each ReLU layer's output
//! scale is `max activation / 255` over the calibration images; the last layer's accumulators
//! go straight to [`crate::quantum::fixed::Angle`] units, `2^32 / 4 pi` per radian.

use super::int_cnn::{IntCnn, Layer, Quantized, IMAGE_LEN};
use super::{Error, Result};
use crate::nn::{Conv2dOptions, DenseOptions, MaxPoolOptions, Requant};
use crate::quantum::WIRES;
use alloc::vec::Vec;

/// One trained layer, in the integer CNN's layouts (weights `[O][C][K][K]` and `[O][I]`).
#[derive(Debug, Clone, PartialEq)]
pub enum FloatLayer {
    /// Convolution + ReLU.
    Conv2dRelu {
        /// Shape.
        options: Conv2dOptions,
        /// `[O][C][K][K]`.
        weights: Vec<f32>,
        /// `[O]`.
        bias: Vec<f32>,
    },
    /// Max pooling.
    MaxPool(MaxPoolOptions),
    /// Fully connected + ReLU.
    DenseRelu {
        /// Shape.
        options: DenseOptions,
        /// `[O][I]`.
        weights: Vec<f32>,
        /// `[O]`.
        bias: Vec<f32>,
    },
    /// Fully connected to the 4 angles (no activation).
    Angles {
        /// Shape.
        options: DenseOptions,
        /// `[4][I]`.
        weights: Vec<f32>,
        /// `[4]`.
        bias: Vec<f32>,
    },
}

/// The trained CNN part in `f32`: a 64x64 gray image to the circuit's 4 angles.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatCnn {
    /// The layers, in order.
    pub layers: Vec<FloatLayer>,
}

/// An integer CNN that owns its weights; [`Self::as_int_cnn`] borrows it as the artifact type.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedCnn {
    layers: Vec<OwnedLayer>,
}

#[derive(Debug, Clone, PartialEq)]
enum OwnedLayer {
    Conv2dRelu(Conv2dOptions, OwnedQuantized),
    MaxPool(MaxPoolOptions),
    DenseRelu(DenseOptions, OwnedQuantized),
    Angles(DenseOptions, OwnedQuantized),
}

#[derive(Debug, Clone, PartialEq)]
struct OwnedQuantized {
    weights: Vec<u8>,
    bias: Vec<i32>,
    requant: Vec<Requant>,
}

impl FloatCnn {
    /// Every layer's output for one image (pixels scaled by `1/255`); the last is the angles.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the image is not 64x64 or the layers do not chain.
    pub fn forward(&self, image: &[u8]) -> Result<Vec<Vec<f32>>> {
        if image.len() != IMAGE_LEN {
            return Err(Error::Invalid("image is not 64x64"));
        }
        let mut x: Vec<f32> = image.iter().map(|&p| f32::from(p) / 255.0).collect();
        let mut outputs = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            x = match layer {
                FloatLayer::Conv2dRelu { options, weights, bias } => conv_relu(options, &x, weights, bias)?,
                FloatLayer::MaxPool(o) => max_pool(o, &x)?,
                FloatLayer::DenseRelu { options, weights, bias } => {
                    dense(options, &x, weights, bias)?.into_iter().map(|v| v.max(0.0)).collect()
                }
                FloatLayer::Angles { options, weights, bias } => dense(options, &x, weights, bias)?,
            };
            outputs.push(x.clone());
        }
        Ok(outputs)
    }

    /// The 4 angles for one image.
    ///
    /// # Errors
    /// As [`Self::forward`], and [`Error::Invalid`] when the last layer is not 4 angles.
    pub fn angles(&self, image: &[u8]) -> Result<[f32; WIRES]> {
        let outputs = self.forward(image)?;
        let last = outputs.last().ok_or(Error::Invalid("no layers"))?;
        last.as_slice().try_into().map_err(|_| Error::Invalid("the last layer does not give 4 angles"))
    }

    /// Quantises the network, calibrating activation ranges on `calibration` images.
    ///
    /// # Errors
    /// As [`Self::forward`] for any calibration image; [`Error::Invalid`] when there is no
    /// calibration image or the result does not validate as an [`IntCnn`].
    pub fn quantize(&self, calibration: &[&[u8]]) -> Result<QuantizedCnn> {
        if calibration.is_empty() {
            return Err(Error::Invalid("no calibration image"));
        }
        let mut max_out = alloc::vec![0.0f32; self.layers.len()];
        for image in calibration {
            for (m, out) in max_out.iter_mut().zip(self.forward(image)?) {
                *m = out.iter().fold(*m, |a, &v| a.max(v));
            }
        }
        let mut s_in = 1.0 / 255.0;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, &max) in self.layers.iter().zip(&max_out) {
            // A layer that never fires still needs a valid scale.
            let s_out = if max > 0.0 { f64::from(max) / 255.0 } else { 1.0 / 255.0 };
            layers.push(match layer {
                FloatLayer::Conv2dRelu { options, weights, bias } => {
                    let q =
                        quantize_weights(weights, bias, options.out_channels as usize, s_in, |s| s / s_out)?;
                    s_in = s_out;
                    OwnedLayer::Conv2dRelu(*options, q)
                }
                FloatLayer::MaxPool(o) => OwnedLayer::MaxPool(*o),
                FloatLayer::DenseRelu { options, weights, bias } => {
                    let q = quantize_weights(weights, bias, options.outputs as usize, s_in, |s| s / s_out)?;
                    s_in = s_out;
                    OwnedLayer::DenseRelu(*options, q)
                }
                FloatLayer::Angles { options, weights, bias } => {
                    let per_radian = 4_294_967_296.0 / (4.0 * core::f64::consts::PI);
                    OwnedLayer::Angles(
                        *options,
                        quantize_weights(weights, bias, options.outputs as usize, s_in, |s| s * per_radian)?,
                    )
                }
            });
        }
        let cnn = QuantizedCnn { layers };
        cnn.as_int_cnn()?.validate()?;
        Ok(cnn)
    }
}

/// Per-output symmetric `i8` weights, bias in accumulator scale, and the requantisation
/// `to_output(s_in s_w)`.
fn quantize_weights(
    weights: &[f32],
    bias: &[f32],
    outputs: usize,
    s_in: f64,
    to_output: impl Fn(f64) -> f64,
) -> Result<OwnedQuantized> {
    if outputs == 0 || !weights.len().is_multiple_of(outputs) || bias.len() != outputs {
        return Err(Error::Invalid("weights or bias do not match the layer's outputs"));
    }
    let fan_in = weights.len() / outputs;
    let mut q =
        OwnedQuantized { weights: Vec::with_capacity(weights.len()), bias: Vec::new(), requant: Vec::new() };
    for (row, &b) in weights.chunks_exact(fan_in).zip(bias) {
        let max = row.iter().fold(0.0f32, |a, w| a.max(w.abs()));
        let s_w = if max > 0.0 { f64::from(max) / 127.0 } else { 1.0 };
        q.weights.extend(
            row.iter()
                .map(|&w| num_traits::Float::round(f64::from(w) / s_w).clamp(-127.0, 127.0) as i8 as u8),
        );
        let acc_scale = s_in * s_w;
        q.bias.push(
            num_traits::Float::round(f64::from(b) / acc_scale).clamp(f64::from(i32::MIN), f64::from(i32::MAX))
                as i32,
        );
        q.requant.push(Requant::from_scale(to_output(acc_scale)));
    }
    Ok(q)
}

impl QuantizedCnn {
    /// The network as the artifact type, borrowing the weights.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a layer has more outputs than [`super::MAX_CHANNELS`] or there
    /// are more layers than [`super::MAX_CNN_LAYERS`].
    pub fn as_int_cnn(&self) -> Result<IntCnn<'_>> {
        let mut layers = heapless::Vec::new();
        for layer in &self.layers {
            let l = match layer {
                OwnedLayer::Conv2dRelu(o, q) => Layer::Conv2dRelu(*o, borrow(q)?),
                OwnedLayer::MaxPool(o) => Layer::MaxPool(*o),
                OwnedLayer::DenseRelu(o, q) => Layer::DenseRelu(*o, borrow(q)?),
                OwnedLayer::Angles(o, q) => Layer::Angles(*o, borrow(q)?),
            };
            layers.push(l).map_err(|_| Error::Invalid("too many layers"))?;
        }
        Ok(IntCnn { layers })
    }
}

fn borrow(q: &OwnedQuantized) -> Result<Quantized<'_>> {
    Ok(Quantized {
        weights: &q.weights,
        bias: heapless::Vec::from_slice(&q.bias).map_err(|_| Error::Invalid("too many channels"))?,
        requant: heapless::Vec::from_slice(&q.requant).map_err(|_| Error::Invalid("too many channels"))?,
    })
}

fn conv_relu(o: &Conv2dOptions, x: &[f32], weights: &[f32], bias: &[f32]) -> Result<Vec<f32>> {
    o.validate().map_err(|_| Error::Invalid("convolution options"))?;
    if x.len() != o.input_len() || weights.len() != o.weights_len() || bias.len() != o.out_channels as usize {
        return Err(Error::Invalid("convolution shapes do not chain"));
    }
    let (c_in, h, w) = (o.in_channels as usize, o.in_height as isize, o.in_width as isize);
    let (k, s, p) = (o.kernel as usize, o.stride as isize, o.padding as isize);
    let mut out = Vec::with_capacity(o.output_len());
    for oc in 0..o.out_channels as usize {
        for oy in 0..o.out_height() as isize {
            for ox in 0..o.out_width() as isize {
                let mut acc = bias[oc];
                for ic in 0..c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (y, xx) = (oy * s + ky as isize - p, ox * s + kx as isize - p);
                            if (0..h).contains(&y) && (0..w).contains(&xx) {
                                acc += x[ic * (h * w) as usize + (y * w + xx) as usize]
                                    * weights[((oc * c_in + ic) * k + ky) * k + kx];
                            }
                        }
                    }
                }
                out.push(acc.max(0.0));
            }
        }
    }
    Ok(out)
}

fn max_pool(o: &MaxPoolOptions, x: &[f32]) -> Result<Vec<f32>> {
    o.validate().map_err(|_| Error::Invalid("pooling options"))?;
    if x.len() != o.input_len() {
        return Err(Error::Invalid("pooling shapes do not chain"));
    }
    let (h, w, k, s) = (o.in_height as usize, o.in_width as usize, o.kernel as usize, o.stride as usize);
    let mut out = Vec::with_capacity(o.output_len());
    for plane in x.chunks_exact(h * w) {
        for oy in 0..o.out_height() {
            for ox in 0..o.out_width() {
                let window =
                    (0..k).flat_map(|ky| (0..k).map(move |kx| plane[(oy * s + ky) * w + ox * s + kx]));
                out.push(window.fold(f32::NEG_INFINITY, f32::max));
            }
        }
    }
    Ok(out)
}

fn dense(o: &DenseOptions, x: &[f32], weights: &[f32], bias: &[f32]) -> Result<Vec<f32>> {
    if x.len() != o.inputs as usize || weights.len() != o.weights_len() || bias.len() != o.outputs as usize {
        return Err(Error::Invalid("dense shapes do not chain"));
    }
    Ok(weights
        .chunks_exact(x.len())
        .zip(bias)
        .map(|(row, &b)| row.iter().zip(x).fold(b, |a, (w, v)| a + w * v))
        .collect())
}
