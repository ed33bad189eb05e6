//! The training loop: Adam on cross-entropy, per-epoch validation, a checkpoint after every
//! epoch, resumable.
//!
//! Reproducible: the seed fixes the parameter initialisation and every epoch's shuffle (each
//! epoch derives its order from the seed and its number, so a resumed run sees the same
//! batches). With the same seed and thread count the trained model is the same.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use burn::config::Config;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer, OptimizerRecord};
use burn::store::RecordError;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{self, Images, SplitMix64};
use crate::fused;
use crate::network::{Classifier, Network, NetworkConfig};

/// Errors of training, checkpointing and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("cannot write or read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path}: {source}")]
    Record { path: PathBuf, source: RecordError },
    #[error("{path}: {reason}")]
    Json { path: PathBuf, reason: String },
    #[error("no training images")]
    NoTrainingImages,
    #[error("batch size must be at least 1")]
    ZeroBatch,
    #[error("learning rate: {0}")]
    LearningRate(String),
}

/// Everything that defines a training run; saved as `config.json` in the run folder.
#[derive(Config, Debug)]
pub struct TrainingConfig {
    pub model: NetworkConfig,
    #[config(default = 10)]
    pub epochs: usize,
    #[config(default = 32)]
    pub batch_size: usize,
    /// The rate of the first step.
    #[config(default = 1e-3)]
    pub learning_rate: f64,
    #[config(default = "LearningRateSchedule::Cosine")]
    pub schedule: LearningRateSchedule,
    #[config(default = 0)]
    pub seed: u64,
}

/// How the learning rate moves over a run's steps.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LearningRateSchedule {
    /// The same rate at every step (the paper's recipe).
    Constant,
    /// From the rate down to zero along half a cosine over all the run's steps (burn's cosine
    /// annealing). The last epochs take small steps, so the trained model settles instead of
    /// being wherever a constant rate's noisy path happens to be when the run stops.
    Cosine,
}

impl LearningRateSchedule {
    /// The scheduler for a run of `steps` optimizer steps starting at `rate`.
    ///
    /// # Errors
    /// [`TrainingError::LearningRate`] for a rate outside (0, 1] or no steps.
    pub fn init(self, rate: f64, steps: usize) -> Result<ModuleLrScheduler, TrainingError> {
        match self {
            Self::Constant => Ok(rate.into()),
            Self::Cosine => CosineAnnealingLrSchedulerConfig::new(rate, steps.max(1))
                .init()
                .map_err(TrainingError::LearningRate),
        }
    }
}

/// One epoch's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub validation_accuracy: f64,
    /// Seconds spent in training steps (batching, forward, backward, optimizer).
    pub train_seconds: f64,
    /// Seconds spent evaluating the validation images.
    pub validation_seconds: f64,
}

/// What a finished (or resumed and finished) run returns.
pub struct TrainedRun {
    pub model: Network,
    pub epochs: Vec<EpochRecord>,
}

/// Training data and where the run lives.
pub struct TrainingSetup<'a> {
    pub images: &'a Images,
    pub train: &'a [usize],
    pub validation: &'a [usize],
    pub run_dir: &'a Path,
    pub device: &'a Device,
    /// Show a progress bar (it hides itself anyway when stderr is not a terminal).
    pub progress: bool,
    /// Model copies each batch is split across ([`batch_gradients`]): the thread count on the
    /// CPU, 1 on a GPU (which parallelises within each operation). Networks that do not split
    /// exactly ([`NetworkConfig::splits_exactly`]) always run whole batches.
    pub replicas: usize,
}

/// Trains `config.model` from scratch, or from the newest checkpoint in `run_dir/checkpoints`
/// when `resume` is set and one exists.
///
/// # Errors
/// [`TrainingError`] when there is nothing to train on or a checkpoint cannot be written/read.
pub fn train(
    config: &TrainingConfig,
    setup: &TrainingSetup,
    resume: bool,
) -> Result<TrainedRun, TrainingError> {
    // On one of rayon's threads: each step's first part then runs where the step began and
    // only the others are handed over, one thread fewer to wake per step (docs/training-speed.md).
    rayon::scope(|_| train_in_pool(config, setup, resume))
}

fn train_in_pool(
    config: &TrainingConfig,
    setup: &TrainingSetup,
    resume: bool,
) -> Result<TrainedRun, TrainingError> {
    if setup.train.is_empty() {
        return Err(TrainingError::NoTrainingImages);
    }
    if config.batch_size == 0 {
        return Err(TrainingError::ZeroBatch);
    }
    let device = setup.device;
    device.seed(config.seed);
    let mut model = config.model.init(device);
    let mut optimizer = optimizer();
    let mut epochs = Vec::new();
    let checkpoints = setup.run_dir.join("checkpoints");
    if resume {
        if let Some(checkpoint) = Checkpoint::latest(&checkpoints)? {
            (model, optimizer, epochs) = checkpoint.load(model, optimizer)?;
        }
    }
    let replicas = if config.model.splits_exactly() { setup.replicas } else { 1 };
    let steps_per_epoch = setup.train.len().div_ceil(config.batch_size);
    let mut learning_rate = config.schedule.init(config.learning_rate, steps_per_epoch * config.epochs)?;
    // A resumed run continues the schedule where it stopped.
    (0..epochs.len() * steps_per_epoch).for_each(|_| drop(learning_rate.step()));
    for epoch in epochs.len() + 1..=config.epochs {
        let mut order = setup.train.to_vec();
        SplitMix64::new(config.seed ^ (epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).shuffle(&mut order);
        let bar = progress_bar(setup.progress, order.len(), epoch, config.epochs);
        let started = Instant::now();
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for indices in order.chunks(config.batch_size) {
            let step = batch_gradients(&model, setup.images, indices, replicas, device);
            model = optimizer.step(learning_rate.step(), model, step.grads);
            correct += step.correct;
            loss_sum += step.loss * indices.len() as f64;
            bar.inc(indices.len() as u64);
            let rate = bar.position() as f64 / started.elapsed().as_secs_f64();
            bar.set_message(format!("loss {:.4}  {rate:.0} img/s", step.loss));
        }
        let train_seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let started = Instant::now();
        let predictions = predict_classes(&model.valid(), setup.images, setup.validation, device);
        let validation_seconds = started.elapsed().as_secs_f64();
        let right = predictions
            .iter()
            .zip(setup.validation)
            .filter(|(&p, &i)| p == setup.images.labels[i] as usize)
            .count();
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / order.len() as f64,
            train_accuracy: correct as f64 / order.len() as f64,
            validation_accuracy: right as f64 / setup.validation.len().max(1) as f64,
            train_seconds,
            validation_seconds,
        };
        eprintln!(
            "epoch {epoch:>2}/{}  loss {:.5}  train acc {:.4}  val acc {:.4}  {:.1} s train ({:.0} img/s) + {:.1} s val",
            config.epochs,
            record.train_loss,
            record.train_accuracy,
            record.validation_accuracy,
            train_seconds,
            order.len() as f64 / train_seconds,
            validation_seconds
        );
        epochs.push(record);
        Checkpoint::save(&checkpoints, &model, &optimizer, &epochs)?;
    }
    Ok(TrainedRun { model, epochs })
}

/// The optimizer of every run: Adam with burn's defaults, each parameter's step one fused
/// operation on the CPU ([`fused::adam::FusedAdam`]).
pub fn optimizer() -> ModuleOptimizer {
    ModuleOptimizer::from(fused::adam::FusedAdam::default())
}

/// One batch's gradients, mean loss and correct predictions.
pub struct BatchGradients {
    /// Gradients of the batch's mean cross-entropy.
    pub grads: GradientsParams,
    pub loss: f64,
    pub correct: usize,
}

/// Forward and backward pass of one batch, split into `replicas` contiguous parts that run in
/// parallel, each through its own copy of the model.
///
/// The copies are forked, so each part builds its own autodiff graph (parts sharing the
/// parameters' nodes would share one graph, and its lock would run them one after another).
/// Each part's mean loss is weighted by its share of the batch and the gradients are summed in
/// part order: the result is the whole batch's gradient up to float rounding, and the same on
/// every run with the same replica count. burn's kernels are parallel too, but at this model's
/// sizes they keep a second core only half busy; whole parts keep it busy.
pub fn batch_gradients<M: Classifier + Sync>(
    model: &M,
    images: &Images,
    indices: &[usize],
    replicas: usize,
    device: &Device,
) -> BatchGradients {
    let part_len = indices.len().div_ceil(replicas.max(1)).max(1);
    let part_gradients = |model: &M, part: &[usize]| {
        let batch = data::batch(images, part, device);
        let logits = model.logits(batch.images);
        let correct = count_correct(logits.clone(), &batch.classes);
        let loss = cross_entropy(logits, batch.labels, &batch.classes);
        let share = part.len() as f64 / indices.len() as f64;
        let grads = GradientsParams::from_grads((loss.clone() * share).backward(), model);
        (grads, f64::from(loss.into_scalar::<f32>()) * share, correct)
    };
    if part_len >= indices.len() {
        let (grads, loss, correct) = part_gradients(model, indices);
        return BatchGradients { grads, loss, correct };
    }
    // Each worker clones and forks its own copy: the second part starts without waiting for
    // either, and the forks run in parallel too.
    let parts: Vec<&[usize]> = indices.chunks(part_len).collect();
    let parts = in_parallel(&parts, &|part| part_gradients(&model.clone().fork(device), part));
    let mut sum = GradientsAccumulator::<M>::new();
    let (mut loss, mut correct) = (0.0, 0);
    for (grads, part_loss, part_correct) in parts {
        sum.accumulate(model, grads);
        loss += part_loss;
        correct += part_correct;
    }
    BatchGradients { grads: sum.grads(), loss, correct }
}

/// `f` of each item, in order, the items split in halves across rayon's threads.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: &(impl Fn(&T) -> R + Sync)) -> Vec<R> {
    match items {
        [] => Vec::new(),
        [item] => vec![f(item)],
        _ => {
            let (first, second) = items.split_at(items.len() / 2);
            let (mut results, rest) = join_spinning(|| in_parallel(first, f), || in_parallel(second, f));
            results.extend(rest);
            results
        }
    }
}

/// `rayon::join(first, second)`, except that when `second` runs on another thread and is still
/// running when `first` is done, this thread spins until it is done instead of going to sleep:
/// on these virtual machines, waking a sleeping thread took 30 to 40 µs, 4 % of the default
/// hybrid's step (docs/training-speed.md). When `second` has not started, rayon runs or waits
/// for it as usual (spinning then could wait for work queued behind this very thread).
fn join_spinning<A, B>(first: impl FnOnce() -> A + Send, second: impl FnOnce() -> B + Send) -> (A, B)
where
    A: Send,
    B: Send,
{
    const STARTED: u8 = 1;
    const DONE: u8 = 2;
    let state = AtomicU8::new(0);
    rayon::join(
        || {
            let result = first();
            if state.load(Ordering::Acquire) == STARTED {
                while state.load(Ordering::Acquire) != DONE {
                    std::hint::spin_loop();
                }
            }
            result
        },
        || {
            state.store(STARTED, Ordering::Release);
            // Done even when `second` panics, so the spinning thread gets to rayon's join,
            // which passes the panic on.
            let _done = SetOnDrop(&state, DONE);
            second()
        },
    )
}

/// Stores its value into its atomic when dropped.
struct SetOnDrop<'a>(&'a AtomicU8, u8);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(self.1, Ordering::Release);
    }
}

fn progress_bar(enabled: bool, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("epoch {epoch}/{epochs}"));
    bar
}

/// The mean cross-entropy of `logits` against a batch's `labels` (`classes` the same as
/// indices): one fused operation where the fused kernels run ([`fused::cross_entropy`]),
/// burn's `CrossEntropyLoss` elsewhere.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>, classes: &[usize]) -> Tensor<1> {
    fused::cross_entropy(&logits, classes)
        .unwrap_or_else(|| CrossEntropyLossConfig::new().init(&logits.device()).forward(logits, labels))
}

fn count_correct(logits: Tensor<2>, classes: &[usize]) -> usize {
    let predicted = logits.argmax(1).into_data().convert::<i64>();
    let predicted = predicted.as_slice::<i64>().unwrap_or_default();
    predicted.iter().zip(classes).filter(|(&p, &class)| usize::try_from(p) == Ok(class)).count()
}

/// Images per forward pass when only predicting (no gradients, so larger batches pay off).
const PREDICT_BATCH: usize = 512;

/// Class probabilities for the images `indices`, row-major `[n, classes]`. On the CPU the
/// chunks of `PREDICT_BATCH` images run on all threads at once, each whole on one thread (a
/// chunk's own operations keep a second core only partly busy); on a GPU one after another.
pub fn predict_probabilities<M: Classifier + Sync>(
    model: &M,
    images: &Images,
    indices: &[usize],
    device: &Device,
) -> Vec<f32> {
    let probabilities = |chunk: &[usize]| {
        let batch = data::images_tensor(chunk.iter().map(|&i| images.image(i)), device);
        softmax(model.logits(batch), 1).into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
    };
    let chunks: Vec<Vec<f32>> = if fused::runs_on(device) {
        indices.par_chunks(PREDICT_BATCH).map(probabilities).collect()
    } else {
        indices.chunks(PREDICT_BATCH).map(probabilities).collect()
    };
    chunks.concat()
}

/// The most probable class of each image `indices`.
pub fn predict_classes<M: Classifier + Sync>(
    model: &M,
    images: &Images,
    indices: &[usize],
    device: &Device,
) -> Vec<usize> {
    let probs = predict_probabilities(model, images, indices, device);
    let classes = probs.len() / indices.len().max(1);
    probs
        .chunks(classes.max(1))
        .map(|row| row.iter().enumerate().fold(0, |best, (c, &p)| if p > row[best] { c } else { best }))
        .collect()
}

/// One epoch's saved state: `checkpoints/epoch-NNN/{model,optimizer}.bpk` + `epochs.json`.
/// Each is written into `epoch-NNN.tmp` and the folder renamed when complete, so a killed run
/// never leaves a half-written checkpoint behind.
struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    const MODEL: &'static str = "model.bpk";
    const OPTIMIZER: &'static str = "optimizer.bpk";
    const EPOCHS: &'static str = "epochs.json";

    fn latest(root: &Path) -> Result<Option<Self>, TrainingError> {
        if !root.exists() {
            return Ok(None);
        }
        let entries =
            fs::read_dir(root).map_err(|source| TrainingError::Io { path: root.to_path_buf(), source })?;
        let newest = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("epoch-")?.parse::<usize>().ok().map(|n| (n, e.path()))
            })
            .max_by_key(|(n, _)| *n);
        Ok(newest.map(|(_, dir)| Self { dir }))
    }

    fn save(
        root: &Path,
        model: &Network,
        optimizer: &ModuleOptimizer,
        epochs: &[EpochRecord],
    ) -> Result<(), TrainingError> {
        let name = format!("epoch-{:03}", epochs.len());
        let tmp = root.join(format!("{name}.tmp"));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrainingError::Io { path, source }
        };
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let record_err = |path: PathBuf| move |source| TrainingError::Record { path, source };
        let model_path = tmp.join(Self::MODEL);
        model.clone().into_record().save(&model_path).map_err(record_err(model_path))?;
        let optim_path = tmp.join(Self::OPTIMIZER);
        optimizer.to_record().save(&optim_path).map_err(record_err(optim_path))?;
        write_json(&tmp.join(Self::EPOCHS), &epochs)?;
        let done = root.join(&name);
        if done.exists() {
            fs::remove_dir_all(&done).map_err(io(&done))?;
        }
        fs::rename(&tmp, &done).map_err(io(&done))?;
        // Older checkpoints are superseded; keep only the newest.
        for entry in fs::read_dir(root).map_err(io(root))?.filter_map(Result::ok) {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other.starts_with("epoch-") && other != name {
                fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        Ok(())
    }

    fn load(
        &self,
        model: Network,
        optimizer: ModuleOptimizer,
    ) -> Result<(Network, ModuleOptimizer, Vec<EpochRecord>), TrainingError> {
        let record_err = |path: PathBuf| move |source| TrainingError::Record { path, source };
        let model_path = self.dir.join(Self::MODEL);
        let model = model.try_load_file(&model_path).map_err(record_err(model_path.clone()))?;
        let optim_path = self.dir.join(Self::OPTIMIZER);
        let record = OptimizerRecord::load(&optim_path).map_err(record_err(optim_path))?;
        let epochs: Vec<EpochRecord> = read_json(&self.dir.join(Self::EPOCHS))?;
        eprintln!("resuming after epoch {} from {}", epochs.len(), self.dir.display());
        Ok((model, optimizer.load_record(record), epochs))
    }
}

/// Writes `value` as pretty JSON to `path`, via a temporary file and a rename.
///
/// # Errors
/// [`TrainingError::Io`] or [`TrainingError::Json`].
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), TrainingError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| TrainingError::Json { path: path.to_path_buf(), reason: e.to_string() })?;
    write_atomically(path, text.as_bytes())
}

/// Writes `bytes` to `path` through `path.tmp` and a rename, so readers never see a partial file.
///
/// # Errors
/// [`TrainingError::Io`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TrainingError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |source| TrainingError::Io { path: path.to_path_buf(), source };
    fs::write(&tmp, bytes).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Reads JSON from `path`.
///
/// # Errors
/// [`TrainingError::Io`] or [`TrainingError::Json`].
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainingError> {
    let text =
        fs::read_to_string(path).map_err(|source| TrainingError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|e| TrainingError::Json { path: path.to_path_buf(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(schedule: LearningRateSchedule, steps: usize) -> Vec<f64> {
        let mut scheduler = schedule.init(1e-3, steps).expect("valid schedule");
        (0..steps).map(|_| scheduler.step().base()).collect()
    }

    #[test]
    fn cosine_decays_from_the_rate_towards_zero_over_the_run() {
        let cosine = rates(LearningRateSchedule::Cosine, 100);
        assert_eq!(cosine[0], 1e-3);
        assert!((cosine[50] - 5e-4).abs() < 1e-12, "half way: {}", cosine[50]);
        assert!(cosine[99] < 1e-6, "last step: {}", cosine[99]);
        assert!(cosine.windows(2).all(|w| w[1] < w[0]));
        assert!(rates(LearningRateSchedule::Constant, 100).iter().all(|&r| r == 1e-3));
    }

    #[test]
    fn in_parallel_keeps_the_order_on_any_number_of_threads() {
        let items: Vec<usize> = (0..7).collect();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
            // With one thread, `second` never runs elsewhere: `first` must not wait for it.
            let squares = pool.install(|| in_parallel(&items, &|&i| i * i));
            assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36], "{threads} threads");
        }
        assert!(in_parallel(&[] as &[usize], &|&i| i).is_empty());
    }

    #[test]
    fn a_panic_in_the_other_half_reaches_the_caller() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        let items = [0, 1];
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| {
                in_parallel(&items, &|&i| {
                    assert!(i == 0, "the second half fails");
                    i
                })
            })
        }));
        assert!(outcome.is_err());
    }

    #[test]
    fn impossible_rates_are_refused() {
        assert!(matches!(LearningRateSchedule::Cosine.init(0.0, 10), Err(TrainingError::LearningRate(_))));
        assert!(LearningRateSchedule::Cosine.init(2.0, 10).is_err());
    }
}
