//! The operator's queries on PostgreSQL: add, list and show here; bulk import in `bulk.rs`, the
//! controls (pause, cancel, retry, blob references) in `ops.rs`, the figures of `jobctl stats`
//! in `stats.rs`. [`Admin`] is implemented at the bottom, by delegation to them. Each answers
//! exactly as the SQLite backend does.

use postgres::types::ToSql;
use postgres::{IsolationLevel, Row};

use super::PgStore;
use crate::job::JobId;
use crate::store::{AttemptRow, Context, JobRow, Jobs, ListFilter, NewJob, StoreError};

pub(super) const JOB_COLUMNS: &str = "id, url, state, priority, attempts, max_attempts, run_at, created_at,
    started_at, finished_at, http_status, declared_mime, mime, bytes, sha256, blob_path,
    width, height, error, cancel_requested, worker, validation, validation_note";

/// $1 url, $2 priority, $3 run_at or NULL for now, $4 max_attempts, $5 now (the database's
/// clock, read once per transaction: claims compare run_at with it).
const INSERT_JOB: &str = "
    INSERT INTO jobs (url, priority, run_at, max_attempts, created_at)
    VALUES ($1, $2, COALESCE($3::BIGINT, $5), $4, $5) RETURNING id";

const SHOW_ATTEMPTS: &str = "
    SELECT attempt, outcome, worker, started_at, finished_at, http_status, bytes,
           ttfb_ms, download_ms, total_ms, error
    FROM attempts WHERE job_id = $1 ORDER BY attempt";

/// The most rows `list` fetches per query. It pages through the jobs newest first, as SQLite's
/// statement streams them: a page of as many rows as are still wanted, doubling while the
/// exact host check (made here, not in SQL) turns rows down, so that neither a small limit
/// nor a large table makes the server look further than needed.
const LIST_PAGE: usize = 10_000;

/// The database's clock in ms, the one claims compare run_at with.
pub(super) const NOW: &str = "SELECT jobd_now_ms()";

pub(super) fn job_row(r: &Row) -> Result<JobRow, postgres::Error> {
    // TEXT, so NULL is the only value that is not a string; SQLite shows it so too.
    let url: Option<String> = r.try_get(1)?;
    Ok(JobRow {
        id: r.try_get(0)?,
        url: url.unwrap_or_else(|| "(NULL)".into()),
        state: r.try_get(2)?,
        priority: r.try_get(3)?,
        attempts: r.try_get(4)?,
        max_attempts: r.try_get(5)?,
        run_at: r.try_get(6)?,
        created_at: r.try_get(7)?,
        started_at: r.try_get(8)?,
        finished_at: r.try_get(9)?,
        http_status: r.try_get(10)?,
        declared_mime: r.try_get(11)?,
        mime: r.try_get(12)?,
        bytes: r.try_get(13)?,
        sha256: r.try_get(14)?,
        blob_path: r.try_get(15)?,
        width: r.try_get(16)?,
        height: r.try_get(17)?,
        error: r.try_get(18)?,
        cancel_requested: r.try_get(19)?,
        worker: r.try_get(20)?,
        validation: r.try_get(21)?,
        validation_note: r.try_get(22)?,
    })
}

fn attempt_row(r: &Row) -> Result<AttemptRow, postgres::Error> {
    Ok(AttemptRow {
        attempt: r.try_get(0)?,
        outcome: r.try_get(1)?,
        worker: r.try_get(2)?,
        started_at: r.try_get(3)?,
        finished_at: r.try_get(4)?,
        http_status: r.try_get(5)?,
        bytes: r.try_get(6)?,
        ttfb_ms: r.try_get(7)?,
        download_ms: r.try_get(8)?,
        total_ms: r.try_get(9)?,
        error: r.try_get(10)?,
    })
}

/// The query of `list` with only the filters that are set, numbered from $1, then two more
/// parameters for the page: `id < $n` and `LIMIT $n+1`. Errors and hosts are lowered under the "C"
/// collation, which changes ASCII letters only, as SQLite's lower() does.
fn list_sql(filter: &ListFilter) -> String {
    let activity = "COALESCE(finished_at, started_at, created_at)";
    let terms: [(bool, &dyn Fn(usize) -> String); 6] = [
        (filter.state.is_some(), &|n| format!("state = ${n}")),
        (filter.error.is_some(), &|n| {
            format!(r#"strpos(lower(error COLLATE "C"), lower(${n}::TEXT COLLATE "C")) > 0"#)
        }),
        (filter.host.is_some(), &|n| {
            format!(r#"strpos(lower(url COLLATE "C"), ${n}::TEXT) > 0"#)
        }),
        (filter.since.is_some(), &|n| format!("{activity} >= ${n}")),
        (filter.until.is_some(), &|n| format!("{activity} < ${n}")),
        (filter.url.is_some(), &|n| format!("strpos(url, ${n}::TEXT) > 0")),
    ];
    let mut conditions = Vec::new();
    for (set, term) in terms {
        if set {
            conditions.push(term(conditions.len() + 1));
        }
    }
    let page = conditions.len() + 1;
    conditions.push(format!("id < ${page}"));
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY id DESC LIMIT ${}",
        conditions.join(" AND "),
        page + 1
    )
}

impl Jobs for PgStore {
    fn add(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().ctx("adding jobs")?;
        let now: i64 = tx
            .query_one(NOW, &[])
            .and_then(|r| r.try_get(0))
            .ctx("adding jobs")?;
        let insert = tx.prepare(INSERT_JOB).ctx("adding jobs")?;
        let mut ids = Vec::with_capacity(jobs.len());
        for job in jobs {
            let max_attempts = job.max_attempts.map(i64::from);
            let id: JobId = tx
                .query_one(
                    &insert,
                    &[&job.url, &job.priority, &job.run_at, &max_attempts, &now],
                )
                .and_then(|r| r.try_get(0))
                .ctx(format_args!("adding {}", job.url))?;
            ids.push(id);
        }
        tx.commit().ctx("committing the new jobs")?;
        Ok(ids)
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<JobRow>, StoreError> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        // The host is prefiltered as a substring in SQL and checked exactly on each row here:
        // SQL has no URL parser. Pages of the newest rows are read until `limit` rows pass, all
        // in one snapshot, as SQLite's single statement sees one.
        let host = filter
            .host
            .as_deref()
            .map(|h| h.trim_start_matches('.').to_ascii_lowercase());
        let state = filter.state.map(|s| s.name());
        let values: [Option<&(dyn ToSql + Sync)>; 6] = [
            state.as_ref().map(|v| v as _),
            filter.error.as_ref().map(|v| v as _),
            host.as_ref().map(|v| v as _),
            filter.since.as_ref().map(|v| v as _),
            filter.until.as_ref().map(|v| v as _),
            filter.url.as_ref().map(|v| v as _),
        ];
        let sql = list_sql(filter);
        let mut page = filter.limit.min(LIST_PAGE) as i64;
        let mut conn = self.conn()?;
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .ctx("listing jobs")?;
        let stmt = tx.prepare(&sql).ctx("listing jobs")?;
        let mut jobs = Vec::new();
        let mut before = filter.before.unwrap_or(i64::MAX);
        loop {
            let mut params: Vec<&(dyn ToSql + Sync)> = values.iter().flatten().copied().collect();
            params.push(&before);
            params.push(&page);
            let rows = tx.query(&stmt, &params).ctx("listing jobs")?;
            let full = rows.len() as i64 == page;
            for row in &rows {
                let job = job_row(row).ctx("listing jobs")?;
                before = job.id;
                if filter.wants_host(&job.url)
                {
                    jobs.push(job);
                    if jobs.len() >= filter.limit {
                        return Ok(jobs);
                    }
                }
            }
            if !full {
                return Ok(jobs);
            }
            let wanted = (filter.limit - jobs.len()).min(LIST_PAGE) as i64;
            page = if filter.host.is_some() {
                (page * 2).clamp(wanted, LIST_PAGE as i64)
            } else {
                wanted
            };
        }
    }

    fn show(&self, id: JobId) -> Result<Option<(JobRow, Vec<AttemptRow>)>, StoreError> {
        let mut conn = self.conn()?;
        // One snapshot for the job and its attempts.
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .ctx(format_args!("reading job {id}"))?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let Some(job) = tx
            .query_opt(&sql, &[&id])
            .ctx(format_args!("reading job {id}"))?
        else {
            return Ok(None);
        };
        let job = job_row(&job).ctx(format_args!("reading job {id}"))?;
        let attempts = tx
            .query(SHOW_ATTEMPTS, &[&id])
            .ctx(format_args!("reading the attempts of job {id}"))?
            .iter()
            .map(attempt_row)
            .collect::<Result<Vec<_>, _>>()
            .ctx(format_args!("reading the attempts of job {id}"))?;
        Ok(Some((job, attempts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_numbers_only_the_filters_that_are_set() {
        let sql = list_sql(&ListFilter {
            limit: 5,
            ..ListFilter::default()
        });
        assert!(
            sql.contains("WHERE id < $1 ORDER BY id DESC LIMIT $2"),
            "{sql}"
        );

        let sql = list_sql(&ListFilter {
            state: Some(crate::job::State::Failed),
            host: Some(".example.org".into()),
            until: Some(7),
            limit: 5,
            ..ListFilter::default()
        });
        assert!(sql.contains("state = $1 AND strpos(lower(url"), "{sql}");
        assert!(sql.contains("$2::TEXT) > 0 AND COALESCE"), "{sql}");
        assert!(
            sql.contains("< $3 AND id < $4 ORDER BY id DESC LIMIT $5"),
            "{sql}"
        );
    }
}
