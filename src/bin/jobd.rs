//! `jobd`: the daemon. Parses the command line and hands over to `jobd::daemon::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jobd::config::{Config, ConfigError};
use jobd::daemon;

/// Downloads the image URLs queued in the `jobs` table, verifies and stores them.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Config file [default: $JOBD_CONFIG, else ./daemon.toml]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Worker threads (overrides `workers` in the config)
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Exit once no job is queued or running, scheduled retries included
    #[arg(long)]
    drain: bool,
}

/// Exit codes, as jobctl's (docs/operations.md, "Exit codes"): 0 stopped or drained, 1 failure (the
/// database, the blob_dir, the metrics port), 2 bad input (usage, the config file). The last line
/// of the log says which of the two it was.
fn main() -> ExitCode {
    let args = Args::parse();
    jobd::logger::init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_bad_config() => {
            log::error!("bad configuration: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            log::error!("stopped on an error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), daemon::Error> {
    let path = Config::locate(args.config.as_deref());
    let mut config = Config::load(&path)?;
    if let Some(n) = args.workers {
        config.workers = n;
        config
            .validate()
            .map_err(|e| ConfigError(format!("--workers: {e}")))?;
    }
    daemon::run(&config, args.drain)
}
