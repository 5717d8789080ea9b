//! The operator's queries on SQLite: add, list and show here; bulk import in `bulk.rs`, the
//! controls (pause, cancel, retry, blob references) in `ops.rs`, the figures of `jobctl stats`
//! in `stats.rs`. [`Admin`] is implemented at the bottom, by delegation to them.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::SqliteStore;
use crate::job::{JobId, now_ms};
use crate::store::{AttemptRow, Context, JobRow, Jobs, ListFilter, NewJob, StoreError};

pub(super) const JOB_COLUMNS: &str = "id, url, state, priority, attempts, max_attempts, run_at, created_at,
    started_at, finished_at, http_status, declared_mime, mime, bytes, sha256, blob_path,
    width, height, error, cancel_requested, worker, validation, validation_note";

pub(super) fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
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
        validation: r.get(21)?,
        validation_note: r.get(22)?,
    })
}

/// The insert behind [`SqliteStore::add_jobs`], in one transaction.
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

impl Jobs for SqliteStore {
    fn add(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
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

    fn list(&self, filter: &ListFilter) -> Result<Vec<JobRow>, StoreError> {
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
            (filter.url.is_some(), "instr(url, :url) > 0".into()),
            (filter.before.is_some(), "id < :before".into()),
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
        let values: [(&str, Value); 7] = [
            (":state", filter.state.map(|s| s.name().to_string()).into()),
            (":error", filter.error.clone().into()),
            (":host", host.into()),
            (":since", filter.since.into()),
            (":until", filter.until.into()),
            (":url", filter.url.clone().into()),
            (":before", filter.before.into()),
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
            if filter.wants_host(&job.url)
            {
                jobs.push(job);
                if jobs.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(jobs)
    }

    fn show(&self, id: JobId) -> Result<Option<(JobRow, Vec<AttemptRow>)>, StoreError> {
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
