//! The operator's queries behind jobctl: add, list and show here; bulk import in `admin/bulk.rs`,
//! the controls (pause, cancel, retry, blob references) in `admin/ops.rs`, the figures of
//! `jobctl stats` in `admin/stats.rs`.
//!
//! These methods take and return plain values (ids, states, counts), so jobctl decides what to say.

mod bulk;
mod ops;
mod stats;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{Context, JobId, SqliteStore, StoreError, now_ms};

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
    pub state: String,
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
    pub state: Option<String>,
    /// A substring of the error, compared case-insensitively (ASCII letters).
    pub error: Option<String>,
    /// The URL's host, exactly (case-insensitive); with a leading dot, also its subdomains.
    pub host: Option<String>,
    /// Last activity ([`JobRow::last_activity`]) at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Last activity before this time (Unix ms).
    pub until: Option<i64>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Jobs per state, in the order queued, running, done, failed, cancelled.
    pub by_state: Vec<(String, i64)>,
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

pub const STATES: [&str; 5] = ["queued", "running", "done", "failed", "cancelled"];

const JOB_COLUMNS: &str = "id, url, state, priority, attempts, max_attempts, run_at, created_at,
    started_at, finished_at, http_status, declared_mime, mime, bytes, sha256, blob_path,
    width, height, error, cancel_requested, worker";

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let url = match r.get::<_, Value>(1)? {
        Value::Text(t) => t,
        Value::Null => "(NULL)".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Blob(b) => format!("(blob of {} bytes)", b.len()),
    };
    Ok(JobRow {
        id: r.get(0)?,
        url,
        state: r.get(2)?,
        priority: r.get(3)?,
        attempts: r.get(4)?,
        max_attempts: r.get(5)?,
        run_at: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        finished_at: r.get(9)?,
        http_status: r.get(10)?,
        declared_mime: r.get(11)?,
        mime: r.get(12)?,
        bytes: r.get(13)?,
        sha256: r.get(14)?,
        blob_path: r.get(15)?,
        width: r.get(16)?,
        height: r.get(17)?,
        error: r.get(18)?,
        cancel_requested: r.get(19)?,
        worker: r.get(20)?,
    })
}

/// The insert behind [`SqliteStore::add`], in one transaction.
fn insert_jobs(conn: &mut Connection, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("adding jobs")?;
    let mut ids = Vec::with_capacity(jobs.len());
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO jobs (url, priority, run_at, max_attempts)
                 VALUES (?1, ?2, COALESCE(?3, ?4), ?5) RETURNING id",
            )
            .ctx("adding jobs")?;
        let now = now_ms();
        for job in jobs {
            let id = insert
                .query_row(
                    params![job.url, job.priority, job.run_at, now, job.max_attempts],
                    |r| r.get(0),
                )
                .ctx(format_args!("adding {}", job.url))?;
            ids.push(id);
        }
    }
    tx.commit().ctx("committing the new jobs")?;
    Ok(ids)
}

impl SqliteStore {
    /// Inserts jobs in one transaction; returns their ids in order.
    pub fn add(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn()?;
        // jobctl's inserts are the user's data: make them durable even against power loss.
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("preparing to add jobs")?;
        let added = insert_jobs(&mut conn, jobs);
        // The connection goes back to the pool: leave it as every connection starts, or a daemon
        // sharing the pool would fsync every commit.
        let _ = conn.pragma_update(None, "synchronous", "NORMAL");
        added
    }

    /// Jobs in id order, newest first, that pass every filter that is set.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<JobRow>, StoreError> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        let conn = self.conn()?;
        // The host is prefiltered as a substring here and checked exactly on each row below:
        // SQL has no URL parser. Rows stream in id order, so a small limit stops early.
        let host = filter
            .host
            .as_deref()
            .map(|h| h.trim_start_matches('.').to_ascii_lowercase());
        // Only the filters that are set, so that a state filter walks jobs_state.
        let activity = "COALESCE(finished_at, started_at, created_at)";
        let terms = [
            (filter.state.is_some(), "state = :state".to_string()),
            (
                filter.error.is_some(),
                "instr(lower(error), lower(:error)) > 0".into(),
            ),
            (host.is_some(), "instr(lower(url), :host) > 0".into()),
            (filter.since.is_some(), format!("{activity} >= :since")),
            (filter.until.is_some(), format!("{activity} < :until")),
        ];
        let conditions: Vec<&str> = terms.iter().filter(|t| t.0).map(|t| t.1.as_str()).collect();
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY id DESC",
            if conditions.is_empty() {
                "1".to_string()
            } else {
                conditions.join(" AND ")
            }
        );
        let mut stmt = conn.prepare(&sql).ctx("listing jobs")?;
        let values: [(&str, Value); 5] = [
            (":state", filter.state.clone().into()),
            (":error", filter.error.clone().into()),
            (":host", host.into()),
            (":since", filter.since.into()),
            (":until", filter.until.into()),
        ];
        for (name, value) in values {
            if let Some(i) = stmt.parameter_index(name).ctx("listing jobs")? {
                stmt.raw_bind_parameter(i, value).ctx("listing jobs")?;
            }
        }
        let mut rows = stmt.raw_query();
        let mut jobs = Vec::new();
        while let Some(row) = rows.next().ctx("listing jobs")? {
            let job = job_row(row).ctx("listing jobs")?;
            if filter
                .host
                .as_deref()
                .is_none_or(|want| host_matches(&job.url, want))
            {
                jobs.push(job);
                if jobs.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(jobs)
    }

    /// One job and all its attempts, or None if there is no such job.
    pub fn show(&self, id: JobId) -> Result<Option<(JobRow, Vec<AttemptRow>)>, StoreError> {
        let conn = self.conn()?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
        let Some(job) = conn
            .query_row(&sql, [id], job_row)
            .optional()
            .ctx(format_args!("reading job {id}"))?
        else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare(
                "SELECT attempt, outcome, worker, started_at, finished_at, http_status, bytes,
                        ttfb_ms, download_ms, total_ms, error
                 FROM attempts WHERE job_id = ?1 ORDER BY attempt",
            )
            .ctx(format_args!("reading the attempts of job {id}"))?;
        let attempts = stmt
            .query_map([id], |r| {
                Ok(AttemptRow {
                    attempt: r.get(0)?,
                    outcome: r.get(1)?,
                    worker: r.get(2)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    http_status: r.get(5)?,
                    bytes: r.get(6)?,
                    ttfb_ms: r.get(7)?,
                    download_ms: r.get(8)?,
                    total_ms: r.get(9)?,
                    error: r.get(10)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .ctx(format_args!("reading the attempts of job {id}"))?;
        Ok(Some((job, attempts)))
    }
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
    use super::host_matches;

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
