//! Arguments, file discovery and output formats; the library does the work.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use edge_runtime::receive::{Event as Received, ReceiveOptions, Receiver};
use edge_runtime::stream::{Link, LinkOptions};
use edge_runtime::watch::{Delivery, Event, Watcher};
use edge_runtime::{preprocess, record, Engine, EngineKind, InputError, Options, Prediction};
use shared::model::CLASS_NAMES;
use shared::proto::Classification;
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Classifies medical images (AbdomenCT, BreastMRI, CXR, ChestCT, Hand, HeadCT) with the
/// hybrid quantum-classical model.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Args {
    /// Model directory (hybrid.onnx, *.qmed, model-card.json); default: the workspace's models/.
    #[arg(long, global = true, value_name = "DIR")]
    model: Option<PathBuf>,
    /// `float`: tract + f32 circuit; `onnx`: the whole model as one ONNX graph in tract;
    /// `fixed`: the firmware's integer model, bit for bit.
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
    /// A DICOM receiver (Storage SCP): scanners and PACS send images with C-STORE (C-ECHO
    /// answers too); each is classified as it arrives, printed and journaled; runs until
    /// stopped.
    Receive {
        /// TCP port: 11112 is DICOM's usual unprivileged one (104 needs root); 0 picks a free one.
        #[arg(long, default_value_t = 11112)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0")]
        bind: IpAddr,
        /// This node's AE title: associations calling another title are rejected.
        #[arg(long, default_value = "QMEDSCAN")]
        ae_title: String,
        /// The journal: one JSON line per received data set (`classify --json`'s records plus
        /// the DICOM identifiers), appended and synced before each image is acknowledged.
        #[arg(long, value_name = "FILE", default_value = "receive-journal.jsonl")]
        journal: PathBuf,
        /// Keep each received file as DIR/<class>/<SOPInstanceUID>.dcm (undecodable ones in
        /// DIR/unreadable/).
        #[arg(long, value_name = "DIR")]
        store_to: Option<PathBuf>,
        /// Also send each image to a device running the firmware on this serial port and
        /// journal its answer.
        #[arg(long, value_name = "PORT")]
        forward: Option<String>,
        /// Line rate of the forwarding UART (USB CDC ignores it).
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Seconds to wait for the device's answer to one image.
        #[arg(long, default_value_t = 10.0)]
        device_timeout: f64,
        /// Associations served at once; more wait up to --timeout for a free one.
        #[arg(long, default_value_t = 8)]
        max_associations: usize,
        /// The largest data set accepted, in MiB (larger ones are answered A700). The receiver
        /// holds up to --max-associations of them in memory at once.
        #[arg(long, default_value_t = 256)]
        max_object_mib: usize,
        /// Seconds of silence from a sender before its association is aborted.
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Send files and folders to a device running the firmware over a serial port and print
    /// its answers (the device classifies; `--engine` does not apply). Exits 1 if any file
    /// failed or, with `--verify`, any answer differs from the host's.
    Stream {
        /// The device's serial port: /dev/ttyACM0 (a Pico over USB), /dev/ttyUSB0, COM3, a pty.
        #[arg(long)]
        port: String,
        /// Line rate of a UART (USB CDC ignores it).
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Seconds to wait for the device's answer to one image.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Check every answer against the host's integer model (`--engine fixed`), bit for bit.
        #[arg(long)]
        verify: bool,
        /// Image files (PNG, JPEG, BMP, TIFF, DICOM) or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Float,
    Onnx,
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
        kind: match (args.engine, &args.command) {
            // The device classifies; the host's integer model gives the handshake's model
            // hash and, with `--verify`, the expected answers.
            (_, Command::Stream { .. }) | (Kind::Fixed, _) => EngineKind::Fixed,
            (Kind::Float, _) => EngineKind::Float,
            (Kind::Onnx, _) => EngineKind::Onnx,
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
            let interval = positive_seconds(interval, "--interval")?;
            let mut watcher = Watcher::open(&dir, journal, delivery)?;
            out.header()?;
            loop {
                let started = Instant::now();
                let events = watcher.scan(&engine)?;
                let each = started.elapsed() / (events.len().max(1) as u32);
                for event in events {
                    match event {
                        Event::Classified { path, prediction } => out.row(&path, &prediction, each, None)?,
                        Event::Failed(error) => report(&error),
                    }
                }
                std::thread::sleep(interval);
            }
        }
        Command::Receive {
            port,
            bind,
            ae_title,
            journal,
            store_to,
            forward,
            baud,
            device_timeout,
            max_associations,
            max_object_mib,
            timeout,
        } => {
            let device_timeout = positive_seconds(device_timeout, "--device-timeout")?;
            let options = ReceiveOptions {
                ae_title,
                journal,
                store_to,
                forward: forward.map(|port| LinkOptions { port, baud, timeout: device_timeout }),
                max_associations,
                max_object_bytes: max_object_mib.saturating_mul(1 << 20),
                timeout: positive_seconds(timeout, "--timeout")?,
            };
            receive(&engine, options, SocketAddr::new(bind, port), out)
        }
        Command::Stream { port, baud, timeout, verify, paths } => {
            let timeout = positive_seconds(timeout, "--timeout")?;
            stream(&engine, LinkOptions { port, baud, timeout }, verify, &paths, &mut out)
        }
    }
}

/// `edge-runtime receive`: serves until the process is stopped.
fn receive(
    engine: &Engine,
    options: ReceiveOptions,
    address: SocketAddr,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let title = &options.ae_title;
    if title.trim().is_empty()
        || title.len() > 16
        || title.chars().any(|c| c == '\\' || !c.is_ascii() || c.is_ascii_control())
    {
        bail!("--ae-title {title:?}: an AE title is 1 to 16 ASCII characters without backslashes");
    }
    let receiver = Receiver::open(engine, options.clone())?;
    let listener = TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?;
    eprintln!(
        "edge-runtime: receive: {title} listening on {}, journal {}{}, {} transfer syntaxes",
        listener.local_addr()?,
        options.journal.display(),
        options.store_to.as_ref().map(|d| format!(", files kept in {}", d.display())).unwrap_or_default(),
        receiver.transfer_syntaxes().len(),
    );
    let out = Mutex::new(out);
    out.lock().unwrap_or_else(|p| p.into_inner()).header()?;
    receiver.serve(&listener, &|event| match event {
        Received::Classified { file, prediction, device, elapsed } => {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = out.row(Path::new(file), prediction, elapsed, device) {
                eprintln!("edge-runtime: receive: cannot print a result ({e}); it is in the journal");
            }
        }
        Received::Log(line) => eprintln!("edge-runtime: receive: {line}"),
    });
    Ok(ExitCode::SUCCESS)
}

/// `value` seconds, refused unless positive and finite.
fn positive_seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

/// Every file under `paths`, and how many paths could not be listed (reported).
fn collect_all(paths: &[PathBuf]) -> (Vec<PathBuf>, usize) {
    let mut files = Vec::new();
    let mut failed = 0usize;
    for path in paths {
        if let Err(error) = collect(path, &mut files) {
            eprintln!("edge-runtime: {}: {error}", path.display());
            failed += 1;
        }
    }
    (files, failed)
}

fn classify(engine: &Engine, paths: &[PathBuf], out: &mut Output) -> anyhow::Result<ExitCode> {
    let (files, mut failed) = collect_all(paths);
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
            out.row(path, prediction, each, None)?;
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `stream`: one image at a time to the device (the protocol has one in flight), decoding
/// ahead in chunks on the engine's threads.
fn stream(
    engine: &Engine,
    options: LinkOptions,
    verify: bool,
    paths: &[PathBuf],
    out: &mut Output,
) -> anyhow::Result<ExitCode> {
    let (files, mut failed) = collect_all(paths);
    let (port, baud) = (options.port.clone(), options.baud);
    let mut link = Link::connect(options, engine.model_hash())?;
    eprintln!(
        "edge-runtime: {port}: device speaks protocol {}, runs model {} (the host's)",
        link.hello().protocol_version,
        link.hello().model_hash
    );
    out.stream = true;
    out.header()?;
    let progress = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} images, {per_sec}, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if !std::io::stderr().is_terminal() {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let say = |line: String| progress.suspend(|| eprintln!("edge-runtime: {line}"));
    let started = Instant::now();
    let (mut streamed, mut device_us, mut differ) = (0usize, 0u64, 0usize);
    for chunk in files.chunks(256) {
        for (path, loaded) in chunk.iter().zip(preprocess::load_all(chunk, engine.options().threads)) {
            progress.inc(1);
            let image = match loaded {
                Ok(image) => image,
                Err(error) => {
                    say(error.to_string());
                    failed += 1;
                    continue;
                }
            };
            let answer = link
                .classify(&image, |r| say(format!("{}: {}; {}", path.display(), r.problem, r.action)))
                .with_context(|| format!("stopped at {} after {streamed} images", path.display()))?;
            if verify {
                let host = engine.classify_integer(std::slice::from_ref(&image))?;
                let device = &answer.classification;
                if let Some(host) =
                    host.first().filter(|h| (h.class, h.logits) != (device.class, device.logits))
                {
                    say(format!(
                        "{}: the device answered class {} logits {:?}, the host's integer model class {} logits {:?}",
                        path.display(),
                        device.class,
                        device.logits,
                        host.class,
                        host.logits
                    ));
                    differ += 1;
                }
            }
            progress.suspend(|| {
                out.row(path, &answer.prediction, answer.round_trip, Some(&answer.classification))
            })?;
            streamed += 1;
            device_us += u64::from(answer.classification.elapsed_us);
        }
    }
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let to_device = link.bytes_sent() as f64 / seconds;
    // 8N1: ten bits on the line per byte.
    let raw = f64::from(baud) / 10.0;
    let share = if to_device <= raw {
        format!("{:.0} % of a {baud}-baud UART's {raw:.0} B/s", 100.0 * to_device / raw)
    } else {
        format!("more than a {baud}-baud UART carries ({raw:.0} B/s): USB CDC or a pty")
    };
    eprintln!(
        "edge-runtime: {streamed} images in {seconds:.1} s: {:.1} images/s; {to_device:.0} B/s to the device, {share}; the device's own time {:.1} ms/image{}",
        streamed as f64 / seconds,
        device_us as f64 / streamed.max(1) as f64 / 1e3,
        if verify { format!("; {differ} answers differ from the host's integer model") } else { String::new() },
    );
    Ok(if failed == 0 && differ == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
    /// Rows carry the device's own time (`stream`).
    stream: bool,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl Output {
    fn new(format: Format) -> Self {
        Self { format, stream: false, out: std::io::BufWriter::new(std::io::stdout()) }
    }

    fn header(&mut self) -> std::io::Result<()> {
        match self.format {
            Format::Json => Ok(()),
            Format::Csv => {
                let device = if self.stream { ",device_ms" } else { "" };
                writeln!(self.out, "file,class,{},ms{device}", CLASS_NAMES.join(","))
            }
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

    /// One answer; `time` is the host's (inference, or the round trip to a device), `device`
    /// the device's own answer when a device classified.
    fn row(
        &mut self,
        path: &Path,
        p: &Prediction,
        time: Duration,
        device: Option<&Classification>,
    ) -> std::io::Result<()> {
        let ms = time.as_secs_f64() * 1e3;
        let device_ms = device.map(|d| f64::from(d.elapsed_us) / 1e3);
        let file = path.display();
        match self.format {
            Format::Json => {
                writeln!(self.out, "{}", record::json(&path.to_string_lossy(), p, ms, device))?;
            }
            Format::Csv => {
                let probabilities: Vec<String> = p.probabilities.iter().map(|v| format!("{v:.6}")).collect();
                write!(
                    self.out,
                    "{},{},{},{ms:.4}",
                    csv_field(&path.to_string_lossy()),
                    p.class_name(),
                    probabilities.join(",")
                )?;
                match device_ms {
                    Some(d) => writeln!(self.out, ",{d:.3}")?,
                    None => writeln!(self.out)?,
                }
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
