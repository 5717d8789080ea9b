//! `jobctl`: the command line for people and scripts. Each subcommand is one function here;
//! storage goes through [`SqliteStore`], URL checks through [`crate::joburl`].
//!
//! Exit codes: 0 success, 1 failure (database, I/O), 2 bad input (usage, rejected URLs or lines),
//! 3 not found.

mod import;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::joburl;
use crate::store::{ListFilter, NewJob, STATES, SqliteStore, StoreError};

#[derive(Parser)]
#[command(
    name = "jobctl",
    version,
    about = "Add, inspect and count jobd's image download jobs"
)]
pub struct Args {
    /// Config file [default: $JOBD_CONFIG, else ./daemon.toml]
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Queue image URLs
    Add {
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        /// Higher runs first
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// Attempts for these jobs, overriding [retry] max_attempts
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: Option<u32>,
    },
    /// Queue the URLs of a file (or - for stdin), one per line; blank lines and # comments are
    /// skipped, invalid lines are reported with their line numbers
    Import {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
    },
    /// List jobs, newest first
    List {
        #[arg(long, value_parser = STATES)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one job and its attempt history
    Show { id: i64 },
    /// Count jobs per state, scheduled retries, bytes stored and the commonest errors
    Stats,
}

/// What a command ended with, mapped to the documented exit codes.
pub enum Failure {
    BadInput(String),
    NotFound(String),
    Other(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Other(e.to_string())
    }
}

/// Runs jobctl; prints errors on stderr and returns the exit code.
pub fn main(args: Args) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (code, message) = match failure {
                Failure::Other(m) => (1, m),
                Failure::BadInput(m) => (2, m),
                Failure::NotFound(m) => (3, m),
            };
            if !message.is_empty() {
                eprintln!("jobctl: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(args: Args) -> Result<(), Failure> {
    let path = Config::locate(args.config.as_deref());
    let config = Config::load(&path).map_err(|e| Failure::BadInput(e.to_string()))?;
    let store = SqliteStore::open(&config.database, 2)?;
    match args.command {
        Command::Add {
            urls,
            priority,
            max_attempts,
        } => add(&store, urls, priority, max_attempts),
        Command::Import { file } => import::run(&store, &file),
        Command::List { state, limit } => {
            let jobs = store.list(&ListFilter { state, limit })?;
            output::print_list(&jobs);
            Ok(())
        }
        Command::Show { id } => match store.show(id)? {
            Some((job, attempts)) => {
                output::print_show(&job, &attempts);
                Ok(())
            }
            None => Err(Failure::NotFound(format!("no job with id {id}"))),
        },
        Command::Stats => {
            output::print_stats(&store.stats()?);
            Ok(())
        }
    }
}

/// Adds every URL or none: one bad URL rejects the whole command, naming it.
fn add(
    store: &SqliteStore,
    urls: Vec<String>,
    priority: i64,
    max_attempts: Option<u32>,
) -> Result<(), Failure> {
    let mut jobs = Vec::with_capacity(urls.len());
    for raw in urls {
        joburl::parse(&raw).map_err(|e| Failure::BadInput(format!("{raw:?}: {e}")))?;
        // Stored as typed, so that people find their URL with a plain WHERE url = '...'.
        jobs.push(NewJob {
            url: raw,
            priority,
            run_at: None,
            max_attempts,
        });
    }
    for id in store.add(&jobs)? {
        println!("{id}");
    }
    Ok(())
}
