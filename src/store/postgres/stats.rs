//! The figures of `jobctl stats` on PostgreSQL: counts, recent throughput, timing percentiles,
//! storage, errors. All read in one snapshot, so that they add up.

use postgres::{GenericClient, IsolationLevel, Transaction};

use super::PgStore;
use crate::job::State;
use crate::job::now_ms;
use crate::job::{RECENT_MINUTES, window_start};
use crate::store::admin::{Sample, in_state_order, timings};
use crate::store::{Context, Figures, HostRow, Stats, StoreError};

const COUNT_BY_STATE: &str = "SELECT state, COUNT(*) FROM jobs GROUP BY state";

/// run_at is written with the database's clock (claims compare it with that clock).
const SCHEDULED: &str =
    "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at > jobd_now_ms()";

/// SUM of BIGINT is NUMERIC in PostgreSQL: cast back.
const BYTES_DONE: &str = "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM jobs WHERE state = 'done'";

const BLOBS: &str = "
    SELECT COUNT(*), COALESCE(SUM(b), 0)::BIGINT FROM
      (SELECT MAX(bytes) AS b FROM jobs
       WHERE sha256 IS NOT NULL AND state = 'done' GROUP BY sha256) AS blobs";

/// Ties go by the error text, bytewise ("C") and descending, NULL last, as on SQLite.
const TOP_ERRORS: &str = r#"
    SELECT error, COUNT(*) AS n FROM jobs WHERE state = 'failed'
    GROUP BY error ORDER BY n DESC, error COLLATE "C" DESC NULLS LAST LIMIT 5"#;

/// Done jobs per recent window, in one walk of `jobs_finished` over the longest one.
const DONE_WITHIN: &str = "
    SELECT COUNT(*) FILTER (WHERE finished_at >= $1), COUNT(*) FILTER (WHERE finished_at >= $2),
           COUNT(*)
    FROM jobs
    WHERE state IN ('done', 'failed', 'cancelled') AND state = 'done' AND finished_at >= $3";

const RECENT_TIMINGS: &str =
    "SELECT ttfb_ms, total_ms FROM attempts WHERE finished_at >= $1 AND outcome = 'done'";

const ALL_TIMINGS: &str = "SELECT ttfb_ms, total_ms FROM attempts WHERE outcome = 'done'";

impl Figures for PgStore {
    fn stats(&self) -> Result<Stats, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = snapshot(&mut conn).ctx("reading the figures")?;
        let now = now_ms();
        let by_state = count_by_state(&mut tx)?;
        let one = |tx: &mut Transaction<'_>, sql: &str, doing: &str| -> Result<i64, StoreError> {
            tx.query_one(sql, &[]).and_then(|r| r.try_get(0)).ctx(doing)
        };
        let scheduled = one(&mut tx, SCHEDULED, "counting scheduled jobs")?;
        let bytes_done = one(&mut tx, BYTES_DONE, "summing bytes")?;
        let (blobs, blob_bytes) = tx
            .query_one(BLOBS, &[])
            .and_then(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .ctx("counting blobs")?;
        let top_errors = tx
            .query(TOP_ERRORS, &[])
            .ctx("reading errors")?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                    r.try_get(1)?,
                ))
            })
            .collect::<Result<Vec<_>, postgres::Error>>()
            .ctx("reading errors")?;
        let (timing_samples, timings_all_time, ttfb_ms, total_ms) =
            timings(now, |since| done_timings(&mut tx, since))?;
        let stats = Stats {
            by_state,
            scheduled,
            bytes_done,
            blobs,
            blob_bytes,
            top_errors,
            paused: super::ops::paused(&mut tx)?,
            done_within: done_within(&mut tx, now)?,
            timing_samples,
            timings_all_time,
            ttfb_ms,
            total_ms,
        };
        tx.commit().ctx("reading the figures")?;
        Ok(stats)
    }

    fn counts(&self) -> Result<(Vec<(State, i64)>, bool), StoreError> {
        let mut conn = self.conn()?;
        let counts = count_by_state(&mut *conn)?;
        Ok((counts, super::ops::paused(&mut *conn)?))
    }

    fn hosts(&self) -> Result<Vec<HostRow>, StoreError> {
        super::hosts::rows(&mut *self.conn()?, now_ms())
    }
}

/// A read-only transaction that sees one snapshot throughout.
fn snapshot(conn: &mut postgres::Client) -> Result<Transaction<'_>, postgres::Error> {
    conn.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

/// Jobs per state, all five in [`State::ALL`] order (zero for a state without jobs).
fn count_by_state(conn: &mut impl GenericClient) -> Result<Vec<(State, i64)>, StoreError> {
    let found: Vec<(State, i64)> = conn
        .query(COUNT_BY_STATE, &[])
        .ctx("counting jobs")?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()
        .ctx("counting jobs")?;
    Ok(in_state_order(&found))
}

fn done_within(conn: &mut impl GenericClient, now: i64) -> Result<Vec<(i64, i64)>, StoreError> {
    let [a, b, c] = RECENT_MINUTES;
    let since = |minutes| window_start(now, minutes);
    let (in_a, in_b, in_c): (i64, i64, i64) = conn
        .query_one(DONE_WITHIN, &[&since(a), &since(b), &since(c)])
        .and_then(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .ctx("counting recently finished jobs")?;
    Ok(vec![(a, in_a), (b, in_b), (c, in_c)])
}

/// The (ttfb_ms, total_ms) of the done attempts that finished at or after `since` (None: all).
fn done_timings(
    conn: &mut impl GenericClient,
    since: Option<i64>,
) -> Result<Vec<Sample>, StoreError> {
    let rows = match since {
        Some(since) => conn.query(RECENT_TIMINGS, &[&since]),
        None => conn.query(ALL_TIMINGS, &[]),
    }
    .ctx("reading attempt timings")?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()
        .ctx("reading attempt timings")
}
