//! The paper's large classical baselines, built as torchvision builds them, for 1-channel
//! 64x64 images: ResNet-18 (11,173,318 parameters with 6 classes) and VGG-16 without batch
//! norm (134,283,974).
//!
//! Layer for layer as `torchvision.models.resnet18` / `vgg16` with `in_channels = 1` and
//! `num_classes = classes`, initialised as torchvision does (Kaiming normal, fan-out, for the
//! convolutions; batch norm at 1 and 0; VGG's linear layers normal with std 0.01). burn's
//! convolution initialiser draws VGG's conv biases from the same law rather than zeroing them.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// torchvision's convolution initialiser: Kaiming normal over the fan-out, ReLU gain.
fn kaiming_fan_out() -> Initializer {
    Initializer::KaimingNormal { gain: core::f64::consts::SQRT_2, fan_out_only: true }
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel; 2])
        .with_stride([stride; 2])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(bias)
        .with_initializer(kaiming_fan_out())
        .init(device)
}

/// ResNet-18: stem (7x7/2 convolution, batch norm, ReLU, 3x3/2 max-pool), four stages of two
/// basic blocks (64, 128, 256, 512 channels; each later stage halves the side), global average
/// pool, linear 512 -> classes.
#[derive(Config, Debug)]
pub struct ResNet18Config {
    pub classes: usize,
}

impl ResNet18Config {
    pub fn init(&self, device: &Device) -> ResNet18 {
        let mut blocks = Vec::with_capacity(8);
        let mut channels = 64;
        for (stage, width) in [64, 128, 256, 512].into_iter().enumerate() {
            let stride = if stage == 0 { 1 } else { 2 };
            blocks.push(BasicBlock::new(channels, width, stride, device));
            blocks.push(BasicBlock::new(width, width, 1, device));
            channels = width;
        }
        ResNet18 {
            stem: conv([1, 64], 7, 2, 3, false, device),
            stem_norm: BatchNormConfig::new(64).init(device),
            stem_pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(channels, self.classes).init(device),
        }
    }
}

#[derive(Module, Debug)]
pub struct ResNet18 {
    pub stem: Conv2d,
    pub stem_norm: BatchNorm,
    pub stem_pool: MaxPool2d,
    pub blocks: Vec<BasicBlock>,
    pub pool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

impl ResNet18 {
    /// # Shapes
    /// images `[b, 1, 64, 64]` -> logits `[b, classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = relu(self.stem_norm.forward(self.stem.forward(images))); // [b, 64, 32, 32]
        let mut x = self.stem_pool.forward(x); // [b, 64, 16, 16]
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.pool.forward(x); // [b, 512, 1, 1]
        self.fc.forward(x.flatten(1, 3))
    }
}

/// Two 3x3 convolutions with batch norm and a residual connection; a 1x1 convolution with
/// batch norm projects the input where the block changes the width or the side.
#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub norm1: BatchNorm,
    pub conv2: Conv2d,
    pub norm2: BatchNorm,
    pub downsample: Option<Projection>,
}

/// The shortcut's 1x1 convolution and batch norm.
#[derive(Module, Debug)]
pub struct Projection {
    pub conv: Conv2d,
    pub norm: BatchNorm,
}

impl BasicBlock {
    fn new(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || channels_in != channels_out).then(|| Projection {
            conv: conv([channels_in, channels_out], 1, stride, 0, false, device),
            norm: BatchNormConfig::new(channels_out).init(device),
        });
        Self {
            conv1: conv([channels_in, channels_out], 3, stride, 1, false, device),
            norm1: BatchNormConfig::new(channels_out).init(device),
            conv2: conv([channels_out, channels_out], 3, 1, 1, false, device),
            norm2: BatchNormConfig::new(channels_out).init(device),
            downsample,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = relu(self.norm1.forward(self.conv1.forward(input.clone())));
        let x = self.norm2.forward(self.conv2.forward(x));
        let identity = match &self.downsample {
            Some(projection) => projection.norm.forward(projection.conv.forward(input)),
            None => input,
        };
        relu(x + identity)
    }
}

/// VGG-16 ("configuration D"): thirteen 3x3 convolutions with ReLU in five stages (64, 128,
/// 256, 512, 512 channels), each ending in a 2x2 max-pool; adaptive average pool to 7x7;
/// linear 25,088 -> 4,096 -> 4,096 -> classes with ReLU and dropout 0.5 between.
#[derive(Config, Debug)]
pub struct Vgg16Config {
    pub classes: usize,
    #[config(default = 0.5)]
    pub dropout: f64,
}

/// Convolutions per stage and their width.
const VGG16_STAGES: [(usize, usize); 5] = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)];

impl Vgg16Config {
    pub fn init(&self, device: &Device) -> Vgg16 {
        let mut convs = Vec::with_capacity(13);
        let mut channels = 1;
        for (count, width) in VGG16_STAGES {
            for _ in 0..count {
                convs.push(conv([channels, width], 3, 1, 1, true, device));
                channels = width;
            }
        }
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.01 })
                .init(device)
        };
        Vgg16 {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            adaptive_pool: AdaptiveAvgPool2dConfig::new([7, 7]).init(),
            fc1: linear(channels * 7 * 7, 4096),
            fc2: linear(4096, 4096),
            fc3: linear(4096, self.classes),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

#[derive(Module, Debug)]
pub struct Vgg16 {
    pub convs: Vec<Conv2d>,
    pub pool: MaxPool2d,
    pub adaptive_pool: AdaptiveAvgPool2d,
    pub fc1: Linear,
    pub fc2: Linear,
    pub fc3: Linear,
    pub dropout: Dropout,
}

impl Vgg16 {
    /// # Shapes
    /// images `[b, 1, 64, 64]` -> logits `[b, classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        let mut convs = self.convs.iter();
        for (count, _) in VGG16_STAGES {
            for conv in convs.by_ref().take(count) {
                x = relu(conv.forward(x));
            }
            x = self.pool.forward(x); // side halves: 64 -> 2 over the five stages
        }
        // torchvision pools to 7x7 whatever the input; from 2x2 that repeats each value.
        let x = self.adaptive_pool.forward(x).flatten(1, 3); // [b, 25088]
        let x = self.dropout.forward(relu(self.fc1.forward(x)));
        let x = self.dropout.forward(relu(self.fc2.forward(x)));
        self.fc3.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::trainable_params;

    #[test]
    fn resnet18_has_torchvisions_parameter_count() {
        let device = Device::flex();
        let model = ResNet18Config::new(6).init(&device);
        assert_eq!(trainable_params(&model), 11_173_318);
        assert_eq!(model.num_params(), 11_173_318 + 2 * 4_800, "burn also counts the running statistics");
        assert_eq!(model.forward(Tensor::zeros([2, 1, 64, 64], &device)).dims(), [2, 6]);
    }

    #[test]
    fn vgg16_has_torchvisions_parameter_count() {
        let device = Device::flex();
        let model = Vgg16Config::new(6).init(&device);
        assert_eq!(trainable_params(&model), 134_283_974);
        assert_eq!(model.forward(Tensor::zeros([1, 1, 64, 64], &device)).dims(), [1, 6]);
    }
}
