//! `cargo xtask interop`: toolchains nobody here wrote read this project's exports.
//!
//! - OpenQASM: the trainer writes the committed circuit as OpenQASM 3 and 60 test images'
//!   circuits as OpenQASM 2.0 with the exact `<Z_i>` of each; Qiskit loads every file and
//!   reproduces those values from its statevector (1e-9) and its sampler (shot error).
//! - ONNX: 200 test images as lossless PNG; `edge-runtime --json classify` answers them
//!   (tract encoder + `shared` circuit); onnxruntime runs `models/hybrid-full.onnx` on the same
//!   pixels and must give the same classes and probabilities within 1e-5.
//!
//! The Python side is pinned in `tests/interop/requirements.txt`, installed into a venv under
//! target/.

use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Test images whose OpenQASM circuits are checked.
const QASM_IMAGES: usize = 60;
/// Test images the whole-model ONNX is checked on.
const ONNX_IMAGES: usize = 200;

pub fn run() -> Result<()> {
    let trainer = crate::release_binary("trainer")?;
    let edge_runtime = crate::release_binary("edge-runtime")?;
    let root = crate::root();
    let out = crate::target_dir().join("interop");
    // Files of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&out);
    let python = venv("interop-venv", &root.join("tests/interop/requirements.txt"))?;

    let qasm = out.join("qasm");
    let images = crate::test_files(QASM_IMAGES)?;
    run_command(
        Command::new(trainer)
            .current_dir(&root)
            .args(["qasm", "--model-dir", "models", "--out"])
            .arg(&qasm)
            .args(images.iter().map(|(_, path)| path)),
    )?;
    run_command(Command::new(&python).arg(root.join("tests/interop/check_qasm.py")).arg(&qasm))?;

    let pngs = lossless_copies(&out.join("png"), ONNX_IMAGES)?;
    let answers = Command::new(edge_runtime)
        .current_dir(&root)
        .args(["--model", "models", "--json", "classify"])
        .args(&pngs)
        .output()
        .context("running edge-runtime classify")?;
    ensure!(
        answers.status.success(),
        "edge-runtime classify failed: {}",
        String::from_utf8_lossy(&answers.stderr)
    );
    let answers_path = out.join("answers.jsonl");
    std::fs::write(&answers_path, &answers.stdout).context("writing the answers")?;
    run_command(
        Command::new(&python)
            .arg(root.join("tests/interop/check_onnx.py"))
            .arg(root.join("models").join(shared::model::FULL_ONNX_FILE))
            .arg(&answers_path),
    )
}

/// A venv under target/ named `name` with the packages pinned in `requirements`; returns its
/// interpreter.
pub(crate) fn venv(name: &str, requirements: &Path) -> Result<PathBuf> {
    let venv = crate::target_dir().join(name);
    let python = venv.join("bin/python3");
    if !python.exists() {
        run_command(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run_command(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements),
    )?;
    Ok(python)
}

/// `count` test images decoded by the `image` crate and written as PNG, so Python's decoder
/// sees exactly the pixels the runtime does (JPEG decoders round differently).
fn lossless_copies(dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::test_files(count)?
        .into_iter()
        .enumerate()
        .map(|(i, (name, path))| {
            let gray = image::open(&path).with_context(|| format!("decoding {name}"))?.to_luma8();
            let png = dir.join(format!("{i:04}.png"));
            gray.save(&png).with_context(|| format!("writing {}", png.display()))?;
            Ok(png)
        })
        .collect()
}

pub(crate) fn run_command(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    eprintln!("+ {shown}");
    let status = command.status().with_context(|| format!("running {shown}"))?;
    ensure!(status.success(), "{shown} failed ({status})");
    Ok(())
}
