//! The figures of `jobctl stats`: counts, recent throughput, timing percentiles, storage, errors.

use rusqlite::Connection;

use super::SqliteStore;
use crate::job::State;
use crate::job::now_ms;
use crate::job::{RECENT_MINUTES, window_start};
use crate::store::admin::{Sample, in_state_order, timings};
use crate::store::{Context, Figures, HostRow, Stats, StoreError};

impl Figures for SqliteStore {
    fn stats(&self) -> Result<Stats, StoreError> {
        let conn = self.conn()?;
        let now = now_ms();
        let count = |state: State| -> Result<i64, StoreError> {
            conn.prepare_cached("SELECT COUNT(*) FROM jobs WHERE state = ?1")
                .and_then(|mut s| s.query_row([state.name()], |r| r.get(0)))
                .ctx("counting jobs")
        };
        let by_state = State::ALL
            .into_iter()
            .map(|s| Ok((s, count(s)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let scheduled = conn
            .query_row(
                // Pinned: without statistics the planner walks every queued job through
                // jobs_state (78 ms at 890,000 queued) instead of the few due later.
                "SELECT COUNT(*) FROM jobs INDEXED BY jobs_due WHERE state = 'queued' AND run_at > ?1",
                [now],
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
        // Walks jobs_sha256 in order: one group per blob, no sort of every done job.
        let (blobs, blob_bytes) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(b), 0) FROM
                   (SELECT MAX(bytes) AS b FROM jobs INDEXED BY jobs_sha256
                    WHERE sha256 IS NOT NULL AND state = 'done' GROUP BY sha256)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ctx("counting blobs")?;
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
            by_state,
            scheduled,
            bytes_done,
            blobs,
            blob_bytes,
            top_errors,
            paused: super::ops::paused(&conn)?,
            done_within: done_within(&conn, now)?,
            timing_samples,
            timings_all_time,
            ttfb_ms,
            total_ms,
        })
    }

    fn counts(&self) -> Result<(Vec<(State, i64)>, bool), StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .ctx("counting jobs")?;
        let found: Vec<(State, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .ctx("counting jobs")?;
        Ok((in_state_order(&found), super::ops::paused(&conn)?))
    }

    fn hosts(&self) -> Result<Vec<HostRow>, StoreError> {
        super::hosts::rows(&*self.conn()?, now_ms())
    }
}

/// Done jobs per recent window, in one walk of `jobs_finished` over the longest window (pinned:
/// without statistics the planner would rather visit every done job through `jobs_state`).
fn done_within(conn: &Connection, now: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let [a, b, c] = RECENT_MINUTES;
    let since = |minutes| window_start(now, minutes);
    let counts: (i64, i64, i64) = conn
        .query_row(
            "SELECT COALESCE(SUM(finished_at >= ?1), 0), COALESCE(SUM(finished_at >= ?2), 0),
                    COUNT(*)
             FROM jobs INDEXED BY jobs_finished
             WHERE state IN ('done', 'failed', 'cancelled') AND state = 'done'
               AND finished_at >= ?3",
            [since(a), since(b), since(c)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ctx("counting recently finished jobs")?;
    Ok(vec![(a, counts.0), (b, counts.1), (c, counts.2)])
}

/// The (ttfb_ms, total_ms) of the done attempts that finished at or after `since` (None: all).
fn done_timings(conn: &Connection, since: Option<i64>) -> Result<Vec<Sample>, StoreError> {
    let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    match since {
        Some(since) => conn
            .prepare("SELECT ttfb_ms, total_ms FROM attempts WHERE finished_at >= ?1 AND outcome = 'done'")
            .and_then(|mut stmt| stmt.query_map([since], row)?.collect()),
        None => conn
            .prepare("SELECT ttfb_ms, total_ms FROM attempts WHERE outcome = 'done'")
            .and_then(|mut stmt| stmt.query_map([], row)?.collect()),
    }
    .ctx("reading attempt timings")
}
