//! Where a training epoch's time goes, per encoder design: batching, forward, backward and
//! optimizer of one whole batch on one model copy (on the CPU the fused blocks and circuit of
//! `trainer::fused` run it on the calling thread, burn's other operations spread it over the
//! threads), then the trainer's own step (`training::batch_gradients`, the batch split across
//! one model copy per thread), the epoch time it gives, the floating-point rate it reaches
//! (to set against the cores' peak) and one thread's part of the batch stepped alone (what the
//! trainer step would be if the threads did not slow each other); then each fused convolution
//! block alone, and the circuit alone. The paper's ResNet-18 and VGG-16 run whole batches
//! (batch norm, dropout), so their trainer step is the whole-batch step, timed over fewer
//! steps.
//! Prints a table; `cargo bench -p trainer --bench epoch`.
//!
//! Uses synthetic images (timings do not depend on pixel values), so it runs without the data
//! set. `BENCH_THREADS` fixes the rayon pool size (default: all cores); `BENCH_FILTER` keeps
//! the designs whose name contains it or one of its comma-separated parts (`hybrid,cnn`);
//! `BENCH_BATCH` changes the batch size (default 32); `BENCH_SECONDS` the least time the
//! trainer step is timed over (default 3, as `race.py` times torch: on a shared machine a
//! fraction of a second catches one burst of someone else's load).

use std::hint::black_box;
use std::time::{Duration, Instant};

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use trainer::baselines::{ResNet18Config, Vgg16Config};
use trainer::circuit::Circuit;
use trainer::data::{self, Images, IMAGE_PIXELS};
use trainer::fused::conv::{self, BlockShape, ConvGeometry};
use trainer::model::{ConvBlockConfig, ModelConfig, ModelKind};
use trainer::network::{trainable_params, Classifier, NetworkConfig};
use trainer::training;

/// Training images per epoch on split-seed0.
const EPOCH_IMAGES: usize = 47_163;
const STEPS: usize = 60;
const WARMUP: usize = 10;
/// Steps and warm-up steps for networks of over a million parameters (seconds per step).
const LARGE_STEPS: usize = 4;
const LARGE_WARMUP: usize = 1;
/// Runs of each fused block alone, of which the median is reported.
const BLOCK_RUNS: usize = 1_000;

fn main() {
    if let Some(threads) = std::env::var("BENCH_THREADS").ok().and_then(|t| t.parse().ok()) {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().expect("rayon pool");
    }
    let batch_size = std::env::var("BENCH_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(32);
    let device = Device::flex().autodiff();
    let images = synthetic_images(batch_size * 8);
    let threads = rayon::current_num_threads();
    let least = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    println!(
        "threads {threads}, batch {batch_size}, {STEPS} steps after {WARMUP} warm-up ({LARGE_STEPS} after \
         {LARGE_WARMUP} over a million parameters); trainer step: the mean over at least {STEPS} steps and \
         {least:.1} s"
    );
    println!(
        "{:<38} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>12} {:>9} {:>8} {:>10}",
        "design",
        "params",
        "batch",
        "fwd",
        "bwd",
        "optim",
        "step",
        "trainer step",
        "s/epoch",
        "GFLOP/s",
        "part alone"
    );
    let filter = std::env::var("BENCH_FILTER").unwrap_or_default();
    let wanted = |name: &str| filter.split(',').any(|part| name.contains(part));
    let least = Duration::from_secs_f64(least);
    for (name, config) in designs().into_iter().filter(|(name, _)| wanted(name)) {
        let timing = time_phases(&config, &images, batch_size, &device);
        let step = if config.splits_exactly() {
            time_trainer_steps(&config, &images, batch_size, threads, least, &device)
        } else {
            timing.step() // the trainer runs the whole batch on one copy, as timed
        };
        // One thread's share of the batch through the same step on its own: what the trainer
        // step would take if the threads' parts did not slow each other.
        let part = if config.splits_exactly() && threads > 1 {
            let share = batch_size.div_ceil(threads);
            format!("{:.2}ms", ms(time_trainer_steps(&config, &images, share, 1, least, &device)))
        } else {
            "-".into()
        };
        println!(
            "{name:<38} {:>7} {:>6.2}ms {:>6.2}ms {:>6.2}ms {:>6.2}ms {:>6.2}ms {:>10.2}ms {:>9.1} {:>8.1} {part:>10}",
            timing.params,
            ms(timing.batch),
            ms(timing.forward),
            ms(timing.backward),
            ms(timing.optimizer),
            ms(timing.step()),
            ms(step),
            step.as_secs_f64() * (EPOCH_IMAGES as f64 / batch_size as f64),
            step_flops(&config) * batch_size as f64 / step.as_secs_f64() / 1e9
        );
    }
    let share = batch_size.div_ceil(threads);
    for (name, config) in designs().into_iter().filter(|(name, _)| wanted(name)) {
        if let NetworkConfig::Compact(config) = config {
            let blocks = time_blocks(&config, share).into_iter().map(|(forward, backward)| {
                format!("{:.0} + {:.0}", forward.as_secs_f64() * 1e6, backward.as_secs_f64() * 1e6)
            });
            let blocks = blocks.collect::<Vec<_>>().join(", ");
            println!("{name}: fused blocks alone, {share} images, forward + backward µs (median of {BLOCK_RUNS}): {blocks}");
        }
    }
    let circuit = time_circuit(batch_size, &device);
    println!("circuit alone (4 layers, batch {batch_size}), forward + backward: {:.3} ms", ms(circuit));
}

fn designs() -> Vec<(&'static str, NetworkConfig)> {
    let hybrid = |blocks| ModelConfig::new(ModelKind::Hybrid, 6, blocks, 4);
    let compact: Vec<(&str, ModelConfig)> = vec![
        ("hybrid (default): k6s4 8 | s2 16 | 32p", ModelConfig::hybrid(6)),
        ("hybrid-paper: 16p | 32p (full res)", ModelConfig::hybrid_paper(6)),
        (
            "spike: 8p | 16p | 32p (full res)",
            hybrid(vec![
                ConvBlockConfig::new(8, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s2 8p | 16p | 32p",
            hybrid(vec![
                ConvBlockConfig::new(8, 3).with_stride(2).with_padding(1).with_pool(2),
                ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s4 8 | 16p | 32p",
            hybrid(vec![
                ConvBlockConfig::new(8, 4).with_stride(4),
                ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s4 8 | 16p | 16p",
            hybrid(vec![
                ConvBlockConfig::new(8, 4).with_stride(4),
                ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s4 16 | s2 32 | 32p",
            hybrid(vec![
                ConvBlockConfig::new(16, 4).with_stride(4),
                ConvBlockConfig::new(32, 3).with_stride(2).with_padding(1),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s4 8 | s2 16 | 32p (4x4 first conv)",
            hybrid(vec![
                ConvBlockConfig::new(8, 4).with_stride(4),
                ConvBlockConfig::new(16, 3).with_stride(2).with_padding(1),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s4 16 | 32p | 32p",
            hybrid(vec![
                ConvBlockConfig::new(16, 4).with_stride(4),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(32, 3).with_padding(1).with_pool(2),
            ]),
        ),
        (
            "s4 8 | 8p | 16p",
            hybrid(vec![
                ConvBlockConfig::new(8, 4).with_stride(4),
                ConvBlockConfig::new(8, 3).with_padding(1).with_pool(2),
                ConvBlockConfig::new(16, 3).with_padding(1).with_pool(2),
            ]),
        ),
        ("cnn baseline", ModelConfig::cnn(6)),
    ];
    let mut designs: Vec<(&str, NetworkConfig)> = compact.into_iter().map(|(n, c)| (n, c.into())).collect();
    designs.push(("resnet18", NetworkConfig::ResNet18(ResNet18Config::new(6))));
    designs.push(("vgg16", NetworkConfig::Vgg16(Vgg16Config::new(6))));
    designs
}

/// Floating-point operations (a multiply-add is two) of one training step per image: the
/// forward pass, the weight gradients, and the input gradients of every layer but the first
/// (images need none). Convolutions and linear layers only; the rest is under 1 %. The dense
/// products' count: where `fused::channels_last` runs a pooled block, its gradients take a
/// quarter of that (the 2 x 2 windows' winners only) and its Winograd forward pass 16
/// multiplies where this counts 36, so the rate is dense-equivalent there.
fn step_flops(config: &NetworkConfig) -> f64 {
    let config = match config {
        NetworkConfig::Compact(config) => config,
        NetworkConfig::ResNet18(_) => return resnet18_step_flops(),
        NetworkConfig::Vgg16(_) => return vgg16_step_flops(),
    };
    let (mut side, mut channels, mut first, mut forward) = (64, 1, None, 0);
    for block in &config.blocks {
        let out = (side + 2 * block.padding - block.kernel) / block.stride + 1;
        let macs = out * out * block.channels_out * channels * block.kernel * block.kernel;
        first.get_or_insert(macs);
        forward += macs;
        (side, channels) = (out / block.pool, block.channels_out);
    }
    forward += side * side * channels * config.encoder_out + config.encoder_out * config.classes;
    2.0 * (3 * forward - first.unwrap_or(0)) as f64
}

/// Multiply-adds of a convolution with a square `side` x `side` output.
fn conv_macs(side: usize, channels_in: usize, channels_out: usize, kernel: usize) -> usize {
    side * side * channels_in * channels_out * kernel * kernel
}

/// [`step_flops`] of ResNet-18 at 64x64: stem to 32x32, max-pool to 16x16, stages at 16, 8, 4
/// and 2 (each later stage's first convolution strided, with a 1x1 projection).
fn resnet18_step_flops() -> f64 {
    let stem = conv_macs(32, 1, 64, 7);
    let mut forward = stem;
    let mut channels = 64;
    for (stage, width) in [64, 128, 256, 512].into_iter().enumerate() {
        let side = 16 >> stage;
        forward += conv_macs(side, channels, width, 3) + 3 * conv_macs(side, width, width, 3);
        if stage > 0 {
            forward += conv_macs(side, channels, width, 1);
        }
        channels = width;
    }
    forward += 512 * 6;
    2.0 * (3 * forward - stem) as f64
}

/// [`step_flops`] of VGG-16 at 64x64: five stages at 64, 32, 16, 8 and 4, then 25,088 ->
/// 4,096 -> 4,096 -> 6.
fn vgg16_step_flops() -> f64 {
    let first = conv_macs(64, 1, 64, 3);
    let mut forward = 0;
    let mut channels = 1;
    for (stage, (count, width)) in [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)].into_iter().enumerate() {
        for _ in 0..count {
            forward += conv_macs(64 >> stage, channels, width, 3);
            channels = width;
        }
    }
    forward += 25_088 * 4096 + 4096 * 4096 + 4096 * 6;
    2.0 * (3 * forward - first) as f64
}

/// Timed and warm-up steps for a network of `params` parameters.
fn steps_for(params: usize) -> (usize, usize) {
    if params > 1_000_000 {
        (LARGE_STEPS, LARGE_WARMUP)
    } else {
        (STEPS, WARMUP)
    }
}

struct Timing {
    params: usize,
    batch: Duration,
    forward: Duration,
    backward: Duration,
    optimizer: Duration,
}

impl Timing {
    fn step(&self) -> Duration {
        self.batch + self.forward + self.backward + self.optimizer
    }
}

/// Each phase of a step on the whole batch, one model.
fn time_phases(config: &NetworkConfig, images: &Images, batch_size: usize, device: &Device) -> Timing {
    let mut model = config.init(device);
    let params = trainable_params(&model);
    let (steps, warmup) = steps_for(params);
    let mut optimizer = training::optimizer();
    let mut timing = Timing {
        params,
        batch: Duration::ZERO,
        forward: Duration::ZERO,
        backward: Duration::ZERO,
        optimizer: Duration::ZERO,
    };
    let indices: Vec<usize> = (0..images.len()).collect();
    for step in 0..warmup + steps {
        let chunk = &indices[(step * batch_size) % images.len()..][..batch_size];
        let t0 = Instant::now();
        let batch = data::batch(images, chunk, device);
        let t1 = Instant::now();
        let loss = training::cross_entropy(model.logits(batch.images), batch.labels, &batch.classes);
        // flex runs eagerly, but read a value so nothing is deferred into the next phase.
        let loss_value = loss.clone().into_scalar::<f32>();
        let t2 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t3 = Instant::now();
        model = optimizer.step(1e-3, model, grads);
        black_box(loss_value);
        let t4 = Instant::now();
        if step >= warmup {
            timing.batch += t1 - t0;
            timing.forward += t2 - t1;
            timing.backward += t3 - t2;
            timing.optimizer += t4 - t3;
        }
    }
    let per_step = |d: Duration| d / steps as u32;
    Timing {
        params,
        batch: per_step(timing.batch),
        forward: per_step(timing.forward),
        backward: per_step(timing.backward),
        optimizer: per_step(timing.optimizer),
    }
}

/// The trainer's step: `batch_gradients` with one replica per thread, then Adam, on one of
/// rayon's threads as `training::train` runs it; the mean over at least [`STEPS`] steps and
/// `least`.
fn time_trainer_steps(
    config: &NetworkConfig,
    images: &Images,
    batch_size: usize,
    replicas: usize,
    least: Duration,
    device: &Device,
) -> Duration {
    rayon::scope(|_| {
        let mut model = config.init(device);
        let mut optimizer = training::optimizer();
        let indices: Vec<usize> = (0..images.len()).collect();
        let (mut elapsed, mut timed) = (Duration::ZERO, 0u32);
        for step in 0.. {
            let chunk = &indices[(step * batch_size) % images.len()..][..batch_size];
            let start = Instant::now();
            let gradients = training::batch_gradients(&model, images, chunk, replicas, device);
            model = optimizer.step(1e-3, model, gradients.grads);
            black_box(gradients.loss);
            if step >= WARMUP {
                (elapsed, timed) = (elapsed + start.elapsed(), timed + 1);
            }
            if timed as usize >= STEPS && elapsed >= least {
                break;
            }
        }
        elapsed / timed
    })
}

/// Forward and backward of each fused convolution block alone (`trainer::fused::conv`) on
/// `images` images, on this thread: one replica's share of the trainer's step.
fn time_blocks(config: &ModelConfig, images: usize) -> Vec<(Duration, Duration)> {
    let (mut side, mut channels, mut times) = (64, 1, Vec::new());
    let values = |n: usize| (0..n).map(|i| (i % 251) as f32 / 251.0 - 0.3).collect::<Vec<f32>>();
    for (layer, block) in config.blocks.iter().enumerate() {
        let geometry = ConvGeometry { stride: block.stride, padding: block.padding, pool: block.pool };
        let weights = [block.channels_out, channels, block.kernel, block.kernel];
        let Some(shape) = BlockShape::new([images, channels, side, side], weights, geometry) else {
            break;
        };
        let (input, weight) = (values(shape.input_dims().iter().product()), values(weights.iter().product()));
        let (bias, grad) = (values(block.channels_out), values(shape.output_dims().iter().product()));
        let (mut forward, mut backward) = (Vec::new(), Vec::new());
        for run in 0..WARMUP + BLOCK_RUNS {
            let start = Instant::now();
            let out = conv::forward(&shape, &input, &weight, &bias, false);
            let middle = Instant::now();
            black_box(conv::backward(&shape, &weight, &out.kept, &grad, layer > 0));
            if run >= WARMUP {
                forward.push(middle - start);
                backward.push(middle.elapsed());
            }
        }
        times.push((median(forward), median(backward)));
        (side, channels) = (shape.output_dims()[2], block.channels_out);
    }
    times
}

/// The middle one of `times`: a block alone runs for about a tenth of a millisecond, so the
/// median over many runs is steady where a mean takes in every burst of another machine's load.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time_circuit(batch_size: usize, device: &Device) -> Duration {
    device.seed(0);
    let circuit = Circuit::new(4, device);
    let angles = Tensor::<2>::random([batch_size, 4], burn::tensor::Distribution::Uniform(-3.0, 3.0), device)
        .require_grad();
    let run = || {
        let grads = circuit.forward(angles.clone()).sum().backward();
        black_box(circuit.weights.val().grad(&grads));
    };
    (0..WARMUP).for_each(|_| run());
    let start = Instant::now();
    (0..STEPS).for_each(|_| run());
    start.elapsed() / STEPS as u32
}

fn synthetic_images(count: usize) -> Images {
    let mut rng = data::SplitMix64::new(1);
    Images {
        pixels: (0..count * IMAGE_PIXELS).map(|_| rng.next_u64() as u8).collect(),
        labels: (0..count).map(|i| (i % 6) as u8).collect(),
        files: (0..count).collect(),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
