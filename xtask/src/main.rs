//! `cargo xtask <job>`: the project's checks, runnable locally exactly as CI runs them.
//!
//! - `test`: everything below, in order (the README's test command);
//! - `host`: `cargo test --workspace`;
//! - `pi`: cross-builds `edge-runtime` for a Raspberry Pi (aarch64) and checks its output
//!   under `qemu-aarch64` equals the native build's;
//! - `no-std`: `shared` builds for the RP2040 target without std;
//! - `firmware`: builds the firmware (QEMU and Pico), prints flash/RAM, streams test images
//!   through the QEMU build and checks every answer against the host (see `firmware.rs`);
//! - `firmware-size`: only the builds and the flash/RAM figures;
//! - `fuzz`: the cargo-fuzz targets (own workspace) type-check on stable.

mod firmware;

use anyhow::{bail, Context, Result};
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
            fuzz()?;
            firmware::run()
        }
        "host" => host(),
        "no-std" => no_std(),
        "pi" => pi(),
        "firmware" => firmware::run(),
        "firmware-size" => firmware::sizes(),
        "fuzz" => fuzz(),
        other => bail!("unknown job `{other}` (jobs: test, host, pi, no-std, firmware, firmware-size, fuzz)"),
    }
}

fn host() -> Result<()> {
    cargo(&["test", "--workspace", "--release"])
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
    let bin = ["--release", "-p", "edge-runtime", "--bin", "edge-runtime"];
    cargo(&[&["build"][..], &bin].concat())?;
    cargo(&[&["build"][..], &bin, &["--target", PI_TARGET]].concat())?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let native = target.join("release/edge-runtime");
    let cross = target.join(PI_TARGET).join("release/edge-runtime");
    // Every 100th test image of the split: 118 images, all six classes.
    let split =
        std::fs::read_to_string(root.join("../shared/data/split-seed0.json")).context("split file")?;
    let images: Vec<String> = split
        .split('"')
        .filter(|s| s.ends_with(".jpeg"))
        .step_by(100)
        .map(|f| root.join("../shared/data/medical-mnist").join(f).to_string_lossy().into_owned())
        .collect();
    if images.is_empty() {
        bail!("no test images listed in split-seed0.json");
    }
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
