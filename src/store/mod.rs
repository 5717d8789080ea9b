//! The queue's storage: every SQL statement of the project lives below this module.
//!
//! Workers see only the [`Queue`] trait: claim, complete, release, plus the watch that wakes them.
//! jobctl sees only [`Admin`]. Each backend implements both: SQLite (`sqlite.rs`, the embedded
//! default) and PostgreSQL (`postgres.rs`, for fleets of daemons on one queue). [`open`] picks
//! one from the [`Database`] the configuration names.
//!
//! Architecture invariant: no write transaction here is ever held across network or disk I/O;
//! each operation is one short transaction and returns.

mod admin;
mod database;
mod postgres;
mod sqlite;

use std::fmt;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

pub use admin::{Admin, AttemptRow, Imported, JobRow, ListFilter, NewJob, STATES, Stats};
pub use database::{Database, open, open_for_daemon};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub type JobId = i64;

/// Milliseconds since the Unix epoch, UTC: the unit of every time in the database.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A count as the database holds it, where anyone may have typed anything: below zero counts
/// as zero, beyond u32 as u32::MAX.
pub(crate) fn count_from_db(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The `url` column exactly as a user left it: the schema accepts any value, the worker judges.
#[derive(Debug, Clone, PartialEq)]
pub enum RawUrl {
    Text(String),
    /// NULL, a number or a blob: the SQLite type name, for the error message.
    NotText(&'static str),
}

/// A job a worker holds: the claim token is its attempt row.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job_id: JobId,
    /// The `attempts` row of this try; `complete` and `release` act only while it still holds.
    pub attempt_id: i64,
    /// 1-based number of this try among all of the job's tries.
    pub attempt: u32,
    /// Tries that count towards the limit, this one included.
    pub attempts: u32,
    /// The job's own limit, if its row sets one.
    pub max_attempts: Option<u32>,
    pub url: RawUrl,
    /// When the attempt started: set at the claim, and again when a worker takes the job up.
    pub started_at: i64,
}

impl Claimed {
    /// The URL's host, for logs; "-" when the url is not a URL at all.
    pub fn host(&self) -> String {
        match &self.url {
            RawUrl::Text(raw) => url::Url::parse(raw)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "-".into()),
            RawUrl::NotText(_) => "-".into(),
        }
    }
}

/// What one attempt found out, recorded by [`Queue::complete`].
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub declared_mime: Option<String>,
    /// Body bytes received (all of them on success).
    pub bytes: Option<u64>,
    pub ttfb_ms: Option<i64>,
    pub download_ms: Option<i64>,
    /// Why the attempt failed, for metrics; None when it succeeded.
    pub reason: Option<crate::retry::Reason>,
}

impl Report {
    /// A report with nothing but an outcome: the attempt failed before any response.
    pub fn failure(outcome: Outcome) -> Report {
        Report {
            outcome,
            http_status: None,
            declared_mime: None,
            bytes: None,
            ttfb_ms: None,
            download_ms: None,
            reason: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Done(Stored),
    /// A transient failure: the job is queued again, not before `run_at`.
    Retry {
        run_at: i64,
        error: String,
    },
    /// A permanent failure, or a transient one with the attempts spent.
    Failed {
        error: String,
    },
    /// Not the URL's fault (our storage failed): queued again without spending the attempt.
    Postponed {
        run_at: i64,
        error: String,
    },
}

/// A verified image, fsynced in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub mime: &'static str,
    pub sha256: String,
    pub blob_path: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// How far the bytes were proved to be an image.
    pub validation: crate::validate::Level,
    /// Why a job asked to decode was stored at `structure` instead.
    pub validation_note: Option<String>,
}

impl Outcome {
    /// The name recorded in `attempts.outcome`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "done",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            Outcome::Postponed { .. } => "postponed",
        }
    }
}

/// Whether `complete`/`release` found the claim still held. A lost claim means another daemon
/// reaped the job after its lease ran out; nothing was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Yes,
    ClaimLost,
}

/// Watches the database for work, cheaply, from one thread.
pub trait Watch: Send {
    /// Waits up to `wait` for another connection or process to commit (a backend that is told
    /// returns as soon as it is; one that polls looks once at the end). True when one has
    /// committed since the last call.
    fn changed(&mut self, wait: Duration) -> Result<bool, StoreError>;
    /// The earliest `run_at` among queued jobs, if any is queued.
    fn next_due(&mut self) -> Result<Option<i64>, StoreError>;
    /// True while any job is queued or running (`--drain` exits when this turns false).
    fn pending(&mut self) -> Result<bool, StoreError>;
    /// The number of jobs in each state (states with no job are left out).
    fn counts(&mut self) -> Result<Vec<(String, i64)>, StoreError>;
    /// The queued and the running jobs, counted from their partial indexes: cheap however many
    /// finished jobs the table holds (`--drain` says what it waits for).
    fn queued_and_running(&mut self) -> Result<(i64, i64), StoreError>;
    /// Keeps the write-ahead log bounded: checkpoints and truncates it when no reader holds an old
    /// snapshot; gives up at once otherwise (the next call tries again).
    fn checkpoint(&mut self) -> Result<(), StoreError>;
}

/// The operations workers and the supervisor need from a queue backend.
pub trait Queue: Send + Sync {
    /// Claims up to `limit` due jobs for `worker` in one short write transaction, starting an
    /// attempt for each. A job is never handed to two claimers.
    fn claim(&self, worker: &str, limit: usize, lease_ms: i64) -> Result<Vec<Claimed>, StoreError>;
    /// Records the outcomes of a group of attempts on their jobs and attempt rows, in one
    /// transaction; one answer per item, in order.
    fn complete_many(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError>;
    /// Records one attempt's outcome.
    fn complete(&self, job: &Claimed, report: &Report) -> Result<Applied, StoreError> {
        self.complete_many(&[(job, report)])
            .map(|applied| applied.first().copied().unwrap_or(Applied::ClaimLost))
    }
    /// Puts a claimed job back in the queue without counting the attempt (shutdown); its attempt
    /// row stays, as `interrupted`.
    fn release(&self, job: &Claimed, why: &str) -> Result<Applied, StoreError>;
    /// Gives a claimed job back untried, to run not before `run_at` (its host is cooling down):
    /// no attempt is counted and its attempt row is removed, since nothing was tried.
    fn postpone(&self, job: &Claimed, run_at: i64) -> Result<Applied, StoreError>;
    /// Pushes the leases of running jobs (by attempt id) to `lease_ms` from now, so a long but
    /// live download is never taken back.
    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError>;
    /// Returns jobs whose lease ran out (their daemon died) to the queue, or fails them when their
    /// attempts are spent. Returns how many were reaped.
    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError>;
    /// Deletes finished jobs (in `states`, a subset of done, failed and cancelled) that finished
    /// before `before`, with their attempts, in transactions of `batch` jobs. Returns how many.
    fn prune(&self, before: i64, states: &[&str], batch: usize) -> Result<usize, StoreError>;
    /// A watcher with its own connection.
    fn watch(&self) -> Result<Box<dyn Watch>, StoreError>;
}

/// A whole backend: the daemon's queue and jobctl's queries on one database.
pub trait Store: Queue + Admin {}

impl<T: Queue + Admin> Store for T {}

/// How many of `known` migrations a database at schema version `applied` has already had; an
/// error if it is newer than this jobd.
pub(crate) fn migrations_applied(applied: i64, known: usize) -> Result<usize, StoreError> {
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > known {
        return Err(StoreError::new(
            "checking the schema version",
            format!(
                "the database has schema version {applied}, newer than this jobd knows ({known}); upgrade jobd"
            ),
        ));
    }
    Ok(applied)
}

/// A storage failure, with what was being done when it happened.
#[derive(Debug)]
pub struct StoreError {
    pub context: String,
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    pub fn new(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            context: context.into(),
            source: source.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)?;
        // A postgres::Error names only the kind of failure ("db error"); what the server (or
        // the socket) said is its source.
        let cause = self
            .source
            .downcast_ref::<::postgres::Error>()
            .and_then(std::error::Error::source);
        if let Some(cause) = cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Adds context to a fallible store call: `conn.execute(..).ctx("recording job 7")?`.
pub(crate) trait Context<T> {
    fn ctx(self, context: impl fmt::Display) -> Result<T, StoreError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn ctx(self, context: impl fmt::Display) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::new(context.to_string(), e))
    }
}
