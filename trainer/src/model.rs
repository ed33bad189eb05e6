//! The hybrid model (CNN encoder -> 4 angles -> 4-qubit circuit -> linear 4 -> 6) and the
//! classical CNN baseline, built from one configuration type.
//!
//! The encoder uses only conv / relu / maxpool / linear, so it exports to ONNX as is and
//! quantizes to int8 for the microcontroller without folding anything.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::circuit::Circuit;
use crate::data::IMAGE_SIDE;
use crate::fused;

/// Which network to train.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// CNN -> 4 angles -> 4-qubit circuit -> linear 4 -> classes (<= 40,000 parameters).
    Hybrid,
    /// Classical CNN baseline of about 0.5 M parameters (the paper's Table I).
    Cnn,
}

/// One convolution, ReLU, then an optional max-pool.
#[derive(Config, Debug)]
pub struct ConvBlockConfig {
    pub channels_out: usize,
    pub kernel: usize,
    #[config(default = 1)]
    pub stride: usize,
    #[config(default = 0)]
    pub padding: usize,
    /// Max-pool window and stride after the ReLU (1 = none).
    #[config(default = 1)]
    pub pool: usize,
}

/// The whole model.
#[derive(Config, Debug)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub classes: usize,
    pub blocks: Vec<ConvBlockConfig>,
    /// Width of the encoder's output: 4 angles for the hybrid, the hidden layer for the CNN.
    pub encoder_out: usize,
    /// Entangling layers of the circuit (hybrid only).
    #[config(default = 4)]
    pub circuit_layers: usize,
}

impl ModelConfig {
    /// The default hybrid: conv 6x6/4 (8) -> conv 3x3/2 (16) -> conv 3x3 (32) + max-pool 2 ->
    /// linear 512 -> 4. The first convolution takes 64x64 to 16x16 at once and the second
    /// halves again, so no layer runs at full resolution: that is what makes it fast on 2 cores
    /// (`benches/epoch.rs` compares the alternatives) and on a microcontroller. Medical MNIST's
    /// classes differ in coarse structure, so little is lost.
    pub fn hybrid(classes: usize) -> Self {
        let blocks = vec![
            ConvBlockConfig::new(8, 6).with_stride(4).with_padding(1),
            ConvBlockConfig::new(16, 3).with_stride(2).with_padding(1),
            ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
        ];
        Self::new(ModelKind::Hybrid, classes, blocks, 4)
    }

    /// The classical baseline: three 3x3 conv + pool stages and a 128-unit hidden layer.
    pub fn cnn(classes: usize) -> Self {
        let blocks = vec![
            ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
            ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ConvBlockConfig::new(64, 3).with_padding(1).with_pool(2),
        ];
        Self::new(ModelKind::Cnn, classes, blocks, 112)
    }

    /// The hybrid of the paper this project follows, as its PennyLane + torch code builds it:
    /// conv 3x3 (16) + max-pool 2 -> conv 3x3 (32) + max-pool 2 -> linear 8,192 -> 4, the
    /// 4-layer circuit, linear 4 -> 6: 37,650 parameters, most of them in the linear layer.
    pub fn hybrid_paper(classes: usize) -> Self {
        let blocks = vec![
            ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
            ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
        ];
        Self::new(ModelKind::Hybrid, classes, blocks, 4)
    }

    pub fn init(&self, device: &Device) -> Model {
        let mut channels = 1;
        let mut side = IMAGE_SIDE;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let pad = block.padding;
            let conv = Conv2dConfig::new([channels, block.channels_out], [block.kernel; 2])
                .with_stride([block.stride; 2])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init(device);
            let pool = (block.pool > 1).then(|| MaxPool2dConfig::new([block.pool; 2]).init());
            blocks.push(ConvBlock { conv, pool });
            channels = block.channels_out;
            side = ((side + 2 * pad - block.kernel) / block.stride + 1) / block.pool;
        }
        let encoder =
            Encoder { blocks, fc: LinearConfig::new(channels * side * side, self.encoder_out).init(device) };
        let circuit = (self.kind == ModelKind::Hybrid).then(|| Circuit::new(self.circuit_layers, device));
        let head = LinearConfig::new(self.encoder_out, self.classes).init(device);
        Model { encoder, circuit, head }
    }
}

#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub pool: Option<MaxPool2d>,
}

impl ConvBlock {
    /// `pool(relu(conv(x)))`: one fused operation on the CPU ([`crate::fused::conv_block`]),
    /// burn's three elsewhere.
    ///
    /// # Shapes
    /// `[b, in, h, w]` -> `[b, out, h' / p, w' / p]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        fused::conv_block(&x, &self.conv, self.pool.as_ref()).unwrap_or_else(|| self.composed(x))
    }

    /// The same from burn's operations.
    pub fn composed(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.conv.forward(x)); // [b, out, h', w']
        match &self.pool {
            Some(pool) => pool.forward(x), // [b, out, h' / p, w' / p]
            None => x,
        }
    }
}

/// The convolutional part: image -> angles (hybrid) or hidden features (CNN). This is what the
/// ONNX file holds.
#[derive(Module, Debug)]
pub struct Encoder {
    pub blocks: Vec<ConvBlock>,
    pub fc: Linear,
}

impl Encoder {
    /// # Shapes
    /// images `[b, 1, 64, 64]` -> `[b, encoder_out]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.features(images)) // [b, encoder_out]
    }

    /// The blocks' output, flattened: what the last linear layer takes.
    ///
    /// # Shapes
    /// images `[b, 1, 64, 64]` -> `[b, c * h * w]`
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for block in &self.blocks {
            x = block.forward(x); // [b, c, h / p, w / p]
        }
        x.flatten(1, 3)
    }
}

#[derive(Module, Debug)]
pub struct Model {
    pub encoder: Encoder,
    /// Present in the hybrid; the CNN baseline has a ReLU there instead.
    pub circuit: Option<Circuit>,
    pub head: Linear,
}

impl Model {
    /// # Shapes
    /// images `[b, 1, 64, 64]` -> logits `[b, classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let features = self.encoder.features(images); // [b, n]
        let head = |circuit| fused::hybrid_head(&features, &self.encoder.fc, circuit, &self.head);
        let fused = self.circuit.as_ref().and_then(head);
        fused.unwrap_or_else(|| self.composed_head(features)) // [b, classes]
    }

    /// From the encoder's flattened features to the logits by each module's own forward pass:
    /// what [`crate::fused::hybrid_head`] computes as one operation.
    ///
    /// # Shapes
    /// features `[b, n]` -> logits `[b, classes]`
    fn composed_head(&self, features: Tensor<2>) -> Tensor<2> {
        let features = self.encoder.fc.forward(features); // [b, encoder_out]
        let features = match &self.circuit {
            Some(circuit) => circuit.forward(features), // [b, 4] expectation values
            None => relu(features),
        };
        self.head.forward(features) // [b, classes]
    }

    /// Number of trainable scalars.
    pub fn param_count(&self) -> usize {
        self.num_params()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hybrid_fits_the_parameter_budget() {
        let model = ModelConfig::hybrid(6).init(&Device::flex());
        assert!(model.param_count() <= 40_000, "{} parameters", model.param_count());
        let logits = model.forward(Tensor::zeros([2, 1, 64, 64], &Device::flex()));
        assert_eq!(logits.dims(), [2, 6]);
    }

    #[test]
    fn paper_hybrid_has_the_papers_parameter_count() {
        let model = ModelConfig::hybrid_paper(6).init(&Device::flex());
        assert_eq!(model.param_count(), 37_650);
        assert_eq!(model.forward(Tensor::zeros([1, 1, 64, 64], &Device::flex())).dims(), [1, 6]);
    }

    #[test]
    fn cnn_baseline_is_about_half_a_million_parameters() {
        let model = ModelConfig::cnn(6).init(&Device::flex());
        assert!((400_000..600_000).contains(&model.param_count()), "{} parameters", model.param_count());
    }
}
