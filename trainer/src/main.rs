//! `trainer`: train (default), predict, export. See `trainer --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};

use trainer::baselines::{ResNet18Config, Vgg16Config};
use trainer::data::{self, DecodeReport, Listing, Split, SplitImages};
use trainer::export::{self, ModelDescription, Provenance};
use trainer::hardware;
use trainer::metrics::{Evaluation, RunMetrics};
use trainer::model::ModelConfig;
use trainer::network::{trainable_params, NetworkConfig};
use trainer::plot;
use trainer::report;
use trainer::training::{self, LearningRateSchedule, TrainingConfig, TrainingSetup};

/// Train the hybrid CNN + 4-qubit classifier on Medical MNIST, predict, export to models/.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model (the default when no subcommand is given).
    Train(TrainArgs),
    /// Classify one image: prints the class and every class probability.
    Predict(PredictArgs),
    /// Write a run's model into models/: ONNX encoder, circuit + head, model card.
    Export(ExportArgs),
    /// Test accuracy of the trained circuit as a quantum device would run it: <Z> estimated
    /// from finite shots, depolarizing noise after every gate, readout bit flips.
    Noise(NoiseArgs),
    /// The paper's comparison from finished runs: Table I (Markdown, CSV, JSON) and Figs. 1-4.
    Report(ReportArgs),
    /// Write the trained circuit as OpenQASM 3 (angles as inputs) and, for given images,
    /// OpenQASM 2.0 programs with their angles plus the exact <Z> a simulator must give.
    Qasm(QasmArgs),
}

#[derive(Args)]
struct TrainArgs {
    /// Data set folder: one sub-folder of images per class.
    #[arg(long, default_value = "../shared/data/medical-mnist")]
    data: PathBuf,
    /// Test split: a split file listing test files (split-seed0.json), `none` for a seeded
    /// stratified 80/20 split, or `auto`: split-seed0.json beside the data folder if it exists.
    #[arg(long, default_value = "auto")]
    split: String,
    /// Run folder (config, checkpoints, metrics, plots, model) [default: runs/<model>].
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ModelArg::Hybrid)]
    model: ModelArg,
    /// [default: 10]
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate of the first step.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// How the learning rate moves: `cosine` decays it to zero over the run, `constant` keeps
    /// it (the paper's recipe).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    lr_schedule: ScheduleArg,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads [default: all cores]. The same seed and thread count give the same model.
    #[arg(long)]
    threads: Option<usize>,
    /// Keep at most this many training images per class (and a quarter as many test images).
    #[arg(long)]
    limit_per_class: Option<usize>,
    /// Continue from the run folder's newest checkpoint, with its saved configuration.
    #[arg(long)]
    resume: bool,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

#[derive(Args)]
struct PredictArgs {
    /// Image file (any size or colour; converted to 64x64 gray).
    image: PathBuf,
    /// Folder holding model.bpk + model.json (a run folder or models/).
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

#[derive(Args)]
struct ExportArgs {
    /// Run folder of a finished hybrid training run.
    #[arg(long, default_value = "runs/hybrid")]
    run: PathBuf,
    /// Destination folder.
    #[arg(long, default_value = "models")]
    out: PathBuf,
    /// Data set folder (training images calibrate the int8 encoder; test images measure it).
    #[arg(long, default_value = "../shared/data/medical-mnist")]
    data: PathBuf,
    /// Test split, as for training: a split file, `none` or `auto`.
    #[arg(long, default_value = "auto")]
    split: String,
    /// Training images per class the int8 encoder is calibrated on.
    #[arg(long, default_value_t = 64)]
    calibration_per_class: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
struct NoiseArgs {
    /// Folder holding model.bpk + model.json (models/ or a run folder).
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
    #[arg(long, default_value = "../shared/data/medical-mnist")]
    data: PathBuf,
    /// Test split, as for training: a split file, `none` or `auto`.
    #[arg(long, default_value = "auto")]
    split: String,
    /// Output folder: noise.json and noise.png.
    #[arg(long, default_value = "runs/noise")]
    out: PathBuf,
    /// Shots per image (exact expectations are always evaluated too).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..),
          default_values_t = [10, 100, 1000, 10000])]
    shots: Vec<u32>,
    /// Depolarizing probabilities after each gate.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.03, 0.05, 0.1])]
    depolarizing: Vec<f64>,
    /// Readout flip probabilities per measured bit.
    #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.01, 0.05])]
    readout_flip: Vec<f64>,
    /// Seed of the shot sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep at most this many test images per class.
    #[arg(long)]
    limit_per_class: Option<usize>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct ReportArgs {
    /// Finished run folders, in table order [default: those of runs/hybrid, runs/hybrid-paper,
    /// runs/cnn, runs/resnet18, runs/vgg16 that have a metrics.json].
    runs: Vec<PathBuf>,
    /// Output folder: table-1.{md,csv,json}, fig1-metrics.png, fig2-curves.png,
    /// fig3-confusion.png, fig4-prediction.png.
    #[arg(long, default_value = "runs/report")]
    out: PathBuf,
    /// Data set folder (Fig. 4's image comes from its test split).
    #[arg(long, default_value = "../shared/data/medical-mnist")]
    data: PathBuf,
    /// Test split, as for training: a split file, `none` or `auto`.
    #[arg(long, default_value = "auto")]
    split: String,
    /// Fig. 4's image [default: the first CXR image of the test split]; its folder names its
    /// true class.
    #[arg(long)]
    image: Option<PathBuf>,
}

#[derive(Args)]
struct QasmArgs {
    /// Folder holding model.bpk + model.json (models/ or a run folder).
    #[arg(long, default_value = "models")]
    model_dir: PathBuf,
    /// Output folder [default: the model folder].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Images to write OpenQASM 2.0 programs for (CLASS-NAME.qasm2 each, from the image's
    /// folder and file name) and `expected.json` with their angles and exact <Z>.
    images: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    /// The compact hybrid (8,234 parameters).
    Hybrid,
    /// The paper's hybrid (37,650 parameters).
    HybridPaper,
    /// The classical CNN baseline (482,838 parameters).
    Cnn,
    /// torchvision's ResNet-18 for 1-channel images (11,173,318 parameters).
    #[value(name = "resnet18")]
    ResNet18,
    /// torchvision's VGG-16 without batch norm (134,283,974 parameters).
    Vgg16,
}

impl ModelArg {
    fn config(self, classes: usize) -> NetworkConfig {
        match self {
            Self::Hybrid => ModelConfig::hybrid(classes).into(),
            Self::HybridPaper => ModelConfig::hybrid_paper(classes).into(),
            Self::Cnn => ModelConfig::cnn(classes).into(),
            Self::ResNet18 => NetworkConfig::ResNet18(ResNet18Config::new(classes)),
            Self::Vgg16 => NetworkConfig::Vgg16(Vgg16Config::new(classes)),
        }
    }

    /// The run folder it trains into by default.
    fn run_dir(self) -> &'static str {
        match self {
            Self::Hybrid => "runs/hybrid",
            Self::HybridPaper => "runs/hybrid-paper",
            Self::Cnn => "runs/cnn",
            Self::ResNet18 => "runs/resnet18",
            Self::Vgg16 => "runs/vgg16",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ScheduleArg {
    Cosine,
    Constant,
}

impl From<ScheduleArg> for LearningRateSchedule {
    fn from(arg: ScheduleArg) -> Self {
        match arg {
            ScheduleArg::Cosine => Self::Cosine,
            ScheduleArg::Constant => Self::Constant,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// The CPU backend compiled in: flex (default feature) or ndarray.
    Cpu,
    /// A GPU through wgpu (Metal on macOS); needs the `wgpu` feature.
    Wgpu,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        None => train(cli.train),
        Some(Command::Train(args)) => train(args),
        Some(Command::Predict(args)) => predict(args),
        Some(Command::Export(args)) => export(args),
        Some(Command::Noise(args)) => noise(args),
        Some(Command::Qasm(args)) => qasm(args),
        Some(Command::Report(args)) => report(args),
    }
}

fn device(choice: DeviceArg) -> Result<Device> {
    match choice {
        DeviceArg::Cpu => cpu_device(),
        DeviceArg::Wgpu => wgpu_device(),
    }
}

/// flex when compiled in (the default feature), else ndarray.
fn cpu_device() -> Result<Device> {
    #[cfg(feature = "flex")]
    return Ok(Device::flex());
    #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
    #[allow(deprecated)] // ndarray is deprecated upstream; kept selectable on purpose
    return Ok(Device::ndarray());
    #[cfg(not(any(feature = "flex", feature = "ndarray")))]
    anyhow::bail!("no CPU backend compiled in: build with --features flex or ndarray")
}

fn wgpu_device() -> Result<Device> {
    #[cfg(feature = "wgpu")]
    return Ok(Device::wgpu(Default::default()));
    #[cfg(not(feature = "wgpu"))]
    anyhow::bail!(
        "built without the wgpu feature: cargo run -p trainer --release --features wgpu -- --device wgpu"
    )
}

fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(threads) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting the thread count")?;
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    set_threads(args.threads)?;
    let run_dir = args.out.clone().unwrap_or_else(|| PathBuf::from(args.model.run_dir()));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let wall = Instant::now();

    let started = Instant::now();
    let listing = Listing::scan(&args.data)?;
    let split = choose_split(&args.split, &args.data, args.seed, &listing)?;
    let split = match args.limit_per_class {
        Some(limit) => split.limit_per_class(&listing, limit, args.seed),
        None => split,
    };
    let SplitImages { images, train, test, report } =
        data::decode_split(&listing, &split.train, &split.test)?;
    report_skipped(&report);
    eprintln!(
        "data: {} classes, {} train + {} test images decoded in {:.2} s ({} skipped, {} converted); split: {}",
        listing.classes.len(),
        train.len(),
        test.len(),
        started.elapsed().as_secs_f64(),
        report.skipped.len(),
        report.converted,
        split.source
    );

    let config_path = run_dir.join("config.json");
    let config = if args.resume && config_path.exists() {
        let saved = TrainingConfig::load(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let epochs = args.epochs.unwrap_or(saved.epochs);
        saved.with_epochs(epochs)
    } else {
        TrainingConfig::new(args.model.config(listing.classes.len()))
            .with_epochs(args.epochs.unwrap_or(10))
            .with_batch_size(args.batch_size)
            .with_learning_rate(args.lr)
            .with_schedule(args.lr_schedule.into())
            .with_seed(args.seed)
    };
    config.save(&config_path).with_context(|| format!("writing {}", config_path.display()))?;

    let device = device(args.device)?.autodiff();
    let name = args.model.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
    eprintln!("model: {name}; {} threads", rayon::current_num_threads());
    let setup = TrainingSetup {
        images: &images,
        train: &train,
        validation: &test,
        run_dir: &run_dir,
        device: &device,
        progress: true,
        replicas: match args.device {
            DeviceArg::Cpu => rayon::current_num_threads(),
            DeviceArg::Wgpu => 1,
        },
    };
    let trained = training::train(&config, &setup, args.resume)?;
    let parameters = trainable_params(&trained.model);

    let model = trained.model.valid();
    let inference_device = device.inner();
    let predicted = training::predict_classes(&model, &images, &test, &inference_device);
    let truth: Vec<usize> = test.iter().map(|&i| usize::from(images.labels[i])).collect();
    let evaluation = Evaluation::new(&listing.classes, &truth, &predicted);
    // The compact models are what `predict` and `export` take; the large baselines' weights
    // stay in the last checkpoint.
    if let (Some(compact), NetworkConfig::Compact(model)) = (model.compact(), &config.model) {
        let description = ModelDescription { model: model.clone(), classes: listing.classes.clone() };
        export::save_model(&run_dir, compact, &description)?;
    }

    let metrics = RunMetrics {
        model: name,
        parameters,
        classes: listing.classes.clone(),
        split: split.source.clone(),
        seed: config.seed,
        train_images: train.len(),
        dataset_sha256: report.content_hash.clone(),
        threads: rayon::current_num_threads(),
        hardware: match args.device {
            DeviceArg::Cpu => format!("{}, {} threads", cpu_name(), rayon::current_num_threads()),
            DeviceArg::Wgpu => "GPU (wgpu)".into(),
        },
        training_seconds: trained.epochs.iter().map(|e| e.train_seconds).sum(),
        wall_seconds: wall.elapsed().as_secs_f64(),
        test: evaluation,
        epochs: trained.epochs,
    };
    training::write_json(&run_dir.join("metrics.json"), &metrics)?;
    plot::learning_curves(&run_dir.join("learning-curves.png"), &metrics.epochs)?;
    plot::confusion_matrix(&run_dir.join("confusion-matrix.png"), &listing.classes, &metrics.test)?;
    println!(
        "test accuracy {:.4} % ({} of {} wrong), macro F1 {:.5}; {parameters} parameters; {:.1} s training ({:.2} s/epoch); outputs in {}",
        100.0 * metrics.test.accuracy,
        metrics.test.images - (metrics.test.accuracy * metrics.test.images as f64).round() as usize,
        metrics.test.images,
        metrics.test.macro_f1,
        metrics.training_seconds,
        metrics.training_seconds / metrics.epochs.len().max(1) as f64,
        run_dir.display()
    );
    Ok(())
}

/// The CPU's model name where the system tells it (Linux), else "CPU".
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "CPU".into())
}

fn report_skipped(report: &DecodeReport) {
    for (path, reason) in &report.skipped {
        eprintln!("skipped {}: {reason}", path.display());
    }
}

fn choose_split(split: &str, data: &Path, seed: u64, listing: &Listing) -> Result<Split> {
    let beside_data = data.parent().map(|p| p.join("split-seed0.json"));
    let file = match split {
        "none" => None,
        "auto" => beside_data.filter(|p| p.exists()),
        path => Some(PathBuf::from(path)),
    };
    Ok(match file {
        Some(path) => Split::from_file(&path, listing)?,
        None => Split::stratified(listing, 0.2, seed),
    })
}

fn predict(args: PredictArgs) -> Result<()> {
    let device = device(args.device)?;
    let (model, description) = export::load_model(&args.model_dir, &device).with_context(|| {
        format!("loading the model from {} (train and export first?)", args.model_dir.display())
    })?;
    let probabilities = probabilities(&model, &data::load_image(&args.image)?, &device)?;
    let best =
        probabilities.iter().enumerate().fold(0, |b, (i, &p)| if p > probabilities[b] { i } else { b });
    println!(
        "{}: {} ({:.2} %)",
        args.image.display(),
        description.classes[best],
        100.0 * probabilities[best]
    );
    for (class, p) in description.classes.iter().zip(&probabilities) {
        println!("  {class:<10} {:>8.4} %", 100.0 * p);
    }
    Ok(())
}

/// The class probabilities `model` gives one image.
fn probabilities(model: &trainer::model::Model, pixels: &[u8], device: &Device) -> Result<Vec<f32>> {
    softmax(model.forward(data::images_tensor(std::iter::once(pixels), device)), 1)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading probabilities: {e:?}"))
}

fn export(args: ExportArgs) -> Result<()> {
    let provenance =
        Provenance { git_commit: git_commit(), command: std::env::args().collect::<Vec<_>>().join(" ") };
    let listing = Listing::scan(&args.data)?;
    let split = choose_split(&args.split, &args.data, args.seed, &listing)?;
    // Calibration comes from the training images only, a seeded few of each class.
    let calibration = split.limit_per_class(&listing, args.calibration_per_class, args.seed).train;
    let SplitImages { images, train: calibration, test, report } =
        data::decode_split(&listing, &calibration, &split.test)?;
    report_skipped(&report);
    let data = export::ExportData { images: &images, calibration: &calibration, test: &test };
    let card = export::export_run(&args.run, &args.out, &cpu_device()?, &provenance, &data)?;
    eprintln!(
        "integer model on {} test images: accuracy {:.4} %, same class as f32 on {:.4} %",
        card.fixed_point.images,
        100.0 * card.fixed_point.accuracy,
        100.0 * card.fixed_point.agreement_with_f32
    );
    for artifact in &card.artifacts {
        println!("{}  {}", artifact.sha256, args.out.join(&artifact.file).display());
    }
    println!("model card: {}", args.out.join(export::MODEL_CARD_FILE).display());
    Ok(())
}

/// The checked-out commit, `-dirty` when the work tree has changes; "unknown" outside git.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(Path::new("."))
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(out) => {
            let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        None => "unknown".into(),
    }
}

/// The trained model of `dir` with its circuit and head as the `shared` artifact.
fn load_hybrid(dir: &Path, device: &Device) -> Result<(trainer::model::Model, shared::model::QuantumHead)> {
    let (model, _) = export::load_model(dir, device)
        .with_context(|| format!("loading the model from {} (train and export first?)", dir.display()))?;
    let head = trainer::integer::quantum_head(&model).context("the model has no circuit")?;
    Ok((model, head))
}

fn noise(args: NoiseArgs) -> Result<()> {
    set_threads(args.threads)?;
    let device = cpu_device()?;
    let (model, head) = load_hybrid(&args.model_dir, &device)?;
    let listing = Listing::scan(&args.data)?;
    let split = choose_split(&args.split, &args.data, 0, &listing)?;
    let split = match args.limit_per_class {
        // `limit_per_class` keeps a quarter as many test images as training images.
        Some(limit) => split.limit_per_class(&listing, limit.saturating_mul(4), 0),
        None => split,
    };
    let SplitImages { images, test, report, .. } = data::decode_split(&listing, &[], &split.test)?;
    report_skipped(&report);
    anyhow::ensure!(!test.is_empty(), "no test images");
    let started = Instant::now();
    let angles = hardware::angles(&model, test.iter().map(|&i| images.image(i)), &device);
    let labels: Vec<usize> = test.iter().map(|&i| usize::from(images.labels[i])).collect();
    let grid = hardware::Grid {
        shots: args.shots,
        depolarizing: args.depolarizing,
        readout_flip: args.readout_flip,
        seed: args.seed,
    };
    let points = hardware::evaluate(&head, &angles, &labels, &grid)?;
    let report = hardware::NoiseReport {
        model_dir: args.model_dir.display().to_string(),
        split: split.source.clone(),
        images: test.len(),
        grid,
        noise_model: hardware::NOISE_MODEL.into(),
        seconds: started.elapsed().as_secs_f64(),
        points,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    training::write_json(&args.out.join("noise.json"), &report)?;
    plot::noise_curves(&args.out.join("noise.png"), &report)?;
    print_noise_table(&report);
    println!("{} test images, {:.1} s; outputs in {}", report.images, report.seconds, args.out.display());
    Ok(())
}

/// Accuracy in % per (p, q), exact and per shot count.
fn print_noise_table(report: &hardware::NoiseReport) {
    let grid = &report.grid;
    print!("{:>10} {:>8} {:>9}", "depolar.", "readout", "exact");
    grid.shots.iter().for_each(|s| print!(" {:>9}", format!("{s} shots")));
    println!();
    for &p in &grid.depolarizing {
        for &q in &grid.readout_flip {
            print!("{p:>10} {q:>8}");
            for shots in std::iter::once(None).chain(grid.shots.iter().map(|&s| Some(s))) {
                match report.accuracy(p, q, shots) {
                    Some(a) => print!(" {:>9.3}", 100.0 * a),
                    None => print!(" {:>9}", "-"),
                }
            }
            println!();
        }
    }
}

fn qasm(args: QasmArgs) -> Result<()> {
    let device = cpu_device()?;
    let (model, head) = load_hybrid(&args.model_dir, &device)?;
    let out = args.out.unwrap_or_else(|| args.model_dir.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let circuit = out.join(export::CIRCUIT_QASM_FILE);
    training::write_atomically(&circuit, hardware::circuit_qasm3(&head)?.as_bytes())?;
    println!("{}", circuit.display());
    if args.images.is_empty() {
        return Ok(());
    }
    let mut cases = Vec::new();
    for path in &args.images {
        let pixels = data::load_image(path)?;
        let [angles] = hardware::angles(&model, std::iter::once(pixels.as_slice()), &device)[..] else {
            anyhow::bail!("the encoder gave no angles for {}", path.display());
        };
        let name =
            |p: Option<&std::ffi::OsStr>| p.map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let folder = name(path.parent().and_then(Path::file_name));
        let file =
            format!("{}{}{}.qasm2", folder, if folder.is_empty() { "" } else { "-" }, name(path.file_stem()));
        let (case, program) = hardware::qasm_case(&head, path.display().to_string(), &angles, file.clone())?;
        training::write_atomically(&out.join(&file), program.as_bytes())?;
        cases.push(case);
    }
    let expected = serde_json::json!({ "circuit": export::CIRCUIT_QASM_FILE, "cases": cases });
    training::write_json(&out.join("expected.json"), &expected)?;
    println!("{} OpenQASM 2.0 programs and expected.json in {}", cases.len(), out.display());
    Ok(())
}

fn report(args: ReportArgs) -> Result<()> {
    let dirs = if args.runs.is_empty() {
        let defaults =
            [ModelArg::Hybrid, ModelArg::HybridPaper, ModelArg::Cnn, ModelArg::ResNet18, ModelArg::Vgg16];
        let found: Vec<PathBuf> = defaults
            .iter()
            .map(|m| PathBuf::from(m.run_dir()))
            .filter(|dir| dir.join(report::METRICS_FILE).exists())
            .collect();
        anyhow::ensure!(!found.is_empty(), "no finished runs under runs/ (train first, or name run folders)");
        found
    } else {
        args.runs.clone()
    };
    let runs = dirs
        .iter()
        .map(|dir| report::Run::load(dir).with_context(|| format!("{} is not a finished run", dir.display())))
        .collect::<Result<Vec<_>>>()?;
    let classes = &runs[0].metrics.classes;
    if let Some(other) = runs.iter().find(|r| &r.metrics.classes != classes) {
        anyhow::bail!("{} has other classes than {}", other.dir.display(), runs[0].dir.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;

    let rows = report::table(&runs);
    let table = report::markdown(&rows);
    training::write_atomically(&args.out.join("table-1.md"), table.as_bytes())?;
    training::write_atomically(&args.out.join("table-1.csv"), report::csv(&rows).as_bytes())?;
    training::write_json(&args.out.join("table-1.json"), &rows)?;

    let names: Vec<&str> = runs.iter().map(|r| r.metrics.model.as_str()).collect();
    let bars: Vec<(&str, [f64; 4])> =
        names.iter().zip(&rows).map(|(&n, r)| (n, [r.accuracy, r.precision, r.recall, r.f1])).collect();
    plot::metric_bars(&args.out.join("fig1-metrics.png"), &bars)?;
    let curves: Vec<(&str, &[_])> =
        names.iter().zip(&runs).map(|(&n, r)| (n, r.metrics.epochs.as_slice())).collect();
    plot::comparison_curves(&args.out.join("fig2-curves.png"), &curves)?;
    let confusions: Vec<(&str, &Evaluation)> =
        names.iter().zip(&runs).map(|(&n, r)| (n, &r.metrics.test)).collect();
    plot::confusion_matrices(&args.out.join("fig3-confusion.png"), classes, &confusions)?;
    // Fig. 4: the first run whose model the trainer saved (a compact one; the hybrid first).
    match runs.iter().find(|r| r.dir.join(export::MODEL_DESCRIPTION_FILE).exists()) {
        Some(run) => prediction_figure(&args, run, &args.out.join("fig4-prediction.png"))?,
        None => eprintln!("no run has a saved compact model: Fig. 4 not drawn"),
    }
    print!("{table}");
    println!("outputs in {}", args.out.display());
    Ok(())
}

/// Fig. 4: `run`'s model on an unseen test image.
fn prediction_figure(args: &ReportArgs, run: &report::Run, path: &Path) -> Result<()> {
    let image = match &args.image {
        Some(image) => image.clone(),
        None => {
            let listing = Listing::scan(&args.data)?;
            let split = choose_split(&args.split, &args.data, 0, &listing)?;
            let cxr = listing.classes.iter().position(|c| c == "CXR");
            let pick = split.test.iter().find(|&&i| cxr.is_none_or(|c| usize::from(listing.files[i].0) == c));
            let &index = pick.context("the test split is empty")?;
            listing.root.join(&listing.files[index].1)
        }
    };
    let device = cpu_device()?;
    let (model, description) = export::load_model(&run.dir, &device)?;
    let pixels = data::load_image(&image)?;
    let probabilities = probabilities(&model, &pixels, &device)?;
    let folder = |p: &Path| p.parent().and_then(Path::file_name).map(|s| s.to_string_lossy().into_owned());
    let file = format!(
        "{}/{}",
        folder(&image).unwrap_or_default(),
        image.file_name().map(|s| s.to_string_lossy()).unwrap_or_default()
    );
    let true_class = folder(&image).unwrap_or_else(|| "unknown".into());
    let figure = plot::PredictionFigure {
        pixels: &pixels,
        side: data::IMAGE_SIDE,
        file: &file,
        true_class: &true_class,
        model: &run.metrics.model,
        classes: &description.classes,
        probabilities: &probabilities,
    };
    plot::prediction(path, &figure)?;
    Ok(())
}
