//! What the dashboard (`jobctl serve`) reads beyond jobctl's queries, and the daemons' heartbeats:
//! the [`Dashboard`] and [`Daemons`] traits and their plain rows. Each backend implements them in
//! its `dashboard.rs` and `daemons.rs`.

use super::{JobRow, StoreError};
use crate::job::{JobId, State};

/// The overview's cards, read in one snapshot so that they add up: jobs per state, the queued
/// ones due later, and the pause switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCounts {
    /// Jobs per state, every state in [`State::ALL`] order.
    pub by_state: Vec<(State, i64)>,
    /// Queued jobs waiting for a later `run_at` (retries, or added with --at).
    pub scheduled: i64,
    /// Whether `jobctl pause` holds the queue.
    pub paused: bool,
}

/// What done jobs stored, read in one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Storage {
    /// Bytes downloaded by done jobs (a blob shared by several jobs counts for each).
    pub bytes_done: i64,
    /// Distinct blobs that done jobs refer to, and the bytes they hold on disk.
    pub blobs: i64,
    pub blob_bytes: i64,
}

/// Timing percentiles of the done attempts of the last 15 minutes, or of every done attempt
/// when none finished then (`all_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimingFigures {
    /// How many done attempts the percentiles come from.
    pub samples: i64,
    pub all_time: bool,
    /// Time to first byte, (p50, p95) in ms; None without samples.
    pub ttfb_ms: Option<(i64, i64)>,
    /// Claim to recorded outcome, (p50, p95) in ms.
    pub total_ms: Option<(i64, i64)>,
}

/// Done and failed jobs that finished in one bucket of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's start (Unix ms), a multiple of its width.
    pub start: i64,
    pub done: i64,
    pub failed: i64,
}

/// Failed jobs that share an error and a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureGroup {
    pub error: String,
    /// `jobs.host`; None for a URL without one.
    pub host: Option<String>,
    pub count: i64,
    /// When the newest of them failed (Unix ms).
    pub last_at: Option<i64>,
}

/// Which stored images the gallery shows, newest first.
#[derive(Debug, Clone, Default)]
pub struct GalleryFilter {
    /// `jobs.host`, exactly (lowercase `host[:port]`).
    pub host: Option<String>,
    /// The detected type, exactly (`image/png`).
    pub mime: Option<String>,
    /// Only jobs that finished before this (finished_at, id), in that order: the next page.
    pub before: Option<(i64, JobId)>,
    pub limit: usize,
}

/// A stored image as the database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    pub sha256: String,
    /// Relative to blob_dir, as jobd wrote it.
    pub blob_path: String,
    /// The type sniffed from its bytes.
    pub mime: String,
    pub bytes: i64,
}

/// The dashboard's reads. The overview's figures come in parts that the dashboard reads at the
/// same time on connections of their own ([`QueueCounts`], [`Storage`], [`TimingFigures`], the
/// throughput and the daemons); each part is exact for the moment it was read. None reads every
/// job's row: each comes from an index (migration 0010 added those of the storage, the timings
/// and the throughput), or on SQLite from the table's own count less the other states.
pub trait Dashboard: Send + Sync {
    /// Jobs per state, the scheduled ones and the pause switch, in one snapshot.
    fn queue_counts(&self) -> Result<QueueCounts, StoreError>;
    /// Bytes downloaded by done jobs, distinct blobs and their bytes, in one snapshot.
    fn storage(&self) -> Result<Storage, StoreError>;
    /// Timing percentiles of recent done attempts (see [`TimingFigures`]).
    fn timing_figures(&self) -> Result<TimingFigures, StoreError>;
    /// Done and failed jobs per bucket of `width_ms`, for the buckets from the one holding
    /// `since` on, oldest first; buckets without jobs are left out.
    fn throughput(&self, since: i64, width_ms: i64) -> Result<Vec<Bucket>, StoreError>;
    /// Failed jobs grouped by error and host, the largest groups first, at most `limit`.
    fn failure_groups(&self, limit: usize) -> Result<Vec<FailureGroup>, StoreError>;
    /// Done jobs with a blob, the most recently finished first (then by id, descending), as
    /// the filter says.
    fn gallery(&self, filter: &GalleryFilter) -> Result<Vec<JobRow>, StoreError>;
    /// The blob recorded with this sha256 by a done job, if any.
    fn blob(&self, sha256: &str) -> Result<Option<BlobRow>, StoreError>;
}

/// One daemon's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// `host:pid`, the prefix of its workers' names in `jobs.worker`.
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    pub workers: u32,
    pub busy: u32,
    /// When it started (Unix ms).
    pub started_at: i64,
}

/// A live daemon, as its last heartbeat said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRow {
    pub beat: Heartbeat,
    /// When it last beat (Unix ms, this machine's clock).
    pub seen_at: i64,
}

/// How often a daemon beats.
pub const HEARTBEAT_SECS: u64 = 5;

/// A daemon whose last beat is older than this is not live (it died without saying so).
pub const LIVE_WITHIN_MS: i64 = 4 * HEARTBEAT_SECS as i64 * 1000;

/// Heartbeats of the daemons working on the queue (the `daemons` table).
pub trait Daemons: Send + Sync {
    /// Records a beat, inserting or replacing the daemon's row, and forgets daemons silent for a
    /// day.
    fn heartbeat(&self, beat: &Heartbeat) -> Result<(), StoreError>;
    /// Removes the daemon's row: it stopped.
    fn daemon_stopped(&self, name: &str) -> Result<(), StoreError>;
    /// The daemons that beat within [`LIVE_WITHIN_MS`], by name.
    fn daemons(&self) -> Result<Vec<DaemonRow>, StoreError>;
}

/// Daemons silent this long lose their row at the next beat of any daemon.
pub(super) const FORGET_AFTER_MS: i64 = 86_400_000;
