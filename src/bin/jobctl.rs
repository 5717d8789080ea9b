//! `jobctl`: the command line for jobd's queue. Everything happens in `jobd::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    jobd::cli::main(jobd::cli::Args::parse())
}
