//! A CI-sized real training run on Medical MNIST: 300 training images per class, twelve short
//! epochs (seconds), held-out accuracy well above chance; then a resumed run continues from the
//! checkpoint.
//!
//! Needs the data set: `../shared/data/medical-mnist` beside the workspace, or `TRAINER_DATA`;
//! without it the test fails, naming where it looked (a silent pass would assert nothing).

use burn::tensor::Device;
use trainer::data;
use trainer::model::ModelConfig;
use trainer::training::{self, TrainingConfig, TrainingSetup};

mod common;

#[test]
fn short_real_training_run_learns_and_resumes() {
    let (listing, split) = common::split(300);
    let data::SplitImages { images, train, test, report } =
        data::decode_split(&listing, &split.train, &split.test).expect("decode");
    assert!(report.skipped.is_empty());
    assert_eq!((train.len(), test.len()), (1800, 450));

    // Few images, so smaller batches and a larger step than the full run's defaults give the
    // hybrid enough updates to get past its slow start. That start can sit at 83 % for a few
    // epochs (one class pair not yet apart) depending on float rounding, so on the CPU's SIMD
    // kernels; over seeds 0-3 and 1 or 2 threads every run here was above 98 % by epoch 8.
    let config = TrainingConfig::new(ModelConfig::hybrid(listing.classes.len()).into())
        .with_epochs(12)
        .with_batch_size(8)
        .with_learning_rate(2e-3);
    let run_dir = std::env::temp_dir().join(format!("trainer-ci-run-{}", std::process::id()));
    let device = Device::flex().autodiff();
    let setup = TrainingSetup {
        images: &images,
        train: &train,
        validation: &test,
        run_dir: &run_dir,
        device: &device,
        progress: false,
        replicas: 2,
    };
    let run = training::train(&config, &setup, false).expect("training");
    assert_eq!(run.epochs.len(), 12);
    let accuracy = run.epochs.last().unwrap().validation_accuracy;
    assert!(accuracy > 0.9, "held-out accuracy {accuracy}");

    let resumed = training::train(&config.clone().with_epochs(13), &setup, true).expect("resumed training");
    assert_eq!(resumed.epochs.len(), 13);
    for (before, after) in run.epochs.iter().zip(&resumed.epochs) {
        assert!((before.validation_accuracy - after.validation_accuracy).abs() < 1e-12, "history kept");
    }
    std::fs::remove_dir_all(run_dir).expect("cleanup");
}

/// The trainer's data-parallel step: a batch split across model copies gives the whole batch's
/// loss and gradients (up to f32 rounding), and the same bits on every run.
#[test]
fn replicas_give_the_whole_batch_gradient_every_time() {
    let (listing, split) = common::split(8);
    let data::SplitImages { images, train, .. } =
        data::decode_split(&listing, &split.train, &split.test).expect("decode");
    let device = Device::flex().autodiff();
    device.seed(3);
    let model = ModelConfig::hybrid(listing.classes.len()).init(&device);
    let batch = &train[..32];

    let whole = training::batch_gradients(&model, &images, batch, 1, &device);
    let split_once = training::batch_gradients(&model, &images, batch, 3, &device);
    let split_again = training::batch_gradients(&model, &images, batch, 3, &device);

    assert_eq!(whole.correct, split_once.correct);
    assert!(
        (whole.loss - split_once.loss).abs() < 1e-5 * whole.loss,
        "{} vs {}",
        whole.loss,
        split_once.loss
    );
    let whole_grads = common::gradient_values(&model, &whole.grads);
    let split_grads = common::gradient_values(&model, &split_once.grads);
    for (want, got) in whole_grads.iter().zip(&split_grads) {
        let scale = want.iter().fold(0f32, |m, g| m.max(g.abs()));
        let worst = want.iter().zip(got).fold(0f32, |m, (w, g)| m.max((w - g).abs()));
        assert!(worst <= 1e-4 * scale, "gradient differs by {worst} (largest {scale})");
    }
    assert_eq!(split_grads, common::gradient_values(&model, &split_again.grads), "not reproducible");
    assert_eq!(split_once.loss.to_bits(), split_again.loss.to_bits());
}
