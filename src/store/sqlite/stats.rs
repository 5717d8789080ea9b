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
        .prepare_cached("SELECT COUNT(*) FROM jobs")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("counting jobs")?;
    let others: Vec<(State, i64)> = tx
        .prepare_cached(
            "SELECT state, COUNT(*) FROM jobs INDEXED BY jobs_state
             WHERE state IN ('running', 'done', 'failed', 'cancelled') GROUP BY state",
        )
        .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
        .ctx("counting jobs")?;
    let queued = all - others.iter().map(|(_, n)| n).sum::<i64>();
    let mut found = others;
    found.push((State::Queued, queued));
    let scheduled = tx
        .prepare_cached(
            // Pinned: without statistics the planner walks every queued job through
            // jobs_state (78 ms at 890,000 queued) instead of the few due later.
            "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 'queued' AND run_at > ?1",
        )
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

/// Bytes of done jobs and their distinct blobs, in one read transaction, from `jobs_done`
/// (0009), which holds only done jobs' sha256 and bytes: neither read visits a row.
pub(super) fn storage(conn: &Connection) -> Result<Storage, StoreError> {
    let tx = conn.unchecked_transaction().ctx("summing bytes")?;
    let bytes_done = tx
        .prepare_cached(
            "SELECT COALESCE(SUM(bytes), 0) FROM jobs INDEXED BY jobs_done WHERE state = 'done'",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .ctx("summing bytes")?;
    // One group per blob, in the index's order: no sort.
    let (blobs, blob_bytes) = tx
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(b), 0) FROM
               (SELECT MAX(bytes) AS b FROM jobs INDEXED BY jobs_done
                WHERE state = 'done' AND sha256 IS NOT NULL GROUP BY sha256)",
        )
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
        .ctx("counting blobs")?;
    tx.commit().ctx("summing bytes")?;
    Ok(Storage {
        bytes_done,
        blobs,
        blob_bytes,
    })
}

/// Done jobs per recent window, in one walk of `jobs_finished_state` over the longest window
/// (pinned: without statistics the planner would rather visit every done job through
/// `jobs_state`), which holds both columns: no row is visited.
fn done_within(conn: &Connection, now: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let [a, b, c] = RECENT_MINUTES;
    let since = |minutes| window_start(now, minutes);
    let counts: (i64, i64, i64) = conn
        .query_row(
            "SELECT COALESCE(SUM(finished_at >= ?1), 0), COALESCE(SUM(finished_at >= ?2), 0),
                    COUNT(*)
             FROM jobs INDEXED BY jobs_finished_state
             WHERE state IN ('done', 'failed', 'cancelled') AND state = 'done'
               AND finished_at >= ?3",
            [since(a), since(b), since(c)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ctx("counting recently finished jobs")?;
    Ok(vec![(a, counts.0), (b, counts.1), (c, counts.2)])
}

/// The (ttfb_ms, total_ms) of the done attempts that finished at or after `since` (None: all),
/// from `attempts_done` (0009), which holds just these columns of done attempts.
pub(super) fn done_timings(conn: &Connection, since: Option<i64>) -> Result<Vec<Sample>, StoreError> {
    let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    match since {
        Some(since) => conn
            .prepare_cached(
                "SELECT ttfb_ms, total_ms FROM attempts INDEXED BY attempts_done
                 WHERE finished_at >= ?1 AND outcome = 'done'",
            )
            .and_then(|mut stmt| stmt.query_map([since], row)?.collect()),
        None => conn
            .prepare_cached(
                "SELECT ttfb_ms, total_ms FROM attempts INDEXED BY attempts_done
                 WHERE outcome = 'done'",
            )
            .and_then(|mut stmt| stmt.query_map([], row)?.collect()),
    }
    .ctx("reading attempt timings")
}
