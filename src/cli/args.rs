//! jobctl's command line: every subcommand, flag and help text, as clap derive structs.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::time;
use crate::job::State;
use crate::job::{JobId, now_ms};

const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 failure (the database, the blob_dir or a file could not be used, an \
interrupted prune, or cancel/retry could act on none of the jobs named); 2 bad input (usage, the \
config file, rejected URLs or lines); 3 not found.

Times: DURATION is like 30s, 10m, 2h, 1d or 1h30m. TIME is RFC 3339 (2026-11-26T08:00:00Z, \
2026-11-26T09:00:00+01:00) or a bare date (midnight UTC).";

#[derive(Parser)]
#[command(
    name = "jobctl",
    version,
    about = "Add, inspect and steer jobd's image download jobs",
    long_about = "Add, inspect and steer jobd's image download jobs.\n\n\
        jobctl works on the same database as jobd (the `database` of the config file, or \
        $JOBD_DATABASE: an SQLite file or a postgres:// URL), so it needs no running daemon. \
        Every command prints a table for people, or JSON with --json.",
    after_help = EXIT_CODES
)]
pub struct Args {
    /// Config file [default: $JOBD_CONFIG, else ./daemon.toml]
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Print JSON for scripts instead of tables (the shapes are in docs/jobctl.md and stay stable)
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the database (with its tables) and the blob_dir the config names, and say how to
    /// add a first job
    ///
    /// The sqlite3 shell cannot create jobd's tables: run this (or jobd once) before its first
    /// INSERT. Harmless on an existing database: nothing is changed but pending migrations.
    Init,
    /// Queue image URLs; prints the new jobs' ids, one per line
    ///
    /// Every URL is checked first (http or https, a host, no spaces); one bad URL rejects the
    /// whole command and nothing is added.
    Add {
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        /// Higher runs first
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i64,
        /// Not before TIME: RFC 3339, or from now like +10m, +2h, +1d
        #[arg(long, value_name = "TIME", value_parser = parse_at)]
        at: Option<i64>,
        /// Attempts for these jobs, overriding [retry] max_attempts
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: Option<u32>,
    },
    /// Queue the URLs of a file or of stdin: plain lines, CSV or TSV
    ///
    /// Plain lines hold one URL each. CSV and TSV have a url column and an optional priority
    /// column; a header line `url,priority` (or `url<TAB>priority`) makes the format known
    /// without --format. Blank lines and lines starting with # are skipped. Bad lines are
    /// reported with their line numbers (the first 20) and the good ones are added all the same;
    /// the exit code is then 2. On a terminal a progress bar shows on stderr.
    Import {
        /// The file to read; - or nothing reads stdin
        #[arg(value_name = "FILE|-", default_value = "-")]
        file: PathBuf,
        /// The input's format; auto looks for a CSV or TSV header line
        #[arg(long, value_enum, default_value_t = Format::Auto)]
        format: Format,
        /// Skip URLs the queue already has (in any state but failed and cancelled), and URLs
        /// repeated within the input
        #[arg(long)]
        skip_existing: bool,
    },
    /// List jobs, newest first
    List {
        #[arg(long, value_enum)]
        state: Option<State>,
        /// Only jobs whose error contains PATTERN (ignoring case)
        #[arg(long, value_name = "PATTERN")]
        error: Option<String>,
        /// Only jobs whose URL has this host; .example.org also takes its subdomains
        #[arg(long)]
        host: Option<String>,
        /// Only jobs active since TIME, or within the last DURATION (1h: the last hour).
        /// Activity is when a job finished, else started, else was added.
        #[arg(long, value_name = "TIME|DURATION", value_parser = parse_since)]
        since: Option<i64>,
        /// Only jobs last active before TIME, or more than DURATION ago
        #[arg(long, value_name = "TIME|DURATION", value_parser = parse_since)]
        until: Option<i64>,
        /// At most N jobs
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: usize,
    },
    /// Show one job and its whole attempt history
    Show { id: JobId },
    /// Counts per state, throughput, timings, storage, commonest errors, and the pause switch
    ///
    /// Throughput counts done jobs that finished in the last 1, 5 and 15 minutes. The time to
    /// first byte and total time percentiles come from the done attempts of the last 15
    /// minutes, or from all done attempts when there were none (the output says which).
    Stats,
    /// The hosts with queued or running jobs, the most queued first: their recent figures, and
    /// the limit and pause that the daemons share
    ///
    /// One row per host (the URL's host:port, as the `jobs.host` column holds it): jobs queued
    /// and running, jobs done and failed and attempts answered 429 or 503 in the last 15
    /// minutes, done jobs per minute over them, the fleet's current limit of requests in flight
    /// (- for the daemons' max_per_host), and the end of a pause.
    Hosts,
    /// Requeue failed or cancelled jobs: queued now, attempts and error cleared
    ///
    /// Queued and running jobs are left alone. A done job is requeued only with --force (its
    /// blob stays until the new attempt replaces the record).
    Retry {
        /// The jobs to requeue
        #[arg(
            value_name = "ID",
            required_unless_present = "failed",
            conflicts_with = "failed"
        )]
        ids: Vec<JobId>,
        /// Requeue every failed job (cancelled ones are not touched)
        #[arg(long)]
        failed: bool,
        /// With --failed: only those whose error contains PATTERN (ignoring case)
        #[arg(long, value_name = "PATTERN", requires = "failed")]
        error: Option<String>,
        /// Requeue done jobs too
        #[arg(long)]
        force: bool,
    },
    /// Cancel jobs: queued ones at once, running ones when their attempt ends
    ///
    /// A running job becomes cancelled when its attempt ends, unless that attempt succeeds
    /// (done) or fails for good (failed). Finished jobs are reported and left alone. The exit
    /// code is 0 if any job was cancelled, 3 if no job had these ids, else 1.
    Cancel {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<JobId>,
    },
    /// Delete finished jobs and their attempts, in small batches
    ///
    /// Daemons keep working meanwhile: each batch is one short transaction. Blob files stay
    /// unless --blobs is given. With --blobs, the blobs to delete are first set aside while
    /// the attempts running at that moment end (one may be storing the same image); Ctrl-C or
    /// the end of --wait puts them back and deletes none.
    Prune {
        /// Only jobs that finished more than DURATION ago
        #[arg(long, value_name = "DURATION", value_parser = time::parse_duration)]
        older_than: i64,
        /// Only jobs in these states [default: done,failed,cancelled]
        #[arg(long, value_delimiter = ',', value_parser = finished_state)]
        state: Vec<State>,
        /// Also delete the blob files of the pruned jobs that no remaining job refers to
        #[arg(long)]
        blobs: bool,
        /// With --blobs: how long to wait for running attempts before giving up (and deleting
        /// no blob) [default: the config's fetch.timeout_secs + lease_secs]
        #[arg(long, value_name = "DURATION", requires = "blobs", value_parser = time::parse_duration)]
        wait: Option<i64>,
    },
    /// Follow the queue until it is drained: progress, rate, ETA and counts per state
    ///
    /// Exits 0 once nothing is queued or running (scheduled retries count as queued). On a
    /// terminal it draws a progress bar; otherwise it prints a line per interval.
    Watch {
        /// How often to look
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = time::parse_duration)]
        interval: i64,
    },
    /// Stop every daemon on this database from claiming jobs; running jobs finish
    ///
    /// The switch is stored in the database: it survives restarts, and daemons see it within
    /// their poll interval.
    Pause,
    /// Let the daemons claim jobs again
    Resume,
    /// The daemons working on this queue: host, pid, version, busy and total workers, start
    ///
    /// Each daemon records a heartbeat every 5 s; one silent for 20 s (it died) is left out.
    Daemons,
    /// Serve the web dashboard: the queue, its failures and hosts, and the images themselves
    ///
    /// Pages of the overview, jobs, a job, failures, hosts and a gallery of thumbnails, with
    /// forms to retry, cancel, pause and resume. It needs no running daemon. A non-loopback
    /// address needs [ui] token in the config (docs/dashboard.md).
    Serve {
        /// Where to listen [default: [ui] listen, 127.0.0.1:8787]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
}

/// The format of `import`'s input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// CSV or TSV if the first line is a header naming a url column, else plain lines
    Auto,
    /// One URL per line
    Lines,
    /// Comma-separated url[,priority]; fields may be quoted with "
    Csv,
    /// Tab-separated url[<TAB>priority]
    Tsv,
}

fn parse_at(text: &str) -> Result<i64, String> {
    time::parse_at(text, now_ms())
}

fn parse_since(text: &str) -> Result<i64, String> {
    time::parse_since(text, now_ms())
}

/// The states `--state` takes, as clap lists them.
impl clap::ValueEnum for State {
    fn value_variants<'a>() -> &'a [Self] {
        &State::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// A state of a finished job, for `prune --state`.
fn finished_state(value: &str) -> Result<State, String> {
    State::parse(value)
        .filter(|s| s.is_finished())
        .ok_or_else(|| {
            let names: Vec<&str> = State::FINISHED.iter().map(|s| s.name()).collect();
            format!("expected one of {}", names.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Args::command().debug_assert();
    }
}
