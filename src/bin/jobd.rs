//! `jobd`: the daemon. Parses the command line and hands over to `jobd::daemon::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jobd::config::Config;

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

/// Exit codes, as jobctl's (README, "Exit codes"): 0 stopped or drained, 1 failure (the
/// database, the blob_dir, the metrics port), 2 bad input (usage, the config file).
fn main() -> ExitCode {
    let args = Args::parse();
    jobd::logger::init();
    let path = Config::locate(args.config.as_deref());
    let config = Config::load(&path).and_then(|mut config| {
        if let Some(n) = args.workers {
            config.workers = n;
            config
                .validate()
                .map_err(|e| jobd::config::ConfigError(format!("--workers: {e}")))?;
        }
        Ok(config)
    });
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    match jobd::daemon::run(&config, args.drain) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
