//! `cargo xtask <job>`: the project's checks, runnable locally exactly as CI runs them.
//!
//! - `test`: everything below, in order (the README's test command);
//! - `host`: `cargo test --workspace --release` (with the trainer's wgpu backend, its tests on
//!   Mesa's lavapipe where there is no GPU);
//! - `pi`: cross-builds `edge-runtime` for a Raspberry Pi (aarch64) and checks its output
//!   under `qemu-aarch64` equals the native build's;
//! - `no-std`: `shared` builds for the RP2040 target without std;
//! - `interop`: Qiskit runs the trained circuit's OpenQASM export and onnxruntime the
//!   whole-model ONNX, and both reproduce this project's answers (see `interop.rs`);
//! - `dicom`: dcmtk and pydicom files in every transfer syntax and several bit depths through
//!   `classify`, and dcmtk's senders into `receive`, the DICOM receiver (see `dicom.rs`);
//! - `firmware`: builds the firmware (QEMU and Pico), prints flash/RAM, streams test images
//!   through the QEMU build and checks every answer against the host (see `firmware.rs`);
//! - `firmware-size`: only the builds and the flash/RAM figures;
//! - `pico`: the Pico binary itself on an emulated RP2040 (rp2040js): the same streams, damaged
//!   frames and reset, and its emulated cycles per image (see `pico.rs`);
//! - `fuzz`: the cargo-fuzz targets (own workspace) type-check on stable;
//! - `gpu`: only the wgpu tests of `host`: burn's wgpu backend matches the CPU backend
//!   (losses, gradients, `trainer predict`);
//! - `mac`: the trainer type-checks for an Apple-silicon Mac, CPU and Metal backends.

mod dicom;
mod firmware;
mod interop;
mod pico;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Target of the RP2040 (Cortex-M0+, no FPU, no compare-and-swap atomics).
const MCU_TARGET: &str = "thumbv6m-none-eabi";

fn main() -> ExitCode {
    let job = std::env::args().nth(1).unwrap_or_else(|| "test".into());
    match run(&job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {job}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(job: &str) -> Result<()> {
    match job {
        "test" => {
            no_std()?;
            host()?;
            pi()?;
            interop::run()?;
            dicom::run()?;
            fuzz()?;
            mac()?;
            firmware::run()?;
            pico::run()
        }
        "host" => host(),
        "no-std" => no_std(),
        "pi" => pi(),
        "firmware" => firmware::run(),
        "firmware-size" => firmware::sizes(),
        "pico" => pico::run(),
        "fuzz" => fuzz(),
        "gpu" => gpu(),
        "interop" => interop::run(),
        "dicom" => dicom::run(),
        "mac" => mac(),
        other => {
            bail!("unknown job `{other}` (jobs: test, host, pi, no-std, interop, dicom, firmware, firmware-size, pico, fuzz, gpu, mac)")
        }
    }
}

/// Every workspace test in release mode, the trainer's wgpu backend compiled in: one feature
/// set for all jobs, since a second one (`-p`, or without wgpu) would rebuild half of burn.
const WORKSPACE_TESTS: [&str; 5] = ["test", "--workspace", "--release", "--features", "trainer/wgpu"];

fn host() -> Result<()> {
    workspace_tests(&[])
}

/// `cargo test` with [`WORKSPACE_TESTS`] and `extra`. Where no GPU driver is chosen
/// (`VK_DRIVER_FILES` unset) and Mesa's lavapipe is installed (Debian `mesa-vulkan-drivers`),
/// the wgpu tests run on it: Vulkan on the CPU, slow, but the same shaders a GPU runs.
fn workspace_tests(extra: &[&str]) -> Result<()> {
    let args = [&WORKSPACE_TESTS[..], extra].concat();
    eprintln!("+ cargo {}", args.join(" "));
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.args(&args);
    if std::env::var_os("VK_DRIVER_FILES").is_none() {
        let lavapipe = std::fs::read_dir("/usr/share/vulkan/icd.d")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .find(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("lvp_icd.")));
        if let Some(lavapipe) = lavapipe {
            command.env("VK_DRIVER_FILES", lavapipe).env("CUBECL_WGPU_DEFAULT_DEVICE", "Cpu");
        }
    }
    let status = command.status().context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn no_std() -> Result<()> {
    cargo(&["build", "-p", "shared", "--no-default-features", "--target", MCU_TARGET])?;
    cargo(&["build", "-p", "shared", "--no-default-features", "--features", "defmt", "--target", MCU_TARGET])
}

/// Target of a 64-bit Raspberry Pi OS (Pi 3, 4, 5).
const PI_TARGET: &str = "aarch64-unknown-linux-gnu";

/// Cross-builds `edge-runtime` for the Pi and checks that, run under `qemu-aarch64`, it
/// answers as the native build on real test images: the fixed engine digit for digit, the
/// float engine with the same classes and probabilities within 1e-5. Needs the
/// Debian packages `gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user` (`.ci/run`).
fn pi() -> Result<()> {
    let native = release_binary("edge-runtime")?;
    cargo(&["build", "--release", "-p", "edge-runtime", "--bin", "edge-runtime", "--target", PI_TARGET])?;
    let cross = target_dir().join(PI_TARGET).join("release/edge-runtime");
    let images: Vec<String> =
        test_files(118)?.into_iter().map(|(_, path)| path.to_string_lossy().into_owned()).collect();
    for engine in ["float", "fixed"] {
        let args = ["--engine", engine, "--csv", "--threads", "1", "classify"];
        let run = |program: &std::path::Path, prefix: &[&str]| -> Result<Vec<String>> {
            let mut command = Command::new(prefix.first().map_or(program.as_os_str(), |p| p.as_ref()));
            if !prefix.is_empty() {
                command.args(&prefix[1..]).arg(program);
            }
            let out = command
                .args(args)
                .args(&images)
                .output()
                .with_context(|| format!("running {}", program.display()))?;
            if !out.status.success() {
                bail!("{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
            }
            // The last column is the time, the one field that may differ.
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.rsplit_once(',').map_or(l, |(row, _)| row).to_string())
                .collect())
        };
        let expected = run(&native, &[])?;
        let got = run(&cross, &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"])?;
        // Integer arithmetic must match to the last digit; tract's f32 kernels differ between
        // x86 (AVX/FMA) and aarch64 (NEON) in summation order, so float probabilities may
        // differ in the 6th decimal, never in the class.
        let tolerance = if engine == "fixed" { 0.0 } else { 1e-5 };
        let same = |e: &String, g: &String| {
            let (e, g): (Vec<&str>, Vec<&str>) = (e.split(',').collect(), g.split(',').collect());
            e.len() == g.len()
                && e.iter().zip(&g).all(|(a, b)| {
                    a == b || matches!((a.parse::<f64>(), b.parse::<f64>()), (Ok(x), Ok(y)) if (x - y).abs() <= tolerance)
                })
        };
        if let Some((n, (e, g))) = expected.iter().zip(&got).enumerate().find(|(_, (e, g))| !same(e, g)) {
            bail!("{engine}: aarch64 differs from native on row {n}:\n  native:  {e}\n  aarch64: {g}");
        }
        if expected.len() != got.len() || expected.len() != images.len() + 1 {
            bail!(
                "{engine}: {} native rows, {} aarch64 rows, {} images",
                expected.len(),
                got.len(),
                images.len()
            );
        }
        eprintln!("pi: {engine} engine, {} images: aarch64 under qemu equals native", images.len());
    }
    Ok(())
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// Cargo's target folder of the workspace.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), Into::into)
}

/// A workspace binary built as [`WORKSPACE_TESTS`] builds it (a no-op after `host`):
/// `cargo build -p` would resolve other features and rebuild half the workspace.
pub(crate) fn release_binary(name: &str) -> Result<PathBuf> {
    workspace_tests(&["--no-run"])?;
    Ok(target_dir().join("release").join(name))
}

/// `count` files of the test split (`../shared/data/split-seed0.json`), spread evenly over
/// its class-ordered list so every class is there: `(name in the split, path)`.
pub(crate) fn test_files(count: usize) -> Result<Vec<(String, PathBuf)>> {
    let data = root().join("../shared/data");
    let split_path = data.join("split-seed0.json");
    let split: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&split_path).with_context(|| format!("reading {}", split_path.display()))?,
    )
    .with_context(|| format!("parsing {}", split_path.display()))?;
    let files: Vec<&str> = split["test_files"]
        .as_array()
        .context("split has no test_files")?
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    if count == 0 || files.len() < count {
        bail!("{} test files in the split, {count} wanted", files.len());
    }
    let step = files.len() / count;
    Ok((0..count)
        .map(|i| (files[i * step].to_string(), data.join("medical-mnist").join(files[i * step])))
        .collect())
}

/// The wgpu training path against the CPU one alone (`trainer/tests/wgpu.rs`; `host` runs it
/// too).
fn gpu() -> Result<()> {
    workspace_tests(&["--test", "wgpu"])
}

/// Target of an Apple-silicon Mac (M1 and later).
const MAC_TARGET: &str = "aarch64-apple-darwin";

/// The trainer as a Mac user builds it (the CPU backend and wgpu, which is Metal there)
/// type-checks for the Mac: every line of ours and all dependencies' Rust. Linking needs
/// Apple's SDK, which a Linux machine lacks; so do the dev-dependencies' build scripts (tract's
/// assembly), so tests are left out.
fn mac() -> Result<()> {
    cargo(&["check", "-p", "trainer", "--features", "wgpu", "--target", MAC_TARGET])
}

fn fuzz() -> Result<()> {
    // Its own workspace and target dir (fuzz/target); fuzzing itself needs nightly.
    cargo(&["check", "--manifest-path", "fuzz/Cargo.toml"])
}

pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("+ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(args).status().with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
