//! The figures of `jobctl stats` on PostgreSQL: counts, recent throughput, timing percentiles,
//! storage, errors. All read in one snapshot, so that they add up.

use postgres::{GenericClient, IsolationLevel, Transaction};

use super::PgStore;
use crate::job::State;
use crate::job::now_ms;
use crate::job::{RECENT_MINUTES, window_start};
use crate::store::admin::in_state_order;
use crate::store::{
    Context, Figures, HostRow, QueueCounts, Stats, Storage, StoreError, TimingFigures,
};

/// The queued jobs, counted in `jobs_queued_host` (an index-only scan, in parallel): a third
/// of the time of the sequential scan that `GROUP BY state` takes over a million jobs, once
/// (auto)vacuum has marked the table's pages all-visible.
const QUEUED: &str = "SELECT COUNT(*) FROM jobs WHERE state = 'queued'";

/// Every state in one (parallel) sequential scan: the faster way while the index-only scan would
/// visit most rows anyway, right after a bulk change.
const COUNT_BY_STATE: &str = "SELECT state, COUNT(*) FROM jobs GROUP BY state";

/// Whether (auto)vacuum has marked most of `jobs` all-visible, as it last counted. A table that
/// none has been through yet has no pages in the count.
const MOSTLY_VISIBLE: &str =
    "SELECT relpages > 0 AND relallvisible * 2 >= relpages FROM pg_class WHERE oid = 'jobs'::regclass";

/// The other states, counted in `jobs_state`, which holds only them.
const NOT_QUEUED: &str =
    "SELECT state, COUNT(*) FROM jobs WHERE state <> 'queued' GROUP BY state";

/// run_at is written with the database's clock (claims compare it with that clock).
const SCHEDULED: &str =
    "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND run_at > jobd_now_ms()";

/// SUM of BIGINT is NUMERIC in PostgreSQL: cast back. This and BLOBS read `jobs_done` (0010),
/// which holds only done jobs' sha256 and bytes, without visiting a row.
const BYTES_DONE: &str = "SELECT COALESCE(SUM(bytes), 0)::BIGINT FROM jobs WHERE state = 'done'";

const BLOBS: &str = "
    SELECT COUNT(*), COALESCE(SUM(b), 0)::BIGINT FROM
      (SELECT MAX(bytes) AS b FROM jobs
       WHERE sha256 IS NOT NULL AND state = 'done' GROUP BY sha256) AS blobs";

/// Ties go by the error text, bytewise ("C") and descending, NULL last, as on SQLite.
const TOP_ERRORS: &str = r#"
    SELECT error, COUNT(*) AS n FROM jobs WHERE state = 'failed'
    GROUP BY error ORDER BY n DESC, error COLLATE "C" DESC NULLS LAST LIMIT 5"#;

/// Done jobs per recent window, in one walk of `jobs_finished_state` over the longest one.
const DONE_WITHIN: &str = "
    SELECT COUNT(*) FILTER (WHERE finished_at >= $1), COUNT(*) FILTER (WHERE finished_at >= $2),
           COUNT(*)
    FROM jobs
    WHERE state IN ('done', 'failed', 'cancelled') AND state = 'done' AND finished_at >= $3";

/// The timing percentiles, sorted in the database so that one row comes back instead of every
/// done attempt. percentile_disc(p) is the value at rank ceil(n × p) of the non-NULL values:
/// for 0.5 and 0.95 exactly the nearest rank that `admin::percentiles` takes on SQLite (0.95
/// as a double is a hair under 0.95, so n × 0.95 never rounds above a whole rank).
const RECENT_TIMINGS: &str = "
    SELECT COUNT(*), percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ttfb_ms),
           percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY total_ms)
    FROM attempts WHERE finished_at >= $1 AND outcome = 'done'";

const ALL_TIMINGS: &str = "
    SELECT COUNT(*), percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ttfb_ms),
           percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY total_ms)
    FROM attempts WHERE outcome = 'done'";

impl Figures for PgStore {
    fn stats(&self) -> Result<Stats, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = snapshot(&mut conn).ctx("reading the figures")?;
        let now = now_ms();
        let counts = queue_counts(&mut tx)?;
        let storage = storage(&mut tx)?;
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
        let timings = timing_figures(&mut tx, now)?;
        let stats = Stats {
            by_state: counts.by_state,
            scheduled: counts.scheduled,
            bytes_done: storage.bytes_done,
            blobs: storage.blobs,
            blob_bytes: storage.blob_bytes,
            top_errors,
            paused: counts.paused,
            done_within: done_within(&mut tx, now)?,
            timing_samples: timings.samples,
            timings_all_time: timings.all_time,
            ttfb_ms: timings.ttfb_ms,
            total_ms: timings.total_ms,
        };
        tx.commit().ctx("reading the figures")?;
        Ok(stats)
    }

    fn counts(&self) -> Result<(Vec<(State, i64)>, bool), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = snapshot(&mut conn).ctx("counting jobs")?;
        let counts = queue_counts(&mut tx)?;
        tx.commit().ctx("counting jobs")?;
        Ok((counts.by_state, counts.paused))
    }

    fn hosts(&self) -> Result<Vec<HostRow>, StoreError> {
        super::hosts::rows(&mut **self.conn()?, now_ms())
    }
}

/// Jobs per state, the scheduled ones and the pause switch; call it in a [`snapshot`] so that
/// they add up.
pub(super) fn queue_counts(tx: &mut Transaction<'_>) -> Result<QueueCounts, StoreError> {
    let visible: bool = tx
        .query_one(MOSTLY_VISIBLE, &[])
        .and_then(|r| r.try_get(0))
        .ctx("counting jobs")?;
    let mut found: Vec<(State, i64)> = tx
        .query(if visible { NOT_QUEUED } else { COUNT_BY_STATE }, &[])
        .ctx("counting jobs")?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, postgres::Error>>()
        .ctx("counting jobs")?;
    if visible {
        let queued: i64 = tx
            .query_one(QUEUED, &[])
            .and_then(|r| r.try_get(0))
            .ctx("counting jobs")?;
        found.push((State::Queued, queued));
    }
    let scheduled = tx
        .query_one(SCHEDULED, &[])
        .and_then(|r| r.try_get(0))
        .ctx("counting scheduled jobs")?;
    Ok(QueueCounts {
        by_state: in_state_order(&found),
        scheduled,
        paused: super::ops::paused(tx)?,
    })
}

/// Bytes of done jobs and their distinct blobs; call it in a [`snapshot`].
pub(super) fn storage(tx: &mut Transaction<'_>) -> Result<Storage, StoreError> {
    let bytes_done = tx
        .query_one(BYTES_DONE, &[])
        .and_then(|r| r.try_get(0))
        .ctx("summing bytes")?;
    let (blobs, blob_bytes) = tx
        .query_one(BLOBS, &[])
        .and_then(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .ctx("counting blobs")?;
    Ok(Storage {
        bytes_done,
        blobs,
        blob_bytes,
    })
}

/// A read-only transaction that sees one snapshot throughout.
pub(super) fn snapshot(conn: &mut postgres::Client) -> Result<Transaction<'_>, postgres::Error> {
    conn.build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
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

/// The timing percentiles of the done attempts of the last 15 minutes, or of every done attempt
/// when none finished then.
pub(super) fn timing_figures(
    conn: &mut impl GenericClient,
    now: i64,
) -> Result<TimingFigures, StoreError> {
    let longest = RECENT_MINUTES[RECENT_MINUTES.len() - 1];
    let row = conn
        .query_one(RECENT_TIMINGS, &[&window_start(now, longest)])
        .ctx("reading attempt timings")?;
    let recent = timing_row(&row, false).ctx("reading attempt timings")?;
    if recent.samples > 0 {
        return Ok(recent);
    }
    let row = conn
        .query_one(ALL_TIMINGS, &[])
        .ctx("reading attempt timings")?;
    timing_row(&row, true).ctx("reading attempt timings")
}

fn timing_row(row: &postgres::Row, all_time: bool) -> Result<TimingFigures, postgres::Error> {
    let pair = |i| -> Result<Option<(i64, i64)>, postgres::Error> {
        let ranks: Option<Vec<i64>> = row.try_get(i)?;
        Ok(ranks.and_then(|r| Some((*r.first()?, *r.get(1)?))))
    };
    Ok(TimingFigures {
        samples: row.try_get(0)?,
        all_time,
        ttfb_ms: pair(1)?,
        total_ms: pair(2)?,
    })
}
