//! `jobctl`: the command line for jobd's queue. Everything happens in `jobd::cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `jobctl list | head` would fail writing to the closed pipe; a
    // command-line tool should end quietly there, as cat does.
    // SAFETY: restoring the default disposition of a signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    jobd::cli::main(jobd::cli::Args::parse())
}
