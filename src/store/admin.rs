//! The operator's side of a store, behind jobctl: the [`Admin`] traits, one per concern, and the
//! plain values they take and return (ids, states, counts, rows), so that jobctl decides what to
//! say and each backend only how to ask. Each backend implements each trait in the file of its
//! concern (`admin.rs`, `bulk.rs`, `ops.rs`, `stats.rs`).

use super::{HostRow, StoreError};
use crate::job::{JobId, RECENT_MINUTES, State, window_start};

/// A job to insert, already validated by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub url: String,
    pub priority: i64,
    /// Not before this time (Unix ms); None: now.
    pub run_at: Option<i64>,
    pub max_attempts: Option<u32>,
}

impl NewJob {
    /// A job for `url` with every other column at its default: priority 0, due now.
    #[cfg_attr(
        product_only,
        expect(dead_code, reason = "the tests and the benchmark harness build jobs with it")
    )]
    pub fn new(url: impl Into<String>) -> NewJob {
        NewJob {
            url: url.into(),
            priority: 0,
            run_at: None,
            max_attempts: None,
        }
    }
}

/// A row of `jobs`, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    /// The url column rendered as text, whatever its SQLite type.
    pub url: String,
    pub state: State,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: Option<i64>,
    pub run_at: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub http_status: Option<i64>,
    pub declared_mime: Option<String>,
    pub mime: Option<String>,
    pub bytes: Option<i64>,
    pub sha256: Option<String>,
    pub blob_path: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub error: Option<String>,
    /// `jobctl cancel` asked a running job to stop when its attempt ends.
    pub cancel_requested: bool,
    /// Who holds a running job (`host:pid/wN`).
    pub worker: Option<String>,
    /// How far a stored image was proved: `structure` or `decode` (unset before migration 0004).
    pub validation: Option<String>,
    /// Why a job asked to decode was stored at `structure`.
    pub validation_note: Option<String>,
}

impl JobRow {
    /// When the job last did something: finished, else started, else was created. `jobctl list
    /// --since/--until` compare this.
    pub fn last_activity(&self) -> i64 {
        self.finished_at
            .or(self.started_at)
            .unwrap_or(self.created_at)
    }
}

/// A row of `attempts`, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub attempt: i64,
    pub outcome: String,
    pub worker: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub http_status: Option<i64>,
    pub bytes: Option<i64>,
    pub ttfb_ms: Option<i64>,
    pub download_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub error: Option<String>,
}

/// Which jobs `list` returns, newest first. Every filter that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<State>,
    /// A substring of the error, compared case-insensitively (ASCII letters).
    pub error: Option<String>,
    /// The URL's host, exactly (case-insensitive); with a leading dot, also its subdomains.
    pub host: Option<String>,
    /// Last activity ([`JobRow::last_activity`]) at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Last activity before this time (Unix ms).
    pub until: Option<i64>,
    /// A substring of the URL, compared exactly (the dashboard's search).
    pub url: Option<String>,
    /// Only jobs with ids below this one: the next page after a page that ended there.
    pub before: Option<JobId>,
    pub limit: usize,
}

impl ListFilter {
    /// Whether a job with this url passes the host filter, if one is set: the SQL narrows the
    /// rows by a substring, this decides exactly.
    pub(super) fn wants_host(&self, url: &str) -> bool {
        self.host
            .as_deref()
            .is_none_or(|want| host_matches(url, want))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Jobs per state, every state in [`State::ALL`] order.
    pub by_state: Vec<(State, i64)>,
    /// Queued jobs waiting for a later `run_at` (retries, or added with --at).
    pub scheduled: i64,
    /// Bytes downloaded by done jobs (a blob shared by several jobs counts for each).
    pub bytes_done: i64,
    /// Distinct blobs that done jobs refer to, and the bytes they hold on disk.
    pub blobs: i64,
    pub blob_bytes: i64,
    /// The most common errors among failed jobs, with counts.
    pub top_errors: Vec<(String, i64)>,
    /// Whether `jobctl pause` holds the queue.
    pub paused: bool,
    /// Done jobs that finished within the last N minutes, as (N, count) for N = 1, 5, 15.
    pub done_within: Vec<(i64, i64)>,
    /// The done attempts the timings below come from: those that finished in the last 15
    /// minutes, or every done attempt when none did (`timings_all_time`).
    pub timing_samples: i64,
    pub timings_all_time: bool,
    /// Time to first byte, (p50, p95) in ms; None without samples.
    pub ttfb_ms: Option<(i64, i64)>,
    /// Claim to recorded outcome, (p50, p95) in ms.
    pub total_ms: Option<(i64, i64)>,
}

/// Counts per state as a `GROUP BY state` found them, turned into all five in [`State::ALL`]
/// order, zero for a state without jobs.
pub(super) fn in_state_order(found: &[(State, i64)]) -> Vec<(State, i64)> {
    State::ALL
        .iter()
        .map(|&state| {
            let n = found
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            (state, n)
        })
        .collect()
}

/// What an import did: rows added, and rows skipped because the database had their URL.
pub type Imported = (u64, u64);

/// The operator's queries and controls, as jobctl uses them: every concern's trait. Every
/// backend answers them alike; the contract tests run each one against both.
pub trait Admin:
    Jobs + Import + Controls + Figures + References + super::Dashboard + super::Daemons
{
}

impl<T> Admin for T where
    T: Jobs + Import + Controls + Figures + References + super::Dashboard + super::Daemons
{
}

/// Adding jobs one by one, and reading them.
pub trait Jobs: Send + Sync {
    /// Inserts jobs in one transaction, durably; returns their ids in order.
    fn add(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError>;
    /// Jobs in id order, newest first, that pass every filter that is set.
    fn list(&self, filter: &ListFilter) -> Result<Vec<JobRow>, StoreError>;
    /// One job and all its attempts, or None if there is no such job.
    fn show(&self, id: JobId) -> Result<Option<(JobRow, Vec<AttemptRow>)>, StoreError>;
}

/// Adding jobs in bulk.
pub trait Import: Send + Sync {
    /// Inserts every job of `batches` (already validated) in large transactions. With
    /// `skip_existing`, a URL already in the database in a state other than failed or cancelled
    /// is skipped (URLs repeated within the input are the caller's to drop). When it returns,
    /// every row is durable. `progress` gets the number of rows added so far after each commit.
    fn import(
        &self,
        batches: &mut dyn Iterator<Item = Vec<NewJob>>,
        skip_existing: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Imported, StoreError>;
}

/// The pause switch, cancel and retry: the moves people make, as [`crate::job`] rules them.
pub trait Controls: Send + Sync {
    /// Turns the pause switch on or off. Every daemon on the queue stops (or resumes) claiming
    /// at its next claim; jobs already running finish as usual.
    fn set_paused(&self, on: bool) -> Result<(), StoreError>;
    /// Cancels jobs as [`State::on_cancel`] says. Returns each id with the state it had before
    /// (None: there is no such job).
    fn cancel(&self, ids: &[JobId]) -> Result<Vec<(JobId, Option<State>)>, StoreError>;
    /// Requeues the jobs that [`State::retryable`] accepts: queued, due now, attempts and error
    /// cleared, no cancel request. Returns each id with the state it had before (None: no such
    /// job); jobs in other states are left alone.
    fn retry(&self, ids: &[JobId], force: bool) -> Result<Vec<(JobId, Option<State>)>, StoreError>;
    /// Requeues every failed job (whose error contains `error`, case-insensitively, if given),
    /// in batches, each job at most once. Returns how many.
    fn retry_failed(&self, error: Option<&str>) -> Result<u64, StoreError>;
}

/// The figures of `jobctl stats` and `jobctl watch`.
pub trait Figures: Send + Sync {
    /// Counts per state, scheduled retries, recent throughput, timing percentiles, bytes and
    /// blobs stored, the commonest errors, and the pause switch.
    fn stats(&self) -> Result<Stats, StoreError>;
    /// Jobs per state (all five, in [`State::ALL`] order) and whether the queue is paused: the
    /// cheap figures that `jobctl watch` reads every second.
    fn counts(&self) -> Result<(Vec<(State, i64)>, bool), StoreError>;
    /// `jobctl hosts`: every host with queued or running jobs or a row in `hosts`, the most
    /// queued first (then by name), with its recent figures, limit and pause.
    fn hosts(&self) -> Result<Vec<HostRow>, StoreError>;
}

/// What `jobctl prune --blobs` must know before it deletes a blob: which jobs refer to it, and
/// which attempts still run.
pub trait References: Send + Sync {
    /// Calls `each` with the blob_path of every job that `prune` would delete (finished before
    /// `before`, in `states`) and that has one; a blob shared by several of them comes several
    /// times. Collect these before pruning: afterwards the rows are gone.
    fn blobs_of_finished(
        &self,
        before: i64,
        states: &[State],
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError>;
    /// Whether any job, in any state, refers to the blob with this sha256.
    fn blob_referenced(&self, sha256: &str) -> Result<bool, StoreError>;
    /// The claim tokens (attempt ids) of the jobs running now under a live lease.
    fn live_attempts(&self) -> Result<Vec<i64>, StoreError>;
    /// How many of these attempts still run under a live lease. An expired lease means its
    /// daemon died: that attempt can no longer record anything.
    fn still_live(&self, attempt_ids: &[i64]) -> Result<usize, StoreError>;
}

/// Gathers batches into transactions of about `tx_rows`; calls `write` with each transaction's
/// rows (its to keep, so that it can hand them to another thread) and whether it is the last.
/// The next batch is awaited before a transaction starts, never inside one, so no lock is held
/// while the input is slow. Both backends' imports use it.
pub(super) fn in_transactions(
    batches: &mut dyn Iterator<Item = Vec<NewJob>>,
    tx_rows: usize,
    mut write: impl FnMut(Vec<NewJob>, bool) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut pending: Vec<NewJob> = Vec::new();
    let mut next = batches.next();
    while let Some(batch) = next {
        if pending.is_empty() {
            pending = batch;
        } else {
            pending.extend(batch);
        }
        next = batches.next();
        let last = next.is_none();
        if pending.len() >= tx_rows || last {
            write(std::mem::take(&mut pending), last)?;
        }
    }
    Ok(())
}

/// Jobs requeued per transaction by `retry_failed`.
pub(super) const RETRY_BATCH: i64 = 5_000;

/// Runs `batch(after)` (which requeues up to [`RETRY_BATCH`] failed jobs with ids above `after`,
/// in id order, in one transaction, and returns their ids) until a batch comes back short, so that
/// every failed job is requeued at most once. Returns how many were.
pub(super) fn requeue_in_batches(
    mut batch: impl FnMut(i64) -> Result<Vec<i64>, StoreError>,
) -> Result<u64, StoreError> {
    let (mut requeued, mut after) = (0u64, 0i64);
    loop {
        let ids = batch(after)?;
        requeued += ids.len() as u64;
        match ids.iter().max() {
            Some(&last) if ids.len() as i64 == RETRY_BATCH => after = last,
            _ => return Ok(requeued),
        }
    }
}

/// The timings of `jobctl stats`: how many done attempts they come from, whether those are of
/// all time, and the (p50, p95) of time to first byte and of total time.
pub(super) type Timings = (i64, bool, Option<(i64, i64)>, Option<(i64, i64)>);

/// One done attempt's (ttfb_ms, total_ms).
pub(super) type Sample = (Option<i64>, Option<i64>);

/// The done attempts' timings over the longest of [`RECENT_MINUTES`], or over every done attempt
/// when none finished within it. `read(since)` gives the (ttfb_ms, total_ms) of each done attempt
/// that finished at or after `since` (None: of every one).
pub(super) fn timings(
    now: i64,
    mut read: impl FnMut(Option<i64>) -> Result<Vec<Sample>, StoreError>,
) -> Result<Timings, StoreError> {
    let longest = RECENT_MINUTES[RECENT_MINUTES.len() - 1];
    let mut all_time = false;
    let mut rows = read(Some(window_start(now, longest)))?;
    if rows.is_empty() {
        all_time = true;
        rows = read(None)?;
    }
    let (mut ttfb, mut total): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
    for (t, n) in &rows {
        ttfb.extend(t);
        total.extend(n);
    }
    Ok((
        rows.len() as i64,
        all_time,
        percentiles(&mut ttfb),
        percentiles(&mut total),
    ))
}

/// Nearest-rank p50 and p95, for `jobctl stats`.
pub(super) fn percentiles(values: &mut [i64]) -> Option<(i64, i64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = |p: usize| values[(values.len() * p).div_ceil(100).max(1) - 1];
    Some((rank(50), rank(95)))
}

/// Whether `url`'s host is `want` (case-insensitive); `.example.org` also takes its subdomains.
pub(super) fn host_matches(url: &str, want: &str) -> bool {
    let Some(host) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    let want = want.to_ascii_lowercase();
    match want.strip_prefix('.') {
        Some(base) => host == base || host.ends_with(&want),
        None => host == want,
    }
}

#[cfg(test)]
mod tests {
    use super::{NewJob, host_matches, in_transactions, percentiles};

    #[test]
    fn batches_gather_into_transactions_and_the_last_is_marked() {
        let batch = |n: usize| vec![NewJob::new("http://127.0.0.1/a.png"); n];
        let mut batches = vec![batch(3), batch(3), batch(3), batch(1)].into_iter();
        let mut seen = Vec::new();
        in_transactions(&mut batches, 5, |rows, last| {
            seen.push((rows.len(), last));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(6, false), (4, true)]);

        let mut seen = Vec::new();
        in_transactions(&mut std::iter::empty(), 5, |rows, last| {
            seen.push((rows.len(), last));
            Ok(())
        })
        .unwrap();
        assert!(seen.is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentiles(&mut []), None);
        assert_eq!(percentiles(&mut [7]), Some((7, 7)));
        let mut hundred: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut hundred), Some((50, 95)));
        assert_eq!(percentiles(&mut [1, 2, 3]), Some((2, 3)));
    }

    #[test]
    fn hosts_match_exactly_or_with_their_subdomains() {
        assert!(host_matches(
            "https://Img.Example.org:8443/a.png",
            "img.example.ORG"
        ));
        assert!(!host_matches(
            "https://img.example.org/a.png",
            "example.org"
        ));
        assert!(host_matches(
            "https://img.example.org/a.png",
            ".example.org"
        ));
        assert!(host_matches("https://example.org/a.png", ".example.org"));
        assert!(!host_matches(
            "https://badexample.org/a.png",
            ".example.org"
        ));
        assert!(!host_matches("not a url", "example.org"));
    }
}
