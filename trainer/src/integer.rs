//! The model in the `shared::model` formats the runtimes load: the circuit and head
//! (`quantum-head.qmed`, f32 and fixed point) and the encoder quantised to int8
//! (`cnn-int8.qmed`), calibrated on training images; plus the integer model's own accuracy.

use burn::tensor::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use shared::model::{FixedClassifier, FloatCnn, FloatLayer, QuantizedCnn, QuantumHead, CLASSES};
use shared::nn::{Conv2dOptions, DenseOptions, MaxPoolOptions};
use shared::quantum::{Ansatz, LayerWeights, WIRES};

use crate::data::{Images, IMAGE_SIDE};
use crate::model::{Model, ModelConfig};

/// Why the model could not be put in the integer formats.
#[derive(Debug, thiserror::Error)]
pub enum IntegerError {
    #[error("the model has no quantum circuit (a --model cnn run): only the hybrid exports")]
    NotHybrid,
    #[error("layer {layer}: {what} does not fit the integer format (at most 65,535 per dimension, 255 per kernel)")]
    Shape { layer: usize, what: &'static str },
    #[error("integer model: {0}")]
    Model(#[from] shared::model::Error),
    #[error("integer inference: {0}")]
    Kernel(#[from] shared::nn::Error),
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

/// The circuit and head of a hybrid as the `shared` artifact.
///
/// # Errors
/// [`IntegerError::NotHybrid`] for the CNN baseline; [`IntegerError::Model`] for parameters
/// the format cannot hold.
pub fn quantum_head(model: &Model) -> Result<QuantumHead, IntegerError> {
    let circuit = model.circuit.as_ref().ok_or(IntegerError::NotHybrid)?;
    let weights: Vec<LayerWeights<f32>> = values(circuit.weights.val())
        .chunks_exact(WIRES * 3)
        .map(|layer| std::array::from_fn(|w| std::array::from_fn(|k| layer[w * 3 + k])))
        .collect();
    // burn's Linear stores [inputs, outputs] (y = x W + b); the head wants one row per class.
    let w = values(model.head.weight.val().transpose());
    let b = model.head.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; CLASSES]);
    if w.len() != CLASSES * WIRES || b.len() != CLASSES {
        return Err(IntegerError::Shape { layer: 0, what: "the head" });
    }
    let head_weight = std::array::from_fn(|j| std::array::from_fn(|i| w[j * WIRES + i]));
    let head_bias = std::array::from_fn(|j| b[j]);
    let ansatz =
        Ansatz::new(circuit.layers()).map_err(|_| IntegerError::Shape { layer: 0, what: "the circuit" })?;
    Ok(QuantumHead::new(&ansatz, &weights, head_weight, head_bias)?)
}

/// The encoder in the integer CNN's layouts (conv weights `[O][C][K][K]` as burn stores them,
/// dense weights transposed to `[O][I]`).
///
/// # Errors
/// [`IntegerError::Shape`] for a dimension the format cannot hold.
pub fn float_encoder(model: &Model, config: &ModelConfig) -> Result<FloatCnn, IntegerError> {
    let narrow = |v: usize, layer, what| u16::try_from(v).map_err(|_| IntegerError::Shape { layer, what });
    let small = |v: usize, layer, what| u8::try_from(v).map_err(|_| IntegerError::Shape { layer, what });
    let mut layers = Vec::new();
    let (mut channels, mut side) = (1usize, IMAGE_SIDE);
    for (i, (block, spec)) in model.encoder.blocks.iter().zip(&config.blocks).enumerate() {
        let weight = block.conv.weight.val();
        let [out, _, kernel, _] = weight.dims();
        let options = Conv2dOptions {
            in_channels: narrow(channels, i, "input channels")?,
            out_channels: narrow(out, i, "output channels")?,
            in_height: narrow(side, i, "input side")?,
            in_width: narrow(side, i, "input side")?,
            kernel: small(kernel, i, "kernel")?,
            stride: small(spec.stride, i, "stride")?,
            padding: small(spec.padding, i, "padding")?,
        };
        let bias = block.conv.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; out]);
        layers.push(FloatLayer::Conv2dRelu { options, weights: values(weight), bias });
        (channels, side) = (out, options.out_height());
        if block.pool.is_some() {
            let pool = small(spec.pool, i, "pool")?;
            let options = MaxPoolOptions {
                channels: narrow(channels, i, "channels")?,
                in_height: narrow(side, i, "input side")?,
                in_width: narrow(side, i, "input side")?,
                kernel: pool,
                stride: pool,
            };
            layers.push(FloatLayer::MaxPool(options));
            side = options.out_height();
        }
    }
    let fc = &model.encoder.fc;
    let weights = values(fc.weight.val().transpose());
    let [inputs, outputs] = fc.weight.val().dims();
    let options = DenseOptions {
        inputs: narrow(inputs, layers.len(), "dense inputs")?,
        outputs: narrow(outputs, layers.len(), "dense outputs")?,
    };
    let bias = fc.bias.as_ref().map(|b| values(b.val())).unwrap_or_else(|| vec![0.0; outputs]);
    layers.push(FloatLayer::Angles { options, weights, bias });
    Ok(FloatCnn { layers })
}

/// Quantises the encoder, calibrating activation ranges on `calibration`.
///
/// # Errors
/// [`IntegerError::Model`] when the network does not quantise into a valid integer CNN.
pub fn quantize_encoder(
    encoder: &FloatCnn,
    images: &Images,
    calibration: &[usize],
) -> Result<QuantizedCnn, IntegerError> {
    let pixels: Vec<&[u8]> = calibration.iter().map(|&i| images.image(i)).collect();
    Ok(encoder.quantize(&pixels)?)
}

/// How the integer model does on a set of images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FixedReport {
    pub images: usize,
    /// Accuracy of the integer model (what the firmware answers).
    pub accuracy: f64,
    /// Share of images where the integer model predicts what the f32 model predicts.
    pub agreement_with_f32: f64,
}

/// Classifies the images `indices` with the integer model and compares with their labels and
/// with the f32 model's predictions (one per index, in order).
///
/// # Errors
/// [`IntegerError::Kernel`] for an image that is not 64x64 (none are, after decoding).
pub fn evaluate_fixed(
    classifier: &FixedClassifier<'_>,
    images: &Images,
    indices: &[usize],
    f32_predictions: &[usize],
) -> Result<FixedReport, IntegerError> {
    let classes: Vec<usize> = indices
        .par_iter()
        .map_init(
            || vec![0u8; classifier.scratch_len()],
            |scratch, &i| classifier.classify(images.image(i), scratch).map(|p| usize::from(p.class)),
        )
        .collect::<Result<_, _>>()?;
    let n = indices.len().max(1) as f64;
    let correct = classes.iter().zip(indices).filter(|(c, &i)| **c == usize::from(images.labels[i])).count();
    let agree = classes.iter().zip(f32_predictions).filter(|(c, f)| c == f).count();
    Ok(FixedReport {
        images: indices.len(),
        accuracy: correct as f64 / n,
        agreement_with_f32: agree as f64 / n,
    })
}
