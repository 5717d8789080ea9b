//! The dashboard's reads on SQLite: the overview's counts, storage and timings (shared with
//! `jobctl stats`, in `stats.rs`), throughput buckets, failure groups, the gallery and a blob by
//! its sha256.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::admin::{JOB_COLUMNS, job_row};
use super::stats::{done_timings, queue_counts, storage};
use crate::job::now_ms;
use crate::store::admin::timings;
use crate::store::{
    BlobRow, Bucket, Context, Dashboard, FailureGroup, GalleryFilter, JobRow, QueueCounts,
    Storage, StoreError, TimingFigures,
};

/// Finished jobs in the order of `jobs_finished_state` (pinned, as `done_within` pins it), which
/// holds both columns: no row is visited. Each row's bucket, and whether it is done or failed;
/// [`Dashboard::throughput`] adds up the runs of one bucket as they come. A `GROUP BY` of the
/// bucket would sort every row first (SQLite cannot tell that the bucket follows the index's
/// order), and at a day of 110,000 jobs its sorter spilled to a temporary file.
pub(super) const THROUGHPUT: &str = "
    SELECT finished_at / ?2 * ?2, state = 'done', state = 'failed'
    FROM jobs INDEXED BY jobs_finished_state
    WHERE state <> 'queued' AND state <> 'running' AND finished_at >= ?1 / ?2 * ?2
    ORDER BY finished_at";

/// Ties by error, then host, so that both backends list the same groups.
const FAILURE_GROUPS: &str = "
    SELECT COALESCE(error, ''), host, COUNT(*) AS n, MAX(finished_at)
    FROM jobs WHERE state = 'failed'
    GROUP BY COALESCE(error, ''), host ORDER BY n DESC, 1, 2 LIMIT ?1";

/// A done job's blob: the newest job that recorded it.
const BLOB: &str = "
    SELECT sha256, blob_path, mime, bytes FROM jobs
    WHERE sha256 = ?1 AND state = 'done' AND blob_path IS NOT NULL AND mime IS NOT NULL
    ORDER BY id DESC LIMIT 1";

impl Dashboard for SqliteStore {
    fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        queue_counts(&*self.conn()?, now_ms())
    }

    fn storage(&self) -> Result<Storage, StoreError> {
        storage(&*self.conn()?)
    }

    fn timing_figures(&self) -> Result<TimingFigures, StoreError> {
        let conn = self.conn()?;
        let (samples, all_time, ttfb_ms, total_ms) =
            timings(now_ms(), |since| done_timings(&conn, since))?;
        Ok(TimingFigures {
            samples,
            all_time,
            ttfb_ms,
            total_ms,
        })
    }

    fn throughput(&self, since: i64, width_ms: i64) -> Result<Vec<Bucket>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(THROUGHPUT)
            .ctx("reading the throughput")?;
        let mut rows = stmt
            .query(params![since, width_ms.max(1)])
            .ctx("reading the throughput")?;
        let mut buckets: Vec<Bucket> = Vec::new();
        while let Some(row) = rows.next().ctx("reading the throughput")? {
            let (start, done, failed): (i64, i64, i64) = (|| {
                Ok::<_, rusqlite::Error>((row.get(0)?, row.get(1)?, row.get(2)?))
            })()
            .ctx("reading the throughput")?;
            match buckets.last_mut() {
                Some(last) if last.start == start => {
                    last.done += done;
                    last.failed += failed;
                }
                _ => buckets.push(Bucket {
                    start,
                    done,
                    failed,
                }),
            }
        }
        Ok(buckets)
    }

    fn failure_groups(&self, limit: usize) -> Result<Vec<FailureGroup>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(FAILURE_GROUPS)
            .ctx("grouping the failures")?;
        stmt.query_map([limit as i64], |r| {
            Ok(FailureGroup {
                error: r.get(0)?,
                host: r.get(1)?,
                count: r.get(2)?,
                last_at: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect())
        .ctx("grouping the failures")
    }

    fn gallery(&self, filter: &GalleryFilter) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn()?;
        // Newest first down jobs_finished (pinned; the rowid orders ties), so that the queued
        // jobs, usually the newest ids, are never walked.
        let terms = [
            (filter.host.is_some(), "host = :host"),
            (filter.mime.is_some(), "mime = :mime"),
            (
                filter.before.is_some(),
                "(finished_at < :before_at OR (finished_at = :before_at AND id < :before_id))",
            ),
        ];
        let mut sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs INDEXED BY jobs_finished
             WHERE state IN ('done', 'failed', 'cancelled') AND state = 'done'
               AND sha256 IS NOT NULL AND blob_path IS NOT NULL"
        );
        for (_, term) in terms.iter().filter(|t| t.0) {
            sql.push_str(" AND ");
            sql.push_str(term);
        }
        sql.push_str(" ORDER BY finished_at DESC, id DESC LIMIT :limit");
        let mut stmt = conn.prepare_cached(&sql).ctx("reading the gallery")?;
        let values: [(&str, Value); 5] = [
            (":host", filter.host.clone().into()),
            (":mime", filter.mime.clone().into()),
            (":before_at", filter.before.map(|b| b.0).into()),
            (":before_id", filter.before.map(|b| b.1).into()),
            (":limit", (filter.limit as i64).into()),
        ];
        for (name, value) in values {
            if let Some(i) = stmt.parameter_index(name).ctx("reading the gallery")? {
                stmt.raw_bind_parameter(i, value)
                    .ctx("reading the gallery")?;
            }
        }
        let mut rows = stmt.raw_query();
        let mut jobs = Vec::new();
        while let Some(row) = rows.next().ctx("reading the gallery")? {
            jobs.push(job_row(row).ctx("reading the gallery")?);
        }
        Ok(jobs)
    }

    fn blob(&self, sha256: &str) -> Result<Option<BlobRow>, StoreError> {
        let conn = self.conn()?;
        conn.prepare_cached(BLOB)
            .and_then(|mut stmt| {
                stmt.query_row([sha256], |r| {
                    Ok(BlobRow {
                        sha256: r.get(0)?,
                        blob_path: r.get(1)?,
                        mime: r.get(2)?,
                        bytes: r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    })
                })
                .optional()
            })
            .ctx(format_args!("reading the blob {sha256}"))
    }
}
