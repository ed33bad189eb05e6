//! Images per second and latency (p50 / p99) of the engine on real test images: single images
//! and batches, 1 thread and all threads, float and fixed engines, plus file decoding.
//!
//! `cargo bench -p edge-runtime --bench throughput` (prints a table; run on an idle machine
//! and report the load average with the figures).

use edge_runtime::{preprocess, Engine, EngineKind, Image, Options};
use std::path::Path;
use std::time::{Duration, Instant};

const IMAGES: usize = 4096;
const SINGLE_RUNS: usize = 2000;
/// Images per `classify` call in the middle mode (the engine's own tract batch is its default).
const BATCH: usize = 64;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let split: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("../shared/data/split-seed0.json")).expect("split file"),
    )
    .expect("split JSON");
    let files: Vec<_> = split["test_files"]
        .as_array()
        .expect("test_files")
        .iter()
        .step_by(2)
        .take(IMAGES)
        .map(|f| root.join("../shared/data/medical-mnist").join(f.as_str().expect("name")))
        .collect();
    let started = Instant::now();
    let images: Vec<Image> = files.iter().map(|p| preprocess::load(p).expect("test image")).collect();
    let decode = started.elapsed();
    println!(
        "decode + preprocess (JPEG 64x64, 1 thread): {:.0} images/s",
        images.len() as f64 / decode.as_secs_f64()
    );

    let all = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "{:<6} {:>7} {:<14} {:>12} {:>10} {:>10}",
        "engine", "threads", "mode", "images/s", "p50 ms", "p99 ms"
    );
    for kind in [EngineKind::Float, EngineKind::Onnx, EngineKind::Fixed] {
        for threads in [1, all] {
            let engine = Engine::load(root.join("models"), &Options { kind, threads, ..Options::default() })
                .expect("model");
            let name = format!("{kind:?}").to_lowercase();
            // Warm-up: first runs allocate tract's scratch space.
            engine.classify(&images[..BATCH]).expect("classify");
            let single: Vec<Duration> = (0..SINGLE_RUNS)
                .map(|i| time(|| engine.classify(std::slice::from_ref(&images[i % images.len()]))))
                .collect();
            report(&name, threads, "single", &single, 1);
            let batches: Vec<Duration> =
                images.chunks_exact(BATCH).map(|chunk| time(|| engine.classify(chunk))).collect();
            report(&name, threads, &format!("batch {BATCH}"), &batches, BATCH);
            let whole: Vec<Duration> = (0..3).map(|_| time(|| engine.classify(&images))).collect();
            report(&name, threads, &format!("batch {}", images.len()), &whole, images.len());
        }
    }
}

fn time<T, E: std::fmt::Debug>(f: impl FnOnce() -> Result<T, E>) -> Duration {
    let started = Instant::now();
    f().expect("classify");
    started.elapsed()
}

/// Throughput from the total time; latency percentiles per call.
fn report(engine: &str, threads: usize, mode: &str, runs: &[Duration], per_run: usize) {
    let total: Duration = runs.iter().sum();
    let mut sorted = runs.to_vec();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    let rate = (runs.len() * per_run) as f64 / total.as_secs_f64();
    println!("{engine:<6} {threads:>7} {mode:<14} {rate:>12.0} {:>10.3} {:>10.3}", pct(0.5), pct(0.99));
}
