//! The operator's queries behind jobctl: add, list, show, stats.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, TransactionBehavior, params};

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

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Jobs per state, in the order queued, running, done, failed, cancelled.
    pub by_state: Vec<(String, i64)>,
    /// Queued jobs waiting for a later `run_at` (retries, or added with --at).
    pub scheduled: i64,
    /// Bytes stored by done jobs.
    pub bytes_done: i64,
    /// The most common errors among failed jobs, with counts.
    pub top_errors: Vec<(String, i64)>,
}

pub const STATES: [&str; 5] = ["queued", "running", "done", "failed", "cancelled"];

const JOB_COLUMNS: &str = "id, url, state, priority, attempts, max_attempts, run_at, created_at,
    started_at, finished_at, http_status, declared_mime, mime, bytes, sha256, blob_path,
    width, height, error";

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
    })
}

impl SqliteStore {
    /// Inserts jobs in one transaction; returns their ids in order.
    pub fn add(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn()?;
        // jobctl's inserts are the user's data: make them durable even against power loss.
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("preparing to add jobs")?;
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

    /// Jobs in id order, newest first, optionally of one state.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn()?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1)
             ORDER BY id DESC LIMIT ?2"
        );
        let mut stmt = conn.prepare(&sql).ctx("listing jobs")?;
        let rows = stmt
            .query_map(params![filter.state, filter.limit as i64], job_row)
            .ctx("listing jobs")?;
        rows.collect::<Result<_, _>>().ctx("listing jobs")
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

    /// Counts per state, scheduled retries, bytes stored and the commonest errors.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let conn = self.conn()?;
        let count = |state: &str| -> Result<i64, StoreError> {
            conn.prepare_cached("SELECT COUNT(*) FROM jobs WHERE state = ?1")
                .and_then(|mut s| s.query_row([state], |r| r.get(0)))
                .ctx("counting jobs")
        };
        let by_state = STATES
            .iter()
            .map(|s| Ok((s.to_string(), count(s)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let scheduled = conn
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at > ?1",
                [now_ms()],
                |r| r.get(0),
            )
            .ctx("counting scheduled jobs")?;
        let bytes_done = conn
            .query_row(
                "SELECT COALESCE(SUM(bytes), 0) FROM jobs WHERE state = 'done'",
                [],
                |r| r.get(0),
            )
            .ctx("summing bytes")?;
        let mut stmt = conn
            .prepare(
                "SELECT error, COUNT(*) AS n FROM jobs WHERE state = 'failed'
                 GROUP BY error ORDER BY n DESC LIMIT 5",
            )
            .ctx("reading errors")?;
        let top_errors = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.get(1)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .ctx("reading errors")?;
        Ok(Stats {
            by_state,
            scheduled,
            bytes_done,
            top_errors,
        })
    }
}
