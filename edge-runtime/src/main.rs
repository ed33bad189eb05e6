//! `edge-runtime`: classify image files and folders, or watch a scanner drop folder.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("edge-runtime: {error:#}");
            ExitCode::from(2)
        }
    }
}
