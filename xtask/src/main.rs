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
        let expected = classify_rows(&native, &[], &args, &images)?;
        let got = classify_rows(&cross, &QEMU_AARCH64, &args, &images)?;
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
    pi_package(&native, &images[..12])
}

/// `qemu-aarch64` with the cross toolchain's libraries.
const QEMU_AARCH64: [&str; 3] = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"];

/// `program args images` (run through `prefix`, e.g. qemu) printing CSV: its rows without the
/// last column, the time, the one field that may differ between runs.
fn classify_rows(program: &Path, prefix: &[&str], args: &[&str], images: &[String]) -> Result<Vec<String>> {
    let mut command = Command::new(prefix.first().map_or(program.as_os_str(), |p| p.as_ref()));
    if !prefix.is_empty() {
        command.args(&prefix[1..]).arg(program);
    }
    let out =
        command.args(args).args(images).output().with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.rsplit_once(',').map_or(l, |(row, _)| row).to_string())
        .collect())
}

/// The Pi's Debian package (`cargo deb`; edge-runtime's `[package.metadata.deb]`), made from
/// the cross build as the README says: arm64, the receiver's unit accepted by
/// `systemd-analyze verify` and enabled and started by the package's scripts, its settings a
/// conffile, and the packaged binary on the packaged model answering as the native build under
/// qemu-aarch64. Needs `cargo install cargo-deb` (`.ci/run`).
fn pi_package(native: &Path, images: &[String]) -> Result<()> {
    let out = target_dir().join("pi-package");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let deb = out.join("edge-runtime_arm64.deb");
    let deb_arg = deb.to_string_lossy();
    cargo(&[
        "deb",
        "-p",
        "edge-runtime",
        "--target",
        PI_TARGET,
        "--no-build",
        "--strip",
        "--fast",
        "--output",
        &deb_arg,
    ])
    .context("`cargo deb` (install it with `cargo install cargo-deb`)")?;
    let dpkg_deb = |args: &[&std::ffi::OsStr]| -> Result<String> {
        let out = Command::new("dpkg-deb").args(args).output().context("running dpkg-deb")?;
        if !out.status.success() {
            bail!("dpkg-deb {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let architecture = dpkg_deb(&["--field".as_ref(), deb.as_os_str(), "Architecture".as_ref()])?;
    if architecture != "arm64" {
        bail!("the package is for {architecture}, not arm64");
    }
    let (root, control) = (out.join("root"), out.join("control"));
    dpkg_deb(&["-x".as_ref(), deb.as_os_str(), root.as_os_str()])?;
    dpkg_deb(&["-e".as_ref(), deb.as_os_str(), control.as_os_str()])?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("the package has no {}", path.display()))
    };
    if !read(&control.join("postinst"))?.contains("deb-systemd-invoke $_dh_action edge-runtime.service") {
        bail!("the package does not start edge-runtime.service on installation");
    }
    if read(&control.join("conffiles"))?.trim() != "/etc/default/edge-runtime" {
        bail!("/etc/default/edge-runtime is not a conffile");
    }
    read(&root.join("etc/default/edge-runtime"))?;
    // The unit as installed, with its paths moved into the unpacked package.
    let unit = read(&root.join("usr/lib/systemd/system/edge-runtime.service"))?
        .replace("/usr/", &format!("{}/usr/", root.display()))
        .replace("=/etc/", &format!("={}/etc/", root.display()));
    let unit_path = out.join("edge-runtime.service");
    std::fs::write(&unit_path, unit).with_context(|| format!("writing {}", unit_path.display()))?;
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .context("running systemd-analyze (Debian package systemd)")?;
    let complaints = String::from_utf8_lossy(&verify.stderr);
    if !verify.status.success() || !complaints.trim().is_empty() {
        bail!("systemd-analyze verify edge-runtime.service: {complaints}");
    }
    let models = root.join("usr/share/edge-runtime/models");
    let models_arg = models.to_string_lossy();
    let args = ["--model", &models_arg, "--engine", "fixed", "--csv", "classify"];
    let expected = classify_rows(native, &[], &args, images)?;
    let packaged = classify_rows(&root.join("usr/bin/edge-runtime"), &QEMU_AARCH64, &args, images)?;
    if packaged != expected || expected.len() != images.len() + 1 {
        bail!("the packaged binary and model answer differently:\n  native:   {expected:?}\n  packaged: {packaged:?}");
    }
    let size = std::fs::metadata(&deb).map_or(0, |m| m.len());
    eprintln!(
        "pi: {} ({:.1} MB): arm64, unit verified, started on install; packaged binary and model equal native on {} images",
        deb.display(),
        size as f64 / 1e6,
        images.len()
    );
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
