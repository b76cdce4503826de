//! The `tierctl` binary; everything lives in the library (see its docs).

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    tierctl::main_with(tierctl::cli::Cli::parse())
}
