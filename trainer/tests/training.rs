//! A CI-sized real training run on Medical MNIST: 300 training images per class, a few short
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
    // hybrid enough updates to get past its slow start.
    let config = TrainingConfig::new(ModelConfig::hybrid(listing.classes.len()))
        .with_epochs(6)
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
    };
    let run = training::train(&config, &setup, false).expect("training");
    assert_eq!(run.epochs.len(), 6);
    let accuracy = run.epochs.last().unwrap().validation_accuracy;
    assert!(accuracy > 0.9, "held-out accuracy {accuracy}");

    let resumed = training::train(&config.clone().with_epochs(7), &setup, true).expect("resumed training");
    assert_eq!(resumed.epochs.len(), 7);
    for (before, after) in run.epochs.iter().zip(&resumed.epochs) {
        assert!((before.validation_accuracy - after.validation_accuracy).abs() < 1e-12, "history kept");
    }
    std::fs::remove_dir_all(run_dir).expect("cleanup");
}
