//! The paper's comparison on CI-sized runs: ResNet-18 and VGG-16 learn (their loss falls on
//! real images), training and resuming work for them as for the hybrid, and `trainer report`
//! turns finished run folders into Table I and Figs. 1-4.
//!
//! Needs the data set (see `common::data_dir`).

use std::path::Path;
use std::process::Command;

use burn::module::Module;
use burn::optim::AdamConfig;
use burn::tensor::Device;
use trainer::baselines::Vgg16Config;
use trainer::data;
use trainer::report::TableRow;
use trainer::training;

mod common;

fn trainer(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer")).args(args).output().expect("trainer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "trainer {args:?} failed: {stderr}");
    stderr.into_owned()
}

/// Training loss of each epoch, from a run's `metrics.json`.
fn epoch_losses(run: &Path) -> Vec<f64> {
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics.json")).expect("metrics.json"))
            .expect("json");
    metrics["epochs"]
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| e["train_loss"].as_f64().expect("loss"))
        .collect()
}

#[test]
fn tiny_runs_resume_and_make_table_one_and_figures() {
    let data = common::data_dir();
    let data = data.to_str().expect("utf-8 path");
    let root = std::env::temp_dir().join(format!("trainer-comparison-{}", std::process::id()));
    let run = |name: &str| root.join(name).to_string_lossy().into_owned();
    let common = ["--data", data, "--limit-per-class", "12", "--batch-size", "8", "--threads", "2"];

    trainer(&[&common[..], &["--model", "hybrid", "--epochs", "2", "--out", &run("hybrid")]].concat());
    // ResNet-18: one epoch, then resumed for two more from the checkpoint (batch norm's
    // running statistics and Adam's moments included).
    trainer(&[&common[..], &["--model", "resnet18", "--epochs", "1", "--out", &run("resnet18")]].concat());
    let resumed = trainer(
        &[&common[..], &["--model", "resnet18", "--epochs", "3", "--resume", "--out", &run("resnet18")]]
            .concat(),
    );
    assert!(resumed.contains("resuming after epoch 1"), "{resumed}");
    let losses = epoch_losses(&root.join("resnet18"));
    assert_eq!(losses.len(), 3);
    assert!(losses[2] < losses[0], "ResNet-18's training loss did not fall: {losses:?}");

    let out = run("report");
    let stdout = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["report", &run("hybrid"), &run("resnet18"), "--out", &out, "--data", data])
        .output()
        .expect("trainer report runs");
    assert!(stdout.status.success(), "{}", String::from_utf8_lossy(&stdout.stderr));
    let out = Path::new(&out);
    let rows: Vec<TableRow> =
        serde_json::from_slice(&std::fs::read(out.join("table-1.json")).expect("table-1.json"))
            .expect("rows");
    assert_eq!(
        rows.iter().map(|r| (r.model.as_str(), r.parameters)).collect::<Vec<_>>(),
        [("hybrid", 8_234), ("resnet18", 11_173_318)]
    );
    assert_eq!(rows[0].time_vs_hybrid, Some(1.0));
    assert!(rows[1].time_vs_hybrid.is_some_and(|r| r > 1.0), "ResNet-18 is not slower than the hybrid");
    assert_eq!((rows[1].epochs, rows[1].train_images, rows[1].test_images), (3, 72, 18));
    let markdown = std::fs::read_to_string(out.join("table-1.md")).expect("table-1.md");
    assert_eq!(markdown.lines().count(), 4, "{markdown}");
    let csv = std::fs::read_to_string(out.join("table-1.csv")).expect("table-1.csv");
    assert!(csv.lines().nth(2).is_some_and(|l| l.starts_with("resnet18,11173318,")), "{csv}");
    for (figure, min_width) in [
        ("fig1-metrics.png", 1000),
        ("fig2-curves.png", 1000),
        ("fig3-confusion.png", 1200),
        ("fig4-prediction.png", 1000),
    ] {
        let image = image::open(out.join(figure)).unwrap_or_else(|e| panic!("{figure}: {e}"));
        assert!(image.width() >= min_width, "{figure} is {} wide", image.width());
        // Drawn, not blank: many distinct colours.
        let mut colours: Vec<[u8; 3]> = image.to_rgb8().pixels().map(|p| p.0).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(colours.len() > 20, "{figure} has {} colours", colours.len());
    }
    std::fs::remove_dir_all(root).expect("cleanup");
}

/// VGG-16 is too slow here for an epoch in CI (8 s a step of 32). Its training mode is real
/// (dropout draws a new mask each pass, evaluation draws none), and with dropout off a few
/// Adam steps on one batch of real images lower the loss: forward and backward are right.
#[test]
fn vgg16_trains_on_a_batch_of_real_images() {
    let (listing, split) = common::split(2);
    let data::SplitImages { images, train, .. } =
        data::decode_split(&listing, &split.train, &split.test).expect("decode");
    let device = Device::flex().autodiff();
    device.seed(0);

    let model = Vgg16Config::new(listing.classes.len()).init(&device);
    let one = data::batch(&images, &train[..1], &device).images;
    let logits = |model: &trainer::baselines::Vgg16, device: &Device| {
        model
            .forward(one.clone().to_device(device))
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32")
    };
    assert_ne!(logits(&model, &device), logits(&model, &device), "dropout is off in training");
    let evaluated = model.valid();
    let inference = device.clone().inner();
    assert_eq!(logits(&evaluated, &inference), logits(&evaluated, &inference), "dropout is on in evaluation");

    let mut model = Vgg16Config::new(listing.classes.len()).with_dropout(0.0).init(&device);
    let mut optimizer = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let step = training::batch_gradients(&model, &images, &train, 1, &device);
        losses.push(step.loss);
        model = optimizer.step(1e-4, model, step.grads);
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "VGG-16's loss did not fall: {losses:?}");
}
