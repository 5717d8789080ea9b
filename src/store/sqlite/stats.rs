//! The figures of `jobctl stats`: counts, recent throughput, timing percentiles, storage, errors.

use rusqlite::Connection;

use super::SqliteStore;
use crate::job::State;
use crate::job::now_ms;
use crate::job::{RECENT_MINUTES, window_start};
use crate::store::admin::{Sample, in_state_order, timings};
use crate::store::{
    Context, Figures, HostRow, QueueCounts, Stats, Storage, StoreError,
};

// The figures' queries. Each is pinned to an index that holds every column it reads (without
// statistics the planner would rather visit rows through `jobs_state`), so none visits a row:
// the unit test below checks their plans.

/// SQLite's one cheap count: a whole table's, from the entries of each page of its smallest
/// index, without visiting them.
pub(super) const ALL_JOBS: &str = "SELECT COUNT(*) FROM jobs";

/// The states other than queued, few in a deep queue.
pub(super) const NOT_QUEUED: &str = "
    SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_state
    WHERE state IN ('running', 'done', 'failed', 'cancelled') GROUP BY state";

/// Without the pin the planner walks every queued job through jobs_state (78 ms at 890,000
/// queued) instead of the few due later.
pub(super) const SCHEDULED: &str =
    "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 'queued' AND run_at > ?1";

/// `jobs_done` (0010) holds only done jobs' sha256 and bytes.
pub(super) const BYTES_DONE: &str =
    "SELECT COALESCE(SUM(bytes), 0) FROM jobs INDEXED BY jobs_done WHERE state = 'done'";

/// One group per blob, in the index's order: no sort.
pub(super) const BLOBS: &str = "
    SELECT COUNT(*), COALESCE(SUM(b), 0) FROM
      (SELECT MAX(bytes) AS b FROM jobs INDEXED BY jobs_done
       WHERE state = 'done' AND sha256 IS NOT NULL GROUP BY sha256)";

/// `jobs_finished_state` (0010) holds the time and the state of finished jobs; its condition is
/// written as the index's, so that the planner may use it.
pub(super) const DONE_WITHIN: &str = "
    SELECT COALESCE(SUM(finished_at >= ?1), 0), COALESCE(SUM(finished_at >= ?2), 0), COUNT(*)
    FROM jobs INDEXED BY jobs_finished_state
    WHERE state <> 'queued' AND state <> 'running' AND state = 'done' AND finished_at >= ?3";

/// `attempts_done` (0010) holds the time and the timings of done attempts.
pub(super) const RECENT_TIMINGS: &str = "
    SELECT ttfb_ms, total_ms FROM attempts INDEXED BY attempts_done
    WHERE finished_at >= ?1 AND outcome = 'done'";

pub(super) const ALL_TIMINGS: &str =
    "SELECT ttfb_ms, total_ms FROM attempts INDEXED BY attempts_done WHERE outcome = 'done'";

impl Figures for SqliteStore {
    fn stats(&self) -> Result<Stats, StoreError> {
        let conn = self.conn()?;
        let now = now_ms();
        let counts = queue_counts(&conn, now)?;
        let storage = storage(&conn)?;
        // Ties by the error, descending (NULL last): the order SQLite's sorter gave them
        // anyway, now pinned, so that both backends name the same five.
        let mut stmt = conn
            .prepare(
                "SELECT error, COUNT(*) AS n FROM jobs WHERE state = 'failed'
                 GROUP BY error ORDER BY n DESC, error DESC LIMIT 5",
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
        let (timing_samples, timings_all_time, ttfb_ms, total_ms) =
            timings(now, |since| done_timings(&conn, since))?;
        Ok(Stats {
            by_state: counts.by_state,
            scheduled: counts.scheduled,
            bytes_done: storage.bytes_done,
            blobs: storage.blobs,
            blob_bytes: storage.blob_bytes,
            top_errors,
            paused: counts.paused,
            done_within: done_within(&conn, now)?,
            timing_samples,
            timings_all_time,
            ttfb_ms,
            total_ms,
        })
    }

    fn counts(&self) -> Result<(Vec<(State, i64)>, bool), StoreError> {
        let counts = queue_counts(&*self.conn()?, now_ms())?;
        Ok((counts.by_state, counts.paused))
    }

    fn hosts(&self) -> Result<Vec<HostRow>, StoreError> {
        super::hosts::rows(&*self.conn()?, now_ms())
    }
}

/// Jobs per state, the scheduled ones and the pause switch, in one read transaction.
///
/// The queued jobs are counted as all jobs less the others. `COUNT(*)` of a whole table is
/// SQLite's one cheap count: it adds up the entries of each page of the smallest index
/// (`jobs_state`) without visiting them, 7 ms for a million jobs, where counting the 890,000
/// queued entries one by one took 18 to 31 ms. The other states are few in a deep queue, and
/// `state` has no value but the five (its CHECK), so the difference is exact.
pub(super) fn queue_counts(conn: &Connection, now: i64) -> Result<QueueCounts, StoreError> {
    let tx = conn.unchecked_transaction().ctx("counting jobs")?;
    let all: i64 = tx
        .prepare_cached(ALL_JOBS)
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("counting jobs")?;
    let others: Vec<(State, i64)> = tx
        .prepare_cached(NOT_QUEUED)
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .ctx("counting jobs")?;
    let queued = all - others.iter().map(|(_, n)| n).sum::<i64>();
    let mut found = others;
    found.push((State::Queued, queued));
    let scheduled = tx
        .prepare_cached(SCHEDULED)
        .and_then(|mut s| s.query_row([now], |r| r.get(0)))
        .ctx("counting scheduled jobs")?;
    let paused = super::ops::paused(&tx)?;
    tx.commit().ctx("counting jobs")?;
    Ok(QueueCounts {
        by_state: in_state_order(&found),
        scheduled,
        paused,
    })
}

/// Bytes of done jobs and their distinct blobs, in one read transaction.
pub(super) fn storage(conn: &Connection) -> Result<Storage, StoreError> {
    let tx = conn.unchecked_transaction().ctx("summing bytes")?;
    let bytes_done = tx
        .prepare_cached(BYTES_DONE)
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("summing bytes")?;
    let (blobs, blob_bytes) = tx
        .prepare_cached(BLOBS)
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .ctx("counting blobs")?;
    tx.commit().ctx("summing bytes")?;
    Ok(Storage {
        bytes_done,
        blobs,
        blob_bytes,
    })
}

/// Done jobs per recent window, in one walk of `jobs_finished_state` over the longest window.
fn done_within(conn: &Connection, now: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let [a, b, c] = RECENT_MINUTES;
    let since = |minutes| window_start(now, minutes);
    let counts: (i64, i64, i64) = conn
        .query_row(
            DONE_WITHIN,
            [since(a), since(b), since(c)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ctx("counting recently finished jobs")?;
    Ok(vec![(a, counts.0), (b, counts.1), (c, counts.2)])
}

/// The (ttfb_ms, total_ms) of the done attempts that finished at or after `since` (None: all).
pub(super) fn done_timings(conn: &Connection, since: Option<i64>) -> Result<Vec<Sample>, StoreError> {
    let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    match since {
        Some(since) => conn
            .prepare_cached(RECENT_TIMINGS)
            .and_then(|mut stmt| stmt.query_map([since], row)?.collect()),
        None => conn
            .prepare_cached(ALL_TIMINGS)
            .and_then(|mut stmt| stmt.query_map([], row)?.collect()),
    }
    .ctx("reading attempt timings")
}

#[cfg(test)]
mod tests {
    use super::super::dashboard::THROUGHPUT;
    use super::*;

    /// The overview's figures read indexes only: a plan that visits rows (a "SCAN jobs", a
    /// "USING INDEX" that is not covering, a temporary b-tree that sorts every row) made the
    /// first overview take 130 to 188 ms at a million jobs.
    #[test]
    fn the_overviews_figures_visit_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("q.db"), 1).unwrap();
        let conn = store.conn().unwrap();
        for sql in [
            ALL_JOBS,
            NOT_QUEUED,
            SCHEDULED,
            BYTES_DONE,
            BLOBS,
            DONE_WITHIN,
            RECENT_TIMINGS,
            ALL_TIMINGS,
            THROUGHPUT,
        ] {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let params = vec![rusqlite::types::Value::Integer(1); stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let reads: Vec<&String> = plan
                .iter()
                .filter(|p| p.starts_with("SCAN jobs") || p.starts_with("SEARCH"))
                .chain(plan.iter().filter(|p| p.starts_with("SCAN attempts")))
                .collect();
            assert!(
                !reads.is_empty() && reads.iter().all(|p| p.contains("COVERING INDEX")),
                "{sql}\n{plan:?}"
            );
            assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{sql}\n{plan:?}");
        }
    }
}
