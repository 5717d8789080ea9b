//! The operator's controls on PostgreSQL: the pause switch, cancel, retry, and the blob
//! references that `jobctl prune --blobs` checks. Each write is one short transaction (bulk
//! retries run in batches of them). Cancel and retry lock the rows they name before reading
//! their states, so that no state changes between the read and the write, as SQLite's
//! IMMEDIATE transaction ensures there.

use postgres::GenericClient;
use postgres::fallible_iterator::FallibleIterator;

use super::PgStore;
use crate::job::{Cancel, State};
use crate::job::{JobId, now_ms};
use crate::store::admin::{RETRY_BATCH, requeue_in_batches};
use crate::store::{Context, Controls, References, StoreError};

/// What a cancelled queued job's `error` says.
const CANCELLED_BY_JOBCTL: &str = "cancelled by jobctl";


const PAUSED: &str = "SELECT EXISTS (SELECT 1 FROM settings WHERE name = 'paused' AND value = '1')";

/// The settings trigger (migration 0002) notifies every daemon, so a resume is seen at once.
const PAUSE: &str = "
    INSERT INTO settings (name, value) VALUES ('paused', '1')
    ON CONFLICT (name) DO UPDATE SET value = excluded.value";

const RESUME: &str = "DELETE FROM settings WHERE name = 'paused'";

/// Locks the named jobs, in id order so that two jobctl commands never wait for each other in
/// a circle.
const LOCK_JOBS: &str = "SELECT 1 FROM jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE";

const STATE_OF: &str = "SELECT state FROM jobs WHERE id = $1";

/// $1 job, $2 now (finished_at: the daemons' clock, as the queue writes it).
const CANCEL_QUEUED: &str = "
    UPDATE jobs SET state = 'cancelled', finished_at = $2, error = $3
    WHERE id = $1 AND state = 'queued'";

const CANCEL_RUNNING: &str =
    "UPDATE jobs SET cancel_requested = true WHERE id = $1 AND state = 'running'";

/// Due now by the database's clock, the one claims compare run_at with.
const REQUEUE_ONE: &str = "
    UPDATE jobs
    SET state = 'queued', attempts = 0, run_at = jobd_now_ms(), error = NULL,
        cancel_requested = false, worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE id = $1";

/// The next batch of failed jobs after id $2, in id order, requeued; returns their ids. $1 a
/// substring of the error (ASCII letters compared case-insensitively, as on SQLite) or NULL.
/// The outer `state = 'failed'` is checked again on a row that changed meanwhile.
const REQUEUE_FAILED: &str = r#"
    UPDATE jobs
    SET state = 'queued', attempts = 0, run_at = jobd_now_ms(), error = NULL,
        cancel_requested = false, worker = NULL, attempt_id = NULL, lease_until = NULL
    WHERE state = 'failed'
      AND id IN (SELECT id FROM jobs
                 WHERE state = 'failed' AND id > $2
                   AND ($1::TEXT IS NULL
                        OR strpos(lower(error COLLATE "C"), lower($1::TEXT COLLATE "C")) > 0)
                 ORDER BY id LIMIT $3)
    RETURNING id"#;

/// Walks `jobs_finished`, as `prune` does. $1 before, $2 the states.
const FINISHED_BLOBS: &str = "
    SELECT blob_path FROM jobs
    WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < $1
      AND state = ANY($2) AND blob_path IS NOT NULL";

/// Served by `jobs_sha256` (migration 0003): one index probe per blob.
const BLOB_REFERENCED: &str = "SELECT EXISTS (SELECT 1 FROM jobs WHERE sha256 = $1)";

/// Leases are written with the database's clock, so they are read with it too.
const RUNNING_ATTEMPTS: &str = "
    SELECT attempt_id FROM jobs
    WHERE state = 'running' AND lease_until >= jobd_now_ms() AND attempt_id IS NOT NULL";

/// How many of the attempts $1 run under a live lease; an id given twice counts twice, as on
/// SQLite, which asks once per id.
const LIVE_AMONG: &str = "
    SELECT COUNT(*) FROM unnest($1::BIGINT[]) AS a (id)
    WHERE EXISTS (SELECT 1 FROM jobs
                  WHERE attempt_id = a.id AND state = 'running' AND lease_until >= jobd_now_ms())";

/// Whether the pause switch is on (the claim checks the same row).
pub(super) fn paused(conn: &mut impl GenericClient) -> Result<bool, StoreError> {
    conn.query_one(PAUSED, &[])
        .and_then(|r| r.try_get(0))
        .ctx("reading the pause switch")
}

fn lock_jobs(conn: &mut impl GenericClient, ids: &[JobId], doing: &str) -> Result<(), StoreError> {
    conn.execute(LOCK_JOBS, &[&ids]).ctx(doing)?;
    Ok(())
}

fn state_of(conn: &mut impl GenericClient, id: JobId) -> Result<Option<State>, StoreError> {
    conn.query_opt(STATE_OF, &[&id])
        .and_then(|row| row.map(|r| r.try_get(0)).transpose())
        .ctx(format_args!("reading job {id}"))
}

impl Controls for PgStore {
    fn set_paused(&self, on: bool) -> Result<(), StoreError> {
        self.conn()?
            .execute(if on { PAUSE } else { RESUME }, &[])
            .ctx("setting the pause switch")?;
        Ok(())
    }

    fn cancel(&self, ids: &[JobId]) -> Result<Vec<(JobId, Option<State>)>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().ctx("cancelling jobs")?;
        lock_jobs(&mut tx, ids, "cancelling jobs")?;
        let now = now_ms();
        let mut before = Vec::with_capacity(ids.len());
        for &id in ids {
            let state = state_of(&mut tx, id)?;
            match state.map(State::on_cancel) {
                Some(Cancel::Now) => tx.execute(CANCEL_QUEUED, &[&id, &now, &CANCELLED_BY_JOBCTL]),
                Some(Cancel::WhenAttemptEnds) => tx.execute(CANCEL_RUNNING, &[&id]),
                Some(Cancel::No) | None => Ok(0),
            }
            .ctx(format_args!("cancelling job {id}"))?;
            before.push((id, state));
        }
        tx.commit().ctx("committing the cancellations")?;
        Ok(before)
    }

    fn retry(&self, ids: &[JobId], force: bool) -> Result<Vec<(JobId, Option<State>)>, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().ctx("requeueing jobs")?;
        lock_jobs(&mut tx, ids, "requeueing jobs")?;
        let mut before = Vec::with_capacity(ids.len());
        for &id in ids {
            let state = state_of(&mut tx, id)?;
            if state.is_some_and(|s| s.retryable(force)) {
                tx.execute(REQUEUE_ONE, &[&id])
                    .ctx(format_args!("requeueing job {id}"))?;
            }
            before.push((id, state));
        }
        tx.commit().ctx("committing the requeued jobs")?;
        Ok(before)
    }

    fn retry_failed(&self, error: Option<&str>) -> Result<u64, StoreError> {
        let mut conn = self.conn()?;
        // Each batch is a statement of its own, and so a transaction of its own.
        requeue_in_batches(|after| {
            conn.query(REQUEUE_FAILED, &[&error, &after, &RETRY_BATCH])
                .ctx("requeueing failed jobs")?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .ctx("requeueing failed jobs")
        })
    }
}

impl References for PgStore {
    fn blobs_of_finished(
        &self,
        before: i64,
        states: &[State],
        each: &mut dyn FnMut(&str),
    ) -> Result<(), StoreError> {
        const DOING: &str = "listing the blobs of finished jobs";
        let mut conn = self.conn()?;
        let states: Vec<&str> = states.iter().map(|s| s.name()).collect();
        let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&before, &states];
        let mut rows = conn.query_raw(FINISHED_BLOBS, params).ctx(DOING)?;
        while let Some(row) = rows.next().ctx(DOING)? {
            each(row.try_get(0).ctx(DOING)?);
        }
        Ok(())
    }

    fn blob_referenced(&self, sha256: &str) -> Result<bool, StoreError> {
        self.conn()?
            .query_one(BLOB_REFERENCED, &[&sha256])
            .and_then(|r| r.try_get(0))
            .ctx(format_args!("looking for jobs that use blob {sha256}"))
    }

    fn live_attempts(&self) -> Result<Vec<i64>, StoreError> {
        self.conn()?
            .query(RUNNING_ATTEMPTS, &[])
            .ctx("listing running jobs")?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .ctx("listing running jobs")
    }

    fn still_live(&self, attempt_ids: &[i64]) -> Result<usize, StoreError> {
        let live: i64 = self
            .conn()?
            .query_one(LIVE_AMONG, &[&attempt_ids])
            .and_then(|r| r.try_get(0))
            .ctx("watching running jobs")?;
        Ok(live as usize)
    }
}
