//! Arguments, file discovery and output formats; the library does the work.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use edge_runtime::watch::{Delivery, Event, Watcher};
use edge_runtime::{preprocess, Engine, EngineKind, InputError, Options, Prediction};
use shared::model::CLASS_NAMES;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Classifies medical images (AbdomenCT, BreastMRI, CXR, ChestCT, Hand, HeadCT) with the
/// hybrid quantum-classical model.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Model directory (hybrid.onnx, *.qmed, model-card.json); default: the workspace's models/.
    #[arg(long, global = true, value_name = "DIR")]
    model: Option<PathBuf>,
    /// `float`: tract + f32 circuit; `fixed`: the firmware's integer model, bit for bit.
    #[arg(long, global = true, value_enum, default_value_t = Kind::Float)]
    engine: Kind,
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Shorthand for `--format json` (one JSON object per line).
    #[arg(long, global = true)]
    json: bool,
    /// Shorthand for `--format csv`.
    #[arg(long, global = true)]
    csv: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Classify files and folders (recursively); exits 1 if any file failed.
    Classify {
        /// Image files (PNG, JPEG, BMP, TIFF, DICOM) or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Classify each new file in a drop folder once it is complete; runs until stopped.
    Watch {
        /// The folder to watch (recursively).
        dir: PathBuf,
        /// Move classified files into DIR/<class>/.
        #[arg(long, value_name = "DIR", conflicts_with = "copy_to")]
        move_to: Option<PathBuf>,
        /// Copy classified files into DIR/<class>/.
        #[arg(long, value_name = "DIR")]
        copy_to: Option<PathBuf>,
        /// Journal of handled files (default: DIR/.edge-runtime-journal.json).
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// Seconds between scans; a file is complete when unchanged for one interval.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Float,
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

/// Runs the command; `Ok(1)` when some files failed, `Err` when nothing could run.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format = if args.json {
        Format::Json
    } else if args.csv {
        Format::Csv
    } else {
        args.format
    };
    let defaults = Options::default();
    let options = Options {
        kind: match args.engine {
            Kind::Float => EngineKind::Float,
            Kind::Fixed => EngineKind::Fixed,
        },
        threads: args.threads.unwrap_or(defaults.threads),
        ..defaults
    };
    // The committed model, found from the crate's place in the workspace (cargo run) or
    // beside the working directory (an installed binary run from a checkout).
    let dir = args.model.unwrap_or_else(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        if workspace.is_dir() {
            workspace
        } else {
            PathBuf::from("models")
        }
    });
    let engine = Engine::load(&dir, &options)
        .with_context(|| format!("while loading the model from {}", dir.display()))?;
    let mut out = Output::new(format);
    match args.command {
        Command::Classify { paths } => classify(&engine, &paths, &mut out),
        Command::Watch { dir, move_to, copy_to, journal, interval } => {
            let delivery = match (move_to, copy_to) {
                (Some(d), _) => Delivery::MoveTo(d),
                (None, Some(d)) => Delivery::CopyTo(d),
                (None, None) => Delivery::Keep,
            };
            // Zero would make "unchanged for one interval" true between two writes of a file
            // still being copied in.
            let interval = Duration::try_from_secs_f64(interval)
                .ok()
                .filter(|i| !i.is_zero())
                .context("--interval must be a positive number of seconds")?;
            let mut watcher = Watcher::open(&dir, journal, delivery)?;
            out.header()?;
            loop {
                let started = Instant::now();
                let events = watcher.scan(&engine)?;
                let each = started.elapsed() / (events.len().max(1) as u32);
                for event in events {
                    match event {
                        Event::Classified { path, prediction } => out.row(&path, &prediction, each)?,
                        Event::Failed(error) => report(&error),
                    }
                }
                std::thread::sleep(interval);
            }
        }
    }
}

fn classify(engine: &Engine, paths: &[PathBuf], out: &mut Output) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    let mut failed = 0usize;
    for path in paths {
        if let Err(error) = collect(path, &mut files) {
            eprintln!("edge-runtime: {}: {error}", path.display());
            failed += 1;
        }
    }
    out.header()?;
    // Chunks bound memory on a Pi with a folder of thousands of files and let rows appear
    // while the rest still runs.
    for chunk in files.chunks(1024) {
        let started = Instant::now();
        let mut images = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        for (path, loaded) in chunk.iter().zip(preprocess::load_all(chunk, engine.options().threads)) {
            match loaded {
                Ok(image) => {
                    images.push(image);
                    names.push(path);
                }
                Err(error) => {
                    report(&error);
                    failed += 1;
                }
            }
        }
        let predictions = engine.classify(&images)?;
        // Decoding and inference of the chunk, shared equally: per-file timing inside a batch
        // has no other meaning.
        let each = started.elapsed() / (chunk.len().max(1) as u32);
        for (path, prediction) in names.iter().zip(&predictions) {
            out.row(path, prediction, each)?;
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn report(error: &InputError) {
    eprintln!("edge-runtime: {error}");
}

/// Files under `path`, sorted within each folder so output order is reproducible. Symbolic
/// links to folders inside a folder are not followed (as `find` and ripgrep do by default): a
/// link back up the tree would otherwise list the same files again until the path is too long.
fn collect(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if !path.is_dir() {
        // Missing files are reported by the decoder with the path, like any unreadable file.
        files.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let hidden = entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let linked_folder = entry.is_symlink() && entry.is_dir();
        if !hidden && !linked_folder {
            collect(&entry, files)?;
        }
    }
    Ok(())
}

struct Output {
    format: Format,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Output {
    fn new(format: Format) -> Self {
        Self { format, out: std::io::BufWriter::new(std::io::stdout()) }
    }

    fn header(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Json => Ok(()),
            Format::Csv => writeln!(self.out, "file,class,{},ms", CLASS_NAMES.join(",")),
            Format::Table => {
                write!(self.out, "{:<10} {:>6}", "class", "p")?;
                for name in CLASS_NAMES {
                    write!(self.out, " {:>9}", name)?;
                }
                writeln!(self.out, " {:>8}  file", "ms")?;
                self.out.flush()
            }
        }
    }

    fn row(&mut self, path: &Path, p: &Prediction, time: Duration) -> std::io::Result<()> {
        let ms = time.as_secs_f64() * 1e3;
        let file = path.display();
        match self.format {
            Format::Json => {
                let probabilities: serde_json::Map<String, serde_json::Value> = CLASS_NAMES
                    .iter()
                    .zip(p.probabilities)
                    .map(|(n, v)| (n.to_string(), f64::from(v).into()))
                    .collect();
                let row = serde_json::json!({
                    "file": path.to_string_lossy(),
                    "class": p.class_name(),
                    "probabilities": probabilities,
                    "ms": ms,
                });
                writeln!(self.out, "{row}")?;
            }
            Format::Csv => {
                let probabilities: Vec<String> = p.probabilities.iter().map(|v| format!("{v:.6}")).collect();
                writeln!(
                    self.out,
                    "{},{},{},{ms:.4}",
                    csv_field(&path.to_string_lossy()),
                    p.class_name(),
                    probabilities.join(",")
                )?;
            }
            Format::Table => {
                write!(self.out, "{:<10} {:>6.4}", p.class_name(), p.probabilities[p.class])?;
                for v in p.probabilities {
                    write!(self.out, " {v:>9.4}")?;
                }
                writeln!(self.out, " {ms:>8.3}  {file}")?;
            }
        }
        self.out.flush()
    }
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
