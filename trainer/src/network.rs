//! Every network the trainer trains, behind one type: the compact models of [`crate::model`]
//! (the hybrids and the CNN baseline) and the paper's large baselines of [`crate::baselines`].

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use crate::baselines::{ResNet18, ResNet18Config, Vgg16, Vgg16Config};
use crate::model::{Model, ModelConfig};

/// A network from images to class logits: what the training loop and prediction need.
pub trait Classifier: Module {
    /// # Shapes
    /// images `[b, 1, 64, 64]` -> logits `[b, classes]`
    fn logits(&self, images: Tensor<4>) -> Tensor<2>;
}

/// Trainable scalars of `module`, as torch's `parameters()` counts them: batch norm's running
/// mean and variance are buffers, not parameters (burn's `num_params` counts them too).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    /// Counts float tensors, skipping those in fields named `running_*` (burn's `BatchNorm`).
    #[derive(Default)]
    struct Count {
        path: Vec<String>,
        scalars: usize,
    }
    impl ModuleVisitor for Count {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if !self.path.last().is_some_and(|field| field.starts_with("running_")) {
                self.scalars += param.lazy_shape().num_elements();
            }
        }
    }
    let mut count = Count::default();
    module.visit(&mut count);
    count.scalars
}

/// Which network a run trains; saved in the run's `config.json`.
#[derive(Config, Debug)]
pub enum NetworkConfig {
    Compact(ModelConfig),
    ResNet18(ResNet18Config),
    Vgg16(Vgg16Config),
}

impl From<ModelConfig> for NetworkConfig {
    fn from(config: ModelConfig) -> Self {
        Self::Compact(config)
    }
}

impl NetworkConfig {
    /// Whether a batch split across model copies gives the whole batch's gradient. Batch norm
    /// normalises over the batch it sees and dropout draws from one random stream, so ResNet-18
    /// and VGG-16 run each batch whole (their large convolutions keep the cores busy anyway).
    pub fn splits_exactly(&self) -> bool {
        matches!(self, Self::Compact(_))
    }

    pub fn init(&self, device: &Device) -> Network {
        match self {
            Self::Compact(config) => Network::Compact(config.init(device)),
            Self::ResNet18(config) => Network::ResNet18(config.init(device)),
            Self::Vgg16(config) => Network::Vgg16(config.init(device)),
        }
    }
}

#[derive(Module, Debug)]
pub enum Network {
    Compact(Model),
    ResNet18(ResNet18),
    Vgg16(Vgg16),
}

impl Network {
    /// The compact model, the one `export` and the runtimes take.
    pub fn compact(&self) -> Option<&Model> {
        match self {
            Self::Compact(model) => Some(model),
            _ => None,
        }
    }
}

impl Classifier for Network {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Compact(model) => model.logits(images),
            Self::ResNet18(model) => model.logits(images),
            Self::Vgg16(model) => model.logits(images),
        }
    }
}

/// Each network's own `forward` is its [`Classifier::logits`].
macro_rules! classifier_by_forward {
    ($($network:ty),*) => {$(
        impl Classifier for $network {
            fn logits(&self, images: Tensor<4>) -> Tensor<2> {
                self.forward(images)
            }
        }
    )*};
}
classifier_by_forward!(Model, ResNet18, Vgg16);
