//! `cargo xtask qasm`: the OpenQASM export checked by a toolchain nobody here wrote. The
//! trainer writes the committed model's circuit as OpenQASM 3 and 60 test images' circuits
//! as OpenQASM 2.0 with the exact `<Z_i>` of each; Qiskit (pinned in
//! `tests/qiskit/requirements.txt`, installed into a venv under target/) loads every file
//! and reproduces those values from its statevector (1e-9) and its sampler (shot error).

use anyhow::{Context, Result};
use std::process::Command;

/// Test images whose circuits are checked.
const IMAGES: usize = 60;

pub fn run() -> Result<()> {
    let trainer = crate::release_binary("trainer")?;
    let root = crate::root();
    let target = crate::target_dir();
    let out = target.join("qasm-check");
    // Files of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&out);
    let images = crate::test_files(IMAGES)?;
    let status = Command::new(trainer)
        .current_dir(&root)
        .args(["qasm", "--model-dir", "models", "--out"])
        .arg(&out)
        .args(images.iter().map(|(_, path)| path))
        .status()
        .context("running trainer qasm")?;
    anyhow::ensure!(status.success(), "trainer qasm failed ({status})");

    let venv = target.join("qiskit-venv");
    let python = venv.join("bin/python3");
    if !python.exists() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let requirements = root.join("tests/qiskit/requirements.txt");
    run_command(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    run_command(Command::new(&python).arg(root.join("tests/qiskit/check_qasm.py")).arg(&out))
}

fn run_command(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    eprintln!("+ {shown}");
    let status = command.status().with_context(|| format!("running {shown}"))?;
    anyhow::ensure!(status.success(), "{shown} failed ({status})");
    Ok(())
}
