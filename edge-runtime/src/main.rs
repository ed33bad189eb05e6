//! `edge-runtime`: classify image files and folders, or watch a scanner drop folder.

mod cli;

use clap::Parser;
use std::io::ErrorKind;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => code,
        // A reader that stops early (`edge-runtime classify scans/ | head`) is not a failure.
        Err(error)
            if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("edge-runtime: {error:#}");
            ExitCode::from(2)
        }
    }
}
