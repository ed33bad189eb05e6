//! `cargo xtask <job>`: the project's checks, runnable locally exactly as CI runs them.
//!
//! - `test`: everything below, in order (the README's test command);
//! - `host`: `cargo test --workspace`;
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
            fuzz()?;
            firmware::run()
        }
        "host" => host(),
        "no-std" => no_std(),
        "firmware" => firmware::run(),
        "firmware-size" => firmware::sizes(),
        "fuzz" => fuzz(),
        other => bail!("unknown job `{other}` (jobs: test, host, no-std, firmware, firmware-size, fuzz)"),
    }
}

fn host() -> Result<()> {
    cargo(&["test", "--workspace", "--release"])
}

fn no_std() -> Result<()> {
    cargo(&["build", "-p", "shared", "--no-default-features", "--target", MCU_TARGET])?;
    cargo(&["build", "-p", "shared", "--no-default-features", "--features", "defmt", "--target", MCU_TARGET])
}

fn fuzz() -> Result<()> {
    // Its own workspace and target dir (fuzz/target); fuzzing itself needs nightly.
    cargo(&["check", "--manifest-path", "fuzz/Cargo.toml"])
}

fn cargo(args: &[&str]) -> Result<()> {
    eprintln!("+ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo).args(args).status().with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
