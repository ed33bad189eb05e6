//! The GPU path: the same training steps on burn's wgpu backend and on the CPU backend give the
//! same losses and gradients, and `trainer predict --device wgpu` gives the committed model's
//! answer. Built only with `--features wgpu` (`required-features`); needs a GPU adapter (CI:
//! Mesa's lavapipe, a Vulkan driver that runs on the CPU, selected by `cargo xtask gpu`).
//!
//! Tolerances: both backends compute in f32, with different summation orders and
//! transcendental functions: losses must agree to 1e-4 relative, first-step gradients to 1e-3
//! of the largest gradient of their parameter, later ones to 2e-2.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use trainer::data::{self, Images};
use trainer::model::{Model, ModelConfig};

/// Loss: relative difference allowed between the backends.
const LOSS_TOLERANCE: f64 = 1e-4;
/// Gradient of the first step (the same weights on both): difference allowed, relative to the
/// largest magnitude in the same parameter.
const GRADIENT_TOLERANCE: f32 = 1e-3;
/// The same after Adam steps taken on each backend (see the test).
const LATER_GRADIENT_TOLERANCE: f32 = 2e-2;
/// Training steps compared.
const STEPS: usize = 4;

mod common;

/// `STEPS` Adam steps on `device` from `model`: each step's loss and gradients.
fn train_steps(
    model: Model,
    device: &Device,
    images: &Images,
    batches: &[&[usize]],
) -> Vec<(f64, Vec<Vec<f32>>)> {
    // `fork`, not `to_device`: the copy is a leaf of its own autodiff graph, so it trains.
    let mut model = model.fork(device);
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut out = Vec::new();
    for indices in batches {
        let batch = data::batch(images, indices, device);
        let loss = loss_fn.forward(model.forward(batch.images), batch.labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        out.push((f64::from(loss.into_scalar::<f32>()), common::gradient_values(&model, &grads)));
        model = optimizer.step(1e-3, model, grads);
    }
    out
}

#[test]
fn wgpu_training_steps_match_the_cpu_backend() {
    let (listing, split) = common::split(24);
    let data::SplitImages { images, train, .. } =
        data::decode_split(&listing, &split.train, &[]).expect("decode");
    let batches: Vec<&[usize]> = train.chunks(32).take(STEPS).collect();
    assert_eq!(batches.len(), STEPS);

    let cpu = Device::flex().autodiff();
    cpu.seed(5);
    let model = ModelConfig::hybrid(listing.classes.len()).init(&cpu);
    let gpu = Device::wgpu(Default::default()).autodiff();
    let want = train_steps(model.clone(), &cpu, &images, &batches);
    let got = train_steps(model, &gpu, &images, &batches);

    for (step, ((want_loss, want_grads), (got_loss, got_grads))) in want.iter().zip(&got).enumerate() {
        let relative = (want_loss - got_loss).abs() / want_loss.abs();
        assert_eq!(want_grads.len(), got_grads.len());
        let worst = want_grads
            .iter()
            .zip(got_grads)
            .map(|(w, g)| {
                let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
                w.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max) / scale
            })
            .fold(0.0f32, f32::max);
        eprintln!(
            "step {step}: loss cpu {want_loss:.7} wgpu {got_loss:.7} (relative {relative:.1e}); gradients differ by {worst:.1e} of their largest"
        );
        assert!(relative < LOSS_TOLERANCE, "step {step}: loss {got_loss} on wgpu, {want_loss} on the CPU");
        // From the same weights the gradients differ only by rounding; each Adam step then moves
        // weights whose gradient is near zero by about the learning rate, in a direction the
        // rounding decides, so later steps start from slightly different weights.
        let tolerance = if step == 0 { GRADIENT_TOLERANCE } else { LATER_GRADIENT_TOLERANCE };
        assert!(
            worst < tolerance,
            "step {step}: gradients differ by {worst:e} of their largest (limit {tolerance})"
        );
    }
}

#[test]
fn predict_runs_on_wgpu() {
    let image = common::data_dir().join("Hand/000000.jpeg");
    let run = |device: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["predict", "--device", device])
            .arg(&image)
            .output()
            .expect("trainer runs");
        assert!(out.status.success(), "predict --device {device}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let (cpu, gpu) = (run("cpu"), run("wgpu"));
    assert!(gpu.contains(": Hand ("), "{gpu}");
    // Probabilities are printed to 4 decimals in percent; both backends must print the same.
    assert_eq!(cpu, gpu, "the same prediction on both devices");
}
