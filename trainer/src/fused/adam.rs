//! Adam with each parameter tensor's step as one operation on the CPU: the arithmetic of
//! burn's `Adam` (default betas and epsilon, no weight decay), operation for operation in
//! `f32`, so the same values to the bit; burn's takes about a dozen tensor operations per
//! parameter and step. Its state is burn's `AdamState`, so checkpoints are burn's too.

use burn::optim::{Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

/// burn's `AdamConfig` defaults.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

/// One step's scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamScalars {
    pub learning_rate: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    /// `epsilon * sqrt(1 - beta_2^t)`, as burn adds it to the root of the second moment.
    pub epsilon: f32,
    /// `sqrt(1 - beta_2^t) / (1 - beta_1^t)`.
    pub correction: f32,
    /// The first step: the moments start from the gradient alone.
    pub first: bool,
}

impl AdamScalars {
    /// The scalars of step `time` (1 for the first) at `learning_rate`, computed as burn's
    /// `Adam` computes them.
    pub fn new(learning_rate: LearningRate, time: usize) -> Self {
        let time_i32 = i32::try_from(time).unwrap_or(i32::MAX);
        let correction_2 = (1.0 - BETA_2.powi(time_i32)).sqrt();
        Self {
            learning_rate: learning_rate as f32,
            beta_1: BETA_1,
            beta_2: BETA_2,
            epsilon: EPSILON * correction_2,
            correction: correction_2 / (1.0 - BETA_1.powi(time_i32)),
            first: time == 1,
        }
    }
}

/// The updated parameter and moments, element by element as burn's `Adam`. The moments are
/// not read on the first step (they may be empty then).
pub fn step(
    param: &[f32],
    grad: &[f32],
    moment_1: &[f32],
    moment_2: &[f32],
    s: &AdamScalars,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (factor_1, factor_2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let (m1, m2): (Vec<f32>, Vec<f32>) = if s.first {
        grad.iter().map(|&g| (g * factor_1, (g * g) * factor_2)).unzip()
    } else {
        let moments = grad.iter().zip(moment_1).zip(moment_2);
        moments
            .map(|((&g, &m1), &m2)| (m1 * s.beta_1 + g * factor_1, m2 * s.beta_2 + (g * g) * factor_2))
            .unzip()
    };
    let updated = param
        .iter()
        .zip(&m1)
        .zip(&m2)
        .map(|((&p, &m1), &m2)| p - ((m1 * s.correction) / (m2.sqrt() + s.epsilon)) * s.learning_rate)
        .collect();
    (updated, m1, m2)
}

/// Adam as [`AdamConfig::new`] builds it, each parameter's step one fused operation where the
/// fused kernels run ([`super::runs_on`]) and burn's `Adam` elsewhere.
#[derive(Clone)]
pub struct FusedAdam {
    elsewhere: Adam,
}

impl Default for FusedAdam {
    fn default() -> Self {
        Self { elsewhere: AdamConfig::new().build() }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        #[cfg(feature = "flex")]
        if super::runs_on(&tensor.device()) {
            return fused_step(lr, tensor, grad, state);
        }
        self.elsewhere.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}

/// [`FusedAdam`]'s step on flex: one [`super::backend::adam_step`].
#[cfg(feature = "flex")]
fn fused_step<const D: usize>(
    lr: LearningRate,
    tensor: Tensor<D>,
    grad: Tensor<D>,
    state: Option<AdamState<D>>,
) -> (Tensor<D>, Option<AdamState<D>>) {
    let (time, moment_1, moment_2) = match state {
        Some(AdamState { momentum }) => (momentum.time + 1, momentum.moment_1, momentum.moment_2),
        // Not read on the first step.
        None => (1, tensor.clone(), tensor.clone()),
    };
    let scalars = AdamScalars::new(lr, time);
    let (tensor, moment_1, moment_2) = super::backend::adam_step(tensor, grad, moment_1, moment_2, scalars);
    (tensor, Some(AdamState::new(AdaptiveMomentumState::new(time, moment_1, moment_2))))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{GradientsParams, ModuleOptimizer};
    use burn::tensor::Distribution;

    use super::*;

    fn values(linear: &Linear) -> Vec<f32> {
        let bias = linear.bias.as_ref().expect("bias").val();
        [linear.weight.val().flatten::<1>(0, 1), bias]
            .into_iter()
            .flat_map(|t| t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap())
            .collect()
    }

    /// Steps of the fused Adam and burn's give the same parameters to the bit, and a state
    /// recorded by burn's continues in the fused one (checkpoints written before it load).
    #[test]
    fn steps_equal_burns_adam_to_the_bit_and_take_over_its_state() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let start = LinearConfig::new(7, 3).init(&device);
        let mut fused = ModuleOptimizer::from(FusedAdam::default());
        let mut burns = AdamConfig::new().init();
        let initial = values(&start);
        let (mut a, mut b) = (start.clone(), start);
        let grads = |model: &Linear, x: Tensor<2>| {
            GradientsParams::from_grads(model.forward(x).powf_scalar(2.0).sum().backward(), model)
        };
        for step in 0..6 {
            if step == 3 {
                fused = fused.load_record(burns.to_record());
                a = a.fork(&device);
            }
            let x = Tensor::<2>::random([4, 7], Distribution::Normal(0.0, 1.0), &device);
            let lr = 1e-2 / (step + 1) as f64;
            a = fused.step(lr, a.clone(), grads(&a, x.clone()));
            b = burns.step(lr, b.clone(), grads(&b, x));
            assert_eq!(values(&a), values(&b), "after step {step}");
        }
        assert!(values(&a).iter().zip(&initial).all(|(now, before)| now != before), "every parameter moved");
    }
}
