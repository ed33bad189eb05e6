//! The integer CNN artifact: layers with borrowed `i8` weights, run by [`crate::nn`] into the
//! circuit's four angles.

use super::container::{self, Kind};
use super::{Error, Result};
use crate::nn::{self, Conv2dOptions, DenseOptions, MaxPoolOptions, Requant};
use crate::quantum::fixed::Angle;
use crate::quantum::WIRES;
use heapless::Vec;
use serde::{Deserialize, Serialize};

/// Most layers an integer CNN may have.
pub const MAX_CNN_LAYERS: usize = 12;
/// Most output channels (or dense outputs) of one layer.
pub const MAX_CHANNELS: usize = 128;
/// Side of the square gray input image.
pub const IMAGE_SIDE: usize = 64;
/// Pixels of the input image.
pub const IMAGE_LEN: usize = IMAGE_SIDE * IMAGE_SIDE;

/// Per-channel integer constants of a layer with weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantized<'a> {
    /// `i8` weights as bytes, in the layer's layout.
    #[serde(borrow)]
    pub weights: &'a [u8],
    /// `i32` bias per output, in accumulator scale (`s_in * s_w[o]`).
    pub bias: Vec<i32, MAX_CHANNELS>,
    /// Accumulator-to-output scale per output.
    pub requant: Vec<Requant, MAX_CHANNELS>,
}

/// One layer of the integer CNN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layer<'a> {
    /// Convolution + ReLU.
    Conv2dRelu(Conv2dOptions, #[serde(borrow)] Quantized<'a>),
    /// Max pooling.
    MaxPool(MaxPoolOptions),
    /// Fully connected + ReLU (flattens a `[C][H][W]` input in that order).
    DenseRelu(DenseOptions, #[serde(borrow)] Quantized<'a>),
    /// The last layer: fully connected to the 4 circuit angles; `requant` maps an accumulator
    /// to [`Angle`] units (`2^32` per `4 pi`), where wrapping is the circuit's periodicity.
    Angles(DenseOptions, #[serde(borrow)] Quantized<'a>),
}

/// The integer CNN: a `64 x 64` gray `u8` image in, the circuit's 4 angles out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntCnn<'a> {
    /// The layers, in order.
    #[serde(borrow)]
    pub layers: Vec<Layer<'a>, MAX_CNN_LAYERS>,
}

fn check_quantized(q: &Quantized<'_>, outputs: usize, weights: usize) -> Result<()> {
    if q.weights.len() != weights {
        return Err(Error::Invalid("layer weights do not match its shape"));
    }
    if q.bias.len() != outputs || q.requant.len() != outputs {
        return Err(Error::Invalid("layer bias or requantisation does not match its outputs"));
    }
    if !q.requant.iter().all(|r| r.is_valid()) {
        return Err(Error::Invalid("requantisation shift out of range"));
    }
    Ok(())
}

impl<'a> IntCnn<'a> {
    /// Parses and validates an artifact; the weights stay borrowed from `bytes` (flash on
    /// the firmware).
    ///
    /// # Errors
    /// Container errors, [`Error::Payload`] when the payload does not decode exactly,
    /// [`Error::Invalid`] when the layers do not chain from a 64x64 image to 4 angles.
    pub fn decode_from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let cnn: Self = container::decode(bytes, Kind::IntCnn)?;
        cnn.validate()?;
        Ok(cnn)
    }

    /// Checks that every layer is well formed and that the layers chain from the image to
    /// the angles; returns the largest activation (elements).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first problem.
    pub fn validate(&self) -> Result<usize> {
        // Current activation: elements, and its [C][H][W] shape while it is still spatial.
        let mut len = IMAGE_LEN;
        let mut shape = Some((1usize, IMAGE_SIDE, IMAGE_SIDE));
        let mut largest = len;
        let last = self.layers.len().checked_sub(1).ok_or(Error::Invalid("no layers"))?;
        for (i, layer) in self.layers.iter().enumerate() {
            let is_angles = matches!(layer, Layer::Angles(..));
            if is_angles != (i == last) {
                return Err(Error::Invalid("the angles layer must be the last, and only there"));
            }
            match layer {
                Layer::Conv2dRelu(o, q) => {
                    o.validate().map_err(|_| Error::Invalid("convolution options"))?;
                    if shape != Some((o.in_channels as usize, o.in_height as usize, o.in_width as usize)) {
                        return Err(Error::Invalid("convolution input shape does not chain"));
                    }
                    check_quantized(q, o.out_channels as usize, o.weights_len())?;
                    shape = Some((o.out_channels as usize, o.out_height(), o.out_width()));
                    len = o.output_len();
                }
                Layer::MaxPool(o) => {
                    o.validate().map_err(|_| Error::Invalid("pooling options"))?;
                    if shape != Some((o.channels as usize, o.in_height as usize, o.in_width as usize)) {
                        return Err(Error::Invalid("pooling input shape does not chain"));
                    }
                    shape = Some((o.channels as usize, o.out_height(), o.out_width()));
                    len = o.output_len();
                }
                Layer::DenseRelu(o, q) | Layer::Angles(o, q) => {
                    if o.inputs as usize != len {
                        return Err(Error::Invalid("dense input length does not chain"));
                    }
                    if is_angles && o.outputs as usize != WIRES {
                        return Err(Error::Invalid("the angles layer must have 4 outputs"));
                    }
                    check_quantized(q, o.outputs as usize, o.weights_len())?;
                    shape = None;
                    len = o.outputs as usize;
                }
            }
            largest = largest.max(len);
        }
        Ok(largest)
    }

    /// Bytes of scratch memory [`Self::run`] needs: two activation buffers and the largest
    /// zero-padded convolution input.
    pub fn scratch_len(&self) -> usize {
        2 * self.validate().unwrap_or(0) + self.padded_len()
    }

    fn padded_len(&self) -> usize {
        let padded = self.layers.iter().map(|l| match l {
            Layer::Conv2dRelu(o, _) => o.padded_len(),
            _ => 0,
        });
        padded.max().unwrap_or(0)
    }

    /// Multiply-accumulates per image (for reports).
    pub fn macs(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Conv2dRelu(o, _) => {
                    o.output_len() * o.in_channels as usize * (o.kernel as usize).pow(2)
                }
                Layer::DenseRelu(o, _) | Layer::Angles(o, _) => o.weights_len(),
                Layer::MaxPool(_) => 0,
            })
            .sum()
    }

    /// `i32` elements of every convolution's weights re-laid by [`nn::group_weights`], for
    /// [`Self::run_grouped`].
    pub fn grouped_len(&self) -> usize {
        let conv = self.layers.iter().map(|l| match l {
            Layer::Conv2dRelu(o, _) => o.grouped_weights_len(),
            _ => 0,
        });
        conv.sum()
    }

    /// Fills `grouped` (at least [`Self::grouped_len`] elements) with every convolution's
    /// weights re-laid by [`nn::group_weights`], layer after layer: what [`Self::run_grouped`]
    /// reads. Once per model, at load time.
    ///
    /// # Errors
    /// [`nn::Error::Length`] when `grouped` is too short.
    pub fn group_weights(&self, grouped: &mut [i32]) -> nn::Result<()> {
        let need = self.grouped_len();
        let found = grouped.len();
        let mut rest = grouped.get_mut(..need).ok_or(nn::Error::Length {
            buffer: "grouped weights",
            expected: need,
            found,
        })?;
        for layer in &self.layers {
            if let Layer::Conv2dRelu(o, q) = layer {
                let (this, next) = rest.split_at_mut(o.grouped_weights_len());
                nn::group_weights(o, q.weights, this)?;
                rest = next;
            }
        }
        Ok(())
    }

    /// Runs the image through the layers; `scratch` holds the activations.
    ///
    /// # Errors
    /// [`nn::Error::Length`] when `image` is not 64x64 or `scratch` is shorter than
    /// [`Self::scratch_len`]; other kernel errors only for an unvalidated network.
    pub fn run(&self, image: &[u8], scratch: &mut [u8]) -> nn::Result<[Angle; WIRES]> {
        self.run_with(image, scratch, None)
    }

    /// [`Self::run`] with the convolution weights from [`Self::group_weights`] (faster, the
    /// same integers).
    ///
    /// # Errors
    /// As [`Self::run`]; [`nn::Error::Length`] when `grouped` is shorter than
    /// [`Self::grouped_len`].
    pub fn run_grouped(
        &self,
        image: &[u8],
        scratch: &mut [u8],
        grouped: &[i32],
    ) -> nn::Result<[Angle; WIRES]> {
        self.run_with(image, scratch, Some(grouped))
    }

    fn run_with(
        &self,
        image: &[u8],
        scratch: &mut [u8],
        mut grouped: Option<&[i32]>,
    ) -> nn::Result<[Angle; WIRES]> {
        if image.len() != IMAGE_LEN {
            return Err(nn::Error::Length { buffer: "image", expected: IMAGE_LEN, found: image.len() });
        }
        let need = self.scratch_len();
        if scratch.len() < need {
            return Err(nn::Error::Length { buffer: "scratch", expected: need, found: scratch.len() });
        }
        let (activations, padded) = scratch[..need].split_at_mut(need - self.padded_len());
        let (ping, pong) = activations.split_at_mut(activations.len() / 2);
        // Where the current activation is: None the image, Some(false) ping, Some(true) pong.
        let mut current: Option<bool> = None;
        let mut len = IMAGE_LEN;
        let mut angles = [Angle(0); WIRES];
        for layer in &self.layers {
            let (src, dst): (&[u8], &mut [u8]) = match current {
                None => (image, &mut *ping),
                Some(false) => (&ping[..len], &mut *pong),
                Some(true) => (&pong[..len], &mut *ping),
            };
            len = match layer {
                Layer::Conv2dRelu(o, q) => {
                    let out = &mut dst[..o.output_len()];
                    let (bias, requant) = (|c| q.bias[c], |c| q.requant[c]);
                    match grouped {
                        Some(weights) => {
                            let need = o.grouped_weights_len();
                            let found = weights.len();
                            let (this, next) = weights.split_at_checked(need).ok_or(nn::Error::Length {
                                buffer: "grouped weights",
                                expected: need,
                                found,
                            })?;
                            nn::conv2d_relu_grouped(o, src, this, bias, requant, out, padded)?;
                            grouped = Some(next);
                        }
                        None => nn::conv2d_relu(o, src, q.weights, bias, requant, out, padded)?,
                    }
                    out.len()
                }
                Layer::MaxPool(o) => {
                    let out = &mut dst[..o.output_len()];
                    nn::max_pool(o, src, out)?;
                    out.len()
                }
                Layer::DenseRelu(o, q) => {
                    let out = &mut dst[..o.outputs as usize];
                    nn::dense_relu(o, src, q.weights, |c| q.bias[c], |c| q.requant[c], out)?;
                    out.len()
                }
                Layer::Angles(o, q) => {
                    let mut acc = [0i32; WIRES];
                    nn::dense(o, src, q.weights, |c| q.bias[c], &mut acc)?;
                    for (a, (&x, r)) in angles.iter_mut().zip(acc.iter().zip(&q.requant)) {
                        // Truncation to u32 is the wrap-around modulo 4 pi.
                        *a = Angle(r.apply_wide(x) as u32);
                    }
                    0
                }
            };
            // The output went to pong only when the input was in ping.
            current = Some(matches!(current, Some(false)));
        }
        Ok(angles)
    }

    /// Encodes into a new vector.
    #[cfg(any(test, feature = "alloc"))]
    pub fn encode_to_vec(&self) -> alloc::vec::Vec<u8> {
        container::encode_to_vec(self, Kind::IntCnn)
    }

    /// Encodes into `buf`; returns the artifact's bytes.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] when `buf` cannot hold it.
    pub fn encode_to_slice<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8]> {
        container::encode_into(self, Kind::IntCnn, buf)
    }
}
