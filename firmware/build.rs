//! Picks the board's memory map and hashes the embedded model (the handshake's model hash).

use sha2::{Digest, Sha256};
use std::{env, fs, path::PathBuf};

/// Raspberry Pi Pico: 2 MB QSPI flash behind the 256-byte second-stage bootloader, 264 KB SRAM
/// (the four striped banks; the two 4 KB banks are left to the stacks of a future second core).
const PICO: &str = "MEMORY {
  BOOT2 : ORIGIN = 0x10000000, LENGTH = 0x100
  FLASH : ORIGIN = 0x10000100, LENGTH = 2048K - 0x100
  RAM   : ORIGIN = 0x20000000, LENGTH = 256K
}
EXTERN(BOOT2_FIRMWARE)
SECTIONS {
  .boot2 ORIGIN(BOOT2) : { KEEP(*(.boot2)); } > BOOT2
} INSERT BEFORE .text;
";

/// QEMU mps2-an385: code at 0x0, SRAM at 0x20000000. The sizes are the Pico's, so a build that
/// links here fits the Pico too.
const QEMU: &str = "MEMORY {
  FLASH : ORIGIN = 0x00000000, LENGTH = 2048K
  RAM   : ORIGIN = 0x20000000, LENGTH = 256K
}
";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let memory = if env::var_os("CARGO_FEATURE_PICO").is_some() { PICO } else { QEMU };
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");

    // Same definition as `shared::proto::ModelHash::of_artifacts`: SHA-256 of the CNN artifact
    // followed by the quantum head artifact.
    let models = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../models");
    let mut hasher = Sha256::new();
    for name in ["cnn-int8.qmed", "quantum-head.qmed"] {
        let path = models.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (the firmware embeds the trained model)", path.display()));
        hasher.update(&bytes);
    }
    let hash: [u8; 32] = hasher.finalize().into();
    fs::write(out.join("model_hash.rs"), format!("{hash:?}")).expect("write model_hash.rs");
}
