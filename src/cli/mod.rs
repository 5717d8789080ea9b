//! `jobctl`: the command line for people and scripts. One file per group of commands, dispatched
//! by one `match` here; storage goes through [`store::Admin`], URL checks through
//! [`crate::joburl`]. Tables go to stdout (`output.rs`), or JSON with `--json` (`json.rs`, whose
//! shapes docs/jobctl.md documents); errors go to stderr.
//!
//! Exit codes (the table in docs/operations.md): 0 success, 1 failure (the database, the blob_dir
//! or a file could not be used, an interrupted prune, or a command that could act on none of the
//! jobs it named), 2 bad input (usage, the config file, rejected URLs or lines), 3 not found.
//!
//! Architecture invariant: no SQL here; what jobctl asks of the database is a method in
//! `store::Admin`.

mod args;
mod control;
mod daemons;
mod hosts;
mod import;
mod init;
mod input;
mod jobs;
mod json;
mod output;
mod prune;
mod serve;
mod time;
mod watch;

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

pub use args::Args;
use args::Command;

use crate::config::Config;
use crate::store::{self, StoreError};

/// Why a command failed, by the exit code it gives (the table in docs/operations.md). The message
/// is what jobctl prints on stderr, as it is: every one is already written for the person who
/// reads it.
#[derive(Debug)]
pub enum Error {
    /// Exit 1: the database, the blob_dir or a file could not be used, an interrupted prune, or
    /// a command that could act on none of the jobs it named.
    Failed(String),
    /// Exit 2: usage, the config file, rejected URLs or lines.
    BadInput(String),
    /// Exit 3: no job with the ids given.
    NotFound(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Failed(_) => 1,
            Error::BadInput(_) => 2,
            Error::NotFound(_) => 3,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Failed(m) | Error::BadInput(m) | Error::NotFound(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Failed(e.to_string())
    }
}

/// Runs jobctl; prints errors on stderr and returns the exit code.
pub fn main(args: Args) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = e.to_string();
            if !message.is_empty() {
                eprintln!("jobctl: {message}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(args: Args) -> Result<(), Error> {
    let path = Config::locate(args.config.as_deref());
    let config = Config::load(&path).map_err(|e| Error::BadInput(e.to_string()))?;
    let shared = store::open_for_jobctl(&config.database)?;
    let store = &*shared;
    let json = args.json;
    match args.command {
        Command::Init => init::run(&config, args.config.as_deref(), json),
        Command::Add {
            urls,
            priority,
            at,
            max_attempts,
        } => jobs::add(store, urls, priority, at, max_attempts, json),
        Command::Import {
            file,
            format,
            skip_existing,
        } => import::run(store, &file, format, skip_existing, json),
        Command::List {
            state,
            error,
            host,
            since,
            until,
            limit,
        } => {
            let filter = crate::store::ListFilter {
                state,
                error,
                host,
                since,
                until,
                url: None,
                before: None,
                limit,
            };
            jobs::list(store, &filter, json)
        }
        Command::Show { id } => jobs::show(store, id, json),
        Command::Stats => jobs::stats(store, json),
        Command::Hosts => hosts::run(store, json),
        Command::Retry {
            ids,
            failed,
            error,
            force,
        } => {
            if failed {
                control::retry_failed(store, error.as_deref(), json)
            } else {
                control::retry(store, &ids, force, json)
            }
        }
        Command::Cancel { ids } => control::cancel(store, &ids, json),
        Command::Prune {
            older_than,
            state,
            blobs,
            wait,
        } => {
            // No attempt outlives its fetch deadline, and a dead daemon's ends with its lease.
            let wait = wait.map_or(
                Duration::from_secs(config.fetch.timeout_secs + config.lease_secs),
                |ms| Duration::from_millis(ms.max(0) as u64),
            );
            let blobs = blobs.then(|| prune::BlobOptions {
                blob_dir: &config.blob_dir,
                wait,
            });
            prune::run(store, older_than, &state, blobs, json)
        }
        Command::Watch { interval } => watch::run(store, interval, json),
        Command::Pause => control::pause(store, true, json),
        Command::Resume => control::pause(store, false, json),
        Command::Daemons => daemons::run(store, json),
        Command::Serve { listen } => serve::run(&config, shared.clone(), listen),
    }
}

/// Prints a JSON value on stdout, one document per line.
fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
