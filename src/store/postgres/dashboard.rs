//! The dashboard's reads on PostgreSQL: the overview's counts, storage and timings (shared with
//! `jobctl stats`, in `stats.rs`), throughput buckets, failure groups, the gallery and a blob by
//! its sha256. Each answers exactly as the SQLite backend does.

use postgres::types::ToSql;

use super::PgStore;
use super::admin::{JOB_COLUMNS, job_row};
use super::stats::{queue_counts, snapshot, storage, timing_figures};
use crate::job::now_ms;
use crate::store::{
    BlobRow, Bucket, Context, Dashboard, FailureGroup, GalleryFilter, JobRow, QueueCounts,
    Storage, StoreError, TimingFigures,
};

/// Done and failed jobs per bucket, from `jobs_finished_state` (an index-only scan).
const THROUGHPUT: &str = "
    SELECT finished_at / $2 * $2 AS b, COUNT(*) FILTER (WHERE state = 'done'),
           COUNT(*) FILTER (WHERE state = 'failed')
    FROM jobs
    WHERE state IN ('done', 'failed', 'cancelled') AND finished_at >= $1 / $2 * $2
    GROUP BY b ORDER BY b";

/// Ties by error, then host, bytewise ("C"), NULL host first, as SQLite orders them.
const FAILURE_GROUPS: &str = r#"
    SELECT COALESCE(error, '') AS e, host, COUNT(*) AS n, MAX(finished_at)
    FROM jobs WHERE state = 'failed'
    GROUP BY e, host
    ORDER BY n DESC, COALESCE(error, '') COLLATE "C", host COLLATE "C" NULLS FIRST LIMIT $1"#;

const BLOB: &str = "
    SELECT sha256, blob_path, mime, bytes FROM jobs
    WHERE sha256 = $1 AND state = 'done' AND blob_path IS NOT NULL AND mime IS NOT NULL
    ORDER BY id DESC LIMIT 1";

impl Dashboard for PgStore {
    fn queue_counts(&self) -> Result<QueueCounts, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = snapshot(&mut conn).ctx("counting jobs")?;
        let counts = queue_counts(&mut tx)?;
        tx.commit().ctx("counting jobs")?;
        Ok(counts)
    }

    fn storage(&self) -> Result<Storage, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = snapshot(&mut conn).ctx("summing bytes")?;
        let storage = storage(&mut tx)?;
        tx.commit().ctx("summing bytes")?;
        Ok(storage)
    }

    fn timing_figures(&self) -> Result<TimingFigures, StoreError> {
        timing_figures(&mut **self.conn()?, now_ms())
    }

    fn throughput(&self, since: i64, width_ms: i64) -> Result<Vec<Bucket>, StoreError> {
        let rows = self
            .conn()?
            .query(THROUGHPUT, &[&since, &width_ms.max(1)])
            .ctx("reading the throughput")?;
        rows.iter()
            .map(|r| {
                Ok(Bucket {
                    start: r.try_get(0)?,
                    done: r.try_get(1)?,
                    failed: r.try_get(2)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx("reading the throughput")
    }

    fn failure_groups(&self, limit: usize) -> Result<Vec<FailureGroup>, StoreError> {
        let rows = self
            .conn()?
            .query(FAILURE_GROUPS, &[&(limit as i64)])
            .ctx("grouping the failures")?;
        rows.iter()
            .map(|r| {
                Ok(FailureGroup {
                    error: r.try_get(0)?,
                    host: r.try_get(1)?,
                    count: r.try_get(2)?,
                    last_at: r.try_get(3)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx("grouping the failures")
    }

    fn gallery(&self, filter: &GalleryFilter) -> Result<Vec<JobRow>, StoreError> {
        // Newest first down jobs_finished, so that the queued jobs are never walked.
        let mut sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs
             WHERE state IN ('done', 'failed', 'cancelled') AND state = 'done'
               AND sha256 IS NOT NULL AND blob_path IS NOT NULL"
        );
        let limit = filter.limit as i64;
        let before_at = filter.before.map(|b| b.0);
        let before_id = filter.before.map(|b| b.1);
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(host) = &filter.host {
            params.push(host);
            sql.push_str(&format!(" AND host = ${}", params.len()));
        }
        if let Some(mime) = &filter.mime {
            params.push(mime);
            sql.push_str(&format!(" AND mime = ${}", params.len()));
        }
        if let (Some(at), Some(id)) = (&before_at, &before_id) {
            params.push(at);
            params.push(id);
            let (a, b) = (params.len() - 1, params.len());
            sql.push_str(&format!(
                " AND (finished_at < ${a} OR (finished_at = ${a} AND id < ${b}))"
            ));
        }
        params.push(&limit);
        sql.push_str(&format!(
            " ORDER BY finished_at DESC, id DESC LIMIT ${}",
            params.len()
        ));
        let rows = self
            .conn()?
            .query(&sql, &params)
            .ctx("reading the gallery")?;
        rows.iter()
            .map(job_row)
            .collect::<Result<_, postgres::Error>>()
            .ctx("reading the gallery")
    }

    fn blob(&self, sha256: &str) -> Result<Option<BlobRow>, StoreError> {
        let row = self
            .conn()?
            .query_opt(BLOB, &[&sha256])
            .ctx(format_args!("reading the blob {sha256}"))?;
        row.map(|r| -> Result<BlobRow, postgres::Error> {
            Ok(BlobRow {
                sha256: r.try_get(0)?,
                blob_path: r.try_get(1)?,
                mime: r.try_get(2)?,
                bytes: r.try_get::<_, Option<i64>>(3)?.unwrap_or(0),
            })
        })
        .transpose()
        .ctx(format_args!("reading the blob {sha256}"))
    }
}
