//! The edge runtime's integration tests, one binary (modules below). They read the committed
//! model in `models/` and test images from `../shared/data` (relative to the workspace root),
//! and write scratch files under cargo's target tmp directory.

mod common;

/// Real test images: batching, threads and engines agree; the whole test split reproduces the
/// model card's accuracy.
mod agreement;
/// The CLI: exit codes, table / JSON / CSV.
mod cli;
/// DICOM: the grayscale rule at every bit depth, VOI LUTs, deflated files, damaged headers.
mod dicom;
/// Every input format: good files of odd kinds classify like the originals, bad ones fail
/// with their path and reason.
mod inputs;
/// Damaged, missing, unlisted and tampered model files are refused with the right error.
mod model_files;
/// `receive`, the DICOM Storage SCP, over loopback: storing, refusals, faults, restarts.
mod receive;
/// `stream` against a device on a pseudo-terminal: answers, bad files, a device with
/// another model, a silent or missing port. (The real firmware under QEMU: `cargo xtask
/// firmware`.)
#[cfg(unix)]
mod stream;
/// The drop folder: delivery, bad files, restarts.
mod watch;
