//! The queue's storage: every SQL statement of the project lives below this module.
//!
//! Workers see only the [`Queue`] trait: claim, record, leases, plus the watch that wakes them.
//! jobctl sees only [`Admin`]. Each backend implements both: SQLite (`sqlite.rs`, the embedded
//! default) and PostgreSQL (`postgres.rs`, for fleets of daemons on one queue). [`open`] picks
//! one from the [`Database`] the configuration names.
//!
//! Architecture invariant: no write transaction here is ever held across network or disk I/O;
//! each operation is one short transaction and returns.

mod admin;
mod dashboard;
mod database;
mod hosts;
mod postgres;
mod sqlite;

use std::fmt;
use std::time::Duration;

use crate::job::{Applied, Claimed, Report, State};

pub use admin::{
    Admin, AttemptRow, Controls, Figures, Import, Imported, JobRow, Jobs, ListFilter, NewJob,
    References, Stats,
};
pub use dashboard::{
    BlobRow, Bucket, DaemonRow, Daemons, Dashboard, FailureGroup, GalleryFilter, HEARTBEAT_SECS,
    Heartbeat, LIVE_WITHIN_MS, QueueCounts, Storage, TimingFigures,
};
pub use database::{Database, open_for_daemon, open_for_jobctl};
pub use hosts::{ClaimOptions, FleetState, HOSTS_WINDOW_MINUTES, HostChange, HostRow, HostState};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A count as the database holds it, where anyone may have typed anything: below zero counts
/// as zero, beyond u32 as u32::MAX.
pub(crate) fn count_from_db(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The error for a `state` value that is none of the five (the schemas forbid it).
pub(crate) fn unknown_state(name: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("unknown job state {name:?}").into()
}

/// Watches the database for work, cheaply, from one thread.
pub trait Watch: Send {
    /// Waits up to `wait` for another connection or process to commit (a backend that is told
    /// returns as soon as it is; one that polls looks once at the end). True when one has
    /// committed since the last call.
    fn changed(&mut self, wait: Duration) -> Result<bool, StoreError>;
    /// When the next queued job may be claimed: the earliest `run_at` among queued jobs whose
    /// host is not paused, or the end of a paused host's pause, whichever is earlier; so a
    /// daemon facing only paused hosts' jobs sleeps until a pause ends. A backend may answer
    /// earlier than that (a pause that ends before its host's jobs are due), which costs one
    /// look more. None when nothing is queued.
    fn next_due(&mut self) -> Result<Option<i64>, StoreError>;
    /// When to ask [`Watch::next_due`] again even if nothing changes, because its last answer
    /// was "now" on a guess: a due job may hide behind paused hosts' jobs, but if the claim it
    /// prompts finds none, nothing changes until a pause ends. None: the answer was exact.
    fn ask_again_at(&self) -> Option<i64> {
        None
    }
    /// Whether [`Watch::changed`] returns as soon as something commits (it is told, not
    /// polling): then the supervisor waits long between looks of its own.
    fn wakes_on_change(&self) -> bool {
        false
    }
    /// True while any job is queued or running (`--drain` exits when this turns false).
    fn pending(&mut self) -> Result<bool, StoreError>;
    /// The number of jobs in each state (states with no job are left out).
    fn counts(&mut self) -> Result<Vec<(State, i64)>, StoreError>;
    /// The queued and the running jobs, counted from their partial indexes: cheap however many
    /// finished jobs the table holds (`--drain` says what it waits for).
    fn queued_and_running(&mut self) -> Result<(i64, i64), StoreError>;
}

/// The operations workers and the supervisor need from a queue backend. Each is a named move of
/// the lifecycle ([`crate::job`]), run in one short transaction; the backend decides none of it.
pub trait Queue: Send + Sync {
    /// Claims up to `limit` due jobs for `worker` in one short write transaction, starting an
    /// attempt for each. A job is never handed to two claimers. The jobs of a host that is
    /// paused, or that this daemon leaves to others ([`ClaimOptions::pass_over`]), are skipped
    /// and left untouched; a job without a host (`jobs.host` NULL) is never held back.
    fn claim(
        &self,
        worker: &str,
        limit: usize,
        options: ClaimOptions<'_>,
    ) -> Result<Vec<Claimed>, StoreError>;
    /// Records a group of attempts, each as its outcome settles it ([`crate::job::Outcome::settle`]), in
    /// one transaction, and only while each claim still holds; one answer per item, in order.
    fn record(&self, items: &[(&Claimed, &Report)]) -> Result<Vec<Applied>, StoreError>;
    /// Pushes the leases of running jobs (by attempt id) to `lease_ms` from now, so a long but
    /// live download is never taken back.
    fn extend_leases(&self, attempt_ids: &[i64], lease_ms: i64) -> Result<(), StoreError>;
    /// Settles the jobs whose lease ran out (their daemon died), as
    /// [`crate::job::after_lease_expired`] says. Returns how many.
    fn reap_expired(&self, default_max_attempts: u32) -> Result<usize, StoreError>;
    /// Deletes finished jobs (in `states`, a subset of [`State::FINISHED`]) that finished
    /// before `before`, with their attempts, in transactions of `batch` jobs. Returns how many.
    fn prune(&self, before: i64, states: &[State], batch: usize) -> Result<usize, StoreError>;
    /// A watcher with its own connection.
    fn watch(&self) -> Result<Box<dyn Watch>, StoreError>;
    /// Tells every daemon on the queue what this one learnt about `host` (the `hosts` table),
    /// as [`HostChange`] says; safe with any number of daemons writing at once.
    fn record_host(&self, host: &str, change: HostChange) -> Result<(), StoreError>;
    /// The live daemons and the hosts with a limit or a pause now (by this machine's clock), so
    /// that a daemon takes its part of each limit and adopts what the others learnt.
    fn fleet(&self) -> Result<FleetState, StoreError>;
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
        // Some drivers' errors name only the kind of failure ("db error") and keep what the
        // server or the socket said as their own source: add each cause the words so far lack.
        let mut said = self.source.to_string();
        let mut cause = self.source.source();
        while let Some(e) = cause {
            let words = e.to_string();
            if !said.contains(&words) {
                write!(f, ": {words}")?;
                said.push_str(&words);
            }
            cause = e.source();
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

#[cfg(test)]
mod tests {
    use super::StoreError;
    use std::fmt;

    /// An error that names only its kind, as a driver's may, and keeps the details as its source.
    #[derive(Debug)]
    struct Kind(&'static str, Option<std::io::Error>);

    impl fmt::Display for Kind {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Kind {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let terse = Kind(
            "db error",
            Some(std::io::Error::other("relation \"jobs\" is missing")),
        );
        assert_eq!(
            StoreError::new("claiming jobs", terse).to_string(),
            "claiming jobs: db error: relation \"jobs\" is missing"
        );
        let whole = Kind(
            "disk full: no space",
            Some(std::io::Error::other("no space")),
        );
        assert_eq!(
            StoreError::new("recording job 7", whole).to_string(),
            "recording job 7: disk full: no space"
        );
    }
}
